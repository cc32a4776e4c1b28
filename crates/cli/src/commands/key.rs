//! `lifeboat key list|add|remove|passwd`: the passwords and key files of an encrypted
//! repository. Adding or removing one creates or deletes one key slot; no data is rewritten.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use lifeboat_store::Access;

use crate::cli::KeyCommand;
use crate::output::print_json;

pub async fn run(url: &str, command: KeyCommand) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo_deferred(url).await?;
    match command {
        KeyCommand::List { json } => {
            let keys = repo.keys().await?;
            if json {
                print_json(&keys)?;
            } else {
                println!(
                    "{:<2} {:<32}  {:<10}  {:<8}  {:<20}  host",
                    "", "id", "access", "kind", "created (UTC)"
                );
                for key in &keys {
                    println!(
                        "{:<2} {:<32}  {:<10}  {:<8}  {:<20}  {}",
                        if key.current { "*" } else { "" },
                        key.id,
                        key.access.to_string(),
                        key.kind,
                        key.created.format("%Y-%m-%d %H:%M:%S"),
                        key.host
                    );
                }
            }
        }
        KeyCommand::Add { new_password_file: _, out: Some(out), write_only } => {
            let access = if write_only { Access::WriteOnly } else { Access::Full };
            let id = add_key_file(&repo, &out, access).await?;
            println!("added {access} key {id}, written to {}", out.display());
            if write_only {
                println!(
                    "it backs up (--key-file {} or LIFEBOAT_KEY_FILE) and can read and delete \
                     nothing",
                    out.display()
                );
            } else {
                println!("keep a copy of it apart from the host: it opens every backup");
            }
        }
        KeyCommand::Add { new_password_file, out: None, .. } => {
            let id = add(&repo, new_password_file.as_deref()).await?;
            println!("added key {id}");
        }
        KeyCommand::Remove { id } => {
            let removed = repo.remove_key(&id).await?;
            println!("removed key {removed}");
        }
        KeyCommand::Passwd { new_password_file } => {
            let current = repo.keys().await?.into_iter().find(|k| k.current);
            let id = add(&repo, new_password_file.as_deref()).await?;
            // The old slot goes only once the new one is on the store.
            if let Some(old) = current {
                repo.remove_key(&old.id).await?;
                println!("replaced key {} by key {id}", old.id);
            } else {
                println!("added key {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn add(repo: &lifeboat_store::Repository, file: Option<&Path>) -> anyhow::Result<String> {
    let password = crate::password::new_password(file)?;
    Ok(repo.add_key(&password).await?)
}

/// Adds a key file and writes it to `out`: created new (an existing file is never replaced),
/// mode 0600, synced. The slot is added only once the file can be created, and removed again
/// when the file cannot be written, so no key exists that nobody holds.
async fn add_key_file(
    repo: &lifeboat_store::Repository,
    out: &Path,
    access: Access,
) -> anyhow::Result<String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(out).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!("{} already exists: a key file is never overwritten", out.display())
        } else {
            format!("cannot create the key file {}: {e}", out.display())
        };
        lifeboat_core::Error::InvalidInput {
            what,
            hint: "give --out a new file in a folder you can write".into(),
        }
    })?;
    let (id, text) = match repo.add_key_file(access).await {
        Ok(added) => added,
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(out);
            return Err(e.into());
        }
    };
    let written = file.write_all(text.0.as_bytes()).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(out);
        let _ = repo.remove_key(&id).await;
        return Err(e).with_context(|| format!("writing the key file {}", out.display()));
    }
    Ok(id)
}
