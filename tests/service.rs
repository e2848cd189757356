//! The checkpoint service end to end: a real `facewatch serve` process, real models, real
//! photos, a real SQLite file, driven over HTTP.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::server::{Body, Server, camera_token, multipart, token};
use common::{colin, photo};
use serde_json::{Value, json};

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.flatten().count()).unwrap_or(0)
}

fn first_file(dir: &str) -> PathBuf {
    let d = common::data().join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&d).unwrap().flatten().map(|e| e.path()).collect();
    v.sort();
    v.into_iter().next().unwrap_or_else(|| panic!("{} is empty", d.display()))
}

struct Tokens {
    admin: String,
    ops: String,
    camera: String,
    ann: String,
    bob: String,
}

fn tokens(data: &Path) -> Tokens {
    Tokens {
        admin: token(data, "admin", "root"),
        ops: token(data, "ops", "olga"),
        camera: camera_token(data, "gate-1", &["gate-1", "gate-2"]),
        ann: token(data, "officer", "ann"),
        bob: token(data, "officer", "bob"),
    }
}

/// Creates the list and enrolls Colin Powell from two photos (and one photo without a face).
fn enroll_colin(s: &Server, t: &Tokens, policy: Value) -> Value {
    let created = s.post_json("/v1/lists", Some(&t.ops), &json!({"name": "wanted", "policy": policy}));
    assert_eq!(created.status, 201, "{:?}", String::from_utf8_lossy(&created.body));
    let nonface = std::fs::read(first_file("nonface")).unwrap();
    let form = multipart(
        &[("subject", "colin"), ("name", "Colin Powell")],
        &[
            ("0001.jpg", "image/jpeg", colin(1)),
            ("0002.jpg", "image/jpeg", colin(2)),
            ("empty.jpg", "image/jpeg", nonface),
        ],
    );
    s.call("POST", "/v1/lists/wanted/subjects", Some(&t.ops), form).ok()
}

fn wait_for(rx: &std::sync::mpsc::Receiver<(String, Value)>, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((k, v)) if k == kind && pred(&v) => return v,
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    panic!("no {kind} event within 20 s");
}

