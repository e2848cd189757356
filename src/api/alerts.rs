//! Alerts for officers: list, detail with the live crop beside the enrolled reference image,
//! review, and a Server-Sent Events stream of new and updated alerts (role `officer`).

use std::convert::Infallible;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::openapi::{
    BadRequest, Forbidden, ImageBytes, Internal, NotFound, PayloadTooLarge, TooManyStreams, Unauthorized,
    UnsupportedMediaType,
};
use super::{AppState, Auth, JsonBody};
use crate::access::Action;
use crate::alerts::{Alert, AlertEvent, AlertView, Decision, Filter};
use crate::error::{Error, Result};

/// An alert as officers see it: with links to its two images (the reference image's link only
/// while the template it was raised against and its image exist).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = OfficerAlert)]
pub struct Shown {
    #[serde(flatten)]
    alert: Alert,
    /// The live face crop (JPEG), until retention deletes it.
    crop_url: Option<String>,
    /// The enrolled reference image (JPEG) of the matched template, while it exists.
    reference_url: Option<String>,
}

fn view(v: AlertView) -> Shown {
    view_of(v.alert, v.has_reference)
}

fn view_of(alert: Alert, has_reference: bool) -> Shown {
    let crop_url = alert.has_crop.then(|| format!("/v1/alerts/{}/crop", alert.id));
    let reference_url = has_reference.then(|| format!("/v1/alerts/{}/reference", alert.id));
    Shown { alert, crop_url, reference_url }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertPage {
    alerts: Vec<Shown>,
    /// The `offset` of the next page; null when this page is empty.
    next_offset: Option<i64>,
}

const ID: &str = "The alert's id";

/// Alerts, newest first, one page
#[utoipa::path(
    get,
    path = "/v1/alerts",
    tag = "alerts",
    security(("bearer" = [])),
    extensions(("x-role" = json!("officer"))),
    params(Filter),
    responses((status = 200, description = "One page of alerts", body = AlertPage), BadRequest, Unauthorized, Forbidden, Internal)
)]
pub async fn list(
    State(s): State<AppState>,
    Auth(who): Auth,
    q: std::result::Result<Query<Filter>, QueryRejection>,
) -> Result<Json<AlertPage>> {
    who.may(Action::ReadAlerts)?;
    let Query(f) = q.map_err(|e| Error::BadRequest(e.body_text()))?;
    // Checked here too: the next page's offset is computed from it.
    let (_, offset) = f.page()?;
    let alerts: Vec<Shown> = s.blocking(move |a| Ok(a.alerts.list(&who, &f)?.into_iter().map(view).collect())).await?;
    let next_offset = (!alerts.is_empty()).then(|| offset.saturating_add(alerts.len() as i64));
    Ok(Json(AlertPage { alerts, next_offset }))
}

/// One alert, with links to its crop and the enrolled reference image
///
/// An officer's first view of an alert is audited.
#[utoipa::path(
    get,
    path = "/v1/alerts/{id}",
    tag = "alerts",
    security(("bearer" = [])),
    extensions(("x-role" = json!("officer"))),
    params(("id" = String, Path, description = ID)),
    responses((status = 200, description = "The alert", body = Shown), Unauthorized, Forbidden, NotFound, Internal)
)]
pub async fn get(State(s): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> Result<Json<Shown>> {
    Ok(Json(s.blocking(move |a| Ok(view(a.alerts.get(&who, &id)?))).await?))
}

/// A face image as served (API and console): JPEG, never cached.
pub(crate) fn jpeg(bytes: Vec<u8>) -> axum::response::Response {
    ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "no-store")], bytes).into_response()
}

/// The live face crop (JPEG), until retention deletes it
#[utoipa::path(
    get,
    path = "/v1/alerts/{id}/crop",
    tag = "alerts",
    security(("bearer" = [])),
    extensions(("x-role" = json!("officer"))),
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 200, description = "The crop (`Cache-Control: no-store`)", body = ImageBytes, content_type = "image/jpeg"),
        Unauthorized,
        Forbidden,
        NotFound,
        Internal,
    )
)]
pub async fn crop(State(s): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> Result<impl IntoResponse> {
    Ok(jpeg(s.blocking(move |a| a.alerts.crop_jpeg(&who, &id)).await?))
}

/// The enrolled reference image (JPEG) of the matched template
#[utoipa::path(
    get,
    path = "/v1/alerts/{id}/reference",
    tag = "alerts",
    security(("bearer" = [])),
    extensions(("x-role" = json!("officer"))),
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 200, description = "The image (`Cache-Control: no-store`)", body = ImageBytes, content_type = "image/jpeg"),
        Unauthorized,
        Forbidden,
        NotFound,
        Internal,
    )
)]
pub async fn reference(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    Ok(jpeg(s.blocking(move |a| a.alerts.reference_jpeg(&who, &id)).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    decision: Decision,
    #[schema(max_length = 2000)]
    note: Option<String>,
}

/// Confirm or dismiss an alert
///
/// `verified` once two different officers (principals) confirm; any officer may dismiss;
/// verified and dismissed are final (409). Audited; announced with `alert.reviewed` (and
/// `alert.verified`).
#[utoipa::path(
    post,
    path = "/v1/alerts/{id}/review",
    tag = "alerts",
    security(("bearer" = [])),
    extensions(("x-role" = json!("officer"))),
    params(("id" = String, Path, description = ID)),
    request_body = ReviewBody,
    responses(
        (status = 200, description = "The alert after the review", body = Shown),
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        (
            status = 409,
            description = "`conflict`: the alert is already final, this officer already confirmed it, or it \
                changed meanwhile",
            body = super::error::ErrorBody
        ),
        PayloadTooLarge,
        UnsupportedMediaType,
        Internal,
    )
)]
pub async fn review(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    body: JsonBody<ReviewBody>,
) -> Result<Json<Shown>> {
    who.may(Action::ReviewAlerts)?;
    let b = s.json(body)?;
    let v = s.blocking(move |a| a.alerts.review(&who, &id, b.decision, b.note.as_deref())).await?;
    Ok(Json(view(v)))
}

