//! What a container snapshot records besides its bytes: the configuration needed to create
//! the container again, and where each part (filesystem, volumes) sits in the stream.
//!
//! The stream is the filesystem export (a tar) followed by one tar per volume or bind mount,
//! back to back; [`Section`] gives each part's offset, length and SHA-256.

use bollard::models::{ContainerConfig, HostConfig};
use serde::{Deserialize, Serialize};

use crate::error::{ContainerError, Result};

/// Backend metadata of a container snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerMetadata {
    /// The container's name, without the leading `/`.
    pub container: String,
    /// Its id at capture time.
    pub id: String,
    /// The image it was created from, as given (`app:1.2`).
    pub image: String,
    /// The image id.
    pub image_id: String,
    /// The engine's version.
    pub engine: String,
    /// Whether the container was running at capture time.
    pub running: bool,
    /// Configuration from inspect: cmd, entrypoint, env, labels, working dir, user, exposed
    /// ports, health check. Env values may hold secrets: never print them (see [`redact`]).
    pub config: ContainerConfig,
    /// Host configuration: port bindings, restart policy, binds, mounts, network mode.
    pub host_config: HostConfig,
    /// Networks it was attached to.
    pub networks: Vec<NetworkAttachment>,
    /// Volumes and bind mounts, in stream order after the filesystem.
    pub mounts: Vec<MountInfo>,
    /// Where each part sits in the stream; filled in when the stream has been read.
    #[serde(default)]
    pub sections: Vec<Section>,
}

/// One network the container was attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// Network name.
    pub name: String,
    /// The container's aliases on it.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A volume or bind mount whose contents are in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountInfo {
    /// `volume` or `bind`.
    pub kind: String,
    /// The volume name, or the host path of a bind mount.
    pub source: String,
    /// Where it is mounted in the container.
    pub destination: String,
    /// Mounted read-write.
    pub rw: bool,
}

impl MountInfo {
    /// A named (or anonymous) volume.
    pub fn is_volume(&self) -> bool {
        self.kind == "volume"
    }
}

/// One part of the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// `filesystem`, or the mount's destination.
    pub part: String,
    /// Byte offset in the stream.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// SHA-256 of the part, hex.
    pub sha256: String,
}

/// The section name of the container's own filesystem.
pub const FILESYSTEM: &str = "filesystem";

impl ContainerMetadata {
    /// Reads the metadata of a container snapshot.
    ///
    /// # Errors
    /// [`ContainerError::BadMetadata`] when it is not a complete container capture.
    pub fn from_value(value: &serde_json::Value) -> Result<Self> {
        let meta: ContainerMetadata = serde_json::from_value(value.clone())
            .map_err(|e| ContainerError::BadMetadata { reason: e.to_string() })?;
        if meta.sections.len() != meta.mounts.len() + 1 {
            return Err(ContainerError::BadMetadata {
                reason: format!(
                    "{} sections for {} mounts and the filesystem",
                    meta.sections.len(),
                    meta.mounts.len()
                ),
            });
        }
        Ok(meta)
    }

    /// The stream's total length according to the sections.
    pub fn stream_length(&self) -> u64 {
        self.sections.iter().map(|s| s.length).sum()
    }
}

/// `metadata` with every environment value replaced by `***`, for listings and logs.
pub fn redact(metadata: &serde_json::Value) -> serde_json::Value {
    let mut out = metadata.clone();
    if let Some(env) = out.pointer_mut("/config/Env").and_then(|v| v.as_array_mut()) {
        for entry in env.iter_mut() {
            if let Some(text) = entry.as_str() {
                let name = text.split_once('=').map_or(text, |(k, _)| k);
                *entry = serde_json::Value::String(format!("{name}=***"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_env_values_and_keeps_names() {
        let meta = serde_json::json!({"config": {"Env": ["TOKEN=s3cret", "PATH=/bin", "BARE"]}});
        let shown = redact(&meta).to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("TOKEN=***") && shown.contains("PATH=***"), "{shown}");
        // The original is untouched.
        assert!(meta.to_string().contains("s3cret"));
    }
}
