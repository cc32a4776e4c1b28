//! One trait that ties together what a kind of target provides, and the [`Registry`] of them.
//!
//! A backend declares its commands and options as data ([`TargetCommand`], [`OptionSpec`]);
//! the `lifeboat` CLI turns them into subcommands and flags, lifeboatd into job keys, and
//! both hand the values back as [`Options`]. Nothing outside a backend's crate names it.
//!
//! ```
//! use lifeboat_core::backend::{Options, OptionSpec};
//! let specs = [OptionSpec::value("connections", "N", "connections at once")];
//! let mut options = Options::default();
//! options.push("connections", "4");
//! assert_eq!(options.parse::<u16>("connections")?, Some(4));
//! assert!(options.unknown(&specs).is_none());
//! # Ok::<_, lifeboat_core::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;

use crate::drill::ScratchDrill;
use crate::replica::{
    PointTarget, ReachedPoint, ReplicaStatus, ReplicaStore, ReplicateRequest, Stop,
};
use crate::{
    Backup, Error, ExportReport, ExportRequest, Kind, Progress, RestoreContext, RestoreOptions,
    RestorePlan, Result, RowSelection, RowsReport, Snapshot,
};

/// What an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionValue {
    /// Nothing: present or not (`--changed-only`, `changed_only = true`).
    Flag,
    /// One value, named for help (`--connections N`).
    One(&'static str),
    /// Any number of values (`--exclude GLOB`, repeatable; a TOML array).
    Many(&'static str),
}

/// One option a backend's command, restore or drill takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionSpec {
    /// Its name in kebab-case: `--NAME` on the command line, `NAME` with `_` for `-` in a
    /// lifeboatd job.
    pub name: &'static str,
    /// What it takes.
    pub value: OptionValue,
    /// One line of help.
    pub help: &'static str,
    /// An environment variable that gives it on the command line when the flag is absent.
    pub env: Option<&'static str>,
    /// Whether a command must have it.
    pub required: bool,
}

impl OptionSpec {
    /// A flag.
    pub const fn flag(name: &'static str, help: &'static str) -> Self {
        OptionSpec { name, value: OptionValue::Flag, help, env: None, required: false }
    }

    /// An option with one value.
    pub const fn value(name: &'static str, meta: &'static str, help: &'static str) -> Self {
        OptionSpec { name, value: OptionValue::One(meta), help, env: None, required: false }
    }

    /// A repeatable option.
    pub const fn many(name: &'static str, meta: &'static str, help: &'static str) -> Self {
        OptionSpec { name, value: OptionValue::Many(meta), help, env: None, required: false }
    }

    /// The same option, also read from the environment variable `var`.
    pub const fn env(mut self, var: &'static str) -> Self {
        self.env = Some(var);
        self
    }

    /// The same option, required.
    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// `--changed-only`: store nothing new when the target's [`Backup::fingerprint`] is
    /// unchanged since its last snapshot. Backends whose captures have fingerprints offer it;
    /// the CLI and lifeboatd read it into the store's backup options.
    pub const CHANGED_ONLY: OptionSpec = OptionSpec::flag(
        "changed-only",
        "Store nothing new when nothing changed since the last snapshot (the hot backup).",
    );

    /// `archive-fetch`: the command that fetches a file of the repository's WAL archive
    /// (see [`RestoreOptions::archive_fetch`](crate::RestoreOptions)), for drills that
    /// recover from it. The CLI fills it; backends whose drills need it declare it.
    pub const ARCHIVE_FETCH: &'static str = "archive-fetch";

    /// `target-timeline`: the timeline a restore that recovers from the WAL archive
    /// follows. Backends whose restores recover from it declare it; the CLI fills it from the
    /// archive's history files (see `Repository::wal_needs`) when the user gave none.
    pub const TARGET_TIMELINE: &'static str = "target-timeline";

    /// `table`: restore one table (PostgreSQL), or, with `--where`, select rows only in the
    /// tables named.
    pub const TABLE: &'static str = "table";

    /// Its key in a lifeboatd job (`changed-only` → `changed_only`).
    pub fn config_key(&self) -> String {
        self.name.replace('-', "_")
    }
}

