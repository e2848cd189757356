//! Throughput of the two models on the execution provider the sessions really run on: faces
//! per second through the embedder at batch 1, 8, 32 and 64, and frames per second through the
//! detector at three frame sizes. The chips are real aligned faces from the crowd photos and
//! LFW. Prints a markdown table (the one in BENCHMARKS.md).
//!
//! - CPU: `cargo bench --bench throughput`
//! - GPU: `cargo bench --features cuda --bench throughput`, with `ORT_DYLIB_PATH` pointing at
//!   the `libonnxruntime.so` of the `onnxruntime-gpu` wheel. The provider column says what ran:
//!   if CUDA cannot start, the sessions fall back to the CPU and the table says so.
//!
//! Arguments after `--bench`: `--threads N` (intra-op threads, default all cores),
//! `--seconds S` per row (default 3), `--cpu` (do not ask for CUDA).
//! Without `--bench` (under `cargo test`) a short run that checks a batch gives the same
//! embeddings as one face at a time.

mod support;

use std::time::{Duration, Instant};

use facewatch::pipeline::{Pipeline, PipelineOptions};
use facewatch::vision::decode::{DEFAULT_MAX_PIXELS, decode};
use facewatch::vision::embed::cosine;
use facewatch::vision::runtime::{self, RuntimeOptions};
use image::RgbImage;
use image::imageops::{FilterType, resize};

const BATCHES: [usize; 4] = [1, 8, 32, 64];

/// Every aligned face of the crowd photos, then LFW faces until there are `n`.
fn chips(p: &mut Pipeline, n: usize) -> Vec<RgbImage> {
    let data = support::data();
    let mut paths: Vec<_> = std::fs::read_dir(data.join("multiface"))
        .expect("multiface/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    paths.sort();
    let mut lfw: Vec<_> = std::fs::read_dir(data.join("faces")).expect("faces/").flatten().map(|e| e.path()).collect();
    lfw.sort();
    paths.extend(lfw.iter().map(|d| d.join("0001.jpg")));
    let mut out = Vec::with_capacity(n);
    for path in paths {
        if out.len() >= n {
            break;
        }
        let Ok(bytes) = std::fs::read(&path) else { continue };
        let img = decode(&bytes, DEFAULT_MAX_PIXELS).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.extend(p.faces(&img, None).expect("faces").into_iter().map(|f| f.chip));
    }
    out.truncate(n);
    assert_eq!(out.len(), n, "not enough faces in the data");
    out
}

/// One row of the table: wall and model time per call, and calls per second.
struct Rate {
    calls: usize,
    per_call_ms: f64,
    model_ms: f64,
    per_s: f64,
}

/// Calls `run` once to warm up (the first call of a shape allocates, and on CUDA picks its
/// kernels), then until `budget` has passed and at least 5 times. `model_time` reads the
/// session's accumulated time inside `session.run`.
fn rate(
    p: &mut Pipeline,
    budget: Duration,
    model_time: fn(&Pipeline) -> Duration,
    mut run: impl FnMut(&mut Pipeline),
) -> Rate {
    run(p);
    let before = model_time(p);
    let t = Instant::now();
    let mut calls = 0;
    while calls < 5 || t.elapsed() < budget {
        run(p);
        calls += 1;
    }
    let wall = t.elapsed().as_secs_f64();
    Rate {
        calls,
        per_call_ms: wall * 1e3 / calls as f64,
        model_ms: (model_time(p) - before).as_secs_f64() * 1e3 / calls as f64,
        per_s: calls as f64 / wall,
    }
}

/// Batched embeddings must equal one-at-a-time ones: the table is only worth something if
/// batching changes speed and nothing else.
fn check_batches_agree(p: &mut Pipeline, chips: &[RgbImage]) {
    let refs: Vec<&RgbImage> = chips.iter().collect();
    let batched = p.embedder.embed(&refs).expect("batch");
    for (chip, b) in chips.iter().zip(&batched) {
        let one = p.embedder.embed(&[chip]).expect("one").remove(0);
        let sim = cosine(&one, b);
        assert!(sim > 0.9999, "batched embedding differs from the single one: cosine {sim}");
    }
}

fn main() {
    // Shows why CUDA did not start, if it did not (FACEWATCH_LOG=info also shows the provider).
    facewatch::logging::init();
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let value = |f: &str| args.iter().position(|a| a == f).and_then(|i| args.get(i + 1)?.parse::<f64>().ok());
    let runtime = RuntimeOptions {
        intra_threads: value("--threads").unwrap_or(0.0) as usize,
        cuda: !args.iter().any(|a| a == "--cpu") && RuntimeOptions::default().cuda,
        // One thread drives both sessions, one after the other (as the CLI does).
        spin: true,
    };
    let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let opts = PipelineOptions { runtime: runtime.clone(), max_batch: 64, ..PipelineOptions::default() };
    let mut p = Pipeline::open(&models, opts).expect("models installed by scripts/setup.sh");
    let provider = runtime::provider_name(&runtime);

    if !bench {
        let chips = chips(&mut p, 4);
        check_batches_agree(&mut p, &chips);
        println!("throughput smoke: 4 faces, batched = one at a time ({provider})");
        return;
    }
    let budget = Duration::from_secs_f64(value("--seconds").unwrap_or(3.0));
    let chips = chips(&mut p, *BATCHES.iter().max().unwrap_or(&1));
    check_batches_agree(&mut p, &chips[..8]);

    println!("| model | batch / frame | provider | calls | ms per call | model ms per call | faces or frames / s |");
    println!("|---|---|---|---|---|---|---|");
    for n in BATCHES {
        let refs: Vec<&RgbImage> = chips[..n].iter().collect();
        let r = rate(
            &mut p,
            budget,
            |p| p.embedder.model_time,
            |p| {
                std::hint::black_box(p.embedder.embed(&refs).expect("embed"));
            },
        );
        let faces_per_s = r.per_s * n as f64;
        println!(
            "| embedder | {n} | {provider} | {} | {:.2} | {:.2} | {faces_per_s:.0} |",
            r.calls, r.per_call_ms, r.model_ms
        );
    }
    let data = support::data();
    let crowd = decode(&std::fs::read(data.join("multiface/faces.jpg")).expect("faces.jpg"), DEFAULT_MAX_PIXELS)
        .expect("decode");
    let lfw = decode(&std::fs::read(data.join("faces/George_W_Bush/0001.jpg")).expect("lfw"), DEFAULT_MAX_PIXELS)
        .expect("decode");
    for (name, frame) in [
        ("250x250", lfw),
        ("640x480", resize(&crowd, 640, 480, FilterType::Triangle)),
        ("1920x1080", resize(&crowd, 1920, 1080, FilterType::Triangle)),
    ] {
        let r = rate(
            &mut p,
            budget,
            |p| p.detector.model_time,
            |p| {
                std::hint::black_box(p.detector.detect(&frame).expect("detect"));
            },
        );
        println!(
            "| detector | {name} | {provider} | {} | {:.2} | {:.2} | {:.1} |",
            r.calls, r.per_call_ms, r.model_ms, r.per_s
        );
    }
}
