//! Events to the central system through a real nats-server: every event arrives, in order per
//! camera, exactly once (counted by event id on the consumer side), through broker outages,
//! broker restarts and a SIGKILL of the service in the middle of publishing.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use common::colin;
use common::nats::Nats;
use common::server::{Body, Server, camera_token, multipart, token};
use serde_json::{Value, json};

struct Tokens {
    ops: String,
    camera: String,
    relay: String,
}

fn tokens(data: &Path) -> Tokens {
    Tokens {
        ops: token(data, "ops", "olga"),
        camera: camera_token(data, "cams", &["gate-1", "gate-2"]),
        relay: token(data, "relay", "hq"),
    }
}

fn serve(data: &Path, nats: &Nats) -> Server {
    Server::start(
        data,
        &[("FACEWATCH_EVENTS__NATS_URL", &nats.url()), ("FACEWATCH_EVENTS__PUBLISH_MAX_BACKOFF_MS", "500")],
    )
}

/// A list where every match alerts (no cooldown), with Colin Powell enrolled.
fn watch_colin(s: &Server, t: &Tokens) {
    let policy = json!({"threshold": 0.93, "cooldown_secs": 0});
    s.post_json("/v1/lists", Some(&t.ops), &json!({"name": "wanted", "policy": policy})).ok();
    let form =
        multipart(&[("subject", "colin")], &[("1.jpg", "image/jpeg", colin(1)), ("2.jpg", "image/jpeg", colin(2))]);
    s.call("POST", "/v1/lists/wanted/subjects", Some(&t.ops), form).ok();
}

