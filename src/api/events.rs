//! `GET /v1/events?after=SEQ&limit=N`: the local outbox, in order (role `relay`). With no broker
//! configured this is how the central system collects events; with one it shows delivery state.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Serialize;

use super::openapi::{BadRequest, Forbidden, Internal, Unauthorized};
use super::{AppState, Auth, SeqPage};
use crate::access::Action;
use crate::error::Result;
use crate::events::local::OutboxEntry;

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    events: Vec<OutboxEntry>,
    /// The `after` of the next page (the last event's `seq`); null when this page is empty.
    next_after: Option<i64>,
}

/// The local event outbox after a sequence number, in order, with delivery state
///
/// Each event's envelope is `schemas/event.v1.json`; kept for `[events] retention_days`.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    security(("bearer" = [])),
    extensions(("x-role" = json!("relay"))),
    params(SeqPage),
    responses((status = 200, description = "One page of events", body = EventPage), BadRequest, Unauthorized, Forbidden, Internal)
)]
pub async fn after(
    State(s): State<AppState>,
    Auth(who): Auth,
    q: std::result::Result<Query<SeqPage>, QueryRejection>,
) -> Result<Json<EventPage>> {
    who.may(Action::ReadEvents)?;
    let (after, limit) = SeqPage::parse(q)?;
    let events = s.blocking(move |a| a.outbox.after(&who, after, limit)).await?;
    let next_after = events.last().map(|e| e.seq);
    Ok(Json(EventPage { events, next_after }))
}
