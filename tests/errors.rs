//! Bad input ends in one clear line, a hint, a non-zero exit, and nothing written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use util::*;

struct Fixture {
    dir: tempfile::TempDir,
    repo: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    make_sqlite_db(&dir.path().join("good.db"), 1);
    ok(lifeboat(&repo).args(["backup", "sqlite"]).arg(dir.path().join("good.db")));
    Fixture { dir, repo }
}

/// Runs a failing command and proves the repository did not change.
fn fails_cleanly(f: &Fixture, args: &[&str]) -> String {
    let before = tree(f.dir.path());
    let err = fails(lifeboat(&f.repo).args(args));
    assert_eq!(tree(f.dir.path()), before, "`lifeboat {}` wrote something", args.join(" "));
    err
}

#[test]
fn missing_database_file() {
    let f = fixture();
    let missing = f.dir.path().join("nope.db");
    let err = fails_cleanly(&f, &["backup", "sqlite", missing.to_str().unwrap()]);
    assert!(err.contains("does not exist") && err.contains("nope.db"), "{err}");
}

#[test]
fn file_that_is_not_sqlite() {
    let f = fixture();
    let bogus = f.dir.path().join("notes.txt");
    std::fs::write(&bogus, "this is not a database, just some text that is long enough").unwrap();
    let err = fails_cleanly(&f, &["backup", "sqlite", bogus.to_str().unwrap()]);
    assert!(err.contains("not a SQLite database"), "{err}");
    let err = fails_cleanly(&f, &["backup", "sqlite", f.dir.path().to_str().unwrap()]);
    assert!(err.contains("not a SQLite database"), "{err}");
}

#[test]
fn unknown_snapshot() {
    let f = fixture();
    let target = f.dir.path().join("out.db");
    let err = fails_cleanly(&f, &["restore", "0123abcd", "--to", target.to_str().unwrap()]);
    assert!(err.contains("snapshot 0123abcd not found"), "{err}");
    let err = fails_cleanly(
        &f,
        &["restore", "latest", "--name", "other", "--to", target.to_str().unwrap()],
    );
    assert!(err.contains("not found"), "{err}");
    let err = fails_cleanly(&f, &["verify", &"f".repeat(64)]);
    assert!(err.contains("not found"), "{err}");
    let err = fails_cleanly(&f, &["cat", "zzzz"]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn unknown_url_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let before = tree(dir.path());
    let err = fails(lifeboat("ftp://example/backups").current_dir(dir.path()).arg("snapshots"));
    assert!(err.contains("unknown repository URL scheme"), "{err}");
    let err = fails(
        lifeboat("ftp://example/backups").current_dir(dir.path()).args(["init", "--no-encryption"]),
    );
    assert!(err.contains("ftp://"), "{err}");
    assert_eq!(tree(dir.path()), before);
}

#[test]
fn repository_never_initialised() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("not-a-repo");
    make_sqlite_db(&dir.path().join("a.db"), 1);
    let before = tree(dir.path());
    let err = fails(
        lifeboat(repo.to_str().unwrap()).args(["backup", "sqlite"]).arg(dir.path().join("a.db")),
    );
    assert!(err.contains("no lifeboat repository") && err.contains("lifeboat init"), "{err}");
    let err = fails(lifeboat(repo.to_str().unwrap()).arg("snapshots"));
    assert!(err.contains("no lifeboat repository"), "{err}");
    assert_eq!(tree(dir.path()), before);
    assert!(!repo.exists());
    // An existing but empty folder is not a repository either.
    std::fs::create_dir(&repo).unwrap();
    let err = fails(lifeboat(repo.to_str().unwrap()).arg("snapshots"));
    assert!(err.contains("no lifeboat repository"), "{err}");
}

#[test]
fn init_twice() {
    let f = fixture();
    let err = fails_cleanly(&f, &["init", "--no-encryption"]);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn corrupted_pack_is_named_and_restore_refuses() {
    let f = fixture();
    let data = std::path::Path::new(&f.repo).join("data");
    let (pack, _) = tree(&data).into_iter().next().unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&pack, bytes).unwrap();
    let err = fails(lifeboat(&f.repo).args(["verify", "--all", "--read-data"]));
    assert!(
        err.contains("verification of") && err.contains("is corrupt") && err.contains("data/"),
        "{err}"
    );
    let target = f.dir.path().join("restored.db");
    let err = fails(lifeboat(&f.repo).args(["restore", "latest", "--to"]).arg(&target));
    assert!(err.contains("corrupt"), "{err}");
    assert!(!target.exists(), "a failed restore left a target behind");
    let leftovers: Vec<_> = tree(f.dir.path())
        .into_keys()
        .filter(|p| p.to_string_lossy().contains("lifeboat-restore"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Every variable through which object_store finds AWS credentials or endpoints.
const AWS_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_SKIP_SIGNATURE",
    "AWS_ENDPOINT",
    "AWS_PROFILE",
];

#[test]
fn s3_without_credentials_says_so_instead_of_probing_instance_metadata() {
    let mut cmd = lifeboat("s3://backups/platform");
    for var in AWS_VARIABLES {
        cmd.env_remove(var);
    }
    let err = fails(cmd.env("AWS_REGION", "us-east-1").arg("snapshots"));
    assert!(err.contains("no S3 credentials") && err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    assert!(err.contains("AWS_EC2_METADATA_DISABLED=false"), "{err}");
}

#[test]
fn a_refused_port_is_retried_by_lifeboat_alone() {
    let mut cmd = lifeboat("s3://backups/platform");
    for var in AWS_VARIABLES {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ENDPOINT", format!("http://127.0.0.1:{}", free_port()))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s");
    let err = fails(cmd.arg("snapshots"));
    // object_store's own retry loop says "after N retries" in its error; lifeboat's loop
    // logs one warning per attempt.
    assert!(!err.contains("retries, max_retries"), "object_store retried too: {err}");
    assert_eq!(err.matches("retrying in").count(), 4, "{err}");
    assert!(err.contains("reachable"), "{err}");
}

#[test]
fn a_full_or_read_only_disk_fails_at_once_with_a_disk_hint() {
    let disk = SmallDisk::mount("1m");
    let repo = disk.path().join("repo").display().to_string();
    ok(lifeboat(&repo).args(["init", "--no-encryption"]));
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("noise.bin"), pseudo_random(3 << 20, 12)).unwrap();
    let err = fails(lifeboat(&repo).args(["backup", "dir"]).arg(folder.path()));
    assert!(err.contains("no space left"), "{err}");
    assert!(err.contains("free space") && !err.contains("reachable"), "{err}");
    assert!(!err.contains("retrying"), "a full disk was retried: {err}");
    assert!(snapshots(&repo).is_empty(), "a snapshot became visible");

    disk.remount_read_only();
    let small = tempfile::tempdir().unwrap();
    std::fs::write(small.path().join("a.txt"), "a few bytes").unwrap();
    let err = fails(lifeboat(&repo).args(["backup", "dir"]).arg(small.path()));
    assert!(err.contains("read-only") && !err.contains("reachable"), "{err}");
    assert!(!err.contains("retrying"), "a read-only disk was retried: {err}");
}
