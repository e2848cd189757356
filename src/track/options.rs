//! What the tracker can be told, checked once.

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct TrackerOptions {
    /// Detections scoring at least this are confident: matched first, and may start tracks.
    pub high: f32,
    /// Detections from `low` to `high` only continue tracks (those the confident ones left);
    /// below `low` they are ignored.
    pub low: f32,
    /// Detections a track needs to be confirmed.
    pub min_hits: u32,
    /// Consecutive frames without a detection a confirmed track survives (short occlusions).
    pub max_age: u32,
    /// And the longest time without one, in ms (a stalled camera's next frame starts afresh).
    pub max_lost_ms: i64,
    /// Gate: the most a detection may differ from a track's prediction and still continue it:
    /// centre distance in face sides (plus the prediction's uncertainty) + 2 |ln(size ratio)|.
    pub max_distance: f32,
    /// Live tracks at most.
    pub max_tracks: usize,
    /// Detections per frame considered at most (the best scored).
    pub max_detections: usize,
    /// An embedding whose cosine with its track's mean is below this is another person's: its
    /// detection leaves the track and starts one of its own.
    pub split_below: f32,
}

impl Default for TrackerOptions {
    fn default() -> Self {
        Self {
            high: 0.6,
            low: 0.3,
            min_hits: 3,
            max_age: 10,
            max_lost_ms: 2_000,
            // 0.8 broke tracks where a detector's box changed size from one frame to the next
            // (partly hidden faces): 56 ID switches on three clips against 17 (BENCHMARKS, "Video").
            max_distance: 1.2,
            max_tracks: 256,
            max_detections: 128,
            split_below: 0.5,
        }
    }
}

impl TrackerOptions {
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Config(format!("tracker: {what}")));
        if !(0.0..=1.0).contains(&self.low) || !(self.low..=1.0).contains(&self.high) {
            return bad("need 0 <= low <= high <= 1");
        }
        if self.min_hits == 0 {
            return bad("min_hits must be at least 1");
        }
        if !(1..=3_600_000).contains(&self.max_lost_ms) {
            return bad("max_lost_ms must be 1..=3600000");
        }
        if !(self.max_distance > 0.0 && self.max_distance <= 100.0) {
            return bad("max_distance must be in (0, 100]");
        }
        // The assignment is cubic in these.
        if !(1..=1024).contains(&self.max_tracks) || !(1..=1024).contains(&self.max_detections) {
            return bad("max_tracks and max_detections must be 1..=1024");
        }
        if !(-1.0..=1.0).contains(&self.split_below) {
            return bad("split_below must be in [-1, 1]");
        }
        Ok(())
    }
}