/// Ids of every event in the local outbox, in order.
fn outbox_ids(data: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(data.join("facewatch.db")).unwrap();
    let mut st = db.prepare("SELECT id FROM outbox WHERE parked_reason IS NULL ORDER BY seq").unwrap();
    st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

/// Every outbox event is in the stream exactly once; returns the stream's events.
fn assert_exactly_once(nats: &Nats, data: &Path, durable: &str) -> Vec<Value> {
    let got = nats.events(durable);
    let ids: Vec<String> = got.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicates in the stream: {} events, {} ids", ids.len(), unique.len());
    let want = outbox_ids(data);
    let missing: Vec<&String> = want.iter().filter(|id| !unique.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events lost: {:?}",
        missing.len(),
        want.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(ids.len(), want.len(), "the stream holds events the outbox does not");
    got
}

/// Checks an event against `schemas/event.v1.json`: envelope fields, type, and the fields its
/// type requires in `data` (the parts of JSON Schema that file uses).
fn assert_conforms(event: &Value) {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(common::root().join("schemas/event.v1.json")).unwrap()).unwrap();
    for f in schema["required"].as_array().unwrap() {
        assert!(event.get(f.as_str().unwrap()).is_some(), "{f} missing: {event}");
    }
    assert_eq!(event["schema"], schema["properties"]["schema"]["const"]);
    assert!(schema["properties"]["type"]["enum"].as_array().unwrap().contains(&event["type"]), "{event}");
    let rule =
        schema["allOf"].as_array().unwrap().iter().find(|r| r["if"]["properties"]["type"]["const"] == event["type"]);
    let data = &rule.unwrap()["then"]["properties"]["data"];
    for f in data["required"].as_array().unwrap() {
        assert!(event["data"].get(f.as_str().unwrap()).is_some(), "data.{f} missing: {event}");
    }
}

fn post_frames(s: &Server, t: &Tokens, frames: &[(&str, u32)]) -> BTreeMap<String, Vec<String>> {
    let mut by_camera: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (camera, n) in frames {
        let r = s.frame(camera, &t.camera, &colin(*n)).ok();
        let ids: Vec<String> =
            r["alerts"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
        assert_eq!(ids.len(), 1, "frame {n} at {camera} should alert: {r}");
        by_camera.entry(camera.to_string()).or_default().extend(ids);
    }
    by_camera
}

#[test]
fn every_event_arrives_once_in_order_per_camera() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    let s = serve(dir.path(), &nats);
    watch_colin(&s, &t);
    let frames = [("gate-1", 3), ("gate-2", 4), ("gate-1", 5), ("gate-2", 6), ("gate-1", 7), ("gate-2", 8)];
    let sent = post_frames(&s, &t, &frames);
    let first = sent["gate-1"][0].clone();
    s.post_json(
        &format!("/v1/alerts/{first}/review"),
        Some(&token(dir.path(), "officer", "ann")),
        &json!({"decision": "confirm"}),
    )
    .ok();
    s.wait_delivered(Duration::from_secs(30));
    let events = assert_exactly_once(&nats, dir.path(), "all");
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "alert.created").count(), 6);
    assert_eq!(kinds.iter().filter(|k| **k == "subject.enrolled").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "alert.reviewed").count(), 1);
    for (camera, ids) in &sent {
        let seen: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "alert.created" && e["camera"] == camera.as_str())
            .map(|e| e["data"]["alert_id"].as_str().unwrap())
            .collect();
        assert_eq!(seen, ids.iter().map(String::as_str).collect::<Vec<_>>(), "order at {camera}");
    }
    events.iter().for_each(assert_conforms);
    let alert = events.iter().find(|e| e["type"] == "alert.created").unwrap();
    assert_eq!(alert["schema"], "facewatch.event.v1");
    assert_eq!(alert["site"], "test-site");
    assert!(alert["data"]["threshold"].is_number() && alert["data"]["models"]["embedder"]["name"].is_string());
    assert!(alert["data"].get("crop_jpeg").is_none(), "crops stay home unless the policy shares them");
    // The subject names one camera: a filtered consumer sees only gate-1's alerts.
    let out = std::process::Command::new(common::server::bin())
        .args(["events", "tail", "--nats", &nats.url(), "--durable", "g1", "--idle-exit", "1"])
        .args(["--filter", "facewatch.test-site.gate-1.alert.created"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    // The local outbox says the same.
    let local = s.get("/v1/events?after=0&limit=1000", Some(&t.relay)).ok();
    let local = local["events"].as_array().unwrap();
    assert_eq!(local.len(), events.len());
    assert!(local.iter().all(|e| e["outbox"]["delivered"] == true));
    assert!(s.stop().success());
}

#[test]
fn broker_down_then_back_loses_nothing_and_sends_nothing_twice() {
    let mut nats = Nats::reserve();
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    let s = serve(dir.path(), &nats);
    watch_colin(&s, &t);
    post_frames(&s, &t, &[("gate-1", 3), ("gate-1", 4), ("gate-2", 5), ("gate-1", 6)]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(s.metric("facewatch_outbox_depth"), 5.0, "the service works on while the broker is down");
    assert!(s.metric("facewatch_publish_retries_total") > 0.0);
    assert!(s.metric("facewatch_outbox_oldest_seconds") > 0.5);
    nats.up();
    s.wait_delivered(Duration::from_secs(30));
    assert_exactly_once(&nats, dir.path(), "after-outage");
    assert!(s.stop().success());
}

/// Generates `n` events quickly: policy changes, each one an audited, outboxed event.
fn policy_burst(s: &Server, t: &Tokens, n: usize) {
    for i in 0..n {
        let body = Body::Json(json!({"threshold": 0.9 + (i % 50) as f64 * 0.001}));
        s.call("PUT", "/v1/lists/wanted/policy", Some(&t.ops), body).ok();
    }
}

#[test]
fn sigkill_in_the_middle_of_publishing_then_restart_delivers_everything_once() {
    let mut nats = Nats::reserve();
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    let s = serve(dir.path(), &nats);
    watch_colin(&s, &t);
    policy_burst(&s, &t, 600);
    let total = outbox_ids(dir.path()).len();
    assert_eq!(total, 601, "one enrollment and 600 policy changes");
    assert_eq!(s.metric("facewatch_outbox_depth") as usize, total);
    nats.up();
    // Kill the service once a quarter of the events are acknowledged.
    let t0 = std::time::Instant::now();
    while s.metric("facewatch_events_published_total") < 150.0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "publishing never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    s.kill();
    let db = rusqlite::Connection::open(dir.path().join("facewatch.db")).unwrap();
    let left: i64 = db.query_row("SELECT COUNT(*) FROM outbox WHERE delivered_ms IS NULL", [], |r| r.get(0)).unwrap();
    eprintln!("killed with {left} of {total} events undelivered");
    assert!(left > 0, "the kill must land while events are still undelivered");
    let s = serve(dir.path(), &nats);
    s.wait_delivered(Duration::from_secs(60));
    assert_eq!(assert_exactly_once(&nats, dir.path(), "after-kill").len(), 601);
    // The stream's duplicate window would hide a publisher that re-sends delivered events; the
    // restarted one may repeat only the event whose ack the kill cut off (sent, or acked but
    // not yet marked): JetStream reports every repeat it drops.
    let repeats = s.metric("facewatch_events_duplicates_total");
    eprintln!("after the restart: {repeats} repeats dropped by JetStream");
    assert!(repeats <= 1.0, "{repeats} events sent again after the restart");
    assert_eq!(s.metric("facewatch_events_published_total"), left as f64, "each undelivered event sent once");
    assert!(s.stop().success());
}

#[test]
fn broker_restarted_repeatedly_during_a_burst() {
    let mut nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    let s = serve(dir.path(), &nats);
    watch_colin(&s, &t);
    let restarting = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|sc| {
        // Writes events until the restarts are over (at least 800 policy changes and 3 alerts),
        // so every restart finds events waiting.
        let burst = sc.spawn(|| {
            policy_burst(&s, &t, 400);
            post_frames(&s, &t, &[("gate-1", 3), ("gate-2", 4), ("gate-1", 5)]);
            let mut n = 400;
            while n < 800 || restarting.load(std::sync::atomic::Ordering::Relaxed) {
                assert!(n < 20_000, "the restarts never finished");
                policy_burst(&s, &t, 20);
                n += 20;
            }
        });
        // Each restart lands after another 150 acknowledged events: in the middle of publishing,
        // not after the burst, whatever the machine's speed.
        for k in 1..=3 {
            let t0 = std::time::Instant::now();
            while s.metric("facewatch_events_published_total") < (150 * k) as f64 {
                assert!(t0.elapsed() < Duration::from_secs(60), "publishing stalled before restart {k}");
                std::thread::sleep(Duration::from_millis(5));
            }
            nats.down();
            std::thread::sleep(Duration::from_millis(300));
            nats.up();
        }
        restarting.store(false, std::sync::atomic::Ordering::Relaxed);
        burst.join().unwrap();
    });
    s.wait_delivered(Duration::from_secs(60));
    let retries = s.metric("facewatch_publish_retries_total");
    assert!(retries > 0.0, "the restarts must exercise the retry path");
    let events = assert_exactly_once(&nats, dir.path(), "after-restarts");
    eprintln!("{} events through 3 broker restarts, {retries} retries", events.len());
    assert!(events.len() >= 804);
    // The outbox is on disk: a restarted service has nothing left to send and sends nothing again.
    assert!(s.stop().success());
    let s = serve(dir.path(), &nats);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s.metric("facewatch_events_published_total"), 0.0);
    assert_eq!(nats.events("after-restart-2").len(), events.len());
    assert!(s.stop().success());
}

