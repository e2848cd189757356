//! Access and live streams under hostile use (issue 15, items 5, 7, 8), against a real
//! `facewatch serve` process with the real models and photos: camera tokens bound to their
//! cameras and told little, alert streams capped and ended by revocation, and `/healthz` fast
//! while scans and scrapes flood the service and cameras post frames.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::server::{Body, Server, camera_token, follow_sse, multipart, token};
use common::{colin, photo};
use serde_json::{Value, json};

/// Watch list `wanted` with Colin Powell, every sighting a new alert.
fn enroll_colin(s: &Server, ops: &str) {
    s.post_json("/v1/lists", Some(ops), &json!({"name": "wanted", "policy": {"threshold": 0.93, "cooldown_secs": 0}}))
        .ok();
    let form = multipart(
        &[("subject", "colin"), ("name", "Colin Powell")],
        &[("0001.jpg", "image/jpeg", colin(1)), ("0002.jpg", "image/jpeg", colin(2))],
    );
    s.call("POST", "/v1/lists/wanted/subjects", Some(ops), form).ok();
}

fn metrics(s: &Server) -> String {
    String::from_utf8(s.get("/metrics", None).body).unwrap()
}

#[test]
fn camera_tokens_post_only_as_their_cameras_and_learn_only_boxes_and_alert_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (ops, admin) = (token(dir.path(), "ops", "olga"), token(dir.path(), "admin", "root"));
    let cam = camera_token(dir.path(), "gate-1", &["gate-1"]);
    // A camera token bound to no camera is refused at creation.
    let unbound = std::process::Command::new(common::server::bin())
        .args(["--data-dir", dir.path().to_str().unwrap(), "token", "create", "--role", "camera", "--name", "x"])
        .output()
        .unwrap();
    assert!(!unbound.status.success(), "a camera token needs --camera");
    assert!(String::from_utf8_lossy(&unbound.stderr).contains("camera"));
    let s = Server::start(dir.path(), &[]);
    enroll_colin(&s, &ops);

    let r = s.frame("gate-1", &cam, &colin(4));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["alerts"].as_array().map(Vec::len), Some(1), "the match raised an alert: {v}");
    let face = v["faces"][0].as_object().unwrap();
    assert_eq!(face.keys().collect::<Vec<_>>(), ["bbox"], "a face is its box only: {v}");
    let text = String::from_utf8_lossy(&r.body);
    for secret in ["colin", "Colin", "wanted", "score", "threshold", "matches"] {
        assert!(!text.contains(secret), "the camera learns {secret:?}: {text}");
    }

    // Posing as another camera: 403, and no metric series for it.
    let other = s.frame("gate-9", &cam, &colin(5));
    assert_eq!((other.status, other.error_code().as_str()), (403, "forbidden"));
    let m = metrics(&s);
    assert!(m.contains("facewatch_frames_total{camera=\"gate-1\"} 1"), "{m}");
    assert!(!m.contains("gate-9"), "{m}");

    // The admin API binds too: no cameras (or bad ones) is refused; a bound token posts.
    for body in [
        json!({"name": "g9", "role": "camera"}),
        json!({"name": "g9", "role": "camera", "cameras": ["bad id"]}),
        json!({"name": "o", "role": "officer", "cameras": ["gate-9"]}),
    ] {
        let r = s.post_json("/v1/tokens", Some(&admin), &body);
        assert_eq!((r.status, r.error_code().as_str()), (400, "bad_request"), "{body}");
    }
    let g9 = s.post_json("/v1/tokens", Some(&admin), &json!({"name": "g9", "role": "camera", "cameras": ["gate-9"]}));
    let g9 = g9.ok();
    assert_eq!(g9["cameras"], json!(["gate-9"]));
    let r = s.frame("gate-9", g9["token"].as_str().unwrap(), &photo("faces/Gerhard_Schroeder/0001.jpg"));
    assert_eq!(r.status, 200);
    assert!(metrics(&s).contains("facewatch_frames_total{camera=\"gate-9\"} 1"));
    let listed = s.get("/v1/tokens", Some(&admin)).ok();
    assert!(listed["tokens"].as_array().unwrap().iter().any(|t| t["cameras"] == json!(["gate-1"])), "{listed}");
    assert!(s.stop().success());
}

