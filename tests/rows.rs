//! One tenant's rows back without touching the others: `restore --where` on SQLite, on a
//! multi-tenant schema with foreign keys, a composite key and a self-reference.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::types::Value;
use util::*;

/// tenants ← users (self-referencing manager) ← orders (composite key) ← order_lines (no
/// tenant column: reached only along the foreign key), plus a log without a key or a tenant.
const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
CREATE TABLE tenants(id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE users(
  id INTEGER PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  email TEXT NOT NULL UNIQUE,
  manager_id INTEGER REFERENCES users(id)
);
CREATE TABLE orders(
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  order_no INTEGER NOT NULL,
  user_id INTEGER NOT NULL REFERENCES users(id),
  total INTEGER NOT NULL,
  PRIMARY KEY(tenant_id, order_no)
);
CREATE TABLE order_lines(
  id INTEGER PRIMARY KEY,
  order_tenant TEXT NOT NULL,
  order_no INTEGER NOT NULL,
  sku TEXT NOT NULL,
  qty INTEGER NOT NULL,
  FOREIGN KEY(order_tenant, order_no) REFERENCES orders(tenant_id, order_no) ON DELETE CASCADE
);
CREATE INDEX users_tenant ON users(tenant_id);
CREATE INDEX lines_order ON order_lines(order_tenant, order_no);
CREATE TABLE log(at INTEGER, note TEXT);
";

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

fn open(db: &Path) -> Connection {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    conn
}

fn make_db(db: &Path) {
    make_db_sized(db, 5);
}

/// The schema with `orders` orders of three lines per tenant.
fn make_db_sized(db: &Path, orders: i64) {
    let conn = open(db);
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch("BEGIN").unwrap();
    let mut user = 0;
    let mut line = 0;
    for (t, tenant) in TENANTS.iter().enumerate() {
        conn.execute("INSERT INTO tenants VALUES (?1, ?2)", (tenant, format!("{tenant} inc")))
            .unwrap();
        let first = user + 1;
        for u in 0..4 {
            user += 1;
            let manager = if u == 0 { None } else { Some(first) };
            conn.execute(
                "INSERT INTO users VALUES (?1, ?2, ?3, ?4)",
                (user, tenant, format!("u{u}@{tenant}.example"), manager),
            )
            .unwrap();
        }
        for o in 1..=orders {
            conn.execute(
                "INSERT INTO orders VALUES (?1, ?2, ?3, ?4)",
                (tenant, o, first + (o % 4), 100 * o + t as i64),
            )
            .unwrap();
            for l in 0..3 {
                line += 1;
                conn.execute(
                    "INSERT INTO order_lines VALUES (?1, ?2, ?3, ?4, ?5)",
                    (line, tenant, o, format!("sku-{l}"), l + 1),
                )
                .unwrap();
            }
        }
        conn.execute("INSERT INTO log VALUES (?1, ?2)", (t as i64, format!("{tenant} created")))
            .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// What happens after the backup: acme loses its orders (and, by cascade, their lines),
/// gains an order the snapshot does not have and renames a user; globex changes too.
fn damage(db: &Path) {
    let conn = open(db);
    conn.execute_batch(
        "DELETE FROM orders WHERE tenant_id = 'acme' AND order_no <= 3;
         UPDATE orders SET total = total + 1 WHERE tenant_id = 'acme' AND order_no = 4;
         INSERT INTO orders VALUES ('acme', 999999, 1, 9999);
         INSERT INTO order_lines VALUES (10000000, 'acme', 999999, 'sku-new', 7);
         UPDATE users SET email = 'renamed@acme.example' WHERE id = 2;
         UPDATE orders SET total = 0 WHERE tenant_id = 'globex';
         UPDATE users SET email = 'boss@globex.example' WHERE id = 5;
         INSERT INTO log VALUES (9, 'after the backup');",
    )
    .unwrap();
}

/// Every row of `sql`, each as one line.
fn rows(db: &Path, sql: &str) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let width = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..width)
            .map(|i| format!("{:?}", r.get::<_, Value>(i).unwrap()))
            .collect::<Vec<_>>()
            .join("|"))
    })
    .unwrap()
    .collect::<Result<Vec<_>, _>>()
    .unwrap()
}

