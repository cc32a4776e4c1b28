//! Partial restores: the rows a predicate selects in a SQLite snapshot, following foreign
//! keys, merged into the live database in one transaction.
//!
//! How it goes:
//! 1. The snapshot is written to a scratch folder beside the target (every chunk and the
//!    whole stream checked, as for any restore).
//! 2. On the scratch copy, the predicate is checked by SQLite's own parser: it must be one
//!    expression, and name a column of at least one table. The rows it selects are followed
//!    down to their children and up to the parents they reference; the keys go to a sets
//!    file in the scratch folder.
//! 3. The live database is opened read-only (`mode=ro`) to select the selection's current
//!    rows the same way. This connection and the scratch one are the only ones that ever see
//!    the predicate.
//! 4. The writing connection takes the write lock (`BEGIN IMMEDIATE`), the current rows are
//!    selected again under it, the safety snapshot is taken (those rows alone when nothing
//!    else can change, else the whole database), and the rows are deleted, set and added by
//!    statements built only from the schema's names. Foreign keys
//!    are enforced and checked at commit; before it, counting again must find nothing left
//!    to do, or nothing is committed.
//!
//! Rows are matched by primary key. Parents brought along only because a selected row
//! references them are added when missing and never changed: they may be shared with rows
//! outside the selection.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use lifeboat_core::{
    Backup, Error, MergeMode, PredicateRefusal, ROWS_TAG, RestoreContext, Result, RowSelection,
    RowsReport, TableChanges, Tags, predicate_in_parens,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use tracing::{debug, info};

use crate::backup::SqliteBackup;
use crate::error::{SqliteError, backend};
use crate::inspect::{check_is_database, ident, open_existing};
use crate::restore::{Durability, metadata_of, write_stream};

/// One table of a database, as far as a partial restore needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    pub(crate) name: String,
    /// The columns a row is written with (generated and hidden columns left out).
    pub(crate) columns: Vec<String>,
    /// The primary key's columns in key order; empty for a rowid table without one.
    primary_key: Vec<String>,
    foreign_keys: Vec<ForeignKey>,
}

/// `from` columns of the table referencing `to` columns of `parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ForeignKey {
    parent: String,
    from: Vec<String>,
    to: Vec<String>,
}

impl Table {
    /// How a row is named: its primary key, else its rowid.
    fn key_columns(&self) -> Vec<String> {
        if self.primary_key.is_empty() { vec!["rowid".into()] } else { self.primary_key.clone() }
    }

    /// `alias.k1, alias.k2` for the key.
    fn key(&self, alias: &str) -> Vec<String> {
        self.key_columns()
            .iter()
            .map(|c| {
                if c == "rowid" {
                    format!("{alias}.rowid")
                } else {
                    format!("{alias}.{}", ident(c))
                }
            })
            .collect()
    }

    /// The columns written to that are not part of the key.
    fn value_columns(&self) -> Vec<&String> {
        self.columns.iter().filter(|c| !self.primary_key.contains(c)).collect()
    }
}

/// The name a set table of `side` ("s" selected in the snapshot, "p" parents only, "l" the
/// selection's current rows) has for `table`.
fn set_name(side: &str, table: &str) -> String {
    ident(&format!("{side} {}", table.to_lowercase()))
}

