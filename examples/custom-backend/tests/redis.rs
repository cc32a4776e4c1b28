//! The example backend end to end, through the binary a team would build: a real
//! `redis-server` on loopback, backed up, listed, verified, drilled and restored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A throwaway `redis-server` on a free loopback port, stopped on drop.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--dir", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is missing: install Debian's redis-server and redis-tools (scripts/test.sh does)");
        let redis = Redis { port, child };
        let start = Instant::now();
        while redis.cli(&["PING"]).trim() != "PONG" {
            assert!(start.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli is missing: install Debian's redis-tools");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lifeboat(repo: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat-redis"));
    cmd.arg("--repo").arg(repo).env_remove("LIFEBOAT_REPO").env("LIFEBOAT_LOG", "warn");
    cmd
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} should have failed");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("error: ") && stderr.contains("hint: "), "{stderr}");
    stderr
}

#[test]
fn a_teams_own_backend_backs_up_lists_verifies_drills_and_restores() {
    let work = tempfile::tempdir().unwrap();
    let (live, repo) = (work.path().join("live"), work.path().join("repo"));
    std::fs::create_dir(&live).unwrap();
    let redis = Redis::start(&live);
    let mut mset = vec!["MSET".to_string()];
    for i in 0..500 {
        mset.extend([format!("key:{i}"), format!("value {i}")]);
    }
    let args: Vec<&str> = mset.iter().map(String::as_str).collect();
    assert_eq!(redis.cli(&args).trim(), "OK");

    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let help = ok(lifeboat(&repo).args(["backup", "--help"]));
    assert!(help.contains("redis") && help.contains("sqlite"), "standard kinds and ours: {help}");
    let saved: serde_json::Value = serde_json::from_str(&ok(lifeboat(&repo).args([
        "backup",
        "redis",
        &redis.url(),
        "--json",
    ])))
    .unwrap();
    assert_eq!(saved["kind"], "redis");
    assert_eq!(saved["metadata"]["keys"], 500);
    let name = saved["name"].as_str().unwrap().to_string();
    assert_eq!(name, format!("redis-127.0.0.1-{}", redis.port));

    // A second backup of an unchanged server stores almost nothing new.
    let again: serde_json::Value = serde_json::from_str(&ok(lifeboat(&repo).args([
        "backup",
        "redis",
        &redis.url(),
        "--json",
    ])))
    .unwrap();
    // An RDB of an unchanged server differs only in its header (its creation time): the
    // second is stored as a delta against the first.
    let (stored, size) = (again["stored"].as_u64().unwrap(), again["size"].as_u64().unwrap());
    assert!(stored * 3 < size, "deduplicated: {again}");

    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ok(lifeboat(&repo).args(["snapshots", "--json"]))).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|s| s["kind"] == "redis"));
    ok(lifeboat(&repo).args(["verify", "--all", "--read-data", "--restore"]));

    let drilled: Vec<serde_json::Value> = serde_json::from_str(&ok(lifeboat(&repo)
        .args(["drill", "--name", &name, "--json", "--heartbeat"])
        .arg(work.path().join("beat.json"))))
    .unwrap();
    assert_eq!(drilled[0]["passed"], true, "{drilled:?}");
    let served = drilled[0]["checks"].to_string();
    assert!(served.contains("loaded 500 keys"), "{served}");

    // Restore into an empty data folder, then serve it.
    let restored = work.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    ok(lifeboat(&repo).args(["restore", "latest", "--name", &name, "--to"]).arg(&restored));
    let back = Redis::start(&restored);
    assert_eq!(back.cli(&["DBSIZE"]).trim(), "500");
    assert_eq!(back.cli(&["GET", "key:42"]).trim(), "value 42");
    drop(back);

    // Over an existing dump: refused without --force, and with it a safety snapshot first.
    let stderr =
        fails(lifeboat(&repo).args(["restore", "latest", "--name", &name, "--to"]).arg(&restored));
    assert!(stderr.contains("already exists"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&ok(lifeboat(&repo)
        .args(["restore", "latest", "--name", &name, "--force", "--json", "--to"])
        .arg(&restored)))
    .unwrap();
    assert!(report["safety_snapshot"].is_string(), "{report}");
}
