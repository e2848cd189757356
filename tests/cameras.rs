//! Cameras end to end, on real processes started here: ffmpeg reading a file, an MJPEG server
//! (`ffmpeg -listen 1`), a gst-rtsp-server stalled with SIGSTOP and killed, a consumer ten
//! times slower than its camera, and `GET /v1/cameras` of a real `facewatch serve`. Videos are
//! generated into a temp folder with ffmpeg's `testsrc`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::server::{Server, token};
use facewatch::ingest::{CameraConfig, CameraView, Cameras, IngestSection, RecordingSink};
use facewatch::secret::SecretUrl;
use facewatch::shutdown::{self, Trigger};
use tokio_util::task::TaskTracker;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `testsrc` clip of `secs` seconds, `size` at `rate` fps, H.264 in MP4.
fn clip(dir: &Path, name: &str, size: &str, rate: u32, secs: u32) -> PathBuf {
    let out = dir.join(name);
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={size}:rate={rate}"))
        .args(["-t", &secs.to_string(), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
        .arg(&out)
        .status()
        .expect("ffmpeg (scripts/setup.sh installs it)");
    assert!(st.success());
    out
}

fn camera(id: &str, url: &str) -> CameraConfig {
    CameraConfig {
        id: id.into(),
        url: SecretUrl::new(url),
        start_timeout_ms: 5000,
        backoff_initial_ms: 100,
        backoff_max_ms: 400,
        ..CameraConfig::default()
    }
}

/// Cameras running on this test's runtime into a recording sink.
struct Rig {
    cameras: Cameras,
    sink: Arc<RecordingSink>,
    trigger: Trigger,
    tracker: TaskTracker,
}

impl Rig {
    fn start(cams: Vec<CameraConfig>, sink: RecordingSink) -> Self {
        // ffmpeg's stderr and the state changes, in the test's output when it fails.
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("facewatch=debug").try_init();
        let cameras = Cameras::new(&IngestSection::default(), &cams, 40_000_000);
        let sink = Arc::new(sink);
        let (trigger, shutdown) = shutdown::channel();
        let tracker = TaskTracker::new();
        cameras.start(&tracker, sink.clone(), &shutdown);
        tracker.close();
        Self { cameras, sink, trigger, tracker }
    }

    fn view(&self, id: &str) -> CameraView {
        self.cameras.views().into_iter().find(|v| v.id == id).unwrap()
    }

    /// Waits (up to `within`) until `ok` holds for camera `id`; returns how long it took.
    async fn until(&self, id: &str, within: Duration, what: &str, ok: impl Fn(&CameraView) -> bool) -> Duration {
        let t = Instant::now();
        loop {
            let v = self.view(id);
            if ok(&v) {
                return t.elapsed();
            }
            assert!(t.elapsed() < within, "{id}: not {what} within {within:?}: {v:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Shutdown: every supervisor returns, having killed and reaped its ffmpeg.
    async fn stop(&self) {
        self.trigger.fire();
        tokio::time::timeout(Duration::from_secs(5), self.tracker.wait()).await.expect("cameras stop within 5 s");
    }
}

/// Processes whose command line contains `needle` (an ffmpeg left behind would be one).
fn processes_with(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(needle))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_replay_gives_every_frame_scaled_in_order_on_the_file_time_base() {
    let dir = tempfile::tempdir().unwrap();
    let video = clip(dir.path(), "replay.mp4", "640x480", 25, 2);
    let mut cam = camera("replay", &format!("file://{}", video.display()));
    // As fast as the consumer takes them, none lost (evaluation), on a fixed epoch.
    cam.realtime = false;
    cam.fps = 5.0;
    cam.max_width = 320;
    cam.queue = 2;
    cam.epoch = "2026-01-01T00:00:00Z".into();
    let rig = Rig::start(vec![cam], RecordingSink::new(1000, Duration::from_millis(30)));
    // Ended, and the consumer has taken what was queued.
    rig.until("replay", Duration::from_secs(15), "ended", |v| v.state == "disabled" && v.queue == 0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = rig.sink.seen();
    rig.stop().await;
    let epoch = facewatch::clock::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    // 2 s at 5 fps; a consumer slower than ffmpeg loses nothing in lossless replay.
    assert_eq!(seen.len(), 10, "{seen:?}");
    for (i, s) in seen.iter().enumerate() {
        assert_eq!((s.seq, s.width, s.height), (i as u64, 320, 240));
        assert_eq!(s.captured_at_ms, epoch + i as i64 * 200, "frame {i}");
    }
    let v = rig.view("replay");
    assert_eq!((v.frames_read, v.frames_dropped, v.restarts), (10, 0, 0), "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjpeg_over_http_flows_and_a_server_gone_is_a_restart() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let server = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=480x270:rate=15"])
        .args(["-t", "60", "-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg", "-listen", "1", &url])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let server = Proc(server);
    let mut cam = camera("mjpeg", &url);
    cam.max_width = 320;
    let rig = Rig::start(vec![cam], RecordingSink::new(1000, Duration::ZERO));
    // 12 frames: one rate window (2 s) has passed since the first.
    let took = rig.until("mjpeg", Duration::from_secs(10), "12 frames", |v| v.frames_out >= 12).await;
    let seen = rig.sink.seen();
    assert!(seen.iter().all(|s| (s.width, s.height) == (320, 180)), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[1].seq == w[0].seq + 1 && w[1].captured_at_ms >= w[0].captured_at_ms));
    let now = facewatch::clock::now_ms();
    assert!(seen.iter().all(|s| (now - 15_000..=now).contains(&s.captured_at_ms)), "wall-clock capture times");
    let v = rig.view("mjpeg");
    assert_eq!(v.state, "up");
    // (A first connection may have come before the server listened: that is a restart too.)
    let exits = v.restarts_by_reason["exited"];
    // 15 fps capped at 5 by ffmpeg's fps filter (on arrival time: MJPEG has no timestamps).
    assert!((4.0..=6.0).contains(&v.fps_in), "fps_in {}", v.fps_in);
    eprintln!("mjpeg: 12 frames after {took:?}, fps_in {}", v.fps_in);
    // The server goes away: ffmpeg exits, the camera is down and restarting.
    drop(server);
    rig.until("mjpeg", Duration::from_secs(5), "down", |v| v.state == "down" && v.restarts_by_reason["exited"] > exits)
        .await;
    rig.stop().await;
    assert_eq!(processes_with(&url), 0, "no ffmpeg left");
}

/// A server process, killed and reaped when dropped (also when the test fails).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The RTSP server (tests/rtsp_server.py on the system python, which has gi).
fn rtsp_server(port: u16) -> Proc {
    let script = common::root().join("tests/rtsp_server.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 with gi (scripts/setup.sh)");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ready", "rtsp server did not start");
    Proc(child)
}

fn signal(p: &Proc, sig: &str) {
    assert!(Command::new("kill").args([sig, &p.0.id().to_string()]).status().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_stalled_then_killed_is_reported_down_and_recovers() {
    let port = free_port();
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let mut server = rtsp_server(port);
    let mut cam = camera("gate", &url);
    cam.no_frame_timeout_ms = 1000;
    cam.start_timeout_ms = 6000;
    cam.max_width = 320;
    let rig = Rig::start(vec![cam], RecordingSink::new(1000, Duration::ZERO));
    let up = rig.until("gate", Duration::from_secs(10), "up", |v| v.state == "up" && v.frames_out >= 3).await;
    assert_eq!((rig.view("gate").width, rig.view("gate").height), (Some(320), Some(180)));

    // Stalled: the server is frozen, ffmpeg would wait ~25 s; the no-frame deadline fires.
    signal(&server, "-STOP");
    let down = rig.until("gate", Duration::from_secs(4), "down", |v| v.state == "down").await;
    let v = rig.view("gate");
    assert!(v.reason.as_deref().unwrap_or("").contains("no frame"), "{v:?}");
    assert!(v.restarts_by_reason["stalled"] >= 1, "{v:?}");
    assert!(down < Duration::from_millis(2500), "reported down after {down:?} (deadline 1 s)");
    signal(&server, "-CONT");
    let before = v.frames_read;
    let back = rig
        .until("gate", Duration::from_secs(10), "up again", |v| v.state == "up" && v.frames_read >= before + 3)
        .await;

    // Killed, then started again on the same port.
    drop(server);
    rig.until("gate", Duration::from_secs(4), "down", |v| v.state == "down").await;
    let restarts = rig.view("gate").restarts;
    server = rtsp_server(port);
    let before = rig.view("gate").frames_read;
    let again = rig
        .until("gate", Duration::from_secs(10), "up after restart", |v| v.state == "up" && v.frames_read >= before + 3)
        .await;
    let v = rig.view("gate");
    assert!(v.restarts >= restarts && v.restarts >= 2, "{v:?}");
    let seen = rig.sink.seen();
    assert!(seen.windows(2).all(|w| w[1].seq > w[0].seq), "in order across restarts");
    eprintln!(
        "rtsp: up in {up:?}, down {down:?} after SIGSTOP, up {back:?} after SIGCONT, up {again:?} after a new server; {v:?}"
    );
    rig.stop().await;
    drop(server);
    assert_eq!(processes_with(&url), 0, "no ffmpeg left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_ten_times_slower_keeps_the_queue_bounded_and_gets_the_newest_frames() {
    let dir = tempfile::tempdir().unwrap();
    let video = clip(dir.path(), "fast.mp4", "160x120", 100, 4);
    let mut cam = camera("fast", video.to_str().unwrap());
    cam.fps = 100.0;
    cam.queue = 3;
    cam.repeat = true;
    // 100 fps in real time, a consumer of 10 fps.
    let rig = Rig::start(vec![cam], RecordingSink::new(1000, Duration::from_millis(100)));
    rig.until("fast", Duration::from_secs(10), "150 frames read", |v| v.frames_read >= 150).await;
    rig.stop().await;
    let v = rig.view("fast");
    let seen = rig.sink.seen();
    // Every frame read was consumed, dropped or is still queued; the queue never held more
    // than its capacity (memory: 3 frames of this camera).
    assert_eq!(v.frames_read, v.frames_out + v.frames_dropped + v.queue as u64, "{v:?}");
    let q = rig.cameras.get("fast").unwrap();
    assert!(q.queue.high_water() <= 3, "{}", q.queue.high_water());
    assert_eq!(v.queue_max_bytes, 3 * 3 * 2 * 1920 * 1920, "bounded by bytes: 3 frames of at most 1920x3840");
    assert!(v.frames_dropped >= v.frames_read / 2, "{v:?}");
    // The oldest were dropped: the consumer skipped ahead (~10 frames a step), never backwards.
    assert!(seen.windows(2).all(|w| w[1].seq > w[0].seq));
    let gaps: u64 = seen.windows(2).map(|w| w[1].seq - w[0].seq).sum::<u64>() / (seen.len() as u64 - 1);
    assert!(gaps >= 4, "mean step {gaps}: {seen:?}");
    eprintln!(
        "slow consumer: read {}, out {}, dropped {}, mean step {gaps}",
        v.frames_read, v.frames_out, v.frames_dropped
    );
}

#[test]
fn the_service_lists_its_cameras_with_states_and_leaves_no_ffmpeg_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let video = clip(dir.path(), "demo-camera.mp4", "320x240", 10, 2);
    let closed = free_port();
    let config = dir.path().join("fw.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\ndata_dir = \"{}\"\n\
             [[cameras]]\nid = \"demo\"\nurl = \"{}\"\nloop = true\nfps = 5\n\
             [[cameras]]\nid = \"gate-1\"\nurl = \"rtsp://op:s3cr3t@127.0.0.1:{closed}/cam\"\n\
             start_timeout_ms = 500\nbackoff_initial_ms = 100\nbackoff_max_ms = 200\n\
             [[cameras]]\nid = \"spare\"\nurl = \"http://127.0.0.1:{closed}/mjpg\"\nenabled = false\n",
            data.display(),
            video.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let ops = token(&data, "ops", "ops");
    let officer = token(&data, "officer", "o1");
    let s = Server::start_with_config(&config, &data);
    let t = Instant::now();
    let cams = loop {
        let v = s.get("/v1/cameras", Some(&ops)).ok();
        let state =
            |id: &str| v["cameras"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap()["state"].clone();
        if state("demo") == "up" && state("gate-1") == "down" {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "{v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let c = |id: &str| cams["cameras"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(c("spare")["state"], "disabled");
    assert_eq!(c("gate-1")["url"], format!("rtsp://op:***@127.0.0.1:{closed}/cam"));
    assert!(c("gate-1")["restarts"].as_u64().unwrap() >= 1, "{cams}");
    assert!(c("gate-1")["reason"].as_str().unwrap().contains("ffmpeg exited"), "{cams}");
    assert_eq!((c("demo")["width"].clone(), c("demo")["source"].clone()), (320.into(), "file".into()));
    assert!(c("demo")["last_frame_age_s"].as_f64().unwrap() < 2.0, "{cams}");
    assert!(!String::from_utf8_lossy(&s.get("/v1/cameras", Some(&ops)).body).contains("s3cr3t"));
    assert_eq!(s.get("/v1/cameras", Some(&officer)).status, 403);
    assert_eq!(s.get("/v1/cameras", None).status, 401);
    assert_eq!(s.metric("facewatch_camera_up{camera=\"demo\"}"), 1.0);
    assert_eq!(s.metric("facewatch_camera_up{camera=\"gate-1\"}"), 0.0);
    assert!(s.metric("facewatch_camera_frames_total{camera=\"demo\"}") >= 1.0);
    assert!(s.metric("facewatch_camera_restarts_total{camera=\"gate-1\",reason=\"exited\"}") >= 1.0);
    assert!(processes_with("demo-camera.mp4") >= 1, "the demo camera's ffmpeg runs");
    assert!(s.stop().success());
    assert_eq!(processes_with("demo-camera.mp4"), 0, "no ffmpeg after shutdown");
}
