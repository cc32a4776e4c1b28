//! Partial restores for PostgreSQL: the rows a predicate selects in a snapshot, following
//! foreign keys, merged into the live database in one transaction.
//!
//! How it goes:
//! 1. The snapshot is restored, checked as every restore is (row counts against the
//!    manifest, the whole stream's SHA-256), into a scratch database on the target's server
//!    (`lb_rows_…`, dropped at the end), without owners or grants.
//! 2. In a session on the scratch database the predicate is checked by PostgreSQL's own
//!    parser: one expression, naming a column of at least one table. The rows it selects are
//!    followed down to their children and up to the parents they need; the keys stay in
//!    temporary tables of that session. The predicate only ever runs there, inside read-only
//!    transactions.
//! 3. A session on the live database opens one transaction. Unless this is a dry run it
//!    first locks the tables the selection is connected to by foreign keys against writes
//!    (`SHARE ROW EXCLUSIVE`: readers go on). It copies the columns the selection needs
//!    (keys, foreign keys, the predicate's columns) of those tables into the scratch session,
//!    where the predicate selects the selection's current rows the same way.
//! 4. The snapshot's selected rows and the keys of the current selection are copied into
//!    temporary tables of the live transaction. From here on only statements built from the
//!    catalog's names run there: the counts, the refusals, then (after a safety snapshot, a
//!    whole `pg_dump`, which the lock lets through) the deletes (children first), updates and
//!    inserts (parents first), each statement's count checked against the plan. Counting
//!    again must find nothing left to do, or nothing is committed.
//!
//! Rows are matched by primary key and compared column by column as text (their exact
//! output form). Parents brought along only because a selected row references them are added
//! when missing and never changed: they may be shared with rows outside the selection.
//! A subquery in the predicate reads the snapshot's tables, on both sides.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use futures::{SinkExt, StreamExt, pin_mut};
use lifeboat_core::{
    Error, ExportFormat, ExportReport, ExportRequest, ExportTo, MergeMode, PredicateRefusal,
    RestoreContext, RestoreOptions, RestorePlan, Result, RowSelection, RowsReport, SqlDialect,
    TableChanges, TableExport, Tags, predicate_in_parens,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};
use tracing::{debug, info};

use crate::backup::{PostgresMetadata, password, tool_args};
use crate::connect::{connect_as, db_message, describe, parse, server_tools};
use crate::database::{quote_ident, quote_literal};
use crate::error::PgError;
use crate::export::{RowsOut, deliver, script_place};
use crate::restore::{
    MissingRoles, PostgresRestorePlan, base36, drop_database, maintenance, split_qualified,
    unix_millis,
};

/// What `pg_stat_activity` shows for the sessions of a partial restore.
const APPLICATION: &str = "lifeboat restore --where";

/// The session settings both sides use, so values copied as text read back the same.
const SESSION: &str = "SET datestyle = ISO, YMD; SET intervalstyle = postgres; \
    SET extra_float_digits = 3; SET bytea_output = hex; SET timezone = 'UTC'; \
    SET client_encoding = 'UTF8'";

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    /// `format_type` of its type.
    ty: String,
    /// A generated column: never written, follows the others.
    generated: bool,
    /// `GENERATED ALWAYS AS IDENTITY`: inserts need `OVERRIDING SYSTEM VALUE`.
    identity_always: bool,
}

/// `from` columns of a table referencing `to` columns of `parent` (a table key).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ForeignKey {
    parent: String,
    from: Vec<String>,
    to: Vec<String>,
}

/// A table, as far as a partial restore needs it.
#[derive(Debug, Clone)]
struct Table {
    oid: u32,
    schema: String,
    name: String,
    columns: Vec<Column>,
    /// The primary key's columns in key order; empty when there is none.
    primary_key: Vec<String>,
    foreign_keys: Vec<ForeignKey>,
}

/// Tables by `schema.name`.
type Tables = BTreeMap<String, Table>;

impl Table {
    /// `schema.name`, as reports show it and maps are keyed.
    fn key(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// `"schema"."name"`.
    fn sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// The columns rows are written and compared with.
    fn written(&self) -> Vec<&Column> {
        self.columns.iter().filter(|c| !c.generated).collect()
    }

    fn has_key(&self) -> bool {
        !self.primary_key.is_empty()
    }

    /// `alias.pk1 = other.pk1 AND …` between two rows of the table.
    fn same_key(&self, a: &str, b: &str) -> String {
        and(self.primary_key.iter().map(|c| {
            let c = quote_ident(c);
            format!("{a}.{c} = {b}.{c}")
        }))
    }

    /// `set.k0 = row.pk1 AND …`: the key set row `set` names the table's row `row`.
    fn names(&self, set: &str, row: &str) -> String {
        and(self
            .primary_key
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{set}.k{i} = {row}.{}", quote_ident(c))))
    }

    /// Every written column equal between rows `a` and `b`, compared as text (NULLs equal).
    fn same_values(&self, a: &str, b: &str) -> String {
        and(self.written().iter().map(|c| {
            let c = quote_ident(&c.name);
            format!("{a}.{c}::text IS NOT DISTINCT FROM {b}.{c}::text")
        }))
    }
}

fn and(parts: impl Iterator<Item = String>) -> String {
    let parts: Vec<String> = parts.collect();
    if parts.is_empty() { "true".into() } else { parts.join(" AND ") }
}

fn list(parts: impl Iterator<Item = String>) -> String {
    parts.collect::<Vec<_>>().join(", ")
}

impl ForeignKey {
    /// `parent.to1 = child.from1 AND …`.
    fn joins(&self, parent: &str, child: &str) -> String {
        and(self
            .from
            .iter()
            .zip(&self.to)
            .map(|(f, t)| format!("{parent}.{} = {child}.{}", quote_ident(t), quote_ident(f))))
    }
}

/// Errors of statements on one side, named by `target`.
fn query_err(target: &str) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
    move |e| PgError::Query { target: target.to_string(), reason: db_message(&e) }.into()
}

/// The user tables of the database `client` is connected to (partitions left out: their
/// parent stands for them; extensions' tables too).
async fn read_schema(client: &Client, target: &str) -> Result<Tables> {
    let q = query_err(target);
    let rels = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_%' \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                 AND d.objid = c.oid AND d.deptype = 'e') ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(&q)?;
    let mut by_oid: BTreeMap<u32, Table> = rels
        .iter()
        .map(|r| {
            let oid: u32 = r.get(0);
            let table = Table {
                oid,
                schema: r.get(1),
                name: r.get(2),
                columns: Vec::new(),
                primary_key: Vec::new(),
                foreign_keys: Vec::new(),
            };
            (oid, table)
        })
        .collect();
    let oids: Vec<u32> = by_oid.keys().copied().collect();
    let columns = client
        .query(
            "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), \
             a.attgenerated <> '', a.attidentity = 'a' FROM pg_attribute a \
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await
        .map_err(&q)?;
    for r in columns {
        if let Some(t) = by_oid.get_mut(&r.get::<_, u32>(0)) {
            t.columns.push(Column {
                name: r.get(1),
                ty: r.get(2),
                generated: r.get(3),
                identity_always: r.get(4),
            });
        }
    }
    let keys = client
        .query(
            "SELECT i.indrelid, a.attname::text FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indisprimary AND i.indrelid = ANY($1) ORDER BY i.indrelid, k.ord",
            &[&oids],
        )
        .await
        .map_err(&q)?;
    for r in keys {
        if let Some(t) = by_oid.get_mut(&r.get::<_, u32>(0)) {
            t.primary_key.push(r.get(1));
        }
    }
    let names: BTreeMap<u32, String> = by_oid.iter().map(|(oid, t)| (*oid, t.key())).collect();
    let fks = client
        .query(
            "SELECT c.conrelid, c.oid, c.confrelid, fa.attname::text, pa.attname::text \
             FROM pg_constraint c \
             CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(f, p, ord) \
             JOIN pg_attribute fa ON fa.attrelid = c.conrelid AND fa.attnum = k.f \
             JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.p \
             WHERE c.contype = 'f' AND c.conrelid = ANY($1) AND c.conparentid = 0 \
             ORDER BY c.conrelid, c.oid, k.ord",
            &[&oids],
        )
        .await
        .map_err(&q)?;
    let mut last: Option<(u32, u32)> = None;
    for r in fks {
        let (child, constraint, parent): (u32, u32, u32) = (r.get(0), r.get(1), r.get(2));
        // A reference to a partition, or to a table left out, cannot be followed.
        let Some(parent) = names.get(&parent) else { continue };
        let Some(t) = by_oid.get_mut(&child) else { continue };
        if last != Some((child, constraint)) {
            t.foreign_keys.push(ForeignKey { parent: parent.clone(), from: vec![], to: vec![] });
            last = Some((child, constraint));
        }
        if let Some(fk) = t.foreign_keys.last_mut() {
            fk.from.push(r.get(3));
            fk.to.push(r.get(4));
        }
    }
    Ok(by_oid.into_values().map(|t| (t.key(), t)).collect())
}

/// The tables' names, as a hint lists them.
fn table_list<'a>(tables: impl Iterator<Item = &'a Table>) -> String {
    list(tables.map(Table::key))
}

fn bad_predicate(predicate: &str, why: String) -> Error {
    PredicateRefusal::Malformed { database: "PostgreSQL", why }.of(predicate)
}

/// Whether preparing `sql` failed because the predicate names a column (or table) the
/// statement's table lacks, rather than being malformed.
fn names_what_is_missing(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::UNDEFINED_COLUMN || *c == SqlState::UNDEFINED_TABLE)
}

