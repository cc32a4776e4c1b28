//! Creating a container again from a snapshot: import the filesystem as an image, create
//! its volumes, create the container with the saved configuration, put the mount contents
//! back. Shared by restores and drills; both decide what to do with the result.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, NetworkConnectRequest, NetworkingConfig,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, RemoveContainerOptions, RemoveImageOptions,
    UploadToContainerOptions,
};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use lifeboat_core::{Check, Progress, Snapshot};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::backup::{download, export, receiver_stream};
use crate::digests::{FileDigests, compare, digest_in_background};
use crate::error::{ContainerError, Result};
use crate::metadata::{ContainerMetadata, MountInfo, Section};

/// Label put on everything a restore or drill creates, with the snapshot id as value.
pub const RESTORED_LABEL: &str = "lifeboat.restored-from";

/// Where one mount's contents go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    /// The mount as captured.
    pub mount: MountInfo,
    /// The volume to mount instead of the captured source; `None` keeps the source (a bind
    /// mount outside drills, or an anonymous volume the engine creates).
    pub volume: Option<String>,
    /// Whether the contents are written back.
    pub fill: Fill,
    /// The other containers using the volume, when it is attached shared (`Fill::Never`).
    pub shared_with: Vec<String>,
}

/// Whether a mount's contents from the snapshot are written into the new container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Always: a volume made for the restore, or a drill's scratch volume.
    Always,
    /// Only when the mounted folder is empty: a host folder bound into the container is
    /// the host's, and its files are never overwritten.
    IfEmpty,
    /// Never: an existing volume another container uses, attached as it is so that the two
    /// keep sharing it (writing it would change the other container's data under it).
    Never,
}

/// What to create.
pub(crate) struct Recreation<'a> {
    pub docker: &'a Docker,
    pub meta: &'a ContainerMetadata,
    /// The snapshot id, for image tags and labels.
    pub snapshot: String,
    /// Name of the container to create.
    pub name: String,
    /// Repository of the imported image (`lifeboat-restore/app`); tagged with the snapshot id.
    pub image_repo: String,
    /// Per mount, in the snapshot's order.
    pub mounts: Vec<MountPlan>,
    /// No network, no published ports, no restart policy (drills).
    pub isolated: bool,
    /// Compare every restored file with the snapshot after creating.
    pub check_files: bool,
    /// Publish the saved port bindings on the host (off for a copy beside the original,
    /// which holds them).
    pub publish_ports: bool,
    /// Extra labels for the container, its new volumes and its image (drills mark their
    /// scratch objects with them).
    pub labels: HashMap<String, String>,
}

/// Whether the folder at `path` in container `id` holds nothing: its archive has only the
/// folder itself. Reads the first entries only; anything but a folder counts as not empty.
async fn mount_is_empty(docker: &Docker, id: &str, path: &str) -> Result<bool> {
    let mut stream = download(docker, id, path).boxed();
    let mut head = Vec::new();
    while head.len() < HEAD_BYTES {
        match stream.next().await {
            Some(Ok(bytes)) => head.extend_from_slice(&bytes),
            Some(Err(e)) => return Err(ContainerError::engine("reading mount", path, e)),
            None => break,
        }
    }
    Ok(crate::digests::tar_is_one_empty_folder(&head))
}

/// Enough of an archive for its first entries.
const HEAD_BYTES: usize = 16 * 1024;

/// What was created; [`Recreated::discard`] removes it again.
#[derive(Debug, Default)]
pub(crate) struct Recreated {
    pub container: Option<String>,
    pub image: Option<String>,
    pub volumes: Vec<String>,
    pub checks: Vec<Check>,
    pub bytes: u64,
    /// Digests of the snapshot's filesystem files (when checked).
    pub files: FileDigests,
}

