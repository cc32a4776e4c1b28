//! Encryption at rest: sealing objects, keyed chunk ids, key slots, key files and write-only
//! keys.
//!
//! An encrypted repository has one random *master key*: 32 bytes for the AEAD that seals
//! snapshot manifests and chunk data (XChaCha20-Poly1305, a random 24-byte nonce per sealed
//! piece, so no nonce bookkeeping is shared between hosts) and 32 bytes for HMAC-SHA-256,
//! which makes chunk ids (so the store cannot confirm that a known file is in the repository
//! by its hash). Two more keys are derived from it with HKDF-SHA-256:
//!
//! - the *index key* seals what a backup must read to deduplicate and to coordinate: index
//!   files, pack trailers and leases;
//! - the *repository key pair* (X25519): write-only hosts seal what they write (manifests and
//!   chunk data) to its public half, so only holders of the master key read it back.
//!
//! The master key never changes; each password or key file *wraps* it in one key slot under
//! `keys/<slot id>`, with a key derived by Argon2id (passwords) or HKDF (the 256-bit secret
//! of a key file), parameters beside it. A *write-only* slot wraps only the MAC key, the
//! index key and the public key. Adding or removing a key creates or deletes one slot and
//! never rewrites data. Every slot made by this version also seals the SHA-256 of the config
//! object, so a config changed in the store is refused by whoever opens it with a key.
//!
//! A piece sealed with a symmetric key is `nonce (24) ‖ ciphertext ‖ tag (16)`; one sealed to
//! the repository's public key is `ephemeral public key (32) ‖ nonce ‖ ciphertext ‖ tag`. The
//! associated data names what the piece is (a manifest, an index file, a pack trailer, the
//! blob of one chunk id...), so a piece moved to where another kind belongs fails to open, as
//! a damaged one does. `docs/repository-format.md` ("Encryption") says the same and lists
//! what the store, and a write-only host, can still see.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use lifeboat_core::{ChunkId, Digest, Error as CoreError};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};
use crate::format::ChunkIdScheme;

/// The `encryption` value of an encrypted repository's config.
pub const ENCRYPTION: &str = "xchacha20-poly1305";
/// Prefix of key slots.
pub const KEYS_PREFIX: &str = "keys";

const NONCE: usize = 24;
const TAG: usize = 16;
const PUBLIC: usize = 32;
/// Bytes a sealed piece has more than its plain content (sealed to the public key: 32 more).
pub const OVERHEAD: usize = NONCE + TAG;
/// The first line of a key file's JSON, so a key file is recognised as one.
const KEY_FILE_FORMAT: &str = "lifeboat key file";
/// Ephemeral keys whose derived AEAD a full key keeps (one per write-only process read).
const EPHEMERAL_CACHE: usize = 256;

/// What a key lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Everything: read, write, forget, prune, manage keys.
    #[default]
    Full,
    /// Write new snapshots (deduplicated against the repository) and renew its own leases;
    /// read no data or manifest, delete nothing.
    WriteOnly,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::Full => "full",
            Access::WriteOnly => "write-only",
        })
    }
}

/// A password, or the secret of a key file, that creates or opens an encrypted repository.
/// It is never printed: its `Debug` shows `***`, and its bytes are wiped when it is dropped.
#[derive(Clone)]
pub struct Password(Secret);

#[derive(Clone)]
enum Secret {
    Text(Zeroizing<Vec<u8>>),
    KeyFile(Arc<KeyFile>),
}

/// A parsed key file (see [`Password::from_key_file`]).
#[derive(Serialize, Deserialize)]
struct KeyFile {
    /// Always [`KEY_FILE_FORMAT`].
    format: String,
    /// The key file format version (1).
    version: u32,
    /// The repository id it opens.
    repository: String,
    /// Its slot, `keys/<slot>`.
    slot: String,
    /// What it may do.
    access: Access,
    /// The 256-bit secret, hex (wiped on drop).
    secret: String,
    /// Where it was read from, for messages.
    #[serde(skip)]
    path: String,
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

impl Password {
    /// A password from its text. A trailing newline (as a password file usually ends) is
    /// the caller's to strip.
    pub fn new(password: impl Into<String>) -> Self {
        Password(Secret::Text(Zeroizing::new(password.into().into_bytes())))
    }

    /// A password as a password file or command gives it: one trailing line end (`\n` or
    /// `\r\n`) is not part of it. `None` when nothing is left.
    pub fn from_line(mut text: String) -> Option<Self> {
        text.truncate(lifeboat_core::secret::without_line_end(&text).len());
        (!text.is_empty()).then(|| Password::new(text))
    }

    /// A password from raw bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Password(Secret::Text(Zeroizing::new(bytes)))
    }

