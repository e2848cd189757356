//! The service end to end under camera load: the real HTTP server in this process, real models,
//! frames of an enrolled person (every frame raises an alert, cooldown 0, so each answer means
//! the alert and its event are committed to the outbox). Open loop: each camera sends on its own
//! 5 fps clock whether or not earlier frames have been answered.
//! Reports p50/p99 frame -> answer (alert + event in the outbox) at 4 cameras x 5 fps, then
//! raises the camera count until frames are refused (503) or p99 passes 1 s: the highest
//! sustained rate. `cargo bench --bench service_load`; under `cargo test` a short smoke run.
//! `cargo bench --bench service_load -- --hd`: 1920x1079 camera frames instead, a crowd photo
//! (12 passers-by) with the enrolled person's photo pasted in, from 1 camera up.

#[path = "support/mod.rs"]
mod common;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use facewatch::audit::Actor;
use facewatch::access::tokens::{Role, Tokens};
use facewatch::config::ServiceConfig;

/// Frames per second each camera sends (HD runs also try fewer, to find the limit).
const FPS_PER_CAMERA: f64 = 5.0;

struct Level {
    cameras: usize,
    fps: f64,
    sent: usize,
    ok: usize,
    refused: usize,
    p50: f64,
    p99: f64,
}

fn post(url: &str, token: &str, body: &[u8]) -> (u16, f64) {
    let t = Instant::now();
    let r = ureq::post(url)
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "image/jpeg")
        .send_bytes(body);
    let status = match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(_) => 0,
    };
    (status, t.elapsed().as_secs_f64() * 1e3)
}

fn run_level(base: &str, token: &str, frames: &[Vec<u8>], cameras: usize, fps: f64, secs: f64) -> Level {
    let results = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let per_camera = (secs * fps) as usize;
    std::thread::scope(|s| {
        for cam in 0..cameras {
            let results = results.clone();
            s.spawn(move || {
                let url = format!("{base}/v1/cameras/cam-{cam}/frames");
                std::thread::scope(|inner| {
                    for i in 0..per_camera {
                        // Each camera's clock, offset so cameras do not fire together.
                        let due = start + Duration::from_secs_f64((i as f64 + cam as f64 / cameras as f64) / fps);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let (results, url) = (results.clone(), url.clone());
                        let body = &frames[(cam + i) % frames.len()];
                        inner.spawn(move || {
                            let r = post(&url, token, body);
                            results.lock().unwrap().push(r);
                        });
                    }
                });
            });
        }
    });
    let r = results.lock().unwrap();
    let mut lat: Vec<f64> = r.iter().filter(|(s, _)| *s == 200).map(|(_, l)| *l).collect();
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| if lat.is_empty() { f64::NAN } else { lat[((lat.len() - 1) as f64 * q).round() as usize] };
    Level {
        cameras,
        fps,
        sent: r.len(),
        ok: lat.len(),
        refused: r.iter().filter(|(s, _)| *s == 503).count(),
        p50: pct(0.5),
        p99: pct(0.99),
    }
}

