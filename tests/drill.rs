//! Restore drills: pass on good snapshots, fail with the check named when data is damaged,
//! an expectation does not hold, or an objective is missed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::path::Path;

use util::*;

struct Fixture {
    dir: tempfile::TempDir,
    repo: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo").display().to_string();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        ok(lifeboat(&repo).args(["init", "--no-encryption"]));
        make_sqlite_db(&dir.path().join("auth.db"), 2);
        ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(dir.path().join("auth.db")));
        let uploads = dir.path().join("uploads");
        std::fs::create_dir_all(uploads.join("invoices")).unwrap();
        std::fs::write(uploads.join("invoices/2026-11.pdf"), pseudo_random(200_000, 3)).unwrap();
        ok(lifeboat(&repo).args(["backup", "dir"]).arg(&uploads));
        Fixture { dir, repo }
    }

    /// A drill command with its scratch space and heartbeat inside the fixture.
    fn drill(&self) -> std::process::Command {
        let mut cmd = lifeboat(&self.repo);
        cmd.env("TMPDIR", self.dir.path().join("tmp"))
            .arg("drill")
            .arg("--heartbeat")
            .arg(self.path("heartbeat.json"));
        cmd
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn expect(&self, toml: &str) -> std::path::PathBuf {
        let path = self.path("expect.toml");
        std::fs::write(&path, toml).unwrap();
        path
    }
}

fn run_json(cmd: &mut std::process::Command) -> (i32, Vec<serde_json::Value>) {
    let out = cmd.arg("--json").output().unwrap();
    let results = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), results)
}

fn failed_checks(result: &serde_json::Value) -> Vec<String> {
    result["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn good_snapshots_pass_with_report_and_heartbeat() {
    let f = Fixture::new();
    // A scratch folder left by a drill that died: cleaned by the next drill.
    let leftover = f.path("tmp/lifeboat-drill-999999999-dead");
    std::fs::create_dir(&leftover).unwrap();
    let expect = f.expect(
        "[auth]\ntables = [\"events\", \"users\"]\nmin_rows = { users = 500 }\nquery = \"SELECT 1 FROM users WHERE email LIKE '%@example.com'\"\nrto = \"5m\"\nrpo = \"24h\"\n\n[uploads]\nfiles = [\"invoices/2026-11.pdf\"]\n",
    );
    let report = f.path("drill.md");
    let (code, results) =
        run_json(f.drill().arg("--all").arg("--expect").arg(&expect).arg("--report").arg(&report));
    assert_eq!(code, 0, "{results:?}");
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(r["passed"], true, "{r}");
        assert!(r["rto_seconds"].as_f64().unwrap() > 0.0);
        assert!(r["rpo_seconds"].as_f64().unwrap() >= 0.0);
        assert!(r["bytes"].as_u64().unwrap() > 0);
    }
    let auth = results.iter().find(|r| r["name"] == "auth").unwrap();
    let names: Vec<&str> =
        auth["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    for expected in [
        "integrity_check",
        "table events exists",
        "at least 500 rows in users",
        "query returns a row",
        "RTO",
        "RPO",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let md = std::fs::read_to_string(&report).unwrap();
    for needle in [
        "# Restore drill report",
        "| auth | sqlite |",
        "| uploads | dir |",
        "RTO objective",
        "Issues found: none",
    ] {
        assert!(md.contains(needle), "{needle} missing from the report:\n{md}");
    }
    let beats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.path("heartbeat.json")).unwrap()).unwrap();
    assert!(beats["auth"].is_string() && beats["uploads"].is_string(), "{beats}");
    assert!(!leftover.exists(), "a dead drill's scratch folder was not cleaned");
    let scratch: Vec<_> = std::fs::read_dir(f.path("tmp")).unwrap().collect();
    assert!(scratch.is_empty(), "the drill left scratch targets: {scratch:?}");
}