#[test]
fn enroll_match_alert_stream_two_officers_verify_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    // This test reads each face's matches: the camera gets the full report.
    let full = [("FACEWATCH_API__CAMERA_RESPONSE", "full")];
    let s = Server::start(dir.path(), &full);
    let report = enroll_colin(&s, &t, json!({"threshold": 0.93, "cooldown_secs": 600, "severity": "critical"}));
    assert_eq!(report["templates"], 2);
    let verdicts = report["images"].as_array().unwrap();
    assert_eq!(verdicts.iter().filter(|v| v["accepted"] == true).count(), 2, "{report}");
    let refused = verdicts.iter().find(|v| v["image"] == "empty.jpg").unwrap();
    assert_eq!(refused["accepted"], false);
    assert!(refused["reasons"][0].as_str().unwrap().contains("no face"), "{refused}");
    assert!(verdicts[0]["quality"]["sharpness"].is_number());
    assert_eq!(files_in(&dir.path().join("references")), 2, "one reference image per template");
    let again = s.post_json("/v1/lists", Some(&t.ops), &json!({"name": "wanted"}));
    assert_eq!((again.status, again.error_code().as_str()), (409, "conflict"));

    let events = s.sse(&t.ann);
    // A new photo of the enrolled person raises one alert.
    let r = s.frame("gate-1", &t.camera, &colin(4)).ok();
    assert_eq!(r["faces"][0]["status"], "match", "{r}");
    let m = &r["faces"][0]["matches"][0];
    assert_eq!(
        (m["list"].as_str(), m["subject"].as_str(), m["outcome"].as_str()),
        (Some("wanted"), Some("colin"), Some("alert"))
    );
    assert!(m["score"].as_f64().unwrap() >= 0.93);
    let id = r["alerts"][0].as_str().unwrap().to_string();
    // Seen again within the cooldown: the same alert, no new one.
    let r2 = s.frame("gate-1", &t.camera, &colin(5)).ok();
    assert_eq!(r2["faces"][0]["matches"][0]["outcome"], "cooldown");
    assert_eq!(r2["faces"][0]["matches"][0]["alert_id"], id.as_str());
    assert_eq!(r2["alerts"], json!([]));
    // A passer-by matches nothing and leaves nothing on disk.
    let r3 = s.frame("gate-1", &t.camera, &photo("faces/Gerhard_Schroeder/0001.jpg")).ok();
    assert_eq!(r3["faces"][0]["status"], "no_match", "{r3}");
    assert_eq!(files_in(&dir.path().join("crops")), 1, "only the alert's crop is stored");

    let created = wait_for(&events, "alert.created", |v| v["alert"]["id"] == id.as_str());
    assert_eq!(created["alert"]["status"], "open");

    let a = s.get(&format!("/v1/alerts/{id}"), Some(&t.ann)).ok();
    for (k, v) in [
        ("site", "test-site"),
        ("camera", "gate-1"),
        ("list", "wanted"),
        ("subject", "colin"),
        ("severity", "critical"),
    ] {
        assert_eq!(a[k], v, "{k}: {a}");
    }
    assert_eq!(a["threshold"].as_f64().unwrap() as f32, 0.93);
    assert!(a["models"]["embedder"]["name"].is_string() && a["quality"]["overall"].is_number());
    for link in ["crop_url", "reference_url"] {
        let img = s.get(a[link].as_str().unwrap(), Some(&t.ann));
        assert_eq!((img.status, img.content_type.as_str()), (200, "image/jpeg"), "{link}");
        assert!(image::load_from_memory(&img.body).is_ok(), "{link} is a real JPEG");
    }

    let review = |who: &str, decision: &str| {
        s.post_json(
            &format!("/v1/alerts/{id}/review"),
            Some(who),
            &json!({"decision": decision, "note": "checked passport"}),
        )
    };
    assert_eq!(review(&t.ann, "confirm").ok()["status"], "confirmed");
    let twice = review(&t.ann, "confirm");
    assert_eq!((twice.status, twice.error_code().as_str()), (409, "conflict"), "one officer cannot verify alone");
    let v = review(&t.bob, "confirm").ok();
    assert_eq!(v["status"], "verified");
    assert_eq!(v["reviews"].as_array().unwrap().len(), 2);
    // The live stream names events as the outbox does: each review, then the verification.
    wait_for(&events, "alert.reviewed", |v| v["alert"]["id"] == id.as_str() && v["alert"]["status"] == "confirmed");
    wait_for(&events, "alert.reviewed", |v| v["alert"]["status"] == "verified");
    wait_for(&events, "alert.verified", |v| v["alert"]["id"] == id.as_str());
    assert_eq!(review(&t.bob, "dismiss").status, 409, "a verified alert is final");

    let audit = s.get("/v1/audit", Some(&t.admin)).ok();
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for want in ["token.create", "list.create", "subject.enroll", "alert.review"] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    assert_eq!(actions.iter().filter(|a| **a == "alert.review").count(), 2);
    assert_eq!(s.get("/v1/audit/verify", Some(&t.admin)).ok()["ok"], true);
    // Whole sample names and whole values: `facewatch_alerts_total 1` must not pass for 10.
    assert_eq!(s.metric("facewatch_alerts_total"), 1.0);
    assert_eq!(s.metric("facewatch_alerts_suppressed_total"), 1.0);
    assert_eq!(s.metric("facewatch_frames_total{camera=\"gate-1\"}"), 3.0);

    assert!(s.stop().success(), "clean exit on SIGTERM");
    // Restart on the same folder: lists, subjects and alerts survive.
    let s = Server::start(dir.path(), &full);
    let lists = s.get("/v1/lists", Some(&t.ops)).ok();
    assert_eq!(lists["lists"][0]["name"], "wanted");
    assert_eq!(lists["lists"][0]["subjects"], 1);
    assert_eq!(lists["lists"][0]["policy"]["severity"], "critical");
    assert_eq!(s.get(&format!("/v1/alerts/{id}"), Some(&t.bob)).ok()["status"], "verified");
    let listed = s.get("/v1/alerts?status=verified&camera=gate-1", Some(&t.bob)).ok();
    assert_eq!(listed["alerts"].as_array().unwrap().len(), 1);
    // The verified alert is closed, so the next sighting is a new alert, and the one after that
    // belongs to it: the index and the alert store survived.
    let r = s.frame("gate-1", &t.camera, &colin(3)).ok();
    let m = &r["faces"][0]["matches"][0];
    assert_eq!(m["outcome"], "alert", "a closed (verified) alert does not absorb a sighting: {r}");
    assert_ne!(m["alert_id"].as_str(), Some(id.as_str()));
    let again = s.frame("gate-1", &t.camera, &colin(3)).ok();
    assert_eq!(again["faces"][0]["matches"][0]["outcome"], "cooldown", "{again}");
    assert_eq!(again["faces"][0]["matches"][0]["alert_id"], m["alert_id"]);
    // Cooldown compares capture times, not arrival: frames sent now from a camera's buffer,
    // captured long ago, are an alert of their own (two hours apart: two alerts; 10 s: one).
    let at = |when: &str| {
        let path = format!("/v1/cameras/gate-1/frames?captured_at={when}");
        s.call("POST", &path, Some(&t.camera), Body::Raw("image/jpeg".into(), colin(3))).ok()["faces"][0]["matches"][0]
            .clone()
    };
    let old = at("2026-01-01T08:00:00Z");
    assert_eq!(old["outcome"], "alert", "captured hours before the open alert: {old}");
    assert_ne!(old["alert_id"], m["alert_id"]);
    let two_hours = at("2026-01-01T10:00:00Z");
    assert_eq!(two_hours["outcome"], "alert", "{two_hours}");
    let ten_s = at("2026-01-01T07:59:50Z");
    assert_eq!((ten_s["outcome"].as_str(), &ten_s["alert_id"]), (Some("cooldown"), &old["alert_id"]), "{ten_s}");
    // Deleting the subject purges its templates: the person no longer matches.
    let del = s.call("DELETE", "/v1/lists/wanted/subjects/colin", Some(&t.ops), Body::None).ok();
    assert_eq!(del["templates_purged"], 2);
    assert_eq!(s.get("/v1/lists/wanted/subjects/colin", Some(&t.ops)).status, 404);
    assert_eq!(files_in(&dir.path().join("references")), 0);
    let r = s.frame("gate-2", &t.camera, &colin(4)).ok();
    assert_eq!(r["faces"][0]["status"], "no_match");
    assert!(s.stop().success());
    let db = rusqlite::Connection::open(dir.path().join("facewatch.db")).unwrap();
    let n: i64 = db.query_row("SELECT COUNT(*) FROM templates", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0, "a deleted subject leaves no template");
}

