//! Many hosts back up into one repository while forget and prune run over and over, some
//! prunes killed mid-way; afterwards every kept snapshot is there and reads back intact,
//! deltas whose bases belonged to forgotten snapshots included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use util::*;

const HOSTS: usize = 4;
const ROUNDS: usize = 3;

fn scenario(repo: &str, env: &[(&'static str, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let (owned_repo, owned_env) = (repo.to_string(), env.to_vec());
    let cmd = move |host: &str| {
        let mut c = lifeboat(&owned_repo);
        c.env("LIFEBOAT_HOST", host).env("LIFEBOAT_LEASE_TTL", "3s");
        for (k, v) in &owned_env {
            c.env(k, v);
        }
        c
    };
    ok(cmd("admin").args(["init", "--no-encryption"]));

    let done = Arc::new(AtomicBool::new(false));
    let pruner = {
        let (done, cmd) = (done.clone(), cmd.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            let mut killed = 0;
            while !done.load(Ordering::Relaxed) || runs < 3 {
                ok(cmd("admin").args(["forget", "--keep-last", "2"]));
                let mut prune: Command = cmd("admin");
                prune.args(["prune", "--grace", "0s"]).stdout(Stdio::null()).stderr(Stdio::piped());
                if runs % 3 == 2 {
                    // Kill this one somewhere in the middle.
                    let mut child = prune.spawn().unwrap();
                    std::thread::sleep(Duration::from_millis(30 + 40 * (runs as u64 % 4)));
                    let _ = child.kill();
                    let _ = child.wait();
                    killed += 1;
                } else {
                    let out = prune.output().unwrap();
                    let err = String::from_utf8_lossy(&out.stderr);
                    // A killed prune's lease blocks others until it expires: that is the design.
                    assert!(
                        out.status.success() || err.contains("locked by prune"),
                        "prune failed: {err}"
                    );
                }
                runs += 1;
            }
            (runs, killed)
        })
    };

    let hosts: Vec<_> = (0..HOSTS)
        .map(|h| {
            let db = dir.path().join(format!("app-{h}.db"));
            make_sqlite_db(&db, 2);
            let cmd = cmd.clone();
            std::thread::spawn(move || {
                let host = format!("host-{h}");
                let mut ids = Vec::new();
                for round in 0..ROUNDS {
                    let conn = rusqlite::Connection::open(&db).unwrap();
                    insert_events(&conn, 300);
                    // Updates all over the table: most chunks become deltas of the previous
                    // snapshot's, whose bases prune must keep while it forgets that snapshot.
                    conn.execute(
                        "UPDATE events SET kind = upper(kind) WHERE id % 50 = ?1",
                        [round as i64],
                    )
                    .unwrap();
                    drop(conn);
                    let out = ok(cmd(&host)
                        .args(["backup", "sqlite", "--name", "app", "--json"])
                        .arg(&db));
                    let snap: serde_json::Value = serde_json::from_str(&out).unwrap();
                    ids.push(snap["id"].as_str().unwrap().to_string());
                }
                (host, ids)
            })
        })
        .collect();
    let made: BTreeMap<String, Vec<String>> =
        hosts.into_iter().map(|h| h.join().unwrap()).collect();
    done.store(true, Ordering::Relaxed);
    let (runs, killed) = pruner.join().unwrap();
    assert!(runs >= 3 && killed >= 1, "the pruner ran {runs} times, killed {killed}");

    // Let a killed prune's lease expire, then finish the job.
    std::thread::sleep(Duration::from_millis(3500));
    ok(cmd("admin").args(["forget", "--keep-last", "2"]));
    let report: serde_json::Value =
        serde_json::from_str(&ok(cmd("admin").args(["prune", "--grace", "0s", "--json"]))).unwrap();
    assert!(report["waiting"].as_array().unwrap().is_empty(), "a mark is still waiting: {report}");

    let snaps = snapshots_with(repo, env);
    for (host, ids) in &made {
        let mine: Vec<&str> = snaps
            .iter()
            .filter(|s| s["host"] == host.as_str())
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        let expected: Vec<&str> = ids.iter().rev().take(2).rev().map(String::as_str).collect();
        assert_eq!(mine, expected, "{host} lost a snapshot that should be kept");
    }
    let out = ok(cmd("admin").args(["verify", "--all", "--read-data"]));
    assert!(
        out.contains(&format!("{} snapshots checked (structure and data), 0 failed", HOSTS * 2)),
        "{out}"
    );
    // Nothing unreferenced is left once everything settled.
    let again: serde_json::Value =
        serde_json::from_str(&ok(cmd("admin").args(["prune", "--grace", "0s", "--json"]))).unwrap();
    assert_eq!(again["marked"], 0, "{again}");
}

fn snapshots_with(repo: &str, env: &[(&'static str, String)]) -> Vec<serde_json::Value> {
    let mut c = lifeboat(repo);
    for (k, v) in env {
        c.env(k, v);
    }
    serde_json::from_str(&ok(c.args(["snapshots", "--json"]))).unwrap()
}

#[test]
fn hosts_back_up_while_prune_runs_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&dir.path().join("repo").display().to_string(), &[]);
}

#[test]
fn hosts_back_up_while_prune_runs_on_s3() {
    let server = S3Server::start();
    scenario(&server.url("shared"), &server.env());
}

#[test]
fn a_held_lease_is_reported_and_unlock_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    // A prune killed at once: its lease names this host, this boot and a pid that is gone,
    // so the next prune takes it over at once instead of waiting out its TTL.
    let mut child =
        lifeboat(&repo).args(["prune"]).env("LIFEBOAT_LEASE_TTL", "1h").spawn().unwrap();
    let lock_dir = dir.path().join("repo/locks/maintenance");
    // Only whole lease objects count: the folder store writes `NAME#N` first, then renames,
    // so a kill can leave such a partial file behind, which is no lease.
    let leases =
        || tree(&lock_dir).into_keys().filter(|p| !p.to_string_lossy().contains('#')).count();
    while leases() == 0 && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    child.wait().unwrap();
    ok(lifeboat(&repo).args(["prune", "--grace", "0s"]));
    // Another host's lease is respected for its TTL: reported, and cleared by unlock.
    std::fs::create_dir_all(&lock_dir).unwrap();
    let lease = serde_json::json!({"owner": "x", "host": "gone-host", "pid": 4242, "operation": "prune",
        "acquired": "2026-01-01T00:00:00Z", "expires": "2999-01-01T00:00:00Z"});
    std::fs::write(lock_dir.join("00000000000000000099"), lease.to_string()).unwrap();
    let err = fails(lifeboat(&repo).arg("prune"));
    assert!(err.contains("locked by prune") && err.contains("lifeboat unlock"), "{err}");
    let out = ok(lifeboat(&repo).arg("unlock"));
    assert!(out.contains("1 leases removed"), "{out}");
    ok(lifeboat(&repo).args(["prune", "--grace", "0s"]));
}
