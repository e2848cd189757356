//! The tracker on scripted scenes: no models, no files, milliseconds.

use super::*;
use crate::error::Error;

/// A square face box centred on (cx, cy).
pub(super) fn face(cx: f32, cy: f32, side: f32, score: f32) -> Detection {
    Detection { bbox: [cx - side / 2.0, cy - side / 2.0, side, side], landmarks: [[0.0; 2]; 5], score }
}

/// SplitMix64, the clip generator's: seeded, so every run sees the same scene.
pub(super) use crate::eval::rng::Rng;

fn tracker() -> Tracker {
    Tracker::new(TrackerOptions::default()).unwrap()
}

/// All the same id, present.
fn one_id(ids: &[Option<TrackId>]) -> TrackId {
    let first = ids[0].expect("tracked");
    assert!(ids.iter().all(|&id| id == Some(first)), "id changed: {ids:?}");
    first
}

#[test]
fn crossing_faces_keep_their_ids() {
    // Two faces walk through each other at 0.33 sides a frame; in the second run the detector sees
    // only the front one for the three frames around the crossing.
    for hidden in [false, true] {
        let mut t = tracker();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for f in 0..31 {
            let x = 20.0 * f as f32;
            let mut dets = vec![face(100.0 + x, 300.0, 60.0, 0.9)];
            let behind = hidden && (14..=16).contains(&f);
            if !behind {
                dets.push(face(700.0 - x, 320.0, 60.0, 0.9));
            }
            let up = t.update(i64::from(f) * 100, &dets);
            a.push(up[0].track);
            if !behind {
                b.push(up[1].track);
            }
        }
        assert_ne!(one_id(&a), one_id(&b), "hidden: {hidden}");
        assert!(t.tracks().all(|i| i.confirmed && i.hits >= 28), "{:?}", t.tracks().collect::<Vec<_>>());
    }
}

/// A face walking right at 0.125 sides a frame, undetected in `gap`; `time(f)` is frame f's time.
fn walk_with_gap(gap: std::ops::Range<i64>, time: impl Fn(i64) -> i64) -> (Vec<Option<TrackId>>, Tracker) {
    let mut t = tracker();
    let mut ids = Vec::new();
    for f in 0..40 {
        if gap.contains(&f) {
            assert!(t.update(time(f), &[]).is_empty());
        } else {
            ids.push(t.update(time(f), &[face(200.0 + 10.0 * f as f32, 300.0, 80.0, 0.9)])[0].track);
        }
    }
    (ids, t)
}

#[test]
fn short_occlusion_keeps_the_id_and_a_long_one_ends_the_track() {
    let (ids, mut t) = walk_with_gap(10..15, |f| f * 100);
    one_id(&ids);
    assert!(t.drain_ended().is_empty());

    // 12 missed frames: beyond max_age (10).
    let (ids, mut t) = walk_with_gap(10..22, |f| f * 100);
    let (before, after) = ids.split_at(10);
    let first = one_id(before);
    assert_ne!(one_id(after), first);
    assert_eq!(t.drain_ended(), vec![Ended { id: first, reason: EndReason::Lost, hits: 10 }]);

    // 3 missed frames, but the camera stalled 2.5 s: beyond max_lost_ms.
    let (ids, _) = walk_with_gap(10..13, |f| f * 100 + if f >= 13 { 2_500 } else { 0 });
    let (before, after) = ids.split_at(10);
    assert_ne!(one_id(before), one_id(after));
}

#[test]
fn reentry_after_leaving_is_a_new_track() {
    // Walks right out of the frame at 0.33 sides a frame; comes back in walking left, after
    // 0.5 s (its old track still coasts, out of the frame) and after 3 s (its old track ended).
    for gone in [5, 30] {
        let mut t = tracker();
        let mut ids = Vec::new();
        for f in 0..20 {
            ids.push(t.update(f * 100, &[face(880.0 + 20.0 * f as f32, 300.0, 60.0, 0.9)])[0].track);
        }
        let left = one_id(&ids);
        for f in 20..20 + gone {
            t.update(f * 100, &[]);
        }
        let mut back = Vec::new();
        for f in 0..5 {
            back.push(t.update((20 + gone + f) * 100, &[face(1250.0 - 20.0 * f as f32, 300.0, 60.0, 0.9)])[0].track);
        }
        assert_ne!(one_id(&back), left, "gone {gone} frames");
        let live: Vec<TrackId> = t.tracks().map(|i| i.id).collect();
        if gone == 30 {
            assert_eq!(live, vec![one_id(&back)]);
            assert_eq!(t.drain_ended(), vec![Ended { id: left, reason: EndReason::Lost, hits: 20 }]);
        }
    }
}