/// Whether preparing failed because a column of that name has another type in this table
/// (`id = 1` where `id` is text): the predicate is about other tables' columns.
fn is_about_other_types(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::UNDEFINED_FUNCTION
        || *c == SqlState::DATATYPE_MISMATCH
        || *c == SqlState::INVALID_TEXT_REPRESENTATION)
}

/// Checks `predicate` on the scratch database and returns the tables it applies to (those
/// with every column it names).
async fn applicable_tables(
    scratch: &Client,
    tables: &Tables,
    predicate: &str,
    target: &str,
) -> Result<BTreeSet<String>> {
    lifeboat_core::self_contained(predicate, SqlDialect::Postgres)
        .map_err(|why| bad_predicate(predicate, why))?;
    scratch
        .batch_execute("CREATE TEMP TABLE IF NOT EXISTS \"lifeboat probe\"(\"lifeboat probe\" int)")
        .await
        .map_err(query_err(target))?;
    match scratch
        .prepare(&format!(
            "SELECT 1 FROM pg_temp.\"lifeboat probe\" WHERE {}",
            predicate_in_parens(predicate)
        ))
        .await
    {
        Ok(_) => {
            return Err(PredicateRefusal::NamesNoColumn.of(predicate));
        }
        Err(e) if names_what_is_missing(&e) => {}
        Err(e) => return Err(bad_predicate(predicate, db_message(&e))),
    }
    let mut applicable = BTreeSet::new();
    let (mut missing, mut mistyped) = (None, None);
    for (key, t) in tables {
        let sql = format!(
            "SELECT 1 FROM {} AS {} WHERE {}",
            t.sql(),
            quote_ident(&t.name),
            predicate_in_parens(predicate)
        );
        match scratch.prepare(&sql).await {
            Ok(_) => {
                applicable.insert(key.clone());
            }
            Err(e) if names_what_is_missing(&e) => {
                missing.get_or_insert(db_message(&e));
            }
            Err(e) if is_about_other_types(&e) => {
                mistyped.get_or_insert(format!("{}: {}", t.key(), db_message(&e)));
            }
            Err(e) => return Err(bad_predicate(predicate, db_message(&e))),
        }
    }
    if let (true, Some(why)) = (applicable.is_empty(), mistyped) {
        return Err(bad_predicate(predicate, why));
    }
    if applicable.is_empty() {
        return Err(PredicateRefusal::NoTableHasIt {
            detail: missing.unwrap_or_default(),
            tables: table_list(tables.values()),
        }
        .of(predicate));
    }
    Ok(applicable)
}