    /// The key of a key file made by [`crate::Repository::add_key_file`] (its contents).
    ///
    /// # Errors
    /// [`StoreError::Malformed`] naming `file` when the contents are not a key file.
    pub fn from_key_file(file: &str, contents: &[u8]) -> Result<Self> {
        let malformed = |reason: String| StoreError::Malformed { key: file.into(), reason };
        let mut parsed: KeyFile = serde_json::from_slice(contents)
            .map_err(|e| malformed(format!("not a lifeboat key file: {e}")))?;
        if parsed.format != KEY_FILE_FORMAT || parsed.version != 1 {
            return Err(malformed("not a lifeboat key file of a version this build reads".into()));
        }
        let secret = hex::decode(parsed.secret.as_bytes())
            .map_err(|_| malformed("its secret is not hex".into()))?;
        if secret.len() != 32 {
            return Err(malformed("its secret is not 32 bytes".into()));
        }
        parsed.path = file.into();
        Ok(Password(Secret::KeyFile(Arc::new(parsed))))
    }

    /// Whether this is a key file's key rather than a password.
    pub fn is_key_file(&self) -> bool {
        matches!(self.0, Secret::KeyFile(_))
    }

    /// What the key file says it may do (a password: full).
    pub fn access(&self) -> Access {
        match &self.0 {
            Secret::Text(_) => Access::Full,
            Secret::KeyFile(file) => file.access,
        }
    }

    /// The key file's path, repository id and slot id.
    pub(crate) fn key_file_slot(&self) -> Option<(&str, &str, &str)> {
        match &self.0 {
            Secret::Text(_) => None,
            Secret::KeyFile(file) => Some((&file.path, &file.repository, &file.slot)),
        }
    }

    fn bytes(&self) -> Zeroizing<Vec<u8>> {
        match &self.0 {
            Secret::Text(text) => text.clone(),
            Secret::KeyFile(file) => {
                Zeroizing::new(hex::decode(file.secret.as_bytes()).unwrap_or_default())
            }
        }
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_key_file() { "KeyFile(***)" } else { "Password(***)" })
    }
}

/// The text of a new key file: JSON, wiped from memory when dropped. Written once to where
/// the user said (`lifeboat key add --out`), never to the store.
pub struct KeyFileText(pub Zeroizing<String>);

impl std::fmt::Debug for KeyFileText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyFileText(***)")
    }
}

/// What a sealed piece is: the associated data it is sealed with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Domain {
    /// A snapshot manifest.
    Manifest,
    /// An index file.
    Index,
    /// A pack's trailer.
    Trailer,
    /// The blob of one chunk, bound to its id.
    Blob(ChunkId),
    /// A maintenance or backup lease.
    Lease,
    /// A prune's pending mark.
    Mark,
    /// An entry of the WAL archive.
    Wal,
}

impl Domain {
    fn aad(&self) -> Vec<u8> {
        let label: &[u8] = match self {
            Domain::Manifest => b"lifeboat manifest",
            Domain::Index => b"lifeboat index",
            Domain::Trailer => b"lifeboat trailer",
            Domain::Blob(_) => b"lifeboat blob ",
            Domain::Lease => b"lifeboat lease",
            Domain::Mark => b"lifeboat mark",
            Domain::Wal => b"lifeboat wal entry",
        };
        let mut aad = label.to_vec();
        if let Domain::Blob(id) = self {
            aad.extend_from_slice(&id.0);
        }
        aad
    }

    /// Index files, trailers and leases: what every writer must read, sealed with the index
    /// key. The rest holds data and is readable only with the master key.
    fn is_shared(&self) -> bool {
        matches!(self, Domain::Index | Domain::Trailer | Domain::Lease)
    }

    fn what(&self) -> &'static str {
        match self {
            Domain::Manifest => "read snapshot manifests",
            Domain::Blob(_) => "read backed-up data",
            Domain::Mark => "prune",
            Domain::Wal => "read the WAL archive",
            Domain::Index | Domain::Trailer | Domain::Lease => "read the index",
        }
    }
}

/// How a repository's objects are written and read: in the clear, with the master key, or
/// with a write-only key.
#[derive(Clone, Default)]
pub(crate) enum Crypt {
    /// A plaintext repository: objects as they are, chunk ids plain SHA-256.
    #[default]
    Plain,
    /// An encrypted one, opened with a full key.
    Sealed(Arc<MasterKey>),
    /// An encrypted one, opened with a write-only key.
    WriteOnly(Arc<WriteKey>),
}

impl std::fmt::Debug for Crypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Crypt::Plain => "Plain",
            Crypt::Sealed(_) => "Sealed(***)",
            Crypt::WriteOnly(_) => "WriteOnly(***)",
        })
    }
}

/// Makes chunk ids as one repository does: the hash its config names ([`ChunkIdScheme`]),
/// keyed with the MAC key when the repository is encrypted, so the store cannot confirm that
/// a file it knows is in it.
pub(crate) enum ChunkIds {
    Sha256,
    HmacSha256(Hmac<Sha256>),
    Blake3,
    Blake3Keyed(Zeroizing<[u8; 32]>),
}

