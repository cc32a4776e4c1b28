//! Restoring a PostgreSQL snapshot into a new database: create it with the recorded owner,
//! encoding and locale (creating missing roles first), feed `pg_restore` from the repository,
//! compare every table's row count with the manifest, `ANALYZE`, then give it the recorded
//! privileges and settings; on any failure the new database is dropped again. Over an existing
//! database the new one is made beside it and the names are swapped in one transaction.

use std::process::Stdio;

use async_trait::async_trait;
use lifeboat_core::{
    Check, Error, Kind, PlanStep, Progress, RestoreContext, RestoreOptions, RestorePlan,
    RestoreReport, Result, Snapshot, SnapshotId,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command;
use tokio_postgres::Config;

use crate::archive::{Head, TableSelection, read_head, select_table};
use crate::backup::{PostgresMetadata, collect_stderr, password, table_counts, tool_args};
use crate::connect::{connect, db_message, describe, parse, server_tools};
use crate::database::{DatabaseFacts, quote_ident};
use crate::error::PgError;

/// What to do about roles the snapshot names that the target cluster lacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissingRoles {
    /// Create them without login, so every object keeps its owner and grants.
    #[default]
    Create,
    /// Create nothing: objects are owned by the restoring user and grants are left out
    /// (`pg_restore --no-owner --no-privileges`).
    Skip,
}

/// The longest database name PostgreSQL keeps (NAMEDATALEN - 1 bytes); longer names are
/// silently truncated, which would make the staging and kept names collide or lie.
const MAX_NAME: usize = 63;

/// The steps that put a PostgreSQL snapshot into a new database.
#[derive(Debug, Clone)]
pub struct PostgresRestorePlan {
    url: String,
    config: Config,
    database: String,
    snapshot: SnapshotId,
    expected: PostgresMetadata,
    /// The target exists and is replaced: restore under `staging`, then swap names.
    replace: Option<Replace>,
    /// Only this table (`name` or `schema.name`).
    table: Option<String>,
    /// Only the schema, no rows.
    schema_only: bool,
    /// Roles the snapshot names that the target cluster lacks.
    missing_roles: Vec<String>,
    /// What to do about them.
    roles: MissingRoles,
}

#[derive(Debug, Clone)]
struct Replace {
    staging: String,
    old: String,
}

/// The names a `--force` restore puts beside `database`: the staging database it restores
/// into (by process id) and the name the previous database is kept under (by time in
/// milliseconds, so two restores in a row keep two). Base 36 keeps the suffixes short:
/// names up to 48 bytes fit PostgreSQL's 63.
fn beside_names(database: &str, pid: u32, millis: u64) -> Result<Replace> {
    let replace = Replace {
        staging: format!("{database}_lbnew_{}", base36(pid.into())),
        old: format!("{database}_lbold_{}", base36(millis)),
    };
    let longest = replace.staging.len().max(replace.old.len());
    if longest > MAX_NAME {
        return Err(Error::InvalidInput {
            what: format!(
                "database name {database:?} is too long to restore over: the names beside it \
                 ({:?}) would be {longest} bytes, over PostgreSQL's {MAX_NAME}",
                replace.old
            ),
            hint: format!(
                "restore into a new database with a name of at most {} bytes (--create), then \
                 swap the names yourself with ALTER DATABASE ... RENAME",
                MAX_NAME - (longest - database.len())
            ),
        });
    }
    Ok(replace)
}

