//! Enrollment templates are mirrored where the embedder's manifest says so (dlib's): the
//! service's engine and the CLI's pipeline store the same template, the mean of the face's
//! embedding and its mirror image's, while probes are embedded once, as they are.

mod common;

use std::sync::Arc;

use facewatch::inference::{Inference, InferenceOptions, Mode};
use facewatch::metrics::Metrics;
use facewatch::pipeline::{Pipeline, PipelineOptions};
use facewatch::vision::decode::{DEFAULT_MAX_PIXELS, decode_file};
use facewatch::vision::embed::{cosine, mirror_template, mirrored};
use facewatch::vision::quality::QualityGate;
use facewatch::watchlist::enroll;

#[test]
fn both_enrollment_paths_store_the_mirrored_template_and_probes_stay_plain() {
    let img = decode_file(&common::data().join("faces/Colin_Powell/0001.jpg"), DEFAULT_MAX_PIXELS).unwrap();
    let mut p = Pipeline::open(&common::models(), PipelineOptions::default()).unwrap();
    assert!(p.manifest.embedder.enroll_mirrored, "models/manifest.toml: dlib's templates are mirrored");

    // The CLI's path (`facewatch enroll` / `import`).
    let (face, refused) = enroll::examine(&mut p, &img, &QualityGate::enrollment()).unwrap();
    assert!(refused.is_none(), "{refused:?}");
    let face = face.expect("a face to enroll");
    let template = face.embedding.clone().expect("accepted");
    let plain = p.embedder.embed(&[&face.chip]).unwrap().remove(0);
    let mirror = p.embedder.embed(&[&mirrored(&face.chip)]).unwrap().remove(0);
    let expected = mirror_template(&plain, &mirror);
    assert!(cosine(&template, &expected) > 0.9999, "{}", cosine(&template, &expected));
    let changed = cosine(&plain, &template);
    assert!(changed < 0.999 && changed > 0.9, "the mirror moves the template a little: {changed}");
    assert!((template.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4, "unit length");

    // The service's path (the engine's enroll mode, as `POST /v1/lists/{list}/subjects`).
    let engine =
        Inference::start(&common::models(), &InferenceOptions::default(), Arc::new(Metrics::default())).unwrap();
    let enrolled = engine.submit_image(img.clone(), Mode::Enroll(QualityGate::enrollment())).unwrap();
    let a = enrolled.blocking_recv().unwrap().unwrap();
    let e = a.faces[0].embedding.clone().expect("accepted");
    assert!(cosine(&e, &expected) > 0.9999, "{}", cosine(&e, &expected));
    assert_eq!(e, template, "both paths store the same template, to the bit");
    // A posted frame of the same photo: the same face, embedded once.
    let live = engine.submit_image(img, Mode::Live(QualityGate::default())).unwrap();
    let b = live.blocking_recv().unwrap().unwrap();
    let probe = b.faces.iter().find(|f| f.detection.bbox == face.detection.bbox).expect("the same face");
    let probe = probe.embedding.clone().expect("accepted");
    assert!(cosine(&probe, &plain) > 0.9999, "{}", cosine(&probe, &plain));
    engine.shutdown();
}
