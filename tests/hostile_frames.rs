//! Hostile frames against a real `facewatch serve` (issue 15): the file whose JPEG headers
//! mean 16x16 to one parser and 60000x60000 to libjpeg-turbo once made the service allocate
//! 10.8 GB and decode for 18.6 s per request; now it is answered 413 from libjpeg-turbo's own
//! header, in milliseconds, and the service goes on.

mod common;
mod hostile;

use std::time::{Duration, Instant};

use common::server::{Server, camera_token};

#[test]
fn pixel_limit_bypass_is_answered_413_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let camera = camera_token(dir.path(), "gate-1", &["gate-1"]);
    let server = Server::start(dir.path(), &[]);
    let attack = hostile::rst_before_sof(60_000, 60_000);

    let t = Instant::now();
    let resp = server.frame("gate-1", &camera, &attack);
    let first = t.elapsed();
    assert_eq!(resp.status, 413, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.error_code(), "image_too_large");

    // Three at once (two or three used to exhaust a 24 GB machine).
    let t = Instant::now();
    let answers: Vec<(u16, Duration)> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let t = Instant::now();
                    (server.frame("gate-1", &camera, &attack).status, t.elapsed())
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let together = t.elapsed();
    eprintln!("413 in {first:?} alone; three at once: {answers:?}, {together:?} in all");
    assert!(answers.iter().all(|(status, _)| *status == 413), "{answers:?}");
    // Milliseconds measured; a bound for a loaded CI machine.
    assert!(first < Duration::from_secs(1) && together < Duration::from_secs(1), "{first:?}, {together:?}");

    // The same trick within the pixel limit: the parsers disagree, so it is refused as corrupt.
    let resp = server.frame("gate-1", &camera, &hostile::rst_before_sof(300, 200));
    assert_eq!(resp.status, 422, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.error_code(), "corrupt_image");

    // And the service still analyses real frames.
    let photo = std::fs::read(common::data().join("faces/Colin_Powell/0001.jpg")).unwrap();
    let faces = server.frame("gate-1", &camera, &photo).ok();
    assert_eq!(faces["faces"].as_array().map(|f| f.len()), Some(1), "{faces}");
    assert!(server.stop().success());
}
