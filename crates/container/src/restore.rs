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
use crate::leftovers::{Existing, Item, Journal, Leftover};
use crate::metadata::ContainerMetadata;
use crate::recreate::{Fill, MountPlan, Recreated, Recreation, start_and_settle};

/// How long a restored container must keep running before the old one is removed.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(5);

/// A prepared container restore.
pub struct ContainerRestorePlan {
    docker: Docker,
    meta: ContainerMetadata,
    snapshot: SnapshotId,
    target: String,
    existing: Option<Existing>,
    /// What interrupted restores of the target left, put right before anything else.
    recovery: Vec<Leftover>,
    force: bool,
    mounts: Vec<MountPlan>,
    /// The snapshot's own container, still on this engine, when restoring a copy under
    /// another name: the copy does not publish its ports, the original holds them.
    original_beside: Option<String>,
    settle: Duration,
}

/// How a failed swap ended for the container being replaced.
enum PutBack {
    /// There was none.
    NoOriginal,
    /// It has its name back and runs again if it ran before.
    Done,
    /// Putting it back failed.
    Failed {
        /// Its id.
        id: String,
        /// The name it was parked under, when the rename aside had happened.
        parked: Option<String>,
        /// What failed.
        why: String,
    },
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
        let mut existing = holder(&docker, target).await?;
        // An interrupted restore of the target is put right first; what holds the name then
        // is what this restore replaces.
        let leftovers = crate::leftovers::survey(&docker, Some(target)).await?;
        for item in &leftovers {
            match item {
                Item::InProgress(journal) => {
                    return Err(CoreError::InvalidInput {
                        what: format!(
                            "container {target} is being restored by process {} on {}",
                            journal.pid, journal.host
                        ),
                        hint: "wait for that restore to end; if its machine is gone, `lifeboat cleanup --force` there puts the container right".into(),
                    });
                }
                Item::Interrupted { after, .. } => existing = after.clone(),
                Item::Parked { id, give_back: true, .. } => {
                    existing = Some(Existing { id: id.clone(), running: false });
                }
                _ => {}
            }
        }
        if existing.is_some() && !options.force {
            return Err(CoreError::TargetExists { target: format!("container {target}") });
        }
        let id = snapshot.id();
        let mounts = plan_mounts(&docker, &meta, &id.to_string(), None, target).await?;
        let original_beside = if target != meta.container
            && docker.inspect_container(&meta.container, None).await.is_ok()
        {
            Some(meta.container.clone())
        } else {
            None
        };
        Ok(ContainerRestorePlan {
            docker,
            meta,
            snapshot: id,
            target: target.to_string(),
            existing,
            recovery: leftovers.iter().map(|i| i.describe()).collect(),
            force: options.force,
            mounts,
            original_beside,
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
        crate::leftovers::staging_name(&self.target, &self.short_id())
    }

    fn old_name(&self) -> String {
        crate::leftovers::parked_name(&self.target)
    }

    fn recreation(&self) -> Recreation<'_> {
        Recreation {
            docker: &self.docker,
            meta: &self.meta,
            snapshot: self.snapshot.to_string(),
            name: self.new_name(),
            image_repo: format!("lifeboat-restore/{}", self.target),
            mounts: self.mounts.clone(),
            isolated: false,
            check_files: false,
            publish_ports: self.original_beside.is_none(),
            labels: Default::default(),
        }
    }

    /// Volumes the restore creates (and an interrupted one leaves).
    fn created_volumes(&self) -> Vec<String> {
        self.mounts
            .iter()
            .filter(|p| p.mount.is_volume() && p.fill == Fill::Always)
            .filter_map(|p| p.volume.clone())
            .collect()
    }

    /// Stops the old container, gives the new one the name and starts it. On failure
    /// removes the new container and puts the old one back. Returns the old container's
    /// parking name and the settle checks.
    async fn swap(
        &self,
        new: &str,
        existing: Option<&Existing>,
    ) -> std::result::Result<(Option<String>, Vec<Check>), (ContainerError, PutBack)> {
        let mut parked = None;
        match self.swap_steps(new, existing, &mut parked).await {
            Ok(checks) => Ok((parked, checks)),
            Err(e) => {
                // Free the name before the original takes it back.
                let remove = RemoveContainerOptions { force: true, ..Default::default() };
                if let Err(err) = self.docker.remove_container(new, Some(remove)).await {
                    warn!(container = %new, error = %err, "could not remove the new container");
                }
                let back = match existing {
                    Some(old) => self.put_back(old, parked).await,
                    None => PutBack::NoOriginal,
                };
                Err((e, back))
            }
        }
    }

