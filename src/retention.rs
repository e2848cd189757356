//! Retention: face images and events do not outlive their limits. Alert crops and reference
//! images go after their list's `retention_days`; crops inside outbox rows too; delivered (or,
//! with no broker, all) events after `events_retention_days`; files no record names (left by a
//! crash) after a grace period.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use rusqlite::Connection;

use crate::alerts::Alerts;
use crate::db::lock;
use crate::error::Result;
use crate::events::outbox;
use crate::media::{self, Media};
use crate::watchlist::Watchlists;

pub struct Retention {
    watchlists: Arc<Watchlists>,
    alerts: Arc<Alerts>,
    media: Arc<Media>,
    db_path: PathBuf,
    /// Its own connection for the outbox sweep (SQLite serializes it with other writers).
    outbox: Mutex<Connection>,
    events_retention_days: u64,
    /// Whether a broker takes the events (else they are the local outbox's only copy).
    has_sink: bool,
}

/// What a sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub crops: usize,
    pub references: usize,
}

impl Retention {
    pub fn new(
        watchlists: Arc<Watchlists>,
        alerts: Arc<Alerts>,
        media: Arc<Media>,
        db_path: PathBuf,
        events_retention_days: u64,
        has_sink: bool,
    ) -> Result<Self> {
        let outbox = Mutex::new(crate::db::connect(&db_path)?);
        Ok(Self { watchlists, alerts, media, db_path, outbox, events_retention_days, has_sink })
    }

    /// One sweep at `now_ms` (the service runs it every `retention_sweep_secs`).
    pub fn sweep(&self, now_ms: i64) -> Result<Swept> {
        let days = self.watchlists.retention_days();
        let crops = self.alerts.expire_crops(&days, now_ms)?.len();
        let mut references = 0;
        for (list, d) in &days {
            let cutoff_s = now_ms / 1000 - *d as i64 * 86_400;
            references += self.media.delete_references(&self.watchlists.templates_before(list, cutoff_s)?);
        }
        if crops > 0 || references > 0 {
            tracing::info!(crops, references, "retention: face images deleted");
        }
        self.sweep_outbox(&days, now_ms)?;
        self.sweep_orphans(now_ms)?;
        Ok(Swept { crops, references })
    }

    /// Face crops inside outbox rows (waiting or parked) follow their list's retention, like
    /// the crop files; old delivered and parked events go after `events_retention_days`.
    fn sweep_outbox(&self, days: &[(String, u32)], now_ms: i64) -> Result<()> {
        let conn = lock(&self.outbox);
        // A deleted list's alerts keep the retention stored with them.
        let mut stored = conn.prepare_cached("SELECT retention_days FROM alerts WHERE id = ?1")?;
        let stripped = outbox::strip_expired_crops(&conn, now_ms, |list, alert_id| {
            days.iter()
                .find(|(l, _)| l == list)
                .map(|(_, d)| *d)
                .or_else(|| stored.query_row([alert_id], |r| r.get(0)).ok())
        })?;
        let cutoff = now_ms - self.events_retention_days as i64 * 86_400_000;
        let purged = outbox::purge(&conn, cutoff, !self.has_sink)?;
        if stripped > 0 || purged > 0 {
            tracing::info!(crops = stripped, events = purged, "retention: outbox crops stripped, old events deleted");
        }
        Ok(())
    }

    /// Deletes face images that no record names and that are older than `media::ORPHAN_GRACE`
    /// (a crash between writing a crop and inserting its alert, between deleting a template or
    /// expiring a crop and deleting its file, or in the middle of a write).
    pub fn sweep_orphans(&self, now_ms: i64) -> Result<media::Orphans> {
        let conn = crate::db::connect(&self.db_path)?;
        let mut crop = conn.prepare("SELECT 1 FROM alerts WHERE id = ?1 AND has_crop = 1")?;
        let mut template = conn.prepare("SELECT 1 FROM templates WHERE id = ?1")?;
        let now = UNIX_EPOCH + Duration::from_millis(now_ms.max(0) as u64);
        let cutoff = now.checked_sub(media::ORPHAN_GRACE).unwrap_or(UNIX_EPOCH);
        let n = self.media.sweep_orphans(cutoff, |id| Ok(crop.exists([id])?), |id| Ok(template.exists([id])?))?;
        if n.total() > 0 {
            tracing::warn!(
                crops = n.crops,
                references = n.references,
                partial = n.partial,
                "orphaned face images deleted (left by a crash)"
            );
        }
        Ok(n)
    }
}
