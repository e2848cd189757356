//! `facewatch key rotate --data-key`: a new data key for the whole data folder, and a new key
//! file with it. For when an old key file together with an old `data.key.sealed` (a backup, a
//! copied disk) may be in other hands: afterwards that pair opens nothing in the folder.
//!
//! It runs with the service stopped (it takes the data folder's lock): the service holds the
//! data key in memory and keeps SQLCipher connections keyed with it, which a key swap under it
//! would break. The order makes an interruption at any point harmless:
//! 1. the sealed file is replaced by one holding both the new and the old data key, under a
//!    new key file (each file and folder synced): from here every file opens with one of them;
//! 2. the store is re-keyed: `PRAGMA rekey` writes every page (free ones too) into the WAL
//!    under the new key in one transaction, whose commit switches keys; TRUNCATE checkpoints
//!    before and after empty the WAL (and with it the old key's frames) into the file, and
//!    `PRAGMA cipher_integrity_check` proves every page of the file is under the new key;
//! 3. every file `seal_blob` made (crops, references, index files: each `FWE1` file in the
//!    folder) is read and sealed under the new key into `<name>.rekey`, one at a time (one file
//!    in memory); each batch of those is synced (`syncfs`) and renamed over the originals, and
//!    each folder synced after its renames;
//! 4. the sealed file is replaced by one holding the new key alone.
//!
//! Run again, or a service start ([`finish_interrupted`]), on a folder left in 1-3 finishes
//! it: the store and each file are opened with whichever key opens them, and what is still
//! under the old key moves to the new one.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{AeadCore, AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use zeroize::Zeroizing;

use super::{
    BLOB_MAGIC, DataKey, EncryptionSection, KeyLock, NONCE_LEN, ROTATING_MAGIC, SEALED_NAME, Sealed, keep_owner,
    open_sealed, random_key, read_key_file, replace_key_file, replace_sealed, seal_key, sync_dir,
};
use crate::data_lock::{DataLock, LOCK_FILE};
use crate::error::{Error, Result};

/// The temporary name of a file being re-encrypted; a leftover is deleted by the next run.
const REKEY_SUFFIX: &str = ".rekey";
const TAG_LEN: usize = 16;

/// What a data-key rotation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rekeyed {
    /// It finished a rotation that had been interrupted.
    pub resumed: bool,
    /// The store was re-keyed by this run (false: no store, or re-keyed before an interruption).
    pub store: bool,
    /// Files re-encrypted under the new key by this run.
    pub files: usize,
    pub bytes: u64,
    /// Files already under the new key (a resumed rotation).
    pub already: usize,
    /// Leftovers of interrupted writes deleted (`*.tmp` of the service, `*.rekey` of a rotation).
    pub leftovers: usize,
    /// Sealed files that neither key opens (damaged, or another folder's): left as they are.
    pub unreadable: usize,
}

/// `facewatch key rotate --data-key`: a new data key for everything in the folder and a new
/// key file; refused while the service (or a watch-list command) holds the folder.
pub fn rotate_data_key(section: &EncryptionSection, data_dir: &Path) -> Result<Rekeyed> {
    rotate_with(section, data_dir, &mut Steps::all())
}

/// At the service's start, holding the folder: finishes a data-key rotation that was
/// interrupted. `None` when there was none.
pub fn finish_interrupted(section: &EncryptionSection, data_dir: &Path, _held: &DataLock) -> Result<Option<Rekeyed>> {
    let sealed_path = data_dir.join(SEALED_NAME);
    if !section.enabled() || !std::fs::read(&sealed_path).is_ok_and(|b| b.starts_with(ROTATING_MAGIC)) {
        return Ok(None);
    }
    let _keys = KeyLock::acquire(data_dir)?;
    let sealed = std::fs::read(&sealed_path).map_err(|e| Error::io(&sealed_path, e))?;
    let Sealed::Rotating { new, old } = open_sealed(section, &sealed_path, &sealed)? else { return Ok(None) };
    tracing::warn!(data_dir = %data_dir.display(), "finishing an interrupted data-key rotation");
    let done = finish(section, data_dir, &DataKey(Arc::new(new)), &DataKey(Arc::new(old)), true, &mut Steps::all())?;
    tracing::warn!(files = done.files, already = done.already, "data-key rotation finished");
    Ok(Some(done))
}