/// Option values, by option name, as the CLI or a lifeboatd job gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options(BTreeMap<String, Vec<String>>);

impl Options {
    /// Adds a value of `name` (a flag is the value `true`).
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.entry(name.to_string()).or_default().push(value.into());
    }

    /// The same options with one more value.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.push(name, value);
        self
    }

    /// Whether the flag `name` is set.
    pub fn flag(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| v.iter().any(|v| v == "true"))
    }

    /// The last value of `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.last()).map(String::as_str)
    }

    /// Every value of `name`.
    pub fn values(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// The value of `name` parsed as a `T`.
    ///
    /// # Errors
    /// A value that does not parse, naming the option.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>>
    where
        T::Err: fmt::Display,
    {
        self.value(name)
            .map(|v| {
                v.parse::<T>().map_err(|e| Error::InvalidInput {
                    what: format!("option {name}: {v:?} is not valid: {e}"),
                    hint: format!("give {name} a valid value"),
                })
            })
            .transpose()
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names of the options set.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The first option set that `specs` does not declare.
    pub fn unknown(&self, specs: &[OptionSpec]) -> Option<&str> {
        self.names().find(|name| !specs.iter().any(|s| s.name == *name))
    }
}

/// A `lifeboat backup` subcommand a backend offers.
#[derive(Debug, Clone)]
pub struct TargetCommand {
    /// The subcommand (`sqlite`, `containers`).
    pub name: &'static str,
    /// One line of help.
    pub about: &'static str,
    /// The positional target's name in help (`PATH`, `URL`), or `None` when the command
    /// takes none (it selects by option, as `containers --label` does).
    pub target: Option<&'static str>,
    /// Help for the positional target.
    pub target_help: &'static str,
    /// Its options.
    pub options: Vec<OptionSpec>,
}

/// What to back up: a target of one kind with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// The backend.
    pub kind: Kind,
    /// The path, URL or name (empty when options select the targets).
    pub target: String,
    /// The options given.
    pub options: Options,
}

impl TargetSpec {
    /// A target without options.
    pub fn new(kind: Kind, target: impl Into<String>) -> Self {
        TargetSpec { kind, target: target.into(), options: Options::default() }
    }

    /// The same target with one more option value.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.options.push(name, value);
        self
    }
}

/// One concrete target of a spec: a spec may select several (every container with a label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// What tells it apart from the other members (the container's name); `None` when the
    /// spec is one target.
    pub member: Option<String>,
    /// The name its snapshots get when none is given.
    pub default_name: String,
    /// The concrete target.
    pub spec: TargetSpec,
}

impl Member {
    /// The snapshot name of this member: `base` when the spec is one target, `base/MEMBER`
    /// when it selects several, and the default name when there is no base. The CLI and
    /// lifeboatd name snapshots by this one rule.
    pub fn snapshot_name(&self, base: Option<&str>) -> String {
        match (base, &self.member) {
            (Some(base), Some(member)) => format!("{base}/{member}"),
            (Some(base), None) => base.to_string(),
            (None, _) => self.default_name.clone(),
        }
    }
}

/// Everything a kind of target provides. Implement it in the backend's crate and register it
/// in a [`Registry`]; the CLI, lifeboatd and drills find it there by [`Kind`].
#[async_trait]
pub trait Backend: Send + Sync {
    /// The kind of snapshots it makes and restores.
    fn kind(&self) -> Kind;

    /// One line describing what it backs up.
    fn about(&self) -> &'static str;

    /// Its `lifeboat backup` subcommands; the first is named after the kind.
    fn commands(&self) -> Vec<TargetCommand>;

    /// Checks a target and its options without touching it (at config load, before a run).
    ///
    /// # Errors
    /// What is wrong, in terms of the spec.
    fn check(&self, spec: &TargetSpec) -> Result<()>;

    /// The concrete targets a spec selects, with their default snapshot names. Most specs
    /// are one target; a selector may match several or none.
    ///
    /// # Errors
    /// When the selection cannot be made (the engine is unreachable).
    async fn members(&self, spec: &TargetSpec) -> Result<Vec<Member>> {
        // By default a spec is one target, named as its capture names itself.
        let backup = self.backup(spec)?;
        Ok(vec![Member { member: None, default_name: backup.default_name(), spec: spec.clone() }])
    }

