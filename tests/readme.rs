//! Every `lifeboat` and `lifeboatd` command line shown in the README and in docs/ is one the
//! real parser accepts: options that exist, values they take, commands that are there. And
//! the README's tour runs, in order, against a scratch repository, SQLite databases and a
//! folder (its PostgreSQL, container and WAL lines have tests of their own).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The command lines in the `sh` blocks of `text`, continuation lines joined.
fn shell_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut inside = false;
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            inside = trimmed == "```sh" || trimmed == "```bash";
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(start) = trimmed.strip_suffix('\\') {
            pending.push_str(start);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        lines.push(std::mem::take(&mut pending));
    }
    lines
}

/// `line` as the words a shell would pass, if it runs `lifeboat` or `lifeboatd`: variable
/// assignments before it dropped, cut at a comment, redirection, pipe or `;`, optional parts
/// (`[--json]`) left out and the first of alternatives (`list|add`) taken.
fn words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut bracket = 0;
    let mut chars = line.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) if bracket > 0 => {}
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = bracket == 0;
            }
            (None, '$') if bracket == 0 && chars.peek() == Some(&'(') => {
                // A command substitution stays inside the word.
                current.push(c);
                let mut depth = 0;
                for x in chars.by_ref() {
                    current.push(x);
                    match x {
                        '(' => depth += 1,
                        ')' if depth == 1 => break,
                        ')' => depth -= 1,
                        _ => {}
                    }
                }
            }
            (None, '[') if current.is_empty() => bracket += 1,
            (None, ']') if bracket > 0 => bracket -= 1,
            (None, _) if bracket > 0 => {}
            (None, '#') if current.is_empty() => break,
            (None, ';' | '>' | '<') => break,
            (None, '|') if current.is_empty() => break,
            (None, '&') if chars.peek() == Some(&'&') => break,
            (None, c) if c.is_whitespace() => {
                if !current.is_empty() || any {
                    words.push(std::mem::take(&mut current));
                }
                any = false;
            }
            (None, c) => current.push(c),
        }
    }
    if !current.is_empty() || any {
        words.push(current);
    }
    while words.first().is_some_and(|w| w.contains('=') && !w.starts_with('-')) {
        words.remove(0);
    }
    if !matches!(words.first().map(String::as_str), Some("lifeboat" | "lifeboatd")) {
        return None;
    }
    Some(
        words
            .into_iter()
            .filter(|w| w != "..." && w != "…")
            .map(|w| match w.split_once('|') {
                Some((first, _)) if !w.starts_with('-') || !w.contains('=') => first.to_string(),
                _ => w,
            })
            .collect(),
    )
}

#[test]
fn every_documented_command_line_parses() {
    let mut files = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    let registry = lifeboat::backends();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for line in shell_lines(&text) {
            let Some(words) = words(&line) else { continue };
            let parsed = if words[0] == "lifeboatd" {
                lifeboat_cli::daemon_command().try_get_matches_from(&words).map(drop)
            } else {
                lifeboat_cli::command(&registry).try_get_matches_from(&words).map(drop)
            };
            checked += 1;
            if let Err(e) = parsed {
                use clap::error::ErrorKind;
                if !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                    let name = file.file_name().unwrap().to_string_lossy();
                    wrong.push(format!("{name}: {line}\n  {words:?}\n  {}", e.kind()));
                }
            }
        }
    }
    assert!(checked > 60, "only {checked} command lines found");
    assert!(
        wrong.is_empty(),
        "{} documented lines do not parse:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The lines of the README's tour (its first `sh` block).
fn tour() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = text.find("## A tour of the CLI").expect("the README has a tour");
    let block = &text[start..];
    let block = &block[block.find("```sh").unwrap()..];
    let end = block[3..].find("```").unwrap() + 3;
    shell_lines(&format!("{}\n```", &block[..end]))
}

#[test]
fn the_readme_tour_runs_on_sqlite_and_folders() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path();
    let at = |p: &str| scratch.join(p.trim_start_matches('/'));
    for folder in ["etc/lifeboat", "data/restore", "data/platform", "srv/uploads/cache", "srv/app"]
    {
        std::fs::create_dir_all(at(folder)).unwrap();
    }
    std::fs::write(at("etc/lifeboat/password"), "tour password\n").unwrap();
    let sqlite = |path: &Path, sql: &str| {
        rusqlite::Connection::open(path).unwrap().execute_batch(sql).unwrap();
    };
    sqlite(
        &at("data/auth.db"),
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('a'), ('b');",
    );
    sqlite(
        &at("srv/app/app.db"),
        "CREATE TABLE orders(id INTEGER PRIMARY KEY, tenant_id TEXT, total INT); \
         INSERT INTO orders(tenant_id, total) VALUES ('acme', 1), ('globex', 2);",
    );
    std::fs::write(at("srv/uploads/a.txt"), "a").unwrap();
    std::fs::write(at("srv/uploads/b.tmp"), "skipped").unwrap();
    std::fs::write(at("srv/uploads/cache/c"), "skipped").unwrap();
    std::fs::write(scratch.join("expect.toml"), "").unwrap();

    let run = |words: &[String]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        cmd.args(&words[1..])
            .current_dir(scratch)
            .env("LIFEBOAT_REPO", at("repo"))
            .env("LIFEBOAT_PASSWORD_FILE", at("etc/lifeboat/password"))
            .env("LIFEBOAT_LOG", "warn")
            .env_remove("LIFEBOAT_CONFIG")
            .env_remove("LIFEBOAT_PASSWORD");
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "the tour's `{}` failed:\n{}{}",
            words.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // What needs a PostgreSQL server, the Docker engine or S3 has tests of its own, and so
    // does replication (it runs until stopped; tests/replicate.rs).
    let elsewhere = [
        "postgres",
        "pgdata:",
        "wal-",
        "container",
        "cleanup",
        "--no-encryption",
        "billing",
        "replicate",
        "--at",
    ];
    let mut ran = 0;
    let mut app_backed_up = false;
    for line in tour() {
        let Some(words) = words(&line) else { continue };
        if words.iter().any(|w| elsewhere.iter().any(|e| w.contains(e))) {
            continue;
        }
        let mut local = Vec::new();
        for w in words {
            if w == "3f2a9c" {
                local.extend(["latest".to_string(), "--name".into(), "auth".into()]);
            } else if let Some(path) = w.strip_prefix("dir:") {
                local.push(format!("dir:{}", at(path).display()));
            } else if ["/data/", "/srv/", "/etc/lifeboat/"].iter().any(|p| w.starts_with(p)) {
                local.push(at(&w).display().to_string());
            } else {
                local.push(w);
            }
        }
        if local.iter().any(|w| w == "app") && !app_backed_up {
            run(&[
                "lifeboat".into(),
                "backup".into(),
                "sqlite".into(),
                at("srv/app/app.db").display().to_string(),
            ]);
            app_backed_up = true;
        }
        run(&local);
        ran += 1;
    }
    assert!(ran >= 25, "only {ran} lines of the tour ran");
    // What the tour did is there: the folder restored without what it excluded.
    assert!(at("srv/uploads-restored/a.txt").exists());
    assert!(!at("srv/uploads-restored/b.tmp").exists());
    assert!(at("data/restore/auth.db").exists() && scratch.join("auth.db").exists());
}
