//! Restoring a PostgreSQL snapshot into a new database: create it, feed `pg_restore` from the
//! repository, compare every table's row count with the manifest, `ANALYZE`; on any failure
//! the new database is dropped again.

use std::process::Stdio;

use async_trait::async_trait;
use lifeboat_core::{
    Check, Error, Kind, PlanStep, Progress, RestoreContext, RestoreOptions, RestorePlan,
    RestoreReport, Result, Snapshot, SnapshotId,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command;
use tokio_postgres::Config;

use crate::backup::{PostgresMetadata, collect_stderr, password, table_counts, tool_args};
use crate::connect::{connect, db_message, describe, parse, server_tools};
use crate::error::PgError;

/// The steps that put a PostgreSQL snapshot into a new database.
#[derive(Debug, Clone)]
pub struct PostgresRestorePlan {
    url: String,
    config: Config,
    database: String,
    snapshot: SnapshotId,
    name: String,
    expected: PostgresMetadata,
    /// The target exists and is replaced: restore under `staging`, then swap names.
    replace: Option<Replace>,
    /// Only this table (`name` or `schema.name`).
    table: Option<String>,
    /// Only the schema, no rows.
    schema_only: bool,
}

#[derive(Debug, Clone)]
struct Replace {
    staging: String,
    old: String,
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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
        let manifest = snapshot.manifest();
        if manifest.kind != Kind::Postgres {
            return Err(Error::Unsupported {
                operation: "restoring as a PostgreSQL database".into(),
                kind: manifest.kind,
            });
        }
        let expected: PostgresMetadata = serde_json::from_value(manifest.metadata.clone())
            .map_err(|e| Error::Backend {
                kind: Kind::Postgres,
                message: format!("unreadable metadata: {e}"),
            })?;
        let config = parse(target_url)?;
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
        let replace = exists.then(|| Replace {
            staging: format!("{database}_lifeboat_restore_{}", std::process::id()),
            old: format!("{database}_before_restore_{}", chrono_stamp()),
        });
        if !exists && !options.create {
            return Err(Error::InvalidInput {
                what: format!("database {database} does not exist on {}", describe(&config)),
                hint: "pass --create to create it".into(),
            });
        }
        Ok(PostgresRestorePlan {
            url: target_url.to_string(),
            config,
            database,
            snapshot: snapshot.id(),
            name: manifest.name.clone(),
            expected,
            replace,
            table: None,
            schema_only: false,
        })
    }

    /// Restores only `table` (`name` or `schema.name`) and/or only the schema.
    pub fn with_selection(mut self, table: Option<String>, schema_only: bool) -> Self {
        self.table = table;
        self.schema_only = schema_only;
        self
    }

    /// pg_restore's selection arguments.
    fn selection_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(table) = &self.table {
            match table.split_once('.') {
                Some((schema, name)) => {
                    args.extend(["-n".into(), schema.into(), "-t".into(), name.into()])
                }
                None => args.extend(["-t".into(), table.clone()]),
            }
        }
        if self.schema_only {
            args.push("--schema-only".into());
        }
        args
    }

    /// The manifest's tables this restore brings back, with the rows expected in each.
    fn expected_rows(&self) -> Vec<(String, u64)> {
        self.expected
            .tables
            .iter()
            .filter(|(name, _)| match &self.table {
                Some(t) if t.contains('.') => name.as_str() == t || name.replace('"', "") == *t,
                Some(t) => name.rsplit('.').next().is_some_and(|n| n.trim_matches('"') == t),
                None => true,
            })
            .map(|(name, rows)| (name.clone(), if self.schema_only { 0 } else { *rows }))
            .collect()
    }

    /// Restores into database `into` (the target, or the staging name when replacing).
    async fn restore(&self, ctx: &RestoreContext<'_>, into: &str) -> Result<(u64, Vec<Check>)> {
        let tools = server_tools(self.expected.server_major)?;
        let mut command = Command::new(&tools.pg_restore);
        command
            .args(["--exit-on-error", "--no-owner"])
            .args(self.selection_args())
            .args(tool_args(&self.config, into))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(pw) = password(&self.config) {
            command.env("PGPASSWORD", pw);
        }
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
        let mut reader = ctx.snapshot.open().await?;
        ctx.progress
            .start(&format!("restore {}", self.database), Some(ctx.snapshot.manifest().size));
        let copied = feed(&mut reader, &mut stdin, ctx.progress).await;
        drop(stdin);
        ctx.progress.finish();
        let status = child.wait().await.map_err(|e| PgError::Tool {
            tool: "pg_restore",
            status: "lost".into(),
            stderr: e.to_string(),
        })?;
        let stderr = stderr.await.unwrap_or_default();
        // A damaged snapshot is the cause when reading it failed; failing to write is only
        // the symptom of pg_restore failing (or being killed), whose own status says more.
        let bytes = match copied {
            Ok(bytes) => bytes,
            Err(Fed::Read(e)) => return Err(Error::from_stream("reading the snapshot", e)),
            Err(Fed::Write(e)) if status.success() => {
                return Err(Error::from_stream("feeding pg_restore", e));
            }
            Err(Fed::Write(_)) => 0,
        };
        if !status.success() {
            return Err(
                PgError::Tool { tool: "pg_restore", status: status.to_string(), stderr }.into()
            );
        }
        let mut into_config = self.config.clone();
        into_config.dbname(into);
        let target = describe(&into_config);
        let client = connect(&into_config).await?;
        let actual = table_counts(&client, &target).await?;
        let mut checks = vec![Check::pass("pg_restore", format!("{bytes} bytes restored"))];
        let wanted = self.expected_rows();
        if wanted.is_empty() {
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

/// Which side of [`feed`] failed.
enum Fed {
    Read(std::io::Error),
    Write(std::io::Error),
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
            stdin.flush().await.map_err(Fed::Write)?;
            return Ok(total);
        }
        stdin.write_all(&buf[..n]).await.map_err(Fed::Write)?;
        total += n as u64;
        progress.advance(n as u64);
    }
}

