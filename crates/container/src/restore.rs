//! Restoring a container: recreate it from the snapshot beside the existing one, swap
//! names, start it, watch it settle, and only then remove the old one. Any failure puts the
//! original back, running as it was.

use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::{
    RemoveContainerOptions, RenameContainerOptions, StopContainerOptions,
};
use lifeboat_core::{
    Check, Error as CoreError, PRE_RESTORE_TAG, PlanStep, RestoreContext, RestoreOptions,
    RestorePlan, RestoreReport, Snapshot, SnapshotId, Tags,
};
use tracing::{info, warn};

use crate::backup::ContainerBackup;
use crate::engine::connect;
use crate::error::{ContainerError, Result};
use crate::metadata::ContainerMetadata;
use crate::recreate::{MountPlan, Recreated, Recreation, start_and_settle};

/// How long a restored container must keep running before the old one is removed.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(5);

/// The container a restore replaces.
#[derive(Debug, Clone)]
struct Existing {
    id: String,
    running: bool,
}

/// A prepared container restore.
pub struct ContainerRestorePlan {
    docker: Docker,
    meta: ContainerMetadata,
    snapshot: SnapshotId,
    snapshot_name: String,
    target: String,
    existing: Option<Existing>,
    mounts: Vec<MountPlan>,
    settle: Duration,
}

impl ContainerRestorePlan {
    /// Plans restoring `snapshot` as the container `target`. Refuses an existing container
    /// unless `options.force`. Volumes that already exist are never written: their contents
    /// go into new volumes named after the snapshot.
    ///
    /// # Errors
    /// The engine is unreachable, the snapshot is not a container capture, or the target
    /// exists without `force`.
    pub async fn prepare(
        snapshot: &dyn Snapshot,
        target: &str,
        options: &RestoreOptions,
    ) -> lifeboat_core::Result<Self> {
        let meta = ContainerMetadata::from_value(&snapshot.manifest().metadata)?;
        if target.is_empty() || target.contains('/') {
            return Err(CoreError::InvalidInput {
                what: format!("{target:?} is not a container name"),
                hint: "give a name such as container:app".into(),
            });
        }
        let docker = connect().await?;
        let existing = match docker.inspect_container(target, None).await {
            Ok(info) => Some(Existing {
                id: info.id.unwrap_or_else(|| target.to_string()),
                running: info.state.and_then(|s| s.running).unwrap_or(false),
            }),
            Err(e) => match ContainerError::engine("inspecting", target, e) {
                ContainerError::NoSuchContainer { .. } => None,
                other => return Err(other.into()),
            },
        };
        if existing.is_some() && !options.force {
            return Err(CoreError::TargetExists { target: format!("container {target}") });
        }
        let id = snapshot.id();
        let mounts = plan_mounts(&docker, &meta, &id.to_string(), None).await?;
        Ok(ContainerRestorePlan {
            docker,
            meta,
            snapshot: id,
            snapshot_name: snapshot.manifest().name.clone(),
            target: target.to_string(),
            existing,
            mounts,
            settle: DEFAULT_SETTLE,
        })
    }

    /// Sets how long the new container must keep running before the swap is final.
    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    fn short_id(&self) -> String {
        self.snapshot.to_string().chars().take(8).collect()
    }

    fn new_name(&self) -> String {
        format!("{}-lifeboat-new-{}", self.target, self.short_id())
    }

    fn old_name(&self) -> String {
        format!("{}-lifeboat-old-{}", self.target, chrono::Utc::now().format("%Y%m%d%H%M%S"))
    }

    async fn recreate(
        &self,
        snapshot: &dyn Snapshot,
        progress: &dyn lifeboat_core::Progress,
    ) -> (Recreated, Result<()>) {
        let recreation = Recreation {
            docker: &self.docker,
            meta: &self.meta,
            snapshot: self.snapshot.to_string(),
            name: self.new_name(),
            image_repo: format!("lifeboat-restore/{}", self.target),
            mounts: self.mounts.clone(),
            isolated: false,
            check_files: false,
            labels: Default::default(),
        };
        recreation.run(snapshot, progress).await
    }

