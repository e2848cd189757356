//! Append-only, hash-chained audit log. Every entry carries the hash of the one before it, so an
//! edited, inserted or deleted row breaks the chain and `verify` finds it. SQLite triggers refuse
//! UPDATE and DELETE; the chain catches whoever bypasses them.
//!
//! Entries are appended inside the caller's transaction, so a change and its audit record commit
//! together. Callers open that transaction IMMEDIATE: it takes the write lock before the last hash
//! is read, which keeps the chain linear across connections.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::access::{Action, Caller};
use crate::error::Result;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    seq         INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    old         TEXT,
    new         TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

/// The hash the first entry links to.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did something: a token's name and role, or a local command-line user.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: String,
}

impl Actor {
    /// The operator running a `facewatch` command on the machine itself.
    pub fn local() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Self { name: format!("cli:{user}"), role: "local".into() }
    }

    pub fn system() -> Self {
        Self { name: "facewatch".into(), role: "system".into() }
    }
}

/// One audit entry, linked to the one before it by `prev_hash`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = AuditEntry)]
pub struct Entry {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: String,
    /// The state before the change (a policy's old values...), if it had one.
    pub old: Option<Value>,
    pub new: Option<Value>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hashed fields of one entry (`old`/`new` as stored JSON text, empty when absent).
struct Link<'a> {
    seq: i64,
    at_ms: i64,
    actor: &'a str,
    role: &'a str,
    action: &'a str,
    target: &'a str,
    old: &'a str,
    new: &'a str,
    prev: &'a str,
}

impl Link<'_> {
    fn hash(&self) -> String {
        // A JSON array is an unambiguous encoding of the fields (no separator games).
        let l = self;
        let canonical =
            serde_json::json!([l.seq, l.at_ms, l.actor, l.role, l.action, l.target, l.old, l.new, l.prev]).to_string();
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// Appends one entry; call inside an IMMEDIATE transaction together with the change it records.
pub fn append(
    conn: &Connection,
    actor: &Actor,
    action: &str,
    target: &str,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Result<i64> {
    let last: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let at = crate::clock::now_ms();
    let old_s = old.map(Value::to_string).unwrap_or_default();
    let new_s = new.map(Value::to_string).unwrap_or_default();
    let hash = Link {
        seq,
        at_ms: at,
        actor: &actor.name,
        role: &actor.role,
        action,
        target,
        old: &old_s,
        new: &new_s,
        prev: &prev,
    }
    .hash();
    conn.execute(
        "INSERT INTO audit (seq, at_ms, actor, role, action, target, old, new, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            seq,
            at,
            actor.name,
            actor.role,
            action,
            target,
            old.map(|_| old_s.clone()),
            new.map(|_| new_s.clone()),
            prev,
            hash
        ],
    )?;
    Ok(seq)
}

/// Entries after `after_seq`, oldest first.
pub fn entries(conn: &Connection, after_seq: i64, limit: usize) -> Result<Vec<Entry>> {
    let mut st = conn.prepare(
        "SELECT seq, at_ms, actor, role, action, target, old, new, prev_hash, hash
         FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = st.query_map(params![after_seq, limit as i64], |r| {
        let old: Option<String> = r.get(6)?;
        let new: Option<String> = r.get(7)?;
        Ok(Entry {
            seq: r.get(0)?,
            at_ms: r.get(1)?,
            actor: r.get(2)?,
            role: r.get(3)?,
            action: r.get(4)?,
            target: r.get(5)?,
            old: old.and_then(|s| serde_json::from_str(&s).ok()),
            new: new.and_then(|s| serde_json::from_str(&s).ok()),
            prev_hash: r.get(8)?,
            hash: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// The outcome of checking the whole chain.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Verification {
    pub ok: bool,
    pub entries: i64,
    /// The first entry whose link or hash does not check out.
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
}

/// Recomputes every hash and link from the first entry on.
pub fn verify(conn: &Connection) -> Result<Verification> {
    let mut st = conn.prepare(
        "SELECT seq, at_ms, actor, role, action, target, COALESCE(old, ''), COALESCE(new, ''), prev_hash, hash
         FROM audit ORDER BY seq",
    )?;
    let mut rows = st.query([])?;
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1i64;
    let mut n = 0i64;
    while let Some(r) = rows.next()? {
        n += 1;
        let seq: i64 = r.get(0)?;
        let (prev_hash, hash): (String, String) = (r.get(8)?, r.get(9)?);
        let bad =
            |problem: String| Verification { ok: false, entries: n, first_bad_seq: Some(seq), problem: Some(problem) };
        if seq != expected_seq {
            return Ok(bad(format!("entry {expected_seq} is missing")));
        }
        if prev_hash != prev {
            return Ok(bad("link to the previous entry is broken".into()));
        }
        let s = |i| r.get::<_, String>(i);
        let (actor, role, action, target, old, new) = (s(2)?, s(3)?, s(4)?, s(5)?, s(6)?, s(7)?);
        let computed = Link {
            seq,
            at_ms: r.get(1)?,
            actor: &actor,
            role: &role,
            action: &action,
            target: &target,
            old: &old,
            new: &new,
            prev: &prev_hash,
        }
        .hash();
        if computed != hash {
            return Ok(bad("content does not match its hash".into()));
        }
        prev = hash;
        expected_seq += 1;
    }
    Ok(Verification { ok: true, entries: n, first_bad_seq: None, problem: None })
}

/// The audit log as a service: pages and verification, each on a connection of its own (no
/// lock shared with the writers; the chain is appended inside their transactions).
pub struct AuditLog {
    db_path: std::path::PathBuf,
}

impl AuditLog {
    pub fn new(db_path: std::path::PathBuf) -> Self {
        Self { db_path }
    }

    /// Entries after `after` in order, at most `limit`.
    pub fn entries(&self, who: &Caller, after: i64, limit: usize) -> Result<Vec<Entry>> {
        who.may(Action::ReadAudit)?;
        entries(&crate::db::connect(&self.db_path)?, after, limit)
    }

    /// Checks the whole chain (a full scan: the API lets one run at a time).
    pub fn verify(&self, who: &Caller) -> Result<Verification> {
        who.may(Action::VerifyAudit)?;
        verify(&crate::db::connect(&self.db_path)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::TransactionBehavior;

    #[test]
    fn chain_verifies_and_detects_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::open(dir.path().join("a.db")).unwrap();
        c.execute_batch(SCHEMA).unwrap();
        let who = Actor { name: "ann".into(), role: "ops".into() };
        for i in 0..3 {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
            append(&tx, &who, "policy.update", "list:w", Some(&serde_json::json!({"t": i})), None).unwrap();
            tx.commit().unwrap();
        }
        assert_eq!(verify(&c).unwrap(), Verification { ok: true, entries: 3, first_bad_seq: None, problem: None });
        assert!(c.execute("UPDATE audit SET actor = 'eve' WHERE seq = 2", []).is_err(), "trigger refuses updates");
        assert!(c.execute("DELETE FROM audit WHERE seq = 3", []).is_err(), "trigger refuses deletes");
        c.execute_batch("DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'eve' WHERE seq = 2;").unwrap();
        let v = verify(&c).unwrap();
        assert!(!v.ok);
        assert_eq!(v.first_bad_seq, Some(2));
    }
}