/// `name`, `schema.name`, either part possibly double-quoted (`"Order Items"`,
/// `shop."a.b"`), as stored names: quotes removed, `""` read as `"`.
pub(crate) fn split_qualified(spec: &str) -> (Option<String>, String) {
    let mut schema = None;
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted && schema.is_none() => schema = Some(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    (schema, current)
}

pub(crate) fn base36(mut n: u64) -> String {
    let mut digits = Vec::new();
    loop {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().map(|&d| d as char).collect()
}

impl PostgresRestorePlan {
    /// Plans restoring `snapshot` into the database named in `target_url`. Reads the server's
    /// catalog, changes nothing.
    ///
    /// # Errors
    /// [`Error::TargetExists`] when the database exists (replacing a live database is not
    /// implemented yet); [`Error::InvalidInput`] when it does not exist and `create` is not set,
    /// or the server cannot be reached.
    pub async fn prepare(
        snapshot: &dyn Snapshot,
        target_url: &str,
        options: &RestoreOptions,
    ) -> Result<Self> {
        let config = parse(target_url)?;
        Self::prepare_config(snapshot, target_url.to_string(), config, options).await
    }

    /// As [`PostgresRestorePlan::prepare`], into the database `config` names; `url` is what
    /// a safety snapshot of an existing target backs up.
    pub(crate) async fn prepare_config(
        snapshot: &dyn Snapshot,
        url: String,
        config: Config,
        options: &RestoreOptions,
    ) -> Result<Self> {
        let manifest = snapshot.manifest();
        if manifest.kind != Kind::POSTGRES {
            return Err(Error::Unsupported {
                operation: "restoring as a PostgreSQL database".into(),
                kind: manifest.kind.clone(),
            });
        }
        let expected: PostgresMetadata = serde_json::from_value(manifest.metadata.clone())
            .map_err(|e| Error::Backend {
                kind: Kind::POSTGRES,
                message: format!("unreadable metadata: {e}"),
            })?;
        let database = config
            .get_dbname()
            .map(str::to_string)
            .ok_or_else(|| PgError::BadUrl { reason: "the URL names no database".into() })?;
        let admin = connect(&maintenance(&config)).await?;
        let exists = admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
            .await
            .map_err(|e| PgError::Query { target: describe(&config), reason: db_message(&e) })?
            .is_some();
        if exists && !options.force {
            return Err(Error::TargetExists { target: describe(&config) });
        }
        let replace = match exists {
            true => Some(beside_names(&database, std::process::id(), unix_millis())?),
            false => None,
        };
        if !exists && !options.create {
            return Err(Error::MissingOption {
                kind: Kind::POSTGRES,
                option: "create".into(),
                why: format!("database {database} does not exist on {}", describe(&config)),
            });
        }
        let missing_roles = match &expected.database_facts {
            Some(facts) => admin
                .query(
                    "SELECT r FROM unnest($1::text[]) r \
                     WHERE r NOT IN (SELECT rolname FROM pg_roles) ORDER BY 1",
                    &[&facts.roles],
                )
                .await
                .map_err(|e| PgError::Query { target: describe(&config), reason: db_message(&e) })?
                .iter()
                .map(|r| r.get(0))
                .collect(),
            None => Vec::new(),
        };
        Ok(PostgresRestorePlan {
            url,
            config,
            database,
            snapshot: snapshot.id(),
            expected,
            replace,
            table: None,
            schema_only: false,
            missing_roles,
            roles: MissingRoles::default(),
        })
    }

    /// Chooses what happens to roles the snapshot names that the target lacks.
    pub fn with_missing_roles(mut self, roles: MissingRoles) -> Self {
        self.roles = roles;
        self
    }

    /// pg_restore's arguments about owners and grants: all kept when the roles are known and
    /// present (or created); left out when some are missing and are not to be created;
    /// owners only left out, as before, for snapshots that do not record the roles.
    fn owner_args(&self) -> &'static [&'static str] {
        if self.expected.database_facts.is_none() {
            &["--no-owner"]
        } else if self.roles == MissingRoles::Skip && !self.missing_roles.is_empty() {
            &["--no-owner", "--no-privileges"]
        } else {
            &[]
        }
    }

    /// The roles left out of ownership and grants.
    fn skipped_roles(&self) -> &[String] {
        match self.roles {
            MissingRoles::Skip => &self.missing_roles,
            MissingRoles::Create => &[],
        }
    }

    /// `CREATE DATABASE` for `into`, with the recorded owner, encoding and locale.
    fn create_sql(&self, into: &str) -> String {
        let mut sql = format!("CREATE DATABASE {}", quote_ident(into));
        if let Some(facts) = &self.expected.database_facts {
            let owner = Some(facts.owner.as_str())
                .filter(|o| !self.skipped_roles().contains(&o.to_string()));
            sql.push_str(&facts.create_options(owner));
        }
        sql
    }

    /// The plan step that deals with roles, if any.
    fn roles_step(&self) -> Option<PlanStep> {
        let facts = self.expected.database_facts.as_ref()?;
        let detail = match (self.missing_roles.is_empty(), self.roles) {
            (true, _) => format!("all {} roles the snapshot names exist", facts.roles.len()),
            (false, MissingRoles::Create) => format!(
                "CREATE ROLE ... NOLOGIN for the roles the target lacks: {}",
                self.missing_roles.join(", ")
            ),
            (false, MissingRoles::Skip) => format!(
                "roles missing in the target, not created: {}; objects will be owned by the \
                 restoring user and grants left out",
                self.missing_roles.join(", ")
            ),
        };
        Some(PlanStep::new("roles", detail))
    }

    /// Creates the missing roles (or says they are skipped); the check that reports it.
    async fn prepare_roles(
        &self,
        admin: &tokio_postgres::Client,
        target: &str,
    ) -> Result<Option<Check>> {
        let Some(facts) = &self.expected.database_facts else {
            let note = format!(
                "snapshot {} was taken before lifeboat recorded database settings and roles: the \
                 database gets the server's default owner, encoding, privileges and settings, and \
                 objects are owned by the restoring user",
                self.snapshot.short()
            );
            tracing::warn!("{note}");
            return Ok(Some(Check::pass("database settings", note)));
        };
        if self.missing_roles.is_empty() {
            return Ok(Some(Check::pass(
                "roles",
                format!("all {} roles the snapshot names exist", facts.roles.len()),
            )));
        }
        if self.roles == MissingRoles::Skip {
            let note = format!(
                "roles missing in the target and not created: {}; objects are owned by the \
                 restoring user and grants were left out",
                self.missing_roles.join(", ")
            );
            tracing::warn!("{note}");
            return Ok(Some(Check::pass("roles", note)));
        }
        for role in &self.missing_roles {
            admin
                .batch_execute(&format!("CREATE ROLE {} NOLOGIN", quote_ident(role)))
                .await
                .map_err(|e| Error::InvalidInput {
                    what: format!(
                        "the snapshot's objects belong to role {role}, which {target} lacks, and \
                         creating it failed: {}",
                        db_message(&e)
                    ),
                    hint: "create the role yourself, restore as a user allowed to create roles, \
                           or restore without owners and grants (skip missing roles)"
                        .into(),
                })?;
        }
        let note = format!(
            "roles missing in the target, created without login: {}",
            self.missing_roles.join(", ")
        );
        tracing::warn!("{note}");
        Ok(Some(Check::pass("roles", note)))
    }

    /// Restores only `table` (`name` or `schema.name`) and/or only the schema.
    pub fn with_selection(mut self, table: Option<String>, schema_only: bool) -> Self {
        self.table = table;
        self.schema_only = schema_only;
        self
    }

    /// pg_restore's selection arguments: the `-L` list of `listed` when the archive's table
    /// of contents could be read, else the table's name (`-n`/`-t`).
    fn selection_args(&self, listed: Option<&std::path::Path>) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(list) = listed {
            args.extend(["-L".into(), list.display().to_string()]);
        } else if let Some(table) = &self.table {
            // pg_restore matches names as they are stored: unquoted, never folded.
            let (schema, name) = split_qualified(table);
            if let Some(schema) = schema {
                args.extend(["-n".into(), schema]);
            }
            args.extend(["-t".into(), name]);
        }
        if self.schema_only {
            args.push("--schema-only".into());
        }
        args
    }

    /// The manifest's tables this restore brings back, with the rows expected in each: all,
    /// those `listed` (the table and its partitions), or those named like the table.
    fn expected_rows(&self, listed: Option<&TableSelection>) -> Vec<(String, u64)> {
        let wanted = self.table.as_deref().map(split_qualified);
        self.expected
            .tables
            .iter()
            .filter(|(key, _)| {
                let (s, n) = split_qualified(key);
                match (listed, &wanted) {
                    (Some(listed), _) => {
                        listed.tables.iter().any(|(ls, ln)| *ln == n && Some(ls) == s.as_ref())
                    }
                    (None, Some((schema, name))) => {
                        n == *name && (schema.is_none() || s == *schema)
                    }
                    (None, None) => true,
                }
            })
            .map(|(name, rows)| (name.clone(), if self.schema_only { 0 } else { *rows }))
            .collect()
    }

    /// What restoring the one table asked for takes, from the snapshot's table of contents;
    /// `None` (pg_restore then selects by name) when it cannot be read.
    async fn table_selection(
        &self,
        snapshot: &dyn Snapshot,
        table: &str,
    ) -> Result<Option<TableSelection>> {
        let mut reader = snapshot.open().await?;
        let (_, head) = read_head(&mut reader, "the snapshot").await;
        match head {
            Head::Complete(head) => {
                let (schema, name) = split_qualified(table);
                Ok(Some(select_table(&head.entries, schema.as_deref(), &name)))
            }
            Head::Incomplete | Head::Unsupported(_) => {
                tracing::warn!(
                    table,
                    "the snapshot's table of contents could not be read: restoring the table by \
                     name only (without partitions, indexes or constraints)"
                );
                Ok(None)
            }
        }
    }

    /// Restores into database `into` (the target, or the staging name when replacing).
    async fn restore(&self, ctx: &RestoreContext<'_>, into: &str) -> Result<(u64, Vec<Check>)> {
        let tools = server_tools(self.expected.server_major)?;
        let mut into_config = self.config.clone();
        into_config.dbname(into);
        let target = describe(&into_config);
        let listed = match &self.table {
            Some(table) => self.table_selection(ctx.snapshot, table).await?,
            None => None,
        };
        let wanted = self.expected_rows(listed.as_ref());
        // Kept until pg_restore is done with it.
        let list_file = match &listed {
            Some(listed) => Some(write_list(listed)?),
            None => None,
        };
        if self.table.is_some() {
            // A selection restores the table but not its schema.
            let client = connect(&into_config).await?;
            let mut schemas: Vec<String> = match &listed {
                Some(listed) => listed.tables.iter().map(|(schema, _)| schema.clone()).collect(),
                None => wanted.iter().filter_map(|(key, _)| split_qualified(key).0).collect(),
            };
            schemas.sort();
            schemas.dedup();
            for schema in schemas {
                client
                    .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(&schema)))
                    .await
                    .map_err(|e| PgError::Query {
                        target: target.clone(),
                        reason: db_message(&e),
                    })?;
            }
        }
        let mut command = Command::new(&tools.pg_restore);
        command
            .arg("--exit-on-error")
            .args(self.owner_args())
            .args(self.selection_args(list_file.as_ref().map(|f| f.path())))
            .args(tool_args(&self.config, into));
        if let Some(pw) = password(&self.config) {
            command.env("PGPASSWORD", pw);
        }
        let label = format!("restore {}", self.database);
        let bytes = run_pg_restore(&mut command, ctx.snapshot, &label, ctx.progress).await?;
        let client = connect(&into_config).await?;
        let actual = table_counts(&client, &target).await?;
        drop(list_file);
        let mut checks = vec![Check::pass("pg_restore", format!("{bytes} bytes restored"))];
        let found = match &listed {
            Some(listed) => !listed.tables.is_empty(),
            None => !wanted.is_empty(),
        };
        if !found {
            checks.push(Check::fail(
                "tables",
                format!("the snapshot has no table {:?}", self.table.as_deref().unwrap_or("")),
            ));
        }
        for (table, want) in &wanted {
            match actual.get(table) {
                Some(got) => checks.push(Check::new(
                    format!("rows in {table}"),
                    got == want,
                    format!("{got} (manifest: {want})"),
                )),
                None => checks.push(Check::fail(format!("table {table}"), "missing")),
            }
        }
        client
            .batch_execute("ANALYZE")
            .await
            .map_err(|e| PgError::Query { target, reason: db_message(&e) })?;
        Ok((bytes, checks))
    }
}

