//! `GET /v1/cameras`: every configured camera's state, rates, drops and restarts (role `ops`).

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::openapi::{Forbidden, Unauthorized};
use super::{AppState, Auth};
use crate::error::Result;
use crate::ingest::CameraView;

#[derive(Serialize, utoipa::ToSchema)]
pub struct CameraList {
    cameras: Vec<CameraView>,
}

/// Every configured camera (`[[cameras]]`)
///
/// Id, url (credentials redacted), source, state (starting, up, down with its reason, disabled),
/// last frame age, fps in and out, frames read, dropped (oldest first) and handed on, queue,
/// restarts by reason, frame size.
#[utoipa::path(
    get,
    path = "/v1/cameras",
    tag = "cameras",
    security(("bearer" = [])),
    extensions(("x-role" = json!("ops"))),
    responses((status = 200, description = "Every configured camera", body = CameraList), Unauthorized, Forbidden)
)]
pub async fn list(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<CameraList>> {
    let cameras = s.app.cameras.list(&who)?;
    Ok(Json(CameraList { cameras }))
}
