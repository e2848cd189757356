//! A pulled camera's frames into the engine and the track rule: each frame (already decoded by
//! the camera's ffmpeg, see [`crate::ingest`]) is analysed as `Mode::Track` (faces found,
//! aligned and measured, not embedded), then the camera's [`Passes`] tracks the faces, embeds
//! the few that can change a decision and raises one alert per person-pass. A camera's frames
//! come one at a time and in order (the ingest queue drops the oldest while this one works), so
//! the tracker sees them in capture order; cameras run side by side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use crate::app::App;
use crate::db::lock;
use crate::error::Error;
use crate::inference::Mode;
use crate::ingest::{CameraFrame, FrameSink};
use crate::passes::Passes;
use crate::vision::quality::QualityGate;

pub struct EngineSink {
    app: Arc<App>,
    /// One tracker and rule state per camera, made at its first frame.
    passes: Mutex<HashMap<String, Arc<Mutex<Passes>>>>,
}

impl EngineSink {
    pub fn new(app: Arc<App>) -> Self {
        Self { app, passes: Mutex::new(HashMap::new()) }
    }

    fn passes(&self, camera: &str) -> crate::Result<Arc<Mutex<Passes>>> {
        let mut all = lock(&self.passes);
        if let Some(p) = all.get(camera) {
            return Ok(p.clone());
        }
        let p = Arc::new(Mutex::new(self.app.passes(camera)?));
        all.insert(camera.to_string(), p.clone());
        Ok(p)
    }

    async fn handle(&self, camera: &str, frame: CameraFrame) -> crate::Result<()> {
        let passes = self.passes(camera)?;
        let read_at = frame.read_at;
        self.app.metrics.frames.inc(camera);
        let analysis = self.app.inference.analyse_image(frame.image, Mode::Track(QualityGate::default())).await?;
        let app = self.app.clone();
        let at = frame.captured_at_ms;
        let step = tokio::task::spawn_blocking(move || {
            let mut p = lock(&passes);
            p.step(at, &analysis, &mut |faces| app.embed_blocking(faces))
        })
        .await
        .map_err(|e| Error::Runtime(format!("camera frame task failed: {e}")))??;
        self.app.metrics.stage(crate::metrics::Stage::Camera).observe(read_at.elapsed());
        if !step.alerts.is_empty() {
            tracing::debug!(camera, alerts = step.alerts.len(), "camera frame decided passes");
        }
        Ok(())
    }
}

impl FrameSink for EngineSink {
    fn frame<'a>(&'a self, camera: &'a str, frame: CameraFrame) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let seq = frame.seq;
            match self.handle(camera, frame).await {
                Ok(()) => {}
                // A busy engine drops the frame (the next one is newer anyway): counted, not logged.
                Err(e @ (Error::Overloaded { .. } | Error::ShuttingDown)) => {
                    self.app.metrics.rejections.inc(crate::api::status(&e).1);
                }
                Err(e) => tracing::warn!(camera, seq, error = %e, "camera frame not analysed"),
            }
        })
    }
}
