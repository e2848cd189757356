//! Re-association of a lost pass: a person hidden by someone crossing in front of them, or who
//! turned away for a second, comes back as a new track. Without this, the new track is a new
//! pass: another chance for a stranger to look like someone listed, another alert for someone
//! already alerted, more embeddings. So a pass outlives its track for a while, and a new track
//! whose first embedding agrees strongly with it continues it.
//!
//! Two people are never joined: a candidate must have been out of sight when the new track
//! began (two boxes seen at the same time are two people), be recent, near where it was last
//! seen, and its fused embedding must agree with the new face at `rejoin_above`, a cosine two
//! different people's faces do not reach on the clips (BENCHMARKS.md, "Video").

use std::collections::VecDeque;

use super::track::Evidence;
use crate::vision::embed::cosine;

/// Lost passes kept per camera at most (the oldest go first): bounds memory whatever the
/// crowd; each holds at most `max_embeddings` vectors.
pub const MAX_LOST: usize = 64;

/// Where and when a pass's person was last seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    pub bbox: [f32; 4],
    pub at_ms: i64,
}

impl Seen {
    /// Whether a face at `bbox`, first seen at `first_ms`, can be this person come back:
    /// after they were last seen, within `within_ms`, and within `distance` face sides.
    pub fn plausible(&self, bbox: &[f32; 4], first_ms: i64, within_ms: i64, distance: f32) -> bool {
        let gap = first_ms.saturating_sub(self.at_ms);
        if gap <= 0 || gap > within_ms {
            return false;
        }
        let centre = |b: &[f32; 4]| (b[0] + b[2] / 2.0, b[1] + b[3] / 2.0);
        let ((ax, ay), (bx, by)) = (centre(&self.bbox), centre(bbox));
        let side = self.bbox[2].max(self.bbox[3]).max(bbox[2]).max(bbox[3]).max(1.0);
        (ax - bx).hypot(ay - by) / side <= distance
    }
}

/// A pass whose track ended, waiting to be continued.
#[derive(Debug, Clone)]
pub struct LostPass {
    pub pass: u64,
    pub evidence: Evidence,
    pub seen: Seen,
}

/// Recently lost passes, bounded by count ([`MAX_LOST`]) and by age.
#[derive(Debug, Default)]
pub struct LostPasses {
    lost: VecDeque<LostPass>,
}

impl LostPasses {
    /// Keeps `p`; returns the pass that made room for it, if any (it has ended for good).
    pub fn push(&mut self, p: LostPass) -> Option<u64> {
        let gone = (self.lost.len() >= MAX_LOST).then(|| self.lost.pop_front()).flatten().map(|p| p.pass);
        self.lost.push_back(p);
        gone
    }

    /// Drops the passes lost for over `within_ms` at `now_ms`: they have ended for good.
    pub fn expire(&mut self, now_ms: i64, within_ms: i64) -> Vec<u64> {
        let mut gone = Vec::new();
        self.lost.retain(|p| {
            let keep = now_ms.saturating_sub(p.seen.at_ms) <= within_ms;
            if !keep {
                gone.push(p.pass);
            }
            keep
        });
        gone
    }

    /// The best-agreeing lost pass for a new track's first embedding, if it agrees at `above`
    /// and the new face is where and when that person could be: `(index, cosine)`.
    pub fn best(&self, embedding: &[f32], bbox: &[f32; 4], first_ms: i64, o: &RejoinLimits) -> Option<(usize, f32)> {
        self.lost
            .iter()
            .enumerate()
            .filter(|(_, p)| p.seen.plausible(bbox, first_ms, o.within_ms, o.distance))
            .filter_map(|(i, p)| Some((i, cosine(&p.evidence.fused()?, embedding))))
            .filter(|(_, c)| *c >= o.above)
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    pub fn take(&mut self, i: usize) -> Option<LostPass> {
        self.lost.remove(i)
    }

    pub fn len(&self) -> usize {
        self.lost.len()
    }
}

/// When a new track may continue a lost pass (from `TrackRuleOptions`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RejoinLimits {
    pub above: f32,
    pub within_ms: i64,
    pub distance: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_only_after_recently_and_nearby() {
        let seen = Seen { bbox: [100.0, 100.0, 40.0, 40.0], at_ms: 1_000 };
        // 2 face sides away, 1 s later.
        assert!(seen.plausible(&[180.0, 100.0, 40.0, 40.0], 2_000, 3_000, 3.0));
        // Seen at the same time as the lost one: another person.
        assert!(!seen.plausible(&[180.0, 100.0, 40.0, 40.0], 1_000, 3_000, 3.0));
        assert!(!seen.plausible(&[180.0, 100.0, 40.0, 40.0], 900, 3_000, 3.0));
        // Too late, too far.
        assert!(!seen.plausible(&[180.0, 100.0, 40.0, 40.0], 4_500, 3_000, 3.0));
        assert!(!seen.plausible(&[300.0, 100.0, 40.0, 40.0], 2_000, 3_000, 3.0));
    }

    #[test]
    fn bounded_by_count_and_age() {
        let mut l = LostPasses::default();
        let lost = |pass, at_ms| LostPass {
            pass,
            evidence: Evidence::default(),
            seen: Seen { bbox: [0.0, 0.0, 10.0, 10.0], at_ms },
        };
        for i in 0..MAX_LOST as u64 {
            assert_eq!(l.push(lost(i, i as i64)), None);
        }
        assert_eq!(l.push(lost(999, 100)), Some(0), "the oldest makes room");
        assert_eq!(l.len(), MAX_LOST);
        let gone = l.expire(100 + 50, 100);
        assert_eq!(gone, (1..50).collect::<Vec<u64>>());
        assert_eq!(l.len(), MAX_LOST - 49);
    }
}
