//! Shared test fixtures: where the real data and models are. A missing data folder fails the
//! test run (it is never a silent skip).
#![allow(dead_code)]

use std::path::PathBuf;

use facewatch::pipeline::{Pipeline, PipelineOptions};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared(env: &str, sub: &str) -> PathBuf {
    let p = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| root().join("..").join("shared").join(sub));
    assert!(p.is_dir(), "{} not found: set {env} (tests need the real images and models, see README)", p.display());
    p
}

/// `../shared/data` or `$FACEWATCH_TEST_DATA`.
pub fn data() -> PathBuf {
    shared("FACEWATCH_TEST_DATA", "data")
}

/// A file of the test data (`faces/Colin_Powell/0001.jpg`, ...), read.
pub fn photo(rel: &str) -> Vec<u8> {
    std::fs::read(data().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Colin Powell's `n`th photo: the enrolled subject of most service tests.
pub fn colin(n: u32) -> Vec<u8> {
    photo(&format!("faces/Colin_Powell/{n:04}.jpg"))
}

/// The `.jpg` files of a folder of the test data (`multiface`, `nonface`, ...), sorted.
pub fn jpgs(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(data().join(dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    v.sort();
    v
}

/// Reference outputs: `$FACEWATCH_MODEL_MIRROR/golden` or `../shared/models/golden`.
pub fn golden() -> PathBuf {
    shared("FACEWATCH_MODEL_MIRROR", "models").join("golden")
}

pub fn models() -> PathBuf {
    root().join("models")
}

pub fn pipeline() -> Pipeline {
    Pipeline::open(&models(), PipelineOptions::default()).expect("models installed by scripts/setup.sh")
}

pub fn pipeline_with(f: impl FnOnce(&mut PipelineOptions)) -> Pipeline {
    let mut o = PipelineOptions::default();
    f(&mut o);
    Pipeline::open(&models(), o).expect("models installed by scripts/setup.sh")
}
pub mod browser;
pub mod console;
pub mod nats;
pub mod server;

/// A labelled folder (`<identity>/*.jpg`) of the first `n` identities of the development faces,
/// up to 3 photos each (identities with one photo are non-mated probes); the number of photos.
pub fn labelled_folder(n: usize) -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut ids: Vec<PathBuf> =
        std::fs::read_dir(data().join("faces")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    ids.sort();
    let mut photos = 0;
    for id in ids.iter().take(n) {
        let mut jpgs: Vec<PathBuf> = std::fs::read_dir(id).unwrap().map(|e| e.unwrap().path()).collect();
        jpgs.sort();
        let d = dir.path().join(id.file_name().unwrap());
        std::fs::create_dir(&d).unwrap();
        for j in jpgs.iter().take(3) {
            std::fs::copy(j, d.join(j.file_name().unwrap())).unwrap();
            photos += 1;
        }
    }
    (dir, photos)
}
