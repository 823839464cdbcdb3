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
