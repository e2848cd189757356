//! Alert rules an attacker or a busy hall could break, through a real `facewatch serve`: a
//! dismissed alert must not swallow the next sighting, concurrent frames of one traveller raise
//! one alert, and the two-officer rule compares people (principals), not token names.

mod common;

use std::path::Path;
use std::process::Command;

use common::colin;
use common::server::{Server, camera_token, multipart, token};
use serde_json::{Value, json};

/// A token for an existing principal (the same person's second device).
fn token_for(data: &Path, role: &str, name: &str, principal: &str) -> String {
    let out = Command::new(common::server::bin())
        .args(["--data-dir", data.to_str().unwrap(), "token", "create", "--role", role, "--name", name])
        .args(["--principal", principal])
        .output()
        .unwrap();
    assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A server with Colin Powell enrolled in `wanted` (cooldown 600 s); returns (server, ops, camera).
fn server_with_colin(data: &Path, env: &[(&str, &str)]) -> (Server, String, String) {
    let ops = token(data, "ops", "olga");
    let gates: Vec<String> = (0..8).map(|i| format!("gate-{i}")).collect();
    let camera = camera_token(data, "gates", &gates.iter().map(String::as_str).collect::<Vec<_>>());
    // These tests read each face's matches: the camera gets the full report.
    let env: Vec<(&str, &str)> = env.iter().copied().chain([("FACEWATCH_API__CAMERA_RESPONSE", "full")]).collect();
    let s = Server::start(data, &env);
    let policy = json!({"cooldown_secs": 600});
    s.post_json("/v1/lists", Some(&ops), &json!({"name": "wanted", "policy": policy})).ok();
    let form = multipart(&[("subject", "colin")], &[("0001.jpg", "image/jpeg", colin(1))]);
    s.call("POST", "/v1/lists/wanted/subjects", Some(&ops), form).ok();
    (s, ops, camera)
}

fn alerts(s: &Server, officer: &str) -> Vec<Value> {
    s.get("/v1/alerts", Some(officer)).ok()["alerts"].as_array().unwrap().clone()
}

fn review(s: &Server, officer: &str, id: &str, decision: &str) -> common::server::Resp {
    s.post_json(&format!("/v1/alerts/{id}/review"), Some(officer), &json!({"decision": decision}))
}

/// The single match of a frame's report: (outcome, alert id).
fn outcome(report: &Value) -> (String, String) {
    let m = &report["faces"][0]["matches"][0];
    (m["outcome"].as_str().unwrap_or("").to_string(), m["alert_id"].as_str().unwrap_or("").to_string())
}

#[test]
fn a_dismissed_alert_does_not_swallow_the_next_sighting() {
    let dir = tempfile::tempdir().unwrap();
    let ann = token(dir.path(), "officer", "ann");
    let (s, _, camera) = server_with_colin(dir.path(), &[]);
    let (first, id) = outcome(&s.frame("gate-1", &camera, &colin(2)).ok());
    assert_eq!(first, "alert");
    assert_eq!(outcome(&s.frame("gate-1", &camera, &colin(3)).ok()), ("cooldown".into(), id.clone()));
    assert_eq!(review(&s, &ann, &id, "dismiss").status, 200);
    // Within the cooldown, but the alert is closed: the traveller is a new lead.
    let (again, new_id) = outcome(&s.frame("gate-1", &camera, &colin(3)).ok());
    assert_eq!(again, "alert", "the sighting after a dismissal was absorbed");
    assert_ne!(new_id, id);
    assert_eq!(alerts(&s, &ann).len(), 2);
}

#[test]
fn eight_concurrent_frames_of_one_traveller_raise_one_alert() {
    let dir = tempfile::tempdir().unwrap();
    let ann = token(dir.path(), "officer", "ann");
    // Two detect workers finish frames side by side, as a busy checkpoint would.
    let (s, _, camera) = server_with_colin(dir.path(), &[("FACEWATCH_INFERENCE__DETECT_WORKERS", "2")]);
    // One photo eight times (every frame is sure to match), at once, enlarged to 1000x1000 so
    // that its crop takes a while to write; the race is a matter of timing, so it is tried at
    // several cameras (cooldown is per camera).
    let frame = {
        let img = image::load_from_memory(&colin(2)).unwrap().resize(1000, 1000, image::imageops::FilterType::Triangle);
        let mut out = std::io::Cursor::new(Vec::new());
        img.to_rgb8().write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    };
    const ROUNDS: usize = 8;
    for round in 0..ROUNDS {
        let gate = format!("gate-{round}");
        let barrier = std::sync::Barrier::new(8);
        let reports: Vec<Value> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (s, camera, barrier, frame, gate) = (&s, &camera, &barrier, &frame, &gate);
                    sc.spawn(move || {
                        barrier.wait();
                        s.frame(gate, camera, frame).ok()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ids: std::collections::BTreeSet<String> = reports.iter().map(|r| outcome(r).1).collect();
        let raised = reports.iter().filter(|r| outcome(r).0 == "alert").count();
        assert_eq!(raised, 1, "{gate}: one frame raises, the rest reuse");
        assert_eq!(ids.len(), 1, "{gate}: all frames name one alert: {ids:?}");
    }
    assert_eq!(alerts(&s, &ann).len(), ROUNDS);
}

#[test]
fn two_officer_rule_compares_principals_not_names() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // Ann holds two tokens (desk and tablet); two different officers are both called Sam.
    let ann_desk = token(data, "officer", "ann");
    let ann_principal = {
        let out = Command::new(common::server::bin())
            .args(["--data-dir", data.to_str().unwrap(), "token", "list"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text.lines().find(|l| l.ends_with(" ann")).expect("ann's token listed").to_string();
        line.split_whitespace().nth(3).unwrap().to_string()
    };
    let ann_tablet = token_for(data, "officer", "ann-tablet", &ann_principal);
    let sam_a = token(data, "officer", "Sam");
    let sam_b = token(data, "officer", "Sam");
    let (s, _, camera) = server_with_colin(data, &[]);

    let (_, id) = outcome(&s.frame("gate-1", &camera, &colin(2)).ok());
    assert_eq!(review(&s, &ann_desk, &id, "confirm").status, 200);
    let alone = review(&s, &ann_tablet, &id, "confirm");
    assert_eq!((alone.status, alone.error_code().as_str()), (409, "conflict"), "one person verified alone");

    // A new alert (the first is still under review, so close it first).
    assert_eq!(review(&s, &sam_a, &id, "dismiss").status, 200);
    let (_, id2) = outcome(&s.frame("gate-1", &camera, &colin(3)).ok());
    assert_eq!(review(&s, &sam_a, &id2, "confirm").status, 200);
    let v = review(&s, &sam_b, &id2, "confirm").ok();
    assert_eq!(v["status"], "verified", "two officers who share a name are two people");
    let principals: Vec<&str> =
        v["reviews"].as_array().unwrap().iter().map(|r| r["principal"].as_str().unwrap()).collect();
    assert_eq!(principals.len(), 2);
    assert_ne!(principals[0], principals[1]);
}
