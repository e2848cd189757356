//! A seeded arrival hall seen by a camera 0.45-0.75 m above face height: people walk from 9-11 m
//! away to under the camera on straight lines (faces growing from 20 px to 140-200 px, speeding up
//! across the image as they near it), pass and hide each other, with jittered boxes, missed, weak
//! and false detections, at uneven frame intervals; optionally each detection's embedding (the
//! walker's identity plus noise, cosine ~0.85) is observed. The tracker must keep every walker on
//! one track (no ID switch), never put two walkers on one confirmed track, never confirm a false
//! detection, and track every walker.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::tests::{Rng, face};
use super::*;

const WIDTH: f64 = 1280.0;
const HEIGHT: f64 = 720.0;

/// The camera: focal length (px), horizon row, face box side (m). A face `drop` metres below the
/// camera at depth z (m) is `FOCAL * drop / z` px below the horizon and `FOCAL * FACE / z` px wide.
const FOCAL: f64 = 1000.0;
const HORIZON: f64 = 200.0;
const FACE: f64 = 0.2;

/// A straight walk on the floor from `from` to `to`, each `[x, z]` in metres (z: depth).
struct Walker {
    start_ms: i64,
    end_ms: i64,
    from: [f64; 2],
    to: [f64; 2],
    /// How far the face is below the camera, m.
    drop: f64,
}

impl Walker {
    fn floor(&self, ms: i64) -> Option<[f64; 2]> {
        if ms < self.start_ms || ms > self.end_ms {
            return None;
        }
        let k = (ms - self.start_ms) as f64 / (self.end_ms - self.start_ms) as f64;
        Some(std::array::from_fn(|i| self.from[i] + k * (self.to[i] - self.from[i])))
    }

    /// The face in the image, `[cx, cy, side]`.
    fn at(&self, ms: i64) -> Option<[f64; 3]> {
        let [x, z] = self.floor(ms)?;
        Some([WIDTH / 2.0 + FOCAL * x / z, HORIZON + FOCAL * self.drop / z, FOCAL * FACE / z])
    }

    /// Comes within `gap` metres of `other` at some time (every 100 ms).
    fn meets(&self, other: &Walker, gap: f64) -> bool {
        (self.start_ms.max(other.start_ms)..=self.end_ms.min(other.end_ms)).step_by(100).any(|ms| {
            matches!((self.floor(ms), other.floor(ms)), (Some(a), Some(b)) if (a[0] - b[0]).hypot(a[1] - b[1]) < gap)
        })
    }
}

/// People walking from the far end of the hall (9-11 m) under the camera (1 m), 1-1.6 m/s, each
/// drifting up to 1.5 m sideways, never closer than 0.5 m to another.
fn crowd(rng: &mut Rng, n: usize, span_ms: f64) -> Vec<Walker> {
    let mut people: Vec<Walker> = Vec::new();
    for _ in 0..100 * n {
        if people.len() == n {
            break;
        }
        let from = [rng.range(-3.0, 3.0), rng.range(9.0, 11.0)];
        let to = [from[0] + rng.range(-1.5, 1.5), 1.0];
        let duration_ms = (to[0] - from[0]).hypot(to[1] - from[1]) / rng.range(1.0, 1.6) * 1000.0;
        let start_ms = rng.range(0.0, span_ms - duration_ms) as i64;
        let w = Walker { start_ms, end_ms: start_ms + duration_ms as i64, from, to, drop: rng.range(0.45, 0.75) };
        if !people.iter().any(|p| p.meets(&w, 0.5)) {
            people.push(w);
        }
    }
    assert_eq!(people.len(), n, "no room for {n} walkers");
    people
}

fn iou(a: [f64; 3], b: [f64; 3]) -> f64 {
    let overlap =
        |i: usize| ((a[i] + a[2] / 2.0).min(b[i] + b[2] / 2.0) - (a[i] - a[2] / 2.0).max(b[i] - b[2] / 2.0)).max(0.0);
    let inter = overlap(0) * overlap(1);
    inter / (a[2] * a[2] + b[2] * b[2] - inter)
}

