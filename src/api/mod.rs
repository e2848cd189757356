//! The HTTP API (versioned under `/v1`): a thin layer over [`Checkpoint`]. Handlers check the
//! caller's role, move blocking work to tokio's blocking pool and map errors in one place.

mod admin;
mod alerts;
mod error;
mod events;
mod frames;
mod health;
mod scan_gate;
mod stream_slots;
mod token_miss;
mod uploads;
mod watchlists;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::handler::Handler as _;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tokio::sync::watch;

use crate::auth::Principal;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};

pub use error::error_response;
pub use health::OPENAPI;

#[derive(Clone)]
pub struct AppState {
    pub core: Arc<Checkpoint>,
    /// Turns true when shutdown starts (ends live streams so the server can drain).
    pub shutdown: watch::Receiver<bool>,
    /// Open alert streams, capped in all and per token.
    pub streams: Arc<stream_slots::StreamSlots>,
    /// Audit verification (a full scan) runs one at a time.
    pub audit_scans: Arc<scan_gate::ScanGate>,
    /// Reloads the token cache when a well-formed token misses it (rate-limited).
    token_miss: Arc<token_miss::MissReload>,
    /// Frame and enrollment bodies being read, capped.
    uploads: Arc<uploads::UploadSlots>,
}

/// Requests that may wait for the running audit verification before more get 503.
const AUDIT_VERIFY_WAITING: usize = 8;

impl AppState {
    pub fn new(core: Arc<Checkpoint>, shutdown: watch::Receiver<bool>) -> Self {
        let c = &core.config;
        let streams = stream_slots::StreamSlots::new(c.api.sse_max_streams, c.api.sse_max_streams_per_token);
        let audit_scans =
            Arc::new(scan_gate::ScanGate::new("audit verification", AUDIT_VERIFY_WAITING, c.service.retry_after_secs));
        let uploads = Arc::new(uploads::UploadSlots::new(c.limits.max_concurrent_uploads));
        Self { core, shutdown, streams, audit_scans, token_miss: Arc::default(), uploads }
    }

    /// Runs store or index work on the blocking pool.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Checkpoint) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let core = self.core.clone();
        tokio::task::spawn_blocking(move || f(&core))
            .await
            .map_err(|e| Error::Runtime(format!("background task failed: {e}")))?
    }

    fn body_limit(&self) -> usize {
        self.core.config.limits.max_body_bytes
    }

    /// A JSON request body, or the documented error (400, 413 or 415) for a bad one.
    fn json<T>(&self, body: JsonBody<T>) -> Result<T> {
        body.map(|axum::Json(v)| v).map_err(|e| error::rejection(e.status(), e.body_text(), self.body_limit()))
    }
}

/// A JSON body as handlers receive it: the rejection is mapped by [`AppState::json`].
pub type JsonBody<T> = std::result::Result<axum::Json<T>, axum::extract::rejection::JsonRejection>;

/// `?after=SEQ&limit=N`: paging through an append-only log (audit entries, events).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeqPage {
    after: Option<i64>,
    limit: Option<usize>,
}

impl SeqPage {
    /// `(after, limit)`: after 0 and 100 entries by default, at most 1000.
    pub fn parse(
        q: std::result::Result<axum::extract::Query<SeqPage>, axum::extract::rejection::QueryRejection>,
    ) -> Result<(i64, usize)> {
        let axum::extract::Query(q) = q.map_err(|e| Error::BadRequest(e.body_text()))?;
        let limit = q.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(Error::BadRequest(format!("limit {limit}: expected 1..1000")));
        }
        Ok((q.after.unwrap_or(0), limit))
    }
}

/// The authenticated caller of a request (`Authorization: Bearer <token>`).
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(Error::Unauthorized)?;
        let token =
            header.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty()).ok_or(Error::Unauthorized)?;
        // From the in-memory token cache: no store access on the async runtime.
        match state.core.authenticate(token) {
            Err(Error::Unauthorized) if token_miss::well_formed(token) => {
                state.token_miss.reload(&state.core).await;
                Ok(Auth(state.core.authenticate(token)?))
            }
            r => Ok(Auth(r?)),
        }
    }
}

pub fn router(state: AppState) -> Router {
    let limit = state.body_limit();
    let upload_gate = axum::middleware::from_fn_with_state(state.clone(), uploads::gate);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/openapi.json", get(health::openapi))
        .route("/v1/cameras/{camera}/frames", post(frames::post_frame.layer(upload_gate.clone())))
        .route("/v1/lists", get(watchlists::lists).post(watchlists::create_list))
        .route("/v1/lists/{list}", get(watchlists::get_list).delete(watchlists::delete_list))
        .route("/v1/lists/{list}/policy", get(watchlists::get_policy).put(watchlists::put_policy))
        .route("/v1/lists/{list}/subjects", get(watchlists::subjects).post(watchlists::enroll.layer(upload_gate)))
        .route("/v1/lists/{list}/subjects/{subject}", get(watchlists::subject).delete(watchlists::delete_subject))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/alerts/stream", get(alerts::stream))
        .route("/v1/alerts/{id}", get(alerts::get))
        .route("/v1/alerts/{id}/crop", get(alerts::crop))
        .route("/v1/alerts/{id}/reference", get(alerts::reference))
        .route("/v1/alerts/{id}/review", post(alerts::review))
        .route("/v1/tokens", get(admin::tokens).post(admin::create_token))
        .route("/v1/tokens/{id}", delete(admin::revoke_token))
        .route("/v1/audit", get(admin::audit))
        .route("/v1/audit/verify", get(admin::verify_audit))
        .route("/v1/events", get(events::after))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(error::json_errors))
        .with_state(state)
}

async fn not_found() -> Response {
    Error::NotFound("no such route".into()).into_response()
}

async fn method_not_allowed() -> Response {
    error_response(405, "method_not_allowed", "method not allowed on this route")
}
