//! In-place migration of an older store whose ids could be reused (`INTEGER PRIMARY KEY`
//! without AUTOINCREMENT hands out a deleted max id again, and `references/<template>.jpg`
//! or `index/list-<list>.faiss` would then name another subject's face or list).
//!
//! SQLite cannot add AUTOINCREMENT by ALTER, so each table is rebuilt inside one transaction
//! (SQLite's documented procedure: foreign keys off, create the new table, copy keeping ids,
//! drop, rename, check foreign keys) and its id counter is seeded with the highest id that
//! the table, an alert or a file still names.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::{Error, Result};

/// The lowest id counters a migrated store may have: ids that files on disk still name
/// (a deleted max id of the old schema is otherwise lost and would be handed out again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdFloors {
    pub lists: i64,
    pub templates: i64,
}

/// Whether `table` exists and already has an AUTOINCREMENT key.
fn has_autoincrement(conn: &Connection, table: &str) -> Result<Option<bool>> {
    let sql: Option<String> = conn
        .query_row("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| r.get(0))
        .optional()?;
    Ok(sql.map(|s| s.to_ascii_uppercase().contains("AUTOINCREMENT")))
}

/// The table's own DDL (as SQLite stores it, added columns included) under `new_name`, with
/// AUTOINCREMENT on its integer primary key.
fn autoincrement_ddl(conn: &Connection, table: &str, new_name: &str) -> Result<String> {
    let sql: String =
        conn.query_row("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| r.get(0))?;
    let bad = || Error::Migration(format!("cannot migrate table {table}: unexpected schema {sql:?}"));
    let open = sql.find('(').ok_or_else(bad)?;
    const KEY: &str = "INTEGER PRIMARY KEY";
    let key = sql.to_ascii_uppercase().find(KEY).ok_or_else(bad)? + KEY.len();
    Ok(format!("CREATE TABLE {new_name} {} AUTOINCREMENT{}", &sql[open..key], &sql[key..]))
}

/// Raises `table`'s AUTOINCREMENT counter to at least `floor`.
pub(crate) fn reserve(conn: &Connection, table: &str, floor: i64) -> Result<()> {
    let n = conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?2) WHERE name = ?1", params![table, floor])?;
    if n == 0 && floor > 0 {
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)", params![table, floor])?;
    }
    Ok(())
}

/// Rebuilds every table of `tables` (parents first) that lacks AUTOINCREMENT; returns whether
/// anything was migrated. All or nothing: one transaction.
pub fn never_reuse_ids(conn: &mut Connection, tables: &[&str], floors: impl FnOnce() -> IdFloors) -> Result<bool> {
    let mut old = Vec::new();
    for &t in tables {
        if has_autoincrement(conn, t)? == Some(false) {
            old.push(t);
        }
    }
    if old.is_empty() {
        return Ok(false);
    }
    // A no-op inside a transaction, so it is switched off around it; with foreign keys on,
    // DROP TABLE would cascade-delete the children.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let migrated = rebuild(conn, &old, floors());
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrated?;
    Ok(true)
}

fn rebuild(conn: &mut Connection, tables: &[&str], floors: IdFloors) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for &table in tables {
        let new_name = format!("{table}_autoincrement");
        let ddl = autoincrement_ddl(&tx, table, &new_name)?;
        let cols: Vec<String> = {
            let mut st = tx.prepare("SELECT name FROM pragma_table_info(?1)")?;
            st.query_map([table], |r| r.get(0))?.collect::<std::result::Result<_, _>>()?
        };
        let cols = cols.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        tx.execute_batch(&format!(
            "{ddl};
             INSERT INTO {new_name} ({cols}) SELECT {cols} FROM {table};
             DROP TABLE {table};
             ALTER TABLE {new_name} RENAME TO {table};"
        ))?;
    }
    // Copying the rows set each counter to the table's max id; raise it to what alerts and
    // files still name.
    let alerts: bool =
        tx.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'alerts'", [], |r| r.get(0))?;
    let alerted: i64 =
        if alerts { tx.query_row("SELECT COALESCE(MAX(template_id), 0) FROM alerts", [], |r| r.get(0))? } else { 0 };
    if tables.contains(&"templates") {
        reserve(&tx, "templates", floors.templates.max(alerted))?;
    }
    if tables.contains(&"lists") {
        reserve(&tx, "lists", floors.lists)?;
    }
    let broken: i64 = tx.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| r.get(0))?;
    if broken > 0 {
        return Err(Error::Migration(format!("migration would break {broken} foreign keys: store left unchanged")));
    }
    tx.commit()?;
    Ok(())
}
