//! Encrypted repositories end to end (#15): a SQLite database and a folder holding a marker
//! leave no trace of it in the store; damage is named by `verify --read-data`; a wrong
//! password writes nothing; keys are added, removed and changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::path::Path;

use util::*;

const MARKER: &str = "LIFEBOAT-CLI-MARKER-51d0";

/// Every file under `dir` with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let key = path.strip_prefix(dir).unwrap().display().to_string();
                out.push((key, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A SQLite database and a folder, both holding the marker.
fn sources(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let db = dir.join("app.db");
    make_sqlite_db(&db, 2);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE secrets (v TEXT); INSERT INTO secrets VALUES ('{MARKER} tenant key');"
    ))
    .unwrap();
    drop(conn);
    let folder = dir.join("folder");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    // Random bytes stay as they are through zstd, so a plaintext pack holds the marker.
    let mut random = pseudo_random(300_000, 9);
    for at in (0..random.len() - MARKER.len()).step_by(50_000) {
        random[at..at + MARKER.len()].copy_from_slice(MARKER.as_bytes());
    }
    std::fs::write(folder.join("sub/blob.bin"), random).unwrap();
    std::fs::write(folder.join("sub/notes.txt"), format!("{MARKER}\n").repeat(1000)).unwrap();
    std::fs::write(folder.join(format!("{MARKER}.txt")), b"named after the marker").unwrap();
    (db, folder)
}

