//! Logging for both binaries: to stderr, `LIFEBOAT_LOG` overriding the level, and the
//! Docker client's debug logs (which print containers' env values) off at any level.
//!
//! Logging must never stop the program. lifeboatd runs for months with its stderr on a pipe
//! (journald, `| logger`, `| head`); when the reader goes away every write fails with EPIPE.
//! tracing-subscriber then reports the failure with `eprintln!`, which panics on the same
//! broken stderr, inside whatever task was logging: a backup that never clears its slot, a
//! shutdown that never happens. So the subscriber's own error reports are off and the writer
//! drops what it cannot write.
//!
//! `--log-format json` (or `LIFEBOAT_LOG_FORMAT=json`) writes one JSON object per line, for
//! log shippers: `timestamp`, `level`, `target`, `message` and the event's fields at the top
//! level. JSON is never coloured.

use std::io::{IsTerminal, Write};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people; coloured only on a terminal without `NO_COLOR`.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Starts logging at `default` (`warn`, `info`, `debug`, ...) unless `LIFEBOAT_LOG` says
/// otherwise, with `quiet` (the backends' [`lifeboat_core::Registry::quiet_logs`]) added at
/// any level, in `format`. Colours only on a terminal, and never with `NO_COLOR` set. Both
/// binaries start their logging here.
pub fn init(default: &str, quiet: &[&str], format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let filter = quiet.iter().fold(filter, |filter, quiet| match quiet.parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .log_internal_errors(false);
    // Already set (a second call in one process): the first one stays.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR")))
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_ansi(false).try_init(),
    };
}

/// Whether to colour: only on a terminal, and not when `NO_COLOR` is set to anything
/// (<https://no-color.org>: set and not empty).
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Stderr that never fails: a line that cannot be written is dropped.
struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Ignored: a lost log line must not become an error or a panic in the caller.
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
