//! Access: who may call (tokens, principals, roles) and what each may do ([`Action`]).
//! [`Access`] is the service: tokens in the store, the in-memory cache that authenticates
//! requests, and the use cases an admin runs on tokens.

mod action;
pub mod cache;
pub mod miss;
pub mod tokens;

use std::path::Path;
use std::sync::Mutex;

pub use action::{Action, Caller};
pub use cache::TokenCache;
pub use tokens::{NewToken, Principal, Role, TokenInfo, Tokens};

use crate::db::lock;
use crate::error::Result;

pub struct Access {
    /// The store's token table: only token changes and cache reloads take this lock.
    tokens: Mutex<Tokens>,
    /// What authenticates requests (see [`TokenCache`]).
    pub cache: TokenCache,
}

impl Access {
    pub fn open(db: &Path) -> Result<Self> {
        let tokens = Tokens::open(db)?;
        Ok(Self { cache: TokenCache::new(tokens.active()?), tokens: Mutex::new(tokens) })
    }

    /// From memory: no store access, no lock but the cache's read lock (see [`TokenCache`]).
    pub fn authenticate(&self, token: &str) -> Result<Principal> {
        self.cache.authenticate(token)
    }

    pub fn create_token(
        &self,
        who: &Caller,
        name: &str,
        role: Role,
        principal: Option<&str>,
        cameras: &[String],
    ) -> Result<NewToken> {
        who.may(Action::CreateTokens)?;
        // Under the token lock, so a concurrent reload cannot drop the new token from the cache.
        let mut tokens = lock(&self.tokens);
        let new = tokens.create(name, role, principal, cameras, &who.actor())?;
        let p = Principal {
            token_id: new.id,
            name: new.name.clone(),
            role,
            principal: new.principal.clone(),
            cameras: new.cameras.clone(),
        };
        self.cache.insert(&new.token, p);
        Ok(new)
    }

    pub fn tokens(&self, who: &Caller) -> Result<Vec<TokenInfo>> {
        who.may(Action::ListTokens)?;
        lock(&self.tokens).list()
    }

    /// Revokes a token: it stops authenticating at once and its live streams end.
    pub fn revoke_token(&self, who: &Caller, id: i64) -> Result<()> {
        who.may(Action::RevokeTokens)?;
        let mut tokens = lock(&self.tokens);
        tokens.revoke(id, &who.actor())?;
        self.cache.revoke(id);
        Ok(())
    }

    /// Reloads the cache from the store (picks up `facewatch token` commands run meanwhile).
    pub fn reload(&self) -> Result<()> {
        let tokens = lock(&self.tokens);
        self.cache.replace(tokens.active()?);
        Ok(())
    }
}
