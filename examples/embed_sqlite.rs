//! Embedding lifeboat in a Rust service: back up the service's own SQLite database into a
//! repository, list what is there, and restore the newest snapshot to a new file.
//!
//! ```text
//! cargo run -p lifeboat-cli --example embed_sqlite -- /path/to/app.db /path/to/repo
//! ```
//! Without arguments it works on a throwaway database and an in-memory repository.

use std::path::PathBuf;

use lifeboat_core::{NoProgress, RestoreContext, RestoreOptions, RestorePlan};
use lifeboat_sqlite::{SqliteBackup, SqliteRestorePlan};
use lifeboat_store::{BackupOptions, Repository, StoreError};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let scratch = tempfile::tempdir()?;
    let db = match args.next() {
        Some(path) => PathBuf::from(path),
        None => {
            let path = scratch.path().join("service.db");
            let conn = rusqlite::Connection::open(&path)?;
            conn.execute_batch(
                "CREATE TABLE jobs(id INTEGER PRIMARY KEY, state TEXT);
                 INSERT INTO jobs(state) VALUES ('queued'), ('running'), ('done');",
            )?;
            path
        }
    };
    let url = args.next().unwrap_or_else(|| "memory://".into());

    // Open the repository, creating it on first use.
    let repo = match Repository::open(&url).await {
        Ok(repo) => repo,
        Err(StoreError::NotInitialised { .. }) => Repository::init(&url).await?,
        Err(e) => return Err(e.into()),
    };

    let options =
        BackupOptions { tags: [("source".into(), "example".into())].into(), ..Default::default() };
    let snap = repo.backup(&SqliteBackup::new(&db), &options, &NoProgress).await?;
    println!(
        "saved {} ({} bytes, {} new)",
        snap.id(),
        snap.manifest().size,
        snap.manifest().stored
    );
    println!("tables: {}", snap.manifest().metadata["tables"]);

    let target = scratch.path().join("restored.db");
    let plan = SqliteRestorePlan::new(&snap, &target, &RestoreOptions::default())?;
    for step in plan.steps() {
        println!("  plan: {step}");
    }
    let ctx = RestoreContext { snapshot: &snap, safety_net: &repo, progress: &NoProgress };
    let report = plan.execute(&ctx).await?;
    println!("restored to {} with {} checks passed", report.target, report.checks.len());
    Ok(())
}
