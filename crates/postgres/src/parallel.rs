//! The table data of a custom archive, written by parallel `COPY`s in one exported snapshot.
//!
//! Each `TABLE DATA` entry becomes one or more *pieces*: a whole table, or (PostgreSQL 14 and
//! later, for tables larger than two pieces) a range of its pages read with a TID range scan.
//! Workers, each on its own connection that imported the snapshot, take pieces in archive
//! order; a sequencer forwards them in that same order, framing every row the way `pg_dump`
//! does. A worker that runs ahead fills its piece's bounded buffer and waits, so memory stays
//! at a few buffers per worker whatever the tables' sizes. Rows are counted on the way:
//! these are the snapshot's exact row counts, with no second pass over the tables.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::Config;
use tracing::debug;

use crate::archive::{ArchiveHead, block_end, block_start, put_int};
use crate::connect::{connect_as, db_message, describe};
use crate::error::PgError;

/// Pages of a table per piece when tables are split (16 MiB of heap with 8 KiB pages).
const PIECE_PAGES: i64 = 2048;
/// How the copying connections name themselves in `pg_stat_activity`.
const COPY_APPLICATION: &str = "lifeboat copy";
/// Framed rows handed over at once.
const BATCH: usize = 256 << 10;
/// Batches a piece may buffer before its worker waits for the sequencer (4 MiB).
const PIECE_BUFFER: usize = 16;

/// A table as the catalog knows it.
#[derive(Debug, Clone)]
pub(crate) struct TableInfo {
    /// `schema.table`, quoted as needed (the key of the recorded row counts).
    pub qualified: String,
    /// Pages of its main fork.
    pub pages: i64,
}

/// One `COPY` whose rows go into the data block of `entry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Piece {
    /// Index into [`DataPlan::entries`].
    pub entry: usize,
    /// The statement.
    pub sql: String,
}

/// A data entry of the archive.
#[derive(Debug, Clone)]
pub(crate) struct DataEntry {
    /// Its dump id.
    pub dump_id: i64,
    /// The table (`schema.table`, quoted as needed).
    pub table: String,
}

/// Every piece of table data, in archive order.
#[derive(Debug, Clone)]
pub(crate) struct DataPlan {
    /// Integer size of the archive.
    pub int_size: usize,
    /// The data entries.
    pub entries: Vec<DataEntry>,
    /// The pieces; those of one entry are adjacent and in page order.
    pub pieces: Vec<Piece>,
}

impl DataPlan {
    /// Plans the data of `head`. `tables` maps (schema, name) to the table; `split` allows
    /// page ranges (TID range scans need PostgreSQL 14).
    ///
    /// # Errors
    /// Why the archive's data cannot be written this way (large objects, a table the catalog
    /// does not list, a statement that is not a plain `COPY`): the caller falls back to
    /// `pg_dump`'s own data.
    pub fn new(
        head: &ArchiveHead,
        tables: &HashMap<(String, String), TableInfo>,
        split: bool,
    ) -> Result<DataPlan, String> {
        let mut plan =
            DataPlan { int_size: head.int_size, entries: Vec::new(), pieces: Vec::new() };
        for entry in head.entries.iter().filter(|e| e.has_data) {
            if entry.desc != "TABLE DATA" {
                return Err(format!("the archive holds {} data", entry.desc));
            }
            let table =
                tables.get(&(entry.namespace.clone(), entry.tag.clone())).ok_or_else(|| {
                    format!("table {}.{} is not in the catalog", entry.namespace, entry.tag)
                })?;
            let statement = entry
                .copy_stmt
                .as_deref()
                .and_then(|s| s.strip_suffix(" FROM stdin;\n"))
                .filter(|s| s.starts_with("COPY "))
                .ok_or_else(|| format!("no COPY statement for {}", table.qualified))?;
            let index = plan.entries.len();
            plan.entries.push(DataEntry { dump_id: entry.dump_id, table: table.qualified.clone() });
            let columns = statement
                .strip_prefix(&format!("COPY {} (", table.qualified))
                .and_then(|rest| rest.strip_suffix(')'));
            match columns {
                Some(columns) if split && table.pages > 2 * PIECE_PAGES => {
                    let mut start = 0;
                    while start < table.pages {
                        let end = start + PIECE_PAGES;
                        let upper = if end >= table.pages {
                            String::new() // open-ended: pages added since are read too
                        } else {
                            format!(" AND ctid < '({end},0)'::tid")
                        };
                        plan.pieces.push(Piece {
                            entry: index,
                            sql: format!(
                                "COPY (SELECT {columns} FROM ONLY {} WHERE ctid >= '({start},0)'::tid{upper}) TO STDOUT",
                                table.qualified
                            ),
                        });
                        start = end;
                    }
                }
                _ => {
                    plan.pieces.push(Piece { entry: index, sql: format!("{statement} TO STDOUT") })
                }
            }
        }
        Ok(plan)
    }
}