/// Writes pg_restore's `-L` list of `listed` to a temporary file.
pub(crate) fn write_list(listed: &TableSelection) -> Result<tempfile::NamedTempFile> {
    let io = |e: std::io::Error| PgError::Tool {
        tool: "pg_restore",
        status: "no list file".into(),
        stderr: format!("writing the list of what to restore: {e}"),
    };
    let mut file =
        tempfile::Builder::new().prefix("lifeboat-pg-restore-").tempfile().map_err(io)?;
    std::io::Write::write_all(&mut file, listed.list().as_bytes()).map_err(io)?;
    Ok(file)
}

/// Starts `command` (pg_restore and its arguments; stdin, stdout and stderr are set here),
/// feeds it the snapshot's stream with progress under `label`, and waits for it. Returns the
/// bytes of the stream, all of which were read: when pg_restore stops reading early (it has
/// all a selection needs), the rest is still read, so the stream's end-of-stream check (its
/// whole SHA-256) runs.
///
/// # Errors
/// pg_restore not starting, lost or failing (its status and stderr); the snapshot not
/// opening or failing its checks.
pub(crate) async fn run_pg_restore(
    command: &mut Command,
    snapshot: &dyn Snapshot,
    label: &str,
    progress: &dyn Progress,
) -> Result<u64> {
    command.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| PgError::Tool {
        tool: "pg_restore",
        status: "not started".into(),
        stderr: e.to_string(),
    })?;
    let stderr = collect_stderr(child.stderr.take());
    let mut stdin = child.stdin.take().ok_or_else(|| PgError::Tool {
        tool: "pg_restore",
        status: "no stdin".into(),
        stderr: String::new(),
    })?;
    let mut reader = snapshot.open().await?;
    progress.start(label, Some(snapshot.manifest().size));
    let fed = feed(&mut reader, &mut stdin, progress).await;
    drop(stdin);
    progress.finish();
    let status = child.wait().await.map_err(|e| PgError::Tool {
        tool: "pg_restore",
        status: "lost".into(),
        stderr: e.to_string(),
    })?;
    let stderr = stderr.await.unwrap_or_default();
    // A damaged snapshot is the cause when reading it failed; failing to write is only the
    // symptom of pg_restore failing (or being killed), whose own status says more, or of it
    // having read all it needs.
    let bytes = match fed {
        Ok(bytes) => bytes,
        Err(Fed::Read(e)) => return Err(Error::from_stream("reading the snapshot", e)),
        Err(Fed::Write) if status.success() => {
            tokio::io::copy(&mut reader, &mut tokio::io::sink())
                .await
                .map_err(|e| Error::from_stream("reading the snapshot", e))?;
            snapshot.manifest().size
        }
        Err(Fed::Write) => 0,
    };
    if !status.success() {
        return Err(PgError::Tool { tool: "pg_restore", status: status.to_string(), stderr }.into());
    }
    Ok(bytes)
}

