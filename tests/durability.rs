//! A backup into a local folder reaches the disk in the order the format's safety argument
//! needs: each object's bytes are fsynced before it is renamed into place, its folder after,
//! and packs are durable before the index file, the index file before the manifest. Checked
//! on the real binary with strace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::path::{Path, PathBuf};

use util::*;

#[derive(Debug)]
enum Event {
    /// fsync/fdatasync of a file or folder.
    Sync(PathBuf),
    /// rename or link of a staged object into place.
    Publish { from: PathBuf, to: PathBuf },
}

/// The quoted strings of a strace line, in order.
fn quoted(line: &str) -> Vec<&str> {
    line.split('"').skip(1).step_by(2).collect()
}

fn parse(trace: &str) -> Vec<Event> {
    let mut events = Vec::new();
    for line in trace.lines().filter(|l| l.trim_end().ends_with("= 0")) {
        let call = line.split_whitespace().find(|w| w.contains('(')).unwrap_or("");
        let name = call.split('(').next().unwrap_or("");
        match name {
            "fsync" | "fdatasync" => {
                let path = line.split_once('<').and_then(|(_, rest)| rest.split_once('>'));
                if let Some((path, _)) = path {
                    events.push(Event::Sync(PathBuf::from(path)));
                }
            }
            "rename" | "renameat" | "renameat2" | "link" | "linkat" => {
                let q = quoted(line);
                if q.len() >= 2 {
                    let (from, to) = (q[q.len() - 2], q[q.len() - 1]);
                    events.push(Event::Publish { from: from.into(), to: to.into() });
                }
            }
            _ => {}
        }
    }
    events
}

#[test]
fn a_backup_reaches_the_disk_in_the_formats_order() {
    let strace = find_program("strace")
        .expect("this test needs strace (apt-get install strace) to watch the backup's fsyncs");
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap().join("repo");
    let repo = root.display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let db = dir.path().join("app.db");
    make_sqlite_db(&db, 2);
    let trace_file = dir.path().join("trace.txt");
    let mut cmd = std::process::Command::new(strace);
    cmd.args(["-f", "-y", "-s", "4096", "-e"])
        .arg("trace=fsync,fdatasync,rename,renameat,renameat2,link,linkat")
        .arg("-o")
        .arg(&trace_file)
        .arg(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["--repo", &repo, "backup", "sqlite"])
        .arg(&db)
        .env_remove("LIFEBOAT_REPO")
        .env("LIFEBOAT_LOG", "warn");
    ok(&mut cmd);
    let events = parse(&std::fs::read_to_string(&trace_file).unwrap());

    let synced = |path: &Path, range: std::ops::Range<usize>| {
        events[range].iter().position(|e| matches!(e, Event::Sync(p) if p == path))
    };
    // For each object: where it was published and where its folder was fsynced after.
    let mut published: Vec<(String, usize, usize)> = Vec::new();
    for (at, event) in events.iter().enumerate() {
        let Event::Publish { from, to } = event else { continue };
        let Ok(key) = to.strip_prefix(&root) else { continue };
        let kind = key.components().next().unwrap().as_os_str().to_string_lossy().to_string();
        if !["data", "index", "snapshots"].contains(&kind.as_str()) {
            continue;
        }
        assert!(
            synced(from, 0..at).is_some(),
            "{} was published before its bytes were fsynced",
            key.display()
        );
        let folder = to.parent().unwrap();
        let after = synced(folder, at..events.len()).unwrap_or_else(|| {
            panic!("the folder of {} was not fsynced after it was published", key.display())
        });
        published.push((kind, at, at + after));
    }
    let of = |kind: &'static str| published.iter().filter(move |(k, _, _)| k == kind);
    assert!(of("data").count() >= 1 && of("index").count() == 1 && of("snapshots").count() == 1);
    let packs_durable = of("data").map(|(_, _, durable)| *durable).max().unwrap();
    let (_, index_at, index_durable) = of("index").next().unwrap().clone();
    let (_, manifest_at, _) = of("snapshots").next().unwrap().clone();
    assert!(packs_durable < index_at, "the index was published before every pack was durable");
    assert!(index_durable < manifest_at, "the manifest was published before the index was durable");
}

/// A folder restore over an existing folder makes the restored tree durable (one `syncfs`)
/// before it swaps it in, and syncs the parent folder after, so a power loss leaves either
/// the old folder or the whole new one.
#[test]
fn a_folder_restore_is_durable_before_its_swap() {
    let strace = find_program("strace")
        .expect("this test needs strace (apt-get install strace) to watch the restore's syncs");
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let repo = base.join("repo").display().to_string();
    let target = base.join("site");
    std::fs::create_dir_all(target.join("pages")).unwrap();
    for i in 0..200 {
        std::fs::write(target.join("pages").join(format!("{i}.html")), format!("page {i}"))
            .unwrap();
    }
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    ok(lifeboat(&repo).args(["backup", "dir"]).arg(&target));
    std::fs::write(target.join("pages/0.html"), "changed").unwrap();
    let trace_file = base.join("trace.txt");
    let mut cmd = std::process::Command::new(strace);
    cmd.args(["-f", "-y", "-s", "4096", "-e"])
        .arg("trace=fsync,fdatasync,syncfs,rename,renameat,renameat2")
        .arg("-o")
        .arg(&trace_file)
        .arg(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["--repo", &repo, "restore", "latest", "--name", "site", "--force", "--to"])
        .arg(&target)
        .env_remove("LIFEBOAT_REPO")
        .env("LIFEBOAT_LOG", "warn");
    ok(&mut cmd);
    assert_eq!(std::fs::read_to_string(target.join("pages/0.html")).unwrap(), "page 0");
    let trace = std::fs::read_to_string(&trace_file).unwrap();
    let lines: Vec<&str> = trace.lines().filter(|l| l.trim_end().ends_with("= 0")).collect();
    let target_text = target.display().to_string();
    let swap = lines
        .iter()
        .position(|l| l.contains("rename") && l.contains(&format!("\"{target_text}\"")))
        .unwrap_or_else(|| panic!("no rename onto {target_text}:\n{trace}"));
    assert!(
        lines[..swap].iter().any(|l| l.contains("syncfs(")),
        "the restored tree was not synced before the swap:\n{trace}"
    );
    let parent = format!("<{}>", base.display());
    assert!(
        lines[swap..].iter().any(|l| l.contains("fsync(") && l.contains(&parent)),
        "the parent folder was not synced after the swap:\n{trace}"
    );
}
