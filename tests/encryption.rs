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
    ok(lifeboat(&plain).args(["init", "--no-encryption"]));
    ok(lifeboat(&plain).args(["backup", "sqlite"]).arg(&db));
    ok(lifeboat(&plain).args(["backup", "dir"]).arg(&folder));
    assert!(files(Path::new(&plain)).iter().any(|(_, b)| contains(b, MARKER.as_bytes())));
    let digests: Vec<String> =
        snapshots(&plain).iter().map(|s| s["sha256"].as_str().unwrap().to_string()).collect();
    assert_eq!(digests.len(), 2);

    let repo = dir.path().join("repo").display().to_string();
    let err = fails(lifeboat(&repo).args(["init", "--encrypt"]));
    assert!(err.contains("no password was given"), "{err}");
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
/// repository instead of writing to it in the clear, and `init --no-encryption` with a
/// password is refused rather than guessed.
#[test]
fn a_password_never_writes_to_a_plaintext_repository() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = sources(dir.path());
    let (encrypted, plain) = (dir.path().join("enc"), dir.path().join("plain"));
    let (encrypted_url, plain_url) = (encrypted.display().to_string(), plain.display().to_string());
    let err = fails(
        lifeboat(&plain_url).env("LIFEBOAT_PASSWORD", "pw").args(["init", "--no-encryption"]),
    );
    assert!(err.contains("--no-encryption was given together with a password"), "{err}");
    assert!(!plain.join("config").exists());
    ok(lifeboat(&plain_url).args(["init", "--no-encryption"]));
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

/// The repository's `config` object as JSON.
fn config_of(repo: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(repo.join("config")).unwrap()).unwrap()
}

/// `init` makes an encrypted repository unless told `--no-encryption`; the password comes
/// from any source (here `LIFEBOAT_PASSWORD_FILE`), and `--encrypt` is still accepted.
#[test]
fn init_encrypts_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "default password\n").unwrap();
    let repo = dir.path().join("repo");
    let url = repo.display().to_string();
    let out = ok(lifeboat(&url).env("LIFEBOAT_PASSWORD_FILE", &pw).arg("init"));
    assert!(out.starts_with("created encrypted lifeboat repository"), "{out}");
    assert_eq!(config_of(&repo)["encryption"], "xchacha20-poly1305");
    let err = fails(lifeboat(&url).arg("snapshots"));
    assert!(err.contains("is encrypted"), "{err}");
    ok(lifeboat(&url).env("LIFEBOAT_PASSWORD_FILE", &pw).arg("snapshots"));

    let old = dir.path().join("old-script");
    ok(lifeboat(&old.display().to_string())
        .env("LIFEBOAT_PASSWORD_FILE", &pw)
        .args(["init", "--encrypt"]));
    assert_eq!(config_of(&old)["encryption"], "xchacha20-poly1305");

    let plain = dir.path().join("plain");
    let out = ok(lifeboat(&plain.display().to_string()).args(["init", "--no-encryption"]));
    assert!(out.starts_with("created plaintext lifeboat repository"), "{out}");
    assert_eq!(config_of(&plain)["encryption"], "none");
    ok(lifeboat(&plain.display().to_string()).arg("snapshots"));
}

/// `init` makes format 2 (BLAKE3 chunk ids); `--chunk-ids sha256` makes format 1, which
/// backs up and restores the same; an unknown hash is refused and creates nothing.
#[test]
fn init_chooses_the_chunk_id_hash() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(
        &pw,
        "format password
",
    )
    .unwrap();
    let db = dir.path().join("app.db");
    make_sqlite_db(&db, 3);
    for (hash, version) in [(None, 2), (Some("sha256"), 1), (Some("blake3"), 2)] {
        let named = hash.unwrap_or("default");
        let repo = dir.path().join(format!("repo-{named}"));
        let url = repo.display().to_string();
        let mut init = lifeboat(&url);
        init.env("LIFEBOAT_PASSWORD_FILE", &pw).arg("init");
        if let Some(hash) = hash {
            init.args(["--chunk-ids", hash]);
        }
        let out = ok(&mut init);
        let expected = hash.unwrap_or("blake3");
        assert!(out.contains(&format!("(format {version}, {expected} chunk ids)")), "{out}");
        assert_eq!(config_of(&repo)["version"], version);
        assert_eq!(config_of(&repo)["chunk_ids"], expected);
        let with_pw = || {
            let mut cmd = lifeboat(&url);
            cmd.env("LIFEBOAT_PASSWORD_FILE", &pw);
            cmd
        };
        ok(with_pw().args(["backup", "sqlite", db.to_str().unwrap()]));
        let back = dir.path().join(format!("back-{named}.db"));
        ok(with_pw().args(["restore", "latest", "--name", "app", "--to", back.to_str().unwrap()]));
        assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&db).unwrap());
        ok(with_pw().args(["verify", "--all", "--read-data"]));
    }
    let repo = dir.path().join("md5");
    // A usage error: clap's line names the value and the choices (and --help), exit 2.
    let out = lifeboat(&repo.display().to_string())
        .env("LIFEBOAT_PASSWORD_FILE", &pw)
        .args(["init", "--chunk-ids", "md5"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("'md5'") && err.contains("(sha256 or blake3)"), "{err}");
    assert!(!repo.exists(), "a refused init created {}", repo.display());
}