/// Which side of [`feed`] failed.
enum Fed {
    Read(std::io::Error),
    /// pg_restore stopped reading: why is in its own status.
    Write,
}

/// Copies the snapshot into `pg_restore`'s stdin, reporting progress; returns the bytes.
async fn feed(
    reader: &mut (impl AsyncRead + Unpin),
    stdin: &mut (impl AsyncWrite + Unpin),
    progress: &dyn Progress,
) -> std::result::Result<u64, Fed> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await.map_err(Fed::Read)?;
        if n == 0 {
            stdin.flush().await.map_err(|_| Fed::Write)?;
            return Ok(total);
        }
        stdin.write_all(&buf[..n]).await.map_err(|_| Fed::Write)?;
        total += n as u64;
        progress.advance(n as u64);
    }
}

/// The same server and credentials, connected to the `postgres` maintenance database.
pub(crate) fn maintenance(config: &Config) -> Config {
    let mut admin = config.clone();
    admin.dbname("postgres");
    admin
}

pub(crate) fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[async_trait]
impl RestorePlan for PostgresRestorePlan {
    fn steps(&self) -> Vec<PlanStep> {
        let target = describe(&self.config);
        let db = quote_ident(&self.database);
        let snapshot = self.snapshot.short();
        let major = self.expected.server_major;
        let verify = PlanStep::new(
            "verify",
            format!(
                "row counts of {} tables against the manifest, then ANALYZE",
                self.expected.tables.len()
            ),
        );
        let settings = PlanStep::new(
            "database settings",
            match &self.expected.database_facts {
                Some(f) => format!(
                    "owner {}, encoding {}, locale {}/{}, {} privileges, {} settings, connection \
                     limit {}{}",
                    f.owner,
                    f.encoding,
                    f.collate,
                    f.ctype,
                    f.acl.as_ref().map_or("default".to_string(), |a| a.len().to_string()),
                    f.settings.len(),
                    f.connection_limit,
                    if f.comment.is_some() { ", comment" } else { "" }
                ),
                None => "not recorded in this snapshot: the server's defaults".into(),
            },
        );
        let mut steps: Vec<PlanStep> = self.roles_step().into_iter().collect();
        match &self.replace {
            None => steps.extend([
                PlanStep::new("create", format!("{} on {target}", self.create_sql(&self.database))),
                PlanStep::new(
                    "restore",
                    format!("pg_restore {major} fed from snapshot {snapshot} (no temporary file)"),
                ),
                verify,
                settings,
                PlanStep::new("roll back on failure", format!("DROP DATABASE {db}")),
            ]),
            Some(r) => steps.extend([
                PlanStep::new("create beside it", self.create_sql(&r.staging)),
                PlanStep::new(
                    "safety snapshot",
                    format!(
                        "back up the current {db} into the repository as {:?}, tagged {}={}",
                        self.database,
                        lifeboat_core::PRE_RESTORE_TAG,
                        self.snapshot.to_hex()
                    ),
                ),
                PlanStep::new(
                    "restore beside it",
                    format!(
                        "pg_restore {major} fed from snapshot {snapshot} into {}",
                        quote_ident(&r.staging)
                    ),
                ),
                verify,
                settings,
                PlanStep::new(
                    "swap",
                    format!(
                        "in one transaction: end other sessions on {db} and {}, rename {db} to {} \
                         and {} to {db}",
                        quote_ident(&r.staging),
                        quote_ident(&r.old),
                        quote_ident(&r.staging)
                    ),
                ),
                PlanStep::new(
                    "keep the old one",
                    format!("{} stays until you DROP DATABASE it", quote_ident(&r.old)),
                ),
                PlanStep::new(
                    "roll back on failure",
                    format!(
                        "DROP DATABASE {}; {db} is never touched before the swap",
                        quote_ident(&r.staging)
                    ),
                ),
            ]),
        }
        steps
    }