impl ChunkIds {
    /// The ids of a repository with chunk ids made by `scheme`, opened with `crypt`.
    pub(crate) fn new(scheme: ChunkIdScheme, crypt: &Crypt) -> Self {
        let keys = match crypt {
            Crypt::Plain => None,
            Crypt::Sealed(key) => Some((&key.mac, &key.id_key)),
            Crypt::WriteOnly(key) => Some((&key.mac, &key.id_key)),
        };
        match (scheme, keys) {
            (ChunkIdScheme::Sha256, None) => ChunkIds::Sha256,
            (ChunkIdScheme::Sha256, Some((mac, _))) => ChunkIds::HmacSha256(mac.clone()),
            (ChunkIdScheme::Blake3, None) => ChunkIds::Blake3,
            (ChunkIdScheme::Blake3, Some((_, key))) => ChunkIds::Blake3Keyed(key.clone()),
        }
    }

    /// The id of a chunk with these bytes.
    pub(crate) fn of(&self, plain: &[u8]) -> ChunkId {
        match self {
            ChunkIds::Sha256 => Digest::of(plain),
            ChunkIds::HmacSha256(mac) => {
                let mut mac = mac.clone();
                mac.update(plain);
                Digest(mac.finalize().into_bytes().into())
            }
            ChunkIds::Blake3 => Digest(*blake3::hash(plain).as_bytes()),
            ChunkIds::Blake3Keyed(key) => Digest(*blake3::keyed_hash(key, plain).as_bytes()),
        }
    }
}

impl std::fmt::Debug for ChunkIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChunkIds::Sha256 => "Sha256",
            ChunkIds::HmacSha256(_) => "HmacSha256(***)",
            ChunkIds::Blake3 => "Blake3",
            ChunkIds::Blake3Keyed(_) => "Blake3Keyed(***)",
        })
    }
}

impl Crypt {
    /// Seals `plain` as `domain` (returns it as it is in a plaintext repository).
    pub(crate) fn seal(&self, domain: Domain, plain: Vec<u8>) -> Result<Vec<u8>> {
        let aad = domain.aad();
        match self {
            Crypt::Plain => Ok(plain),
            Crypt::Sealed(key) if domain.is_shared() => seal_with(&key.index, &aad, &plain, &[]),
            Crypt::Sealed(key) => seal_with(&key.aead, &aad, &plain, &[]),
            Crypt::WriteOnly(key) if domain.is_shared() => seal_with(&key.index, &aad, &plain, &[]),
            Crypt::WriteOnly(_) if matches!(domain, Domain::Mark) => {
                Err(StoreError::WriteOnly { action: domain.what().into() })
            }
            Crypt::WriteOnly(key) => {
                seal_with(&key.ephemeral.1, &aad, &plain, key.ephemeral.0.as_bytes())
            }
        }
    }

    /// Opens what [`Crypt::seal`] made of `domain`: a piece that is not authentic (damaged,
    /// moved, or sealed with another key) is [`CoreError::Corrupt`] naming `object`; a piece
    /// a write-only key may not read is [`StoreError::WriteOnly`].
    pub(crate) fn open(
        &self,
        object: &str,
        domain: Domain,
        sealed: bytes::Bytes,
    ) -> Result<bytes::Bytes> {
        match self {
            Crypt::Plain => Ok(sealed),
            _ => {
                self.open_slice(object, domain, &sealed).map(|p| bytes::Bytes::from(p.into_owned()))
            }
        }
    }

    /// As [`Crypt::open`], for a piece borrowed from a larger object (no copy when plain).
    pub(crate) fn open_slice<'a>(
        &self,
        object: &str,
        domain: Domain,
        sealed: &'a [u8],
    ) -> Result<std::borrow::Cow<'a, [u8]>> {
        let aad = domain.aad();
        let opened = match self {
            Crypt::Plain => return Ok(std::borrow::Cow::Borrowed(sealed)),
            Crypt::WriteOnly(key) if domain.is_shared() => open_with(&key.index, &aad, sealed),
            Crypt::WriteOnly(_) => {
                return Err(StoreError::WriteOnly { action: domain.what().into() });
            }
            Crypt::Sealed(key) if domain.is_shared() => open_with(&key.index, &aad, sealed)
                // Written before the index key existed: sealed with the data key.
                .or_else(|| open_with(&key.aead, &aad, sealed)),
            Crypt::Sealed(key) => key.open_data(&aad, sealed),
        };
        opened.map(std::borrow::Cow::Owned).ok_or_else(|| not_authentic(object))
    }

    /// Whether objects are sealed.
    pub(crate) fn is_sealed(&self) -> bool {
        !matches!(self, Crypt::Plain)
    }

    /// Whether this is a write-only key.
    pub(crate) fn is_write_only(&self) -> bool {
        matches!(self, Crypt::WriteOnly(_))
    }
}

