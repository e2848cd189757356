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

/// Columns added to `tokens` after the first release (added in place on older stores).
const TOKEN_COLUMNS: [(&str, &str); 2] = [
    // The camera ids a camera token may post frames as (a JSON array; empty for other roles).
    ("cameras", "TEXT NOT NULL DEFAULT '[]'"),
    ("principal", "TEXT NOT NULL DEFAULT ''"),
];

/// Most cameras one token may be bound to.
pub const MAX_CAMERAS_PER_TOKEN: usize = 256;

/// Tokens from before principals existed keep the old rule: one principal per token name.
const LEGACY_PRINCIPAL_PREFIX: &str = "name:";

/// What a token may do. Roles do not nest: separation of duties means an admin manages tokens
/// and reads the audit log but does not review alerts or edit watch lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// For a camera token, the camera ids it may post frames as (empty for other roles).
    pub cameras: Vec<String>,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor { name: self.name.clone(), role: self.role.to_string() }
    }

    /// `Forbidden` unless this (camera) token is bound to `camera`: a stolen camera token
    /// cannot pose as another camera.
    pub fn require_camera(&self, camera: &str) -> Result<()> {
        if self.cameras.iter().any(|c| c == camera) {
            return Ok(());
        }
        let bound = if self.cameras.is_empty() {
            "no camera (reissue it with --camera)".to_string()
        } else {
            self.cameras.join(", ")
        };
        Err(Error::Forbidden {
            role: self.role.to_string(),
            action: format!("post frames as camera {camera} (this token is bound to {bound})"),
        })
    }
}

/// Checks the cameras given for a new token: a camera token needs 1..MAX_CAMERAS_PER_TOKEN valid
/// camera ids, any other role none. Returns them sorted, without repeats.
fn check_cameras(role: Role, cameras: &[String]) -> Result<Vec<String>> {
    if role != Role::Camera {
        if cameras.is_empty() {
            return Ok(Vec::new());
        }
        return Err(Error::Invalid(format!("cameras: only a camera token is bound to cameras, not {role}")));
    }
    if cameras.is_empty() || cameras.len() > MAX_CAMERAS_PER_TOKEN {
        return Err(Error::Invalid(format!(
            "cameras: a camera token is bound to 1-{MAX_CAMERAS_PER_TOKEN} camera ids (--camera ID)"
        )));
    }
    for c in cameras {
        crate::frames::validate_camera(c)
            .map_err(|_| Error::Invalid(format!("camera {c:?}: 1-64 of A-Z a-z 0-9 - _ .")))?;
    }
    let mut v = cameras.to_vec();
    v.sort();
    v.dedup();
    Ok(v)
}

/// A token as listed: never its secret (only its SHA-256 is stored).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The person or device behind the token (the two-officer rule compares these).
    pub principal: String,
    pub created_at_ms: i64,
    pub revoked: bool,
    /// The cameras a camera token may post as.
    pub cameras: Vec<String>,
}

/// A newly created token: the secret is in here and nowhere else.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub principal: String,
    pub cameras: Vec<String>,
    pub token: String,
}

pub struct Tokens {
    conn: Connection,
}

fn hash(token: &str) -> String {
    hex::encode(digest(token))
}

/// The SHA-256 of a token: the key it is stored and cached under.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn cameras_json(cameras: &[String]) -> String {
    serde_json::to_string(cameras).unwrap_or_else(|_| "[]".into())
}

