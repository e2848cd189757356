//! Watch-list search at scale: 1M synthetic 128-d templates, exact (flat) against HNSW and IVF
//! at several search settings. Per query (one probe at a time, as the service searches):
//! p50/p99 latency, recall@1 against exact search, and memory per million templates (the
//! serialised index). Probes are mates: a stored template plus noise (cosine about 0.9), like a
//! new photo of an enrolled person. Prints a table.
//! `cargo bench --bench search_scale` (1M); under `cargo test` a 20k smoke run.

#[path = "support/mod.rs"]
mod common;

use std::time::Instant;

use facewatch::watchlist::index::{apply_params, resolve};
use faiss::{Idx, Index, MetricType};

const D: usize = 128;

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// One query at a time: latencies (ms) and top-1 ids.
fn run_queries(ix: &mut faiss::index::IndexImpl, probes: &[f32]) -> (Vec<f64>, Vec<i64>) {
    let mut lat = Vec::new();
    let mut top = Vec::new();
    for q in probes.chunks_exact(D) {
        let t = Instant::now();
        let r = ix.search(q, 1).unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        top.push(r.labels[0].get().map(|v| v as i64).unwrap_or(-1));
    }
    lat.sort_by(f64::total_cmp);
    (lat, top)
}

fn size_mb_per_million(ix: &faiss::index::IndexImpl, n: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ix.faiss");
    faiss::write_index(ix, p.to_str().unwrap()).unwrap();
    std::fs::metadata(&p).unwrap().len() as f64 / 1e6 * (1e6 / n as f64)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 1_000_000 } else { 20_000 };
    let nq = if full { 1000 } else { 100 };
    let t = Instant::now();
    let data = common::unit_vectors(n, D, 42);
    let noise = common::unit_vectors(nq, D, 99);
    let mut probes = Vec::with_capacity(nq * D);
    for q in 0..nq {
        let i = (q * 7919) % n;
        let v: Vec<f32> = (0..D).map(|k| data[i * D + k] + 0.45 * noise[q * D + k]).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        probes.extend(v.iter().map(|x| x / norm));
    }
    let ids: Vec<Idx> = (0..n as u64).map(Idx::new).collect();
    eprintln!("data ready in {:.1} s", t.elapsed().as_secs_f64());

    let mut rows = Vec::new();
    let build = |spec: &str| -> (faiss::index::IndexImpl, f64) {
        let (factory, params) = resolve(spec, n);
        let t = Instant::now();
        let mut ix = faiss::index_factory(D as u32, &factory, MetricType::InnerProduct).unwrap();
        if !ix.is_trained() {
            // IVF: k-means on a sample, as a production build would.
            ix.train(&data[..(n.min(200_000)) * D]).unwrap();
        }
        ix.add_with_ids(&data, &ids).unwrap();
        apply_params(&mut ix, &params).unwrap();
        (ix, t.elapsed().as_secs_f64())
    };

    let (mut flat, flat_build) = build("IDMap2,Flat");
    let (flat_lat, truth) = run_queries(&mut flat, &probes);
    let mates = truth.iter().enumerate().filter(|(q, id)| **id == ((q * 7919) % n) as i64).count();
    rows.push(("IDMap2,Flat (exact)".to_string(), flat_build, flat_lat, 1.0, size_mb_per_million(&flat, n)));
    drop(flat);

    let recall = |top: &[i64]| top.iter().zip(&truth).filter(|(a, b)| a == b).count() as f64 / truth.len() as f64;
    let (mut hnsw, hnsw_build) = build("IDMap2,HNSW32");
    let hnsw_mb = size_mb_per_million(&hnsw, n);
    for ef in [16, 32, 64, 128, 256] {
        apply_params(&mut hnsw, &format!("efSearch={ef}")).unwrap();
        let (lat, top) = run_queries(&mut hnsw, &probes);
        rows.push((format!("IDMap2,HNSW32 efSearch={ef}"), hnsw_build, lat, recall(&top), hnsw_mb));
    }
    drop(hnsw);
    let lists = if full { 4096 } else { 256 };
    let (mut ivf, ivf_build) = build(&format!("IDMap2,IVF{lists},Flat"));
    let ivf_mb = size_mb_per_million(&ivf, n);
    for nprobe in [8, 16, 32, 64] {
        apply_params(&mut ivf, &format!("nprobe={nprobe}")).unwrap();
        let (lat, top) = run_queries(&mut ivf, &probes);
        rows.push((format!("IDMap2,IVF{lists},Flat nprobe={nprobe}"), ivf_build, lat, recall(&top), ivf_mb));
    }

    println!(
        "watch-list search, {n} templates x {D} dims, {nq} mated probes one at a time; exact top-1 is the mate for {mates}/{nq}"
    );
    println!("| index | build | p50 | p99 | recall@1 vs exact | MB per 1M templates |\n|---|---|---|---|---|---|");
    for (name, build_s, lat, rec, mb) in rows {
        println!(
            "| {name} | {build_s:.1} s | {:.3} ms | {:.3} ms | {rec:.3} | {mb:.0} |",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }
}