impl Recreated {
    /// Removes the container, the volumes created for it and its image.
    pub async fn discard(&self, docker: &Docker) {
        if let Some(container) = &self.container {
            let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
            if let Err(e) = docker.remove_container(container, Some(options)).await {
                warn!(container = %container, error = %e, "could not remove restored container");
            }
        }
        for volume in &self.volumes {
            if let Err(e) = docker
                .remove_volume(volume, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await
            {
                warn!(volume = %volume, error = %e, "could not remove restored volume");
            }
        }
        if let Some(image) = &self.image {
            let options = RemoveImageOptions { force: false, noprune: false, ..Default::default() };
            if let Err(e) = docker.remove_image(image, Some(options), None).await {
                debug!(image = %image, error = %e, "could not remove restored image");
            }
        }
    }
}

impl Recreation<'_> {
    /// Imports, creates and fills the container (not started). On error, whatever was
    /// created is returned too so the caller can discard it.
    pub async fn run(
        self,
        snapshot: &dyn Snapshot,
        progress: &dyn Progress,
    ) -> (Recreated, Result<()>) {
        let mut done = Recreated::default();
        let result = self.run_into(snapshot, progress, &mut done).await;
        (done, result)
    }

    async fn run_into(
        &self,
        snapshot: &dyn Snapshot,
        progress: &dyn Progress,
        done: &mut Recreated,
    ) -> Result<()> {
        let meta = self.meta;
        let mut reader = snapshot.open().await.map_err(|e| ContainerError::Engine {
            action: "reading snapshot",
            subject: self.snapshot.clone(),
            message: e.to_string(),
        })?;
        let (filesystem, mount_sections) = match meta.sections.split_first() {
            Some(split) => split,
            None => return Err(ContainerError::BadMetadata { reason: "no sections".into() }),
        };

        // 1. The filesystem, imported as an image (and digested on the way when checking).
        let (repo, tag) = self.image_parts();
        let image = format!("{repo}:{tag}");
        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(16);
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.clone()),
            tag: Some(tag.clone()),
            message: Some(crate::leftovers::import_comment(&self.snapshot, &repo)),
            // The image carries the labels too, so what made it can be told (a drill's image
            // is removed only when its drill is gone, and only on the drill's host).
            changes: image_label_changes(&self.labels),
            ..Default::default()
        };
        let import = self.docker.create_image(
            Some(options),
            Some(bollard::body_try_stream(receiver_stream(rx))),
            None,
        );
        let importing = tokio::spawn(drive_import(import.boxed()));
        let (digest_tx, digest_handle) = split(self.check_files.then(digest_in_background));
        let pumped =
            pump(&mut reader, filesystem, Sinks { body: Some(tx), digests: digest_tx }, progress)
                .await;
        let imported = importing.await.map_err(|e| ContainerError::Engine {
            action: "importing",
            subject: image.clone(),
            message: e.to_string(),
        })?;
        pumped?;
        imported.map_err(|message| ContainerError::Engine {
            action: "importing",
            subject: image.clone(),
            message,
        })?;
        done.image = Some(image.clone());
        done.bytes += filesystem.length;
        if let Some(handle) = digest_handle {
            done.files = joined_digests(handle, "filesystem").await?;
        }
        info!(image = %image, "filesystem imported");

        // 2. Volumes, then the container.
        for plan in &self.mounts {
            let create = plan.fill != Fill::Never && (plan.mount.is_volume() || self.isolated);
            if let (Some(volume), true) = (&plan.volume, create) {
                let mut labels = self.labels.clone();
                labels.insert(RESTORED_LABEL.into(), self.snapshot.clone());
                let request = VolumeCreateRequest {
                    name: Some(volume.clone()),
                    labels: Some(labels),
                    ..Default::default()
                };
                self.docker
                    .create_volume(request)
                    .await
                    .map_err(|e| ContainerError::engine("creating volume", volume, e))?;
                done.volumes.push(volume.clone());
            }
        }
        let body = self.create_body(&image);
        let options =
            CreateContainerOptions { name: Some(self.name.clone()), ..Default::default() };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| ContainerError::engine("creating container", &self.name, e))?;
        done.container = Some(created.id.clone());
        if !self.isolated {
            self.connect_other_networks(&created.id).await?;
        }

        // 3. Mount contents, written through the archive API into the created container.
        let mut mount_digests = Vec::new();
        for (plan, section) in self.mounts.iter().zip(mount_sections) {
            let write = match plan.fill {
                Fill::Always => true,
                Fill::Never => {
                    done.checks.push(Check::pass(
                        format!("volume {}", plan.mount.destination),
                        format!(
                            "volume {} is shared with {}: attached as it is, still shared; the snapshot's copy of it was not written",
                            plan.mount.source,
                            plan.shared_with.join(", ")
                        ),
                    ));
                    false
                }
                Fill::IfEmpty => {
                    let empty =
                        mount_is_empty(self.docker, &created.id, &plan.mount.destination).await?;
                    done.checks.push(Check::pass(
                        format!("bind mount {}", plan.mount.destination),
                        if empty {
                            format!(
                                "host folder {} was empty: filled from the snapshot",
                                plan.mount.source
                            )
                        } else {
                            format!("host folder {} has files: left as it is", plan.mount.source)
                        },
                    ));
                    empty
                }
            };
            let (digest_tx, digest_handle) =
                split((self.check_files && write).then(digest_in_background));
            let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(16);
            let sinks = Sinks { body: write.then_some(tx), digests: digest_tx };
            let parent = parent_of(&plan.mount.destination);
            let upload = write.then(|| {
                let docker = self.docker.clone();
                let container = created.id.clone();
                let options = UploadToContainerOptions { path: parent, ..Default::default() };
                tokio::spawn(async move {
                    let body = bollard::body_try_stream(receiver_stream(rx));
                    docker.upload_to_container(&container, Some(options), body).await
                })
            });
            let pumped = pump(&mut reader, section, sinks, progress).await;
            if let Some(upload) = upload {
                let uploaded = upload.await.map_err(|e| ContainerError::Engine {
                    action: "writing mount",
                    subject: plan.mount.destination.clone(),
                    message: e.to_string(),
                })?;
                pumped?;
                uploaded.map_err(|e| {
                    ContainerError::engine("writing mount", &plan.mount.destination, e)
                })?;
                done.bytes += section.length;
            } else {
                pumped?;
            }
            if let Some(handle) = digest_handle {
                mount_digests.push((plan, joined_digests(handle, &plan.mount.destination).await?));
            }
        }
        // Reading to the end checks the whole stream's SHA-256 against the manifest.
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.map_err(|e| ContainerError::Mismatch {
            section: "the stream".into(),
            reason: lifeboat_core::Error::from_stream("reading the snapshot", e).to_string(),
        })?;
        done.checks.push(Check::pass(
            "snapshot digests",
            format!("{} parts match their SHA-256", meta.sections.len()),
        ));

        // 4. What the engine now holds, file by file, against the snapshot.
        if self.check_files {
            let found = collect_digests(export(self.docker, &created.id).boxed()).await?;
            done.checks.push(files_check("filesystem", &done.files, &found));
            for (plan, expected) in &mount_digests {
                let stream = download(self.docker, &created.id, &plan.mount.destination).boxed();
                let found = collect_digests(stream).await?;
                done.checks.push(files_check(&plan.mount.destination, expected, &found));
            }
        }
        Ok(())
    }

    /// Repository and tag of the imported image.
    fn image_parts(&self) -> (String, String) {
        (image_safe(&self.image_repo), self.snapshot.chars().take(12).collect())
    }

    /// The image the filesystem is imported as.
    pub fn image_name(&self) -> String {
        let (repo, tag) = self.image_parts();
        format!("{repo}:{tag}")
    }

    /// The create request: the saved configuration with the restored image and mounts.
    fn create_body(&self, image: &str) -> ContainerCreateBody {
        let c = self.meta.config.clone();
        let mut host = self.meta.host_config.clone();
        let renamed: HashMap<&str, &str> = self
            .mounts
            .iter()
            .filter_map(|p| Some((p.mount.source.as_str(), p.volume.as_deref()?)))
            .collect();
        host.binds = host.binds.map(|binds| {
            binds
                .into_iter()
                .map(|bind| {
                    let mut parts: Vec<&str> = bind.splitn(3, ':').collect();
                    if let Some(new) = parts.first().and_then(|src| renamed.get(src)) {
                        parts[0] = new;
                    }
                    parts.join(":")
                })
                .collect()
        });
        host.mounts = host.mounts.map(|mounts| {
            mounts
                .into_iter()
                .map(|mut m| {
                    if let Some(new) = m.source.as_deref().and_then(|s| renamed.get(s)) {
                        m.source = Some(new.to_string());
                        if self.isolated {
                            m.typ = Some(bollard::models::MountType::VOLUME);
                            m.bind_options = None;
                        }
                    }
                    m
                })
                .collect()
        });
        // A drill's scratch container never carries the production labels: a label selection
        // (`backup containers --label`) would take it for a tenant.
        let mut labels =
            if self.isolated { HashMap::new() } else { c.labels.clone().unwrap_or_default() };
        labels.extend(self.labels.clone());
        let mut networking = None;
        if self.isolated || !self.publish_ports {
            host.port_bindings = None;
            host.publish_all_ports = Some(false);
        }
        if self.isolated {
            host.network_mode = Some("none".into());
            host.restart_policy = None;
            host.links = None;
            host.auto_remove = Some(false);
        } else if let Some(first) = self.primary_network() {
            networking = Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    first.name.clone(),
                    EndpointSettings { aliases: Some(first.aliases.clone()), ..Default::default() },
                )])),
            });
        }
        ContainerCreateBody {
            hostname: c.hostname,
            domainname: c.domainname,
            user: c.user,
            attach_stdin: c.attach_stdin,
            attach_stdout: c.attach_stdout,
            attach_stderr: c.attach_stderr,
            exposed_ports: c.exposed_ports,
            tty: c.tty,
            open_stdin: c.open_stdin,
            stdin_once: c.stdin_once,
            env: c.env,
            cmd: c.cmd,
            healthcheck: c.healthcheck,
            args_escaped: c.args_escaped,
            image: Some(image.to_string()),
            volumes: c.volumes,
            working_dir: c.working_dir,
            entrypoint: c.entrypoint,
            network_disabled: if self.isolated { Some(true) } else { c.network_disabled },
            on_build: c.on_build,
            labels: Some(labels),
            stop_signal: c.stop_signal,
            stop_timeout: c.stop_timeout,
            shell: c.shell,
            host_config: Some(host),
            networking_config: networking,
        }
    }

    /// The network the container's network mode names (user-defined networks only).
    fn primary_network(&self) -> Option<&crate::metadata::NetworkAttachment> {
        let mode = self.meta.host_config.network_mode.as_deref()?;
        self.meta.networks.iter().find(|n| n.name == mode && !is_builtin_network(&n.name))
    }

    async fn connect_other_networks(&self, container: &str) -> Result<()> {
        let primary = self.primary_network().map(|n| n.name.clone());
        let mode = self.meta.host_config.network_mode.clone().unwrap_or_default();
        for network in &self.meta.networks {
            if Some(&network.name) == primary.as_ref()
                || network.name == mode
                || is_builtin_network(&network.name)
            {
                continue;
            }
            let request = NetworkConnectRequest {
                container: container.to_string(),
                endpoint_config: Some(EndpointSettings {
                    aliases: Some(network.aliases.clone()),
                    ..Default::default()
                }),
            };
            self.docker
                .connect_network(&network.name, request)
                .await
                .map_err(|e| ContainerError::engine("connecting network", &network.name, e))?;
        }
        Ok(())
    }
}