#[test]
fn malformed_and_oversized_events_are_parked_and_do_not_block_the_queue() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    let s = serve(dir.path(), &nats);
    s.post_json("/v1/lists", Some(&t.ops), &json!({"name": "wanted"})).ok();
    s.wait_delivered(Duration::from_secs(10));
    assert!(s.stop().success());
    // Three rows that can never be sent, ahead of good ones.
    let db = rusqlite::Connection::open(dir.path().join("facewatch.db")).unwrap();
    let big = json!({"blob": "x".repeat(2 << 20)}).to_string();
    // Written now: parked rows older than `[events] retention_days` are purged by the sweep.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    for (id, data) in [("bad-json", "{not json".to_string()), ("too-big", big), ("near-limit", "{}".into())] {
        db.execute(
            "INSERT INTO outbox (id, type, camera, created_ms, data) VALUES (?1, 'policy.changed', '_site', ?2, ?3)",
            rusqlite::params![id, now_ms, data],
        )
        .unwrap();
    }
    // One whose JSON fits the server's max_payload (1 MiB, nats-server's default) by 20 bytes,
    // but not with the `Nats-Msg-Id` header block that travels with it.
    let max_payload = 1 << 20;
    let size = |db: &rusqlite::Connection| {
        let row = facewatch::events::outbox::get(db, "near-limit").unwrap().unwrap();
        serde_json::to_vec(&facewatch::events::envelope(&row, "test-site").unwrap()).unwrap().len()
    };
    let pad = max_payload - 20 - size(&db) - r#""blob":"""#.len();
    let data = json!({"blob": "x".repeat(pad)}).to_string();
    db.execute("UPDATE outbox SET data = ?1 WHERE id = 'near-limit'", [data]).unwrap();
    assert_eq!(size(&db), max_payload - 20);
    // A row parked long ago, beyond `[events] retention_days`: it will never be sent, so it goes.
    db.execute(
        "INSERT INTO outbox (id, type, camera, created_ms, data, parked_reason)
         VALUES ('ancient', 'policy.changed', '_site', 0, '{}', 'rejected: test')",
        [],
    )
    .unwrap();
    drop(db);
    let s = serve(dir.path(), &nats);
    policy_burst(&s, &t, 3);
    s.wait_delivered(Duration::from_secs(30));
    wait_until("the first sweep purges the ancient parked row", || s.metric("facewatch_outbox_parked") == 3.0);
    assert_eq!(s.metric("facewatch_events_parked_total"), 3.0);
    let got = assert_exactly_once(&nats, dir.path(), "parked");
    assert_eq!(got.iter().filter(|e| e["type"] == "policy.changed").count(), 3);
    let local = s.get("/v1/events?after=0", Some(&t.relay)).ok();
    let reasons: Vec<String> = local["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["outbox"]["parked_reason"].as_str().map(str::to_string))
        .collect();
    assert_eq!(reasons.len(), 3, "{local}");
    assert_eq!(reasons.iter().filter(|r| r.starts_with("malformed")).count(), 1, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|r| r.starts_with("oversized")).count(), 2, "{reasons:?}");
    let near = reasons.iter().find(|r| r.contains(&format!("({} payload)", max_payload - 20)));
    assert!(near.is_some_and(|r| r.contains("with headers")), "{reasons:?}");
    assert!(s.stop().success());
}

