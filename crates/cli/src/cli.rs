//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Back up, verify and restore databases into one deduplicated, checksummed repository.
#[derive(Debug, Parser)]
#[command(name = "lifeboat", version = crate::VERSION, about)]
pub struct Cli {
    /// Repository URL: a path, file:///path, s3://bucket/prefix (AWS_* variables) or memory://.
    #[arg(long, global = true, env = "LIFEBOAT_REPO", default_value = lifeboat_store::DEFAULT_REPOSITORY)]
    pub repo: String,

    /// Read the repository password from this file (one trailing line end is dropped).
    /// Without it, `LIFEBOAT_PASSWORD` holds the password itself.
    #[arg(long, global = true, env = "LIFEBOAT_PASSWORD_FILE", value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Run this shell command and use what it prints as the repository password.
    #[arg(long, global = true, env = "LIFEBOAT_PASSWORD_COMMAND", value_name = "COMMAND")]
    pub password_command: Option<String>,

    /// Open the repository with this key file (made by `key add --out`) instead of a
    /// password; a write-only key file only backs up.
    #[arg(long, global = true, env = "LIFEBOAT_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// No progress output: only results and errors.
    #[arg(short, long, global = true, env = "LIFEBOAT_QUIET")]
    pub quiet: bool,

    /// How log lines are written to stderr: text (coloured only on a terminal without
    /// NO_COLOR) or json, one object per line.
    #[arg(long, global = true, env = "LIFEBOAT_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: crate::logging::LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new, empty repository.
    ///
    /// It is encrypted: the password comes from --password-file (LIFEBOAT_PASSWORD_FILE),
    /// --password-command or LIFEBOAT_PASSWORD, else it is asked for on the terminal.
    Init {
        /// Make a plaintext repository instead (no password; anyone who can read the store
        /// can read the backups).
        #[arg(long)]
        no_encryption: bool,
        /// Encrypted is the default; kept so that older scripts still work.
        #[arg(long, hide = true, conflicts_with = "no_encryption")]
        encrypt: bool,
        /// The hash that names chunks, fixed for the repository's life: blake3 (format 2,
        /// the faster), or sha256 (format 1, which lifeboat builds before format 2 can
        /// also open).
        #[arg(long, value_name = "HASH", default_value = "blake3")]
        chunk_ids: lifeboat_store::format::ChunkIdScheme,
    },
    /// The passwords of an encrypted repository.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Take a snapshot of a target (one subcommand per kind of target).
    Backup(BackupCommand),
    /// List snapshots.
    Snapshots {
        /// Only snapshots with this name.
        #[arg(long)]
        name: Option<String>,
        /// Only snapshots taken on this host.
        #[arg(long)]
        host: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore a snapshot onto a target.
    Restore(RestoreArgs),
    /// Write a database snapshot's rows as SQL, CSV or JSON lines: all, or what --where
    /// selects (with the rows it needs along foreign keys).
    Export {
        /// Snapshot id, unique id prefix, or `latest` (with --name).
        snapshot: String,
        /// With `latest`: the snapshot name.
        #[arg(long)]
        name: Option<String>,
        /// Only the rows this SQL condition selects (`tenant_id = 'X'`).
        #[arg(long = "where", value_name = "CONDITION")]
        predicate: Option<String>,
        /// Only this table (repeatable); with --where, select only in it.
        #[arg(long = "table", value_name = "TABLE")]
        tables: Vec<String>,
        /// sql: a dump `sqlite3 NEW.db < FILE` loads; csv, jsonl: one file per table.
        #[arg(long, value_parser = ["sql", "csv", "jsonl"], default_value = "sql")]
        format: String,
        /// A folder for the files (created when missing), or - for standard output.
        #[arg(long, value_name = "DIR", default_value = "-")]
        out: String,
        /// Print what was written as JSON (needs --out DIR).
        #[arg(long)]
        json: bool,
        /// PostgreSQL with --where: the server the rows are selected on (a scratch database
        /// is made there and dropped), e.g. postgres://user:pw@staging-db:5432/postgres.
        #[arg(long = "postgres-server", value_name = "URL", env = "LIFEBOAT_DRILL_POSTGRES")]
        postgres_server: Option<String>,
    },
    /// The settings in force (repository, password source, S3, log format) and where each
    /// comes from: a flag, the environment, the configuration file or the default.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// bash: `lifeboat completions bash > /etc/bash_completion.d/lifeboat`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
        /// The binary to complete: lifeboat, or lifeboatd.
        #[arg(long = "for", value_name = "BINARY", default_value = "lifeboat", value_parser = ["lifeboat", "lifeboatd"])]
        binary: String,
    },
    /// Write the man pages of lifeboat (one per command) and lifeboatd into a folder.
    Man {
        /// The folder (created when missing), e.g. /usr/local/share/man/man1.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Check snapshots: structure, or every byte with --read-data.
    Verify {
        /// Snapshot id, unique prefix or `latest`; all snapshots when omitted.
        snapshot: Option<String>,
        /// Verify every snapshot.
        #[arg(long, conflicts_with = "snapshot")]
        all: bool,
        /// Read every byte back, decompress it and check it against its hash.
        #[arg(long)]
        read_data: bool,
        /// Also restore into a scratch target and run the backend's own checks (with the
        /// drill options below).
        #[arg(long)]
        restore: bool,
        /// With `latest`: the snapshot name.
        #[arg(long)]
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove snapshots a retention policy does not keep (data goes with a later prune).
    Forget {
        /// Only snapshots with this name (default: every name, each judged on its own).
        #[arg(long)]
        name: Option<String>,
        /// Keep the N newest.
        #[arg(long, value_name = "N", default_value_t = 0)]
        keep_last: u32,
        /// Keep the newest of each of the N newest hours.
        #[arg(long, value_name = "N", default_value_t = 0)]
        keep_hourly: u32,
        /// Keep the newest of each of the N newest days (UTC).
        #[arg(long, value_name = "N", default_value_t = 0)]
        keep_daily: u32,
        /// Keep the newest of each of the N newest ISO weeks.
        #[arg(long, value_name = "N", default_value_t = 0)]
        keep_weekly: u32,
        /// Keep the newest of each of the N newest months.
        #[arg(long, value_name = "N", default_value_t = 0)]
        keep_monthly: u32,
        /// Keep the newest of each of the N newest years.
        #[arg(long, value_name = "N", default_value_t = 0)]
        keep_yearly: u32,
        /// Keep everything taken within this long (e.g. 30d, 12h, 2w).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        keep_within: Option<std::time::Duration>,
        /// Keep everything with this tag (KEY or KEY=VALUE; repeatable).
        #[arg(long = "keep-tag", value_name = "TAG")]
        keep_tags: Vec<String>,
        /// Policies by name and by tag from a TOML file (`[default]`, `[names.NAME]`,
        /// `[tags."tier=free"]`); --keep-* options replace its default.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Days to keep pre-restore safety snapshots.
        #[arg(long, value_name = "DAYS", default_value_t = lifeboat_core::retention::DEFAULT_PRE_RESTORE_DAYS)]
        keep_pre_restore_days: u32,
        /// Show what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Prune afterwards (with the default grace period of 1h).
        #[arg(long)]
        prune: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete packs no snapshot references and repack mostly-garbage packs (two-phase, safe
    /// while backups run).
    Prune {
        /// How long marked packs wait after leaving the index before they are deleted.
        #[arg(long, value_parser = parse_duration, default_value = "1h")]
        grace: std::time::Duration,
        /// Repack packs whose referenced bytes are below this fraction.
        #[arg(long, default_value_t = 0.5)]
        repack_below: f64,
        /// Report what would happen, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove the maintenance lease whoever holds it, and expired backup leases.
    Unlock,
    /// Rebuild what can be derived from the packs.
    #[command(subcommand)]
    Repair(RepairTarget),
    /// List what interrupted container restores and drills left on the Docker engine;
    /// `--force` puts the originals back (or finishes the restore) and removes the rest
    /// (never another host's drill leftovers).
    Cleanup {
        /// Clean instead of listing.
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The kinds of targets this build backs up, with their commands and options.
    Kinds {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Per name: count, oldest, newest, sizes, deduplication.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Follow a database and ship every commit into the repository, until stopped (Ctrl-C,
    /// SIGTERM): an RPO of seconds. `lifeboat restore latest --name NAME --at TIME` restores
    /// any shipped moment. SQLite databases must be in WAL mode.
    Replicate {
        /// The kind of target: sqlite.
        kind: String,
        /// The target: the database file's path.
        target: String,
        /// The replica's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// The longest a commit waits before it is shipped; commits seen meanwhile are
        /// shipped together, and an idle database ships nothing.
        #[arg(long, value_parser = parse_duration, default_value = "1s")]
        interval: std::time::Duration,
        /// How often a new base snapshot is taken (restores apply at most this much history).
        #[arg(long, value_parser = parse_duration, default_value = "24h")]
        snapshot_every: std::time::Duration,
        /// How often the database's log is looked at (commit times are this precise).
        #[arg(long, value_parser = parse_duration, default_value = "10ms", hide = true)]
        poll: std::time::Duration,
        /// How long every commit stays a restore point of its own; after that, segments are
        /// merged per minute (restore points every minute).
        #[arg(long, value_parser = parse_duration, default_value = "1h")]
        keep_commits: std::time::Duration,
        /// How long every minute stays a restore point; after that, per hour.
        #[arg(long, value_parser = parse_duration, default_value = "24h")]
        keep_minutes: std::time::Duration,
        /// The spans of the two merge levels, "MINUTE,HOUR" (for tests and benchmarks).
        #[arg(long, value_parser = parse_spans, default_value = "1m,1h", hide = true)]
        spans: [std::time::Duration; 2],
        /// Print the final status as JSON when stopped.
        #[arg(long)]
        json: bool,
    },
    /// Names whose newest backup is older than a limit; exit code 1 when any is stale, 2 when
    /// freshness could not be checked.
    Stale {
        /// The limit (e.g. 24h, 26h, 7d).
        #[arg(long, value_parser = parse_duration)]
        max_age: std::time::Duration,
        /// A name that must have snapshots (repeatable); stale when it has none.
        #[arg(long = "expect", value_name = "NAME")]
        expected: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prove snapshots restorable: restore each into a scratch target, run its checks and
    /// expectations, measure RTO and RPO, report; exit code 1 when any drill fails.
    Drill {
        /// Drill the latest snapshot of this name (repeatable).
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
        /// Drill the latest snapshot of every name.
        #[arg(long)]
        all: bool,
        /// Drill this snapshot instead of a latest one.
        #[arg(long)]
        snapshot: Option<String>,
        /// For a replica (`lifeboat replicate`): the database at a random second of this last
        /// stretch is restored and checked, instead of its newest base snapshot.
        #[arg(long, value_parser = parse_duration, default_value = "1h")]
        within: std::time::Duration,
        /// Expectations and RTO/RPO objectives per name, in TOML (`[auth] tables = [...]`).
        #[arg(long, value_name = "FILE")]
        expect: Option<PathBuf>,
        /// Write the markdown report here.
        #[arg(long, value_name = "FILE.md")]
        report: Option<PathBuf>,
        /// Record each name's last successful drill here (JSON), for monitors; nothing is
        /// written without it.
        #[arg(long, value_name = "FILE")]
        heartbeat: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the files of a folder snapshot.
    Ls {
        /// Snapshot id, unique prefix or `latest`.
        snapshot: String,
        /// Only entries under this path.
        path: Option<String>,
        /// With `latest`: the snapshot name.
        #[arg(long)]
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Archive one WAL file (PostgreSQL's `archive_command`): stored, then visible. The same
    /// file again succeeds; other bytes under an archived name are refused.
    WalPush {
        /// The file (`%p`); it is archived under its file name.
        path: PathBuf,
        /// The cluster's name: the WAL series, as its base backups are named.
        #[arg(long)]
        name: String,
    },
    /// Fetch one archived WAL file (PostgreSQL's `restore_command`); exit code 1, quietly,
    /// when it is not archived (recovery ends there), 255 when it cannot be read (recovery
    /// stops instead of ending early).
    WalFetch {
        /// The file's name (`%f`).
        file: String,
        /// Where to write it (`%p`).
        dest: PathBuf,
        /// The cluster's name: the WAL series.
        #[arg(long)]
        name: String,
        /// Segments to fetch at once, the one asked for and those after it; the others wait
        /// in `lifeboat-prefetch/` beside DEST for the next calls.
        #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
        prefetch: u16,
        /// Run as the background prefetcher that the calls start (internal).
        #[arg(long = "prefetch-worker", hide = true)]
        prefetch_worker: bool,
    },
    /// Write a snapshot's captured stream to stdout, or to a file; only once verified.
    Cat {
        /// Snapshot id, unique prefix or `latest`.
        snapshot: String,
        /// With `latest`: the snapshot name.
        #[arg(long)]
        name: Option<String>,
        /// Write to this file (via a temporary file renamed once verified) instead of stdout.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

/// What `key` does.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the repository's keys (`*` marks the one this command was opened with).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a password (from --new-password-file or LIFEBOAT_NEW_PASSWORD), or with --out a
    /// key file.
    Add {
        /// Read the new password from this file.
        #[arg(long, value_name = "FILE", conflicts_with = "out")]
        new_password_file: Option<PathBuf>,
        /// Make a key file instead of a password, written to FILE (mode 0600; an existing
        /// file is never replaced). Used with --key-file or LIFEBOAT_KEY_FILE.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The key file only backs up: it cannot read, list, restore, forget or prune
        /// anything, its own backups included. For hosts that must not be able to destroy
        /// or read the repository.
        #[arg(long, requires = "out")]
        write_only: bool,
    },
    /// Remove a key by its id (or a unique prefix); the last full key is never removed.
    Remove {
        /// The key's id, as `key list` shows it.
        id: String,
    },
    /// Change the password that opened the repository: add the new key, then remove this one.
    Passwd {
        /// Read the new password from this file.
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
}

/// What `repair` rebuilds.
#[derive(Debug, Subcommand)]
pub enum RepairTarget {
    /// Index packs that no sound index file describes (each checked against its hash), then
    /// remove damaged index files.
    Index {
        /// Report what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `restore` takes.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Snapshot id, unique id prefix, or `latest` (with --name).
    pub snapshot: String,
    /// Where to restore: a path, `KIND:…` (`dir:PATH`, `container:NAME`) or a URL
    /// (`postgres://…/DB`); each kind's options follow.
    #[arg(long)]
    pub to: String,
    /// With `latest`: the snapshot name.
    #[arg(long)]
    pub name: Option<String>,
    /// Replace an existing target (a pre-restore safety snapshot is taken first).
    #[arg(long)]
    pub force: bool,
    /// Create the target when it must be created explicitly (a PostgreSQL database).
    #[arg(long)]
    pub create: bool,
    /// Restore only the rows this SQL condition selects (`tenant_id = 'X'`), following
    /// foreign keys, merged into the live database; --dry-run prints the counts per table.
    /// With --table, select only in those tables (rows they need still come along).
    #[arg(long = "where", value_name = "CONDITION")]
    pub predicate: Option<String>,
    /// With --where: insert adds missing rows only; upsert also sets existing ones back;
    /// replace makes the selection exactly as in the snapshot (upsert and replace need --force).
    #[arg(long, value_parser = ["insert", "upsert", "replace"], requires = "predicate")]
    pub mode: Option<String>,
    /// From a replica (`lifeboat replicate`): the newest commit seen at or before this
    /// time, in RFC 3339 (`2026-12-03T12:00:00.250Z`). Without --at or --txid, `latest` of
    /// a replica's name is its newest shipped commit.
    #[arg(long, value_name = "TIME", conflicts_with_all = ["txid", "predicate"])]
    pub at: Option<String>,
    /// From a replica: the commit with this transaction id.
    #[arg(long, value_name = "N", conflicts_with = "predicate")]
    pub txid: Option<u64>,
    /// Print the plan's steps (with --where: the counts) and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `backup`: its subcommands come from the backends (see `backends.rs`).
#[derive(Debug, clap::Args)]
pub struct BackupCommand {}

/// What every `backup` takes.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Snapshot name (default: the database name, file stem or folder name).
    #[arg(long)]
    pub name: Option<String>,
    /// A label, KEY=VALUE (repeatable).
    #[arg(long = "tag", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Print the new snapshot as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ if !s.is_empty() && !s.contains('=') => Ok((s.to_string(), String::new())),
        _ => Err(format!("tag {s:?} must be KEY=VALUE")),
    }
}

fn parse_spans(text: &str) -> Result<[std::time::Duration; 2], String> {
    let (minute, hour) = text.split_once(',').ok_or("give two durations, such as 1m,1h")?;
    let spans = [parse_duration(minute)?, parse_duration(hour)?];
    if spans[0].is_zero() || spans[1] < spans[0] {
        return Err("the first span must be above zero and the second at least the first".into());
    }
    Ok(spans)
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    lifeboat_core::parse_duration(s)
}

/// `lifeboat config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the settings in force and where each comes from; secrets are never printed.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
