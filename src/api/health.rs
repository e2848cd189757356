//! Liveness, readiness, Prometheus metrics and the OpenAPI document (no token needed: they
//! carry no personal data).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;

/// The API description, kept beside the routes (a test checks they agree).
pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let core = s.core.clone();
    let r = tokio::task::spawn_blocking(move || core.readiness()).await.ok();
    match r {
        Some(r) if r.ready => (StatusCode::OK, Json(json!(r))),
        Some(r) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!(r))),
        None => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false}))),
    }
}

pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.core.render_metrics())
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
