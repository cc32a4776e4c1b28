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
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
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
    // Two names now: `latest` must say which.
    let err = fails(lifeboat(&repo).args([
        "restore",
        "latest",
        "--create",
        "--to",
        &pg.url("withlo_copy"),
    ]));
    assert!(err.contains("ambiguous") && err.contains("withlo"), "{err}");
    ok(lifeboat(&repo).args([
        "restore",
        "latest",
        "--name",
        "withlo",
        "--create",
        "--to",
        &pg.url("withlo_copy"),
    ]));
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
    let kept =
        pg.psql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'app\\_lbold\\_%'");
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
        pg.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE '%\\_lbnew\\_%'"),
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
        pg.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE '%\\_lbnew\\_%'"),
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
                // This cluster's port: other tests restore at the same time.
                .args(["-f", &format!("pg_restore.* -p {} .*_lbnew_", pg.port)])
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
        pg.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE '%\\_lbnew\\_%'"),
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

/// The name of the snapshot's `pre-restore` safety snapshot and what it holds, or `None`.
fn safety_snapshots(repo: &str) -> Vec<serde_json::Value> {
    snapshots(repo).into_iter().filter(|s| s["tags"].get("pre-restore").is_some()).collect()
}

#[test]
fn a_safety_snapshot_is_named_after_the_target_it_protects() {
    let (pg, _dir, repo) = cluster_and_repo(None);
    pg.psql("postgres", "CREATE DATABASE prod");
    pg.psql("prod", "CREATE TABLE t(x int); INSERT INTO t SELECT generate_series(1, 10)");
    pg.psql("app", "CREATE TABLE t(x int); INSERT INTO t SELECT generate_series(1, 20)");
    let prod = backup_json(&repo, &pg.url("prod"));

    ok(lifeboat(&repo).args([
        "restore",
        "latest",
        "--name",
        "prod",
        "--force",
        "--to",
        &pg.url("app"),
    ]));
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t"), "10");
    let safety = safety_snapshots(&repo);
    assert_eq!(safety.len(), 1);
    assert_eq!(safety[0]["name"], "app", "the safety copy of app is named after the source");
    assert_eq!(safety[0]["tags"]["pre-restore"], prod["id"]);
    assert_eq!(safety[0]["metadata"]["tables"]["public.t"], 20);
    // The latest "prod" is still prod.
    ok(lifeboat(&repo).args([
        "restore",
        "latest",
        "--name",
        "prod",
        "--create",
        "--to",
        &pg.url("prod_again"),
    ]));
    assert_eq!(pg.psql("prod_again", "SELECT count(*) FROM t"), "10");
}

/// A database's owner, privileges, settings, limit and comment, and who owns its objects.
fn database_facts(pg: &PgCluster, db: &str) -> String {
    let database = pg.psql(
        "postgres",
        &format!(
            "SELECT pg_get_userbyid(datdba) || ' | ' || pg_encoding_to_char(encoding) || ' | ' || \
             coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(datacl) x), 'default') \
             || ' | ' || datconnlimit || ' | ' || coalesce(shobj_description(oid, 'pg_database'), '') || ' | ' || \
             coalesce((SELECT string_agg(coalesce(r.rolname::text, '-') || ':' || array_to_string(s.setconfig, ';'), ',' ORDER BY r.rolname NULLS FIRST) \
               FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = d.oid), '') \
             FROM pg_database d WHERE datname = '{db}'"
        ),
    );
    let objects = pg.psql(
        db,
        "SELECT string_agg(c.relname || '=' || pg_get_userbyid(c.relowner) || coalesce(c.relacl::text, ''), ',' ORDER BY c.relname) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
    );
    let lobs = pg
        .psql(db, "SELECT string_agg(pg_get_userbyid(lomowner), ',') FROM pg_largeobject_metadata");
    format!("{database}\n{objects}\n{lobs}")
}

#[test]
fn owner_privileges_and_settings_of_the_database_survive_a_restore() {
    let (pg, _dir, repo) = cluster_and_repo(None);
    pg.psql("postgres", "CREATE ROLE appowner LOGIN PASSWORD 'owner-secret'");
    pg.psql("postgres", "CREATE ROLE reader NOLOGIN");
    pg.psql("postgres", "ALTER DATABASE app OWNER TO appowner");
    pg.psql(
        "app",
        "SET ROLE appowner; CREATE TABLE t(x int); INSERT INTO t SELECT generate_series(1, 50); \
         GRANT SELECT ON t TO reader; SELECT lo_from_bytea(0, 'owned blob');",
    );
    pg.psql(
        "postgres",
        "REVOKE CONNECT ON DATABASE app FROM PUBLIC; GRANT CONNECT ON DATABASE app TO reader; \
         ALTER DATABASE app SET work_mem = '8MB'; ALTER DATABASE app SET search_path = \"$user\", public, extra; \
         ALTER ROLE reader IN DATABASE app SET statement_timeout = '5s'; \
         ALTER DATABASE app CONNECTION LIMIT 7; COMMENT ON DATABASE app IS 'the app''s data'",
    );
    let before = database_facts(&pg, "app");
    assert!(before.contains("appowner=") && !before.contains("=Tc/"), "{before}");
    ok(lifeboat(&repo).args(["backup", "postgres", &pg.url("app")]));

    // Into a new database, and over the existing one.
    ok(lifeboat(&repo).args(["restore", "latest", "--create", "--to", &pg.url("copy")]));
    assert_eq!(database_facts(&pg, "copy"), before);
    ok(lifeboat(&repo).args(["restore", "latest", "--force", "--to", &pg.url("app")]));
    assert_eq!(database_facts(&pg, "app"), before);
    // The owner works on its own tables, the reader reads, PUBLIC still cannot connect.
    assert_eq!(
        pg.psql("app", "SET ROLE appowner; INSERT INTO t VALUES (51); SELECT count(*) FROM t"),
        "51"
    );
    assert_eq!(pg.psql("app", "SET ROLE reader; SELECT count(*) FROM t"), "51");
    assert_eq!(
        pg.psql("postgres", "SELECT has_database_privilege('public', 'app', 'CONNECT')::text"),
        "false"
    );
}

