//! A tracked camera: every face is followed across frames ([`crate::track`]) and decided per
//! person-pass by the track rule ([`crate::decide::track`]): one alert per (track, subject) as
//! soon as the pass is convincing, embedding only the faces that can change the decision. The
//! frame rule ([`crate::frames`]) stays for cameras that post single frames.
//!
//! One [`Passes`] per camera, fed that camera's analyses in capture order (see
//! `inference::Feed`); it blocks (embedding, SQLite), so it runs on a thread of its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::alerts::{Alerts, ModelIds, NewAlert, Raised};
use crate::decide::Verdict;
use crate::decide::track::{Evidence, TrackRuleOptions};
use crate::error::Result;
use crate::inference::Analysis;
use crate::matching::Matching;
use crate::metrics::Metrics;
use crate::pipeline::Face;
use crate::track::{Observed, TrackId, Tracker, TrackerOptions};

/// An alert a pass raised (or joined, within its list's cooldown).
#[derive(Debug, Clone, PartialEq)]
pub struct PassAlert {
    pub track: TrackId,
    pub list: String,
    pub subject: String,
    pub alert_id: String,
    /// A new alert (false: an alert of the same subject at this camera, still under review,
    /// took the pass).
    pub created: bool,
    pub score: f32,
}

/// What one frame did.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// For each face of the frame, in order, its track (if any).
    pub tracks: Vec<Option<TrackId>>,
    /// Faces embedded in this frame.
    pub embedded: usize,
    pub alerts: Vec<PassAlert>,
}

/// Embeds faces chosen after detection (the engine's embedder, or a test's).
pub type Embedder<'a> = dyn FnMut(Vec<Face>) -> Result<Vec<Face>> + 'a;

pub struct Passes {
    camera: String,
    tracker: Tracker,
    evidence: HashMap<TrackId, Evidence>,
    rule: TrackRuleOptions,
    matching: Matching,
    alerts: Arc<Alerts>,
    metrics: Arc<Metrics>,
    site: String,
    models: ModelIds,
}

impl Passes {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        camera: &str,
        tracker: TrackerOptions,
        rule: TrackRuleOptions,
        matching: Matching,
        alerts: Arc<Alerts>,
        metrics: Arc<Metrics>,
        site: &str,
        models: ModelIds,
    ) -> Result<Self> {
        rule.validate()?;
        Ok(Self {
            camera: camera.to_string(),
            tracker: Tracker::new(tracker)?,
            evidence: HashMap::new(),
            rule,
            matching,
            alerts,
            metrics,
            site: site.to_string(),
            models,
        })
    }

    /// One frame captured at `at_ms`, analysed without embeddings (`Mode::Track`).
    pub fn step(&mut self, at_ms: i64, a: &Analysis, embed: &mut Embedder<'_>) -> Result<Step> {
        let dets: Vec<_> = a.faces.iter().map(|f| f.detection).collect();
        let updates = self.tracker.update(at_ms, &dets);
        let mut step = Step { tracks: updates.iter().map(|u| u.track).collect(), ..Step::default() };
        // The faces worth an embedding: confirmed tracks whose decision they can change.
        let mut chosen: Vec<(usize, TrackId)> = Vec::new();
        for (i, (f, u)) in a.faces.iter().zip(&updates).enumerate() {
            let Some(track) = u.track.filter(|_| u.confirmed) else { continue };
            if self.evidence.entry(track).or_default().wants(f, &self.rule) {
                chosen.push((i, track));
            }
        }
        if !chosen.is_empty() {
            let faces: Vec<Face> = chosen.iter().map(|(i, _)| a.faces[*i].clone()).collect();
            let embedded = embed(faces)?;
            step.embedded = embedded.iter().filter(|f| f.embedding.is_some()).count();
            self.metrics.faces.fetch_add(step.embedded as u64, Ordering::Relaxed);
            for ((i, track), f) in chosen.into_iter().zip(embedded) {
                let Some(e) = f.embedding.clone() else { continue };
                // Another person in this track's box starts a track of their own.
                let track = match self.tracker.observe_embedding(track, &e) {
                    Observed::Split { track: new, .. } => {
                        step.tracks[i] = Some(new);
                        new
                    }
                    Observed::Kept { .. } | Observed::Ignored => track,
                };
                let own = self.matching.best(&e)?;
                let ev = self.evidence.entry(track).or_default();
                ev.add(&f, e, &own);
                self.decide(track, at_ms, &a.faces[i], &a.image, &mut step)?;
            }
        }
        for ended in self.tracker.drain_ended() {
            self.evidence.remove(&ended.id);
        }
        // Tentative tracks that ended unreported leave no evidence behind either.
        let live: std::collections::HashSet<TrackId> = self.tracker.tracks().map(|t| t.id).collect();
        self.evidence.retain(|id, _| live.contains(id));
        Ok(step)
    }

    /// Searches every list with the pass's fused embedding and raises what the rule passes.
    fn decide(
        &mut self,
        track: TrackId,
        at_ms: i64,
        face: &Face,
        image: &image::RgbImage,
        step: &mut Step,
    ) -> Result<()> {
        let Some(ev) = self.evidence.get(&track) else { return Ok(()) };
        let Some(fused) = ev.fused() else { return Ok(()) };
        for m in self.matching.best(&fused)? {
            let ev = &self.evidence[&track];
            if ev.alerted(&m.candidate.list, &m.candidate.subject).is_some()
                || ev.judge(&m, &self.rule) != Verdict::Raise
            {
                continue;
            }
            self.metrics.matches.fetch_add(1, Ordering::Relaxed);
            let (c, p) = (&m.candidate, &m.policy);
            let new = NewAlert {
                site: self.site.clone(),
                camera: self.camera.clone(),
                captured_ms: at_ms,
                list: c.list.clone(),
                subject: c.subject.clone(),
                subject_name: c.name.clone(),
                template_id: c.template_id,
                score: c.score,
                threshold: p.track_threshold,
                severity: p.severity,
                bbox: face.detection.bbox,
                quality: face.quality.into(),
                models: self.models.clone(),
                retention_days: p.retention_days,
                has_crop: false,
                shared_crop: None,
            };
            let (alert_id, created) =
                match self.alerts.raise(new, p.cooldown_secs as i64 * 1000, image, p.share_crops)? {
                    Raised::Created(a) => (a.id, true),
                    Raised::Reused(id) => (id, false),
                };
            tracing::info!(camera = %self.camera, track, list = %c.list, subject = %c.subject, score = c.score,
                embeddings = ev.embeddings(), created, "pass decided");
            self.evidence.entry(track).or_default().record_alert(&c.list, &c.subject, alert_id.clone());
            step.alerts.push(PassAlert {
                track,
                list: c.list.clone(),
                subject: c.subject.clone(),
                alert_id,
                created,
                score: c.score,
            });
        }
        Ok(())
    }

    /// Live tracks now.
    pub fn live_tracks(&self) -> usize {
        self.tracker.tracks().count()
    }
}
