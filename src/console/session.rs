//! Console sessions: a token typed or scanned at sign-in becomes a server-side session named by
//! a random id in an `HttpOnly`, `SameSite=Strict` cookie. The browser never holds the token.
//!
//! A session carries the token's principal, so the two-officer rule counts people as the API
//! does. It ends after `idle_secs` unused, `max_session_secs` after sign-in, at sign-out, and
//! as soon as its token is revoked (checked against the token cache on every request).
//!
//! Kept in memory (every request is a hash and a map lookup on the async runtime, no SQLite)
//! and written through to the store, so that a restart of the service on the same data keeps
//! officers signed in: the live view reconnects by itself. The store keeps only the id's
//! SHA-256. Bounded by count, in all and per token (see [`ConsoleSection`]); the last use is
//! written at most once a minute per session.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, params};
use sha2::{Digest as _, Sha256};

use crate::access::{Caller, NewToken, Principal, Role};
use crate::console::config::ConsoleSection;
use crate::console::page::PageError;
use crate::db::{self, lock};
use crate::error::{Error, Result};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS console_sessions (
    digest BLOB PRIMARY KEY,
    token_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    principal TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    seen_ms INTEGER NOT NULL
);
";

/// The cookie that names a session.
pub const COOKIE: &str = "facewatch_session";

/// How stale the stored last use may be before a request writes it again.
const SAVE_SEEN_EVERY_MS: i64 = 60_000;

/// A signed-in browser, as handlers receive it.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    /// The per-session token every form of this session carries (see `csrf`).
    pub csrf: String,
    pub(crate) digest: [u8; 32],
}

impl Session {
    pub fn caller(&self) -> Caller {
        Caller::Token(self.principal.clone())
    }

    pub fn role(&self) -> Role {
        self.principal.role
    }
}

#[derive(Debug, Clone)]
struct Live {
    principal: Principal,
    created_ms: i64,
    seen_ms: i64,
    saved_seen_ms: i64,
}

/// What a lookup found.
pub enum Lookup {
    /// A live session; `save` when its last use should be written (on the blocking pool).
    Live { session: Session, save: bool },
    /// No such session (or an ended one: expired, revoked, signed out).
    None,
}

pub struct Sessions {
    db: Mutex<Connection>,
    live: Mutex<HashMap<[u8; 32], Live>>,
    /// A token just created by a session, waiting for that session's next page to show it once
    /// (post, redirect, get: a reload cannot create a second one). Memory only, never stored;
    /// one per session, gone after [`SHOW_ONCE_MS`].
    once: Mutex<HashMap<[u8; 32], (NewToken, i64)>>,
    limits: ConsoleSection,
}

/// How long a created token waits for the page that shows it.
const SHOW_ONCE_MS: i64 = 60_000;

/// A new session's cookie value: 256 random bits, hex.
fn new_id() -> Result<String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| Error::Runtime(format!("no randomness for a session id: {e}")))?;
    Ok(hex::encode(raw))
}

pub(crate) fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The CSRF token of a session: derived from its id (which only the cookie holds), so it is
/// stored nowhere and a page that leaks it does not leak the id.
fn csrf_of(id_digest: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"facewatch console csrf\0");
    h.update(id_digest);
    hex::encode(h.finalize())
}

