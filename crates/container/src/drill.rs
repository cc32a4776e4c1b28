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
use crate::error::ContainerError;
use crate::leftovers::{Leftover, owner_alive, this_host};
use crate::metadata::ContainerMetadata;
use crate::recreate::{Recreation, start_and_settle};
use crate::restore::plan_mounts;

/// Label carrying the process id of the drill that created a scratch object.
const DRILL_PID_LABEL: &str = "lifeboat.drill.pid";

/// Label carrying the machine of that process ([`this_host`]: host name and boot), so a
/// drill never removes what a drill on another host sharing the engine is using, nor takes
/// a pid reused after a reboot for its owner.
const DRILL_HOST_LABEL: &str = "lifeboat.drill.host";

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
            labels: drill_labels(pid),
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
                        Ok(rt) => rt.block_on(clean_dead_drills()),
                        Err(_) => 0,
                    }
                })
                .join()
                .unwrap_or(0)
        })
    }
}

/// The labels of a drill's scratch container, volumes and image: who made them.
fn drill_labels(pid: u32) -> HashMap<String, String> {
    HashMap::from([
        (DRILL_PID_LABEL.to_string(), pid.to_string()),
        (DRILL_HOST_LABEL.to_string(), this_host()),
    ])
}

/// What a drill's scratch object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scratch {
    Container,
    Volume,
    Image,
}

/// A scratch object a drill made, found on the engine, and whether its drill still runs.
#[derive(Debug, Clone)]
pub(crate) struct DrillLeftover {
    what: Scratch,
    /// The container's id, the volume's name, the image's tag (or id when untagged).
    reference: String,
    /// What to call it: the container's name, else `reference`.
    name: String,
    /// The drill's machine ([`this_host`]); empty from versions that did not record it.
    host: String,
    /// The drill's process id.
    pid: u32,
    /// [`owner_alive`] of the drill.
    alive: Option<bool>,
}

impl DrillLeftover {
    fn new(
        what: Scratch,
        reference: String,
        name: String,
        labels: &HashMap<String, String>,
    ) -> Self {
        let host = labels.get(DRILL_HOST_LABEL).cloned().unwrap_or_default();
        let pid = labels.get(DRILL_PID_LABEL).and_then(|p| p.parse().ok()).unwrap_or(0);
        // Without the host, a pid says nothing: the drill may have run on another machine.
        let alive = if host.is_empty() { None } else { owner_alive(&host, pid) };
        DrillLeftover { what, reference, name, host, pid, alive }
    }

    /// Only what this machine's dead drills made is removed.
    fn removable(&self) -> bool {
        self.alive == Some(false)
    }

    /// As `lifeboat cleanup` lists it.
    pub(crate) fn describe(&self) -> Leftover {
        let kind = match self.what {
            Scratch::Container => "drill container",
            Scratch::Volume => "drill volume",
            Scratch::Image => "drill image",
        };
        let action = match self.alive {
            Some(false) => format!(
                "the drill that made it (process {} of this host) is gone: remove it",
                self.pid
            ),
            Some(true) => format!("left alone: drill process {} is running", self.pid),
            None if self.host.is_empty() => "left alone: made by an older version that did not \
                 record its host; remove it by hand once no drill runs"
                .to_string(),
            None => format!(
                "left alone: another host's (drill process {} on {})",
                self.pid,
                self.host.rsplit_once(' ').map_or(self.host.as_str(), |(host, _)| host)
            ),
        };
        Leftover {
            kind: kind.into(),
            name: self.name.clone(),
            target: None,
            action,
            done: false,
            error: None,
        }
    }

