//! Multi-face tracker for one camera: which detections across frames are one person's pass, so
//! that the decision can be made per person instead of per frame.
//!
//! Why it is built this way:
//! - **ByteTrack's two stages.** Confident detections (`score >= high`) are matched to the tracks
//!   first; the weak ones (`low <= score < high`) then to the tracks left. A face half hidden or
//!   turning away scores low, and dropping it would end its track; letting weak boxes start
//!   tracks would turn clutter into people. Only confident detections start tracks.
//! - **Centre distance in face sides, not IoU.** A 24 px face that moves 12 px between frames
//!   (ordinary at 5 fps) has an IoU of 0.33 with its last box, at 20 px 0.09: no better than a
//!   neighbour's box. Distance divided by the face's side (plus the log of the size change) means
//!   the same far from the camera as near it.
//! - **A Kalman filter over real time** (constant velocity on centre and side, `kalman.rs`) predicts
//!   each track to the frame's capture time, so dropped or bunched frames do not break tracks.
//! - **Optimal gated assignment** (`assign.rs`): a greedy match steals a crossing face's box.
//! - **Tracks end rather than fuse.** A track counts (is confirmed) after `min_hits` detections,
//!   so a lone false detection never does; it coasts through up to `max_age` missed frames and
//!   `max_lost_ms`, then ends: the same person seen later is a new track (telling passes apart is
//!   the embedder's job). When an embedding disagrees with its track's
//!   ([`Tracker::observe_embedding`]), that box was another person: it leaves the track, which
//!   goes on without it, and starts its own.
//! - **Bounded.** At most `max_tracks` live tracks and the `max_detections` best detections per
//!   frame: a flood of boxes costs bounded memory and time (the assignment is cubic).

mod appearance;
mod assign;
mod kalman;
mod options;
#[cfg(test)]
mod sim;
mod state;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::VecDeque;

use crate::error::Result;
use crate::vision::detect::Detection;

pub use options::TrackerOptions;
use state::{Measured, Track};

pub type TrackId = u64;

/// What became of one input detection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackUpdate {
    /// The track it continues or started; `None` when it was ignored: an invalid box, a score
    /// below `low`, a weak detection no track wanted, beyond `max_detections`, or no room.
    pub track: Option<TrackId>,
    /// The track is confirmed (after this detection).
    pub confirmed: bool,
    /// This detection started the track.
    pub new: bool,
    /// This detection confirmed the track.
    pub just_confirmed: bool,
}

/// A live track, as of the last frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackInfo {
    pub id: TrackId,
    /// Where the filter puts the face at the last frame's time: x, y, width, height.
    pub bbox: [f32; 4],
    /// Detections it has had.
    pub hits: u32,
    /// Frames since it started, this one included.
    pub age: u32,
    /// Consecutive frames without a detection.
    pub missed: u32,
    pub confirmed: bool,
    /// Embeddings observed (see [`Tracker::observe_embedding`]).
    pub embeddings: u32,
    pub first_ms: i64,
    pub last_seen_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Missed too long: the person left or stayed hidden.
    Lost,
    /// Made room for a new track (`max_tracks`).
    Evicted,
}

/// A confirmed track that ended (tentative ones end unreported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub id: TrackId,
    pub reason: EndReason,
    pub hits: u32,
}

/// What [`Tracker::observe_embedding`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Agrees with the track (or is its first): added to its mean.
    Kept { track: TrackId },
    /// Another person: the detection was taken out of `from` (which goes on as if it had missed
    /// this frame, or ends if that was too many misses) and started `track`, tentative, with this
    /// embedding as its first.
    Split { from: TrackId, track: TrackId },
    /// No live track has this id, it had no detection in the latest frame, or the vector is
    /// unusable (empty, longer than 1024, non-finite, zero, another length than the track's):
    /// nothing changed.
    Ignored,
}

