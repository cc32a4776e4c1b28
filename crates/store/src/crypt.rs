//! Encryption at rest: sealing objects, keyed chunk ids, and key slots.
//!
//! An encrypted repository has one random *master key*: 32 bytes for the AEAD that seals
//! every object (XChaCha20-Poly1305, a random 24-byte nonce per sealed piece, so no nonce
//! bookkeeping is shared between hosts) and 32 bytes for HMAC-SHA-256, which makes chunk
//! ids (so the store cannot confirm that a known file is in the repository by its hash).
//! The master key never changes; each password *wraps* it in one key slot under
//! `keys/<slot id>`, with a key derived by Argon2id whose parameters sit beside it. Adding
//! or removing a password creates or deletes one slot and never rewrites data.
//!
//! A sealed piece is `nonce (24) ‖ ciphertext ‖ tag (16)`: 40 bytes more than the plain one.
//! The associated data names what the piece is (a manifest, an index file, a pack trailer,
//! the blob of one chunk id...), so a piece moved to where another kind belongs fails to
//! open, as a damaged one does. `docs/repository-format.md` ("Encryption") says the same
//! and lists what the store can still see.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use lifeboat_core::{ChunkId, Digest, Error as CoreError};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};

/// The `encryption` value of an encrypted repository's config.
pub const ENCRYPTION: &str = "xchacha20-poly1305";
/// Prefix of key slots.
pub const KEYS_PREFIX: &str = "keys";

const NONCE: usize = 24;
const TAG: usize = 16;
/// Bytes a sealed piece has more than its plain content.
pub const OVERHEAD: usize = NONCE + TAG;

/// A password that creates or opens an encrypted repository. It is never printed: its
/// `Debug` shows `***`, and its bytes are wiped when it is dropped.
#[derive(Clone)]
pub struct Password(Zeroizing<Vec<u8>>);

impl Password {
    /// A password from its text. A trailing newline (as a password file usually ends) is
    /// the caller's to strip.
    pub fn new(password: impl Into<String>) -> Self {
        Password(Zeroizing::new(password.into().into_bytes()))
    }

    /// A password from raw bytes (a key file's contents).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Password(Zeroizing::new(bytes))
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
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
        };
        let mut aad = label.to_vec();
        if let Domain::Blob(id) = self {
            aad.extend_from_slice(&id.0);
        }
        aad
    }
}

/// How a repository's objects are written: in the clear, or sealed with its master key.
#[derive(Clone, Default)]
pub(crate) enum Crypt {
    /// A plaintext repository: objects as they are, chunk ids plain SHA-256.
    #[default]
    Plain,
    /// An encrypted one.
    Sealed(Arc<MasterKey>),
}

impl std::fmt::Debug for Crypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Crypt::Plain => "Plain",
            Crypt::Sealed(_) => "Sealed(***)",
        })
    }
}

impl Crypt {
    /// The id of a chunk: SHA-256 of its bytes, or HMAC-SHA-256 with the MAC key when sealed.
    pub(crate) fn chunk_id(&self, plain: &[u8]) -> ChunkId {
        match self {
            Crypt::Plain => Digest::of(plain),
            Crypt::Sealed(key) => {
                let mut mac = key.mac.clone();
                mac.update(plain);
                Digest(mac.finalize().into_bytes().into())
            }
        }
    }

    /// Seals `plain` as `domain` (returns it as it is in a plaintext repository).
    pub(crate) fn seal(&self, domain: Domain, plain: Vec<u8>) -> Result<Vec<u8>> {
        match self {
            Crypt::Plain => Ok(plain),
            Crypt::Sealed(key) => seal_with(&key.aead, &domain.aad(), &plain),
        }
    }

