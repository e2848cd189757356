//! The outbox gauges of `/metrics` (depth, oldest, parked), read on a connection of their own
//! on the blocking pool, never under the store locks that frames and reviews need.
//!
//! Scrapes are coalesced: one read runs at a time, and a scrape that waited for it takes the
//! result of a read that began after the scrape arrived (as fresh as its own would be). A flood
//! of scrapers thus costs about two reads per read time, not one each.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::events::outbox;

#[derive(Debug, Clone, Copy)]
pub struct OutboxGauges {
    /// -1 when the store could not be read.
    pub depth: i64,
    pub oldest_ms: i64,
    pub parked: i64,
}

impl OutboxGauges {
    const UNKNOWN: OutboxGauges = OutboxGauges { depth: -1, oldest_ms: 0, parked: -1 };
}

pub struct OutboxGaugeReader {
    db: PathBuf,
    conn: Arc<tokio::sync::Mutex<Option<Connection>>>,
    last: Mutex<Option<(Instant, OutboxGauges)>>,
}

impl OutboxGaugeReader {
    pub fn new(db: PathBuf) -> Self {
        Self { db, conn: Arc::default(), last: Mutex::new(None) }
    }

    pub async fn read(&self) -> OutboxGauges {
        let arrived = Instant::now();
        let mut conn = self.conn.clone().lock_owned().await;
        if let Some((started, g)) = *self.last.lock().unwrap_or_else(|p| p.into_inner())
            && started >= arrived
        {
            return g;
        }
        let started = Instant::now();
        let db = self.db.clone();
        let res = tokio::task::spawn_blocking(move || -> Result<OutboxGauges> {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => conn.insert(crate::db::connect(&db)?),
            };
            let (depth, oldest) = outbox::depth(c)?;
            Ok(OutboxGauges { depth, oldest_ms: oldest.unwrap_or(0), parked: outbox::parked(c)? })
        })
        .await
        .map_err(|e| Error::Runtime(format!("metrics task failed: {e}")))
        .and_then(|r| r);
        let g = res.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the outbox gauges");
            OutboxGauges::UNKNOWN
        });
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((started, g));
        g
    }
}