/// The error for a sealed piece that does not open.
pub(crate) fn not_authentic(object: &str) -> StoreError {
    StoreError::Core(CoreError::Corrupt {
        object: object.to_string(),
        expected: "an object sealed with this repository's key".into(),
        actual: "authentication failed (damaged, or not written by this repository)".into(),
    })
}

/// `prefix ‖ nonce ‖ ciphertext ‖ tag`.
fn seal_with(aead: &XChaCha20Poly1305, aad: &[u8], plain: &[u8], prefix: &[u8]) -> Result<Vec<u8>> {
    let nonce: [u8; NONCE] = rand::random();
    let mut out = Vec::with_capacity(prefix.len() + plain.len() + OVERHEAD);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plain);
    let tag = aead
        .encrypt_inout_detached(&XNonce::from(nonce), aad, (&mut out[start..]).into())
        .map_err(|_| StoreError::Malformed {
            key: "new object".into(),
            reason: "the object is too large to seal".into(),
        })?;
    out.extend_from_slice(&tag);
    Ok(out)
}

fn open_with(aead: &XChaCha20Poly1305, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < OVERHEAD {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE);
    let (body, tag) = rest.split_at(rest.len() - TAG);
    let nonce = XNonce::try_from(nonce).ok()?;
    let tag = chacha20poly1305::Tag::try_from(tag).ok()?;
    let mut plain = body.to_vec();
    aead.decrypt_inout_detached(&nonce, aad, plain.as_mut_slice().into(), &tag).ok()?;
    Some(plain)
}

/// 32 bytes from `ikm` for `label` (HKDF-SHA-256, no salt: `ikm` is uniformly random).
fn subkey(ikm: &[u8], salt: Option<&[u8]>, label: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF's limit of 255 hash lengths: the error cannot happen.
    let _ = Hkdf::<Sha256>::new(salt, ikm).expand(label, &mut out[..]);
    out
}

fn aead_from(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&chacha20poly1305::Key::from(*key))
}

/// The key of keyed BLAKE3 chunk ids, derived from the MAC key (so a write-only key, which
/// holds the MAC key, makes the same ids).
fn blake3_id_key(mac_key: &[u8]) -> Zeroizing<[u8; 32]> {
    subkey(mac_key, None, b"lifeboat blake3 chunk id key v1")
}

fn mac_from(key: &[u8]) -> Result<Hmac<Sha256>> {
    // HMAC takes keys of any length; the error cannot happen.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| StoreError::Malformed {
        key: KEYS_PREFIX.into(),
        reason: "invalid MAC key".into(),
    })
}

/// The AEAD key for pieces sealed with the ephemeral key `ephemeral` to the repository key
/// `public` (`shared` is their X25519 agreement); `None` for a non-contributory agreement
/// (a low-order point, which only a forger would send).
fn sealed_to_public_key(
    shared: &x25519_dalek::SharedSecret,
    ephemeral: &PublicKey,
    public: &PublicKey,
) -> Option<XChaCha20Poly1305> {
    if !shared.was_contributory() {
        return None;
    }
    let mut salt = Vec::with_capacity(2 * PUBLIC);
    salt.extend_from_slice(ephemeral.as_bytes());
    salt.extend_from_slice(public.as_bytes());
    Some(aead_from(&subkey(
        shared.as_bytes(),
        Some(&salt),
        b"lifeboat sealed to the repository key v1",
    )))
}

/// The repository's master key: the data AEAD key and the chunk-id MAC key, and what is
/// derived from them.
pub(crate) struct MasterKey {
    raw: Zeroizing<[u8; 64]>,
    aead: XChaCha20Poly1305,
    index: XChaCha20Poly1305,
    index_raw: Zeroizing<[u8; 32]>,
    mac: Hmac<Sha256>,
    id_key: Zeroizing<[u8; 32]>,
    secret: StaticSecret,
    public: PublicKey,
    /// AEAD keys of write-only writers' ephemeral keys seen so far.
    ephemeral: Mutex<HashMap<[u8; PUBLIC], XChaCha20Poly1305>>,
    /// Whether the last data piece opened was sealed to the public key: tried first next.
    last_public: AtomicBool,
}

impl MasterKey {
    pub(crate) fn random() -> Result<Self> {
        Self::from_raw(Zeroizing::new(rand::random()))
    }

    fn from_raw(raw: Zeroizing<[u8; 64]>) -> Result<Self> {
        let mut data = Zeroizing::new([0u8; 32]);
        data.copy_from_slice(&raw[..32]);
        let aead = aead_from(&data);
        let mac = mac_from(&raw[32..])?;
        let id_key = blake3_id_key(&raw[32..]);
        let index_raw = subkey(&raw[..], None, b"lifeboat index key v1");
        let secret = StaticSecret::from(*subkey(&raw[..], None, b"lifeboat x25519 key v1"));
        let public = PublicKey::from(&secret);
        Ok(MasterKey {
            aead,
            index: aead_from(&index_raw),
            index_raw,
            mac,
            id_key,
            secret,
            public,
            raw,
            ephemeral: Mutex::new(HashMap::new()),
            last_public: AtomicBool::new(false),
        })
    }

