//! One consistent logical backup: a REPEATABLE READ snapshot shared by the recorded counts
//! and `pg_dump --snapshot`.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;

use async_trait::async_trait;
use bytes::Bytes;
use lifeboat_core::producer::channel_stream;
use lifeboat_core::{Backup, ByteStream, Capture, FinishCheck, Kind, Result};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_postgres::{Client, Config};
use tracing::debug;

use crate::archive::{Head, read_head};
use crate::connect::{ServerTools, connect_as, db_message, describe, parse, server_tools};
use crate::database::DatabaseFacts;
use crate::error::PgError;
use crate::parallel::{self, DataPlan, TableInfo};

/// A PostgreSQL database to capture, by connection URL (`PG*` variables fill the gaps).
#[derive(Debug, Clone)]
pub struct PostgresBackup {
    url: String,
    jobs: usize,
}

/// Facts recorded with a PostgreSQL snapshot, all from the dump's own snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresMetadata {
    /// `server_version` of the source.
    pub server_version: String,
    /// Its major version (the `pg_dump`/`pg_restore` needed).
    pub server_major: u32,
    /// The database name.
    pub database: String,
    /// Its encoding.
    pub encoding: String,
    /// User schemas.
    pub schemas: Vec<String>,
    /// Installed extensions.
    pub extensions: Vec<String>,
    /// Sequences, schema-qualified.
    pub sequences: Vec<String>,
    /// Every user table (schema-qualified, quoted as needed) with its exact row count.
    pub tables: BTreeMap<String, u64>,
    /// The stream's format: `pg_dump -Fc -Z0`.
    pub format: String,
    /// Who wrote the table data: `pg_dump`, or lifeboat's parallel `COPY`s.
    #[serde(default)]
    pub writer: String,
    /// What the database itself is: owner, encoding and locale, privileges, settings, the
    /// roles it names. `None` in snapshots taken before lifeboat recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_facts: Option<DatabaseFacts>,
}

impl PostgresBackup {
    /// Captures the database at `url` (`postgres://user:password@host:port/db`).
    pub fn new(url: impl Into<String>) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        PostgresBackup { url: url.into(), jobs: cores.clamp(2, 8) }
    }

    /// Reads table data over `jobs` connections at once (default: the number of cores,
    /// between 2 and 8).
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }
}

async fn query_strings(
    client: &Client,
    target: &str,
    sql: &str,
) -> std::result::Result<Vec<String>, PgError> {
    let rows = client
        .query(sql, &[])
        .await
        .map_err(|e| PgError::Query { target: target.into(), reason: db_message(&e) })?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

/// Exact row counts of every user table, in the client's current transaction.
pub(crate) async fn table_counts(
    client: &Client,
    target: &str,
) -> std::result::Result<BTreeMap<String, u64>, PgError> {
    table_counts_except(client, target, &BTreeMap::new()).await
}

/// Exact row counts of every user table not in `known`, in the client's current transaction.
async fn table_counts_except(
    client: &Client,
    target: &str,
    known: &BTreeMap<String, u64>,
) -> std::result::Result<BTreeMap<String, u64>, PgError> {
    let tables = query_strings(
        client,
        target,
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' ORDER BY 1",
    )
    .await?;
    let mut counts = BTreeMap::new();
    for table in tables.into_iter().filter(|t| !known.contains_key(t)) {
        let row = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .map_err(|e| PgError::Query { target: target.into(), reason: db_message(&e) })?;
        counts.insert(table, row.get::<_, i64>(0) as u64);
    }
    Ok(counts)
}

/// Arguments that point a PostgreSQL tool at the database of `config` (password by env).
pub(crate) fn tool_args(config: &Config, dbname: &str) -> Vec<String> {
    let mut args = server_args(config);
    args.extend(["--no-password".into(), "-d".into(), dbname.into()]);
    args
}

/// `-h`, `-p` and `-U` of `config`: the server and user, never the password (it goes in
/// `PGPASSWORD`).
pub(crate) fn server_args(config: &Config) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(host) = config.get_hosts().first() {
        args.push("-h".into());
        args.push(match host {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        });
    }
    if let Some(port) = config.get_ports().first() {
        args.extend(["-p".into(), port.to_string()]);
    }
    if let Some(user) = config.get_user() {
        args.extend(["-U".into(), user.into()]);
    }
    args
}

/// The password of `config` as text, for `PGPASSWORD`.
pub(crate) fn password(config: &Config) -> Option<String> {
    config.get_password().map(|p| String::from_utf8_lossy(p).into_owned())
}

/// Collects a child's stderr, keeping what matters of it for error messages.
pub(crate) fn collect_stderr(
    stderr: Option<tokio::process::ChildStderr>,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move { summarize_stderr(&read_stderr(stderr).await) })
}

/// All a child wrote to stderr (nothing when it has none or it cannot be read).
pub(crate) async fn read_stderr(stderr: Option<tokio::process::ChildStderr>) -> String {
    let mut text = String::new();
    if let Some(mut s) = stderr {
        let _ = s.read_to_string(&mut text).await;
    }
    text
}

