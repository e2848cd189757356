//! The engine on the fake backend: no model files, no photos, milliseconds.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use image::RgbImage;

use super::*;
use crate::backend::fake::{self, FakeBackend, FakeFace};

fn engine(backend: FakeBackend, opts: InferenceOptions) -> Inference {
    Inference::with_backend(&backend, &opts, Arc::new(Metrics::default())).unwrap()
}

fn live() -> Mode {
    Mode::Live(QualityGate::default())
}

/// A `width` x 120 frame with one face of `identity`.
fn one_face(identity: u32, width: u32) -> RgbImage {
    fake::frame(width, 120, &[FakeFace { identity, x: 20, y: 20, size: 64 }])
}

fn identities(a: &Analysis) -> Vec<u32> {
    a.faces.iter().map(|f| fake::FakeEmbedder::identity(&f.chip)).collect()
}

fn png(img: &RgbImage) -> Bytes {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    Bytes::from(out.into_inner())
}

#[test]
fn decoded_and_encoded_frames_are_analysed_under_the_same_bounds() {
    let opts = InferenceOptions { max_pixels: 100_000, ..Default::default() };
    let e = engine(FakeBackend::default(), opts);
    assert_eq!((e.provider, e.models().embedder.name.as_str()), ("fake", "fake-embedder-v1"));
    let faces = [FakeFace { identity: 5, x: 10, y: 10, size: 80 }, FakeFace { identity: 9, x: 150, y: 30, size: 48 }];
    let img = fake::frame(240, 160, &faces);
    let a = e.submit_image(img.clone(), live()).unwrap().blocking_recv().unwrap().unwrap();
    assert_eq!(identities(&a), [5, 9]);
    for (f, id) in a.faces.iter().zip([5, 9]) {
        assert_eq!(f.embedding.as_deref(), Some(&fake::embedding(id)[..]));
    }
    // The decoded frame holds what its real size costs, until its analysis is dropped.
    assert_eq!(e.memory_reserved().0, e.cost.held(240, 160));
    drop(a);
    assert_eq!(e.memory_reserved().0, 0);
    // The same frame as a PNG goes through the decode thread to the same faces.
    let b = e.submit(png(&img), live()).unwrap().blocking_recv().unwrap().unwrap();
    assert_eq!((identities(&b), b.image.as_raw() == img.as_raw()), (vec![5, 9], true));
    drop(b);
    // max_pixels holds for decoded frames too; an empty image is refused, not analysed.
    let big = RgbImage::new(400, 300);
    assert!(matches!(e.submit_image(big, live()), Err(Error::ImageTooLarge { pixels: 120_000, .. })));
    assert!(matches!(e.submit_image(RgbImage::new(0, 10), live()), Err(Error::Invalid(_))));
    assert_eq!(e.memory_reserved().0, 0);
    e.shutdown();
    assert!(matches!(e.submit_image(one_face(1, 160), live()), Err(Error::ShuttingDown)));
}

#[test]
fn a_decoded_frame_that_does_not_fit_the_budget_is_refused() {
    let probe = engine(FakeBackend::default(), InferenceOptions::default());
    let one = probe.cost.held(640, 480);
    probe.shutdown();
    // Room for one 640x480 frame, not two.
    let e =
        engine(FakeBackend::default(), InferenceOptions { memory_budget_bytes: one + one / 2, ..Default::default() });
    let first = e.submit_image(fake::frame(640, 480, &[]), live()).unwrap().blocking_recv().unwrap().unwrap();
    let refused = e.submit_image(fake::frame(640, 480, &[]), live());
    assert!(matches!(refused, Err(Error::Overloaded { queue: "frame memory", .. })), "{:?}", refused.err());
    drop(first);
    let second = e.submit_image(one_face(3, 640), live()).unwrap().blocking_recv().unwrap().unwrap();
    assert_eq!(identities(&second), [3]);
}