    /// Opens a manifest or blob: sealed with the data key by a full key, or to the public
    /// key by a write-only one (tried in the order that worked last).
    fn open_data(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let public_first = self.last_public.load(Ordering::Relaxed);
        let attempts: [bool; 2] = [public_first, !public_first];
        for public in attempts {
            let opened = if public {
                self.open_sealed_to_public(aad, sealed)
            } else {
                open_with(&self.aead, aad, sealed)
            };
            if opened.is_some() {
                self.last_public.store(public, Ordering::Relaxed);
                return opened;
            }
        }
        None
    }

    fn open_sealed_to_public(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < PUBLIC + OVERHEAD {
            return None;
        }
        let (ephemeral, rest) = sealed.split_at(PUBLIC);
        let ephemeral: [u8; PUBLIC] = ephemeral.try_into().ok()?;
        let cached = self.ephemeral.lock().ok()?.get(&ephemeral).cloned();
        let aead = match cached {
            Some(aead) => aead,
            None => {
                let theirs = PublicKey::from(ephemeral);
                let aead = sealed_to_public_key(
                    &self.secret.diffie_hellman(&theirs),
                    &theirs,
                    &self.public,
                )?;
                if let Ok(mut cache) = self.ephemeral.lock() {
                    if cache.len() >= EPHEMERAL_CACHE {
                        cache.clear();
                    }
                    cache.insert(ephemeral, aead.clone());
                }
                aead
            }
        };
        open_with(&aead, aad, rest)
    }

    /// What a write-only key holds: the MAC key, the index key and the public key.
    fn write_bundle(&self) -> Zeroizing<Vec<u8>> {
        let mut bundle = Zeroizing::new(Vec::with_capacity(96));
        bundle.extend_from_slice(&self.raw[32..]);
        bundle.extend_from_slice(&self.index_raw[..]);
        bundle.extend_from_slice(self.public.as_bytes());
        bundle
    }
}

/// A write-only key: chunk ids and the index key as a full key has them, and the public key
/// that what it writes is sealed to, with this process's ephemeral key pair.
pub(crate) struct WriteKey {
    mac: Hmac<Sha256>,
    id_key: Zeroizing<[u8; 32]>,
    index: XChaCha20Poly1305,
    /// This process's ephemeral public key and the AEAD key it shares with the repository
    /// key. One per opened handle: a full key derives it once per handle it reads from.
    ephemeral: (PublicKey, XChaCha20Poly1305),
}

impl WriteKey {
    fn from_bundle(key: &str, bundle: &[u8]) -> Result<Self> {
        let malformed = || StoreError::Malformed {
            key: key.into(),
            reason: "a write-only key of the wrong length".into(),
        };
        let (mac, rest) = bundle.split_at_checked(32).ok_or_else(malformed)?;
        let (index, public) = rest.split_at_checked(32).ok_or_else(malformed)?;
        let index: [u8; 32] = index.try_into().map_err(|_| malformed())?;
        let public: [u8; PUBLIC] = public.try_into().map_err(|_| malformed())?;
        let public = PublicKey::from(public);
        let ephemeral_secret = StaticSecret::from(rand::random::<[u8; 32]>());
        let ephemeral_public = PublicKey::from(&ephemeral_secret);
        let aead = sealed_to_public_key(
            &ephemeral_secret.diffie_hellman(&public),
            &ephemeral_public,
            &public,
        )
        .ok_or_else(|| StoreError::Malformed {
            key: key.into(),
            reason: "the repository's public key is not a usable X25519 key".into(),
        })?;
        Ok(WriteKey {
            mac: mac_from(mac)?,
            id_key: blake3_id_key(mac),
            index: aead_from(&index),
            ephemeral: (ephemeral_public, aead),
        })
    }
}

/// Argon2id parameters of a key slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 4 lanes: RFC 9106's second recommended setting. The lanes are
    /// filled on as many cores as there are (up to 4), so an open costs about a quarter of a
    /// second on one core and less on more, while every password guess costs an attacker
    /// the same memory and work.
    fn default() -> Self {
        KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 4 }
    }
}

/// The largest Argon2 memory a slot may ask for: a damaged or hostile slot must not make
/// an opener allocate without bound.
const MAX_KDF_MEMORY_KIB: u32 = 4 << 20;

/// The KDF of password slots.
const ARGON2ID: &str = "argon2id";
/// The KDF of key-file slots: their secret is 256 random bits, so a slow KDF adds nothing.
const HKDF_SHA256: &str = "hkdf-sha256";