#[test]
fn merging_then_separating_faces_keep_their_ids() {
    // Two faces (side 80) close in from 300 px apart to 50 px (boxes overlapping, IoU 0.2), walk
    // on together, the right one hidden for 5 frames, then part again; all the while walking down.
    let gap = |f: i64| match f {
        0..5 => 300.0,
        5..15 => 300.0 - 25.0 * (f - 5) as f32,
        15..30 => 50.0,
        30..40 => 50.0 + 25.0 * (f - 30) as f32,
        _ => 300.0,
    };
    let mut t = tracker();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for f in 0..45 {
        let (d, y) = (gap(f), 200.0 + 5.0 * f as f32);
        let mut dets = vec![face(350.0 - d / 2.0, y, 80.0, 0.9)];
        let hidden = (20..25).contains(&f);
        if !hidden {
            dets.push(face(350.0 + d / 2.0, y + 10.0, 80.0, 0.8));
        }
        let up = t.update(f * 100, &dets);
        a.push(up[0].track);
        if !hidden {
            b.push(up[1].track);
        }
    }
    assert_ne!(one_id(&a), one_id(&b));
    assert_eq!(t.tracks().filter(|i| i.confirmed).count(), 2);
}

#[test]
fn lone_false_detections_never_confirm() {
    // A real face, and one false detection a frame somewhere else, each confident.
    let mut t = tracker();
    let mut rng = Rng::seeded(7);
    let mut real = Vec::new();
    for f in 0..60 {
        let fake =
            face(rng.range(0.0, 1920.0) as f32, rng.range(0.0, 1080.0) as f32, rng.range(20.0, 120.0) as f32, 0.95);
        let up = t.update(f * 100, &[face(300.0 + 5.0 * f as f32, 300.0, 80.0, 0.9), fake]);
        real.push(up[0].track);
        assert!(!up[1].confirmed, "frame {f}: {:?}", up[1]);
    }
    let real = one_id(&real);
    // A tentative track survives one missed frame, not two.
    t.update(6_000, &[face(600.0, 300.0, 80.0, 0.9)]);
    t.update(6_100, &[face(605.0, 300.0, 80.0, 0.9)]);
    let live: Vec<(TrackId, bool)> = t.tracks().map(|i| (i.id, i.confirmed)).collect();
    assert_eq!(live, vec![(real, true)]);
}

#[test]
fn uneven_frame_intervals_still_track() {
    // 2 sides a second; frames 20 to 700 ms apart (up to 1.4 sides between two frames): a
    // prediction per frame instead of per second would leave the gate.
    let steps = [40, 100, 60, 500, 100, 700, 20, 300, 40, 600, 80, 450];
    let mut t = tracker();
    let (mut ms, mut ids) = (0i64, Vec::new());
    let at = |ms: i64| 100.0 + 0.12 * ms as f32;
    for step in steps.iter().cycle().take(30) {
        ms += step;
        ids.push(t.update(ms, &[face(at(ms), 400.0 - 0.03 * ms as f32, 60.0, 0.9)])[0].track);
    }
    one_id(&ids);
    let info = t.tracks().next().unwrap();
    assert_eq!((info.hits, info.missed, info.confirmed), (30, 0, true));
    assert!((info.bbox[0] + 30.0 - at(ms)).abs() < 3.0, "{info:?}");
}

fn embedding(axis: usize, wobble: f32) -> Vec<f32> {
    let mut e = vec![0.0; 128];
    e[axis] = 1.0;
    e[axis + 1] = wobble;
    e
}

