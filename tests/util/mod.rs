//! Shared helpers for the end-to-end tests: run the real `lifeboat` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use lifeboat_testkit::*;

/// A `lifeboat` command against `repo`, with a clean environment for lifeboat's variables.
pub fn lifeboat(repo: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    cmd.arg("--repo").arg(repo).env_remove("LIFEBOAT_REPO").env("LIFEBOAT_LOG", "warn");
    for var in [
        "LIFEBOAT_PASSWORD",
        "LIFEBOAT_PASSWORD_FILE",
        "LIFEBOAT_PASSWORD_COMMAND",
        "LIFEBOAT_KEY_FILE",
        "LIFEBOAT_CONFIG",
        "LIFEBOAT_QUIET",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs and requires success; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs and requires failure; returns stderr.
pub fn fails(cmd: &mut Command) -> String {
    let out: Output = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "{cmd:?} should have failed\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("error: "), "no one-line error: {stderr}");
    assert!(stderr.contains("hint: "), "no hint: {stderr}");
    stderr
}

/// `snapshots --json` as values.
pub fn snapshots(repo: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&ok(lifeboat(repo).args(["snapshots", "--json"]))).unwrap()
}

/// Every file below `dir` with its size: to prove a command wrote nothing.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), e.metadata().map(|m| m.len()).unwrap_or(0));
            }
        }
    }
    out
}

/// Row counts of every user table, read with rusqlite.
pub fn table_counts(path: &Path) -> BTreeMap<String, u64> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type='table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names
        .into_iter()
        .map(|n| {
            let c = count(&conn, &n);
            (n, c)
        })
        .collect()
}

/// `{table: [add, change, delete, keep]}` of a partial restore's report (`restore --where
/// --json`); PostgreSQL's `public.` schema left off the names.
pub fn per_table(report: &serde_json::Value) -> BTreeMap<String, [u64; 4]> {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let n = |k: &str| t[k].as_u64().unwrap();
            let table = t["table"].as_str().unwrap();
            let table = table.strip_prefix("public.").unwrap_or(table).to_string();
            (table, [n("add"), n("change"), n("delete"), n("keep")])
        })
        .collect()
}

/// A small tmpfs mounted for one test; unmounted when dropped.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "this test needs to mount a small tmpfs (run it as root, or in a container with \
             CAP_SYS_ADMIN) to fill or freeze a real file system"
        );
        SmallDisk { dir }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn remount_read_only(&self) {
        let status = std::process::Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "remounting the tmpfs read-only failed");
    }
}

impl SmallDisk {
    /// Gives the file system `size` (the disk "freed").
    pub fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "resizing the tmpfs failed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}