    async fn execute(&self, ctx: &RestoreContext<'_>) -> Result<RestoreReport> {
        let mut admin = connect(&maintenance(&self.config)).await?;
        let target = describe(&self.config);
        let q = |e: tokio_postgres::Error| PgError::Query {
            target: target.clone(),
            reason: db_message(&e),
        };
        let mut checks: Vec<Check> =
            self.prepare_roles(&admin, &target).await?.into_iter().collect();
        let into = self.replace.as_ref().map_or(self.database.as_str(), |r| r.staging.as_str());
        admin.batch_execute(&self.create_sql(into)).await.map_err(|e| {
            match &self.expected.database_facts {
                // The usual cause: the target server lacks the snapshot's locale or cannot
                // pair it with its encoding. Refused here, before anything else happens.
                Some(f) => Error::InvalidInput {
                    what: format!(
                        "cannot create database {into} on {target} with the snapshot's encoding \
                         {} and locale {}/{}: {}",
                        f.encoding,
                        f.collate,
                        f.ctype,
                        db_message(&e)
                    ),
                    hint: "restore to a server that has this locale (install it, e.g. with \
                           locale-gen, and restart PostgreSQL); nothing was changed"
                        .into(),
                },
                None => q(e).into(),
            }
        })?;
        let result = self.fill(ctx, &admin, into).await;
        let (safety_snapshot, bytes, restored) = match result {
            Ok(done) => done,
            Err(e) => {
                drop_database(&admin, into).await;
                return Err(e);
            }
        };
        checks.extend(restored);
        if let Some(r) = &self.replace {
            // Both renames commit together or not at all: a kill at any moment leaves the
            // name serving either the old database or the new one, never nothing.
            let _swap = lifeboat_core::critical::CriticalSection::enter();
            match swap(&mut admin, &self.database, r).await {
                Ok(ended) => {
                    if !ended.is_empty() {
                        checks.push(Check::pass("sessions ended", ended.join(", ")));
                    }
                }
                Err(e) => {
                    drop_database(&admin, into).await;
                    return Err(Error::Backend {
                        kind: Kind::POSTGRES,
                        message: format!(
                            "the swap on {target} did not happen ({}); {} serves as before and \
                             the restored copy was dropped",
                            db_message(&e),
                            self.database
                        ),
                    });
                }
            }
            checks.push(Check::pass(
                "previous database kept",
                format!(
                    "as {}: drop it with DROP DATABASE {} when you no longer need it",
                    r.old,
                    quote_ident(&r.old)
                ),
            ));
        }
        Ok(RestoreReport { target, snapshot: self.snapshot, safety_snapshot, bytes, checks })
    }
}

