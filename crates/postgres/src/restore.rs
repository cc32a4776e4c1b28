//! Restoring a PostgreSQL snapshot into a new database: create it, feed `pg_restore` from the
//! repository, compare every table's row count with the manifest, `ANALYZE`; on any failure
//! the new database is dropped again.

use std::process::Stdio;

use async_trait::async_trait;
use lifeboat_core::{
    Check, Error, Kind, PlanStep, RestoreContext, RestoreOptions, RestorePlan, RestoreReport,
    Result, Snapshot, SnapshotId,
};
use tokio::process::Command;
use tokio_postgres::Config;

use crate::backup::{PostgresMetadata, collect_stderr, password, table_counts, tool_args};
use crate::connect::{connect, db_message, describe, parse, server_tools};
use crate::error::PgError;

/// The steps that put a PostgreSQL snapshot into a new database.
#[derive(Debug, Clone)]
pub struct PostgresRestorePlan {
    config: Config,
    database: String,
    snapshot: SnapshotId,
    expected: PostgresMetadata,
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
        if exists {
            if options.force {
                return Err(Error::Unsupported { operation: "restore --force over an existing PostgreSQL database (not implemented yet; restore into a new database)".into(), kind: Kind::Postgres });
            }
            return Err(Error::TargetExists { target: describe(&config) });
        }
        if !options.create {
            return Err(Error::InvalidInput {
                what: format!("database {database} does not exist on {}", describe(&config)),
                hint: "pass --create to create it".into(),
            });
        }
        Ok(PostgresRestorePlan { config, database, snapshot: snapshot.id(), expected })
    }

    async fn restore(&self, ctx: &RestoreContext<'_>) -> Result<(u64, Vec<Check>)> {
        let tools = server_tools(self.expected.server_major)?;
        let mut command = Command::new(&tools.pg_restore);
        command
            .args(["--exit-on-error", "--no-owner"])
            .args(tool_args(&self.config, &self.database))
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
        let copied = tokio::io::copy(&mut reader, &mut stdin).await;
        drop(stdin);
        ctx.progress.finish();
        let status = child.wait().await.map_err(|e| PgError::Tool {
            tool: "pg_restore",
            status: "lost".into(),
            stderr: e.to_string(),
        })?;
        let stderr = stderr.await.unwrap_or_default();
        let bytes = copied.map_err(|e| Error::from_stream("feeding pg_restore", e))?;
        if !status.success() {
            return Err(
                PgError::Tool { tool: "pg_restore", status: status.to_string(), stderr }.into()
            );
        }
        let target = describe(&self.config);
        let client = connect(&self.config).await?;
        let actual = table_counts(&client, &target).await?;
        let mut checks = vec![Check::pass("pg_restore", format!("{bytes} bytes restored"))];
        for (table, want) in &self.expected.tables {
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

/// The same server and credentials, connected to the `postgres` maintenance database.
fn maintenance(config: &Config) -> Config {
    let mut admin = config.clone();
    admin.dbname("postgres");
    admin
}

#[async_trait]
impl RestorePlan for PostgresRestorePlan {
    fn steps(&self) -> Vec<PlanStep> {
        let target = describe(&self.config);
        vec![
            PlanStep::new(
                "create",
                format!("CREATE DATABASE {} on {target}", quote_ident(&self.database)),
            ),
            PlanStep::new(
                "restore",
                format!(
                    "pg_restore {} fed from snapshot {} (no temporary file)",
                    self.expected.server_major,
                    self.snapshot.short()
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
                "roll back on failure",
                format!("DROP DATABASE {}", quote_ident(&self.database)),
            ),
        ]
    }

    async fn execute(&self, ctx: &RestoreContext<'_>) -> Result<RestoreReport> {
        let admin = connect(&maintenance(&self.config)).await?;
        let target = describe(&self.config);
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&self.database)))
            .await
            .map_err(|e| PgError::Query { target: target.clone(), reason: db_message(&e) })?;
        let result = self.restore(ctx).await.and_then(|(bytes, checks)| {
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
        match result {
            Ok((bytes, checks)) => Ok(RestoreReport {
                target,
                snapshot: self.snapshot,
                safety_snapshot: None,
                bytes,
                checks,
            }),
            Err(e) => {
                let drop =
                    format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&self.database));
                if let Err(d) = admin.batch_execute(&drop).await {
                    tracing::warn!(error = %d, "could not drop the half-restored database");
                }
                Err(e)
            }
        }
    }
}
