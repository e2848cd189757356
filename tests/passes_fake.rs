//! Tracked cameras on the fake models: a person crossing the view is one track and one alert,
//! a stranger none, two people crossing keep their own decisions, and a pass costs a few
//! embeddings instead of one per frame. (Real faces and false-alert rates: `benches/video_eval.rs`.)

use facewatch::access::Caller;
use facewatch::app::App;
use facewatch::backend::fake::{self, FakeBackend, FakeFace};
use facewatch::config::ServiceConfig;
use facewatch::inference::Mode;
use facewatch::passes::{Passes, Step};
use facewatch::vision::quality::QualityGate;
use facewatch::watchlist::enroll::Examined;
use facewatch::watchlist::policy::PolicyPatch;

const T0: i64 = 1_800_000_000_000;
/// 5 fps.
const FRAME_MS: i64 = 200;

fn app(dir: &std::path::Path) -> App {
    let mut cfg = ServiceConfig::default();
    cfg.service.data_dir = dir.to_path_buf();
    App::with_backend(cfg, &FakeBackend::default()).unwrap()
}

fn enroll(app: &App, subject: &str, identity: u32) {
    let photo = fake::frame(240, 240, &[FakeFace { identity, x: 60, y: 60, size: 120 }]);
    let a = app
        .inference
        .submit_image(photo, Mode::Enroll(QualityGate::enrollment()))
        .unwrap()
        .blocking_recv()
        .unwrap()
        .unwrap();
    let x = Examined { image: &a.image, face: a.faces.first(), refused: a.refused.as_ref() };
    app.watchlists.enroll(&Caller::Local, "wanted", subject, None, "test", [("p.jpg".to_string(), Ok(x))]).unwrap();
}

/// A walker: enters at the left, crosses to the right while the face grows from 40 to 120 px.
fn at(identity: u32, frame: u32, frames: u32, y: u32) -> FakeFace {
    let t = frame as f32 / (frames - 1) as f32;
    let size = (40.0 + 80.0 * t) as u32;
    let x = (20.0 + 440.0 * t) as u32;
    FakeFace { identity, x, y, size }
}

fn run(app: &App, passes: &mut Passes, frames: &[Vec<FakeFace>], start_ms: i64) -> Vec<Step> {
    let mut steps = Vec::new();
    for (n, faces) in frames.iter().enumerate() {
        let img = fake::frame(640, 360, faces);
        let a = app
            .inference
            .submit_image(img, Mode::Track(QualityGate::default()))
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap();
        assert!(a.faces.iter().all(|f| f.embedding.is_none()), "Mode::Track embeds nothing by itself");
        let step = passes.step(start_ms + n as i64 * FRAME_MS, &a, &mut |f| app.embed_blocking(f)).unwrap();
        steps.push(step);
    }
    steps
}