#[test]
fn an_encrypted_repository_holds_nothing_readable_and_keys_change() {
    let dir = tempfile::tempdir().unwrap();
    let (db, folder) = sources(dir.path());
    let pw1 = dir.path().join("pw1");
    std::fs::write(&pw1, "first password\n").unwrap();
    let pw2 = dir.path().join("pw2");
    std::fs::write(&pw2, "second password\n").unwrap();
    let with = |repo: &str, pw: &Path| {
        let mut cmd = lifeboat(repo);
        cmd.arg("--password-file").arg(pw);
        cmd
    };

    // The same backups into a plaintext repository: what would leak.
    let plain = dir.path().join("plain").display().to_string();
    ok(lifeboat(&plain).arg("init"));
    ok(lifeboat(&plain).args(["backup", "sqlite"]).arg(&db));
    ok(lifeboat(&plain).args(["backup", "dir"]).arg(&folder));
    assert!(files(Path::new(&plain)).iter().any(|(_, b)| contains(b, MARKER.as_bytes())));
    let digests: Vec<String> =
        snapshots(&plain).iter().map(|s| s["sha256"].as_str().unwrap().to_string()).collect();
    assert_eq!(digests.len(), 2);

    let repo = dir.path().join("repo").display().to_string();
    let err = fails(lifeboat(&repo).args(["init", "--encrypt"]));
    assert!(err.contains("needs a password"), "{err}");
    ok(with(&repo, &pw1).args(["init", "--encrypt"]));
    ok(with(&repo, &pw1).args(["backup", "sqlite"]).arg(&db));
    ok(with(&repo, &pw1).args(["backup", "dir"]).arg(&folder));
    for (key, body) in files(Path::new(&repo)) {
        assert!(!contains(body.as_slice(), MARKER.as_bytes()), "{key} holds the marker");
        assert!(!key.contains(MARKER), "{key}");
        assert!(!contains(&body, b"app.db"), "{key} holds the snapshot's name");
        for digest in &digests {
            assert!(!contains(&body, digest.as_bytes()), "{key} holds a stream's SHA-256");
            assert!(!contains(&body, &hex_bytes(digest)), "{key} holds a stream's SHA-256");
        }
    }

    // No password, a wrong one: one clear line each, and nothing written.
    let before = tree(Path::new(&repo));
    let err = fails(lifeboat(&repo).arg("snapshots"));
    assert!(err.contains("is encrypted: give a password"), "{err}");
    assert!(err.contains("LIFEBOAT_PASSWORD"), "{err}");
    let err = fails(with(&repo, &pw2).args(["backup", "dir"]).arg(&folder));
    assert!(err.contains("wrong password"), "{err}");
    assert_eq!(tree(Path::new(&repo)), before, "a wrong password wrote something");

    // LIFEBOAT_PASSWORD and --password-command work as well as a file.
    ok(lifeboat(&repo).env("LIFEBOAT_PASSWORD", "first password").args(["verify", "--all"]));
    ok(lifeboat(&repo).arg("--password-command").arg(format!("cat {}", pw1.display())).args([
        "verify",
        "--all",
        "--read-data",
    ]));

    // A second key; the first removed; restore with the new one.
    let added = ok(with(&repo, &pw1).args(["key", "add", "--new-password-file"]).arg(&pw2));
    assert!(added.starts_with("added key "), "{added}");
    let list = ok(with(&repo, &pw1).args(["key", "list"]));
    let first = list.lines().find(|l| l.starts_with('*')).unwrap().split_whitespace().nth(1);
    let first = first.unwrap().to_string();
    let err = fails(with(&repo, &pw2).args(["key", "remove", "nonexistent"]));
    assert!(err.contains("0 keys match"), "{err}");
    ok(with(&repo, &pw2).args(["key", "remove", &first]));
    assert!(fails(with(&repo, &pw1).arg("snapshots")).contains("wrong password"));
    let restored = dir.path().join("restored.db");
    ok(with(&repo, &pw2).args(["restore", "latest", "--name", "app", "--to"]).arg(&restored));
    assert_eq!(table_counts(&restored), table_counts(&db));
    let out = dir.path().join("out");
    ok(with(&repo, &pw2)
        .args(["restore", "latest", "--name", "folder", "--to"])
        .arg(format!("dir:{}", out.display())));
    assert_eq!(files(&out), files(&folder), "the folder restored with the new key");
    let err = fails(with(&repo, &pw2).args(["key", "remove", added[10..].trim()]));
    assert!(err.contains("last key"), "{err}");

    // One flipped byte in any pack is named by verify --read-data.
    let packs: Vec<String> = files(Path::new(&repo))
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("data/"))
        .collect();
    assert!(!packs.is_empty());
    for key in packs {
        let path = Path::new(&repo).join(&key);
        let original = std::fs::read(&path).unwrap();
        let mut damaged = original.clone();
        damaged[40] ^= 0x80;
        std::fs::write(&path, &damaged).unwrap();
        let out = with(&repo, &pw2).args(["verify", "--all", "--read-data"]).output().unwrap();
        assert!(!out.status.success(), "flipped byte in {key} not found");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let id = key.rsplit('/').next().unwrap();
        assert!(all.contains(id), "verify does not name {key}: {all}");
        std::fs::write(&path, &original).unwrap();
    }
    ok(with(&repo, &pw2).args(["verify", "--all", "--read-data"]));
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// The config is not authenticated: someone who can write to the store could switch an
/// encrypted repository to plaintext. A client that was given a password refuses such a
/// repository instead of writing to it in the clear, and `init` with a password but without
/// `--encrypt` is refused rather than guessed.
#[test]
fn a_password_never_writes_to_a_plaintext_repository() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = sources(dir.path());
    let (encrypted, plain) = (dir.path().join("enc"), dir.path().join("plain"));
    let (encrypted_url, plain_url) = (encrypted.display().to_string(), plain.display().to_string());
    let err = fails(lifeboat(&plain_url).env("LIFEBOAT_PASSWORD", "pw").arg("init"));
    assert!(err.contains("--encrypt"), "{err}");
    ok(lifeboat(&plain_url).arg("init"));
    ok(lifeboat(&encrypted_url).env("LIFEBOAT_PASSWORD", "pw").args(["init", "--encrypt"]));
    ok(lifeboat(&encrypted_url).env("LIFEBOAT_PASSWORD", "pw").args(["backup", "sqlite"]).arg(&db));

    // The attack: the encrypted repository's config replaced by a plaintext one.
    std::fs::copy(plain.join("config"), encrypted.join("config")).unwrap();
    let before = tree(&encrypted);
    let err = fails(
        lifeboat(&encrypted_url).env("LIFEBOAT_PASSWORD", "pw").args(["backup", "sqlite"]).arg(&db),
    );
    // The store sees key slots beside a plaintext config and refuses it, password or not.
    assert!(err.contains("config was changed in the store"), "{err}");
    assert_eq!(tree(&encrypted), before, "something was written in the clear");
    // The same refusal for a repository that simply is plaintext, with a password set.
    let err = fails(lifeboat(&plain_url).env("LIFEBOAT_PASSWORD", "pw").arg("snapshots"));
    assert!(err.contains("not encrypted"), "{err}");
    ok(lifeboat(&plain_url).arg("snapshots"));
}
