//! Where a camera's frames go: the consumer side of its queue. The service's default drops
//! them after counting (the engine's glue replaces it); [`RecordingSink`] keeps what arrived,
//! for tests and diagnostics.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::frame::CameraFrame;

/// Takes each camera's frames, in order per camera, one call at a time per camera (cameras
/// run concurrently). A slow sink makes that camera's queue drop its oldest frames.
pub trait FrameSink: Send + Sync + 'static {
    fn frame<'a>(&'a self, camera: &'a str, frame: CameraFrame) -> BoxFuture<'a, ()>;
}

/// Counts frames (the camera's `fps_out`) and lets them go.
pub struct DiscardSink;

impl FrameSink for DiscardSink {
    fn frame<'a>(&'a self, _camera: &'a str, _frame: CameraFrame) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// What one frame was, without its pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub camera: String,
    pub seq: u64,
    pub captured_at_ms: i64,
    pub width: u32,
    pub height: u32,
    /// The first pixel (the frames of a test source differ there).
    pub first_pixel: [u8; 3],
}

/// Records each frame's [`Seen`] (the last `keep` of them), taking `delay` per frame (a
/// consumer slower than its camera).
pub struct RecordingSink {
    seen: Mutex<Vec<Seen>>,
    keep: usize,
    delay: Duration,
}

impl RecordingSink {
    pub fn new(keep: usize, delay: Duration) -> Self {
        Self { seen: Mutex::new(Vec::new()), keep, delay }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn seen_of(&self, camera: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.camera == camera).collect()
    }
}

impl FrameSink for RecordingSink {
    fn frame<'a>(&'a self, camera: &'a str, frame: CameraFrame) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let p = frame.image.get_pixel(0, 0).0;
            let s = Seen {
                camera: camera.to_string(),
                seq: frame.seq,
                captured_at_ms: frame.captured_at_ms,
                width: frame.image.width(),
                height: frame.image.height(),
                first_pixel: p,
            };
            if let Ok(mut v) = self.seen.lock() {
                if v.len() >= self.keep {
                    v.remove(0);
                }
                v.push(s);
            }
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
        })
    }
}
