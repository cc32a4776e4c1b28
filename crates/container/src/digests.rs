//! Per-file digests of a tar stream, to compare what a restore put in place with what the
//! snapshot holds.

use std::collections::BTreeMap;
use std::io::Read;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

/// Path (without leading `/` or `./`) → SHA-256 of a regular file, or `-> target` of a
/// link. Folders are left out: their presence follows from their files.
pub type FileDigests = BTreeMap<String, String>;

/// Paths the engine writes into every container; they never match the snapshot.
const ENGINE_FILES: [&str; 4] = [".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// Reads a tar stream to the end and digests every file in it.
///
/// # Errors
/// When the stream is not a readable tar.
pub fn tar_digests(reader: impl Read) -> std::io::Result<FileDigests> {
    let mut archive = tar::Archive::new(reader);
    let mut out = FileDigests::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = normalise(&entry.path()?.to_string_lossy());
        let kind = entry.header().entry_type();
        let value = if kind.is_file() {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = entry.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            hex::encode(hasher.finalize())
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name()?.map(|t| t.to_string_lossy().into_owned());
            format!("-> {}", target.unwrap_or_default())
        } else {
            continue;
        };
        out.insert(path, value);
    }
    // Drain the end-of-archive blocks so a tee feeding this reader never blocks.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())?;
    Ok(out)
}

/// Whether the start of a tar stream (`head`) shows a single empty folder: a folder entry
/// and then the end of the archive. A truncated head with a second entry, a first entry
/// that is not a folder, or anything unreadable is not an empty folder.
pub fn tar_is_one_empty_folder(head: &[u8]) -> bool {
    let mut archive = tar::Archive::new(head);
    let Ok(mut entries) = archive.entries() else { return false };
    let first_is_folder = match entries.next() {
        Some(Ok(entry)) => entry.header().entry_type().is_dir(),
        _ => false,
    };
    first_is_folder && entries.next().is_none()
}

fn normalise(path: &str) -> String {
    path.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_string()
}

/// Differences between what a snapshot holds (`expected`) and what a restore produced
/// (`found`), as readable lines; empty when every expected file is there with its content.
/// `found` may hold more files (the engine's own).
pub fn compare(expected: &FileDigests, found: &FileDigests) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, digest) in expected {
        if ENGINE_FILES.contains(&path.as_str()) {
            continue;
        }
        match found.get(path) {
            None => problems.push(format!("{path} is missing")),
            Some(other) if other != digest => problems.push(format!("{path} differs")),
            Some(_) => {}
        }
    }
    problems
}

/// A blocking reader over byte chunks sent from async code, so a tar parser on a blocking
/// thread can read a stream as it goes by.
pub struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    /// A reader and the sender that feeds it; dropping the sender ends the stream.
    pub fn new(capacity: usize) -> (mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, ChannelReader { rx, current: Bytes::new() })
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(next) => self.current = next,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Digests a tar fed chunk by chunk from async code: send chunks on the returned sender,
/// drop it, then await the handle.
pub fn digest_in_background()
-> (mpsc::Sender<Bytes>, tokio::task::JoinHandle<std::io::Result<FileDigests>>) {
    let (tx, reader) = ChannelReader::new(16);
    (tx, tokio::task::spawn_blocking(move || tar_digests(reader)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *data).ok();
        }
        builder.into_inner().unwrap_or_default()
    }

    #[test]
    fn digests_compare_by_content_and_ignore_engine_files() -> std::io::Result<()> {
        let snap = tar_digests(&tar_of(&[("a.txt", b"one"), ("etc/hosts", b"x")])[..])?;
        let same = tar_digests(&tar_of(&[("./a.txt", b"one"), ("extra", b"y")])[..])?;
        let changed = tar_digests(&tar_of(&[("a.txt", b"two")])[..])?;
        assert_eq!(snap.len(), 2);
        assert!(compare(&snap, &same).is_empty());
        assert_eq!(compare(&snap, &changed), vec!["a.txt differs".to_string()]);
        assert_eq!(compare(&snap, &FileDigests::new()), vec!["a.txt is missing".to_string()]);
        Ok(())
    }

    fn folder_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        header.set_cksum();
        builder.append_data(&mut header, "data/", &[][..]).ok();
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, format!("data/{path}"), *data).ok();
        }
        builder.into_inner().unwrap_or_default()
    }

    #[test]
    fn only_a_lone_folder_is_empty() {
        assert!(tar_is_one_empty_folder(&folder_tar(&[])));
        let full = folder_tar(&[("a.txt", &[7u8; 40_000])]);
        assert!(!tar_is_one_empty_folder(&full));
        // Cut inside the second entry's header, and inside its data: still not empty.
        assert!(!tar_is_one_empty_folder(&full[..700]));
        assert!(!tar_is_one_empty_folder(&full[..16 * 1024]));
        // A single file (a bind-mounted file) is never an empty folder.
        assert!(!tar_is_one_empty_folder(&tar_of(&[("localtime", b"TZif")])));
        assert!(!tar_is_one_empty_folder(b"not a tar at all"));
    }
}
