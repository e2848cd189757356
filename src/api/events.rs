//! `GET /v1/events?after=SEQ&limit=N`: the local outbox, in order (role `relay`). With no broker
//! configured this is how the central system collects events; with one it shows delivery state.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::{AppState, Auth, SeqPage};
use crate::auth::Role;
use crate::error::Result;

pub async fn after(
    State(s): State<AppState>,
    Auth(who): Auth,
    q: std::result::Result<Query<SeqPage>, QueryRejection>,
) -> Result<Json<Value>> {
    who.require(Role::Relay, "read events")?;
    let (after, limit) = SeqPage::parse(q)?;
    let events = s.blocking(move |c| c.events_after(after, limit)).await?;
    let next = events.last().and_then(|e| e["seq"].as_i64());
    Ok(Json(json!({"events": events, "next_after": next})))
}
