//! The track rule: decide on a person's pass, not on a frame. A pass collects the embeddings of
//! its best faces (only those that can change the decision are embedded, as DeepStream runs its
//! secondary models: when the track is confirmed and passes the quality gate, again only when the
//! face grew clearly or its quality beat the best so far, with a cap per track, and not at all
//! once the decision is made). The faces are fused into one embedding (the quality-weighted mean
//! of their unit vectors, renormalised) and each list is searched with it. A match becomes an
//! alert when the fused score reaches the list's `track_threshold` and the frames agree: at
//! least `min_agreeing` embedded faces of the pass have that subject as their own best, or one
//! face alone scores `strong_margin` above the list's frame threshold.
//!
//! One stranger crossing a hall yields ~25 frames; under the frame rule any one of them above
//! threshold is an alert. Here a stranger must look like the same listed person in several
//! independent faces and in their mean, and costs at most `max_embeddings` model calls.

use std::collections::{HashMap, HashSet};

use crate::decide::Verdict;
use crate::error::Result;
use crate::matching::PolicyMatch;
use crate::pipeline::Face;
use crate::track::{Observed, TrackId, Tracker, TrackerOptions};
use crate::vision::embed::normalized;

/// The rule's settings (configured in `[tracking]`, see `config::TrackingSection::rule`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackRuleOptions {
    /// Embedded faces of a pass that must have the subject as their own best match.
    pub min_agreeing: u32,
    /// One face scoring this much above the list's frame threshold decides alone.
    pub strong_margin: f32,
    /// Embeddings per track at most (a stranger costs no more than this).
    pub max_embeddings: u32,
    /// Embed again when the face's side grew by this factor over the best embedded so far.
    pub grow: f32,
    /// ... or its overall quality beat the best so far by this much.
    pub quality_gain: f32,
    /// A pass of at least `min_agreeing + 1` embedded faces whose fused embedding scores this
    /// far below every list's track threshold is settled (a stranger): no more embeddings.
    pub settle_margin: f32,
}

impl Default for TrackRuleOptions {
    fn default() -> Self {
        Self {
            min_agreeing: 2,
            strong_margin: 0.02,
            max_embeddings: 6,
            grow: 1.25,
            quality_gain: 0.1,
            settle_margin: 0.05,
        }
    }
}

impl TrackRuleOptions {
    pub fn validate(&self) -> crate::Result<()> {
        let mut bad = Vec::new();
        if self.min_agreeing == 0 || self.min_agreeing > self.max_embeddings {
            bad.push(format!("min_agreeing {} must be 1..max_embeddings", self.min_agreeing));
        }
        if !(1..=64).contains(&self.max_embeddings) {
            bad.push(format!("max_embeddings {} outside 1..64", self.max_embeddings));
        }
        if !(0.0..=1.0).contains(&self.strong_margin) {
            bad.push(format!("strong_margin {} outside 0..1", self.strong_margin));
        }
        if !(self.grow >= 1.0 && self.grow <= 10.0) {
            bad.push(format!("grow {} outside 1..10", self.grow));
        }
        if !(0.0..=2.0).contains(&self.settle_margin) {
            bad.push(format!("settle_margin {} outside 0..2", self.settle_margin));
        }
        if !(0.0..=1.0).contains(&self.quality_gain) {
            bad.push(format!("quality_gain {} outside 0..1", self.quality_gain));
        }
        if bad.is_empty() { Ok(()) } else { Err(crate::Error::Config(format!("[tracking] {}", bad.join("; ")))) }
    }
}

/// One embedded face of a pass.
#[derive(Debug, Clone)]
struct Sample {
    embedding: Vec<f32>,
    weight: f32,
    /// Its own best subject per list, and the score: `(list, subject) -> score`.
    best: HashMap<String, (String, f32)>,
}

/// What a pass (one track) has shown so far.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    samples: Vec<Sample>,
    best_px: f32,
    best_quality: f32,
    /// `(list, subject)` already alerted for this pass: one alert per (track, subject).
    alerted: HashSet<(String, String)>,
    /// The face the pass's alerts show now: its side and quality.
    shown: Option<(f32, f32)>,
    /// How far the fused embedding's best match is above its list's track threshold (the
    /// largest over the lists; negative below), as of the last sample.
    headroom: Option<f32>,
}

