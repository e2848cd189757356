//! facewatch's side of the reference comparison (`benches/reference/compare.sh`): per image,
//! decode -> detect -> align -> embed every face, timed, plus the time spent inside the two
//! `session.run` calls (the model floor), so the pipeline's own overhead is known.
//!
//! Two passes per set:
//! - **latency**: one image at a time, decode -> detect -> align -> embed on this thread, each
//!   stage timed (a large JPEG is decoded in two strips on two threads, as the engine does
//!   when its models are idle); the model floor is the time inside `session.run` in this pass
//!   (nothing else runs then, so it is the bare cost of the two model calls);
//! - **stream**: the same images through the service's own engine ([`Inference`]: decode and
//!   detect on a worker thread, embedding on another, bounded queues), as cameras feed it;
//!   time per image is wall time / images, and its overhead is taken against the bare floor of
//!   the latency pass, so CPU that the overlap steals from the models shows up as overhead.
//!
//! Arguments after `--bench`: `NAME:LIST_FILE` pairs (one image path per line); `--threads N`
//! (the core budget: intra-op threads in the latency pass; in the stream pass each model gets
//! min(N, 2), the service's default, unless `--stream-threads T`); `--detect-workers W`
//! (default 1, the service's default); `--rounds R` (default 5; see [`run`]);
//! `COMPARE_VERBOSE=1` prints every round.
//! Without `--bench` (under `cargo test`) a three-image smoke run.

mod support;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use facewatch::config::ServiceConfig;
use facewatch::inference::{Analysis, Inference, InferenceOptions, Mode};
use facewatch::metrics::Metrics;
use facewatch::vision::quality::QualityGate;

use facewatch::pipeline::{Pipeline, PipelineOptions};
use facewatch::vision::decode::{decode, decode_with};
use facewatch::vision::runtime::RuntimeOptions;
use serde_json::json;
use tokio::sync::oneshot;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A gate that refuses nothing: every face is embedded, as in the latency pass and the reference.
fn open_gate() -> QualityGate {
    QualityGate {
        min_face_px: 0.0,
        min_score: 0.0,
        min_sharpness: f32::NEG_INFINITY,
        min_brightness: f32::NEG_INFINITY,
        max_brightness: f32::INFINITY,
        max_abs_yaw_deg: f32::INFINITY,
        max_abs_pitch_deg: f32::INFINITY,
    }
}

/// The images to run once before timing: the first three, and the first of every further
/// frame size. The first run at a new size grows buffers (the decoder's, the models' inputs,
/// onnxruntime's arena); a camera pays that once, so it is not per-image cost. The reference
/// (`reference.py`) warms up by the same rule.
fn warm_up(images: &[Vec<u8>]) -> Vec<usize> {
    let mut seen = std::collections::HashSet::new();
    (0..images.len())
        .filter(|&i| {
            let size = decode(&images[i], u64::MAX).map(|img| img.dimensions()).unwrap_or_default();
            seen.insert(size) || i < 3
        })
        .collect()
}

/// Wall time per image (ms) and faces found when the images stream through the service engine.
fn stream(engine: &Inference, images: &[Vec<u8>]) -> (f64, usize) {
    const IN_FLIGHT: usize = 4;
    let frames: Vec<Bytes> = images.iter().map(|b| Bytes::copy_from_slice(b)).collect();
    let submit = |b: &Bytes| engine.submit(b.clone(), Mode::Live(open_gate())).expect("queue has room");
    let faces_of = |rx: oneshot::Receiver<facewatch::error::Result<Analysis>>| {
        rx.blocking_recv().expect("reply").expect("analysis").faces.len()
    };
    // Warm-up, then the timed run with a window of frames in flight (the queue is never full).
    for i in warm_up(images) {
        faces_of(submit(&frames[i]));
    }
    // At least 30 frames, so that filling and draining the pipeline does not weigh.
    let rounds = 30usize.div_ceil(frames.len());
    let n = rounds * frames.len();
    let t = Instant::now();
    let mut pending = VecDeque::new();
    let mut faces = 0;
    for b in frames.iter().cycle().take(n) {
        if pending.len() == IN_FLIGHT {
            faces += faces_of(pending.pop_front().expect("window"));
        }
        pending.push_back(submit(b));
    }
    faces += pending.into_iter().map(faces_of).sum::<usize>();
    (t.elapsed().as_secs_f64() * 1e3 / n as f64, faces / rounds)
}

/// One latency pass over the set: per-image times and per-stage sums (ms per image).
struct Latency {
    times: Vec<f64>,
    faces: usize,
    mean: f64,
    decode: f64,
    detect_wall: f64,
    prepare: f64,
    embed_wall: f64,
    model_detect: f64,
    model_embed: f64,
}

impl Latency {
    fn floor(&self) -> f64 {
        self.model_detect + self.model_embed
    }
}

