//! Deciding on a clip's frames: a [`VideoRule`] is fed the analysed frames in order and says
//! which alerts it raises and how many embeddings it needed. [`FrameLevel`] is today's rule
//! (any one frame above the threshold alerts, cooldown per subject at the camera); the track
//! rule plugs in beside it and is measured on the same analyses.

use std::collections::BTreeMap;

use super::replay::AnalysedFrame;
use super::video::{Emitted, EmittedAlert, Join, TrackedBox};
use crate::decide::track::{PassDecider, TrackRuleOptions};
use crate::decide::{FrameRule, Rule, Verdict};
use crate::error::Result;
use crate::matching::PolicyMatch;
use crate::pipeline::Face;
use crate::track::TrackerOptions;
use crate::watchlist::Candidate;
use crate::watchlist::index::ListIndex;
use crate::watchlist::policy::Policy;

pub trait VideoRule {
    /// A short name for the report's table.
    fn name(&self) -> String;
    /// The next frame (frames come in order): the alerts raised on it.
    fn frame(&mut self, frame: &AnalysedFrame) -> Result<Vec<EmittedAlert>>;
    /// Embeddings the rule needed so far. The harness's engine embeds every accepted face; a
    /// rule that embeds selectively counts only the faces it would have embedded.
    fn embeddings(&self) -> u64;
    /// Track ids per detection, for rules that track (ID switches are measured on them).
    fn tracks(&self) -> Option<Vec<TrackedBox>> {
        None
    }
    /// Passes a new track continued (rules that re-associate lost tracks).
    fn joins(&self) -> Vec<Join> {
        Vec::new()
    }
}

/// Runs `rule` over `frames` in order.
pub fn run(rule: &mut dyn VideoRule, frames: &[AnalysedFrame]) -> Result<Emitted> {
    let mut alerts = Vec::new();
    for f in frames {
        alerts.extend(rule.frame(f)?);
    }
    Ok(Emitted { alerts, embeddings: rule.embeddings(), tracks: rule.tracks(), joins: rule.joins() })
}

/// Today's frame rule on one camera: the best subject of the list for each embedded face; a
/// match at or above the threshold that meets the policy's size and quality minimums alerts,
/// unless the same subject alerted within `cooldown_secs` of this capture time (the service
/// then adds the sighting to that open alert).
pub struct FrameLevel<'a> {
    index: &'a mut ListIndex,
    policy: Policy,
    /// Capture time (s) of each subject's last new alert.
    last: BTreeMap<String, f64>,
    embeddings: u64,
    /// Faces detected below this are not the frame rule's (posted frames keep
    /// `[inference] detect_threshold`; the clip may be analysed lower for the track rule).
    min_detection: f32,
}

impl<'a> FrameLevel<'a> {
    pub fn new(index: &'a mut ListIndex, policy: Policy) -> Self {
        Self { index, policy, last: BTreeMap::new(), embeddings: 0, min_detection: 0.0 }
    }

    /// Only faces detected at `score` or above count, as a posted frame's would.
    pub fn with_detection_threshold(mut self, score: f32) -> Self {
        self.min_detection = score;
        self
    }
}

impl VideoRule for FrameLevel<'_> {
    fn name(&self) -> String {
        format!("frame {:.3}", self.policy.threshold)
    }

    fn frame(&mut self, frame: &AnalysedFrame) -> Result<Vec<EmittedAlert>> {
        let mut out = Vec::new();
        for face in frame.faces.iter().filter(|f| f.detection.score >= self.min_detection) {
            let Some(e) = &face.embedding else { continue };
            self.embeddings += 1;
            let Some(&(id, score)) = self.index.search(e, 1)?.first().and_then(|h| h.first()) else { continue };
            let Some(owner) = self.index.owner(id) else { continue };
            let m = PolicyMatch {
                candidate: Candidate {
                    list: "eval".into(),
                    subject: owner.subject.clone(),
                    name: None,
                    score,
                    threshold: self.policy.threshold,
                    template_id: id,
                },
                policy: self.policy.clone(),
            };
            if !m.candidate.is_match() || FrameRule.judge(face, &m) != Verdict::Raise {
                continue;
            }
            let cooldown = f64::from(self.policy.cooldown_secs);
            if self.last.get(&owner.subject).is_some_and(|&t| (frame.time - t).abs() < cooldown) {
                continue;
            }
            self.last.insert(owner.subject.clone(), frame.time);
            out.push(EmittedAlert {
                frame: frame.frame,
                subject: owner.subject.clone(),
                bbox: Some(face.detection.bbox),
                track: None,
                score,
            });
        }
        Ok(out)
    }

    fn embeddings(&self) -> u64 {
        self.embeddings
    }
}

