//! lifeboatd's scheduler inside a program of one's own: no HTTP API, the backends the
//! program registers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lifeboat_core::{MemoryBackup, NoProgress};
use lifeboat_daemon::catalog::RunFilter;
use lifeboat_daemon::config::Config;
use lifeboat_daemon::state::Daemon;
use lifeboat_daemon::{runner, service};
use lifeboat_store::BackupOptions;

/// A daemon over a fresh repository with one `dir` job, and the folder it backs up.
async fn daemon(dir: &Path, schedule: &str) -> Arc<Daemon> {
    let folder = dir.join("files");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("a.txt"), "hello").unwrap();
    let text = format!(
        "repository = \"{}\"\nstate_dir = \"{}\"\n\n[[jobs]]\nname = \"files\"\nkind = \"dir\"\n\
         target = \"{}\"\nschedule = \"{schedule}\"\nkeep = {{ last = 2 }}\n",
        dir.join("repo").display(),
        dir.join("state").display(),
        folder.display(),
    );
    let registry = lifeboat::backends();
    let env = BTreeMap::<String, String>::new();
    let config = Config::parse_scheduler(&text, Path::new("nightly.toml"), &env, &registry)
        .expect("a configuration without tokens is fine for the scheduler alone");
    service::open(config, registry).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_backs_up_keeps_its_retention_and_beats_without_the_http_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path(), "every 1s").await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(service::run_scheduler(Arc::clone(&d), async {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while d.catalog.counts("files").unwrap().completed < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no three backups within a minute");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    scheduler.await.unwrap().unwrap();
    let snapshots = d.repo.snapshots().await.unwrap();
    assert_eq!(snapshots.len(), 2, "retention keeps the last 2: {snapshots:?}");
    assert!(snapshots.iter().all(|s| s.manifest().name == "files"));
    let heartbeat = lifeboat_core::heartbeat::path(&dir.path().join("state/heartbeats"), "files");
    assert!(heartbeat.exists(), "no heartbeat at {}", heartbeat.display());
    assert_eq!(d.catalog.counts("files").unwrap().failed, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_of_a_kind_without_a_backend_lists_and_its_drill_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path(), "0 0 0 1 1 *").await;
    let redis =
        MemoryBackup { name: "files".into(), kind: "redis".parse().unwrap(), data: vec![7; 4096] };
    d.repo.backup(&redis, &BackupOptions::default(), &NoProgress).await.unwrap();
    let view = d.refresh_view().await;
    assert_eq!(view.newest("files").unwrap().manifest().kind, "redis");

    let job = d.jobs["files"].job();
    runner::drill_run(&d, &job, "test").await;
    let filter = RunFilter { operation: Some("drill".into()), ..RunFilter::default() };
    let runs = d.catalog.list(&filter).unwrap();
    assert_eq!(runs[0].status, "failed", "{runs:?}");
    let error = runs[0].error.clone().unwrap_or_default();
    assert!(error.contains("no redis backend"), "{error}");
}
