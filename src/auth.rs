//! Bearer tokens with roles. A token is shown once when created; only its SHA-256 is stored
//! (tokens are 256 random bits, so a plain hash is enough to make a stolen database useless).
//! Every token belongs to a principal: the person (or device) behind it, with a unique id. Names
//! are free text and not unique, so rules about people (two different officers) compare
//! principals, never names or tokens.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{self, Actor};
use crate::error::{Error, Result};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    principal   TEXT NOT NULL
);
";

/// Tokens from before principals existed keep the old rule: one principal per token name.
const LEGACY_PRINCIPAL_PREFIX: &str = "name:";

/// What a token may do. Roles do not nest: separation of duties means an admin manages tokens
/// and reads the audit log but does not review alerts or edit watch lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Posts frames, nothing else.
    Camera,
    /// Reads and reviews alerts.
    Officer,
    /// Manages watch lists, subjects and policies.
    Ops,
    /// Manages tokens and reads the audit log.
    Admin,
    /// The central system's reader of the local event outbox (`GET /v1/events`), nothing else.
    Relay,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Camera, Role::Officer, Role::Ops, Role::Admin, Role::Relay];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Camera => "camera",
            Role::Officer => "officer",
            Role::Ops => "ops",
            Role::Admin => "admin",
            Role::Relay => "relay",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::Invalid(format!("role {s:?}: expected camera, officer, ops, admin or relay")))
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: i64,
    pub name: String,
    pub role: Role,
    /// The unique id of the person or device holding the token (shared by all their tokens).
    pub principal: String,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor { name: self.name.clone(), role: self.role.to_string() }
    }

    /// `Forbidden` unless the caller has `role`.
    pub fn require(&self, role: Role, action: &str) -> Result<()> {
        if self.role == role {
            Ok(())
        } else {
            Err(Error::Forbidden { role: self.role.to_string(), action: action.to_string() })
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub principal: String,
    pub created_at_ms: i64,
    pub revoked: bool,
}

/// A newly created token: the secret is in here and nowhere else.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub principal: String,
    pub token: String,
}

pub struct Tokens {
    conn: Connection,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn generate() -> Result<String> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| Error::Runtime(format!("random source: {e}")))?;
    Ok(format!("fw_{}", hex::encode(buf)))
}

/// A principal id given by an admin (a staff or device number), or a new unique one.
fn principal_id(given: Option<&str>) -> Result<String> {
    match given {
        Some(p) => {
            let ok = !p.is_empty()
                && p.len() <= 64
                && !p.starts_with(LEGACY_PRINCIPAL_PREFIX)
                && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
            if ok {
                Ok(p.to_string())
            } else {
                Err(Error::Invalid(format!("principal {p:?}: 1-64 of A-Z a-z 0-9 - _ . @")))
            }
        }
        None => Ok(format!("p-{}", uuid::Uuid::new_v4().simple())),
    }
}

/// Adds the `principal` column to a store made before it existed: each old token name becomes
/// one principal, which keeps the old two-officer rule for old tokens (never looser).
fn migrate(conn: &Connection) -> Result<()> {
    let has: bool = conn
        .query_row("SELECT COUNT(*) FROM pragma_table_info('tokens') WHERE name = 'principal'", [], |r| r.get(0))
        .map(|n: i64| n > 0)?;
    if !has {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             ALTER TABLE tokens ADD COLUMN principal TEXT NOT NULL DEFAULT '';
             UPDATE tokens SET principal = '{LEGACY_PRINCIPAL_PREFIX}' || name WHERE principal = '';
             COMMIT;"
        ))?;
    }
    Ok(())
}

impl Tokens {
    pub fn open(db: &Path) -> Result<Self> {
        let conn = crate::db::connect(db)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(audit::SCHEMA)?;
        migrate(&conn)?;
        Ok(Self { conn })
    }

