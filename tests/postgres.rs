//! PostgreSQL end to end against a throwaway cluster: consistent dumps with exact counts
//! under a writer, restore into a new database that compares equal, guarded targets, errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use util::*;

const TYPED_SCHEMA: &str = "
CREATE SCHEMA shop;
CREATE SEQUENCE shop.order_no START 1000;
CREATE TABLE shop.customers (id serial PRIMARY KEY, name text NOT NULL, tags text[], profile jsonb);
CREATE TABLE shop.orders (
  id bigint PRIMARY KEY DEFAULT nextval('shop.order_no'),
  customer int REFERENCES shop.customers(id),
  placed timestamptz NOT NULL DEFAULT now(),
  receipt bytea,
  total numeric(10,2));
CREATE INDEX orders_placed ON shop.orders(placed);
CREATE VIEW shop.big_orders AS SELECT * FROM shop.orders WHERE total > 100;
INSERT INTO shop.customers(name, tags, profile)
  SELECT 'c' || i, ARRAY['a', 'b' || i], jsonb_build_object('n', i, 'vip', i % 7 = 0) FROM generate_series(1, 2000) i;
INSERT INTO shop.orders(customer, receipt, total)
  SELECT 1 + i % 2000, decode(md5(i::text), 'hex'), (i % 500) / 3.0 FROM generate_series(1, 20000) i;
";

/// What must be equal between source and restore: the schema as pg_dump prints it, and
/// every table's ordered rows.
fn fingerprint(pg: &PgCluster, db: &str) -> (String, Vec<String>) {
    let out = std::process::Command::new(pg.bin("pg_dump"))
        .args(["--schema-only", "--no-owner", "-d", &pg.url(db)])
        .output()
        .unwrap();
    assert!(out.status.success());
    let schema = String::from_utf8_lossy(&out.stdout)
        .lines()
        // Comments, and the random token newer pg_dumps put in \restrict lines, differ per run.
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let tables = pg.psql(db, "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1");
    let sums = tables
        .lines()
        .map(|t| format!("{t}: {}", pg.psql(db, &format!("SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM {t} x"))))
        .collect();
    (schema, sums)
}

