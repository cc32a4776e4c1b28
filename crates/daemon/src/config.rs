//! The service's configuration: one TOML file, secrets from the environment, every problem
//! reported at once with its line.
//!
//! Parsing keeps each key's position (toml's spans) so that a file with five mistakes gets
//! five messages with five line numbers, not one message per restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lifeboat_core::backend::{OptionSpec, OptionValue, Options, TargetSpec};
use lifeboat_core::drill::Expectations;
use lifeboat_core::retention::RetentionPolicy;
use lifeboat_core::{Kind, Registry, Tags};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;

use crate::alerts::{Format, Webhook};
use crate::error::{DaemonError, Problem};
use crate::schedule::Schedule;

/// Environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "LIFEBOAT_CONFIG";
/// Environment variable with API tokens (comma-separated); replaces `tokens`.
pub const TOKENS_ENV: &str = "LIFEBOAT_TOKENS";
/// Environment variable with webhook URLs (comma-separated); replaces `webhooks`.
pub const WEBHOOKS_ENV: &str = "LIFEBOAT_WEBHOOKS";
/// The shortest API token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// How much to check after a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyLevel {
    /// Every chunk referenced and present.
    Structure,
    /// Every byte read back and hashed.
    ReadData,
}

/// One scheduled backup.
#[derive(Debug, Clone)]
pub struct Job {
    /// Unique name; also the snapshot name (`JOB/MEMBER` for each member of a selection,
    /// such as the containers a label selects).
    pub name: String,
    /// What it backs up: the kind (`kind`), the path, URL or name (`target`, possibly empty
    /// when an option selects the targets) and the options its backend declares (job keys
    /// such as `connections`, `exclude`, `selector`, `changed_only`).
    pub spec: TargetSpec,
    /// When it runs.
    pub schedule: Schedule,
    /// The time zone its cron schedules are read in (`timezone`, else the file's, else UTC).
    pub timezone: chrono_tz::Tz,
    /// Labels on its snapshots.
    pub tags: Tags,
    /// Retention applied after each successful backup.
    pub keep: Option<RetentionPolicy>,
    /// Verification after each backup.
    pub verify: Option<VerifyLevel>,
    /// When restore drills run.
    pub drill: Option<Schedule>,
    /// What a drill checks, with the RTO and RPO objectives.
    pub expect: Expectations,
    /// Random delay before each scheduled run, at most this long.
    pub jitter: Duration,
    /// Line of the job in the file.
    pub line: usize,
    /// A `sqlite-replica` job: replication runs all the time instead of scheduled backups.
    pub replica: Option<ReplicaJob>,
}

/// The settings of a `sqlite-replica` job (`kind = "sqlite-replica"`): the keys
/// `interval`, `snapshot_every`, `keep_commits` and `keep_minutes`, as `lifeboat replicate`
/// takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaJob {
    /// The longest a commit waits before it is shipped (1s).
    pub interval: Duration,
    /// How often a new base snapshot is taken (24h).
    pub snapshot_every: Duration,
    /// How segments are merged and how long each level's points stay.
    pub compaction: lifeboat_core::replica::Compaction,
}

/// The kind a replica job gives in the file.
pub const REPLICA_KIND: &str = "sqlite-replica";

/// The RPO of a replica job without `rpo`: a running replicator renews its lease about
/// every 20 s even when the database is idle, so two minutes without a shipment or a
/// renewal means it is not running.
const REPLICA_RPO: Duration = Duration::from_secs(120);

impl Job {
    /// The kind of target it backs up.
    pub fn kind(&self) -> &Kind {
        &self.spec.kind
    }

    /// The recovery point objective: the job is stale when its newest snapshot is older.
    /// Without an `rpo`, twice the schedule's period plus a minute.
    pub fn rpo(&self, now: chrono::DateTime<chrono::Utc>) -> Duration {
        if self.replica.is_some() {
            return self.expect.rpo.unwrap_or(REPLICA_RPO);
        }
        self.expect.rpo.unwrap_or_else(|| {
            self.schedule.period(now).saturating_mul(2).saturating_add(Duration::from_secs(60))
        })
    }
}

/// Endpoints reachable without a token. Without `open` in the file, `/health` is open (its
/// answer without a token is only `ok` or `degraded`), so that probes need no secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OpenEndpoints {
    /// `GET /health`: without a token, only the status; with one, the details.
    pub health: bool,
    /// `GET /metrics`.
    pub metrics: bool,
    /// `GET /`, the status page: read-only for anyone who reaches the port, no login.
    pub status: bool,
}

/// Where the service reads the repository password from (an encrypted repository).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// `password_file`: the file's content, one trailing line end dropped.
    File(PathBuf),
    /// `password_command`: what this shell command prints, one trailing line end dropped.
    Command(String),
}

impl PasswordSource {
    /// Reads the password: the file, or the command's output. Called when the repository
    /// is opened, so a password changed in its file needs only a restart.
    ///
    /// # Errors
    /// [`DaemonError::PasswordUnreadable`]: the file cannot be read, the command fails, or
    /// the password is empty.
    pub fn read(&self) -> Result<lifeboat_store::Password, DaemonError> {
        let unreadable = |reason: String, source: Option<std::io::Error>| {
            DaemonError::PasswordUnreadable { from: self.to_string(), reason, source }
        };
        let text = match self {
            PasswordSource::File(path) => {
                std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string(), Some(e)))?
            }
            PasswordSource::Command(command) => {
                let output = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .stdin(std::process::Stdio::null())
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .map_err(|e| unreadable(format!("cannot run it: {e}"), Some(e)))?;
                if !output.status.success() {
                    return Err(unreadable(format!("it failed ({})", output.status), None));
                }
                String::from_utf8(output.stdout).map_err(|_| {
                    unreadable("it printed something that is not UTF-8".into(), None)
                })?
            }
        };
        lifeboat_store::Password::from_line(text)
            .ok_or_else(|| unreadable("the password is empty".into(), None))
    }
}

impl std::fmt::Display for PasswordSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordSource::File(path) => write!(f, "password_file {}", path.display()),
            PasswordSource::Command(command) => write!(f, "password_command {command:?}"),
        }
    }
}

