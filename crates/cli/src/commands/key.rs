//! `lifeboat key list|add|remove|passwd`: the passwords of an encrypted repository. Adding
//! or removing one creates or deletes one key slot; no data is rewritten.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::KeyCommand;
use crate::output::print_json;

pub async fn run(url: &str, command: KeyCommand) -> anyhow::Result<ExitCode> {
    let repo = super::open_repo(url).await?;
    match command {
        KeyCommand::List { json } => {
            let keys = repo.keys().await?;
            if json {
                print_json(&keys)?;
            } else {
                println!("{:<2} {:<32}  {:<20}  host", "", "id", "created (UTC)");
                for key in &keys {
                    println!(
                        "{:<2} {:<32}  {:<20}  {}",
                        if key.current { "*" } else { "" },
                        key.id,
                        key.created.format("%Y-%m-%d %H:%M:%S"),
                        key.host
                    );
                }
            }
        }
        KeyCommand::Add { new_password_file } => {
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
