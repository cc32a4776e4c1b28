//! Progress display: a bar on a terminal, plain lines otherwise (one when a phase starts, one
//! every 10 s with bytes, rate and time left, one when it ends); nothing with `--quiet`.
//! Writing to a closed stderr is not an error.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use lifeboat_core::Progress;

use crate::output::human_bytes;

/// Whether `--quiet` was given: no progress at all.
static QUIET: AtomicBool = AtomicBool::new(false);

/// How often a plain progress line is written when stderr is not a terminal:
/// `LIFEBOAT_PROGRESS_INTERVAL` (a duration) or 10 s.
pub(crate) fn every() -> Duration {
    std::env::var("LIFEBOAT_PROGRESS_INTERVAL")
        .ok()
        .and_then(|v| lifeboat_core::parse_duration(&v).ok())
        .unwrap_or(Duration::from_secs(10))
}

/// Turns progress output off (`--quiet`) or on.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `--quiet` was given.
pub(crate) fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// One line on stderr; nothing when stderr is closed or gone.
pub(crate) fn line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Shows progress on stderr.
pub struct CliProgress {
    state: Mutex<Option<Phase>>,
    terminal: bool,
    quiet: bool,
}

struct Phase {
    label: String,
    /// How often a plain line is written.
    every: Duration,
    bar: Option<ProgressBar>,
    started: Instant,
    total: Option<u64>,
    done: u64,
    /// When the last plain line was written.
    said: Instant,
}

impl CliProgress {
    /// Progress on stderr, as a bar when stderr is a terminal; none with `--quiet`.
    pub fn new() -> Self {
        CliProgress {
            state: Mutex::new(None),
            terminal: std::io::stderr().is_terminal(),
            quiet: QUIET.load(Ordering::Relaxed),
        }
    }
}

/// `label: 1.2 GiB of 3.0 GiB (40%), 80 MiB/s, 24 s left` (without a total: bytes and rate).
fn status(phase: &Phase) -> String {
    let secs = phase.started.elapsed().as_secs_f64().max(0.001);
    let rate = phase.done as f64 / secs;
    let mut text = format!("{}: {}", phase.label, human_bytes(phase.done));
    if let Some(total) = phase.total.filter(|t| *t > 0) {
        let percent = (phase.done as f64 * 100.0 / total as f64).min(100.0);
        text.push_str(&format!(" of {} ({percent:.0}%)", human_bytes(total)));
    }
    text.push_str(&format!(", {}/s", human_bytes(rate as u64)));
    if let Some(total) = phase.total
        && rate > 0.0
        && total > phase.done
    {
        text.push_str(&format!(", {:.0} s left", (total - phase.done) as f64 / rate));
    }
    text
}

impl Progress for CliProgress {
    fn start(&self, label: &str, total: Option<u64>) {
        if self.quiet {
            return;
        }
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
            line(&format!(
                "{label}: started{}",
                total.map(|t| format!(" ({})", human_bytes(t))).unwrap_or_default()
            ));
        }
        if let Ok(mut state) = self.state.lock() {
            let now = Instant::now();
            *state = Some(Phase {
                label: label.to_string(),
                every: every(),
                bar,
                started: now,
                total,
                done: 0,
                said: now,
            });
        }
    }

    fn advance(&self, bytes: u64) {
        if let Ok(mut state) = self.state.lock()
            && let Some(phase) = state.as_mut()
        {
            phase.done += bytes;
            match &phase.bar {
                Some(bar) => bar.inc(bytes),
                None if phase.said.elapsed() >= phase.every => {
                    phase.said = Instant::now();
                    line(&status(phase));
                }
                None => {}
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
        line(&format!(
            "{}: {} in {secs:.1} s ({}/s)",
            phase.label,
            human_bytes(phase.done),
            human_bytes((phase.done as f64 / secs.max(0.001)) as u64)
        ));
    }
}