/// The whole configuration, checked.
#[derive(Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Repository URL.
    pub repository: String,
    /// Create the repository when it does not exist yet.
    pub create_repository: bool,
    /// Where the repository password comes from (`password_file` or `password_command`):
    /// with one, the repository is encrypted (and created encrypted).
    pub password: Option<PasswordSource>,
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Bearer tokens.
    pub tokens: Vec<String>,
    /// Endpoints without a token.
    pub open: OpenEndpoints,
    /// Folder of the run catalog.
    pub state_dir: PathBuf,
    /// Folder of the heartbeat files.
    pub heartbeat_dir: PathBuf,
    /// Where alerts go, each in its format.
    pub webhooks: Vec<crate::alerts::Webhook>,
    /// Attempts per alert before it is dropped (logged).
    pub webhook_attempts: u32,
    /// Default jitter of every job.
    pub jitter: Duration,
    /// The time zone of every job's cron schedules unless the job names its own (UTC).
    pub timezone: chrono_tz::Tz,
    /// How long a shutdown waits for running backups before aborting them.
    pub shutdown_grace: Duration,
    /// The longest a backup or drill may run (after it got its slot); past it the run is
    /// stopped, failed and alerted.
    pub run_timeout: Duration,
    /// How long an HTTP client gets to send a request's headers, and how long a kept-alive
    /// connection may sit idle waiting for its next request.
    pub header_timeout: Duration,
    /// HTTP connections open at once; past it the oldest idle one is closed, or the new one
    /// is refused when none is idle.
    pub max_connections: usize,
    /// How many backups and drills run at once; more wait for a free slot.
    pub max_running: usize,
    /// How often staleness is checked.
    pub stale_check: Duration,
    /// Whether `POST /api/backups/{id}/restore` may run.
    pub allow_restore: bool,
    /// The options drills get: every drill option of the registry, given at the top level
    /// by its job key (`postgres_server`) or by its environment variable
    /// (`LIFEBOAT_DRILL_POSTGRES`), which wins.
    pub drill_options: Options,
    /// The jobs.
    pub jobs: Vec<Job>,
}

impl std::fmt::Debug for Config {
    // Tokens and webhook URLs are secrets: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("repository", &self.repository)
            .field("password", &self.password)
            .field("listen", &self.listen)
            .field("tokens", &format!("{} tokens", self.tokens.len()))
            .field("jobs", &self.jobs.iter().map(|j| &j.name).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The environment the configuration reads secrets from.
pub trait Env {
    /// The variable's value, if set and not empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    /// `NAME`, else the contents of the file `NAME_FILE` names (secrets handed over as
    /// files); a file that cannot be read is logged and counts as not set.
    fn var(&self, name: &str) -> Option<String> {
        lifeboat_core::secret::from_env(name).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignored");
            None
        })
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// The path of the configuration file: the flag, else `LIFEBOAT_CONFIG`.
///
/// # Errors
/// [`DaemonError::NoConfig`] when neither is given.
pub fn config_path(flag: Option<PathBuf>, env: &dyn Env) -> Result<PathBuf, DaemonError> {
    flag.or_else(|| env.var(CONFIG_ENV).map(PathBuf::from)).ok_or(DaemonError::NoConfig)
}

impl Config {
    /// Reads and checks the file at `path`. `registry` holds the kinds jobs may have and the
    /// job keys their backends declare.
    ///
    /// # Errors
    /// [`DaemonError::ReadConfig`], or [`DaemonError::InvalidConfig`] listing every problem.
    pub fn load(path: &Path, env: &dyn Env, registry: &Registry) -> Result<Self, DaemonError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| DaemonError::ReadConfig { path: path.to_path_buf(), source })?;
        Self::parse(&text, path, env, registry)
    }

    /// Checks `text`, read from `path`, for the whole service (API tokens are required).
    ///
    /// # Errors
    /// [`DaemonError::InvalidConfig`] listing every problem with its line.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Env,
        registry: &Registry,
    ) -> Result<Self, DaemonError> {
        Self::parse_for(text, path, env, registry, true)
    }

    /// Checks `text` for a service that runs only the scheduler
    /// ([`crate::service::run_scheduler`]): as [`Config::parse`], except that `tokens` may be
    /// left out, since there is no API to protect.
    ///
    /// # Errors
    /// [`DaemonError::InvalidConfig`] listing every problem with its line.
    pub fn parse_scheduler(
        text: &str,
        path: &Path,
        env: &dyn Env,
        registry: &Registry,
    ) -> Result<Self, DaemonError> {
        Self::parse_for(text, path, env, registry, false)
    }

    fn parse_for(
        text: &str,
        path: &Path,
        env: &dyn Env,
        registry: &Registry,
        api: bool,
    ) -> Result<Self, DaemonError> {
        let mut p = Parser { text, problems: Vec::new(), registry, api };
        let config = p.config(path, env);
        match config {
            Some(config) if p.problems.is_empty() => Ok(config),
            _ => {
                p.problems.sort_by_key(|p| p.line);
                Err(DaemonError::InvalidConfig { path: path.to_path_buf(), problems: p.problems })
            }
        }
    }

    /// The job called `name`.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name == name)
    }
}

type RawTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
struct RawJobs {
    #[serde(default)]
    jobs: Vec<Spanned<RawTable>>,
}

/// How long a backup or drill may run unless `run_timeout` says otherwise.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// How long a client may take to send its request headers unless `header_timeout` says
/// otherwise.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP connections at once unless `max_connections` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Backups and drills that run at once unless `max_running` says otherwise.
pub const DEFAULT_MAX_RUNNING: usize = 4;

const TOP_KEYS: &[&str] = &[
    "repository",
    "create_repository",
    "password_file",
    "password_command",
    "listen",
    "tokens",
    "open",
    "state_dir",
    "heartbeat_dir",
    "webhooks",
    "webhook_attempts",
    "jitter",
    "timezone",
    "shutdown_grace",
    "run_timeout",
    "header_timeout",
    "max_connections",
    "max_running",
    "stale_check",
    "allow_restore",
    "jobs",
];

const JOB_KEYS: &[&str] = &[
    "name", "kind", "target", "schedule", "tags", "keep", "verify", "drill", "expect", "rpo",
    "rto", "jitter", "timezone",
];

/// Collects problems while reading fields.
struct Parser<'a> {
    text: &'a str,
    problems: Vec<Problem>,
    /// The kinds jobs may have, with their options.
    registry: &'a Registry,
    /// Whether the API will serve (then tokens are required).
    api: bool,
}

/// One table's fields, taken one by one; what is left is unknown.
struct Fields {
    map: BTreeMap<String, (usize, toml::Value)>,
    line: usize,
    context: String,
}