#[test]
fn a_full_ingest_queue_refuses_at_once() {
    let slow = FakeBackend::default().with_detect_delay(|_| Duration::from_millis(200));
    let e = engine(slow, InferenceOptions { queue_capacity: 1, ..Default::default() });
    // One frame in the detector, one waiting for it, one in the decode thread, one queued:
    // the next is refused without waiting.
    let mut accepted = Vec::new();
    let refused = loop {
        match e.submit_image(one_face(accepted.len() as u32, 160), live()) {
            Ok(rx) => accepted.push(rx),
            Err(err) => break err,
        }
        // A submission that waited for room would never be refused.
        assert!(accepted.len() <= 4, "the ingest queue never filled");
    };
    assert!(matches!(refused, Error::Overloaded { queue: "ingest", retry_after_s: 1 }), "{refused:?}");
    for (i, rx) in accepted.into_iter().enumerate() {
        assert_eq!(identities(&rx.blocking_recv().unwrap().unwrap()), [i as u32]);
    }
    assert_eq!(e.memory_reserved().0, 0);
}

/// Frames 200 px wide take 200 ms to detect, the rest no time: a later frame overtakes.
fn overtaking() -> FakeBackend {
    FakeBackend::default().with_detect_delay(|img| Duration::from_millis(if img.width() == 200 { 200 } else { 0 }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_feed_hands_a_cameras_frames_back_in_order() {
    let e = engine(overtaking(), InferenceOptions { detect_workers: 3, ..Default::default() });
    // Without a feed, the engine answers a cheap later frame first.
    let slow = e.submit_image(one_face(1, 200), live()).unwrap();
    let fast = e.submit_image(one_face(2, 160), live()).unwrap();
    let mut slow = std::pin::pin!(slow);
    tokio::select! {
        biased;
        _ = &mut slow => panic!("the slow frame was answered first: nothing overtook"),
        r = fast => assert_eq!(identities(&r.unwrap().unwrap()), [2]),
    }
    assert_eq!(identities(&slow.await.unwrap().unwrap()), [1]);

    // Through a feed: every third frame slow, each one's successors fast; all in order.
    let mut feed = e.feed("cam-1", live(), FeedOptions { in_flight: 6, waiting: 12 });
    let n = 12u32;
    for i in 0..n {
        assert_eq!(feed.push(one_face(i, if i % 3 == 0 { 200 } else { 160 })), u64::from(i));
    }
    for i in 0..n {
        match feed.next().await {
            Some(FeedItem::Frame { seq, result }) => {
                assert_eq!(seq, u64::from(i));
                assert_eq!(identities(&result.unwrap()), [i]);
            }
            Some(FeedItem::Dropped { first, count }) => panic!("dropped {first}+{count}"),
            None => panic!("feed ended at {i}"),
        }
    }
    assert!(feed.next().await.is_none());
    assert_eq!((feed.dropped(), feed.pending()), (0, 0));
}

#[test]
fn a_full_feed_drops_its_oldest_waiting_frames() {
    let slow = FakeBackend::default().with_detect_delay(|_| Duration::from_millis(15));
    let e = engine(slow, InferenceOptions::default());
    let mut feed = e.feed("cam-2", live(), FeedOptions { in_flight: 1, waiting: 2 });
    for i in 0..6 {
        feed.push(one_face(i, 160));
    }
    // Frame 0 went to the engine; 1, 2 and 3 were displaced by 4 and 5, one drop reported.
    assert_eq!((feed.dropped(), feed.pending()), (3, 6));
    let mut got = Vec::new();
    while let Some(item) = feed.next_blocking() {
        got.push(match item {
            FeedItem::Frame { seq, result } => {
                assert_eq!(identities(&result.unwrap()), [seq as u32]);
                format!("{seq}")
            }
            FeedItem::Dropped { first, count } => format!("-{first}+{count}"),
        });
    }
    assert_eq!(got, ["0", "-1+3", "4", "5"]);
    // Frames the engine refuses are dropped in their place, and never more than in flight.
    drop(feed);
    let e = engine(FakeBackend::default(), InferenceOptions { memory_budget_bytes: 1, ..Default::default() });
    let mut feed = e.feed("cam-3", live(), FeedOptions { in_flight: 2, waiting: 0 });
    for i in 0..1000 {
        feed.push(one_face(i, 160));
    }
    assert_eq!(feed.dropped(), 1000);
    assert!(matches!(feed.try_next(), Some(FeedItem::Dropped { first: 0, count: 1000 })));
    assert!(feed.try_next().is_none());
}

/// Events logged under a span named `request`, with the thread that logged them.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(String, String)>>>);

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else { return };
        let names: Vec<&str> = scope.from_root().map(|s| s.name()).collect();
        if names.first() == Some(&"request") {
            let thread = std::thread::current().name().unwrap_or("?").to_string();
            self.0.lock().unwrap().push((thread, names.join("/")));
        }
    }
}

#[test]
fn the_submitters_span_travels_into_the_model_threads() {
    use tracing_subscriber::layer::SubscriberExt;
    // The model threads log to the process's subscriber, as in the service: set one for this
    // test process (no other library test sets one).
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    let capture = CAPTURE.get_or_init(|| {
        let c = Capture::default();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(c.clone()))
            .expect("no other global subscriber in the library tests");
        c
    });
    let e = engine(FakeBackend::default(), InferenceOptions::default());
    let img = one_face(7, 160);
    let request = tracing::info_span!("request", id = 1);
    let (encoded, decoded) =
        request.in_scope(|| (e.submit(png(&img), live()).unwrap(), e.submit_image(img.clone(), live()).unwrap()));
    assert_eq!(identities(&encoded.blocking_recv().unwrap().unwrap()), [7]);
    assert_eq!(identities(&decoded.blocking_recv().unwrap().unwrap()), [7]);
    // A feed's frames log under their own span, a child of the one they were pushed in.
    let mut feed = e.feed("cam-4", live(), FeedOptions::default());
    request.in_scope(|| feed.push(img));
    assert!(matches!(feed.next_blocking(), Some(FeedItem::Frame { seq: 0, result: Ok(_) })));
    e.shutdown();
    let seen = capture.0.lock().unwrap().clone();
    for thread in ["facewatch-decode", "facewatch-detect-0", "facewatch-embed"] {
        assert!(seen.iter().any(|(t, s)| t == thread && s == "request"), "{thread}: {seen:?}");
    }
    assert!(seen.iter().any(|(t, s)| t == "facewatch-embed" && s == "request/frame"), "{seen:?}");
}

