//! Base backups read straight from the data directory (`--via files`), on the database host.
//!
//! lifeboat asks the server to start a backup (`pg_backup_start`, a fast checkpoint), reads
//! the files itself, ends the backup (`pg_backup_stop`) and adds what `pg_basebackup -X
//! fetch` adds: `backup_label`, the WAL from the backup's start to its end with its
//! `archive_status/*.done` markers, and a `backup_manifest` (CRC32C of every file) that
//! `pg_verifybackup` checks at restore. The stream is the tar `pg_basebackup -Ft` writes, so
//! a restore does not care how a backup was read. What it saves: the walsender and
//! `pg_basebackup` copying every byte twice more on the way (a third of a base backup's CPU
//! on a 2-core host), and a stable file order (sorted), so a second backup's chunks line up
//! with the first's.
//!
//! Files change while they are read, as they do under `pg_basebackup`: a torn page is
//! rewritten by the WAL the backup carries (full-page writes), a file that grew is read to
//! the size it had when opened, one that shrank is padded with zeros, one that vanished is
//! left out. A temporary replication slot keeps the server from recycling the WAL the backup
//! needs before it is read.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use lifeboat_core::producer::blocking_capture;
use lifeboat_core::wal::{Segment, parse_lsn};
use lifeboat_core::{Capture, Result};
use tokio_postgres::Client;
use tracing::{debug, info, warn};

use crate::cluster::{CLUSTER_KIND, ClusterMetadata};
use crate::connect::db_message;
use crate::error::PgError;

/// Bytes read from a file at a time.
const READ_PIECE: usize = 1 << 20;

/// Folders whose contents a base backup leaves out (the folder itself is kept), as
/// `pg_basebackup` does: they are emptied or rebuilt when the server starts.
const EMPTIED_FOLDERS: &[&str] = &[
    "pg_stat_tmp",
    "pg_replslot",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_subtrans",
];

/// Files a base backup leaves out, wherever they are (`pg_internal.init`) or at the top.
const LEFT_OUT_ANYWHERE: &[&str] = &["pg_internal.init"];
const LEFT_OUT_AT_TOP: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "tablespace_map",
    "backup_manifest",
    "postgresql.auto.conf.tmp",
    "current_logfiles.tmp",
];

/// The cluster's data directory, when this process can read it: the server shows it to this
/// role, it is readable here, and its `global/pg_control` holds the server's system
/// identifier (so it is this server's, not a same-named folder on another host), and the
/// role may start a backup.
///
/// # Errors
/// Why not, in words, for the log or for `--via files`.
pub(crate) async fn local_data_dir(
    client: &Client,
    system_identifier: &str,
    server_major: u32,
) -> std::result::Result<PathBuf, String> {
    let row =
        client.query_one("SELECT current_setting('data_directory', true)", &[]).await.map_err(
            |e| format!("the server did not say where its data directory is: {}", db_message(&e)),
        )?;
    let dir: Option<String> = row.get(0);
    let dir = dir
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .ok_or("this role may not see data_directory (it needs pg_read_all_settings)")?;
    let control = dir.join("global/pg_control");
    let mut head = [0u8; 8];
    std::fs::File::open(&control)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| format!("{} is not readable here: {e}", control.display()))?;
    let here = u64::from_le_bytes(head).to_string();
    if here != system_identifier {
        return Err(format!(
            "{} belongs to another cluster (system identifier {here}, the server's {system_identifier})",
            dir.display()
        ));
    }
    std::fs::read_dir(&dir).map_err(|e| format!("{} cannot be listed: {e}", dir.display()))?;
    let start = if server_major >= 15 {
        "pg_backup_start(text, boolean)"
    } else {
        "pg_start_backup(text, boolean, boolean)"
    };
    let row = client
        .query_one("SELECT has_function_privilege($1, 'EXECUTE')", &[&start])
        .await
        .map_err(|e| format!("checking the right to start a backup: {}", db_message(&e)))?;
    if !row.get::<_, bool>(0) {
        return Err(format!(
            "this role may not run {start} (a superuser, or GRANT EXECUTE ON FUNCTION {start})"
        ));
    }
    Ok(dir)
}