fn is_builtin_network(name: &str) -> bool {
    matches!(name, "bridge" | "host" | "none" | "default")
}

/// Image repositories allow lowercase letters, digits, separators and `/` only.
pub(crate) fn image_safe(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string();
    if cleaned.is_empty() { "container".into() } else { cleaned }
}

/// The folder a mount's tar (rooted at the mount's last component) is unpacked into.
fn parent_of(destination: &str) -> String {
    match destination.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".into(),
        Some((parent, _)) => parent.into(),
    }
}

type DigestTask = tokio::task::JoinHandle<std::io::Result<FileDigests>>;

fn split(
    pair: Option<(mpsc::Sender<Bytes>, DigestTask)>,
) -> (Option<mpsc::Sender<Bytes>>, Option<DigestTask>) {
    match pair {
        Some((tx, handle)) => (Some(tx), Some(handle)),
        None => (None, None),
    }
}

/// Where pumped bytes go.
struct Sinks {
    body: Option<mpsc::Sender<std::io::Result<Bytes>>>,
    digests: Option<mpsc::Sender<Bytes>>,
}

/// Copies exactly `section.length` bytes from `reader` to the sinks and checks the
/// section's SHA-256.
async fn pump(
    reader: &mut (impl AsyncRead + Unpin + ?Sized),
    section: &Section,
    sinks: Sinks,
    progress: &dyn Progress,
) -> Result<()> {
    let mut left = section.length;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut body = sinks.body;
    let mut digests = sinks.digests;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = reader.read(&mut buf[..want]).await.map_err(|e| ContainerError::Mismatch {
            section: section.part.clone(),
            reason: lifeboat_core::Error::from_stream("reading the snapshot", e).to_string(),
        })?;
        if n == 0 {
            return Err(ContainerError::Mismatch {
                section: section.part.clone(),
                reason: format!("the stream ended {left} bytes early"),
            });
        }
        let bytes = Bytes::copy_from_slice(&buf[..n]);
        hasher.update(&bytes);
        left -= n as u64;
        progress.advance(n as u64);
        if let Some(tx) = &body
            && tx.send(Ok(bytes.clone())).await.is_err()
        {
            // The engine stopped reading; its own error says why.
            body = None;
        }
        if let Some(tx) = &digests
            && tx.send(bytes).await.is_err()
        {
            digests = None;
        }
    }
    let actual = hex::encode(hasher.finalize());
    if actual != section.sha256 {
        if let Some(tx) = &body {
            // Make the engine's side fail too rather than accept a damaged part.
            let _ = tx.send(Err(std::io::Error::other("damaged snapshot part"))).await;
        }
        return Err(ContainerError::Mismatch {
            section: section.part.clone(),
            reason: format!("SHA-256 {actual}, the snapshot recorded {}", section.sha256),
        });
    }
    Ok(())
}