#[test]
fn a_corrupted_pack_fails_the_drill_and_names_the_check() {
    let f = Fixture::new();
    for (pack, _) in tree(&Path::new(&f.repo).join("data")) {
        let mut bytes = std::fs::read(&pack).unwrap();
        bytes[100] ^= 0xff;
        std::fs::write(&pack, bytes).unwrap();
    }
    let (code, results) = run_json(f.drill().args(["--name", "auth", "--name", "uploads"]));
    assert_eq!(code, 1);
    for r in &results {
        assert_eq!(r["passed"], false);
        assert!(failed_checks(r).contains(&"restore".to_string()), "{r}");
    }
    let beats = std::fs::read(f.path("heartbeat.json")).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&beats).unwrap(),
        serde_json::json!({}),
        "a failed drill wrote a heartbeat"
    );
}

#[test]
fn unmet_expectations_and_missed_objectives_fail() {
    let f = Fixture::new();
    let expect = f.expect("[auth]\ntables = [\"payments\"]\nmin_rows = { users = 1000000 }\n[uploads]\nfiles = [\"invoices/missing.pdf\"]\n");
    let (code, results) = run_json(f.drill().arg("--all").arg("--expect").arg(&expect));
    assert_eq!(code, 1);
    let auth = results.iter().find(|r| r["name"] == "auth").unwrap();
    assert_eq!(
        failed_checks(auth),
        vec!["table payments exists", "at least 1000000 rows in users"]
    );
    let uploads = results.iter().find(|r| r["name"] == "uploads").unwrap();
    assert_eq!(failed_checks(uploads), vec!["file invoices/missing.pdf exists"]);

    std::thread::sleep(std::time::Duration::from_millis(2100));
    let expect = f.expect("[auth]\nrpo = \"1s\"\nrto = \"1h\"\n");
    let (code, results) = run_json(f.drill().args(["--name", "auth", "--expect"]).arg(&expect));
    assert_eq!(code, 1);
    assert_eq!(failed_checks(&results[0]), vec!["RPO"]);

    let expect = f.expect("[auth]\nrpo = \"soon\"\n");
    let err = fails(f.drill().args(["--name", "auth", "--expect"]).arg(&expect));
    assert!(err.contains("not a valid expectations file"), "{err}");
    let err = fails(f.drill().args(["--name", "nope"]));
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn postgres_snapshots_drill_into_scratch_databases() {
    let pg = PgCluster::start();
    pg.psql("postgres", "CREATE DATABASE billing");
    pg.psql("billing", "CREATE TABLE invoices(id serial PRIMARY KEY, total numeric); INSERT INTO invoices(total) SELECT i FROM generate_series(1, 500) i;");
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    ok(lifeboat(&repo).args(["backup", "postgres", &pg.url("billing")]));
    let expect = dir.path().join("expect.toml");
    std::fs::write(&expect, "[billing]\ntables = [\"invoices\"]\nmin_rows = { invoices = 500 }\nquery = \"SELECT 1 FROM invoices WHERE total = 500\"\nrto = \"10m\"\n").unwrap();
    let drill = |extra: &[&str]| {
        let mut cmd = lifeboat(&repo);
        cmd.env("TMPDIR", dir.path())
            .args(["drill", "--name", "billing", "--heartbeat"])
            .arg(dir.path().join("hb.json"));
        cmd.args(extra);
        cmd
    };
    let err = fails(&mut drill(&[]));
    assert!(err.contains("--postgres-server"), "{err}");

    let server = pg.url("postgres");
    let (code, results) = run_json(
        drill(&["--postgres-server", &server, "--expect", expect.to_str().unwrap()])
            .env_remove("LIFEBOAT_DRILL_POSTGRES"),
    );
    assert_eq!(code, 0, "{results:?}");
    assert_eq!(results[0]["passed"], true, "{}", results[0]);
    let names: Vec<&str> = results[0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"rows in public.invoices") && names.contains(&"query returns a row"),
        "{names:?}"
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'lifeboat_drill%'"
        ),
        "0",
        "a scratch database was left"
    );

    std::fs::write(&expect, "[billing]\ntables = [\"payments\"]\n").unwrap();
    let (code, results) =
        run_json(&mut drill(&["--postgres-server", &server, "--expect", expect.to_str().unwrap()]));
    assert_eq!(code, 1);
    assert_eq!(failed_checks(&results[0]), vec!["table payments exists"]);
}