/// The first lines that say what failed (`error:`, the server's `ERROR:`, `FATAL:`), then the
/// end. pg_restore follows its error with the whole failing statement (`Command was: ...`),
/// often many lines: the end alone would show the statement and cut the reason.
fn summarize_stderr(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    let is_error = |l: &str| l.contains("error:") || l.contains("ERROR:") || l.contains("FATAL:");
    let mut kept: Vec<&str> = lines.iter().copied().filter(|l| is_error(l)).take(3).collect();
    for line in lines.iter().rev().take(3).rev() {
        if !kept.contains(line) {
            kept.push(line);
        }
    }
    let mut out = kept.join(" | ");
    if out.len() > 2000 {
        let mut end = 2000;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push_str(" ...");
    }
    out
}

/// Every table, view and foreign table by (schema, name): quoted name and size in pages.
async fn table_infos(
    client: &Client,
    target: &str,
) -> std::result::Result<HashMap<(String, String), TableInfo>, PgError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, \
             quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
             (pg_relation_size(c.oid) / current_setting('block_size')::bigint)::bigint \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'm', 'f', 'p')",
            &[],
        )
        .await
        .map_err(|e| PgError::Query { target: target.into(), reason: db_message(&e) })?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), TableInfo { qualified: r.get(2), pages: r.get(3) }))
        .collect())
}

fn to_json(metadata: &PostgresMetadata) -> Result<serde_json::Value> {
    serde_json::to_value(metadata)
        .map_err(|e| lifeboat_core::Error::Backend { kind: Kind::POSTGRES, message: e.to_string() })
}

#[async_trait]
impl Backup for PostgresBackup {
    fn kind(&self) -> Kind {
        Kind::POSTGRES
    }

    fn default_name(&self) -> String {
        parse(&self.url)
            .ok()
            .and_then(|c| c.get_dbname().map(str::to_string))
            .unwrap_or_else(|| "postgres".into())
    }

    fn target(&self) -> String {
        parse(&self.url).map(|c| describe(&c)).unwrap_or_else(|_| "postgres".into())
    }

    async fn capture(&self) -> Result<Capture> {
        let session = Session::open(&self.url).await?;
        let tools = server_tools(session.metadata.server_major)?;
        let mut dump = PgDump::start(&tools, &session)?;
        // pg_dump writes its table of contents first. With it, the data can come from
        // parallel COPYs in the same snapshot instead of pg_dump's single one.
        let (consumed, head) = read_head(&mut dump.stdout, "pg_dump").await;
        match &head {
            Head::Complete(head) if session.metadata.encoding == "UTF8" => {
                let tables = table_infos(&session.client, &session.target).await?;
                match DataPlan::new(head, &tables, session.metadata.server_major >= 14) {
                    Ok(plan) => {
                        let toc = Bytes::copy_from_slice(consumed.get(..head.len).unwrap_or(&[]));
                        return copy_capture(session, dump, plan, toc, self.jobs).await;
                    }
                    Err(why) => debug!(%why, "pg_dump writes the data"),
                }
            }
            Head::Unsupported(why) => debug!(%why, "pg_dump writes the data"),
            _ => debug!("not UTF8: pg_dump writes the data"),
        }
        pg_dump_capture(session, dump, consumed).await
    }
}

/// A connection in the backup's exported snapshot, and what it recorded about the database.
struct Session {
    config: Config,
    target: String,
    client: Client,
    snapshot: String,
    metadata: PostgresMetadata,
}

impl Session {
    /// Connects, opens a REPEATABLE READ transaction, exports its snapshot and records the
    /// facts the manifest keeps (all but the row counts).
    async fn open(url: &str) -> Result<Session> {
        let config = parse(url)?;
        let target = describe(&config);
        let client = connect_as(&config, "lifeboat backup").await?;
        let q = |e: tokio_postgres::Error| PgError::Query {
            target: target.clone(),
            reason: db_message(&e),
        };
        client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await.map_err(q)?;
        let snapshot: String =
            client.query_one("SELECT pg_export_snapshot()", &[]).await.map_err(q)?.get(0);
        let version_num: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(q)?
            .get(0);
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), current_database()::text, pg_encoding_to_char(encoding)::text \
                 FROM pg_database WHERE datname = current_database()",
                &[],
            )
            .await
            .map_err(q)?;
        let mut metadata = PostgresMetadata {
            server_version: row.get(0),
            server_major: (version_num / 10_000) as u32,
            database: row.get(1),
            encoding: row.get(2),
            format: "pg_dump -Fc -Z0".into(),
            ..Default::default()
        };
        metadata.schemas = query_strings(&client, &target, "SELECT nspname::text FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1").await?;
        metadata.extensions =
            query_strings(&client, &target, "SELECT extname::text FROM pg_extension ORDER BY 1")
                .await?;
        metadata.sequences = query_strings(
            &client,
            &target,
            "SELECT schemaname || '.' || sequencename FROM pg_sequences ORDER BY 1",
        )
        .await?;
        metadata.database_facts =
            Some(DatabaseFacts::read(&client, &target, metadata.server_major).await?);
        Ok(Session { config, target, client, snapshot, metadata })
    }
}

