//! facewatch's side of the reference comparison (`benches/reference/compare.sh`): per image,
//! decode -> detect -> align -> embed every face, timed, plus the time spent inside the two
//! `session.run` calls (the model floor), so the pipeline's own overhead is known.
//! Arguments after `--bench`: `NAME:LIST_FILE` pairs (one image path per line); `--threads N`.
//! Without `--bench` (under `cargo test`) a three-image smoke run.

mod support;

use std::time::Instant;

use facewatch::pipeline::{Pipeline, PipelineOptions};
use facewatch::vision::decode::decode;
use facewatch::vision::runtime::RuntimeOptions;
use serde_json::json;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run(p: &mut Pipeline, name: &str, paths: &[String]) {
    let images: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"))).collect();
    // Warm-up: first run of each input shape allocates.
    for b in images.iter().take(3) {
        let img = decode(b, u64::MAX).unwrap();
        p.faces(&img, None).unwrap();
    }
    let (d0, e0) = (p.detector.model_time, p.embedder.model_time);
    let mut times = Vec::with_capacity(images.len());
    let mut faces = 0;
    let mut decode_s = 0.0;
    let t_all = Instant::now();
    for b in &images {
        let t = Instant::now();
        let img = decode(b, u64::MAX).unwrap();
        decode_s += t.elapsed().as_secs_f64();
        faces += p.faces(&img, None).unwrap().len();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let total = t_all.elapsed();
    let det = (p.detector.model_time - d0).as_secs_f64() * 1e3 / images.len() as f64;
    let emb = (p.embedder.model_time - e0).as_secs_f64() * 1e3 / images.len() as f64;
    let mean = total.as_secs_f64() * 1e3 / images.len() as f64;
    let dec = decode_s * 1e3 / images.len() as f64;
    println!(
        "{}",
        json!({
            "impl": "facewatch", "set": name, "images": images.len(), "faces": faces,
            "median_ms": median(&mut times), "mean_ms": mean,
            "model_detect_ms": det, "model_embed_ms": emb,
            "decode_ms": dec,
            "overhead_pct": 100.0 * (mean - det - emb) / (det + emb),
            "overhead_after_decode_pct": 100.0 * (mean - dec - det - emb) / (det + emb),
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = args.iter().position(|a| a == "--threads").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(2);
    let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let opts = PipelineOptions {
        runtime: RuntimeOptions { intra_threads: threads, cuda: false },
        ..PipelineOptions::default()
    };
    let mut p = Pipeline::open(&models, opts).expect("models installed by scripts/setup.sh");
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
        run(&mut p, &name, &paths);
    }
}