/// `LABEL` instructions giving an imported image `labels`, sorted for a stable image.
fn image_label_changes(labels: &HashMap<String, String>) -> Vec<String> {
    let mut labels: Vec<_> = labels.iter().collect();
    labels.sort();
    labels
        .into_iter()
        .map(|(key, value)| {
            format!("LABEL {}={}", dockerfile_quoted(key), dockerfile_quoted(value))
        })
        .collect()
}

/// `text` as a double-quoted Dockerfile word.
fn dockerfile_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Runs an import to the end; the engine reports failures inside the progress stream.
async fn drive_import(
    mut progress: std::pin::Pin<
        Box<
            dyn Stream<
                    Item = std::result::Result<
                        bollard::models::CreateImageInfo,
                        bollard::errors::Error,
                    >,
                > + Send,
        >,
    >,
) -> std::result::Result<(), String> {
    while let Some(item) = progress.next().await {
        let info = item.map_err(|e| e.to_string())?;
        if let Some(detail) = info.error_detail {
            return Err(detail.message.unwrap_or_else(|| "import failed".into()));
        }
    }
    Ok(())
}

async fn joined_digests(
    handle: tokio::task::JoinHandle<std::io::Result<FileDigests>>,
    part: &str,
) -> Result<FileDigests> {
    let mismatch = |reason: String| ContainerError::Mismatch { section: part.into(), reason };
    handle.await.map_err(|e| mismatch(e.to_string()))?.map_err(|e| mismatch(e.to_string()))
}