/// `pg_dump -Fc -Z0` running in the session's snapshot.
struct PgDump {
    child: tokio::process::Child,
    stdout: tokio::process::ChildStdout,
    stderr: tokio::task::JoinHandle<String>,
}

impl PgDump {
    fn start(tools: &ServerTools, session: &Session) -> Result<PgDump> {
        let mut command = Command::new(&tools.pg_dump);
        command
            .args(["-Fc", "-Z0", "--snapshot", &session.snapshot])
            .args(tool_args(&session.config, &session.metadata.database))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(pw) = password(&session.config) {
            command.env("PGPASSWORD", pw);
        }
        let mut child = command.spawn().map_err(|e| PgError::Tool {
            tool: "pg_dump",
            status: "not started".into(),
            stderr: format!("{}: {e}", tools.pg_dump.display()),
        })?;
        let stdout = child.stdout.take().ok_or_else(|| PgError::Tool {
            tool: "pg_dump",
            status: "no stdout".into(),
            stderr: String::new(),
        })?;
        let stderr = collect_stderr(child.stderr.take());
        Ok(PgDump { child, stdout, stderr })
    }
}

/// The table of contents `toc` from pg_dump, then the table data by parallel COPYs; pg_dump
/// is stopped once the session holds its table locks.
async fn copy_capture(
    session: Session,
    mut dump: PgDump,
    plan: DataPlan,
    toc: Bytes,
    jobs: usize,
) -> Result<Capture> {
    let Session { config, target, client, snapshot, mut metadata } = session;
    // Hold the tables (as pg_dump did until now) until the capture ends.
    let names: Vec<&str> = plan.entries.iter().map(|e| e.table.as_str()).collect();
    if !names.is_empty() {
        client
            .batch_execute(&format!("LOCK TABLE {} IN ACCESS SHARE MODE", names.join(", ")))
            .await
            .map_err(|e| PgError::Query { target: target.clone(), reason: db_message(&e) })?;
    }
    let _ = dump.child.start_kill();
    let _ = dump.child.wait().await;
    metadata.writer = format!("parallel COPY, {jobs} connections");
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let data = parallel::spawn(plan, config, snapshot, jobs, toc, tx);
    let json = to_json(&metadata)?;
    let finish: FinishCheck = Box::pin(async move {
        let counts = data.await.map_err(|e| PgError::Query {
            target: target.clone(),
            reason: format!("the copy task failed: {e}"),
        })??;
        // Tables without data in the archive are counted here, in the same snapshot.
        let mut all = table_counts_except(&client, &target, &counts).await?;
        all.extend(counts);
        metadata.tables = all;
        let _ = client.batch_execute("COMMIT").await;
        Ok(Some(to_json(&metadata)?))
    });
    Ok(Capture::new(channel_stream(rx), json).on_finish(finish))
}

/// pg_dump's own output (the bytes already read, then the rest), with row counts by
/// `count(*)` in the same snapshot.
async fn pg_dump_capture(session: Session, dump: PgDump, consumed: Vec<u8>) -> Result<Capture> {
    let Session { target, client, mut metadata, .. } = session;
    let PgDump { mut child, stdout, stderr } = dump;
    metadata.writer = "pg_dump".into();
    metadata.tables = table_counts(&client, &target).await?;
    let json = to_json(&metadata)?;
    // The exported snapshot lives as long as this transaction: keep the client until
    // pg_dump has finished, then check its exit status before the snapshot is written.
    let finish: FinishCheck = Box::pin(async move {
        let status = child.wait().await.map_err(|e| PgError::Tool {
            tool: "pg_dump",
            status: "lost".into(),
            stderr: e.to_string(),
        })?;
        let stderr = stderr.await.unwrap_or_default();
        let _ = client.batch_execute("COMMIT").await;
        if !status.success() {
            return Err(
                PgError::Tool { tool: "pg_dump", status: status.to_string(), stderr }.into()
            );
        }
        Ok(None)
    });
    let reader: ByteStream = Box::pin(std::io::Cursor::new(consumed).chain(stdout));
    Ok(Capture::new(reader, json).on_finish(finish))
}

#[cfg(test)]
mod tests {
    use super::summarize_stderr;

    #[test]
    fn the_error_line_survives_a_long_failing_statement() {
        let mut text = String::from(
            "pg_restore: while PROCESSING TOC:\n\
             pg_restore: from TOC entry 215; 1259 16390 TABLE t app\n\
             pg_restore: error: could not execute query: ERROR:  permission denied for schema public\n\
             Command was: CREATE TABLE public.t (\n",
        );
        for i in 0..40 {
            text.push_str(&format!("    c{i} integer,\n"));
        }
        text.push_str(");\n");
        let summary = summarize_stderr(&text);
        assert!(summary.contains("ERROR:  permission denied for schema public"), "{summary}");
        assert!(summary.contains(");"), "{summary}");
        assert_eq!(summarize_stderr("one\ntwo\n"), "one | two");
    }
}
