//! Alerts: a match kept for a human to judge. [`Alerts`] is the service: raising (crop, row and
//! outbox event in one transaction), reading, the two-officer review and the live [`feed`].
//! The rows live in [`store`].

pub mod feed;
pub mod store;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use image::RgbImage;
use tokio::sync::{Notify, broadcast};

use crate::access::{Action, Caller};
use crate::db::lock;
use crate::error::{Error, Result};
use crate::media::{self, Media};
use crate::metrics::Metrics;
use crate::watchlist::store as lists;
pub use feed::{AlertEvent, Change, Feed};
pub use store::{Alert, AlertStore, Decision, Filter, ModelId, ModelIds, NewAlert, Raised, ReviewRate, Status};

/// An alert with what officers may be shown beside it.
#[derive(Debug, Clone)]
pub struct AlertView {
    pub alert: Alert,
    /// Whether the reference image it was raised against may still be shown.
    pub has_reference: bool,
}

pub struct Alerts {
    /// Raising and reviewing take turns here.
    writer: Mutex<AlertStore>,
    /// Officers' reads (pages, details, reference checks): their scans never hold the writer.
    reads: Mutex<AlertStore>,
    media: Arc<Media>,
    feed: Feed,
    metrics: Arc<Metrics>,
    /// Woken when an event was written, so the publisher sends it at once.
    outbox: Arc<Notify>,
    /// The store, for scans that get a connection of their own (review rates).
    db: PathBuf,
}

impl Alerts {
    pub fn open(
        db: &std::path::Path,
        media: Arc<Media>,
        feed_buffer: usize,
        metrics: Arc<Metrics>,
        outbox: Arc<Notify>,
    ) -> Result<Self> {
        Ok(Self {
            writer: Mutex::new(AlertStore::open(db)?),
            reads: Mutex::new(AlertStore::open(db)?),
            media,
            feed: Feed::new(feed_buffer),
            metrics,
            outbox,
            db: db.to_path_buf(),
        })
    }

    /// Raises an alert for a sighting unless one for the same subject and camera captured
    /// within `cooldown_ms` of it is still under review (then the sighting is that alert's).
    /// The crop is encoded only for a new alert; checking, writing the crop and inserting the
    /// row and its event are one transaction (see [`AlertStore::raise`]). A full disk still
    /// raises the alert, without its crop.
    pub fn raise(&self, mut new: NewAlert, cooldown_ms: i64, frame: &RgbImage, share_crop: bool) -> Result<Raised> {
        use base64::Engine as _;
        let save = |id: &str, new: &mut NewAlert| {
            let jpeg = media::face_jpeg(frame, new.bbox);
            if share_crop {
                new.shared_crop = jpeg.as_ref().ok().map(|j| base64::engine::general_purpose::STANDARD.encode(j));
            }
            match jpeg.and_then(|j| self.media.save_crop(id, &j)) {
                Ok(_) => new.has_crop = true,
                Err(e) => tracing::error!(error = %e, alert = %id, "alert crop not saved"),
            }
        };
        let cleanup = |id: &str| {
            Media::delete(&self.media.crop_path(id));
        };
        let raised = lock(&self.writer).raise(&mut new, cooldown_ms, save, cleanup)?;
        match &raised {
            Raised::Created(alert) => {
                self.metrics.alerts.inc();
                tracing::info!(alert = %alert.id, camera = %alert.camera, list = %alert.list,
                    subject = %alert.subject, score = alert.score, "alert raised");
                self.announce(Change::Created, alert);
                self.outbox.notify_one();
            }
            Raised::Reused(_) => {
                self.metrics.suppressed.inc();
            }
        }
        Ok(raised)
    }

    fn announce(&self, kind: Change, alert: &Alert) {
        let has_reference = self.has_reference(alert);
        self.feed.announce(AlertEvent { kind, alert: alert.clone(), has_reference });
    }

    fn view(&self, alert: Alert) -> AlertView {
        let has_reference = self.has_reference(&alert);
        AlertView { alert, has_reference }
    }

    pub fn get(&self, who: &Caller, id: &str) -> Result<AlertView> {
        who.may(Action::ReadAlerts)?;
        let a = lock(&self.reads).get(id)?;
        Ok(self.view(a))
    }

    pub fn list(&self, who: &Caller, f: &Filter) -> Result<Vec<AlertView>> {
        who.may(Action::ReadAlerts)?;
        let page = lock(&self.reads).list(f)?;
        Ok(page.into_iter().map(|a| self.view(a)).collect())
    }

    /// The alerts still under review, newest first (an officer's queue), at most `limit`.
    pub fn under_review(&self, who: &Caller, limit: usize) -> Result<Vec<AlertView>> {
        who.may(Action::ReadAlerts)?;
        let page = lock(&self.reads).under_review(limit)?;
        Ok(page.into_iter().map(|a| self.view(a)).collect())
    }

    /// An alert opened by an officer to judge it: the first opening per principal is recorded in
    /// the audit log (`alert.viewed`), so who has seen a face is known, as who judged it is.
    pub fn open_for_review(&self, who: &Caller, id: &str) -> Result<AlertView> {
        let view = self.get(who, id)?;
        if let Some(p) = who.principal()
            && !lock(&self.reads).viewed(&view.alert.id, &p.principal)?
        {
            lock(&self.writer).record_view(&view.alert.id, p)?;
        }
        Ok(view)
    }