/// A 1920x1079 camera frame: the crowd photo (12 faces) with an enrolled person's 250x250 photo
/// pasted in at a place that depends on `n`, as JPEG quality 90.
fn hd_frame(photo: &[u8], n: u32) -> Vec<u8> {
    let crowd = image::load_from_memory(&std::fs::read(common::data().join("multiface/faces.jpg")).unwrap()).unwrap();
    let mut frame = crowd.to_rgb8();
    let face = image::load_from_memory(photo).unwrap().to_rgb8();
    // Along the bottom edge, below the crowd's faces.
    let x = 40 + (n as i64 * 83) % (frame.width() as i64 - 300);
    let y = frame.height() as i64 - 260;
    image::imageops::overlay(&mut frame, &face, x, y);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&frame).unwrap();
    out
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let data = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut tokens = Tokens::open(&data.path().join("facewatch.db")).unwrap();
    // Bound to every camera id the load levels use (cam-0, cam-1, ...) and to the one that
    // checks every frame raises an alert.
    let cams: Vec<String> = (0..facewatch::access::tokens::MAX_CAMERAS_PER_TOKEN - 1)
        .map(|i| format!("cam-{i}"))
        .chain(["check".to_string()])
        .collect();
    let camera = tokens.create("load", Role::Camera, None, &cams, &Actor::local()).unwrap().token;
    let ops = tokens.create("ops", Role::Ops, None, &[], &Actor::local()).unwrap().token;
    drop(tokens);
    let mut cfg = ServiceConfig::default();
    cfg.service.bind = format!("127.0.0.1:{port}");
    cfg.service.data_dir = data.path().to_path_buf();
    cfg.service.site = "bench".into();
    cfg.models.dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(facewatch::app::run(cfg)).unwrap();
    });
    let base = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    while ureq::get(&format!("{base}/readyz")).call().is_err() {
        assert!(t.elapsed() < Duration::from_secs(120), "service did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A watch list with cooldown 0: every frame of the enrolled person raises an alert.
    let faces = common::data().join("faces/Colin_Powell");
    let photo = |n: u32| std::fs::read(faces.join(format!("{n:04}.jpg"))).unwrap();
    ureq::post(&format!("{base}/v1/lists"))
        .set("Authorization", &format!("Bearer {ops}"))
        .set("Content-Type", "application/json")
        .send_string(
            &serde_json::json!({"name": "wanted", "policy": {"threshold": 0.9, "cooldown_secs": 0}}).to_string(),
        )
        .unwrap();
    let boundary = "b0undary";
    let mut form = Vec::new();
    form.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"subject\"\r\n\r\ncolin\r\n").bytes());
    form.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"1.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").bytes());
    form.extend(photo(1));
    form.extend(format!("\r\n--{boundary}--\r\n").bytes());
    ureq::post(&format!("{base}/v1/lists/wanted/subjects"))
        .set("Authorization", &format!("Bearer {ops}"))
        .set("Content-Type", &format!("multipart/form-data; boundary={boundary}"))
        .send_bytes(&form)
        .unwrap();
    let hd = std::env::args().any(|a| a == "--hd");
    let frames: Vec<Vec<u8>> =
        if hd { (2..=21).map(|n| hd_frame(&photo(n), n)).collect() } else { (2..=21).map(photo).collect() };

    // Every frame must raise an alert, or the run would time something other than it claims.
    let mut faces_seen = 0;
    for (i, f) in frames.iter().enumerate() {
        let body = ureq::post(&format!("{base}/v1/cameras/check/frames"))
            .set("Authorization", &format!("Bearer {camera}"))
            .set("Content-Type", "image/jpeg")
            .send_bytes(f)
            .unwrap()
            .into_string()
            .unwrap();
        let r: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(r["alerts"].as_array().is_some_and(|a| !a.is_empty()), "frame {i} raised no alert: {r}");
        faces_seen += r["faces"].as_array().map_or(0, Vec::len);
    }
    let faces_per_frame = faces_seen as f64 / frames.len() as f64;

    let secs = if full { 20.0 } else { 2.0 };
    // (cameras, fps each) after the first level: 250x250 frames add cameras at 5 fps; HD
    // frames cost about 20 times more, so two cameras step up 0.5 fps at a time.
    let (first, more): ((usize, f64), Vec<(usize, f64)>) = if hd {
        ((1, FPS_PER_CAMERA), (6..=12).map(|k| (2, k as f64 / 2.0)).collect())
    } else {
        ((4, FPS_PER_CAMERA), [8, 12, 16, 20, 24, 28, 32].map(|c| (c, FPS_PER_CAMERA)).to_vec())
    };
    let mut levels = vec![run_level(&base, &camera, &frames, first.0, first.1, secs)];
    if full {
        for (cameras, fps) in more {
            let l = run_level(&base, &camera, &frames, cameras, fps, 10.0);
            let stop = l.refused > 0 || l.p99 > 1000.0;
            levels.push(l);
            if stop {
                break;
            }
        }
    }
    println!("service end to end: frame posted -> answer (alert and its event committed to the outbox)");
    let what =
        if hd { "1920x1079 crowd frames with an enrolled person" } else { "250x250 frames of an enrolled person" };
    println!(
        "open loop, each camera on its own clock, {what} ({faces_per_frame:.1} faces a frame), defaults (queue 32)"
    );
    println!(
        "| cameras x fps | offered fps | frames | answered | refused (503) | p50 | p99 |\n|---|---|---|---|---|---|---|"
    );
    for l in &levels {
        println!(
            "| {} x {} | {} | {} | {} | {} | {:.1} ms | {:.1} ms |",
            l.cameras,
            l.fps,
            l.cameras as f64 * l.fps,
            l.sent,
            l.ok,
            l.refused,
            l.p50,
            l.p99
        );
    }
    std::process::exit(0);
}
