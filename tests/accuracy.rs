//! Accuracy on the real development faces (LFW): pair verification on the view-2 pairs and
//! open-set identification (gallery = first photo of each identity with >= 2 photos).
//! Every photo is embedded once, with the same pipeline the service runs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use facewatch::eval::{self, IdentificationSet};
use facewatch::pipeline::PipelineOptions;
use facewatch::watchlist::index::DEFAULT_FACTORY;

/// Every photo of the development set (`faces/`): each must be used, and give a face.
const PHOTOS: usize = 9_496;

struct Lfw {
    set: IdentificationSet,
    emb: BTreeMap<PathBuf, Option<Vec<f32>>>,
    /// The gallery photos as enrollment templates (mirrored, as the service enrolls them).
    gallery: BTreeMap<PathBuf, Option<Vec<f32>>>,
}

fn lfw() -> &'static Lfw {
    static LFW: OnceLock<Lfw> = OnceLock::new();
    LFW.get_or_init(|| {
        let faces = common::data().join("faces");
        let set = IdentificationSet::from_faces_dir(&faces).expect("LFW folder");
        let paths = set.all_paths();
        assert_eq!(paths.len(), PHOTOS, "the full development set, every photo once");
        let unique: BTreeSet<_> = paths.iter().collect();
        assert_eq!(unique.len(), PHOTOS, "a photo counted twice");
        let mut opts = PipelineOptions::default();
        // The labelled face is picked among all candidates, as the reference evaluation does.
        opts.detector.score_threshold = 0.6;
        opts.runtime.intra_threads = 1;
        let gallery: BTreeSet<PathBuf> = set.gallery.iter().map(|g| g.1.clone()).collect();
        let embs = eval::embed_centre_faces(&common::models(), &opts, &paths, 2, &gallery, &|_| {}).expect("embedding");
        let missing: Vec<_> = paths.iter().zip(&embs).filter(|(_, e)| e.is_none()).map(|(p, _)| p).collect();
        assert!(missing.is_empty(), "{} photos gave no face: {missing:?}", missing.len());
        let templates = paths
            .iter()
            .zip(&embs)
            .filter(|(p, _)| gallery.contains(*p))
            .map(|(p, e)| (p.clone(), e.as_ref().and_then(|e| e.template.clone())))
            .collect();
        let emb = paths.into_iter().zip(embs.into_iter().map(|e| e.map(|e| e.embedding))).collect();
        Lfw { set, emb, gallery: templates }
    })
}

#[test]
fn lfw_pair_verification_at_least_99_percent() {
    let lfw = lfw();
    let faces = common::data().join("faces");
    let pairs = eval::read_pairs(&faces.join("pairs_lfw_view2.tsv")).unwrap();
    assert!(pairs.len() > 3000);
    let by_rel: BTreeMap<String, Option<Vec<f32>>> = lfw
        .emb
        .iter()
        .map(|(p, e)| (p.strip_prefix(&faces).unwrap().to_string_lossy().into_owned(), e.clone()))
        .collect();
    let v = eval::verification(&pairs, &by_rel);
    eprintln!("{}", serde_json::to_string_pretty(&v).unwrap());
    assert_eq!(v.missing, 0, "pairs scored without a face");
    assert!(v.best_accuracy >= 0.990, "verification accuracy {:.4}", v.best_accuracy);
    // 98.88 % measured: a regression of a few tenths must fail.
    assert!(v.cv_accuracy >= 0.987, "10-fold accuracy {:.4}", v.cv_accuracy);
    assert!(v.tar_at_far_1pct >= 0.98, "TAR at FAR 1%: {:.4}", v.tar_at_far_1pct);
}

#[test]
fn open_set_identification_rank1_at_least_93_percent() {
    let lfw = lfw();
    let r = eval::identification(&lfw.set, &lfw.emb, &lfw.gallery, DEFAULT_FACTORY, "dlib-resnet-v1", 128).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap());
    assert_eq!(r.gallery + r.mated + r.non_mated, PHOTOS, "{r:?}");
    assert!(r.gallery > 1000 && r.mated > 5000 && r.non_mated > 2500, "{r:?}");
    assert_eq!(r.missing, 0, "gallery photos or probes without a face");
    // 0.938 with mirrored templates, 0.928 without.
    assert!(r.rank1 >= 0.932, "rank-1 {:.4}", r.rank1);
    // Open-set: at the threshold that keeps false alarms at 1 %, 0.437 measured with mirrored
    // enrollment templates; without them 0.494 (and the rejected int8 model 0.511), which must fail.
    assert!(r.fnir_at_fpir_1pct < 0.46, "FNIR at FPIR 1%: {:.4}", r.fnir_at_fpir_1pct);
}
