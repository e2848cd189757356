//! `GET /v1/cameras`: every configured camera's state, rates, drops and restarts (role `ops`).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{AppState, Auth};
use crate::error::Result;

pub async fn list(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<Value>> {
    let cameras = s.app.cameras.list(&who)?;
    Ok(Json(json!({ "cameras": cameras })))
}