impl PostgresRestorePlan {
    /// Everything between creating `into` and the swap: the safety snapshot, pg_restore, the
    /// checks, the database-level settings. The caller drops `into` when this fails.
    async fn fill(
        &self,
        ctx: &RestoreContext<'_>,
        admin: &tokio_postgres::Client,
        into: &str,
    ) -> Result<(Option<SnapshotId>, u64, Vec<Check>)> {
        let safety_snapshot = match &self.replace {
            Some(_) => {
                // Named after what it holds, the target, as backing it up would name it: a
                // safety copy under the source's name would stand in for the source.
                let source = crate::PostgresBackup::new(self.url.clone());
                let name = lifeboat_core::Backup::default_name(&source);
                Some(ctx.save_safety(&source, &name, lifeboat_core::Tags::new()).await?)
            }
            None => None,
        };
        let (bytes, mut checks) = self.restore(ctx, into).await?;
        let failures: Vec<String> =
            checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.name, c.detail)).collect();
        if !failures.is_empty() {
            return Err(Error::VerificationFailed { subject: describe(&self.config), failures });
        }
        if let Some(facts) = &self.expected.database_facts {
            checks.push(apply_facts(admin, &self.config, facts, into, self.skipped_roles()).await?);
        }
        Ok((safety_snapshot, bytes, checks))
    }
}

