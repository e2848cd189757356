//! Decisions on video against a clip's ground truth: per person-pass, not per frame.
//!
//! An alert is tied to the person it was raised for by its box (or its track's box in that
//! frame): the ground-truth face it overlaps (IoU) or whose centre is near, scaled by the face's
//! size (IoU is weak for small faces). It is *true* when that person is enrolled as the alert's
//! subject, else *false* (a stranger, the wrong identity, or no one at all). An alert without a
//! box is true when its subject's pass is in view at that frame.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::clip::{PassInfo, TruthFrame, TruthPerson};

/// A detection matches a person when their boxes overlap this much...
pub const MATCH_IOU: f32 = 0.3;
/// ...or the centres lie within this share of the person's face side.
pub const MATCH_CENTRE: f32 = 0.5;

/// An alert the system raised.
#[derive(Debug, Clone, PartialEq)]
pub struct EmittedAlert {
    pub frame: u64,
    pub subject: String,
    /// The face box `[x, y, w, h]` it was raised for, if known.
    pub bbox: Option<[f32; 4]>,
    /// The track it was raised for, if the rule tracks.
    pub track: Option<u64>,
    /// The score it was raised with (for threshold sweeps; not used by the metrics).
    pub score: f32,
}

/// A tracked detection: which track a face box of a frame was given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackedBox {
    pub frame: u64,
    pub bbox: [f32; 4],
    pub track: u64,
}

/// A new track that continued a lost pass: where the pass was last seen, and the face that
/// continued it (the join is wrong when the two are different people).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Join {
    pub from_frame: u64,
    pub from_bbox: [f32; 4],
    pub frame: u64,
    pub bbox: [f32; 4],
    pub cosine: f32,
}

/// What a rule emitted over a whole clip.
#[derive(Debug, Clone, Default)]
pub struct Emitted {
    pub alerts: Vec<EmittedAlert>,
    /// Embeddings the rule needed (computed or would have computed).
    pub embeddings: u64,
    /// Track ids per detection, when the rule tracks (enables ID switches).
    pub tracks: Option<Vec<TrackedBox>>,
    /// Lost passes continued by a new track.
    pub joins: Vec<Join>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoMetrics {
    pub passes: usize,
    pub enrolled_passes: usize,
    /// Enrolled passes whose subject was alerted while the pass was in view.
    pub alerted_passes: usize,
    pub pass_tpir: f64,
    pub true_alerts: usize,
    /// Alerts for a subject that is not the person in view.
    pub false_alerts: usize,
    pub false_alerts_per_1000_passes: f64,
    /// Seconds from a pass's first frame to its first true alert.
    pub time_to_alert_median_s: Option<f64>,
    pub time_to_alert_p90_s: Option<f64>,
    pub embeddings: u64,
    pub embeddings_per_pass: f64,
    /// Changes of the track a pass is matched to (`None` without track ids).
    pub id_switches: Option<usize>,
    /// Lost passes continued by a new track, and those where the two were different people
    /// (both ends placed on the ground truth and not the same pass).
    pub joins: usize,
    pub wrong_joins: usize,
    /// Seconds to the first true alert of each alerted enrolled pass, sorted (for pooling).
    #[serde(skip)]
    pub time_to_alert_s: Vec<f64>,
}

impl VideoMetrics {
    /// The metrics of several clips taken together, as one clip of all their passes.
    pub fn pooled(all: &[VideoMetrics]) -> VideoMetrics {
        let sum = |f: &dyn Fn(&VideoMetrics) -> usize| all.iter().map(f).sum::<usize>();
        let (passes, enrolled, alerted, false_alerts) =
            (sum(&|m| m.passes), sum(&|m| m.enrolled_passes), sum(&|m| m.alerted_passes), sum(&|m| m.false_alerts));
        let embeddings: u64 = all.iter().map(|m| m.embeddings).sum();
        let mut delays: Vec<f64> = all.iter().flat_map(|m| m.time_to_alert_s.iter().copied()).collect();
        delays.sort_by(f64::total_cmp);
        VideoMetrics {
            passes,
            enrolled_passes: enrolled,
            alerted_passes: alerted,
            pass_tpir: alerted as f64 / enrolled.max(1) as f64,
            true_alerts: sum(&|m| m.true_alerts),
            false_alerts,
            false_alerts_per_1000_passes: 1000.0 * false_alerts as f64 / passes.max(1) as f64,
            time_to_alert_median_s: percentile(&delays, 0.5),
            time_to_alert_p90_s: percentile(&delays, 0.9),
            embeddings,
            embeddings_per_pass: embeddings as f64 / passes.max(1) as f64,
            id_switches: all.iter().map(|m| m.id_switches).sum(),
            joins: sum(&|m| m.joins),
            wrong_joins: sum(&|m| m.wrong_joins),
            time_to_alert_s: delays,
        }
    }
}

pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let iy = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    if ix <= 0.0 || iy <= 0.0 {
        return 0.0;
    }
    let inter = ix * iy;
    inter / (a[2] * a[3] + b[2] * b[3] - inter)
}

