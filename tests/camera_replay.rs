//! A pulled camera end to end, on real processes and real models: a generated arrival-hall clip
//! (seeded; enrolled people and strangers walking toward the camera, crossing each other) is
//! replayed by `facewatch serve` through its ffmpeg camera, tracked, and decided per
//! person-pass: exactly one alert per enrolled pass, for the right subject, none for strangers.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{Server, bin, token};
use facewatch::eval::clip::{self, ClipOptions};

#[test]
fn a_replayed_clip_raises_one_alert_per_enrolled_pass_and_none_for_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let (clips, data) = (dir.path().join("clip"), dir.path().join("data"));
    let opts =
        ClipOptions { passes: 6, enrolled: 3, width: 640, height: 360, fps: 5, ..ClipOptions::new(5, &common::data()) };
    let m = clip::generate(&opts, &clips).expect("generate the clip (ffmpeg from scripts/setup.sh)");
    let enrolled: Vec<&str> = m.passes.iter().filter_map(|p| p.subject.as_deref()).collect();
    assert_eq!(enrolled.len(), 3);

    // The watch list, from photos that never appear in the clip, with the command line.
    for e in &m.enroll {
        let mut args = vec!["--data-dir".into(), data.display().to_string(), "--models-dir".into()];
        args.push(common::models().display().to_string());
        args.extend(["enroll", "--list", "wanted", "--threshold", "0.94", "--subject"].map(String::from));
        args.push(e.subject.clone());
        args.extend(e.photos.iter().map(|p| m.faces_dir.join(p).display().to_string()));
        let out = Command::new(bin()).args(&args).output().unwrap();
        assert!(out.status.success(), "enroll {}: {}", e.subject, String::from_utf8_lossy(&out.stderr));
    }
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
