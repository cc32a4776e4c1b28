//! Restore drills: prove a snapshot restorable by restoring it into a scratch target of its
//! kind, running the backend's checks and the user's expectations, and measuring the
//! achieved RTO (restore time) and RPO (age of the snapshot). Pure orchestration and
//! reporting; backends plug in through [`ScratchDrill`], so a new backend needs no change here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Check, Kind, Result, Snapshot, format_duration};

/// Prefix of every scratch target a drill creates (files, folders, databases, containers),
/// followed by the drilling process's id, so leftovers of a dead drill can be recognised.
pub const SCRATCH_PREFIX: &str = "lifeboat-drill-";

/// What must hold beyond the manifest, for one name. Each backend checks the fields that
/// apply to its kind and reports the others as failed checks rather than ignoring them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Expectations {
    /// Tables that must exist (databases).
    pub tables: Vec<String>,
    /// Minimum row counts per table (databases).
    pub min_rows: BTreeMap<String, u64>,
    /// A query that must return at least one row (databases).
    pub query: Option<String>,
    /// Paths that must exist, relative to the restored folder (folders, containers).
    pub files: Vec<String>,
    /// Recovery time objective: the restore must take at most this long (e.g. "5m").
    #[serde(with = "crate::duration::optional_text", skip_serializing_if = "Option::is_none")]
    pub rto: Option<Duration>,
    /// Recovery point objective: the snapshot must be at most this old (e.g. "24h").
    #[serde(with = "crate::duration::optional_text", skip_serializing_if = "Option::is_none")]
    pub rpo: Option<Duration>,
}

impl Expectations {
    /// A failed check when database expectations (tables, row counts, a query) were given
    /// for snapshots of `kind`, which hold no database; `None` when there are none.
    pub fn database_checks_for(&self, kind: Kind) -> Option<Check> {
        let asked = !self.tables.is_empty() || !self.min_rows.is_empty() || self.query.is_some();
        asked.then(|| {
            Check::fail(
                "database expectations",
                format!("tables, rows and queries do not apply to {kind} snapshots"),
            )
        })
    }
}

/// What a backend's scratch restore found.
#[derive(Debug, Clone, Default)]
pub struct ScratchOutcome {
    /// Every check, pass or fail.
    pub checks: Vec<Check>,
    /// Bytes restored.
    pub bytes: u64,
}

/// A backend's part in a drill.
#[async_trait]
pub trait ScratchDrill: Send + Sync {
    /// The kind of snapshots it drills.
    fn kind(&self) -> Kind;

    /// Restores `snapshot` into a new scratch target named with [`SCRATCH_PREFIX`], runs the
    /// backend's own checks and `expect`, and removes the scratch target again (also on
    /// failure). A failed restore is a failed check, not an error.
    ///
    /// # Errors
    /// Only when the drill cannot run at all (no scratch space).
    async fn restore_and_check(
        &self,
        snapshot: &dyn Snapshot,
        expect: &Expectations,
    ) -> Result<ScratchOutcome>;

    /// Removes scratch targets left by drills whose process is gone; returns how many.
    fn clean_leftovers(&self) -> usize;

    /// Why `snapshot` cannot be drilled at all, when it cannot: a raw, unverified copy of a
    /// damaged target holds no restorable capture. Such a drill is skipped with the reason,
    /// neither passed nor failed.
    fn not_drillable(&self, snapshot: &dyn Snapshot) -> Option<String> {
        let _ = snapshot;
        None
    }
}