/// How far `b` is from person `p` (0 = same place; `None` = not them): the centre distance over
/// the person's face side, accepted when within [`MATCH_CENTRE`] or overlapping by [`MATCH_IOU`].
pub fn distance(b: &[f32; 4], p: &TruthPerson) -> Option<f32> {
    let side = p.bbox[2].max(p.bbox[3]).max(1.0);
    let d = ((b[0] + b[2] / 2.0 - p.bbox[0] - p.bbox[2] / 2.0).hypot(b[1] + b[3] / 2.0 - p.bbox[1] - p.bbox[3] / 2.0))
        / side;
    (d <= MATCH_CENTRE || iou(b, &p.bbox) >= MATCH_IOU).then_some(d)
}

/// The person of `frame` that box `b` shows, if any (the nearest acceptable one).
pub fn associate<'a>(b: &[f32; 4], frame: &'a TruthFrame) -> Option<&'a TruthPerson> {
    frame.people.iter().filter_map(|p| distance(b, p).map(|d| (d, p))).min_by(|x, y| x.0.total_cmp(&y.0)).map(|x| x.1)
}

/// One-to-one matching of boxes to people within a frame, closest pairs first:
/// `(box index, pass)`.
fn assign(boxes: &[[f32; 4]], frame: &TruthFrame) -> Vec<(usize, u32)> {
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, b) in boxes.iter().enumerate() {
        for (j, p) in frame.people.iter().enumerate() {
            if let Some(d) = distance(b, p) {
                pairs.push((d, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let (mut used_b, mut used_p) = (BTreeSet::new(), BTreeSet::new());
    let mut out = Vec::new();
    for (_, i, j) in pairs {
        if used_b.contains(&i) || used_p.contains(&j) {
            continue;
        }
        used_b.insert(i);
        used_p.insert(j);
        out.push((i, frame.people[j].pass));
    }
    out
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    // Nearest rank.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Scores what a rule emitted on a clip. `truth` is indexed by frame; `fps` converts frames to
/// seconds.
pub fn evaluate(passes: &[PassInfo], truth: &[TruthFrame], fps: u32, emitted: &Emitted) -> VideoMetrics {
    let by_frame: BTreeMap<u64, &TruthFrame> = truth.iter().map(|t| (t.frame, t)).collect();
    let empty = TruthFrame { frame: 0, time: 0.0, people: Vec::new() };
    let frame_of = |f: u64| by_frame.get(&f).copied().unwrap_or(&empty);
    let pass_by_id: BTreeMap<u32, &PassInfo> = passes.iter().map(|p| (p.id, p)).collect();
    // Track boxes by (frame, track), to place alerts that carry only a track.
    let mut track_box: BTreeMap<(u64, u64), [f32; 4]> = BTreeMap::new();
    for t in emitted.tracks.iter().flatten() {
        track_box.insert((t.frame, t.track), t.bbox);
    }

    let mut first_alert: BTreeMap<u32, u64> = BTreeMap::new();
    let (mut true_alerts, mut false_alerts) = (0, 0);
    for a in &emitted.alerts {
        let frame = frame_of(a.frame);
        let bbox = a.bbox.or_else(|| a.track.and_then(|t| track_box.get(&(a.frame, t)).copied()));
        let person = match bbox {
            Some(b) => associate(&b, frame),
            None => frame.people.iter().find(|p| p.subject.as_deref() == Some(a.subject.as_str())),
        };
        match person {
            Some(p) if p.subject.as_deref() == Some(a.subject.as_str()) => {
                true_alerts += 1;
                let first = first_alert.entry(p.pass).or_insert(a.frame);
                *first = (*first).min(a.frame);
            }
            _ => false_alerts += 1,
        }
    }

    let enrolled: Vec<&PassInfo> = passes.iter().filter(|p| p.subject.is_some()).collect();
    let mut delays: Vec<f64> = enrolled
        .iter()
        .filter_map(|p| first_alert.get(&p.id).map(|f| f.saturating_sub(p.first_frame) as f64 / fps.max(1) as f64))
        .collect();
    delays.sort_by(f64::total_cmp);
    let alerted = enrolled.iter().filter(|p| first_alert.contains_key(&p.id)).count();

    let id_switches = emitted.tracks.as_ref().map(|tracks| {
        let mut per_frame: BTreeMap<u64, Vec<&TrackedBox>> = BTreeMap::new();
        for t in tracks {
            per_frame.entry(t.frame).or_default().push(t);
        }
        let mut last: BTreeMap<u32, u64> = BTreeMap::new();
        let mut switches = 0;
        for (f, boxes) in per_frame {
            let bb: Vec<[f32; 4]> = boxes.iter().map(|b| b.bbox).collect();
            for (i, pass) in assign(&bb, frame_of(f)) {
                if !pass_by_id.contains_key(&pass) {
                    continue;
                }
                if let Some(prev) = last.insert(pass, boxes[i].track) {
                    switches += usize::from(prev != boxes[i].track);
                }
            }
        }
        switches
    });

    let place = |f: u64, b: &[f32; 4]| associate(b, frame_of(f)).map(|p| p.pass);
    let wrong_joins = emitted
        .joins
        .iter()
        .filter(
            |j| matches!((place(j.from_frame, &j.from_bbox), place(j.frame, &j.bbox)), (Some(a), Some(b)) if a != b),
        )
        .count();

    let n = passes.len();
    VideoMetrics {
        passes: n,
        enrolled_passes: enrolled.len(),
        alerted_passes: alerted,
        pass_tpir: alerted as f64 / enrolled.len().max(1) as f64,
        true_alerts,
        false_alerts,
        false_alerts_per_1000_passes: 1000.0 * false_alerts as f64 / n.max(1) as f64,
        time_to_alert_median_s: percentile(&delays, 0.5),
        time_to_alert_p90_s: percentile(&delays, 0.9),
        embeddings: emitted.embeddings,
        embeddings_per_pass: emitted.embeddings as f64 / n.max(1) as f64,
        id_switches,
        joins: emitted.joins.len(),
        wrong_joins,
        time_to_alert_s: delays,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(pass: u32, subject: Option<&str>, bbox: [f32; 4]) -> TruthPerson {
        TruthPerson { pass, identity: format!("id{pass}"), subject: subject.map(str::to_string), bbox, visible: 1.0 }
    }

    /// Two passes crossing over 10 frames at 10 fps: pass 0 enrolled as "ann" moving right,
    /// pass 1 a stranger moving left; a third pass (enrolled as "bob") is in frames 5..9 alone.
    fn clip() -> (Vec<PassInfo>, Vec<TruthFrame>) {
        let mut truth = Vec::new();
        for f in 0..10u64 {
            let x = f as f32 * 20.0;
            let mut people =
                vec![person(0, Some("ann"), [x, 100.0, 40.0, 40.0]), person(1, None, [180.0 - x, 100.0, 40.0, 40.0])];
            if f >= 5 {
                people.push(person(2, Some("bob"), [300.0, 300.0, 60.0, 60.0]));
            }
            truth.push(TruthFrame { frame: f, time: f as f64 / 10.0, people });
        }
        let pass = |id: u32, subject: Option<&str>, first, last| PassInfo {
            id,
            identity: format!("id{id}"),
            subject: subject.map(str::to_string),
            first_frame: first,
            last_frame: last,
            photos: Vec::new(),
        };
        (vec![pass(0, Some("ann"), 0, 9), pass(1, None, 0, 9), pass(2, Some("bob"), 5, 9)], truth)
    }

    fn alert(frame: u64, subject: &str, bbox: Option<[f32; 4]>) -> EmittedAlert {
        EmittedAlert { frame, subject: subject.into(), bbox, track: None, score: 0.95 }
    }

    #[test]
    fn association_prefers_the_nearest_person_and_refuses_far_boxes() {
        let (_, truth) = clip();
        // Frame 4: ann at x=80, the stranger at x=100: a box at 96 is the stranger's.
        assert_eq!(associate(&[96.0, 100.0, 40.0, 40.0], &truth[4]).map(|p| p.pass), Some(1));
        assert_eq!(associate(&[82.0, 102.0, 38.0, 38.0], &truth[4]).map(|p| p.pass), Some(0));
        assert_eq!(associate(&[500.0, 10.0, 40.0, 40.0], &truth[4]), None);
        // A small box inside a large face: no IoU to speak of, but the centres agree.
        assert_eq!(associate(&[320.0, 320.0, 20.0, 20.0], &truth[6]).map(|p| p.pass), Some(2));
    }

    #[test]
    fn a_true_alert_a_stranger_alert_and_a_wrong_identity() {
        let (passes, truth) = clip();
        let emitted = Emitted {
            alerts: vec![
                alert(3, "ann", Some([60.0, 100.0, 40.0, 40.0])),  // ann, true
                alert(4, "ann", Some([101.0, 99.0, 40.0, 40.0])),  // on the stranger: false
                alert(7, "ann", Some([300.0, 300.0, 60.0, 60.0])), // on bob: wrong identity, false
                alert(8, "zed", Some([500.0, 500.0, 40.0, 40.0])), // no one there: false
            ],
            embeddings: 30,
            ..Default::default()
        };
        let m = evaluate(&passes, &truth, 10, &emitted);
        assert_eq!((m.true_alerts, m.false_alerts), (1, 3));
        assert_eq!((m.enrolled_passes, m.alerted_passes), (2, 1));
        assert!((m.pass_tpir - 0.5).abs() < 1e-9);
        assert!((m.false_alerts_per_1000_passes - 1000.0).abs() < 1e-9);
        assert!((m.embeddings_per_pass - 10.0).abs() < 1e-9);
        assert_eq!(m.time_to_alert_median_s, Some(0.3));
        assert_eq!(m.id_switches, None);
    }

    #[test]
    fn time_to_alert_counts_from_first_appearance_and_takes_the_first_alert() {
        let (passes, truth) = clip();
        let emitted = Emitted {
            alerts: vec![
                alert(9, "bob", Some([300.0, 300.0, 60.0, 60.0])),
                alert(6, "bob", None), // no box: bob is in view, so true
                alert(2, "ann", Some([40.0, 100.0, 40.0, 40.0])),
                alert(1, "bob", None), // bob is not in view yet: false
            ],
            ..Default::default()
        };
        let m = evaluate(&passes, &truth, 10, &emitted);
        assert_eq!((m.true_alerts, m.false_alerts, m.alerted_passes), (3, 1, 2));
        // ann after 0.2 s, bob after 0.1 s (frame 6 - first frame 5).
        assert_eq!(m.time_to_alert_median_s, Some(0.1));
        assert_eq!(m.time_to_alert_p90_s, Some(0.2));
        assert!((m.pass_tpir - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_join_of_two_people_is_wrong_and_pooling_adds_clips_up() {
        let (passes, truth) = clip();
        let join = |from_bbox, bbox| Join { from_frame: 2, from_bbox, frame: 7, bbox, cosine: 0.96 };
        let joins = vec![
            // ann at frame 2 to ann at frame 7: right.
            join([40.0, 100.0, 40.0, 40.0], [140.0, 100.0, 40.0, 40.0]),
            // ann at frame 2 to bob at frame 7: wrong.
            join([40.0, 100.0, 40.0, 40.0], [300.0, 300.0, 60.0, 60.0]),
            // to no one: not counted as wrong (nothing to compare).
            join([40.0, 100.0, 40.0, 40.0], [600.0, 10.0, 40.0, 40.0]),
        ];
        let alerts = vec![alert(3, "ann", Some([60.0, 100.0, 40.0, 40.0]))];
        let m = evaluate(&passes, &truth, 10, &Emitted { alerts, joins, embeddings: 6, ..Default::default() });
        assert_eq!((m.joins, m.wrong_joins), (3, 1));
        let p = VideoMetrics::pooled(&[m.clone(), m]);
        assert_eq!((p.passes, p.enrolled_passes, p.alerted_passes, p.joins, p.wrong_joins), (6, 4, 2, 6, 2));
        assert!((p.pass_tpir - 0.5).abs() < 1e-9 && (p.embeddings_per_pass - 2.0).abs() < 1e-9);
        assert_eq!(p.time_to_alert_s, vec![0.3, 0.3]);
    }

    #[test]
    fn id_switches_count_changes_of_a_passs_track() {
        let (passes, truth) = clip();
        let mut tracks = Vec::new();
        for f in 0..10u64 {
            let x = f as f32 * 20.0;
            // The tracker swaps the two crossing people at frame 5 (after they cross): one
            // switch for each of them.
            let (ann, stranger) = if f < 5 { (1, 2) } else { (2, 1) };
            tracks.push(TrackedBox { frame: f, bbox: [x, 100.0, 40.0, 40.0], track: ann });
            tracks.push(TrackedBox { frame: f, bbox: [180.0 - x, 100.0, 40.0, 40.0], track: stranger });
        }
        // Bob keeps one track, seen in every other frame only: gaps are no switch.
        for f in (5..10u64).step_by(2) {
            tracks.push(TrackedBox { frame: f, bbox: [300.0, 300.0, 60.0, 60.0], track: 7 });
        }
        // An alert placed by its track alone, on bob's box in frame 7.
        let alerts = vec![EmittedAlert { frame: 7, subject: "bob".into(), bbox: None, track: Some(7), score: 0.97 }];
        let m = evaluate(&passes, &truth, 10, &Emitted { alerts, tracks: Some(tracks), ..Default::default() });
        assert_eq!(m.id_switches, Some(2));
        assert_eq!((m.true_alerts, m.alerted_passes), (1, 1));
    }
}
