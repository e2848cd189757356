//! Memory is bounded by bytes, not only by count: a real `facewatch serve` flooded with the
//! largest frames it accepts stays within its `memory_budget_mb` (plus the models), refusing
//! what does not fit with 503; and a crowd is cut to `max_faces_per_frame`, the largest faces
//! first, the rest counted as skipped.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::server::{Server, camera_token};
use facewatch::vision::decode::{DEFAULT_MAX_PIXELS, decode};

const MIB: u64 = 1 << 20;
/// The flood's budget, and the largest frame it allows: `ServiceConfig::largest_max_pixels`
/// is 12.53 MP for 256 MiB and 4 MiB bodies (a frame the detector shrinks holds 19 bytes a
/// pixel while it is detected: its own 3, and 16 in the resize's working buffer).
const BUDGET_MB: u64 = 256;
const MAX_PIXELS: u64 = 12_500_000;
const MAX_BODY: u64 = 4 * MIB;
/// Clients posting at once, each as fast as it is answered: up to this many frames in the
/// service at once without a budget (the embedder, with 64 faces a frame, is the slow stage).
const CLIENTS: usize = 16;
/// Bodies being received (not in the budget), allocator fragmentation and thread stacks.
const SLACK: u64 = 96 * MIB;

/// A real crowd photo tiled into a frame of `MAX_PIXELS` (5120 x 2441, 12.5 MP), as a JPEG of
/// a few MB: many faces in every frame, so the embedder is the slow stage.
fn largest_frame() -> Vec<u8> {
    let crowd =
        decode(&std::fs::read(common::data().join("multiface/many_face.jpg")).unwrap(), DEFAULT_MAX_PIXELS).unwrap();
    let w = crowd.width() * 4;
    let h = (MAX_PIXELS / u64::from(w)) as u32;
    let frame = image::RgbImage::from_fn(w, h, |x, y| *crowd.get_pixel(x % crowd.width(), y % crowd.height()));
    let img = turbojpeg::Image {
        pixels: frame.as_raw().as_slice(),
        width: w as usize,
        pitch: w as usize * 3,
        height: h as usize,
        format: turbojpeg::PixelFormat::RGB,
    };
    let jpeg = turbojpeg::compress(img, 75, turbojpeg::Subsamp::Sub2x2).unwrap().to_vec();
    assert!((jpeg.len() as u64) < MAX_BODY, "frame of {} bytes", jpeg.len());
    jpeg
}

