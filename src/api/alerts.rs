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
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};

/// An alert as officers see it: with links to its two images (the reference image's link only
/// while the template it was raised against and its image exist, see `Checkpoint::reference`).
fn view(core: &Checkpoint, a: &Alert) -> Value {
    let mut v = json!(a);
    if let Value::Object(m) = &mut v {
        let crop = a.has_crop.then(|| format!("/v1/alerts/{}/crop", a.id));
        let has_reference = core.reference(a).unwrap_or_else(|e| {
            tracing::warn!(alert = %a.id, error = %e, "reference image lookup failed");
            None
        });
        let reference = has_reference.map(|_| format!("/v1/alerts/{}/reference", a.id));
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
    let offset = f.offset.unwrap_or(0);
    let views: Vec<Value> = s.blocking(move |c| Ok(c.alerts(&f)?.iter().map(|a| view(c, a)).collect())).await?;
    let n = views.len();
    Ok(Json(json!({"alerts": views, "next_offset": if n == 0 { None } else { Some(offset + n) }})))
}

pub async fn get(State(s): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> Result<Json<Value>> {
    who.require(Role::Officer, "read alerts")?;
    Ok(Json(s.blocking(move |c| Ok(view(c, &c.alert(&id)?))).await?))
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
    let (path, a) = s.blocking(move |c| c.alert(&id).and_then(|a| Ok((c.reference(&a)?, a)))).await?;
    let what = format!("reference image of alert {}", a.id);
    // Never another template's image: 404 once the template or its image is gone.
    let path = path.ok_or_else(|| Error::NotFound(format!("{what} (subject deleted or retention expired)")))?;
    jpeg(path, what).await
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
    let v = s.blocking(move |c| Ok(view(c, &c.review(&id, &who, b.decision, b.note.as_deref())?))).await?;
    Ok(Json(v))
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
    let core = s.core.clone();
    let events = BroadcastStream::new(s.core.subscribe())
        // A client too slow for the buffer misses events; it can re-read them from /v1/alerts.
        .filter_map(|m| async move { m.ok() })
        .map(move |ev| {
            let data = json!({"kind": ev.kind, "alert": view(&core, &ev.alert)}).to_string();
            Ok(Event::default().event(ev.kind).id(ev.alert.id.clone()).data(data))
        })
        .take_until(ended);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