/// The columns of `t` the predicate reads, from the dependencies PostgreSQL records for a
/// temporary view of it; every column when the predicate may read the whole row (it names
/// the table other than to qualify a column, or names it at all: the check is cautious).
async fn predicate_columns(
    scratch: &Client,
    t: &Table,
    predicate: &str,
    target: &str,
) -> Result<BTreeSet<String>> {
    let q = query_err(target);
    if names_word(predicate, &t.name) {
        return Ok(t.columns.iter().map(|c| c.name.clone()).collect());
    }
    scratch
        .batch_execute(&format!(
            "DROP VIEW IF EXISTS pg_temp.\"lifeboat columns\"; \
             CREATE TEMP VIEW \"lifeboat columns\" AS SELECT 1 AS x FROM {} AS {} WHERE {}",
            t.sql(),
            quote_ident(&t.name),
            predicate_in_parens(predicate)
        ))
        .await
        .map_err(&q)?;
    let rows = scratch
        .query(
            "SELECT DISTINCT a.attname::text FROM pg_depend d \
             JOIN pg_rewrite r ON r.oid = d.objid \
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             WHERE d.classid = 'pg_rewrite'::regclass \
             AND r.ev_class = 'pg_temp.\"lifeboat columns\"'::regclass \
             AND d.refobjid = $1 AND d.refobjsubid > 0",
            &[&t.oid],
        )
        .await
        .map_err(&q)?;
    scratch.batch_execute("DROP VIEW pg_temp.\"lifeboat columns\"").await.map_err(&q)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Whether `word` occurs in `text` as a whole word (case-insensitive).
fn names_word(text: &str, word: &str) -> bool {
    let (text, word) = (text.to_lowercase(), word.to_lowercase());
    let is_name = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    text.match_indices(&word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// Which rows a set of the scratch session is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The snapshot's rows: the scratch database's own tables.
    Snapshot,
    /// The live database's rows: the narrow copies in the scratch session.
    Live,
}

/// The statements of the scratch session, which knows every table by its position.
struct ScratchSql<'a> {
    tables: &'a Tables,
    ids: BTreeMap<String, usize>,
}

impl<'a> ScratchSql<'a> {
    fn new(tables: &'a Tables) -> Self {
        let ids = tables.keys().enumerate().map(|(i, k)| (k.clone(), i)).collect();
        ScratchSql { tables, ids }
    }

    fn id(&self, t: &Table) -> usize {
        self.ids.get(&t.key()).copied().unwrap_or(usize::MAX)
    }

    /// The set table of `t`: "s" selected in the snapshot, "p" parents only, "l" the
    /// selection's current rows.
    fn set(&self, set: &str, t: &Table) -> String {
        format!("pg_temp.lb_{set}{}", self.id(t))
    }

    /// The narrow copy of the live `t`.
    fn copy(&self, t: &Table) -> String {
        format!("pg_temp.lb_c{}", self.id(t))
    }

    /// `FROM` item for `t`'s rows of `side`, as `alias`.
    fn source(&self, t: &Table, side: Side, alias: &str) -> String {
        match side {
            Side::Snapshot => format!("{} AS {alias}", t.sql()),
            Side::Live => format!("{} AS {alias}", self.copy(t)),
        }
    }

    /// The expressions that name a row of `t` as `alias`: its primary key, else its place
    /// (`ctid` in the snapshot, a row number in the live copy).
    fn keys(&self, t: &Table, side: Side, alias: &str) -> Vec<String> {
        if t.has_key() {
            t.primary_key.iter().map(|c| format!("{alias}.{}", quote_ident(c))).collect()
        } else {
            match side {
                Side::Snapshot => vec![format!("{alias}.ctid")],
                Side::Live => vec![format!("{alias}.\"lifeboat row\"")],
            }
        }
    }

    /// `set.k0 = row.x AND …`.
    fn names(&self, t: &Table, side: Side, set: &str, row: &str) -> String {
        and(self.keys(t, side, row).iter().enumerate().map(|(i, k)| format!("{set}.k{i} = {k}")))
    }

    /// Creates the set `set` of `side` for every table, empty.
    fn create_sets(&self, set: &str, side: Side) -> String {
        let mut sql = String::new();
        for t in self.tables.values() {
            let keys = self.keys(t, side, "x");
            let ks = list((0..keys.len()).map(|i| format!("k{i}")));
            sql.push_str(&format!(
                "DROP TABLE IF EXISTS {name}; CREATE TEMP TABLE {} AS SELECT {} FROM {} LIMIT 0; \
                 CREATE UNIQUE INDEX ON {name}({ks});",
                self.set(set, t).trim_start_matches("pg_temp."),
                list(keys.iter().enumerate().map(|(i, k)| format!("{k} AS k{i}"))),
                self.source(t, side, "x"),
                name = self.set(set, t),
            ));
        }
        sql
    }

    /// The statements that select, in `set` of `side`: the rows the predicate names in
    /// `seeded` tables, then their children down foreign keys (in tables the predicate
    /// applies to, only children it also selects), repeated until nothing is added.
    fn down(
        &self,
        set: &str,
        side: Side,
        applicable: &BTreeSet<String>,
        seeded: &BTreeSet<String>,
        predicate: &str,
    ) -> (Vec<String>, Vec<String>) {
        let mut seeds = Vec::new();
        for key in seeded {
            let Some(t) = self.tables.get(key) else { continue };
            let alias = quote_ident(&t.name);
            seeds.push(format!(
                "INSERT INTO {} SELECT {} FROM {} WHERE {} ON CONFLICT DO NOTHING",
                self.set(set, t),
                list(self.keys(t, side, &alias).into_iter()),
                self.source(t, side, &alias),
                predicate_in_parens(predicate)
            ));
        }
        let mut down = Vec::new();
        for (key, child) in self.tables {
            for fk in &child.foreign_keys {
                let Some(parent) = self.tables.get(&fk.parent) else { continue };
                if applicable.contains(key) {
                    // Unaliased, so the predicate's column names are the child's.
                    let c = quote_ident(&child.name);
                    down.push(format!(
                        "INSERT INTO {cset} SELECT {ckeys} FROM {csource} WHERE {pred} \
                         AND EXISTS (SELECT 1 FROM {pset} AS lb_s JOIN {psource} \
                         ON {on} WHERE {joins}) ON CONFLICT DO NOTHING",
                        cset = self.set(set, child),
                        ckeys = list(self.keys(child, side, &c).into_iter()),
                        csource = self.source(child, side, &c),
                        pred = predicate_in_parens(predicate),
                        pset = self.set(set, parent),
                        psource = self.source(parent, side, "lb_p"),
                        on = self.names(parent, side, "lb_s", "lb_p"),
                        joins = fk.joins("lb_p", &c),
                    ));
                } else {
                    down.push(format!(
                        "INSERT INTO {cset} SELECT {ckeys} FROM {pset} AS lb_s \
                         JOIN {psource} ON {on} JOIN {csource} ON {joins} \
                         ON CONFLICT DO NOTHING",
                        cset = self.set(set, child),
                        ckeys = list(self.keys(child, side, "lb_c").into_iter()),
                        pset = self.set(set, parent),
                        psource = self.source(parent, side, "lb_p"),
                        on = self.names(parent, side, "lb_s", "lb_p"),
                        csource = self.source(child, side, "lb_c"),
                        joins = fk.joins("lb_p", "lb_c"),
                    ));
                }
            }
        }
        (seeds, down)
    }

    /// The statements that add to the "p" sets what the selected rows, and the parents
    /// brought along, reference (snapshot side).
    fn up(&self) -> Vec<String> {
        let mut up = Vec::new();
        for child in self.tables.values() {
            for fk in &child.foreign_keys {
                let Some(parent) = self.tables.get(&fk.parent) else { continue };
                for from in ["s", "p"] {
                    up.push(format!(
                        "INSERT INTO {pset} SELECT {pkeys} FROM {cset} AS lb_s \
                         JOIN {csource} ON {on} JOIN {psource} ON {joins} \
                         ON CONFLICT DO NOTHING",
                        pset = self.set("p", parent),
                        pkeys = list(self.keys(parent, Side::Snapshot, "lb_p").into_iter()),
                        cset = self.set(from, child),
                        csource = self.source(child, Side::Snapshot, "lb_c"),
                        on = self.names(child, Side::Snapshot, "lb_s", "lb_c"),
                        psource = self.source(parent, Side::Snapshot, "lb_p"),
                        joins = fk.joins("lb_p", "lb_c"),
                    ));
                }
            }
        }
        up
    }
}

/// Runs `statements` until a round adds nothing (self-references, chains of any depth).
async fn fixpoint(client: &Client, statements: &[String], target: &str) -> Result<()> {
    loop {
        let mut added = 0;
        for sql in statements {
            debug!(%sql, "partial restore");
            added += client.execute(sql.as_str(), &[]).await.map_err(query_err(target))?;
        }
        if added == 0 {
            return Ok(());
        }
    }
}

/// Runs the seeds and the closure in a read-only transaction (the predicate may call
/// functions: none of them writes anything but these temporary tables).
async fn select_read_only(
    client: &Client,
    seeds: &[String],
    closure: &[String],
    target: &str,
) -> Result<()> {
    let q = query_err(target);
    client.batch_execute("BEGIN READ ONLY").await.map_err(&q)?;
    let result = async {
        for sql in seeds {
            debug!(%sql, "partial restore");
            client.execute(sql.as_str(), &[]).await.map_err(&q)?;
        }
        fixpoint(client, closure, target).await
    }
    .await;
    match result {
        Ok(()) => client.batch_execute("COMMIT").await.map_err(&q),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// `count(*)` of `sql`.
async fn count(client: &Client, sql: &str, target: &str) -> Result<u64> {
    debug!(%sql, "partial restore count");
    let row = client.query_one(sql, &[]).await.map_err(query_err(target))?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// Copies the rows `out` (a `COPY … TO STDOUT`) of `from` into `into` (a `COPY … FROM
/// STDIN`) of `to`, as text; returns the rows copied.
async fn copy_between(
    from: &Client,
    out: &str,
    to: &Client,
    into: &str,
) -> std::result::Result<u64, tokio_postgres::Error> {
    debug!(%out, %into, "partial restore copy");
    let sink = to.copy_in::<_, Bytes>(into).await?;
    pin_mut!(sink);
    let stream = from.copy_out(out).await?;
    pin_mut!(stream);
    while let Some(chunk) = stream.next().await {
        sink.as_mut().feed(chunk?).await?;
    }
    sink.as_mut().finish().await
}

/// The scratch database: the snapshot restored on the target's server.
struct ScratchDb {
    admin: Client,
    name: String,
}

impl ScratchDb {
    /// Restores the snapshot into a new database beside the target, checked as any restore.
    /// Scratch databases that killed partial restores of this machine left are dropped first.
    async fn create(ctx: &RestoreContext<'_>, url: &str, config: &Config) -> Result<ScratchDb> {
        let name = format!(
            "{SCRATCH_PREFIX}{}_{}_{}",
            this_boot(),
            base36(u64::from(std::process::id())),
            base36(unix_millis())
        );
        let admin = connect_as(&maintenance(config), APPLICATION).await?;
        drop_leftovers(&admin, &describe(config)).await?;
        let mut scratch_config = config.clone();
        scratch_config.dbname(&name);
        let options = RestoreOptions { create: true, ..Default::default() };
        let plan = PostgresRestorePlan::prepare_config(
            ctx.snapshot,
            url.to_string(),
            scratch_config,
            &options,
        )
        .await?
        .with_missing_roles(MissingRoles::Skip);
        info!(database = %name, "restoring the snapshot into a scratch database");
        // The plan drops the database again when it fails.
        plan.execute(ctx).await?;
        Ok(ScratchDb { admin, name })
    }

    async fn drop(self) {
        drop_database(&self.admin, &self.name).await;
    }
}

/// How scratch databases' names begin: `lb_rows_BOOT_PID_MILLIS`.
const SCRATCH_PREFIX: &str = "lb_rows_";

/// Eight hex digits naming this host and this boot of it (a pid means nothing elsewhere).
fn this_boot() -> String {
    use sha2::Digest;
    let seen = format!(
        "{}\n{}",
        lifeboat_core::host::host_name(),
        lifeboat_core::host::boot_id().unwrap_or_default()
    );
    sha2::Sha256::digest(seen.as_bytes()).iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The pid in a scratch database's name, when this boot of this host made it.
fn made_here_by(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(SCRATCH_PREFIX)?;
    let mut parts = rest.split('_');
    let (boot, pid) = (parts.next()?, parts.next()?);
    if boot != this_boot() {
        return None;
    }
    u32::try_from(u64::from_str_radix(pid, 36).ok()?).ok()
}

/// Drops the scratch databases on the server whose partial restore ran on this machine
/// and is gone (killed); warns about those it cannot judge.
async fn drop_leftovers(admin: &Client, server: &str) -> Result<()> {
    let rows = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)",
            &[&SCRATCH_PREFIX],
        )
        .await
        .map_err(query_err(server))?;
    for row in rows {
        let name: String = row.get(0);
        match made_here_by(&name) {
            Some(pid) if pid != std::process::id() && !lifeboat_core::host::process_alive(pid) => {
                info!(database = %name, "dropping the scratch database a killed partial restore left");
                drop_database(admin, &name).await;
            }
            Some(_) => {}
            None => tracing::warn!(
                database = %name,
                "a scratch database of a partial restore on another machine (or before a \
                 reboot); drop it with DROP DATABASE when no partial restore runs"
            ),
        }
    }
    Ok(())
}

/// What the scratch side found: the snapshot's tables and its selection.
struct Selected {
    tables: Tables,
    applicable: BTreeSet<String>,
    seeded: BTreeSet<String>,
    /// Per applicable table, the columns the predicate reads.
    predicate_columns: BTreeMap<String, BTreeSet<String>>,
    /// The tables with rows in the snapshot's selection (selected, or parents they need).
    with_rows: BTreeSet<String>,
}

/// The key of the table `--table wanted` names (`name` or `schema.name`, quoted or not).
fn table_key(tables: &Tables, wanted: &str) -> Result<String> {
    let (schema, name) = split_qualified(wanted);
    let matches = |exact: bool| -> Vec<String> {
        tables
            .values()
            .filter(|t| {
                let same =
                    |a: &str, b: &str| if exact { a == b } else { a.eq_ignore_ascii_case(b) };
                same(&t.name, &name) && schema.as_deref().is_none_or(|s| same(&t.schema, s))
            })
            .map(Table::key)
            .collect()
    };
    let mut found = matches(true);
    if found.is_empty() {
        found = matches(false);
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::InvalidInput {
            what: format!("--table {wanted}: the snapshot has no such table"),
            hint: format!("its tables are: {}", table_list(tables.values())),
        }),
        several => Err(Error::InvalidInput {
            what: format!("--table {wanted} names several tables: {}", several.join(", ")),
            hint: "give it as SCHEMA.NAME".into(),
        }),
    }
}

/// Works out the snapshot's side on the scratch session: the predicate checked, the
/// selected rows and their children in the "s" sets, the parents they need in the "p" sets.
async fn select_in_snapshot(
    scratch: &Client,
    selection: &RowSelection,
    target: &str,
) -> Result<Selected> {
    scratch.batch_execute(SESSION).await.map_err(query_err(target))?;
    let tables = read_schema(scratch, target).await?;
    let applicable = applicable_tables(scratch, &tables, &selection.predicate, target).await?;
    let seeded =
        selection.seeds(&applicable, |wanted| table_key(&tables, wanted), str::to_string)?;
    let mut read = BTreeMap::new();
    for key in &applicable {
        if let Some(t) = tables.get(key) {
            read.insert(
                key.clone(),
                predicate_columns(scratch, t, &selection.predicate, target).await?,
            );
        }
    }
    let sql = ScratchSql::new(&tables);
    let setup = sql.create_sets("s", Side::Snapshot) + &sql.create_sets("p", Side::Snapshot);
    scratch.batch_execute(&setup).await.map_err(query_err(target))?;
    let (seeds, mut closure) =
        sql.down("s", Side::Snapshot, &applicable, &seeded, &selection.predicate);
    select_read_only(scratch, &seeds, &closure, target).await?;
    closure = sql.up();
    fixpoint(scratch, &closure, target).await?;
    // Which tables have rows, in one round trip: the positions of those that do.
    let any = tables
        .values()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "SELECT {i} WHERE EXISTS (SELECT 1 FROM {}) OR EXISTS (SELECT 1 FROM {})",
                sql.set("s", t),
                sql.set("p", t)
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let with_rows = if tables.is_empty() {
        BTreeSet::new()
    } else {
        let found = scratch.query(any.as_str(), &[]).await.map_err(query_err(target))?;
        let keys: Vec<&String> = tables.keys().collect();
        found
            .iter()
            .filter_map(|r| keys.get(r.get::<_, i32>(0) as usize).map(|k| (*k).clone()))
            .collect()
    };
    Ok(Selected { tables, applicable, seeded, predicate_columns: read, with_rows })
}

/// The tables the live side works on: those with rows of the snapshot's selection, those
/// the predicate applies to, and every table connected to them by foreign keys in the live
/// database (whose rows could reference, or be reached from, the selection).
fn connected(live: &Tables, start: BTreeSet<String>) -> BTreeSet<String> {
    let mut found = start;
    loop {
        let mut grew = false;
        for (key, t) in live {
            for fk in &t.foreign_keys {
                let (a, b) = (key, &fk.parent);
                if found.contains(a) != found.contains(b) {
                    found.insert(a.clone());
                    found.insert(b.clone());
                    grew = true;
                }
            }
        }
        if !grew {
            return found.into_iter().filter(|k| live.contains_key(k)).collect();
        }
    }
}

/// A table's columns as they must match on both sides.
fn shape(t: &Table) -> Vec<(String, String, bool)> {
    t.columns.iter().map(|c| (c.name.clone(), c.ty.clone(), c.generated)).collect()
}

/// The live transaction, after the selection's current rows were found and the rows to
/// write copied into it.
struct Planned {
    /// Tables written or counted, snapshot's definitions (equal to the live ones).
    involved: Vec<Table>,
    /// The live database's tables (for the foreign keys that reference the written ones).
    live: Tables,
    ids: BTreeMap<String, usize>,
    /// Per table, the rows of the current selection.
    current_rows: BTreeMap<String, u64>,
}

impl Planned {
    fn id(&self, t: &Table) -> usize {
        self.ids.get(&t.key()).copied().unwrap_or(usize::MAX)
    }

    /// The snapshot's rows of `t` to write, with `"lifeboat selected"` (not only a parent).
    fn rows(&self, t: &Table) -> String {
        format!("pg_temp.lb_r{}", self.id(t))
    }

    /// The keys of the selection's current rows of `t`.
    fn current(&self, t: &Table) -> String {
        format!("pg_temp.lb_l{}", self.id(t))
    }
}

/// On the live transaction `live` and the scratch session: finds the selection's current
/// rows and copies what the writes need into temporary tables of `live`.
async fn prepare_live(
    live: &Client,
    scratch: &Client,
    snap: &Selected,
    selection: &RowSelection,
    target: &str,
    scratch_name: &str,
    lock: bool,
) -> Result<Planned> {
    let q = query_err(target);
    let qs = query_err(scratch_name);
    let live_tables = read_schema(live, target).await?;
    let sql = ScratchSql::new(&snap.tables);
    let with_rows = &snap.with_rows;
    let mut start: BTreeSet<String> = with_rows.clone();
    start.extend(snap.applicable.iter().cloned());
    let component = connected(&live_tables, start.clone());
    if lock && !component.is_empty() {
        let names = list(component.iter().filter_map(|k| live_tables.get(k)).map(Table::sql));
        live.batch_execute(&format!("LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE"))
            .await
            .map_err(&q)?;
    }
    // Tables written must be the same on both sides; others need only the columns the
    // selection reads.
    let differs = |what: String| Error::InvalidInput {
        what: format!("{what}: a partial restore needs the same columns on both sides"),
        hint: "restore the whole snapshot into a new database (--create) and copy the rows \
               over by hand, or migrate a copy of the snapshot first"
            .into(),
    };
    for key in &start {
        let Some(t) = snap.tables.get(key) else { continue };
        match live_tables.get(key) {
            None => {
                return Err(differs(format!("table {key} is in the snapshot but not in {target}")));
            }
            Some(l) if shape(l) != shape(t) || l.primary_key != t.primary_key => {
                return Err(differs(format!(
                    "table {key} has columns ({}) and key ({}) in the snapshot, ({}) and ({}) in {target}",
                    list(t.columns.iter().map(|c| format!("{} {}", c.name, c.ty))),
                    t.primary_key.join(", "),
                    list(l.columns.iter().map(|c| format!("{} {}", c.name, c.ty))),
                    l.primary_key.join(", "),
                )));
            }
            Some(_) => {}
        }
    }
    // The live side, selected with the live foreign keys among the tables in both.
    let copied: Tables = component
        .iter()
        .filter(|k| snap.tables.contains_key(*k))
        .filter_map(|k| live_tables.get(k).map(|t| (k.clone(), t.clone())))
        .collect();
    let mut needed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, t) in &copied {
        let cols = needed.entry(key.clone()).or_default();
        cols.extend(t.primary_key.iter().cloned());
        for fk in &t.foreign_keys {
            cols.extend(fk.from.iter().cloned());
        }
        if let Some(pred) = snap.predicate_columns.get(key) {
            cols.extend(pred.iter().cloned());
        }
        for fk in &t.foreign_keys {
            needed.entry(fk.parent.clone()).or_default().extend(fk.to.iter().cloned());
        }
    }
    // The live tables under the snapshot's positions, so the set names agree.
    let mut live_sql_tables: Tables = BTreeMap::new();
    for (key, t) in &snap.tables {
        if let Some(l) = copied.get(key) {
            live_sql_tables.insert(key.clone(), l.clone());
        } else {
            // Not copied: an empty copy keeps the statements valid.
            live_sql_tables.insert(key.clone(), Table { foreign_keys: Vec::new(), ..t.clone() });
        }
    }
    let live_sql = ScratchSql { tables: &live_sql_tables, ids: sql.ids.clone() };
    for (key, t) in &live_sql_tables {
        let snap_t = snap.tables.get(key).unwrap_or(t);
        let mut wanted = needed.get(key).cloned().unwrap_or_default();
        wanted.extend(t.primary_key.iter().cloned());
        let columns: Vec<&Column> = t.columns.iter().filter(|c| wanted.contains(&c.name)).collect();
        for c in &columns {
            if !snap_t.columns.iter().any(|s| s.name == c.name && s.ty == c.ty) {
                return Err(differs(format!(
                    "column {} {} of table {key} is not in the snapshot's table",
                    c.name, c.ty
                )));
            }
        }
        let mut select = list(columns.iter().map(|c| quote_ident(&c.name)));
        let row_number = !t.has_key();
        if row_number {
            select = if select.is_empty() {
                "row_number() OVER () AS \"lifeboat row\"".into()
            } else {
                format!("{select}, row_number() OVER () AS \"lifeboat row\"")
            };
        }
        if select.is_empty() {
            select = "1 AS \"lifeboat none\"".into();
        }
        let copy = live_sql.copy(t);
        scratch
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {copy}; CREATE TEMP TABLE {} AS SELECT {select} FROM {} LIMIT 0",
                copy.trim_start_matches("pg_temp."),
                snap_t.sql(),
            ))
            .await
            .map_err(&qs)?;
        if copied.contains_key(key) {
            copy_between(
                live,
                &format!("COPY (SELECT {select} FROM {}) TO STDOUT", t.sql()),
                scratch,
                &format!("COPY {copy} FROM STDIN"),
            )
            .await
            .map_err(|e| -> Error {
                PgError::Query {
                    target: target.to_string(),
                    reason: format!("copying the selection's columns of {key}: {}", db_message(&e)),
                }
                .into()
            })?;
        }
    }
    scratch.batch_execute(&live_sql.create_sets("l", Side::Live)).await.map_err(&qs)?;
    let applicable: BTreeSet<String> =
        snap.applicable.iter().filter(|k| copied.contains_key(*k)).cloned().collect();
    let seeded: BTreeSet<String> =
        snap.seeded.iter().filter(|k| copied.contains_key(*k)).cloned().collect();
    let (seeds, closure) =
        live_sql.down("l", Side::Live, &applicable, &seeded, &selection.predicate);
    select_read_only(scratch, &seeds, &closure, scratch_name).await?;

    // Involved: tables with rows on either side, or the predicate's.
    let mut involved = Vec::new();
    let mut current_rows = BTreeMap::new();
    for (key, t) in &snap.tables {
        let current =
            count(scratch, &format!("SELECT count(*) FROM {}", live_sql.set("l", t)), scratch_name)
                .await?;
        current_rows.insert(key.clone(), current);
        if !(with_rows.contains(key) || current > 0 || snap.applicable.contains(key)) {
            continue;
        }
        if current > 0 && !start.contains(key) {
            // Reached only on the live side: it must match as well.
            if let Some(l) = live_tables.get(key)
                && (shape(l) != shape(t) || l.primary_key != t.primary_key)
            {
                return Err(differs(format!(
                    "table {key} differs between the snapshot and {target}"
                )));
            }
        }
        involved.push(t.clone());
    }
    let planned = Planned { involved, live: live_tables, ids: sql.ids.clone(), current_rows };
    for t in &planned.involved {
        let written = t.written();
        let cols = list(written.iter().map(|c| quote_ident(&c.name)));
        let rows = planned.rows(t);
        live.batch_execute(&format!(
            "DROP TABLE IF EXISTS {rows}; CREATE TEMP TABLE {} AS SELECT {cols}, true AS \"lifeboat selected\" FROM {} LIMIT 0",
            rows.trim_start_matches("pg_temp."),
            t.sql()
        ))
        .await
        .map_err(&q)?;
        let keys = list(sql.keys(t, Side::Snapshot, "x").into_iter());
        let x_cols = list(written.iter().map(|c| format!("x.{}", quote_ident(&c.name))));
        copy_between(
            scratch,
            &format!(
                "COPY (SELECT {x_cols}, ({keys}) IN (SELECT * FROM {s}) FROM {tsql} AS x \
                 WHERE ({keys}) IN (SELECT * FROM {s} UNION SELECT * FROM {p})) TO STDOUT",
                s = sql.set("s", t),
                p = sql.set("p", t),
                tsql = t.sql(),
            ),
            live,
            &format!("COPY {rows} FROM STDIN"),
        )
        .await
        .map_err(|e| -> Error {
            PgError::Query {
                target: target.to_string(),
                reason: format!("copying the snapshot's rows of {}: {}", t.key(), db_message(&e)),
            }
            .into()
        })?;
        if t.has_key() {
            let current = planned.current(t);
            let pk = list(
                t.primary_key
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{} AS k{i}", quote_ident(c))),
            );
            live.batch_execute(&format!(
                "DROP TABLE IF EXISTS {current}; CREATE TEMP TABLE {} AS SELECT {pk} FROM {} LIMIT 0",
                current.trim_start_matches("pg_temp."),
                t.sql()
            ))
            .await
            .map_err(&q)?;
            copy_between(
                scratch,
                &format!("COPY (SELECT * FROM {}) TO STDOUT", live_sql.set("l", t)),
                live,
                &format!("COPY {current} FROM STDIN"),
            )
            .await
            .map_err(&q)?;
        }
        live.batch_execute(&format!("ANALYZE {rows}")).await.map_err(&q)?;
    }
    Ok(planned)
}

