//! A tracked camera: every face is followed across frames ([`crate::track`]) and decided per
//! person-pass by the track rule ([`crate::decide::track`]): one alert per (pass, subject) as
//! soon as the pass is convincing, embedding only the faces that can change the decision; a
//! person lost for a moment and found again as a new track continues their pass. The
//! frame rule ([`crate::frames`]) stays for cameras that post single frames.
//!
//! One [`Passes`] per camera, fed that camera's analyses in capture order (see
//! `inference::Feed`); it blocks (embedding, SQLite), so it runs on a thread of its own.

use std::sync::Arc;

use crate::alerts::{Alerts, ModelIds, Raised};
use crate::decide::track::{PassDecider, Rejoined, TrackRuleOptions};
use crate::error::Result;
use crate::inference::Analysis;
use crate::matching::Matching;
use crate::metrics::Metrics;
use crate::pipeline::Face;
use crate::track::{TrackId, TrackerOptions};

/// An alert a pass raised (or joined, within its list's cooldown).
#[derive(Debug, Clone, PartialEq)]
pub struct PassAlert {
    /// The pass (the id of its first track).
    pub track: TrackId,
    /// The face of the frame (its index) the pass was decided on.
    pub face: usize,
    pub list: String,
    pub subject: String,
    pub name: Option<String>,
    /// The list's track threshold the fused embedding reached.
    pub threshold: f32,
    pub alert_id: String,
    /// A new alert (false: an alert of the same subject at this camera, still under review,
    /// took the pass).
    pub created: bool,
    pub score: f32,
}

/// What one frame did.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// For each face of the frame, in order, its pass (if any): the id of the pass's first track.
    pub tracks: Vec<Option<TrackId>>,
    /// Faces embedded for this frame.
    pub embedded: usize,
    pub alerts: Vec<PassAlert>,
    /// New tracks that continued a lost pass in this frame.
    pub rejoined: Vec<Rejoined>,
}

pub struct Passes {
    camera: String,
    /// The alerts each pass raised (their crops follow the pass's best face), until it ends.
    raised: std::collections::HashMap<TrackId, Vec<String>>,
    decider: PassDecider,
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
        Ok(Self {
            camera: camera.to_string(),
            raised: std::collections::HashMap::new(),
            decider: PassDecider::new(tracker, rule)?,
            matching,
            alerts,
            metrics,
            site: site.to_string(),
            models,
        })
    }

    /// One frame captured at `at_ms`, analysed without embeddings (`Mode::Track`); `embed`
    /// embeds the faces the rule asks for.
    pub fn step(
        &mut self,
        at_ms: i64,
        a: &Analysis,
        embed: &mut dyn FnMut(Vec<Face>) -> Result<Vec<Face>>,
    ) -> Result<Step> {
        let matching = &self.matching;
        let s = self.decider.step(at_ms, &a.faces, embed, &mut |e| matching.best(e))?;
        self.metrics.faces.inc_by(a.faces.len() as u64);
        let mut step = Step { tracks: s.tracks, embedded: s.embedded, alerts: Vec::new(), rejoined: s.rejoined };
        for r in &step.rejoined {
            tracing::info!(camera = %self.camera, pass = r.pass, track = r.track, cosine = r.cosine,
                "a new track continues a lost pass");
        }
        for d in s.decisions {
            self.metrics.matches.inc();
            let (c, p, face) = (&d.m.candidate, &d.m.policy, &a.faces[d.face]);
            let new = d.m.sighting(&self.site, &self.camera, at_ms, face, &self.models, p.track_threshold);
            let raised = self.alerts.raise(new, p.cooldown_secs as i64 * 1000, &a.image, p.share_crops)?;
            let (alert_id, created) = match raised {
                Raised::Created(a) => (a.id, true),
                Raised::Reused(id) => (id, false),
            };
            tracing::info!(camera = %self.camera, track = d.track, list = %c.list, subject = %c.subject,
                score = c.score, embeddings = d.embeddings, created, "pass decided");
            if created {
                self.raised.entry(d.track).or_default().push(alert_id.clone());
            }
            step.alerts.push(PassAlert {
                track: d.track,
                face: d.face,
                list: c.list.clone(),
                subject: c.subject.clone(),
                name: c.name.clone(),
                threshold: p.track_threshold,
                alert_id,
                created,
                score: c.score,
            });
        }
        // A decided pass seen better later: its new alerts show the better face.
        for (track, i) in s.better_crops {
            for id in self.raised.get(&track).into_iter().flatten() {
                if let Err(e) = self.alerts.improve_crop(id, &a.image, a.faces[i].detection.bbox) {
                    tracing::warn!(alert = %id, error = %e, "better crop not saved");
                }
            }
        }
        for t in &s.ended {
            self.raised.remove(t);
        }
        Ok(step)
    }

    /// Live tracks now.
    pub fn live_tracks(&self) -> usize {
        self.decider.tracks().count()
    }
}
