//! Every `lifeboat` and `lifeboatd` command line shown in the README and in docs/ is one the
//! real parser accepts: options that exist, values they take, commands that are there.
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
