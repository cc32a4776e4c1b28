//! Where the repository key comes from: `--key-file` (`LIFEBOAT_KEY_FILE`), then a password
//! from `--password-command`, `--password-file` (`LIFEBOAT_PASSWORD_FILE`), or
//! `LIFEBOAT_PASSWORD`, in that order; else, on a terminal, the user types it. There is no
//! `--password` flag on purpose: a command line is visible to every user of the host.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context;
use lifeboat_store::Password;

/// The password sources given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--password-file` / `LIFEBOAT_PASSWORD_FILE`.
    pub file: Option<PathBuf>,
    /// `--password-command` / `LIFEBOAT_PASSWORD_COMMAND`.
    pub command: Option<String>,
    /// `--key-file` / `LIFEBOAT_KEY_FILE`.
    pub key_file: Option<PathBuf>,
}

static SOURCES: OnceLock<Sources> = OnceLock::new();

/// Records this run's sources (once, before any command runs).
/// The flags that give another lifeboat process the same key as this one (for a
/// `restore_command`), or `None` when the key came from something a command line cannot
/// name (`LIFEBOAT_PASSWORD`, a prompt).
pub fn flags_for_child(encrypted: bool) -> Option<Vec<String>> {
    let sources = SOURCES.get();
    let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    match sources {
        Some(Sources { key_file: Some(f), .. }) => {
            Some(vec!["--key-file".into(), absolute(f).display().to_string()])
        }
        Some(Sources { file: Some(f), .. }) => {
            Some(vec!["--password-file".into(), absolute(f).display().to_string()])
        }
        Some(Sources { command: Some(c), .. }) => {
            Some(vec!["--password-command".into(), c.clone()])
        }
        _ if !encrypted => Some(Vec::new()),
        _ => None,
    }
}

pub fn set(sources: Sources) {
    let _ = SOURCES.set(sources);
}

/// Whether any source of a password is given (none of them is read).
pub fn given() -> bool {
    let sources = SOURCES.get().cloned().unwrap_or_default();
    sources.command.is_some()
        || sources.file.is_some()
        || sources.key_file.is_some()
        || std::env::var_os("LIFEBOAT_PASSWORD").is_some_and(|v| !v.is_empty())
}

/// The repository password, if any source gives one.
///
/// # Errors
/// A file that cannot be read, a command that fails, or an empty password.
pub fn current() -> anyhow::Result<Option<Password>> {
    let sources = SOURCES.get().cloned().unwrap_or_default();
    if let Some(file) = &sources.key_file {
        return from_key_file(file).map(Some);
    }
    if let Some(command) = &sources.command {
        return from_command(command).map(Some);
    }
    if let Some(file) = &sources.file {
        return from_file(file).map(Some);
    }
    match std::env::var("LIFEBOAT_PASSWORD") {
        Ok(text) => non_empty(text, "LIFEBOAT_PASSWORD").map(Some),
        Err(_) => Ok(None),
    }
}

/// Whether a person can be asked: both stdin and stderr are terminals. A script, a cron job
/// or a service has no one to answer, so it fails with a hint instead of waiting.
fn on_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The repository password typed on the terminal (not echoed), or `None` when there is no
/// terminal to ask on.
///
/// # Errors
/// The terminal cannot be read, or the password is empty.
pub fn prompt() -> anyhow::Result<Option<Password>> {
    if !on_terminal() {
        return Ok(None);
    }
    let text = rpassword::prompt_password("repository password: ")
        .context("reading the password from the terminal")?;
    non_empty(text, "the password typed").map(Some)
}

/// A new repository's password typed twice on the terminal (not echoed), or `None` when
/// there is no terminal to ask on.
///
/// # Errors
/// The terminal cannot be read, the password is empty, or the two do not match.
pub fn prompt_new() -> anyhow::Result<Option<Password>> {
    if !on_terminal() {
        return Ok(None);
    }
    let first = rpassword::prompt_password("new repository password: ")
        .context("reading the password from the terminal")?;
    let again = rpassword::prompt_password("the same password again: ")
        .context("reading the password from the terminal")?;
    if first != again {
        return Err(lifeboat_core::Error::InvalidInput {
            what: "the two passwords typed differ: nothing was created".into(),
            hint: "run it again and type the same password twice".into(),
        }
        .into());
    }
    non_empty(first, "the password typed").map(Some)
}

/// The new password of `key add` / `key passwd`: `--new-password-file`, else
/// `LIFEBOAT_NEW_PASSWORD`.
///
/// # Errors
/// When neither is given, or as [`current`].
pub fn new_password(file: Option<&Path>) -> anyhow::Result<Password> {
    if let Some(file) = file {
        return from_file(file);
    }
    match std::env::var("LIFEBOAT_NEW_PASSWORD") {
        Ok(text) => non_empty(text, "LIFEBOAT_NEW_PASSWORD"),
        Err(_) => Err(lifeboat_core::Error::InvalidInput {
            what: "no new password given".into(),
            hint: "pass --new-password-file FILE or set LIFEBOAT_NEW_PASSWORD".into(),
        }
        .into()),
    }
}

fn from_key_file(file: &Path) -> anyhow::Result<Password> {
    let contents = zeroize::Zeroizing::new(
        std::fs::read(file).with_context(|| format!("reading the key file {}", file.display()))?,
    );
    Password::from_key_file(&file.display().to_string(), &contents).map_err(|e| {
        lifeboat_core::Error::InvalidInput {
            what: e.to_string(),
            hint: "give the file `lifeboat key add --out FILE` wrote, as it was written".into(),
        }
        .into()
    })
}

fn from_file(file: &Path) -> anyhow::Result<Password> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the password file {}", file.display()))?;
    non_empty(text, &format!("the password file {}", file.display()))
}

fn from_command(command: &str) -> anyhow::Result<Password> {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running --password-command")?;
    if !output.status.success() {
        anyhow::bail!("--password-command failed ({})", output.status);
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| anyhow::anyhow!("--password-command printed something that is not UTF-8"))?;
    non_empty(text, "--password-command's output")
}

/// One trailing line end is not part of the password (files and `echo` end with one).
fn non_empty(text: String, what: &str) -> anyhow::Result<Password> {
    Password::from_line(text).ok_or_else(|| {
        lifeboat_core::Error::InvalidInput {
            what: format!("{what} is empty"),
            hint: "an encrypted repository needs a non-empty password".into(),
        }
        .into()
    })
}