/// The same server and credentials, connected to the `postgres` maintenance database.
fn maintenance(config: &Config) -> Config {
    let mut admin = config.clone();
    admin.dbname("postgres");
    admin
}

fn chrono_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    secs.to_string()
}

#[async_trait]
impl RestorePlan for PostgresRestorePlan {
    fn steps(&self) -> Vec<PlanStep> {
        let target = describe(&self.config);
        let db = quote_ident(&self.database);
        let snapshot = self.snapshot.short();
        let major = self.expected.server_major;
        match &self.replace {
            None => vec![
                PlanStep::new("create", format!("CREATE DATABASE {db} on {target}")),
                PlanStep::new(
                    "restore",
                    format!("pg_restore {major} fed from snapshot {snapshot} (no temporary file)"),
                ),
                PlanStep::new(
                    "verify",
                    format!(
                        "row counts of {} tables against the manifest, then ANALYZE",
                        self.expected.tables.len()
                    ),
                ),
                PlanStep::new("roll back on failure", format!("DROP DATABASE {db}")),
            ],
            Some(r) => vec![
                PlanStep::new(
                    "safety snapshot",
                    format!(
                        "back up the current {db} into the repository as {:?}, tagged {}",
                        self.name,
                        lifeboat_core::PRE_RESTORE_TAG
                    ),
                ),
                PlanStep::new(
                    "restore beside it",
                    format!(
                        "CREATE DATABASE {}; pg_restore {major} fed from snapshot {snapshot}",
                        quote_ident(&r.staging)
                    ),
                ),
                PlanStep::new(
                    "verify",
                    format!(
                        "row counts of {} tables against the manifest, then ANALYZE",
                        self.expected.tables.len()
                    ),
                ),
                PlanStep::new(
                    "swap",
                    format!(
                        "end other sessions on {db}; rename {db} to {} and {} to {db}",
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
            ],
        }
    }

    async fn execute(&self, ctx: &RestoreContext<'_>) -> Result<RestoreReport> {
        let admin = connect(&maintenance(&self.config)).await?;
        let target = describe(&self.config);
        let q = |e: tokio_postgres::Error| PgError::Query {
            target: target.clone(),
            reason: db_message(&e),
        };
        let safety_snapshot = match &self.replace {
            Some(_) => {
                let tags = lifeboat_core::Tags::from([(
                    lifeboat_core::PRE_RESTORE_TAG.to_string(),
                    self.snapshot.to_hex(),
                )]);
                let source = crate::PostgresBackup::new(self.url.clone());
                Some(ctx.safety_net.save(&source, &self.name, tags).await?)
            }
            None => None,
        };
        let into = self.replace.as_ref().map_or(self.database.as_str(), |r| r.staging.as_str());
        admin.batch_execute(&format!("CREATE DATABASE {}", quote_ident(into))).await.map_err(q)?;
        let result = self.restore(ctx, into).await.and_then(|(bytes, checks)| {
            let failures: Vec<String> = checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            if failures.is_empty() {
                Ok((bytes, checks))
            } else {
                Err(Error::VerificationFailed { subject: target.clone(), failures })
            }
        });
        let (bytes, mut checks) = match result {
            Ok(done) => done,
            Err(e) => {
                let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(into));
                if let Err(d) = admin.batch_execute(&drop).await {
                    tracing::warn!(error = %d, "could not drop the half-restored database");
                }
                return Err(e);
            }
        };
        if let Some(r) = &self.replace {
            // Between the two renames the name serves nothing: an interrupt waits for both.
            let _swap = lifeboat_core::critical::CriticalSection::enter();
            // Sessions on the old database would block the rename: end them, then swap in
            // one transaction-less pair of renames (each is atomic in the catalog).
            let terminate = format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
                self.database.replace('\'', "''")
            );
            admin.batch_execute(&terminate).await.map_err(q)?;
            admin
                .batch_execute(&format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    quote_ident(&self.database),
                    quote_ident(&r.old)
                ))
                .await
                .map_err(q)?;
            if let Err(e) = admin
                .batch_execute(&format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    quote_ident(&r.staging),
                    quote_ident(&self.database)
                ))
                .await
            {
                let _ = admin
                    .batch_execute(&format!(
                        "ALTER DATABASE {} RENAME TO {}",
                        quote_ident(&r.old),
                        quote_ident(&self.database)
                    ))
                    .await;
                return Err(q(e).into());
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