/// Server-Sent Events: new and reviewed alerts as they happen
///
/// Events `alert.created`, `alert.reviewed` and `alert.verified` (the outbox's names), each with
/// `data` = `{"kind", "alert"}`, the alert as `GET /v1/alerts/{id}` shows it (`OfficerAlert`),
/// and `id` = the alert's id. A stream that falls behind the buffer is sent `resync`
/// (`{"missed", "hint"}`: re-read `GET /v1/alerts`) instead of a silent gap. Ends at shutdown
/// and, within moments, when the caller's token is revoked. Streams are capped in all and per
/// token (`[api] sse_max_streams`, `sse_max_streams_per_token`: 429 beyond).
#[utoipa::path(
    get,
    path = "/v1/alerts/stream",
    tag = "alerts",
    security(("bearer" = [])),
    extensions(("x-role" = json!("officer"))),
    responses(
        (status = 200, description = "The event stream", body = String, content_type = "text/event-stream"),
        Unauthorized,
        Forbidden,
        TooManyStreams,
    )
)]
pub async fn stream(
    State(s): State<AppState>,
    Auth(who): Auth,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let token_id = who.principal().map(|p| p.token_id).unwrap_or(0);
    let feed = s.app.alerts.subscribe(&who)?;
    let slot = s.streams.acquire(token_id)?;
    let mut shutdown = s.shutdown.clone();
    let mut revocations = s.app.access.cache.revocations();
    let app = s.app.clone();
    let ended = async move {
        tokio::select! {
            _ = shutdown.recv() => {}
            _ = revocations.wait_for(|_| !app.access.cache.is_active(token_id)) => {}
        }
    };
    let events = alert_events(feed)
        // The slot is held for as long as the stream lives.
        .map(move |e| {
            let _held = &slot;
            Ok(e)
        })
        .take_until(ended);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The SSE events of a subscription: each alert event (as `view` shows it), or `resync` with how
/// many were missed when the subscriber fell behind the buffer (it re-reads them from
/// `GET /v1/alerts`).
/// The view is made from the event alone (whether the reference exists was looked up when the
/// event was announced, on the blocking pool): nothing here touches the store.
fn alert_events(rx: broadcast::Receiver<AlertEvent>) -> impl Stream<Item = Event> {
    BroadcastStream::new(rx).map(move |m| match m {
        Ok(ev) => {
            let id = ev.alert.id.clone();
            let data = json!({"kind": ev.kind, "alert": view_of(ev.alert, ev.has_reference)}).to_string();
            Event::default().event(ev.kind.as_str()).id(id).data(data)
        }
        Err(BroadcastStreamRecvError::Lagged(missed)) => {
            tracing::warn!(missed, "alert stream fell behind: resync sent");
            let hint = "events were missed: re-read GET /v1/alerts";
            Event::default().event("resync").data(json!({"missed": missed, "hint": hint}).to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Change, ModelId, ModelIds, Status};

    fn alert(id: &str) -> Alert {
        let models = ModelIds {
            detector: ModelId { name: "d".into(), sha256: String::new() },
            embedder: ModelId { name: "e".into(), sha256: String::new() },
        };
        Alert {
            captured_at: String::new(),
            list: "l".into(),
            models: Some(models),
            has_crop: false,
            ..Alert::test(id, Status::Open)
        }
    }

    /// A subscriber that falls behind a buffer of 2 gets `resync` with the count it missed,
    /// then the events still buffered: on the wire, as a client reads them.
    #[tokio::test]
    async fn a_subscriber_behind_the_buffer_is_told_to_resync() {
        let (tx, rx) = broadcast::channel(2);
        for i in 0..5 {
            tx.send(AlertEvent { kind: Change::Created, alert: alert(&format!("a{i}")), has_reference: false })
                .unwrap();
        }
        drop(tx);
        let stream = alert_events(rx).map(Ok::<_, Infallible>);
        let body = Sse::new(stream).into_response().into_body();
        let text = String::from_utf8(axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec()).unwrap();
        let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(events, ["resync", "alert.created", "alert.created"], "{text}");
        assert!(text.contains(r#""missed":3"#), "{text}");
        assert!(text.contains("id: a3") && text.contains("id: a4"), "{text}");
    }
}
