//! What interrupted restores leave on the engine, and putting it right.
//!
//! A restore can be killed at any step (SIGKILL, the OOM killer, a reboot). Killed after it
//! stopped the original, it leaves the original `Exited`, and a restart policy such as
//! `unless-stopped` keeps a container stopped through the API down for good. So before its
//! first change, a restore writes down what it is about to do in a journal the engine keeps
//! (an empty volume whose labels name the target, the original and whether it ran, the
//! staging container, the volumes and image made for it), and removes the journal last. The
//! engine cannot relabel a container, so the journal cannot live on the containers.
//!
//! A journal whose process is gone is an interrupted restore. The next restore of that
//! target, or `lifeboat cleanup --force`, finishes what can be finished and undoes the rest:
//! - the restored container holds the target's name and came up (or is meant to be
//!   stopped): the restore is done, the parked original goes (the safety snapshot holds it);
//! - otherwise the restored container and what was made for it go, and the original gets
//!   its name back and runs again if it ran.
//!
//! Without a journal (restores by older versions), staging and parked containers are told
//! by their names, and restore images by their repository or import comment.

use std::collections::{HashMap, HashSet};

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, VolumeCreateRequest};
use bollard::query_parameters::{
    ListContainersOptions, ListImagesOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveImageOptions, RenameContainerOptions,
};
use tracing::{info, warn};

use crate::engine::connect;
use crate::error::{ContainerError, Result};
use lifeboat_core::drill::SCRATCH_PREFIX;

/// Infix of a restore's staging container, `TARGET-lifeboat-new-SNAPSHOT`.
const STAGING: &str = "-lifeboat-new-";

/// Infix of an original parked during a restore's swap, `TARGET-lifeboat-old-TIME`.
const PARKED: &str = "-lifeboat-old-";

/// The staging container of restoring snapshot `short` (8 characters) to `target`.
pub(crate) fn staging_name(target: &str, short: &str) -> String {
    format!("{target}{STAGING}{short}")
}

/// The name an original is parked under while the restored container takes its name.
pub(crate) fn parked_name(target: &str) -> String {
    format!("{target}{PARKED}{}", chrono::Utc::now().format("%Y%m%d%H%M%S"))
}

/// Whether `name` is one of lifeboat's own working containers (a restore's staging or
/// parked container, a drill's scratch container), never a tenant of its own: Docker cannot
/// change a container's labels, so these carry the production labels of the container they
/// stand in for.
pub fn is_lifeboat_working_container(name: &str) -> bool {
    let name = name.trim_start_matches('/');
    name.starts_with(SCRATCH_PREFIX)
        || split_staging(name).is_some()
        || split_parked(name).is_some()
}

/// `(target, snapshot prefix)` of a staging container's name.
pub(crate) fn split_staging(name: &str) -> Option<(&str, &str)> {
    let (target, short) = name.rsplit_once(STAGING)?;
    let hex = short.len() == 8 && short.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && !target.is_empty()).then_some((target, short))
}

/// `(target, time)` of a parked original's name.
pub(crate) fn split_parked(name: &str) -> Option<(&str, &str)> {
    let (target, time) = name.rsplit_once(PARKED)?;
    let digits = time.len() == 14 && time.bytes().all(|b| b.is_ascii_digit());
    (digits && !target.is_empty()).then_some((target, time))
}

/// Repository prefix of restores' imported images.
pub(crate) const RESTORE_IMAGES: &str = "lifeboat-restore/";

/// The import comment of a restore's image; it names the repository, so an image that lost
/// its tag to a later import of the same snapshot is still known as a restore's.
pub(crate) fn import_comment(snapshot: &str, repo: &str) -> String {
    format!("lifeboat restore of snapshot {snapshot} into {repo}")
}

/// The import comment of images from versions before [`import_comment`].
const OLD_IMPORT_COMMENT: &str = "restored by lifeboat from snapshot ";

