//! `GET /v1/events?after=SEQ&limit=N`: the local outbox, in order (role `relay`). With no broker
//! configured this is how the central system collects events; with one it shows delivery state.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Auth};
use crate::auth::Role;
use crate::error::{Error, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    after: Option<i64>,
    limit: Option<usize>,
}

pub async fn after(
    State(s): State<AppState>,
    Auth(who): Auth,
    q: std::result::Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    who.require(Role::Relay, "read events")?;
    let Query(q) = q.map_err(|e| Error::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::BadRequest(format!("limit {limit}: expected 1..1000")));
    }
    let events = s.blocking(move |c| c.events_after(q.after.unwrap_or(0), limit)).await?;
    let next = events.last().and_then(|e| e["seq"].as_i64());
    Ok(Json(json!({"events": events, "next_after": next})))
}