    /// The capture of one concrete target.
    ///
    /// # Errors
    /// A spec [`Backend::check`] would refuse.
    fn backup(&self, spec: &TargetSpec) -> Result<Box<dyn Backup>>;

    /// Options its restores take (`--table`, `--include`).
    fn restore_options(&self) -> Vec<OptionSpec> {
        Vec::new()
    }

    /// Whether `to` names one of its restore destinations by its scheme: by default
    /// `KIND:…` (`container:NAME`, `dir:PATH`, and so `postgres://…`). A bare path names the
    /// snapshot's own kind.
    fn claims(&self, to: &str) -> bool {
        strip_scheme(&self.kind(), to) != to
    }

    /// The plan that restores `snapshot` onto `to` (claimed by this backend, or a bare
    /// path), with a safety snapshot of what is there.
    ///
    /// # Errors
    /// A destination it cannot use, options it does not take, and its own checks.
    async fn plan_restore(
        &self,
        snapshot: &dyn Snapshot,
        to: &str,
        options: &RestoreOptions,
        selection: &Options,
    ) -> Result<Box<dyn RestorePlan>>;

    /// Restores the rows `selection` names from `snapshot` into the live database `to`,
    /// following foreign keys, after a safety snapshot of it; with `dry_run` only counts.
    /// Backends without tables keep the default, which refuses.
    ///
    /// # Errors
    /// [`Error::Unsupported`] by default; a backend's refusals (a predicate that names no
    /// column, a schema that differs) and its failures, with the target unchanged.
    async fn restore_rows(
        &self,
        ctx: &RestoreContext<'_>,
        to: &str,
        selection: &RowSelection,
        dry_run: bool,
    ) -> Result<RowsReport> {
        let _ = (to, selection, dry_run);
        let kind = ctx.snapshot.manifest().kind.clone();
        Err(Error::InvalidInput {
            what: format!("{kind} snapshots cannot restore selected rows (--where)"),
            hint: "restore the whole snapshot to a new target and take the rows from there".into(),
        })
    }

    /// Writes the rows of `snapshot` that `request` names as SQL, CSV or JSON lines.
    /// Backends without tables keep the default, which refuses.
    ///
    /// # Errors
    /// [`Error::Unsupported`] by default; a backend's refusals and failures.
    async fn export(
        &self,
        snapshot: &dyn Snapshot,
        request: &ExportRequest,
        progress: &dyn Progress,
    ) -> Result<ExportReport> {
        let _ = (request, progress);
        let kind = snapshot.manifest().kind.clone();
        Err(Error::InvalidInput {
            what: format!("{kind} snapshots cannot be exported as rows"),
            hint: "`lifeboat cat` writes any snapshot's stream as it was captured".into(),
        })
    }

    /// Options its drills take (a server to restore into).
    fn drill_options(&self) -> Vec<OptionSpec> {
        Vec::new()
    }

    /// Its scratch restore for drills and `verify --restore`.
    ///
    /// # Errors
    /// A missing option the drill needs ([`Error::MissingOption`]).
    fn drill(&self, options: &Options) -> Result<Box<dyn ScratchDrill>>;

    /// A snapshot's metadata as listings may show it: secrets replaced by `***`.
    fn printable_metadata(&self, metadata: &serde_json::Value) -> serde_json::Value {
        metadata.clone()
    }

    /// The entries (files, folders, links) of a snapshot, those under `prefix` only when
    /// given, for kinds whose snapshots hold files.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for kinds without entries; stream and format errors.
    async fn entries(&self, snapshot: &dyn Snapshot, prefix: Option<&str>) -> Result<Vec<Entry>> {
        let _ = prefix;
        Err(Error::Unsupported { operation: "ls".into(), kind: snapshot.manifest().kind.clone() })
    }