/// Label a journal volume carries, with the target as value; its other labels follow.
const JOURNAL: &str = "lifeboat.restore.journal";
const J_SNAPSHOT: &str = "lifeboat.restore.snapshot";
const J_STAGING: &str = "lifeboat.restore.staging";
const J_IMAGE: &str = "lifeboat.restore.image";
const J_ORIGINAL: &str = "lifeboat.restore.original";
const J_ORIGINAL_RUNNING: &str = "lifeboat.restore.original-running";
const J_START: &str = "lifeboat.restore.start";
const J_VOLUMES: &str = "lifeboat.restore.volumes";
const J_HOST: &str = "lifeboat.restore.host";
const J_PID: &str = "lifeboat.restore.pid";

/// This machine, as far as process ids mean anything: its host name and boot, as
/// `HOST BOOT_ID` (`LIFEBOAT_HOST` stands in for the host name when set).
///
/// Restore journals and drills' scratch objects carry it beside the process id that made
/// them, so [`owner_alive`] can tell a dead process of this machine from one of another
/// machine that shares the engine, or from a pid reused after a reboot.
pub(crate) fn this_host() -> String {
    let boot = lifeboat_core::host::boot_id().unwrap_or_default();
    format!("{} {boot}", lifeboat_core::host::host_name())
}

/// The container a restore replaces, as the restore found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Existing {
    /// Its id.
    pub id: String,
    /// Whether it ran.
    pub running: bool,
}

/// A restore's record of what it is about to do, kept by the engine as a volume's labels.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    /// The journal volume's name.
    pub volume: String,
    /// The container being restored.
    pub target: String,
    /// The snapshot restored.
    pub snapshot: String,
    /// The staging container's name.
    pub staging: String,
    /// The image imported for it.
    pub image: String,
    /// The container being replaced.
    pub original: Option<Existing>,
    /// Whether the restored container is meant to run (the snapshot's container ran).
    pub start: bool,
    /// Volumes created for the staging container.
    pub volumes: Vec<String>,
    /// [`this_host`] of the restoring process.
    pub host: String,
    /// Its process id.
    pub pid: u32,
}

impl Journal {
    /// A journal for this process.
    pub fn new(
        target: &str,
        snapshot: &str,
        staging: &str,
        image: &str,
        original: Option<Existing>,
        start: bool,
        volumes: Vec<String>,
    ) -> Self {
        let short: String = snapshot.chars().take(8).collect();
        let pid = std::process::id();
        Journal {
            volume: format!("{target}-lifeboat-journal-{short}-{pid}"),
            target: target.into(),
            snapshot: snapshot.into(),
            staging: staging.into(),
            image: image.into(),
            original,
            start,
            volumes,
            host: this_host(),
            pid,
        }
    }

