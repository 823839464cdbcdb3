//! A spinner for solves: shown on a terminal once a solve has taken ~200 ms, naming
//! the package being tried; nothing when stderr is not a terminal.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::solve::SolveProgress;

/// How long a solve runs before the spinner shows.
const DELAY: Duration = Duration::from_millis(200);

/// A spinner that appears only for slow solves; cleared when dropped.
pub struct SolveSpinner {
    bar: Option<ProgressBar>,
}

impl SolveSpinner {
    /// A spinner and the progress hook that drives it.
    pub fn new() -> (Self, Option<SolveProgress>) {
        if !std::io::stderr().is_terminal() {
            return (SolveSpinner { bar: None }, None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{spinner} solving: trying {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let started = Instant::now();
        let shown = Arc::new(Mutex::new(false));
        let hook_bar = bar.clone();
        let hook = SolveProgress(Arc::new(move |name: &str| {
            if started.elapsed() < DELAY {
                return;
            }
            let mut shown = shown.lock().unwrap_or_else(|e| e.into_inner());
            if !*shown {
                *shown = true;
                hook_bar.set_draw_target(ProgressDrawTarget::stderr());
                hook_bar.enable_steady_tick(Duration::from_millis(100));
            }
            hook_bar.set_message(name.to_string());
        }));
        (SolveSpinner { bar: Some(bar) }, Some(hook))
    }
}

impl Drop for SolveSpinner {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Counts of a transfer (items, bytes) labelled `label`, drawn on a terminal only.
pub fn transfer_bar(label: &str) -> spfs::progress::Progress {
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Bar {
        bar: ProgressBar,
        bytes: AtomicU64,
    }

    impl spfs::progress::ProgressSink for Bar {
        fn inc(&self, items: u64, bytes: u64) {
            self.bar.inc(items);
            if bytes > 0 {
                let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
                self.bar.set_message(spfs::progress::human_bytes(total));
            }
        }

        fn finish(&self) {
            self.bar.finish_and_clear();
        }
    }

    if !std::io::stderr().is_terminal() {
        return spfs::progress::Progress::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} {pos} items, {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    spfs::progress::Progress::new(Bar {
        bar,
        bytes: AtomicU64::new(0),
    })
}
