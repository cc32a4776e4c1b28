//! Capturing a container: its filesystem export, its configuration from inspect, and the
//! contents of its volumes and bind mounts, read through the engine's archive API.

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    ContainerArchiveInfoOptions, DownloadFromContainerOptions, ListContainersOptions,
};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use lifeboat_core::{Backup, Capture, Kind};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;
use tracing::{debug, info};

use crate::engine::connect;
use crate::error::{ContainerError, Result};
use crate::metadata::{ContainerMetadata, FILESYSTEM, MountInfo, NetworkAttachment, Section};

/// Changed paths beyond which the fingerprint is not worth taking: capture instead.
const FINGERPRINT_MAX_PATHS: usize = 20_000;

/// A Docker container, by name or id.
#[derive(Debug, Clone)]
pub struct ContainerBackup {
    reference: String,
}

impl ContainerBackup {
    /// The container called (or with the id) `reference`.
    pub fn new(reference: impl Into<String>) -> Self {
        ContainerBackup { reference: reference.into() }
    }

    /// The container's name as the engine reports it, so that a snapshot taken by id is named
    /// like one taken by name (the [`Backup::default_name`] is the reference as given).
    ///
    /// # Errors
    /// When the engine is unreachable or has no such container.
    pub async fn container_name(&self) -> lifeboat_core::Result<String> {
        let docker = connect().await?;
        Ok(inspect(&docker, &self.reference).await?.container)
    }
}

/// Names of every container (running or not) carrying the label `selector`
/// (`KEY=VALUE`, or `KEY` for any value), sorted; lifeboat's own staging, parked and drill
/// containers are never among them.
///
/// # Errors
/// When the selector is empty or the engine is unreachable.
pub async fn containers_with_label(selector: &str) -> lifeboat_core::Result<Vec<String>> {
    if selector.is_empty() || selector.starts_with('=') {
        return Err(ContainerError::BadSelector { selector: selector.into() }.into());
    }
    let docker = connect().await?;
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_string(), vec![selector.to_string()])])),
        ..Default::default()
    };
    let list = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| ContainerError::engine("listing containers", selector, e))?;
    let mut names: Vec<String> = list
        .into_iter()
        .filter_map(|c| c.names.and_then(|n| n.into_iter().next()))
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !crate::leftovers::is_lifeboat_working_container(n))
        .collect();
    names.sort();
    Ok(names)
}

/// Inspects `reference` and turns the answer into snapshot metadata (without sections).
pub(crate) async fn inspect(docker: &Docker, reference: &str) -> Result<ContainerMetadata> {
    let info = docker
        .inspect_container(reference, None)
        .await
        .map_err(|e| ContainerError::engine("inspecting", reference, e))?;
    let engine = docker.version().await.ok().and_then(|v| v.version).unwrap_or_default();
    metadata_of(info, engine, reference)
}

fn metadata_of(
    info: ContainerInspectResponse,
    engine: String,
    reference: &str,
) -> Result<ContainerMetadata> {
    let missing = |what: &str| ContainerError::Engine {
        action: "inspecting",
        subject: reference.into(),
        message: format!("the engine's answer has no {what}"),
    };
    let config = info.config.ok_or_else(|| missing("Config"))?;
    let mounts = info
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| {
            let kind = m.typ.map(|t| t.to_string())?;
            let source = match kind.as_str() {
                "volume" => m.name?,
                "bind" => m.source?,
                _ => return None,
            };
            Some(MountInfo { kind, source, destination: m.destination?, rw: m.rw.unwrap_or(true) })
        })
        .collect();
    let mut networks: Vec<NetworkAttachment> = info
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, endpoint)| NetworkAttachment {
            name,
            aliases: endpoint.aliases.unwrap_or_default(),
        })
        .collect();
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ContainerMetadata {
        container: info.name.unwrap_or_default().trim_start_matches('/').to_string(),
        id: info.id.ok_or_else(|| missing("Id"))?,
        image: config.image.clone().unwrap_or_default(),
        image_id: info.image.unwrap_or_default(),
        engine,
        running: info.state.and_then(|s| s.running).unwrap_or(false),
        config,
        host_config: info.host_config.unwrap_or_default(),
        networks,
        mounts,
        sections: Vec::new(),
    })
}

/// The container's filesystem as a tar.
pub(crate) fn export(
    docker: &Docker,
    id: &str,
) -> impl Stream<Item = std::result::Result<Bytes, bollard::errors::Error>> + Send + 'static {
    docker.export_container(id)
}

/// The contents of `path` in the container (a mount's destination) as a tar rooted at its
/// last component.
pub(crate) fn download(
    docker: &Docker,
    id: &str,
    path: &str,
) -> impl Stream<Item = std::result::Result<Bytes, bollard::errors::Error>> + Send + 'static {
    let options = DownloadFromContainerOptions { path: path.to_string() };
    docker.download_from_container(id, Some(options))
}

