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

/// From state kept by the writers and a background store probe: no store access per call.
pub async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let r = s.app.readiness();
    let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!(r)))
}

/// Counters, plus the outbox gauges read off the store locks (coalesced between scrapers).
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let outbox = s.app.outbox_gauges().await;
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.app.render_metrics(outbox),
    )
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