    /// Follows `request.target` and ships its commits into `store` until `stop` resolves
    /// (`lifeboat replicate KIND TARGET`), calling `report` after each round. Backends
    /// without replication keep the default, which refuses.
    ///
    /// # Errors
    /// [`Error::Unsupported`] by default; the backend's refusals and failures.
    async fn replicate(
        &self,
        request: &ReplicateRequest,
        store: &dyn ReplicaStore,
        stop: Stop,
        report: &(dyn for<'s> Fn(&'s ReplicaStatus) + Send + Sync),
    ) -> Result<ReplicaStatus> {
        let _ = (request, store, stop, report);
        Err(Error::Unsupported { operation: "replicate".into(), kind: self.kind() })
    }

    /// Runs the helper process its replication starts (`lifeboat __replica-helper KIND
    /// ARGS…`); `None` when it has none.
    fn replica_helper(&self, args: &[String]) -> Option<Result<()>> {
        let _ = args;
        None
    }

    /// The state of replica `name` at `target`, as a snapshot its restore plans take, and
    /// the commit reached.
    ///
    /// # Errors
    /// [`Error::Unsupported`] by default; a point outside the history, damaged segments.
    async fn replica_point(
        &self,
        store: &dyn ReplicaStore,
        name: &str,
        target: PointTarget,
    ) -> Result<(Box<dyn Snapshot>, ReachedPoint)> {
        let _ = (store, name, target);
        Err(Error::Unsupported { operation: "restore to a point".into(), kind: self.kind() })
    }

    /// `tracing` filter directives every program using it adds, for libraries whose debug
    /// logs print secrets (`bollard=warn`).
    fn quiet_logs(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// What interrupted work of this backend left behind outside the repository (parked
    /// containers, staging volumes); with `clean`, put right or removed, each saying what
    /// was done.
    ///
    /// # Errors
    /// When the leftovers cannot be listed (the engine is unreachable).
    async fn leftovers(&self, clean: bool) -> Result<Vec<Leftover>> {
        let _ = clean;
        Ok(Vec::new())
    }
}

/// One entry of a snapshot that holds files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// Path relative to what was captured.
    pub path: String,
    /// `file`, `dir`, `symlink`, `hardlink`, `fifo`, `char`, `block` or `other`.
    pub kind: String,
    /// Bytes of content.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Where a symlink points, or the first name of a hard-linked file.
    pub link: Option<String>,
}

/// Something interrupted work left behind outside the repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Leftover {
    /// What it is (`interrupted restore`, `parked container`, `image`).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The target it concerns, when it concerns one.
    pub target: Option<String>,
    /// What cleaning does (or did) about it.
    pub action: String,
    /// Whether cleaning did it.
    pub done: bool,
    /// Why cleaning could not do it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The backends a program knows, by kind.
#[derive(Clone, Default)]
pub struct Registry {
    backends: Vec<Arc<dyn Backend>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.kinds()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a backend, replacing one of the same kind.
    ///
    /// # Errors
    /// A backend whose kind name or command names break the rules, or whose commands clash
    /// with another backend's.
    pub fn register(&mut self, backend: impl Backend + 'static) -> Result<&mut Self> {
        let kind = backend.kind();
        let bad = |what: String| Error::InvalidInput {
            what,
            hint: "fix the backend's kind or command names".into(),
        };
        Kind::check(kind.as_str()).map_err(|e| bad(format!("backend {kind}: {e}")))?;
        self.backends.retain(|b| b.kind() != kind);
        for command in backend.commands() {
            Kind::check(command.name).map_err(|e| bad(format!("backend {kind} command: {e}")))?;
            if let Some(other) =
                self.backends.iter().find(|b| b.commands().iter().any(|c| c.name == command.name))
            {
                return Err(bad(format!(
                    "backend {kind}'s command {} is also backend {}'s",
                    command.name,
                    other.kind()
                )));
            }
        }
        self.backends.push(Arc::new(backend));
        Ok(self)
    }

    /// The same registry with `backend` added.
    ///
    /// # Errors
    /// As [`Registry::register`].
    pub fn with(mut self, backend: impl Backend + 'static) -> Result<Self> {
        self.register(backend)?;
        Ok(self)
    }

    /// Every backend, in the order registered.
    pub fn backends(&self) -> impl Iterator<Item = &dyn Backend> {
        self.backends.iter().map(|b| b.as_ref())
    }