fn latency(p: &mut Pipeline, images: &[Vec<u8>], threads: usize) -> Latency {
    let (d0, e0) = (p.detector.model_time, p.embedder.model_time);
    let mut times = Vec::with_capacity(images.len());
    let mut faces = 0;
    // Wall time per stage: decode, detect (model + pre/post), prepare (align + quality), embed.
    let mut stage = [0.0f64; 4];
    let t_all = Instant::now();
    for b in images {
        let t = Instant::now();
        let img = decode_with(b, u64::MAX, threads).unwrap();
        let t1 = t.elapsed().as_secs_f64();
        let dets = p.detector.detect(&img).unwrap();
        let t2 = t.elapsed().as_secs_f64();
        let mut found = p.prepare(&img, dets, None);
        let t3 = t.elapsed().as_secs_f64();
        p.embed_faces(&mut found).unwrap();
        let t4 = t.elapsed().as_secs_f64();
        faces += found.len();
        for (acc, dt) in stage.iter_mut().zip([t1, t2 - t1, t3 - t2, t4 - t3]) {
            *acc += dt;
        }
        times.push(t4 * 1e3);
    }
    let n = images.len() as f64;
    let per = |s: f64| s * 1e3 / n;
    Latency {
        times,
        faces,
        mean: per(t_all.elapsed().as_secs_f64()),
        decode: per(stage[0]),
        detect_wall: per(stage[1]),
        prepare: per(stage[2]),
        embed_wall: per(stage[3]),
        model_detect: per((p.detector.model_time - d0).as_secs_f64()),
        model_embed: per((p.embedder.model_time - e0).as_secs_f64()),
    }
}

/// Rounds of (latency pass, stream pass), so that both see the same machine: this shared
/// machine drifts by 10-20 % within minutes, which would swamp a ratio taken across passes
/// minutes apart. Every figure printed is a mean over the rounds.
fn run(p: &mut Pipeline, engine: &Inference, name: &str, paths: &[String], rounds: usize, threads: usize) {
    let images: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"))).collect();
    for b in warm_up(&images).into_iter().map(|i| &images[i]) {
        let img = decode(b, u64::MAX).unwrap();
        p.faces(&img, None).unwrap();
    }
    let mut lat = Vec::new();
    let mut streamed = Vec::new();
    for _ in 0..rounds {
        let l = latency(p, &images, threads);
        let (stream_ms, stream_faces) = stream(engine, &images);
        assert_eq!(stream_faces, l.faces, "both passes find the same faces");
        if std::env::var_os("COMPARE_VERBOSE").is_some() {
            eprintln!("{name}: floor {:.2} latency {:.2} stream {:.2}", l.floor(), l.mean, stream_ms);
        }
        streamed.push(stream_ms);
        lat.push(l);
    }
    // Means over the rounds; overheads from those means, so every figure printed agrees with
    // the others (a median of per-round ratios need not match the medians of its parts).
    let avg = |f: &dyn Fn(&Latency) -> f64| lat.iter().map(f).sum::<f64>() / rounds as f64;
    let floor = avg(&Latency::floor);
    let (mean, dec) = (avg(&|l| l.mean), avg(&|l| l.decode));
    let stream_ms = streamed.iter().sum::<f64>() / rounds as f64;
    let mut all_times: Vec<f64> = lat.iter().flat_map(|l| l.times.iter().copied()).collect();
    let pct = |a: f64| 100.0 * (a - floor) / floor;
    println!(
        "{}",
        json!({
            "impl": "facewatch", "set": name, "images": images.len(), "faces": lat[0].faces, "rounds": rounds,
            "median_ms": median(&mut all_times), "mean_ms": mean,
            "model_detect_ms": avg(&|l| l.model_detect), "model_embed_ms": avg(&|l| l.model_embed),
            "decode_ms": dec,
            "detect_wall_ms": avg(&|l| l.detect_wall), "prepare_ms": avg(&|l| l.prepare),
            "embed_wall_ms": avg(&|l| l.embed_wall),
            "overhead_pct": pct(mean),
            "overhead_after_decode_pct": pct(mean - dec),
            "stream_ms": stream_ms,
            "stream_overhead_pct": pct(stream_ms),
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |f: &str| args.iter().position(|a| a == f).and_then(|i| args.get(i + 1)?.parse::<usize>().ok());
    let threads = flag("--threads").unwrap_or(2);
    let rounds = flag("--rounds").unwrap_or(if args.iter().any(|a| a == "--bench") { 5 } else { 1 }).max(1);
    let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let opts = PipelineOptions {
        // One image at a time on this thread: the two models never run at once.
        runtime: RuntimeOptions { intra_threads: threads, cuda: false, spin: true },
        ..PipelineOptions::default()
    };
    let mut p = Pipeline::open(&models, opts.clone()).expect("models installed by scripts/setup.sh");
    // The service's default, within the core budget.
    let stream_threads = flag("--stream-threads").unwrap_or(ServiceConfig::default().models.threads.min(threads));
    let stream_opts = InferenceOptions {
        pipeline: PipelineOptions {
            runtime: RuntimeOptions { intra_threads: stream_threads, cuda: false, spin: false },
            ..opts
        },
        detect_workers: flag("--detect-workers").unwrap_or(1),
        queue_capacity: 8,
        max_pixels: u64::MAX,
        retry_after_s: 1,
        ..InferenceOptions::default()
    };
    let engine = Inference::start(&models, &stream_opts, Arc::new(Metrics::default())).expect("engine starts");
    let sets: Vec<(String, Vec<String>)> = if args.iter().any(|a| a == "--bench") {
        args.iter()
            .filter_map(|a| a.split_once(':'))
            .map(|(name, file)| {
                let list = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
                (name.to_string(), list.lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
            })
            .collect()
    } else {
        let f = support::data().join("faces/Colin_Powell");
        vec![("smoke".into(), (1..=3).map(|i| f.join(format!("{i:04}.jpg")).display().to_string()).collect())]
    };
    for (name, paths) in sets {
        run(&mut p, &engine, &name, &paths, rounds, threads);
    }
    engine.shutdown();
}