/// Counts what writing `t` in `mode` does, on the live transaction.
async fn table_counts(
    live: &Client,
    p: &Planned,
    t: &Table,
    mode: MergeMode,
    target: &str,
) -> Result<TableChanges> {
    let name = t.sql();
    let rows = p.rows(t);
    let mut c = TableChanges { table: t.key(), ..Default::default() };
    if !t.has_key() {
        c.add = count(
            live,
            &format!(
                "SELECT count(*) FROM {rows} AS r WHERE NOT EXISTS (SELECT 1 FROM {name} AS l WHERE {})",
                t.same_values("l", "r")
            ),
            target,
        )
        .await?;
        let all = count(live, &format!("SELECT count(*) FROM {rows}"), target).await?;
        c.keep = all.saturating_sub(c.add);
        return Ok(c);
    }
    let current = p.current(t);
    let exists_live = format!("EXISTS (SELECT 1 FROM {name} AS l WHERE {})", t.same_key("l", "r"));
    let in_current = format!("EXISTS (SELECT 1 FROM {current} AS o WHERE {})", t.names("o", "r"));
    c.add =
        count(live, &format!("SELECT count(*) FROM {rows} AS r WHERE NOT {exists_live}"), target)
            .await?;
    let parents_there = count(
        live,
        &format!(
            "SELECT count(*) FROM {rows} AS r WHERE NOT r.\"lifeboat selected\" AND {exists_live}"
        ),
        target,
    )
    .await?;
    let paired = format!(
        "FROM {rows} AS r JOIN {name} AS l ON {} WHERE r.\"lifeboat selected\" AND {in_current}",
        t.same_key("l", "r")
    );
    let same = t.same_values("r", "l");
    let differing =
        count(live, &format!("SELECT count(*) {paired} AND NOT ({same})"), target).await?;
    let equal = count(live, &format!("SELECT count(*) {paired} AND ({same})"), target).await?;
    c.held_elsewhere = count(
        live,
        &format!(
            "SELECT count(*) FROM {rows} AS r WHERE r.\"lifeboat selected\" AND {exists_live} AND NOT {in_current}"
        ),
        target,
    )
    .await?;
    c.settle(mode, differing, equal, parents_there);
    if mode == MergeMode::Replace {
        c.delete = count(
            live,
            &format!("SELECT count(*) FROM {current} AS o WHERE {}", gone(t, &rows)),
            target,
        )
        .await?;
    }
    Ok(c)
}