/// One key slot, `keys/<id>`: the master key (or, for a write-only key, what a writer
/// needs) wrapped with a key derived from a password or a key file's secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySlot {
    /// Slot format version (1).
    pub version: u32,
    /// `argon2id` (a password) or `hkdf-sha256` (a key file).
    pub kdf: String,
    /// The KDF's parameters (Argon2id's; zeros for HKDF).
    #[serde(flatten)]
    pub params: KdfParams,
    /// Random salt, hex.
    pub salt: String,
    /// The wrapped key sealed with the derived key, hex (`nonce ‖ ciphertext ‖ tag`). Inside:
    /// the master key (or the write-only bundle), then the SHA-256 of the config object
    /// (absent in slots made before config authentication).
    pub wrapped: String,
    /// When the slot was added.
    pub created: DateTime<Utc>,
    /// The host that added it.
    pub host: String,
    /// What the key may do.
    #[serde(default)]
    pub access: Access,
}

/// What a key slot opened to.
pub(crate) struct Unlocked {
    /// The key.
    pub(crate) crypt: Crypt,
    /// The config's SHA-256 the slot was made with, when it records one.
    pub(crate) config: Option<[u8; 32]>,
}

impl KeySlot {
    /// Wraps `master` for `password` (full access), binding the config `config`.
    pub(crate) fn wrap(
        master: &MasterKey,
        password: &Password,
        params: KdfParams,
        repo_id: &str,
        config: &[u8; 32],
    ) -> Result<Self> {
        let mut contents = Zeroizing::new(master.raw.to_vec());
        contents.extend_from_slice(config);
        Self::seal(&contents, &password.bytes(), ARGON2ID, params, Access::Full, repo_id)
    }

    /// A slot for a key file's `secret` with `access`, binding the config `config`.
    pub(crate) fn wrap_key_file(
        master: &MasterKey,
        secret: &[u8; 32],
        access: Access,
        repo_id: &str,
        config: &[u8; 32],
    ) -> Result<Self> {
        let mut contents = match access {
            Access::Full => Zeroizing::new(master.raw.to_vec()),
            Access::WriteOnly => master.write_bundle(),
        };
        contents.extend_from_slice(config);
        let none = KdfParams { memory_kib: 0, iterations: 0, parallelism: 0 };
        Self::seal(&contents, secret, HKDF_SHA256, none, access, repo_id)
    }

    fn seal(
        contents: &[u8],
        secret: &[u8],
        kdf: &str,
        params: KdfParams,
        access: Access,
        repo_id: &str,
    ) -> Result<Self> {
        let salt: [u8; 16] = rand::random();
        let kek = derive(kdf, secret, &salt, params)?;
        let wrapped = seal_with(&kek, &slot_aad(repo_id, access), contents, &[])?;
        Ok(KeySlot {
            version: 1,
            kdf: kdf.into(),
            params,
            salt: hex::encode(salt),
            wrapped: hex::encode(wrapped),
            created: Utc::now(),
            host: crate::backup::host_name(),
            access,
        })
    }

    /// Whether this slot is a key file's (HKDF) rather than a password's (Argon2id).
    pub fn is_key_file(&self) -> bool {
        self.kdf == HKDF_SHA256
    }

    /// Whether `password` is of the kind this slot was made for.
    pub(crate) fn fits(&self, password: &Password) -> bool {
        self.is_key_file() == password.is_key_file()
    }

    /// The key inside, when `password` is this slot's; `Ok(None)` when it is not.
    ///
    /// # Errors
    /// [`StoreError::Malformed`] naming `key` when the slot cannot be used at all.
    pub(crate) fn unwrap(
        &self,
        key: &str,
        password: &Password,
        repo_id: &str,
    ) -> Result<Option<Unlocked>> {
        self.check(key)?;
        let malformed =
            |reason: &str| StoreError::Malformed { key: key.into(), reason: reason.into() };
        let salt = hex::decode(&self.salt).map_err(|_| malformed("salt is not hex"))?;
        let wrapped =
            hex::decode(&self.wrapped).map_err(|_| malformed("wrapped key is not hex"))?;
        let kek = derive(&self.kdf, &password.bytes(), &salt, self.params)?;
        let Some(contents) = open_with(&kek, &slot_aad(repo_id, self.access), &wrapped) else {
            return Ok(None);
        };
        let contents = Zeroizing::new(contents);
        let (inner, config) = match (self.access, contents.len()) {
            // Made before config authentication.
            (Access::Full, 64) => (&contents[..], None),
            (Access::Full, 96) | (Access::WriteOnly, 128) => {
                let (inner, config) = contents.split_at(contents.len() - 32);
                (inner, config.try_into().ok())
            }
            _ => return Err(malformed("wrapped key has the wrong length")),
        };
        let crypt = match self.access {
            Access::Full => {
                let raw: [u8; 64] =
                    inner.try_into().map_err(|_| malformed("wrapped key has the wrong length"))?;
                Crypt::Sealed(Arc::new(MasterKey::from_raw(Zeroizing::new(raw))?))
            }
            Access::WriteOnly => Crypt::WriteOnly(Arc::new(WriteKey::from_bundle(key, inner)?)),
        };
        Ok(Some(Unlocked { crypt, config }))
    }