impl Evidence {
    /// Whether embedding `face` can change this pass's decision.
    pub fn wants(&self, face: &Face, o: &TrackRuleOptions) -> bool {
        if !face.accepted() || !self.alerted.is_empty() || self.samples.len() >= o.max_embeddings as usize {
            return false;
        }
        if self.samples.is_empty() {
            return true;
        }
        let settled =
            self.samples.len() > o.min_agreeing as usize && self.headroom.is_none_or(|h| h < -o.settle_margin);
        if settled {
            return false;
        }
        let q = &face.quality;
        q.face_px >= self.best_px * o.grow || q.overall() >= self.best_quality + o.quality_gain
    }

    /// Adds an embedded face with its own best match per list.
    pub fn add(&mut self, face: &Face, embedding: Vec<f32>, own_best: &[PolicyMatch]) {
        let q = &face.quality;
        self.best_px = self.best_px.max(q.face_px);
        self.best_quality = self.best_quality.max(q.overall());
        let best = own_best
            .iter()
            .map(|m| (m.candidate.list.clone(), (m.candidate.subject.clone(), m.candidate.score)))
            .collect();
        // A face of quality 0 still counts a little: weights only rank the faces.
        self.samples.push(Sample { embedding, weight: q.overall().max(0.05), best });
    }

    pub fn embeddings(&self) -> usize {
        self.samples.len()
    }

    /// The quality-weighted mean of the samples' unit vectors, renormalised.
    pub fn fused(&self) -> Option<Vec<f32>> {
        let first = self.samples.first()?;
        let mut sum = vec![0f32; first.embedding.len()];
        for s in &self.samples {
            for (a, b) in sum.iter_mut().zip(&s.embedding) {
                *a += s.weight * b;
            }
        }
        let n = normalized(&sum);
        n.iter().all(|v| v.is_finite()).then_some(n)
    }

    /// The rule, for the fused embedding's best match `m` on one list.
    pub fn judge(&self, m: &PolicyMatch, o: &TrackRuleOptions) -> Verdict {
        let (c, p) = (&m.candidate, &m.policy);
        if c.score < p.track_threshold {
            return Verdict::BelowPolicy;
        }
        let own: Vec<f32> = self
            .samples
            .iter()
            .filter_map(|s| s.best.get(&c.list).filter(|(subject, _)| *subject == c.subject).map(|(_, score)| *score))
            .collect();
        let agreeing = own.len() as u32 >= o.min_agreeing;
        let strong = own.iter().any(|s| *s >= p.threshold + o.strong_margin);
        if (agreeing || strong) && self.best_px >= p.min_face_px && self.best_quality >= p.min_quality {
            Verdict::Raise
        } else {
            Verdict::BelowPolicy
        }
    }

    pub fn alerted(&self, list: &str, subject: &str) -> bool {
        self.alerted.contains(&(list.to_string(), subject.to_string()))
    }

    pub fn record_alert(&mut self, list: &str, subject: &str) {
        self.alerted.insert((list.to_string(), subject.to_string()));
    }

    pub fn decided(&self) -> bool {
        !self.alerted.is_empty()
    }

    /// Whether `face` shows a decided pass better than the crop its alerts carry (clearly
    /// larger or clearly better quality): then it replaces that crop.
    fn better_crop(&mut self, face: &Face, o: &TrackRuleOptions) -> bool {
        if !self.decided() || !face.accepted() {
            return false;
        }
        let (px, q) = (face.quality.face_px, face.quality.overall());
        let better = self.shown.is_none_or(|(spx, sq)| px >= spx * o.grow || q >= sq + o.quality_gain);
        if better {
            self.shown = Some((px, q));
        }
        better
    }
}

/// A match the rule passed: raise an alert for it (once per track and subject).
#[derive(Debug, Clone)]
pub struct PassDecision {
    pub track: TrackId,
    /// The face (index in the frame) the decision was made on: its crop goes with the alert.
    pub face: usize,
    pub m: PolicyMatch,
    /// Embeddings the pass took to decide.
    pub embeddings: usize,
}

/// What one frame did.
#[derive(Debug, Clone, Default)]
pub struct PassStep {
    /// For each face of the frame, in order, its track (if any).
    pub tracks: Vec<Option<TrackId>>,
    /// Faces embedded for this frame.
    pub embedded: usize,
    pub decisions: Vec<PassDecision>,
    /// Decided tracks seen better in this frame: `(track, face index)`; their alerts' crops
    /// can be replaced with this face.
    pub better_crops: Vec<(TrackId, usize)>,
    /// Tracks that ended with this frame (every track the rule kept evidence for).
    pub ended: Vec<TrackId>,
}

