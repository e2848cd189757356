//! Frames keep flowing while a large list is enrolled into (issue 15, item 11): a camera posts
//! real frames continuously while 1,000 subjects are enrolled through the API by several
//! threads into a list that already holds 100,000 templates (exact search). Matching must not wait for the
//! store, an index rebuild or the index being written to disk.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::{Server, camera_token, multipart, token};
use facewatch::audit::Actor;
use facewatch::manifest::Manifest;
use facewatch::watchlist::policy::Policy;
use facewatch::watchlist::store::Store;
use rusqlite::params;

/// Synthetic templates already in the list (random unit vectors: they match no real face).
const SEEDED: usize = 100_000;
const SUBJECTS: usize = 1_000;
const ENROLL_THREADS: usize = 3;
/// Frame p99 while enrolling. Measured on the 2-core development machine (shared, load 7-10):
/// 64 ms with this code (enrollment 8.6 s); 387 ms (p50 149 ms, enrollment 89 s) when the
/// watch-list lock was held while the 51 MB index was written after each enrollment.
const P99_BOUND: Duration = Duration::from_millis(200);

/// Exact search at any size (`auto` would train an inverted file beyond 50,000 templates); the
/// full frame report (the test reads who matched).
const FLAT: &[(&str, &str)] =
    &[("FACEWATCH_WATCHLIST__INDEX_FACTORY", "IDMap2,Flat"), ("FACEWATCH_API__CAMERA_RESPONSE", "full")];