    fn labels(&self) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (JOURNAL.to_string(), self.target.clone()),
            (J_SNAPSHOT.to_string(), self.snapshot.clone()),
            (J_STAGING.to_string(), self.staging.clone()),
            (J_IMAGE.to_string(), self.image.clone()),
            (J_START.to_string(), self.start.to_string()),
            (J_VOLUMES.to_string(), self.volumes.join(",")),
            (J_HOST.to_string(), self.host.clone()),
            (J_PID.to_string(), self.pid.to_string()),
        ]);
        if let Some(original) = &self.original {
            labels.insert(J_ORIGINAL.into(), original.id.clone());
            labels.insert(J_ORIGINAL_RUNNING.into(), original.running.to_string());
        }
        labels
    }

    fn from_labels(volume: String, labels: &HashMap<String, String>) -> Option<Self> {
        let get = |key: &str| labels.get(key).cloned();
        Some(Journal {
            volume,
            target: get(JOURNAL)?,
            snapshot: get(J_SNAPSHOT).unwrap_or_default(),
            staging: get(J_STAGING)?,
            image: get(J_IMAGE).unwrap_or_default(),
            original: get(J_ORIGINAL).map(|id| Existing {
                id,
                running: get(J_ORIGINAL_RUNNING).as_deref() == Some("true"),
            }),
            start: get(J_START).as_deref() != Some("false"),
            volumes: get(J_VOLUMES)
                .unwrap_or_default()
                .split(',')
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect(),
            host: get(J_HOST).unwrap_or_default(),
            pid: get(J_PID).and_then(|p| p.parse().ok()).unwrap_or(0),
        })
    }

    /// Writes the journal; nothing may change on the engine before this succeeds.
    pub async fn write(&self, docker: &Docker) -> Result<()> {
        let request = VolumeCreateRequest {
            name: Some(self.volume.clone()),
            labels: Some(self.labels()),
            ..Default::default()
        };
        docker
            .create_volume(request)
            .await
            .map_err(|e| ContainerError::engine("writing the restore journal", &self.volume, e))?;
        Ok(())
    }

    /// Removes the journal: the restore is over, one way or the other.
    pub async fn remove(&self, docker: &Docker) {
        if let Err(e) = docker
            .remove_volume(&self.volume, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            warn!(volume = %self.volume, error = %e, "could not remove the restore journal");
        }
    }

    /// Whether the restoring process still runs (see [`owner_alive`]).
    fn owner_alive(&self) -> Option<bool> {
        owner_alive(&self.host, self.pid)
    }
}

/// Whether process `pid` of `host` (a [`this_host`] value) still runs: `None` when it ran
/// on another machine, which alone can tell; `Some(false)` when it ran on this one before a
/// reboot, or in this boot and is gone.
pub(crate) fn owner_alive(host: &str, pid: u32) -> Option<bool> {
    let (host, boot) = host.rsplit_once(' ').unwrap_or((host, ""));
    lifeboat_core::host::owner_alive(host, Some(boot).filter(|b| !b.is_empty()), pid)
}

/// How an interrupted restore is put right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fix {
    /// The restored container holds the name and came up: remove the parked original.
    Finish,
    /// Remove what the restore made; the original gets its name back and runs if it ran.
    RollBack,
}

/// Something an interrupted restore (or an older version's) left on the engine.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A journal whose process is gone.
    Interrupted {
        journal: Journal,
        fix: Fix,
        /// The container holding the target's name once fixed.
        after: Option<Existing>,
    },
    /// A journal whose process still runs (or ran on another machine): never touched.
    InProgress(Journal),
    /// `TARGET-lifeboat-old-*` with no journal.
    Parked { id: String, name: String, target: String, give_back: bool },
    /// `TARGET-lifeboat-new-*` with no journal.
    Staging { id: String, name: String, target: String },
    /// A restore's image no container uses.
    Image { id: String, name: String },
}

/// One leftover, as `lifeboat cleanup` lists it: its `kind` is `interrupted restore`,
/// `restore in progress`, `parked container`, `staging container`, `image`,
/// `drill container`, `drill volume` or `drill image`.
pub use lifeboat_core::backend::Leftover;