/// One tenant's rows in every table, in a fixed order.
fn tenant_rows(db: &Path, tenant: &str) -> Vec<String> {
    let mut all = Vec::new();
    for (table, sql) in [
        ("tenants", format!("SELECT * FROM tenants WHERE id = '{tenant}'")),
        ("users", format!("SELECT * FROM users WHERE tenant_id = '{tenant}' ORDER BY id")),
        ("orders", format!("SELECT * FROM orders WHERE tenant_id = '{tenant}' ORDER BY order_no")),
        ("lines", format!("SELECT * FROM order_lines WHERE order_tenant = '{tenant}' ORDER BY id")),
    ] {
        all.extend(rows(db, &sql).into_iter().map(|r| format!("{table}: {r}")));
    }
    all
}

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    repo: String,
    /// The snapshot restored whole, to compare with.
    snapshot: PathBuf,
    snap_id: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let repo = path.join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let db = path.join("app.db");
    make_db(&db);
    let out = ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db).arg("--json"));
    let snap: serde_json::Value = serde_json::from_str(&out).unwrap();
    let snap_id = snap["id"].as_str().unwrap().to_string();
    let snapshot = path.join("snapshot.db");
    ok(lifeboat(&repo).args(["restore", &snap_id, "--to"]).arg(&snapshot));
    std::fs::remove_file(&db).unwrap();
    Setup { _dir: dir, dir: path, repo, snapshot, snap_id }
}

impl Setup {
    /// A live database as it is after the damage, at a new path.
    fn live(&self, name: &str) -> PathBuf {
        let db = self.dir.join(name);
        make_db(&db);
        damage(&db);
        db
    }

    fn restore(&self, db: &Path, args: &[&str]) -> std::process::Command {
        let mut cmd = lifeboat(&self.repo);
        cmd.args(["restore", &self.snap_id, "--to"]).arg(db).args(args);
        cmd
    }

    fn counts(&self, db: &Path, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&ok(&mut self.restore(db, &args))).unwrap()
    }
}

fn others_unchanged(before: &[Vec<String>], db: &Path) {
    for (tenant, rows) in TENANTS[1..].iter().zip(before) {
        assert_eq!(&tenant_rows(db, tenant), rows, "tenant {tenant} was touched");
    }
}

