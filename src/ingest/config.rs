//! `[ingest]` and `[[cameras]]`: which cameras the service pulls video from and how. Cameras are
//! an array of tables, so they are set in the configuration file only (an environment variable
//! cannot express a list of tables).

use std::collections::HashSet;
use std::path::PathBuf;

use crate::secret::SecretUrl;

/// The `url` of a camera that posts its frames to be tracked.
pub const PUSH_URL: &str = "push:";

/// Cameras one checkpoint may pull (each is one ffmpeg process and a metric label per series).
pub const MAX_CAMERAS: usize = 64;

/// `[ingest]`: what every camera shares.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSection {
    /// The ffmpeg binary (a name found on PATH, or a path): Debian's `ffmpeg` package.
    pub ffmpeg: String,
    /// Lines of ffmpeg's stderr logged per camera and minute; the rest are counted and the count
    /// logged with the next line (a broken stream can print a line per packet).
    pub stderr_lines_per_minute: u64,
}

impl Default for IngestSection {
    fn default() -> Self {
        Self { ffmpeg: "ffmpeg".into(), stderr_lines_per_minute: 20 }
    }
}

/// One `[[cameras]]` entry.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    /// The camera id of alerts, metrics and events (as for posted frames: 1-64 of `A-Z a-z 0-9 - _ .`).
    pub id: String,
    /// `rtsp://` / `rtsps://` (over TCP), `http(s)://` (MJPEG), or a video file (`file://` or a
    /// path) replayed. May carry credentials (`rtsp://user:pass@cam/...`): printed as `***`.
    /// `push:`: the camera posts its frames (`POST /v1/cameras/{id}/frames`) and they are
    /// tracked and decided per pass like a pulled camera's (no ffmpeg).
    pub url: SecretUrl,
    pub enabled: bool,
    /// Frames per second taken from the stream (ffmpeg's `fps` filter: it drops, or repeats
    /// frames of a slower stream, so a file's time base is exactly `seq / fps`).
    pub fps: f64,
    /// Frames wider than this are scaled down by ffmpeg (aspect kept, even sizes).
    pub max_width: u32,
    /// Frames waiting for the consumer; when full, the OLDEST is dropped (counted), so a live
    /// camera's latency stays bounded.
    pub queue: usize,
    /// File replay: start again at the end (a demo camera); otherwise the camera ends.
    #[serde(rename = "loop")]
    pub repeat: bool,
    /// File replay at the file's own speed, dropping frames like a live camera (true), or as
    /// fast as the consumer takes them, losing none (false: evaluation).
    pub realtime: bool,
    /// File replay: capture time of frame 0 (RFC 3339), frame n at `epoch + n / fps`; empty =
    /// when the camera first starts. Set it for a repeatable evaluation.
    pub epoch: String,
    /// A running stream that delivers no frame for this long is killed and restarted (ffmpeg
    /// itself waits ~25 s in a stalled stream, and exits 0 when the server goes away).
    pub no_frame_timeout_ms: u64,
    /// The first frame after a (re)start may take this long (connect, handshake, key frame).
    pub start_timeout_ms: u64,
    /// Restart delay: doubles from `backoff_initial_ms` to `backoff_max_ms`, with jitter.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            url: SecretUrl::default(),
            enabled: true,
            fps: 5.0,
            max_width: 1920,
            queue: 4,
            repeat: false,
            realtime: true,
            epoch: String::new(),
            no_frame_timeout_ms: 10_000,
            start_timeout_ms: 20_000,
            backoff_initial_ms: 500,
            backoff_max_ms: 30_000,
        }
    }
}

/// Where a camera's video comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Rtsp,
    /// MJPEG over HTTP(S).
    Http,
    File(PathBuf),
    /// Frames posted to the API, tracked (nothing is pulled).
    Push,
}

impl Source {
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Rtsp => "rtsp",
            Source::Http => "http",
            Source::File(_) => "file",
            Source::Push => "push",
        }
    }

    pub fn is_live(&self) -> bool {
        !matches!(self, Source::File(_))
    }
}

