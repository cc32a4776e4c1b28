//! Progress display: a bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use lifeboat_core::Progress;

use crate::output::human_bytes;

/// Shows progress on stderr.
pub struct CliProgress {
    state: Mutex<Option<Phase>>,
    terminal: bool,
}

struct Phase {
    label: String,
    bar: Option<ProgressBar>,
    started: Instant,
    done: u64,
}

impl CliProgress {
    /// Progress on stderr, as a bar when stderr is a terminal.
    pub fn new() -> Self {
        CliProgress { state: Mutex::new(None), terminal: std::io::stderr().is_terminal() }
    }
}

impl Progress for CliProgress {
    fn start(&self, label: &str, total: Option<u64>) {
        let bar = self.terminal.then(|| {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_message(label.to_string());
            bar
        });
        if !self.terminal {
            eprintln!(
                "{label}: started{}",
                total.map(|t| format!(" ({})", human_bytes(t))).unwrap_or_default()
            );
        }
        if let Ok(mut state) = self.state.lock() {
            *state =
                Some(Phase { label: label.to_string(), bar, started: Instant::now(), done: 0 });
        }
    }

    fn advance(&self, bytes: u64) {
        if let Ok(mut state) = self.state.lock()
            && let Some(phase) = state.as_mut()
        {
            phase.done += bytes;
            if let Some(bar) = &phase.bar {
                bar.inc(bytes);
            }
        }
    }

    fn finish(&self) {
        let Some(phase) = self.state.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        if let Some(bar) = phase.bar {
            bar.finish_and_clear();
        }
        let secs = phase.started.elapsed().as_secs_f64();
        eprintln!(
            "{}: {} in {secs:.1} s ({}/s)",
            phase.label,
            human_bytes(phase.done),
            human_bytes((phase.done as f64 / secs.max(0.001)) as u64)
        );
    }
}
