//! Cameras that post their frames and are tracked: a `[[cameras]]` entry with `url = "push:"`.
//! Each frame posted to `POST /v1/cameras/{camera}/frames` for such a camera goes through the
//! same tracker and pass decisions as a pulled camera's ([`Passes`]): one alert per person per
//! pass, embedding only the faces that can change a decision. Cameras not configured so keep
//! the frame rule ([`crate::frames`]).
//!
//! The tracker's filter runs forward in capture time, so a camera's frames are taken one at a
//! time (a frame waits for the one before it to be decided) and each must be captured after the
//! last one tracked: a frame captured at or before it (out of order, or sent too late) is
//! refused with 409 and changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::access::Caller;
use crate::app::App;
use crate::clock;
use crate::error::{Error, Result};
use crate::frames::{FaceReport, FaceStatus, FrameReport, MatchOutcome, Outcome};
use crate::inference::Analysis;
use crate::ingest::{CameraConfig, Source};
use crate::passes::Passes;

/// One push camera's tracking state.
#[derive(Default)]
pub struct PushCamera {
    /// Made at the camera's first frame.
    passes: Option<Passes>,
    /// Capture time of the last frame tracked.
    last_ms: Option<i64>,
}

/// The enabled push cameras of the configuration.
pub struct PushCameras {
    cameras: HashMap<String, Arc<Mutex<PushCamera>>>,
}

/// A push camera's turn: held from the order check until its frame is decided, so the
/// camera's frames reach the tracker one at a time, in capture order.
pub struct Turn {
    camera: String,
    captured_ms: i64,
    state: OwnedMutexGuard<PushCamera>,
}

impl PushCameras {
    pub fn new(cameras: &[CameraConfig]) -> Self {
        let cameras = cameras
            .iter()
            .filter(|c| c.enabled && c.source() == Ok(Source::Push))
            .map(|c| (c.id.clone(), Arc::new(Mutex::new(PushCamera::default()))))
            .collect();
        Self { cameras }
    }

    /// Whether `camera`'s posted frames are tracked.
    pub fn is_push(&self, camera: &str) -> bool {
        self.cameras.contains_key(camera)
    }

    /// Waits for `camera`'s previous frame to be decided, then admits a frame captured at
    /// `captured_ms` if it comes after the last one tracked (409 otherwise). `None`: not a
    /// push camera.
    pub async fn turn(&self, camera: &str, captured_ms: i64) -> Result<Option<Turn>> {
        let Some(cam) = self.cameras.get(camera) else { return Ok(None) };
        let state = cam.clone().lock_owned().await;
        if let Some(last) = state.last_ms
            && captured_ms <= last
        {
            return Err(Error::Conflict(format!(
                "camera {camera} is tracked: frames must come in capture order, and this one (captured_at {}) \
                 is not after the last one tracked ({})",
                clock::rfc3339(captured_ms),
                clock::rfc3339(last)
            )));
        }
        Ok(Some(Turn { camera: camera.to_string(), captured_ms, state }))
    }
}

impl Turn {
    /// Tracks the frame's faces (analysed as `Mode::Track`) and decides the passes; blocking
    /// (embedding, SQLite). The report lists every face with its track and the alerts this
    /// frame raised.
    pub fn step(mut self, app: &App, who: &Caller, a: Analysis) -> Result<FrameReport> {
        app.frames.authorize(who, &self.camera)?;
        // Configured camera ids only: a bounded set of series.
        app.metrics.frames.inc(&self.camera);
        let passes = match &mut self.state.passes {
            Some(p) => p,
            none => none.insert(app.passes(&self.camera)?),
        };
        let step = passes.step(self.captured_ms, &a, &mut |faces| app.embed_blocking(faces))?;
        // Tracked from now on, even if nothing was found: the tracker has moved to this time.
        self.state.last_ms = Some(self.captured_ms);
        let mut faces: Vec<FaceReport> = a
            .faces
            .iter()
            .zip(&step.tracks)
            .map(|(f, track)| FaceReport {
                bbox: f.detection.bbox,
                score: f.detection.score,
                quality: f.quality.into(),
                status: if f.accepted() { FaceStatus::NoMatch } else { FaceStatus::Rejected },
                rejections: f.rejections.iter().map(|r| r.to_string()).collect(),
                matches: Vec::new(),
                track: *track,
            })
            .collect();
        let mut created = Vec::new();
        for p in step.alerts {
            if p.created {
                created.push(p.alert_id.clone());
            }
            if let Some(face) = faces.get_mut(p.face) {
                face.status = FaceStatus::Match;
                face.matches.push(MatchOutcome {
                    list: p.list,
                    subject: p.subject,
                    name: p.name,
                    score: p.score,
                    threshold: p.threshold,
                    outcome: if p.created { Outcome::Alert } else { Outcome::Cooldown },
                    alert_id: Some(p.alert_id),
                });
            }
        }
        Ok(FrameReport {
            camera: self.camera.clone(),
            captured_at: clock::rfc3339(self.captured_ms),
            faces,
            faces_skipped: a.faces_skipped,
            alerts: created,
        })
    }
}