#[test]
fn every_route_family_checks_its_role() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    let s = Server::start(dir.path(), &[]);
    let relay = token(dir.path(), "relay", "hq");
    let by_role = [("camera", &t.camera), ("officer", &t.ann), ("ops", &t.ops), ("admin", &t.admin), ("relay", &relay)];
    let routes: [(&str, &str, &str); 16] = [
        ("GET", "/v1/events", "relay"),
        ("POST", "/v1/cameras/gate-1/frames", "camera"),
        ("GET", "/v1/lists", "ops"),
        ("POST", "/v1/lists", "ops"),
        ("GET", "/v1/lists/x", "ops"),
        ("DELETE", "/v1/lists/x", "ops"),
        ("PUT", "/v1/lists/x/policy", "ops"),
        ("POST", "/v1/lists/x/subjects", "ops"),
        ("DELETE", "/v1/lists/x/subjects/y", "ops"),
        ("GET", "/v1/alerts", "officer"),
        ("GET", "/v1/alerts/x", "officer"),
        ("POST", "/v1/alerts/x/review", "officer"),
        ("GET", "/v1/alerts/stream", "officer"),
        ("GET", "/v1/tokens", "admin"),
        ("POST", "/v1/tokens", "admin"),
        ("GET", "/v1/audit", "admin"),
    ];
    for (method, path, allowed) in routes {
        let none = s.call(method, path, None, Body::None);
        assert_eq!((none.status, none.error_code().as_str()), (401, "unauthorized"), "{method} {path} without token");
        assert!(none.www_authenticate.as_deref().is_some_and(|h| h.starts_with("Bearer")));
        let bad = s.call(method, path, Some("fw_not-a-real-token"), Body::None);
        assert_eq!(bad.status, 401, "{method} {path} with a bad token");
        for (role, tok) in by_role {
            if path.ends_with("/stream") && role == allowed {
                continue; // a stream never ends; opened with the right role in the flow test
            }
            let r = s.call(method, path, Some(tok), Body::None);
            if role == allowed {
                assert!(r.status != 401 && r.status != 403, "{method} {path} as {role}: {}", r.status);
            } else {
                assert_eq!((r.status, r.error_code().as_str()), (403, "forbidden"), "{method} {path} as {role}");
            }
        }
    }
    // Health, metrics and the API description need no token.
    for p in ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"] {
        assert_eq!(s.get(p, None).status, 200, "{p}");
    }
    // A revoked token stops working at once.
    let created = s.post_json("/v1/tokens", Some(&t.admin), &json!({"name": "temp", "role": "officer"}));
    let created = created.ok();
    let secret = created["token"].as_str().unwrap().to_string();
    assert_eq!(s.get("/v1/alerts", Some(&secret)).status, 200);
    let listed = s.get("/v1/tokens", Some(&t.admin)).ok();
    assert!(!listed.to_string().contains(&secret), "secrets are never listed");
    s.call("DELETE", &format!("/v1/tokens/{}", created["id"]), Some(&t.admin), Body::None).ok();
    assert_eq!(s.get("/v1/alerts", Some(&secret)).status, 401);
}

