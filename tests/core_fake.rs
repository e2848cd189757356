//! The core's use cases on the fake models (`backend::fake`): matching, the frame rule,
//! raising with cooldown, the two-officer review, the live feed and the outbox, removal and
//! policy changes, and who may do what. No model files and no photos: these run in
//! milliseconds, beside the real-model tests (tests/service.rs) that cover the same paths.

use facewatch::Error;
use facewatch::access::{Caller, Role};
use facewatch::alerts::{Change, Decision, Filter, Status};
use facewatch::app::App;
use facewatch::backend::fake::{self, FakeBackend, FakeFace};
use facewatch::config::ServiceConfig;
use facewatch::frames::{FaceStatus, FrameReport, Outcome};
use facewatch::inference::{Analysis, Mode};
use facewatch::vision::quality::QualityGate;
use facewatch::watchlist::enroll::Examined;
use facewatch::watchlist::policy::PolicyPatch;

const T0: i64 = 1_800_000_000_000;

fn app(dir: &std::path::Path) -> App {
    let mut cfg = ServiceConfig::default();
    cfg.service.data_dir = dir.to_path_buf();
    cfg.service.site = "fake-site".into();
    App::with_backend(cfg, &FakeBackend::default()).unwrap()
}

fn analyse(app: &App, img: image::RgbImage, mode: Mode) -> Analysis {
    app.inference.submit_image(img, mode).unwrap().blocking_recv().unwrap().unwrap()
}

/// Enrolls `subject` from one photo of `identity`, through the one enrollment path.
fn enroll(app: &App, list: &str, subject: &str, identity: u32) {
    let photo = fake::frame(240, 240, &[FakeFace { identity, x: 60, y: 60, size: 120 }]);
    let a = analyse(app, photo, Mode::Enroll(QualityGate::enrollment()));
    let x = Examined { image: &a.image, face: a.faces.first(), refused: a.refused.as_ref() };
    let r = app.watchlists.enroll(&Caller::Local, list, subject, None, "test", [("p.jpg".to_string(), Ok(x))]).unwrap();
    assert_eq!(r.templates, 1, "{r:?}");
}

/// A caller holding a new token of `role` (bound to `cameras` for a camera).
fn token(app: &App, name: &str, role: Role, cameras: &[&str]) -> Caller {
    let cams: Vec<String> = cameras.iter().map(|c| c.to_string()).collect();
    let t = app.access.create_token(&Caller::Local, name, role, None, &cams).unwrap();
    Caller::Token(app.access.authenticate(&t.token).unwrap())
}

fn post(app: &App, who: &Caller, camera: &str, at_ms: i64, faces: &[FakeFace]) -> facewatch::Result<FrameReport> {
    let a = analyse(app, fake::frame(640, 360, faces), Mode::Live(QualityGate::default()));
    app.frames.process(who, camera, at_ms, a)
}

fn face(identity: u32, x: u32, size: u32) -> FakeFace {
    FakeFace { identity, x, y: 100, size }
}

#[test]
fn a_listed_face_alerts_once_per_cooldown_and_a_stranger_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let cooldown = PolicyPatch { cooldown_secs: Some(60), ..PolicyPatch::default() };
    app.watchlists.create_list(&Caller::Local, "wanted", &cooldown).unwrap();
    enroll(&app, "wanted", "s7", 7);
    let cam = token(&app, "gate-1", Role::Camera, &["gate-1"]);

    let r = post(&app, &cam, "gate-1", T0, &[face(7, 40, 100), face(9, 400, 100)]).unwrap();
    assert_eq!(r.faces.len(), 2, "{r:?}");
    let (listed, stranger) =
        if r.faces[0].bbox[0] < 200.0 { (&r.faces[0], &r.faces[1]) } else { (&r.faces[1], &r.faces[0]) };
    assert_eq!(listed.status, FaceStatus::Match);
    assert_eq!(listed.matches[0].subject, "s7");
    assert_eq!(listed.matches[0].outcome, Outcome::Alert);
    assert!(listed.matches[0].score > 0.99, "{}", listed.matches[0].score);
    assert_eq!(stranger.status, FaceStatus::NoMatch);
    assert_eq!(r.alerts.len(), 1);
    let first = r.alerts[0].clone();

    // Ten seconds later (capture time): the same alert takes the sighting.
    let again = post(&app, &cam, "gate-1", T0 + 10_000, &[face(7, 60, 100)]).unwrap();
    assert_eq!(again.faces[0].matches[0].outcome, Outcome::Cooldown);
    assert_eq!(again.faces[0].matches[0].alert_id.as_deref(), Some(first.as_str()));
    assert!(again.alerts.is_empty());
    // A face below the list's minimum size (40 px) matches but does not alert.
    let small = post(&app, &cam, "gate-1", T0 + 20_000, &[face(7, 60, 36)]).unwrap();
    assert_eq!(small.faces[0].status, FaceStatus::Match);
    assert_eq!(small.faces[0].matches[0].outcome, Outcome::BelowPolicy);
    // Past the cooldown, by capture time: a new alert.
    let later = post(&app, &cam, "gate-1", T0 + 61_000, &[face(7, 60, 100)]).unwrap();
    assert_eq!(later.alerts.len(), 1);
    assert_ne!(later.alerts[0], first);

    // One crop per alert; nothing of the stranger.
    let officer = token(&app, "ana", Role::Officer, &[]);
    let alerts = app.alerts.list(&officer, &Filter::default()).unwrap();
    assert_eq!(alerts.len(), 2);
    assert!(alerts.iter().all(|v| v.alert.subject == "s7" && v.alert.has_crop && v.has_reference));
    let crops = std::fs::read_dir(dir.path().join("crops")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(crops, 2, "crop files");

    // A camera token posts only as its cameras and reads no alerts.
    assert!(matches!(post(&app, &cam, "gate-2", T0, &[face(7, 60, 100)]), Err(Error::Forbidden { .. })));
    assert!(matches!(app.alerts.list(&cam, &Filter::default()), Err(Error::Forbidden { .. })));
}

