//! The progress display: a spinner with items, bytes and rate on a terminal (push,
//! pull, export, import, check, commit), nothing when stderr is not a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use spfs::progress::{human_bytes, Progress, ProgressSink};

struct Bar {
    bar: ProgressBar,
    bytes: AtomicU64,
    started: std::time::Instant,
}

impl ProgressSink for Bar {
    fn inc(&self, items: u64, bytes: u64) {
        self.bar.inc(items);
        if bytes > 0 {
            let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
            let secs = self.started.elapsed().as_secs_f64().max(1e-3);
            self.bar.set_message(format!(
                "{} ({}/s)",
                human_bytes(total),
                human_bytes((total as f64 / secs) as u64)
            ));
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Progress labelled `label`, drawn only when stderr is a terminal.
pub fn bar(label: &str) -> Progress {
    if !std::io::stderr().is_terminal() {
        return Progress::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} {pos} items, {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(label.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Progress::new(Bar {
        bar,
        bytes: AtomicU64::new(0),
        started: std::time::Instant::now(),
    })
}