/// For a row `o` of the current selection's keys: not among the snapshot's selected rows.
fn gone(t: &Table, rows: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM {rows} AS r WHERE r.\"lifeboat selected\" AND {})",
        t.names("o", "r")
    )
}

/// Rows outside the selection that reference rows `replace` would delete: they would lose
/// their parent, or cascade away. Every live table's foreign keys count.
async fn orphans(live: &Client, p: &Planned, target: &str) -> Result<Option<String>> {
    let involved: BTreeMap<String, &Table> = p.involved.iter().map(|t| (t.key(), t)).collect();
    for child in p.live.values() {
        for fk in &child.foreign_keys {
            let Some(parent) = involved.get(&fk.parent) else { continue };
            if !parent.has_key() {
                continue;
            }
            let outside = match involved.get(&child.key()) {
                Some(c) if c.has_key() => format!(
                    "AND NOT EXISTS (SELECT 1 FROM {} AS x WHERE {})",
                    p.current(c),
                    c.names("x", "c")
                ),
                _ => String::new(),
            };
            let n = count(
                live,
                &format!(
                    "SELECT count(*) FROM {cur} AS o JOIN {pname} AS lb_p ON {pkey} \
                     JOIN {cname} AS c ON {joins} WHERE {gone} {outside}",
                    cur = p.current(parent),
                    pname = parent.sql(),
                    pkey = parent.names("o", "lb_p"),
                    cname = child.sql(),
                    joins = fk.joins("lb_p", "c"),
                    gone = gone(parent, &p.rows(parent)),
                ),
                target,
            )
            .await?;
            if n > 0 {
                return Ok(Some(format!(
                    "{n} rows of {} outside the selection reference rows of {} that replace would delete",
                    child.key(),
                    parent.key()
                )));
            }
        }
    }
    Ok(None)
}

