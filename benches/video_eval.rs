//! Decisions on video, per person-pass: a generated arrival-hall clip (seed 17, 72 passes of
//! which 24 enrolled, 960x540 at 10 fps, H.264) decoded by ffmpeg, every frame through the
//! engine with the real models, against a 600-subject list (the enrolled people plus
//! distractor identities never shown). Prints a markdown table per rule and threshold: pass
//! TPIR, false alerts per 1,000 passes, time to alert, embeddings per pass.
//!
//! `cargo bench --bench video_eval`; `-- --seed N` for another clip, `--width W --height H
//! --crowd C` for another frame size and crowd (mean people in view), `--detect-max-side N` to
//! detect on frames scaled to that longer side (as `[tracking] detect_max_side` does; 0 = the
//! full frame). Under `cargo test` a
//! small clip (8 passes, 480x270 at 5 fps, a 100-subject list) at threshold 0.94.
//!
//! A rule is a [`VideoRule`] fed the same analysed frames; add one to `rules` below.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use facewatch::eval::clip::{Clip, ClipOptions};
use facewatch::eval::replay::{AnalysedFrame, analyse_clip, build_list};
use facewatch::eval::rule::{self, FrameLevel, TrackLevel, VideoRule};
use facewatch::eval::video::{self, VideoMetrics, associate};
use facewatch::inference::{Inference, InferenceOptions};
use facewatch::metrics::Metrics;
use facewatch::vision::quality::QualityGate;
use facewatch::watchlist::index::ListIndex;
use facewatch::watchlist::policy::Policy;

