//! Who owns a data folder. `facewatch serve` keeps its watch lists and policies in memory, so a
//! change written to the store behind its back would not take effect until restart (a removed
//! subject would keep matching). The service therefore holds an exclusive advisory lock on
//! `DATA_DIR/facewatch.lock` for its whole life, and commands that change watch lists take the
//! same lock or refuse. The OS drops the lock when the process ends, even on a crash.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const LOCK_FILE: &str = "facewatch.lock";

/// An exclusive hold on a data folder; released on drop.
#[derive(Debug)]
pub struct DataLock {
    _file: File,
    pub dir: PathBuf,
}

impl DataLock {
    /// Takes the folder's lock (creating the folder), or `DataDirInUse` at once if another
    /// process (a running service, or a command changing watch lists) holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        let path = data_dir.join(LOCK_FILE);
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file, dir: data_dir.to_path_buf() }),
            Err(TryLockError::WouldBlock) => Err(Error::DataDirInUse { dir: data_dir.to_path_buf() }),
            Err(TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataLock::acquire(dir.path()).unwrap();
        let err = DataLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, Error::DataDirInUse { .. }), "{err}");
        drop(first);
        DataLock::acquire(dir.path()).unwrap();
    }
}