/// Counts every involved table, refusing what the mode cannot do.
async fn plan(
    live: &Client,
    p: &Planned,
    mode: MergeMode,
    target: &str,
) -> Result<Vec<TableChanges>> {
    let mut counts = Vec::new();
    for t in &p.involved {
        if !t.has_key() && mode != MergeMode::Insert {
            let rows = count(live, &format!("SELECT count(*) FROM {}", p.rows(t)), target).await?;
            if rows > 0 || p.current_rows.get(&t.key()).is_some_and(|&n| n > 0) {
                return Err(Error::InvalidInput {
                    what: format!(
                        "table {} has no primary key, so --mode {mode} cannot tell which of its rows to change",
                        t.key()
                    ),
                    hint: "use --mode insert (adds the missing rows), or leave the table out with --table".into(),
                });
            }
            continue;
        }
        let c = table_counts(live, p, t, mode, target).await?;
        if mode == MergeMode::Replace && c.held_elsewhere > 0 {
            return Err(Error::InvalidInput {
                what: format!(
                    "{} rows of {} in the snapshot's selection have keys that rows outside the selection now hold in {target}",
                    c.held_elsewhere,
                    t.key()
                ),
                hint: "replace would overwrite rows that are not the selection's; use --mode insert or upsert, which leave them".into(),
            });
        }
        counts.push(c);
    }
    if mode == MergeMode::Replace
        && let Some(why) = orphans(live, p, target).await?
    {
        return Err(Error::InvalidInput {
            what: why,
            hint: "widen --where so it takes those rows too, or use --mode upsert".into(),
        });
    }
    Ok(counts)
}

/// `tables`, parents before children where foreign keys order them.
fn parents_first<'a>(tables: impl Iterator<Item = &'a Table>) -> Vec<&'a Table> {
    let mut left: Vec<&Table> = tables.collect();
    let mut ordered = Vec::new();
    while !left.is_empty() {
        let keys: BTreeSet<String> = left.iter().map(|t| t.key()).collect();
        let (ready, waiting): (Vec<&Table>, Vec<&Table>) = left.iter().partition(|t| {
            t.foreign_keys.iter().all(|fk| fk.parent == t.key() || !keys.contains(&fk.parent))
        });
        if ready.is_empty() {
            // A cycle: the rest in name order; deferrable constraints are deferred.
            ordered.extend(waiting);
            break;
        }
        ordered.extend(ready);
        left = waiting;
    }
    ordered
}

