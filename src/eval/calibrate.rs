//! Both rules' thresholds from a clip: the clip is analysed once by the engine with the real
//! models against a padded watch list, then the frame rule and the track rule decide on the
//! same analyses at each threshold of a sweep, scored per person-pass. A rule's recommended
//! threshold is the highest whose pass TPIR reaches the target: the fewest false alerts that
//! still find the people on the list. What `facewatch eval video` and
//! `cargo bench --bench video_eval` print.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::clip::{self, ClipManifest, TruthFrame};
use super::replay::{AnalysedFrame, EvalList, analyse_clip, build_list};
use super::rule::{self, FrameLevel, TrackLevel, VideoRule};
use super::video::{self, Emitted, VideoMetrics, associate};
use crate::config::{ServiceConfig, TrackingSection};
use crate::error::Result;
use crate::inference::{Inference, InferenceOptions};
use crate::vision::quality::QualityGate;
use crate::watchlist::policy::Policy;

/// The frame rule's thresholds swept by default.
pub const FRAME_THRESHOLDS: [f32; 11] = [0.91, 0.92, 0.93, 0.935, 0.94, 0.945, 0.95, 0.955, 0.96, 0.965, 0.97];
/// The track rule's (a fused embedding scores higher against everyone than one face does).
pub const TRACK_THRESHOLDS: [f32; 11] = [0.92, 0.93, 0.935, 0.94, 0.945, 0.95, 0.955, 0.96, 0.965, 0.97, 0.975];

/// The engine as a tracked camera runs it: detections down to `[tracking] low` kept in live
/// mode (the frame rule then looks only at those a posted frame keeps). Enrollment keeps the
/// service's `[inference] detect_threshold`: with the low one, a weak second detection made
/// about 15 % of the list's photos "two faces" and refused them (13 of the three clips' 72
/// enrolled people lost one of their two photos before this was fixed).
pub fn engine_options(cfg: &ServiceConfig) -> InferenceOptions {
    let mut o = cfg.inference_options();
    o.pipeline.detector.score_threshold = cfg.tracking.low;
    o.live_threshold = cfg.tracking.low;
    o
}

/// A clip analysed once, ready for any rule.
pub struct AnalysedClip {
    pub manifest: ClipManifest,
    pub truth: Vec<TruthFrame>,
    pub frames: Vec<AnalysedFrame>,
    pub list: EvalList,
    /// Ground-truth faces (at least 32 px, at least half visible) some detection lands on, of all.
    pub detected: (usize, usize),
    pub enroll_s: f64,
    pub analyse_s: f64,
}

impl AnalysedClip {
    /// Reads the clip `facewatch eval clip` wrote to `dir`, enrolls its subjects plus distractors
    /// up to `list_size` (chosen by `seed`), and analyses every frame.
    pub fn open(engine: &Inference, dir: &Path, list_size: usize, seed: u64, factory: &str) -> Result<Self> {
        let (manifest, truth) = clip::read(dir)?;
        let t = Instant::now();
        let list = build_list(engine, &manifest, list_size, seed, factory)?;
        let enroll_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let frames = analyse_clip(engine, dir, &manifest, QualityGate::default())?;
        let analyse_s = t.elapsed().as_secs_f64();
        let detected = detection_recall(&frames, &truth);
        Ok(Self { manifest, truth, frames, list, detected, enroll_s, analyse_s })
    }

    /// Runs `rule` over the clip and scores it.
    pub fn score(&self, emitted: &Emitted) -> VideoMetrics {
        video::evaluate(&self.manifest.passes, &self.truth, self.manifest.fps, emitted)
    }

    /// One line on the clip, the list and the engine.
    pub fn summary(&self) -> String {
        let m = &self.manifest;
        let (found, total) = self.detected;
        format!(
            "clip seed {}: {}x{} at {} fps, {} frames, {} passes ({} enrolled); list: {} subjects ({} of the clip's {} enrolled, {} photos refused) in {:.1} s; engine: {} frames in {:.1} s, {} faces, detection recall {found}/{total} = {:.1} %",
            m.seed,
            m.width,
            m.height,
            m.fps,
            m.frames,
            m.passes.len(),
            m.passes.iter().filter(|p| p.subject.is_some()).count(),
            self.list.subjects,
            self.list.enrolled,
            m.enroll.len(),
            self.list.refused,
            self.enroll_s,
            self.frames.len(),
            self.analyse_s,
            self.frames.iter().map(|f| f.faces.len()).sum::<usize>(),
            100.0 * found as f64 / total.max(1) as f64
        )
    }
}