#[derive(Debug, Default)]
struct Outcome {
    frames: usize,
    walkers: usize,
    walker_detections: usize,
    missed: usize,
    hidden: usize,
    weak: usize,
    false_detections: usize,
    /// A walker's confirmed track changed while the old one could still have continued.
    id_switches: usize,
    /// A walker's confirmed track changed after it went unseen beyond `max_age`: a new track, as
    /// specified.
    restarts: usize,
    /// Detections taken out of a track by a disagreeing embedding.
    splits: usize,
    /// Confirmed tracks that carried two walkers.
    fused: usize,
    /// Confirmed tracks made of false detections only.
    false_confirmed: usize,
    /// False detections kept by a confirmed walker's track.
    false_joins: usize,
    /// Walker detections after the walker's first `min_hits`, and those on a confirmed track.
    coverable: usize,
    covered: usize,
    untracked_walkers: usize,
    update_time: Duration,
}

/// A random unit vector of 128 dimensions.
fn identity(rng: &mut Rng) -> Vec<f32> {
    let v: Vec<f64> = (0..128).map(|_| rng.normal()).collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| (x / norm) as f32).collect()
}

fn simulate(seed: u64, walkers: usize, frames: usize, frame_ms: f64, embeddings: bool) -> Outcome {
    let options = TrackerOptions::default();
    let mut tracker = Tracker::new(options.clone()).unwrap();
    let mut rng = Rng::seeded(seed);
    let people = crowd(&mut rng, walkers, frames as f64 * frame_ms);
    // Embeddings draw from their own generator: the scene is the same with them or without.
    let mut faces = Rng::seeded(seed.wrapping_mul(31));
    let identities: Vec<Vec<f32>> = (0..walkers).map(|_| identity(&mut faces)).collect();

    let mut out = Outcome { frames, walkers, ..Outcome::default() };
    // Per walker: its confirmed track, frames since that track last had it, detections emitted.
    let mut current: Vec<Option<TrackId>> = vec![None; walkers];
    let mut since: Vec<u32> = vec![0; walkers];
    let mut emitted: Vec<usize> = vec![0; walkers];
    let mut ever_confirmed = vec![false; walkers];
    // Per track: the walkers (Some) and false detections (None) it carried; whether confirmed.
    let mut carried: BTreeMap<TrackId, BTreeSet<Option<usize>>> = BTreeMap::new();
    let mut confirmed: BTreeSet<TrackId> = BTreeSet::new();
    let mut false_on_confirmed = Vec::new();

    let mut ms = 0i64;
    for _ in 0..frames {
        ms += rng.range(0.6 * frame_ms, 1.4 * frame_ms) as i64;
        // Detectable from 20 px, while the face's centre is in the frame.
        let inside = |b: &[f64; 3]| b[2] >= 20.0 && (0.0..WIDTH).contains(&b[0]) && (0.0..HEIGHT).contains(&b[1]);
        let visible: Vec<(usize, [f64; 3])> =
            people.iter().enumerate().filter_map(|(i, w)| Some((i, w.at(ms)?))).filter(|(_, b)| inside(b)).collect();
        let mut dets: Vec<(Detection, Option<usize>)> = Vec::new();
        for &(i, b) in &visible {
            // Behind a nearer (larger) face: the detector's NMS keeps only the front one.
            if visible.iter().any(|&(j, c)| j != i && c[2] > b[2] && iou(b, c) > 0.3) {
                out.hidden += 1;
                continue;
            }
            if rng.chance(0.08) {
                out.missed += 1;
                continue;
            }
            let weak = rng.chance(0.2);
            out.weak += usize::from(weak);
            let score = if weak { rng.range(0.35, 0.6) } else { rng.range(0.6, 1.0) };
            let jitter = 0.03 * b[2];
            let (cx, cy) = (b[0] + jitter * rng.normal(), b[1] + jitter * rng.normal());
            let side = b[2] * (1.0 + 0.03 * rng.normal());
            dets.push((face(cx as f32, cy as f32, side as f32, score as f32), Some(i)));
            emitted[i] += 1;
            out.walker_detections += 1;
        }
        // Now and then a confident false detection, more often a weak one.
        for (p, scores) in [(0.2, (0.6, 0.8)), (0.3, (0.3, 0.6))] {
            if rng.chance(p) {
                let d = face(
                    rng.range(0.0, WIDTH) as f32,
                    rng.range(0.0, HEIGHT) as f32,
                    rng.range(20.0, 80.0) as f32,
                    rng.range(scores.0, scores.1) as f32,
                );
                dets.push((d, None));
                out.false_detections += 1;
            }
        }
        for i in (1..dets.len()).rev() {
            dets.swap(i, rng.next_u64() as usize % (i + 1));
        }

        let boxes: Vec<Detection> = dets.iter().map(|d| d.0).collect();
        let started = Instant::now();
        let updates = tracker.update(ms, &boxes);
        out.update_time += started.elapsed();

        for s in since.iter_mut() {
            *s = s.saturating_add(1);
        }
        for (&(_, source), &up) in dets.iter().zip(&updates) {
            let Some(mut track) = up.track else { continue };
            let mut on_confirmed = up.confirmed;
            if embeddings {
                // Its walker's identity plus noise; a false detection's is anyone's.
                let mut e = source.map_or_else(|| identity(&mut faces), |w| identities[w].clone());
                e.iter_mut().for_each(|x| *x += (0.055 * faces.normal()) as f32);
                if let Observed::Split { track: fresh, .. } = tracker.observe_embedding(track, &e) {
                    out.splits += 1;
                    (track, on_confirmed) = (fresh, false);
                }
            }
            carried.entry(track).or_default().insert(source);
            if on_confirmed {
                confirmed.insert(track);
            }
            let Some(w) = source else {
                if on_confirmed {
                    false_on_confirmed.push(track);
                }
                continue;
            };
            if emitted[w] > options.min_hits as usize {
                out.coverable += 1;
                out.covered += usize::from(on_confirmed);
            }
            if !on_confirmed {
                continue;
            }
            ever_confirmed[w] = true;
            match current[w] {
                Some(old) if old == track => {}
                Some(_) if since[w] > options.max_age => out.restarts += 1,
                Some(_) => out.id_switches += 1,
                None => {}
            }
            current[w] = Some(track);
            since[w] = 0;
        }
    }

    for (track, sources) in &carried {
        if !confirmed.contains(track) {
            continue;
        }
        let walkers = sources.iter().flatten().count();
        out.fused += usize::from(walkers > 1);
        out.false_confirmed += usize::from(walkers == 0);
    }
    out.false_joins = false_on_confirmed.iter().filter(|t| carried[*t].iter().any(Option::is_some)).count();
    out.untracked_walkers = (0..walkers).filter(|&w| emitted[w] >= 5 && !ever_confirmed[w]).count();
    out
}