/// Writes the planned changes: deletes children first, then per table parents first the
/// updates and inserts; each statement's count must be the plan's.
async fn write(
    live: &Client,
    p: &Planned,
    planned: &[TableChanges],
    mode: MergeMode,
    target: &str,
) -> Result<()> {
    let q = query_err(target);
    let plan_of = |t: &Table| planned.iter().find(|c| c.table == t.key());
    let order = parents_first(p.involved.iter());
    let check = |t: &Table, what: &str, want: u64, did: u64| -> Result<()> {
        if want == did {
            Ok(())
        } else {
            Err(lifeboat_core::Error::Backend {
                kind: lifeboat_core::Kind::POSTGRES,
                message: format!(
                    "table {}: planned {want} rows {what}, the statement did {did}",
                    t.key()
                ),
            })
        }
    };
    if mode == MergeMode::Replace {
        for t in order.iter().rev() {
            let Some(c) = plan_of(t) else { continue };
            if !t.has_key() {
                continue;
            }
            let sql = format!(
                "DELETE FROM {name} AS l USING {cur} AS o WHERE {on} AND {gone}",
                name = t.sql(),
                cur = p.current(t),
                on = t.names("o", "l"),
                gone = gone(t, &p.rows(t)),
            );
            debug!(%sql, "partial restore");
            let did = live.execute(sql.as_str(), &[]).await.map_err(&q)?;
            check(t, "deleted", c.delete, did)?;
        }
    }
    for t in &order {
        let Some(c) = plan_of(t) else { continue };
        let written = t.written();
        let cols = list(written.iter().map(|c| quote_ident(&c.name)));
        let r_cols = list(written.iter().map(|c| format!("r.{}", quote_ident(&c.name))));
        let name = t.sql();
        let rows = p.rows(t);
        // The rows whose match (by key, or by every value without one) is missing.
        let insert = |matched: String| {
            format!(
                "INSERT INTO {name}({cols}){over} SELECT {r_cols} FROM {rows} AS r \
                 WHERE NOT EXISTS (SELECT 1 FROM {name} AS l WHERE {matched})",
                over = overriding(t),
            )
        };
        if !t.has_key() {
            let sql = insert(t.same_values("l", "r"));
            debug!(%sql, "partial restore");
            let did = live.execute(sql.as_str(), &[]).await.map_err(&q)?;
            check(t, "added", c.add, did)?;
            continue;
        }
        let values: Vec<&&Column> =
            written.iter().filter(|c| !t.primary_key.contains(&c.name)).collect();
        if mode != MergeMode::Insert && !values.is_empty() {
            let sql = format!(
                "UPDATE {name} AS l SET {set} FROM {rows} AS r WHERE {on} AND r.\"lifeboat selected\" \
                 AND EXISTS (SELECT 1 FROM {cur} AS o WHERE {current}) AND NOT ({same})",
                set = list(values.iter().map(|c| {
                    let c = quote_ident(&c.name);
                    format!("{c} = r.{c}")
                })),
                on = t.same_key("l", "r"),
                cur = p.current(t),
                current = t.names("o", "r"),
                same = t.same_values("r", "l"),
            );
            debug!(%sql, "partial restore");
            let did = live.execute(sql.as_str(), &[]).await.map_err(&q)?;
            check(t, "changed", c.change, did)?;
        }
        let sql = insert(t.same_key("l", "r"));
        debug!(%sql, "partial restore");
        let did = live.execute(sql.as_str(), &[]).await.map_err(&q)?;
        check(t, "added", c.add, did)?;
    }
    Ok(())
}

/// ` OVERRIDING SYSTEM VALUE` when `t` has a `GENERATED ALWAYS` identity column.
fn overriding(t: &Table) -> &'static str {
    if t.columns.iter().any(|c| c.identity_always && !c.generated) {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    }
}

/// What is left undone in `t` after writing; `None` when nothing is.
async fn left_undone(
    live: &Client,
    p: &Planned,
    t: &Table,
    mode: MergeMode,
    target: &str,
) -> Result<Option<String>> {
    let name = t.sql();
    let rows = p.rows(t);
    if !t.has_key() {
        let c = table_counts(live, p, t, mode, target).await?;
        return Ok((c.add > 0).then(|| format!("{} rows still missing", c.add)));
    }
    let missing = count(
        live,
        &format!(
            "SELECT count(*) FROM {rows} AS r WHERE NOT EXISTS (SELECT 1 FROM {name} AS l WHERE {})",
            t.same_key("l", "r")
        ),
        target,
    )
    .await?;
    if missing > 0 {
        return Ok(Some(format!("{missing} rows still missing")));
    }
    let current = p.current(t);
    if mode != MergeMode::Insert {
        let differing = count(
            live,
            &format!(
                "SELECT count(*) FROM {rows} AS r JOIN {name} AS l ON {on} WHERE r.\"lifeboat selected\" \
                 AND EXISTS (SELECT 1 FROM {current} AS o WHERE {cur}) AND NOT ({same})",
                on = t.same_key("l", "r"),
                cur = t.names("o", "r"),
                same = t.same_values("r", "l"),
            ),
            target,
        )
        .await?;
        if differing > 0 {
            return Ok(Some(format!("{differing} rows still differ from the snapshot")));
        }
    }
    if mode == MergeMode::Replace {
        let kept = count(
            live,
            &format!(
                "SELECT count(*) FROM {current} AS o JOIN {name} AS l ON {on} WHERE {gone}",
                on = t.names("o", "l"),
                gone = gone(t, &rows),
            ),
            target,
        )
        .await?;
        if kept > 0 {
            return Ok(Some(format!("{kept} rows that are not in the snapshot are still there")));
        }
    }
    Ok(None)
}

/// Restores the rows `selection` names from `ctx.snapshot` into the live PostgreSQL database
/// at `url` (see the module's documentation); with `dry_run`, only counts.
///
/// # Errors
/// A snapshot that is not a PostgreSQL dump, a database that does not exist or cannot be
/// reached, a scratch database that cannot be made (the user needs CREATEDB), a predicate
/// PostgreSQL refuses or that names no column, tables that differ between snapshot and
/// target, what the mode cannot do, and any failure while writing: then nothing is
/// committed.
pub async fn restore_rows(
    ctx: &RestoreContext<'_>,
    url: &str,
    selection: &RowSelection,
    dry_run: bool,
) -> Result<RowsReport> {
    let config = parse(url)?;
    let target = describe(&config);
    if config.get_dbname().is_none() {
        return Err(PgError::BadUrl { reason: "the URL names no database".into() }.into());
    }
    // The target must exist: rows are merged into it.
    let live = connect_as(&config, APPLICATION).await?;
    live.batch_execute(SESSION).await.map_err(query_err(&target))?;
    let scratch_db = ScratchDb::create(ctx, url, &config).await?;
    let result = restore_rows_with(ctx, url, &config, &live, &scratch_db, selection, dry_run).await;
    scratch_db.drop().await;
    let kept = format!("nothing was written to {target}");
    result.map_err(|e| match e {
        Error::InvalidInput { what, hint } if !dry_run => {
            Error::InvalidInput { what: format!("{what}; {kept}"), hint }
        }
        Error::InvalidInput { .. } => e,
        other if !dry_run => Error::Backend {
            kind: lifeboat_core::Kind::POSTGRES,
            message: format!("{other}; {kept}"),
        },
        other => other,
    })
}

