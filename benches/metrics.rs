//! What `/metrics` costs: one latency observation (done several times per frame) and one
//! scrape (every 15-60 s), with the series a busy service has. Prints ns per observation and
//! µs per scrape. `cargo bench --bench metrics`; under `cargo test` a short smoke run.

use std::time::{Duration, Instant};

use facewatch::metrics::{Gauges, Metrics, Stage};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (observations, scrapes) = if full { (5_000_000u32, 2_000u32) } else { (10_000, 10) };
    let m = Metrics::default();
    for i in 0..64 {
        m.frames.inc(&format!("gate-{i}"));
        m.rejections.inc(["queue_full", "too_large", "bad_image", "no_face"][i % 4]);
    }
    let t = Instant::now();
    for i in 0..observations {
        m.stage(Stage::Detect).observe(Duration::from_micros(u64::from(i % 4096)));
    }
    let observe_ns = t.elapsed().as_nanos() as f64 / f64::from(observations);
    // Two threads observing at once, as the detect workers and the embedder do.
    let t = Instant::now();
    std::thread::scope(|s| {
        for stage in [Stage::Detect, Stage::Embed] {
            let m = &m;
            s.spawn(move || {
                for i in 0..observations {
                    m.stage(stage).observe(Duration::from_micros(u64::from(i % 4096)));
                }
            });
        }
    });
    let contended_ns = t.elapsed().as_nanos() as f64 / f64::from(observations);
    let g = Gauges {
        ingest_queue: 3,
        embed_queue: 1,
        sse_clients: 2,
        outbox_depth: 10,
        outbox_oldest_s: 1.5,
        outbox_parked: 0,
    };
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..scrapes {
        bytes = m.render(&g).len();
    }
    let scrape_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(scrapes);
    println!("| observe (ns) | observe, 2 threads at once (ns per pair) | scrape (µs) | scrape bytes |");
    println!("|---|---|---|---|");
    println!("| {observe_ns:.1} | {contended_ns:.1} | {scrape_us:.1} | {bytes} |");
}