    /// The kinds known.
    pub fn kinds(&self) -> Vec<Kind> {
        self.backends.iter().map(|b| b.kind()).collect()
    }

    /// The kinds known, as `a, b or c`, for messages.
    pub fn kinds_text(&self) -> String {
        let names: Vec<String> = self.kinds().iter().map(Kind::to_string).collect();
        match names.split_last() {
            None => "no kind (no backend is registered)".into(),
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        }
    }

    /// The backend of `kind`, if this program has it.
    pub fn find(&self, kind: &Kind) -> Option<&dyn Backend> {
        self.backends().find(|b| b.kind() == *kind)
    }

    /// The backend of `kind`.
    ///
    /// # Errors
    /// [`Error::UnknownKind`] naming what `operation` needed it for.
    pub fn get(&self, kind: &Kind, operation: &str) -> Result<&dyn Backend> {
        self.find(kind).ok_or_else(|| Error::UnknownKind {
            kind: kind.clone(),
            operation: operation.to_string(),
            known: self.kinds_text(),
        })
    }

    /// The backend and command for a `lifeboat backup` subcommand.
    pub fn command(&self, name: &str) -> Option<(&dyn Backend, TargetCommand)> {
        self.backends()
            .find_map(|b| b.commands().into_iter().find(|c| c.name == name).map(|c| (b, c)))
    }

    /// Checks `spec` with its backend.
    ///
    /// # Errors
    /// An unknown kind, or the backend's own complaint.
    pub fn check(&self, spec: &TargetSpec) -> Result<()> {
        self.backend_for(spec)?.check(spec)
    }

    /// The backend of `spec`, once every option in it is one of the backend's.
    fn backend_for(&self, spec: &TargetSpec) -> Result<&dyn Backend> {
        let backend = self.get(&spec.kind, "back up")?;
        let known = unique(backend.commands().into_iter().flat_map(|c| c.options));
        if let Some(option) = spec.options.unknown(&known) {
            return Err(Error::InvalidInput {
                what: format!("a {} target takes no option {option}", spec.kind),
                hint: format!(
                    "{} targets take {}",
                    spec.kind,
                    match known.is_empty() {
                        true => "no options".to_string(),
                        false => known.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
                    }
                ),
            });
        }
        Ok(backend)
    }

    /// The concrete targets `spec` selects.
    ///
    /// # Errors
    /// An unknown kind, or the backend's own error.
    pub async fn members(&self, spec: &TargetSpec) -> Result<Vec<Member>> {
        self.backend_for(spec)?.members(spec).await
    }

    /// The capture of one concrete target.
    ///
    /// # Errors
    /// An unknown kind, or the backend's own error.
    pub fn backup(&self, spec: &TargetSpec) -> Result<Box<dyn Backup>> {
        self.backend_for(spec)?.backup(spec)
    }

    /// The plan that restores `snapshot` onto `to`: the snapshot's backend plans it, after
    /// checking that `to` is not another kind's destination and that every option in
    /// `selection` is one its restores take.
    ///
    /// # Errors
    /// An unknown kind, a destination or option of another kind, and the backend's checks.
    pub async fn plan_restore(
        &self,
        snapshot: &dyn Snapshot,
        to: &str,
        options: &RestoreOptions,
        selection: &Options,
    ) -> Result<Box<dyn RestorePlan>> {
        let kind = snapshot.manifest().kind.clone();
        let backend = self.get(&kind, "restore")?;
        self.not_anothers_destination(snapshot, &kind, to)?;
        if let Some(option) = selection.unknown(&backend.restore_options()) {
            return Err(Error::Unsupported { operation: format!("restore --{option}"), kind });
        }
        backend.plan_restore(snapshot, to, options, selection).await
    }