    /// Opens what [`Crypt::seal`] made of `domain`: a piece that is not authentic (damaged,
    /// moved, or sealed with another key) is [`CoreError::Corrupt`] naming `object`.
    pub(crate) fn open(
        &self,
        object: &str,
        domain: Domain,
        sealed: bytes::Bytes,
    ) -> Result<bytes::Bytes> {
        match self {
            Crypt::Plain => Ok(sealed),
            Crypt::Sealed(key) => open_with(&key.aead, &domain.aad(), &sealed)
                .map(bytes::Bytes::from)
                .ok_or_else(|| not_authentic(object)),
        }
    }

    /// As [`Crypt::open`], for a piece borrowed from a larger object (no copy when plain).
    pub(crate) fn open_slice<'a>(
        &self,
        object: &str,
        domain: Domain,
        sealed: &'a [u8],
    ) -> Result<std::borrow::Cow<'a, [u8]>> {
        match self {
            Crypt::Plain => Ok(std::borrow::Cow::Borrowed(sealed)),
            Crypt::Sealed(key) => open_with(&key.aead, &domain.aad(), sealed)
                .map(std::borrow::Cow::Owned)
                .ok_or_else(|| not_authentic(object)),
        }
    }

    /// Whether objects are sealed.
    pub(crate) fn is_sealed(&self) -> bool {
        matches!(self, Crypt::Sealed(_))
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

fn seal_with(aead: &XChaCha20Poly1305, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let nonce: [u8; NONCE] = rand::random();
    let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let tag = aead
        .encrypt_inout_detached(&XNonce::from(nonce), aad, (&mut out[NONCE..]).into())
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

/// The repository's master key: the AEAD key and the chunk-id MAC key.
pub(crate) struct MasterKey {
    raw: Zeroizing<[u8; 64]>,
    aead: XChaCha20Poly1305,
    mac: Hmac<Sha256>,
}

impl MasterKey {
    pub(crate) fn random() -> Result<Self> {
        Self::from_raw(Zeroizing::new(rand::random()))
    }

    fn from_raw(raw: Zeroizing<[u8; 64]>) -> Result<Self> {
        let mut data = Zeroizing::new([0u8; 32]);
        data.copy_from_slice(&raw[..32]);
        let aead = XChaCha20Poly1305::new(&chacha20poly1305::Key::from(*data));
        let mut mac_key = Zeroizing::new([0u8; 32]);
        mac_key.copy_from_slice(&raw[32..]);
        // HMAC takes keys of any length; the error cannot happen.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&mac_key[..]).map_err(|_| {
            StoreError::Malformed { key: KEYS_PREFIX.into(), reason: "invalid MAC key".into() }
        })?;
        Ok(MasterKey { raw, aead, mac })
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
    /// 64 MiB, 3 passes, 1 lane: about a quarter of a second on a current server core, the
    /// price of every open of the repository and of every password guess.
    fn default() -> Self {
        KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 1 }
    }
}

/// The largest Argon2 memory a slot may ask for: a damaged or hostile slot must not make
/// an opener allocate without bound.
const MAX_KDF_MEMORY_KIB: u32 = 4 << 20;

/// One key slot, `keys/<id>`: the master key wrapped with a key derived from a password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeySlot {
    /// Slot format version (1).
    pub version: u32,
    /// `argon2id`.
    pub kdf: String,
    /// The KDF's parameters.
    #[serde(flatten)]
    pub params: KdfParams,
    /// Random salt, hex.
    pub salt: String,
    /// The master key sealed with the derived key, hex (`nonce ‖ ciphertext ‖ tag`).
    pub wrapped: String,
    /// When the slot was added.
    pub created: DateTime<Utc>,
    /// The host that added it.
    pub host: String,
}

impl KeySlot {
    /// Wraps `master` for `password`.
    pub(crate) fn wrap(
        master: &MasterKey,
        password: &Password,
        params: KdfParams,
        repo_id: &str,
    ) -> Result<Self> {
        let salt: [u8; 16] = rand::random();
        let kek = derive(password, &salt, params)?;
        let wrapped = seal_with(&kek, &slot_aad(repo_id), &master.raw[..])?;
        Ok(KeySlot {
            version: 1,
            kdf: "argon2id".into(),
            params,
            salt: hex::encode(salt),
            wrapped: hex::encode(wrapped),
            created: Utc::now(),
            host: crate::backup::host_name(),
        })
    }