/// Share of the ground-truth faces (at least 32 px, at least half visible) that some detection
/// lands on: what any rule can work with.
pub fn detection_recall(frames: &[AnalysedFrame], truth: &[TruthFrame]) -> (usize, usize) {
    let (mut found, mut total) = (0, 0);
    for (f, t) in frames.iter().zip(truth) {
        for p in t.people.iter().filter(|p| p.bbox[2].min(p.bbox[3]) >= 32.0 && p.visible >= 0.5) {
            total += 1;
            found += usize::from(
                f.faces.iter().any(|face| associate(&face.detection.bbox, t).is_some_and(|q| q.pass == p.pass)),
            );
        }
    }
    (found, total)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Frame,
    Track,
}

/// One rule at one threshold on one clip (or pooled over several).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub rule: RuleKind,
    /// A variant of the rule's settings, for calibration tables ("" for the configured one).
    pub variant: String,
    pub threshold: f32,
    pub metrics: VideoMetrics,
}

/// What to sweep.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub frame_thresholds: Vec<f32>,
    pub track_thresholds: Vec<f32>,
    /// The list's frame threshold while the track rule runs (its "one strong face" is measured
    /// from it).
    pub frame_threshold: f32,
    /// Faces a posted frame keeps (`[inference] detect_threshold`): all the frame rule sees.
    pub frame_detection: f32,
    pub tracking: TrackingSection,
}

impl Sweep {
    /// The default sweeps; `frame_threshold` is the list's (new lists get the embedder's
    /// `default_threshold`).
    pub fn new(cfg: &ServiceConfig, frame_threshold: f32) -> Self {
        Self {
            frame_thresholds: FRAME_THRESHOLDS.to_vec(),
            track_thresholds: TRACK_THRESHOLDS.to_vec(),
            frame_threshold,
            frame_detection: cfg.inference.detect_threshold,
            tracking: cfg.tracking.clone(),
        }
    }
}

/// The frame rule at `threshold` on `clip`.
pub fn frame_rule(clip: &mut AnalysedClip, threshold: f32, frame_detection: f32) -> Result<(Emitted, VideoMetrics)> {
    let mut r = FrameLevel::new(&mut clip.list.index, Policy::with_threshold(threshold))
        .with_detection_threshold(frame_detection);
    let emitted = rule::run(&mut r, &clip.frames)?;
    let m = clip.score(&emitted);
    Ok((emitted, m))
}

/// The track rule with `tracking`'s settings at `track_threshold` on `clip`.
pub fn track_rule(
    clip: &mut AnalysedClip,
    track_threshold: f32,
    frame_threshold: f32,
    tracking: &TrackingSection,
) -> Result<(Emitted, VideoMetrics)> {
    let policy = Policy { track_threshold, ..Policy::with_threshold(frame_threshold) };
    let mut r = TrackLevel::new(&mut clip.list.index, policy, tracking.tracker(), tracking.rule())?;
    let emitted = rule::run(&mut r as &mut dyn VideoRule, &clip.frames)?;
    let m = clip.score(&emitted);
    Ok((emitted, m))
}

/// Both rules at every threshold of `sweep`.
pub fn sweep(clip: &mut AnalysedClip, sweep: &Sweep) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &t in &sweep.frame_thresholds {
        let (_, metrics) = frame_rule(clip, t, sweep.frame_detection)?;
        rows.push(Row { rule: RuleKind::Frame, variant: String::new(), threshold: t, metrics });
    }
    for &t in &sweep.track_thresholds {
        let (_, metrics) = track_rule(clip, t, sweep.frame_threshold, &sweep.tracking)?;
        rows.push(Row { rule: RuleKind::Track, variant: String::new(), threshold: t, metrics });
    }
    Ok(rows)
}

/// Rows of several clips pooled per (rule, variant, threshold), as one clip of all their passes.
pub fn pool(per_clip: &[Vec<Row>]) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    let Some(first) = per_clip.first() else { return out };
    for r in first {
        let same: Vec<VideoMetrics> = per_clip
            .iter()
            .filter_map(|rows| {
                rows.iter().find(|x| x.rule == r.rule && x.variant == r.variant && x.threshold == r.threshold)
            })
            .map(|x| x.metrics.clone())
            .collect();
        if same.len() == per_clip.len() {
            out.push(Row { metrics: VideoMetrics::pooled(&same), ..r.clone() });
        }
    }
    out
}

