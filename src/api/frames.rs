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
use serde::{Deserialize, Serialize};

use super::error::rejection;
use super::openapi::{
    BadRequest, CorruptImage, Forbidden, ImageBytes, ImageTooLarge, Internal, Unauthorized, Unavailable,
    UnsupportedMediaType,
};
use super::{AppState, Auth};
use crate::access::{Action, Caller};
use crate::clock;
use crate::error::{Error, Result};
use crate::frames::FrameReport;
use crate::inference::Mode;
use crate::metrics::Stage;
use crate::vision::quality::QualityGate;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FrameQuery {
    /// When the camera captured the frame (RFC 3339); default: when it arrived.
    captured_at: Option<String>,
}

/// A frame's answer: `FrameSummary` by default, `FrameReport` with `[api] camera_response = "full"`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FrameAnswer {
    Summary(FrameSummary),
    Full(FrameReport),
}

/// What a camera needs to know by default: where the faces are and which alerts it raised. No
/// list, subject, name or score: a stolen camera token learns nothing about the watch lists.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FrameSummary {
    camera: String,
    /// RFC 3339.
    captured_at: String,
    faces: Vec<FaceBox>,
    /// Faces beyond `max_faces_per_frame` (the smallest), not analysed.
    faces_skipped: usize,
    /// Alerts created by this frame.
    alerts: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FaceBox {
    /// `[x, y, width, height]` in frame pixels.
    bbox: [f32; 4],
    /// A push (tracked) camera's frame: the face's track, once it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    track: Option<u64>,
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

/// Analyse a frame: face boxes and the alerts it raised
///
/// A camera token posts only as the cameras it is bound to (else 403). By default each face is
/// only its box (and track); with `[api] camera_response = "full"` the answer is the full report
/// (quality, status, matches). A push camera (`[[cameras]] url = "push:"`) is tracked: each face
/// carries its track id, alerts are raised once per person per pass, and a frame captured at or
/// before the last one tracked is refused with 409. Uploads are read one body at a time per slot
/// (`[limits] max_concurrent_uploads`, 503 beyond).
#[utoipa::path(
    post,
    path = "/v1/cameras/{camera}/frames",
    tag = "frames",
    security(("bearer" = [])),
    extensions(("x-role" = json!("camera"))),
    params(("camera" = String, Path, description = "Camera id: 1-64 of `A-Z a-z 0-9 - _ .`"), FrameQuery),
    request_body(
        description = "The frame: a JPEG or PNG image",
        content((ImageBytes = "image/jpeg"), (ImageBytes = "image/png")),
    ),
    responses(
        (status = 200, description = "The faces found and the alerts raised", body = FrameAnswer),
        BadRequest,
        Unauthorized,
        Forbidden,
        (
            status = 409,
            description = "`conflict`: a push camera's frame captured at or before the last one tracked",
            body = super::error::ErrorBody
        ),
        ImageTooLarge,
        UnsupportedMediaType,
        CorruptImage,
        Internal,
        Unavailable,
    )
)]
pub async fn post_frame(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(camera): Path<String>,
    query: std::result::Result<Query<FrameQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<FrameAnswer>> {
    who.may(Action::PostFrames)?;
    let t = Instant::now();
    let res = frame(&s, who, &camera, query, &headers, body).await;
    match &res {
        Ok(_) => s.app.metrics.stage(Stage::Frame).observe(t.elapsed()),
        Err(e) => s.app.metrics.rejections.inc(super::error::status(e).1),
    }
    let report = res?;
    Ok(Json(if s.app.config.full_camera_response() { FrameAnswer::Full(report) } else { summary(report) }))
}

fn summary(r: FrameReport) -> FrameAnswer {
    let faces = r.faces.iter().map(|f| FaceBox { bbox: f.bbox, track: f.track }).collect();
    FrameAnswer::Summary(FrameSummary {
        camera: r.camera,
        captured_at: r.captured_at,
        faces,
        faces_skipped: r.faces_skipped,
        alerts: r.alerts,
    })
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