#[test]
fn permanent_refusals_by_jetstream_are_parked_and_later_events_still_arrive() {
    // The service's user may not publish enrollments, and the stream takes no message larger
    // than 2 KiB (an alert event carrying its face crop is about 12 KiB; the others well under).
    let denied = "facewatch.test-site._site.subject.enrolled";
    let nats = Nats::start_with(&format!(
        r#"accounts {{ CHECKPOINT {{ jetstream: enabled, users: [
               {{ user: fw, password: fw, permissions: {{ publish: {{ deny: ["{denied}"] }} }} }} ] }} }}
           no_auth_user: fw"#
    ));
    nats.create_stream("FACEWATCH", 2048);
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    let s = Server::start(
        dir.path(),
        &[
            ("FACEWATCH_EVENTS__NATS_URL", &nats.url()),
            ("FACEWATCH_EVENTS__PUBLISH_MAX_BACKOFF_MS", "500"),
            ("FACEWATCH_RETENTION__SWEEP_SECS", "1"),
        ],
    );
    let policy = json!({"threshold": 0.93, "cooldown_secs": 0, "share_crops": true});
    s.post_json("/v1/lists", Some(&t.ops), &json!({"name": "wanted", "policy": policy})).ok();
    let form = multipart(&[("subject", "colin")], &[("1.jpg", "image/jpeg", colin(1))]);
    s.call("POST", "/v1/lists/wanted/subjects", Some(&t.ops), form).ok();
    let alert = post_frames(&s, &t, &[("gate-1", 3)])["gate-1"][0].clone();
    policy_burst(&s, &t, 3);
    s.wait_delivered(Duration::from_secs(20));
    assert_eq!(s.metric("facewatch_outbox_parked"), 2.0);
    let local = s.get("/v1/events?after=0", Some(&t.relay)).ok();
    let parked = |kind: &str| -> String {
        let e = local["events"].as_array().unwrap().iter().find(|e| e["event"]["type"] == kind).unwrap();
        e["outbox"]["parked_reason"].as_str().unwrap_or_else(|| panic!("{kind} not parked: {e}")).to_string()
    };
    assert!(parked("subject.enrolled").contains("permissions violation"), "{local}");
    assert!(parked("alert.created").contains("error code 10054"), "{local}");
    let got = assert_exactly_once(&nats, dir.path(), "refusals");
    assert_eq!(got.iter().filter(|e| e["type"] == "policy.changed").count(), 3, "later events arrive");
    // A parked event's face crop follows the list's retention like the crop file.
    let db = rusqlite::Connection::open(dir.path().join("facewatch.db")).unwrap();
    let has_crop = || -> bool {
        let q =
            "SELECT json_type(data, '$.crop_jpeg') IS NOT NULL FROM outbox WHERE json_extract(data, '$.alert_id') = ?1";
        db.query_row(q, [&alert], |r| r.get(0)).unwrap()
    };
    assert!(has_crop(), "30-day retention keeps the parked crop");
    s.call("PUT", "/v1/lists/wanted/policy", Some(&t.ops), Body::Json(json!({"retention_days": 0}))).ok();
    wait_until("retention strips the crop from the parked event", || !has_crop());
    assert!(s.stop().success());
}