impl Item {
    pub(crate) fn describe(&self) -> Leftover {
        let (kind, name, target, action) = match self {
            Item::Interrupted { journal, fix, .. } => {
                let action = match (fix, &journal.original) {
                    (Fix::Finish, Some(_)) => format!(
                        "the restored container holds the name {} and came up: remove the parked original",
                        journal.target
                    ),
                    (Fix::Finish, None) => "the restore was complete: remove its journal".into(),
                    (Fix::RollBack, Some(o)) => format!(
                        "remove the unfinished restore; give the original {} back its name{}",
                        short(&o.id),
                        if o.running { " and start it" } else { "" }
                    ),
                    (Fix::RollBack, None) => "remove the unfinished restore".into(),
                };
                (
                    "interrupted restore",
                    journal.volume.clone(),
                    Some(journal.target.clone()),
                    action,
                )
            }
            Item::InProgress(journal) => (
                "restore in progress",
                journal.volume.clone(),
                Some(journal.target.clone()),
                format!("left alone: process {} ({}) is restoring it", journal.pid, journal.host),
            ),
            Item::Parked { name, target, give_back, .. } => (
                "parked container",
                name.clone(),
                Some(target.clone()),
                if *give_back {
                    format!("no container is named {target}: give this one its name back")
                } else {
                    format!("{target} has been replaced: remove it")
                },
            ),
            Item::Staging { name, target, .. } => {
                ("staging container", name.clone(), Some(target.clone()), "remove it".to_string())
            }
            Item::Image { name, .. } => {
                ("image", name.clone(), None, "no container uses it: remove it".to_string())
            }
        };
        Leftover { kind: kind.into(), name, target, action, done: false, error: None }
    }
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// The leftovers on the engine: of restores of `target` only, or of all.
pub(crate) async fn survey(docker: &Docker, target: Option<&str>) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let filter = match target {
        Some(t) => format!("{JOURNAL}={t}"),
        None => JOURNAL.to_string(),
    };
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(HashMap::from([("label".to_string(), vec![filter])])),
        }))
        .await
        .map_err(|e| ContainerError::engine("listing volumes", "restore journals", e))?;
    let mut journals: Vec<Journal> = volumes
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| Journal::from_labels(v.name, &v.labels))
        .collect();
    journals.sort_by(|a, b| a.volume.cmp(&b.volume));
    for journal in &journals {
        if journal.owner_alive() == Some(false) {
            let (fix, after) = decide(docker, journal).await?;
            items.push(Item::Interrupted { journal: journal.clone(), fix, after });
        } else {
            items.push(Item::InProgress(journal.clone()));
        }
    }
    let covered_names: HashSet<&str> = journals.iter().map(|j| j.staging.as_str()).collect();
    let covered_ids: HashSet<&str> =
        journals.iter().filter_map(|j| j.original.as_ref()).map(|o| o.id.as_str()).collect();

    let containers = docker
        .list_containers(Some(ListContainersOptions { all: true, ..Default::default() }))
        .await
        .map_err(|e| ContainerError::engine("listing containers", "all", e))?;
    let names: HashSet<String> = containers
        .iter()
        .flat_map(|c| c.names.clone().unwrap_or_default())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    let mut parked = Vec::new();
    for c in &containers {
        let (Some(id), Some(name)) = (c.id.clone(), c.names.as_ref().and_then(|n| n.first()))
        else {
            continue;
        };
        let name = name.trim_start_matches('/').to_string();
        if covered_names.contains(name.as_str()) || covered_ids.contains(id.as_str()) {
            continue;
        }
        if let Some((t, _)) = split_staging(&name) {
            if target.is_none_or(|want| want == t) {
                let target = t.to_string();
                items.push(Item::Staging { id, name, target });
            }
        } else if let Some((t, time)) = split_parked(&name)
            && target.is_none_or(|want| want == t)
        {
            parked.push((t.to_string(), time.to_string(), id, name));
        }
    }
    // Of several parked originals of a free name, the newest gets it back.
    parked.sort_by(|a, b| (&a.0, &b.1).cmp(&(&b.0, &a.1)));
    let mut given = HashSet::new();
    for (t, _, id, name) in parked {
        let give_back = !names.contains(&t) && given.insert(t.clone());
        items.push(Item::Parked { id, name, target: t, give_back });
    }

    let used: HashSet<String> = containers.iter().filter_map(|c| c.image_id.clone()).collect();
    let live: HashSet<String> = items
        .iter()
        .filter_map(|i| match i {
            Item::InProgress(j) => Some(j.image.clone()),
            _ => None,
        })
        .collect();
    let repo = target.map(|t| format!("{RESTORE_IMAGES}{}", crate::recreate::image_safe(t)));
    let images = docker
        .list_images(Some(ListImagesOptions::default()))
        .await
        .map_err(|e| ContainerError::engine("listing images", "all", e))?;
    for image in images {
        if used.contains(&image.id) || image.repo_tags.iter().any(|t| live.contains(t)) {
            continue;
        }
        let tags: Vec<&String> =
            image.repo_tags.iter().filter(|t| t.as_str() != "<none>:<none>").collect();
        let ours = if tags.is_empty() {
            let comment = docker
                .inspect_image(&image.id)
                .await
                .ok()
                .and_then(|i| i.comment)
                .unwrap_or_default();
            match &repo {
                Some(repo) => comment.ends_with(&format!(" into {repo}")),
                None => {
                    comment.starts_with(OLD_IMPORT_COMMENT)
                        || (comment.starts_with("lifeboat restore of snapshot ")
                            && comment.contains(&format!(" into {RESTORE_IMAGES}")))
                }
            }
        } else {
            tags.iter().all(|t| match &repo {
                Some(repo) => t.strip_prefix(repo.as_str()).is_some_and(|r| r.starts_with(':')),
                None => t.starts_with(RESTORE_IMAGES),
            })
        };
        if ours {
            let name = tags.first().map_or_else(|| short(&image.id), |t| t.to_string());
            items.push(Item::Image { id: image.id, name });
        }
    }
    Ok(items)
}

