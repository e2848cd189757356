//! A pulled camera end to end, on real processes and real models: a generated arrival-hall clip
//! (seeded; enrolled people and strangers walking toward the camera, crossing each other) is
//! replayed by `facewatch serve` through its ffmpeg camera, tracked, and decided per
//! person-pass: exactly one alert per enrolled pass, for the right subject, none for strangers.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{Server, bin, token};
use facewatch::eval::clip::{self, ClipManifest, ClipOptions};

/// The tests' clip (6 passes, 3 enrolled, 640x360 at 5 fps, seed 5) generated into `clips`, and
/// its watch list enrolled into `data` with the command line, from photos that never appear in
/// the clip.
fn enrolled_clip(clips: &Path, data: &Path) -> ClipManifest {
    let opts =
        ClipOptions { passes: 6, enrolled: 3, width: 640, height: 360, fps: 5, ..ClipOptions::new(5, &common::data()) };
    let m = clip::generate(&opts, clips).expect("generate the clip (ffmpeg from scripts/setup.sh)");
    for e in &m.enroll {
        let mut args = vec!["--data-dir".into(), data.display().to_string(), "--models-dir".into()];
        args.push(common::models().display().to_string());
        args.extend(["enroll", "--list", "wanted", "--threshold", "0.94", "--subject"].map(String::from));
        args.push(e.subject.clone());
        args.extend(e.photos.iter().map(|p| m.faces_dir.join(p).display().to_string()));
        let out = Command::new(bin()).args(&args).output().unwrap();
        assert!(out.status.success(), "enroll {}: {}", e.subject, String::from_utf8_lossy(&out.stderr));
    }
    m
}

#[test]
fn a_replayed_clip_raises_one_alert_per_enrolled_pass_and_none_for_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let (clips, data) = (dir.path().join("clip"), dir.path().join("data"));
    let m = enrolled_clip(&clips, &data);
    let enrolled: Vec<&str> = m.passes.iter().filter_map(|p| p.subject.as_deref()).collect();
    assert_eq!(enrolled.len(), 3);
    let ops = token(&data, "ops", "olga");
    let officer = token(&data, "officer", "ana");

    // The camera replays the clip without loss (realtime = false) on a fixed time base.
    let config = dir.path().join("facewatch.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\ndata_dir = {:?}\n\n[[cameras]]\nid = \"hall-replay\"\nurl = {:?}\nfps = {}\nmax_width = {}\n\
             realtime = false\nepoch = \"2026-11-30T08:00:00Z\"\n",
            data.display().to_string(),
            clips.join(&m.video).display().to_string(),
            m.fps,
            m.width
        ),
    )
    .unwrap();
    let s = Server::start_with_config(&config, &data);

    // Until the replay has ended and every frame is through (no new alert for 3 s).
    let t = Instant::now();
    let (mut last, mut stable_since) = (usize::MAX, Instant::now());
    let alerts = loop {
        assert!(t.elapsed() < Duration::from_secs(120), "the replay did not finish");
        std::thread::sleep(Duration::from_millis(500));
        let cams = s.get("/v1/cameras", Some(&ops)).json();
        let state = cams["cameras"][0]["state"].as_str().unwrap_or_default().to_string();
        let alerts =
            s.get("/v1/alerts?limit=500", Some(&officer)).json()["alerts"].as_array().cloned().unwrap_or_default();
        if alerts.len() != last {
            (last, stable_since) = (alerts.len(), Instant::now());
        }
        if state == "disabled" && stable_since.elapsed() > Duration::from_secs(3) {
            break alerts;
        }
    };
    let mut by_subject: BTreeMap<String, usize> = BTreeMap::new();
    for a in &alerts {
        assert_eq!(a["camera"], "hall-replay");
        *by_subject.entry(a["subject"].as_str().unwrap().to_string()).or_default() += 1;
        // Raised by the track rule: its own threshold, and the face crop beside it.
        assert!(a["threshold"].as_f64().unwrap() > 0.945, "{a}");
        assert!(a["crop_url"].is_string(), "{a}");
    }
    let expected: BTreeMap<String, usize> = enrolled.iter().map(|s| (s.to_string(), 1)).collect();
    assert_eq!(by_subject, expected, "one alert per enrolled pass, none for the strangers");
    // A pass costs a few embeddings, not one per frame.
    let (embedded, detected) = (s.metric("facewatch_embed_faces_total"), s.metric("facewatch_faces_total"));
    assert!(
        embedded > 0.0 && embedded < (m.passes.len() * 8) as f64,
        "{embedded} faces embedded for {} passes",
        m.passes.len()
    );
    assert!(embedded * 3.0 < detected, "{embedded} embedded of {detected} detected");
    s.stop();
}