    /// The master key, when `password` is this slot's; `Ok(None)` when it is not.
    ///
    /// # Errors
    /// [`StoreError::Malformed`] naming `key` when the slot cannot be used at all.
    pub(crate) fn unwrap(
        &self,
        key: &str,
        password: &Password,
        repo_id: &str,
    ) -> Result<Option<MasterKey>> {
        let malformed =
            |reason: &str| StoreError::Malformed { key: key.into(), reason: reason.into() };
        if self.version != 1 || self.kdf != "argon2id" {
            return Err(malformed("unknown key slot version or KDF"));
        }
        if self.params.memory_kib > MAX_KDF_MEMORY_KIB {
            return Err(malformed("the KDF asks for more memory than allowed"));
        }
        let salt = hex::decode(&self.salt).map_err(|_| malformed("salt is not hex"))?;
        let wrapped =
            hex::decode(&self.wrapped).map_err(|_| malformed("wrapped key is not hex"))?;
        let kek = derive(password, &salt, self.params)?;
        let Some(raw) = open_with(&kek, &slot_aad(repo_id), &wrapped) else {
            return Ok(None);
        };
        let raw = Zeroizing::new(raw);
        let raw: [u8; 64] =
            raw.as_slice().try_into().map_err(|_| malformed("wrapped key has the wrong length"))?;
        Ok(Some(MasterKey::from_raw(Zeroizing::new(raw))?))
    }
}

fn slot_aad(repo_id: &str) -> Vec<u8> {
    let mut aad = b"lifeboat key slot ".to_vec();
    aad.extend_from_slice(repo_id.as_bytes());
    aad
}

/// The key-encryption key for `password`.
fn derive(password: &Password, salt: &[u8], params: KdfParams) -> Result<XChaCha20Poly1305> {
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
    argon.hash_password_into(password.bytes(), salt, &mut kek[..]).map_err(bad)?;
    Ok(XChaCha20Poly1305::new(&chacha20poly1305::Key::from(*kek)))
}

/// The key of a slot.
pub fn slot_key(id: &str) -> object_store::path::Path {
    object_store::path::Path::from(format!("{KEYS_PREFIX}/{id}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let crypt = Crypt::Sealed(Arc::new(MasterKey::random().unwrap()));
        let sealed = crypt.seal(Domain::Index, b"hello".to_vec()).unwrap();
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        let back = crypt.open("i", Domain::Index, sealed.clone().into()).unwrap();
        assert_eq!(&back[..], b"hello");
        assert!(crypt.open("i", Domain::Manifest, sealed.clone().into()).is_err(), "other domain");
        let mut flipped = sealed;
        flipped[30] ^= 1;
        let err = crypt.open("index/x", Domain::Index, flipped.into()).unwrap_err();
        assert!(err.to_string().contains("index/x"), "{err}");
        assert_ne!(crypt.chunk_id(b"abc"), Digest::of(b"abc"));
    }

    #[test]
    fn slots_wrap_and_refuse_other_passwords() {
        let master = MasterKey::random().unwrap();
        let cheap = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
        let slot = KeySlot::wrap(&master, &Password::new("right"), cheap, "r").unwrap();
        let got = slot.unwrap("k", &Password::new("right"), "r").unwrap().unwrap();
        assert_eq!(got.raw[..], master.raw[..]);
        assert!(slot.unwrap("k", &Password::new("wrong"), "r").unwrap().is_none());
        assert!(slot.unwrap("k", &Password::new("right"), "other repo").unwrap().is_none());
        assert_eq!(format!("{:?}", Password::new("secret")), "Password(***)");
    }
}
