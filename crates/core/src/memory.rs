//! Reference implementations in memory, for tests and examples: a byte source, a snapshot
//! held in memory, and a safety net that keeps its captures in memory.

use std::sync::Mutex;

use async_trait::async_trait;
use tokio::io::AsyncReadExt;

use crate::{
    Backup, ByteStream, Capture, Digest, Error, Kind, MANIFEST_FORMAT, Manifest, Result, SafetyNet,
    Snapshot, SnapshotId, Tags, VerifiedReader,
};

/// A [`Backup`] source that captures a fixed byte buffer.
#[derive(Debug, Clone)]
pub struct MemoryBackup {
    /// The snapshot name.
    pub name: String,
    /// The kind it pretends to be.
    pub kind: Kind,
    /// The bytes captured.
    pub data: Vec<u8>,
}

#[async_trait]
impl Backup for MemoryBackup {
    fn kind(&self) -> Kind {
        self.kind.clone()
    }
    fn default_name(&self) -> String {
        self.name.clone()
    }
    fn target(&self) -> String {
        format!("memory:{}", self.name)
    }
    async fn capture(&self) -> Result<Capture> {
        let reader: ByteStream = Box::pin(std::io::Cursor::new(self.data.clone()));
        Ok(Capture::new(reader, serde_json::Value::Null).with_size_hint(self.data.len() as u64))
    }
}

/// A [`Snapshot`] whose bytes live in memory.
///
/// ```
/// use lifeboat_core::{MemoryBackup, MemorySnapshot, Kind, Snapshot};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let source = MemoryBackup { name: "demo".into(), kind: Kind::DIR, data: b"hello".to_vec() };
/// let snap = MemorySnapshot::capture(&source, Default::default()).await?;
/// assert_eq!(snap.manifest().size, 5);
/// assert_eq!(snap.bytes(), b"hello");
/// # Ok::<_, lifeboat_core::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct MemorySnapshot {
    manifest: Manifest,
    data: Vec<u8>,
}

impl MemorySnapshot {
    /// Captures `source` completely into memory and builds its manifest.
    ///
    /// # Errors
    /// The source's capture error.
    pub async fn capture(source: &dyn Backup, tags: Tags) -> Result<Self> {
        let started = chrono::Utc::now();
        let (mut reader, metadata, _, finish) = source.capture().await?.into_parts();
        let mut data = Vec::new();
        reader
            .read_to_end(&mut data)
            .await
            .map_err(|source| Error::from_stream("capturing into memory", source))?;
        let metadata = Capture::finish(finish, metadata).await?;
        // Fixed-size pieces: nothing here is deduplicated, the ids only have to be right.
        let chunks = data.chunks(1 << 20).map(Digest::of).collect();
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            kind: source.kind(),
            name: source.default_name(),
            host: "memory".into(),
            tags,
            time: started,
            duration_ms: 0,
            size: data.len() as u64,
            stored: data.len() as u64,
            sha256: Digest::of(&data),
            chunks,
            metadata,
            parent: None,
            fingerprint: None,
            unchanged: false,
        };
        Ok(MemorySnapshot { manifest, data })
    }

    /// The captured bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Mutable access to the bytes, to simulate corruption in tests.
    pub fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }
}

#[async_trait]
impl Snapshot for MemorySnapshot {
    fn id(&self) -> SnapshotId {
        self.manifest.id().unwrap_or(self.manifest.sha256)
    }
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    async fn open(&self) -> Result<ByteStream> {
        let m = &self.manifest;
        let object = format!("memory snapshot {}", m.name);
        let cursor = std::io::Cursor::new(self.data.clone());
        Ok(Box::pin(VerifiedReader::new(cursor, m.sha256, m.size, object)))
    }
}

/// A [`SafetyNet`] that keeps safety captures in memory.
#[derive(Debug, Default)]
pub struct MemorySafetyNet {
    saved: Mutex<Vec<MemorySnapshot>>,
}

impl MemorySafetyNet {
    /// The captures saved so far.
    pub fn saved(&self) -> Vec<MemorySnapshot> {
        self.saved.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl SafetyNet for MemorySafetyNet {
    async fn save(&self, source: &dyn Backup, _name: &str, tags: Tags) -> Result<SnapshotId> {
        let snap = MemorySnapshot::capture(source, tags).await?;
        let id = snap.id();
        if let Ok(mut saved) = self.saved.lock() {
            saved.push(snap);
        }
        Ok(id)
    }
}