fn rotate_with(section: &EncryptionSection, data_dir: &Path, steps: &mut Steps) -> Result<Rekeyed> {
    if !section.enabled() {
        return Err(Error::Config("[encryption] key_file is not set: nothing to rotate".into()));
    }
    let sealed_path = data_dir.join(SEALED_NAME);
    if !sealed_path.exists() {
        return Err(Error::Config(format!("{} is missing: no data key to rotate", sealed_path.display())));
    }
    let _held = DataLock::acquire(data_dir).map_err(|e| match e {
        Error::DataDirInUse { dir } => Error::Config(format!(
            "data folder {} is in use by the running service (or a watch-list command): stop it first; the data \
             key is replaced only with the service stopped (`key rotate` without --data-key replaces the key file \
             beside it)",
            dir.display()
        )),
        e => e,
    })?;
    // Made by root, the lock must stay the service user's, or the service cannot start again.
    keep_owner(data_dir, &data_dir.join(LOCK_FILE))?;
    let _keys = KeyLock::acquire(data_dir)?;
    let sealed = std::fs::read(&sealed_path).map_err(|e| Error::io(&sealed_path, e))?;
    let (new, old, resumed) = match open_sealed(section, &sealed_path, &sealed)? {
        Sealed::One(old) => {
            let new = random_key()?;
            replace_key_file(section, &sealed_path, &Sealed::Rotating { new: new.clone(), old: old.clone() })?;
            (new, old, false)
        }
        Sealed::Rotating { new, old } => {
            tracing::warn!(data_dir = %data_dir.display(), "finishing an interrupted data-key rotation");
            (new, old, true)
        }
    };
    steps.take()?;
    finish(section, data_dir, &DataKey(Arc::new(new)), &DataKey(Arc::new(old)), resumed, steps)
}

/// Steps 2-4 (module doc): the sealed file holds both keys.
fn finish(
    section: &EncryptionSection,
    data_dir: &Path,
    new: &DataKey,
    old: &DataKey,
    resumed: bool,
    steps: &mut Steps,
) -> Result<Rekeyed> {
    let store = rekey_store(&data_dir.join("facewatch.db"), new, old, resumed)?;
    let mut done = Rekeyed { resumed, store, ..Rekeyed::default() };
    steps.take()?;
    reseal_folder(data_dir, data_dir, new, old, &mut done, steps)?;
    // Everything opens with the new key and is on disk: only now may the old key go.
    let kek = read_key_file(&section.key_file)?;
    replace_sealed(&data_dir.join(SEALED_NAME), &seal_key(&kek, &Sealed::One(Zeroizing::new(**new.0)))?)?;
    Ok(done)
}

/// Re-keys the SQLCipher store unless the new key opens it already; true if it did.
fn rekey_store(db: &Path, new: &DataKey, old: &DataKey, resumed: bool) -> Result<bool> {
    if !db.exists() {
        return Ok(false);
    }
    // The likely key first: a wrong one costs a failed read (and a line in SQLCipher's log).
    let mut tries = [(old, true), (new, false)];
    if resumed {
        tries.reverse();
    }
    let (conn, rekey) = match crate::db::open_keyed(db, tries[0].0) {
        Ok(conn) => (conn, tries[0].1),
        Err(_) => (
            crate::db::open_keyed(db, tries[1].0).map_err(|e| {
                Error::Encryption(format!("neither the new nor the old data key opens {} ({e})", db.display()))
            })?,
            tries[1].1,
        ),
    };
    conn.busy_timeout(Duration::from_secs(10))?;
    // In WAL mode the rekey is one commit that a crash either has or has not (a rollback
    // journal would hold old-key pages the new key cannot roll back); it is on disk before the
    // old key can be dropped.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    checkpoint(&conn, db)?;
    if rekey {
        let sql = Zeroizing::new(format!("PRAGMA rekey = \"{}\";", new.sqlcipher_literal().as_str()));
        conn.execute_batch(&sql)?;
        checkpoint(&conn, db)?;
    }
    drop(conn);
    let conn = crate::db::open_keyed(db, new)?;
    let mut st = conn.prepare("PRAGMA cipher_integrity_check")?;
    let bad: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    if !bad.is_empty() {
        return Err(Error::Encryption(format!(
            "{} is not wholly under the new data key: {}",
            db.display(),
            bad.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        )));
    }
    Ok(rekey)
}

/// Moves every frame of the WAL into the file and empties the WAL; refuses if a reader keeps it.
fn checkpoint(conn: &rusqlite::Connection, db: &Path) -> Result<()> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        return Err(Error::Config(format!("{} is in use by another process: try again", db.display())));
    }
    Ok(())
}