/// A throwaway cluster with a database `app` (pgbench-initialised at `scale`, if given) and
/// an initialised repository in a temporary folder (kept while the `TempDir` lives).
fn cluster_and_repo(scale: Option<u32>) -> (PgCluster, tempfile::TempDir, String) {
    let pg = PgCluster::start();
    pg.psql("postgres", "CREATE DATABASE app");
    if let Some(scale) = scale {
        pg.pgbench("app", &["-i", "-s", &scale.to_string(), "-q"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).arg("init"));
    (pg, dir, repo)
}

/// `lifeboat backup postgres --json URL`: the new snapshot as the listing shows it.
fn backup_json(repo: &str, url: &str) -> serde_json::Value {
    serde_json::from_str(&ok(lifeboat(repo).args(["backup", "postgres", "--json", url]))).unwrap()
}

/// Runs `command` and, while it runs, tries `act` every 5 ms (up to 5 s) until it reports
/// that it did its part. Returns the command's output and whether `act` ever succeeded.
fn run_while(
    command: &mut std::process::Command,
    mut act: impl FnMut() -> bool,
) -> (std::process::Output, bool) {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut acted = false;
    for _ in 0..1000 {
        if act() {
            acted = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (child.wait_with_output().unwrap(), acted)
}

#[test]
fn round_trip_under_a_writer_compares_equal() {
    let (pg, _dir, repo) = cluster_and_repo(Some(10));
    pg.psql("app", TYPED_SCHEMA);

    // pgbench keeps writing while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, bench, url) = (stop.clone(), pg.bin("pgbench"), pg.url("app"));
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = std::process::Command::new(&bench)
                    .args(["-T", "1", "-c", "2", "-n"])
                    .arg(&url)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                runs += 1;
            }
            runs
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let snap = backup_json(&repo, &pg.url("app"));
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
    assert_eq!(snap["kind"], "postgres");
    assert_eq!(snap["name"], "app");
    let meta = &snap["metadata"];
    assert_eq!(meta["tables"]["public.pgbench_accounts"], 1_000_000);
    assert_eq!(meta["tables"]["shop.orders"], 20_000);
    assert!(meta["sequences"].as_array().unwrap().iter().any(|s| s == "shop.order_no"));
    let history_in_manifest = meta["tables"]["public.pgbench_history"].as_u64().unwrap();

    // Restore into a new database: every table's count equals the manifest's (same snapshot).
    ok(lifeboat(&repo).args(["restore", "latest", "--create", "--to", &pg.url("restored")]));
    let history: u64 = pg.psql("restored", "SELECT count(*) FROM pgbench_history").parse().unwrap();
    assert_eq!(history, history_in_manifest, "the dump and the recorded counts disagree");

    // With writes stopped, a fresh backup restores to a database equal to the source.
    ok(lifeboat(&repo).args(["backup", "postgres", "--connections", "3", &pg.url("app")]));
    ok(lifeboat(&repo).args(["restore", "latest", "--create", "--to", &pg.url("copy")]));
    assert_eq!(fingerprint(&pg, "copy"), fingerprint(&pg, "app"));
    // cat emits the custom-format dump that pg_restore reads: the table data came from
    // parallel COPYs (pgbench_accounts in page ranges), yet the archive is byte for byte what
    // pg_dump writes to a pipe, but for the creation time in its header.
    let dump = lifeboat(&repo).args(["cat", "latest"]).output().unwrap();
    assert!(dump.status.success() && dump.stdout.starts_with(b"PGDMP"));
    let latest = snapshots(&repo).pop().unwrap();
    assert_eq!(latest["metadata"]["writer"], "parallel COPY, 3 connections");
    let theirs = std::process::Command::new(pg.bin("pg_dump"))
        .args(["-Fc", "-Z0", "-d", &pg.url("app")])
        .env("PGOPTIONS", "-c synchronize_seqscans=off")
        .output()
        .unwrap();
    assert!(theirs.status.success());
    assert_eq!(dump.stdout.len(), theirs.stdout.len());
    let differing: Vec<usize> =
        (0..dump.stdout.len()).filter(|&i| dump.stdout[i] != theirs.stdout[i]).collect();
    assert!(differing.iter().all(|&i| i < 64), "the archives differ at {differing:?}");

    // Large objects are left to pg_dump's own data blocks; they round-trip too.
    pg.psql("postgres", "CREATE DATABASE withlo");
    pg.psql("withlo", "CREATE TABLE doc (id int, body oid); INSERT INTO doc VALUES (1, lo_from_bytea(0, 'large object body'))");
    let snap = backup_json(&repo, &pg.url("withlo"));
    assert_eq!(snap["metadata"]["writer"], "pg_dump");
    assert_eq!(snap["metadata"]["tables"]["public.doc"], 1);
    ok(lifeboat(&repo).args(["restore", "latest", "--create", "--to", &pg.url("withlo_copy")]));
    assert_eq!(
        pg.psql("withlo_copy", "SELECT convert_from(lo_get(body), 'UTF8') FROM doc"),
        "large object body"
    );
    // Deep verification restores every snapshot into a scratch database and drops it again.
    let out = ok(lifeboat(&repo).args([
        "verify",
        "--all",
        "--read-data",
        "--restore",
        "--postgres-server",
        &pg.url("postgres"),
    ]));
    assert!(out.contains("0 failed"), "{out}");
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'lifeboat_drill%'"
        ),
        "0"
    );
}