    /// Restores the rows `selection` names from `ctx.snapshot` into `to` through the
    /// snapshot kind's backend ([`Backend::restore_rows`]).
    ///
    /// # Errors
    /// An unknown kind, a kind without tables, and the backend's refusals and failures.
    pub async fn restore_rows(
        &self,
        ctx: &RestoreContext<'_>,
        to: &str,
        selection: &RowSelection,
        dry_run: bool,
    ) -> Result<RowsReport> {
        let kind = ctx.snapshot.manifest().kind.clone();
        let backend = self.get(&kind, "restore --where")?;
        self.not_anothers_destination(ctx.snapshot, &kind, to)?;
        backend.restore_rows(ctx, to, selection, dry_run).await
    }

    /// Exports rows of `snapshot` through its kind's backend ([`Backend::export`]).
    ///
    /// # Errors
    /// An unknown kind, a kind without tables, and the backend's refusals and failures.
    pub async fn export(
        &self,
        snapshot: &dyn Snapshot,
        request: &ExportRequest,
        progress: &dyn Progress,
    ) -> Result<ExportReport> {
        let kind = snapshot.manifest().kind.clone();
        self.get(&kind, "export")?.export(snapshot, request, progress).await
    }

    /// Refuses `to` when another kind's backend claims it (`postgres://…` for a SQLite
    /// snapshot).
    fn not_anothers_destination(
        &self,
        snapshot: &dyn Snapshot,
        kind: &Kind,
        to: &str,
    ) -> Result<()> {
        match self.backends().find(|b| b.kind() != *kind && b.claims(to)) {
            Some(other) => Err(Error::InvalidInput {
                what: format!(
                    "snapshot {} is a {kind} snapshot; {to} is a {} destination",
                    snapshot.id().short(),
                    other.kind()
                ),
                hint: format!("restore it to a {kind} target"),
            }),
            None => Ok(()),
        }
    }

    /// The scratch restore for snapshots of `kind`.
    ///
    /// # Errors
    /// An unknown kind, or an option the drill needs and lacks.
    pub fn drill(&self, kind: &Kind, options: &Options) -> Result<Box<dyn ScratchDrill>> {
        self.get(kind, "drill")?.drill(options)
    }

    /// Every drill option of every backend, each once.
    pub fn drill_options(&self) -> Vec<OptionSpec> {
        unique(self.backends().flat_map(|b| b.drill_options()))
    }

    /// Every restore option of every backend, each once.
    pub fn restore_options(&self) -> Vec<OptionSpec> {
        unique(self.backends().flat_map(|b| b.restore_options()))
    }

    /// The entries of `snapshot` (under `prefix`).
    ///
    /// # Errors
    /// An unknown kind, a kind without entries, stream errors.
    pub async fn entries(
        &self,
        snapshot: &dyn Snapshot,
        prefix: Option<&str>,
    ) -> Result<Vec<Entry>> {
        self.get(&snapshot.manifest().kind, "list")?.entries(snapshot, prefix).await
    }

    /// Every backend's [`Backend::quiet_logs`].
    pub fn quiet_logs(&self) -> Vec<&'static str> {
        self.backends().flat_map(|b| b.quiet_logs()).collect()
    }

    /// A snapshot's metadata as listings may show it; for a kind without a backend, as
    /// stored.
    pub fn printable_metadata(&self, manifest: &crate::Manifest) -> serde_json::Value {
        match self.find(&manifest.kind) {
            Some(backend) => backend.printable_metadata(&manifest.metadata),
            None => manifest.metadata.clone(),
        }
    }
}

/// `to` without a leading `KIND:` (`dir:/srv` → `/srv`); unchanged without one.
///
/// ```
/// use lifeboat_core::{Kind, backend::strip_scheme};
/// assert_eq!(strip_scheme(&Kind::DIR, "dir:/srv"), "/srv");
/// assert_eq!(strip_scheme(&Kind::DIR, "/srv"), "/srv");
/// ```
pub fn strip_scheme<'a>(kind: &Kind, to: &'a str) -> &'a str {
    to.strip_prefix(kind.as_str()).and_then(|rest| rest.strip_prefix(':')).unwrap_or(to)
}

fn unique(specs: impl Iterator<Item = OptionSpec>) -> Vec<OptionSpec> {
    let mut out: Vec<OptionSpec> = Vec::new();
    for spec in specs {
        if !out.iter().any(|s| s.name == spec.name) {
            out.push(spec);
        }
    }
    out
}
