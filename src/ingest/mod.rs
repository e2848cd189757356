//! Cameras the service pulls video from (`[[cameras]]`): per camera one `ffmpeg` child process
//! (RTSP over TCP, MJPEG over HTTP, or a file replayed), decoded frames cut from its stdout
//! ([`ppm`]) into a bounded queue that drops the oldest frame when full ([`queue`]), a
//! supervisor that restarts ffmpeg on exit or stall ([`supervisor`]), and a consumer that hands
//! the frames, in order, to a [`FrameSink`] (the engine). [`Cameras`] is the service:
//! started by `app::run`, listed by `GET /v1/cameras`, counted in `/metrics`.

pub mod backoff;
pub mod command;
pub mod config;
pub mod frame;
mod metrics;
pub mod ppm;
pub mod queue;
pub mod sink;
pub mod status;
mod stderr_log;
pub mod supervisor;

use std::sync::Arc;

use serde::Serialize;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

pub use config::{CameraConfig, IngestSection, Source};
pub use frame::CameraFrame;
pub use queue::FrameQueue;
pub use sink::{DiscardSink, FrameSink, RecordingSink};
pub use status::{Restart, State, Status};

use crate::access::{Action, Caller};
use crate::error::Result;
use crate::shutdown::Shutdown;

/// One configured camera: its settings, state and queue.
pub struct Camera {
    pub config: CameraConfig,
    pub source: Source,
    pub status: Status,
    pub queue: FrameQueue,
}

impl Camera {
    /// The largest frame accepted from its ffmpeg, in pixels: width up to `max_width` (ffmpeg
    /// scales), height up to twice that (a portrait corridor camera), both within `max_pixels`.
    /// Bounds the queue's bytes, not only its count.
    pub fn max_frame_pixels(&self, max_pixels: u64) -> u64 {
        max_pixels.min(2 * u64::from(self.config.max_width).pow(2))
    }
}

/// A camera as `GET /v1/cameras` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CameraView {
    pub id: String,
    /// Credentials redacted (`rtsp://user:***@cam/...`).
    pub url: String,
    /// What it is read from: `rtsp`, `http`, `file`, `device` or `push`.
    pub source: &'static str,
    pub enabled: bool,
    /// `starting`, `up`, `down` (see `reason`) or `disabled`.
    pub state: &'static str,
    /// Why it is down (the last failure), if it is.
    pub reason: Option<String>,
    pub last_frame_age_s: Option<f64>,
    /// Frames per second read from ffmpeg, and taken by the consumer (~2 s window).
    pub fps_in: f64,
    pub fps_out: f64,
    pub frames_read: u64,
    pub frames_out: u64,
    /// Dropped because the consumer fell behind (the oldest first).
    pub frames_dropped: u64,
    pub queue: usize,
    pub queue_capacity: usize,
    /// The most the queue can hold: capacity x the largest frame accepted (rgb24).
    pub queue_max_bytes: u64,
    pub restarts: u64,
    /// Restarts by reason: `spawn_failed`, `exited`, `stalled`, `bad_stream`.
    pub restarts_by_reason: std::collections::BTreeMap<&'static str, u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// The cameras of this checkpoint.
pub struct Cameras {
    cameras: Vec<Arc<Camera>>,
    env: Arc<supervisor::Env>,
}

impl Cameras {
    /// From the validated configuration (`max_pixels`: the largest frame accepted from ffmpeg).
    pub fn new(ingest: &IngestSection, cameras: &[CameraConfig], max_pixels: u64) -> Self {
        let cameras = cameras
            .iter()
            .filter_map(|c| {
                // Validated at load; a source that is not one cannot start. Push cameras post
                // their frames to the API (`crate::push`): nothing to pull.
                let source = c.source().ok().filter(|s| *s != Source::Push)?;
                Some(Arc::new(Camera {
                    config: c.clone(),
                    source,
                    status: Status::new(c.enabled),
                    queue: FrameQueue::new(c.queue),
                }))
            })
            .collect();
        let env = Arc::new(supervisor::Env {
            ffmpeg: ingest.ffmpeg.clone(),
            stderr_lines_per_minute: ingest.stderr_lines_per_minute,
            max_pixels,
        });
        Self { cameras, env }
    }

    /// Starts every enabled camera's supervisor and consumer on `tracker`; they stop (every
    /// ffmpeg killed and reaped) when `shutdown` fires.
    pub fn start(&self, tracker: &TaskTracker, sink: Arc<dyn FrameSink>, shutdown: &Shutdown) {
        for cam in self.cameras.iter().filter(|c| c.config.enabled) {
            tracing::info!(camera = %cam.config.id, url = %cam.config.url, source = cam.source.kind(), "camera starting");
            // Every log line of the camera's tasks and threads names it.
            let span = tracing::info_span!("camera", camera = %cam.config.id);
            tracker
                .spawn(supervisor::supervise(cam.clone(), self.env.clone(), shutdown.clone()).instrument(span.clone()));
            tracker.spawn(consume(cam.clone(), sink.clone(), shutdown.clone()).instrument(span));
        }
    }

    /// Every camera's state (role ops).
    pub fn list(&self, who: &Caller) -> Result<Vec<CameraView>> {
        who.may(Action::ReadCameras)?;
        Ok(self.views())
    }

    pub fn views(&self) -> Vec<CameraView> {
        self.cameras.iter().map(|c| view(c, self.env.max_pixels)).collect()
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Camera>> {
        self.cameras.iter().find(|c| c.config.id == id)
    }

    pub fn is_empty(&self) -> bool {
        self.cameras.is_empty()
    }

    /// The per-camera series of `/metrics` (labels: the configured cameras only), for the
    /// registry to read at each scrape.
    pub fn metrics(&self) -> metrics::CameraSeries {
        metrics::CameraSeries(self.cameras.clone())
    }
}

fn view(c: &Camera, max_pixels: u64) -> CameraView {
    let st = c.status.state();
    let size = c.status.size();
    CameraView {
        id: c.config.id.clone(),
        url: c.config.url.to_string(),
        source: c.source.kind(),
        enabled: c.config.enabled,
        state: st.name(),
        reason: match st {
            State::Down { reason } => Some(reason),
            _ => None,
        },
        last_frame_age_s: c.status.last_frame_age().map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
        fps_in: (c.status.fps_in() * 100.0).round() / 100.0,
        fps_out: (c.status.fps_out() * 100.0).round() / 100.0,
        frames_read: c.status.frames_read(),
        frames_out: c.status.frames_out(),
        frames_dropped: c.queue.dropped(),
        queue: c.queue.len(),
        queue_capacity: c.queue.capacity(),
        queue_max_bytes: c.queue.capacity() as u64 * 3 * c.max_frame_pixels(max_pixels),
        restarts: c.status.restarts_total(),
        restarts_by_reason: Restart::ALL.iter().map(|r| (r.name(), c.status.restarts(*r))).collect(),
        width: size.map(|s| s.0),
        height: size.map(|s| s.1),
    }
}

/// Hands the camera's frames to the sink in order until shutdown or the camera ends.
async fn consume(cam: Arc<Camera>, sink: Arc<dyn FrameSink>, mut shutdown: Shutdown) {
    loop {
        let frame = tokio::select! {
            f = cam.queue.pop() => f,
            _ = shutdown.recv() => None,
        };
        let Some(frame) = frame else { return };
        cam.status.frame_out();
        sink.frame(&cam.config.id, frame).await;
    }
}