    /// Stops the old container, gives the new one the name and starts it; on failure puts
    /// the old one back. Returns the old container's parking name.
    async fn swap(
        &self,
        new: &str,
        existing: Option<&Existing>,
    ) -> Result<(Option<String>, Vec<Check>)> {
        let parked = match existing {
            Some(old) => {
                if old.running {
                    let stop = StopContainerOptions { t: Some(10), ..Default::default() };
                    self.docker
                        .stop_container(&old.id, Some(stop))
                        .await
                        .map_err(|e| ContainerError::engine("stopping", &self.target, e))?;
                }
                let parked = self.old_name();
                let rename = RenameContainerOptions { name: parked.clone() };
                if let Err(e) = self.docker.rename_container(&old.id, rename).await {
                    self.put_back(old, None).await;
                    return Err(ContainerError::engine("renaming", &self.target, e));
                }
                Some(parked)
            }
            None => None,
        };
        let attempt = async {
            let rename = RenameContainerOptions { name: self.target.clone() };
            self.docker
                .rename_container(new, rename)
                .await
                .map_err(|e| ContainerError::engine("renaming", new, e))?;
            start_and_settle(&self.docker, new, &self.target, self.settle).await
        };
        match attempt.await {
            Ok(checks) => Ok((parked, checks)),
            Err(e) => {
                // Free the name before the original takes it back.
                let remove = RemoveContainerOptions { force: true, ..Default::default() };
                let _ = self.docker.remove_container(new, Some(remove)).await;
                if let Some(old) = existing {
                    self.put_back(old, parked.as_deref()).await;
                }
                Err(e)
            }
        }
    }

    /// Gives the original container its name back and starts it if it was running.
    async fn put_back(&self, old: &Existing, parked: Option<&str>) {
        if parked.is_some() {
            let rename = RenameContainerOptions { name: self.target.clone() };
            if let Err(e) = self.docker.rename_container(&old.id, rename).await {
                warn!(container = %old.id, error = %e, "could not give the original its name back");
            }
        }
        if old.running
            && let Err(e) = self.docker.start_container(&old.id, None).await
        {
            warn!(container = %old.id, error = %e, "could not start the original again");
        }
        info!(container = %self.target, "original container put back");
    }
}

/// Decides, per mount, where its contents go: existing volumes are never written.
/// With `scratch` (a drill's container name), everything, bind mounts too, goes into
/// scratch volumes named after it.
pub(crate) async fn plan_mounts(
    docker: &Docker,
    meta: &ContainerMetadata,
    snapshot: &str,
    scratch: Option<&str>,
) -> lifeboat_core::Result<Vec<MountPlan>> {
    let short: String = snapshot.chars().take(8).collect();
    let mut plans = Vec::new();
    for (i, mount) in meta.mounts.iter().enumerate() {
        let plan = if let Some(scratch) = scratch {
            MountPlan { mount: mount.clone(), volume: Some(format!("{scratch}-{i}")), write: true }
        } else if mount.is_volume() && is_anonymous(&mount.source) {
            MountPlan { mount: mount.clone(), volume: None, write: true }
        } else if mount.is_volume() {
            let mut name = mount.source.clone();
            if volume_exists(docker, &name).await? {
                name = format!("{}-{short}", mount.source);
                if volume_exists(docker, &name).await? {
                    name = format!("{}-{short}-{}", mount.source, chrono::Utc::now().timestamp());
                }
            }
            MountPlan { mount: mount.clone(), volume: Some(name), write: true }
        } else {
            // Bind mounts: the host folder is the host's; it is attached again as it is.
            MountPlan { mount: mount.clone(), volume: None, write: false }
        };
        plans.push(plan);
    }
    Ok(plans)
}

/// Engine-generated volume names are 64 hex digits.
fn is_anonymous(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn volume_exists(docker: &Docker, name: &str) -> Result<bool> {
    match docker.inspect_volume(name).await {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
            Ok(false)
        }
        Err(e) => Err(ContainerError::engine("inspecting volume", name, e)),
    }
}