#[test]
fn policy_changes_are_audited_and_tampering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    let s = Server::start(dir.path(), &[]);
    s.post_json("/v1/lists", Some(&t.ops), &json!({"name": "overstay"})).ok();
    let put = |body: Value| s.call("PUT", "/v1/lists/overstay/policy", Some(&t.ops), Body::Json(body));
    let p = put(json!({"threshold": 0.9, "retention_days": 7})).ok();
    assert_eq!((p["threshold"].as_f64().unwrap() as f32, p["retention_days"].as_u64()), (0.9, Some(7)));
    assert_eq!(s.get("/v1/lists/overstay/policy", Some(&t.ops)).ok()["retention_days"], 7);
    let bad = put(json!({"threshold": 1.5}));
    assert_eq!((bad.status, bad.error_code().as_str()), (400, "bad_request"));
    assert_eq!(put(json!({"colour": "red"})).status, 400);
    let unknown = s.call("PUT", "/v1/lists/nope/policy", Some(&t.ops), Body::Json(json!({"threshold": 0.9})));
    assert_eq!((unknown.status, unknown.error_code().as_str()), (404, "not_found"));

    let audit = s.get("/v1/audit", Some(&t.admin)).ok();
    let change = audit["entries"].as_array().unwrap().iter().find(|e| e["action"] == "policy.update").unwrap().clone();
    assert_eq!((change["actor"].as_str(), change["role"].as_str()), (Some("olga"), Some("ops")));
    assert_eq!(change["target"], "list:overstay");
    assert!((change["old"]["threshold"].as_f64().unwrap() - 0.94).abs() < 1e-6, "{change}");
    assert!((change["new"]["threshold"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    assert!(change["at_ms"].as_i64().unwrap() > 0);
    assert_eq!(s.get("/v1/audit/verify", Some(&t.admin)).ok()["ok"], true);
    assert!(s.stop().success());

    let verify = |d: &Path| {
        std::process::Command::new(common::server::bin())
            .args(["--data-dir", d.to_str().unwrap(), "audit", "verify"])
            .output()
            .unwrap()
    };
    let ok = verify(dir.path());
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    // Someone with file access rewrites history: the chain shows where.
    let db = rusqlite::Connection::open(dir.path().join("facewatch.db")).unwrap();
    assert!(db.execute("UPDATE audit SET new = '{\"threshold\":0.5}' WHERE action = 'policy.update'", []).is_err());
    db.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET new = '{\"threshold\":0.5}' WHERE action = 'policy.update';",
    )
    .unwrap();
    drop(db);
    let broken = verify(dir.path());
    assert!(!broken.status.success());
    let out = String::from_utf8_lossy(&broken.stdout);
    assert!(out.contains("BROKEN at entry"), "{out}");
    let s = Server::start(dir.path(), &[]);
    let v = s.get("/v1/audit/verify", Some(&t.admin)).ok();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_bad_seq"], change["seq"]);
}

#[test]
fn overload_answers_503_with_retry_after_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    let s = Server::start(
        dir.path(),
        &[("FACEWATCH_INFERENCE__QUEUE_CAPACITY", "1"), ("FACEWATCH_INFERENCE__DETECT_WORKERS", "1")],
    );
    let crowd = std::fs::read(first_file("multiface")).unwrap();
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..24)
            .map(|_| {
                sc.spawn(|| {
                    let r = s.frame("gate-1", &t.camera, &crowd);
                    if r.status == 503 {
                        assert_eq!(r.error_code(), "overloaded");
                    }
                    (r.status, r.retry_after)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let busy = statuses.iter().filter(|(st, _)| *st == 503).count();
    let ok = statuses.iter().filter(|(st, _)| *st == 200).count();
    assert_eq!(busy + ok, 24, "only 200 or 503: {statuses:?}");
    assert!(busy > 0 && ok > 0, "a tiny queue must refuse some frames and serve others: {statuses:?}");
    assert!(statuses.iter().filter(|(st, _)| *st == 503).all(|(_, ra)| ra.as_deref() == Some("1")));
    assert_eq!(s.get("/healthz", None).status, 200);
    assert_eq!(s.frame("gate-1", &t.camera, &crowd).status, 200, "still serving after the burst");
    assert_eq!(s.metric("facewatch_rejections_total{reason=\"overloaded\"}"), busy as f64);
    assert!(s.stop().success());
}

#[test]
fn bad_inputs_get_the_documented_errors() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    let s = Server::start(
        dir.path(),
        &[("FACEWATCH_LIMITS__MAX_BODY_BYTES", "200000"), ("FACEWATCH_LIMITS__MAX_PIXELS", "50000")],
    );
    let jpeg = colin(1); // 250x250 = 62,500 pixels, over this server's pixel limit
    let frame = |ct: &str, body: Vec<u8>| {
        s.call("POST", "/v1/cameras/gate-1/frames", Some(&t.camera), Body::Raw(ct.into(), body))
    };
    let expect = |r: common::server::Resp, status: u16, code: &str, what: &str| {
        assert_eq!((r.status, r.error_code().as_str()), (status, code), "{what}");
    };
    expect(frame("", jpeg.clone()), 415, "unsupported_media_type", "no content type");
    expect(frame("text/plain", jpeg.clone()), 415, "unsupported_media_type", "text body");
    expect(frame("image/jpeg", vec![]), 400, "empty_input", "empty body");
    let small = {
        let img = image::load_from_memory(&jpeg).unwrap().crop_imm(50, 50, 120, 120);
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    };
    expect(frame("image/jpeg", small[..small.len() / 3].to_vec()), 422, "corrupt_image", "truncated JPEG");
    expect(frame("image/jpeg", b"GIF89a not really".to_vec()), 415, "unsupported_media_type", "GIF bytes");
    expect(frame("image/jpeg", jpeg.clone()), 413, "image_too_large", "too many pixels");
    expect(frame("image/jpeg", vec![0xFF; 300_000]), 413, "payload_too_large", "body over the limit");
    let bad_cam =
        s.call("POST", "/v1/cameras/gate%201/frames", Some(&t.camera), Body::Raw("image/jpeg".into(), jpeg.clone()));
    expect(bad_cam, 400, "bad_request", "camera name with a space");
    let bad_time = s.call(
        "POST",
        "/v1/cameras/gate-1/frames?captured_at=yesterday",
        Some(&t.camera),
        Body::Raw("image/jpeg".into(), jpeg.clone()),
    );
    expect(bad_time, 400, "bad_request", "captured_at not RFC 3339");

    let lists = |body: Body| s.call("POST", "/v1/lists", Some(&t.ops), body);
    expect(lists(Body::Raw("application/json".into(), b"{\"name\": ".to_vec())), 400, "bad_request", "malformed JSON");
    expect(
        lists(Body::Raw("text/plain".into(), b"{\"name\":\"a\"}".to_vec())),
        415,
        "unsupported_media_type",
        "JSON as text",
    );
    expect(lists(Body::Json(json!({"name": "a", "colour": 1}))), 400, "bad_request", "unknown field");
    expect(lists(Body::Json(json!({"name": "bad/name"}))), 400, "bad_request", "invalid list name");
    s.post_json("/v1/lists", Some(&t.ops), &json!({"name": "wanted"})).ok();

    let enroll = |body: Body| s.call("POST", "/v1/lists/wanted/subjects", Some(&t.ops), body);
    expect(enroll(multipart(&[("subject", "x")], &[])), 400, "bad_request", "no image");
    expect(enroll(multipart(&[], &[("a.jpg", "image/jpeg", jpeg.clone())])), 400, "bad_request", "no subject");
    let nonface = std::fs::read(first_file("nonface")).unwrap();
    let small = s.call(
        "POST",
        "/v1/lists/wanted/subjects",
        Some(&t.ops),
        multipart(&[("subject", "x")], &[("n.jpg", "image/jpeg", nonface.clone())]),
    );
    expect(small, 422, "enrollment_refused", "photo without a face");
    expect(
        enroll(multipart(&[("subject", "x")], &[("a.txt", "text/plain", b"hi".to_vec())])),
        415,
        "unsupported_media_type",
        "text file",
    );
    expect(enroll(Body::Json(json!({"subject": "x"}))), 400, "bad_request", "JSON instead of a form");
    let unknown_list = s.call(
        "POST",
        "/v1/lists/nope/subjects",
        Some(&t.ops),
        multipart(&[("subject", "x")], &[("n.jpg", "image/jpeg", nonface)]),
    );
    expect(unknown_list, 404, "not_found", "unknown list");

    expect(s.get("/v1/alerts/00000000-0000-0000-0000-000000000000", Some(&t.ann)), 404, "not_found", "unknown alert");
    expect(s.get("/v1/alerts?limit=0", Some(&t.ann)), 400, "bad_request", "limit 0");
    expect(s.get("/v1/alerts?status=maybe", Some(&t.ann)), 400, "bad_request", "unknown status");
    let review = s.post_json("/v1/alerts/x/review", Some(&t.ann), &json!({"decision": "approve"}));
    expect(review, 400, "bad_request", "unknown decision");
    expect(s.get("/v1/lists/nope", Some(&t.ops)), 404, "not_found", "unknown list");
    expect(s.call("DELETE", "/v1/tokens/999", Some(&t.admin), Body::None), 404, "not_found", "unknown token");
    expect(s.get("/v1/nothing-here", None), 404, "not_found", "unknown route");
    expect(s.call("DELETE", "/v1/alerts", Some(&t.ann), Body::None), 405, "method_not_allowed", "wrong method");
    let bad_token = s.post_json("/v1/tokens", Some(&t.admin), &json!({"name": "x", "role": "king"}));
    expect(bad_token, 400, "bad_request", "unknown role");
    assert_eq!(s.get("/healthz", None).status, 200, "still alive after all of it");
    assert!(s.stop().success());
}

#[test]
fn retention_deletes_alert_crops_and_reference_images() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    let s = Server::start(dir.path(), &[("FACEWATCH_RETENTION__SWEEP_SECS", "1")]);
    enroll_colin(&s, &t, json!({"threshold": 0.93}));
    let r = s.frame("gate-1", &t.camera, &colin(4)).ok();
    let id = r["alerts"][0].as_str().unwrap().to_string();
    let crop = format!("/v1/alerts/{id}/crop");
    assert_eq!(s.get(&crop, Some(&t.ann)).status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s.get(&crop, Some(&t.ann)).status, 200, "30-day retention keeps the crop");
    // Retention 0 days: the next sweep deletes the images but keeps the alert record.
    s.call("PUT", "/v1/lists/wanted/policy", Some(&t.ops), Body::Json(json!({"retention_days": 0}))).ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while files_in(&dir.path().join("crops")) + files_in(&dir.path().join("references")) > 0 {
        assert!(std::time::Instant::now() < deadline, "retention did not delete the face images");
        std::thread::sleep(Duration::from_millis(200));
    }
    let a = s.get(&format!("/v1/alerts/{id}"), Some(&t.ann)).ok();
    assert_eq!((a["crop_url"].clone(), a["reference_url"].clone()), (Value::Null, Value::Null));
    assert_eq!(s.get(&crop, Some(&t.ann)).status, 404);
    assert!(s.stop().success());
}

/// The OpenAPI document is generated with the routes (utoipa-axum), and this holds it to the
/// running service: every documented operation is served (without a token a secured one is 401,
/// an open one 200: never the router's 404 or 405), every other method on a documented path is
/// 405, each secured operation refuses a token of another role than its `x-role` (403) and lets
/// its own past the role check; and the real answers (frame, enrollment, alert, lists, policy,
/// subjects, cameras, tokens, audit, events, errors) have exactly the properties of their
/// documented schemas: the required ones present, none undocumented.
#[test]
fn openapi_document_matches_the_routes_and_the_answers() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    let relay = token(dir.path(), "relay", "central");
    let config = dir.path().join("facewatch.toml");
    // The full frame report (the richer schema) and one pulled camera (disabled: no ffmpeg).
    let cfg = format!(
        "[service]\ndata_dir = {:?}\n\n[api]\ncamera_response = \"full\"\n\n[[cameras]]\nid = \"hall\"\n\
         url = \"rtsp://cam:secret@127.0.0.1:9/hall\"\nenabled = false\n",
        dir.path().display().to_string()
    );
    std::fs::write(&config, cfg).unwrap();
    let s = Server::start_with_config(&config, dir.path());
    let doc = s.get("/v1/openapi.json", None).ok();
    assert_eq!(doc, serde_json::from_str::<Value>(facewatch::api::openapi_json()).unwrap(), "served = built");
    let printed = std::process::Command::new(common::server::bin()).arg("openapi").output().unwrap();
    assert!(printed.status.success());
    assert_eq!(serde_json::from_slice::<Value>(&printed.stdout).unwrap(), doc, "facewatch openapi = served");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));

    // Routes: documented <=> served.
    let by_role = [("camera", &t.camera), ("officer", &t.ann), ("ops", &t.ops), ("admin", &t.admin), ("relay", &relay)];
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        // A path parameter: a camera the camera token is bound to, else a name nothing has.
        let url = path.replace("{camera}", "gate-2").replace(['{', '}'], "");
        for method in ["get", "post", "put", "delete", "patch"] {
            let m = method.to_uppercase();
            let Some(op) = item.get(method) else {
                let r = s.call(&m, &url, None, Body::None);
                assert_eq!((r.status, r.error_code().as_str()), (405, "method_not_allowed"), "{m} {path}");
                continue;
            };
            operations += 1;
            let r = s.call(&m, &url, None, Body::None);
            let Some(role) = op["x-role"].as_str() else {
                assert!(op.get("security").is_none(), "{m} {path}: secured but no x-role");
                assert_eq!(r.status, 200, "{m} {path}: an open route");
                continue;
            };
            assert_eq!(op["security"], json!([{"bearer": []}]), "{m} {path}");
            assert_eq!((r.status, r.error_code().as_str()), (401, "unauthorized"), "{m} {path} without a token");
            conforms(&doc, &op["responses"]["401"]["content"]["application/json"]["schema"], &r.json(), "401");
            for (other, tok) in &by_role {
                if *other == role && path.ends_with("/stream") {
                    continue; // a stream never ends (opened in the flow test)
                }
                let r = s.call(&m, &url, Some(tok), Body::None);
                if *other == role {
                    assert!(r.status != 401 && r.status != 403, "{m} {path} as {role}: {}", r.status);
                } else {
                    assert_eq!(r.status, 403, "{m} {path} as {other}: the document says {role}");
                }
            }
        }
    }
    assert_eq!(operations, 28, "operations documented");

    // Answers: exactly their schemas.
    let check = |m: &str, path: &str, token: &str, body: Body, status: u16| -> Value {
        let r = s.call(m, path, Some(token), body);
        assert_eq!(r.status, status, "{m} {path}: {}", String::from_utf8_lossy(&r.body));
        let templ = template_of(&doc, path);
        let resp = &doc["paths"][templ.as_str()][m.to_lowercase()]["responses"][status.to_string()];
        let v = r.json();
        conforms(&doc, &resp["content"]["application/json"]["schema"], &v, &format!("{m} {path} {status}"));
        v
    };
    let created = json!({"name": "wanted", "policy": {"threshold": 0.93}});
    check("POST", "/v1/lists", &t.ops, Body::Json(created), 201);
    let form = multipart(
        &[("subject", "colin"), ("name", "Colin Powell")],
        &[("0001.jpg", "image/jpeg", colin(1)), ("0002.jpg", "image/jpeg", colin(2))],
    );
    check("POST", "/v1/lists/wanted/subjects", &t.ops, form, 201);
    let frame = check("POST", "/v1/cameras/gate-2/frames", &t.camera, Body::Raw("image/jpeg".into(), colin(4)), 200);
    let id = frame["alerts"][0].as_str().unwrap_or_else(|| panic!("no alert: {frame}")).to_string();
    check("GET", "/v1/alerts", &t.ann, Body::None, 200);
    let alert = check("GET", &format!("/v1/alerts/{id}"), &t.ann, Body::None, 200);
    // The check itself catches an undocumented property and a missing required one.
    let schema = &doc["paths"]["/v1/alerts/{id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    let mut extra = alert.clone();
    extra["surprise"] = json!(1);
    assert!(fits(&doc, schema, &extra, "extra").is_err());
    let mut missing = alert.clone();
    missing.as_object_mut().unwrap().remove("sightings");
    assert!(fits(&doc, schema, &missing, "missing").is_err());
    let review = Body::Json(json!({"decision": "confirm", "note": "looks like him"}));
    check("POST", &format!("/v1/alerts/{id}/review"), &t.ann, review, 200);
    let again = Body::Json(json!({"decision": "confirm"}));
    check("POST", &format!("/v1/alerts/{id}/review"), &t.ann, again, 409);
    let crop = s.get(&format!("/v1/alerts/{id}/crop"), Some(&t.ann));
    let crop_doc = &doc["paths"]["/v1/alerts/{id}/crop"]["get"]["responses"]["200"]["content"];
    assert!(crop.status == 200 && crop_doc.get(&crop.content_type).is_some(), "{}", crop.content_type);
    check("GET", "/v1/lists", &t.ops, Body::None, 200);
    check("GET", "/v1/lists/wanted", &t.ops, Body::None, 200);
    check("GET", "/v1/lists/wanted/policy", &t.ops, Body::None, 200);
    check("PUT", "/v1/lists/wanted/policy", &t.ops, Body::Json(json!({"cooldown_secs": 30})), 200);
    check("PUT", "/v1/lists/wanted/policy", &t.ops, Body::Json(json!({"threshold": 2})), 400);
    check("GET", "/v1/lists/wanted/subjects", &t.ops, Body::None, 200);
    check("GET", "/v1/lists/wanted/subjects/colin", &t.ops, Body::None, 200);
    check("GET", "/v1/lists/wanted/subjects/nobody", &t.ops, Body::None, 404);
    let cameras = check("GET", "/v1/cameras", &t.ops, Body::None, 200);
    assert_eq!(
        (cameras["cameras"][0]["id"].as_str(), cameras["cameras"][0]["state"].as_str()),
        (Some("hall"), Some("disabled"))
    );
    let new = Body::Json(json!({"name": "gate-3", "role": "camera", "cameras": ["gate-3"]}));
    let made = check("POST", "/v1/tokens", &t.admin, new, 201);
    check("GET", "/v1/tokens", &t.admin, Body::None, 200);
    check("DELETE", &format!("/v1/tokens/{}", made["id"]), &t.admin, Body::None, 200);
    check("GET", "/v1/audit?limit=1000", &t.admin, Body::None, 200);
    check("GET", "/v1/audit/verify", &t.admin, Body::None, 200);
    let events = check("GET", "/v1/events", &relay, Body::None, 200);
    assert!(events["events"].as_array().unwrap().len() >= 3, "{events}");
    check("DELETE", "/v1/lists/wanted/subjects/colin", &t.ops, Body::None, 200);
    check("DELETE", "/v1/lists/wanted", &t.ops, Body::None, 200);
    let r = s.get("/healthz", None);
    conforms(
        &doc,
        &doc["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
        &r.json(),
        "healthz",
    );
    let r = s.get("/readyz", None);
    conforms(
        &doc,
        &doc["paths"]["/readyz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
        &r.json(),
        "readyz",
    );
    let metrics = s.get("/metrics", None);
    assert!(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"].get(&metrics.content_type).is_some());
    assert!(s.stop().success());
}

/// The documented path template a concrete path was served by (`/v1/alerts/abc` -> `/v1/alerts/{id}`).
fn template_of(doc: &Value, path: &str) -> String {
    let path = path.split('?').next().unwrap();
    let segs: Vec<&str> = path.split('/').collect();
    let fits = |t: &str| {
        let ts: Vec<&str> = t.split('/').collect();
        ts.len() == segs.len() && ts.iter().zip(&segs).all(|(t, s)| t == s || t.starts_with('{'))
    };
    let paths = doc["paths"].as_object().unwrap();
    // A literal segment wins over a parameter (`/v1/alerts/stream` over `/v1/alerts/{id}`).
    let mut found: Vec<&String> = paths.keys().filter(|t| fits(t)).collect();
    found.sort_by_key(|t| t.matches('{').count());
    found.first().unwrap_or_else(|| panic!("{path} is not documented")).to_string()
}

/// A schema with its `$ref` resolved and its `allOf` parts merged into one object schema.
fn resolved(doc: &Value, schema: &Value) -> Value {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        return resolved(doc, &doc["components"]["schemas"][name]);
    }
    let Some(parts) = schema["allOf"].as_array() else { return schema.clone() };
    let (mut properties, mut required) = (serde_json::Map::new(), Vec::new());
    for p in parts.iter().map(|p| resolved(doc, p)) {
        properties.extend(p["properties"].as_object().cloned().unwrap_or_default());
        required.extend(p["required"].as_array().cloned().unwrap_or_default());
    }
    json!({"type": "object", "properties": properties, "required": required})
}

/// Panics unless `v` fits `schema` exactly: types, enums, required properties present and no
/// undocumented property, all the way down; `oneOf`: exactly one branch fits.
fn conforms(doc: &Value, schema: &Value, v: &Value, at: &str) {
    if let Err(e) = fits(doc, schema, v, at) {
        panic!("{e}\nvalue: {v}");
    }
}

fn fits(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    assert!(!schema.is_null(), "{at}: no schema documented");
    let schema = resolved(doc, schema);
    if let Some(branches) = schema["oneOf"].as_array() {
        let ok = branches.iter().filter(|b| fits(doc, b, v, at).is_ok()).count();
        return if ok == 1 { Ok(()) } else { Err(format!("{at}: fits {ok} branches of oneOf")) };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()), // any value (`serde_json::Value`)
    };
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if !types.iter().any(|t| *t == kind || (*t == "number" && kind == "integer")) {
        return Err(format!("{at}: a {kind}, documented as {types:?}"));
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(v)
    {
        return Err(format!("{at}: {v} is not one of {values:?}"));
    }
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                fits(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
            }
        }
        Value::Object(fields) => {
            let props = schema["properties"].as_object().cloned().unwrap_or_default();
            for r in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !fields.contains_key(r) {
                    return Err(format!("{at}: required property {r} missing"));
                }
            }
            for (k, fv) in fields {
                match (props.get(k), &schema["additionalProperties"]) {
                    (Some(p), _) => fits(doc, p, fv, &format!("{at}.{k}"))?,
                    (None, extra) if extra.is_object() => fits(doc, extra, fv, &format!("{at}.{k}"))?,
                    (None, _) => return Err(format!("{at}: property {k} is not documented")),
                }
            }
        }
        _ => {}
    }
    Ok(())
}
