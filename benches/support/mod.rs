//! Where benches find the real photos and models (same rules as the tests).
#![allow(dead_code)]

use std::path::PathBuf;

use facewatch::pipeline::{Pipeline, PipelineOptions};

pub fn data() -> PathBuf {
    let p = std::env::var_os("FACEWATCH_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    assert!(p.is_dir(), "{} not found: set FACEWATCH_TEST_DATA", p.display());
    p
}

pub fn pipeline() -> Pipeline {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    Pipeline::open(&models, PipelineOptions::default()).expect("models installed by scripts/setup.sh")
}

/// Deterministic pseudo-random unit vectors (xorshift), no extra dependency.
pub fn unit_vectors(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let mut v = Vec::with_capacity(n * d);
    for _ in 0..n {
        let row: Vec<f32> = (0..d).map(|_| next()).collect();
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.extend(row.iter().map(|x| x / norm));
    }
    v
}