fn cameras_of(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
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

impl Tokens {
    pub fn open(db: &Path) -> Result<Self> {
        let conn = crate::db::connect(db)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(audit::SCHEMA)?;
        // When `principal` is added, each old token name becomes one principal, which keeps the
        // old two-officer rule for old tokens (never looser).
        let legacy = format!("UPDATE tokens SET principal = '{LEGACY_PRINCIPAL_PREFIX}' || name WHERE principal = ''");
        crate::db::add_columns(&conn, "tokens", &TOKEN_COLUMNS, Some(&legacy))?;
        Ok(Self { conn })
    }

    /// Creates a token for `principal` (an existing person's id to give them another token),
    /// or for a new principal when `None`. A camera token is bound to `cameras` (1 or more),
    /// other roles to none.
    pub fn create(
        &mut self,
        name: &str,
        role: Role,
        principal: Option<&str>,
        cameras: &[String],
        by: &Actor,
    ) -> Result<NewToken> {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(Error::Invalid("token name: 1-64 printable characters".into()));
        }
        let principal = principal_id(principal)?;
        let cameras = check_cameras(role, cameras)?;
        let token = generate()?;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO tokens (name, role, hash, created_at, principal, cameras) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![name, role.as_str(), hash(&token), crate::clock::now_ms(), principal, cameras_json(&cameras)],
        )?;
        let id = tx.last_insert_rowid();
        let mut new = serde_json::json!({"id": id, "name": name, "role": role, "principal": principal});
        if !cameras.is_empty() {
            new["cameras"] = serde_json::json!(cameras);
        }
        audit::append(&tx, by, "token.create", &format!("token:{id}"), None, Some(&new))?;
        tx.commit()?;
        Ok(NewToken { id, name: name.to_string(), role, principal, cameras, token })
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
        let mut st = self.conn.prepare(
            "SELECT id, name, role, created_at, revoked_at IS NOT NULL, principal, cameras FROM tokens ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            let role: String = r.get(2)?;
            let cameras: String = r.get(6)?;
            Ok(TokenInfo {
                id: r.get(0)?,
                name: r.get(1)?,
                role: role.parse().unwrap_or(Role::Camera),
                principal: r.get(5)?,
                created_at_ms: r.get(3)?,
                revoked: r.get(4)?,
                cameras: cameras_of(&cameras),
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Every active token: its SHA-256 and who it authenticates (what the service caches).
    pub fn active(&self) -> Result<Vec<([u8; 32], Principal)>> {
        let mut st = self
            .conn
            .prepare("SELECT id, name, role, hash, cameras, principal FROM tokens WHERE revoked_at IS NULL")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (token_id, name, role, stored, cameras, principal) = row?;
            // A row that does not parse authenticates nobody (it was not written by us).
            let (Ok(role), Some(key)) =
                (role.parse(), hex::decode(&stored).ok().and_then(|h| <[u8; 32]>::try_from(h).ok()))
            else {
                tracing::warn!(token = token_id, "token row with a bad role or hash: ignored");
                continue;
            };
            out.push((key, Principal { token_id, name, role, principal, cameras: cameras_of(&cameras) }));
        }
        Ok(out)
    }

    /// The caller behind a bearer token, or `Unauthorized` (the command line's check; the
    /// service answers from [`crate::access::TokenCache`]).
    pub fn authenticate(&self, token: &str) -> Result<Principal> {
        let row: Option<(i64, String, String, String, String)> = self
            .conn
            .query_row(
                "SELECT id, name, role, principal, cameras FROM tokens WHERE hash = ?1 AND revoked_at IS NULL",
                [hash(token)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let (token_id, name, role, principal, cameras) = row.ok_or(Error::Unauthorized)?;
        Ok(Principal { token_id, name, role: role.parse()?, principal, cameras: cameras_of(&cameras) })
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
        let new = t.create("gate-3", Role::Camera, None, &["gate-3".into()], &Actor::local()).unwrap();
        assert!(new.token.starts_with("fw_") && new.token.len() == 67);
        let p = t.authenticate(&new.token).unwrap();
        assert_eq!((p.name.as_str(), p.role), ("gate-3", Role::Camera));
        assert!(matches!(t.authenticate("fw_wrong"), Err(Error::Unauthorized)));
        assert!(crate::access::Caller::Token(p.clone()).may(crate::access::Action::ReviewAlerts).is_err());
        assert!(p.require_camera("gate-3").is_ok());
        assert!(matches!(p.require_camera("gate-4"), Err(Error::Forbidden { .. })));
        t.revoke(new.id, &Actor::local()).unwrap();
        assert!(matches!(t.authenticate(&new.token), Err(Error::Unauthorized)));
        assert!(matches!(t.revoke(new.id, &Actor::local()), Err(Error::NotFound(_))));
        let stored: String = t.conn.query_row("SELECT hash FROM tokens", [], |r| r.get(0)).unwrap();
        assert_ne!(stored, new.token, "only the hash is stored");
    }

    #[test]
    fn camera_tokens_are_bound_to_cameras_and_old_stores_migrate() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        // A store from before camera binding (and principals): no `cameras` column.
        let old = Connection::open(&db).unwrap();
        old.execute_batch(
            "CREATE TABLE tokens (id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
                 hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, revoked_at INTEGER);",
        )
        .unwrap();
        old.execute(
            "INSERT INTO tokens (name, role, hash, created_at) VALUES ('cam', 'camera', ?1, 0)",
            [hash("fw_old")],
        )
        .unwrap();
        drop(old);
        let mut t = Tokens::open(&db).unwrap();
        let legacy = t.authenticate("fw_old").unwrap();
        assert!(legacy.cameras.is_empty());
        assert!(legacy.require_camera("cam").is_err(), "an unbound camera token posts as no camera");
        let by = Actor::local();
        assert!(
            matches!(t.create("c", Role::Camera, None, &[], &by), Err(Error::Invalid(_))),
            "camera without cameras"
        );
        assert!(matches!(t.create("o", Role::Officer, None, &["g".into()], &by), Err(Error::Invalid(_))));
        assert!(matches!(t.create("c", Role::Camera, None, &["bad id".into()], &by), Err(Error::Invalid(_))));
        let many: Vec<String> = (0..=MAX_CAMERAS_PER_TOKEN).map(|i| format!("c{i}")).collect();
        assert!(t.create("c", Role::Camera, None, &many, &by).is_err());
        let new = t.create("c", Role::Camera, None, &["g-2".into(), "g-1".into(), "g-2".into()], &by).unwrap();
        assert_eq!(new.cameras, ["g-1", "g-2"]);
        let active = t.active().unwrap();
        let (key, p) = active.iter().find(|(_, p)| p.token_id == new.id).unwrap();
        assert_eq!((*key, p.cameras.clone()), (digest(&new.token), vec!["g-1".to_string(), "g-2".to_string()]));
        assert_eq!(t.list().unwrap().last().unwrap().cameras, ["g-1", "g-2"]);
    }

    #[test]
    fn tokens_belong_to_principals() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Tokens::open(&dir.path().join("t.db")).unwrap();
        let by = Actor::local();
        // Two officers who share a name are two principals; one person's two tokens are one.
        let a = t.create("Ann Lee", Role::Officer, None, &[], &by).unwrap();
        let b = t.create("Ann Lee", Role::Officer, None, &[], &by).unwrap();
        assert_ne!(a.principal, b.principal);
        let a2 = t.create("Ann (tablet)", Role::Officer, Some(&a.principal), &[], &by).unwrap();
        assert_eq!(t.authenticate(&a2.token).unwrap().principal, t.authenticate(&a.token).unwrap().principal);
        for bad in ["", "has space", "name:Ann", &"x".repeat(65)] {
            assert!(matches!(t.create("x", Role::Officer, Some(bad), &[], &by), Err(Error::Invalid(_))), "{bad:?}");
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