/// The result of drilling one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct DrillResult {
    /// The snapshot name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// The snapshot drilled.
    pub snapshot: String,
    /// When the snapshot was taken.
    pub snapshot_time: DateTime<Utc>,
    /// When the drill started and ended.
    pub started: DateTime<Utc>,
    /// When it ended.
    pub finished: DateTime<Utc>,
    /// Restore and check time: the achieved RTO, in seconds.
    pub rto_seconds: f64,
    /// Age of the snapshot when the drill started: the achieved RPO, in seconds.
    pub rpo_seconds: f64,
    /// The RTO objective, if one was set.
    pub rto_objective: Option<String>,
    /// The RPO objective, if one was set.
    pub rpo_objective: Option<String>,
    /// Bytes restored.
    pub bytes: u64,
    /// Every check, including the objectives.
    pub checks: Vec<Check>,
    /// Whether every check held.
    pub passed: bool,
    /// Why the snapshot was not drilled, when it could not be ([`ScratchDrill::not_drillable`]):
    /// then `passed` is false but nothing failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl DrillResult {
    /// Whether the drill ran and a check failed (a skipped drill did not fail).
    pub fn failed(&self) -> bool {
        !self.passed && self.skipped.is_none()
    }

    /// `PASS`, `FAIL` or `SKIP`.
    pub fn verdict(&self) -> &'static str {
        match (self.passed, &self.skipped) {
            (true, _) => "PASS",
            (false, Some(_)) => "SKIP",
            (false, None) => "FAIL",
        }
    }
}

/// Drills one snapshot with `backend`.
///
/// # Errors
/// When the backend cannot run the drill at all.
pub async fn drill(
    backend: &dyn ScratchDrill,
    snapshot: &dyn Snapshot,
    expect: &Expectations,
) -> Result<DrillResult> {
    let started = Utc::now();
    let manifest = snapshot.manifest();
    let rpo = started.signed_duration_since(manifest.time).to_std().unwrap_or_default();
    if let Some(reason) = backend.not_drillable(snapshot) {
        return Ok(DrillResult {
            name: manifest.name.clone(),
            kind: manifest.kind.clone(),
            snapshot: snapshot.id().to_hex(),
            snapshot_time: manifest.time,
            started,
            finished: started,
            rto_seconds: 0.0,
            rpo_seconds: rpo.as_secs_f64(),
            rto_objective: expect.rto.map(format_duration),
            rpo_objective: expect.rpo.map(format_duration),
            bytes: 0,
            checks: Vec::new(),
            passed: false,
            skipped: Some(format!("not drillable: {reason}")),
        });
    }
    let clock = Instant::now();
    let outcome = backend.restore_and_check(snapshot, expect).await?;
    let rto = clock.elapsed();
    let mut checks = outcome.checks;
    if let Some(objective) = expect.rto {
        checks.push(Check::new(
            "RTO",
            rto <= objective,
            format!(
                "restored and checked in {} (objective {})",
                human(rto),
                format_duration(objective)
            ),
        ));
    }
    if let Some(objective) = expect.rpo {
        checks.push(Check::new(
            "RPO",
            rpo <= objective,
            format!("snapshot was {} old (objective {})", human(rpo), format_duration(objective)),
        ));
    }
    let passed = checks.iter().all(|c| c.ok);
    Ok(DrillResult {
        name: manifest.name.clone(),
        kind: manifest.kind.clone(),
        snapshot: snapshot.id().to_hex(),
        snapshot_time: manifest.time,
        started,
        finished: Utc::now(),
        rto_seconds: rto.as_secs_f64(),
        rpo_seconds: rpo.as_secs_f64(),
        rto_objective: expect.rto.map(format_duration),
        rpo_objective: expect.rpo.map(format_duration),
        bytes: outcome.bytes,
        checks,
        passed,
        skipped: None,
    })
}

fn human(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format_duration(Duration::from_secs(d.as_secs()))
    }
}