/// Streams every part (filesystem, then each mount) into `tx`, and returns where each
/// part sits in the stream. An engine error goes down the stream as its last item.
async fn stream_parts(
    docker: Docker,
    meta: ContainerMetadata,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
) -> Vec<Section> {
    let mut sections = Vec::with_capacity(meta.mounts.len() + 1);
    let mut offset = 0u64;
    let parts = std::iter::once((FILESYSTEM.to_string(), None))
        .chain(meta.mounts.iter().map(|m| (m.destination.clone(), Some(m.destination.clone()))));
    for (part, path) in parts {
        let mut stream = match &path {
            None => export(&docker, &meta.id).boxed(),
            Some(path) => download(&docker, &meta.id, path).boxed(),
        };
        let mut hasher = Sha256::new();
        let mut length = 0u64;
        while let Some(next) = stream.next().await {
            let bytes = match next {
                Ok(bytes) => bytes,
                Err(e) => {
                    // Sent down the stream, the error ends the repository's read at once and
                    // is what it reports; no snapshot is written.
                    let action = if path.is_none() { "exporting" } else { "reading mount" };
                    let subject = format!("{} {part}", meta.container);
                    let error =
                        lifeboat_core::Error::from(ContainerError::engine(action, subject, e));
                    let _ = tx.send(Err(std::io::Error::other(error))).await;
                    return sections;
                }
            };
            hasher.update(&bytes);
            length += bytes.len() as u64;
            if tx.send(Ok(bytes)).await.is_err() {
                // The reader stopped; the repository reports why.
                return sections;
            }
        }
        debug!(container = %meta.container, part = %part, length, "part captured");
        sections.push(Section { part, offset, length, sha256: hex::encode(hasher.finalize()) });
        offset += length;
    }
    sections
}

/// SHA-256 over the state that decides whether a capture would differ: image, config,
/// each changed path with its size, mode and time, and the contents of every mount.
/// `None` when too many paths changed for that to be cheap.
async fn fingerprint_of(docker: &Docker, meta: &ContainerMetadata) -> Result<Option<String>> {
    let mut hasher = Sha256::new();
    let config = serde_json::json!({
        "image": meta.image_id,
        "config": meta.config,
        "host_config": meta.host_config,
        "networks": meta.networks,
        "mounts": meta.mounts,
    });
    hasher.update(canonical(&config).to_string().as_bytes());
    let mut changes = docker
        .container_changes(&meta.id)
        .await
        .map_err(|e| ContainerError::engine("listing changes of", &meta.container, e))?
        .unwrap_or_default();
    if changes.len() > FINGERPRINT_MAX_PATHS {
        return Ok(None);
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    let stats: Vec<String> = futures::stream::iter(changes)
        .map(|change| async move {
            let options = ContainerArchiveInfoOptions { path: change.path.clone() };
            let stat = match docker.get_container_archive_info(&meta.id, Some(options)).await {
                Ok(s) => format!(
                    "{} {} {:o} {} {}",
                    s.size,
                    s.name,
                    s.file_mode,
                    s.modification_time.unwrap_or_default(),
                    s.link_target
                ),
                Err(_) => "gone".to_string(),
            };
            format!("{} {} {stat}\n", change.kind, change.path)
        })
        .buffered(16)
        .collect()
        .await;
    for line in stats {
        hasher.update(line.as_bytes());
    }
    for mount in &meta.mounts {
        let mut stream = download(docker, &meta.id, &mount.destination);
        while let Some(bytes) = stream
            .try_next()
            .await
            .map_err(|e| ContainerError::engine("reading mount", &mount.destination, e))?
        {
            hasher.update(&bytes);
        }
        hasher.update(b"\n");
    }
    Ok(Some(hex::encode(hasher.finalize())))
}

/// `value` with every object's keys in sorted order, so equal configurations hash equally.
fn canonical(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: std::collections::BTreeMap<&String, serde_json::Value> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            serde_json::Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonical).collect())
        }
        other => other.clone(),
    }
}

#[async_trait]
impl Backup for ContainerBackup {
    fn kind(&self) -> Kind {
        Kind::CONTAINER
    }

    fn default_name(&self) -> String {
        self.reference.clone()
    }

    fn target(&self) -> String {
        format!("container {}", self.reference)
    }

    async fn capture(&self) -> lifeboat_core::Result<Capture> {
        let docker = connect().await?;
        let meta = inspect(&docker, &self.reference).await?;
        info!(container = %meta.container, mounts = meta.mounts.len(), "capturing container");
        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(16);
        let parts = tokio::spawn(stream_parts(docker, meta.clone(), tx));
        let reader = StreamReader::new(receiver_stream(rx));
        let initial = serde_json::to_value(&meta)
            .map_err(|e| ContainerError::BadMetadata { reason: e.to_string() })?;
        let finish = Box::pin(async move {
            let sections = parts.await.map_err(|e| ContainerError::Engine {
                action: "capturing",
                subject: meta.container.clone(),
                message: e.to_string(),
            })?;
            let expected = meta.mounts.len() + 1;
            if sections.len() != expected {
                return Err(ContainerError::Engine {
                    action: "capturing",
                    subject: meta.container.clone(),
                    message: format!("{} of {expected} parts were read", sections.len()),
                }
                .into());
            }
            let complete = ContainerMetadata { sections, ..meta };
            let value = serde_json::to_value(&complete)
                .map_err(|e| ContainerError::BadMetadata { reason: e.to_string() })?;
            Ok(Some(value))
        });
        Ok(Capture::new(Box::pin(reader), initial).on_finish(finish))
    }

    async fn fingerprint(&self) -> lifeboat_core::Result<Option<String>> {
        let docker = connect().await?;
        let meta = inspect(&docker, &self.reference).await?;
        Ok(fingerprint_of(&docker, &meta).await?)
    }
}

/// A channel's receiving end as a stream (for [`StreamReader`] and request bodies).
pub(crate) fn receiver_stream<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let a = serde_json::json!({"b": 1, "a": {"y": [{"q": 1, "p": 2}], "x": 0}});
        assert_eq!(canonical(&a).to_string(), r#"{"a":{"x":0,"y":[{"p":2,"q":1}]},"b":1}"#,);
    }
}
