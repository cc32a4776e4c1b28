//! SQLite's part in restore drills: restore into a scratch file, run integrity_check and the
//! manifest's counts, then the user's expectations.

use async_trait::async_trait;
use lifeboat_core::drill::{
    Expectations, ScratchDrill, ScratchOutcome, clean_scratch_dirs, scratch_dir,
};
use lifeboat_core::{Check, Kind, NoProgress, Result, Snapshot};
use rusqlite::Connection;

use crate::inspect::ident;
use crate::restore::{Durability, check_against, metadata_of, write_stream};

/// Drills SQLite snapshots.
#[derive(Debug, Default, Clone, Copy)]
pub struct SqliteDrill;

#[async_trait]
impl ScratchDrill for SqliteDrill {
    fn kind(&self) -> Kind {
        Kind::SQLITE
    }

    /// A raw copy of a damaged database (a safety snapshot) holds no checked capture.
    fn not_drillable(&self, snapshot: &dyn Snapshot) -> Option<String> {
        snapshot.manifest().metadata.get("raw").map(|_| {
            "a raw, unverified copy of a damaged database (its bytes are there: `cat` reads \
             them)"
                .to_string()
        })
    }

    async fn restore_and_check(
        &self,
        snapshot: &dyn Snapshot,
        expect: &Expectations,
    ) -> Result<ScratchOutcome> {
        let scratch = scratch_dir()?;
        let path = scratch.path().join("restored.db");
        tokio::fs::File::create(&path)
            .await
            .map_err(|e| lifeboat_core::Error::io("creating", &path, e))?;
        let mut outcome = ScratchOutcome::default();
        let expected = match metadata_of(snapshot.manifest()) {
            Ok(m) => m,
            Err(e) => {
                outcome.checks.push(Check::fail("manifest", e.to_string()));
                return Ok(outcome);
            }
        };
        match write_stream(snapshot, &path, &NoProgress, Durability::Scratch).await {
            Ok((bytes, _file)) => {
                outcome.bytes = bytes;
                outcome
                    .checks
                    .push(Check::pass("restore", format!("{bytes} bytes into a scratch file")));
            }
            Err(e) => {
                outcome.checks.push(Check::fail("restore", e.to_string()));
                return Ok(outcome);
            }
        }
        let expect = expect.clone();
        let checks = tokio::task::spawn_blocking(move || {
            let mut checks = check_against(&path, &expected, true);
            checks.extend(expectations(&path, &expect));
            checks
        })
        .await
        .map_err(|e| lifeboat_core::Error::Backend {
            kind: Kind::SQLITE,
            message: e.to_string(),
        })?;
        outcome.checks.extend(checks);
        Ok(outcome)
    }

    fn clean_leftovers(&self) -> usize {
        clean_scratch_dirs(&std::env::temp_dir())
    }
}

fn expectations(path: &std::path::Path, expect: &Expectations) -> Vec<Check> {
    let mut checks = Vec::new();
    let conn = match Connection::open(path) {
        Ok(c) => c,
        Err(e) => return vec![Check::fail("open", e.to_string())],
    };
    for table in &expect.tables {
        let exists = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .unwrap_or(false);
        checks.push(Check::new(
            format!("table {table} exists"),
            exists,
            if exists { "present" } else { "missing" },
        ));
    }
    for (table, min) in &expect.min_rows {
        match conn.query_row(&format!("SELECT count(*) FROM {}", ident(table)), [], |r| {
            r.get::<_, i64>(0)
        }) {
            Ok(n) => checks.push(Check::new(
                format!("at least {min} rows in {table}"),
                n as u64 >= *min,
                format!("{n} rows"),
            )),
            Err(e) => {
                checks.push(Check::fail(format!("at least {min} rows in {table}"), e.to_string()))
            }
        }
    }
    if let Some(query) = &expect.query {
        let found =
            conn.prepare(query).and_then(|mut s| s.query([])?.next().map(|row| row.is_some()));
        match found {
            Ok(true) => checks.push(Check::pass("query returns a row", query.clone())),
            Ok(false) => {
                checks.push(Check::fail("query returns a row", format!("no row from: {query}")))
            }
            Err(e) => checks.push(Check::fail("query returns a row", format!("{query}: {e}"))),
        }
    }
    if !expect.files.is_empty() {
        checks.push(Check::fail("files", "file expectations do not apply to SQLite snapshots"));
    }
    checks
}
