//! The checkpoint core that the HTTP API is a thin layer over: a frame's faces are matched
//! against the watch lists, policies decide which matches become alerts, and alerts are stored
//! with their crop and announced to live streams. Every method here may block (SQLite, FAISS,
//! files): the API calls them on tokio's blocking pool.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::alert::{self, Alert, Alerts, Decision, NewAlert, Raised};
use crate::audit::{self, Actor};
use crate::auth::{NewToken, Principal, Role, TokenInfo, Tokens};
use crate::clock;
use crate::config::ServiceConfig;
use crate::enroll::{self, Examined, quality_json};
use crate::error::{Error, Result};
use crate::events::{self, kind, outbox};
use crate::inference::{Analysis, Inference};
use crate::media::{self, Media};
use crate::metrics::{Gauges, Metrics, Stage};
use crate::outbox_gauges::{OutboxGaugeReader, OutboxGauges};
use crate::pipeline::Face;
use crate::token_cache::TokenCache;
use crate::watchlist::Watchlist;
use crate::watchlist::flusher::Flusher;
use crate::watchlist::live::Live;
use crate::watchlist::policy::Policy;
use crate::watchlist::store::{self, ListRow, SubjectInfo};

/// A change to an alert, as sent to live streams.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    /// The outbox's event type: `alert.created`, `alert.reviewed` or `alert.verified`
    /// (see [`kind`]), so that the live stream and NATS speak one vocabulary.
    pub kind: &'static str,
    pub alert: Alert,
    /// Whether the alert's reference image may be shown (looked up when announced, so that
    /// live streams never touch the store on the async runtime).
    pub has_reference: bool,
}

