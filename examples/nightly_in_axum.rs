//! A nightly backup with retention and prune inside an axum service.
//!
//! ```text
//! cargo run -p lifeboat-cli --example nightly_in_axum -- app.db /var/backups/lifeboat
//! ```

use std::time::Duration;

use lifeboat::retention::{PolicySet, RetentionPolicy};
use lifeboat::store::{PruneOptions, retention::forget};
use lifeboat::{BackupOptions, Kind, NoProgress, Repository, TargetSpec};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let db = TargetSpec::new(Kind::SQLITE, args.next().unwrap_or_else(|| "app.db".into()));
    let repo = Repository::open_or_init(&args.next().unwrap_or_else(|| "memory://".into())).await?;
    let keep = RetentionPolicy { daily: 7, weekly: 4, ..Default::default() };
    let keep = PolicySet { default: keep, ..Default::default() };
    tokio::spawn(async move {
        let (backends, mut nightly) = (lifeboat::backends(), tokio::time::interval(Duration::from_secs(86_400)));
        loop {
            nightly.tick().await;
            let saved = repo.backup_target(&backends, &db, &BackupOptions::default(), &NoProgress, &mut |_| {}).await;
            let kept = forget(&repo, None, &keep, false).await;
            let pruned = repo.prune(&PruneOptions::default()).await;
            eprintln!("nightly: backup {:?}, retention {:?}, prune {:?}", saved.map(|o| o.len()), kept.map(|g| g.len()), pruned.map(|p| p.deleted));
        }
    });
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "serving" }));
    axum::serve(tokio::net::TcpListener::bind("127.0.0.1:3000").await?, app).await?;
    Ok(())
}
