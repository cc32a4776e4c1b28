//! Containers' part in restore drills and deep verification: recreate the snapshot as a
//! throwaway container on no network, compare every restored file with the snapshot, start
//! it, watch it run, remove it.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, ListImagesOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveImageOptions, RemoveVolumeOptions,
};
use lifeboat_core::drill::{Expectations, SCRATCH_PREFIX, ScratchDrill, ScratchOutcome};
use lifeboat_core::{Check, Kind, Result, Snapshot};
use tracing::{info, warn};

use crate::engine::connect;
use crate::metadata::ContainerMetadata;
use crate::recreate::{Recreation, start_and_settle};
use crate::restore::plan_mounts;

/// Label carrying the process id of the drill that created a scratch object.
const DRILL_PID_LABEL: &str = "lifeboat.drill.pid";

/// Image repository of drills' imports.
const DRILL_IMAGES: &str = "lifeboat-drill";

/// Drills started by this process, for unique scratch names.
static DRILLS_STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Drills container snapshots.
#[derive(Debug, Clone, Copy)]
pub struct ContainerDrill {
    settle: Duration,
}

impl Default for ContainerDrill {
    fn default() -> Self {
        ContainerDrill { settle: Duration::from_secs(2) }
    }
}

impl ContainerDrill {
    /// A drill that requires the scratch container to keep running for `settle`.
    pub fn with_settle(settle: Duration) -> Self {
        ContainerDrill { settle }
    }
}

#[async_trait]
impl ScratchDrill for ContainerDrill {
    fn kind(&self) -> Kind {
        Kind::CONTAINER
    }

    async fn restore_and_check(
        &self,
        snapshot: &dyn Snapshot,
        expect: &Expectations,
    ) -> Result<ScratchOutcome> {
        let mut outcome = ScratchOutcome::default();
        let meta = match ContainerMetadata::from_value(&snapshot.manifest().metadata) {
            Ok(meta) => meta,
            Err(e) => {
                outcome.checks.push(Check::fail("metadata", e.to_string()));
                return Ok(outcome);
            }
        };
        let docker = connect().await?;
        let id = snapshot.id().to_string();
        let short: String = id.chars().take(8).collect();
        let pid = std::process::id();
        // Unique within the process too: two drills of one snapshot may run at once.
        let n = DRILLS_STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{SCRATCH_PREFIX}{pid}-{short}-{n}");
        let mounts = plan_mounts(&docker, &meta, &id, Some(&name), &name).await?;
        let recreation = Recreation {
            docker: &docker,
            meta: &meta,
            snapshot: id.clone(),
            name: name.clone(),
            image_repo: format!("{DRILL_IMAGES}/{pid}-{short}-{n}"),
            mounts,
            isolated: true,
            check_files: true,
            publish_ports: false,
            labels: HashMap::from([(DRILL_PID_LABEL.to_string(), pid.to_string())]),
        };
        let (created, result) = recreation.run(snapshot, &lifeboat_core::NoProgress).await;
        outcome.bytes = created.bytes;
        outcome.checks.extend(created.checks.iter().cloned());
        match result {
            Err(e) => outcome.checks.push(Check::fail("restore", e.to_string())),
            Ok(()) => {
                outcome.checks.push(Check::pass(
                    "restore",
                    format!("{} bytes into scratch container {name} (no network)", created.bytes),
                ));
                match start_and_settle(&docker, &name, &name, self.settle).await {
                    Ok(checks) => outcome.checks.extend(checks),
                    Err(e) => outcome.checks.push(Check::fail("running", e.to_string())),
                }
                for file in &expect.files {
                    let path = file.trim_start_matches('/').trim_end_matches('/');
                    let found = created.files.contains_key(path)
                        || created.files.keys().any(|k| k.starts_with(&format!("{path}/")));
                    outcome.checks.push(Check::new(
                        format!("file {file} exists"),
                        found,
                        if found { "present" } else { "missing" },
                    ));
                }
            }
        }
        outcome.checks.extend(expect.database_checks_for(Kind::CONTAINER));
        created.discard(&docker).await;
        Ok(outcome)
    }

    fn clean_leftovers(&self) -> usize {
        // The trait is synchronous; the engine is not. A thread of its own runs the cleanup
        // whatever runtime (or none) the caller is on.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime =
                        tokio::runtime::Builder::new_current_thread().enable_all().build();
                    match runtime {
                        Ok(rt) => rt.block_on(clean_leftovers()),
                        Err(_) => 0,
                    }
                })
                .join()
                .unwrap_or(0)
        })
    }
}

/// Whether the process that made a scratch object is gone.
fn orphaned(labels: Option<&HashMap<String, String>>) -> bool {
    let Some(pid) = labels.and_then(|l| l.get(DRILL_PID_LABEL)) else {
        return false;
    };
    !std::path::Path::new("/proc").join(pid).exists()
}

async fn clean_leftovers() -> usize {
    let Ok(docker) = connect().await else {
        return 0;
    };
    let mut removed = 0;
    removed += clean_containers(&docker).await;
    removed += clean_volumes(&docker).await;
    clean_images(&docker).await;
    removed
}

fn label_filter() -> Option<HashMap<String, Vec<String>>> {
    Some(HashMap::from([("label".to_string(), vec![DRILL_PID_LABEL.to_string()])]))
}

async fn clean_containers(docker: &Docker) -> usize {
    let options =
        ListContainersOptions { all: true, filters: label_filter(), ..Default::default() };
    let Ok(list) = docker.list_containers(Some(options)).await else {
        return 0;
    };
    let mut removed = 0;
    for container in list.into_iter().filter(|c| orphaned(c.labels.as_ref())) {
        let Some(id) = container.id else { continue };
        let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
        match docker.remove_container(&id, Some(options)).await {
            Ok(()) => {
                info!(container = %id, "removed a drill's leftover container");
                removed += 1;
            }
            Err(e) => warn!(container = %id, error = %e, "could not remove a drill's leftover"),
        }
    }
    removed
}

async fn clean_volumes(docker: &Docker) -> usize {
    let options = ListVolumesOptions { filters: label_filter() };
    let Ok(list) = docker.list_volumes(Some(options)).await else {
        return 0;
    };
    let mut removed = 0;
    for volume in list.volumes.unwrap_or_default() {
        if volume.name.starts_with(SCRATCH_PREFIX) && orphaned(Some(&volume.labels)) {
            let options = RemoveVolumeOptions { force: true };
            if docker.remove_volume(&volume.name, Some(options)).await.is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

async fn clean_images(docker: &Docker) {
    let filters = HashMap::from([("reference".to_string(), vec![format!("{DRILL_IMAGES}/*")])]);
    let options = ListImagesOptions { filters: Some(filters), ..Default::default() };
    let Ok(images) = docker.list_images(Some(options)).await else {
        return;
    };
    for image in images {
        for tag in image.repo_tags {
            let pid = tag
                .strip_prefix(&format!("{DRILL_IMAGES}/"))
                .and_then(|rest| rest.split('-').next())
                .unwrap_or_default();
            if !pid.is_empty() && !std::path::Path::new("/proc").join(pid).exists() {
                let options = RemoveImageOptions { force: true, ..Default::default() };
                let _ = docker.remove_image(&tag, Some(options), None).await;
            }
        }
    }
}