    /// Removes it; an image another container uses is kept (never forced).
    pub(crate) async fn remove(&self, docker: &Docker) -> std::result::Result<(), ContainerError> {
        let removed = match self.what {
            Scratch::Container => {
                let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
                docker.remove_container(&self.reference, Some(options)).await
            }
            Scratch::Volume => {
                let options = RemoveVolumeOptions { force: false };
                docker.remove_volume(&self.reference, Some(options)).await
            }
            Scratch::Image => {
                let options =
                    RemoveImageOptions { force: false, noprune: false, ..Default::default() };
                docker.remove_image(&self.reference, Some(options), None).await.map(drop)
            }
        };
        match removed {
            // Gone already, or (an image) taken into use by a container that is not the drill's.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) if self.what == Scratch::Image => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
            | Ok(()) => Ok(()),
            Err(e) => Err(ContainerError::engine("removing a drill's leftover", &self.name, e)),
        }
    }
}

/// The scratch objects drills left on the engine (or are using now): containers, then
/// volumes, then images, the order they can be removed in.
pub(crate) async fn survey(
    docker: &Docker,
) -> std::result::Result<Vec<DrillLeftover>, ContainerError> {
    let filters = Some(HashMap::from([("label".to_string(), vec![DRILL_PID_LABEL.to_string()])]));
    let mut found = Vec::new();
    let options =
        ListContainersOptions { all: true, filters: filters.clone(), ..Default::default() };
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| ContainerError::engine("listing containers", "drills' scratch", e))?;
    for c in containers {
        let Some(id) = c.id else { continue };
        let name = c
            .names
            .and_then(|n| n.into_iter().next())
            .map_or_else(|| id.clone(), |n| n.trim_start_matches('/').to_string());
        found.push(DrillLeftover::new(Scratch::Container, id, name, &c.labels.unwrap_or_default()));
    }
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions { filters: filters.clone() }))
        .await
        .map_err(|e| ContainerError::engine("listing volumes", "drills' scratch", e))?;
    for v in volumes.volumes.unwrap_or_default() {
        found.push(DrillLeftover::new(Scratch::Volume, v.name.clone(), v.name, &v.labels));
    }
    let images = docker
        .list_images(Some(ListImagesOptions { filters, ..Default::default() }))
        .await
        .map_err(|e| ContainerError::engine("listing images", "drills' scratch", e))?;
    for image in images {
        let own: Vec<&String> =
            image.repo_tags.iter().filter(|t| t.starts_with(&format!("{DRILL_IMAGES}/"))).collect();
        let untagged = image.repo_tags.iter().all(|t| t == "<none>:<none>");
        // Only the drill's own tags: a tag someone else gave the image keeps it.
        let references: Vec<String> =
            if untagged { vec![image.id.clone()] } else { own.into_iter().cloned().collect() };
        for reference in references {
            found.push(DrillLeftover::new(
                Scratch::Image,
                reference.clone(),
                reference,
                &image.labels,
            ));
        }
    }
    Ok(found)
}

/// Removes what this host's dead drills left; returns how many objects went.
async fn clean_dead_drills() -> usize {
    let Ok(docker) = connect().await else {
        return 0;
    };
    let found = match survey(&docker).await {
        Ok(found) => found,
        Err(e) => {
            warn!(error = %e, "could not list drills' leftovers");
            return 0;
        }
    };
    let mut removed = 0;
    for leftover in found.iter().filter(|l| l.removable()) {
        match leftover.remove(&docker).await {
            Ok(()) => {
                info!(name = %leftover.name, "removed a drill's leftover");
                removed += 1;
            }
            Err(e) => {
                warn!(name = %leftover.name, error = %e, "could not remove a drill's leftover")
            }
        }
    }
    removed
}

/// Cleans (with `force`) or lists drills' leftovers for `lifeboat cleanup`.
pub(crate) async fn drill_leftovers(
    docker: &Docker,
    force: bool,
) -> std::result::Result<Vec<Leftover>, ContainerError> {
    let mut out = Vec::new();
    for leftover in survey(docker).await? {
        let mut listed = leftover.describe();
        if force && leftover.removable() {
            match leftover.remove(docker).await {
                Ok(()) => listed.done = true,
                Err(e) => listed.error = Some(e.to_string()),
            }
        }
        out.push(listed);
    }
    Ok(out)
}