#[test]
fn a_tracked_frame_reserves_the_detectors_scaled_copy() {
    let opts = InferenceOptions { track_detect_max_side: 160, ..Default::default() };
    let e = engine(FakeBackend::default(), opts);
    let track = Mode::Track(QualityGate::default());
    let img = fake::frame(320, 240, &[FakeFace { identity: 3, x: 40, y: 40, size: 96 }]);
    let a = e.submit_image(img.clone(), track.clone()).unwrap().blocking_recv().unwrap().unwrap();
    // 320x240 scaled to a longer side of 160: 160x120, each side rounded up and one to spare.
    assert_eq!(e.memory_reserved().0, e.cost.held(320, 240) + 161 * 121 * 3);
    assert_eq!(identities(&a), [3]);
    assert!(a.faces[0].embedding.is_none(), "tracked frames are not embedded here");
    drop(a);
    // Posted (encoded): the same once decoded.
    let b = e.submit(png(&img), track).unwrap().blocking_recv().unwrap().unwrap();
    assert_eq!(e.memory_reserved().0, e.cost.held(320, 240) + 161 * 121 * 3);
    drop(b);
    // A live frame holds no such copy.
    let c = e.submit_image(img, live()).unwrap().blocking_recv().unwrap().unwrap();
    assert_eq!(e.memory_reserved().0, e.cost.held(320, 240));
    drop(c);
    assert_eq!(e.memory_reserved().0, 0);
    e.shutdown();
}

/// Posted frames and enrollment photos keep detections by their own thresholds: an evaluation
/// analyses frames low and must still enroll as the service does.
#[test]
fn frames_and_enrollment_photos_keep_detections_by_their_own_threshold() {
    let opts = InferenceOptions {
        live_threshold: fake::SCORE - 0.1,
        enroll_threshold: fake::SCORE + 0.001,
        ..Default::default()
    };
    let e = engine(FakeBackend::default(), opts);
    let img = one_face(3, 160);
    let a = e.submit_image(img.clone(), live()).unwrap().blocking_recv().unwrap().unwrap();
    assert_eq!(identities(&a), [3], "the frame keeps the face");
    let enroll = Mode::Enroll(QualityGate::enrollment());
    let b = e.submit_image(img, enroll).unwrap().blocking_recv().unwrap().unwrap();
    assert!(b.faces.is_empty() && b.refused == Some(crate::vision::quality::Rejection::NoFace), "{:?}", b.refused);
    e.shutdown();
}