#[test]
fn one_tenants_rows_come_back_in_each_mode_and_nobody_elses_change() {
    let s = setup();
    let acme = "tenant_id = 'acme'";

    // insert: exactly the deleted rows come back; nothing that exists changes.
    let db = s.live("insert.db");
    let before_others: Vec<Vec<String>> =
        TENANTS[1..].iter().map(|t| tenant_rows(&db, t)).collect();
    let before_acme = tenant_rows(&db, "acme");
    let log_before = rows(&db, "SELECT * FROM log ORDER BY rowid");
    let dry = s.counts(&db, &["--where", acme, "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(tenant_rows(&db, "acme"), before_acme, "a dry run changed the database");
    let planned = per_table(&dry);
    assert_eq!(planned["orders"][0], 3, "{dry}");
    assert_eq!(planned["order_lines"][0], 9, "{dry}");
    assert_eq!(planned["users"][..3], [0, 0, 0], "{dry}");
    let done = s.counts(&db, &["--where", acme]);
    assert_eq!(per_table(&done), planned, "the run did not do what the dry run said");
    assert!(done["safety_snapshot"].is_string(), "{done}");
    let expected: Vec<String> = {
        // The snapshot's acme rows, plus what insert must leave: the new order and its line,
        // the renamed user, the changed total.
        let mut rows = tenant_rows(&s.snapshot, "acme");
        for r in &mut rows {
            if r.starts_with("users: Integer(2)|") {
                *r = r.replace("u1@acme.example", "renamed@acme.example");
            }
            if r.starts_with("orders: Text(\"acme\")|Integer(4)|") {
                *r = r.replace("Integer(400)", "Integer(401)");
            }
        }
        rows.push("orders: Text(\"acme\")|Integer(999999)|Integer(1)|Integer(9999)".into());
        rows.push(
            "lines: Integer(10000000)|Text(\"acme\")|Integer(999999)|Text(\"sku-new\")|Integer(7)"
                .into(),
        );
        rows.sort();
        rows
    };
    let mut got = tenant_rows(&db, "acme");
    got.sort();
    assert_eq!(got, expected);
    others_unchanged(&before_others, &db);
    assert_eq!(
        rows(&db, "SELECT * FROM log ORDER BY rowid"),
        log_before,
        "the log has no tenant column"
    );
    assert_eq!(sqlite3_integrity_check(&db), "ok");
    // Run again: nothing left to add.
    let again = per_table(&s.counts(&db, &["--where", acme]));
    assert!(again.values().all(|c| c[..3] == [0, 0, 0]), "{again:?}");

    // replace: acme ends exactly as in the snapshot.
    let db = s.live("replace.db");
    let before_others: Vec<Vec<String>> =
        TENANTS[1..].iter().map(|t| tenant_rows(&db, t)).collect();
    let unconfirmed = fails(&mut s.restore(&db, &["--where", acme, "--mode", "replace"]));
    assert!(unconfirmed.contains("--force"), "{unconfirmed}");
    let dry = s.counts(&db, &["--where", acme, "--mode", "replace", "--dry-run"]);
    let planned = per_table(&dry);
    assert_eq!(planned["orders"], [3, 1, 1, 1], "{dry}");
    assert_eq!(planned["order_lines"], [9, 0, 1, 6], "{dry}");
    assert_eq!(planned["users"], [0, 1, 0, 3], "{dry}");
    let done = s.counts(&db, &["--where", acme, "--mode", "replace", "--force"]);
    assert_eq!(per_table(&done), planned);
    assert_eq!(tenant_rows(&db, "acme"), tenant_rows(&s.snapshot, "acme"));
    others_unchanged(&before_others, &db);
    let safety = done["safety_snapshot"].as_str().unwrap();
    let snaps = snapshots(&s.repo);
    let safety = snaps.iter().find(|x| x["id"] == safety).expect("the safety snapshot is listed");
    assert_eq!(safety["tags"]["pre-restore"], s.snap_id);
    // No trigger, no cascading update: the safety snapshot holds acme's rows as they were,
    // and restoring it the same way undoes the partial restore.
    assert_eq!(done["safety_rows_only"], true, "{done}");
    assert_eq!(safety["tags"]["rows"], acme);
    assert_eq!(sqlite3_integrity_check(&db), "ok");
    let fk = rows(&db, "PRAGMA foreign_key_check");
    assert!(fk.is_empty(), "foreign keys broken: {fk:?}");
    let undo = ok(lifeboat(&s.repo)
        .args(["restore", safety["id"].as_str().unwrap(), "--to"])
        .arg(&db)
        .args(["--where", acme, "--mode", "replace", "--force"]));
    assert!(undo.contains("rows of snapshot"), "{undo}");
    let mut now = tenant_rows(&db, "acme");
    let mut was = tenant_rows(&s.live("was.db"), "acme");
    now.sort();
    was.sort();
    assert_eq!(now, was, "undoing with the rows safety snapshot did not bring acme back as it was");
    others_unchanged(&before_others, &db);

    // A trigger on a written table could reach any row: the safety snapshot is then the
    // whole database.
    let db = s.live("trigger.db");
    open(&db)
        .execute_batch("CREATE TRIGGER stamp AFTER INSERT ON orders BEGIN INSERT INTO log VALUES (0, 'order'); END;")
        .unwrap();
    let done = s.counts(&db, &["--where", acme, "--mode", "replace", "--force"]);
    assert_eq!(done["safety_rows_only"], false, "{done}");
    let snaps = snapshots(&s.repo);
    let safety = snaps.iter().find(|x| x["id"] == done["safety_snapshot"]).unwrap();
    assert!(safety["tags"]["rows"].is_null(), "{safety}");
    assert_eq!(safety["metadata"]["tables"]["log"], 4);

    // upsert: the renamed user is set back, the new order stays.
    let db = s.live("upsert.db");
    let before_others: Vec<Vec<String>> =
        TENANTS[1..].iter().map(|t| tenant_rows(&db, t)).collect();
    let done = s.counts(&db, &["--where", acme, "--mode", "upsert", "--force"]);
    let counted = per_table(&done);
    assert_eq!(counted["users"], [0, 1, 0, 3], "{done}");
    assert_eq!(counted["orders"], [3, 1, 0, 1], "{done}");
    assert_eq!(rows(&db, "SELECT email FROM users WHERE id = 2"), ["Text(\"u1@acme.example\")"]);
    assert_eq!(
        rows(&db, "SELECT total FROM orders WHERE tenant_id = 'acme' AND order_no = 999999"),
        ["Integer(9999)"]
    );
    others_unchanged(&before_others, &db);
}

#[test]
fn only_named_tables_are_selected_and_what_they_need_comes_along() {
    let s = setup();
    let db = s.live("tables.db");
    // Only orders (and, down, their lines): the users they reference are parents, added
    // when missing and never set back, so the renamed user stays renamed.
    let done = s.counts(
        &db,
        &["--where", "tenant_id = 'acme'", "--table", "orders", "--mode", "upsert", "--force"],
    );
    let counted = per_table(&done);
    assert_eq!(counted["orders"], [3, 1, 0, 1], "{done}");
    assert_eq!(counted["order_lines"], [9, 0, 0, 6], "{done}");
    assert_eq!(counted["users"][..3], [0, 0, 0], "{done}");
    assert_eq!(
        rows(&db, "SELECT email FROM users WHERE id = 2"),
        ["Text(\"renamed@acme.example\")"]
    );
    assert_eq!(rows(&db, "SELECT count(*) FROM orders WHERE tenant_id = 'acme'"), ["Integer(6)"]);

    // Deleted tenant: its row is a parent the selected rows need, and comes back with them.
    let db = s.live("gone.db");
    open(&db)
        .execute_batch("DELETE FROM order_lines WHERE order_tenant = 'initech'; DELETE FROM orders WHERE tenant_id = 'initech'; UPDATE users SET manager_id = NULL WHERE tenant_id = 'initech'; DELETE FROM users WHERE tenant_id = 'initech'; DELETE FROM tenants WHERE id = 'initech';")
        .unwrap();
    let done = s.counts(&db, &["--where", "tenant_id = 'initech'"]);
    assert_eq!(per_table(&done)["tenants"][0], 1, "{done}");
    assert_eq!(tenant_rows(&db, "initech"), tenant_rows(&s.snapshot, "initech"));
}

#[test]
fn bad_conditions_are_refused_and_the_target_is_untouched() {
    let s = setup();
    let db = s.live("refuse.db");
    let before = std::fs::read(&db).unwrap();
    let cases: [(&[&str], &str); 11] = [
        (&["--where", "\"tenantid\" = 'acme'"], "names no column of any table"),
        (&["--where", "tenant_id ="], "not a condition SQLite accepts"),
        (&["--where", "tenantid = 'acme'"], "names no column of any table"),
        (&["--where", "1 = 1"], "names no column"),
        (&["--where", "tenant_id = 'acme') OR (1 = 1"], "not a condition SQLite accepts"),
        (
            &["--where", "tenant_id = 'acme'); DROP TABLE users; --"],
            "not a condition SQLite accepts",
        ),
        (&["--where", "tenant_id = 'acme')"], "closes a parenthesis it did not open"),
        (&["--where", "tenant_id = 'ac''me' /* x"], "comment is never closed"),
        (&["--where", "tenant_id = 'acme'", "--table", "nope"], "no such table"),
        (&["--where", "tenant_id = 'acme'", "--table", "order_lines"], "lacks a column"),
        (&["--where", "at = 1", "--mode", "upsert", "--force"], "no primary key"),
    ];
    for (args, says) in cases {
        let err = fails(&mut s.restore(&db, args));
        assert!(err.contains(says), "{args:?}: {err}");
        let said: Vec<&str> = err.lines().filter(|l| !l.starts_with("restore ")).collect();
        assert!(
            said.len() == 2 && said[0].starts_with("error: ") && said[1].starts_with("hint: "),
            "one line and a hint: {err}"
        );
    }
    // A schema that moved on since the snapshot.
    let moved = s.live("moved.db");
    open(&moved).execute_batch("ALTER TABLE orders ADD COLUMN note TEXT").unwrap();
    let err = fails(&mut s.restore(&moved, &["--where", "tenant_id = 'acme'"]));
    assert!(err.contains("same columns"), "{err}");
    // A row outside the selection in the way of replace.
    let blocked = s.live("blocked.db");
    open(&blocked).execute_batch("INSERT INTO users VALUES (13, 'acme', 'late@acme.example', NULL); UPDATE users SET manager_id = 13 WHERE id = 5;").unwrap();
    let err = fails(
        &mut s
            .restore(&blocked, &["--where", "tenant_id = 'acme'", "--mode", "replace", "--force"]),
    );
    assert!(err.contains("outside the selection reference rows of users"), "{err}");
    assert_eq!(rows(&blocked, "SELECT count(*) FROM users WHERE id = 13"), ["Integer(1)"]);
    // Another kind's destination.
    let err = fails(
        &mut s.restore(Path::new("postgres://u@127.0.0.1/app"), &["--where", "tenant_id = 'acme'"]),
    );
    assert!(err.contains("is a postgres destination"), "{err}");
    // Not there at all.
    let err = fails(&mut s.restore(&s.dir.join("absent.db"), &["--where", "tenant_id = 'acme'"]));
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "a refused restore changed the target");
    assert_eq!(rows(&db, "SELECT count(*) FROM users"), ["Integer(12)"]);
}

#[test]
fn kill_9_at_any_moment_leaves_the_target_whole_and_the_next_run_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let db = dir.path().join("big.db");
    make_db_sized(&db, 15_000);
    let out = ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db).arg("--json"));
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Most of acme's orders and lines go: the restore has much to write.
    open(&db)
        .execute_batch("DELETE FROM orders WHERE tenant_id = 'acme' AND order_no > 10")
        .unwrap();
    let damaged = std::fs::read(&db).unwrap();
    let state =
        |db: &Path| -> Vec<Vec<String>> { TENANTS.iter().map(|t| tenant_rows(db, t)).collect() };
    let before = state(&db);
    let restore = |db: &Path| {
        let mut cmd = lifeboat(&repo);
        cmd.args(["restore", &id, "--to"]).arg(db).args([
            "--where",
            "tenant_id = 'acme'",
            "--mode",
            "replace",
            "--force",
        ]);
        cmd
    };
    let started = std::time::Instant::now();
    ok(&mut restore(&db));
    let whole_run = started.elapsed();
    eprintln!("one partial restore of {id}: {whole_run:?}");
    let after = state(&db);
    assert_ne!(before, after);
    let leftovers = |db: &Path| -> Vec<String> {
        let stem = db.file_name().unwrap().to_string_lossy().to_string();
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(&format!(".{stem}.lifeboat-")))
            .collect()
    };
    for (i, fraction) in [0.15, 0.4, 0.6, 0.8, 0.95].into_iter().enumerate() {
        let target = dir.path().join(format!("killed-{i}.db"));
        std::fs::write(&target, &damaged).unwrap();
        let mut child = restore(&target)
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole_run.mul_f64(fraction));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(sqlite3_integrity_check(&target), "ok", "kill at {fraction} of the run");
        let now = state(&target);
        assert!(
            now == before || now == after,
            "kill at {fraction} of the run left a mix of before and after"
        );
        // The next run removes what the killed one left and finishes the job.
        ok(&mut restore(&target));
        assert_eq!(state(&target), after, "after a kill at {fraction}");
        assert_eq!(leftovers(&target), Vec::<String>::new(), "after a kill at {fraction}");
    }
}

