//! Encryption at rest. Everything biometric in the data folder is encrypted with one random
//! data key: the SQLite store (templates, alerts, audit, outbox, tokens) by SQLCipher, the face
//! images and the FAISS index files by AES-256-GCM (see [`seal_blob`]). The data key itself is
//! stored only sealed (AES-256-GCM) in `<data_dir>/data.key.sealed`, under the key in
//! `[encryption] key_file`, which the service reads and nobody else may (a key file that others
//! can read is refused).
//!
//! Two rotations:
//! - `facewatch key rotate` replaces the key file's key: it unseals the data key with the old
//!   one and seals it again with a new one, so the service keeps running on the data key it
//!   holds, and the old key file opens nothing any more ([`rotate`]). Routine, beside the service.
//! - `facewatch key rotate --data-key` replaces the data key too, re-keying the store and
//!   re-encrypting every sealed file, with the service stopped ([`rotate_data_key`], `rekey.rs`):
//!   for when an old key file together with an old `data.key.sealed` may be in other hands,
//!   since that pair would otherwise still open the data. Crash-safe: until it ends the sealed
//!   file holds both data keys, and the next run or the service's start finishes it.
//!
//! Both replace the key file and the sealed file so that a crash at any point leaves a key
//! file (or its `.next`) that opens the sealed file; `<data_dir>/data.key.lock` keeps them
//! from running at once.
//!
//! Keys are registered per data folder for the process ([`install`]); [`key_for`] finds the key
//! of any file inside one, which is how `db::connect`, `media` and the index files learn it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

mod rekey;
pub use rekey::{Rekeyed, finish_interrupted, rotate_data_key};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// A sealed data key: magic, nonce, 32 bytes of key + 16 of tag.
const SEALED_MAGIC: &[u8; 8] = b"FWDATAK1";
/// During a data-key rotation: magic, nonce, the new key and the old one + 16 of tag.
const ROTATING_MAGIC: &[u8; 8] = b"FWDATAR1";
/// An encrypted file: magic, nonce, ciphertext + tag.
const BLOB_MAGIC: &[u8; 4] = b"FWE1";
/// A key file holds 64 hex digits and perhaps a newline; anything much bigger is not one.
const MAX_KEY_FILE: u64 = 1024;
pub const SEALED_NAME: &str = "data.key.sealed";

/// `[encryption]`: at-rest encryption of the data folder.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionSection {
    /// File with the key (64 hex digits) that seals the data key; empty = the data folder is
    /// not encrypted. Made by `facewatch key create`; must not be readable by others.
    pub key_file: PathBuf,
}

impl EncryptionSection {
    pub fn enabled(&self) -> bool {
        !self.key_file.as_os_str().is_empty()
    }
}

/// The data folder's data key.
#[derive(Clone)]
pub struct DataKey(Arc<Zeroizing<[u8; KEY_LEN]>>);

impl DataKey {
    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0[..]))
    }

    /// The key as SQLCipher's raw-key literal (`x'…'`), wiped when dropped.
    pub fn sqlcipher_literal(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("x'{}'", hex::encode(&self.0[..])))
    }
}

/// The data folders of this process that are encrypted, with their keys.
static KEYS: RwLock<Vec<(PathBuf, DataKey)>> = RwLock::new(Vec::new());

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Makes `key` the key of every file under `data_dir` for this process.
pub fn install(data_dir: &Path, key: DataKey) {
    let dir = absolute(data_dir);
    let mut keys = KEYS.write().unwrap_or_else(|p| p.into_inner());
    keys.retain(|(d, _)| d != &dir);
    keys.push((dir, key));
}

/// The data key of the data folder `path` is in, if it is encrypted.
pub fn key_for(path: &Path) -> Option<DataKey> {
    let path = absolute(path);
    let keys = KEYS.read().unwrap_or_else(|p| p.into_inner());
    keys.iter().filter(|(d, _)| path.starts_with(d)).max_by_key(|(d, _)| d.as_os_str().len()).map(|(_, k)| k.clone())
}

/// Reads a key file: 64 hex digits, not readable by others.
pub fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let bad = |m: String| Error::Config(format!("[encryption] key_file {}: {m}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > MAX_KEY_FILE {
        return Err(bad("not a key file (too large)".into()));
    }
    crate::secret::check_private(&meta).map_err(bad)?;
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    hex::decode_to_slice(text.trim(), &mut key[..]).map_err(|_| bad("expected 64 hex digits".into()))?;
    Ok(key)
}

fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(&mut key[..]).map_err(|e| Error::Encryption(format!("random source: {e}")))?;
    Ok(key)
}

