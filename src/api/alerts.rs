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
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::wrappers::BroadcastStream;

use super::{AppState, Auth, JsonBody};
use crate::alert::{Alert, Decision, Filter};
use crate::auth::Role;
use crate::error::{Error, Result};
use crate::media::Media;

/// An alert as officers see it: with links to its two images (the reference image's link only
/// while retention has left it on disk).
fn view(media: &Media, a: &Alert) -> Value {
    let mut v = json!(a);
    if let Value::Object(m) = &mut v {
        let crop = a.has_crop.then(|| format!("/v1/alerts/{}/crop", a.id));
        let reference = media.reference_path(a.template_id).exists().then(|| format!("/v1/alerts/{}/reference", a.id));
        m.insert("crop_url".into(), json!(crop));
        m.insert("reference_url".into(), json!(reference));
    }
    v
}

pub async fn list(
    State(s): State<AppState>,
    Auth(who): Auth,
    q: std::result::Result<Query<Filter>, QueryRejection>,
) -> Result<Json<Value>> {
    who.require(Role::Officer, "read alerts")?;
    let Query(f) = q.map_err(|e| Error::BadRequest(e.body_text()))?;
    // Checked here too: the next page's offset is computed from it.
    let (_, offset) = f.page()?;
    let alerts = s.blocking(move |c| c.alerts(&f)).await?;
    let next_offset = (!alerts.is_empty()).then(|| offset.saturating_add(alerts.len() as i64));
    let views: Vec<Value> = alerts.iter().map(|a| view(&s.core.media, a)).collect();
    Ok(Json(json!({"alerts": views, "next_offset": next_offset})))
}

pub async fn get(State(s): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> Result<Json<Value>> {
    who.require(Role::Officer, "read alerts")?;
    let a = s.blocking(move |c| c.alert(&id)).await?;
    Ok(Json(view(&s.core.media, &a)))
}

async fn jpeg(path: std::path::PathBuf, what: String) -> Result<impl IntoResponse> {
    let bytes = tokio::fs::read(&path).await.map_err(|_| Error::NotFound(what))?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "no-store")], bytes))
}

pub async fn crop(State(s): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> Result<impl IntoResponse> {
    who.require(Role::Officer, "read alerts")?;
    let a = s.blocking(move |c| c.alert(&id)).await?;
    if !a.has_crop {
        return Err(Error::NotFound(format!("crop of alert {} (deleted by retention)", a.id)));
    }
    jpeg(s.core.media.crop_path(&a.id), format!("crop of alert {}", a.id)).await
}

pub async fn reference(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    who.require(Role::Officer, "read alerts")?;
    let a = s.blocking(move |c| c.alert(&id)).await?;
    jpeg(s.core.media.reference_path(a.template_id), format!("reference image of alert {}", a.id)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    decision: Decision,
    note: Option<String>,
}

pub async fn review(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    body: JsonBody<ReviewBody>,
) -> Result<Json<Value>> {
    who.require(Role::Officer, "review alerts")?;
    let b = s.json(body)?;
    let a = s.blocking(move |c| c.review(&id, &who, b.decision, b.note.as_deref())).await?;
    Ok(Json(view(&s.core.media, &a)))
}

/// `alert.created` and `alert.updated` events, each carrying the alert; ends at shutdown.
pub async fn stream(
    State(s): State<AppState>,
    Auth(who): Auth,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    who.require(Role::Officer, "watch alerts")?;
    let mut shutdown = s.shutdown.clone();
    let ended = async move {
        let _ = shutdown.wait_for(|down| *down).await;
    };
    let media = s.core.media.clone();
    let events = BroadcastStream::new(s.core.subscribe())
        // A client too slow for the buffer misses events; it can re-read them from /v1/alerts.
        .filter_map(|m| async move { m.ok() })
        .map(move |ev| {
            let data = json!({"kind": ev.kind, "alert": view(&media, &ev.alert)}).to_string();
            Ok(Event::default().event(ev.kind).id(ev.alert.id.clone()).data(data))
        })
        .take_until(ended);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
