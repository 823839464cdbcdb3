//! Progress display for long operations: a bar on a terminal, nothing when piped.

use std::io::IsTerminal;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

/// Counts items and bytes for one operation.
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    bytes: Arc<AtomicU64>,
}

impl Progress {
    /// A progress display labelled `label`, shown only when stderr is a terminal.
    pub fn new(label: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {pos} items, {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress {
            bar: Some(bar),
            bytes: Arc::default(),
        }
    }

    /// A progress display that never draws.
    pub fn hidden() -> Self {
        Progress {
            bar: None,
            bytes: Arc::default(),
        }
    }

    /// Records `items` more items totalling `bytes` bytes.
    pub fn inc(&self, items: u64, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(items);
            if bytes > 0 {
                let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
                bar.set_message(human_bytes(total));
            }
        }
    }

    /// Removes the display.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
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
