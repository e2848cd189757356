//! `POST /v1/cameras/{camera}/frames`: a JPEG or PNG frame in, face boxes and alert ids out
//! (with `camera_response = "full"`, also each face's quality and matches). A camera token
//! posts only as the cameras it is bound to.

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::rejection;
use super::{AppState, Auth};
use crate::access::{Action, Caller};
use crate::clock;
use crate::error::{Error, Result};
use crate::frames::FrameReport;
use crate::inference::Mode;
use crate::metrics::Stage;
use crate::vision::quality::QualityGate;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameQuery {
    /// When the camera captured the frame (RFC 3339); default: when it arrived.
    captured_at: Option<String>,
}

/// The image type a `Content-Type` header names, if it is one we decode.
pub fn image_type(headers: &HeaderMap) -> Result<&'static str> {
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "image/jpeg" | "image/jpg" => Ok("jpeg"),
        "image/png" => Ok("png"),
        "" => Err(Error::UnsupportedMediaType("none: send image/jpeg or image/png".into())),
        _ => Err(Error::UnsupportedMediaType(format!("{mime}: send image/jpeg or image/png"))),
    }
}

pub async fn post_frame(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(camera): Path<String>,
    query: std::result::Result<Query<FrameQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<Value>> {
    who.may(Action::PostFrames)?;
    let t = Instant::now();
    let res = frame(&s, who, &camera, query, &headers, body).await;
    match &res {
        Ok(_) => s.app.metrics.stage(Stage::Frame).observe(t.elapsed()),
        Err(e) => s.app.metrics.rejections.inc(super::error::status(e).1),
    }
    let report = res?;
    Ok(Json(if s.app.config.full_camera_response() { json!(report) } else { minimal(&report) }))
}

/// What a camera needs to know by default: where the faces are and which alerts it raised. No
/// list, subject, name or score: a stolen camera token learns nothing about the watch lists.
fn minimal(r: &FrameReport) -> Value {
    let faces: Vec<Value> = r
        .faces
        .iter()
        .map(|f| match f.track {
            Some(t) => json!({"bbox": f.bbox, "track": t}),
            None => json!({"bbox": f.bbox}),
        })
        .collect();
    json!({"camera": r.camera, "captured_at": r.captured_at, "faces": faces, "faces_skipped": r.faces_skipped,
        "alerts": r.alerts})
}

async fn frame(
    s: &AppState,
    who: Caller,
    camera: &str,
    query: std::result::Result<Query<FrameQuery>, axum::extract::rejection::QueryRejection>,
    headers: &HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<FrameReport> {
    // Before the body is read; the use case checks again.
    s.app.frames.authorize(&who, camera)?;
    let Query(q) = query.map_err(|e| Error::BadRequest(e.body_text()))?;
    let received = clock::now_ms();
    let captured_ms = match &q.captured_at {
        Some(t) => clock::parse_rfc3339(t)
            .ok_or_else(|| Error::BadRequest(format!("captured_at {t:?}: expected an RFC 3339 time")))?,
        None => received,
    };
    image_type(headers)?;
    let body = body.map_err(|e| rejection(e.status(), e.body_text(), s.body_limit()))?;
    if body.is_empty() {
        return Err(Error::EmptyInput);
    }
    // A push camera's frames are tracked, one at a time in capture order (`crate::push`).
    if let Some(turn) = s.app.push.turn(camera, captured_ms).await? {
        let analysis = s.app.inference.analyse(body, Mode::Track(QualityGate::default())).await?;
        return s.blocking(move |app| turn.step(app, &who, analysis)).await;
    }
    let analysis = s.app.inference.analyse(body, Mode::Live(QualityGate::default())).await?;
    let camera = camera.to_string();
    s.blocking(move |app| app.frames.process(&who, &camera, captured_ms, analysis)).await
}
