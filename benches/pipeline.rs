//! Per-stage and end-to-end latency on real photos: decode, detect (3 frame sizes), align,
//! quality, embed (batch 1 and 8), and one image from bytes to embeddings.

#[path = "support/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use facewatch::vision::decode::{DEFAULT_MAX_PIXELS, decode, decode_with};
use facewatch::vision::{align, quality};
use image::imageops::{FilterType, resize};

fn stages(c: &mut Criterion) {
    let data = common::data();
    let lfw_bytes = std::fs::read(data.join("faces/George_W_Bush/0001.jpg")).unwrap();
    let crowd_bytes = std::fs::read(data.join("multiface/faces.jpg")).unwrap();
    let lfw = decode(&lfw_bytes, DEFAULT_MAX_PIXELS).unwrap();
    let crowd = decode(&crowd_bytes, DEFAULT_MAX_PIXELS).unwrap();
    let selfie = decode(&std::fs::read(data.join("multiface/selfie.jpg")).unwrap(), DEFAULT_MAX_PIXELS).unwrap();
    let mut p = common::pipeline();

    let mut g = c.benchmark_group("decode");
    g.bench_function("jpeg_250x250", |b| b.iter(|| decode(black_box(&lfw_bytes), DEFAULT_MAX_PIXELS).unwrap()));
    g.bench_function("jpeg_1920x1079", |b| b.iter(|| decode(black_box(&crowd_bytes), DEFAULT_MAX_PIXELS).unwrap()));
    // Two strips on two threads, as when the models are idle (`vision::jpeg`).
    g.bench_function("jpeg_1920x1079_2_threads", |b| {
        b.iter(|| decode_with(black_box(&crowd_bytes), DEFAULT_MAX_PIXELS, 2).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("detect");
    let frames = [
        ("250x250", lfw.clone()),
        ("640x480", resize(&selfie, 640, 480, FilterType::Triangle)),
        ("1920x1080", resize(&crowd, 1920, 1080, FilterType::Triangle)),
    ];
    for (name, frame) in &frames {
        g.bench_with_input(BenchmarkId::from_parameter(name), frame, |b, f| {
            b.iter(|| p.detector.detect(black_box(f)).unwrap())
        });
    }
    // A tracked camera's 1080p frame, detected at 1280x720 (`[tracking] detect_max_side`),
    // and the area-average downscale alone.
    let hd = &frames[2].1;
    g.bench_function("1920x1080_within_1280", |b| b.iter(|| p.detector.detect_within(black_box(hd), 1280).unwrap()));
    g.bench_function("shrink_1920x1080_to_1280x720", |b| {
        b.iter(|| facewatch::vision::shrink::shrink(black_box(hd), 1280, 720))
    });
    g.finish();

    let spec = p.manifest.embedder.clone();
    let face = p.faces(&lfw, None).unwrap().remove(0);
    let mut g = c.benchmark_group("align");
    g.bench_function("chip_150", |b| {
        b.iter(|| align::align(black_box(&lfw), &face.detection.landmarks, &spec.template, spec.input_size))
    });
    let crowd_faces = p.faces(&crowd, None).unwrap();
    g.throughput(Throughput::Elements(crowd_faces.len() as u64));
    g.bench_function("crowd_1920x1079_all_faces", |b| {
        b.iter(|| {
            for f in &crowd_faces {
                black_box(align::align(black_box(&crowd), &f.detection.landmarks, &spec.template, spec.input_size));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("quality");
    g.bench_function("chip_150", |b| b.iter(|| quality::measure(&face.detection, black_box(&face.chip))));
    g.finish();

    assert!(crowd_faces.len() >= 8, "need 8 faces for the batch bench");
    let chips: Vec<&image::RgbImage> = crowd_faces.iter().take(8).map(|f| &f.chip).collect();
    let mut g = c.benchmark_group("embed");
    for n in [1usize, 8] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("batch", n), &n, |b, &n| {
            b.iter(|| p.embedder.embed(black_box(&chips[..n])).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("end_to_end");
    g.bench_function("lfw_250x250_1_face", |b| {
        b.iter(|| {
            let img = decode(black_box(&lfw_bytes), DEFAULT_MAX_PIXELS).unwrap();
            p.faces(&img, None).unwrap()
        })
    });
    g.bench_function("crowd_1920x1079", |b| {
        b.iter(|| {
            let img = decode(black_box(&crowd_bytes), DEFAULT_MAX_PIXELS).unwrap();
            p.faces(&img, None).unwrap()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4))
}

criterion_group! { name = benches; config = config(); targets = stages }
criterion_main!(benches);