/// Gives database `into` the recorded privileges, settings, limit and comment.
async fn apply_facts(
    admin: &tokio_postgres::Client,
    config: &Config,
    facts: &DatabaseFacts,
    into: &str,
    skip: &[String],
) -> Result<Check> {
    let statements = facts.apply_statements(into, skip);
    for sql in &statements {
        admin.batch_execute(sql).await.map_err(|e| PgError::Query {
            target: describe(config),
            reason: format!("{sql}: {}", db_message(&e)),
        })?;
    }
    Ok(Check::pass(
        "database settings",
        format!(
            "owner {}, encoding {}, locale {}/{}; {} statements for privileges, settings, \
             connection limit and comment",
            facts.owner,
            facts.encoding,
            facts.collate,
            facts.ctype,
            statements.len()
        ),
    ))
}

/// Ends other sessions on both databases and swaps the names, in one transaction; returns
/// the sessions ended, per database.
async fn swap(
    admin: &mut tokio_postgres::Client,
    database: &str,
    r: &Replace,
) -> std::result::Result<Vec<String>, tokio_postgres::Error> {
    let tx = admin.transaction().await?;
    // A session on the staging database (someone looking at the restore) would make the
    // second rename wait, then fail: end those too. New sessions wait for the renames' locks.
    let rows = tx
        .query(
            "SELECT datname::text, count(*) FILTER (WHERE pg_terminate_backend(pid)) \
             FROM pg_stat_activity WHERE datname IN ($1, $2) AND pid <> pg_backend_pid() \
             GROUP BY 1 ORDER BY 1",
            &[&database, &r.staging],
        )
        .await?;
    let ended = rows
        .iter()
        .filter(|row| row.get::<_, i64>(1) > 0)
        .map(|row| format!("{} on {}", row.get::<_, i64>(1), row.get::<_, String>(0)))
        .collect();
    tx.batch_execute(&format!(
        "ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} RENAME TO {}",
        quote_ident(database),
        quote_ident(&r.old),
        quote_ident(&r.staging),
        quote_ident(database)
    ))
    .await?;
    tx.commit().await?;
    Ok(ended)
}

/// Drops a half-made database, ending any session on it.
pub(crate) async fn drop_database(admin: &tokio_postgres::Client, name: &str) {
    let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
    if let Err(d) = admin.batch_execute(&drop).await {
        tracing::warn!(error = %d, database = name, "could not drop the half-restored database");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_split_and_unquoted_as_stored() {
        let split = |s: &str| split_qualified(s);
        assert_eq!(split("t"), (None, "t".into()));
        assert_eq!(split("shop.orders"), (Some("shop".into()), "orders".into()));
        assert_eq!(split("\"Order Items\""), (None, "Order Items".into()));
        assert_eq!(split("\"My Shop\".\"a.b\""), (Some("My Shop".into()), "a.b".into()));
        assert_eq!(
            split("public.\"say \"\"hi\"\"\""),
            (Some("public".into()), "say \"hi\"".into())
        );
    }

    #[test]
    fn names_beside_a_long_database_fit_or_are_refused() {
        // pid_max on Linux, and a time in 2050.
        let r = beside_names(&"d".repeat(48), 4_194_304, 2_540_000_000_000).unwrap();
        assert!(r.staging.len() <= MAX_NAME && r.old.len() <= MAX_NAME, "{r:?}");
        assert_ne!(r.staging, r.old);
        let long = "d".repeat(49);
        match beside_names(&long, 4_194_304, 2_540_000_000_000) {
            Err(Error::InvalidInput { what, hint }) => {
                assert!(what.contains("too long") && hint.contains("48 bytes"), "{what} / {hint}")
            }
            other => panic!("a 49-byte name was not refused: {other:?}"),
        }
    }
}