/// What a worker sends for a piece.
enum Message {
    Rows(Bytes),
    Done(u64),
}

type PieceResult = Result<Message, PgError>;

/// Runs `plan` with `jobs` workers in the exported `snapshot`, sending `head` and then the
/// data blocks to `out`. Returns each table's row count once everything was sent. On an
/// error the stream ends with it, so the capture never becomes a snapshot.
pub(crate) fn spawn(
    plan: DataPlan,
    config: Config,
    snapshot: String,
    jobs: usize,
    head: Bytes,
    out: mpsc::Sender<io::Result<Bytes>>,
) -> JoinHandle<Result<BTreeMap<String, u64>, PgError>> {
    tokio::spawn(async move {
        let result = sequence(&plan, &config, &snapshot, jobs, head, &out).await;
        if let Err(e) = &result {
            let error = lifeboat_core::Error::from(e.clone());
            let _ = out.send(Err(io::Error::other(error))).await;
        }
        result
    })
}

async fn sequence(
    plan: &DataPlan,
    config: &Config,
    snapshot: &str,
    jobs: usize,
    head: Bytes,
    out: &mpsc::Sender<io::Result<Bytes>>,
) -> Result<BTreeMap<String, u64>, PgError> {
    let target = describe(config);
    let gone = || PgError::Query {
        target: target.clone(),
        reason: "the repository stopped reading the dump".into(),
    };
    let (senders, mut receivers): (Vec<_>, Vec<_>) =
        plan.pieces.iter().map(|_| mpsc::channel::<PieceResult>(PIECE_BUFFER)).unzip();
    let senders = Arc::new(Mutex::new(senders.into_iter().map(Some).collect::<Vec<_>>()));
    let next = Arc::new(AtomicUsize::new(0));
    let pieces: Arc<[Piece]> = plan.pieces.clone().into();
    let mut workers = Vec::new();
    for worker in 0..jobs.clamp(1, plan.pieces.len().max(1)) {
        let (config, snapshot) = (config.clone(), snapshot.to_string());
        let (senders, next, pieces) = (senders.clone(), next.clone(), pieces.clone());
        let int_size = plan.int_size;
        workers.push(tokio::spawn(async move {
            work(worker, &config, &snapshot, int_size, &pieces, &next, &senders).await;
        }));
    }
    // Aborts the workers when this returns early (an error, or the reader went away).
    let _abort = AbortOnDrop(workers);

    out.send(Ok(head)).await.map_err(|_| gone())?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (index, piece) in plan.pieces.iter().enumerate() {
        let entry = &plan.entries[piece.entry];
        let first = index == 0 || plan.pieces[index - 1].entry != piece.entry;
        let last = plan.pieces.get(index + 1).is_none_or(|p| p.entry != piece.entry);
        if first {
            out.send(Ok(block_start(plan.int_size, entry.dump_id).into()))
                .await
                .map_err(|_| gone())?;
        }
        let mut rows = None;
        while let Some(message) = receivers[index].recv().await {
            match message? {
                Message::Rows(bytes) => out.send(Ok(bytes)).await.map_err(|_| gone())?,
                Message::Done(n) => rows = Some(n),
            }
        }
        let rows = rows.ok_or_else(|| PgError::Query {
            target: target.clone(),
            reason: format!("the copy of {} stopped before its end", entry.table),
        })?;
        *counts.entry(entry.table.clone()).or_default() += rows;
        if last {
            out.send(Ok(block_end(plan.int_size).into())).await.map_err(|_| gone())?;
        }
    }
    Ok(counts)
}

struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for worker in &self.0 {
            worker.abort();
        }
    }
}

/// One worker: a connection in the snapshot, then pieces until none is left. A failure is
/// reported on the piece it was taken for.
async fn work(
    worker: usize,
    config: &Config,
    snapshot: &str,
    int_size: usize,
    pieces: &[Piece],
    next: &AtomicUsize,
    senders: &Mutex<Vec<Option<mpsc::Sender<PieceResult>>>>,
) {
    let take = |index: usize| -> Option<mpsc::Sender<PieceResult>> {
        let mut guard = match senders.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.get_mut(index).and_then(Option::take)
    };
    let client = match open_in_snapshot(config, snapshot).await {
        Ok(client) => client,
        Err(e) => {
            if let Some(tx) = take(next.fetch_add(1, Ordering::SeqCst)) {
                let _ = tx.send(Err(e)).await;
            }
            return;
        }
    };
    let target = describe(config);
    loop {
        let index = next.fetch_add(1, Ordering::SeqCst);
        let (Some(piece), Some(tx)) = (pieces.get(index), take(index)) else { return };
        debug!(worker, piece = index, sql = %piece.sql, "copying");
        match copy_piece(&client, &piece.sql, int_size, &tx).await {
            Ok(Some(rows)) => {
                if tx.send(Ok(Message::Done(rows))).await.is_err() {
                    return;
                }
            }
            Ok(None) => return, // the sequencer stopped
            Err(e) => {
                let reason = db_message(&e);
                let _ = tx.send(Err(PgError::Query { target, reason })).await;
                return;
            }
        }
    }
}

