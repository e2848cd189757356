//! Readiness (`/readyz`) from state only: the models' threads, the watch-list writer, and a
//! store write probe that runs in the background ([`StoreProbe::run`]), never per request.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use serde::Serialize;

use crate::clock;

/// Whether the service can do its job (`ready` = all of the checks below).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub models_loaded: bool,
    pub index_loaded: bool,
    /// From the last background write probe, if recent.
    pub store_writable: bool,
    /// The execution provider the model sessions run on (`cpu`, `cuda`).
    pub provider: &'static str,
}

/// A probe older than this no longer counts as proof that the store is writable.
const STALE_MS: i64 = 30_000;

pub struct StoreProbe {
    db_path: PathBuf,
    ok: AtomicBool,
    /// When the last probe ran (0 = never).
    checked_ms: AtomicI64,
}

impl StoreProbe {
    pub fn new(db_path: PathBuf) -> Self {
        Self { db_path, ok: AtomicBool::new(false), checked_ms: AtomicI64::new(0) }
    }

    /// Checks that the store takes a write lock, on a connection of its own (blocking).
    pub fn run(&self) {
        let res = crate::db::connect(&self.db_path).and_then(|c| Ok(c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?));
        if let Err(e) = &res {
            tracing::warn!(error = %e, "store write probe failed");
        }
        self.ok.store(res.is_ok(), Ordering::Relaxed);
        self.checked_ms.store(clock::now_ms(), Ordering::Relaxed);
    }

    /// The last probe's verdict, if it is recent.
    pub fn writable(&self) -> bool {
        self.ok.load(Ordering::Relaxed) && clock::now_ms() - self.checked_ms.load(Ordering::Relaxed) < STALE_MS
    }
}