/// The track rule over one camera's frames, without side effects: tracking, which faces to
/// embed, fusion and judgement. The service raises its decisions (`crate::passes`); the video
/// evaluation counts them (`crate::eval`).
pub struct PassDecider {
    tracker: Tracker,
    evidence: HashMap<TrackId, Evidence>,
    rule: TrackRuleOptions,
}

impl PassDecider {
    pub fn new(tracker: TrackerOptions, rule: TrackRuleOptions) -> Result<Self> {
        rule.validate()?;
        Ok(Self { tracker: Tracker::new(tracker)?, evidence: HashMap::new(), rule })
    }

    /// One frame captured at `at_ms`, in capture order. `embed` embeds the faces it is given
    /// (or returns them as they are when they carry an embedding already); `search` is the best
    /// subject of every list for an embedding, threshold not applied.
    pub fn step(
        &mut self,
        at_ms: i64,
        faces: &[Face],
        embed: &mut dyn FnMut(Vec<Face>) -> Result<Vec<Face>>,
        search: &mut dyn FnMut(&[f32]) -> Result<Vec<PolicyMatch>>,
    ) -> Result<PassStep> {
        let dets: Vec<_> = faces.iter().map(|f| f.detection).collect();
        let updates = self.tracker.update(at_ms, &dets);
        let mut step = PassStep { tracks: updates.iter().map(|u| u.track).collect(), ..PassStep::default() };
        // The faces worth an embedding: confirmed tracks whose decision they can change.
        let mut chosen: Vec<(usize, TrackId)> = Vec::new();
        for (i, (f, u)) in faces.iter().zip(&updates).enumerate() {
            let Some(track) = u.track.filter(|_| u.confirmed) else { continue };
            if self.evidence.entry(track).or_default().wants(f, &self.rule) {
                chosen.push((i, track));
            }
        }
        for (i, (f, u)) in faces.iter().zip(&updates).enumerate() {
            if let Some(ev) = u.track.and_then(|t| self.evidence.get_mut(&t))
                && ev.better_crop(f, &self.rule)
            {
                step.better_crops.push((u.track.unwrap_or_default(), i));
            }
        }
        if !chosen.is_empty() {
            let embedded = embed(chosen.iter().map(|(i, _)| faces[*i].clone()).collect())?;
            step.embedded = embedded.iter().filter(|f| f.embedding.is_some()).count();
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
                let own = search(&e)?;
                self.evidence.entry(track).or_default().add(&f, e, &own);
                self.decide(track, i, search, &mut step)?;
                // The alerts raised now show this face.
                if let Some(ev) = self.evidence.get_mut(&track)
                    && ev.decided()
                    && ev.shown.is_none()
                {
                    ev.shown = Some((f.quality.face_px, f.quality.overall()));
                }
            }
        }
        // Ended tracks (confirmed ones are also reported by `drain_ended`, tentative ones are
        // not) are gone from the live tracks: their evidence goes, and the caller is told.
        self.tracker.drain_ended();
        let live: HashSet<TrackId> = self.tracker.tracks().map(|t| t.id).collect();
        self.evidence.retain(|id, _| {
            let keep = live.contains(id);
            if !keep {
                step.ended.push(*id);
            }
            keep
        });
        Ok(step)
    }

    fn decide(
        &mut self,
        track: TrackId,
        face: usize,
        search: &mut dyn FnMut(&[f32]) -> Result<Vec<PolicyMatch>>,
        step: &mut PassStep,
    ) -> Result<()> {
        let Some(fused) = self.evidence.get(&track).and_then(Evidence::fused) else { return Ok(()) };
        let found = search(&fused)?;
        let headroom = found.iter().map(|m| m.candidate.score - m.policy.track_threshold).reduce(f32::max);
        self.evidence.entry(track).or_default().headroom = headroom;
        for m in found {
            let ev = self.evidence.entry(track).or_default();
            if ev.alerted(&m.candidate.list, &m.candidate.subject) || ev.judge(&m, &self.rule) != Verdict::Raise {
                continue;
            }
            ev.record_alert(&m.candidate.list, &m.candidate.subject);
            step.decisions.push(PassDecision { track, face, embeddings: ev.embeddings(), m });
        }
        Ok(())
    }

    /// Live tracks now, with the box each had at the last frame.
    pub fn tracks(&self) -> impl Iterator<Item = crate::track::TrackInfo> + '_ {
        self.tracker.tracks()
    }
}