/// Whether a container is as a restore leaves it: running, or done (exited 0 with no
/// restart policy that would start it again).
pub(crate) fn came_up(info: &ContainerInspectResponse) -> bool {
    let state = info.state.clone().unwrap_or_default();
    if state.running == Some(true) {
        return true;
    }
    let restarts = info
        .host_config
        .as_ref()
        .and_then(|h| h.restart_policy.as_ref())
        .and_then(|p| p.name)
        .is_some_and(|name| crate::recreate::restarts_after_success(name.as_ref()));
    state.exit_code == Some(0)
        && !restarts
        && state.status.is_some_and(|s| s.to_string() == "exited")
}

async fn inspect_opt(docker: &Docker, reference: &str) -> Result<Option<ContainerInspectResponse>> {
    match docker.inspect_container(reference, None).await {
        Ok(info) => Ok(Some(info)),
        Err(e) => match ContainerError::engine("inspecting", reference, e) {
            ContainerError::NoSuchContainer { .. } => Ok(None),
            other => Err(other),
        },
    }
}

/// How an interrupted restore is put right, and who holds the target's name afterwards.
async fn decide(docker: &Docker, journal: &Journal) -> Result<(Fix, Option<Existing>)> {
    let holder = inspect_opt(docker, &journal.target).await?;
    let original_id = journal.original.as_ref().map(|o| o.id.as_str());
    let staged = holder.filter(|h| {
        h.id.as_deref() != original_id
            && h.config.as_ref().and_then(|c| c.image.as_deref()) == Some(journal.image.as_str())
    });
    if let Some(h) = staged
        && (!journal.start || came_up(&h))
    {
        let running = h.state.as_ref().and_then(|s| s.running).unwrap_or(false);
        return Ok((Fix::Finish, h.id.map(|id| Existing { id, running })));
    }
    let after = match &journal.original {
        Some(o) => inspect_opt(docker, &o.id).await?.map(|_| o.clone()),
        None => None,
    };
    Ok((Fix::RollBack, after))
}

async fn remove_container(docker: &Docker, reference: &str) -> Result<()> {
    let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
    match docker.remove_container(reference, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) => match ContainerError::engine("removing", reference, e) {
            ContainerError::NoSuchContainer { .. } => Ok(()),
            other => Err(other),
        },
    }
}

/// Removes `image` unless a container uses it (the engine refuses then).
pub(crate) async fn remove_image_if_unused(docker: &Docker, image: &str) {
    let options = RemoveImageOptions { force: false, noprune: false, ..Default::default() };
    if let Err(e) = docker.remove_image(image, Some(options), None).await {
        tracing::debug!(image = %image, error = %e, "restore image kept");
    }
}