/// Without a password and without a terminal to ask on (a script, cron, CI), `init` fails
/// with one line naming every way to give one, and creates nothing.
#[test]
fn init_without_a_password_off_a_terminal_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let err = fails(lifeboat(&repo.display().to_string()).arg("init"));
    assert!(err.contains("no password was given"), "{err}");
    for way in [
        "LIFEBOAT_PASSWORD_FILE",
        "--password-file",
        "--password-command",
        "LIFEBOAT_PASSWORD",
        "--no-encryption",
    ] {
        assert!(err.contains(way), "the hint does not name {way}: {err}");
    }
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(!repo.join("config").exists());
    assert!(tree(&repo).is_empty(), "init wrote {:?}", tree(&repo));
    // An empty password is no password.
    let err = fails(lifeboat(&repo.display().to_string()).env("LIFEBOAT_PASSWORD", "").arg("init"));
    assert!(err.contains("empty"), "{err}");
    assert!(tree(&repo).is_empty());
}

/// Runs `args` under a pseudo-terminal (`script`, from bsdutils), typing each of `answers` once
/// the prompt before it has appeared; returns the exit status and everything shown.
fn on_terminal(args: &[&str], answers: &[(&str, &str)]) -> (bool, String) {
    use std::io::{Read, Write};
    let mut line = env!("CARGO_BIN_EXE_lifeboat").to_string();
    for arg in args {
        line.push_str(&format!(" '{arg}'"));
    }
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("LIFEBOAT_PASSWORD")
        .env_remove("LIFEBOAT_PASSWORD_FILE")
        .env_remove("LIFEBOAT_PASSWORD_COMMAND")
        .env_remove("LIFEBOAT_REPO")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut shown = String::new();
    for (prompt, answer) in answers {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !shown.contains(prompt) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let chunk = rx.recv_timeout(left).unwrap_or_else(|_| panic!("no {prompt:?}: {shown}"));
            shown.push_str(&String::from_utf8_lossy(&chunk));
        }
        shown = shown.replacen(prompt, "", 1);
        // The prompt is written just before echo is turned off: typing at once could be
        // echoed by the terminal itself.
        std::thread::sleep(std::time::Duration::from_millis(300));
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    drop(stdin);
    let status = child.wait().unwrap();
    // Everything shown up to the end (the reader stops at end of file).
    shown.extend(rx.iter().map(|c| String::from_utf8_lossy(&c).into_owned()));
    (status.success(), shown)
}

