//! What encryption at rest costs (`[encryption] key_file`): the same work on a plain and an
//! encrypted data folder, alternated in one run. Real storage (SQLite or SQLCipher, FAISS,
//! face images) under the fake models, so the table shows the storage path alone; the real
//! models add the same time to both columns. Per enrollment (template row, reference image,
//! index update), per frame that raises an alert (crop, alert row, outbox event) and per frame
//! whose face matches nothing (no write at all). Prints medians and the encrypted/plain ratio.
//!
//! `cargo bench --bench at_rest` (200 of each); under `cargo test` a 10-of-each smoke run.

use std::time::Instant;

use facewatch::access::{Caller, Role};
use facewatch::app::App;
use facewatch::backend::fake::{self, FakeBackend, FakeFace};
use facewatch::config::ServiceConfig;
use facewatch::inference::{Analysis, Mode};
use facewatch::vision::quality::QualityGate;
use facewatch::watchlist::enroll::Examined;
use facewatch::watchlist::policy::PolicyPatch;

const T0: i64 = 1_800_000_000_000;

struct Folder {
    _dir: tempfile::TempDir,
    app: App,
    camera: Caller,
}

fn folder(encrypted: bool) -> Folder {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServiceConfig::default();
    cfg.service.data_dir = dir.path().join("data");
    if encrypted {
        let key = dir.path().join("key");
        facewatch::vault::create_key_file(&key).unwrap();
        cfg.encryption.key_file = key;
    }
    let app = App::with_backend(cfg, &FakeBackend::default()).unwrap();
    app.watchlists.create_list(&Caller::Local, "wanted", &PolicyPatch::default()).unwrap();
    let t = app.access.create_token(&Caller::Local, "gate-1", Role::Camera, None, &["gate-1".to_string()]).unwrap();
    let camera = Caller::Token(app.access.authenticate(&t.token).unwrap());
    Folder { _dir: dir, app, camera }
}

fn analyse(app: &App, img: image::RgbImage, mode: Mode) -> Analysis {
    app.inference.submit_image(img, mode).unwrap().blocking_recv().unwrap().unwrap()
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n: u32 = if std::env::args().any(|a| a == "--bench") { 200 } else { 10 };
    let folders = [folder(false), folder(true)];
    let mut times = [[Vec::new(), Vec::new(), Vec::new()], [Vec::new(), Vec::new(), Vec::new()]];
    for i in 0..n {
        // Alternate which folder goes first, so neither gets the warmer caches.
        for k in if i % 2 == 0 { [0, 1] } else { [1, 0] } {
            let f = &folders[k];
            let photo = fake::frame(240, 240, &[FakeFace { identity: 100 + i, x: 60, y: 60, size: 120 }]);
            let a = analyse(&f.app, photo, Mode::Enroll(QualityGate::enrollment()));
            let x = Examined { image: &a.image, face: a.faces.first(), refused: a.refused.as_ref() };
            let t = Instant::now();
            let r = f.app.watchlists.enroll(
                &Caller::Local,
                "wanted",
                &format!("s{i}"),
                None,
                "bench",
                [("p.jpg".into(), Ok(x))],
            );
            times[k][0].push(ms(t));
            assert_eq!(r.unwrap().templates, 1);

            let frame = |identity| fake::frame(640, 360, &[FakeFace { identity, x: 200, y: 100, size: 120 }]);
            let a = analyse(&f.app, frame(100 + i), Mode::Live(QualityGate::default()));
            let t = Instant::now();
            let r = f.app.frames.process(&f.camera, "gate-1", T0 + i as i64 * 1000, a).unwrap();
            times[k][1].push(ms(t));
            assert_eq!(r.alerts.len(), 1, "the enrolled face raises an alert");

            let a = analyse(&f.app, frame(1_000_000 + i), Mode::Live(QualityGate::default()));
            let t = Instant::now();
            let r = f.app.frames.process(&f.camera, "gate-1", T0 + i as i64 * 1000 + 500, a).unwrap();
            times[k][2].push(ms(t));
            assert!(r.alerts.is_empty(), "a stranger raises nothing");
        }
    }
    println!("| work (fake models; storage only) | plain ms | encrypted ms | encrypted/plain |");
    println!("|---|---|---|---|");
    let [plain, enc] = times;
    for (name, (p, e)) in
        ["enrollment (template, reference image, index)", "frame raising an alert", "frame matching nothing"]
            .iter()
            .zip(plain.into_iter().zip(enc))
    {
        let (p, e) = (median(p), median(e));
        println!("| {name} | {p:.3} | {e:.3} | {:.2} |", e / p);
    }
    for f in &folders {
        f.app.stop();
    }
}