#[test]
fn guarded_targets_and_clear_errors() {
    let (pg, dir, repo) = cluster_and_repo(None);
    pg.psql("app", "CREATE TABLE t(x int); INSERT INTO t SELECT generate_series(1, 100);");
    ok(lifeboat(&repo).args(["backup", "postgres", &pg.url("app")]));

    // Onto an existing database without --force: refused, unchanged.
    pg.psql("app", "INSERT INTO t VALUES (101)");
    let err = fails(lifeboat(&repo).args(["restore", "latest", "--to", &pg.url("app")]));
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t"), "101");
    // With --force: a pre-restore snapshot, a restore beside it, a swap; the old one is kept.
    let plan = ok(lifeboat(&repo).args([
        "restore",
        "latest",
        "--force",
        "--dry-run",
        "--to",
        &pg.url("app"),
    ]));
    assert!(plan.contains("safety snapshot") && plan.contains("swap"), "{plan}");
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t"), "101", "a dry run changed the database");
    let out = ok(lifeboat(&repo).args(["restore", "latest", "--force", "--to", &pg.url("app")]));
    assert!(out.contains("safety snapshot"), "{out}");
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t"), "100");
    let kept = pg.psql(
        "postgres",
        "SELECT datname FROM pg_database WHERE datname LIKE 'app_before_restore_%'",
    );
    assert_eq!(
        pg.psql(&kept, "SELECT count(*) FROM t"),
        "101",
        "the previous database was not kept"
    );
    let snaps = snapshots(&repo);
    let safety = snaps
        .iter()
        .find(|s| s["tags"].get("pre-restore").is_some())
        .expect("no pre-restore snapshot");
    assert_eq!(safety["metadata"]["tables"]["public.t"], 101);
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE '%lifeboat_restore%'"
        ),
        "0"
    );

    // One table, or the schema only.
    let first = snaps[0]["id"].as_str().unwrap();
    ok(lifeboat(&repo).args([
        "restore",
        first,
        "--create",
        "--table",
        "t",
        "--to",
        &pg.url("only_t"),
    ]));
    assert_eq!(pg.psql("only_t", "SELECT count(*) FROM t"), "100");
    ok(lifeboat(&repo).args([
        "restore",
        first,
        "--create",
        "--schema-only",
        "--to",
        &pg.url("shape"),
    ]));
    assert_eq!(pg.psql("shape", "SELECT count(*) FROM t"), "0");
    let err = fails(lifeboat(&repo).args([
        "restore",
        first,
        "--create",
        "--table",
        "nope",
        "--to",
        &pg.url("nope"),
    ]));
    assert!(err.contains("no table"), "{err}");

    // A restore that fails half-way (a damaged pack) leaves the original serving, untouched.
    pg.psql("app", "INSERT INTO t VALUES (102)");
    for (pack, _) in tree(&dir.path().join("repo/data")) {
        let mut bytes = std::fs::read(&pack).unwrap();
        bytes[40] ^= 0xff;
        std::fs::write(&pack, bytes).unwrap();
    }
    fails(lifeboat(&repo).args(["restore", first, "--force", "--to", &pg.url("app")]));
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t"), "101");
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE '%lifeboat_restore%'"
        ),
        "0",
        "a staging database was left"
    );

    // A new database needs --create.
    let err = fails(lifeboat(&repo).args(["restore", "latest", "--to", &pg.url("other")]));
    assert!(err.contains("--create"), "{err}");

    let before = snapshots(&repo).len();
    let wrong = pg.url("app").replace(PG_PASSWORD, "wrong-password");
    let err = fails(lifeboat(&repo).args(["backup", "postgres", &wrong]));
    assert!(err.contains("password authentication failed"), "{err}");
    let err = fails(lifeboat(&repo).args(["backup", "postgres", &pg.url("missing_db")]));
    assert!(err.contains("does not exist"), "{err}");
    let unreachable = format!("postgres://postgres:x@127.0.0.1:{}/app", free_port());
    let err = fails(lifeboat(&repo).args(["backup", "postgres", &unreachable]));
    assert!(err.contains("cannot connect"), "{err}");
    // A missing pg_dump for the server's version is named.
    let err = fails(
        lifeboat(&repo)
            .args(["backup", "postgres", &pg.url("app")])
            .env("PG_BINDIR", "/nonexistent"),
    );
    assert!(err.contains("no pg_dump for PostgreSQL") && err.contains("/nonexistent"), "{err}");
    assert_eq!(snapshots(&repo).len(), before, "a failed backup wrote a snapshot");
}

#[test]
fn a_killed_pg_restore_leaves_the_original_serving() {
    let (pg, _dir, repo) = cluster_and_repo(Some(5));
    ok(lifeboat(&repo).args(["backup", "postgres", &pg.url("app")]));
    pg.psql("app", "UPDATE pgbench_branches SET bbalance = 42");
    let before = fingerprint(&pg, "app");

    // Kill pg_restore while it loads the staging database.
    let (out, killed) = run_while(
        lifeboat(&repo).args(["restore", "latest", "--force", "--to", &pg.url("app")]),
        || {
            let found = std::process::Command::new("pgrep")
                .args(["-f", "pg_restore.*lifeboat_restore"])
                .output()
                .unwrap();
            let pids = String::from_utf8_lossy(&found.stdout).trim().to_string();
            for pid in pids.lines() {
                std::process::Command::new("kill").args(["-9", pid]).status().unwrap();
            }
            !pids.is_empty()
        },
    );
    assert!(killed, "pg_restore was never seen running");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the restore should fail: {stderr}");
    assert!(stderr.contains("pg_restore") && stderr.contains("hint: "), "{stderr}");
    // The original serves, unchanged, and no staging database is left behind.
    assert_eq!(fingerprint(&pg, "app"), before, "the original database changed");
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE '%lifeboat_restore%'"
        ),
        "0"
    );
}

#[test]
fn a_copy_connection_lost_mid_backup_fails_and_saves_nothing() {
    let (pg, _dir, repo) = cluster_and_repo(Some(10));

    // End one of the copying connections while the table data streams.
    let (out, ended) =
        run_while(lifeboat(&repo).args(["backup", "postgres", &pg.url("app")]), || {
            pg.psql(
                "postgres",
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'lifeboat copy' AND query LIKE 'COPY%'",
            ) != "0"
        });
    assert!(ended, "no copying connection was seen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the backup should fail");
    assert!(stderr.contains("terminat") && stderr.contains("hint: "), "{stderr}");
    assert!(snapshots(&repo).is_empty(), "a snapshot was saved from a broken capture");
    // The next backup is whole.
    let snap = backup_json(&repo, &pg.url("app"));
    assert_eq!(snap["metadata"]["tables"]["public.pgbench_accounts"], 1_000_000);
}
