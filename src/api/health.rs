//! Liveness, readiness, Prometheus metrics and the OpenAPI document (no token needed: they
//! carry no personal data).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;

use super::AppState;
use crate::readiness::Readiness;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    status: &'static str,
}

/// Liveness: the process answers
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: models loaded, index loaded, store writable
///
/// From state kept by the writers and a background store probe: no store access per call.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: the checks say which part is not", body = Readiness),
    )
)]
pub async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let r = s.app.readiness();
    let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(r))
}

/// Prometheus metrics
///
/// OpenMetrics text written by the `prometheus-client` crate: counters, plus the outbox gauges
/// read off the store locks (coalesced between scrapers).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((
        status = 200,
        description = "The metrics",
        body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"
    ))
)]
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let outbox = s.app.outbox_gauges().await;
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.app.render_metrics(outbox),
    )
}

/// This document (OpenAPI 3.1)
///
/// Generated from the handlers and the types they serialise; also printed by `facewatch openapi`.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "health",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::openapi::json())
}