impl Sessions {
    /// Opens the store's sessions, dropping those that expired while the service was down.
    pub fn open(db_path: &Path, limits: ConsoleSection, now_ms: i64) -> Result<Self> {
        let conn = db::connect(db_path)?;
        conn.execute_batch(SCHEMA)?;
        let (idle, max) = Self::windows(&limits);
        conn.execute(
            "DELETE FROM console_sessions WHERE seen_ms < ?1 OR created_ms < ?2",
            params![now_ms - idle, now_ms - max],
        )?;
        let mut live = HashMap::new();
        {
            let mut st = conn
                .prepare("SELECT digest, token_id, name, role, principal, created_ms, seen_ms FROM console_sessions")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })?;
            for row in rows {
                let (key, token_id, name, role, principal, created_ms, seen_ms) = row?;
                let (Ok(key), Ok(role)) = (<[u8; 32]>::try_from(key), role.parse::<Role>()) else {
                    continue;
                };
                let principal = Principal { token_id, name, role, principal, cameras: Vec::new() };
                live.insert(key, Live { principal, created_ms, seen_ms, saved_seen_ms: seen_ms });
            }
        }
        Ok(Self { db: Mutex::new(conn), live: Mutex::new(live), once: Mutex::default(), limits })
    }

    fn windows(limits: &ConsoleSection) -> (i64, i64) {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        (ms(limits.idle_secs), ms(limits.max_session_secs))
    }

    fn expired(&self, l: &Live, now_ms: i64) -> bool {
        let (idle, max) = Self::windows(&self.limits);
        now_ms.saturating_sub(l.seen_ms) > idle || now_ms.saturating_sub(l.created_ms) > max
    }

    /// How long the officer console waits before blurring the faces of an unattended screen.
    pub fn blur_after_ms(&self) -> u64 {
        self.limits.blur_after_secs.saturating_mul(1000)
    }

    pub fn secure_cookies(&self) -> bool {
        self.limits.secure_cookies
    }

    pub fn max_age_secs(&self) -> u64 {
        self.limits.max_session_secs
    }

    /// Starts a session for `principal` (blocking: writes the store); returns the cookie value.
    /// Ended sessions are dropped first; at the per-token cap the token's oldest session ends;
    /// at the overall cap sign-in is refused.
    pub fn create(&self, principal: Principal, is_active: impl Fn(i64) -> bool, now_ms: i64) -> Result<NewSession> {
        let id = new_id()?;
        let key = digest(&id);
        let mut live = lock(&self.live);
        let mut ended: Vec<[u8; 32]> = live
            .iter()
            .filter(|(_, l)| self.expired(l, now_ms) || !is_active(l.principal.token_id))
            .map(|(k, _)| *k)
            .collect();
        let mut mine: Vec<([u8; 32], i64)> = live
            .iter()
            .filter(|(k, l)| l.principal.token_id == principal.token_id && !ended.contains(k))
            .map(|(k, l)| (*k, l.created_ms))
            .collect();
        mine.sort_by_key(|(_, created)| *created);
        let over = (mine.len() + 1).saturating_sub(self.limits.max_sessions_per_token);
        ended.extend(mine.iter().take(over).map(|(k, _)| *k));
        if live.len() - ended.len() >= self.limits.max_sessions {
            return Err(Error::Overloaded { queue: "console session", retry_after_s: 60 });
        }
        let conn = lock(&self.db);
        let tx = rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)?;
        for k in &ended {
            tx.execute("DELETE FROM console_sessions WHERE digest = ?1", [&k[..]])?;
        }
        tx.execute(
            "INSERT INTO console_sessions (digest, token_id, name, role, principal, created_ms, seen_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![&key[..], principal.token_id, principal.name, principal.role.as_str(), principal.principal, now_ms],
        )?;
        tx.commit()?;
        for k in &ended {
            live.remove(k);
        }
        live.insert(
            key,
            Live { principal: principal.clone(), created_ms: now_ms, seen_ms: now_ms, saved_seen_ms: now_ms },
        );
        tracing::info!(principal = %principal.principal, role = %principal.role, "console session started");
        Ok(Session { principal, csrf: csrf_of(&key), digest: key }.with_id(id))
    }

    /// The live session named by a cookie value, touched (from memory: no store access).
    /// An expired session, or one whose token was revoked, is ended here.
    pub fn lookup(&self, id: &str, is_active: impl Fn(i64) -> bool, now_ms: i64) -> Lookup {
        if id.len() != 64 {
            return Lookup::None;
        }
        let key = digest(id);
        let mut live = lock(&self.live);
        let Some(l) = live.get_mut(&key) else { return Lookup::None };
        if self.expired(l, now_ms) || !is_active(l.principal.token_id) {
            live.remove(&key);
            // The row is dropped by the next sign-in or start (it can never match again).
            return Lookup::None;
        }
        l.seen_ms = now_ms.max(l.seen_ms);
        let save = l.seen_ms - l.saved_seen_ms >= SAVE_SEEN_EVERY_MS;
        if save {
            l.saved_seen_ms = l.seen_ms;
        }
        Lookup::Live { session: Session { principal: l.principal.clone(), csrf: csrf_of(&key), digest: key }, save }
    }

    /// Whether a session is still live, without touching it (a live stream is not a use: an
    /// officer who walked away is signed out while the screen keeps streaming).
    pub fn is_live(&self, s: &Session, is_active: impl Fn(i64) -> bool, now_ms: i64) -> bool {
        lock(&self.live).get(&s.digest).is_some_and(|l| !self.expired(l, now_ms) && is_active(l.principal.token_id))
    }

    /// Writes a session's last use (blocking), so that a restart does not end it early.
    pub fn save_seen(&self, s: &Session, now_ms: i64) -> Result<()> {
        lock(&self.db)
            .execute("UPDATE console_sessions SET seen_ms = ?2 WHERE digest = ?1", params![&s.digest[..], now_ms])?;
        Ok(())
    }

    /// Sign-out (blocking).
    pub fn end(&self, s: &Session) -> Result<()> {
        lock(&self.live).remove(&s.digest);
        lock(&self.once).remove(&s.digest);
        lock(&self.db).execute("DELETE FROM console_sessions WHERE digest = ?1", [&s.digest[..]])?;
        Ok(())
    }

    pub fn count(&self) -> usize {
        lock(&self.live).len()
    }

    /// Keeps `token` for `s`'s next [`Sessions::take_once`] (replacing one not yet shown).
    pub fn show_once(&self, s: &Session, token: NewToken, now_ms: i64) {
        let mut once = lock(&self.once);
        once.retain(|_, (_, at)| now_ms - *at < SHOW_ONCE_MS);
        once.insert(s.digest, (token, now_ms));
    }

    /// The token `s` created a moment ago, if it was not shown yet; it is not kept after this.
    pub fn take_once(&self, s: &Session, now_ms: i64) -> Option<NewToken> {
        lock(&self.once).remove(&s.digest).filter(|(_, at)| now_ms - *at < SHOW_ONCE_MS).map(|(t, _)| t)
    }
}