/// Tracks the faces of one camera; feed it every frame's detections in capture order.
#[derive(Debug)]
pub struct Tracker {
    options: TrackerOptions,
    tracks: Vec<Track>,
    next_id: TrackId,
    last_ms: Option<i64>,
    ended: VecDeque<Ended>,
}

impl Tracker {
    pub fn new(options: TrackerOptions) -> Result<Self> {
        options.validate()?;
        Ok(Self { options, tracks: Vec::new(), next_id: 1, last_ms: None, ended: VecDeque::new() })
    }

    pub fn options(&self) -> &TrackerOptions {
        &self.options
    }

    /// One frame captured at `at_ms` (Unix ms; a frame older than the previous one counts as
    /// taken at the same time) with its detections: for each detection, in order, its track.
    pub fn update(&mut self, at_ms: i64, dets: &[Detection]) -> Vec<TrackUpdate> {
        let now = self.last_ms.map_or(at_ms, |last| at_ms.max(last));
        self.last_ms = Some(now);
        let mut out = vec![TrackUpdate::default(); dets.len()];
        let o = self.options.clone();

        // A track unseen for too long (a stalled camera) must not take a new face's box.
        let max_lost_ms = o.max_lost_ms;
        self.end_where(EndReason::Lost, |t| now.saturating_sub(t.last_seen_ms) > max_lost_ms);
        for t in &mut self.tracks {
            t.predict(now);
        }

        let mut measured: Vec<Measured> =
            dets.iter().enumerate().filter_map(|(i, d)| Measured::of(i, d)).filter(|m| m.score >= o.low).collect();
        measured.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        measured.truncate(o.max_detections);
        let (strong, weak): (Vec<Measured>, Vec<Measured>) = measured.into_iter().partition(|m| m.score >= o.high);

        // Stage 1: every track against the confident detections.
        let mut matched = vec![false; self.tracks.len()];
        let all: Vec<usize> = (0..self.tracks.len()).collect();
        let mut strong_used = vec![false; strong.len()];
        for (t, d) in self.associate(&all, &strong) {
            matched[t] = true;
            strong_used[d] = true;
            out[strong[d].index] = self.hit(t, strong[d]);
        }
        // Stage 2: the weak ones against the tracks left, lost ones included: a lost track left
        // out would see its face's weak box taken by a neighbour's track.
        let left: Vec<usize> = all.into_iter().filter(|&t| !matched[t]).collect();
        for (t, d) in self.associate(&left, &weak) {
            matched[t] = true;
            out[weak[d].index] = self.hit(t, weak[d]);
        }

        for (t, &seen) in self.tracks.iter_mut().zip(&matched) {
            if !seen {
                t.missed = t.missed.saturating_add(1);
            }
        }
        // A tentative track that misses twice in a row is dropped (it was probably a false
        // detection); a confirmed one coasts up to max_age frames.
        self.end_where(EndReason::Lost, |t| t.expired(o.max_age));

        for (m, _) in strong.iter().zip(&strong_used).filter(|(_, used)| !**used) {
            if !self.make_room() {
                break;
            }
            let id = self.new_id();
            let track = Track::start(id, *m, now, o.min_hits);
            out[m.index] =
                TrackUpdate { track: Some(id), confirmed: track.confirmed, new: true, just_confirmed: track.confirmed };
            self.tracks.push(track);
        }
        out
    }

