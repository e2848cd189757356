//! The camera-frame use case: a frame's analysed faces are matched ([`crate::matching`]), each
//! match is judged ([`crate::decide`]), and those worth an officer's look are raised
//! ([`crate::alerts`]). Nothing is written for faces that match nothing.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::access::{Access, Action, Caller};
use crate::alerts::{Alerts, ModelIds, Raised};
use crate::clock;
use crate::decide::{Rule, Verdict};
use crate::error::{Error, Result};
use crate::inference::Analysis;
use crate::matching::Matching;
use crate::metrics::{Metrics, Stage};
use crate::vision::quality::QualityReport;

/// What happened to one match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new alert.
    Alert,
    /// An alert of the same subject at this camera, still under review, took the sighting.
    Cooldown,
    /// The face is too small or too poor for this list's policy: no alert.
    BelowPolicy,
}

/// One candidate above its list's threshold.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MatchOutcome {
    pub list: String,
    pub subject: String,
    pub name: Option<String>,
    pub score: f32,
    pub threshold: f32,
    pub outcome: Outcome,
    pub alert_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaceStatus {
    Match,
    NoMatch,
    /// Not usable for matching (see `rejections`).
    Rejected,
}

/// One face of a frame, analysed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FaceReport {
    /// `[x, y, width, height]` in frame pixels.
    pub bbox: [f32; 4],
    pub score: f32,
    pub quality: QualityReport,
    pub status: FaceStatus,
    pub rejections: Vec<String>,
    pub matches: Vec<MatchOutcome>,
    /// A tracked (push) camera's frame: the face's track, once it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub track: Option<crate::track::TrackId>,
}

/// A frame analysed (`camera_response = "full"`): every face with its quality and matches.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FrameReport {
    pub camera: String,
    /// RFC 3339.
    pub captured_at: String,
    pub faces: Vec<FaceReport>,
    /// Faces beyond `max_faces_per_frame` (the smallest), not analysed.
    pub faces_skipped: usize,
    /// Alerts created by this frame.
    pub alerts: Vec<String>,
}

/// Camera ids: 1-64 of `A-Z a-z 0-9 - _ .` (they become metric labels and NATS subjects).
pub fn validate_camera(camera: &str) -> Result<()> {
    let ok = !camera.is_empty()
        && camera.len() <= 64
        && camera.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(Error::BadRequest(format!("camera {camera:?}: 1-64 of A-Z a-z 0-9 - _ ."))) }
}

pub struct Frames {
    matching: Matching,
    rule: Box<dyn Rule>,
    alerts: Arc<Alerts>,
    access: Arc<Access>,
    metrics: Arc<Metrics>,
    site: String,
    models: ModelIds,
}

impl Frames {
    pub fn new(
        matching: Matching,
        rule: Box<dyn Rule>,
        alerts: Arc<Alerts>,
        access: Arc<Access>,
        metrics: Arc<Metrics>,
        site: String,
        models: ModelIds,
    ) -> Self {
        Self { matching, rule, alerts, access, metrics, site, models }
    }

    /// Whether `who` may post frames as `camera` (checked before a body is read, and again by
    /// [`Frames::process`]): a camera token only as the cameras it is bound to.
    pub fn authorize(&self, who: &Caller, camera: &str) -> Result<()> {
        who.may(Action::PostFrames)?;
        validate_camera(camera)?;
        match who.principal() {
            Some(p) => p.require_camera(camera),
            None => Ok(()),
        }
    }

    /// Matches every embedded face of a frame captured at `captured_ms`; matches that the rule
    /// passes and that are not within their list's cooldown become alerts.
    pub fn process(&self, who: &Caller, camera: &str, captured_ms: i64, a: Analysis) -> Result<FrameReport> {
        self.authorize(who, camera)?;
        let t = Instant::now();
        // Series only for cameras bound to a token: a caller cannot add series at will.
        self.metrics.frames.inc(if self.access.cache.knows_camera(camera) { camera } else { "other" });
        self.metrics.faces.inc_by(a.faces.len() as u64);
        let found = self.matching.faces(&a.faces)?;
        self.metrics.stage(Stage::Match).observe(t.elapsed());
        let mut faces = Vec::with_capacity(a.faces.len());
        let mut created = Vec::new();
        for (f, found) in a.faces.iter().zip(found) {
            let mut matches = Vec::new();
            for m in found {
                self.metrics.matches.inc();
                let c = &m.candidate;
                let mut out = MatchOutcome {
                    list: c.list.clone(),
                    subject: c.subject.clone(),
                    name: c.name.clone(),
                    score: c.score,
                    threshold: c.threshold,
                    outcome: Outcome::BelowPolicy,
                    alert_id: None,
                };
                if self.rule.judge(f, &m) == Verdict::Raise {
                    let new = m.sighting(&self.site, camera, captured_ms, f, &self.models, c.threshold);
                    // Cooldown on capture times, not arrival: a camera may send its buffer late.
                    let cooldown_ms = m.policy.cooldown_secs as i64 * 1000;
                    match self.alerts.raise(new, cooldown_ms, &a.image, m.policy.share_crops)? {
                        Raised::Reused(id) => (out.outcome, out.alert_id) = (Outcome::Cooldown, Some(id)),
                        Raised::Created(alert) => {
                            created.push(alert.id.clone());
                            (out.outcome, out.alert_id) = (Outcome::Alert, Some(alert.id));
                        }
                    }
                }
                matches.push(out);
            }
            let status = if !f.accepted() {
                FaceStatus::Rejected
            } else if matches.is_empty() {
                FaceStatus::NoMatch
            } else {
                FaceStatus::Match
            };
            faces.push(FaceReport {
                bbox: f.detection.bbox,
                score: f.detection.score,
                quality: f.quality.into(),
                status,
                rejections: f.rejections.iter().map(|r| r.to_string()).collect(),
                matches,
                track: None,
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
}
