//! A decoded camera frame, as the ingest hands it on (no JPEG round trip).

use image::RgbImage;

#[derive(Debug, Clone)]
pub struct CameraFrame {
    /// 0, 1, 2, ... per camera since the service started, across ffmpeg restarts; a gap means
    /// frames were dropped (the queue was full).
    pub seq: u64,
    /// Capture time, Unix ms: the wall clock when the frame was read (live), or the file's time
    /// base `epoch + seq / fps` (file replay: the same on every run with a fixed epoch).
    pub captured_at_ms: i64,
    /// When the frame was read from ffmpeg (this process's clock): latency is measured from
    /// here, also for a replayed file whose capture time is its own time base.
    pub read_at: std::time::Instant,
    pub image: RgbImage,
}