/// Re-encrypts the sealed files under `dir`, depth first. New copies are written in batches
/// and made durable with one `syncfs` each before they replace the originals (a sync per file
/// took two thirds of the time); each folder is synced after its renames.
fn reseal_folder(
    data_dir: &Path,
    dir: &Path,
    new: &DataKey,
    old: &DataKey,
    done: &mut Rekeyed,
    steps: &mut Steps,
) -> Result<()> {
    // The names first (the renames below add and remove entries while a listing would run).
    let mut names: Vec<(OsString, bool)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        // Symlinks and the like are not the folder's files.
        if kind.is_dir() || kind.is_file() {
            names.push((entry.file_name(), kind.is_dir()));
        }
    }
    names.sort();
    // A run cut short left these; gone before this run writes its own.
    let (torn, names): (Vec<_>, Vec<_>) =
        names.into_iter().partition(|(n, is_dir)| !is_dir && n.to_str().is_some_and(|n| n.ends_with(REKEY_SUFFIX)));
    for (name, _) in &torn {
        remove(&dir.join(name))?;
        done.leftovers += 1;
    }
    let mut changed = !torn.is_empty();
    let mut batch = Batch::default();
    for (name, is_dir) in names {
        let path = dir.join(&name);
        if is_dir {
            reseal_folder(data_dir, &path, new, old, done, steps)?;
            continue;
        }
        let Some(name) = name.to_str() else { continue };
        // The store (re-keyed above), the locks and the sealed key are not sealed blobs.
        if dir == data_dir && (name.starts_with("facewatch.db") || name == LOCK_FILE || name.starts_with("data.key")) {
            continue;
        }
        match reseal_file(&path, name, new, old)? {
            Outcome::Plain => {}
            Outcome::Already => done.already += 1,
            Outcome::Resealed(bytes) => {
                done.files += 1;
                done.bytes += bytes;
                changed = true;
                batch.paths.push(path);
                batch.bytes += bytes;
                if batch.paths.len() >= BATCH_FILES || batch.bytes >= BATCH_BYTES {
                    batch.replace(dir, steps)?;
                }
            }
            Outcome::Leftover => {
                remove(&path)?;
                done.leftovers += 1;
                changed = true;
            }
            Outcome::Unreadable => {
                tracing::warn!(file = %path.display(), "neither data key opens this file: left as it is");
                done.unreadable += 1;
            }
        }
    }
    batch.replace(dir, steps)?;
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}

const BATCH_FILES: usize = 1024;
const BATCH_BYTES: u64 = 64 << 20;

/// Files whose re-encrypted copy (`<name>.rekey`) is written but not yet synced and renamed.
#[derive(Default)]
struct Batch {
    paths: Vec<std::path::PathBuf>,
    bytes: u64,
}

impl Batch {
    fn replace(&mut self, dir: &Path, steps: &mut Steps) -> Result<()> {
        if self.paths.is_empty() {
            return Ok(());
        }
        sync_filesystem(dir)?;
        for p in self.paths.drain(..) {
            std::fs::rename(rekey_path(&p), &p).map_err(|e| Error::io(&p, e))?;
            steps.take()?;
        }
        self.bytes = 0;
        Ok(())
    }
}

/// Makes every file written so far on `dir`'s filesystem durable: one journal commit for a batch.
fn sync_filesystem(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let d = std::fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
    // SAFETY: `d` is an open descriptor for the whole call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(Error::io(dir, std::io::Error::last_os_error()));
    }
    Ok(())
}

fn rekey_path(path: &Path) -> std::path::PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(REKEY_SUFFIX);
    tmp.into()
}

enum Outcome {
    /// Not a sealed file (index metadata, reports).
    Plain,
    Already,
    Resealed(u64),
    /// A `<name>.tmp` sealed as `<name>`: the service stopped in the middle of writing it.
    Leftover,
    Unreadable,
}

fn reseal_file(path: &Path, name: &str, new: &DataKey, old: &DataKey) -> Result<Outcome> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if !bytes.starts_with(BLOB_MAGIC) {
        return Ok(Outcome::Plain);
    }
    if bytes.len() < BLOB_MAGIC.len() + NONCE_LEN + TAG_LEN {
        return Ok(Outcome::Unreadable);
    }
    if open_in_place(old, name, &mut bytes) {
        seal_in_place(new, name, &mut bytes)?;
        write_beside(path, &bytes)?;
        return Ok(Outcome::Resealed(bytes.len() as u64));
    }
    if open_in_place(new, name, &mut bytes) {
        return Ok(Outcome::Already);
    }
    if let Some(base) = name.strip_suffix(".tmp")
        && (open_in_place(old, base, &mut bytes) || open_in_place(new, base, &mut bytes))
    {
        return Ok(Outcome::Leftover);
    }
    Ok(Outcome::Unreadable)
}