#[async_trait]
impl RestorePlan for ContainerRestorePlan {
    fn steps(&self) -> Vec<PlanStep> {
        let mut steps = Vec::new();
        if self.existing.is_some() {
            steps.push(PlanStep::new(
                "safety snapshot",
                format!("back up the current container {} (tag {PRE_RESTORE_TAG})", self.target),
            ));
        }
        steps.push(PlanStep::new(
            "import",
            format!(
                "import the filesystem of {} as image lifeboat-restore/{}:{}",
                self.meta.container,
                self.target,
                self.short_id()
            ),
        ));
        for plan in &self.mounts {
            let detail = match (&plan.volume, plan.write) {
                (Some(volume), _) if *volume == plan.mount.source => {
                    format!(
                        "create volume {volume} and fill {} from the snapshot",
                        plan.mount.destination
                    )
                }
                (Some(volume), _) => format!(
                    "volume {} exists and is left alone; fill new volume {volume} at {}",
                    plan.mount.source, plan.mount.destination
                ),
                (None, true) => format!("fill the anonymous volume at {}", plan.mount.destination),
                (None, false) => format!(
                    "attach bind mount {} at {} as it is (host folders are not overwritten)",
                    plan.mount.source, plan.mount.destination
                ),
            };
            steps.push(PlanStep::new("volume", detail));
        }
        steps.push(PlanStep::new(
            "create",
            format!(
                "create {} with the saved configuration (image {}, cmd, env, labels, ports, restart policy, networks)",
                self.new_name(),
                self.meta.image
            ),
        ));
        if let Some(old) = &self.existing {
            steps.push(PlanStep::new(
                "swap",
                format!(
                    "{} {}, rename it aside, give the new container its name",
                    if old.running { "stop" } else { "keep stopped" },
                    self.target
                ),
            ));
        } else {
            steps.push(PlanStep::new(
                "name",
                format!("rename the new container to {}", self.target),
            ));
        }
        steps.push(PlanStep::new(
            "start and settle",
            format!(
                "start {} and require it to keep running (and be healthy, if it has a health check) for {:.0} s",
                self.target,
                self.settle.as_secs_f64()
            ),
        ));
        if self.existing.is_some() {
            steps.push(PlanStep::new(
                "finish",
                "remove the old container; on any failure before this, it is put back running",
            ));
        }
        steps
    }

    async fn execute(&self, ctx: &RestoreContext<'_>) -> lifeboat_core::Result<RestoreReport> {
        let mut safety = None;
        if let Some(old) = &self.existing {
            let tags: Tags = [(PRE_RESTORE_TAG.to_string(), self.snapshot.to_string())].into();
            let source = ContainerBackup::new(old.id.clone());
            safety = Some(ctx.safety_net.save(&source, &self.snapshot_name, tags).await?);
            info!(container = %self.target, safety = ?safety, "safety snapshot taken");
        }
        // A leftover from an interrupted attempt at the same restore.
        let leftover = RemoveContainerOptions { force: true, ..Default::default() };
        let _ = self.docker.remove_container(&self.new_name(), Some(leftover)).await;

        ctx.progress
            .start(&format!("restore container {}", self.target), Some(self.meta.stream_length()));
        let (created, result) = self.recreate(ctx.snapshot, ctx.progress).await;
        ctx.progress.finish();
        if let Err(e) = result {
            created.discard(&self.docker).await;
            return Err(e.into());
        }
        let Some(new) = created.container.clone() else {
            created.discard(&self.docker).await;
            return Err(ContainerError::Engine {
                action: "creating container",
                subject: self.target.clone(),
                message: "no container was created".into(),
            }
            .into());
        };
        let (parked, checks) = match self.swap(&new, self.existing.as_ref()).await {
            Ok(done) => done,
            Err(e) => {
                let kept = Recreated { container: None, ..created };
                kept.discard(&self.docker).await;
                let back = if self.existing.is_some() {
                    "; the original container is back as it was"
                } else {
                    ""
                };
                let error = CoreError::from(e);
                let hint = error.hint().unwrap_or_default();
                return Err(CoreError::InvalidInput { what: format!("{error}{back}"), hint });
            }
        };
        if let Some(parked) = &parked {
            let remove = RemoveContainerOptions { force: true, ..Default::default() };
            if let Err(e) = self.docker.remove_container(parked, Some(remove)).await {
                warn!(container = %parked, error = %e, "could not remove the old container; remove it by hand");
            }
        }
        let mut all = created.checks;
        all.extend(checks);
        for plan in
            self.mounts.iter().filter(|p| p.volume.as_ref().is_some_and(|v| *v != p.mount.source))
        {
            all.push(Check::pass(
                format!("volume {}", plan.mount.destination),
                format!(
                    "restored into new volume {}; the existing volume {} was left as it was",
                    plan.volume.as_deref().unwrap_or_default(),
                    plan.mount.source
                ),
            ));
        }
        Ok(RestoreReport {
            target: format!("container {}", self.target),
            snapshot: self.snapshot,
            safety_snapshot: safety,
            bytes: created.bytes,
            checks: all,
        })
    }
}