    /// An officer's decision; the second confirmation by a different principal verifies.
    pub fn review(&self, who: &Caller, id: &str, decision: Decision, note: Option<&str>) -> Result<AlertView> {
        who.may(Action::ReviewAlerts)?;
        let officer = who.principal().ok_or_else(|| Error::Forbidden {
            role: "local".into(),
            action: "review alerts (an officer's token is needed: reviews count people)".into(),
        })?;
        let alert = lock(&self.writer).review(id, officer, decision, note)?;
        self.metrics.reviews.inc(match decision {
            Decision::Confirm => "confirm",
            Decision::Dismiss => "dismiss",
        });
        self.announce(Change::Reviewed, &alert);
        if alert.status == Status::Verified {
            // As in the outbox: every review, then the second confirmation's verification.
            self.announce(Change::Verified, &alert);
        }
        self.outbox.notify_one();
        Ok(self.view(alert))
    }

    /// The crop of an alert as JPEG bytes (decrypted in an encrypted data folder).
    pub fn crop_jpeg(&self, who: &Caller, id: &str) -> Result<Vec<u8>> {
        read_image(&self.crop(who, id)?, || format!("crop of alert {id}"))
    }

    /// The reference image of an alert as JPEG bytes (decrypted in an encrypted data folder).
    pub fn reference_jpeg(&self, who: &Caller, id: &str) -> Result<Vec<u8>> {
        read_image(&self.reference(who, id)?, || format!("reference image of alert {id}"))
    }

    /// Reviewed alerts of `list` at and above each of `thresholds` (see
    /// [`AlertStore::review_rates`]): how officers judged what each threshold let through.
    pub fn review_rates(&self, who: &Caller, list: &str, thresholds: &[f32]) -> Result<Vec<ReviewRate>> {
        who.may(Action::ReadReviewRates)?;
        // A scan of up to REVIEW_SCAN rows: on a connection of its own, never holding the
        // officers' reads.
        store::review_rates(&crate::db::connect(&self.db)?, list, thresholds)
    }

    /// The crop file of an alert, while retention keeps it.
    pub fn crop(&self, who: &Caller, id: &str) -> Result<PathBuf> {
        let a = self.get(who, id)?.alert;
        if !a.has_crop {
            return Err(Error::NotFound(format!("crop of alert {} (deleted by retention)", a.id)));
        }
        Ok(self.media.crop_path(&a.id))
    }

    /// The reference image an alert was raised against, while it exists.
    pub fn reference(&self, who: &Caller, id: &str) -> Result<PathBuf> {
        let a = self.get(who, id)?.alert;
        let what = format!("reference image of alert {}", a.id);
        // Never another template's image: 404 once the template or its image is gone.
        self.reference_path(&a)?
            .ok_or_else(|| Error::NotFound(format!("{what} (subject deleted or retention expired)")))
    }

    /// The live feed, for an officer.
    pub fn subscribe(&self, who: &Caller) -> Result<broadcast::Receiver<AlertEvent>> {
        who.may(Action::WatchAlerts)?;
        Ok(self.feed.subscribe())
    }

    pub fn subscribers(&self) -> usize {
        self.feed.subscribers()
    }

    /// [`Alerts::reference_path`] as a yes or no (a failed lookup is logged and shows none).
    fn has_reference(&self, a: &Alert) -> bool {
        self.reference_path(a)
            .inspect_err(|e| tracing::warn!(alert = %a.id, error = %e, "reference image lookup failed"))
            .is_ok_and(|p| p.is_some())
    }

    /// The template must still belong to the alert's list and subject (ids are never reused;
    /// this also guards stores migrated after an id was reused) and retention must not have
    /// deleted the file.
    fn reference_path(&self, a: &Alert) -> Result<Option<PathBuf>> {
        // The read connection: raising alerts holds the writer while it saves a crop.
        let owner = lists::template_owner(lock(&self.reads).conn(), a.template_id)?;
        if owner.as_ref().is_none_or(|(list, subject)| *list != a.list || *subject != a.subject) {
            return Ok(None);
        }
        let path = self.media.reference_path(a.template_id);
        Ok(path.exists().then_some(path))
    }

    /// Replaces an alert's crop with a better view of the same pass (a tracked camera's later,
    /// larger or sharper face), while the alert is under review and retention keeps its crop.
    /// The alert's row and events are unchanged: the crop is what officers look at.
    pub fn improve_crop(&self, id: &str, frame: &RgbImage, bbox: [f32; 4]) -> Result<bool> {
        let a = lock(&self.reads).get(id)?;
        if !a.has_crop || !matches!(a.status, Status::Open | Status::Confirmed) {
            return Ok(false);
        }
        let jpeg = media::face_jpeg(frame, bbox)?;
        self.media.save_crop(id, &jpeg)?;
        Ok(true)
    }

    /// Deletes the crops older than their list's retention (`days` by list); their ids.
    pub fn expire_crops(&self, days: &[(String, u32)], now_ms: i64) -> Result<Vec<String>> {
        let expired = lock(&self.writer).expire_crops(days, now_ms)?;
        for id in &expired {
            Media::delete(&self.media.crop_path(id));
        }
        Ok(expired)
    }
}

/// A face image that retention or a race removed is not found; any other failure is an error.
fn read_image(path: &std::path::Path, what: impl FnOnce() -> String) -> Result<Vec<u8>> {
    match Media::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound(what())),
        Err(e) => Err(Error::io(path, e)),
    }
}
