//! Asking for CUDA where it cannot run must cost nothing but a logged warning: the sessions
//! open on the CPU, say so, and give the CPU's answers. `scripts/test.sh` runs this file twice,
//! without and with the `cuda` feature (the second time registration really is attempted and
//! fails in ONNX Runtime, as on a machine without a GPU build or without a GPU).

mod common;

use facewatch::vision::decode::{DEFAULT_MAX_PIXELS, decode};
use facewatch::vision::embed::cosine;
use facewatch::vision::runtime::{self, RuntimeOptions};

#[test]
fn cuda_request_falls_back_to_the_cpu_with_the_same_faces() {
    let img = decode(&std::fs::read(common::data().join("faces/Colin_Powell/0001.jpg")).unwrap(), DEFAULT_MAX_PIXELS)
        .unwrap();
    let mut cpu = common::pipeline_with(|o| o.runtime = RuntimeOptions { cuda: false, ..o.runtime.clone() });
    let want = cpu.faces(&img, None).unwrap();

    let asked = RuntimeOptions { cuda: true, ..RuntimeOptions::default() };
    let before = runtime::cpu_fallbacks();
    let mut p = common::pipeline_with(|o| o.runtime = asked.clone());
    let fell_back = runtime::cpu_fallbacks() - before;
    let got = p.faces(&img, None).unwrap();
    assert_eq!(got.len(), want.len());
    assert!(!want.is_empty());
    let provider = runtime::provider_name(&asked);
    // Identical faces prove nothing unless CUDA really was asked for and refused: both sessions
    // (detector, embedder) must have fallen back, and only where the CPU is what they run on.
    eprintln!("provider {provider}, {fell_back} of 2 sessions fell back to the CPU");
    assert_eq!(fell_back, if provider == "CPU" { 2 } else { 0 }, "sessions that fell back (provider {provider})");
    for (g, w) in got.iter().zip(&want) {
        let (ge, we) = (g.embedding.as_ref().unwrap(), w.embedding.as_ref().unwrap());
        if provider == "CPU" {
            // The same CPU kernels: the same numbers.
            assert_eq!(g.detection, w.detection);
            assert_eq!(ge, we);
        } else {
            // A real GPU (a developer's machine with the GPU build): close, not bit-equal.
            assert_eq!(provider, "CUDA");
            assert!(cosine(ge, we) > 0.999, "CUDA embedding differs: cosine {}", cosine(ge, we));
        }
    }
}