/// `a.k0 IS b.x AND …`: the set row `set` names the row `row` of `table`.
fn names(table: &Table, set: &str, row: &str) -> String {
    table
        .key(row)
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{set}.k{i} IS {k}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// `a.k0 IS b.k0 AND …`: set rows `a` and `b` of `table` hold the same key.
fn same_key(table: &Table, a: &str, b: &str) -> String {
    (0..table.key_columns().len())
        .map(|i| format!("{a}.k{i} IS {b}.k{i}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

impl ForeignKey {
    /// `p.to1 = c.from1 AND …`: parent row `p` is the one child row `c` references.
    fn joins(&self) -> String {
        self.joins_as("p", "c")
    }

    /// As [`ForeignKey::joins`], the rows named `parent` and `child`.
    fn joins_as(&self, parent: &str, child: &str) -> String {
        self.from
            .iter()
            .zip(&self.to)
            .map(|(f, t)| format!("{parent}.{} = {child}.{}", ident(t), ident(f)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

/// `k0, k1, …` of a set of `table`'s keys.
fn set_columns(table: &Table, alias: &str) -> String {
    (0..table.key_columns().len()).map(|i| format!("{alias}k{i}")).collect::<Vec<_>>().join(", ")
}

/// `(a.x, a.y)`, the row value of the key (plain for one column).
pub(crate) fn key_tuple(table: &Table, alias: &str) -> String {
    format!("({})", table.key(alias).join(", "))
}

/// Every column equal between rows `a` and `b` (NULLs equal).
fn same_values(table: &Table, a: &str, b: &str) -> String {
    table
        .columns
        .iter()
        .map(|c| format!("{a}.{} IS {b}.{}", ident(c), ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The tables of database `schema` on `conn`, by lowercase name.
pub(crate) fn read_schema(
    conn: &Connection,
    schema: &str,
    path: &Path,
) -> Result<BTreeMap<String, Table>> {
    let err = |action| SqliteError::sqlite(action, path);
    let mut names = conn
        .prepare(&format!(
            "SELECT name, coalesce(sql, '') FROM {schema}.sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        ))
        .map_err(err("reading the schema of"))?;
    let names: Vec<(String, String)> = names
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(err("reading the schema of"))?;
    let mut tables = BTreeMap::new();
    for (name, sql) in names {
        if sql.trim_start().to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
            continue;
        }
        let mut columns = Vec::new();
        let mut primary_key: Vec<(i64, String)> = Vec::new();
        let mut stmt = conn
            .prepare("SELECT name, pk, hidden FROM pragma_table_xinfo(?1, ?2) ORDER BY cid")
            .map_err(err("reading the columns of"))?;
        let rows = stmt
            .query_map([&name, &schema.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(err("reading the columns of"))?;
        for (column, pk, hidden) in rows {
            if hidden != 0 {
                continue;
            }
            if pk > 0 {
                primary_key.push((pk, column.clone()));
            }
            columns.push(column);
        }
        primary_key.sort();
        let mut stmt = conn
            .prepare(
                "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1, ?2) \
                 ORDER BY id, seq",
            )
            .map_err(err("reading the foreign keys of"))?;
        let rows = stmt
            .query_map([&name, &schema.to_string()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(err("reading the foreign keys of"))?;
        let mut foreign_keys: Vec<(i64, ForeignKey, bool)> = Vec::new();
        for (id, parent, from, to) in rows {
            if foreign_keys.last().is_none_or(|(last, _, _)| *last != id) {
                let fk = ForeignKey { parent: parent.to_lowercase(), from: vec![], to: vec![] };
                foreign_keys.push((id, fk, to.is_none()));
            }
            if let Some((_, fk, _)) = foreign_keys.last_mut() {
                fk.from.push(from);
                fk.to.extend(to);
            }
        }
        let primary_key = primary_key.into_iter().map(|(_, c)| c).collect();
        let table = Table {
            name: name.clone(),
            columns,
            primary_key,
            foreign_keys: foreign_keys
                .into_iter()
                .map(
                    |(_, fk, to_primary_key)| {
                        if to_primary_key { ForeignKey { to: Vec::new(), ..fk } } else { fk }
                    },
                )
                .collect(),
        };
        tables.insert(name.to_lowercase(), table);
    }
    // A reference without columns names the parent's primary key.
    let primary_keys: BTreeMap<String, Vec<String>> =
        tables.iter().map(|(k, t)| (k.clone(), t.primary_key.clone())).collect();
    for table in tables.values_mut() {
        table.foreign_keys.retain_mut(|fk| {
            let Some(pk) = primary_keys.get(&fk.parent) else { return false };
            if fk.to.is_empty() {
                fk.to = pk.clone();
            }
            fk.to.len() == fk.from.len()
        });
    }
    Ok(tables)
}

fn bad_predicate(predicate: &str, why: String) -> Error {
    PredicateRefusal::Malformed { database: "SQLite", why }.of(predicate)
}

/// Checks `predicate` on the snapshot's copy and returns the tables it applies to (those
/// that have every column it names), by lowercase name.
fn applicable_tables(
    conn: &Connection,
    tables: &BTreeMap<String, Table>,
    predicate: &str,
) -> Result<BTreeSet<String>> {
    let check = |sql: &str| -> std::result::Result<(), String> {
        match conn.prepare(sql) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::MultipleStatement) => {
                Err("it holds more than one statement".into())
            }
            Err(rusqlite::Error::SqliteFailure(_, Some(message)))
            | Err(rusqlite::Error::SqlInputError { msg: message, .. }) => Err(message),
            Err(e) => Err(e.to_string()),
        }
    };
    lifeboat_core::self_contained(predicate, lifeboat_core::SqlDialect::Sqlite)
        .map_err(|why| bad_predicate(predicate, why))?;
    let no_column = |m: &str| m.starts_with("no such column");
    // A condition that holds without naming any column would select every row of every
    // table: refused.
    conn.execute_batch("CREATE TEMP TABLE IF NOT EXISTS \"lifeboat probe\"(\"lifeboat probe\")")
        .map_err(|e| backend(format!("preparing the predicate check: {e}")))?;
    match check(&format!(
        "SELECT 1 FROM temp.\"lifeboat probe\" WHERE {}",
        predicate_in_parens(predicate)
    )) {
        Ok(()) => {
            return Err(PredicateRefusal::NamesNoColumn.of(predicate));
        }
        Err(m) if no_column(&m) => {}
        Err(m) => return Err(bad_predicate(predicate, m)),
    }
    let mut applicable = BTreeSet::new();
    let mut missing = None;
    for (key, table) in tables {
        match check(&format!(
            "SELECT 1 FROM main.{} WHERE {}",
            ident(&table.name),
            predicate_in_parens(predicate)
        )) {
            Ok(()) => {
                applicable.insert(key.clone());
            }
            Err(m) if no_column(&m) => {
                missing.get_or_insert(m);
            }
            Err(m) => return Err(bad_predicate(predicate, m)),
        }
    }
    if applicable.is_empty() {
        return Err(PredicateRefusal::NoTableHasIt {
            detail: missing.unwrap_or_default(),
            tables: table_list(tables),
        }
        .of(predicate));
    }
    Ok(applicable)
}

/// Creates the set tables of `side` in `schema` for every table.
fn create_sets(
    conn: &Connection,
    schema: &str,
    side: &str,
    tables: &BTreeMap<String, Table>,
) -> Result<()> {
    let mut sql = String::new();
    for table in tables.values() {
        let cols = set_columns(table, "");
        sql.push_str(&format!(
            "DROP TABLE IF EXISTS {schema}.{set}; CREATE TABLE {schema}.{set}({cols}, UNIQUE({cols}));",
            set = set_name(side, &table.name)
        ));
    }
    conn.execute_batch(&sql).map_err(|e| backend(format!("creating the selection's sets: {e}")))
}

/// Runs `sql` (one of the selection's statements) and returns the rows it changed.
fn run(conn: &Connection, sql: &str, path: &Path) -> Result<usize> {
    debug!(%sql, "partial restore");
    conn.execute(sql, []).map_err(|e| SqliteError::sqlite("selecting rows in", path)(e).into())
}

/// Selects, on `conn` (whose `main` is one side: the snapshot's copy or the live database),
/// the rows `predicate` names in `seeded` tables and, down foreign keys, their children
/// (in tables the predicate applies to, only children it also selects), into the `side` sets
/// in `schema`. With `parents`, then also the rows they reference, up foreign keys, into the
/// "p" sets.
#[allow(clippy::too_many_arguments)]
fn select(
    conn: &Connection,
    path: &Path,
    schema: &str,
    side: &str,
    tables: &BTreeMap<String, Table>,
    applicable: &BTreeSet<String>,
    seeded: &BTreeSet<String>,
    predicate: &str,
    parents: bool,
) -> Result<()> {
    create_sets(conn, schema, side, tables)?;
    for key in seeded {
        let Some(t) = tables.get(key) else { continue };
        run(
            conn,
            &format!(
                "INSERT OR IGNORE INTO {schema}.{set} SELECT {keys} FROM main.{name} WHERE {pred}",
                set = set_name(side, &t.name),
                keys = t.key(&ident(&t.name)).join(", "),
                name = ident(&t.name),
                pred = predicate_in_parens(predicate),
            ),
            path,
        )?;
    }
    // Down: children of selected rows, until nothing new comes.
    let mut down = Vec::new();
    for (key, child) in tables {
        for fk in &child.foreign_keys {
            let Some(parent) = tables.get(&fk.parent) else { continue };
            let joins = fk.joins();
            let sql = if applicable.contains(key) {
                // Driven by the predicate (an index on it serves), and unaliased so the
                // predicate's column names are the child's.
                let name = ident(&child.name);
                format!(
                    "INSERT OR IGNORE INTO {schema}.{set} SELECT {keys} FROM main.{name} WHERE {pred} \
                     AND EXISTS (SELECT 1 FROM {schema}.{pset} AS s JOIN main.{pname} AS p ON {on} \
                     WHERE {joins})",
                    set = set_name(side, &child.name),
                    keys = child.key(&name).join(", "),
                    pred = predicate_in_parens(predicate),
                    pset = set_name(side, &parent.name),
                    pname = ident(&parent.name),
                    on = names(parent, "s", "p"),
                    joins = fk.joins_as("p", &name),
                )
            } else {
                format!(
                    "INSERT OR IGNORE INTO {schema}.{set} SELECT {keys} FROM {schema}.{pset} AS s \
                     JOIN main.{pname} AS p ON {on} JOIN main.{cname} AS c ON {joins}",
                    set = set_name(side, &child.name),
                    keys = child.key("c").join(", "),
                    pset = set_name(side, &parent.name),
                    pname = ident(&parent.name),
                    cname = ident(&child.name),
                    on = names(parent, "s", "p"),
                )
            };
            down.push(sql);
        }
    }
    fixpoint(conn, &down, path)?;
    if !parents {
        return Ok(());
    }
    // Up: what the selected rows, and the parents brought along, reference.
    create_sets(conn, schema, "p", tables)?;
    let mut up = Vec::new();
    for child in tables.values() {
        for fk in &child.foreign_keys {
            let Some(parent) = tables.get(&fk.parent) else { continue };
            let joins = fk.joins();
            for from in [side, "p"] {
                up.push(format!(
                    "INSERT OR IGNORE INTO {schema}.{pset} SELECT {keys} FROM {schema}.{cset} AS s \
                     JOIN main.{cname} AS c ON {on} JOIN main.{pname} AS p ON {joins}",
                    pset = set_name("p", &parent.name),
                    keys = parent.key("p").join(", "),
                    cset = set_name(from, &child.name),
                    cname = ident(&child.name),
                    on = names(child, "s", "c"),
                    pname = ident(&parent.name),
                ));
            }
        }
    }
    fixpoint(conn, &up, path)
}

/// Runs `statements` again and again until a round adds nothing (self-references and
/// chains of any depth).
fn fixpoint(conn: &Connection, statements: &[String], path: &Path) -> Result<()> {
    loop {
        let mut added = 0;
        for sql in statements {
            added += run(conn, sql, path)?;
        }
        if added == 0 {
            return Ok(());
        }
    }
}

/// `count(*)` of `sql`.
fn count(conn: &Connection, sql: &str, path: &Path) -> Result<u64> {
    debug!(%sql, "partial restore count");
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
        .map_err(|e| SqliteError::sqlite("counting rows in", path)(e).into())
}

/// Whether a set table has any row.
fn nonempty(
    conn: &Connection,
    schema: &str,
    side: &str,
    table: &Table,
    path: &Path,
) -> Result<bool> {
    Ok(count(
        conn,
        &format!(
            "SELECT count(*) FROM (SELECT 1 FROM {schema}.{} LIMIT 1)",
            set_name(side, &table.name)
        ),
        path,
    )? > 0)
}

/// The union of the snapshot's sets of `t`: selected rows and parents.
pub(crate) fn snapshot_rows(t: &Table) -> String {
    format!(
        "(SELECT * FROM sel.{} UNION SELECT * FROM sel.{})",
        set_name("s", &t.name),
        set_name("p", &t.name)
    )
}

/// Counts, on `conn` (`main` the live database, `snap` the snapshot's copy, `sel` the
/// snapshot's sets, `temp` the live sets), what writing `t` in `mode` does.
fn table_counts(
    conn: &Connection,
    t: &Table,
    mode: MergeMode,
    path: &Path,
) -> Result<TableChanges> {
    let name = ident(&t.name);
    let (s, l) = (set_name("s", &t.name), set_name("l", &t.name));
    let mut c = TableChanges { table: t.name.clone(), ..Default::default() };
    if t.primary_key.is_empty() {
        // Rowids name rows only within one file: rows match when every column does.
        let missing = format!(
            "FROM {rows} AS s JOIN snap.{name} AS n ON n.rowid = s.k0 \
             WHERE NOT EXISTS (SELECT 1 FROM main.{name} AS l WHERE {same})",
            rows = snapshot_rows(t),
            same = same_values(t, "l", "n"),
        );
        c.add = count(conn, &format!("SELECT count(*) {missing}"), path)?;
        let all = count(conn, &format!("SELECT count(*) FROM {}", snapshot_rows(t)), path)?;
        c.keep = all.saturating_sub(c.add);
        return Ok(c);
    }
    let exists_live =
        |set: &str| format!("EXISTS (SELECT 1 FROM main.{name} AS l WHERE {})", names(t, set, "l"));
    c.add = count(
        conn,
        &format!("SELECT count(*) FROM {} AS s WHERE NOT {}", snapshot_rows(t), exists_live("s")),
        path,
    )?;
    // Parents brought along that are there are kept as they are.
    let parents_there = count(
        conn,
        &format!(
            "SELECT count(*) FROM sel.{p} AS s WHERE {there} \
             AND NOT EXISTS (SELECT 1 FROM sel.{s} AS o WHERE {same_key})",
            p = set_name("p", &t.name),
            there = exists_live("s"),
            same_key = same_key(t, "o", "s"),
        ),
        path,
    )?;
    let same_key = |a: &str, b: &str| same_key(t, a, b);
    let in_live_set = format!("EXISTS (SELECT 1 FROM temp.{l} AS o WHERE {})", same_key("o", "s"));
    let paired = format!(
        "FROM sel.{s} AS s JOIN snap.{name} AS n ON {n_key} JOIN main.{name} AS l ON {l_key} WHERE {in_live_set}",
        n_key = names(t, "s", "n"),
        l_key = names(t, "s", "l"),
    );
    let differing = count(
        conn,
        &format!("SELECT count(*) {paired} AND NOT ({})", same_values(t, "n", "l")),
        path,
    )?;
    let equal =
        count(conn, &format!("SELECT count(*) {paired} AND ({})", same_values(t, "n", "l")), path)?;
    c.held_elsewhere = count(
        conn,
        &format!(
            "SELECT count(*) FROM sel.{s} AS s WHERE {} AND NOT {in_live_set}",
            exists_live("s")
        ),
        path,
    )?;
    c.settle(mode, differing, equal, parents_there);
    if mode == MergeMode::Replace {
        c.delete = count(
            conn,
            &format!(
                "SELECT count(*) FROM temp.{l} AS o WHERE NOT EXISTS (SELECT 1 FROM sel.{s} AS s WHERE {})",
                same_key("s", "o")
            ),
            path,
        )?;
    }
    Ok(c)
}

/// What is left undone in `t` after writing: selected rows or parents still missing, rows
/// of the selection that upsert and replace set back still differing, rows replace deleted
/// still there. `None` when nothing is.
fn left_undone(
    conn: &Connection,
    t: &Table,
    mode: MergeMode,
    path: &Path,
) -> Result<Option<String>> {
    if t.primary_key.is_empty() {
        let c = table_counts(conn, t, mode, path)?;
        return Ok((c.add > 0).then(|| format!("{} rows still missing", c.add)));
    }
    let name = ident(&t.name);
    let (s, l) = (set_name("s", &t.name), set_name("l", &t.name));
    let same_key = same_key(t, "o", "s");
    let missing = count(
        conn,
        &format!(
            "SELECT count(*) FROM {} AS s WHERE NOT EXISTS (SELECT 1 FROM main.{name} AS l WHERE {})",
            snapshot_rows(t),
            names(t, "s", "l")
        ),
        path,
    )?;
    if missing > 0 {
        return Ok(Some(format!("{missing} rows still missing")));
    }
    if mode != MergeMode::Insert {
        let differing = count(
            conn,
            &format!(
                "SELECT count(*) FROM sel.{s} AS s JOIN temp.{l} AS o ON {same_key}                  JOIN snap.{name} AS n ON {n_key} JOIN main.{name} AS l ON {l_key} WHERE NOT ({same})",
                n_key = names(t, "s", "n"),
                l_key = names(t, "s", "l"),
                same = same_values(t, "n", "l"),
            ),
            path,
        )?;
        if differing > 0 {
            return Ok(Some(format!("{differing} rows still differ from the snapshot")));
        }
    }
    if mode == MergeMode::Replace {
        let kept = count(
            conn,
            &format!(
                "SELECT count(*) FROM temp.{l} AS o JOIN main.{name} AS l ON {l_key} \
                 WHERE NOT EXISTS (SELECT 1 FROM sel.{s} AS s WHERE {same_key})",
                l_key = names(t, "o", "l"),
            ),
            path,
        )?;
        if kept > 0 {
            return Ok(Some(format!("{kept} rows that are not in the snapshot are still there")));
        }
    }
    Ok(None)
}

/// Rows outside the selection that reference rows `replace` would delete: they would lose
/// their parent, or cascade away.
fn orphans(
    conn: &Connection,
    tables: &BTreeMap<String, Table>,
    path: &Path,
) -> Result<Option<String>> {
    for child in tables.values() {
        for fk in &child.foreign_keys {
            let Some(parent) = tables.get(&fk.parent) else { continue };
            let joins = fk.joins();
            let same_key = same_key(parent, "s", "o");
            let n = count(
                conn,
                &format!(
                    "SELECT count(*) FROM temp.{pl} AS o JOIN main.{pname} AS p ON {p_key} \
                     JOIN main.{cname} AS c ON {joins} \
                     WHERE NOT EXISTS (SELECT 1 FROM sel.{ps} AS s WHERE {same_key}) \
                     AND NOT EXISTS (SELECT 1 FROM temp.{cl} AS x WHERE {c_key})",
                    pl = set_name("l", &parent.name),
                    pname = ident(&parent.name),
                    p_key = names(parent, "o", "p"),
                    cname = ident(&child.name),
                    ps = set_name("s", &parent.name),
                    cl = set_name("l", &child.name),
                    c_key = names(child, "x", "c"),
                ),
                path,
            )?;
            if n > 0 {
                return Ok(Some(format!(
                    "{n} rows of {} outside the selection reference rows of {} that replace would delete",
                    child.name, parent.name
                )));
            }
        }
    }
    Ok(None)
}

/// Writes `t` as counted: deletes (replace), sets (upsert, replace), adds. Returns what each
/// statement changed.
fn write_table(conn: &Connection, t: &Table, mode: MergeMode, path: &Path) -> Result<TableChanges> {
    let name = ident(&t.name);
    let (s, l) = (set_name("s", &t.name), set_name("l", &t.name));
    let err =
        |e| -> Error { SqliteError::sqlite("writing the selected rows into", path)(e).into() };
    let mut done = TableChanges { table: t.name.clone(), ..Default::default() };
    let cols = t.columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
    let n_cols = t.columns.iter().map(|c| format!("n.{}", ident(c))).collect::<Vec<_>>().join(", ");
    if t.primary_key.is_empty() {
        let sql = format!(
            "INSERT INTO main.{name}({cols}) SELECT {n_cols} FROM snap.{name} AS n \
             WHERE n.rowid IN (SELECT k0 FROM {rows}) \
             AND NOT EXISTS (SELECT 1 FROM main.{name} AS l WHERE {same})",
            rows = snapshot_rows(t),
            same = same_values(t, "l", "n"),
        );
        done.add = conn.execute(&sql, []).map_err(err)? as u64;
        return Ok(done);
    }
    let keys = set_columns(t, "");
    let same_key = |a: &str, b: &str| same_key(t, a, b);
    if mode == MergeMode::Replace {
        let sql = format!(
            "DELETE FROM main.{name} WHERE {target} IN (SELECT {keys} FROM temp.{l} AS o \
             WHERE NOT EXISTS (SELECT 1 FROM sel.{s} AS s WHERE {same}))",
            target = key_tuple(t, &format!("main.{name}")),
            same = same_key("s", "o"),
        );
        debug!(%sql, "partial restore");
        done.delete = conn.execute(&sql, []).map_err(err)? as u64;
    }
    let values = t.value_columns();
    if mode != MergeMode::Insert && !values.is_empty() {
        let row = format!("main.{name}");
        let sql = format!(
            "UPDATE main.{name} SET ({set_cols}) = (SELECT {n_vals} FROM snap.{name} AS n WHERE {n_is_row}) \
             WHERE {target} IN (SELECT {s_keys} FROM sel.{s} AS s JOIN temp.{l} AS o ON {same}) \
             AND NOT EXISTS (SELECT 1 FROM snap.{name} AS n WHERE {n_is_row} AND {equal})",
            set_cols = values.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", "),
            n_vals =
                values.iter().map(|c| format!("n.{}", ident(c))).collect::<Vec<_>>().join(", "),
            n_is_row = t
                .key("n")
                .iter()
                .zip(t.key(&row))
                .map(|(a, b)| format!("{a} IS {b}"))
                .collect::<Vec<_>>()
                .join(" AND "),
            target = key_tuple(t, &row),
            s_keys = set_columns(t, "s."),
            same = same_key("o", "s"),
            equal = same_values(t, "n", &row),
        );
        debug!(%sql, "partial restore");
        done.change = conn.execute(&sql, []).map_err(err)? as u64;
    }
    let sql = format!(
        "INSERT INTO main.{name}({cols}) SELECT {n_cols} FROM snap.{name} AS n \
         WHERE {n_key} IN (SELECT {keys} FROM {rows}) \
         AND NOT EXISTS (SELECT 1 FROM main.{name} AS l WHERE {l_is_n})",
        n_key = key_tuple(t, "n"),
        rows = snapshot_rows(t),
        l_is_n = t
            .key("l")
            .iter()
            .zip(t.key("n"))
            .map(|(a, b)| format!("{a} IS {b}"))
            .collect::<Vec<_>>()
            .join(" AND "),
    );
    debug!(%sql, "partial restore");
    done.add = conn.execute(&sql, []).map_err(err)? as u64;
    Ok(done)
}

/// `file:PATH?mode=ro`, so SQLite opens the live database read-only whatever the flags.
fn read_only_uri(path: &Path) -> Result<String> {
    let absolute = std::path::absolute(path).map_err(|e| Error::io("resolving", path, e))?;
    let mut uri = String::from("file:");
    for &b in absolute.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?mode=ro");
    Ok(uri)
}

/// Files of one partial restore, in a scratch folder beside the target.
pub(crate) struct Scratch {
    _dir: tempfile::TempDir,
    /// The snapshot's copy.
    pub(crate) copy: PathBuf,
    /// The snapshot's sets.
    pub(crate) sets: PathBuf,
}

impl Scratch {
    /// Writes `snapshot` into `dir` (removed when the scratch is dropped) as the snapshot's
    /// copy, beside an empty sets file.
    pub(crate) async fn write(
        snapshot: &dyn lifeboat_core::Snapshot,
        dir: tempfile::TempDir,
        progress: &dyn lifeboat_core::Progress,
    ) -> Result<Scratch> {
        let scratch = Scratch {
            copy: dir.path().join("snapshot.db"),
            sets: dir.path().join("selection.db"),
            _dir: dir,
        };
        // Both exist before SQLite sees them: an empty file is an empty database, and the
        // connections that attach them may not create files.
        for file in [&scratch.copy, &scratch.sets] {
            std::fs::File::create(file).map_err(|e| Error::io("creating", file, e))?;
        }
        write_stream(snapshot, &scratch.copy, progress, Durability::Scratch).await?;
        Ok(scratch)
    }
}

pub(crate) fn attach(conn: &Connection, file: &Path, schema: &str, path: &Path) -> Result<()> {
    let file = file
        .to_str()
        .ok_or_else(|| backend(format!("scratch path {} is not UTF-8", file.display())))?;
    conn.execute(&format!("ATTACH ?1 AS {schema}"), [file])
        .map(drop)
        .map_err(|e| SqliteError::sqlite("attaching the snapshot's copy to", path)(e).into())
}

/// The snapshot side, worked out once on the scratch copy.
pub(crate) struct Selected {
    pub(crate) tables: BTreeMap<String, Table>,
    applicable: BTreeSet<String>,
    seeded: BTreeSet<String>,
}

/// Makes `conn` read `"name"` as a column name only. By default SQLite takes a double-quoted
/// name that matches no column as a string literal, so `"tenant_id" = 'x'` would prepare
/// against a table without that column, and select nothing there instead of being refused.
fn names_are_names(conn: &Connection, path: &Path) -> Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DQS_DML, false)
        .map(drop)
        .map_err(|e| SqliteError::sqlite("configuring", path)(e).into())
}

/// The snapshot's tables, as a hint lists them.
fn table_list(tables: &BTreeMap<String, Table>) -> String {
    tables.values().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// The key in `tables` of the table `--table wanted` names; refused when there is none.
pub(crate) fn table_key(tables: &BTreeMap<String, Table>, wanted: &str) -> Result<String> {
    let key = wanted.to_lowercase();
    if tables.contains_key(&key) {
        return Ok(key);
    }
    Err(Error::InvalidInput {
        what: format!("--table {wanted}: the snapshot has no such table"),
        hint: format!("its tables are: {}", table_list(tables)),
    })
}

pub(crate) fn select_in_snapshot(scratch: &Scratch, selection: &RowSelection) -> Result<Selected> {
    let conn = open_existing(&scratch.copy)?;
    names_are_names(&conn, &scratch.copy)?;
    let tables = read_schema(&conn, "main", &scratch.copy)?;
    let applicable = applicable_tables(&conn, &tables, &selection.predicate)?;
    let seeded = selection.seeds(
        &applicable,
        |wanted| table_key(&tables, wanted),
        |key| tables.get(key).map_or(key.to_string(), |t| t.name.clone()),
    )?;
    attach(&conn, &scratch.sets, "sel", &scratch.copy)?;
    select(
        &conn,
        &scratch.copy,
        "sel",
        "s",
        &tables,
        &applicable,
        &seeded,
        &selection.predicate,
        true,
    )?;
    Ok(Selected { tables, applicable, seeded })
}

/// Opens the live database read-only with the snapshot's copy and sets attached, checks that
/// every table with selected rows has the same columns there, and selects the selection's
/// current rows into `temp` sets. Returns the connection and the tables to write.
fn select_in_target(
    target: &Path,
    scratch: &Scratch,
    selection: &RowSelection,
    snap: &Selected,
) -> Result<(Connection, Vec<Table>)> {
    let conn = Connection::open_with_flags(
        read_only_uri(target)?,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(SqliteError::sqlite("opening read-only", target))?;
    names_are_names(&conn, target)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(SqliteError::sqlite("configuring", target))?;
    attach(&conn, &scratch.copy, "snap", target)?;
    attach(&conn, &scratch.sets, "sel", target)?;
    let live = read_schema(&conn, "main", target)?;
    let mut involved = Vec::new();
    for (key, t) in &snap.tables {
        let selected =
            nonempty(&conn, "sel", "s", t, target)? || nonempty(&conn, "sel", "p", t, target)?;
        if !selected && !snap.applicable.contains(key) {
            continue;
        }
        let differs = |what: String| {
            Error::InvalidInput {
            what: format!("table {} {what}: a partial restore needs the same columns on both sides", t.name),
            hint: "restore the whole snapshot to a new path and copy the rows over by hand, or migrate a copy of the snapshot first".into(),
        }
        };
        match live.get(key) {
            None => {
                return Err(differs(format!("is in the snapshot but not in {}", target.display())));
            }
            Some(l) if l.columns != t.columns || l.primary_key != t.primary_key => {
                return Err(differs(format!(
                    "has columns ({}) in the snapshot and ({}) in {}",
                    t.columns.join(", "),
                    l.columns.join(", "),
                    target.display()
                )));
            }
            Some(_) => {}
        }
        involved.push(t.clone());
    }
    // The live side is selected with the live schema's foreign keys, among the same tables.
    let live_tables: BTreeMap<String, Table> =
        live.into_iter().filter(|(k, _)| snap.tables.contains_key(k)).collect();
    let applicable: BTreeSet<String> =
        snap.applicable.iter().filter(|k| live_tables.contains_key(*k)).cloned().collect();
    let seeded: BTreeSet<String> =
        snap.seeded.iter().filter(|k| live_tables.contains_key(*k)).cloned().collect();
    select(
        &conn,
        target,
        "temp",
        "l",
        &live_tables,
        &applicable,
        &seeded,
        &selection.predicate,
        false,
    )?;
    Ok((conn, involved))
}

/// Counts every involved table on `conn`, refusing what the mode cannot do.
fn plan(
    conn: &Connection,
    tables: &[Table],
    all: &BTreeMap<String, Table>,
    mode: MergeMode,
    path: &Path,
) -> Result<Vec<TableChanges>> {
    let mut counts = Vec::new();
    for t in tables {
        if t.primary_key.is_empty() && mode != MergeMode::Insert {
            let selected =
                nonempty(conn, "sel", "s", t, path)? || nonempty(conn, "temp", "l", t, path)?;
            if selected {
                return Err(Error::InvalidInput {
                    what: format!("table {} has no primary key, so --mode {mode} cannot tell which of its rows to change", t.name),
                    hint: "use --mode insert (adds the missing rows), or leave the table out with --table".into(),
                });
            }
            continue;
        }
        let c = table_counts(conn, t, mode, path)?;
        if mode == MergeMode::Replace && c.held_elsewhere > 0 {
            return Err(Error::InvalidInput {
                what: format!(
                    "{} rows of {} in the snapshot's selection have keys that rows outside the selection now hold in {}",
                    c.held_elsewhere, t.name, path.display()
                ),
                hint: "replace would overwrite rows that are not the selection's; use --mode insert or upsert, which leave them".into(),
            });
        }
        counts.push(c);
    }
    if mode == MergeMode::Replace {
        let involved: BTreeMap<String, Table> = all
            .iter()
            .filter(|(k, _)| tables.iter().any(|t| &t.name.to_lowercase() == *k))
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        if let Some(why) = orphans(conn, &involved, path)? {
            return Err(Error::InvalidInput {
                what: why,
                hint: "widen --where so it takes those rows too, or use --mode upsert".into(),
            });
        }
    }
    Ok(counts)
}

/// Whether writing `involved` can change nothing but the selection's rows: no trigger on
/// them, and no foreign key that carries an update of theirs on to other rows. (Deletes
/// cascade only within the selection: `replace` refuses rows outside it that reference
/// rows it deletes.) `live` is a connection whose `main` is the live database.
fn reaches_only_the_selection(live: &Connection, involved: &[Table], path: &Path) -> Result<bool> {
    let err = |e| -> Error { SqliteError::sqlite("reading the schema of", path)(e).into() };
    let written: BTreeSet<String> = involved.iter().map(|t| t.name.to_lowercase()).collect();
    let mut stmt = live
        .prepare("SELECT type, tbl_name FROM main.sqlite_schema WHERE type IN ('trigger', 'table')")
        .map_err(err)?;
    let entries: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(err)?;
    for (kind, table) in &entries {
        if kind == "trigger" && written.contains(&table.to_lowercase()) {
            debug!(
                table,
                "a trigger on a written table: the safety snapshot holds the whole database"
            );
            return Ok(false);
        }
        if kind != "table" {
            continue;
        }
        let mut fks = live
            .prepare("SELECT \"table\", on_update FROM pragma_foreign_key_list(?1)")
            .map_err(err)?;
        let carried: Vec<(String, String)> = fks
            .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(err)?;
        if carried.iter().any(|(parent, on_update)| {
            written.contains(&parent.to_lowercase())
                && !matches!(on_update.as_str(), "NO ACTION" | "RESTRICT")
        }) {
            debug!(
                table,
                "an update of a written table cascades: the safety snapshot holds the whole database"
            );
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes the selection's current rows (the `temp` live sets of `live`) into a new database
/// at `file`, whose tables are made by the live tables' own statements.
fn write_rows_copy(live: &Connection, involved: &[Table], file: &Path, path: &Path) -> Result<()> {
    let err =
        |e| -> Error { SqliteError::sqlite("copying the selection's rows of", path)(e).into() };
    {
        let copy = Connection::open(file).map_err(SqliteError::sqlite("creating", file))?;
        for t in involved {
            let sql: String = live
                .query_row(
                    "SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ?1",
                    [&t.name],
                    |r| r.get(0),
                )
                .map_err(err)?;
            copy.execute_batch(&sql).map_err(SqliteError::sqlite("creating a table in", file))?;
        }
    }
    // The copy holds a part of the database: its rows may reference rows it does not hold.
    live.execute_batch("PRAGMA foreign_keys = OFF").map_err(err)?;
    attach(live, file, "keep", path)?;
    for t in involved {
        let cols = t.columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
        let name = ident(&t.name);
        live.execute(
            &format!(
                "INSERT INTO keep.{name}({cols}) SELECT {cols} FROM main.{name} \
                 WHERE {} IN (SELECT * FROM temp.{})",
                key_tuple(t, &format!("main.{name}")),
                set_name("l", &t.name)
            ),
            [],
        )
        .map_err(err)?;
    }
    live.execute_batch("DETACH keep").map_err(err)?;
    Ok(())
}

/// Copies the `temp` live sets of `from` into `temp` tables of `to` (the writing connection,
/// which cannot attach anything inside its transaction).
fn copy_live_sets(
    from: &Connection,
    to: &Connection,
    tables: &BTreeMap<String, Table>,
    path: &Path,
) -> Result<()> {
    create_sets(to, "temp", "l", tables)?;
    for t in tables.values() {
        let set = set_name("l", &t.name);
        let width = t.key_columns().len();
        let mut read = from
            .prepare(&format!("SELECT * FROM temp.{set}"))
            .map_err(SqliteError::sqlite("reading the selection of", path))?;
        let placeholders = (1..=width).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
        let mut write = to
            .prepare(&format!("INSERT OR IGNORE INTO temp.{set} VALUES ({placeholders})"))
            .map_err(SqliteError::sqlite("copying the selection of", path))?;
        let mut rows =
            read.query([]).map_err(SqliteError::sqlite("reading the selection of", path))?;
        while let Some(row) =
            rows.next().map_err(SqliteError::sqlite("reading the selection of", path))?
        {
            let values: Vec<Value> = (0..width)
                .map(|i| row.get(i))
                .collect::<rusqlite::Result<_>>()
                .map_err(SqliteError::sqlite("reading the selection of", path))?;
            write
                .execute(rusqlite::params_from_iter(values))
                .map_err(SqliteError::sqlite("copying the selection of", path))?;
        }
    }
    Ok(())
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| backend(format!("partial restore task failed: {e}")))?
}

/// Restores the rows `selection` names from `ctx.snapshot` into the live SQLite database at
/// `target` (see the module's documentation); with `dry_run`, only counts.
///
/// # Errors
/// A snapshot that is not a checked SQLite capture, a target that is not a database, a
/// predicate SQLite refuses or that names no column, tables that differ between snapshot and
/// target, what the mode cannot do (no primary key, rows outside the selection in the way),
/// and any failure while writing: then nothing is committed.
pub async fn restore_rows(
    ctx: &RestoreContext<'_>,
    target: &Path,
    selection: &RowSelection,
    dry_run: bool,
) -> Result<RowsReport> {
    let manifest = ctx.snapshot.manifest();
    metadata_of(manifest)?;
    match check_is_database(target) {
        Err(SqliteError::NotFound { .. }) => {
            return Err(Error::InvalidInput {
                what: format!(
                    "{} does not exist: --where merges rows into an existing database",
                    target.display()
                ),
                hint: "restore the whole snapshot (without --where) to create it".into(),
            });
        }
        other => other?,
    }
    for leftover in lifeboat_core::remove_leftovers(target) {
        info!(path = %leftover.display(), "removed what an interrupted restore left");
    }
    let dir = tempfile::Builder::new()
        .prefix(&lifeboat_core::temp_prefix(target))
        .tempdir_in(lifeboat_core::parent_folder(target))
        .map_err(|e| Error::io("creating a scratch folder beside", target, e))?;
    let scratch = Scratch::write(ctx.snapshot, dir, ctx.progress).await?;

    let selection = selection.clone();
    let target_path = target.to_path_buf();
    let (scratch, selection, snap, counts) = blocking(move || -> Result<_> {
        let snap = select_in_snapshot(&scratch, &selection)?;
        let (conn, involved) = select_in_target(&target_path, &scratch, &selection, &snap)?;
        let counts = plan(&conn, &involved, &snap.tables, selection.mode, &target_path)?;
        Ok((scratch, selection, snap, counts))
    })
    .await?;
    let (predicate, mode) = (selection.predicate.clone(), selection.mode);
    let report = |tables: Vec<TableChanges>, safety| RowsReport {
        target: target.display().to_string(),
        snapshot: ctx.snapshot.id(),
        safety_snapshot: safety,
        safety_rows_only: false,
        predicate: predicate.clone(),
        mode,
        dry_run,
        tables,
    };
    if dry_run || counts.iter().all(|c| !c.writes()) {
        return Ok(report(counts, None));
    }

    // The write lock first, so the safety snapshot and the selection see what is written over.
    let target_path = target.to_path_buf();
    let (copy, sets) = (scratch.copy.clone(), scratch.sets.clone());
    let writer = blocking(move || -> Result<Connection> {
        let conn = open_existing(&target_path)?;
        conn.execute_batch("PRAGMA foreign_keys = ON")
            .map_err(SqliteError::sqlite("configuring", &target_path))?;
        attach(&conn, &copy, "snap", &target_path)?;
        attach(&conn, &sets, "sel", &target_path)?;
        conn.execute_batch("BEGIN IMMEDIATE; PRAGMA defer_foreign_keys = ON;")
            .map_err(SqliteError::sqlite("taking the write lock on", &target_path))?;
        Ok(conn)
    })
    .await?;
    // Under the lock: the selection's current rows, and whether they are all it can change.
    let target_path = target.to_path_buf();
    let rows_copy = scratch.copy.with_file_name("safety.db");
    let rows_copy_source = SqliteBackup::new(&rows_copy);
    let (scratch, selection, snap, writer, involved, rows_only) = blocking(move || -> Result<_> {
        let (live, involved) = select_in_target(&target_path, &scratch, &selection, &snap)?;
        copy_live_sets(&live, &writer, &snap.tables, &target_path)?;
        let rows_only = reaches_only_the_selection(&live, &involved, &target_path)?;
        if rows_only {
            write_rows_copy(&live, &involved, &rows_copy, &target_path)?;
        }
        Ok((scratch, selection, snap, writer, involved, rows_only))
    })
    .await?;
    let name = SqliteBackup::new(target).default_name();
    let safety = if rows_only {
        let tags = Tags::from([(ROWS_TAG.to_string(), selection.predicate.clone())]);
        ctx.save_safety(&rows_copy_source, &name, tags).await?
    } else {
        ctx.save_safety(&SqliteBackup::new(target), &name, Tags::new()).await?
    };
    info!(safety = %safety, target = %target.display(), rows_only, "safety snapshot taken");

    let target_path = target.to_path_buf();
    let tables = blocking(move || -> Result<Vec<TableChanges>> {
        // The scratch folder, which the writer has attached, lives until the end.
        let _scratch = scratch;
        let result = (|| -> Result<Vec<TableChanges>> {
            let planned = plan(&writer, &involved, &snap.tables, selection.mode, &target_path)?;
            let mut done = Vec::new();
            for (t, c) in involved.iter().zip(planned) {
                let wrote = write_table(&writer, t, selection.mode, &target_path)?;
                if (wrote.add, wrote.change, wrote.delete) != (c.add, c.change, c.delete) {
                    return Err(backend(format!(
                        "table {}: planned {} added, {} changed, {} deleted; the statements did {}, {}, {}",
                        t.name, c.add, c.change, c.delete, wrote.add, wrote.change, wrote.delete
                    )));
                }
                done.push(c);
            }
            // Looking again must find nothing left to do; a trigger that rewrote the rows
            // would show here.
            for t in &involved {
                if let Some(what) = left_undone(&writer, t, selection.mode, &target_path)? {
                    return Err(backend(format!(
                        "after writing table {}, {what}: a trigger may have changed the rows",
                        t.name
                    )));
                }
            }
            writer.execute_batch("COMMIT").map_err(|e| -> Error {
                SqliteError::sqlite("committing (foreign keys are checked here) into", &target_path)(e).into()
            })?;
            Ok(done)
        })();
        if result.is_err() && !writer.is_autocommit() {
            let _ = writer.execute_batch("ROLLBACK");
        }
        result
    })
    .await
    .map_err(|e| {
        let kept = format!("nothing was written to {}", target.display());
        match e {
            Error::InvalidInput { what, hint } => Error::InvalidInput { what: format!("{what}; {kept}"), hint },
            other => backend(format!("{other}; {kept}")),
        }
    })?;
    Ok(RowsReport { safety_rows_only: rows_only, ..report(tables, Some(safety)) })
}