/// A base backup of the cluster behind `client`, read from `data_dir` (see the module docs),
/// produced on a thread of its own; `client`'s session holds the backup until the tar ends.
/// Call it on a tokio runtime: the thread runs the session's queries on it.
pub(crate) fn capture(
    client: Client,
    target: String,
    data_dir: PathBuf,
    mut metadata: ClusterMetadata,
) -> Result<Capture> {
    let runtime = tokio::runtime::Handle::current();
    blocking_capture("lifeboat-pgdata-walk", CLUSTER_KIND, None, move |sink| {
        let query = |reason: String| PgError::Query { target: target.clone(), reason };
        let read_error = |e: io::Error| PgError::DataDirectory {
            dir: data_dir.display().to_string(),
            reason: e.to_string(),
        };
        // The slot keeps the WAL from here on until the session ends; without one (no free
        // slot, no privilege) a busy server could recycle a segment before it is read, and
        // the backup then fails saying so.
        let slot = format!("lifeboat_{}_{}", std::process::id(), nanos());
        let slot_sql = "SELECT pg_create_physical_replication_slot($1, true, true)";
        if let Err(e) = runtime.block_on(client.query_one(slot_sql, &[&slot])) {
            warn!(error = %db_message(&e), "no temporary replication slot: WAL recycled during the backup would fail it");
        }
        let (start_sql, stop_sql) = if metadata.server_major >= 15 {
            (
                "SELECT pg_backup_start('lifeboat base backup', true)::text",
                "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)",
            )
        } else {
            (
                "SELECT pg_start_backup('lifeboat base backup', true, false)::text",
                "SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, false)",
            )
        };
        runtime.block_on(client.query_one(start_sql, &[])).map_err(|e| query(db_message(&e)))?;
        info!(dir = %data_dir.display(), "base backup started; reading the data directory");
        let mut out = TarOut::new(sink);
        out.tree(&data_dir).map_err(read_error)?;
        let row =
            runtime.block_on(client.query_one(stop_sql, &[])).map_err(|e| query(db_message(&e)))?;
        let stop_lsn: String = row.get(0);
        let label: String = row.get(1);
        let spcmap: Option<String> = row.get(2);
        let (start_lsn, timeline) = label_start(&label).ok_or_else(|| {
            query(format!("pg_backup_stop gave a backup_label without its start: {label:?}"))
        })?;
        let wal =
            WalRange { timeline, start_lsn, stop_lsn, segment_size: metadata.wal_segment_size };
        out.finish(&data_dir, &label, spcmap.as_deref(), &wal).map_err(read_error)?;
        drop(client);
        metadata.start_lsn = wal.start_lsn;
        metadata.stop_lsn = wal.stop_lsn;
        metadata.timeline = timeline;
        metadata.via = "files".into();
        Ok(serde_json::to_value(&metadata)
            .map_err(|e| query(format!("the backup's metadata: {e}")))?)
    })
}

/// The WAL a base backup needs: from its start to its end, on its timeline.
struct WalRange {
    timeline: u32,
    start_lsn: String,
    stop_lsn: String,
    segment_size: u64,
}

fn nanos() -> u32 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}

/// The start LSN and timeline a `backup_label` names (`START WAL LOCATION: 0/2000028 (file
/// …)`, `START TIMELINE: 1`).
fn label_start(label: &str) -> Option<(String, u32)> {
    let field = |name: &str| {
        label.lines().find_map(|l| l.strip_prefix(name)).map(|rest| rest.trim().to_string())
    };
    let location = field("START WAL LOCATION:")?;
    let lsn = location.split_whitespace().next()?.to_string();
    parse_lsn(&lsn)?;
    let timeline = field("START TIMELINE:")?.parse().ok()?;
    Some((lsn, timeline))
}

/// Counts the CRC32C of what passes through.
struct Crc32cReader<R> {
    inner: R,
    crc: u32,
}

impl<R: Read> Read for Crc32cReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }
}

/// A file as `backup_manifest` lists it.
struct ManifestFile {
    path: String,
    size: u64,
    modified: SystemTime,
    crc: u32,
}

/// The tar being written, and the manifest of what went into it.
struct TarOut<W: Write> {
    tar: tar::Builder<W>,
    files: Vec<ManifestFile>,
}

impl<W: Write> TarOut<W> {
    fn new(writer: W) -> Self {
        let mut tar = tar::Builder::new(writer);
        tar.mode(tar::HeaderMode::Complete);
        tar.follow_symlinks(false);
        TarOut { tar, files: Vec::new() }
    }

    /// Every file and folder under `root`, sorted by name, less what a base backup leaves out.
    fn tree(&mut self, root: &Path) -> io::Result<()> {
        self.folder(root, Path::new(""))
    }