/// Writes `bytes` to `path` through a temp file (mode 0600) and a rename.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// `facewatch key create`: a new random key file (refuses to overwrite one).
pub fn create_key_file(path: &Path) -> Result<()> {
    if path.exists() {
        return Err(Error::Config(format!("{} exists: a key file is never overwritten", path.display())));
    }
    write_private(path, format!("{}\n", hex::encode(&random_key()?[..])).as_bytes())
}

/// What `data.key.sealed` holds: the data key, or during a data-key rotation both the new one
/// and the old one, so that every file opens with one of them until the old one is dropped.
pub(crate) enum Sealed {
    One(Zeroizing<[u8; KEY_LEN]>),
    Rotating { new: Zeroizing<[u8; KEY_LEN]>, old: Zeroizing<[u8; KEY_LEN]> },
}

impl Sealed {
    fn magic(&self) -> &'static [u8; 8] {
        match self {
            Sealed::One(_) => SEALED_MAGIC,
            Sealed::Rotating { .. } => ROTATING_MAGIC,
        }
    }
}

fn seal_key(kek: &[u8; KEY_LEN], content: &Sealed) -> Result<Vec<u8>> {
    let plain = match content {
        Sealed::One(dek) => Zeroizing::new(dek.to_vec()),
        Sealed::Rotating { new, old } => Zeroizing::new([&new[..], &old[..]].concat()),
    };
    let magic = content.magic();
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(kek));
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ct = cipher
        .encrypt(&nonce, Payload { msg: &plain, aad: magic })
        .map_err(|_| Error::Encryption("sealing the data key failed".into()))?;
    Ok([&magic[..], &nonce[..], &ct[..]].concat())
}

fn unseal_key(kek: &[u8; KEY_LEN], sealed: &[u8]) -> Option<Sealed> {
    let (magic, keys) = if sealed.starts_with(SEALED_MAGIC) { (SEALED_MAGIC, 1) } else { (ROTATING_MAGIC, 2) };
    let rest = sealed.strip_prefix(&magic[..])?;
    if rest.len() != NONCE_LEN + keys * KEY_LEN + 16 {
        return None;
    }
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(kek));
    let plain = Zeroizing::new(
        cipher.decrypt(Nonce::from_slice(&rest[..NONCE_LEN]), Payload { msg: &rest[NONCE_LEN..], aad: magic }).ok()?,
    );
    let key = |i: usize| {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        k.copy_from_slice(&plain[i * KEY_LEN..(i + 1) * KEY_LEN]);
        k
    };
    Some(if keys == 1 { Sealed::One(key(0)) } else { Sealed::Rotating { new: key(0), old: key(1) } })
}

fn pending(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".next");
    PathBuf::from(name)
}

/// Opens the sealed file's bytes with the key file (finishing an interrupted key-file rotation).
fn open_sealed(section: &EncryptionSection, sealed_path: &Path, sealed: &[u8]) -> Result<Sealed> {
    let kek = read_key_file(&section.key_file)?;
    match unseal_key(&kek, sealed) {
        Some(content) => Ok(content),
        None => finish_rotation(&section.key_file, sealed).ok_or_else(|| {
            Error::Config(format!(
                "[encryption] key_file {} does not open {} (a wrong or rotated-away key file)",
                section.key_file.display(),
                sealed_path.display()
            ))
        }),
    }
}

