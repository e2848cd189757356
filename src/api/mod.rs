//! The HTTP API (versioned under `/v1`): a thin layer over the services of [`App`]. Handlers
//! parse requests, call one use case (which checks what the caller may do), move blocking work
//! to tokio's blocking pool, and map errors to statuses in one place ([`error`]).

mod admin;
pub(crate) mod alerts;
mod cameras;
mod error;
mod events;
mod frames;
mod health;
mod openapi;
mod scan_gate;
mod stream_slots;
mod uploads;
mod watchlists;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi as _;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter, UtoipaMethodRouterExt as _};
use utoipa_axum::routes;

use crate::access::miss::{self as token_miss, MissReload};
use crate::access::{Action, Caller};
use crate::app::App;
use crate::error::{Error, Result};
use crate::shutdown::Shutdown;

pub use error::{error_response, rejection, status};

/// The API's OpenAPI document (JSON), generated from the routes and the handlers' types; built
/// once. Served at `GET /v1/openapi.json`, printed by `facewatch openapi`.
pub fn openapi_json() -> &'static str {
    openapi::json()
}

#[derive(Clone)]
pub struct AppState {
    pub app: Arc<App>,
    /// Fires when shutdown starts (ends live streams so the server can drain).
    pub shutdown: Shutdown,
    /// Open alert streams, capped in all and per token.
    pub streams: Arc<stream_slots::StreamSlots>,
    /// Audit verification (a full scan) runs one at a time.
    pub audit_scans: Arc<scan_gate::ScanGate>,
    /// Reloads the token cache when a well-formed token misses it (rate-limited).
    token_miss: Arc<MissReload>,
    /// Frame and enrollment bodies being read, capped.
    uploads: Arc<uploads::UploadSlots>,
}

/// Requests that may wait for the running audit verification before more get 503.
const AUDIT_VERIFY_WAITING: usize = 8;

impl AppState {
    pub fn new(app: Arc<App>, shutdown: Shutdown) -> Self {
        let c = &app.config;
        let streams = stream_slots::StreamSlots::new(c.api.sse_max_streams, c.api.sse_max_streams_per_token);
        let audit_scans =
            Arc::new(scan_gate::ScanGate::new("audit verification", AUDIT_VERIFY_WAITING, c.service.retry_after_secs));
        let uploads = Arc::new(uploads::UploadSlots::new(c.limits.max_concurrent_uploads));
        Self { app, shutdown, streams, audit_scans, token_miss: Arc::default(), uploads }
    }

    /// Runs store or index work on the blocking pool.
    pub async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&App) -> Result<T> + Send + 'static) -> Result<T> {
        let app = self.app.clone();
        tokio::task::spawn_blocking(move || f(&app))
            .await
            .map_err(|e| Error::Runtime(format!("background task failed: {e}")))?
    }

    fn body_limit(&self) -> usize {
        self.app.config.limits.max_body_bytes
    }

    /// A JSON request body, or the documented error (400, 413 or 415) for a bad one.
    fn json<T>(&self, body: JsonBody<T>) -> Result<T> {
        body.map(|axum::Json(v)| v).map_err(|e| error::rejection(e.status(), e.body_text(), self.body_limit()))
    }
}

/// A JSON body as handlers receive it: the rejection is mapped by [`AppState::json`].
pub type JsonBody<T> = std::result::Result<axum::Json<T>, axum::extract::rejection::JsonRejection>;

/// `?after=SEQ&limit=N`: paging through an append-only log (audit entries, events).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeqPage {
    /// Entries after this sequence number (default 0: from the first).
    after: Option<i64>,
    /// At most this many: 1..1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
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
pub struct Auth(pub Caller);

impl Auth {
    /// The token's id (every API caller has a token).
    pub fn token_id(&self) -> i64 {
        self.0.principal().map(|p| p.token_id).unwrap_or(0)
    }

    /// Refuses early, before a large body is read, what the core would refuse after it.
    pub fn may(&self, action: Action) -> Result<()> {
        self.0.may(action)
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(Error::Unauthorized)?;
        let token =
            header.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty()).ok_or(Error::Unauthorized)?;
        Ok(Auth(Caller::Token(authenticate(state, token).await?)))
    }
}

/// The holder of a token, from the in-memory token cache (no store access on the async
/// runtime); a well-formed miss reloads the cache first (rate-limited). The console's sign-in
/// checks tokens here too.
pub async fn authenticate(state: &AppState, token: &str) -> Result<crate::access::Principal> {
    let access = &state.app.access;
    match access.authenticate(token) {
        Err(Error::Unauthorized) if token_miss::well_formed(token) => {
            state.token_miss.reload(access).await;
            access.authenticate(token)
        }
        r => r,
    }
}

/// Every route of the API, each registered together with its document entry (its handler's
/// `#[utoipa::path]`): a route cannot be served undocumented nor documented unserved. `upload`
/// wraps the two upload routes (the upload gate; the document does not change).
fn routes(upload: impl Fn(UtoipaMethodRouter<AppState>) -> UtoipaMethodRouter<AppState>) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(health::openapi))
        .routes(routes!(cameras::list))
        .routes(upload(routes!(frames::post_frame)))
        .routes(routes!(watchlists::lists, watchlists::create_list))
        .routes(routes!(watchlists::get_list, watchlists::delete_list))
        .routes(routes!(watchlists::get_policy, watchlists::put_policy))
        .routes(routes!(watchlists::subjects))
        .routes(upload(routes!(watchlists::enroll)))
        .routes(routes!(watchlists::subject, watchlists::delete_subject))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::stream))
        .routes(routes!(alerts::get))
        .routes(routes!(alerts::crop))
        .routes(routes!(alerts::reference))
        .routes(routes!(alerts::review))
        .routes(routes!(admin::tokens, admin::create_token))
        .routes(routes!(admin::revoke_token))
        .routes(routes!(admin::audit))
        .routes(routes!(admin::verify_audit))
        .routes(routes!(events::after))
}

pub fn router(state: AppState) -> Router {
    let limit = state.body_limit();
    let upload_gate = axum::middleware::from_fn_with_state(state.clone(), uploads::gate);
    // A route layer: a method the route does not serve still gets 405, not the gate's 401.
    let (api, _) = routes(|r| r.map(|m| m.route_layer(upload_gate.clone()))).split_for_parts();
    api.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(error::json_errors))
        // The console answers in HTML, with its own headers and body limit (after the layers
        // above, so that they stay the API's alone).
        .merge(crate::console::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::console::roles::guard))
        .layer(axum::middleware::from_fn(request_span))
        .with_state(state)
}

/// Every request runs in a `request` span (method, route): the model threads enter it for the
/// jobs the request submits, so a frame's logs from decode to embedding carry its request.
async fn request_span(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument as _;
    let route = req.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
    let span = tracing::info_span!("request", method = %req.method(), route = route.as_deref().unwrap_or("-"));
    next.run(req).instrument(span).await
}

async fn not_found() -> Response {
    Error::NotFound("no such route".into()).into_response()
}

async fn method_not_allowed() -> Response {
    error_response(405, "method_not_allowed", "method not allowed on this route")
}