    /// Checks what can be checked without the password: version, KDF and its parameters,
    /// hex fields of plausible lengths.
    ///
    /// # Errors
    /// [`StoreError::Malformed`] naming `key`.
    pub fn check(&self, key: &str) -> Result<()> {
        let malformed =
            |reason: &str| StoreError::Malformed { key: key.into(), reason: reason.into() };
        if self.version != 1 || (self.kdf != ARGON2ID && self.kdf != HKDF_SHA256) {
            return Err(malformed("unknown key slot version or KDF"));
        }
        if self.kdf == ARGON2ID {
            if self.params.memory_kib > MAX_KDF_MEMORY_KIB {
                return Err(malformed("the KDF asks for more memory than allowed"));
            }
            Params::new(
                self.params.memory_kib,
                self.params.iterations,
                self.params.parallelism,
                Some(32),
            )
            .map_err(|e| malformed(&format!("KDF parameters: {e}")))?;
        }
        if hex::decode(&self.salt).map_or(true, |s| s.len() != 16) {
            return Err(malformed("salt is not 16 bytes of hex"));
        }
        let wrapped =
            hex::decode(&self.wrapped).map_err(|_| malformed("wrapped key is not hex"))?;
        let plain = wrapped.len().saturating_sub(OVERHEAD);
        let fits = match self.access {
            Access::Full => plain == 64 || plain == 96,
            Access::WriteOnly => plain == 128,
        };
        if wrapped.len() < OVERHEAD || !fits {
            return Err(malformed("wrapped key has the wrong length"));
        }
        Ok(())
    }
}

fn slot_aad(repo_id: &str, access: Access) -> Vec<u8> {
    let mut aad = match access {
        Access::Full => b"lifeboat key slot ".to_vec(),
        Access::WriteOnly => b"lifeboat write-only key slot ".to_vec(),
    };
    aad.extend_from_slice(repo_id.as_bytes());
    aad
}

/// The key-encryption key for `secret`.
fn derive(kdf: &str, secret: &[u8], salt: &[u8], params: KdfParams) -> Result<XChaCha20Poly1305> {
    if kdf == HKDF_SHA256 {
        return Ok(aead_from(&subkey(secret, Some(salt), b"lifeboat key file v1")));
    }
    let bad = |e: argon2::Error| StoreError::Malformed {
        key: KEYS_PREFIX.into(),
        reason: format!("key derivation: {e}"),
    };
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32))
            .map_err(bad)?,
    );
    let mut kek = Zeroizing::new([0u8; 32]);
    argon.hash_password_into(secret, salt, &mut kek[..]).map_err(bad)?;
    Ok(aead_from(&kek))
}

/// A new key file's secret and text for slot `slot` of repository `repo_id`.
pub(crate) fn new_key_file(
    repo_id: &str,
    slot: &str,
    access: Access,
    secret: &[u8; 32],
) -> Result<KeyFileText> {
    let file = KeyFile {
        format: KEY_FILE_FORMAT.into(),
        version: 1,
        repository: repo_id.into(),
        slot: slot.into(),
        access,
        secret: hex::encode(secret),
        path: String::new(),
    };
    let mut text = serde_json::to_string_pretty(&file)
        .map_err(|e| StoreError::Malformed { key: "new key file".into(), reason: e.to_string() })?;
    text.push('\n');
    Ok(KeyFileText(Zeroizing::new(text)))
}