#[test]
fn without_a_broker_events_wait_in_the_local_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    // Files a crash left behind (a crop written, its alert row never inserted; a write cut
    // short; a template deleted before its image), older than the grace period, and a crop
    // being written right now.
    let crops = dir.path().join("crops");
    std::fs::create_dir_all(&crops).unwrap();
    std::fs::create_dir_all(dir.path().join("references")).unwrap();
    let orphans = [
        crops.join("0190b5a2-7c3e-7000-8000-00000000dead.jpg"),
        crops.join("0190b5a2-7c3e-7000-8000-00000000beef.jpg.tmp"),
        dir.path().join("references/999999.jpg"),
    ];
    orphans.iter().for_each(|p| write_aged(p, Duration::from_secs(3600)));
    let fresh = crops.join("0190b5a2-7c3e-7000-8000-00000000f00d.jpg");
    write_aged(&fresh, Duration::ZERO);
    let s = Server::start(dir.path(), &[("FACEWATCH_RETENTION__SWEEP_SECS", "1")]);
    assert!(orphans.iter().all(|p| !p.exists()), "the start-up sweep deletes orphaned face images");
    assert!(fresh.exists(), "a crop younger than the grace period may be an alert being raised");
    watch_colin(&s, &t);
    let sent = post_frames(&s, &t, &[("gate-1", 3), ("gate-1", 4)]);
    let page1 = s.get("/v1/events?after=0&limit=2", Some(&t.relay)).ok();
    assert_eq!(page1["events"].as_array().unwrap().len(), 2);
    let next = page1["next_after"].as_i64().unwrap();
    let page2 = s.get(&format!("/v1/events?after={next}"), Some(&t.relay)).ok();
    assert_eq!(page2["events"].as_array().unwrap().len(), 1);
    let both: Vec<&Value> =
        page1["events"].as_array().unwrap().iter().chain(page2["events"].as_array().unwrap()).collect();
    let alerts: Vec<&str> = both
        .into_iter()
        .filter(|e| e["event"]["type"] == "alert.created")
        .map(|e| e["event"]["data"]["alert_id"].as_str().unwrap())
        .collect();
    assert_eq!(alerts, sent["gate-1"].iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(s.metric("facewatch_outbox_depth"), 3.0);
    assert_eq!(s.get("/v1/events", Some(&t.ops)).status, 403, "only the relay role reads events");
    // A list whose policy shares crops sends the face crop with the alert event.
    s.call("PUT", "/v1/lists/wanted/policy", Some(&t.ops), Body::Json(json!({"share_crops": true}))).ok();
    let sent = post_frames(&s, &t, &[("gate-1", 5)]);
    let all = s.get("/v1/events?after=0", Some(&t.relay)).ok();
    let ev = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["data"]["alert_id"] == sent["gate-1"][0].as_str())
        .unwrap();
    use base64::Engine as _;
    let jpeg =
        base64::engine::general_purpose::STANDARD.decode(ev["event"]["data"]["crop_jpeg"].as_str().unwrap()).unwrap();
    assert!(image::load_from_memory(&jpeg).is_ok(), "the shared crop is a JPEG");
    // The periodic sweep keeps an old crop its alert names and deletes an old one no alert names.
    let named = crops.join(format!("{}.jpg", sent["gate-1"][0]));
    set_age(&named, Duration::from_secs(3600));
    write_aged(&orphans[0], Duration::from_secs(3600));
    wait_until("the periodic sweep deletes an orphan", || !orphans[0].exists());
    assert!(named.exists(), "a crop its alert names is not an orphan");
    // Retention covers the crop inside the waiting event too, not only the file.
    let crop_of = |id: &str| {
        let all = s.get("/v1/events?after=0", Some(&t.relay)).ok();
        let ev = all["events"].as_array().unwrap().iter().find(|e| e["event"]["data"]["alert_id"] == id).cloned();
        ev.unwrap()["event"]["data"].get("crop_jpeg").is_some()
    };
    assert!(crop_of(&sent["gate-1"][0]), "30-day retention keeps the crop in the event");
    s.call("PUT", "/v1/lists/wanted/policy", Some(&t.ops), Body::Json(json!({"retention_days": 0}))).ok();
    wait_until("retention strips the crop from the waiting event", || !crop_of(&sent["gate-1"][0]));
    // Deleting the list announces the removal of each of its subjects.
    s.call("DELETE", "/v1/lists/wanted", Some(&t.ops), Body::None).ok();
    let all = s.get("/v1/events?after=0", Some(&t.relay)).ok();
    let removed: Vec<&Value> =
        all["events"].as_array().unwrap().iter().filter(|e| e["event"]["type"] == "subject.removed").collect();
    assert_eq!(removed.len(), 1, "{all}");
    assert_eq!(removed[0]["event"]["data"], json!({"list": "wanted", "subject": "colin", "templates": 2}));
    assert_conforms(&removed[0]["event"]);
    assert!(s.stop().success());
}