#[test]
fn one_alert_per_enrolled_pass_none_for_a_stranger_and_few_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    // Cooldown 0: every pass that decides raises its own alert (nothing is absorbed).
    let policy = PolicyPatch { cooldown_secs: Some(0), ..PolicyPatch::default() };
    app.watchlists.create_list(&Caller::Local, "wanted", &policy).unwrap();
    for id in 1..=20 {
        enroll(&app, &format!("s{id}"), id);
    }
    let mut passes = app.passes("hall-1").unwrap();
    const N: u32 = 25;
    let pass = |identity: u32| -> Vec<Vec<FakeFace>> { (0..N).map(|f| vec![at(identity, f, N, 100)]).collect() };

    let enrolled = run(&app, &mut passes, &pass(3), T0);
    let alerts: Vec<_> = enrolled.iter().flat_map(|s| s.alerts.clone()).collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!((alerts[0].subject.as_str(), alerts[0].created), ("s3", true));
    let embedded: usize = enrolled.iter().map(|s| s.embedded).sum();
    // Confirmed after 3 hits, then decided on the first agreeing faces: far fewer than 25.
    assert!((1..=6).contains(&embedded), "{embedded} embeddings for a 25-frame pass");
    let tracks: std::collections::HashSet<_> = enrolled.iter().flat_map(|s| s.tracks.iter().flatten()).collect();
    assert_eq!(tracks.len(), 1, "one track for one walker");
    let decided_at = enrolled.iter().position(|s| !s.alerts.is_empty()).unwrap();
    assert!(decided_at <= 6, "decided at frame {decided_at}");
    // The alert shows the pass's best face: the crop (1.5 x the face) grew with the walker.
    let decided_side = at(3, decided_at as u32, N, 100).size;
    let crop = app.alerts.crop(&Caller::Local, &alerts[0].alert_id).unwrap();
    let (w, _) = image::image_dimensions(&crop).unwrap();
    assert!(w as f32 > decided_side as f32 * 2.0, "crop {w} px wide, the face was {decided_side} px when decided");

    // A stranger: no alert, and the embeddings stop at the cap.
    let gap = T0 + 60_000;
    let stranger = run(&app, &mut passes, &pass(999), gap);
    assert!(stranger.iter().all(|s| s.alerts.is_empty()));
    let embedded: usize = stranger.iter().map(|s| s.embedded).sum();
    assert!((1..=6).contains(&embedded), "{embedded} embeddings for a stranger's pass");

    // Two people crossing paths (an enrolled one and a stranger): one alert, for the right one.
    let crossing: Vec<Vec<FakeFace>> = (0..N)
        .map(|f| {
            let mut a = at(7, f, N, 40);
            let mut b = at(555, N - 1 - f, N, 200);
            a.size = 60;
            b.size = 60;
            vec![a, b]
        })
        .collect();
    let crossed = run(&app, &mut passes, &crossing, T0 + 120_000);
    let alerts: Vec<_> = crossed.iter().flat_map(|s| s.alerts.clone()).collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].subject, "s7");
    let officer_view = facewatch::alerts::Filter::default();
    let stored = app.alerts.list(&Caller::Local, &officer_view).unwrap();
    assert_eq!(stored.len(), 2, "two alerts in the store: s3 and s7");
    // The same walkers under the frame rule would have embedded every face of every frame.
    let frame_rule_embeddings = 25 + 25 + 2 * 25;
    let track_rule_embeddings: usize =
        [&enrolled, &stranger, &crossed].iter().flat_map(|v| v.iter()).map(|s| s.embedded).sum();
    assert!(track_rule_embeddings * 5 <= frame_rule_embeddings, "{track_rule_embeddings} embeddings");
}

/// An app whose list "wanted" holds s1..s20 (fake identities 1..20), cooldown 0 (so only the
/// pass decides how many alerts a person raises); `rejoin_within_ms` as given.
fn app_with_list(dir: &std::path::Path, rejoin_within_ms: u64) -> App {
    let mut cfg = ServiceConfig::default();
    cfg.service.data_dir = dir.to_path_buf();
    cfg.tracking.rejoin_within_ms = rejoin_within_ms;
    let app = App::with_backend(cfg, &FakeBackend::default()).unwrap();
    let policy = PolicyPatch { cooldown_secs: Some(0), ..PolicyPatch::default() };
    app.watchlists.create_list(&Caller::Local, "wanted", &policy).unwrap();
    for id in 1..=20 {
        enroll(&app, &format!("s{id}"), id);
    }
    app
}