/// Creates the list and seeds it in one transaction, as a store of a large list would be.
fn seed(data: &Path) {
    let model = Manifest::load(&common::models()).unwrap().embedder;
    let mut store = Store::open(&data.join("facewatch.db")).unwrap();
    let (list, _) = store.create_list("wanted", &Policy::with_threshold(0.93), &Actor::local()).unwrap();
    let tx = store.conn().unchecked_transaction().unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    {
        let mut subj =
            tx.prepare("INSERT INTO subjects (list_id, external_id, created_at) VALUES (?1, ?2, 0)").unwrap();
        let mut tpl = tx
            .prepare("INSERT INTO templates (subject_id, model, dim, embedding, created_at) VALUES (?1, ?2, ?3, ?4, 0)")
            .unwrap();
        for i in 0..SEEDED {
            subj.execute(params![list.id, format!("seed-{i}")]).unwrap();
            let sid = tx.last_insert_rowid();
            let mut v: Vec<f32> = (0..model.embedding_size).map(|_| next()).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= n);
            let blob: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            tpl.execute(params![sid, model.name, model.embedding_size as i64, blob]).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// One photo of each of the first identities (sorted), the enrollment photos.
fn identities() -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(common::data().join("faces"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().into_string().unwrap(), e.path().join("0001.jpg")))
        .collect();
    v.sort();
    v
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[derive(Default)]
struct Frames {
    ok: Vec<Duration>,
    overloaded: usize,
}

fn post_frames(s: &Server, camera: &str, jpeg: &[u8], until: impl Fn(usize) -> bool) -> Frames {
    let mut f = Frames::default();
    while !until(f.ok.len() + f.overloaded) {
        let t = Instant::now();
        let r = s.frame("gate-1", camera, jpeg);
        match r.status {
            200 => f.ok.push(t.elapsed()),
            503 => {
                f.overloaded += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            other => panic!("frame: status {other}: {}", String::from_utf8_lossy(&r.body)),
        }
    }
    f.ok.sort();
    f
}

#[test]
fn frames_keep_flowing_while_1000_subjects_are_enrolled() {
    let dir = tempfile::tempdir().unwrap();
    let (ops, camera) = (token(dir.path(), "ops", "olga"), camera_token(dir.path(), "gate-1", &["gate-1"]));
    seed(dir.path());
    let s = Arc::new(Server::start(dir.path(), FLAT));
    let ids = identities();
    // The camera sees someone who is enrolled nowhere: every frame searches the whole list.
    let (_, passer_by) = ids.last().unwrap();
    let frame = std::fs::read(passer_by).unwrap();

    let r = s.frame("gate-1", &camera, &frame).ok();
    assert_eq!(r["faces"].as_array().map(Vec::len), Some(1), "the frame shows one face: {r}");
    let before = post_frames(&s, &camera, &frame, |n| n >= 100);

    let todo = Arc::new(Mutex::new(ids[..ids.len() - 1].to_vec().into_iter()));
    let enrolled = Arc::new(AtomicUsize::new(0));
    let first = Arc::new(Mutex::new(None));
    let refused = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let enrollers: Vec<_> = (0..ENROLL_THREADS)
        .map(|_| {
            let (s, ops, todo, enrolled, refused, first) =
                (s.clone(), ops.clone(), todo.clone(), enrolled.clone(), refused.clone(), first.clone());
            std::thread::spawn(move || {
                while enrolled.load(Ordering::SeqCst) < SUBJECTS {
                    let Some((who, path)) = todo.lock().unwrap().next() else { return };
                    let jpeg = std::fs::read(&path).unwrap();
                    loop {
                        let form = multipart(&[("subject", &who)], &[("0001.jpg", "image/jpeg", jpeg.clone())]);
                        let r = s.call("POST", "/v1/lists/wanted/subjects", Some(&ops), form);
                        match r.status {
                            201 => {
                                enrolled.fetch_add(1, Ordering::SeqCst);
                                first.lock().unwrap().get_or_insert((who.clone(), jpeg.clone()));
                            }
                            422 => {
                                refused.fetch_add(1, Ordering::SeqCst);
                            }
                            503 => {
                                std::thread::sleep(Duration::from_millis(20));
                                continue;
                            }
                            other => panic!("enroll {who}: status {other}: {}", String::from_utf8_lossy(&r.body)),
                        }
                        break;
                    }
                }
            })
        })
        .collect();
    let cam = {
        let (s, camera, done) = (s.clone(), camera.clone(), done.clone());
        std::thread::spawn(move || post_frames(&s, &camera, &frame, |_| done.load(Ordering::SeqCst)))
    };
    // Every thread is joined before any verdict, so the server is stopped on failure too.
    let enrolling: Vec<_> = enrollers.into_iter().map(|e| e.join()).collect();
    let enroll_time = t0.elapsed();
    done.store(true, Ordering::SeqCst);
    let during = cam.join();
    assert!(enrolling.iter().all(Result::is_ok), "an enrollment thread failed");
    let during = during.expect("the camera thread failed");

    let n = enrolled.load(Ordering::SeqCst);
    assert!(n >= SUBJECTS, "only {n} subjects enrolled ({} photos refused)", refused.load(Ordering::SeqCst));
    let list = s.get("/v1/lists/wanted", Some(&ops)).ok();
    assert_eq!(list["subjects"].as_u64().unwrap() as usize, SEEDED + n, "{list}");
    assert!(during.ok.len() >= 50, "too few frames during enrollment: {}", during.ok.len());
    let (b50, b99) = (pct(&before.ok, 0.5), pct(&before.ok, 0.99));
    let (d50, d99, dmax) = (pct(&during.ok, 0.5), pct(&during.ok, 0.99), *during.ok.last().unwrap());
    eprintln!(
        "enroll under load: {n} subjects enrolled into {SEEDED} templates in {:.1} s ({} photos refused) by \
         {ENROLL_THREADS} threads; frames before: {} (p50 {:.1} ms, p99 {:.1} ms); during: {} with 200 \
         (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms) and {} with 503",
        enroll_time.as_secs_f64(),
        refused.load(Ordering::SeqCst),
        before.ok.len(),
        b50.as_secs_f64() * 1e3,
        b99.as_secs_f64() * 1e3,
        during.ok.len(),
        d50.as_secs_f64() * 1e3,
        d99.as_secs_f64() * 1e3,
        dmax.as_secs_f64() * 1e3,
        during.overloaded,
    );
    assert!(d99 < P99_BOUND, "frame p99 {d99:?} while enrolling (bound {P99_BOUND:?})");

    // Nothing committed is lost: a clean stop persists the whole index, and after a restart
    // an enrolled subject still matches.
    let s = Arc::into_inner(s).unwrap();
    assert!(s.stop().success());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index/list-1.json")).unwrap()).unwrap();
    assert_eq!(meta["fingerprint"]["count"].as_u64().unwrap() as usize, SEEDED + n, "{meta}");
    let s = Server::start(dir.path(), FLAT);
    let (who, jpeg) = first.lock().unwrap().clone().unwrap();
    let r = s.frame("gate-1", &camera, &jpeg).ok();
    assert_eq!(r["faces"][0]["matches"][0]["subject"], who.as_str(), "{r}");
}