/// On a terminal `init` asks for the password twice without echoing it, refuses a mismatch,
/// and other commands ask once.
#[test]
fn on_a_terminal_the_password_is_asked_for() {
    assert!(
        std::process::Command::new("script").arg("--version").output().is_ok(),
        "this test needs `script` (Debian package bsdutils; `bash scripts/test.sh` installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let url = repo.display().to_string();
    let (first, again) = ("new repository password: ", "the same password again: ");
    let (ok, shown) =
        on_terminal(&["--repo", &url, "init"], &[(first, "typed secret"), (again, "typed other")]);
    assert!(!ok && shown.contains("differ"), "{shown}");
    assert!(!repo.join("config").exists());
    let (ok, shown) =
        on_terminal(&["--repo", &url, "init"], &[(first, "typed secret"), (again, "typed secret")]);
    assert!(ok, "{shown}");
    assert!(!shown.contains("typed secret"), "the password was echoed: {shown}");
    assert_eq!(config_of(&repo)["encryption"], "xchacha20-poly1305");
    let ask = "repository password: ";
    let (ok, shown) = on_terminal(&["--repo", &url, "snapshots"], &[(ask, "typed secret")]);
    assert!(ok && shown.contains("0 snapshots"), "{shown}");
    let (ok, shown) = on_terminal(&["--repo", &url, "snapshots"], &[(ask, "wrong")]);
    assert!(!ok && shown.contains("wrong password"), "{shown}");
    // A repository already there, or a URL that cannot be used, is said before any password
    // is asked for.
    let (ok, shown) = on_terminal(&["--repo", &url, "init"], &[]);
    assert!(!ok && shown.contains("already") && !shown.contains(first), "{shown}");
    let (ok, shown) = on_terminal(&["--repo", "s3://", "init"], &[]);
    assert!(!ok && !shown.contains(first), "{shown}");
}

/// A write-only key file (#15 item 4): the host backs up with it, deduplicating, and can read,
/// list, restore, forget, prune and unlock nothing; a full key restores what it wrote.
#[test]
fn a_write_only_key_file_backs_up_and_can_do_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = sources(dir.path());
    let repo = dir.path().join("repo");
    let url = repo.display().to_string();
    let with_password = || {
        let mut cmd = lifeboat(&url);
        cmd.env("LIFEBOAT_PASSWORD", "owner's password");
        cmd
    };
    ok(with_password().arg("init"));
    ok(with_password().args(["backup", "sqlite"]).arg(&db).args(["--name", "app"]));
    let key = dir.path().join("host.key");
    let out = ok(with_password().args(["key", "add", "--write-only", "--out"]).arg(&key));
    assert!(out.contains("write-only"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is its owner's only");
    }
    let err = fails(with_password().args(["key", "add", "--out"]).arg(&key));
    assert!(err.contains("already exists"), "{err}");
    let listed = ok(with_password().args(["key", "list"]));
    assert!(listed.contains("write-only") && listed.contains("key file"), "{listed}");

    // The host: a key file and no password, by flag and by variable.
    let host = || {
        let mut cmd = lifeboat(&url);
        cmd.arg("--key-file").arg(&key);
        cmd
    };
    ok(host().args(["backup", "sqlite"]).arg(&db).args(["--name", "host-app"]));
    ok(lifeboat(&url)
        .env("LIFEBOAT_KEY_FILE", &key)
        .args(["backup", "sqlite"])
        .arg(&db)
        .args(["--name", "host-app"]));

    // Everything else is refused with one line, and leaves the repository as it was.
    let before = tree(&repo);
    let restored = dir.path().join("restored.db");
    let attempts: Vec<Vec<String>> = [
        vec!["snapshots"],
        vec!["restore", "latest", "--name", "host-app", "--to", restored.to_str().unwrap()],
        vec!["cat", "latest", "--name", "app"],
        vec!["ls", "latest", "--name", "app"],
        vec!["verify", "--all"],
        vec!["forget", "--keep-last", "1"],
        vec!["prune"],
        vec!["unlock"],
        vec!["replicate", "sqlite", db.to_str().unwrap()],
        vec!["key", "add", "--out", dir.path().join("more.key").to_str().unwrap()],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(String::from).collect())
    .collect();
    for args in attempts {
        let err = fails(host().args(&args));
        assert!(err.contains("write-only"), "{args:?}: {err}");
        assert!(err.lines().next().is_some_and(|l| l.starts_with("error:")), "{args:?}: {err}");
        assert!(!restored.exists(), "{args:?} wrote a restore");
    }
    assert!(!dir.path().join("more.key").exists());
    // A file that is not a key file is named as such.
    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, b"not a key\n").unwrap();
    let err =
        fails(lifeboat(&url).arg("--key-file").arg(&garbage).args(["backup", "sqlite"]).arg(&db));
    assert!(
        err.contains("not a lifeboat key file") && err.contains("hint: give the file"),
        "{err}"
    );
    assert_eq!(tree(&repo), before, "a refused command changed the repository");

    // The owner reads what the host wrote; the host's second backup stored nothing new.
    let snaps: Vec<serde_json::Value> =
        serde_json::from_str(&ok(with_password().args(["snapshots", "--json"]))).unwrap();
    let host_snaps: Vec<&serde_json::Value> =
        snaps.iter().filter(|s| s["name"] == "host-app").collect();
    assert_eq!(host_snaps.len(), 2, "{snaps:?}");
    assert_eq!(host_snaps[1]["stored"], 0, "{:?}", host_snaps[1]);
    ok(with_password().args(["restore", "latest", "--name", "host-app", "--to"]).arg(&restored));
    assert_eq!(table_counts(&restored), table_counts(&db));
    ok(with_password().args(["verify", "--all", "--read-data"]));
}