/// What happened to one candidate above its list's threshold.
#[derive(Debug, Clone, Serialize)]
pub struct MatchOutcome {
    pub list: String,
    pub subject: String,
    pub name: Option<String>,
    pub score: f32,
    pub threshold: f32,
    /// `alert` (new alert), `cooldown` (recent alert reused) or `below_policy` (face too small
    /// or too poor for this list's policy: no alert).
    pub outcome: &'static str,
    pub alert_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FaceReport {
    pub bbox: [f32; 4],
    pub score: f32,
    pub quality: Value,
    /// `match`, `no_match` or `rejected` (not usable for matching).
    pub status: &'static str,
    pub rejections: Vec<String>,
    pub matches: Vec<MatchOutcome>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FrameReport {
    pub camera: String,
    pub captured_at: String,
    pub faces: Vec<FaceReport>,
    /// Faces beyond `max_faces_per_frame` (the smallest), not analysed.
    pub faces_skipped: usize,
    /// Alerts created by this frame.
    pub alerts: Vec<String>,
}

pub use crate::enroll::{EnrollReport, ImageVerdict};

#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub models_loaded: bool,
    pub index_loaded: bool,
    /// From the last background write probe ([`Checkpoint::probe_store`]), if recent.
    pub store_writable: bool,
    pub provider: &'static str,
}

/// A store write probe older than this no longer counts as proof that the store is writable.
const STORE_PROBE_STALE_MS: i64 = 30_000;

pub struct Checkpoint {
    pub config: ServiceConfig,
    pub inference: Inference,
    pub metrics: Arc<Metrics>,
    pub media: Media,
    /// The writer side: enrollments, removals and list changes take turns here.
    watchlist: Mutex<Watchlist>,
    /// What frames are matched against; never waits for the writer's store or disk work.
    matcher: Arc<Live>,
    /// Persists changed indexes off the request path.
    flusher: Flusher,
    alerts: Mutex<Alerts>,
    /// A connection of its own for officers' and the relay's reads (alert pages, outbox pages):
    /// their scans never hold the lock that frames and reviews write under.
    reads: Mutex<Alerts>,
    /// The store's token table: only token changes (admin) and cache reloads take this lock.
    tokens: Mutex<Tokens>,
    /// What authenticates requests (see [`TokenCache`]).
    pub token_cache: TokenCache,
    events: broadcast::Sender<AlertEvent>,
    outbox_gauges: OutboxGaugeReader,
    /// The last store write probe: its result and when it ran (0 = never).
    store_ok: AtomicBool,
    store_checked_ms: AtomicI64,
    /// Woken whenever an event is written, so the publisher sends it at once.
    pub outbox_notify: Arc<Notify>,
    models: Value,
    pub db_path: PathBuf,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a store lock leaves SQLite consistent (transactions roll back).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn validate_camera(camera: &str) -> Result<()> {
    let ok = !camera.is_empty()
        && camera.len() <= 64
        && camera.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(Error::BadRequest(format!("camera {camera:?}: 1-64 of A-Z a-z 0-9 - _ ."))) }
}

impl Checkpoint {
    /// Loads the models, the store and the indexes; fails early with a clear error.
    pub fn open(config: ServiceConfig) -> Result<Self> {
        let metrics = Arc::new(Metrics::default());
        let inference = Inference::start(&config.models_dir(), &config.inference_options(), metrics.clone())?;
        let spec = inference.embedder_spec();
        let watchlist =
            Watchlist::open(&config.data_dir, &config.index_factory, &spec.name, spec.embedding_size as u32)?;
        let matcher = watchlist.live();
        let flusher = Flusher::spawn(matcher.clone())?;
        let db_path = config.data_dir.join("facewatch.db");
        let m = inference.models();
        let models = json!({
            "detector": {"name": m.detector.name, "sha256": m.detector.sha256},
            "embedder": {"name": m.embedder.name, "sha256": m.embedder.sha256},
        });
        let tokens = Tokens::open(&db_path)?;
        let core = Self {
            alerts: Mutex::new(Alerts::open(&db_path)?),
            reads: Mutex::new(Alerts::open(&db_path)?),
            token_cache: TokenCache::new(tokens.active()?),
            tokens: Mutex::new(tokens),
            media: Media::open(&config.data_dir)?,
            watchlist: Mutex::new(watchlist),
            matcher,
            flusher,
            events: broadcast::channel(config.sse_buffer).0,
            outbox_gauges: OutboxGaugeReader::new(db_path.clone()),
            store_ok: AtomicBool::new(false),
            store_checked_ms: AtomicI64::new(0),
            outbox_notify: Arc::new(Notify::new()),
            inference,
            metrics,
            models,
            db_path,
            config,
        };
        // Files a crash left behind are found at start-up, not only at the first sweep.
        if let Err(e) = core.sweep_orphans(clock::now_ms()) {
            tracing::error!(error = %e, "orphaned face images: start-up sweep failed");
        }
        core.probe_store();
        Ok(core)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<AlertEvent> {
        self.events.subscribe()
    }

    fn announce(&self, kind: &'static str, alert: &Alert) {
        // No subscriber is fine: the alert is in the store either way.
        let has_reference = self.has_reference(alert);
        let _ = self.events.send(AlertEvent { kind, alert: alert.clone(), has_reference });
    }

    /// From memory: no store access, no lock but the cache's read lock (see [`TokenCache`]).
    pub fn authenticate(&self, token: &str) -> Result<Principal> {
        self.token_cache.authenticate(token)
    }

    // ---- frames -------------------------------------------------------------------------

    /// Matches every embedded face of a frame; matches that pass the list's policy and are not
    /// within its cooldown become alerts. Nothing is written for faces that match nothing.
    pub fn match_frame(&self, camera: &str, captured_ms: i64, a: Analysis) -> Result<FrameReport> {
        let t = Instant::now();
        // Series only for cameras bound to a token: a caller cannot add series at will.
        self.metrics.frames.inc(if self.token_cache.knows_camera(camera) { camera } else { "other" });
        self.metrics.faces.fetch_add(a.faces.len() as u64, Ordering::Relaxed);
        let mut per_face = Vec::with_capacity(a.faces.len());
        {
            let wl = &self.matcher;
            for f in &a.faces {
                let found = match &f.embedding {
                    Some(e) => wl.matches(e, 1)?,
                    None => Vec::new(),
                };
                let with_policy: Vec<_> =
                    found.into_iter().filter_map(|c| wl.list(&c.list).ok().map(|row| (c, row.policy))).collect();
                per_face.push(with_policy);
            }
        }
        self.metrics.stage(Stage::Match).observe(t.elapsed());
        let mut faces = Vec::with_capacity(a.faces.len());
        let mut created = Vec::new();
        for (f, found) in a.faces.iter().zip(per_face) {
            let mut matches = Vec::new();
            for (c, policy) in found {
                self.metrics.matches.fetch_add(1, Ordering::Relaxed);
                let mut m = MatchOutcome {
                    list: c.list.clone(),
                    subject: c.subject.clone(),
                    name: c.name.clone(),
                    score: c.score,
                    threshold: c.threshold,
                    outcome: "below_policy",
                    alert_id: None,
                };
                if f.quality.face_px >= policy.min_face_px && f.quality.overall() >= policy.min_quality {
                    // On capture times, not arrival: a camera may send its buffer late.
                    let cooldown_ms = policy.cooldown_secs as i64 * 1000;
                    let new = NewAlert {
                        site: self.config.site.clone(),
                        camera: camera.to_string(),
                        captured_ms,
                        list: c.list.clone(),
                        subject: c.subject.clone(),
                        subject_name: c.name.clone(),
                        template_id: c.template_id,
                        score: c.score,
                        threshold: c.threshold,
                        severity: policy.severity.as_str().to_string(),
                        bbox: f.detection.bbox,
                        quality: quality_json(f),
                        models: self.models.clone(),
                        retention_days: policy.retention_days,
                        has_crop: false,
                        shared_crop: None,
                    };
                    match self.raise(new, cooldown_ms, &a, f, policy.share_crops)? {
                        Raised::Reused(id) => {
                            self.metrics.suppressed.fetch_add(1, Ordering::Relaxed);
                            (m.outcome, m.alert_id) = ("cooldown", Some(id));
                        }
                        Raised::Created(alert) => {
                            created.push(alert.id.clone());
                            (m.outcome, m.alert_id) = ("alert", Some(alert.id));
                        }
                    }
                }
                matches.push(m);
            }
            let status = if !f.accepted() {
                "rejected"
            } else if matches.is_empty() {
                "no_match"
            } else {
                "match"
            };
            faces.push(FaceReport {
                bbox: f.detection.bbox,
                score: f.detection.score,
                quality: quality_json(f),
                status,
                rejections: f.rejections.iter().map(|r| r.to_string()).collect(),
                matches,
            });
        }
        Ok(FrameReport {
            camera: camera.to_string(),
            captured_at: clock::rfc3339(captured_ms),
            faces,
            faces_skipped: a.faces_skipped,
            alerts: created,
        })
    }

    /// Raises an alert for a match unless one for the same subject and camera captured within
    /// `cooldown_ms` of this frame is still under review (then the sighting is that alert's). The crop is encoded before
    /// the store is locked; checking, writing the crop and inserting the row happen under one
    /// transaction (see [`Alerts::raise`]). A full disk still raises the alert, without its crop.
    fn raise(&self, mut new: NewAlert, cooldown_ms: i64, a: &Analysis, f: &Face, share_crop: bool) -> Result<Raised> {
        use base64::Engine as _;
        // Encoded only for a new alert (most sightings of a lingering traveller are reused).
        let save = |id: &str, new: &mut NewAlert| {
            let jpeg = media::face_jpeg(&a.image, f.detection.bbox);
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
        let raised = lock(&self.alerts).raise(&mut new, cooldown_ms, save, cleanup)?;
        if let Raised::Created(alert) = &raised {
            self.metrics.alerts.fetch_add(1, Ordering::Relaxed);
            tracing::info!(alert = %alert.id, camera = %alert.camera, list = %alert.list, subject = %alert.subject,
                score = alert.score, "alert raised");
            self.announce(kind::ALERT_CREATED, alert);
            self.outbox_notify.notify_one();
        }
        Ok(raised)
    }

    // ---- alerts -------------------------------------------------------------------------

    pub fn alert(&self, id: &str) -> Result<Alert> {
        lock(&self.reads).get(id)
    }

    /// [`Checkpoint::reference`] as a yes or no (a failed lookup is logged and shows none).
    pub fn has_reference(&self, a: &Alert) -> bool {
        self.reference(a)
            .inspect_err(|e| tracing::warn!(alert = %a.id, error = %e, "reference image lookup failed"))
            .is_ok_and(|p| p.is_some())
    }

    /// The reference image an alert was raised against, while it exists: the template must
    /// still belong to the alert's list and subject (ids are never reused; this also guards
    /// stores migrated after an id was reused) and retention must not have deleted the file.
    pub fn reference(&self, a: &Alert) -> Result<Option<PathBuf>> {
        // The read connection: raising alerts holds the write one while it saves a crop.
        let owner = store::template_owner(lock(&self.reads).conn(), a.template_id)?;
        if owner.as_ref().is_none_or(|(list, subject)| *list != a.list || *subject != a.subject) {
            return Ok(None);
        }
        let path = self.media.reference_path(a.template_id);
        Ok(path.exists().then_some(path))
    }

    pub fn alerts(&self, f: &alert::Filter) -> Result<Vec<Alert>> {
        lock(&self.reads).list(f)
    }

    pub fn review(&self, id: &str, by: &Principal, decision: Decision, note: Option<&str>) -> Result<Alert> {
        let alert = lock(&self.alerts).review(id, by, decision, note)?;
        self.metrics.reviews.inc(match decision {
            Decision::Confirm => "confirm",
            Decision::Dismiss => "dismiss",
        });
        self.announce(kind::ALERT_REVIEWED, &alert);
        if alert.status == alert::Status::Verified {
            // As in the outbox: every review, then the second confirmation's verification.
            self.announce(kind::ALERT_VERIFIED, &alert);
        }
        self.outbox_notify.notify_one();
        Ok(alert)
    }

    // ---- watch lists --------------------------------------------------------------------

    pub fn lists(&self) -> Result<Vec<Value>> {
        let wl = lock(&self.watchlist);
        let summaries = wl.summaries()?;
        Ok(wl
            .lists()
            .into_iter()
            .map(|row| {
                let s = summaries.iter().find(|s| s.name == row.name);
                json!({
                    "name": row.name,
                    "policy": row.policy,
                    "subjects": s.map(|s| s.subjects).unwrap_or(0),
                    "templates": s.map(|s| s.templates).unwrap_or(0),
                })
            })
            .collect())
    }

    pub fn list(&self, name: &str) -> Result<Value> {
        self.lists()?.into_iter().find(|l| l["name"] == name).ok_or_else(|| Error::UnknownList(name.to_string()))
    }

    /// Creates a list; `Conflict` if it exists.
    pub fn create_list(&self, name: &str, policy: Option<&Value>, by: &Actor) -> Result<Value> {
        let base = Policy::with_threshold(self.inference.embedder_spec().default_threshold);
        let policy = match policy {
            Some(p) => base.patched(p)?,
            None => base,
        };
        let (_, created) = lock(&self.watchlist).create_list(name, &policy, by)?;
        if !created {
            return Err(Error::Conflict(format!("watch list {name} exists")));
        }
        self.list(name)
    }

    pub fn delete_list(&self, name: &str, by: &Actor) -> Result<usize> {
        let ids = lock(&self.watchlist).delete_list(name, by)?;
        self.media.delete_references(&ids);
        self.outbox_notify.notify_one();
        Ok(ids.len())
    }

    pub fn policy(&self, list: &str) -> Result<Policy> {
        Ok(lock(&self.watchlist).list(list)?.policy)
    }

    /// Applies a (partial) policy; audited with old and new values.
    pub fn set_policy(&self, list: &str, patch: &Value, by: &Actor) -> Result<Policy> {
        let mut wl = lock(&self.watchlist);
        let new = wl.list(list)?.policy.patched(patch)?;
        let policy = wl.set_policy(list, &new, by)?.1;
        self.outbox_notify.notify_one();
        Ok(policy)
    }

    pub fn subjects(&self, list: &str) -> Result<Vec<SubjectInfo>> {
        lock(&self.watchlist).subjects(list)
    }

    pub fn subject(&self, list: &str, subject: &str) -> Result<SubjectInfo> {
        lock(&self.watchlist).subject(list, subject)
    }

    pub fn list_row(&self, list: &str) -> Result<ListRow> {
        lock(&self.watchlist).list(list)
    }

    /// Deletes a subject: templates leave the store and the index, reference images the disk.
    pub fn delete_subject(&self, list: &str, subject: &str, by: &Actor) -> Result<usize> {
        let ids = lock(&self.watchlist).remove(list, subject, by)?;
        self.flusher.wake();
        self.media.delete_references(&ids);
        self.outbox_notify.notify_one();
        Ok(ids.len())
    }

    /// Enrolls the accepted photos of a subject; every photo gets a verdict. `EnrollmentRefused`
    /// when no photo is usable.
    pub fn enroll(
        &self,
        list: &str,
        subject: &str,
        name: Option<&str>,
        photos: Vec<(String, Result<Analysis>)>,
        by: &Actor,
    ) -> Result<EnrollReport> {
        let examined = photos.iter().map(|(image, res)| {
            let x = res.as_ref().map_err(|e| e.to_string()).map(|a| Examined {
                image: &a.image,
                face: a.faces.first(),
                refused: a.refused.as_ref(),
            });
            (image.clone(), x)
        });
        let verdicts = enroll::assess("api", examined)
            .store(&self.media, |t| lock(&self.watchlist).enroll(list, subject, name, t, by))?;
        self.flusher.wake();
        let ids = verdicts.iter().filter(|v| v.template_id.is_some()).count();
        Ok(EnrollReport { list: list.to_string(), subject: subject.to_string(), templates: ids, images: verdicts })
    }

    // ---- tokens and audit ---------------------------------------------------------------

    pub fn create_token(
        &self,
        name: &str,
        role: Role,
        principal: Option<&str>,
        cameras: &[String],
        by: &Actor,
    ) -> Result<NewToken> {
        // Under the token lock, so a concurrent reload cannot drop the new token from the cache.
        let mut tokens = lock(&self.tokens);
        let new = tokens.create(name, role, principal, cameras, by)?;
        let p = Principal {
            token_id: new.id,
            name: new.name.clone(),
            role,
            principal: new.principal.clone(),
            cameras: new.cameras.clone(),
        };
        self.token_cache.insert(&new.token, p);
        Ok(new)
    }

    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        lock(&self.tokens).list()
    }

    /// Revokes a token: it stops authenticating at once and its live streams end.
    pub fn revoke_token(&self, id: i64, by: &Actor) -> Result<()> {
        let mut tokens = lock(&self.tokens);
        tokens.revoke(id, by)?;
        self.token_cache.revoke(id);
        Ok(())
    }

    /// Reloads the token cache from the store (picks up `facewatch token` commands run while
    /// the service runs).
    pub fn reload_tokens(&self) -> Result<()> {
        let tokens = lock(&self.tokens);
        self.token_cache.replace(tokens.active()?);
        Ok(())
    }

    /// A page of the audit log, read on a connection of its own (no shared lock).
    pub fn audit(&self, after: i64, limit: usize) -> Result<Vec<audit::Entry>> {
        audit::entries(&crate::db::connect(&self.db_path)?, after, limit)
    }

    /// Checks the whole chain: a full scan, on a connection of its own (no shared lock).
    pub fn verify_audit(&self) -> Result<audit::Verification> {
        audit::verify(&crate::db::connect(&self.db_path)?)
    }

    // ---- retention, health, metrics ------------------------------------------------------

    /// Deletes alert crops and reference images older than their list's retention.
    pub fn sweep(&self, now_ms: i64) -> Result<(usize, usize)> {
        let lists = lock(&self.watchlist).lists();
        let days: Vec<(String, u32)> = lists.iter().map(|l| (l.name.clone(), l.policy.retention_days)).collect();
        let expired = lock(&self.alerts).expire_crops(&days, now_ms)?;
        for id in &expired {
            Media::delete(&self.media.crop_path(id));
        }
        let mut refs = 0;
        for l in &lists {
            let ages = lock(&self.watchlist).store().template_ages(l.id)?;
            let cutoff_s = now_ms / 1000 - l.policy.retention_days as i64 * 86_400;
            let old: Vec<i64> =
                ages.into_iter().filter(|(_, created_s)| *created_s < cutoff_s).map(|(id, _)| id).collect();
            refs += self.media.delete_references(&old);
        }
        if !expired.is_empty() || refs > 0 {
            tracing::info!(crops = expired.len(), references = refs, "retention: face images deleted");
        }
        self.sweep_outbox(&days, now_ms)?;
        self.sweep_orphans(now_ms)?;
        Ok((expired.len(), refs))
    }

    /// Face crops inside outbox rows (waiting or parked) follow their list's retention, like
    /// the crop files; old delivered and parked events go after `events_retention_days`.
    fn sweep_outbox(&self, days: &[(String, u32)], now_ms: i64) -> Result<()> {
        let a = lock(&self.alerts);
        let conn = a.conn();
        // A deleted list's alerts keep the retention stored with them.
        let mut stored = conn.prepare_cached("SELECT retention_days FROM alerts WHERE id = ?1")?;
        let stripped = outbox::strip_expired_crops(conn, now_ms, |list, alert_id| {
            days.iter()
                .find(|(l, _)| l == list)
                .map(|(_, d)| *d)
                .or_else(|| stored.query_row([alert_id], |r| r.get(0)).ok())
        })?;
        let cutoff = now_ms - self.config.events_retention_days as i64 * 86_400_000;
        let purged = outbox::purge(conn, cutoff, self.config.sink().is_none())?;
        if stripped > 0 || purged > 0 {
            tracing::info!(crops = stripped, events = purged, "retention: outbox crops stripped, old events deleted");
        }
        Ok(())
    }

    /// Deletes face images that no record names and that are older than `media::ORPHAN_GRACE`
    /// (a crash between writing a crop and inserting its alert, between deleting a template or
    /// expiring a crop and deleting its file, or in the middle of a write).
    fn sweep_orphans(&self, now_ms: i64) -> Result<media::Orphans> {
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

    /// Checks that the store takes a write lock, on a connection of its own, and records the
    /// result for [`Checkpoint::readiness`] (run in the background, never per request).
    pub fn probe_store(&self) {
        let res = crate::db::connect(&self.db_path).and_then(|c| Ok(c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?));
        if let Err(e) = &res {
            tracing::warn!(error = %e, "store write probe failed");
        }
        self.store_ok.store(res.is_ok(), Ordering::Relaxed);
        self.store_checked_ms.store(clock::now_ms(), Ordering::Relaxed);
    }

    /// From state only (no store access, no lock wait): cheap enough for the async runtime.
    pub fn readiness(&self) -> Readiness {
        let models_loaded = self.inference.alive();
        // Not `lock()`: readiness must not wait behind an enrollment or a rebuild. The indexes
        // are loaded at start; a panic while they were being changed poisons the lock.
        let index_loaded = !self.watchlist.is_poisoned();
        let checked = self.store_checked_ms.load(Ordering::Relaxed);
        let store_writable = self.store_ok.load(Ordering::Relaxed) && clock::now_ms() - checked < STORE_PROBE_STALE_MS;
        Readiness {
            ready: models_loaded && index_loaded && store_writable,
            models_loaded,
            index_loaded,
            store_writable,
            provider: self.inference.provider,
        }
    }

    /// The outbox gauges, read off the store locks (see [`OutboxGaugeReader`]).
    pub async fn outbox_gauges(&self) -> OutboxGauges {
        self.outbox_gauges.read().await
    }

    /// The Prometheus text from counters and the given outbox gauges (no store access).
    pub fn render_metrics(&self, outbox: OutboxGauges) -> String {
        let (ingest_queue, embed_queue) = self.inference.queue_depths();
        self.metrics.render(&Gauges {
            ingest_queue,
            embed_queue,
            sse_clients: self.events.receiver_count(),
            outbox_depth: outbox.depth,
            outbox_oldest_s: outbox.oldest_ms as f64 / 1000.0,
            outbox_parked: outbox.parked,
        })
    }

    /// Events after `after` in outbox order, as they are (or will be) sent, with delivery state.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<Value>> {
        let rows = outbox::after(lock(&self.reads).conn(), after, limit)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let state = json!({"delivered": r.delivered, "parked_reason": r.parked_reason, "attempts": r.attempts});
                match events::envelope(&r, &self.config.site) {
                    Ok(env) => json!({"event": env, "outbox": state, "seq": r.seq}),
                    Err(reason) => json!({"event": null, "id": r.id, "error": reason, "outbox": state, "seq": r.seq}),
                }
            })
            .collect())
    }

    /// Stops the workers after the queued frames and persists the indexes (blocking).
    pub fn shutdown(&self) {
        self.inference.shutdown();
        self.flusher.stop();
        if let Err(e) = lock(&self.watchlist).flush() {
            tracing::error!(error = %e, "flushing the watch-list indexes at shutdown");
        }
    }
}
