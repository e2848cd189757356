//! `facewatch eval`: accuracy on a labelled folder (LFW pair verification when the folder has
//! the pairs, open-set identification always), written as the report and charts the ops pages
//! read; `facewatch eval reviews`: the same rates from reviewed alerts; `facewatch eval clip`: a
//! seeded arrival-hall clip with its ground truth; `facewatch eval video`: both rules on such a
//! clip, and the thresholds to set.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use clap::Subcommand;

use facewatch::alerts::AlertStore;
use facewatch::config::ServiceConfig;
use facewatch::eval;
use facewatch::eval::calibrate::{self, AnalysedClip, Recommendation, Sweep};
use facewatch::eval::clip::{ClipOptions, Codec};
use facewatch::eval::plot;
use facewatch::eval::report::{self, EvalReport, Measured};
use facewatch::inference::Inference;
use facewatch::metrics::Metrics;

#[derive(Subcommand)]
pub enum EvalAction {
    /// Generate a clip of people walking toward the camera (video, manifest.json with the
    /// photos to enroll, truth.jsonl with every face of every frame). Same seed, same clip.
    Clip {
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        /// Development data: faces/<Identity>/*.jpg and nonface/ backgrounds.
        #[arg(long, env = "FACEWATCH_TEST_DATA", default_value = "../shared/data")]
        data: PathBuf,
        #[arg(long, default_value_t = 72)]
        passes: usize,
        /// How many passes are enrolled people (the rest are strangers).
        #[arg(long, default_value_t = 24)]
        enrolled: usize,
        #[arg(long, default_value_t = 960)]
        width: u32,
        #[arg(long, default_value_t = 540)]
        height: u32,
        #[arg(long, default_value_t = 10)]
        fps: u32,
        /// h264, h265 or mjpeg.
        #[arg(long, default_value = "h264")]
        codec: String,
        /// Mean number of people in view at once (12 for a busy hall).
        #[arg(long, default_value_t = 3.0)]
        crowd: f64,
    },
    /// Reviewed alerts by score, per list: confirmed (true matches) and dismissed (false ones)
    /// at and above each threshold, as JSON lines (one per list).
    Reviews {
        /// Only this list (default: every list alerts were raised on).
        #[arg(long)]
        list: Option<String>,
        /// Thresholds to count at (repeatable; default 0.80 to 1.00 by 0.01).
        #[arg(long = "threshold")]
        thresholds: Vec<f32>,
    },
    /// Run the frame rule and the track rule over a clip made by `eval clip` with the real
    /// models, against its enrolled people padded with distractors from the photos folder, and
    /// recommend each rule's threshold (a list's `threshold` and `track_threshold`): the highest
    /// whose pass TPIR reaches the target. Prints a table, the recommendation, and a JSON line.
    Video {
        /// The folder `eval clip --out` wrote (manifest.json, truth.jsonl, the video).
        #[arg(long)]
        clip: PathBuf,
        /// Subjects on the list: the clip's enrolled people, then distractors never shown.
        #[arg(long, default_value_t = 600)]
        list_size: usize,
        /// Share of enrolled passes that must raise an alert.
        #[arg(long, default_value_t = 0.95)]
        target_tpir: f64,
        /// Chooses the distractors (default: the clip's seed).
        #[arg(long)]
        seed: Option<u64>,
    },
}

/// `facewatch eval FACES_DIR`'s options.
pub struct FolderEval {
    pub faces: PathBuf,
    pub workers: usize,
    pub target_fpir: f64,
    pub out: Option<PathBuf>,
}

