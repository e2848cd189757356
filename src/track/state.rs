//! One track's state: its motion, its counts, its last detection, its appearance.

use crate::vision::detect::Detection;

use super::appearance::Appearance;
use super::kalman::Motion;
use super::{TrackId, TrackInfo};

/// A box coordinate beyond this many pixels is not a camera's: the detection is ignored.
const MAX_COORD: f32 = 1.0e6;
/// Boxes narrower or lower than this (px) are ignored.
const MIN_BOX: f32 = 1.0;
/// Consecutive misses a tentative track survives: one, so that a single missed detection does not
/// restart a face that is just appearing.
pub(super) const TENTATIVE_MISSES: u32 = 1;

/// A valid detection in the filter's terms.
#[derive(Debug, Clone, Copy)]
pub(super) struct Measured {
    pub(super) index: usize,
    pub(super) cx: f64,
    pub(super) cy: f64,
    pub(super) side: f64,
    /// width / height
    pub(super) aspect: f64,
    pub(super) score: f32,
}

impl Measured {
    /// `None` for boxes no camera makes: non-finite, under [`MIN_BOX`], beyond [`MAX_COORD`].
    pub(super) fn of(index: usize, d: &Detection) -> Option<Self> {
        let [x, y, w, h] = d.bbox;
        let finite = d.bbox.iter().all(|v| v.is_finite() && v.abs() <= MAX_COORD) && d.score.is_finite();
        if !finite || w < MIN_BOX || h < MIN_BOX {
            return None;
        }
        let (x, y, w, h) = (f64::from(x), f64::from(y), f64::from(w), f64::from(h));
        Some(Self { index, cx: x + w / 2.0, cy: y + h / 2.0, side: (w * h).sqrt(), aspect: w / h, score: d.score })
    }

    pub(super) fn z(&self) -> [f64; 3] {
        [self.cx, self.cy, self.side]
    }
}

#[derive(Debug, Clone)]
pub(super) struct Track {
    pub(super) id: TrackId,
    pub(super) motion: Motion,
    /// The time `motion` is at.
    pub(super) state_ms: i64,
    pub(super) last: Measured,
    pub(super) hits: u32,
    pub(super) age: u32,
    pub(super) missed: u32,
    pub(super) confirmed: bool,
    pub(super) first_ms: i64,
    pub(super) last_seen_ms: i64,
    pub(super) appearance: Appearance,
    /// The track as it was before this frame's detection, to take that detection back out.
    pub(super) before_hit: Option<Undo>,
}

/// What a detection changed in a track.
#[derive(Debug, Clone, Copy)]
pub(super) struct Undo {
    motion: Motion,
    last: Measured,
    hits: u32,
    missed: u32,
    confirmed: bool,
    last_seen_ms: i64,
}

impl Track {
    pub(super) fn start(id: TrackId, m: Measured, at_ms: i64, min_hits: u32) -> Self {
        Self {
            id,
            motion: Motion::start(m.z()),
            state_ms: at_ms,
            last: m,
            hits: 1,
            age: 1,
            missed: 0,
            confirmed: min_hits <= 1,
            first_ms: at_ms,
            last_seen_ms: at_ms,
            appearance: Appearance::default(),
            before_hit: None,
        }
    }

    pub(super) fn predict(&mut self, at_ms: i64) {
        let dt_ms = at_ms.saturating_sub(self.state_ms).max(0);
        self.motion.predict(dt_ms as f64 / 1000.0);
        self.state_ms = at_ms;
        self.age = self.age.saturating_add(1);
        self.before_hit = None;
    }

    /// How far a detection is from the prediction: the centre distance in face sides (the
    /// prediction's own uncertainty added to the side, so a track just started or coasting looks
    /// wider), plus the size change, weighted double: a face grows slowly at walking pace, while
    /// two people's faces differ.
    pub(super) fn cost(&self, m: &Measured) -> f64 {
        let [cx, cy, s] = self.motion.state();
        let scale = 0.5 * (s + m.side) + self.motion.centre_std();
        (m.cx - cx).hypot(m.cy - cy) / scale + 2.0 * (m.side / s).ln().abs()
    }

    /// Continues the track with `m`; true when this confirmed it.
    pub(super) fn hit(&mut self, m: Measured, min_hits: u32) -> bool {
        self.before_hit = Some(Undo {
            motion: self.motion,
            last: self.last,
            hits: self.hits,
            missed: self.missed,
            confirmed: self.confirmed,
            last_seen_ms: self.last_seen_ms,
        });
        self.motion.update(m.z());
        self.last = m;
        self.hits = self.hits.saturating_add(1);
        self.missed = 0;
        self.last_seen_ms = self.state_ms;
        let confirms = !self.confirmed && self.hits >= min_hits;
        self.confirmed |= confirms;
        confirms
    }

    /// Missed too many frames in a row: tentative after [`TENTATIVE_MISSES`], confirmed after
    /// `max_age`.
    pub(super) fn expired(&self, max_age: u32) -> bool {
        self.missed > if self.confirmed { max_age } else { TENTATIVE_MISSES }
    }

    /// Takes this frame's detection back out: the track missed this frame.
    pub(super) fn unhit(&mut self) {
        if let Some(u) = self.before_hit.take() {
            (self.motion, self.last, self.hits, self.confirmed, self.last_seen_ms) =
                (u.motion, u.last, u.hits, u.confirmed, u.last_seen_ms);
            self.missed = u.missed.saturating_add(1);
        }
    }

    pub(super) fn info(&self) -> TrackInfo {
        let [cx, cy, s] = self.motion.state();
        let root = self.last.aspect.sqrt();
        let (w, h) = (s * root, s / root);
        TrackInfo {
            id: self.id,
            bbox: [(cx - w / 2.0) as f32, (cy - h / 2.0) as f32, w as f32, h as f32],
            hits: self.hits,
            age: self.age,
            missed: self.missed,
            confirmed: self.confirmed,
            embeddings: self.appearance.count(),
            first_ms: self.first_ms,
            last_seen_ms: self.last_seen_ms,
        }
    }
}
