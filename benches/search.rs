//! Watch-list search latency: one probe against 1k and 100k templates (exact inner product).

#[path = "support/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use facewatch::watchlist::index::{DEFAULT_FACTORY, ListIndex};
use facewatch::watchlist::store::TemplateRow;

fn search(c: &mut Criterion) {
    let d = 128;
    let probes = common::unit_vectors(64, d, 7);
    let mut g = c.benchmark_group("search");
    for n in [1_000usize, 100_000] {
        let data = common::unit_vectors(n, d, 42);
        let rows: Vec<TemplateRow> = data
            .chunks_exact(d)
            .enumerate()
            .map(|(i, e)| TemplateRow {
                id: i as i64 + 1,
                subject: format!("s{i}"),
                name: None,
                model: "m".into(),
                embedding: e.to_vec(),
            })
            .collect();
        let mut ix = ListIndex::build(&rows, DEFAULT_FACTORY, "m", d as u32).unwrap();
        let mut q = 0;
        g.bench_with_input(BenchmarkId::new("flat_top5", n), &n, |b, _| {
            b.iter(|| {
                q = (q + 1) % 64;
                ix.search(black_box(&probes[q * d..(q + 1) * d]), 5).unwrap()
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = search }
criterion_main!(benches);
