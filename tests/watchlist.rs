//! Watch lists on the real store and FAISS: persistence, rebuilds, several lists and
//! templates, open-set thresholds, and a graph index (HNSW) that cannot remove in place.

use facewatch::Error;
use facewatch::audit::Actor;
use facewatch::watchlist::Watchlist;
use facewatch::watchlist::policy::Policy;
use facewatch::watchlist::store::NewTemplate;

fn unit(seed: u64, d: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    let v: Vec<f32> = (0..d)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// A probe near `v` (cosine about 0.95).
fn near(v: &[f32], seed: u64) -> Vec<f32> {
    let noise = unit(seed, v.len());
    let mixed: Vec<f32> = v.iter().zip(&noise).map(|(a, b)| a + 0.33 * b).collect();
    let n = mixed.iter().map(|x| x * x).sum::<f32>().sqrt();
    mixed.into_iter().map(|x| x / n).collect()
}

fn tpl(v: Vec<f32>) -> Vec<NewTemplate> {
    vec![NewTemplate { embedding: v, quality: "{}".into(), source: "test".into() }]
}

#[test]
fn lists_thresholds_templates_and_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let me = Actor::local();
    let (a, b, c) = (unit(1, 128), unit(2, 128), unit(3, 128));
    {
        let mut wl = Watchlist::open(dir.path(), "IDMap2,Flat", "m", 128).unwrap();
        wl.create_list("wanted", &Policy::with_threshold(0.9), &me).unwrap();
        wl.create_list("overstay", &Policy::with_threshold(0.99), &me).unwrap();
        wl.enroll("wanted", "A", Some("Ann"), tpl(a.clone()), &me).unwrap();
        wl.enroll("wanted", "A", None, tpl(unit(11, 128)), &me).unwrap();
        wl.enroll("wanted", "B", None, tpl(b.clone()), &me).unwrap();
        wl.enroll("overstay", "C", None, tpl(c.clone()), &me).unwrap();
        assert!(matches!(wl.enroll("nope", "X", None, tpl(a.clone()), &me), Err(Error::UnknownList(_))));
        wl.flush().unwrap();
    }
    let mut wl = Watchlist::open(dir.path(), "IDMap2,Flat", "m", 128).unwrap();
    assert_eq!(wl.rebuilds(), 0, "persisted indexes are reused");
    let m = wl.matches(&near(&a, 100), 3).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!((m[0].list.as_str(), m[0].subject.as_str(), m[0].name.as_deref()), ("wanted", "A", Some("Ann")));
    // Below the stricter list's threshold: a candidate, but not a match.
    let probe = near(&c, 101);
    let cands = wl.candidates(&probe, 3).unwrap();
    assert_eq!(cands[0].subject, "C");
    assert!(cands[0].score < 0.99 && !cands[0].is_match());
    assert!(wl.matches(&probe, 3).unwrap().is_empty(), "open-set: unknown below threshold");
    wl.set_policy("overstay", &Policy::with_threshold(0.5), &me).unwrap();
    assert_eq!(wl.matches(&probe, 3).unwrap()[0].subject, "C");
    // A stranger is unknown.
    assert!(wl.matches(&unit(999, 128), 3).unwrap().is_empty());
    // Removal purges every template of the subject.
    assert_eq!(wl.remove("wanted", "A", &me).unwrap().len(), 2);
    assert!(wl.matches(&near(&a, 102), 3).unwrap().iter().all(|m| m.subject != "A"));
    // A store changed behind the index's back (no flush) is detected and rebuilt.
    drop(wl);
    let wl = Watchlist::open(dir.path(), "IDMap2,Flat", "m", 128).unwrap();
    assert_eq!(wl.rebuilds(), 1);
    assert!(wl.matches(&near(&a, 103), 3).unwrap().iter().all(|m| m.subject != "A"));
    assert_eq!(wl.matches(&near(&b, 104), 3).unwrap()[0].subject, "B");
}

#[test]
fn templates_of_another_model_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let me = Actor::local();
    let mut wl = Watchlist::open(dir.path(), "IDMap2,Flat", "model-a", 128).unwrap();
    wl.create_list("wanted", &Policy::with_threshold(0.9), &me).unwrap();
    wl.enroll("wanted", "A", None, tpl(unit(1, 128)), &me).unwrap();
    drop(wl);
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    match Watchlist::open(dir.path(), "IDMap2,Flat", "model-b", 128) {
        Err(Error::ModelMismatch { stored, loaded }) => {
            assert_eq!((stored.as_str(), loaded.as_str()), ("model-a", "model-b"))
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("mixing models must be refused"),
    }
}

#[test]
fn hnsw_index_serves_and_rebuilds_on_removal() {
    let dir = tempfile::tempdir().unwrap();
    let me = Actor::local();
    let mut wl = Watchlist::open(dir.path(), "IDMap2,HNSW32|efSearch=64", "m", 128).unwrap();
    wl.create_list("big", &Policy::with_threshold(0.9), &me).unwrap();
    let vs: Vec<Vec<f32>> = (0..2000).map(|i| unit(i, 128)).collect();
    for (i, v) in vs.iter().enumerate() {
        wl.enroll("big", &format!("S{i}"), None, tpl(v.clone()), &me).unwrap();
    }
    wl.flush().unwrap();
    let hits = (0..200).filter(|&i| {
        wl.matches(&near(&vs[i], 5000 + i as u64), 1).unwrap().first().is_some_and(|m| m.subject == format!("S{i}"))
    });
    assert!(hits.count() >= 196, "HNSW recall");
    assert_eq!(wl.remove("big", "S7", &me).unwrap().len(), 1);
    assert!(wl.matches(&near(&vs[7], 77), 3).unwrap().iter().all(|m| m.subject != "S7"));
    assert_eq!(wl.matches(&near(&vs[8], 78), 1).unwrap()[0].subject, "S8");
}