#[test]
fn a_flood_of_the_largest_frames_stays_within_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let camera = camera_token(dir.path(), "gate-1", &["gate-1"]);
    let mut cfg = facewatch::config::ServiceConfig::default();
    cfg.limits.memory_budget_mb = BUDGET_MB;
    cfg.limits.max_body_bytes = MAX_BODY as usize;
    let largest = cfg.largest_max_pixels();
    assert!((MAX_PIXELS..MAX_PIXELS * 105 / 100).contains(&largest), "largest max_pixels {largest}");
    let mut s = Server::start(
        dir.path(),
        &[
            ("FACEWATCH_LIMITS__MEMORY_BUDGET_MB", &BUDGET_MB.to_string()),
            ("FACEWATCH_LIMITS__MAX_PIXELS", &MAX_PIXELS.to_string()),
            ("FACEWATCH_LIMITS__MAX_BODY_BYTES", &MAX_BODY.to_string()),
        ],
    );
    let after_start = s.proc_status_bytes("VmRSS");
    let frame = Arc::new(largest_frame());
    // One frame first, so the models' own working memory for the largest input (ONNX
    // Runtime's arenas) is part of the baseline: the budget bounds frames, not the models.
    let first = s.frame("gate-1", &camera, &frame).ok();
    let faces = first["faces"].as_array().unwrap().len() as u64;
    assert!(faces >= 20, "a crowd in every frame: {faces} faces");
    assert_eq!(first["faces_skipped"], 80 - faces, "80 faces, the largest 64 kept");
    std::thread::sleep(Duration::from_millis(500));
    let baseline = s.proc_status_bytes("VmRSS");

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let (stop, peak, pid) = (stop.clone(), peak.clone(), s.pid());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|t| t.lines().find_map(|l| l.strip_prefix("VmRSS:").map(str::to_string)))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak.fetch_max(rss * 1024, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let (ok, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let until = Instant::now() + Duration::from_secs(15);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, camera, frame, ok, refused) =
                (s.url.clone(), camera.clone(), frame.clone(), ok.clone(), refused.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
                while Instant::now() < until {
                    let res = agent
                        .post(&format!("{url}/v1/cameras/gate-1/frames"))
                        .set("Authorization", &format!("Bearer {camera}"))
                        .set("Content-Type", "image/jpeg")
                        .send_bytes(&frame);
                    match res {
                        Ok(r) => {
                            assert_eq!(r.status(), 200);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(ureq::Error::Status(503, r)) => {
                            assert!(r.header("Retry-After").is_some(), "503 without Retry-After");
                            let v: serde_json::Value = serde_json::from_reader(r.into_reader()).unwrap();
                            assert_eq!(v["error"]["code"], "overloaded", "{v}");
                            refused.fetch_add(1, Ordering::Relaxed);
                            // A flood does not honour Retry-After (1 s); a pause leaves the cores to the server.
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        Err(e) => panic!("frame: {e}"),
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let hwm = s.proc_status_bytes("VmHWM");
    let peak = peak.load(Ordering::Relaxed).max(hwm);
    let (ok, refused) = (ok.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    eprintln!(
        "memory flood: RSS after start {} MiB, after one frame {} MiB, peak {} MiB (VmHWM {} MiB), \
         budget {BUDGET_MB} MiB; {ok} frames answered, {refused} refused with 503",
        after_start / MIB,
        baseline / MIB,
        peak / MIB,
        hwm / MIB
    );
    assert!(ok >= 5, "the flood must be served too: {ok} frames answered");
    assert!(refused >= 1, "{CLIENTS} clients posting 12.5 MP frames must overrun a 256 MiB budget");
    assert!(
        peak <= baseline + BUDGET_MB * MIB + SLACK,
        "peak RSS {} MiB over the models ({} MiB) + budget ({BUDGET_MB} MiB) + slack ({} MiB)",
        peak / MIB,
        baseline / MIB,
        SLACK / MIB
    );
    // Still serving, and every reservation given back: a lone frame fits again.
    assert!(s.alive());
    assert_eq!(s.get("/healthz", None).status, 200);
    assert_eq!(s.frame("gate-1", &camera, &frame).status, 200);
    assert!(s.stop().success());
}

#[test]
fn faces_beyond_the_cap_are_skipped_and_the_largest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let camera = camera_token(dir.path(), "gate-1", &["gate-1"]);
    let s = Server::start(dir.path(), &[("FACEWATCH_INFERENCE__MAX_FACES_PER_FRAME", "3")]);
    let bytes = std::fs::read(common::data().join("multiface/faces.jpg")).unwrap();
    // Every detection the models make on this crowd, in process.
    let mut p = common::pipeline();
    let img = decode(&bytes, DEFAULT_MAX_PIXELS).unwrap();
    let mut all = p.detector.detect(&img).unwrap();
    assert!(all.len() >= 6, "a crowd: {} faces", all.len());
    let report = s.frame("gate-1", &camera, &bytes).ok();
    let faces = report["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 3, "{report}");
    assert_eq!(report["faces_skipped"], all.len() - 3, "{report}");
    all.sort_by(|a, b| b.area().total_cmp(&a.area()));
    let area = |f: &serde_json::Value| f["bbox"][2].as_f64().unwrap() * f["bbox"][3].as_f64().unwrap();
    let mut kept: Vec<f64> = faces.iter().map(area).collect();
    kept.sort_by(|a, b| b.total_cmp(a));
    for (k, d) in kept.iter().zip(&all) {
        assert!((k - f64::from(d.area())).abs() < 0.5, "kept {kept:?}, largest {:?}", &all[..3]);
    }
}

/// In process: a frame holds its bytes from `submit` until its analysis is dropped, a frame that
/// does not fit beside it is refused at once, and every way out (answered, refused by the
/// decoder) gives the bytes back.
#[test]
fn reservations_are_held_until_the_analysis_is_dropped() {
    use facewatch::error::Error;
    use facewatch::inference::{Inference, InferenceOptions, Mode};
    use facewatch::vision::quality::QualityGate;

    let crowd = std::fs::read(common::data().join("multiface/faces.jpg")).unwrap();
    // 1920 x 1079: 6.2 MB of pixels, 64 face chips, the body: one such frame fits, two do not.
    let engine = Inference::start(
        &common::models(),
        &InferenceOptions { memory_budget_bytes: 20 * MIB, ..Default::default() },
        Default::default(),
    )
    .unwrap();
    let live = || Mode::Live(QualityGate::default());
    let first = engine.submit(crowd.clone().into(), live()).unwrap();
    let (held, limit) = engine.memory_reserved();
    assert!(held > 1920 * 1079 * 3 && held <= limit, "{held} of {limit}");
    match engine.submit(crowd.clone().into(), live()) {
        Err(Error::Overloaded { queue: "frame memory", .. }) => {}
        other => panic!("a second frame must not fit: {:?}", other.map(|_| ())),
    }
    let analysis = first.blocking_recv().unwrap().unwrap();
    assert!(analysis.faces.len() >= 6);
    assert!(engine.memory_reserved().0 > 0, "held while the analysis lives (the crops are cut from it)");
    drop(analysis);
    assert_eq!(engine.memory_reserved().0, 0);
    let corrupt = engine.submit(crowd[..crowd.len() / 2].to_vec().into(), live()).unwrap();
    assert!(corrupt.blocking_recv().unwrap().is_err());
    assert_eq!(engine.memory_reserved().0, 0, "a refused frame gives its bytes back");
    engine.shutdown();
}
