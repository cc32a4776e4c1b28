//! `lifeboat config show [--json]`: each setting in force and where it comes from.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Serialize;

use crate::config::FileConfig;
use crate::output::print_json;

/// One setting as shown.
#[derive(Debug, Serialize)]
struct Setting {
    name: &'static str,
    /// The value; `set` for a secret, `null` when there is none.
    value: Option<String>,
    /// `flag`, `environment (NAME)`, `configuration file`, `default`.
    source: String,
}

#[derive(Debug, Serialize)]
struct Shown {
    /// The configuration file read, if any.
    file: Option<PathBuf>,
    /// Why that file: `LIFEBOAT_CONFIG` or the default place.
    found_by: Option<&'static str>,
    settings: Vec<Setting>,
    /// Keys of the file this command does not read (lifeboatd's).
    ignored: Vec<String>,
}

/// Where the global argument `id` (with environment variable `env`) got its value.
fn source_of(matches: &ArgMatches, id: &str, env: &str, file: Option<&FileConfig>) -> String {
    match matches.value_source(id) {
        Some(ValueSource::CommandLine) => "flag".into(),
        Some(ValueSource::EnvVariable) => format!("environment ({env})"),
        Some(ValueSource::DefaultValue) => {
            let in_file = file.is_some_and(|f| f.defaults().iter().any(|(k, _)| *k == id));
            if in_file { "configuration file".into() } else { "default".into() }
        }
        _ => "not set".into(),
    }
}

pub fn run(
    matches: &ArgMatches,
    loaded: Option<&(PathBuf, &'static str, FileConfig)>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let file = loaded.map(|(_, _, f)| f);
    let value = |id: &str| -> Option<String> {
        matches.get_raw(id).and_then(|mut v| v.next()).map(|v| v.to_string_lossy().into_owned())
    };
    let mut settings = Vec::new();
    for (name, id, env, secret) in [
        ("repository", "repo", "LIFEBOAT_REPO", false),
        ("password file", "password_file", "LIFEBOAT_PASSWORD_FILE", false),
        ("password command", "password_command", "LIFEBOAT_PASSWORD_COMMAND", true),
        ("key file", "key_file", "LIFEBOAT_KEY_FILE", false),
        ("log format", "log_format", "LIFEBOAT_LOG_FORMAT", false),
    ] {
        let v = value(id);
        let source = if v.is_some() { source_of(matches, id, env, file) } else { "not set".into() };
        settings.push(Setting {
            name,
            value: v.map(|v| if secret { "set".into() } else { v }),
            source,
        });
    }
    if std::env::var_os("LIFEBOAT_PASSWORD").is_some_and(|v| !v.is_empty()) {
        settings.push(Setting {
            name: "password",
            value: Some("set".into()),
            source: "environment (LIFEBOAT_PASSWORD)".into(),
        });
    }
    // S3: the environment first, then the file.
    let s3 = file.and_then(|f| f.s3.clone()).unwrap_or_default();
    for (name, var, from_file, secret) in [
        ("s3 endpoint", "AWS_ENDPOINT", s3.endpoint.clone(), false),
        ("s3 region", "AWS_REGION", s3.region.clone(), false),
        ("s3 access key id", "AWS_ACCESS_KEY_ID", s3.access_key_id.clone(), false),
        (
            "s3 secret access key",
            "AWS_SECRET_ACCESS_KEY",
            s3.secret_access_key
                .clone()
                .or(s3.secret_access_key_file.as_ref().map(|f| f.display().to_string())),
            true,
        ),
    ] {
        let env = std::env::var(var).ok().filter(|v| !v.trim().is_empty());
        let env_file = std::env::var(format!("{var}_FILE")).ok().filter(|v| !v.trim().is_empty());
        let (v, source) = match (env, env_file, from_file) {
            (Some(v), _, _) => (Some(v), format!("environment ({var})")),
            (None, Some(f), _) => (Some(f), format!("environment ({var}_FILE)")),
            (None, None, Some(v)) => (Some(v), "configuration file".into()),
            (None, None, None) => (None, "not set".into()),
        };
        settings.push(Setting {
            name,
            value: v.map(|v| if secret { "set".into() } else { v }),
            source,
        });
    }
    let shown = Shown {
        file: loaded.map(|(p, _, _)| p.clone()),
        found_by: loaded.map(|(_, why, _)| *why),
        settings,
        ignored: file.map(|f| f.other.keys().cloned().collect()).unwrap_or_default(),
    };
    if json {
        print_json(&shown)?;
        return Ok(ExitCode::SUCCESS);
    }
    match &shown.file {
        Some(path) => println!(
            "configuration file: {} (found by {})",
            path.display(),
            shown.found_by.unwrap_or("")
        ),
        None => println!(
            "configuration file: none (LIFEBOAT_CONFIG, or ~/.config/lifeboat/config.toml)"
        ),
    }
    for s in &shown.settings {
        println!("{:<22} {:<40} {}", s.name, s.value.as_deref().unwrap_or("-"), s.source);
    }
    if !shown.ignored.is_empty() {
        println!("not read by lifeboat (lifeboatd's): {}", shown.ignored.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