/// The key of a slot.
pub fn slot_key(id: &str) -> object_store::path::Path {
    object_store::path::Path::from(format!("{KEYS_PREFIX}/{id}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cheap() -> KdfParams {
        KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }
    }

    #[test]
    fn seal_open_and_tamper() {
        let crypt = Crypt::Sealed(Arc::new(MasterKey::random().unwrap()));
        for domain in [Domain::Index, Domain::Manifest] {
            let sealed = crypt.seal(domain, b"hello".to_vec()).unwrap();
            assert_eq!(sealed.len(), 5 + OVERHEAD);
            let back = crypt.open("i", domain, sealed.clone().into()).unwrap();
            assert_eq!(&back[..], b"hello");
            let mut flipped = sealed;
            flipped[30] ^= 1;
            let err = crypt.open("index/x", domain, flipped.into()).unwrap_err();
            assert!(err.to_string().contains("index/x"), "{err}");
        }
        let sealed = crypt.seal(Domain::Index, b"hello".to_vec()).unwrap();
        assert!(crypt.open("i", Domain::Manifest, sealed.clone().into()).is_err(), "other domain");
        assert!(crypt.open("i", Domain::Lease, sealed.into()).is_err(), "other domain");
        for scheme in [ChunkIdScheme::Sha256, ChunkIdScheme::Blake3] {
            let keyed = ChunkIds::new(scheme, &crypt);
            let plain = ChunkIds::new(scheme, &Crypt::Plain);
            assert_ne!(keyed.of(b"abc"), plain.of(b"abc"), "{scheme} ids are keyed");
            assert_eq!(keyed.of(b"abc"), keyed.of(b"abc"));
        }
        assert_eq!(
            ChunkIds::new(ChunkIdScheme::Sha256, &Crypt::Plain).of(b"abc"),
            Digest::of(b"abc")
        );
        assert_eq!(
            ChunkIds::new(ChunkIdScheme::Blake3, &Crypt::Plain).of(b"abc").to_hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
            "BLAKE3's published digest of \"abc\""
        );
    }

    #[test]
    fn slots_wrap_and_refuse_other_passwords() {
        let master = MasterKey::random().unwrap();
        let config = [7u8; 32];
        let slot = KeySlot::wrap(&master, &Password::new("right"), cheap(), "r", &config).unwrap();
        slot.check("k").unwrap();
        let got = slot.unwrap("k", &Password::new("right"), "r").unwrap().unwrap();
        assert_eq!(got.config, Some(config));
        let Crypt::Sealed(got) = got.crypt else { panic!("a full key") };
        assert_eq!(got.raw[..], master.raw[..]);
        assert!(slot.unwrap("k", &Password::new("wrong"), "r").unwrap().is_none());
        assert!(slot.unwrap("k", &Password::new("right"), "other repo").unwrap().is_none());
        assert_eq!(format!("{:?}", Password::new("secret")), "Password(***)");
    }

    #[test]
    fn a_write_only_key_writes_what_only_the_master_key_reads() {
        let master = Arc::new(MasterKey::random().unwrap());
        let full = Crypt::Sealed(master.clone());
        let secret = [9u8; 32];
        let slot =
            KeySlot::wrap_key_file(&master, &secret, Access::WriteOnly, "r", &[1; 32]).unwrap();
        slot.check("k").unwrap();
        let text = new_key_file("r", "slot", Access::WriteOnly, &secret).unwrap();
        let key = Password::from_key_file("host.key", text.0.as_bytes()).unwrap();
        assert_eq!(key.access(), Access::WriteOnly);
        assert!(slot.fits(&key) && !slot.fits(&Password::new("x")));
        let writer = slot.unwrap("k", &key, "r").unwrap().unwrap().crypt;
        assert!(writer.is_write_only());
        // Same chunk ids as the full key, so its backups deduplicate against everyone's.
        for scheme in [ChunkIdScheme::Sha256, ChunkIdScheme::Blake3] {
            let ids = |crypt: &Crypt| ChunkIds::new(scheme, crypt).of(b"abc");
            assert_eq!(ids(&writer), ids(&full), "{scheme}");
        }
        // The index is shared both ways.
        let index = full.seal(Domain::Index, b"idx".to_vec()).unwrap();
        assert_eq!(&writer.open("i", Domain::Index, index.into()).unwrap()[..], b"idx");
        let index = writer.seal(Domain::Index, b"idx2".to_vec()).unwrap();
        assert_eq!(&full.open("i", Domain::Index, index.into()).unwrap()[..], b"idx2");
        // Data it writes, only the full key reads, and it reads nobody's.
        let id = ChunkIds::new(ChunkIdScheme::Blake3, &writer).of(b"data");
        let blob = writer.seal(Domain::Blob(id), b"data".to_vec()).unwrap();
        assert_eq!(blob.len(), 4 + OVERHEAD + PUBLIC);
        assert_eq!(&full.open("b", Domain::Blob(id), blob.clone().into()).unwrap()[..], b"data");
        let err = writer.open("b", Domain::Blob(id), blob.clone().into()).unwrap_err();
        assert!(matches!(err, StoreError::WriteOnly { .. }), "{err}");
        let other = Digest([3; 32]);
        assert!(full.open("b", Domain::Blob(other), blob.into()).is_err(), "bound to its id");
        let own = full.seal(Domain::Manifest, b"m".to_vec()).unwrap();
        assert!(writer.open("m", Domain::Manifest, own.into()).is_err());
        assert!(writer.seal(Domain::Mark, b"x".to_vec()).is_err(), "cannot prune");
        // A full key file opens everything.
        let slot = KeySlot::wrap_key_file(&master, &secret, Access::Full, "r", &[1; 32]).unwrap();
        let text = new_key_file("r", "slot", Access::Full, &secret).unwrap();
        let key = Password::from_key_file("full.key", text.0.as_bytes()).unwrap();
        assert!(matches!(slot.unwrap("k", &key, "r").unwrap().unwrap().crypt, Crypt::Sealed(_)));
        assert!(Password::from_key_file("x", b"not json").is_err());
    }
}