fn cipher(key: &DataKey) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0[..]))
}

/// Decrypts a sealed blob's body where it lies; the bytes are untouched when the key or the
/// name does not fit (the tag is checked before anything is decrypted).
fn open_in_place(key: &DataKey, name: &str, blob: &mut [u8]) -> bool {
    let (head, rest) = blob.split_at_mut(BLOB_MAGIC.len() + NONCE_LEN);
    let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
    let nonce = Nonce::from_slice(&head[BLOB_MAGIC.len()..]);
    cipher(key).decrypt_in_place_detached(nonce, name.as_bytes(), body, Tag::from_slice(tag)).is_ok()
}

/// Seals the plain body left by [`open_in_place`] under `key` with a fresh nonce: the same
/// layout as `seal_blob`.
fn seal_in_place(key: &DataKey, name: &str, blob: &mut [u8]) -> Result<()> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let (head, rest) = blob.split_at_mut(BLOB_MAGIC.len() + NONCE_LEN);
    let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
    head[BLOB_MAGIC.len()..].copy_from_slice(&nonce);
    let t = cipher(key)
        .encrypt_in_place_detached(&nonce, name.as_bytes(), body)
        .map_err(|_| Error::Encryption("encryption failed".into()))?;
    tag.copy_from_slice(&t);
    Ok(())
}