#[allow(clippy::too_many_arguments)]
async fn restore_rows_with(
    ctx: &RestoreContext<'_>,
    url: &str,
    config: &Config,
    live: &Client,
    scratch_db: &ScratchDb,
    selection: &RowSelection,
    dry_run: bool,
) -> Result<RowsReport> {
    let target = describe(config);
    let mut scratch_config = config.clone();
    scratch_config.dbname(&scratch_db.name);
    let scratch_name = describe(&scratch_config);
    let scratch = connect_as(&scratch_config, APPLICATION).await?;
    let snap = select_in_snapshot(&scratch, selection, &scratch_name).await?;
    let q = query_err(&target);
    let begin = if dry_run {
        "BEGIN ISOLATION LEVEL REPEATABLE READ"
    } else {
        "BEGIN; SET CONSTRAINTS ALL DEFERRED"
    };
    live.batch_execute(begin).await.map_err(&q)?;
    let result = async {
        let planned =
            prepare_live(live, &scratch, &snap, selection, &target, &scratch_name, !dry_run)
                .await?;
        let counts = plan(live, &planned, selection.mode, &target).await?;
        Ok::<_, Error>((planned, counts))
    }
    .await;
    let (planned, counts) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = live.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    };
    let report = |tables: Vec<TableChanges>, safety| RowsReport {
        target: target.clone(),
        snapshot: ctx.snapshot.id(),
        safety_snapshot: safety,
        safety_rows_only: false,
        predicate: selection.predicate.clone(),
        mode: selection.mode,
        dry_run,
        tables,
    };
    if dry_run || counts.iter().all(|c| !c.writes()) {
        live.batch_execute("ROLLBACK").await.map_err(&q)?;
        return Ok(report(counts, None));
    }
    let written = async {
        // The lock holds writers off while pg_dump (which only reads) takes the safety copy.
        let source = crate::PostgresBackup::new(url.to_string());
        let name = lifeboat_core::Backup::default_name(&source);
        let safety = ctx.save_safety(&source, &name, Tags::new()).await?;
        info!(safety = %safety, target = %target, "safety snapshot taken");
        write(live, &planned, &counts, selection.mode, &target).await?;
        for t in &planned.involved {
            if let Some(what) = left_undone(live, &planned, t, selection.mode, &target).await? {
                return Err(Error::Backend {
                    kind: lifeboat_core::Kind::POSTGRES,
                    message: format!(
                        "after writing table {}, {what}: a trigger or rule may have changed the rows",
                        t.key()
                    ),
                });
            }
        }
        live.batch_execute("COMMIT").await.map_err(|e| -> Error {
            PgError::Query {
                target: target.clone(),
                reason: format!("committing (deferred constraints are checked here): {}", db_message(&e)),
            }
            .into()
        })?;
        Ok(safety)
    }
    .await;
    match written {
        Ok(safety) => Ok(report(counts, Some(safety))),
        Err(e) => {
            let _ = live.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Exports the rows `predicate` selects in `snapshot`, following foreign keys as a partial
/// restore does, selected on a scratch database made on `server` and dropped again: CSV or
/// JSON lines per table, or a script `psql` loads into an empty database (the schema as
/// `pg_dump` writes it, the selected rows parents first, the sequences where they were).
pub(crate) async fn export_selection(
    snapshot: &dyn lifeboat_core::Snapshot,
    server: &str,
    predicate: &str,
    request: &ExportRequest,
    progress: &dyn lifeboat_core::Progress,
) -> Result<ExportReport> {
    let expected: PostgresMetadata = serde_json::from_value(snapshot.manifest().metadata.clone())
        .map_err(|e| Error::Backend {
        kind: lifeboat_core::Kind::POSTGRES,
        message: format!("the manifest's PostgreSQL metadata is unreadable: {e}"),
    })?;
    let tools = server_tools(expected.server_major)?;
    let config = parse(server)?;
    let net = lifeboat_core::MemorySafetyNet::default();
    let ctx = RestoreContext { snapshot, safety_net: &net, progress };
    let scratch_db = ScratchDb::create(&ctx, server, &config).await?;
    let result = export_from(&scratch_db, &config, &tools, predicate, request, &expected).await;
    scratch_db.drop().await;
    Ok(ExportReport {
        snapshot: snapshot.id(),
        format: request.format,
        predicate: Some(predicate.to_string()),
        tables: result?,
    })
}

async fn export_from(
    scratch_db: &ScratchDb,
    config: &Config,
    tools: &crate::ServerTools,
    predicate: &str,
    request: &ExportRequest,
    expected: &PostgresMetadata,
) -> Result<Vec<TableExport>> {
    let mut scratch_config = config.clone();
    scratch_config.dbname(&scratch_db.name);
    let name = describe(&scratch_config);
    let scratch = connect_as(&scratch_config, APPLICATION).await?;
    let selection = RowSelection {
        predicate: predicate.to_string(),
        tables: request.tables.clone(),
        mode: MergeMode::Insert,
    };
    let snap = select_in_snapshot(&scratch, &selection, &name).await?;
    let sql = ScratchSql::new(&snap.tables);
    let chosen: Vec<&Table> =
        snap.tables.values().filter(|t| snap.with_rows.contains(&t.key())).collect();
    let rows_of = |t: &Table| {
        let keys = list(sql.keys(t, Side::Snapshot, "x").into_iter());
        format!(
            "COPY (SELECT {cols} FROM {table} AS x WHERE ({keys}) IN \
             (SELECT * FROM {s} UNION SELECT * FROM {p})) TO STDOUT",
            cols = list(t.written().iter().map(|c| format!("x.{}", quote_ident(&c.name)))),
            table = t.sql(),
            s = sql.set("s", t),
            p = sql.set("p", t),
        )
    };
    let copy_err = |t: &Table, e: tokio_postgres::Error| -> Error {
        PgError::Query {
            target: name.clone(),
            reason: format!("reading the selected rows of {}: {}", t.key(), db_message(&e)),
        }
        .into()
    };
    if request.format != ExportFormat::Sql {
        request.one_table_on_stdout(chosen.len())?;
        if let ExportTo::Folder(dir) = &request.to {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the folder", dir, e))?;
        }
        let mut done = Vec::new();
        for t in chosen {
            let columns = t.written().iter().map(|c| c.name.clone()).collect();
            let mut out = RowsOut::open(t.key(), columns, request)?;
            let stream = scratch.copy_out(rows_of(t).as_str()).await.map_err(|e| copy_err(t, e))?;
            pin_mut!(stream);
            let mut pending: Vec<u8> = Vec::new();
            while let Some(chunk) = stream.next().await {
                pending.extend_from_slice(&chunk.map_err(|e| copy_err(t, e))?);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    out.copy_line(&pending[..end])?;
                    pending.drain(..=end);
                }
            }
            done.push(out.finish()?);
        }
        return Ok(done);
    }
    let (temp, final_path) = script_place(request, &expected.database)?;
    let path = temp.path().to_path_buf();
    let io = |e| Error::io("writing", &path, e);
    let mut script = std::io::BufWriter::with_capacity(1 << 20, temp.as_file());
    use std::io::Write as _;
    script.write_all(&pg_dump_section(tools, &scratch_config, "pre-data").await?).map_err(io)?;
    let mut done = Vec::new();
    for t in parents_first(chosen.into_iter()) {
        let cols = list(t.written().iter().map(|c| quote_ident(&c.name)));
        write!(script, "\nCOPY {} ({cols}) FROM stdin;\n", t.sql()).map_err(io)?;
        let stream = scratch.copy_out(rows_of(t).as_str()).await.map_err(|e| copy_err(t, e))?;
        pin_mut!(stream);
        let mut rows = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| copy_err(t, e))?;
            rows += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            script.write_all(&chunk).map_err(io)?;
        }
        script.write_all(b"\\.\n").map_err(io)?;
        done.push(TableExport { table: t.key(), rows, file: None });
    }
    // Sequences as they were in the snapshot.
    let sequences = scratch
        .query(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), last_value \
             FROM pg_sequences WHERE last_value IS NOT NULL ORDER BY 1",
            &[],
        )
        .await
        .map_err(query_err(&name))?;
    script.write_all(b"\n").map_err(io)?;
    for row in sequences {
        let (sequence, last): (String, i64) = (row.get(0), row.get(1));
        writeln!(script, "SELECT pg_catalog.setval({}, {last}, true);", quote_literal(&sequence))
            .map_err(io)?;
    }
    script.write_all(&pg_dump_section(tools, &scratch_config, "post-data").await?).map_err(io)?;
    script.flush().map_err(io)?;
    drop(script);
    let file = deliver(temp, final_path)?;
    Ok(done.into_iter().map(|t| TableExport { file: file.clone(), ..t }).collect())
}

/// `pg_dump --section=SECTION` of the database `config` names, as a script.
async fn pg_dump_section(
    tools: &crate::ServerTools,
    config: &Config,
    section: &str,
) -> Result<Vec<u8>> {
    let dbname = config.get_dbname().unwrap_or("postgres");
    let mut command = tokio::process::Command::new(&tools.pg_dump);
    command.arg(format!("--section={section}")).args(tool_args(config, dbname));
    if let Some(pw) = password(config) {
        command.env("PGPASSWORD", pw);
    }
    let out = command.output().await.map_err(|e| PgError::Tool {
        tool: "pg_dump",
        status: "not started".into(),
        stderr: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(PgError::Tool {
            tool: "pg_dump",
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
        .into());
    }
    Ok(out.stdout)
}