/// Runs the `sqlite3` shell on `db` with `input` on stdin; returns stdout.
fn sqlite3(db: &Path, args: &[&str], input: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("sqlite3")
        .arg(db)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the sqlite3 shell (Debian's sqlite3) is needed");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "sqlite3 {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_sql_export_loads_into_an_empty_database_equal_to_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let db = dir.path().join("kinds.db");
    // Every kind of value and schema object a dump must carry.
    sqlite3(
        &db,
        &[],
        b"CREATE TABLE seq(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
          INSERT INTO seq(v) VALUES (1), (2.5), ('it''s'), (x'00ff'), (NULL), ('two\nlines'), (1e300), (-0.1), (9223372036854775807);
          DELETE FROM seq WHERE id = 9;
          CREATE TABLE \"odd name\"(\"a b\" TEXT, c REAL, d AS (c * 2));
          INSERT INTO \"odd name\" VALUES ('x', 1.0), ('\xc3\xa9t\xc3\xa9', 3.25);
          CREATE TABLE plain(x, y);
          INSERT INTO plain VALUES (1, 2), (1, 2);
          CREATE INDEX plain_x ON plain(x);
          CREATE VIEW doubled AS SELECT x * 2 AS x2 FROM plain;
          CREATE TRIGGER seq_log AFTER INSERT ON seq BEGIN INSERT INTO plain VALUES (new.id, 0); END;
          CREATE VIRTUAL TABLE notes USING fts5(body);
          INSERT INTO notes VALUES ('find me here'), ('and here');",
    );
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    let restored = dir.path().join("restored.db");
    ok(lifeboat(&repo).args(["restore", "latest", "--name", "kinds", "--to"]).arg(&restored));

    let dump = ok(lifeboat(&repo).args(["export", "latest", "--name", "kinds", "--format", "sql"]));
    let loaded = dir.path().join("loaded.db");
    sqlite3(&loaded, &[], dump.as_bytes());
    assert_eq!(
        sqlite3(&loaded, &[".dump"], b""),
        sqlite3(&restored, &[".dump"], b""),
        "our dump:\n{dump}"
    );
    assert_eq!(sqlite3(&loaded, &["SELECT rowid FROM notes WHERE notes MATCH 'find'"], b""), "1\n");
    assert_eq!(sqlite3(&loaded, &["PRAGMA integrity_check"], b""), "ok\n");

    // To a folder: the file is there, and a second export does not overwrite it.
    let out = dir.path().join("out");
    let json = ok(lifeboat(&repo)
        .args(["export", "latest", "--name", "kinds", "--out"])
        .arg(&out)
        .arg("--json"));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(std::fs::read_to_string(out.join("kinds.sql")).unwrap(), dump);
    let seq = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == "seq").unwrap();
    assert_eq!(seq["rows"], 8);
    let err =
        fails(lifeboat(&repo).args(["export", "latest", "--name", "kinds", "--out"]).arg(&out));
    assert!(err.contains("kinds.sql"), "{err}");
}