/// The highest threshold of `rule` (and `variant`) whose pass TPIR reaches `target`.
pub fn recommend<'a>(rows: &'a [Row], rule: RuleKind, variant: &str, target: f64) -> Option<&'a Row> {
    rows.iter()
        .filter(|r| r.rule == rule && r.variant == variant && r.metrics.pass_tpir >= target)
        .max_by(|a, b| a.threshold.total_cmp(&b.threshold))
}

/// The rows as a markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| rule | threshold | pass TPIR | alerted / enrolled passes | false alerts | per 1,000 passes | time to alert median / p90 (s) | embeddings per pass | ID switches | joins (wrong) |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let secs = |s: Option<f64>| s.map(|s| format!("{s:.1}")).unwrap_or_else(|| "-".into());
    for r in rows {
        let v = &r.metrics;
        let name = match (r.rule, r.variant.as_str()) {
            (RuleKind::Frame, "") => "frame".to_string(),
            (RuleKind::Track, "") => "track".to_string(),
            (RuleKind::Frame, x) => format!("frame {x}"),
            (RuleKind::Track, x) => format!("track {x}"),
        };
        let _ = writeln!(
            s,
            "| {name} | {:.3} | {:.3} | {} / {} | {} | {:.0} | {} / {} | {:.1} | {} | {} |",
            r.threshold,
            v.pass_tpir,
            v.alerted_passes,
            v.enrolled_passes,
            v.false_alerts,
            v.false_alerts_per_1000_passes,
            secs(v.time_to_alert_median_s),
            secs(v.time_to_alert_p90_s),
            v.embeddings_per_pass,
            v.id_switches.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            match r.rule {
                RuleKind::Frame => "-".to_string(),
                RuleKind::Track => format!("{} ({})", v.joins, v.wrong_joins),
            },
        );
    }
    s
}

/// Both rules' recommendations at `target` pass TPIR.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    pub target_tpir: f64,
    /// The frame rule's threshold (a list's `threshold`), if any reaches the target.
    pub threshold: Option<f32>,
    /// The track rule's (a list's `track_threshold`).
    pub track_threshold: Option<f32>,
    pub frame: Option<VideoMetrics>,
    pub track: Option<VideoMetrics>,
}

impl Recommendation {
    pub fn from_rows(rows: &[Row], target_tpir: f64) -> Self {
        let f = recommend(rows, RuleKind::Frame, "", target_tpir);
        let t = recommend(rows, RuleKind::Track, "", target_tpir);
        Self {
            target_tpir,
            threshold: f.map(|r| r.threshold),
            track_threshold: t.map(|r| r.threshold),
            frame: f.map(|r| r.metrics.clone()),
            track: t.map(|r| r.metrics.clone()),
        }
    }

    /// What a person reads: one line per rule, then the comparison.
    pub fn lines(&self) -> String {
        let mut s = String::new();
        for (what, t, m) in [
            ("frame rule: threshold", self.threshold, &self.frame),
            ("track rule: track_threshold", self.track_threshold, &self.track),
        ] {
            let _ = match (t, m) {
                (Some(t), Some(v)) => writeln!(
                    s,
                    "recommended {what} = {t} (pass TPIR {:.3}, {:.0} false alerts per 1,000 passes, {:.1} embeddings per pass)",
                    v.pass_tpir, v.false_alerts_per_1000_passes, v.embeddings_per_pass
                ),
                _ => writeln!(s, "{what}: no threshold swept reaches pass TPIR {}", self.target_tpir),
            };
        }
        if let (Some(f), Some(t)) = (&self.frame, &self.track) {
            let _ = writeln!(
                s,
                "track rule against frame rule at these thresholds: false alerts {} against {} ({}), embeddings per pass {:.1} against {:.1} ({:.1}x fewer)",
                t.false_alerts,
                f.false_alerts,
                if t.false_alerts == 0 {
                    "none left".to_string()
                } else {
                    format!("{:.1}x fewer", f.false_alerts as f64 / t.false_alerts as f64)
                },
                t.embeddings_per_pass,
                f.embeddings_per_pass,
                f.embeddings_per_pass / t.embeddings_per_pass.max(1e-9)
            );
        }
        s
    }
}

