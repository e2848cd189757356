//! One SQLite file (WAL) holds everything; each component opens its own connection to it.
//! In an encrypted data folder the file is SQLCipher's (AES-256, its pages and WAL).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

pub fn connect(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let conn = match crate::vault::key_for(path) {
        Some(key) => open_keyed(path, &key)?,
        None => Connection::open(path)?,
    };
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// Opens the store of an encrypted data folder (`crate::vault`) with `key`: SQLCipher's raw key
/// first, then a read proves it.
pub fn open_keyed(path: &Path, key: &crate::vault::DataKey) -> Result<Connection> {
    let conn = Connection::open(path)?;
    let sql = zeroize::Zeroizing::new(format!("PRAGMA key = \"{}\";", key.sqlcipher_literal().as_str()));
    conn.execute_batch(&sql)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(|e| Error::Encryption(format!("the data key does not open {} ({e})", path.display())))?;
    Ok(conn)
}

/// Adds the columns (name, SQL type and default) that `table` lacks, as in a store made by an
/// older release, then runs `backfill` if any was added. The check is repeated under the write
/// lock (one IMMEDIATE transaction), so two processes opening the same old store at once do
/// not both add a column.
pub fn add_columns(conn: &Connection, table: &str, columns: &[(&str, &str)], backfill: Option<&str>) -> Result<()> {
    let missing = |c: &Connection| -> Result<Vec<(&str, &str)>> {
        let mut st = c.prepare("SELECT name FROM pragma_table_info(?1)")?;
        let have: Vec<String> = st.query_map([table], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(columns.iter().copied().filter(|(col, _)| !have.iter().any(|h| h == col)).collect())
    };
    if missing(conn)?.is_empty() {
        return Ok(());
    }
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let added = missing(&tx)?;
    for (col, ddl) in &added {
        tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {col} {ddl}"))?;
    }
    if let Some(sql) = backfill.filter(|_| !added.is_empty()) {
        tx.execute_batch(sql)?;
    }
    Ok(tx.commit()?)
}

/// Takes a connection's lock. A panic while one was held leaves SQLite consistent (the
/// transaction rolls back), so a poisoned lock is still usable.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