impl CameraConfig {
    /// The source named by `url`, or why it is not one.
    pub fn source(&self) -> Result<Source, String> {
        let url = self.url.expose();
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
            Ok(Source::Rtsp)
        } else if lower.starts_with("http://") || lower.starts_with("https://") {
            Ok(Source::Http)
        } else if let Some(path) = url.strip_prefix("file://") {
            Ok(Source::File(PathBuf::from(path)))
        } else if lower == PUSH_URL {
            Ok(Source::Push)
        } else if url.is_empty() {
            Err("url is required".into())
        } else if url.contains("://") {
            Err("expected rtsp://, rtsps://, http://, https://, file://, a file path or push:".into())
        } else {
            Ok(Source::File(PathBuf::from(url)))
        }
    }

    /// The epoch of a file replay, if one is set.
    pub fn epoch_ms(&self) -> Option<i64> {
        (!self.epoch.is_empty()).then(|| crate::clock::parse_rfc3339(&self.epoch)).flatten()
    }

    fn problems(&self, bad: &mut Vec<String>) {
        let at = format!("[[cameras]] {:?}", self.id);
        if let Err(e) = crate::frames::validate_camera(&self.id) {
            bad.push(format!("{at}: id: {e}"));
        }
        let source = self.source();
        if let Err(why) = &source {
            bad.push(format!("{at}: url {:?}: {why}", self.url));
        }
        if !(self.fps > 0.0 && self.fps <= 120.0) {
            bad.push(format!("{at}: fps {}: expected more than 0, at most 120", self.fps));
        }
        if !(16..=16_384).contains(&self.max_width) {
            bad.push(format!("{at}: max_width {}: expected 16..16384", self.max_width));
        }
        if !(1..=256).contains(&self.queue) {
            bad.push(format!("{at}: queue {}: expected 1..256", self.queue));
        }
        if let Ok(s) = &source
            && s.is_live()
        {
            for (key, set) in
                [("loop", self.repeat), ("realtime = false", !self.realtime), ("epoch", !self.epoch.is_empty())]
            {
                if set {
                    bad.push(format!("{at}: {key} is for file replay only"));
                }
            }
        }
        if !self.epoch.is_empty() && self.epoch_ms().is_none() {
            bad.push(format!("{at}: epoch {:?}: expected RFC 3339 (2026-01-01T00:00:00Z)", self.epoch));
        }
        for (key, v) in [("no_frame_timeout_ms", self.no_frame_timeout_ms), ("start_timeout_ms", self.start_timeout_ms)]
        {
            if !(100..=600_000).contains(&v) {
                bad.push(format!("{at}: {key} {v}: expected 100..600000"));
            }
        }
        if !(10..=600_000).contains(&self.backoff_initial_ms) || self.backoff_max_ms < self.backoff_initial_ms {
            bad.push(format!(
                "{at}: backoff_initial_ms {} / backoff_max_ms {}: expected 10..600000, max at least initial",
                self.backoff_initial_ms, self.backoff_max_ms
            ));
        }
    }
}