/// Share of the ground-truth faces (at least 32 px, at least half visible) that some
/// detection lands on: what any rule can work with.
fn detection_recall(frames: &[AnalysedFrame], truth: &[facewatch::eval::clip::TruthFrame]) -> (usize, usize) {
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let seed = args.windows(2).find(|w| w[0] == "--seed").and_then(|w| w[1].parse().ok()).unwrap_or(17);
    let data = support::data();
    let num = |name: &str| args.windows(2).find(|w| w[0] == name).and_then(|w| w[1].parse::<f64>().ok());
    let mut base = ClipOptions::new(seed, &data);
    base.width = num("--width").map_or(base.width, |v| v as u32);
    base.height = num("--height").map_or(base.height, |v| v as u32);
    base.crowd = num("--crowd").unwrap_or(base.crowd);
    let (opts, list_size, thresholds, track_thresholds) = if full {
        (
            base,
            600,
            vec![0.90, 0.92, 0.93, 0.935, 0.94, 0.945, 0.95, 0.955, 0.96],
            vec![0.92, 0.93, 0.935, 0.94, 0.945, 0.95, 0.955, 0.96],
        )
    } else {
        (ClipOptions { passes: 8, enrolled: 4, width: 480, height: 270, fps: 5, ..base }, 100, vec![0.94], vec![0.95])
    };
    let dir = tempfile::tempdir().expect("temp dir");

    let t = Instant::now();
    let clip = Clip::plan(&opts).expect("plan the clip");
    clip.write(dir.path()).expect("encode the clip (ffmpeg installed by scripts/setup.sh)");
    let m = clip.manifest.clone();
    let truth = clip.truth.clone();
    drop(clip);
    let generated = t.elapsed();

    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    // Analysed as a tracked camera is: detections down to [tracking] low, every accepted face
    // embedded (each rule counts what it would have embedded). The frame rule sees only the
    // faces a posted frame keeps ([inference] detect_threshold).
    let cfg = facewatch::config::ServiceConfig::default();
    let mut engine_opts = InferenceOptions::default();
    engine_opts.pipeline.detector.score_threshold = cfg.tracking.low;
    engine_opts.live_threshold = cfg.tracking.low;
    if let Some(side) = num("--detect-max-side") {
        engine_opts.pipeline.detector.max_side = side as u32;
    }
    let frame_detection = cfg.inference.detect_threshold;
    let engine = Inference::start(&models, &engine_opts, Arc::new(Metrics::default()))
        .expect("models installed by scripts/setup.sh");
    let t = Instant::now();
    let list = build_list(&engine, &m, list_size, seed, "auto").expect("enroll the list");
    let enrolled_in = t.elapsed();
    let t = Instant::now();
    let frames = analyse_clip(&engine, dir.path(), &m, QualityGate::default()).expect("analyse the clip");
    let analysed = t.elapsed();
    let (found, total) = detection_recall(&frames, &truth);

    println!(
        "clip seed {seed}: {}x{} at {} fps, {} frames, {} passes ({} enrolled), {:?}; generated in {:.1} s",
        m.width,
        m.height,
        m.fps,
        m.frames,
        m.passes.len(),
        m.passes.iter().filter(|p| p.subject.is_some()).count(),
        m.codec,
        generated.as_secs_f64()
    );
    println!(
        "list: {} subjects ({} of the clip's {} enrolled, {} photos refused), in {:.1} s",
        list.subjects,
        list.enrolled,
        m.enroll.len(),
        list.refused,
        enrolled_in.as_secs_f64()
    );
    println!("detector max_side {}", engine_opts.pipeline.detector.max_side);
    println!(
        "engine: {} frames in {:.1} s ({:.1} fps); {} faces; detection recall {found}/{total} = {:.1} %",
        frames.len(),
        analysed.as_secs_f64(),
        frames.len() as f64 / analysed.as_secs_f64(),
        frames.iter().map(|f| f.faces.len()).sum::<usize>(),
        100.0 * found as f64 / total.max(1) as f64
    );
    println!();
    println!(
        "| rule | pass TPIR | alerted / enrolled passes | false alerts | per 1,000 passes | time to alert median / p90 (s) | embeddings per pass | ID switches |"
    );
    println!("|---|---|---|---|---|---|---|---|");

    // Each rule borrows the list and hands it back for the next.
    type MakeRule = Box<dyn Fn(ListIndex) -> Box<dyn RuleWithList>>;
    let mut rules: Vec<MakeRule> = Vec::new();
    for &t in &thresholds {
        rules.push(Box::new(move |index| {
            Box::new(FrameLevel::new(index, Policy::with_threshold(t)).with_detection_threshold(frame_detection))
        }));
    }
    // `--min-agreeing N`, `--strong-margin M`, `--max-age F`, `--split-below C`, `--max-distance D`:
    // the track rule's and the tracker's settings, for calibration.
    let mut tracking = facewatch::config::TrackingSection::default();
    let arg = |name: &str| args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone());
    if let Some(n) = arg("--min-agreeing").and_then(|v| v.parse().ok()) {
        tracking.min_agreeing = n;
    }
    if let Some(m) = arg("--strong-margin").and_then(|v| v.parse().ok()) {
        tracking.strong_margin = m;
    }
    if let Some(v) = arg("--max-age").and_then(|v| v.parse().ok()) {
        tracking.max_age = v;
        tracking.max_lost_ms = tracking.max_lost_ms.max(u64::from(v) * 1000 / u64::from(m.fps.max(1)));
    }
    if let Some(v) = arg("--split-below").and_then(|v| v.parse().ok()) {
        tracking.split_below = v;
    }
    if let Some(v) = arg("--max-distance").and_then(|v| v.parse().ok()) {
        tracking.max_distance = v;
    }
    // The track rule (the service's defaults: [tracking]) at its own thresholds; the frame
    // threshold it uses for a "strong" single face stays 0.94.
    for &t in &track_thresholds {
        let tracking = tracking.clone();
        rules.push(Box::new(move |index| {
            let policy = Policy { track_threshold: t, ..Policy::with_threshold(0.94) };
            let tracking = tracking.clone();
            Box::new(TrackLevel::new(index, policy, tracking.tracker(), tracking.rule()).expect("track rule"))
        }));
    }
    let mut index = list.index;
    let mut results = Vec::new();
    for make in &rules {
        let mut r = make(index);
        let emitted = rule::run(r.as_rule(), &frames).expect("run the rule");
        let v = video::evaluate(&m.passes, &truth, m.fps, &emitted);
        let secs = |s: Option<f64>| s.map(|s| format!("{s:.1}")).unwrap_or_else(|| "-".into());
        println!(
            "| {} | {:.3} | {} / {} | {} | {:.0} | {} / {} | {:.1} | {} |",
            r.as_rule().name(),
            v.pass_tpir,
            v.alerted_passes,
            v.enrolled_passes,
            v.false_alerts,
            v.false_alerts_per_1000_passes,
            secs(v.time_to_alert_median_s),
            secs(v.time_to_alert_p90_s),
            v.embeddings_per_pass,
            v.id_switches.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
        );
        results.push(v);
        index = r.into_index();
    }

    // Each rule's threshold: the fewest false alerts at pass TPIR >= 0.95.
    let (frame_results, track_results) = results.split_at(thresholds.len());
    let recommend = |what: &str, ts: &[f32], rs: &[VideoMetrics]| {
        let best = ts
            .iter()
            .zip(rs)
            .filter(|(_, v)| v.pass_tpir >= 0.95)
            .min_by(|a, b| a.1.false_alerts.cmp(&b.1.false_alerts).then(b.0.total_cmp(a.0)))
            .map(|(t, v)| (*t, v.clone()));
        match &best {
            Some((t, v)) => println!(
                "recommended {what} threshold: {t} (pass TPIR {:.3}, {:.0} false alerts per 1,000 passes, {:.1} embeddings per pass)",
                v.pass_tpir, v.false_alerts_per_1000_passes, v.embeddings_per_pass
            ),
            None => println!("no {what} threshold reaches pass TPIR 0.95 on this clip"),
        }
        best
    };
    let frame_best = recommend("frame-rule", &thresholds, frame_results);
    let track_best = recommend("track-rule", &track_thresholds, track_results);
    if let (Some((_, f)), Some((_, t))) = (&frame_best, &track_best) {
        println!(
            "track rule against frame rule, each at its recommended threshold: false alerts {} against {}, embeddings per pass {:.1} against {:.1} ({:.1}x fewer)",
            t.false_alerts,
            f.false_alerts,
            t.embeddings_per_pass,
            f.embeddings_per_pass,
            f.embeddings_per_pass / t.embeddings_per_pass.max(1e-9)
        );
    }

    // Why enrolled passes were missed at the default threshold: the best score of the pass's
    // own subject over its embedded faces, and whether that subject alerted (falsely) before.
    if full {
        let mut r = FrameLevel::new(index, Policy::with_threshold(0.94)).with_detection_threshold(frame_detection);
        let emitted = rule::run(&mut r, &frames).expect("run the rule");
        index = r.into_index();
        for p in m.passes.iter().filter(|p| p.subject.is_some()) {
            let subject = p.subject.as_deref().unwrap_or_default();
            let true_alert = emitted.alerts.iter().any(|a| {
                a.subject == subject
                    && a.bbox.is_some_and(|b| associate(&b, &truth[a.frame as usize]).is_some_and(|q| q.pass == p.id))
            });
            if true_alert {
                continue;
            }
            let (mut best, mut faces) = (f32::MIN, 0);
            for f in &frames[p.first_frame as usize..=p.last_frame as usize] {
                for face in &f.faces {
                    let (Some(e), Some(q)) =
                        (&face.embedding, associate(&face.detection.bbox, &truth[f.frame as usize]))
                    else {
                        continue;
                    };
                    if q.pass != p.id {
                        continue;
                    }
                    faces += 1;
                    let hits = index.search(e, list.subjects.max(1) * 4).expect("search");
                    for &(id, score) in hits.first().into_iter().flatten() {
                        if index.owner(id).is_some_and(|o| o.subject == subject) {
                            best = best.max(score);
                        }
                    }
                }
            }
            let before = emitted.alerts.iter().filter(|a| a.subject == subject && a.frame < p.first_frame).count();
            let own = match (faces, best == f32::MIN) {
                (0, _) => "-".to_string(),
                (_, true) => "none (no template enrolled)".to_string(),
                _ => format!("{best:.3}"),
            };
            println!(
                "missed at 0.94: pass {} ({subject}): {faces} embedded faces, best own score {own}, {before} earlier alerts for the subject",
                p.id
            );
        }
    }
    let _ = &index;

    if !full {
        // The smoke run: the clip is seen (most faces detected), enrolled people are found,
        // and every accepted face was embedded once by the frame rule.
        assert!(found * 2 > total, "detection recall {found}/{total}");
        let v = &results[0];
        assert!(v.alerted_passes >= 1, "{v:?}");
        let accepted: usize = frames
            .iter()
            .map(|f| f.faces.iter().filter(|x| x.embedding.is_some() && x.detection.score >= frame_detection).count())
            .sum();
        assert_eq!(v.embeddings, accepted as u64);
        // The track rule sees the same faces and embeds fewer of them.
        let t = &results[thresholds.len()];
        assert!(t.embeddings < v.embeddings, "track rule embedded {} of {}", t.embeddings, v.embeddings);
        assert!(t.id_switches.is_some(), "the track rule reports its tracks");
    }
}

/// A rule that holds the list while it runs.
trait RuleWithList {
    fn as_rule(&mut self) -> &mut dyn VideoRule;
    fn into_index(self: Box<Self>) -> ListIndex;
}

impl RuleWithList for TrackLevel {
    fn as_rule(&mut self) -> &mut dyn VideoRule {
        self
    }
    fn into_index(self: Box<Self>) -> ListIndex {
        TrackLevel::into_index(*self)
    }
}

impl RuleWithList for FrameLevel {
    fn as_rule(&mut self) -> &mut dyn VideoRule {
        self
    }
    fn into_index(self: Box<Self>) -> ListIndex {
        FrameLevel::into_index(*self)
    }
}