/// Gives container `id` the name `target` (unless it has it) and starts it if `start`, then
/// checks with the engine that it is so.
pub(crate) async fn give_back(docker: &Docker, id: &str, target: &str, start: bool) -> Result<()> {
    let problem = |message: String| ContainerError::Engine {
        action: "putting back",
        subject: format!("the original container {} ({target})", short(id)),
        message,
    };
    let info = inspect_opt(docker, id).await?.ok_or_else(|| problem("it is gone".into()))?;
    if info.name.as_deref().map(|n| n.trim_start_matches('/')) != Some(target) {
        let rename = RenameContainerOptions { name: target.to_string() };
        docker
            .rename_container(id, rename)
            .await
            .map_err(|e| problem(format!("renaming it: {e}")))?;
    }
    let running = info.state.and_then(|s| s.running).unwrap_or(false);
    if start && !running {
        docker.start_container(id, None).await.map_err(|e| problem(format!("starting it: {e}")))?;
    }
    Ok(())
}

async fn apply(docker: &Docker, item: &Item) -> Result<()> {
    match item {
        Item::InProgress(_) => Ok(()),
        Item::Interrupted { journal, fix, .. } => {
            match fix {
                Fix::Finish => {
                    if let Some(original) = &journal.original {
                        remove_container(docker, &original.id).await?;
                    }
                }
                Fix::RollBack => {
                    // The staging container, under its own name or already under the target's.
                    remove_container(docker, &journal.staging).await?;
                    if let Some(holder) = inspect_opt(docker, &journal.target).await?
                        && holder.config.as_ref().and_then(|c| c.image.as_deref())
                            == Some(journal.image.as_str())
                        && holder.id.as_deref() != journal.original.as_ref().map(|o| o.id.as_str())
                        && let Some(id) = holder.id
                    {
                        remove_container(docker, &id).await?;
                    }
                    for volume in &journal.volumes {
                        if let Err(e) = docker
                            .remove_volume(
                                volume,
                                None::<bollard::query_parameters::RemoveVolumeOptions>,
                            )
                            .await
                        {
                            warn!(volume = %volume, error = %e, "could not remove a restore's volume");
                        }
                    }
                    if let Some(original) = &journal.original
                        && inspect_opt(docker, &original.id).await?.is_some()
                    {
                        give_back(docker, &original.id, &journal.target, original.running).await?;
                    }
                }
            }
            remove_image_if_unused(docker, &journal.image).await;
            journal.remove(docker).await;
            info!(target = %journal.target, fix = ?fix, "interrupted restore put right");
            Ok(())
        }
        Item::Parked { id, target, give_back: back, .. } => {
            if *back {
                let start = docker
                    .inspect_container(id, None)
                    .await
                    .ok()
                    .and_then(|i| i.host_config?.restart_policy?.name)
                    .is_some_and(|p| crate::recreate::restarts_after_success(p.as_ref()));
                give_back(docker, id, target, start).await
            } else {
                remove_container(docker, id).await
            }
        }
        Item::Staging { id, .. } => remove_container(docker, id).await,
        Item::Image { id, name } => {
            let options = RemoveImageOptions { force: false, noprune: false, ..Default::default() };
            match docker.remove_image(id, Some(options), None).await {
                // Gone already (removed with its restore's journal), or taken into use since.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404 | 409,
                    ..
                })
                | Ok(_) => Ok(()),
                Err(e) => Err(ContainerError::engine("removing image", name, e)),
            }
        }
    }
}

/// Removes the restore images of `target` that no container uses.
pub(crate) async fn remove_unused_images(docker: &Docker, target: &str) {
    let items = match survey(docker, Some(target)).await {
        Ok(items) => items,
        Err(e) => {
            warn!(container = %target, error = %e, "could not list unused restore images");
            return;
        }
    };
    for item in items.iter().filter(|i| matches!(i, Item::Image { .. })) {
        if let Err(e) = apply(docker, item).await {
            warn!(error = %e, "could not remove an unused restore image");
        }
    }
}