    fn folder(&mut self, root: &Path, rel: &Path) -> io::Result<()> {
        let full = root.join(rel);
        let mut entries: Vec<_> = match std::fs::read_dir(&full) {
            Ok(entries) => entries.collect::<io::Result<Vec<_>>>()?,
            // Dropped while the backup ran (a database dropped): the WAL replays that.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !rel.as_os_str().is_empty() => {
                return Ok(());
            }
            Err(e) => return Err(with_path(e, &full)),
        };
        entries.sort_by_key(|e| e.file_name());
        let top = rel.as_os_str().is_empty();
        for entry in entries {
            let name = entry.file_name();
            let name_text = name.to_string_lossy();
            let path = rel.join(&name);
            if LEFT_OUT_ANYWHERE.contains(&name_text.as_ref())
                || (top && LEFT_OUT_AT_TOP.contains(&name_text.as_ref()))
                || name_text.starts_with("pgsql_tmp")
            {
                continue;
            }
            let meta = match std::fs::symlink_metadata(entry.path()) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(with_path(e, &entry.path())),
            };
            if top && name_text == "pg_wal" {
                // Its files are the WAL, added from the backup's start to its end. It may be a
                // symbolic link (initdb -X): the folder it leads to is what is described.
                let wal =
                    std::fs::metadata(entry.path()).map_err(|e| with_path(e, &entry.path()))?;
                self.folder_entry(&path, &wal)?;
                self.folder_entry(&path.join("archive_status"), &wal)?;
                continue;
            }
            if top && name_text == "pg_tblspc" {
                if std::fs::read_dir(entry.path())?.next().is_some() {
                    return Err(io::Error::other(
                        "the cluster has tablespaces, which a base backup to one stream cannot hold",
                    ));
                }
                self.folder_entry(&path, &meta)?;
                continue;
            }
            if meta.is_dir() {
                self.folder_entry(&path, &meta)?;
                if !(top && EMPTIED_FOLDERS.contains(&name_text.as_ref())) {
                    self.folder(root, &path)?;
                }
            } else if meta.is_symlink() {
                let target = std::fs::read_link(entry.path())?;
                let mut header = header_from(&meta, tar::EntryType::Symlink);
                header.set_size(0);
                self.tar.append_link(&mut header, &path, &target)?;
            } else if meta.is_file() {
                self.file(&entry.path(), &path)?;
            }
        }
        Ok(())
    }

    fn folder_entry(&mut self, path: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
        let mut header = header_from(meta, tar::EntryType::Directory);
        header.set_size(0);
        self.tar.append_data(&mut header, path, io::empty())
    }

    /// One regular file, at the size it has when opened (see the module docs).
    fn file(&mut self, full: &Path, path: &Path) -> io::Result<()> {
        let file = match std::fs::File::open(full) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(with_path(e, full)),
        };
        let meta = file.metadata().map_err(|e| with_path(e, full))?;
        self.add(path, &meta, file, meta.len())
    }

    /// `size` bytes of `content` (padded with zeros when it ends sooner) as `path`.
    fn add(
        &mut self,
        path: &Path,
        meta: &std::fs::Metadata,
        content: impl Read,
        size: u64,
    ) -> io::Result<()> {
        let mut header = header_from(meta, tar::EntryType::Regular);
        header.set_size(size);
        let exact = content.chain(io::repeat(0)).take(size);
        let capacity = usize::try_from(size).unwrap_or(READ_PIECE).clamp(1, READ_PIECE);
        let mut counted =
            io::BufReader::with_capacity(capacity, Crc32cReader { inner: exact, crc: 0 });
        self.tar.append_data(&mut header, path, &mut counted)?;
        self.files.push(ManifestFile {
            path: manifest_path(path)?,
            size,
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            crc: counted.get_ref().crc,
        });
        Ok(())
    }

    /// A file made here (the label, the tablespace map, the manifest), owned as `like` is.
    fn add_made(&mut self, path: &str, like: &std::fs::Metadata, content: &[u8]) -> io::Result<()> {
        let now = SystemTime::now();
        let mut header = header_from(like, tar::EntryType::Regular);
        header.set_mode(0o600);
        header.set_mtime(
            now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        );
        header.set_size(content.len() as u64);
        self.tar.append_data(&mut header, path, content)?;
        if path != "backup_manifest" {
            self.files.push(ManifestFile {
                path: path.into(),
                size: content.len() as u64,
                modified: now,
                crc: crc32c::crc32c(content),
            });
        }
        Ok(())
    }

    /// Adds the label, the tablespace map, the WAL the backup needs and the manifest, and
    /// ends the tar.
    fn finish(
        mut self,
        root: &Path,
        label: &str,
        spcmap: Option<&str>,
        wal: &WalRange,
    ) -> io::Result<()> {
        let like = std::fs::metadata(root.join("PG_VERSION")).map_err(|e| with_path(e, root))?;
        self.add_made("backup_label", &like, label.as_bytes())?;
        if let Some(map) = spcmap.filter(|m| !m.is_empty()) {
            self.add_made("tablespace_map", &like, map.as_bytes())?;
        }
        let (Some(start), Some(stop)) = (parse_lsn(&wal.start_lsn), parse_lsn(&wal.stop_lsn))
        else {
            return Err(io::Error::other(format!(
                "unreadable LSNs {} / {}",
                wal.start_lsn, wal.stop_lsn
            )));
        };
        let size = wal.segment_size.max(1);
        let mut segment = Segment { timeline: wal.timeline, number: start / size };
        // The end LSN points just past the backup's last record: a segment boundary belongs
        // to the segment before it.
        let last = stop.saturating_sub(1) / size;
        let wal_dir = root.join("pg_wal");
        while segment.number <= last {
            let name = segment.name(size);
            let full = wal_dir.join(&name);
            let file = std::fs::File::open(&full).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "WAL segment {name} the backup needs: {e} (recycled before it was read?)"
                    ),
                )
            })?;
            let meta = file.metadata()?;
            self.add(Path::new(&format!("pg_wal/{name}")), &meta, file, size)?;
            self.add(
                Path::new(&format!("pg_wal/archive_status/{name}.done")),
                &meta,
                io::empty(),
                0,
            )?;
            segment = segment.next();
        }
        debug!(files = self.files.len(), "writing backup_manifest");
        let manifest = manifest_text(&self.files, wal);
        self.add_made("backup_manifest", &like, manifest.as_bytes())?;
        let mut writer = self.tar.into_inner()?;
        writer.flush()
    }
}

