//! `GET /v1/events?after=SEQ&limit=N`: the local outbox, in order (role `relay`). With no broker
//! configured this is how the central system collects events; with one it shows delivery state.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::{AppState, Auth, SeqPage};
use crate::access::Action;
use crate::error::Result;

pub async fn after(
    State(s): State<AppState>,
    Auth(who): Auth,
    q: std::result::Result<Query<SeqPage>, QueryRejection>,
) -> Result<Json<Value>> {
    who.may(Action::ReadEvents)?;
    let (after, limit) = SeqPage::parse(q)?;
    let events = s.blocking(move |a| a.outbox.after(&who, after, limit)).await?;
    let next = events.last().map(|e| e.seq);
    Ok(Json(json!({"events": events, "next_after": next})))
}
