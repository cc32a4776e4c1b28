//! `lifeboat init`

use std::process::ExitCode;

use lifeboat_store::Repository;

pub async fn run(url: &str, encrypt: bool) -> anyhow::Result<ExitCode> {
    let repo = if encrypt {
        let Some(password) = crate::password::current()? else {
            return Err(lifeboat_core::Error::InvalidInput {
                what: "init --encrypt needs a password".into(),
                hint: "set LIFEBOAT_PASSWORD or LIFEBOAT_PASSWORD_FILE, or pass --password-file \
                       or --password-command"
                    .into(),
            }
            .into());
        };
        Repository::init_encrypted(url, &password).await?
    } else if crate::password::given() {
        return Err(lifeboat_core::Error::InvalidInput {
            what: "a password was given but not --encrypt: the repository would be plaintext"
                .into(),
            hint: "pass --encrypt to make an encrypted repository, or give no password".into(),
        }
        .into());
    } else {
        Repository::init(url).await?
    };
    let what = if encrypt { "encrypted lifeboat repository" } else { "lifeboat repository" };
    println!("created {what} {} at {url}", repo.config().id);
    Ok(ExitCode::SUCCESS)
}