    /// The live tracks (tentative ones included), oldest first.
    pub fn tracks(&self) -> impl Iterator<Item = TrackInfo> + '_ {
        self.tracks.iter().map(Track::info)
    }

    /// Confirmed tracks ended since the last call, in order; the oldest are dropped beyond
    /// 4 x `max_tracks` if nobody asks.
    pub fn drain_ended(&mut self) -> Vec<Ended> {
        self.ended.drain(..).collect()
    }

    /// The embedding of the detection `track` got in the latest [`update`](Self::update). It joins
    /// the track's running mean, unless its cosine with that mean is below `split_below`: then
    /// that box was another person (or no face), so it is taken back out of the track, which goes
    /// on as if it had missed this frame (a person hidden behind the newcomer keeps their track),
    /// and starts a new track of its own. Two people are never fused.
    pub fn observe_embedding(&mut self, track: TrackId, embedding: &[f32]) -> Observed {
        let Some(unit) = appearance::unit(embedding) else { return Observed::Ignored };
        let Some(i) = self.tracks.iter().position(|t| t.id == track) else { return Observed::Ignored };
        let t = &self.tracks[i];
        if t.missed > 0 || t.appearance.dim().is_some_and(|d| d != unit.len()) {
            return Observed::Ignored;
        }
        if t.appearance.cosine(&unit).is_none_or(|c| c >= f64::from(self.options.split_below)) {
            self.tracks[i].appearance.add(&unit);
            return Observed::Kept { track };
        }
        // A track started by this very detection has nothing to give back.
        if t.before_hit.is_none() {
            return Observed::Ignored;
        }
        let (det, at_ms) = (t.last, t.state_ms);
        self.tracks[i].unhit();
        if self.tracks[i].expired(self.options.max_age) {
            self.end_where(EndReason::Lost, |t| t.id == track);
        }
        // The track just un-hit has missed this frame: there is room (see make_room).
        if !self.make_room() {
            return Observed::Ignored;
        }
        let id = self.new_id();
        let mut fresh = Track::start(id, det, at_ms, self.options.min_hits);
        fresh.appearance.add(&unit);
        self.tracks.push(fresh);
        tracing::debug!(from = track, track = id, "embedding disagrees with its track: a new track");
        Observed::Split { from: track, track: id }
    }

    /// Ends `track` now, unreported (its person was found again as another track, which goes
    /// on in its place). False when no live track has this id.
    pub fn end(&mut self, track: TrackId) -> bool {
        let before = self.tracks.len();
        self.tracks.retain(|t| t.id != track);
        self.tracks.len() < before
    }

    fn associate(&self, tracks: &[usize], dets: &[Measured]) -> Vec<(usize, usize)> {
        let gate = f64::from(self.options.max_distance);
        assign::assign(tracks.len(), dets.len(), gate, |r, c| self.tracks[tracks[r]].cost(&dets[c]))
            .into_iter()
            .map(|(r, c)| (tracks[r], c))
            .collect()
    }

    fn hit(&mut self, t: usize, m: Measured) -> TrackUpdate {
        let track = &mut self.tracks[t];
        let just_confirmed = track.hit(m, self.options.min_hits);
        TrackUpdate { track: Some(track.id), confirmed: track.confirmed, new: false, just_confirmed }
    }

    /// Frees a slot if the tracks are at the cap: the longest-missed track gives way; a track seen
    /// in this frame never does. False when there is no room.
    fn make_room(&mut self) -> bool {
        if self.tracks.len() < self.options.max_tracks {
            return true;
        }
        let victim = self
            .tracks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.missed > 0)
            .max_by_key(|(_, t)| (t.missed, Reverse(t.last_seen_ms)))
            .map(|(i, _)| i);
        let Some(i) = victim else { return false };
        let t = self.tracks.remove(i);
        tracing::debug!(track = t.id, "track evicted: at max_tracks");
        if t.confirmed {
            self.push_ended(Ended { id: t.id, reason: EndReason::Evicted, hits: t.hits });
        }
        true
    }

    fn end_where(&mut self, reason: EndReason, ends: impl Fn(&Track) -> bool) {
        let mut ended = Vec::new();
        self.tracks.retain(|t| {
            let end = ends(t);
            if end && t.confirmed {
                ended.push(Ended { id: t.id, reason, hits: t.hits });
            }
            !end
        });
        for e in ended {
            self.push_ended(e);
        }
    }

    fn push_ended(&mut self, e: Ended) {
        if self.ended.len() >= 4 * self.options.max_tracks {
            self.ended.pop_front();
        }
        self.ended.push_back(e);
    }

    fn new_id(&mut self) -> TrackId {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }
}