/// An open `/v1/alerts/stream`: its events on a channel, and a message when it ends.
struct Stream {
    ended: mpsc::Receiver<()>,
    events: mpsc::Receiver<(String, Value)>,
}

fn open_stream(s: &Server, token: &str) -> Result<Stream, (u16, String)> {
    let r = ureq::get(&format!("{}/v1/alerts/stream", s.url)).set("Authorization", &format!("Bearer {token}")).call();
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(st, r)) => return Err((st, r.into_string().unwrap_or_default())),
        Err(e) => panic!("open stream: {e}"),
    };
    let (end_tx, ended) = mpsc::channel();
    let (ev_tx, events) = mpsc::channel();
    std::thread::spawn(move || {
        follow_sse(resp, &ev_tx);
        let _ = end_tx.send(());
    });
    Ok(Stream { ended, events })
}

fn new_officer(s: &Server, admin: &str, name: &str) -> (i64, String) {
    let t = s.post_json("/v1/tokens", Some(admin), &json!({"name": name, "role": "officer"})).ok();
    (t["id"].as_i64().unwrap(), t["token"].as_str().unwrap().to_string())
}

#[test]
fn alert_streams_are_capped_and_end_within_a_second_of_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let admin = token(dir.path(), "admin", "root");
    let s = Server::start(
        dir.path(),
        &[("FACEWATCH_API__SSE_MAX_STREAMS", "3"), ("FACEWATCH_API__SSE_MAX_STREAMS_PER_TOKEN", "2")],
    );
    let (ann_id, ann) = new_officer(&s, &admin, "ann");
    let (bob_id, bob) = new_officer(&s, &admin, "bob");
    let (_, cat) = new_officer(&s, &admin, "cat");
    let a1 = open_stream(&s, &ann).unwrap();
    let a2 = open_stream(&s, &ann).unwrap();
    let (st, body) = open_stream(&s, &ann).err().expect("a third stream for one token");
    assert_eq!(st, 429, "{body}");
    assert!(body.contains("too_many_streams") && body.contains("for this token"), "{body}");
    let b1 = open_stream(&s, &bob).unwrap();
    let (st, body) = open_stream(&s, &cat).err().expect("a fourth stream in all");
    assert_eq!(st, 429, "{body}");
    assert!(body.contains("on this checkpoint"), "{body}");

    // Revoked through the API: both of ann's streams end within a second.
    let t = Instant::now();
    s.call("DELETE", &format!("/v1/tokens/{ann_id}"), Some(&admin), Body::None).ok();
    for a in [&a1, &a2] {
        let left = Duration::from_secs(1).saturating_sub(t.elapsed());
        assert!(a.ended.recv_timeout(left).is_ok(), "ann's stream still open {:?} after revocation", t.elapsed());
    }
    println!("API revocation ended 2 streams in {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
    assert!(b1.ended.try_recv().is_err(), "bob's stream is not affected");
    // Their slots are free again.
    let deadline = Instant::now() + Duration::from_secs(2);
    let c1 = loop {
        match open_stream(&s, &cat) {
            Ok(c) => break c,
            Err((429, _)) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("slots not freed: {e:?}"),
        }
    };

    // Revoked with the command line while the service runs: the stream ends on the next reload.
    let out = std::process::Command::new(common::server::bin())
        .args(["--data-dir", dir.path().to_str().unwrap(), "token", "revoke", &bob_id.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let t = Instant::now();
    assert!(b1.ended.recv_timeout(Duration::from_secs(3)).is_ok(), "CLI revocation did not end bob's stream");
    println!("CLI revocation ended the stream in {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
    assert_eq!(s.get("/v1/alerts", Some(&bob)).status, 401);
    assert!(c1.events.try_recv().is_err() && c1.ended.try_recv().is_err(), "cat's stream is still open");
    assert!(s.stop().success());
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Writes `n` real, chained audit entries (as many policy changes would), before the service runs.
fn seed_audit(data: &Path, n: usize) {
    let conn = facewatch::db::connect(&data.join("facewatch.db")).unwrap();
    conn.execute_batch(facewatch::audit::SCHEMA).unwrap();
    conn.execute_batch("BEGIN").unwrap();
    let by = facewatch::audit::Actor { name: "olga".into(), role: "ops".into() };
    let note = "x".repeat(400);
    for i in 0..n {
        let old = json!({"threshold": 0.94, "note": note, "n": i});
        let new = json!({"threshold": 0.93, "note": note, "n": i});
        facewatch::audit::append(&conn, &by, "policy.update", "list:seeded", Some(&old), Some(&new)).unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

#[test]
fn healthz_stays_fast_while_scans_and_scrapes_flood_and_cameras_post() {
    const CLIENTS: usize = 50;
    const FLOOD: Duration = Duration::from_secs(10);
    let dir = tempfile::tempdir().unwrap();
    seed_audit(dir.path(), 5000);
    let (ops, admin) = (token(dir.path(), "ops", "olga"), token(dir.path(), "admin", "root"));
    let cam = camera_token(dir.path(), "gates", &["gate-1", "gate-2"]);
    let s = Server::start(dir.path(), &[]);
    enroll_colin(&s, &ops);
    let frames: Vec<Vec<u8>> = (3..=12).map(colin).chain([photo("faces/Gerhard_Schroeder/0001.jpg")]).collect();

    let stop = AtomicBool::new(false);
    let served = [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];
    let verify_busy = AtomicUsize::new(0);
    let (frames_ok, frames_busy) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let agent = || ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
    let status = |r: Result<ureq::Response, ureq::Error>| match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(st, r)) => (st, r.into_string().unwrap_or_default()),
        Err(e) => panic!("request failed: {e}"),
    };
    let healthz: Vec<f64> = std::thread::scope(|sc| {
        for i in 0..CLIENTS {
            let (s, stop, served, admin, verify_busy) = (&s, &stop, &served, &admin, &verify_busy);
            sc.spawn(move || {
                let a = agent();
                while !stop.load(Ordering::Relaxed) {
                    let route = i % 3;
                    let (st, body) = match route {
                        0 => status(a.get(&format!("{}/readyz", s.url)).call()),
                        1 => status(a.get(&format!("{}/metrics", s.url)).call()),
                        _ => status(
                            a.get(&format!("{}/v1/audit/verify", s.url))
                                .set("Authorization", &format!("Bearer {admin}"))
                                .call(),
                        ),
                    };
                    if route == 2 && st == 503 {
                        assert!(body.contains("overloaded"), "{body}");
                        verify_busy.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    assert_eq!(st, 200, "route {route}: {body}");
                    if route == 2 {
                        assert!(body.contains("\"ok\":true"), "{body}");
                    }
                    served[route].fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for (c, camera) in ["gate-1", "gate-2"].into_iter().enumerate() {
            let (s, stop, frames, cam, ok, busy) = (&s, &stop, &frames, &cam, &frames_ok, &frames_busy);
            sc.spawn(move || {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let r = s.frame(camera, cam, &frames[i % frames.len()]);
                    match r.status {
                        200 => ok.fetch_add(1, Ordering::Relaxed),
                        503 => busy.fetch_add(1, Ordering::Relaxed),
                        st => panic!("frame refused with {st}: {}", String::from_utf8_lossy(&r.body)),
                    };
                    i += 2;
                }
            });
        }
        let a = agent();
        let mut lat = Vec::new();
        let start = Instant::now();
        while start.elapsed() < FLOOD {
            let t = Instant::now();
            let (st, _) = status(a.get(&format!("{}/healthz", s.url)).call());
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(st, 200);
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        lat
    });
    let mut lat = healthz;
    lat.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));
    let n = |i: usize| served[i].load(Ordering::Relaxed);
    println!(
        "flood {CLIENTS} clients, {:.0} s: /healthz n={} p50 {p50:.2} ms p99 {p99:.2} ms max {:.1} ms; served readyz {} \
         metrics {} verify {} (+{} verify 503); frames 200 {} / 503 {}",
        FLOOD.as_secs_f64(),
        lat.len(),
        lat[lat.len() - 1],
        n(0),
        n(1),
        n(2),
        verify_busy.load(Ordering::Relaxed),
        frames_ok.load(Ordering::Relaxed),
        frames_busy.load(Ordering::Relaxed),
    );
    assert!(frames_ok.load(Ordering::Relaxed) > 0, "no frame was served during the flood");
    assert!(n(0) > 0 && n(1) > 0 && n(2) > 0, "every flooded route was served");
    assert!(p99 < 50.0, "/healthz p99 {p99:.1} ms under the flood (p50 {p50:.2} ms)");
    assert!(s.stop().success());
}
