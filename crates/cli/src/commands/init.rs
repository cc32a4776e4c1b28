//! `lifeboat init`

use std::process::ExitCode;

use lifeboat_store::Repository;

pub async fn run(url: &str) -> anyhow::Result<ExitCode> {
    let repo = Repository::init(url).await?;
    println!("created lifeboat repository {} at {url}", repo.config().id);
    Ok(ExitCode::SUCCESS)
}