#[test]
fn one_tenants_rows_export_as_sql_csv_and_json_lines() {
    let s = setup();
    let export = |args: &[&str]| {
        let mut cmd = lifeboat(&s.repo);
        cmd.args(["export", &s.snap_id, "--where", "tenant_id = 'acme'"]).args(args);
        cmd
    };
    // SQL: loads into an empty database holding acme's rows and the parents they need.
    let dump = ok(&mut export(&["--format", "sql"]));
    let loaded = s.dir.join("acme.db");
    sqlite3(&loaded, &[], dump.as_bytes());
    assert_eq!(tenant_rows(&loaded, "acme"), tenant_rows(&s.snapshot, "acme"));
    for other in &TENANTS[1..] {
        assert!(tenant_rows(&loaded, other).is_empty(), "{other}'s rows were exported");
    }
    assert!(!dump.contains("CREATE TABLE log"), "a table with no selected row was exported");

    // CSV and JSON lines: one file per table.
    let out = s.dir.join("csv");
    ok(export(&["--format", "csv", "--out"]).arg(&out));
    let orders = std::fs::read_to_string(out.join("orders.csv")).unwrap();
    let mut lines = orders.lines();
    assert_eq!(lines.next(), Some("tenant_id,order_no,user_id,total"));
    assert_eq!(lines.count(), 5);
    let out = s.dir.join("jsonl");
    ok(export(&["--format", "jsonl", "--out"]).arg(&out));
    let users = std::fs::read_to_string(out.join("users.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(users.lines().next().unwrap()).unwrap();
    assert_eq!(first["email"], "u0@acme.example");
    assert_eq!(first["manager_id"], serde_json::Value::Null);
    assert_eq!(users.lines().count(), 4);

    // Several tables cannot share standard output; one can.
    let err = fails(&mut export(&["--format", "csv"]));
    assert!(err.contains("--out DIR"), "{err}");
    let csv =
        ok(lifeboat(&s.repo).args(["export", &s.snap_id, "--table", "tenants", "--format", "csv"]));
    assert_eq!(csv, "id,name\nacme,acme inc\nglobex,globex inc\ninitech,initech inc\n");
}

#[test]
fn a_row_whose_key_another_tenant_now_holds_is_reported_not_silently_kept() {
    let s = setup();
    let db = s.live("taken.db");
    // Line 5 was acme's (cascaded away with its order); globex has taken its id since.
    open(&db).execute_batch("INSERT INTO order_lines VALUES (5, 'globex', 1, 'sku-9', 1)").unwrap();
    let globex_before = tenant_rows(&db, "globex");
    let done = s.counts(&db, &["--where", "tenant_id = 'acme'"]);
    let lines =
        done["tables"].as_array().unwrap().iter().find(|t| t["table"] == "order_lines").unwrap();
    assert_eq!(
        (lines["add"].as_u64(), lines["held_elsewhere"].as_u64()),
        (Some(8), Some(1)),
        "{done}"
    );
    assert_eq!(tenant_rows(&db, "globex"), globex_before, "globex's line was touched");
    let text =
        ok(&mut s
            .restore(&s.live("taken-text.db"), &["--where", "tenant_id = 'acme'", "--dry-run"]));
    assert!(!text.contains("were not brought back"), "{text}");
    let db = s.live("taken-again.db");
    open(&db).execute_batch("INSERT INTO order_lines VALUES (5, 'globex', 1, 'sku-9', 1)").unwrap();
    let text = ok(&mut s.restore(&db, &["--where", "tenant_id = 'acme'", "--dry-run"]));
    assert!(text.contains("1 rows of order_lines were not brought back"), "{text}");
    // replace refuses rather than overwrite globex's row.
    let err = fails(
        &mut s.restore(&db, &["--where", "tenant_id = 'acme'", "--mode", "replace", "--force"]),
    );
    assert!(err.contains("rows outside the selection now hold"), "{err}");
}

#[test]
fn kinds_without_rows_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("a.txt"), "a").unwrap();
    ok(lifeboat(&repo).args(["backup", "dir"]).arg(&files));
    let to = format!("dir:{}", dir.path().join("out").display());
    let err = fails(
        lifeboat(&repo)
            .args(["restore", "latest", "--name", "files", "--to", &to, "--where", "x = 1"]),
    );
    assert!(err.contains("dir snapshots cannot restore selected rows"), "{err}");
    let err = fails(lifeboat(&repo).args(["export", "latest", "--name", "files"]));
    assert!(err.contains("cannot be exported as rows") && err.contains("lifeboat cat"), "{err}");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn odd_table_and_column_names_are_quoted_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let db = dir.path().join("odd.db");
    let conn = open(&db);
    conn.execute_batch(
        r#"CREATE TABLE "pa""rent"("c.id" INTEGER PRIMARY KEY, "the tenant" TEXT);
           CREATE TABLE "ch ild"(id INTEGER PRIMARY KEY, "c.ref" INTEGER REFERENCES "pa""rent"("c.id"), "v;" TEXT);
           INSERT INTO "pa""rent" VALUES (1, 'x'), (2, 'y');
           INSERT INTO "ch ild" VALUES (10, 1, 'a'), (11, 2, 'b');"#,
    )
    .unwrap();
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    conn.execute_batch(r#"DELETE FROM "ch ild"; DELETE FROM "pa""rent" WHERE "c.id" = 1;"#)
        .unwrap();
    let out = ok(lifeboat(&repo)
        .args(["restore", "latest", "--name", "odd", "--to"])
        .arg(&db)
        .args(["--where", r#""the tenant" = 'x'"#, "--json"]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let adds: Vec<(String, u64)> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["table"].as_str().unwrap().to_string(), t["add"].as_u64().unwrap()))
        .collect();
    assert_eq!(adds, [("ch ild".to_string(), 1), ("pa\"rent".to_string(), 1)], "{report}");
    assert_eq!(rows(&db, r#"SELECT * FROM "ch ild""#), ["Integer(10)|Integer(1)|Text(\"a\")"]);
}

/// The same partial restore and export from an encrypted repository on S3: the scratch copy
/// comes through the read engine and the key like any restore, and the rows safety snapshot
/// is sealed like any snapshot.
#[test]
fn one_tenant_comes_back_from_an_encrypted_repository_on_s3() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("tenants");
    let run = || {
        let mut cmd = lifeboat(&url);
        for (k, v) in server.env() {
            cmd.env(k, v);
        }
        cmd.env("LIFEBOAT_PASSWORD", "a long enough password for tests");
        cmd
    };
    ok(run().arg("init"));
    let mut no_password = lifeboat(&url);
    for (k, v) in server.env() {
        no_password.env(k, v);
    }
    let err = fails(no_password.arg("snapshots"));
    assert!(err.contains("password"), "the repository is not encrypted: {err}");
    let db = dir.path().join("app.db");
    make_db(&db);
    ok(run().args(["backup", "sqlite"]).arg(&db));
    let snapshot = dir.path().join("snapshot.db");
    ok(run().args(["restore", "latest", "--name", "app", "--to"]).arg(&snapshot));
    damage(&db);
    let done: serde_json::Value = serde_json::from_str(&ok(run()
        .args(["restore", "latest", "--name", "app", "--to"])
        .arg(&db)
        .args(["--where", "tenant_id = 'acme'", "--mode", "replace", "--force", "--json"])))
    .unwrap();
    assert_eq!(done["safety_rows_only"], true, "{done}");
    assert_eq!(tenant_rows(&db, "acme"), tenant_rows(&snapshot, "acme"));
    let csv = ok(run()
        .args([
            "export",
            "latest",
            "--name",
            "app",
            "--where",
            "tenant_id = 'acme'",
            "--table",
            "orders",
            "--format",
            "csv",
            "--out",
        ])
        .arg(dir.path().join("csv")));
    assert!(csv.contains("orders: 5 rows"), "{csv}");
    ok(run().args(["verify", "--read-data"]));
}

/// A flipped byte in the pack that holds the snapshot: `restore --where` and `export` fail
/// naming the damage, the live database is as it was, and nothing is left behind.
#[test]
fn a_flipped_byte_fails_the_partial_restore_and_the_export_loudly() {
    let s = setup();
    let db = s.live("flipped.db");
    let before = std::fs::read(&db).unwrap();
    for (pack, _) in tree(&Path::new(&s.repo).join("data")) {
        let mut bytes = std::fs::read(&pack).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&pack, bytes).unwrap();
    }
    let err = fails(
        &mut s.restore(&db, &["--where", "tenant_id = 'acme'", "--mode", "replace", "--force"]),
    );
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "a failed partial restore changed the target");
    let out = s.dir.join("export");
    let err = fails(lifeboat(&s.repo).args(["export", &s.snap_id, "--out"]).arg(&out));
    assert!(err.contains("corrupt"), "{err}");
    assert!(tree(&out).is_empty(), "a failed export left files: {:?}", tree(&out));
    let leftovers: Vec<_> =
        tree(&s.dir).into_keys().filter(|p| p.to_string_lossy().contains("lifeboat-")).collect();
    assert!(leftovers.is_empty(), "scratch files left: {leftovers:?}");
}
