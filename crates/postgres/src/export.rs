//! Exports of PostgreSQL snapshots as a SQL script `psql` loads as it is: the snapshot's
//! archive turned into text by `pg_restore` of the source server's major version, the whole
//! database or one table (with its partitions, indexes and constraints).
//!
//! The script goes to a temporary file first and reaches its place (or standard output) only
//! once the whole stream was read and checked and `pg_restore` succeeded: a damaged snapshot
//! never leaves a plausible half script behind.

use std::process::Stdio;

use lifeboat_core::{
    Error, ExportFormat, ExportReport, ExportRequest, ExportTo, Kind, Progress, Result, Snapshot,
    TableExport,
};
use tokio::process::Command;

use crate::archive::{Head, read_head, select_table};
use crate::backup::{PostgresMetadata, collect_stderr};
use crate::connect::server_tools;
use crate::error::PgError;
use crate::restore::{Fed, feed, split_qualified, write_list};

/// Exports `snapshot` as `request` says (see the module's documentation).
///
/// # Errors
/// A snapshot that is not a PostgreSQL one; `--where`, CSV or JSON lines, or more than one
/// table (not offered for PostgreSQL yet); a table the snapshot does not have; a file that
/// is already there; `pg_restore` missing or failing; a damaged snapshot.
pub async fn export(
    snapshot: &dyn Snapshot,
    request: &ExportRequest,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    let manifest = snapshot.manifest();
    if manifest.kind != Kind::POSTGRES {
        return Err(Error::Unsupported { operation: "export".into(), kind: manifest.kind.clone() });
    }
    let not_yet = |what: &str, hint: &str| Error::InvalidInput {
        what: format!("{what} is not offered for PostgreSQL snapshots yet"),
        hint: hint.into(),
    };
    if request.predicate.is_some() {
        return Err(not_yet(
            "export --where",
            "export the database or one --table as SQL, load it into a scratch database and select the rows there",
        ));
    }
    if request.format != ExportFormat::Sql {
        return Err(not_yet(
            &format!("--format {}", request.format.as_str()),
            "export --format sql, load it into a scratch database, and use psql's \\copy for CSV",
        ));
    }
    if request.tables.len() > 1 {
        return Err(not_yet("more than one --table", "export one table at a time, or all of them"));
    }
    let expected: PostgresMetadata =
        serde_json::from_value(manifest.metadata.clone()).map_err(|e| Error::Backend {
            kind: Kind::POSTGRES,
            message: format!("the manifest's PostgreSQL metadata is unreadable: {e}"),
        })?;
    let tools = server_tools(expected.server_major)?;

    // One table: what pg_restore needs for it, from the archive's table of contents.
    let listed = match request.tables.first() {
        Some(table) => {
            let mut reader = snapshot.open().await?;
            let (_, head) = read_head(&mut reader, "the snapshot").await;
            let Head::Complete(head) = head else {
                return Err(Error::Backend {
                    kind: Kind::POSTGRES,
                    message: "the snapshot's table of contents could not be read".into(),
                });
            };
            let (schema, name) = split_qualified(table);
            let listed = select_table(&head.entries, schema.as_deref(), &name);
            if listed.tables.is_empty() {
                return Err(Error::InvalidInput {
                    what: format!("--table {table}: the snapshot has no such table"),
                    hint: format!(
                        "its tables are: {}",
                        expected.tables.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
            Some(listed)
        }
        None => None,
    };
    let list_file = match &listed {
        Some(listed) => Some(write_list(listed)?),
        None => None,
    };

    // The script is written beside where it goes (or in TMPDIR for standard output).
    let (dir, final_path) = match &request.to {
        ExportTo::Folder(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the folder", dir, e))?;
            let name = format!("{}.sql", expected.database.replace(['/', '\0'], "_"));
            let path = dir.join(name.trim_start_matches('.'));
            if path.exists() {
                return Err(Error::TargetExists { target: path.display().to_string() });
            }
            (dir.clone(), Some(path))
        }
        ExportTo::Stdout => (std::env::temp_dir(), None),
    };
    let temp = tempfile::Builder::new()
        .prefix(".lifeboat-export-")
        .suffix(".sql")
        .tempfile_in(&dir)
        .map_err(|e| Error::io("creating a temporary file in", &dir, e))?;

    let mut command = Command::new(&tools.pg_restore);
    command.arg("--file").arg(temp.path());
    if let Some(list) = &list_file {
        command.arg("-L").arg(list.path());
    }
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
    progress.start(&format!("export {}", manifest.name), Some(manifest.size));
    let fed = feed(&mut reader, &mut stdin, progress).await;
    drop(stdin);
    progress.finish();
    let status = child.wait().await.map_err(|e| PgError::Tool {
        tool: "pg_restore",
        status: "lost".into(),
        stderr: e.to_string(),
    })?;
    let stderr = stderr.await.unwrap_or_default();
    match fed {
        Err(Fed::Read(e)) => return Err(Error::from_stream("reading the snapshot", e)),
        // pg_restore stops reading once it has written what a table needs: the rest of the
        // stream is still read, so its end's check (the whole stream's SHA-256) runs.
        Err(Fed::Write(_)) if status.success() => {
            tokio::io::copy(&mut reader, &mut tokio::io::sink())
                .await
                .map_err(|e| Error::from_stream("reading the snapshot", e))?;
        }
        _ => {}
    }
    if !status.success() {
        return Err(PgError::Tool { tool: "pg_restore", status: status.to_string(), stderr }.into());
    }
    drop(list_file);

    let file = match final_path {
        Some(path) => {
            temp.persist_noclobber(&path).map_err(|e| match e.error.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    Error::TargetExists { target: path.display().to_string() }
                }
                _ => Error::io("moving the export to", &path, e.error),
            })?;
            Some(path.display().to_string())
        }
        None => {
            let mut from = std::fs::File::open(temp.path())
                .map_err(|e| Error::io("reading", temp.path(), e))?;
            std::io::copy(&mut from, &mut std::io::stdout().lock())
                .map_err(|e| Error::io("writing", "standard output", e))?;
            None
        }
    };
    // The rows the script holds are the snapshot's, as its manifest counted them.
    let tables = expected
        .tables
        .iter()
        .filter(|(key, _)| match &listed {
            Some(listed) => {
                let (s, n) = split_qualified(key);
                listed.tables.iter().any(|(ls, ln)| *ln == n && Some(ls) == s.as_ref())
            }
            None => true,
        })
        .map(|(table, rows)| TableExport { table: table.clone(), rows: *rows, file: file.clone() })
        .collect();
    Ok(ExportReport { snapshot: snapshot.id(), format: ExportFormat::Sql, predicate: None, tables })
}