/// Where a rule's false alerts came from: on a stranger, on another enrolled person, on no one;
/// and for the track rule, how many were raised by a pass that began as a later track of a
/// person already tracked before (an ID switch).
pub fn false_alert_sources(clip: &AnalysedClip, emitted: &Emitted) -> String {
    let (mut stranger, mut other, mut nobody, mut later_track) = (0, 0, 0, 0);
    let first_track: std::collections::BTreeMap<u32, u64> = {
        // The first pass id each ground-truth pass was tracked under.
        let mut m = std::collections::BTreeMap::new();
        for t in emitted.tracks.iter().flatten() {
            if let Some(p) = clip.truth.get(t.frame as usize).and_then(|f| associate(&t.bbox, f)) {
                m.entry(p.pass).or_insert(t.track);
            }
        }
        m
    };
    for a in &emitted.alerts {
        let (Some(truth), Some(b)) = (clip.truth.get(a.frame as usize), a.bbox) else { continue };
        match associate(&b, truth) {
            Some(p) if p.subject.as_deref() == Some(a.subject.as_str()) => continue,
            Some(p) => {
                if p.subject.is_some() {
                    other += 1
                } else {
                    stranger += 1
                }
                if a.track.is_some_and(|t| first_track.get(&p.pass).is_some_and(|&f| f != t)) {
                    later_track += 1;
                }
            }
            None => nobody += 1,
        }
    }
    format!(
        "false alerts: {stranger} on strangers, {other} on another enrolled person, {nobody} on no one; {later_track} raised by a later track of a person tracked before"
    )
}

/// Why enrolled passes were missed: for each enrolled pass without a true alert in `emitted`,
/// its faces that carry an embedding, the best score of its own subject over them (the ceiling
/// of any rule that looks at single faces), and that subject's score for the mean of its faces.
pub fn missed_passes(clip: &mut AnalysedClip, emitted: &Emitted) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let passes = clip.manifest.passes.clone();
    for p in passes.iter().filter(|p| p.subject.is_some()) {
        let subject = p.subject.as_deref().unwrap_or_default();
        let alerted = emitted.alerts.iter().any(|a| {
            a.subject == subject
                && a.bbox.is_some_and(|b| {
                    clip.truth.get(a.frame as usize).and_then(|t| associate(&b, t)).is_some_and(|q| q.pass == p.id)
                })
        });
        if alerted {
            continue;
        }
        let mut embs: Vec<Vec<f32>> = Vec::new();
        for f in clip.frames.iter().skip(p.first_frame as usize).take((p.last_frame - p.first_frame + 1) as usize) {
            let Some(t) = clip.truth.get(f.frame as usize) else { continue };
            for face in &f.faces {
                if let Some(e) = &face.embedding
                    && associate(&face.detection.bbox, t).is_some_and(|q| q.pass == p.id)
                {
                    embs.push(e.clone());
                }
            }
        }
        let n = clip.list.subjects.max(1);
        let own = |e: &[f32], index: &mut crate::watchlist::index::ListIndex| -> Result<Option<f32>> {
            let hits = index.search(e, n)?.pop().unwrap_or_default();
            Ok(hits.iter().find(|(id, _)| index.owner(*id).is_some_and(|o| o.subject == subject)).map(|h| h.1))
        };
        let mut best = None::<f32>;
        for e in &embs {
            if let Some(s) = own(e, &mut clip.list.index)? {
                best = Some(best.map_or(s, |b: f32| b.max(s)));
            }
        }
        let mut sum = vec![0f32; embs.first().map_or(0, Vec::len)];
        for e in &embs {
            sum.iter_mut().zip(e).for_each(|(a, b)| *a += b);
        }
        let mean =
            if embs.is_empty() { None } else { own(&crate::vision::embed::normalized(&sum), &mut clip.list.index)? };
        let f = |s: Option<f32>| s.map(|s| format!("{s:.3}")).unwrap_or_else(|| "-".into());
        // An alert for the subject on someone else shortly before holds the true one back
        // (cooldown): the officer sees the look-alike's crop.
        let before = emitted.alerts.iter().filter(|a| a.subject == subject && a.frame <= p.last_frame).count();
        out.push(format!(
            "missed pass {} ({subject}): {} faces embedded by the engine, best own score {}, own score of their mean {}, {before} alerts for the subject on someone else before it ended",
            p.id,
            embs.len(),
            f(best),
            f(mean)
        ));
    }
    Ok(out)
}