/// Writes a small file last modified `age` ago.
fn write_aged(path: &Path, age: Duration) {
    std::fs::write(path, b"not really a jpeg").unwrap();
    set_age(path, age);
}

fn set_age(path: &Path, age: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - age).unwrap();
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(15), "{what}: not within 15 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A minimal HTTP receiver: answers the first `fail_first` requests with 503, then 200, and
/// hands every request's headers and body to the test.
/// One received request: lower-cased headers and the body.
type Request = (BTreeMap<String, String>, Vec<u8>);

fn receiver(fail_first: usize) -> (String, std::sync::mpsc::Receiver<Request>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = BTreeMap::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let status = if n < fail_first { "503 Service Unavailable" } else { "200 OK" };
            let _ = stream
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
            if n >= fail_first && tx.send((headers, body)).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[test]
fn webhook_gets_every_event_signed_after_retries() {
    let secret = "a-shared-secret-of-32-characters";
    let (url, rx) = receiver(2);
    let dir = tempfile::tempdir().unwrap();
    let t = tokens(dir.path());
    let s = Server::start(
        dir.path(),
        &[
            ("FACEWATCH_EVENTS__WEBHOOK_URL", &url),
            ("FACEWATCH_EVENTS__WEBHOOK_SECRET", secret),
            ("FACEWATCH_EVENTS__PUBLISH_MAX_BACKOFF_MS", "300"),
        ],
    );
    s.post_json("/v1/lists", Some(&t.ops), &json!({"name": "wanted"})).ok();
    policy_burst(&s, &t, 3);
    s.wait_delivered(Duration::from_secs(30));
    assert!(s.metric("facewatch_publish_retries_total") >= 2.0, "the two 503s were retried");
    let want = outbox_ids(dir.path());
    let mut got = Vec::new();
    while let Ok((headers, body)) = rx.recv_timeout(Duration::from_secs(2)) {
        let ts: u64 = headers["x-facewatch-timestamp"].parse().unwrap();
        assert_eq!(
            headers["x-facewatch-signature"],
            facewatch::events::webhook::signature(secret.as_bytes(), ts, &body)
        );
        let event: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(headers["x-facewatch-event-id"], event["id"].as_str().unwrap());
        assert_conforms(&event);
        got.push(event["id"].as_str().unwrap().to_string());
        if got.len() == want.len() {
            break;
        }
    }
    assert_eq!(got, want, "every event once, in order");
    assert!(s.stop().success());
}
