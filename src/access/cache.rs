//! The service's view of the active tokens, held in memory so that authenticating a request is
//! a hash and a map lookup on the async runtime, never a SQLite query under a lock.
//!
//! Keyed by the token's SHA-256 (what the store keeps). Only tokens that exist are in it: a
//! miss is answered 401 and never cached, so attacker-chosen tokens cannot grow it. The service
//! is the only writer of tokens while it runs: create and revoke update the cache in the same
//! call, and a periodic [`TokenCache::replace`] from the store picks up changes made with the
//! command line meanwhile. Every revocation is announced on a watch channel, so live streams
//! of a revoked token end at once.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use tokio::sync::watch;

use crate::access::tokens::{self as auth, Principal, Role};
use crate::error::{Error, Result};

/// Longer bearer values are refused before hashing (ours are 67 characters).
const MAX_TOKEN_LEN: usize = 256;

#[derive(Default)]
struct Active {
    by_digest: HashMap<[u8; 32], Principal>,
    ids: HashSet<i64>,
    /// Cameras bound to an active camera token: the only camera labels metrics carry.
    cameras: HashSet<String>,
}

impl Active {
    fn from(tokens: Vec<([u8; 32], Principal)>) -> Self {
        let mut a = Active::default();
        for (key, p) in tokens {
            a.insert(key, p);
        }
        a
    }

    fn insert(&mut self, key: [u8; 32], p: Principal) {
        self.ids.insert(p.token_id);
        self.cameras.extend(p.cameras.iter().cloned());
        self.by_digest.insert(key, p);
    }

    fn rebuild_cameras(&mut self) {
        self.cameras = self.by_digest.values().flat_map(|p| p.cameras.iter().cloned()).collect();
    }
}

pub struct TokenCache {
    active: RwLock<Active>,
    /// Bumped on every revocation; streams wait on it and then check their own token.
    revocations: watch::Sender<u64>,
}

impl TokenCache {
    pub fn new(tokens: Vec<([u8; 32], Principal)>) -> Self {
        let unbound = tokens.iter().filter(|(_, p)| p.role == Role::Camera && p.cameras.is_empty()).count();
        if unbound > 0 {
            tracing::warn!(
                tokens = unbound,
                "camera tokens bound to no camera (created before camera binding) can post no frame: \
                 reissue them with `facewatch token create --role camera --camera ID`"
            );
        }
        Self { active: RwLock::new(Active::from(tokens)), revocations: watch::channel(0).0 }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Active> {
        // The guarded maps are replaced or edited whole: a poisoned lock still holds a usable map.
        self.active.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Active> {
        self.active.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The caller behind a bearer token, or `Unauthorized`.
    pub fn authenticate(&self, token: &str) -> Result<Principal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::Unauthorized);
        }
        self.read().by_digest.get(&auth::digest(token)).cloned().ok_or(Error::Unauthorized)
    }

    /// A token just created (by this service).
    pub fn insert(&self, token: &str, p: Principal) {
        self.write().insert(auth::digest(token), p);
    }

    /// A token just revoked: it stops authenticating now and its streams are told.
    pub fn revoke(&self, token_id: i64) {
        {
            let mut a = self.write();
            a.by_digest.retain(|_, p| p.token_id != token_id);
            a.ids.remove(&token_id);
            a.rebuild_cameras();
        }
        self.revocations.send_modify(|n| *n += 1);
    }

    /// The store's active tokens replace the cached ones; tokens that left are revoked.
    pub fn replace(&self, tokens: Vec<([u8; 32], Principal)>) {
        let fresh = Active::from(tokens);
        let gone = {
            let mut a = self.write();
            let gone = a.ids.difference(&fresh.ids).count();
            *a = fresh;
            gone
        };
        if gone > 0 {
            tracing::info!(tokens = gone, "tokens revoked outside the service: their access ended");
            self.revocations.send_modify(|n| *n += 1);
        }
    }

    pub fn is_active(&self, token_id: i64) -> bool {
        self.read().ids.contains(&token_id)
    }

    /// Whether `camera` is bound to an active token (else metrics count it as `other`).
    pub fn knows_camera(&self, camera: &str) -> bool {
        self.read().cameras.contains(camera)
    }

    /// Changes whenever a token is revoked.
    pub fn revocations(&self) -> watch::Receiver<u64> {
        self.revocations.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: i64, role: Role, cameras: &[&str]) -> Principal {
        Principal {
            token_id: id,
            name: format!("t{id}"),
            role,
            principal: format!("p{id}"),
            cameras: cameras.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn answers_from_memory_and_revocation_is_immediate_and_announced() {
        let c = TokenCache::new(vec![(auth::digest("fw_a"), p(1, Role::Camera, &["gate-1"]))]);
        let mut rx = c.revocations();
        assert_eq!(c.authenticate("fw_a").unwrap().token_id, 1);
        assert!(c.knows_camera("gate-1") && !c.knows_camera("gate-2"));
        c.insert("fw_b", p(2, Role::Officer, &[]));
        assert_eq!(c.authenticate("fw_b").unwrap().role, Role::Officer);
        // Unknown tokens are refused and leave nothing behind.
        for i in 0..1000 {
            assert!(matches!(c.authenticate(&format!("fw_guess{i}")), Err(Error::Unauthorized)));
        }
        assert!(matches!(c.authenticate(&"x".repeat(10_000)), Err(Error::Unauthorized)));
        assert_eq!(c.read().by_digest.len(), 2, "misses are not cached");
        assert!(!rx.has_changed().unwrap());
        c.revoke(1);
        assert!(rx.has_changed().unwrap(), "streams are told");
        assert!(c.authenticate("fw_a").is_err() && !c.is_active(1) && c.is_active(2));
        assert!(!c.knows_camera("gate-1"));
        rx.mark_unchanged();
        // A reload without token 2 (revoked with the command line) revokes it here too.
        c.replace(vec![(auth::digest("fw_c"), p(3, Role::Camera, &["gate-3"]))]);
        assert!(rx.has_changed().unwrap());
        assert!(c.authenticate("fw_b").is_err() && c.authenticate("fw_c").is_ok() && c.knows_camera("gate-3"));
    }
}