    async fn swap_steps(
        &self,
        new: &str,
        existing: Option<&Existing>,
        parked: &mut Option<String>,
    ) -> Result<Vec<Check>> {
        if let Some(old) = existing {
            if old.running {
                let stop = StopContainerOptions { t: Some(10), ..Default::default() };
                self.docker
                    .stop_container(&old.id, Some(stop))
                    .await
                    .map_err(|e| ContainerError::engine("stopping", &self.target, e))?;
            }
            let name = self.old_name();
            let rename = RenameContainerOptions { name: name.clone() };
            self.docker
                .rename_container(&old.id, rename)
                .await
                .map_err(|e| ContainerError::engine("renaming", &self.target, e))?;
            *parked = Some(name);
        }
        let rename = RenameContainerOptions { name: self.target.clone() };
        self.docker
            .rename_container(new, rename)
            .await
            .map_err(|e| ContainerError::engine("renaming", new, e))?;
        if !self.meta.running {
            return Ok(vec![stopped_check()]);
        }
        start_and_settle(&self.docker, new, &self.target, self.settle).await
    }

    /// Gives the original container its name back and starts it if it was running, then
    /// checks with the engine that it is so.
    async fn put_back(&self, old: &Existing, parked: Option<String>) -> PutBack {
        let mut problems = Vec::new();
        if parked.is_some() {
            let rename = RenameContainerOptions { name: self.target.clone() };
            if let Err(e) = self.docker.rename_container(&old.id, rename).await {
                problems.push(format!("renaming it back: {e}"));
            }
        }
        let mut start_error = None;
        if old.running {
            // Fails harmlessly when it never stopped.
            start_error = self.docker.start_container(&old.id, None).await.err();
        }
        match self.docker.inspect_container(&old.id, None).await {
            Ok(info) => {
                let running = info.state.and_then(|s| s.running).unwrap_or(false);
                if old.running && !running {
                    let why = start_error.map_or_else(String::new, |e| format!(": {e}"));
                    problems.push(format!("it does not run again{why}"));
                }
                let name = info.name.unwrap_or_default();
                if name.trim_start_matches('/') != self.target {
                    problems.push(format!("it is named {name}"));
                }
            }
            Err(e) => problems.push(format!("inspecting it: {e}")),
        }
        if problems.is_empty() {
            info!(container = %self.target, "original container put back");
            PutBack::Done
        } else {
            let why = problems.join("; ");
            warn!(container = %old.id, "could not put the original container back: {why}");
            PutBack::Failed { id: old.id.clone(), parked, why }
        }
    }
}

/// A snapshot of a stopped container restores a stopped container: starting it would run
/// what its owner had stopped (a finished job, a service taken down on purpose).
fn stopped_check() -> Check {
    Check::pass("stopped", "not started: the container was not running when it was captured")
}