/// Copies one piece into `tx`, framed; the number of rows, or `None` when nobody listens.
async fn copy_piece(
    client: &tokio_postgres::Client,
    sql: &str,
    int_size: usize,
    tx: &mpsc::Sender<PieceResult>,
) -> Result<Option<u64>, tokio_postgres::Error> {
    let stream = client.copy_out(sql).await?;
    futures::pin_mut!(stream);
    let mut rows = 0u64;
    let mut batch = Vec::with_capacity(BATCH + (64 << 10));
    while let Some(row) = stream.next().await {
        let row = row?;
        put_int(&mut batch, int_size, row.len() as i64);
        batch.extend_from_slice(&row);
        rows += 1;
        if batch.len() >= BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH + (64 << 10)));
            if tx.send(Ok(Message::Rows(full.into()))).await.is_err() {
                return Ok(None);
            }
        }
    }
    if !batch.is_empty() && tx.send(Ok(Message::Rows(batch.into()))).await.is_err() {
        return Ok(None);
    }
    Ok(Some(rows))
}

/// A connection whose transaction sees the exported `snapshot`, with the session settings
/// `pg_dump` uses so values are written the same way.
async fn open_in_snapshot(
    config: &Config,
    snapshot: &str,
) -> Result<tokio_postgres::Client, PgError> {
    let client = connect_as(config, COPY_APPLICATION).await?;
    let setup = format!(
        "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; \
         SET statement_timeout = 0; SET lock_timeout = 0; \
         SET idle_in_transaction_session_timeout = 0; SET row_security = off; \
         BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
         SET TRANSACTION SNAPSHOT '{}'",
        snapshot.replace('\'', "''")
    );
    client
        .batch_execute(&setup)
        .await
        .map_err(|e| PgError::Query { target: describe(config), reason: db_message(&e) })?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::TocEntry;

    fn head(entries: Vec<TocEntry>) -> ArchiveHead {
        ArchiveHead { int_size: 4, entries, len: 0 }
    }

    fn data(id: i64, tag: &str, copy: &str) -> TocEntry {
        TocEntry {
            dump_id: id,
            has_data: true,
            desc: "TABLE DATA".into(),
            tag: tag.into(),
            namespace: "public".into(),
            copy_stmt: Some(copy.into()),
            deps: Vec::new(),
        }
    }

    fn tables(list: &[(&str, &str, i64)]) -> HashMap<(String, String), TableInfo> {
        list.iter()
            .map(|(name, qualified, pages)| {
                (
                    ("public".to_string(), name.to_string()),
                    TableInfo { qualified: qualified.to_string(), pages: *pages },
                )
            })
            .collect()
    }

    #[test]
    fn small_tables_are_one_piece_and_big_ones_page_ranges() -> Result<(), String> {
        let head = head(vec![
            data(7, "small", "COPY public.small (id) FROM stdin;\n"),
            data(8, "big", "COPY public.big (a, \"B\") FROM stdin;\n"),
        ]);
        let tables = tables(&[("small", "public.small", 10), ("big", "public.big", 5000)]);
        let plan = DataPlan::new(&head, &tables, true)?;
        assert_eq!(plan.entries.len(), 2);
        assert_eq!(plan.pieces[0].sql, "COPY public.small (id) TO STDOUT");
        let big: Vec<&str> = plan.pieces[1..].iter().map(|p| p.sql.as_str()).collect();
        assert_eq!(
            big,
            [
                "COPY (SELECT a, \"B\" FROM ONLY public.big WHERE ctid >= '(0,0)'::tid AND ctid < '(2048,0)'::tid) TO STDOUT",
                "COPY (SELECT a, \"B\" FROM ONLY public.big WHERE ctid >= '(2048,0)'::tid AND ctid < '(4096,0)'::tid) TO STDOUT",
                "COPY (SELECT a, \"B\" FROM ONLY public.big WHERE ctid >= '(4096,0)'::tid) TO STDOUT",
            ]
        );
        assert!(plan.pieces[1..].iter().all(|p| p.entry == 1));
        let unsplit = DataPlan::new(&head, &tables, false)?;
        assert_eq!(unsplit.pieces.len(), 2);
        Ok(())
    }

    #[test]
    fn large_objects_or_unknown_tables_are_left_to_pg_dump() {
        let mut blobs = data(9, "BLOBS", "");
        blobs.desc = "BLOBS".into();
        assert!(DataPlan::new(&head(vec![blobs]), &tables(&[]), true).is_err());
        let unknown = data(9, "gone", "COPY public.gone (id) FROM stdin;\n");
        assert!(DataPlan::new(&head(vec![unknown]), &tables(&[]), true).is_err());
    }
}
