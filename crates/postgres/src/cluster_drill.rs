//! Drills of base backups: restored into a scratch data directory, recovered to the newest
//! archived WAL (to the backup's end without an archive command), started on a free port,
//! checked (the server came up and accepts writes, then the expectations, in the database
//! named by the drill's `cluster-database` option), stopped and removed.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use lifeboat_core::drill::{
    Expectations, SCRATCH_PREFIX, ScratchDrill, ScratchOutcome, process_alive, scratch_owner,
};
use lifeboat_core::{
    Check, Kind, MemorySafetyNet, NoProgress, RestoreContext, RestorePlan, Result, Snapshot,
};
use tokio_postgres::Config;

use crate::cluster::CLUSTER_KIND;
use crate::connect::{connect, server_tool};
use crate::drill::expectations;
use crate::pgdata::{PgdataRestorePlan, RecoveryTarget};

/// Drills base backups into scratch data directories under a folder of this machine.
#[derive(Debug, Clone)]
pub struct ClusterDrill {
    fetch_command: Option<String>,
    database: String,
    root: PathBuf,
}

impl ClusterDrill {
    /// Drills recovering with `fetch_command` (see
    /// [`RestoreOptions::archive_fetch`](lifeboat_core::RestoreOptions)), checking
    /// expectations in `database`, in scratch folders under the system's temporary folder.
    pub fn new(fetch_command: Option<String>, database: impl Into<String>) -> Self {
        ClusterDrill { fetch_command, database: database.into(), root: std::env::temp_dir() }
    }

    fn scratch_dir(&self) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.root.join(format!("{SCRATCH_PREFIX}{}-{nanos}", std::process::id()))
    }
}

#[async_trait]
impl ScratchDrill for ClusterDrill {
    fn kind(&self) -> Kind {
        CLUSTER_KIND
    }

    async fn restore_and_check(
        &self,
        snapshot: &dyn Snapshot,
        expect: &Expectations,
    ) -> Result<ScratchOutcome> {
        let mut outcome = ScratchOutcome::default();
        let dir = self.scratch_dir();
        let port = match free_port() {
            Ok(port) => port,
            Err(e) => {
                outcome.checks.push(Check::fail("restore", format!("no free port: {e}")));
                return Ok(outcome);
            }
        };
        let target = match self.fetch_command {
            Some(_) => RecoveryTarget::Latest,
            None => RecoveryTarget::Immediate,
        };
        let plan = match PgdataRestorePlan::prepare(
            snapshot,
            &dir,
            target,
            self.fetch_command.clone(),
            false,
        ) {
            Ok(plan) => plan.scratch().start_on(port),
            Err(e) => {
                outcome.checks.push(Check::fail("restore", e.to_string()));
                return Ok(outcome);
            }
        };
        let net = MemorySafetyNet::default();
        let ctx = RestoreContext { snapshot, safety_net: &net, progress: &NoProgress };
        let result = plan.execute(&ctx).await;
        match result {
            Ok(report) => {
                outcome.bytes = report.bytes;
                outcome.checks.extend(report.checks);
                let user = Some(plan.metadata().superuser.clone())
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| "postgres".into());
                let mut config = Config::new();
                config.host("127.0.0.1").port(port).user(&user).dbname(&self.database);
                match connect(&config).await {
                    Ok(client) => {
                        let wrote = client
                            .batch_execute("CREATE TEMP TABLE lifeboat_drill (x int); INSERT INTO lifeboat_drill VALUES (1)")
                            .await;
                        outcome.checks.push(Check::new(
                            "accepts writes",
                            wrote.is_ok(),
                            match &wrote {
                                Ok(()) => format!("connected to {} as {user}", self.database),
                                Err(e) => e.to_string(),
                            },
                        ));
                        outcome.checks.extend(expectations(&client, expect).await);
                    }
                    Err(e) => outcome.checks.push(Check::fail("connect", e.to_string())),
                }
            }
            Err(e) => outcome.checks.push(Check::fail("restore", e.to_string())),
        }
        remove_scratch(&dir, plan.metadata().server_major);
        Ok(outcome)
    }

    fn clean_leftovers(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return 0 };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dead = scratch_owner(&name).is_some_and(|pid| !process_alive(pid));
            if dead && entry.path().join("PG_VERSION").exists() {
                let major = std::fs::read_to_string(entry.path().join("PG_VERSION"))
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or_default();
                remove_scratch(&entry.path(), major);
                removed += 1;
            }
        }
        removed
    }
}

/// Stops a scratch cluster's server, if it runs, and removes its folder.
fn remove_scratch(dir: &Path, major: u32) {
    if dir.join("postmaster.pid").exists()
        && let Ok(pg_ctl) = server_tool("pg_ctl", major)
    {
        let _ = std::process::Command::new(pg_ctl)
            .arg("-D")
            .arg(dir)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A port no one listens on now.
fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port())
}
