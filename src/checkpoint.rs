//! The checkpoint core that the HTTP API is a thin layer over: a frame's faces are matched
//! against the watch lists, policies decide which matches become alerts, and alerts are stored
//! with their crop and announced to live streams. Every method here may block (SQLite, FAISS,
//! files): the API calls them on tokio's blocking pool.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::alert::{self, Alert, Alerts, Decision, NewAlert};
use crate::audit::{self, Actor};
use crate::auth::{NewToken, Principal, Role, TokenInfo, Tokens};
use crate::clock;
use crate::config::ServiceConfig;
use crate::error::{Error, Result};
use crate::events::{self, outbox};
use crate::inference::{Analysis, Inference};
use crate::media::{self, Media};
use crate::metrics::{Gauges, Metrics, Stage};
use crate::pipeline::Face;
use crate::vision::quality::Rejection;
use crate::watchlist::Watchlist;
use crate::watchlist::policy::Policy;
use crate::watchlist::store::{ListRow, NewTemplate, SubjectInfo};

/// A change to an alert, as sent to live streams.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    /// `alert.created` or `alert.updated`.
    pub kind: &'static str,
    pub alert: Alert,
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

/// The verdict on one enrollment photo.
#[derive(Debug, Clone, Serialize)]
pub struct ImageVerdict {
    pub image: String,
    pub accepted: bool,
    pub reasons: Vec<String>,
    pub quality: Option<Value>,
    pub template_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnrollReport {
    pub list: String,
    pub subject: String,
    pub templates: usize,
    pub images: Vec<ImageVerdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub models_loaded: bool,
    pub index_loaded: bool,
    pub store_writable: bool,
    pub provider: &'static str,
}

pub struct Checkpoint {
    pub config: ServiceConfig,
    pub inference: Inference,
    pub metrics: Arc<Metrics>,
    pub media: Media,
    watchlist: Mutex<Watchlist>,
    alerts: Mutex<Alerts>,
    tokens: Mutex<Tokens>,
    events: broadcast::Sender<AlertEvent>,
    /// Woken whenever an event is written, so the publisher sends it at once.
    pub outbox_notify: Arc<Notify>,
    models: Value,
    pub db_path: PathBuf,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a store lock leaves SQLite consistent (transactions roll back).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn quality_json(f: &Face) -> Value {
    let mut q = serde_json::to_value(f.quality).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut q {
        m.insert("overall".into(), json!(f.quality.overall()));
    }
    q
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
        let db_path = config.data_dir.join("facewatch.db");
        let m = &inference.manifest;
        let models = json!({
            "detector": {"name": m.detector.name, "sha256": m.detector.sha256},
            "embedder": {"name": m.embedder.name, "sha256": m.embedder.sha256},
        });
        Ok(Self {
            alerts: Mutex::new(Alerts::open(&db_path)?),
            tokens: Mutex::new(Tokens::open(&db_path)?),
            media: Media::open(&config.data_dir)?,
            watchlist: Mutex::new(watchlist),
            events: broadcast::channel(1024).0,
            outbox_notify: Arc::new(Notify::new()),
            inference,
            metrics,
            models,
            db_path,
            config,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<AlertEvent> {
        self.events.subscribe()
    }

    fn announce(&self, kind: &'static str, alert: &Alert) {
        // No subscriber is fine: the alert is in the store either way.
        let _ = self.events.send(AlertEvent { kind, alert: alert.clone() });
    }

    pub fn authenticate(&self, token: &str) -> Result<Principal> {
        lock(&self.tokens).authenticate(token)
    }

    // ---- frames -------------------------------------------------------------------------

    /// Matches every embedded face of a frame; matches that pass the list's policy and are not
    /// within its cooldown become alerts. Nothing is written for faces that match nothing.
    pub fn match_frame(&self, camera: &str, captured_ms: i64, a: Analysis) -> Result<FrameReport> {
        let t = Instant::now();
        self.metrics.frames.inc(camera);
        self.metrics.faces.fetch_add(a.faces.len() as u64, Ordering::Relaxed);
        let mut per_face = Vec::with_capacity(a.faces.len());
        {
            let mut wl = lock(&self.watchlist);
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
                    let since = clock::now_ms() - policy.cooldown_secs as i64 * 1000;
                    let recent = lock(&self.alerts).recent(&c.list, &c.subject, camera, since)?;
                    if let Some(id) = recent {
                        self.metrics.suppressed.fetch_add(1, Ordering::Relaxed);
                        (m.outcome, m.alert_id) = ("cooldown", Some(id));
                    } else {
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
                        let alert = self.raise(new, &a, f, policy.share_crops)?;
                        created.push(alert.id.clone());
                        (m.outcome, m.alert_id) = ("alert", Some(alert.id));
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

    fn raise(&self, mut new: NewAlert, a: &Analysis, f: &Face, share_crop: bool) -> Result<Alert> {
        use base64::Engine as _;
        let id = uuid::Uuid::now_v7().to_string();
        // The crop goes to disk before the row: an alert never points at a missing file.
        // A full disk still raises the alert, without its crop.
        let jpeg = media::face_jpeg(&a.image, f.detection.bbox);
        match jpeg.as_ref().map_err(|e| Error::Runtime(e.to_string())).and_then(|j| self.media.save_crop(&id, j)) {
            Ok(_) => new.has_crop = true,
            Err(e) => tracing::error!(error = %e, alert = %id, "alert crop not saved"),
        }
        if share_crop {
            new.shared_crop = jpeg.ok().map(|j| base64::engine::general_purpose::STANDARD.encode(j));
        }
        let alert = lock(&self.alerts).create(&id, &new).inspect_err(|_| {
            Media::delete(&self.media.crop_path(&id));
        })?;
        self.metrics.alerts.fetch_add(1, Ordering::Relaxed);
        tracing::info!(alert = %alert.id, camera = %alert.camera, list = %alert.list, subject = %alert.subject,
            score = alert.score, "alert raised");
        self.announce("alert.created", &alert);
        self.outbox_notify.notify_one();
        Ok(alert)
    }

    // ---- alerts -------------------------------------------------------------------------

    pub fn alert(&self, id: &str) -> Result<Alert> {
        lock(&self.alerts).get(id)
    }

    pub fn alerts(&self, f: &alert::Filter) -> Result<Vec<Alert>> {
        lock(&self.alerts).list(f)
    }

    pub fn review(&self, id: &str, by: &Principal, decision: Decision, note: Option<&str>) -> Result<Alert> {
        let alert = lock(&self.alerts).review(id, &by.actor(), decision, note)?;
        self.metrics.reviews.inc(match decision {
            Decision::Confirm => "confirm",
            Decision::Dismiss => "dismiss",
        });
        self.announce("alert.updated", &alert);
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
        let ids = {
            let mut wl = lock(&self.watchlist);
            let ids = wl.remove(list, subject, by)?;
            wl.flush()?;
            ids
        };
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
        let mut verdicts = Vec::new();
        let mut templates = Vec::new();
        let mut kept = Vec::new();
        for (image, res) in photos {
            let v = match res {
                Err(e) => ImageVerdict {
                    image,
                    accepted: false,
                    reasons: vec![e.to_string()],
                    quality: None,
                    template_id: None,
                },
                Ok(a) => {
                    let face = a.faces.first().filter(|f| f.embedding.is_some());
                    match (face, &a.refused) {
                        (Some(f), None) => {
                            let q = quality_json(f);
                            templates.push(NewTemplate {
                                embedding: f.embedding.clone().unwrap_or_default(),
                                quality: q.to_string(),
                                source: format!("api:{image}"),
                            });
                            kept.push((verdicts.len(), media::face_jpeg(&a.image, f.detection.bbox)));
                            ImageVerdict { image, accepted: true, reasons: vec![], quality: Some(q), template_id: None }
                        }
                        _ => {
                            let mut reasons: Vec<String> = a.refused.iter().map(Rejection::to_string).collect();
                            if let Some(f) = a.faces.first() {
                                reasons.extend(f.rejections.iter().map(|r| r.to_string()));
                            }
                            let quality = a.faces.first().map(quality_json);
                            ImageVerdict { image, accepted: false, reasons, quality, template_id: None }
                        }
                    }
                }
            };
            verdicts.push(v);
        }
        if templates.is_empty() {
            let why: Vec<String> = verdicts.iter().map(|v| format!("{}: {}", v.image, v.reasons.join(", "))).collect();
            return Err(Error::EnrollmentRefused(format!("no usable photo ({})", why.join("; "))));
        }
        let ids = {
            let mut wl = lock(&self.watchlist);
            let ids = wl.enroll(list, subject, name, templates, by)?;
            wl.flush()?;
            ids
        };
        for ((vi, jpeg), id) in kept.into_iter().zip(&ids) {
            verdicts[vi].template_id = Some(*id);
            if let Err(e) = jpeg.and_then(|j| self.media.save_reference(*id, &j)) {
                tracing::warn!(template = id, error = %e, "reference image not saved");
            }
        }
        Ok(EnrollReport {
            list: list.to_string(),
            subject: subject.to_string(),
            templates: ids.len(),
            images: verdicts,
        })
    }

    // ---- tokens and audit ---------------------------------------------------------------

    pub fn create_token(&self, name: &str, role: Role, by: &Actor) -> Result<NewToken> {
        lock(&self.tokens).create(name, role, by)
    }

    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        lock(&self.tokens).list()
    }

    pub fn revoke_token(&self, id: i64, by: &Actor) -> Result<()> {
        lock(&self.tokens).revoke(id, by)
    }

    pub fn audit(&self, after: i64, limit: usize) -> Result<Vec<audit::Entry>> {
        audit::entries(lock(&self.tokens).conn(), after, limit)
    }

    pub fn verify_audit(&self) -> Result<audit::Verification> {
        audit::verify(lock(&self.tokens).conn())
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
        let cutoff = now_ms - self.config.events_retention_days as i64 * 86_400_000;
        let purged = outbox::purge(lock(&self.alerts).conn(), cutoff, self.config.sink().is_none())?;
        if purged > 0 {
            tracing::info!(events = purged, "retention: old events deleted from the outbox");
        }
        Ok((expired.len(), refs))
    }

    pub fn readiness(&self) -> Readiness {
        let models_loaded = self.inference.alive();
        let index_loaded = self.watchlist.lock().is_ok();
        let store_writable =
            crate::db::connect(&self.db_path).and_then(|c| Ok(c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?)).is_ok();
        Readiness {
            ready: models_loaded && index_loaded && store_writable,
            models_loaded,
            index_loaded,
            store_writable,
            provider: self.inference.provider,
        }
    }

    pub fn render_metrics(&self) -> String {
        let (ingest_queue, embed_queue) = self.inference.queue_depths();
        let (depth, oldest, parked) = {
            let a = lock(&self.alerts);
            let (d, o) = outbox::depth(a.conn()).unwrap_or((-1, None));
            (d, o, outbox::parked(a.conn()).unwrap_or(-1))
        };
        self.metrics.render(&Gauges {
            ingest_queue,
            embed_queue,
            sse_clients: self.events.receiver_count(),
            outbox_depth: depth,
            outbox_oldest_s: oldest.unwrap_or(0) as f64 / 1000.0,
            outbox_parked: parked,
        })
    }

    /// Events after `after` in outbox order, as they are (or will be) sent, with delivery state.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<Value>> {
        let rows = outbox::after(lock(&self.alerts).conn(), after, limit)?;
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
        if let Err(e) = lock(&self.watchlist).flush() {
            tracing::error!(error = %e, "flushing the watch-list indexes at shutdown");
        }
    }
}