impl Parser<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text.get(..offset).map_or(1, |s| s.matches('\n').count() + 1)
    }

    fn problem(&mut self, line: usize, message: impl Into<String>) {
        self.problems.push(Problem { line, message: message.into() });
    }

    fn fields(&mut self, raw: RawTable, line: usize, context: String) -> Fields {
        let map = raw
            .into_iter()
            .map(|(k, v)| {
                let line = self.line_of(k.span().start);
                (k.into_inner(), (line, v.into_inner()))
            })
            .collect();
        Fields { map, line, context }
    }

    /// Takes `key` as a `T`; a wrong type is a problem.
    fn take<T: DeserializeOwned>(&mut self, f: &mut Fields, key: &str) -> Option<(T, usize)> {
        let (line, value) = f.map.remove(key)?;
        match value.try_into::<T>() {
            Ok(v) => Some((v, line)),
            Err(e) => {
                let why = e.message().trim().to_string();
                self.problem(line, format!("{}`{key}`: {why}", f.context));
                None
            }
        }
    }

    fn required<T: DeserializeOwned>(&mut self, f: &mut Fields, key: &str) -> Option<(T, usize)> {
        if !f.map.contains_key(key) {
            let (line, context) = (f.line, f.context.clone());
            self.problem(line, format!("{context}`{key}` is missing"));
            return None;
        }
        self.take(f, key)
    }

    fn duration(&mut self, f: &mut Fields, key: &str) -> Option<Duration> {
        let (text, line) = self.take::<String>(f, key)?;
        match lifeboat_core::parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                let context = f.context.clone();
                self.problem(line, format!("{context}`{key}`: {e}"));
                None
            }
        }
    }

    /// A duration that must not be zero (a zero deadline or timeout would stop everything).
    fn positive(&mut self, f: &mut Fields, key: &str, default: Duration) -> Duration {
        let line = f.map.get(key).map(|(l, _)| *l);
        match (self.duration(f, key), line) {
            (Some(d), Some(line)) if d.is_zero() => {
                self.problem(line, format!("`{key}` must be longer than 0s"));
                default
            }
            (Some(d), _) => d,
            (None, _) => default,
        }
    }

    fn schedule(
        &mut self,
        f: &mut Fields,
        key: &str,
        required: bool,
        timezone: chrono_tz::Tz,
    ) -> Option<Schedule> {
        let (text, line) =
            if required { self.required::<String>(f, key)? } else { self.take::<String>(f, key)? };
        match Schedule::parse(&text, timezone) {
            Ok(s) => Some(s),
            Err(e) => {
                let context = f.context.clone();
                self.problem(line, format!("{context}`{key}`: {e}"));
                None
            }
        }
    }

    /// `key` as a time zone of the IANA database.
    fn timezone(&mut self, f: &mut Fields, key: &str) -> Option<chrono_tz::Tz> {
        let (name, line) = self.take::<String>(f, key)?;
        match crate::schedule::parse_timezone(&name) {
            Ok(tz) => Some(tz),
            Err(e) => {
                let context = f.context.clone();
                self.problem(line, format!("{context}`{key}`: {e}"));
                None
            }
        }
    }

    fn unknown(&mut self, f: Fields, known: &[&str]) {
        for (key, (line, _)) in f.map {
            let stem: String = key.chars().take(3).collect();
            let hint = known
                .iter()
                .find(|k| k.starts_with(&stem))
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            self.problem(line, format!("{}unknown key `{key}`{hint}", f.context));
        }
    }

    /// Takes the job key of `spec` as its values (a flag from a bool, one value from a
    /// string or an integer, many from an array of strings), with the key's line.
    fn option(&mut self, f: &mut Fields, spec: &OptionSpec) -> Option<(Vec<String>, usize)> {
        let key = spec.config_key();
        let line = f.map.get(&key).map(|(line, _)| *line)?;
        let values = match spec.value {
            OptionValue::Flag => match self.take::<bool>(f, &key) {
                Some((true, _)) => vec!["true".to_string()],
                _ => Vec::new(),
            },
            OptionValue::One(_) => match f.map.remove(&key).map(|(_, value)| value) {
                Some(toml::Value::String(s)) => vec![s],
                Some(toml::Value::Integer(n)) => vec![n.to_string()],
                Some(other) => {
                    let (context, found) = (f.context.clone(), other.type_str());
                    self.problem(
                        line,
                        format!("{context}`{key}`: a string or a number, not a {found}"),
                    );
                    Vec::new()
                }
                None => Vec::new(),
            },
            OptionValue::Many(_) => {
                self.take::<Vec<String>>(f, &key).map(|(v, _)| v).unwrap_or_default()
            }
        };
        Some((values, line))
    }

    /// Takes the job keys of `kind`'s options, or, when the kind is unknown, drops every
    /// backend's (the kind is the problem then). A key that only other kinds take is a
    /// problem naming them.
    fn job_options(&mut self, f: &mut Fields, kind: Option<&Kind>) -> JobOptions {
        let mut taken = JobOptions::default();
        if let Some(kind) = kind {
            for spec in backend_options(self.registry, kind) {
                if let Some((values, line)) = self.option(f, &spec) {
                    values.into_iter().for_each(|v| taken.options.push(spec.name, v));
                    taken.lines.push((spec.name, line));
                }
            }
        }
        let others: Vec<Kind> =
            self.registry.kinds().into_iter().filter(|k| Some(k) != kind).collect();
        for other in &others {
            for spec in backend_options(self.registry, other) {
                let key = spec.config_key();
                let Some((line, _)) = f.map.remove(&key) else { continue };
                if kind.is_none() {
                    continue;
                }
                let owners: Vec<Kind> = self
                    .registry
                    .kinds()
                    .into_iter()
                    .filter(|k| {
                        backend_options(self.registry, k).iter().any(|s| s.name == spec.name)
                    })
                    .collect();
                let context = f.context.clone();
                self.problem(
                    line,
                    format!("{context}`{key}` is only for {} jobs", or_list(&owners)),
                );
            }
        }
        taken
    }

    fn config(&mut self, path: &Path, env: &dyn Env) -> Option<Config> {
        let raw: RawTable = match toml::from_str(self.text) {
            Ok(raw) => raw,
            Err(e) => {
                let line = e.span().map_or(1, |s| self.line_of(s.start));
                self.problem(line, format!("not valid TOML: {}", e.message().trim()));
                return None;
            }
        };
        let raw_jobs = match toml::from_str::<RawJobs>(self.text) {
            Ok(j) => j.jobs,
            Err(e) => {
                let line = e.span().map_or(1, |s| self.line_of(s.start));
                self.problem(
                    line,
                    format!("`jobs`: {} (write each job as [[jobs]])", e.message().trim()),
                );
                Vec::new()
            }
        };
        let mut f = self.fields(raw, 1, String::new());
        f.map.remove("jobs");
        let repository = env
            .var("LIFEBOAT_REPO")
            .or_else(|| self.required::<String>(&mut f, "repository").map(|(r, _)| r));
        f.map.remove("repository");
        let create_repository =
            self.take::<bool>(&mut f, "create_repository").is_none_or(|(v, _)| v);
        let password = self.password(&mut f);
        let listen = match self.take::<String>(&mut f, "listen") {
            Some((text, line)) => match text.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.problem(
                        line,
                        format!("`listen`: {text:?} is not an address such as 127.0.0.1:8080"),
                    );
                    None
                }
            },
            None => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        };
        let tokens_line = f.map.get("tokens").map_or(1, |(l, _)| *l);
        let mut tokens =
            self.take::<Vec<String>>(&mut f, "tokens").map(|(t, _)| t).unwrap_or_default();
        if let Some(from_env) = env.var(TOKENS_ENV) {
            tokens = split_list(&from_env);
        }
        if tokens.is_empty() && self.api {
            self.problem(
                tokens_line,
                format!("no API tokens: set `tokens = [\"...\"]` or {TOKENS_ENV}"),
            );
        }
        for (i, t) in tokens.iter().enumerate() {
            if t.len() < MIN_TOKEN_LEN {
                self.problem(tokens_line, format!("token {} is shorter than {MIN_TOKEN_LEN} characters; use a long random one (e.g. openssl rand -hex 32)", i + 1));
            }
        }
        let mut open = OpenEndpoints { health: true, metrics: false, status: false };
        if let Some((names, line)) = self.take::<Vec<String>>(&mut f, "open") {
            // A list given is the whole list: `open = []` closes /health too.
            open.health = false;
            for name in names {
                match name.trim_start_matches('/') {
                    "health" => open.health = true,
                    "metrics" => open.metrics = true,
                    "status" => open.status = true,
                    other => self.problem(line, format!("`open`: {other:?} cannot be opened; only \"health\", \"metrics\" and \"status\" (the status page) can")),
                }
            }
        }
        let state_dir = self
            .take::<PathBuf>(&mut f, "state_dir")
            .map(|(p, _)| p)
            .or_else(|| env.var("STATE_DIRECTORY").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/lib/lifeboatd"));
        let heartbeat_dir = self
            .take::<PathBuf>(&mut f, "heartbeat_dir")
            .map_or_else(|| state_dir.join("heartbeats"), |(p, _)| p);
        let (raw_hooks, webhooks_line) =
            self.take::<Vec<toml::Value>>(&mut f, "webhooks").unwrap_or_default();
        let mut webhooks: Vec<Webhook> = raw_hooks
            .into_iter()
            .enumerate()
            .filter_map(|(i, value)| self.webhook(i + 1, value, webhooks_line.max(1)))
            .collect();
        if let Some(from_env) = env.var(WEBHOOKS_ENV) {
            webhooks = split_list(&from_env).into_iter().map(Webhook::generic).collect();
            for hook in &webhooks {
                self.webhook_url(&hook.url, 1);
            }
        }
        let webhook_attempts =
            self.take::<u32>(&mut f, "webhook_attempts").map_or(5, |(n, _)| n.max(1));
        let jitter = self.duration(&mut f, "jitter").unwrap_or_default();
        let timezone = self.timezone(&mut f, "timezone").unwrap_or(chrono_tz::Tz::UTC);
        let shutdown_grace =
            self.duration(&mut f, "shutdown_grace").unwrap_or(Duration::from_secs(300));
        let run_timeout = self.positive(&mut f, "run_timeout", DEFAULT_RUN_TIMEOUT);
        let header_timeout = self.positive(&mut f, "header_timeout", DEFAULT_HEADER_TIMEOUT);
        let max_connections = match self.take::<u32>(&mut f, "max_connections") {
            Some((0, line)) => {
                self.problem(line, "max_connections must be at least 1");
                DEFAULT_MAX_CONNECTIONS
            }
            Some((n, _)) => n as usize,
            None => DEFAULT_MAX_CONNECTIONS,
        };
        let max_running = match self.take::<u32>(&mut f, "max_running") {
            Some((0, line)) => {
                self.problem(line, "max_running must be at least 1 (backups and drills at once)");
                DEFAULT_MAX_RUNNING
            }
            Some((n, _)) => n as usize,
            None => DEFAULT_MAX_RUNNING,
        };
        let stale_check = self
            .duration(&mut f, "stale_check")
            .unwrap_or(Duration::from_secs(60))
            .max(Duration::from_secs(1));
        let allow_restore = self.take::<bool>(&mut f, "allow_restore").is_some_and(|(v, _)| v);
        // Each drill option of a backend may be set here by its job key, or by its
        // environment variable, which wins.
        let mut drill_options = Options::default();
        let drill_specs = self.registry.drill_options();
        for spec in &drill_specs {
            let from_file = self.option(&mut f, spec).map(|(values, _)| values);
            let values = match spec.env.and_then(|var| env.var(var)) {
                Some(value) => vec![value],
                None => from_file.unwrap_or_default(),
            };
            values.into_iter().for_each(|v| drill_options.push(spec.name, v));
        }
        let drill_keys: Vec<String> = drill_specs.iter().map(OptionSpec::config_key).collect();
        let known: Vec<&str> =
            TOP_KEYS.iter().copied().chain(drill_keys.iter().map(String::as_str)).collect();
        self.unknown(f, &known);

        let mut jobs: Vec<Job> = Vec::new();
        if raw_jobs.is_empty() && self.problems.is_empty() {
            self.problem(1, "no jobs: add at least one [[jobs]] table");
        }
        for (i, raw) in raw_jobs.into_iter().enumerate() {
            let line = self.line_of(raw.span().start);
            let fields = self.fields(raw.into_inner(), line, format!("job {}: ", i + 1));
            if let Some(job) = self.job(fields, jitter, timezone) {
                if let Some(first) = jobs.iter().find(|j| j.name == job.name) {
                    let message = format!(
                        "job {}: name {:?} is already used by the job on line {}",
                        i + 1,
                        job.name,
                        first.line
                    );
                    self.problem(job.line, message);
                }
                jobs.push(job);
            }
        }
        Some(Config {
            path: path.to_path_buf(),
            repository: repository?,
            create_repository,
            password,
            listen: listen?,
            tokens,
            open,
            state_dir,
            heartbeat_dir,
            webhooks,
            webhook_attempts,
            jitter,
            timezone,
            shutdown_grace,
            run_timeout,
            header_timeout,
            max_connections,
            max_running,
            stale_check,
            allow_restore,
            drill_options,
            jobs,
        })
    }

    /// Whether `url` is one a webhook can post to; a problem on `line` when not.
    fn webhook_url(&mut self, url: &str, line: usize) -> bool {
        let ok = url.starts_with("http://") || url.starts_with("https://");
        if !ok {
            self.problem(
                line,
                format!("webhook {:?} is not an http:// or https:// URL", redact(url)),
            );
        }
        ok
    }

    /// The `n`th entry of `webhooks`: a URL (a `generic` webhook), or a table with `url`,
    /// `format`, `secret` and `routing_key`.
    fn webhook(&mut self, n: usize, value: toml::Value, line: usize) -> Option<Webhook> {
        let mut table = match value {
            toml::Value::String(url) => {
                return self.webhook_url(&url, line).then(|| Webhook::generic(url));
            }
            toml::Value::Table(table) => table,
            other => {
                let found = other.type_str();
                self.problem(
                    line,
                    format!("webhook {n}: a URL or a table such as {{ url = \"https://...\", format = \"slack\" }}, not a {found}"),
                );
                return None;
            }
        };
        let problems = self.problems.len();
        let mut text = |key: &str, problems: &mut Vec<Problem>| match table.remove(key) {
            None => None,
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Some(s),
            Some(_) => {
                problems.push(Problem {
                    line,
                    message: format!("webhook {n}: `{key}` must be a string that is not empty"),
                });
                None
            }
        };
        let url = text("url", &mut self.problems);
        let format_name = text("format", &mut self.problems);
        let secret = text("secret", &mut self.problems);
        let routing_key = text("routing_key", &mut self.problems);
        for key in table.keys() {
            let known = ["url", "format", "secret", "routing_key"];
            let hint = known
                .iter()
                .find(|k| k.starts_with(&key.chars().take(3).collect::<String>()))
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            self.problem(line, format!("webhook {n}: unknown key `{key}`{hint}; a webhook takes url, format, secret and routing_key"));
        }
        let format = match format_name.as_deref() {
            None => Format::Generic,
            Some(name) => Format::from_name(name).or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|(n, _)| *n).collect();
                self.problem(
                    line,
                    format!("webhook {n}: format {name:?} is not one of {}", names.join(", ")),
                );
                None
            })?,
        };
        let url = match (url, format) {
            (Some(url), _) => url,
            (None, Format::PagerDuty) => crate::alerts::PAGERDUTY_URL.to_string(),
            (None, _) => {
                self.problem(line, format!("webhook {n}: `url` is missing"));
                return None;
            }
        };
        if !self.webhook_url(&url, line) {
            return None;
        }
        match (format, &routing_key) {
            (Format::PagerDuty, None) => self.problem(
                line,
                format!("webhook {n}: a pagerduty webhook needs `routing_key`, the integration key of an Events API v2 integration"),
            ),
            (Format::Generic | Format::Slack, Some(_)) => {
                self.problem(line, format!("webhook {n}: `routing_key` is only for format \"pagerduty\""));
            }
            _ => {}
        }
        (self.problems.len() == problems).then_some(Webhook { url, format, secret, routing_key })
    }

    /// `password_file` or `password_command`, at most one of them.
    fn password(&mut self, f: &mut Fields) -> Option<PasswordSource> {
        let file = self.take::<PathBuf>(f, "password_file");
        let command = self.take::<String>(f, "password_command");
        match (file, command) {
            (Some(_), Some((_, line))) => {
                self.problem(
                    line,
                    "`password_file` and `password_command` both give the repository \
                     password: keep one",
                );
                None
            }
            (Some((path, line)), None) if path.as_os_str().is_empty() => {
                self.problem(line, "`password_file` is empty: give the path of a file");
                None
            }
            (None, Some((command, line))) if command.trim().is_empty() => {
                self.problem(line, "`password_command` is empty: give a shell command");
                None
            }
            (Some((path, _)), None) => Some(PasswordSource::File(path)),
            (None, Some((command, _))) => Some(PasswordSource::Command(command)),
            (None, None) => None,
        }
    }

    fn job(
        &mut self,
        mut f: Fields,
        default_jitter: Duration,
        default_timezone: chrono_tz::Tz,
    ) -> Option<Job> {
        let name = self.required::<String>(&mut f, "name").map(|(n, line)| {
            let ok =
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok {
                let context = f.context.clone();
                self.problem(
                    line,
                    format!("{context}name {n:?} may hold only letters, digits, '.', '_' and '-'"),
                );
            }
            n
        });
        if let Some(n) = &name {
            f.context = format!("job {n:?}: ");
        }
        let mut replica = false;
        let kind = self.required::<String>(&mut f, "kind").and_then(|(k, line)| {
            if k == REPLICA_KIND {
                replica = true;
                return Some(Kind::SQLITE);
            }
            let kind = self.registry.kinds().into_iter().find(|known| *known == k.as_str());
            if kind.is_none() {
                let context = f.context.clone();
                let known = self.registry.kinds_text();
                self.problem(
                    line,
                    format!("{context}kind {k:?} is not one of {known} (or {REPLICA_KIND})"),
                );
            }
            kind
        });
        let target = self.take::<String>(&mut f, "target");
        let JobOptions { options, lines } = self.job_options(&mut f, kind.as_ref());
        let spec = kind.and_then(|kind| {
            // A target is needed unless one of the backend's commands selects its targets
            // by option (as a label selects containers).
            let needs_target = self
                .registry
                .find(&kind)
                .is_none_or(|b| b.commands().iter().all(|c| c.target.is_some()));
            let context = f.context.clone();
            if target.is_none() && needs_target {
                self.problem(f.line, format!("{context}`target` is missing"));
                return None;
            }
            let target_line = target.as_ref().map_or(f.line, |(_, line)| *line);
            let spec =
                TargetSpec { kind, target: target.map(|(t, _)| t).unwrap_or_default(), options };
            if let Err(e) = self.registry.check(&spec) {
                // On the line of the option the backend complains about, if it names one.
                let message = e.to_string();
                let line = lines
                    .iter()
                    .find(|(name, _)| message.contains(name))
                    .map_or(target_line, |(_, line)| *line);
                self.problem(line, format!("{context}{message}"));
            }
            Some(spec)
        });
        let timezone = self.timezone(&mut f, "timezone").unwrap_or(default_timezone);
        let replica = replica.then(|| {
            let defaults = lifeboat_core::replica::Compaction::default();
            ReplicaJob {
                interval: self.duration(&mut f, "interval").unwrap_or(Duration::from_secs(1)),
                snapshot_every: self
                    .duration(&mut f, "snapshot_every")
                    .unwrap_or(Duration::from_secs(24 * 3600)),
                compaction: lifeboat_core::replica::Compaction {
                    keep_commits: self
                        .duration(&mut f, "keep_commits")
                        .unwrap_or(defaults.keep_commits),
                    keep_level1: self
                        .duration(&mut f, "keep_minutes")
                        .unwrap_or(defaults.keep_level1),
                    ..defaults
                },
            }
        });
        // A replica job has no schedule of its own: it takes a base snapshot every
        // `snapshot_every` while it runs, which is what its schedule then shows.
        let schedule = match &replica {
            Some(r) => {
                if let Some((line, _)) = f.map.remove("schedule") {
                    let context = f.context.clone();
                    self.problem(line, format!("{context}a {REPLICA_KIND} job runs all the time and has no `schedule`; `snapshot_every` says how often it takes a base snapshot"));
                }
                Some(Schedule::Every(r.snapshot_every))
            }
            None => self.schedule(&mut f, "schedule", true, timezone),
        };
        let tags = self
            .take::<BTreeMap<String, String>>(&mut f, "tags")
            .map(|(t, _)| t.into_iter().collect::<Tags>())
            .unwrap_or_default();
        let keep = self.take::<RetentionPolicy>(&mut f, "keep").and_then(|(k, line)| {
            if k.is_empty() {
                let context = f.context.clone();
                self.problem(line, format!("{context}`keep` keeps nothing and would remove every snapshot; give it a rule such as last = 10"));
                return None;
            }
            Some(k)
        });
        let verify = self.take::<String>(&mut f, "verify").and_then(|(v, line)| match v.as_str() {
            "structure" => Some(VerifyLevel::Structure),
            "read-data" => Some(VerifyLevel::ReadData),
            other => {
                let context = f.context.clone();
                self.problem(
                    line,
                    format!("{context}`verify`: {other:?} is not \"structure\" or \"read-data\""),
                );
                None
            }
        });
        let drill = self.schedule(&mut f, "drill", false, timezone);
        let mut expect =
            self.take::<Expectations>(&mut f, "expect").map(|(e, _)| e).unwrap_or_default();
        if let Some(rpo) = self.duration(&mut f, "rpo") {
            expect.rpo = Some(rpo);
        }
        if let Some(rto) = self.duration(&mut f, "rto") {
            expect.rto = Some(rto);
        }
        let jitter = self.duration(&mut f, "jitter").unwrap_or(default_jitter);
        let line = f.line;
        let option_keys: Vec<String> = match &spec {
            Some(spec) => backend_options(self.registry, &spec.kind)
                .iter()
                .map(OptionSpec::config_key)
                .collect(),
            None => Vec::new(),
        };
        let known: Vec<&str> =
            JOB_KEYS.iter().copied().chain(option_keys.iter().map(String::as_str)).collect();
        self.unknown(f, &known);
        Some(Job {
            name: name?,
            spec: spec?,
            schedule: schedule?,
            timezone,
            tags,
            keep,
            verify,
            drill,
            expect,
            jitter,
            line,
            replica,
        })
    }
}