/// Opens the data folder's data key with the key file, making one on first use; registers it
/// for the process. `None` when encryption is off. Refuses a folder whose data-key rotation is
/// unfinished: only `key rotate --data-key` or the service's start, holding the folder, finish it.
pub fn unlock(section: &EncryptionSection, data_dir: &Path) -> Result<Option<DataKey>> {
    if !section.enabled() {
        return Ok(None);
    }
    std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
    let sealed_path = data_dir.join(SEALED_NAME);
    let dek = match std::fs::read(&sealed_path) {
        Ok(sealed) => match open_sealed(section, &sealed_path, &sealed)? {
            Sealed::One(dek) => dek,
            Sealed::Rotating { .. } => {
                return Err(Error::Config(format!(
                    "the data key of {} is being replaced (a `facewatch key rotate --data-key` runs or was \
                     interrupted): run it again, or start the service, to finish it",
                    data_dir.display()
                )));
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kek = read_key_file(&section.key_file)?;
            let db = data_dir.join("facewatch.db");
            if std::fs::read(&db).is_ok_and(|b| b.starts_with(b"SQLite format 3\0")) {
                return Err(Error::Config(format!(
                    "{} was made without encryption: start encrypted on an empty data folder (re-enroll), or leave \
                     [encryption] key_file empty",
                    data_dir.display()
                )));
            }
            let dek = random_key()?;
            write_private(&sealed_path, &seal_key(&kek, &Sealed::One(dek.clone()))?)?;
            // On disk before the store or any file is encrypted with it.
            sync_parent(&sealed_path)?;
            tracing::info!(data_dir = %data_dir.display(), "data folder encrypted with a new data key");
            dek
        }
        Err(e) => return Err(Error::io(&sealed_path, e)),
    };
    let key = DataKey(Arc::new(dek));
    install(data_dir, key.clone());
    Ok(Some(key))
}

/// A rotation that stopped after the sealed key was replaced but before the new key file was
/// moved into place: the pending key opens the sealed key, so the move is finished now.
fn finish_rotation(key_file: &Path, sealed: &[u8]) -> Option<Sealed> {
    let next = pending(key_file);
    let kek = read_key_file(&next).ok()?;
    let content = unseal_key(&kek, sealed)?;
    std::fs::rename(&next, key_file).ok()?;
    sync_parent(key_file).ok()?;
    tracing::warn!(key_file = %key_file.display(), "finished an interrupted key rotation");
    Some(content)
}

/// `facewatch key rotate`: seals the data key under a new key and replaces the key file.
/// Safe beside a running service (it holds the data key, not the key file's key). A crash
/// in between leaves the new key at `<key_file>.next`, which [`unlock`] picks up.
pub fn rotate(section: &EncryptionSection, data_dir: &Path) -> Result<()> {
    if !section.enabled() {
        return Err(Error::Config("[encryption] key_file is not set: nothing to rotate".into()));
    }
    let sealed_path = data_dir.join(SEALED_NAME);
    std::fs::metadata(&sealed_path).map_err(|e| Error::io(&sealed_path, e))?;
    // A data-key rotation replaces the key file too: one at a time.
    let _keys = KeyLock::acquire(data_dir)?;
    let sealed = std::fs::read(&sealed_path).map_err(|e| Error::io(&sealed_path, e))?;
    let content = open_sealed(section, &sealed_path, &sealed)?;
    replace_key_file(section, &sealed_path, &content)
}

/// Seals `content` under a new random key, then moves that key into the key file. Each step
/// is on disk (file and folder synced) before the next: the sealed file never names a key
/// that a crash could lose.
fn replace_key_file(section: &EncryptionSection, sealed_path: &Path, content: &Sealed) -> Result<()> {
    let new = random_key()?;
    let next = pending(&section.key_file);
    write_private(&next, format!("{}\n", hex::encode(&new[..])).as_bytes())?;
    keep_owner(&section.key_file, &next)?;
    sync_parent(&next)?;
    replace_sealed(sealed_path, &seal_key(&new, content)?)?;
    std::fs::rename(&next, &section.key_file).map_err(|e| Error::io(&section.key_file, e))?;
    sync_parent(&section.key_file)
}

/// Replaces `data.key.sealed` atomically and durably, keeping its owner.
fn replace_sealed(sealed_path: &Path, bytes: &[u8]) -> Result<()> {
    let next = sealed_path.with_extension("next");
    write_private(&next, bytes)?;
    keep_owner(sealed_path, &next)?;
    std::fs::rename(&next, sealed_path).map_err(|e| Error::io(sealed_path, e))?;
    sync_parent(sealed_path)
}

/// Makes a rename in `path`'s folder durable.
fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// Serializes the operations that replace the key file (`key rotate`, with or without
/// `--data-key`, and the service's start finishing an interrupted one): `<data_dir>/data.key.lock`,
/// held until dropped. Not the data folder's lock: the key file rotates beside the service.
struct KeyLock(#[allow(dead_code)] std::fs::File);

impl KeyLock {
    fn acquire(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join("data.key.lock");
        let created = !path.exists();
        // Read-only is enough to lock; the file may be another user's (made by root or the service).
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .or_else(|_| std::fs::File::open(&path))
            .map_err(|e| Error::io(&path, e))?;
        if created {
            keep_owner(data_dir, &path)?;
        }
        match file.try_lock() {
            Ok(()) => Ok(Self(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Config(format!(
                "the key of {} is being rotated by another `facewatch key rotate`: wait for it to finish",
                data_dir.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }
}

/// An admin rotates as root; the service, its own user, must still read both files after.
fn keep_owner(old: &Path, new: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(old).map_err(|e| Error::io(old, e))?;
        let me = std::fs::metadata(new).map_err(|e| Error::io(new, e))?;
        if (m.uid(), m.gid()) != (me.uid(), me.gid()) {
            std::os::unix::fs::chown(new, Some(m.uid()), Some(m.gid())).map_err(|e| Error::io(new, e))?;
        }
    }
    Ok(())
}

/// Encrypts a file's bytes; `name` (the file name) is bound in, so files can't be swapped.
pub fn seal_blob(key: &DataKey, name: &str, plain: &[u8]) -> Result<Vec<u8>> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ct = key
        .cipher()
        .encrypt(&nonce, Payload { msg: plain, aad: name.as_bytes() })
        .map_err(|_| Error::Encryption("encryption failed".into()))?;
    Ok([&BLOB_MAGIC[..], &nonce[..], &ct[..]].concat())
}

/// Decrypts what [`seal_blob`] made of the file `name`.
pub fn open_blob(key: &DataKey, name: &str, blob: &[u8]) -> Result<Vec<u8>> {
    let rest = blob
        .strip_prefix(&BLOB_MAGIC[..])
        .filter(|r| r.len() >= NONCE_LEN + 16)
        .ok_or_else(|| Error::Encryption(format!("{name}: not an encrypted file of this data folder")))?;
    key.cipher()
        .decrypt(Nonce::from_slice(&rest[..NONCE_LEN]), Payload { msg: &rest[NONCE_LEN..], aad: name.as_bytes() })
        .map_err(|_| Error::Encryption(format!("{name}: does not decrypt with this data folder's key")))
}

/// Reads a file of a data folder, decrypting it when the folder is encrypted.
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let bytes = std::fs::read(path)?;
    match key_for(path) {
        Some(key) => open_blob(&key, &file_name(path), &bytes).map_err(|e| std::io::Error::other(e.to_string())),
        None if bytes.starts_with(BLOB_MAGIC) => {
            Err(std::io::Error::other(format!("{} is encrypted: set [encryption] key_file", path.display())))
        }
        None => Ok(bytes),
    }
}

/// What goes on disk for `plain` at `path`: encrypted when its data folder is.
pub fn for_disk<'a>(path: &Path, plain: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>> {
    match key_for(path) {
        Some(key) => Ok(std::borrow::Cow::Owned(seal_blob(&key, &file_name(path), plain)?)),
        None => Ok(std::borrow::Cow::Borrowed(plain)),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file(dir: &Path) -> EncryptionSection {
        let f = dir.join("kek");
        create_key_file(&f).unwrap();
        EncryptionSection { key_file: f }
    }

    #[test]
    fn a_blob_opens_only_with_its_key_and_its_name() {
        let k = DataKey(Arc::new(random_key().unwrap()));
        let other = DataKey(Arc::new(random_key().unwrap()));
        let blob = seal_blob(&k, "a.jpg", b"\xff\xd8\xffface").unwrap();
        assert!(!blob.windows(3).any(|w| w == b"\xff\xd8\xff"), "no JPEG marker left in the ciphertext");
        assert_eq!(open_blob(&k, "a.jpg", &blob).unwrap(), b"\xff\xd8\xffface");
        assert!(open_blob(&k, "b.jpg", &blob).is_err(), "a file moved to another name");
        assert!(open_blob(&other, "a.jpg", &blob).is_err());
        let mut flipped = blob.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open_blob(&k, "a.jpg", &flipped).is_err());
        assert!(open_blob(&k, "a.jpg", b"FWE1short").is_err());
    }

    #[test]
    fn rotation_keeps_the_data_key_and_the_old_key_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let sec = key_file(dir.path());
        let first = unlock(&sec, &data).unwrap().unwrap();
        let old = dir.path().join("kek.old");
        std::fs::copy(&sec.key_file, &old).unwrap();
        rotate(&sec, &data).unwrap();
        let again = unlock(&sec, &data).unwrap().unwrap();
        assert_eq!(&first.0[..], &again.0[..], "the data key survives rotation");
        let e = unlock(&EncryptionSection { key_file: old }, &data).err().unwrap().to_string();
        assert!(e.contains("does not open"), "{e}");
    }

    #[test]
    fn an_interrupted_rotation_is_finished_at_unlock() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let sec = key_file(dir.path());
        let dek = unlock(&sec, &data).unwrap().unwrap();
        // As `rotate` leaves it when stopped before its last rename.
        let new = random_key().unwrap();
        write_private(&pending(&sec.key_file), format!("{}\n", hex::encode(&new[..])).as_bytes()).unwrap();
        write_private(&data.join(SEALED_NAME), &seal_key(&new, &Sealed::One(Zeroizing::new(**dek.0))).unwrap())
            .unwrap();
        let opened = unlock(&sec, &data).unwrap().unwrap();
        assert_eq!(&opened.0[..], &dek.0[..]);
        assert!(!pending(&sec.key_file).exists());
    }

    #[test]
    fn key_files_others_can_read_or_that_are_not_keys_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sec = key_file(dir.path());
        std::fs::set_permissions(&sec.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key_file(&sec.key_file).err().unwrap().to_string();
        assert!(e.contains("readable by every user"), "{e}");
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "not hex").unwrap();
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_key_file(&junk).err().unwrap().to_string().contains("64 hex digits"));
        assert!(create_key_file(&junk).is_err(), "never overwrites");
    }
}