/// The drill report as markdown: what the runbooks' drill templates ask for.
pub fn markdown_report(results: &[DrillResult], host: &str) -> String {
    let mut out = String::new();
    let passed = results.iter().filter(|r| r.passed).count();
    let failed = results.iter().filter(|r| r.failed()).count();
    let skipped = results.len() - passed - failed;
    out.push_str(&format!("# Restore drill report\n\n- Date (UTC): {}\n- Host: {host}\n- Targets: {}, passed: {passed}, failed: {failed}, skipped: {skipped}\n\n", Utc::now().format("%Y-%m-%d %H:%M:%S"), results.len()));
    out.push_str("| Target | Kind | Snapshot | Result | RTO achieved | RTO objective | RPO achieved | RPO objective | Bytes restored |\n|---|---|---|---|---:|---|---:|---|---:|\n");
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.kind,
            &r.snapshot[..12.min(r.snapshot.len())],
            r.verdict(),
            human(Duration::from_secs_f64(r.rto_seconds)),
            r.rto_objective.as_deref().unwrap_or("-"),
            human(Duration::from_secs_f64(r.rpo_seconds)),
            r.rpo_objective.as_deref().unwrap_or("-"),
            r.bytes
        ));
    }
    for r in results {
        out.push_str(&format!(
            "\n## {} ({})\n\n- Snapshot: {} taken {}\n- Start: {}\n- End: {}\n- Duration: {}\n\n| Check | Result | Detail |\n|---|---|---|\n",
            r.name,
            r.verdict(),
            r.snapshot,
            r.snapshot_time.to_rfc3339(),
            r.started.to_rfc3339(),
            r.finished.to_rfc3339(),
            human(Duration::from_secs_f64(r.rto_seconds)),
        ));
        if let Some(reason) = &r.skipped {
            out.push_str(&format!("| drill | skipped | {} |\n", reason.replace('|', "\\|")));
        }
        for c in &r.checks {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                c.name,
                if c.ok { "ok" } else { "FAILED" },
                c.detail.replace('|', "\\|").replace('\n', " ")
            ));
        }
        let issues: Vec<&Check> = r.checks.iter().filter(|c| !c.ok).collect();
        out.push_str("\nIssues found: ");
        if issues.is_empty() {
            out.push_str("none\n");
        } else {
            out.push_str(&issues.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "));
            out.push('\n');
        }
    }
    out
}

/// Whether process `pid` runs on this host (one rule for drills and leases).
pub use crate::host::process_alive;

/// The pid in a scratch name `lifeboat-drill-<pid>-...`, if it is one.
pub fn scratch_owner(name: &str) -> Option<u32> {
    name.strip_prefix(SCRATCH_PREFIX)?.split('-').next()?.parse().ok()
}

/// Removes `lifeboat-drill-<pid>-*` entries in `dir` whose process is gone; returns how many.
pub fn clean_scratch_dirs(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = scratch_owner(&name)
            && !process_alive(pid)
        {
            let path = entry.path();
            let gone = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if gone.is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// A new scratch folder in the system temp folder, named for this process.
///
/// # Errors
/// When the temp folder cannot be written.
pub fn scratch_dir() -> Result<scratch::ScratchDir> {
    scratch::ScratchDir::new()
}

/// A scratch folder removed on drop (no `tempfile` dependency in core).
pub mod scratch {
    use std::path::{Path, PathBuf};

    use crate::{Error, Result};

    /// A folder `lifeboat-drill-<pid>-<random>` in the temp folder, removed on drop.
    #[derive(Debug)]
    pub struct ScratchDir(PathBuf);

    impl ScratchDir {
        pub(crate) fn new() -> Result<Self> {
            let name =
                format!("{}{}-{:016x}", super::SCRATCH_PREFIX, std::process::id(), rand_u64());
            let path = std::env::temp_dir().join(name);
            std::fs::create_dir(&path)
                .map_err(|e| Error::io("creating the scratch folder", &path, e))?;
            Ok(ScratchDir(path))
        }

        /// Its path.
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for ScratchDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn rand_u64() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.finish()
    }
}

/// Any drill backend as a [`crate::Verifier`]: restore into a scratch target and run the
/// backend's own checks, with no expectations beyond the manifest.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScratchVerifier<D>(pub D);

#[async_trait]
impl<D: ScratchDrill> crate::Verifier for ScratchVerifier<D> {
    async fn verify(&self, snapshot: &dyn Snapshot) -> Result<crate::VerifyReport> {
        let outcome = self.0.restore_and_check(snapshot, &Expectations::default()).await?;
        let mut report = crate::VerifyReport::new(format!(
            "snapshot {} restored to a scratch target",
            snapshot.id().short()
        ));
        report.checks = outcome.checks;
        Ok(report)
    }
}