#[test]
fn disagreeing_embeddings_split_the_track() {
    // A walks right; at frame 6 A is hidden and B steps into A's predicted place: the box goes to
    // A's track, and B's embedding says otherwise.
    let mut t = tracker();
    let a = |f: i64| face(300.0 + 10.0 * f as f32, 300.0, 80.0, 0.9);
    let b = |f: i64| face(360.0, 300.0 + 5.0 * (f - 6) as f32, 80.0, 0.9);
    let first = t.update(0, &[a(0)])[0].track.unwrap();
    for f in 0..6 {
        if f > 0 {
            assert_eq!(t.update(f * 100, &[a(f)])[0].track, Some(first));
        }
        assert_eq!(t.observe_embedding(first, &embedding(0, 0.1 * f as f32)), Observed::Kept { track: first });
    }
    // Same person turning (cosine 0.74 with the mean): kept.
    let mut turned = embedding(0, 0.0);
    turned[7] = 0.9;
    assert_eq!(t.observe_embedding(first, &turned), Observed::Kept { track: first });

    assert_eq!(t.update(600, &[b(6)])[0].track, Some(first));
    let Observed::Split { from, track: second } = t.observe_embedding(first, &embedding(40, 0.0)) else {
        panic!("no split");
    };
    assert_eq!(from, first);
    assert_ne!(second, first);
    // A's track goes on as if it had missed this frame; B's starts from this box.
    let info: Vec<(TrackId, u32, u32, bool, u32)> =
        t.tracks().map(|i| (i.id, i.hits, i.missed, i.confirmed, i.embeddings)).collect();
    assert_eq!(info, vec![(first, 6, 1, true, 7), (second, 1, 0, false, 1)]);

    // B walks down; A comes out from behind B two frames later and gets its track back.
    for f in 7..10 {
        let mut dets = vec![b(f)];
        if f >= 8 {
            dets.push(a(f));
        }
        let up = t.update(f * 100, &dets);
        assert_eq!((up[0].track, up[0].confirmed, up[0].just_confirmed), (Some(second), f >= 8, f == 8));
        if f >= 8 {
            assert_eq!((up[1].track, up[1].confirmed), (Some(first), true));
        }
    }
    assert!(t.drain_ended().is_empty());

    // Unusable vectors, unknown tracks and tracks without a detection in the latest frame change
    // nothing.
    for bad in [vec![], vec![f32::NAN; 128], vec![0.0; 128], vec![1.0; 64], vec![1.0; 2000]] {
        assert_eq!(t.observe_embedding(second, &bad), Observed::Ignored);
    }
    assert_eq!(t.observe_embedding(999, &embedding(0, 0.0)), Observed::Ignored);
    t.update(1_000, &[b(10)]);
    assert_eq!(t.observe_embedding(first, &embedding(0, 0.0)), Observed::Ignored);
    assert_eq!(t.observe_embedding(second, &embedding(40, 0.1)), Observed::Kept { track: second });
    let embeddings: Vec<u32> = t.tracks().map(|i| i.embeddings).collect();
    assert_eq!(embeddings, vec![7, 2]);
}

#[test]
fn track_cap_holds_under_a_flood_of_random_detections() {
    let mut t = Tracker::new(TrackerOptions { max_tracks: 64, ..Default::default() }).unwrap();
    let mut rng = Rng::seeded(17);
    let mut peak = 0;
    for f in 0..40 {
        // 250 boxes a frame, 10,000 in all: anywhere, any size (zero and negative too), any score.
        let dets: Vec<Detection> = (0..250)
            .map(|_| {
                let mut d = face(
                    rng.range(-100.0, 2000.0) as f32,
                    rng.range(-100.0, 1200.0) as f32,
                    rng.range(-5.0, 300.0) as f32,
                    rng.range(0.0, 1.0) as f32,
                );
                if rng.chance(0.02) {
                    d.bbox[rng.next_u64() as usize % 4] = [f32::NAN, f32::INFINITY, -1e30][rng.next_u64() as usize % 3];
                }
                d
            })
            .collect();
        let up = t.update(f * 40, &dets);
        assert_eq!(up.len(), dets.len());
        let live: Vec<TrackId> = t.tracks().map(|i| i.id).collect();
        assert!(live.len() <= 64);
        assert!(up.iter().filter_map(|u| u.track).all(|id| live.contains(&id)));
        peak = peak.max(live.len());
    }
    assert_eq!(peak, 64, "the flood reaches the cap");
}

#[test]
fn invalid_boxes_scores_and_times_are_ignored() {
    let mut t = tracker();
    let mut bad = vec![face(100.0, 100.0, 50.0, 0.9); 8];
    bad[0].bbox[0] = f32::NAN;
    bad[1].bbox[2] = f32::INFINITY;
    bad[2].bbox[2] = 0.0;
    bad[3].bbox[3] = -5.0;
    bad[4].bbox[2] = 0.5;
    bad[5].bbox[1] = 1e7;
    bad[6].score = f32::NAN;
    bad[7].score = 0.1;
    assert!(t.update(0, &bad).iter().all(|u| u.track.is_none()));
    assert_eq!(t.tracks().count(), 0);

    // Times from the extremes, and going backwards: no overflow, no panic.
    for at in [i64::MIN, i64::MAX, i64::MIN, 0, i64::MAX] {
        assert!(t.update(at, &[face(100.0, 100.0, 50.0, 0.9)])[0].track.is_some());
    }
    assert!(t.tracks().all(|i| i.bbox.iter().all(|v| v.is_finite())));
}

#[test]
fn options_are_validated() {
    assert!(TrackerOptions::default().validate().is_ok());
    let d = TrackerOptions::default;
    for bad in [
        TrackerOptions { low: 0.7, ..d() },
        TrackerOptions { high: f32::NAN, ..d() },
        TrackerOptions { min_hits: 0, ..d() },
        TrackerOptions { max_lost_ms: 0, ..d() },
        TrackerOptions { max_distance: f32::NAN, ..d() },
        TrackerOptions { max_tracks: 0, ..d() },
        TrackerOptions { max_detections: 100_000, ..d() },
        TrackerOptions { split_below: 2.0, ..d() },
    ] {
        assert!(matches!(Tracker::new(bad.clone()), Err(Error::Config(_))), "{bad:?}");
    }
}