/// A session just created, with the cookie value only sign-in ever sees.
pub struct NewSession {
    pub session: Session,
    pub id: String,
}

impl Session {
    fn with_id(self, id: String) -> NewSession {
        NewSession { session: self, id }
    }
}

/// The session named by the request's cookie, or a redirect to sign-in: what every page of the
/// console extracts first. Cookies authorize the console only, never `/v1`.
impl axum::extract::FromRequestParts<crate::api::AppState> for Session {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::api::AppState,
    ) -> std::result::Result<Self, PageError> {
        let id = cookie(&parts.headers, COOKIE).ok_or(PageError::SignIn)?;
        let app = state.app.clone();
        let now = crate::clock::now_ms();
        match app.sessions.lookup(id, |t| app.access.cache.is_active(t), now) {
            Lookup::Live { session, save } => {
                if save {
                    let s = session.clone();
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = app.sessions.save_seen(&s, now) {
                            tracing::warn!(error = %e, "console session's last use not saved");
                        }
                    });
                }
                Ok(session)
            }
            Lookup::None => Err(PageError::SignIn),
        }
    }
}

/// The value of cookie `name` among the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value of a new session (`Secure` when served over TLS).
pub fn set_cookie(id: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
}

/// The `Set-Cookie` value that removes the session cookie (sign-out).
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn officer(token_id: i64) -> Principal {
        Principal {
            token_id,
            name: "A".into(),
            role: Role::Officer,
            principal: format!("p{token_id}"),
            cameras: vec![],
        }
    }

    fn limits() -> ConsoleSection {
        ConsoleSection {
            idle_secs: 60,
            max_session_secs: 600,
            max_sessions: 3,
            max_sessions_per_token: 2,
            ..Default::default()
        }
    }

    #[test]
    fn a_created_token_is_shown_once_to_its_own_session_and_not_after_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sessions::open(&dir.path().join("f.db"), limits(), 0).unwrap();
        let yes = |_| true;
        let (a, b) = (s.create(officer(1), yes, 0).unwrap().session, s.create(officer(2), yes, 0).unwrap().session);
        let token = |id| NewToken {
            id,
            name: "N".into(),
            role: Role::Officer,
            principal: "p".into(),
            cameras: vec![],
            token: format!("secret{id}"),
        };
        s.show_once(&a, token(7), 1_000);
        assert!(s.take_once(&b, 2_000).is_none(), "not to another session");
        assert_eq!(s.take_once(&a, 2_000).map(|t| t.token), Some("secret7".into()));
        assert!(s.take_once(&a, 2_000).is_none(), "once");
        s.show_once(&a, token(8), 1_000);
        assert!(s.take_once(&a, 1_000 + SHOW_ONCE_MS).is_none(), "expired");
        s.show_once(&a, token(9), 1_000);
        s.end(&a).unwrap();
        assert!(s.take_once(&a, 1_001).is_none(), "signed out");
    }

    #[test]
    fn sessions_end_when_idle_too_old_or_revoked_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("f.db");
        let s = Sessions::open(&db, limits(), 0).unwrap();
        let yes = |_| true;
        let a = s.create(officer(1), yes, 0).unwrap();
        assert!(matches!(s.lookup(&a.id, yes, 59_000), Lookup::Live { .. }));
        // Touched at 59 s: alive at 118 s, gone after 60 idle seconds more.
        assert!(matches!(s.lookup(&a.id, yes, 118_000), Lookup::Live { .. }));
        assert!(matches!(s.lookup(&a.id, yes, 178_001), Lookup::None));
        // Never idle, still ends at the maximum age.
        let b = s.create(officer(1), yes, 0).unwrap();
        for t in (0..=600_000).step_by(50_000) {
            assert!(matches!(s.lookup(&b.id, yes, t), Lookup::Live { .. }), "{t}");
        }
        assert!(matches!(s.lookup(&b.id, yes, 600_001), Lookup::None));
        // A revoked token's session ends.
        let c = s.create(officer(2), yes, 0).unwrap();
        assert!(matches!(s.lookup(&c.id, |t| t != 2, 1), Lookup::None));
        // Reopened (a restart): still signed in, with the same CSRF token.
        let d = s.create(officer(3), yes, 1_000).unwrap();
        drop(s);
        let s = Sessions::open(&db, limits(), 2_000).unwrap();
        match s.lookup(&d.id, yes, 2_000) {
            Lookup::Live { session, .. } => {
                assert_eq!(session.principal.principal, "p3");
                assert_eq!(session.csrf, d.session.csrf);
            }
            Lookup::None => panic!("the session did not survive a restart"),
        }
        assert!(matches!(s.lookup("00", yes, 2_000), Lookup::None));
        assert!(matches!(s.lookup(&"0".repeat(64), yes, 2_000), Lookup::None));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_only_over_tls() {
        let plain = set_cookie("abc", 43200, false);
        assert_eq!(plain, "facewatch_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200");
        assert!(set_cookie("abc", 43200, true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("facewatch_session=;") && clear_cookie(false).contains("Max-Age=0"));
        let mut h = axum::http::HeaderMap::new();
        h.append(axum::http::header::COOKIE, "a=1; facewatch_session=xyz".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "facewatch"), None);
    }

    #[test]
    fn sessions_are_bounded_in_all_and_per_token() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sessions::open(&dir.path().join("f.db"), limits(), 0).unwrap();
        let yes = |_| true;
        let first = s.create(officer(1), yes, 0).unwrap();
        s.create(officer(1), yes, 1).unwrap();
        // A third for token 1 ends its oldest.
        s.create(officer(1), yes, 2).unwrap();
        assert!(matches!(s.lookup(&first.id, yes, 3), Lookup::None));
        assert_eq!(s.count(), 2);
        s.create(officer(2), yes, 3).unwrap();
        let Err(e) = s.create(officer(3), yes, 4) else { panic!("a session beyond the cap") };
        assert!(matches!(e, Error::Overloaded { .. }), "{e}");
        // Expired sessions make room.
        s.create(officer(3), yes, 1_000_000).unwrap();
    }
}