pub fn action(s: &ServiceConfig, a: EvalAction) -> anyhow::Result<ExitCode> {
    match a {
        EvalAction::Reviews { list, thresholds } => reviews(s, list, thresholds),
        EvalAction::Video { clip, list_size, target_tpir, seed } => video(s, &clip, list_size, target_tpir, seed),
        EvalAction::Clip { seed, out, data, passes, enrolled, width, height, fps, codec, crowd } => {
            let opts = ClipOptions {
                passes,
                enrolled,
                width,
                height,
                fps,
                codec: Codec::parse(&codec)?,
                crowd,
                ..ClipOptions::new(seed, &data)
            };
            let m = eval::clip::generate(&opts, &out)?;
            println!(
                "{}",
                serde_json::to_string(&json!({
                    "video": out.join(&m.video),
                    "frames": m.frames,
                    "passes": m.passes.len(),
                    "enrolled": m.enroll.len(),
                }))?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Lists known to have alerts, at most (one JSON line each).
const MAX_LISTS: usize = 10_000;

fn reviews(s: &ServiceConfig, list: Option<String>, thresholds: Vec<f32>) -> anyhow::Result<ExitCode> {
    let db = s.service.data_dir.join("facewatch.db");
    if !db.exists() {
        anyhow::bail!("no store at {} (set --data-dir)", db.display());
    }
    let store = AlertStore::open(&db)?;
    let thresholds = if thresholds.is_empty() { facewatch::tuning::rate_grid() } else { thresholds };
    let lists = match list {
        Some(l) => vec![l],
        None => store.alert_lists(MAX_LISTS)?,
    };
    for l in lists {
        let rates: Vec<_> = store
            .review_rates(&l, &thresholds)?
            .into_iter()
            .map(|r| {
                json!({"threshold": r.threshold, "confirmed": r.confirmed, "dismissed": r.dismissed,
                    "confirm_rate": r.confirm_rate(), "dismiss_rate": r.dismiss_rate()})
            })
            .collect();
        println!("{}", json!({"list": l, "rates": rates}));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(s: &ServiceConfig, threads_given: bool, f: &FolderEval) -> anyhow::Result<ExitCode> {
    let faces = f.faces.as_path();
    if !(0.0..=1.0).contains(&f.target_fpir) {
        anyhow::bail!("--target-fpir {}: expected a rate in 0..1", f.target_fpir);
    }
    let mut opts = s.pipeline_options();
    // Evaluation picks the labelled (centre) face among all candidates, as the reference does.
    opts.detector.score_threshold = opts.detector.score_threshold.min(0.6);
    // Parallelism comes from the workers unless --threads asks for more per model.
    if !threads_given || s.models.threads == 0 {
        opts.runtime.intra_threads = 1;
    }
    let set = eval::IdentificationSet::from_faces_dir(faces)?;
    if set.gallery.is_empty() {
        anyhow::bail!("{}: no identity folder with 2 or more photos (<identity>/*.jpg)", faces.display());
    }
    // LFW pair verification where the folder has its pairs; open-set identification always.
    let pairs_file = faces.join("pairs_lfw_view2.tsv");
    let pairs = if pairs_file.exists() { Some(eval::read_pairs(&pairs_file)?) } else { None };
    let paths = set.all_paths();
    let bar = indicatif::ProgressBar::new(paths.len() as u64).with_style(indicatif::ProgressStyle::with_template(
        "embedding {bar:40} {pos}/{len} photos, {per_sec}, {eta} left",
    )?);
    let t0 = std::time::Instant::now();
    // The gallery is also embedded as the service enrolls it (a template may differ from a
    // probe's embedding).
    let gallery_paths: BTreeSet<PathBuf> = set.gallery.iter().map(|g| g.1.clone()).collect();
    let embs = eval::embed_centre_faces(&s.models_dir(), &opts, &paths, f.workers, &gallery_paths, &|n| {
        bar.set_position(n as u64)
    })?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let gallery: BTreeMap<PathBuf, Option<Vec<f32>>> = paths
        .iter()
        .zip(&embs)
        .filter(|(p, _)| gallery_paths.contains(*p))
        .map(|(p, e)| (p.clone(), e.as_ref().and_then(|e| e.template.clone())))
        .collect();
    let by_path: BTreeMap<PathBuf, Option<Vec<f32>>> =
        paths.iter().cloned().zip(embs.into_iter().map(|e| e.map(|e| e.embedding))).collect();
    let by_rel: BTreeMap<String, Option<Vec<f32>>> = by_path
        .iter()
        .filter_map(|(p, e)| Some((p.strip_prefix(faces).ok()?.to_string_lossy().into_owned(), e.clone())))
        .collect();
    let m = facewatch::manifest::Manifest::load(&s.models_dir())?;
    let ver = pairs.map(|p| eval::verification(&p, &by_rel));
    let (ident, scores) = eval::identification_scores(
        &set,
        &by_path,
        &gallery,
        &s.watchlist.index_factory,
        &m.embedder.name,
        m.embedder.embedding_size as u32,
    )?;
    let report = EvalReport::new(
        Measured {
            source: faces.display().to_string(),
            embedder: m.embedder.name.clone(),
            images: paths.len(),
            seconds: secs,
            verification: ver.clone(),
            identification: ident.clone(),
            scores,
        },
        f.target_fpir,
    )?;
    let out = f.out.clone().unwrap_or_else(|| report::dir(&s.service.data_dir));
    let written = write_report(&report, &out)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "images": paths.len(),
            "seconds": secs,
            "images_per_second": paths.len() as f64 / secs,
            "verification": ver,
            "identification": ident,
            "target_fpir": f.target_fpir,
            "recommended": report.recommended,
            "written": written,
        }))?
    );
    Ok(ExitCode::SUCCESS)
}

/// The charts (recommended threshold marked) and then the report, each file written atomically:
/// the report last, so a reader that finds a new report finds its charts.
fn write_report(r: &EvalReport, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let what = format!("evaluation of {}", r.source);
    let det = plot::det_chart(&what, &r.scores, &r.det, Some(&r.recommended));
    let hist = plot::histogram_chart(&what, &r.histogram, Some(r.recommended.threshold));
    let mut written = Vec::new();
    for (name, chart) in [("det", &det), ("histogram", &hist)] {
        written.push(report::write_atomic(&out.join(format!("{name}.svg")), chart.svg().as_bytes())?);
        written.push(report::write_atomic(&out.join(format!("{name}.png")), &chart.png()?)?);
    }
    written.push(r.write(out)?);
    Ok(written)
}

fn video(
    s: &ServiceConfig,
    dir: &Path,
    list_size: usize,
    target_tpir: f64,
    seed: Option<u64>,
) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&target_tpir) {
        anyhow::bail!("--target-tpir {target_tpir} outside 0..1");
    }
    if !(1..=100_000).contains(&list_size) {
        anyhow::bail!("--list-size {list_size} outside 1..100000");
    }
    if !dir.join("manifest.json").is_file() {
        anyhow::bail!("{}: no clip here (manifest.json missing; make one with `facewatch eval clip`)", dir.display());
    }
    let (manifest, _) = eval::clip::read(dir)?;
    let engine = Inference::start(&s.models_dir(), &calibrate::engine_options(s), Arc::new(Metrics::default()))?;
    let mut clip =
        AnalysedClip::open(&engine, dir, list_size, seed.unwrap_or(manifest.seed), &s.watchlist.index_factory)?;
    let sweep = Sweep::new(s, engine.embedder_spec().default_threshold);
    let rows = calibrate::sweep(&mut clip, &sweep)?;
    println!("{}", clip.summary());
    println!();
    print!("{}", calibrate::table(&rows));
    println!();
    let rec = Recommendation::from_rows(&rows, target_tpir);
    print!("{}", rec.lines());
    println!("{}", serde_json::to_string(&rec)?);
    Ok(ExitCode::SUCCESS)
}
