//! PostgreSQL's part in restore drills: restore into a scratch database on a given server,
//! check row counts and the user's expectations, drop it again.

use async_trait::async_trait;
use lifeboat_core::drill::{
    Expectations, SCRATCH_PREFIX, ScratchDrill, ScratchOutcome, process_alive, scratch_owner,
};
use lifeboat_core::{
    Check, Kind, MemorySafetyNet, NoProgress, RestoreContext, RestoreOptions, RestorePlan, Result,
    Snapshot,
};
use tokio_postgres::Client;

use crate::connect::{connect, db_message, parse};
use crate::restore::{MissingRoles, PostgresRestorePlan};

/// Drills PostgreSQL snapshots into scratch databases on one server.
#[derive(Debug, Clone)]
pub struct PostgresDrill {
    /// A URL of the server to restore into (its database part is ignored).
    server_url: String,
}

impl PostgresDrill {
    /// Drills into scratch databases on the server at `server_url`.
    pub fn new(server_url: impl Into<String>) -> Self {
        PostgresDrill { server_url: server_url.into() }
    }

    fn scratch_name() -> String {
        // PostgreSQL folds unquoted names to lower case; keep scratch names plain.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{}{}-{nanos}", SCRATCH_PREFIX, std::process::id()).replace('-', "_")
    }

    fn url_for(&self, database: &str) -> Result<String> {
        let mut url = url_without_db(&self.server_url);
        url.push('/');
        url.push_str(database);
        parse(&url)?;
        Ok(url)
    }

    async fn admin(&self) -> Result<Client> {
        let mut config = parse(&self.server_url)?;
        config.dbname("postgres");
        Ok(connect(&config).await?)
    }
}

fn url_without_db(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

#[async_trait]
impl ScratchDrill for PostgresDrill {
    fn kind(&self) -> Kind {
        Kind::POSTGRES
    }

    async fn restore_and_check(
        &self,
        snapshot: &dyn Snapshot,
        expect: &Expectations,
    ) -> Result<ScratchOutcome> {
        let name = Self::scratch_name();
        let url = self.url_for(&name)?;
        let mut outcome = ScratchOutcome::default();
        let plan = PostgresRestorePlan::prepare(
            snapshot,
            &url,
            &RestoreOptions { create: true, ..Default::default() },
        )
        .await
        // A drill leaves nothing behind on its server: no roles are created for it.
        .map(|plan| plan.with_missing_roles(MissingRoles::Skip));
        let result = match plan {
            Ok(plan) => {
                let net = MemorySafetyNet::default();
                let ctx = RestoreContext { snapshot, safety_net: &net, progress: &NoProgress };
                plan.execute(&ctx).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(report) => {
                outcome.bytes = report.bytes;
                outcome.checks.extend(report.checks);
                let client = connect(&parse(&url)?).await?;
                outcome.checks.extend(expectations(&client, expect).await);
            }
            Err(e) => outcome.checks.push(Check::fail("restore", e.to_string())),
        }
        let admin = self.admin().await?;
        let _ =
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
        Ok(outcome)
    }

    fn clean_leftovers(&self) -> usize {
        // Runs from the synchronous drill setup: use a small runtime of its own.
        let this = self.clone();
        let run = async move {
            let Ok(admin) = this.admin().await else { return 0 };
            let prefix = SCRATCH_PREFIX.replace('-', "_");
            let Ok(rows) = admin
                .query(
                    "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
                    &[&format!("{prefix}%")],
                )
                .await
            else {
                return 0;
            };
            let mut dropped = 0;
            for row in rows {
                let name: String = row.get(0);
                let dead =
                    scratch_owner(&name.replace('_', "-")).is_some_and(|pid| !process_alive(pid));
                if dead
                    && admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await
                        .is_ok()
                {
                    dropped += 1;
                }
            }
            dropped
        };
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(run))
                .unwrap_or(0)
        })
        .join()
        .unwrap_or(0)
    }
}

/// The checks of `expect` (tables, row minimums, a query) on a connected database.
pub(crate) async fn expectations(client: &Client, expect: &Expectations) -> Vec<Check> {
    let mut checks = Vec::new();
    for table in &expect.tables {
        let found = client.query_opt("SELECT 1 FROM pg_tables WHERE tablename = $1 OR schemaname || '.' || tablename = $1", &[table]).await;
        let exists = matches!(found, Ok(Some(_)));
        checks.push(Check::new(
            format!("table {table} exists"),
            exists,
            if exists { "present" } else { "missing" },
        ));
    }
    for (table, min) in &expect.min_rows {
        match client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await {
            Ok(row) => {
                let n: i64 = row.get(0);
                checks.push(Check::new(
                    format!("at least {min} rows in {table}"),
                    n as u64 >= *min,
                    format!("{n} rows"),
                ));
            }
            Err(e) => {
                checks.push(Check::fail(format!("at least {min} rows in {table}"), db_message(&e)))
            }
        }
    }
    if let Some(query) = &expect.query {
        match client.query(query.as_str(), &[]).await {
            Ok(rows) if !rows.is_empty() => {
                checks.push(Check::pass("query returns a row", query.clone()))
            }
            Ok(_) => {
                checks.push(Check::fail("query returns a row", format!("no row from: {query}")))
            }
            Err(e) => checks
                .push(Check::fail("query returns a row", format!("{query}: {}", db_message(&e)))),
        }
    }
    if !expect.files.is_empty() {
        checks.push(Check::fail("files", "file expectations do not apply to PostgreSQL snapshots"));
    }
    checks
}