    /// Creates a token for `principal` (an existing person's id to give them another token),
    /// or for a new principal when `None`.
    pub fn create(&mut self, name: &str, role: Role, principal: Option<&str>, by: &Actor) -> Result<NewToken> {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(Error::Invalid("token name: 1-64 printable characters".into()));
        }
        let principal = principal_id(principal)?;
        let token = generate()?;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO tokens (name, role, hash, created_at, principal) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, role.as_str(), hash(&token), crate::clock::now_ms(), principal],
        )?;
        let id = tx.last_insert_rowid();
        let new = serde_json::json!({"id": id, "name": name, "role": role, "principal": principal});
        audit::append(&tx, by, "token.create", &format!("token:{id}"), None, Some(&new))?;
        tx.commit()?;
        Ok(NewToken { id, name: name.to_string(), role, principal, token })
    }

    pub fn revoke(&mut self, id: i64, by: &Actor) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
            params![crate::clock::now_ms(), id],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!("active token {id}")));
        }
        audit::append(&tx, by, "token.revoke", &format!("token:{id}"), None, None)?;
        tx.commit()?;
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<TokenInfo>> {
        let mut st = self
            .conn
            .prepare("SELECT id, name, role, created_at, revoked_at IS NOT NULL, principal FROM tokens ORDER BY id")?;
        let rows = st.query_map([], |r| {
            let role: String = r.get(2)?;
            Ok(TokenInfo {
                id: r.get(0)?,
                name: r.get(1)?,
                role: role.parse().unwrap_or(Role::Camera),
                principal: r.get(5)?,
                created_at_ms: r.get(3)?,
                revoked: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The caller behind a bearer token, or `Unauthorized`.
    pub fn authenticate(&self, token: &str) -> Result<Principal> {
        let row: Option<(i64, String, String, String)> = self
            .conn
            .query_row(
                "SELECT id, name, role, principal FROM tokens WHERE hash = ?1 AND revoked_at IS NULL",
                [hash(token)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let (token_id, name, role, principal) = row.ok_or(Error::Unauthorized)?;
        Ok(Principal { token_id, name, role: role.parse()?, principal })
    }

    pub fn count_active(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL", [], |r| r.get(0))?)
    }

    /// Read access to the audit log (admins read it through this connection).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tokens::open(&dir.path().join("t.db")).unwrap();
        let new = t.create("gate-3", Role::Camera, None, &Actor::local()).unwrap();
        assert!(new.token.starts_with("fw_") && new.token.len() == 67);
        let p = t.authenticate(&new.token).unwrap();
        assert_eq!((p.name.as_str(), p.role), ("gate-3", Role::Camera));
        assert!(matches!(t.authenticate("fw_wrong"), Err(Error::Unauthorized)));
        assert!(p.require(Role::Officer, "review alerts").is_err());
        t.revoke(new.id, &Actor::local()).unwrap();
        assert!(matches!(t.authenticate(&new.token), Err(Error::Unauthorized)));
        assert!(matches!(t.revoke(new.id, &Actor::local()), Err(Error::NotFound(_))));
        let stored: String = t.conn.query_row("SELECT hash FROM tokens", [], |r| r.get(0)).unwrap();
        assert_ne!(stored, new.token, "only the hash is stored");
    }

    #[test]
    fn tokens_belong_to_principals() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tokens::open(&dir.path().join("t.db")).unwrap();
        let by = Actor::local();
        // Two officers who share a name are two principals; one person's two tokens are one.
        let a = t.create("Ann Lee", Role::Officer, None, &by).unwrap();
        let b = t.create("Ann Lee", Role::Officer, None, &by).unwrap();
        assert_ne!(a.principal, b.principal);
        let a2 = t.create("Ann (tablet)", Role::Officer, Some(&a.principal), &by).unwrap();
        assert_eq!(t.authenticate(&a2.token).unwrap().principal, t.authenticate(&a.token).unwrap().principal);
        for bad in ["", "has space", "name:Ann", &"x".repeat(65)] {
            assert!(matches!(t.create("x", Role::Officer, Some(bad), &by), Err(Error::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn tokens_from_before_principals_get_one_principal_per_name() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let old = crate::db::connect(&db).unwrap();
        old.execute_batch(
            "CREATE TABLE tokens (id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
                 hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, revoked_at INTEGER);",
        )
        .unwrap();
        for (i, name) in ["ann", "ann", "bob"].iter().enumerate() {
            old.execute(
                "INSERT INTO tokens (name, role, hash, created_at) VALUES (?1, 'officer', ?2, 0)",
                params![name, hash(&format!("fw_{i}"))],
            )
            .unwrap();
        }
        drop(old);
        let t = Tokens::open(&db).unwrap();
        let p: Vec<String> = (0..3).map(|i| t.authenticate(&format!("fw_{i}")).unwrap().principal).collect();
        assert_eq!(p, ["name:ann", "name:ann", "name:bob"]);
    }
}
