//! Physical base backups of a whole cluster: the server's own `pg_basebackup` of its major
//! version, streaming one tar (the data directory, the WAL from the backup's start to its
//! end, and the server's `backup_manifest`) straight into the repository, where content-
//! defined chunks and delta chunks keep a second base backup of a mostly unchanged cluster
//! small. The start and stop LSN, timeline, system identifier and server version go into the
//! snapshot's metadata.

use std::process::Stdio;

use async_trait::async_trait;
use lifeboat_core::{Backup, ByteStream, Capture, FinishCheck, Kind, Result};
use serde::{Deserialize, Serialize};
use tokio::process::Command;
use tokio_postgres::Config;

use crate::backup::{password, read_stderr, server_args};
use crate::connect::{connect_as, db_message, describe, parse, server_of};
use crate::error::PgError;

/// The snapshot kind of base backups.
pub const CLUSTER_KIND: Kind = Kind::new_static("postgres-cluster");

/// What a base backup records about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// `server_version`, as the server reports it.
    pub server_version: String,
    /// The major version (`15`).
    pub server_major: u32,
    /// The cluster's system identifier: WAL of another cluster never applies to it.
    pub system_identifier: String,
    /// The timeline the backup started on.
    pub timeline: u32,
    /// Where the backup's WAL starts (`0/2000028`).
    pub start_lsn: String,
    /// Where it ends: recovery must replay at least to here.
    pub stop_lsn: String,
    /// WAL segment size in bytes.
    pub wal_segment_size: u64,
    /// Whether the server archives WAL (`archive_mode`); without it a base backup restores
    /// only to its own end.
    pub archive_mode: String,
    /// The server, as `host:port` (no password).
    pub server: String,
    /// The bootstrap superuser (the role drills connect as).
    #[serde(default)]
    pub superuser: String,
    /// How the files were read: `files` (from the data directory, on the host) or
    /// `replication` (the server's pg_basebackup); empty in backups from before the choice.
    #[serde(default)]
    pub via: String,
}

/// How a base backup reads the cluster's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadVia {
    /// From the data directory when this process can read it (on the database host, as root
    /// or the server's owner, with a role that may start a backup), else over replication.
    #[default]
    Auto,
    /// From the data directory, or fail saying why not.
    Files,
    /// Over the replication protocol, with the server's `pg_basebackup`.
    Replication,
}

impl ReadVia {
    /// Reads `auto`, `files` or `replication`.
    ///
    /// # Errors
    /// Anything else.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "auto" => Ok(ReadVia::Auto),
            "files" => Ok(ReadVia::Files),
            "replication" => Ok(ReadVia::Replication),
            other => Err(lifeboat_core::Error::InvalidInput {
                what: format!("{other:?} is not a way to read a cluster"),
                hint: "give auto, files or replication".into(),
            }),
        }
    }
}

/// A base backup of the cluster behind a `postgres://` URL (any database; the replication
/// connection is to the cluster).
#[derive(Debug, Clone)]
pub struct ClusterBackup {
    url: String,
    via: ReadVia,
}

impl ClusterBackup {
    /// A base backup of the cluster at `url`, its files read as `via` says.
    pub fn new(url: impl Into<String>, via: ReadVia) -> Self {
        ClusterBackup { url: url.into(), via }
    }
}

/// `HOST-PORT` of a URL: the name a cluster's snapshots and WAL get by default (a Unix
/// socket's folder would not make a name: `localhost` stands for it).
pub fn cluster_name(config: &Config) -> String {
    let (host, port) = server_of(config);
    let host = if host.starts_with('/') { "localhost".to_string() } else { host };
    format!("{host}-{port}")
}

#[async_trait]
impl Backup for ClusterBackup {
    fn kind(&self) -> Kind {
        CLUSTER_KIND
    }

    fn default_name(&self) -> String {
        parse(&self.url).map(|c| cluster_name(&c)).unwrap_or_else(|_| "postgres-cluster".into())
    }

    fn target(&self) -> String {
        parse(&self.url).map(|c| describe(&c)).unwrap_or_else(|_| "postgres".into())
    }