/// Digests a tar stream read from the engine.
async fn collect_digests(
    mut stream: std::pin::Pin<
        Box<dyn Stream<Item = std::result::Result<Bytes, bollard::errors::Error>> + Send>,
    >,
) -> Result<FileDigests> {
    let (tx, handle) = digest_in_background();
    while let Some(bytes) = stream.next().await {
        let bytes =
            bytes.map_err(|e| ContainerError::engine("reading restored files", "container", e))?;
        if tx.send(bytes).await.is_err() {
            break;
        }
    }
    drop(tx);
    joined_digests(handle, "restored container").await
}

fn files_check(part: &str, expected: &FileDigests, found: &FileDigests) -> Check {
    let problems = compare(expected, found);
    if problems.is_empty() {
        Check::pass(
            format!("files of {part}"),
            format!("{} files match the snapshot", expected.len()),
        )
    } else {
        let shown: Vec<&str> = problems.iter().take(5).map(String::as_str).collect();
        Check::fail(
            format!("files of {part}"),
            format!("{} of {} differ: {}", problems.len(), expected.len(), shown.join(", ")),
        )
    }
}

/// Starts `container` and watches it for `settle`: it must keep running and, when it has a
/// health check, become healthy (waiting up to `settle` plus one minute for that).
pub(crate) async fn start_and_settle(
    docker: &Docker,
    container: &str,
    name: &str,
    settle: Duration,
) -> Result<Vec<Check>> {
    docker
        .start_container(container, None)
        .await
        .map_err(|e| ContainerError::engine("starting", name, e))?;
    let started = Instant::now();
    let deadline = started + settle + Duration::from_secs(60);
    loop {
        let info = docker
            .inspect_container(container, None)
            .await
            .map_err(|e| ContainerError::engine("inspecting", name, e))?;
        let state = info.state.unwrap_or_default();
        if state.running != Some(true) {
            let restarts = info
                .host_config
                .and_then(|h| h.restart_policy)
                .and_then(|p| p.name)
                .is_some_and(|name| restarts_after_success(name.as_ref()));
            if state.exit_code == Some(0) && !restarts {
                // A one-shot job (a migration, a seeding step) is done when it exits 0.
                return Ok(vec![Check::pass(
                    "ran",
                    format!(
                        "ran and exited 0 after {:.1} s, as a one-shot container does",
                        started.elapsed().as_secs_f64()
                    ),
                )]);
            }
            return Err(ContainerError::NotRunning {
                container: name.into(),
                reason: format!(
                    "it stopped with exit code {} after {:.1} s{}",
                    state.exit_code.unwrap_or_default(),
                    started.elapsed().as_secs_f64(),
                    state
                        .error
                        .filter(|e| !e.is_empty())
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            });
        }
        let health = state.health.and_then(|h| h.status).map(|s| s.to_string());
        let settled = started.elapsed() >= settle;
        match health.as_deref() {
            Some("unhealthy") => {
                return Err(ContainerError::NotRunning {
                    container: name.into(),
                    reason: "its health check reports unhealthy".into(),
                });
            }
            Some("healthy") | None | Some("none") | Some("") if settled => {
                let mut checks = vec![Check::pass(
                    "running",
                    format!("kept running for {:.1} s", started.elapsed().as_secs_f64()),
                )];
                if let Some(h) = health.filter(|h| h == "healthy") {
                    checks.push(Check::pass("health", h));
                }
                return Ok(checks);
            }
            _ if Instant::now() > deadline => {
                return Err(ContainerError::NotRunning {
                    container: name.into(),
                    reason: format!(
                        "its health check still reports {} after {:.0} s",
                        health.unwrap_or_default(),
                        started.elapsed().as_secs_f64()
                    ),
                });
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Whether a restart policy starts a container again after it exited 0 (`always`,
/// `unless-stopped`): such a container is meant to keep running, and exiting is a failure.
pub(crate) fn restarts_after_success(policy: &str) -> bool {
    matches!(policy, "always" | "unless-stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_parents_and_image_names() {
        assert_eq!(parent_of("/data"), "/");
        assert_eq!(parent_of("/var/lib/app/"), "/var/lib");
        assert_eq!(image_safe("Tenant_ABC"), "tenant_abc");
        assert_eq!(image_safe("/"), "container");
        assert_eq!(image_safe("lifeboat-restore/App"), "lifeboat-restore/app");
    }
}