#[test]
fn roles_missing_in_the_target_are_created_or_skipped() {
    let (pg, _dir, repo) = cluster_and_repo(None);
    pg.psql(
        "postgres",
        "CREATE ROLE ghost LOGIN PASSWORD 'ghost-secret'; CREATE ROLE peeker NOLOGIN",
    );
    pg.psql("app", "GRANT CREATE ON SCHEMA public TO ghost");
    pg.psql(
        "app",
        "SET ROLE ghost; CREATE TABLE t(x int); INSERT INTO t SELECT generate_series(1, 5); \
         GRANT SELECT ON t TO peeker",
    );
    ok(lifeboat(&repo).args(["backup", "postgres", &pg.url("app")]));
    let drop_all = "DROP DATABASE app; DROP ROLE peeker; DROP ROLE ghost";
    for sql in drop_all.split("; ") {
        pg.psql("postgres", sql);
    }

    // By default the roles are created, without login, and say so.
    let out = lifeboat(&repo)
        .args(["restore", "latest", "--create", "--json", "--to", &pg.url("app")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("created without login: ghost, peeker"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["checks"].to_string().contains("created without login"), "{report}");
    assert_eq!(
        pg.psql("postgres", "SELECT string_agg(rolname || ':' || rolcanlogin, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('ghost', 'peeker')"),
        "ghost:false,peeker:false"
    );
    assert_eq!(pg.psql("app", "SELECT tableowner FROM pg_tables WHERE tablename = 't'"), "ghost");
    assert_eq!(pg.psql("app", "SET ROLE peeker; SELECT count(*) FROM t"), "5");

    // With --skip-missing-roles nothing is created: owners and grants are left out, said so.
    for sql in drop_all.split("; ") {
        pg.psql("postgres", sql);
    }
    let out = lifeboat(&repo)
        .args(["restore", "latest", "--create", "--skip-missing-roles", "--to", &pg.url("app")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("not created: ghost, peeker"), "{stderr}");
    assert_eq!(
        pg.psql("postgres", "SELECT count(*) FROM pg_roles WHERE rolname IN ('ghost', 'peeker')"),
        "0"
    );
    assert_eq!(
        pg.psql("app", "SELECT tableowner FROM pg_tables WHERE tablename = 't'"),
        "postgres"
    );
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t"), "5");
}

#[test]
fn a_latin1_database_comes_back_latin1() {
    let (pg, _dir, repo) = cluster_and_repo(None);
    pg.psql(
        "postgres",
        "CREATE DATABASE latin TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'",
    );
    pg.psql(
        "latin",
        "CREATE TABLE t(s text); INSERT INTO t VALUES ('café'), ('Grüße'), (chr(255))",
    );
    let bytes = |db: &str| {
        pg.psql(db, "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()")
            + " "
            + &pg.psql(db, "SELECT encode(convert_to(string_agg(s, ',' ORDER BY s), 'LATIN1'), 'hex') FROM t")
    };
    let before = bytes("latin");
    assert!(before.starts_with("LATIN1 "), "{before}");
    ok(lifeboat(&repo).args(["backup", "postgres", &pg.url("latin")]));

    ok(lifeboat(&repo).args(["restore", "latest", "--create", "--to", &pg.url("latin_copy")]));
    assert_eq!(bytes("latin_copy"), before);
    // Over a UTF8 database, the restored one is LATIN1 as the snapshot was.
    ok(lifeboat(&repo).args(["restore", "latest", "--force", "--to", &pg.url("app")]));
    assert_eq!(bytes("app"), before);
}

#[test]
fn a_kill_in_the_swap_window_leaves_the_name_serving() {
    let (pg, _dir, repo) = cluster_and_repo(Some(2));
    let snap = backup_json(&repo, &pg.url("app"));
    let id = snap["id"].as_str().unwrap();
    pg.psql("app", "UPDATE pgbench_branches SET bbalance = 42");

    // While the restore runs: hold a session on its staging database, and kill the restore
    // the moment the name `app` serves nothing.
    let mut restore = lifeboat(&repo)
        .args(["restore", id, "--force", "--to", &pg.url("app")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut holder: Option<std::process::Child> = None;
    let mut gap = false;
    let started = std::time::Instant::now();
    while restore.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < std::time::Duration::from_secs(300), "the restore hangs");
        if holder.is_none() {
            let staging = pg.psql(
                "postgres",
                "SELECT datname FROM pg_database WHERE datname LIKE 'app\\_%' \
                 AND datname NOT LIKE '%before%' AND datname NOT LIKE '%old%'",
            );
            if !staging.is_empty() {
                holder = Some(
                    std::process::Command::new(pg.bin("psql"))
                        .args(["-X", "-d", &pg.url(&staging), "-c", "SELECT pg_sleep(300)"])
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .unwrap(),
                );
            }
        }
        if pg.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'app'") == "0" {
            gap = true;
            restore.kill().unwrap();
            restore.wait().unwrap();
            break;
        }
    }
    let mut holder = holder.expect("the staging database was never seen");
    let _ = holder.kill();
    let _ = holder.wait();

    // The next run restores onto `app`, which must be there to restore onto.
    ok(lifeboat(&repo).args(["restore", id, "--force", "--to", &pg.url("app")]));
    assert_eq!(pg.psql("app", "SELECT sum(bbalance) FROM pgbench_branches"), "0");
    assert!(!gap, "the name app served nothing during the swap");
}

#[test]
fn a_missing_password_is_named_with_where_to_give_it() {
    let (pg, dir, repo) = cluster_and_repo(None);
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let url = pg.url("app").replace(&format!(":{PG_PASSWORD}@"), "@");
    let err = fails(
        lifeboat(&repo)
            .args(["backup", "postgres", &url])
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env("HOME", &home),
    );
    assert!(err.contains("asks for a password and none was given"), "{err}");
    assert!(err.contains("PGPASSWORD") && err.contains(".pgpass"), "{err}");
    // A password file, as libpq reads it, is enough.
    let pgpass = home.join(".pgpass");
    std::fs::write(&pgpass, format!("127.0.0.1:{}:*:postgres:{PG_PASSWORD}\n", pg.port)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(lifeboat(&repo)
        .args(["backup", "postgres", &url])
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .env("HOME", &home));
}

#[test]
fn a_database_name_too_long_for_the_names_beside_it_is_refused_up_front() {
    let (pg, _dir, repo) = cluster_and_repo(None);
    let long = "a".repeat(49);
    pg.psql("postgres", &format!("CREATE DATABASE {long}"));
    pg.psql(&long, "CREATE TABLE t(x int); INSERT INTO t VALUES (1)");
    ok(lifeboat(&repo).args(["backup", "postgres", &pg.url(&long)]));
    let err = fails(lifeboat(&repo).args(["restore", "latest", "--force", "--to", &pg.url(&long)]));
    assert!(err.contains("too long") && err.contains("48 bytes"), "{err}");
    assert_eq!(snapshots(&repo).len(), 1, "a safety snapshot was taken before refusing");
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM pg_database"), "5");
    // 48 bytes fit, twice in a row: each run keeps the previous database under its own name.
    let fits = "b".repeat(48);
    pg.psql("postgres", &format!("CREATE DATABASE {fits}"));
    for _ in 0..2 {
        ok(lifeboat(&repo).args([
            "restore",
            "latest",
            "--name",
            &long,
            "--force",
            "--to",
            &pg.url(&fits),
        ]));
        assert_eq!(pg.psql(&fits, "SELECT count(*) FROM t"), "1");
    }
    assert_eq!(
        pg.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname LIKE '{fits}\\_%'")
        ),
        "2"
    );
}

#[test]
fn a_table_with_a_quoted_name_restores_alone() {
    let (pg, _dir, repo) = cluster_and_repo(None);
    pg.psql(
        "app",
        "CREATE SCHEMA \"My Shop\"; CREATE TABLE \"My Shop\".\"Order.Items\"(x int); \
         INSERT INTO \"My Shop\".\"Order.Items\" SELECT generate_series(1, 7); CREATE TABLE other(x int)",
    );
    ok(lifeboat(&repo).args(["backup", "postgres", &pg.url("app")]));
    ok(lifeboat(&repo).args([
        "restore",
        "latest",
        "--create",
        "--table",
        "\"My Shop\".\"Order.Items\"",
        "--to",
        &pg.url("only"),
    ]));
    assert_eq!(pg.psql("only", "SELECT count(*) FROM \"My Shop\".\"Order.Items\""), "7");
    assert_eq!(pg.psql("only", "SELECT count(*) FROM pg_tables WHERE tablename = 'other'"), "0");
}

/// Row count of each table, and of each partitioned table's own rows (`ONLY`: none).
fn counts(pg: &PgCluster, db: &str, tables: &[&str]) -> Vec<String> {
    tables
        .iter()
        .map(|t| format!("{t}={}", pg.psql(db, &format!("SELECT count(*) FROM ONLY {t}"))))
        .collect()
}

/// Index names of the tables of `schema`, sorted.
fn indexes(pg: &PgCluster, db: &str, schema: &str) -> String {
    pg.psql(
        db,
        &format!(
            "SELECT string_agg(tablename || ':' || indexname, ' ' ORDER BY tablename, indexname) \
             FROM pg_indexes WHERE schemaname = '{schema}'"
        ),
    )
}

#[test]
fn a_partitioned_table_restores_alone_with_its_partitions() {
    let (pg, _dir, repo) = cluster_and_repo(None);
    pg.psql(
        "app",
        "CREATE SCHEMA sales;
         CREATE TABLE sales.events (id bigserial, at date NOT NULL, note text, PRIMARY KEY (id, at))
           PARTITION BY RANGE (at);
         CREATE TABLE sales.events_2023 PARTITION OF sales.events
           FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
         CREATE TABLE sales.events_2024 PARTITION OF sales.events
           FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY RANGE (at);
         CREATE TABLE sales.events_2024h1 PARTITION OF sales.events_2024
           FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
         CREATE TABLE sales.events_2024h2 PARTITION OF sales.events_2024
           FOR VALUES FROM ('2024-07-01') TO ('2025-01-01');
         CREATE INDEX events_note ON sales.events (note);
         CREATE TABLE sales.other (x int);
         INSERT INTO sales.other VALUES (1);
         INSERT INTO sales.events(at, note)
           SELECT date '2023-01-01' + i, 'n' || i FROM generate_series(0, 700) i;",
    );
    let tables = [
        "sales.events",
        "sales.events_2023",
        "sales.events_2024",
        "sales.events_2024h1",
        "sales.events_2024h2",
    ];
    let before = counts(&pg, "app", &tables);
    assert_eq!(
        before,
        [
            "sales.events=0",
            "sales.events_2023=365",
            "sales.events_2024=0",
            "sales.events_2024h1=182",
            "sales.events_2024h2=154"
        ]
    );
    ok(lifeboat(&repo).args(["backup", "postgres", &pg.url("app")]));

    ok(lifeboat(&repo).args([
        "restore",
        "latest",
        "--create",
        "--table",
        "sales.events",
        "--to",
        &pg.url("only"),
    ]));
    assert_eq!(counts(&pg, "only", &tables), before, "rows per partition");
    assert_eq!(pg.psql("only", "SELECT count(*) FROM sales.events"), "701");
    assert_eq!(indexes(&pg, "only", "sales"), indexes(&pg, "app", "sales"));
    assert_eq!(pg.psql("only", "SELECT count(*) FROM pg_tables WHERE tablename = 'other'"), "0");
    // The key's sequence came with its table, where the source left it.
    let next = "INSERT INTO sales.events(at) VALUES ('2024-12-31') RETURNING id";
    assert_eq!(pg.psql("only", next), pg.psql("app", next));
    // A row goes to its partition, the parent's key holds across partitions.
    assert_eq!(pg.psql("only", "SELECT count(*) FROM ONLY sales.events_2024h2"), "155");
    let dup = std::process::Command::new(pg.bin("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &pg.url("only"), "-c"])
        .arg("INSERT INTO sales.events(id, at) SELECT id, at FROM sales.events LIMIT 1")
        .output()
        .unwrap();
    assert!(!dup.status.success(), "the primary key was not restored");
}

#[test]
fn a_plain_table_restores_alone_with_its_keys_indexes_and_sequence() {
    let (pg, _dir, repo) = cluster_and_repo(None);
    pg.psql("app", TYPED_SCHEMA);
    ok(lifeboat(&repo).args(["backup", "postgres", &pg.url("app")]));
    ok(lifeboat(&repo).args([
        "restore",
        "latest",
        "--create",
        "--table",
        "shop.orders",
        "--to",
        &pg.url("only"),
    ]));
    let rows =
        "SELECT count(*) || ' ' || md5(string_agg(o::text, ',' ORDER BY id)) FROM shop.orders o";
    assert_eq!(pg.psql("only", rows), pg.psql("app", rows));
    assert_eq!(indexes(&pg, "only", "shop"), "orders:orders_pkey orders:orders_placed");
    // Neither the customers it refers to nor the view on it: only the table was asked for.
    assert_eq!(
        pg.psql(
            "only",
            "SELECT count(*) FROM pg_class WHERE relname IN ('customers', 'big_orders')"
        ),
        "0"
    );
    // Its default draws from the sequence, which continues where the source's was.
    let next = "INSERT INTO shop.orders(total) VALUES (1) RETURNING id";
    assert_eq!(pg.psql("only", next), pg.psql("app", next));
}

/// `export` of a PostgreSQL snapshot is a SQL script psql loads as it is: loaded into an
/// empty database, it equals the source; one table alone; what is not offered yet says so.
/// Creates database `db` and loads `script` into it with psql, which must succeed.
fn load_into_new_database(pg: &PgCluster, db: &str, script: &str) {
    pg.psql("postgres", &format!("CREATE DATABASE {db}"));
    let mut load = std::process::Command::new(pg.bin("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &pg.url(db)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut load.stdin.take().unwrap(), script.as_bytes()).unwrap();
    let loaded = load.wait_with_output().unwrap();
    assert!(
        loaded.status.success(),
        "psql could not load the export: {}",
        String::from_utf8_lossy(&loaded.stderr)
    );
}

#[test]
fn the_sql_export_loads_into_an_empty_database_equal_to_the_snapshot() {
    let (pg, dir, repo) = cluster_and_repo(Some(1));
    pg.psql("app", "CREATE TABLE notes(id serial PRIMARY KEY, body text, at timestamptz DEFAULT now()); INSERT INTO notes(body) VALUES ('it''s'), (E'two\\nlines'), (NULL)");
    let snap = backup_json(&repo, &pg.url("app"));
    let name = snap["name"].as_str().unwrap().to_string();
    let dump = ok(lifeboat(&repo).args(["export", "latest", "--name", &name]));
    load_into_new_database(&pg, "loaded", &dump);
    assert_eq!(fingerprint(&pg, "loaded"), fingerprint(&pg, "app"));

    // One table, to a folder: that table's definition and rows, no other table's.
    let out = dir.path().join("out");
    let report = ok(lifeboat(&repo)
        .args(["export", "latest", "--name", &name, "--table", "notes", "--out"])
        .arg(&out)
        .arg("--json"));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["tables"][0]["rows"], 3, "{report}");
    let script = std::fs::read_to_string(out.join("app.sql")).unwrap();
    assert!(script.contains("CREATE TABLE public.notes"), "{script}");
    assert!(!script.contains("pgbench_accounts"), "another table was exported");
    let again =
        fails(lifeboat(&repo).args(["export", "latest", "--name", &name, "--out"]).arg(&out));
    assert!(again.contains("app.sql"), "{again}");

    // CSV as PostgreSQL's own COPY … CSV writes it; JSON lines with text values.
    let csv = ok(lifeboat(&repo)
        .args(["export", "latest", "--name", &name, "--table", "notes", "--format", "csv"]));
    let mut psql_csv =
        pg.psql("app", "COPY (SELECT * FROM notes) TO STDOUT WITH (FORMAT csv, HEADER)");
    psql_csv.push('\n');
    assert_eq!(csv, psql_csv);
    let jsonl = ok(lifeboat(&repo)
        .args(["export", "latest", "--name", &name, "--table", "notes", "--format", "jsonl"]));
    let rows: Vec<serde_json::Value> =
        jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["body"], "two\nlines");
    assert_eq!(rows[2]["body"], serde_json::Value::Null);
    let folder = dir.path().join("csv");
    ok(lifeboat(&repo)
        .args(["export", "latest", "--name", &name, "--format", "csv", "--out"])
        .arg(&folder));
    let accounts = std::fs::read_to_string(folder.join("public.pgbench_accounts.csv")).unwrap();
    assert_eq!(accounts.lines().count(), 100_001, "a header and 100,000 rows");

    for (args, says) in [
        (&["--where", "aid = 1"][..], "none was given"),
        (&["--format", "csv"][..], "cannot share standard output"),
        (&["--table", "nope"][..], "no such table"),
    ] {
        let err = fails(lifeboat(&repo).args(["export", "latest", "--name", &name]).args(args));
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// tenants ← users (self-referencing manager) ← orders (composite key) ← order_lines (no
/// tenant column, a GENERATED ALWAYS identity and a generated column), plus a log without a
/// key or a tenant. Fixed values throughout, so every database made with it is equal.
const TENANT_SCHEMA: &str = "
CREATE TABLE tenants(id text PRIMARY KEY, name text NOT NULL);
CREATE TABLE users(
  id int PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants(id),
  email text NOT NULL UNIQUE,
  manager_id int REFERENCES users(id));
CREATE TABLE orders(
  tenant_id text NOT NULL REFERENCES tenants(id),
  order_no int NOT NULL,
  user_id int NOT NULL REFERENCES users(id),
  total numeric(10,2) NOT NULL,
  placed timestamptz NOT NULL,
  PRIMARY KEY(tenant_id, order_no));
CREATE TABLE order_lines(
  id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_tenant text NOT NULL,
  order_no int NOT NULL,
  sku text NOT NULL,
  qty int NOT NULL,
  doubled int GENERATED ALWAYS AS (qty * 2) STORED,
  FOREIGN KEY(order_tenant, order_no) REFERENCES orders(tenant_id, order_no) ON DELETE CASCADE);
CREATE INDEX users_tenant ON users(tenant_id);
CREATE TABLE log(at int, note text);
INSERT INTO tenants SELECT t, t || ' inc' FROM unnest(ARRAY['acme', 'globex', 'initech']) t;
INSERT INTO users SELECT 4 * (t - 1) + u, (ARRAY['acme', 'globex', 'initech'])[t],
  'u' || (u - 1) || '@' || (ARRAY['acme', 'globex', 'initech'])[t] || '.example',
  CASE WHEN u = 1 THEN NULL ELSE 4 * (t - 1) + 1 END
  FROM generate_series(1, 3) t, generate_series(1, 4) u;
INSERT INTO orders SELECT (ARRAY['acme', 'globex', 'initech'])[t], o, 4 * (t - 1) + 1 + o % 4,
  100 * o + t + 0.25, timestamptz '2026-01-01 00:00:00+00' + o * interval '1 hour'
  FROM generate_series(1, 3) t, generate_series(1, 5) o;
INSERT INTO order_lines(order_tenant, order_no, sku, qty)
  SELECT tenant_id, order_no, 'sku-' || l, l + 1 FROM orders, generate_series(0, 2) l
  ORDER BY tenant_id, order_no, l;
INSERT INTO log VALUES (1, 'acme created'), (2, 'globex created'), (3, 'initech created');
";

/// After the backup: acme loses three orders (and, by cascade, their lines), gains one the
/// snapshot lacks and renames a user; globex changes too.
const TENANT_DAMAGE: &str = "
DELETE FROM orders WHERE tenant_id = 'acme' AND order_no <= 3;
UPDATE orders SET total = total + 1 WHERE tenant_id = 'acme' AND order_no = 4;
INSERT INTO orders VALUES ('acme', 999999, 1, 9999, '2026-06-01 00:00:00+00');
INSERT INTO order_lines(order_tenant, order_no, sku, qty) VALUES ('acme', 999999, 'sku-new', 7);
UPDATE users SET email = 'renamed@acme.example' WHERE id = 2;
UPDATE orders SET total = 0 WHERE tenant_id = 'globex';
UPDATE users SET email = 'boss@globex.example' WHERE id = 5;
INSERT INTO log VALUES (9, 'after the backup');
";

/// One tenant's rows in every table, each as its row's text, in a fixed order.
fn tenant_rows_pg(pg: &PgCluster, db: &str, tenant: &str) -> Vec<String> {
    let mut all = Vec::new();
    for (table, sql) in [
        ("tenants", format!("SELECT t::text FROM tenants t WHERE id = '{tenant}'")),
        ("users", format!("SELECT t::text FROM users t WHERE tenant_id = '{tenant}' ORDER BY id")),
        (
            "orders",
            format!("SELECT t::text FROM orders t WHERE tenant_id = '{tenant}' ORDER BY order_no"),
        ),
        (
            "lines",
            format!(
                "SELECT t::text FROM order_lines t WHERE order_tenant = '{tenant}' ORDER BY id"
            ),
        ),
    ] {
        all.extend(pg.psql(db, &sql).lines().map(|r| format!("{table}: {r}")));
    }
    all
}

/// A cluster with the tenant schema backed up; `snap` holds the snapshot restored whole.
fn tenants_backed_up() -> (PgCluster, tempfile::TempDir, String, String) {
    tenants_backed_up_with("")
}

/// As [`tenants_backed_up`], with `more` SQL run on `app` before the backup.
fn tenants_backed_up_with(more: &str) -> (PgCluster, tempfile::TempDir, String, String) {
    let (pg, dir, repo) = cluster_and_repo(None);
    pg.psql("app", TENANT_SCHEMA);
    if !more.is_empty() {
        pg.psql("app", more);
    }
    let id = backup_json(&repo, &pg.url("app"))["id"].as_str().unwrap().to_string();
    ok(lifeboat(&repo).args(["restore", &id, "--create", "--to", &pg.url("snap")]));
    (pg, dir, repo, id)
}

/// A live database as it is after the damage.
fn damaged(pg: &PgCluster, db: &str) {
    pg.psql("postgres", &format!("CREATE DATABASE {db}"));
    pg.psql(db, TENANT_SCHEMA);
    pg.psql(db, TENANT_DAMAGE);
}

fn restore_rows_json(repo: &str, id: &str, url: &str, args: &[&str]) -> serde_json::Value {
    let out = ok(lifeboat(repo).args(["restore", id, "--to", url]).args(args).arg("--json"));
    serde_json::from_str(&out).unwrap()
}

fn no_scratch_left(pg: &PgCluster) {
    let left =
        pg.psql("postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'lb\\_rows%'");
    assert!(left.is_empty(), "scratch databases left behind: {left}");
}

#[test]
fn one_tenants_rows_come_back_into_postgres_in_each_mode_and_nobody_elses_change() {
    let (pg, _dir, repo, id) = tenants_backed_up();
    let acme = "tenant_id = 'acme'";
    let others = |db: &str| -> Vec<Vec<String>> {
        ["globex", "initech"].iter().map(|t| tenant_rows_pg(&pg, db, t)).collect()
    };
    let log = |db: &str| pg.psql(db, "SELECT at, note FROM log ORDER BY at");

    // insert: exactly the deleted rows come back; nothing that exists changes.
    damaged(&pg, "ins");
    let url = pg.url("ins");
    let (before_others, before_acme, before_log) =
        (others("ins"), tenant_rows_pg(&pg, "ins", "acme"), log("ins"));
    let dry = restore_rows_json(&repo, &id, &url, &["--where", acme, "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(tenant_rows_pg(&pg, "ins", "acme"), before_acme, "a dry run changed the database");
    let planned = per_table(&dry);
    assert_eq!(planned["orders"][0], 3, "{dry}");
    assert_eq!(planned["order_lines"][0], 9, "{dry}");
    assert_eq!(planned["users"][..3], [0, 0, 0], "{dry}");
    let done = restore_rows_json(&repo, &id, &url, &["--where", acme]);
    assert_eq!(per_table(&done), planned, "the run did not do what the dry run said");
    assert!(done["safety_snapshot"].is_string(), "{done}");
    let mut expected: Vec<String> = tenant_rows_pg(&pg, "snap", "acme")
        .into_iter()
        .map(|r| {
            r.replace("(2,acme,u1@acme.example,1)", "(2,acme,renamed@acme.example,1)")
                .replace("(acme,4,1,401.25,", "(acme,4,1,402.25,")
        })
        .collect();
    expected.push("orders: (acme,999999,1,9999.00,\"2026-06-01 00:00:00+00\")".into());
    expected.push("lines: (46,acme,999999,sku-new,7,14)".into());
    expected.sort();
    let mut got = tenant_rows_pg(&pg, "ins", "acme");
    got.sort();
    assert_eq!(got, expected);
    assert_eq!(others("ins"), before_others, "another tenant was touched");
    assert_eq!(log("ins"), before_log, "the log has no tenant column");
    let again = per_table(&restore_rows_json(&repo, &id, &url, &["--where", acme]));
    assert!(again.values().all(|c| c[..3] == [0, 0, 0]), "{again:?}");

    // replace: acme ends exactly as in the snapshot.
    damaged(&pg, "rep");
    let url = pg.url("rep");
    let before_others = others("rep");
    let unconfirmed = fails(
        lifeboat(&repo).args(["restore", &id, "--to", &url, "--where", acme, "--mode", "replace"]),
    );
    assert!(unconfirmed.contains("--force"), "{unconfirmed}");
    let dry =
        restore_rows_json(&repo, &id, &url, &["--where", acme, "--mode", "replace", "--dry-run"]);
    let planned = per_table(&dry);
    assert_eq!(planned["orders"], [3, 1, 1, 1], "{dry}");
    assert_eq!(planned["order_lines"], [9, 0, 1, 6], "{dry}");
    assert_eq!(planned["users"], [0, 1, 0, 3], "{dry}");
    let done =
        restore_rows_json(&repo, &id, &url, &["--where", acme, "--mode", "replace", "--force"]);
    assert_eq!(per_table(&done), planned);
    assert_eq!(tenant_rows_pg(&pg, "rep", "acme"), tenant_rows_pg(&pg, "snap", "acme"));
    assert_eq!(others("rep"), before_others, "another tenant was touched");
    let safety = done["safety_snapshot"].as_str().unwrap();
    let snaps = snapshots(&repo);
    let safety = snaps.iter().find(|x| x["id"] == safety).expect("the safety snapshot is listed");
    assert_eq!(safety["tags"]["pre-restore"], id.as_str());
    assert_eq!(safety["metadata"]["tables"]["public.log"], 4, "the whole database, as it was");

    // upsert: the renamed user is set back, the new order stays.
    damaged(&pg, "ups");
    let url = pg.url("ups");
    let before_others = others("ups");
    let done =
        restore_rows_json(&repo, &id, &url, &["--where", acme, "--mode", "upsert", "--force"]);
    let counted = per_table(&done);
    assert_eq!(counted["users"], [0, 1, 0, 3], "{done}");
    assert_eq!(counted["orders"], [3, 1, 0, 1], "{done}");
    assert_eq!(pg.psql("ups", "SELECT email FROM users WHERE id = 2"), "u1@acme.example");
    assert_eq!(pg.psql("ups", "SELECT total FROM orders WHERE order_no = 999999"), "9999.00");
    assert_eq!(others("ups"), before_others, "another tenant was touched");

    // Only some tables: the orders of one user (their lines follow, their parents exist).
    damaged(&pg, "one");
    let url = pg.url("one");
    let done =
        restore_rows_json(&repo, &id, &url, &["--where", "user_id = 2", "--table", "orders"]);
    let counted = per_table(&done);
    assert_eq!(counted["orders"][0], 1, "{done}");
    assert_eq!(counted["order_lines"][0], 3, "{done}");
    no_scratch_left(&pg);
}

#[test]
fn postgres_partial_restores_refuse_clearly_and_leave_the_target_as_it_was() {
    let (pg, _dir, repo, id) = tenants_backed_up();
    damaged(&pg, "live");
    let url = pg.url("live");
    pg.psql(
        "live",
        "INSERT INTO users VALUES (100, 'acme', 'new@acme.example', NULL), \
         (101, 'globex', 'new@globex.example', 100)",
    );
    let before = fingerprint(&pg, "live");
    for (args, says) in [
        (&["--where", "tenant_id = "][..], "not a condition PostgreSQL accepts"),
        (&["--where", "tenant = 'acme'"][..], "names no column of any table"),
        (&["--where", "1 = 1"][..], "names no column"),
        (&["--where", "tenant_id = 'acme'; DROP TABLE tenants"][..], "holds a ;"),
        (&["--where", "tenant_id = 'acme') OR (true"][..], "did not open"),
        (&["--where", "tenant_id = 'acme'", "--table", "nope"][..], "no such table"),
        (&["--where", "tenant_id = 'acme'", "--table", "order_lines"][..], "lacks a column"),
        (&["--where", "note LIKE 'acme%'", "--mode", "replace", "--force"][..], "no primary key"),
        // `id` is text in tenants: the condition is about the other tables. Replacing user 1
        // would delete acme's new order, whose line is outside the selection (line 1 only).
        (
            &["--where", "id = 1", "--table", "users", "--mode", "replace", "--force"][..],
            "outside the selection",
        ),
        // acme's new user manages a globex user: replacing acme would delete it.
        (
            &["--where", "tenant_id = 'acme'", "--mode", "replace", "--force"][..],
            "rows of public.users outside the selection",
        ),
        (&["--where", "tenant_id = 7"][..], "operator does not exist"),
    ] {
        let err = fails(lifeboat(&repo).args(["restore", &id, "--to", &url]).args(args));
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(fingerprint(&pg, "live"), before, "{args:?} changed the target");
    }
    // A table whose columns changed since the backup.
    pg.psql("live", "ALTER TABLE orders ADD COLUMN note text");
    let before = fingerprint(&pg, "live");
    let err = fails(lifeboat(&repo).args([
        "restore",
        &id,
        "--to",
        &url,
        "--where",
        "tenant_id = 'acme'",
    ]));
    assert!(err.contains("same columns"), "{err}");
    assert_eq!(fingerprint(&pg, "live"), before);
    no_scratch_left(&pg);
}

#[test]
fn a_killed_postgres_partial_restore_changes_all_or_nothing_and_its_scratch_goes_next_time() {
    // Rows enough that restoring the scratch copy takes a moment.
    let filler = "CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS pad \
                  FROM generate_series(1, 300000) g; ALTER TABLE filler ADD PRIMARY KEY (id)";
    let (pg, _dir, repo, id) = tenants_backed_up_with(filler);
    damaged(&pg, "live");
    pg.psql("live", filler);
    let url = pg.url("live");
    let before = fingerprint(&pg, "live");
    let args = ["--where", "tenant_id = 'acme'", "--mode", "replace", "--force"];
    let scratch =
        || pg.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'lb\\_rows%'");
    let mut left_behind = 0;
    for delay_ms in [0u64, 150, 400, 900, 1600] {
        let mut child = lifeboat(&repo)
            .args(["restore", &id, "--to", &url])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while scratch() == "0" && start.elapsed() < std::time::Duration::from_secs(60) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        child.wait().unwrap();
        if !finished && scratch() != "0" {
            left_behind += 1;
        }
        let now = fingerprint(&pg, "live");
        if now != before {
            // It committed: all of it. Back to the damaged state for the next round.
            assert_eq!(
                tenant_rows_pg(&pg, "live", "acme"),
                tenant_rows_pg(&pg, "snap", "acme"),
                "a kill after {delay_ms} ms left acme half restored"
            );
            pg.psql("postgres", "DROP DATABASE live");
            damaged(&pg, "live");
            pg.psql("live", filler);
            assert_eq!(fingerprint(&pg, "live"), before);
        }
    }
    assert!(left_behind > 0, "no kill landed while the scratch database was there");
    // The next partial restore drops what the killed ones left, and does its work.
    let done = restore_rows_json(&repo, &id, &url, &args);
    assert_eq!(per_table(&done)["orders"], [3, 1, 1, 1], "{done}");
    assert_eq!(tenant_rows_pg(&pg, "live", "acme"), tenant_rows_pg(&pg, "snap", "acme"));
    no_scratch_left(&pg);
}

#[test]
fn one_tenants_rows_export_from_postgres_as_csv_and_as_a_script_psql_loads() {
    let (pg, dir, repo, id) = tenants_backed_up();
    let server = pg.url("postgres");
    let export = |args: &[&str]| -> std::process::Command {
        let mut cmd = lifeboat(&repo);
        cmd.args(["export", &id, "--where", "tenant_id = 'acme'", "--postgres-server", &server]);
        cmd.args(args);
        cmd
    };
    // CSV, a file per table: acme's rows, as PostgreSQL's own COPY … CSV writes them.
    let out = dir.path().join("csv");
    let report: serde_json::Value = serde_json::from_str(&ok(&mut export(&[
        "--format",
        "csv",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ])))
    .unwrap();
    let rows: std::collections::BTreeMap<String, u64> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["table"].as_str().unwrap().to_string(), t["rows"].as_u64().unwrap()))
        .collect();
    let want: std::collections::BTreeMap<String, u64> = [
        ("public.order_lines", 15),
        ("public.orders", 5),
        ("public.tenants", 1),
        ("public.users", 4),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_string(), n))
    .collect();
    assert_eq!(rows, want, "{report}");
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines[1..].sort();
        lines
    };
    let csv = std::fs::read_to_string(out.join("public.orders.csv")).unwrap();
    let psql_csv = pg.psql(
        "snap",
        "COPY (SELECT * FROM orders WHERE tenant_id = 'acme') TO STDOUT WITH (FORMAT csv, HEADER)",
    );
    assert_eq!(sorted(&csv), sorted(&psql_csv));
    let lines = std::fs::read_to_string(out.join("public.order_lines.csv")).unwrap();
    assert!(lines.starts_with("id,order_tenant,order_no,sku,qty\n"), "{lines}");

    // SQL on standard output: loaded into an empty database, it holds acme and nobody else.
    let script = ok(&mut export(&[]));
    load_into_new_database(&pg, "loaded", &script);
    assert_eq!(tenant_rows_pg(&pg, "loaded", "acme"), tenant_rows_pg(&pg, "snap", "acme"));
    assert!(tenant_rows_pg(&pg, "loaded", "globex").is_empty());
    assert_eq!(pg.psql("loaded", "SELECT count(*) FROM log"), "0", "the log has no tenant column");
    assert_eq!(pg.psql("loaded", "SELECT last_value FROM order_lines_id_seq"), "45");
    let fk = pg.psql("loaded", "SELECT count(*) FROM pg_constraint WHERE contype = 'f'");
    assert_eq!(fk, "5", "the foreign keys come with the schema");

    // Several tables cannot share standard output; a bad condition is refused.
    let err = fails(&mut export(&["--format", "jsonl"]));
    assert!(err.contains("cannot share standard output"), "{err}");
    let err = fails(lifeboat(&repo).args([
        "export",
        &id,
        "--where",
        "tenant = 'x'",
        "--postgres-server",
        &server,
    ]));
    assert!(err.contains("names no column"), "{err}");
    no_scratch_left(&pg);
}

#[test]
fn writers_of_other_tenants_lose_nothing_while_a_partial_restore_runs() {
    let filler = "CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS pad \
                  FROM generate_series(1, 200000) g; ALTER TABLE filler ADD PRIMARY KEY (id)";
    let (pg, _dir, repo, id) = tenants_backed_up_with(filler);
    damaged(&pg, "live");
    pg.psql("live", filler);
    let url = pg.url("live");
    let stop = Arc::new(AtomicBool::new(false));
    // globex keeps taking orders, one transaction each, the whole time.
    let writer = {
        let (stop, url, psql) = (stop.clone(), url.clone(), pg.bin("psql"));
        std::thread::spawn(move || {
            let mut committed = Vec::new();
            let mut n = 1000;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let sql = format!(
                    "INSERT INTO orders VALUES ('globex', {n}, 5, {n}, now()); \
                     INSERT INTO order_lines(order_tenant, order_no, sku, qty) VALUES ('globex', {n}, 'w', 1)"
                );
                let out = std::process::Command::new(&psql)
                    .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", &url, "-c", &sql])
                    .output()
                    .unwrap();
                if out.status.success() {
                    committed.push(n);
                }
            }
            committed
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let done = restore_rows_json(
        &repo,
        &id,
        &url,
        &["--where", "tenant_id = 'acme'", "--mode", "replace", "--force"],
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let committed = writer.join().unwrap();
    assert!(committed.len() > 5, "the writer hardly ran: {committed:?}");
    assert_eq!(per_table(&done)["orders"], [3, 1, 1, 1], "{done}");
    assert_eq!(tenant_rows_pg(&pg, "live", "acme"), tenant_rows_pg(&pg, "snap", "acme"));
    let kept = pg.psql(
        "live",
        "SELECT count(*) FROM orders o JOIN order_lines l ON l.order_tenant = o.tenant_id \
         AND l.order_no = o.order_no WHERE o.tenant_id = 'globex' AND o.order_no > 1000",
    );
    assert_eq!(kept, committed.len().to_string(), "a committed order of globex was lost");
}

#[test]
fn postgres_partial_restores_take_subqueries_and_partitioned_tables() {
    // orders partitioned by tenant; the condition names tenants by a subquery.
    let partitioned = "
CREATE TABLE events(tenant_id text NOT NULL REFERENCES tenants(id), seq int NOT NULL,
  body text, PRIMARY KEY(tenant_id, seq)) PARTITION BY LIST (tenant_id);
CREATE TABLE events_acme PARTITION OF events FOR VALUES IN ('acme');
CREATE TABLE events_rest PARTITION OF events DEFAULT;
INSERT INTO events SELECT t, s, t || ' event ' || s FROM unnest(ARRAY['acme', 'globex']) t,
  generate_series(1, 4) s;";
    let (pg, _dir, repo, id) = tenants_backed_up_with(partitioned);
    damaged(&pg, "live");
    pg.psql("live", partitioned);
    pg.psql("live", "DELETE FROM events WHERE seq > 2; UPDATE events SET body = 'changed'");
    let url = pg.url("live");
    let by_name = "tenant_id IN (SELECT id FROM tenants WHERE name = 'acme inc')";
    let done =
        restore_rows_json(&repo, &id, &url, &["--where", by_name, "--mode", "upsert", "--force"]);
    let counted = per_table(&done);
    assert_eq!(counted["events"], [2, 2, 0, 0], "{done}");
    assert_eq!(counted["orders"][0], 3, "{done}");
    let events = |db: &str, tenant: &str| {
        pg.psql(db, &format!("SELECT string_agg(seq || body, ',' ORDER BY seq) FROM events WHERE tenant_id = '{tenant}'"))
    };
    assert_eq!(events("live", "acme"), events("snap", "acme"));
    assert_eq!(events("live", "globex"), "1changed,2changed", "globex was touched");
    // The rows went into their partition.
    assert_eq!(pg.psql("live", "SELECT count(*) FROM events_acme"), "4");
}

#[test]
fn a_flipped_byte_fails_the_postgres_partial_restore_and_export_loudly() {
    let (pg, dir, repo, id) = tenants_backed_up();
    damaged(&pg, "live");
    let url = pg.url("live");
    let before = fingerprint(&pg, "live");
    for (pack, _) in tree(&std::path::Path::new(&repo).join("data")) {
        let mut bytes = std::fs::read(&pack).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&pack, bytes).unwrap();
    }
    let err = fails(lifeboat(&repo).args([
        "restore",
        &id,
        "--to",
        &url,
        "--where",
        "tenant_id = 'acme'",
        "--mode",
        "replace",
        "--force",
    ]));
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(fingerprint(&pg, "live"), before, "a failed partial restore changed the target");
    let out = dir.path().join("export");
    let err = fails(lifeboat(&repo).args([
        "export",
        &id,
        "--where",
        "tenant_id = 'acme'",
        "--postgres-server",
        &pg.url("postgres"),
        "--format",
        "csv",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(err.contains("corrupt"), "{err}");
    assert!(tree(&out).is_empty(), "a failed export left files: {:?}", tree(&out));
    no_scratch_left(&pg);
}