/// Puts right what interrupted restores of `target` left (never one still running) and
/// returns what it did.
pub(crate) async fn clean_target(docker: &Docker, target: &str) -> Result<Vec<Leftover>> {
    let items = survey(docker, Some(target)).await?;
    let mut done = Vec::new();
    for item in items.iter().filter(|i| !matches!(i, Item::InProgress(_))) {
        apply(docker, item).await?;
        let mut leftover = item.describe();
        leftover.done = true;
        done.push(leftover);
    }
    Ok(done)
}

/// What interrupted container restores and drills left on the engine, and what cleaning
/// would do. Another host's drills' scratch objects are listed as theirs, never cleaned here.
///
/// # Errors
/// When the engine is unreachable.
pub async fn leftovers() -> lifeboat_core::Result<Vec<Leftover>> {
    let docker = connect().await?;
    let mut out: Vec<Leftover> = survey(&docker, None).await?.iter().map(Item::describe).collect();
    out.extend(crate::drill::drill_leftovers(&docker, false).await?);
    Ok(out)
}

/// Cleans what interrupted container restores left: finishes or rolls back interrupted
/// restores, removes or gives back staging and parked containers, removes unused restore
/// images. Restores still running are left alone. Then removes the scratch objects of this
/// host's drills whose process is gone (another host's, and running drills', are listed,
/// never removed). Each leftover says whether it was done.
///
/// # Errors
/// When the engine is unreachable.
pub async fn clean_leftovers() -> lifeboat_core::Result<Vec<Leftover>> {
    let docker = connect().await?;
    let items = survey(&docker, None).await?;
    let mut out = Vec::new();
    for item in &items {
        let mut leftover = item.describe();
        if !matches!(item, Item::InProgress(_)) {
            match apply(&docker, item).await {
                Ok(()) => leftover.done = true,
                Err(e) => leftover.error = Some(e.to_string()),
            }
        }
        out.push(leftover);
    }
    out.extend(crate::drill::drill_leftovers(&docker, true).await?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn working_names_are_told_from_tenants() {
        assert_eq!(split_staging(&staging_name("app", "0a1b2c3d")), Some(("app", "0a1b2c3d")));
        let parked = parked_name("my-app");
        assert_eq!(split_parked(&parked).map(|p| p.0), Some("my-app"));
        assert!(is_lifeboat_working_container(&format!("/{parked}")));
        assert!(is_lifeboat_working_container("lifeboat-drill-12-0a1b2c3d-0"));
        for tenant in
            ["app", "app-lifeboat-new-x", "app-lifeboat-old-2026", "-lifeboat-new-0a1b2c3d"]
        {
            assert!(!is_lifeboat_working_container(tenant), "{tenant}");
        }
    }

    #[test]
    fn a_journal_reads_back_from_its_labels() {
        let original = Existing { id: "abc".into(), running: true };
        let journal = Journal::new(
            "app",
            "0123456789abcdef",
            "app-lifeboat-new-01234567",
            "lifeboat-restore/app:0123456789ab",
            Some(original.clone()),
            false,
            vec!["data-01234567".into(), "logs".into()],
        );
        let back = Journal::from_labels(journal.volume.clone(), &journal.labels()).unwrap();
        assert_eq!(back.target, "app");
        assert_eq!(back.original, Some(original));
        assert!(!back.start);
        assert_eq!(back.volumes, ["data-01234567", "logs"]);
        assert_eq!(back.owner_alive(), Some(true), "this process runs");
        let gone = Journal { pid: u32::MAX, ..back.clone() };
        assert_eq!(gone.owner_alive(), Some(false));
        let elsewhere = Journal { host: "another-host boot".into(), ..back };
        assert_eq!(elsewhere.owner_alive(), None);
    }
}
