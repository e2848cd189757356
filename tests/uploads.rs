//! Bodies being received are bounded too: slow senders hold at most `max_concurrent_uploads`
//! slots (more get 503 at once, the rest of the service keeps answering), callers without a
//! valid token get none, and a chunked body is cut at `max_body_bytes` as it arrives, whatever
//! its headers claim.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::server::{Server, camera_token, token};

/// Sends a request head for a frame upload whose body never fully arrives.
fn slow_upload(addr: &str, token: &str, claimed: usize) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v1/cameras/gate-1/frames HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: image/jpeg\r\nContent-Length: {claimed}\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&[0xFF, 0xD8]).unwrap();
    c
}

/// Status and body of whatever the server answers on `c` (within 5 s).
fn answer(c: &mut TcpStream) -> (u16, String) {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    // The head is enough for the status; a short JSON error body follows it at once.
    std::thread::sleep(Duration::from_millis(50));
    c.set_nonblocking(true).unwrap();
    while let Ok(n) = c.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[test]
fn slow_senders_hold_a_bounded_number_of_upload_slots() {
    let dir = tempfile::tempdir().unwrap();
    let camera = camera_token(dir.path(), "gate-1", &["gate-1"]);
    let s = Server::start(dir.path(), &[("FACEWATCH_LIMITS__MAX_CONCURRENT_UPLOADS", "2")]);
    let addr = s.url.trim_start_matches("http://").to_string();

    // Strangers hold nothing: 401 before any body is read.
    let mut strangers: Vec<TcpStream> = (0..4).map(|_| slow_upload(&addr, "fw_nobody", 1 << 20)).collect();
    for c in &mut strangers {
        assert_eq!(answer(c).0, 401);
    }
    // Two slow uploads take both slots; a third is refused at once, not queued.
    let _slow: Vec<TcpStream> = (0..2).map(|_| slow_upload(&addr, &camera, 1 << 20)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let mut third = slow_upload(&addr, &camera, 1 << 20);
    let (status, text) = answer(&mut third);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("overloaded") && text.contains("uploads"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(2), "refused at once ({:?})", t.elapsed());
    // Everything else keeps answering, and the slots come back when the senders go away.
    assert_eq!(s.get("/healthz", None).status, 200);
    drop(_slow);
    std::thread::sleep(Duration::from_millis(300));
    let face = std::fs::read(common::data().join("faces/Colin_Powell/0001.jpg")).unwrap();
    assert_eq!(s.frame("gate-1", &camera, &face).status, 200);
}

#[test]
fn a_chunked_body_is_cut_at_the_limit_as_it_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "olga");
    let camera = camera_token(dir.path(), "gate-1", &["gate-1"]);
    let s = Server::start(dir.path(), &[("FACEWATCH_LIMITS__MAX_BODY_BYTES", "65536")]);
    let addr = s.url.trim_start_matches("http://").to_string();
    for (path, token) in [("/v1/cameras/gate-1/frames", &camera), ("/v1/lists/wanted/subjects", &ops)] {
        let mut c = TcpStream::connect(&addr).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: image/jpeg\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        c.write_all(head.as_bytes()).unwrap();
        // 16 chunks of 8 KiB: twice the limit, with no length announced up front.
        for _ in 0..16 {
            if c.write_all(format!("2000\r\n{}\r\n", "x".repeat(8192)).as_bytes()).is_err() {
                break;
            }
        }
        let _ = c.write_all(b"0\r\n\r\n");
        let (status, text) = answer(&mut c);
        assert_eq!(status, 413, "{path}: {text}");
        assert!(text.contains("payload_too_large"), "{text}");
    }
}
