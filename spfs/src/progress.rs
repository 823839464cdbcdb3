//! Progress reporting for long operations. The library only counts; a front end that
//! wants a display (the `spfs` command draws a bar on a terminal) passes a
//! [`ProgressSink`] that receives the counts.

use std::sync::Arc;

/// Receives the counts of one operation as it goes. Called from several threads.
pub trait ProgressSink: Send + Sync {
    /// `items` more items, totalling `bytes` bytes, are done.
    fn inc(&self, items: u64, bytes: u64);

    /// The operation ended (successfully or not).
    fn finish(&self) {}
}

/// Counts items and bytes for one operation, forwarding them to an optional sink.
#[derive(Clone, Default)]
pub struct Progress {
    sink: Option<Arc<dyn ProgressSink>>,
}

impl Progress {
    /// Progress that reports to `sink`.
    pub fn new(sink: impl ProgressSink + 'static) -> Self {
        Progress {
            sink: Some(Arc::new(sink)),
        }
    }

    /// Progress that reports nowhere.
    pub fn hidden() -> Self {
        Progress { sink: None }
    }

    /// Records `items` more items totalling `bytes` bytes.
    pub fn inc(&self, items: u64, bytes: u64) {
        if let Some(sink) = &self.sink {
            sink.inc(items, bytes);
        }
    }

    /// Ends the report.
    pub fn finish(&self) {
        if let Some(sink) = &self.sink {
            sink.finish();
        }
    }
}

/// Formats a byte count with a binary unit.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Count(AtomicU64, AtomicU64, AtomicU64);

    impl ProgressSink for Arc<Count> {
        fn inc(&self, items: u64, bytes: u64) {
            self.0.fetch_add(items, Ordering::Relaxed);
            self.1.fetch_add(bytes, Ordering::Relaxed);
        }
        fn finish(&self) {
            self.2.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn counts_reach_the_sink_from_every_clone() {
        let count = Arc::new(Count::default());
        let p = Progress::new(count.clone());
        let q = p.clone();
        p.inc(2, 10);
        q.inc(1, 5);
        p.finish();
        assert_eq!(count.0.load(Ordering::Relaxed), 3);
        assert_eq!(count.1.load(Ordering::Relaxed), 15);
        assert_eq!(count.2.load(Ordering::Relaxed), 1);
        Progress::hidden().inc(1, 1);
    }

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