/// Writes `bytes` to `<path>.rekey` with the original's owner and mode; [`Batch::replace`]
/// syncs it and renames it over the original.
fn write_beside(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = rekey_path(path);
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mut f = std::fs::File::create_new(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.set_permissions(meta.permissions()).map_err(|e| Error::io(&tmp, e))?;
    keep_owner(path, &tmp)?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// How many units of work (the key swap, the store, each file) a run may do: all of them,
/// except in the tests that stop a rotation part-way, where a crash would.
struct Steps(Option<usize>);

impl Steps {
    fn all() -> Self {
        Self(None)
    }

    fn take(&mut self) -> Result<()> {
        match &mut self.0 {
            Some(0) => Err(Error::Runtime("data-key rotation stopped part-way (test)".into())),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::vault::{create_key_file, open_blob, read, unlock};

    /// A data folder under `dir` as the service leaves it: a store with rows (some deleted:
    /// free pages), sealed face images and an index file, a plain index metadata file, an
    /// interrupted write's `.tmp`, and a blob of another folder.
    struct Folder {
        sec: EncryptionSection,
        data: PathBuf,
        old: DataKey,
        blobs: Vec<(PathBuf, Vec<u8>)>,
        rows: i64,
        sum: i64,
    }

    fn folder(dir: &Path, rows: i64) -> Folder {
        let sec = EncryptionSection { key_file: dir.join("kek") };
        create_key_file(&sec.key_file).unwrap();
        let data = dir.join("data");
        let old = unlock(&sec, &data).unwrap().unwrap();
        let conn = crate::db::connect(&data.join("facewatch.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); BEGIN").unwrap();
        for i in 0..rows {
            conn.execute("INSERT INTO t (id, v) VALUES (?1, ?2)", (i, vec![(i % 251) as u8; 1000])).unwrap();
        }
        conn.execute_batch("COMMIT; DELETE FROM t WHERE id % 4 = 0").unwrap();
        let (n, sum) = conn.query_row("SELECT count(*), sum(id) FROM t", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        drop(conn);
        let mut blobs = Vec::new();
        for (sub, name, plain) in [
            ("crops", "a1.jpg", b"\xff\xd8\xffcrop one".to_vec()),
            ("crops", "a2.jpg", b"\xff\xd8\xffcrop two".to_vec()),
            ("references", "7.jpg", b"\xff\xd8\xffreference".to_vec()),
            ("index", "list-1.faiss", vec![3u8; 70_000]),
        ] {
            std::fs::create_dir_all(data.join(sub)).unwrap();
            let p = data.join(sub).join(name);
            std::fs::write(&p, super::super::for_disk(&p, &plain).unwrap()).unwrap();
            blobs.push((p, plain));
        }
        std::fs::write(data.join("index/list-1.json"), b"{\"plain\": true}").unwrap();
        let partial = data.join("crops/a3.jpg.tmp");
        std::fs::write(&partial, super::super::seal_blob(&old, "a3.jpg", b"half a crop").unwrap()).unwrap();
        let stranger = DataKey(Arc::new(random_key().unwrap()));
        std::fs::write(data.join("crops/x.jpg"), super::super::seal_blob(&stranger, "x.jpg", b"other").unwrap())
            .unwrap();
        Folder { sec, data, old, blobs, rows: n, sum }
    }

    /// Everything reads back under the new key and nothing under the old one.
    fn check(f: &Folder) {
        let new = unlock(&f.sec, &f.data).unwrap().unwrap();
        assert_ne!(&new.0[..], &f.old.0[..], "a new data key");
        let db = f.data.join("facewatch.db");
        let conn = crate::db::connect(&db).unwrap();
        let got: (i64, i64) =
            conn.query_row("SELECT count(*), sum(id) FROM t", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!(got, (f.rows, f.sum), "every row reads back");
        drop(conn);
        assert!(crate::db::open_keyed(&db, &f.old).is_err(), "the old data key opens the store");
        for (p, plain) in &f.blobs {
            assert_eq!(&read(p).unwrap(), plain, "{}", p.display());
            let name = p.file_name().unwrap().to_str().unwrap();
            assert!(open_blob(&f.old, name, &std::fs::read(p).unwrap()).is_err(), "the old key opens {}", p.display());
        }
        assert_eq!(std::fs::read(f.data.join("index/list-1.json")).unwrap(), b"{\"plain\": true}");
        assert!(!f.data.join("crops/a3.jpg.tmp").exists(), "an interrupted write's leftover is gone");
        assert!(f.data.join("crops/x.jpg").exists(), "a file neither key opens is left alone");
        let left: Vec<_> = walk(&f.data).into_iter().filter(|p| p.to_string_lossy().ends_with(REKEY_SUFFIX)).collect();
        assert!(left.is_empty(), "{left:?}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() { out.extend(walk(&e.path())) } else { out.push(e.path()) }
        }
        out
    }

    #[test]
    fn a_data_key_rotation_replaces_the_key_of_everything_and_the_old_pair_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // 3 MB of rows: more than SQLite's page cache, so the rekey transaction spills pages.
        let f = folder(dir.path(), 3000);
        let old_kek = std::fs::read(&f.sec.key_file).unwrap();
        let held = DataLock::acquire(&f.data).unwrap();
        let e = rotate_data_key(&f.sec, &f.data).unwrap_err().to_string();
        assert!(e.contains("stop it first"), "{e}");
        drop(held);
        let r = rotate_data_key(&f.sec, &f.data).unwrap();
        assert_eq!(
            (r.resumed, r.store, r.files, r.already, r.leftovers, r.unreadable),
            (false, true, 4, 0, 1, 1),
            "{r:?}"
        );
        assert_ne!(std::fs::read(&f.sec.key_file).unwrap(), old_kek, "the key file is replaced too");
        check(&f);
        // Again: the second new key replaces the first.
        let before = unlock(&f.sec, &f.data).unwrap().unwrap();
        rotate_data_key(&f.sec, &f.data).unwrap();
        assert_ne!(&unlock(&f.sec, &f.data).unwrap().unwrap().0[..], &before.0[..]);
    }

    #[test]
    fn a_data_key_rotation_stopped_at_any_step_is_finished_by_the_next_run_or_the_start() {
        // Steps: the key swap, the store, then the four sealed files (in name order).
        for stop in 0..6 {
            let dir = tempfile::tempdir().unwrap();
            let f = folder(dir.path(), 200);
            let e = rotate_with(&f.sec, &f.data, &mut Steps(Some(stop))).unwrap_err().to_string();
            assert!(e.contains("stopped part-way"), "{e}");
            // As a kill in the middle of a write leaves it.
            std::fs::write(f.data.join(format!("crops/a1.jpg{REKEY_SUFFIX}")), b"FWE1 torn").unwrap();
            let e = unlock(&f.sec, &f.data).err().unwrap().to_string();
            assert!(e.contains("being replaced"), "{e}");
            let r = if stop % 2 == 0 {
                rotate_data_key(&f.sec, &f.data).unwrap()
            } else {
                let held = DataLock::acquire(&f.data).unwrap();
                finish_interrupted(&f.sec, &f.data, &held).unwrap().expect("an interrupted rotation")
            };
            assert!(r.resumed, "{r:?}");
            assert_eq!(r.store, stop == 0, "stop {stop}: {r:?}");
            assert_eq!(r.files + r.already, 4, "stop {stop}: {r:?}");
            check(&f);
        }
    }
}