/// The same clip as a camera that posts its frames (`url = "push:"`): each frame, posted in
/// capture order, goes through the tracker and the pass decisions, so the enrolled passes raise
/// one alert each and the strangers none; the answers carry the faces' track ids; a frame
/// captured at or before the last one tracked gets 409 and changes nothing.
#[test]
fn a_push_camera_tracks_posted_frames_and_refuses_them_out_of_order() {
    use common::server::{Body, camera_token};
    let dir = tempfile::tempdir().unwrap();
    let (clips, data, jpegs) = (dir.path().join("clip"), dir.path().join("data"), dir.path().join("jpeg"));
    let m = enrolled_clip(&clips, &data);
    let enrolled: Vec<&str> = m.passes.iter().filter_map(|p| p.subject.as_deref()).collect();
    // The camera's frames as it would post them: JPEGs, one per frame of the clip.
    std::fs::create_dir_all(&jpegs).unwrap();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(clips.join(&m.video))
        .args(["-q:v", "2"])
        .arg(jpegs.join("%05d.jpg"))
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    let mut frames: Vec<_> = std::fs::read_dir(&jpegs).unwrap().map(|e| e.unwrap().path()).collect();
    frames.sort();
    assert_eq!(frames.len() as u64, m.frames);

    let officer = token(&data, "officer", "ana");
    let cam = camera_token(&data, "door", &["hall-push"]);
    let config = dir.path().join("facewatch.toml");
    let cfg = format!(
        "[service]\ndata_dir = {:?}\n\n[[cameras]]\nid = \"hall-push\"\nurl = \"push:\"\n",
        data.display().to_string()
    );
    std::fs::write(&config, cfg).unwrap();
    let s = Server::start_with_config(&config, &data);
    let post = |n: usize, ms: u64| {
        let at = format!("2026-11-30T08:00:{:02}.{:03}Z", ms / 1000, ms % 1000);
        let body = Body::Raw("image/jpeg".into(), std::fs::read(&frames[n]).unwrap());
        s.call("POST", &format!("/v1/cameras/hall-push/frames?captured_at={at}"), Some(&cam), body)
    };
    let (mut alerts_answered, mut tracked_faces) = (0, 0);
    for n in 0..frames.len() {
        let r = post(n, n as u64 * 1000 / m.fps as u64).ok();
        alerts_answered += r["alerts"].as_array().unwrap().len();
        tracked_faces += r["faces"].as_array().unwrap().iter().filter(|f| f["track"].is_u64()).count();
    }
    assert!(tracked_faces > frames.len(), "faces carry their track ids ({tracked_faces} in {} frames)", frames.len());

    // Out of order (an earlier capture) and too late (the same capture time again): refused.
    let last_ms = (frames.len() as u64 - 1) * 1000 / m.fps as u64;
    for ms in [last_ms - 400, last_ms] {
        let r = post(0, ms);
        assert_eq!((r.status, r.error_code()), (409, "conflict".to_string()), "captured at +{ms} ms");
    }

    let alerts = s.get("/v1/alerts?limit=500", Some(&officer)).json()["alerts"].as_array().cloned().unwrap();
    assert_eq!(alerts_answered, alerts.len(), "each alert was answered to the frame that raised it");
    let mut by_subject: BTreeMap<String, usize> = BTreeMap::new();
    for a in &alerts {
        assert_eq!(a["camera"], "hall-push");
        assert!(a["threshold"].as_f64().unwrap() > 0.945, "raised by the track rule: {a}");
        *by_subject.entry(a["subject"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = enrolled.iter().map(|s| (s.to_string(), 1)).collect();
    assert_eq!(by_subject, expected, "one alert per enrolled pass, none for the strangers");
    s.stop();
}