/// Every problem of `[ingest]` and the cameras, for the config's validation.
pub fn problems(ingest: &IngestSection, cameras: &[CameraConfig], bad: &mut Vec<String>) {
    if ingest.ffmpeg.trim().is_empty() {
        bad.push("[ingest] ffmpeg must name the ffmpeg binary".into());
    }
    if cameras.len() > MAX_CAMERAS {
        bad.push(format!("[[cameras]]: {} cameras, at most {MAX_CAMERAS}", cameras.len()));
    }
    let mut seen = HashSet::new();
    for c in cameras {
        c.problems(bad);
        if !seen.insert(c.id.as_str()) {
            bad.push(format!("[[cameras]] {:?}: duplicate id", c.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ServiceConfig;

    fn load(text: &str) -> crate::Result<ServiceConfig> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("fw.toml");
        std::fs::write(&f, text).unwrap();
        ServiceConfig::load(Some(&f), Vec::new())
    }

    #[test]
    fn cameras_from_the_file_over_defaults_checked_and_redacted() {
        let c = load(
            "[ingest]\nffmpeg = \"/usr/bin/ffmpeg\"\n\
             [[cameras]]\nid = \"gate-1\"\nurl = \"rtsp://op:s3cr3t@10.0.0.5/stream1\"\nfps = 4\n\
             [[cameras]]\nid = \"demo\"\nurl = \"file:///srv/demo.mp4\"\nloop = true\nmax_width = 1280\n\
             [[cameras]]\nid = \"hall.2\"\nurl = \"http://10.0.0.6/mjpg\"\nenabled = false\n",
        )
        .unwrap();
        assert_eq!(c.ingest.ffmpeg, "/usr/bin/ffmpeg");
        let ids: Vec<&str> = c.cameras.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["gate-1", "demo", "hall.2"]);
        assert_eq!((c.cameras[0].fps, c.cameras[0].max_width, c.cameras[0].queue), (4.0, 1920, 4));
        assert!(c.cameras[1].repeat && c.cameras[1].realtime && !c.cameras[2].enabled);
        assert_eq!(c.cameras[1].source().unwrap(), super::Source::File("/srv/demo.mp4".into()));
        let printed = format!("{c:?}");
        assert!(!printed.contains("s3cr3t") && printed.contains("rtsp://op:***@10.0.0.5/stream1"), "{printed}");
        assert!(load("").unwrap().cameras.is_empty());
    }

    #[test]
    fn a_push_camera_is_tracked_not_pulled() {
        let c = load("[[cameras]]\nid = \"door\"\nurl = \"push:\"\n[[cameras]]\nid = \"off\"\nurl = \"push:\"\nenabled = false\n")
            .unwrap();
        assert_eq!(c.cameras[0].source().unwrap(), super::Source::Push);
        let pulled = crate::ingest::Cameras::new(&c.ingest, &c.cameras, 1 << 20);
        assert!(pulled.is_empty(), "no ffmpeg for a push camera");
        let push = crate::push::PushCameras::new(&c.cameras);
        assert!(push.is_push("door") && !push.is_push("off") && !push.is_push("other"));
        let e = load("[[cameras]]\nid = \"door\"\nurl = \"push:\"\nloop = true\n").unwrap_err().to_string();
        assert!(e.contains("loop is for file replay only"), "{e}");
    }

    #[test]
    fn bad_cameras_stop_the_start_with_their_place() {
        let cam = |extra: &str| format!("[[cameras]]\nid = \"c1\"\nurl = \"rtsp://h/s\"\n{extra}");
        for (text, says) in [
            (cam("fsp = 5\n"), "unknown key \"fsp\" in [[cameras]] #1"),
            (cam("fps = 0\n"), "fps 0: expected more than 0"),
            (cam("fps = \"fast\"\n"), "[[cameras]] #1 fps: expected a number"),
            (cam("queue = 0\n"), "queue 0: expected 1..256"),
            (cam("loop = true\n"), "loop is for file replay only"),
            (cam("no_frame_timeout_ms = 5\n"), "no_frame_timeout_ms 5"),
            (cam("backoff_initial_ms = 900\nbackoff_max_ms = 100\n"), "backoff_max_ms 100"),
            (format!("{}{}", cam(""), cam("")), "\"c1\": duplicate id"),
            ("[[cameras]]\nid = \"c 1\"\nurl = \"x.mp4\"\n".into(), "id: "),
            (
                "[[cameras]]\nid = \"c1\"\nurl = \"ftp://u:pw0rd@h/x\"\n".into(),
                "url \"ftp://u:***@h/x\": expected rtsp://",
            ),
            ("[[cameras]]\nid = \"c1\"\n".into(), "url is required"),
            ("[[cameras]]\nid = \"c1\"\nurl = \"a.mp4\"\nepoch = \"yesterday\"\n".into(), "epoch \"yesterday\""),
            ("cameras = 1\n".into(), "cameras must be an array of tables"),
            ("[cameras]\nid = \"c1\"\n".into(), "cameras must be an array of tables"),
        ] {
            let e = load(&text).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
            assert!(!e.contains("pw0rd"), "{e}");
        }
        let e = load("[tracking]\ndetect_max_side = 100\n").unwrap_err().to_string();
        assert!(e.contains("detect_max_side 100"), "{e}");
        let env = vec![("FACEWATCH_CAMERAS__URL".to_string(), "rtsp://h/s".to_string())];
        let e = ServiceConfig::load(None, env).unwrap_err().to_string();
        assert!(e.contains("cameras are set in the file only"), "{e}");
    }
}
