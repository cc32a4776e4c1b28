//! Printing errors, logs and snapshot rows.

use std::process::ExitCode;

use lifeboat_store::StoredSnapshot;
use serde::Serialize;

/// Sends logs to stderr; `LIFEBOAT_LOG` overrides the level (`info`, `debug`, ...).
pub fn init_logging(verbose: u8, quiet: &[&str], format: crate::logging::LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    crate::logging::init(default, quiet, format);
}

/// Prints an error as one line plus a hint, and returns the failure exit code.
pub fn fail(e: &anyhow::Error) -> ExitCode {
    // Every lifeboat error's message already carries its cause; `{e}` keeps it to one line.
    eprintln!("error: {e}");
    // Every failure ends with a hint: the error's own, else one for the I/O failure under
    // it, else where to look next.
    let hint = hint(e)
        .or_else(|| {
            e.chain()
                .find_map(|c| c.downcast_ref::<std::io::Error>())
                .and_then(lifeboat_core::io_hint)
        })
        .unwrap_or_else(|| {
            "run again with LIFEBOAT_LOG=debug to see the steps that led here".into()
        });
    eprintln!("hint: {hint}");
    ExitCode::FAILURE
}

fn hint(e: &anyhow::Error) -> Option<String> {
    use lifeboat_core::Error as Core;
    use lifeboat_store::StoreError;
    e.chain().find_map(|cause| {
        let store = cause.downcast_ref::<StoreError>();
        let core = match store {
            Some(StoreError::Core(core)) => Some(core),
            _ => cause.downcast_ref::<Core>(),
        };
        match (store, core) {
            (_, Some(core)) => command_line_hint(core),
            (Some(StoreError::NotInitialised { .. }), None) => {
                Some("create it with `lifeboat init`, or check --repo / LIFEBOAT_REPO".into())
            }
            (Some(store), None) => store.hint(),
            (None, None) => None,
        }
    })
}

/// A library error's hint in the command line's words: options become flags.
fn command_line_hint(e: &lifeboat_core::Error) -> Option<String> {
    use lifeboat_core::Error as Core;
    match e {
        Core::MissingOption { option, why, .. } => {
            Some(format!("pass {} ({why})", crate::backends::flag_text(crate::registry(), option)))
        }
        Core::TargetExists { .. } => Some(
            "pass --force to replace it (a pre-restore safety snapshot is taken first), or \
             restore to a new path"
                .into(),
        ),
        other => other.hint(),
    }
}

/// `n` followed by `noun`, plural when `n` is not 1 ("1 snapshot", "3 snapshots").
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// One snapshot as listed by `snapshots --json`.
#[derive(Debug, Serialize)]
pub struct SnapshotRow<'a> {
    id: String,
    short_id: String,
    kind: lifeboat_core::Kind,
    name: &'a str,
    host: &'a str,
    time: String,
    duration_ms: u64,
    size: u64,
    stored: u64,
    sha256: String,
    chunks: usize,
    tags: &'a lifeboat_core::Tags,
    parent: Option<String>,
    unchanged: bool,
    /// A safety snapshot taken before a restore: restorable by id, never a backup.
    safety: bool,
    metadata: serde_json::Value,
}

impl<'a> SnapshotRow<'a> {
    /// The row of `snap`.
    pub fn new(snap: &'a StoredSnapshot) -> Self {
        let m = snap.manifest();
        SnapshotRow {
            id: snap.id().to_hex(),
            short_id: snap.id().short(),
            kind: m.kind.clone(),
            name: &m.name,
            host: &m.host,
            time: m.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            duration_ms: m.duration_ms,
            size: m.size,
            stored: m.stored,
            sha256: m.sha256.to_hex(),
            chunks: m.chunks.len(),
            tags: &m.tags,
            parent: m.parent.map(|p| p.to_hex()),
            unchanged: m.unchanged,
            safety: m.is_safety(),
            metadata: crate::registry().printable_metadata(m),
        }
    }
}

/// Bytes in binary units, for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