/// The container named `target`, if there is one.
async fn holder(docker: &Docker, target: &str) -> lifeboat_core::Result<Option<Existing>> {
    match docker.inspect_container(target, None).await {
        Ok(info) => Ok(Some(Existing {
            id: info.id.unwrap_or_else(|| target.to_string()),
            running: info.state.and_then(|s| s.running).unwrap_or(false),
        })),
        Err(e) => match ContainerError::engine("inspecting", target, e) {
            ContainerError::NoSuchContainer { .. } => Ok(None),
            other => Err(other.into()),
        },
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
    replacing: &str,
) -> lifeboat_core::Result<Vec<MountPlan>> {
    let short: String = snapshot.chars().take(8).collect();
    let mut plans = Vec::new();
    for (i, mount) in meta.mounts.iter().enumerate() {
        let plan = if let Some(scratch) = scratch {
            MountPlan {
                mount: mount.clone(),
                volume: Some(format!("{scratch}-{i}")),
                fill: Fill::Always,
                shared_with: Vec::new(),
            }
        } else if mount.is_volume() && is_anonymous(&mount.source) {
            MountPlan {
                mount: mount.clone(),
                volume: None,
                fill: Fill::Always,
                shared_with: Vec::new(),
            }
        } else if mount.is_volume()
            && let shared_with = other_users(docker, &mount.source, replacing).await?
            && !shared_with.is_empty()
        {
            // Another container uses it: a new volume would split them, writing this one
            // would change that container's data under it.
            MountPlan {
                mount: mount.clone(),
                volume: Some(mount.source.clone()),
                fill: Fill::Never,
                shared_with,
            }
        } else if mount.is_volume() {
            let mut name = mount.source.clone();
            if volume_exists(docker, &name).await? {
                name = format!("{}-{short}", mount.source);
                if volume_exists(docker, &name).await? {
                    name = format!("{}-{short}-{}", mount.source, chrono::Utc::now().timestamp());
                }
            }
            MountPlan {
                mount: mount.clone(),
                volume: Some(name),
                fill: Fill::Always,
                shared_with: Vec::new(),
            }
        } else {
            // Bind mounts: the host folder is the host's. It is attached again, and filled
            // from the snapshot only when it is empty (a lost folder comes back).
            MountPlan {
                mount: mount.clone(),
                volume: None,
                fill: Fill::IfEmpty,
                shared_with: Vec::new(),
            }
        };
        plans.push(plan);
    }
    Ok(plans)
}

/// The containers other than `replacing` (and lifeboat's working containers) that mount
/// `volume`.
async fn other_users(docker: &Docker, volume: &str, replacing: &str) -> Result<Vec<String>> {
    let options = bollard::query_parameters::ListContainersOptions {
        all: true,
        filters: Some(std::collections::HashMap::from([(
            "volume".to_string(),
            vec![volume.to_string()],
        )])),
        ..Default::default()
    };
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| ContainerError::engine("listing containers using", volume, e))?;
    Ok(list
        .into_iter()
        .filter_map(|c| c.names?.into_iter().next())
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| n != replacing && !crate::leftovers::is_lifeboat_working_container(n))
        .collect())
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
        let mut steps: Vec<PlanStep> = self
            .recovery
            .iter()
            .map(|l| {
                PlanStep::new(
                    format!("put right ({})", l.kind),
                    format!("{}: {}", l.name, l.action),
                )
            })
            .collect();
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
            let detail = match (&plan.volume, plan.fill) {
                (_, Fill::Never) => format!(
                    "volume {} is shared with {}: attach it as it is, still shared (the snapshot's copy of it is not written)",
                    plan.mount.source,
                    plan.shared_with.join(", ")
                ),
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
                (None, Fill::Always) => {
                    format!("fill the anonymous volume at {}", plan.mount.destination)
                }
                (None, Fill::IfEmpty) => format!(
                    "attach bind mount {} at {}; fill it from the snapshot if the host folder is empty, else leave it as it is",
                    plan.mount.source, plan.mount.destination
                ),
            };
            steps.push(PlanStep::new("volume", detail));
        }
        let ports = match &self.original_beside {
            Some(original) => format!("ports not published: {original} still holds them"),
            None => "ports".to_string(),
        };
        steps.push(PlanStep::new(
            "create",
            format!(
                "create {} with the saved configuration (image {}, cmd, env, labels, {ports}, restart policy, networks)",
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
        if self.meta.running {
            steps.push(PlanStep::new(
                "start and settle",
                format!(
                    "start {} and require it to keep running (and be healthy, if it has a health check) for {:.0} s, or to exit 0 if it does not restart",
                    self.target,
                    self.settle.as_secs_f64()
                ),
            ));
        } else {
            steps.push(PlanStep::new("leave stopped", stopped_check().detail));
        }
        if self.existing.is_some() {
            steps.push(PlanStep::new(
                "finish",
                "remove the old container; on any failure before this, it is put back running",
            ));
        }
        steps
    }

    async fn execute(&self, ctx: &RestoreContext<'_>) -> lifeboat_core::Result<RestoreReport> {
        let mut existing = self.existing.clone();
        if !self.recovery.is_empty() {
            crate::leftovers::clean_target(&self.docker, &self.target).await?;
            existing = holder(&self.docker, &self.target).await?;
            if existing.is_some() && !self.force {
                return Err(CoreError::TargetExists {
                    target: format!("container {}", self.target),
                });
            }
        }
        let mut safety = None;
        if let Some(old) = &existing {
            let source = ContainerBackup::new(old.id.clone());
            // Named after the container it protects, as `backup container TARGET` would name
            // it: named after the restored snapshot it would pass for that snapshot's data.
            safety = Some(ctx.save_safety(&source, &self.target, Tags::new()).await?);
            info!(container = %self.target, safety = ?safety, "safety snapshot taken");
        }
        let recreation = self.recreation();
        // Written before the first change on the engine, removed after the last: a restore
        // killed in between is put right by the next one (see `leftovers`).
        let journal = Journal::new(
            &self.target,
            &self.snapshot.to_string(),
            &self.new_name(),
            &recreation.image_name(),
            existing.clone(),
            self.meta.running,
            self.created_volumes(),
        );
        journal.write(&self.docker).await?;

        ctx.progress
            .start(&format!("restore container {}", self.target), Some(self.meta.stream_length()));
        let (created, result) = recreation.run(ctx.snapshot, ctx.progress).await;
        ctx.progress.finish();
        if let Err(e) = result {
            created.discard(&self.docker).await;
            journal.remove(&self.docker).await;
            return Err(e.into());
        }
        let Some(new) = created.container.clone() else {
            created.discard(&self.docker).await;
            journal.remove(&self.docker).await;
            return Err(ContainerError::Engine {
                action: "creating container",
                subject: self.target.clone(),
                message: "no container was created".into(),
            }
            .into());
        };
        // From stopping the original until the new one runs (and the original is removed),
        // or the original runs again, the name is in between: an interrupt waits for the end.
        let _swap = lifeboat_core::critical::CriticalSection::enter();
        let (parked, checks) = match self.swap(&new, existing.as_ref()).await {
            Ok(done) => done,
            Err((e, back)) => {
                // The swap removed the new container; its volumes and image go too.
                let kept = Recreated { container: None, ..created };
                kept.discard(&self.docker).await;
                let keep_journal = matches!(back, PutBack::Failed { .. });
                let error = CoreError::from(e);
                let hint = error.hint().unwrap_or_default();
                let (what, hint) = match back {
                    PutBack::NoOriginal => (error.to_string(), hint),
                    PutBack::Done => {
                        (format!("{error}; the original container is back as it was"), hint)
                    }
                    PutBack::Failed { id, parked, why } => {
                        let name = parked.as_deref().unwrap_or(&self.target);
                        (
                            format!("{error}; putting the original container back failed: {why}"),
                            format!(
                                "the original is container {} (now named {name}): `lifeboat cleanup --force` puts it back, or `docker rename {name} {}` and `docker start {}`",
                                id.chars().take(12).collect::<String>(),
                                self.target,
                                self.target
                            ),
                        )
                    }
                };
                if keep_journal {
                    // Kept: `lifeboat cleanup --force` or the next restore tries again.
                    warn!(journal = %journal.volume, "restore journal kept for the next attempt");
                } else {
                    journal.remove(&self.docker).await;
                }
                return Err(CoreError::InvalidInput { what, hint });
            }
        };
        let mut removed_volumes = Vec::new();
        if let Some(parked) = &parked {
            // Volumes an earlier restore made for the old container (labelled as restored)
            // go with it too, once nothing mounts them: the safety snapshot, read back before
            // anything was replaced, holds their data. A volume the user made is never
            // removed, and the engine refuses to remove one still in use.
            let made_by_restores = volumes_made_by_restores(&self.docker, parked).await;
            // Its anonymous volumes go with it: the restored container has its own, and the
            // safety snapshot holds these.
            let remove = RemoveContainerOptions { force: true, v: true, ..Default::default() };
            if let Err(e) = self.docker.remove_container(parked, Some(remove)).await {
                warn!(container = %parked, error = %e, "could not remove the old container; `lifeboat cleanup --force` removes it");
            } else {
                for volume in made_by_restores {
                    let none = None::<bollard::query_parameters::RemoveVolumeOptions>;
                    match self.docker.remove_volume(&volume, none).await {
                        Ok(()) => removed_volumes.push(volume),
                        Err(e) => {
                            info!(volume = %volume, error = %e, "an earlier restore's volume stays")
                        }
                    }
                }
            }
        }
        journal.remove(&self.docker).await;
        // The images of earlier restores of this target, the one the old container ran
        // included, are unused now.
        crate::leftovers::remove_unused_images(&self.docker, &self.target).await;
        let mut all = created.checks;
        all.extend(checks);
        for volume in removed_volumes {
            all.push(Check::pass(
                format!("volume {volume}"),
                "removed: an earlier restore made it for the replaced container, and the safety snapshot holds it",
            ));
        }
        if let Some(original) = &self.original_beside {
            all.push(Check::pass(
                "ports",
                format!("not published: the original container {original} holds them"),
            ));
        }
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

/// The named volumes `container` mounts that an earlier lifeboat restore created (they carry
/// [`crate::recreate::RESTORED_LABEL`]).
async fn volumes_made_by_restores(docker: &Docker, container: &str) -> Vec<String> {
    let Ok(inspected) = docker.inspect_container(container, None).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in inspected.mounts.unwrap_or_default().into_iter().filter_map(|m| m.name) {
        if let Ok(volume) = docker.inspect_volume(&name).await
            && volume.labels.contains_key(crate::recreate::RESTORED_LABEL)
        {
            out.push(name);
        }
    }
    out
}