/// The track rule on one camera ([`crate::decide::track::PassDecider`]): faces are tracked, a
/// pass embeds only the faces that can change its decision (the harness's engine embedded every
/// face; only those the rule asks for are counted), and a pass alerts once per subject when its
/// fused embedding reaches `track_threshold` and its frames agree. Cooldown per subject on
/// capture time, as the service's alerts have it.
pub struct TrackLevel<'a> {
    index: &'a mut ListIndex,
    policy: Policy,
    decider: PassDecider,
    last: BTreeMap<String, f64>,
    embeddings: u64,
    tracked: Vec<TrackedBox>,
    joins: Vec<Join>,
    /// Frame number by capture time (to place where a continued pass was last seen).
    frame_at: BTreeMap<i64, u64>,
}

impl<'a> TrackLevel<'a> {
    pub fn new(
        index: &'a mut ListIndex,
        policy: Policy,
        tracker: TrackerOptions,
        rule: TrackRuleOptions,
    ) -> Result<Self> {
        Ok(Self {
            index,
            policy,
            decider: PassDecider::new(tracker, rule)?,
            last: BTreeMap::new(),
            embeddings: 0,
            tracked: Vec::new(),
            joins: Vec::new(),
            frame_at: BTreeMap::new(),
        })
    }
}

impl VideoRule for TrackLevel<'_> {
    fn name(&self) -> String {
        format!("track {:.3}", self.policy.track_threshold)
    }

    fn frame(&mut self, frame: &AnalysedFrame) -> Result<Vec<EmittedAlert>> {
        let Self { index, policy, decider, last, embeddings, tracked, joins, frame_at } = self;
        let at_ms = (frame.time * 1000.0).round() as i64;
        frame_at.insert(at_ms, frame.frame);
        // The engine embedded every accepted face already: the rule's choice is what counts.
        let mut embed = |chosen: Vec<Face>| -> Result<Vec<Face>> {
            *embeddings += chosen.iter().filter(|f| f.embedding.is_some()).count() as u64;
            Ok(chosen)
        };
        let mut search = |e: &[f32]| -> Result<Vec<PolicyMatch>> {
            let Some(&(id, score)) = index.search(e, 1)?.first().and_then(|h| h.first()) else { return Ok(Vec::new()) };
            let Some(owner) = index.owner(id) else { return Ok(Vec::new()) };
            let candidate = Candidate {
                list: "eval".into(),
                subject: owner.subject.clone(),
                name: None,
                score,
                threshold: policy.threshold,
                template_id: id,
            };
            Ok(vec![PolicyMatch { candidate, policy: policy.clone() }])
        };
        let step = decider.step(at_ms, &frame.faces, &mut embed, &mut search)?;
        // A continued pass is one pass from its start: the new track's first frames too.
        for r in &step.rejoined {
            for t in tracked.iter_mut().filter(|t| t.track == r.track) {
                t.track = r.pass;
            }
            joins.push(Join {
                from_frame: frame_at.get(&r.from.at_ms).copied().unwrap_or(frame.frame),
                from_bbox: r.from.bbox,
                frame: frame.frame,
                bbox: frame.faces[r.face].detection.bbox,
                cosine: r.cosine,
            });
        }
        for (face, track) in frame.faces.iter().zip(&step.tracks) {
            if let Some(track) = track {
                tracked.push(TrackedBox { frame: frame.frame, bbox: face.detection.bbox, track: *track });
            }
        }
        let mut out = Vec::new();
        for d in step.decisions {
            let subject = d.m.candidate.subject.clone();
            let cooldown = f64::from(policy.cooldown_secs);
            if last.get(&subject).is_some_and(|&t| (frame.time - t).abs() < cooldown) {
                continue;
            }
            last.insert(subject.clone(), frame.time);
            out.push(EmittedAlert {
                frame: frame.frame,
                subject,
                bbox: Some(frame.faces[d.face].detection.bbox),
                track: Some(d.track),
                score: d.m.candidate.score,
            });
        }
        Ok(out)
    }

    fn embeddings(&self) -> u64 {
        self.embeddings
    }

    fn tracks(&self) -> Option<Vec<TrackedBox>> {
        Some(self.tracked.clone())
    }

    fn joins(&self) -> Vec<Join> {
        self.joins.clone()
    }
}