#[test]
fn a_person_hidden_until_their_track_ends_continues_their_pass_and_two_people_are_not_joined() {
    const N: u32 = 36;
    // s3 walks across; hidden (behind someone the detector does not see) for frames 10..22,
    // 2.4 s at 5 fps: longer than a track coasts (max_age 10 frames, 2 s).
    let hidden = |identity: u32| -> Vec<Vec<FakeFace>> {
        (0..N).map(|f| if (10..22).contains(&f) { vec![] } else { vec![at(identity, f, N, 100)] }).collect()
    };

    let dir = tempfile::tempdir().unwrap();
    let app = app_with_list(dir.path(), 3_000);
    let mut passes = app.passes("hall-1").unwrap();
    let steps = run(&app, &mut passes, &hidden(3), T0);
    let alerts: Vec<_> = steps.iter().flat_map(|s| s.alerts.clone()).collect();
    assert_eq!(alerts.len(), 1, "one pass, one alert: {alerts:?}");
    assert_eq!(alerts[0].subject, "s3");
    let rejoined: Vec<_> = steps.iter().flat_map(|s| s.rejoined.clone()).collect();
    assert_eq!(rejoined.len(), 1, "{rejoined:?}");
    assert_ne!(rejoined[0].track, rejoined[0].pass, "the tracker lost them: a new track");
    assert_eq!(rejoined[0].pass, alerts[0].track, "and it continues the pass that alerted");
    // The last frames are the first frames' pass.
    assert_eq!(steps[N as usize - 1].tracks, steps[3].tracks);
    // The pass had decided: back in view, one embedding recognises it, and that is all.
    let after: usize = steps[22..].iter().map(|s| s.embedded).sum();
    assert_eq!(after, 1, "{after} embeddings after coming back");

    // The same walk without re-association: a second pass, a second alert.
    let dir2 = tempfile::tempdir().unwrap();
    let app2 = app_with_list(dir2.path(), 0);
    let mut passes2 = app2.passes("hall-1").unwrap();
    let steps2 = run(&app2, &mut passes2, &hidden(3), T0);
    let alerts2: Vec<_> = steps2.iter().flat_map(|s| s.alerts.clone()).collect();
    assert_eq!(alerts2.len(), 2, "{alerts2:?}");
    assert_ne!(steps2[N as usize - 1].tracks, steps2[3].tracks);

    // Two different people: s7 is hidden where and when s3 was, and a stranger (then s9) comes
    // out where s3 came back. Neither continues s7's pass: the stranger raises nothing, s9 s9.
    for (k, (second, expected)) in [(555, vec!["s7"]), (9, vec!["s7", "s9"])].into_iter().enumerate() {
        let frames: Vec<Vec<FakeFace>> = (0..N)
            .map(|f| match f {
                0..10 => vec![at(7, f, N, 100)],
                10..22 => vec![],
                _ => vec![at(second, f, N, 100)],
            })
            .collect();
        let steps = run(&app, &mut passes, &frames, T0 + 60_000 * (2 + k as i64));
        let rejoined: Vec<_> = steps.iter().flat_map(|s| s.rejoined.clone()).collect();
        assert!(rejoined.is_empty(), "{second} joined to s7's pass: {rejoined:?}");
        assert_ne!(steps[5].tracks, steps[N as usize - 1].tracks, "two people, two passes");
        let alerts: Vec<String> = steps.iter().flat_map(|s| s.alerts.iter().map(|a| a.subject.clone())).collect();
        assert_eq!(alerts, expected);
    }
}

#[test]
fn a_person_found_again_while_their_old_track_still_coasts_continues_their_pass() {
    const N: u32 = 36;
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_list(dir.path(), 3_000);
    let mut passes = app.passes("hall-1").unwrap();
    // Hidden for 3 frames (the old track coasts), then seen 250 px lower, beyond the tracker's
    // gate but within rejoin_distance: a new track, which finds the coasting pass by its face.
    let frames: Vec<Vec<FakeFace>> = (0..N)
        .map(|f| match f {
            0..10 => vec![at(5, f, N, 20)],
            10..13 => vec![],
            _ => vec![at(5, f, N, 270)],
        })
        .collect();
    // Back at frame 13, confirmed and embedded at 15: the old track (3 frames unseen) is live.
    let mut steps = run(&app, &mut passes, &frames[..16], T0);
    let rejoined: Vec<_> = steps.iter().flat_map(|s| s.rejoined.clone()).collect();
    assert_eq!(rejoined.len(), 1, "{rejoined:?}");
    // The coasting track gave way to the new one at once: one live track, not two.
    assert_eq!(passes.live_tracks(), 1);
    steps.extend(run(&app, &mut passes, &frames[16..], T0 + 16 * FRAME_MS));
    let alerts: Vec<_> = steps.iter().flat_map(|s| s.alerts.clone()).collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(steps[N as usize - 1].tracks, steps[3].tracks, "one pass");
}
