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

pub use super::rejoin::Seen;
use super::rejoin::{LostPass, LostPasses, RejoinLimits};
use crate::decide::Verdict;
use crate::error::Result;
use crate::matching::PolicyMatch;
use crate::pipeline::Face;
use crate::track::{Observed, TrackId, Tracker, TrackerOptions};
use crate::vision::embed::{cosine, normalized};

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
    /// A new track continues a pass lost (or coasting, unseen) since before it began when its
    /// first embedding's cosine with that pass's fused embedding is at least this ...
    pub rejoin_above: f32,
    /// ... the pass was last seen at most this long before (0: never rejoin) ...
    pub rejoin_within_ms: u64,
    /// ... and this many face sides from where the new track began.
    pub rejoin_distance: f32,
}

impl Default for TrackRuleOptions {
    fn default() -> Self {
        Self {
            // 2 let four strangers in 216 passes more through at equal pass TPIR (BENCHMARKS).
            min_agreeing: 3,
            strong_margin: 0.02,
            max_embeddings: 6,
            grow: 1.25,
            quality_gain: 0.1,
            settle_margin: 0.05,
            rejoin_above: 0.95,
            rejoin_within_ms: 3_000,
            rejoin_distance: 4.0,
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
        if !(0.0..=1.0).contains(&self.rejoin_above) {
            bad.push(format!("rejoin_above {} outside 0..1", self.rejoin_above));
        }
        if self.rejoin_within_ms > 600_000 {
            bad.push(format!("rejoin_within_ms {} over 600000", self.rejoin_within_ms));
        }
        if !(self.rejoin_distance >= 0.0 && self.rejoin_distance <= 100.0) {
            bad.push(format!("rejoin_distance {} outside 0..100", self.rejoin_distance));
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

/// A pass: the id of its first track, which it keeps when a later track continues it.
pub type PassId = u64;

/// A match the rule passed: raise an alert for it (once per pass and subject).
#[derive(Debug, Clone)]
pub struct PassDecision {
    /// The pass (see [`PassId`]).
    pub track: PassId,
    /// The face (index in the frame) the decision was made on: its crop goes with the alert.
    pub face: usize,
    pub m: PolicyMatch,
    /// Embeddings the pass took to decide.
    pub embeddings: usize,
}

/// A new track that continued a pass lost before it began.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rejoined {
    pub pass: PassId,
    /// The tracker's id of the new track (reported as its own pass until now).
    pub track: TrackId,
    /// The face (index in the frame) whose embedding agreed.
    pub face: usize,
    pub cosine: f32,
    /// Where and when the pass was last seen before.
    pub from: Seen,
}

/// What one frame did.
#[derive(Debug, Clone, Default)]
pub struct PassStep {
    /// For each face of the frame, in order, its pass (if any).
    pub tracks: Vec<Option<PassId>>,
    /// Faces embedded for this frame.
    pub embedded: usize,
    pub decisions: Vec<PassDecision>,
    /// Decided passes seen better in this frame: `(pass, face index)`; their alerts' crops
    /// can be replaced with this face.
    pub better_crops: Vec<(PassId, usize)>,
    /// Tracks that continued a lost pass in this frame.
    pub rejoined: Vec<Rejoined>,
    /// Passes that ended for good with this frame (lost longer than a rejoin allows).
    pub ended: Vec<PassId>,
}

/// A live track's pass.
#[derive(Debug, Clone)]
struct Pass {
    id: PassId,
    evidence: Evidence,
    /// When this track began (a pass lost before then may be this person).
    track_first_ms: i64,
    /// Its latest detection, and the one before (restored when an embedding takes the latest
    /// out of the track).
    seen: Option<Seen>,
    seen_before: Option<Seen>,
}

impl Pass {
    fn new(id: PassId, at_ms: i64) -> Self {
        Self { id, evidence: Evidence::default(), track_first_ms: at_ms, seen: None, seen_before: None }
    }
}

/// The track rule over one camera's frames, without side effects: tracking, which faces to
/// embed, fusion, judgement, and lost passes taken up again. The service raises its decisions
/// (`crate::passes`); the video evaluation counts them (`crate::eval`).
pub struct PassDecider {
    tracker: Tracker,
    /// The pass of each live track.
    passes: HashMap<TrackId, Pass>,
    lost: LostPasses,
    rule: TrackRuleOptions,
}

impl PassDecider {
    pub fn new(tracker: TrackerOptions, rule: TrackRuleOptions) -> Result<Self> {
        rule.validate()?;
        Ok(Self { tracker: Tracker::new(tracker)?, passes: HashMap::new(), lost: LostPasses::default(), rule })
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
        let mut step = PassStep { tracks: vec![None; faces.len()], ..PassStep::default() };
        for (i, (f, u)) in faces.iter().zip(&updates).enumerate() {
            let Some(track) = u.track else { continue };
            let pass = self.passes.entry(track).or_insert_with(|| Pass::new(track, at_ms));
            pass.seen_before = pass.seen.replace(Seen { bbox: f.detection.bbox, at_ms });
            step.tracks[i] = Some(pass.id);
        }
        // The faces worth an embedding: confirmed tracks whose decision they can change.
        let mut chosen: Vec<(usize, TrackId)> = Vec::new();
        for (i, (f, u)) in faces.iter().zip(&updates).enumerate() {
            let Some(track) = u.track.filter(|_| u.confirmed) else { continue };
            if self.passes.get(&track).is_some_and(|p| p.evidence.wants(f, &self.rule)) {
                chosen.push((i, track));
            }
        }
        for (i, (f, u)) in faces.iter().zip(&updates).enumerate() {
            if let Some(pass) = u.track.and_then(|t| self.passes.get_mut(&t))
                && pass.evidence.better_crop(f, &self.rule)
            {
                step.better_crops.push((pass.id, i));
            }
        }
        if !chosen.is_empty() {
            let embedded = embed(chosen.iter().map(|(i, _)| faces[*i].clone()).collect())?;
            step.embedded = embedded.iter().filter(|f| f.embedding.is_some()).count();
            for ((i, track), f) in chosen.into_iter().zip(embedded) {
                let Some(e) = f.embedding.clone() else { continue };
                // Another person in this track's box starts a track of their own.
                let track = match self.tracker.observe_embedding(track, &e) {
                    Observed::Split { from, track: new } => {
                        if let Some(p) = self.passes.get_mut(&from) {
                            p.seen = p.seen_before.take();
                        }
                        let mut p = Pass::new(new, at_ms);
                        p.seen = Some(Seen { bbox: f.detection.bbox, at_ms });
                        self.passes.insert(new, p);
                        step.tracks[i] = Some(new);
                        new
                    }
                    Observed::Kept { .. } | Observed::Ignored => track,
                };
                // A track's first embedding: is it someone lost a moment ago?
                if self.passes.get(&track).is_some_and(|p| p.evidence.embeddings() == 0) {
                    self.rejoin(track, i, &e, &f.detection.bbox, &mut step);
                }
                let Some(pass) = self.passes.get_mut(&track) else { continue };
                step.tracks[i] = Some(pass.id);
                // A continued pass keeps its budget: the face that recognised it counts, no more.
                if pass.evidence.embeddings() < self.rule.max_embeddings as usize {
                    let own = search(&e)?;
                    pass.evidence.add(&f, e, &own);
                }
                self.decide(track, i, search, &mut step)?;
                // The alerts raised now show this face.
                if let Some(p) = self.passes.get_mut(&track)
                    && p.evidence.decided()
                    && p.evidence.shown.is_none()
                {
                    p.evidence.shown = Some((f.quality.face_px, f.quality.overall()));
                }
            }
        }
        self.end_passes(at_ms, &mut step);
        Ok(step)
    }

    /// Continues the best-agreeing pass lost (or unseen) since before `track` began, if any.
    fn rejoin(&mut self, track: TrackId, face: usize, e: &[f32], bbox: &[f32; 4], step: &mut PassStep) {
        let r = &self.rule;
        let limits = RejoinLimits {
            above: r.rejoin_above,
            within_ms: r.rejoin_within_ms.min(i64::MAX as u64) as i64,
            distance: r.rejoin_distance,
        };
        let Some(first_ms) = self.passes.get(&track).map(|p| p.track_first_ms) else { return };
        let lost = self.lost.best(e, bbox, first_ms, &limits);
        // A live track coasting unseen since before this one began may be the same person,
        // found again before the tracker gave up on them.
        let mut coasting: Vec<(TrackId, f32)> = self
            .passes
            .iter()
            .filter(|(t, p)| {
                **t != track
                    && p.evidence.embeddings() > 0
                    && p.seen.is_some_and(|s| s.plausible(bbox, first_ms, limits.within_ms, limits.distance))
            })
            .filter_map(|(t, p)| Some((*t, cosine(&p.evidence.fused()?, e))))
            .filter(|(_, c)| *c >= limits.above)
            .collect();
        coasting.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let (evidence, id, from, cosine) = match (lost, coasting.first()) {
            (Some((i, c)), best) if best.is_none_or(|b| c >= b.1) => {
                let Some(p) = self.lost.take(i) else { return };
                (p.evidence, p.pass, p.seen, c)
            }
            (_, Some(&(old, c))) => {
                let Some(p) = self.passes.remove(&old) else { return };
                // Its person is here now: the old track must not take another face's box.
                self.tracker.end(old);
                let Some(seen) = p.seen else { return };
                (p.evidence, p.id, seen, c)
            }
            _ => return,
        };
        let Some(pass) = self.passes.get_mut(&track) else { return };
        pass.id = id;
        pass.evidence = evidence;
        tracing::debug!(pass = id, track, cosine, "a new track continues a lost pass");
        step.rejoined.push(Rejoined { pass: id, track, face, cosine, from });
        for t in step.tracks.iter_mut().filter(|t| **t == Some(track)) {
            *t = Some(id);
        }
    }

    /// Passes whose track ended wait for a rejoin (if they have evidence to be recognised by);
    /// those lost too long, or never embedded, end.
    fn end_passes(&mut self, at_ms: i64, step: &mut PassStep) {
        self.tracker.drain_ended();
        let live: HashSet<TrackId> = self.tracker.tracks().map(|t| t.id).collect();
        let mut gone: Vec<TrackId> = self.passes.keys().filter(|t| !live.contains(t)).copied().collect();
        gone.sort_unstable();
        let within_ms = self.rule.rejoin_within_ms.min(i64::MAX as u64) as i64;
        for t in gone {
            let Some(p) = self.passes.remove(&t) else { continue };
            match p.seen {
                Some(seen) if within_ms > 0 && p.evidence.embeddings() > 0 => {
                    step.ended.extend(self.lost.push(LostPass { pass: p.id, evidence: p.evidence, seen }));
                }
                _ => step.ended.push(p.id),
            }
        }
        // A track that began within `within_ms` of the loss needs a few frames to be confirmed
        // and embedded: the pass waits twice as long (the rejoin itself checks the first).
        step.ended.extend(self.lost.expire(at_ms, within_ms.saturating_mul(2)));
    }

    fn decide(
        &mut self,
        track: TrackId,
        face: usize,
        search: &mut dyn FnMut(&[f32]) -> Result<Vec<PolicyMatch>>,
        step: &mut PassStep,
    ) -> Result<()> {
        let Some(pass) = self.passes.get_mut(&track) else { return Ok(()) };
        let Some(fused) = pass.evidence.fused() else { return Ok(()) };
        let found = search(&fused)?;
        let ev = &mut pass.evidence;
        ev.headroom = found.iter().map(|m| m.candidate.score - m.policy.track_threshold).reduce(f32::max);
        for m in found {
            if ev.alerted(&m.candidate.list, &m.candidate.subject) || ev.judge(&m, &self.rule) != Verdict::Raise {
                continue;
            }
            ev.record_alert(&m.candidate.list, &m.candidate.subject);
            step.decisions.push(PassDecision { track: pass.id, face, embeddings: ev.embeddings(), m });
        }
        Ok(())
    }

    /// Live tracks now, with the box each had at the last frame.
    pub fn tracks(&self) -> impl Iterator<Item = crate::track::TrackInfo> + '_ {
        self.tracker.tracks()
    }

    /// Passes waiting to be continued by a new track.
    pub fn lost_passes(&self) -> usize {
        self.lost.len()
    }
}
