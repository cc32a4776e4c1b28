//! The conventions operators expect of a CLI: `--version` with the commit, `-q`, plain
//! progress lines when stderr is not a terminal, completions, man pages, durations as people
//! write them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::process::Command;

use util::*;

#[test]
fn version_names_the_commit_and_both_binaries_say_who_they_are() {
    for bin in [env!("CARGO_BIN_EXE_lifeboat"), env!("CARGO_BIN_EXE_lifeboatd")] {
        let out = Command::new(bin).arg("--version").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // `lifeboat 0.1.0 (0123456789ab)`: the commit in parentheses.
        let (name, rest) = text.trim().split_once(' ').unwrap();
        assert!(bin.ends_with(name), "{text}");
        let commit = rest.split_once(" (").unwrap().1.trim_end_matches(')');
        // Built from a git checkout: its commit; from a tree without git: "unknown".
        let head = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        let want = std::env::var("LIFEBOAT_COMMIT").ok().or(head).unwrap_or("unknown".into());
        assert_eq!(commit, want, "{text}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_lifeboatd")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.starts_with("The lifeboat service"), "{help}");
}

#[test]
fn completions_parse_in_their_shells_and_man_pages_render() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(lifeboat("unused").args(["completions", shell]));
        assert!(script.contains("restore") && script.contains("--where"), "{shell}");
        if shell == "bash" {
            let file = dir.path().join("lifeboat.bash");
            std::fs::write(&file, &script).unwrap();
            let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
            assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
        }
    }
    let daemon = ok(lifeboat("unused").args(["completions", "bash", "--for", "lifeboatd"]));
    assert!(daemon.contains("lifeboatd") && daemon.contains("--check"), "{daemon}");
    let out = dir.path().join("man");
    let listed = ok(lifeboat("unused").args(["man", "--out"]).arg(&out));
    for page in ["lifeboat.1", "lifeboat-restore.1", "lifeboat-backup-sqlite.1", "lifeboatd.1"] {
        assert!(listed.contains(page), "{page} not written: {listed}");
        let rendered = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(out.join(page))
            .env("MANWIDTH", "80")
            .output()
            .expect("this test renders man pages with man (apt-get install man-db)");
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(rendered.status.success() && text.contains("NAME"), "{page}: {text}");
    }
    let restore = std::fs::read_to_string(out.join("lifeboat-restore.1")).unwrap();
    assert!(restore.contains("where"), "backends' restore options are in the page");
}

#[test]
fn quiet_and_non_terminal_progress_lines() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut bytes = vec![0u8; 64 << 20];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes()[7];
    }
    std::fs::write(data.join("big.bin"), &bytes).unwrap();

    // Not a terminal: a start line with the folder's total, lines with rate and time left,
    // an end line.
    let out = lifeboat(&repo)
        .args(["backup", "dir"])
        .arg(&data)
        .env("LIFEBOAT_PROGRESS_INTERVAL", "1ms")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("backup data: started (64.0 MiB)"), "{err}");
    assert!(
        err.lines().any(|l| l.contains(" of 64.0 MiB (") && l.contains("/s")),
        "no progress line with the total and rate: {err}"
    );
    assert!(err.lines().any(|l| l.contains(" in ") && l.contains(" s (")), "{err}");

    // -q: the result on stdout, nothing on stderr.
    let out = lifeboat(&repo).args(["-q", "backup", "dir"]).arg(&data).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("saved"));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "-q printed progress");
}

#[test]
fn durations_read_as_people_write_them() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    for (text, ok_) in [("90min", true), ("1 day", true), ("2h30m", true), ("soon", false)] {
        let mut cmd = lifeboat(&repo);
        cmd.args(["stale", "--max-age", text]);
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(!err.contains("is not a duration"), ok_, "{text}: {err}");
    }
}

#[test]
fn reports_count_in_words_and_say_what_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let db = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)").unwrap();
    drop(conn);
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    let verified = ok(lifeboat(&repo).args(["verify", "--restore"]));
    assert!(
        verified.contains("1 snapshot checked (structure and a restore), 0 failed"),
        "{verified}"
    );
    // A drill writes no heartbeat file unless asked where.
    let work = tempfile::tempdir().unwrap();
    ok(lifeboat(&repo).args(["drill", "--all"]).current_dir(work.path()));
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0, "the drill left files here");
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(&db));
    let forgot = ok(lifeboat(&repo).args(["forget", "--keep-last", "1"]));
    assert!(forgot.contains("1 snapshot removed; "), "{forgot}");
    assert!(forgot.contains("grace period"), "it says when the data goes: {forgot}");
}

#[test]
fn options_read_from_a_variable_also_read_its_file_and_never_show_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(lifeboat(&repo.display().to_string()).args(["init", "--no-encryption"]));
    let file = dir.path().join("repo-url");
    std::fs::write(&file, format!("{}\n", repo.display())).unwrap();
    let bare = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        cmd.env_remove("LIFEBOAT_REPO").env_remove("LIFEBOAT_CONFIG").current_dir(dir.path());
        cmd
    };
    let listed = ok(bare().env("LIFEBOAT_REPO_FILE", &file).args(["snapshots", "--json"]));
    assert_eq!(listed.trim(), "[]", "the repository named in LIFEBOAT_REPO_FILE was not used");
    let secret = dir.path().join("server");
    std::fs::write(&secret, "postgres://u:S3CRET-PW@127.0.0.1:1/postgres\n").unwrap();
    let help = ok(bare().env("LIFEBOAT_DRILL_POSTGRES_FILE", &secret).args(["export", "--help"]));
    assert!(help.contains("LIFEBOAT_DRILL_POSTGRES") && !help.contains("S3CRET"), "{help}");
}
