//! `facewatch eval`: accuracy on an LFW-style folder (verification pairs and open-set
//! identification); `facewatch eval clip`: a seeded arrival-hall clip with its ground truth;
//! `facewatch eval video`: both rules on such a clip, and the thresholds to set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use clap::Subcommand;

use facewatch::config::ServiceConfig;
use facewatch::eval;
use facewatch::eval::calibrate::{self, AnalysedClip, Recommendation, Sweep};
use facewatch::eval::clip::{ClipOptions, Codec};
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

pub fn action(s: &ServiceConfig, a: EvalAction) -> anyhow::Result<ExitCode> {
    match a {
        EvalAction::Video { clip, list_size, target_tpir, seed } => video(s, &clip, list_size, target_tpir, seed),
        EvalAction::Clip { seed, out, data, passes, enrolled, width, height, fps, codec } => {
            let opts = ClipOptions {
                passes,
                enrolled,
                width,
                height,
                fps,
                codec: Codec::parse(&codec)?,
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

pub fn run(s: &ServiceConfig, threads_given: bool, faces: &Path, workers: usize) -> anyhow::Result<ExitCode> {
    let mut opts = s.pipeline_options();
    // Evaluation picks the labelled (centre) face among all candidates, as the reference does.
    opts.detector.score_threshold = opts.detector.score_threshold.min(0.6);
    // Parallelism comes from the workers unless --threads asks for more per model.
    if !threads_given || s.models.threads == 0 {
        opts.runtime.intra_threads = 1;
    }
    let set = eval::IdentificationSet::from_faces_dir(faces)?;
    let pairs = eval::read_pairs(&faces.join("pairs_lfw_view2.tsv"))?;
    let paths = set.all_paths();
    let bar = indicatif::ProgressBar::new(paths.len() as u64);
    let t0 = std::time::Instant::now();
    let embs = eval::embed_centre_faces(&s.models_dir(), &opts, &paths, workers, &|n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let by_path: BTreeMap<PathBuf, Option<Vec<f32>>> = paths.iter().cloned().zip(embs).collect();
    let by_rel: BTreeMap<String, Option<Vec<f32>>> = by_path
        .iter()
        .filter_map(|(p, e)| Some((p.strip_prefix(faces).ok()?.to_string_lossy().into_owned(), e.clone())))
        .collect();
    let m = facewatch::manifest::Manifest::load(&s.models_dir())?;
    let ver = eval::verification(&pairs, &by_rel);
    let ident = eval::identification(
        &set,
        &by_path,
        &s.watchlist.index_factory,
        &m.embedder.name,
        m.embedder.embedding_size as u32,
    )?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "images": paths.len(),
            "seconds": secs,
            "images_per_second": paths.len() as f64 / secs,
            "verification": ver,
            "identification": ident,
        }))?
    );
    Ok(ExitCode::SUCCESS)
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
