//! `lifeboat init`

use std::process::ExitCode;

use lifeboat_store::Repository;
use lifeboat_store::format::{ChunkIdScheme, RepoConfig};

/// Creates the repository at `url`: encrypted unless `no_encryption`, its chunks named with
/// `chunk_ids`.
pub async fn run(
    url: &str,
    no_encryption: bool,
    chunk_ids: ChunkIdScheme,
) -> anyhow::Result<ExitCode> {
    let config = RepoConfig::with_chunk_ids(chunk_ids);
    let repo = if no_encryption {
        // A password says the user expects encryption: a plaintext repository would be a
        // surprise found only when the backups leak.
        if crate::password::given() {
            return Err(lifeboat_core::Error::InvalidInput {
                what: "--no-encryption was given together with a password: the repository \
                       would be plaintext"
                    .into(),
                hint: "drop --no-encryption to make an encrypted repository, or unset \
                       LIFEBOAT_PASSWORD and LIFEBOAT_PASSWORD_FILE and drop \
                       --password-file/--password-command"
                    .into(),
            }
            .into());
        }
        Repository::init_as(url, None, config).await?
    } else {
        // Before asking for a password: a URL that is wrong, a store that cannot be reached
        // or a repository already there is said at once, not after the password was typed
        // twice.
        match Repository::discover(url).await {
            Ok(_) => {
                return Err(
                    lifeboat_store::StoreError::AlreadyInitialised { url: url.into() }.into()
                );
            }
            Err(lifeboat_store::StoreError::NotInitialised { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let password = match crate::password::current()? {
            Some(password) => password,
            None => crate::password::prompt_new()?.ok_or_else(|| {
                lifeboat_core::Error::InvalidInput {
                    what: "init makes an encrypted repository and no password was given \
                           (and there is no terminal to ask for one): nothing was created"
                        .into(),
                    hint: "set LIFEBOAT_PASSWORD_FILE, or pass --password-file FILE or \
                           --password-command COMMAND, or set LIFEBOAT_PASSWORD; or pass \
                           --no-encryption for a plaintext repository"
                        .into(),
                }
            })?,
        };
        Repository::init_as(url, Some(&password), config).await?
    };
    let what = if no_encryption { "plaintext" } else { "encrypted" };
    let config = repo.config();
    println!(
        "created {what} lifeboat repository {} at {url} (format {}, {} chunk ids)",
        config.id, config.version, config.chunk_ids
    );
    Ok(ExitCode::SUCCESS)
}
