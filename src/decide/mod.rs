//! Deciding: which matches become alerts. Today's rule judges each frame alone; the tracker's
//! rule (a person's pass across frames) plugs in beside it as another [`Rule`].

use serde::Serialize;

use crate::matching::PolicyMatch;
use crate::pipeline::Face;

/// What a rule says about one match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Worth an officer's look: raise (or join, within cooldown) an alert.
    Raise,
    /// The face is too small or too poor for this list's policy: no alert.
    BelowPolicy,
}

pub trait Rule: Send + Sync {
    fn judge(&self, face: &Face, m: &PolicyMatch) -> Verdict;
}

/// One frame alone: a match alerts when the face meets the list's size and quality minimums.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameRule;

impl Rule for FrameRule {
    fn judge(&self, face: &Face, m: &PolicyMatch) -> Verdict {
        let q = &face.quality;
        if q.face_px >= m.policy.min_face_px && q.overall() >= m.policy.min_quality {
            Verdict::Raise
        } else {
            Verdict::BelowPolicy
        }
    }
}

mod rejoin;
pub mod track;
