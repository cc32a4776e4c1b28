//! The CLI against a real S3-compatible server (s3s-fs) on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::process::Command;

use util::*;

fn with_env<'a>(cmd: &'a mut Command, server: &S3Server) -> &'a mut Command {
    for (k, v) in server.env() {
        cmd.env(k, v);
    }
    cmd
}

#[test]
fn full_cycle_on_s3_and_a_new_machine_sees_everything() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("auth.db");
    make_sqlite_db(&db, 4);
    let url = server.url("platform/prod");
    ok(with_env(&mut lifeboat(&url), &server).args(["init", "--no-encryption"]));
    ok(with_env(&mut lifeboat(&url), &server).args(["backup", "sqlite"]).arg(&db));
    let second =
        ok(with_env(&mut lifeboat(&url), &server).args(["backup", "sqlite", "--json"]).arg(&db));
    let second: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!(second["stored"], 0, "an unchanged database stored new bytes");

    // "Full server replacement": a fresh process with only the URL and credentials.
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ok(
            with_env(&mut lifeboat(&url), &server).args(["snapshots", "--json"])
        ))
        .unwrap();
    assert_eq!(listed.len(), 2);
    let restored = dir.path().join("restored.db");
    ok(with_env(&mut lifeboat(&url), &server)
        .args(["restore", "latest", "--name", "auth", "--to"])
        .arg(&restored));
    assert_eq!(sqlite3_integrity_check(&restored), "ok");
    assert_eq!(table_counts(&restored), table_counts(&db));
    ok(with_env(&mut lifeboat(&url), &server).args(["verify", "--read-data"]));
}

#[test]
fn wrong_credentials_are_refused_clearly() {
    let server = S3Server::start();
    let url = server.url("x");
    ok(with_env(&mut lifeboat(&url), &server).args(["init", "--no-encryption"]));
    let mut cmd = lifeboat(&url);
    with_env(&mut cmd, &server).env("AWS_SECRET_ACCESS_KEY", "wrong-secret");
    let err = fails(cmd.arg("snapshots"));
    assert!(err.contains("AWS_SECRET_ACCESS_KEY") || err.contains("refused"), "{err}");
}

#[test]
fn credentials_come_from_files_as_well_as_variables() {
    let server = S3Server::start();
    let url = server.url("files");
    ok(with_env(&mut lifeboat(&url), &server).args(["init", "--no-encryption"]));
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = lifeboat(&url);
    with_env(&mut cmd, &server);
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        let (_, value) = server.env().into_iter().find(|(k, _)| *k == name).unwrap();
        let file = dir.path().join(name);
        std::fs::write(&file, format!("{value}\n")).unwrap();
        cmd.env_remove(name).env(format!("{name}_FILE"), &file);
    }
    let listed = ok(cmd.args(["snapshots", "--json"]));
    assert_eq!(listed.trim(), "[]");
    // A file that cannot be read is named.
    let mut cmd = lifeboat(&url);
    with_env(&mut cmd, &server)
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SECRET_ACCESS_KEY_FILE", dir.path().join("missing"));
    let err = fails(cmd.arg("snapshots"));
    assert!(err.contains("AWS_SECRET_ACCESS_KEY_FILE"), "{err}");
}

#[test]
fn a_configuration_file_gives_the_repository_and_its_s3_settings() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let env: std::collections::BTreeMap<&str, String> = server.env().into_iter().collect();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{}\n", env["AWS_SECRET_ACCESS_KEY"])).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "repository = \"{}\"\n[s3]\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
             access_key_id = \"{}\"\nsecret_access_key_file = \"{}\"\n",
            server.url("from-config"),
            env["AWS_ENDPOINT"],
            env["AWS_ACCESS_KEY_ID"],
            secret.display()
        ),
    )
    .unwrap();
    // No --repo, no AWS_* variables: everything from the file.
    let bare = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        for var in ["LIFEBOAT_REPO", "LIFEBOAT_PASSWORD", "LIFEBOAT_PASSWORD_FILE"] {
            cmd.env_remove(var);
        }
        for (k, _) in server.env() {
            cmd.env_remove(k);
        }
        cmd.env("LIFEBOAT_CONFIG", &config).env("LIFEBOAT_LOG", "warn");
        cmd
    };
    ok(bare().args(["init", "--no-encryption"]));
    let db = dir.path().join("app.db");
    make_sqlite_db(&db, 1);
    ok(bare().args(["backup", "sqlite"]).arg(&db));
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ok(bare().args(["snapshots", "--json"]))).unwrap();
    assert_eq!(listed.len(), 1);

    // `config show` says where each setting comes from, and never prints the secret.
    let shown = ok(bare().args(["config", "show", "--json"]));
    assert!(!shown.contains(&env["AWS_SECRET_ACCESS_KEY"]), "{shown}");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let source = |name: &str| -> String {
        shown["settings"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["source"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(source("repository"), "configuration file", "{shown}");
    assert_eq!(source("s3 secret access key"), "configuration file", "{shown}");
    assert_eq!(source("log format"), "default", "{shown}");
    let flagged = ok(bare().args(["--repo", "/elsewhere", "config", "show", "--json"]));
    assert!(flagged.contains("\"flag\""), "a flag wins over the file: {flagged}");
    let from_env = ok(bare().env("LIFEBOAT_REPO", "/env").args(["config", "show"]));
    assert!(from_env.contains("environment (LIFEBOAT_REPO)"), "{from_env}");

    // A broken file is named, and nothing runs.
    std::fs::write(&config, "repository = 3\n").unwrap();
    let err = fails(bare().arg("snapshots"));
    assert!(err.contains("config.toml") && err.contains("not valid"), "{err}");
}

#[test]
fn a_request_the_server_refuses_as_malformed_is_not_retried() {
    let server = S3Server::start();
    // Bucket names need 3 characters at least: the server answers 400 InvalidBucketName.
    let url = "s3://ab/x";
    let mut cmd = lifeboat(url);
    with_env(&mut cmd, &server).env("LIFEBOAT_LOG", "warn");
    let out = cmd.args(["init", "--no-encryption"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("400") || stderr.contains("InvalidBucketName"), "{stderr}");
    assert!(!stderr.contains("retrying"), "a 400 answer was retried:\n{stderr}");
}