#[test]
fn two_officers_verify_and_the_feed_and_outbox_say_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    app.watchlists.create_list(&Caller::Local, "wanted", &PolicyPatch::default()).unwrap();
    enroll(&app, "wanted", "s5", 5);
    let cam = token(&app, "gate-1", Role::Camera, &["gate-1"]);
    let (ana, ben) = (token(&app, "ana", Role::Officer, &[]), token(&app, "ben", Role::Officer, &[]));
    let mut feed = app.alerts.subscribe(&ana).unwrap();

    let id = post(&app, &cam, "gate-1", T0, &[face(5, 100, 120)]).unwrap().alerts[0].clone();
    assert_eq!(app.alerts.review(&ana, &id, Decision::Confirm, None).unwrap().alert.status, Status::Confirmed);
    // The same officer cannot confirm twice; the command line (no token) cannot review.
    assert!(matches!(app.alerts.review(&ana, &id, Decision::Confirm, None), Err(Error::Conflict(_))));
    assert!(matches!(app.alerts.review(&Caller::Local, &id, Decision::Confirm, None), Err(Error::Forbidden { .. })));
    assert!(matches!(app.alerts.review(&cam, &id, Decision::Confirm, None), Err(Error::Forbidden { .. })));
    let v = app.alerts.review(&ben, &id, Decision::Confirm, Some("seen")).unwrap();
    assert_eq!(v.alert.status, Status::Verified);
    assert_eq!(v.alert.reviews.len(), 2);

    let mut kinds = Vec::new();
    while let Ok(ev) = feed.try_recv() {
        assert_eq!(ev.alert.id, id);
        kinds.push(ev.kind);
    }
    assert_eq!(kinds, [Change::Created, Change::Reviewed, Change::Reviewed, Change::Verified]);
    let relay = token(&app, "hq", Role::Relay, &[]);
    let events = app.outbox.after(&relay, 0, 100).unwrap();
    let alert_kinds: Vec<String> = events
        .iter()
        .filter_map(|e| e.event.as_ref())
        .filter(|e| e.kind.starts_with("alert."))
        .map(|e| e.kind.clone())
        .collect();
    let fed: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    assert_eq!(alert_kinds, fed, "one vocabulary for the feed and the outbox");
    assert!(matches!(app.outbox.after(&ana, 0, 10), Err(Error::Forbidden { .. })));
}

#[test]
fn removal_and_policy_changes_take_effect_on_the_next_frame() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    app.watchlists.create_list(&Caller::Local, "wanted", &PolicyPatch::default()).unwrap();
    enroll(&app, "wanted", "s3", 3);
    enroll(&app, "wanted", "s4", 4);
    let cam = token(&app, "gate-1", Role::Camera, &["gate-1"]);
    let ops = token(&app, "olga", Role::Ops, &[]);
    assert_eq!(post(&app, &cam, "gate-1", T0, &[face(3, 100, 120)]).unwrap().faces[0].status, FaceStatus::Match);

    assert_eq!(app.watchlists.delete_subject(&ops, "wanted", "s3").unwrap(), 1);
    let r = post(&app, &cam, "gate-1", T0 + 1, &[face(3, 100, 120)]).unwrap();
    assert_eq!(r.faces[0].status, FaceStatus::NoMatch, "a removed subject stops matching at once");

    let strict = PolicyPatch { min_face_px: Some(500.0), ..PolicyPatch::default() };
    assert_eq!(app.watchlists.set_policy(&ops, "wanted", &strict).unwrap().min_face_px, 500.0);
    let r = post(&app, &cam, "gate-1", T0 + 2, &[face(4, 100, 120)]).unwrap();
    assert_eq!(r.faces[0].matches[0].outcome, Outcome::BelowPolicy, "the new policy applies to the next frame");
    assert!(r.alerts.is_empty());

    // Ops manage lists; officers and cameras do not.
    let officer = token(&app, "ana", Role::Officer, &[]);
    assert!(matches!(app.watchlists.delete_subject(&officer, "wanted", "s4"), Err(Error::Forbidden { .. })));
    assert!(matches!(app.watchlists.lists(&cam), Err(Error::Forbidden { .. })));
    // Every change is in the audit log, under its caller.
    let admin = token(&app, "root", Role::Admin, &[]);
    let log = app.audit.entries(&admin, 0, 100).unwrap();
    assert!(log.iter().any(|e| e.actor == "olga" && e.action == "subject.delete"), "{log:?}");
    assert!(app.audit.verify(&admin).unwrap().ok);
}