    async fn capture(&self) -> Result<Capture> {
        let config = parse(&self.url)?;
        let target = describe(&config);
        let client = connect_as(&config, "lifeboat base backup").await?;
        let query = |reason: String| PgError::Query { target: target.clone(), reason };
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), \
                        current_setting('server_version_num')::int / 10000, \
                        (SELECT system_identifier::text FROM pg_control_system()), \
                        (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'), \
                        current_setting('archive_mode'), \
                        (SELECT rolname::text FROM pg_roles WHERE oid = 10)",
                &[],
            )
            .await
            .map_err(|e| query(db_message(&e)))?;
        let server_major: i32 = row.get(1);
        let mut metadata = ClusterMetadata {
            server_version: row.get(0),
            server_major: server_major as u32,
            system_identifier: row.get(2),
            wal_segment_size: row.get::<_, i64>(3) as u64,
            archive_mode: row.get(4),
            superuser: row.get(5),
            server: {
                let (host, port) = server_of(&config);
                format!("{host}:{port}")
            },
            ..ClusterMetadata::default()
        };
        if self.via != ReadVia::Replication {
            let found = crate::cluster_files::local_data_dir(
                &client,
                &metadata.system_identifier,
                metadata.server_major,
            )
            .await;
            match found {
                Ok(dir) => return crate::cluster_files::capture(client, target, dir, metadata),
                Err(reason) if self.via == ReadVia::Files => {
                    return Err(PgError::DataDirectory { dir: String::new(), reason }.into());
                }
                Err(reason) => {
                    tracing::info!(%reason, "reading the cluster over the replication protocol");
                }
            }
        }
        drop(client);
        metadata.via = "replication".into();
        let tool = crate::connect::server_tool("pg_basebackup", metadata.server_major)?;
        let mut command = Command::new(&tool);
        command
            .args(["-D", "-", "-F", "t", "-X", "fetch", "--checkpoint=fast", "--verbose"])
            .args(["--label", "lifeboat base backup", "--no-password"])
            .args(server_args(&config))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(pw) = password(&config) {
            command.env("PGPASSWORD", pw);
        }
        let mut child = command.spawn().map_err(|e| PgError::Tool {
            tool: "pg_basebackup",
            status: "not started".into(),
            stderr: format!("{}: {e}", tool.display()),
        })?;
        let stdout = child.stdout.take().ok_or_else(|| PgError::Tool {
            tool: "pg_basebackup",
            status: "no stdout".into(),
            stderr: String::new(),
        })?;
        // All of it: the WAL range is read from its `--verbose` lines.
        let stderr = tokio::spawn(read_stderr(child.stderr.take()));
        let json = to_json(&metadata)?;
        let finish: FinishCheck = Box::pin(async move {
            let status = child.wait().await.map_err(|e| PgError::Tool {
                tool: "pg_basebackup",
                status: "lost".into(),
                stderr: e.to_string(),
            })?;
            let text = stderr.await.unwrap_or_default();
            let fail = |status: String| PgError::Tool {
                tool: "pg_basebackup",
                status,
                stderr: text.lines().rev().take(5).collect::<Vec<_>>().join(" | "),
            };
            if !status.success() {
                return Err(fail(status.to_string()).into());
            }
            let (start, timeline, stop) = wal_points(&text)
                .ok_or_else(|| fail("its output did not name the WAL start and end".into()))?;
            metadata.start_lsn = start;
            metadata.timeline = timeline;
            metadata.stop_lsn = stop;
            Ok(Some(to_json(&metadata)?))
        });
        let reader: ByteStream = Box::pin(stdout);
        Ok(Capture::new(reader, json).on_finish(finish))
    }
}

/// The start LSN, its timeline and the end LSN from `pg_basebackup --verbose`'s output
/// (`write-ahead log start point: 0/2000028 on timeline 1`, `write-ahead log end point:
/// 0/2000100`).
fn wal_points(text: &str) -> Option<(String, u32, String)> {
    let after = |marker: &str| {
        text.lines().find_map(|l| l.split_once(marker).map(|(_, rest)| rest.trim().to_string()))
    };
    let start = after("write-ahead log start point:")?;
    let (lsn, timeline) = start.split_once(" on timeline ")?;
    let stop = after("write-ahead log end point:")?;
    Some((lsn.to_string(), timeline.trim().parse().ok()?, stop))
}

fn to_json(metadata: &ClusterMetadata) -> Result<serde_json::Value> {
    serde_json::to_value(metadata)
        .map_err(|e| PgError::Query { target: "metadata".into(), reason: e.to_string() }.into())
}

#[cfg(test)]
mod tests {
    use super::wal_points;

    #[test]
    fn the_wal_range_is_read_from_verbose_output() {
        let text = "pg_basebackup: initiating base backup, waiting for checkpoint to complete\n\
                    pg_basebackup: checkpoint completed\n\
                    pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1\n\
                    pg_basebackup: write-ahead log end point: 0/2000138\n\
                    pg_basebackup: base backup completed\n";
        assert_eq!(wal_points(text), Some(("0/2000028".into(), 1, "0/2000138".into())));
        assert_eq!(wal_points("pg_basebackup: error: connection failed"), None);
    }
}
