//! Bodies being received are memory too. The frame budget (`memory_budget_mb`) counts a frame
//! once it is queued; before that its body is read into memory by the handler's extractor, and
//! every connection could hold `max_body_bytes`. This gate lets at most `max_concurrent_uploads`
//! frame and enrollment bodies be read at once (503 beyond, at once), each within
//! `max_body_bytes` as really read (not as `Content-Length` claims) and within a deadline, so a
//! slow sender cannot hold a slot for ever. Only authenticated callers get a slot.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use tokio::sync::Semaphore;

use super::{AppState, Auth};
use crate::error::Error;

/// How long one body may take to arrive (20 MB at about 1 MB/s).
const BODY_DEADLINE: Duration = Duration::from_secs(30);

pub struct UploadSlots {
    slots: Arc<Semaphore>,
}

impl UploadSlots {
    pub fn new(n: usize) -> Self {
        Self { slots: Arc::new(Semaphore::new(n.max(1))) }
    }
}

/// Middleware for the upload routes: authenticate, take a slot or answer 503, read the whole
/// body under the limit, give the slot back, then run the handler on the buffered body.
pub async fn gate(State(s): State<AppState>, _caller: Auth, req: Request, next: Next) -> Response {
    let c = &s.app.config;
    let Ok(slot) = s.uploads.slots.clone().try_acquire_owned() else {
        return refuse(&s, Error::Overloaded { queue: "uploads", retry_after_s: c.service.retry_after_secs });
    };
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(BODY_DEADLINE, read_limited(body, c.limits.max_body_bytes)).await;
    drop(slot);
    match read {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(e)) => refuse(&s, e),
        Err(_) => {
            refuse(&s, Error::BadRequest(format!("the body did not arrive within {} s", BODY_DEADLINE.as_secs())))
        }
    }
}

/// Counted like the handlers' own refusals (`facewatch_rejections_total` by reason).
fn refuse(s: &AppState, e: Error) -> Response {
    s.app.metrics.rejections.inc(super::error::status(&e).1);
    e.into_response()
}

/// The body, or `PayloadTooLarge` as soon as more than `limit` bytes have arrived.
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, Error> {
    let mut stream = body.into_data_stream();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::BadRequest(format!("reading the body: {e}")))?;
        len = len.saturating_add(chunk.len());
        if len > limit {
            return Err(Error::PayloadTooLarge { limit });
        }
        chunks.push(chunk);
    }
    Ok(match chunks.len() {
        1 => chunks.pop().unwrap_or_default(),
        _ => Bytes::from(chunks.concat()),
    })
}