fn header_from(meta: &std::fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header.set_entry_type(kind);
    header
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A path as the manifest writes it: `/`-separated, UTF-8.
fn manifest_path(path: &Path) -> io::Result<String> {
    path.to_str()
        .map(|p| p.replace('\\', "/"))
        .ok_or_else(|| io::Error::other(format!("{} is not UTF-8", path.display())))
}

/// The `backup_manifest` of `files`, as PostgreSQL writes it: version 1, CRC32C per file
/// (its bytes' CRC, in memory order), the WAL range, and a SHA-256 of all that.
fn manifest_text(files: &[ManifestFile], wal: &WalRange) -> String {
    use sha2::Digest as _;
    let mut text = String::from("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n");
    for (n, file) in files.iter().enumerate() {
        let modified =
            chrono::DateTime::<chrono::Utc>::from(file.modified).format("%Y-%m-%d %H:%M:%S GMT");
        let crc: String = file.crc.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let path = serde_json::to_string(&file.path).unwrap_or_default();
        text.push_str(&format!(
            "{{ \"Path\": {path}, \"Size\": {}, \"Last-Modified\": \"{modified}\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"{crc}\" }}{}\n",
            file.size,
            if n + 1 < files.len() { "," } else { "" }
        ));
    }
    text.push_str(&format!(
        "],\n\"WAL-Ranges\": [\n{{ \"Timeline\": {}, \"Start-LSN\": \"{}\", \"End-LSN\": \"{}\" }}\n],\n",
        wal.timeline, wal.start_lsn, wal.stop_lsn
    ));
    let digest = sha2::Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    text.push_str(&format!("\"Manifest-Checksum\": \"{hex}\"}}\n"));
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Writes a fake data directory's tar through `TarOut` and reads it back: what a base
    /// backup leaves out is out, the WAL range is in with its `.done` markers, a file that
    /// ends sooner than its size is padded, and the manifest lists every file with its CRC.
    #[test]
    fn the_tar_holds_what_pg_basebackup_would_write() {
        let root = tempfile::tempdir().unwrap();
        let put = |rel: &str, content: &[u8]| {
            let path = root.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        };
        put("PG_VERSION", b"15\n");
        put("base/1/1259", &[7u8; 20_000]);
        put("global/pg_internal.init", b"cache");
        put("base/1/pg_internal.init", b"cache");
        put("postmaster.pid", b"123");
        put("pg_stat_tmp/global.stat", b"stats");
        put("base/pgsql_tmp/pgsql_tmp1.0", b"sort");
        put("pg_wal/000000010000000000000001", &[1u8; 1 << 20]);
        put("pg_wal/000000010000000000000002", &[2u8; 1 << 20]);
        put("pg_wal/000000010000000000000003", &[3u8; 1 << 20]);
        put("pg_wal/archive_status/000000010000000000000001.ready", b"");
        std::fs::create_dir_all(root.path().join("pg_tblspc")).unwrap();

        let mut bytes = Vec::new();
        let mut out = TarOut::new(&mut bytes);
        out.tree(root.path()).unwrap();
        // A file that shrank after it was measured: padded to the size its header holds.
        let meta = std::fs::metadata(root.path().join("PG_VERSION")).unwrap();
        out.add(Path::new("base/1/shrunk"), &meta, &b"abc"[..], 10).unwrap();
        let label =
            "START WAL LOCATION: 0/100028 (file 000000010000000000000001)\nSTART TIMELINE: 1\n";
        let wal = WalRange {
            timeline: 1,
            start_lsn: "0/100028".into(),
            stop_lsn: "0/200100".into(),
            segment_size: 1 << 20,
        };
        out.finish(root.path(), label, Some(""), &wal).unwrap();

        let mut archive = tar::Archive::new(&bytes[..]);
        let mut files = std::collections::BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            files.insert(path, content);
        }
        for gone in [
            "postmaster.pid",
            "global/pg_internal.init",
            "base/1/pg_internal.init",
            "pg_stat_tmp/global.stat",
            "base/pgsql_tmp/pgsql_tmp1.0",
            "base/pgsql_tmp",
            "pg_wal/archive_status/000000010000000000000001.ready",
            "pg_wal/000000010000000000000003",
            "tablespace_map",
        ] {
            assert!(!files.contains_key(gone), "{gone} is left out");
        }
        for kept in ["pg_stat_tmp", "pg_wal/archive_status", "pg_tblspc"] {
            assert!(files.contains_key(kept), "the folder {kept} is kept: {:?}", files.keys());
        }
        assert_eq!(files["base/1/1259"], vec![7u8; 20_000]);
        assert_eq!(files["base/1/shrunk"], b"abc\0\0\0\0\0\0\0");
        assert_eq!(files["pg_wal/000000010000000000000001"], vec![1u8; 1 << 20]);
        assert_eq!(files["pg_wal/000000010000000000000002"], vec![2u8; 1 << 20]);
        assert!(files.contains_key("pg_wal/archive_status/000000010000000000000002.done"));
        assert_eq!(files["backup_label"], label.as_bytes());
        let manifest: serde_json::Value =
            serde_json::from_slice(&files["backup_manifest"]).unwrap();
        let listed: Vec<&str> = manifest["Files"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["Path"].as_str())
            .collect();
        for path in ["PG_VERSION", "base/1/1259", "base/1/shrunk", "backup_label"] {
            assert!(listed.contains(&path), "{path} in the manifest: {listed:?}");
        }
        let shrunk = manifest["Files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["Path"] == "base/1/shrunk")
            .unwrap();
        let crc: String = crc32c::crc32c(b"abc\0\0\0\0\0\0\0")
            .to_le_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(shrunk["Checksum"], crc.as_str());
        assert_eq!(manifest["WAL-Ranges"][0]["End-LSN"], "0/200100");
    }

    #[test]
    fn checksums_and_labels_read_as_postgresql_writes_them() {
        // PG_VERSION of a PostgreSQL 15 cluster, as pg_basebackup's manifest lists it.
        let crc = crc32c::crc32c(b"15\n").to_le_bytes();
        let hex: String = crc.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "8a744722");
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
                     CHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 3\n";
        assert_eq!(label_start(label), Some(("0/2000028".into(), 3)));
        assert_eq!(label_start("LABEL: x\n"), None);
        let files = [ManifestFile {
            path: "PG_VERSION".into(),
            size: 3,
            modified: SystemTime::UNIX_EPOCH,
            crc: crc32c::crc32c(b"15\n"),
        }];
        let wal = WalRange {
            timeline: 1,
            start_lsn: "0/2000028".into(),
            stop_lsn: "0/2000100".into(),
            segment_size: 16 << 20,
        };
        let text = manifest_text(&files, &wal);
        assert!(text.contains("\"Checksum\": \"8a744722\""), "{text}");
        let (body, tail) = text.split_at(text.find("\"Manifest-Checksum\"").unwrap_or(0));
        use sha2::Digest as _;
        let want: String =
            sha2::Sha256::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert!(tail.contains(&want), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "{text}");
    }
}
