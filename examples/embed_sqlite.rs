//! Embedding lifeboat in a Rust service: back up the service's own SQLite database into a
//! repository, list what is there, and restore the newest snapshot to a new file, through
//! the `lifeboat` facade and its registry of backends.
//!
//! ```text
//! cargo run -p lifeboat-cli --example embed_sqlite -- /path/to/app.db /path/to/repo
//! ```
//! Without arguments it works on a throwaway database and an in-memory repository.

use std::path::PathBuf;

use lifeboat::TargetSpec;
use lifeboat::backend::Options;
use lifeboat::{BackupOptions, Kind, NoProgress, Repository, RestoreContext, RestoreOptions};

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
    let backends = lifeboat::backends();

    // Open the repository, creating it on first use.
    let repo = Repository::open_or_init(&url).await?;

    let target = TargetSpec::new(Kind::SQLITE, db.display().to_string());
    let options =
        BackupOptions { tags: [("source".into(), "example".into())].into(), ..Default::default() };
    let mut outcomes =
        repo.backup_target(&backends, &target, &options, &NoProgress, &mut |_| {}).await?;
    let snap = outcomes.remove(0).result?;
    let m = snap.manifest();
    println!(
        "saved {} ({} bytes, {} new), tables: {}",
        snap.id(),
        m.size,
        m.stored,
        m.metadata["tables"]
    );
    println!("{} snapshots of {:?} in the repository", repo.snapshots().await?.len(), m.name);

    let restored = scratch.path().join("restored.db").display().to_string();
    let options = RestoreOptions::default();
    let plan = backends.plan_restore(&snap, &restored, &options, &Options::default()).await?;
    for step in plan.steps() {
        println!("  plan: {step}");
    }
    let ctx = RestoreContext { snapshot: &snap, safety_net: &repo, progress: &NoProgress };
    let report = plan.execute(&ctx).await?;
    println!("restored to {} with {} checks passed", report.target, report.checks.len());
    Ok(())
}