/// The options a job gave, with the line of each.
#[derive(Default)]
struct JobOptions {
    options: Options,
    lines: Vec<(&'static str, usize)>,
}

/// `a, b or c`.
fn or_list(kinds: &[Kind]) -> String {
    let names: Vec<String> = kinds.iter().map(Kind::to_string).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// Every option of `kind`'s commands, each once: the job keys of its jobs. An option named
/// like a job's own key (`schedule`, `tags`) cannot be given in a job and is left out.
fn backend_options(registry: &Registry, kind: &Kind) -> Vec<OptionSpec> {
    let mut specs: Vec<OptionSpec> = Vec::new();
    let commands = registry.find(kind).map(|b| b.commands()).unwrap_or_default();
    for spec in commands.into_iter().flat_map(|c| c.options) {
        let own_key = JOB_KEYS.contains(&spec.config_key().as_str());
        if !own_key && !specs.iter().any(|s| s.name == spec.name) {
            specs.push(spec);
        }
    }
    specs
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// A URL with any password or query (where webhook secrets live) hidden, for logs.
pub fn redact(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    match without_query.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => format!("{scheme}://{rest}"),
        },
        None => without_query.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The issue's minimal file, as shipped in `examples/`.
    const MINIMAL: &str = include_str!("../../../examples/lifeboatd-minimal.toml");

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn parse(text: &str, path: &Path, env: &dyn Env) -> Result<Config, DaemonError> {
        Config::parse(text, path, env, &lifeboat::backends())
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text, Path::new("test.toml"), &env(&[])) {
            Err(DaemonError::InvalidConfig { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn the_minimal_file_works_as_written() {
        let c = parse(MINIMAL, Path::new("m.toml"), &env(&[])).unwrap();
        assert_eq!(c.repository, "/var/lib/lifeboat/repo");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.tokens, ["a-long-random-token"]);
        let job = &c.jobs[0];
        assert_eq!((job.name.as_str(), job.kind()), ("auth", &Kind::SQLITE));
        assert_eq!(job.spec.target, "/data/platform/auth.db");
        assert_eq!(job.schedule.to_string(), "*/5 * * * * *");
        let keep = job.keep.as_ref().unwrap();
        assert_eq!((keep.last, keep.daily), (10, 30));
        assert_eq!(job.line, 4);
        assert!(c.open.health && !c.open.metrics && !c.allow_restore);
        let closed = MINIMAL.replacen('\n', "\nopen = []\n", 1);
        let c = parse(&closed, Path::new("m.toml"), &env(&[])).unwrap();
        assert!(!c.open.health && !c.open.metrics && !c.open.status);
        let page = MINIMAL.replacen('\n', "\nopen = [\"status\", \"/metrics\"]\n", 1);
        let c = parse(&page, Path::new("m.toml"), &env(&[])).unwrap();
        assert!(!c.open.health && c.open.metrics && c.open.status);
        let wrong = MINIMAL.replacen('\n', "\nopen = [\"page\"]\n", 1);
        let problems = parse(&wrong, Path::new("m.toml"), &env(&[])).unwrap_err().to_string();
        assert!(
            problems.contains(r#""page" cannot be opened"#) && problems.contains("status"),
            "{problems}"
        );
        assert_eq!(c.max_running, DEFAULT_MAX_RUNNING);
    }

    #[test]
    fn time_zones_are_utc_unless_the_file_or_the_job_names_one() {
        let c = parse(MINIMAL, Path::new("m.toml"), &env(&[])).unwrap();
        assert_eq!(c.timezone, chrono_tz::Tz::UTC);
        assert_eq!(c.jobs[0].timezone, chrono_tz::Tz::UTC);
        let text = MINIMAL.replacen('\n', "\ntimezone = \"America/New_York\"\n", 1)
            + "\n[[jobs]]\nname = \"b\"\nkind = \"dir\"\ntarget = \"/srv\"\nschedule = \"@daily\"\ntimezone = \"Europe/Berlin\"\n";
        let c = parse(&text, Path::new("m.toml"), &env(&[])).unwrap();
        assert_eq!(c.jobs[0].timezone, chrono_tz::Tz::America__New_York);
        assert_eq!(c.jobs[1].timezone, chrono_tz::Tz::Europe__Berlin);
        assert_eq!(c.jobs[1].schedule.timezone(), Some(chrono_tz::Tz::Europe__Berlin));
        let found = problems(&text.replace("Europe/Berlin", "europe/berlin"));
        assert!(
            found.iter().any(|p| p.line == 17
                && p.message.contains("`timezone`")
                && p.message.contains("did you mean \"Europe/Berlin\"")),
            "{found:?}"
        );
    }

    #[test]
    fn max_running_is_at_least_one() {
        let with = |line: &str| MINIMAL.replacen('\n', &format!("\n{line}\n"), 1);
        let c = parse(&with("max_running = 2"), Path::new("m.toml"), &env(&[])).unwrap();
        assert_eq!(c.max_running, 2);
        let found = problems(&with("max_running = 0"));
        assert!(found.iter().any(|p| p.line == 2 && p.message.contains("at least 1")), "{found:?}");
        let found = problems(&with("max_running = -3"));
        assert!(
            found.iter().any(|p| p.line == 2 && p.message.contains("max_running")),
            "{found:?}"
        );
    }

    #[test]
    fn deadlines_and_the_connection_cap_have_defaults_and_are_never_zero() {
        let with = |line: &str| MINIMAL.replacen('\n', &format!("\n{line}\n"), 1);
        let c = parse(MINIMAL, Path::new("m.toml"), &env(&[])).unwrap();
        assert_eq!(c.run_timeout, DEFAULT_RUN_TIMEOUT);
        assert_eq!(c.header_timeout, DEFAULT_HEADER_TIMEOUT);
        assert_eq!(c.max_connections, DEFAULT_MAX_CONNECTIONS);
        let text = with("run_timeout = \"90m\"\nheader_timeout = \"3s\"\nmax_connections = 8");
        let c = parse(&text, Path::new("m.toml"), &env(&[])).unwrap();
        assert_eq!(c.run_timeout, Duration::from_secs(90 * 60));
        assert_eq!(c.header_timeout, Duration::from_secs(3));
        assert_eq!(c.max_connections, 8);
        for (line, key) in [
            ("run_timeout = \"0s\"", "run_timeout"),
            ("header_timeout = \"0s\"", "header_timeout"),
            ("max_connections = 0", "max_connections"),
        ] {
            let found = problems(&with(line));
            assert!(found.iter().any(|p| p.line == 2 && p.message.contains(key)), "{found:?}");
        }
    }

    #[test]
    fn secrets_come_from_the_environment() {
        let vars = env(&[
            (TOKENS_ENV, "first-token-0123456789, second-token-0123456789"),
            (WEBHOOKS_ENV, "https://hooks.example/abc?key=secret"),
        ]);
        let c = parse(MINIMAL, Path::new("m.toml"), &vars).unwrap();
        assert_eq!(c.tokens, ["first-token-0123456789", "second-token-0123456789"]);
        assert_eq!(c.webhooks, [Webhook::generic("https://hooks.example/abc?key=secret")]);
        assert!(!format!("{c:?}").contains("0123456789"), "tokens leak into Debug");
        let no_tokens = MINIMAL.replace("tokens = [\"a-long-random-token\"]", "");
        let c = parse(&no_tokens, Path::new("m.toml"), &vars).unwrap();
        assert_eq!(c.tokens.len(), 2);
    }

    #[test]
    fn every_problem_is_listed_with_its_line() {
        let text = r#"repository = "/tmp/repo"
listen = "localhost"
tokens = ["short"]
colour = "blue"

[[jobs]]
name = "auth"
kind = "sqlite"
target = "/data/auth.db"
schedule = "every soon"
keep = { last = "ten" }

[[jobs]]
name = "auth"
kind = "mysql"
target = "db"
schedule = "*/5 * * * * *"

[[jobs]]
name = "files"
kind = "dir"
schedule = "*/5 * * * * *"
verify = "deep"
rpo = "one day"
"#;
        let found = problems(text);
        let lines: Vec<usize> = found.iter().map(|p| p.line).collect();
        let text_of = |line: usize| -> String {
            found
                .iter()
                .filter(|p| p.line == line)
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        assert!(text_of(2).contains("listen"), "{found:?}");
        assert!(text_of(3).contains("shorter"), "{found:?}");
        assert!(text_of(4).contains("unknown key `colour`"), "{found:?}");
        assert!(text_of(10).contains("every soon"), "{found:?}");
        assert!(text_of(11).contains("keep"), "{found:?}");
        assert!(text_of(15).contains("mysql"), "{found:?}");
        assert!(text_of(19).contains("`target` is missing"), "{found:?}");
        assert!(text_of(23).contains("deep"), "{found:?}");
        assert!(text_of(24).contains("one day"), "{found:?}");
        assert_eq!(found.len(), 9, "{found:?}");
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "sorted by line: {lines:?}");
    }

    #[test]
    fn odd_keys_webhooks_and_huge_intervals_are_problems_not_crashes() {
        let text = "repository = \"/tmp/repo\"\ntokens = [\"a-long-random-token\"]\n\"ab\u{20ac}\" = 1\nwebhooks = [\"ftp://hooks.example\"]\n\n[[jobs]]\nname = \"auth\"\nkind = \"sqlite\"\ntarget = \"/data/auth.db\"\nschedule = \"every 300000y\"\n";
        let found = problems(text);
        let on = |line: usize, needle: &str| {
            assert!(
                found.iter().any(|p| p.line == line && p.message.contains(needle)),
                "no problem with {needle:?} on line {line}: {found:?}"
            );
        };
        on(3, "unknown key `ab\u{20ac}`");
        on(4, "ftp://hooks.example");
        on(10, "at most 100y");
        assert_eq!(found.len(), 3, "{found:?}");
    }

    #[test]
    fn webhooks_are_urls_or_tables_with_a_format_a_secret_and_a_routing_key() {
        let with = |hooks: &str| MINIMAL.replacen('\n', &format!("\nwebhooks = {hooks}\n"), 1);
        let text = with(
            r#"["https://a.example/x", { url = "https://hooks.slack.com/services/T/B/C", format = "slack", secret = "s3cret" }, { format = "pagerduty", routing_key = "R0UT1NG" }]"#,
        );
        let c = parse(&text, Path::new("m.toml"), &env(&[])).unwrap();
        assert_eq!(c.webhooks[0], Webhook::generic("https://a.example/x"));
        assert_eq!(
            (c.webhooks[1].format, c.webhooks[1].secret.as_deref()),
            (Format::Slack, Some("s3cret"))
        );
        assert_eq!(c.webhooks[2].url, crate::alerts::PAGERDUTY_URL);
        assert_eq!(c.webhooks[2].routing_key.as_deref(), Some("R0UT1NG"));
        assert!(!format!("{:?}", c.webhooks).contains("s3cret"), "the secret leaks into Debug");
        let found = problems(&with(
            r#"[{ url = "https://a.example", format = "teams" }, { format = "pagerduty" }, { url = "https://b.example", routing_key = "x", secrte = "y" }, 3]"#,
        ));
        for needle in [
            "webhook 1: format \"teams\" is not one of generic, slack, pagerduty",
            "webhook 2: a pagerduty webhook needs `routing_key`",
            "webhook 3: `routing_key` is only for format \"pagerduty\"",
            "webhook 3: unknown key `secrte` (did you mean `secret`?)",
            "webhook 4: a URL or a table",
        ] {
            assert!(
                found.iter().any(|p| p.line == 2 && p.message.contains(needle)),
                "{needle}: {found:?}"
            );
        }
    }

    #[test]
    fn duplicate_names_and_empty_keep_are_refused() {
        let text = format!(
            "{MINIMAL}\n[[jobs]]\nname = \"auth\"\nkind = \"dir\"\ntarget = \"/srv\"\nschedule = \"every 1h\"\nkeep = {{ daily = 0 }}\n"
        );
        let found = problems(&text);
        assert!(
            found
                .iter()
                .any(|p| p.line == 11 && p.message.contains("already used by the job on line 4")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.line == 16 && p.message.contains("keeps nothing")),
            "{found:?}"
        );
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let found = problems("repository = \"/tmp/r\"\n\n[[jobs]\nname = 1\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 3, "{found:?}");
    }

    #[test]
    fn postgres_jobs_may_set_their_connections() {
        let job = |kind: &str, n: i64| {
            format!(
                "{MINIMAL}\n[[jobs]]\nname = \"db\"\nkind = \"{kind}\"\ntarget = \"postgres://db/app\"\nschedule = \"every 1h\"\nconnections = {n}\n"
            )
        };
        let c = parse(&job("postgres", 6), Path::new("m.toml"), &env(&[])).unwrap();
        assert_eq!(c.jobs[1].spec.options.value("connections"), Some("6"));
        let found = problems(&job("postgres", 0));
        assert!(found.iter().any(|p| p.line == 16 && p.message.contains("1 to 64")), "{found:?}");
        let found = problems(&job("sqlite", 2));
        assert!(
            found
                .iter()
                .any(|p| p.line == 16
                    && p.message.contains("`connections` is only for postgres jobs")),
            "{found:?}"
        );
    }

    #[test]
    fn container_jobs_parse_with_a_name_or_a_selector() {
        let text = MINIMAL.to_string()
            + "\n[[jobs]]\nname = \"tenants\"\nkind = \"container\"\nselector = \"label=tier=paid\"\nschedule = \"every 6h\"\n";
        let c = parse(&text, Path::new("m.toml"), &env(&[])).unwrap();
        assert_eq!(c.jobs[1].kind(), &Kind::CONTAINER);
        assert_eq!(c.jobs[1].spec.options.value("selector"), Some("label=tier=paid"));
        let bad = text.replace("label=tier=paid", "tier");
        assert!(problems(&bad).iter().any(|p| p.message.contains("label=KEY=VALUE")));
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../../examples/lifeboatd.toml");
        let c = parse(text, Path::new("examples/lifeboatd.toml"), &env(&[])).unwrap();
        assert_eq!(c.jobs.len(), 5);
        let sessions = c.jobs[4].replica.as_ref().unwrap();
        assert_eq!(sessions.compaction.keep_level1, Duration::from_secs(24 * 3600));
        assert_eq!(c.jobs[4].rpo(chrono::Utc::now()), Duration::from_secs(120));
        assert_eq!(c.password, Some(PasswordSource::File("/etc/lifeboat/password".into())));
        assert!(c.jobs[1].drill.is_some() && c.jobs[1].expect.rto.is_some());
        let tenants = &c.jobs[3].spec.options;
        assert!(tenants.flag("changed-only") && tenants.value("selector").is_some());
        assert_eq!(c.jobs[2].spec.options.values("exclude"), ["cache/**", "*.tmp"]);
    }

    #[test]
    fn a_replica_job_takes_its_keys_and_no_schedule() {
        let job = "[[jobs]]\nname = \"s\"\nkind = \"sqlite-replica\"\ntarget = \"/d/s.db\"\ninterval = \"250ms\"\nkeep_commits = \"10m\"\n";
        let text = MINIMAL.split("[[jobs]]").next().unwrap().to_string() + job;
        let c = parse(&text, Path::new("r.toml"), &env(&[])).unwrap();
        let replica = c.jobs[0].replica.as_ref().unwrap();
        assert_eq!(replica.interval, Duration::from_millis(250));
        assert_eq!(replica.compaction.keep_commits, Duration::from_secs(600));
        assert_eq!(c.jobs[0].kind(), &Kind::SQLITE);
        let found = problems(&format!("{text}schedule = \"@daily\"\n"));
        assert!(found.iter().any(|p| p.message.contains("has no `schedule`")), "{found:?}");
        // The replica's keys belong to replica jobs only.
        let found =
            problems(&MINIMAL.replace("kind = \"sqlite\"", "kind = \"sqlite\"\ninterval = \"1s\""));
        assert!(found.iter().any(|p| p.message.contains("interval")), "{found:?}");
    }

    #[test]
    fn kinds_and_job_keys_come_from_the_registry() {
        let found = problems(&MINIMAL.replace("kind = \"sqlite\"", "kind = \"mysql\""));
        let expected =
            "kind \"mysql\" is not one of sqlite, postgres, postgres-cluster, container or dir";
        assert!(found.iter().any(|p| p.line == 6 && p.message.contains(expected)), "{found:?}");
        let only_dir = Registry::new().with(lifeboat::dir::DirBackend).unwrap();
        match Config::parse(MINIMAL, Path::new("m.toml"), &env(&[]), &only_dir) {
            Err(DaemonError::InvalidConfig { problems, .. }) => {
                assert!(problems[0].message.contains("is not one of dir"), "{problems:?}");
            }
            other => panic!("expected problems, got {other:?}"),
        }
        // A key of another kind names the kinds that take it; a typo gets a did-you-mean
        // among the keys of the job's own kind.
        let text = format!("{MINIMAL}changed_only = true\nexclude = [\"*.tmp\"]\n");
        let found = problems(&text);
        assert!(
            found
                .iter()
                .any(|p| p.line == 10
                    && p.message.contains("`changed_only` is only for container jobs")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.line == 11 && p.message.contains("`exclude` is only for dir jobs")),
            "{found:?}"
        );
        let text = MINIMAL.replace("sqlite", "dir") + "exclued = [\"*.tmp\"]\n";
        let found = problems(&text);
        assert!(
            found.iter().any(|p| p.line == 10 && p.message.contains("did you mean `exclude`")),
            "{found:?}"
        );
    }

    #[test]
    fn drill_options_come_from_the_file_or_their_environment_variable() {
        let server = "postgres://drill@staging/postgres";
        let text = MINIMAL.replacen('\n', &format!("\npostgres_server = \"{server}\"\n"), 1);
        let c = parse(&text, Path::new("m.toml"), &env(&[])).unwrap();
        assert_eq!(c.drill_options.value("postgres-server"), Some(server));
        let vars = env(&[("LIFEBOAT_DRILL_POSTGRES", "postgres://other/postgres")]);
        let c = parse(&text, Path::new("m.toml"), &vars).unwrap();
        assert_eq!(c.drill_options.value("postgres-server"), Some("postgres://other/postgres"));
        let c = parse(MINIMAL, Path::new("m.toml"), &env(&[])).unwrap();
        assert!(c.drill_options.is_empty());
    }

    #[test]
    fn the_scheduler_alone_needs_no_tokens() {
        let text = MINIMAL.replace("tokens = [\"a-long-random-token\"]", "");
        assert!(problems(&text).iter().any(|p| p.message.contains("no API tokens")));
        let c =
            Config::parse_scheduler(&text, Path::new("m.toml"), &env(&[]), &lifeboat::backends())
                .unwrap();
        assert!(c.tokens.is_empty());
    }

    #[test]
    fn the_password_comes_from_a_file_or_a_command_not_both() {
        let with = |lines: &str| MINIMAL.replacen('\n', &format!("\n{lines}\n"), 1);
        let c =
            parse(&with("password_file = \"/etc/lifeboat/pw\""), Path::new("m.toml"), &env(&[]))
                .unwrap();
        assert_eq!(c.password, Some(PasswordSource::File("/etc/lifeboat/pw".into())));
        let c =
            parse(&with("password_command = \"pass lifeboat\""), Path::new("m.toml"), &env(&[]))
                .unwrap();
        assert_eq!(c.password, Some(PasswordSource::Command("pass lifeboat".into())));
        assert_eq!(parse(MINIMAL, Path::new("m.toml"), &env(&[])).unwrap().password, None);
        let found =
            problems(&with("password_file = \"/etc/lifeboat/pw\"\npassword_command = \"pass x\""));
        assert!(found.iter().any(|p| p.line == 3 && p.message.contains("keep one")), "{found:?}");
        let found = problems(&with("password_file = \"\""));
        assert!(found.iter().any(|p| p.line == 2 && p.message.contains("empty")), "{found:?}");
    }

    #[test]
    fn a_password_is_read_from_its_file_or_command() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert!(PasswordSource::File(file.clone()).read().is_ok());
        assert!(PasswordSource::Command(format!("cat {}", file.display())).read().is_ok());
        std::fs::write(&file, "\n").unwrap();
        let err = PasswordSource::File(file.clone()).read().unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = PasswordSource::File(dir.path().join("missing")).read().unwrap_err();
        assert!(err.to_string().contains("password_file"), "{err}");
        let err = PasswordSource::Command("exit 3".into()).read().unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
    }

    #[test]
    fn redacts_secrets_in_urls() {
        assert_eq!(
            redact("https://user:pw@hooks.example/x?token=1"),
            "https://***@hooks.example/x"
        );
        assert_eq!(redact("https://hooks.example/x"), "https://hooks.example/x");
    }
}