/// Prints the numbers; checks what holds with boxes alone too. Returns the coverage.
fn report(what: &str, o: &Outcome) -> f64 {
    let coverage = o.covered as f64 / o.coverable.max(1) as f64;
    eprintln!(
        "track sim, {what}: {} walkers, {} frames; {} walker detections ({} weak), {} missed, {} hidden \
         behind nearer faces, {} false; id switches {}, restarts after long gaps {}, split off {}, \
         fused {}, false tracks confirmed {}, false detections kept by a walker's track {}, coverage \
         {:.1} %, untracked walkers {}; {:.1} us per frame",
        o.walkers,
        o.frames,
        o.walker_detections,
        o.weak,
        o.missed,
        o.hidden,
        o.false_detections,
        o.id_switches,
        o.restarts,
        o.splits,
        o.fused,
        o.false_confirmed,
        o.false_joins,
        100.0 * coverage,
        o.untracked_walkers,
        o.update_time.as_secs_f64() * 1e6 / o.frames as f64,
    );
    assert!(o.walker_detections > 3_000 && o.hidden > 20 && o.false_detections > 200, "{o:?}");
    assert_eq!((o.false_confirmed, o.untracked_walkers), (0, 0), "{o:?}");
    coverage
}

#[test]
fn seeded_hall_simulation_has_no_id_switches() {
    // 60 people a minute: at ~10 fps for a minute, at ~5 fps for two.
    for (walkers, frame_ms) in [(60, 100.0), (120, 200.0)] {
        // Boxes alone cannot always tell apart two faces that overlap as one passes behind the
        // other: reported, not asserted.
        report(&format!("boxes only, {frame_ms} ms"), &simulate(2026, walkers, 600, frame_ms, false));
        let o = simulate(2026, walkers, 600, frame_ms, true);
        let coverage = report(&format!("with embeddings, {frame_ms} ms"), &o);
        assert_eq!((o.id_switches, o.fused), (0, 0), "{o:?}");
        assert!(coverage > 0.95, "{o:?}");
    }
}
