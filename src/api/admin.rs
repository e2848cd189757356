//! Tokens and the audit log (role `admin`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Auth, JsonBody, SeqPage};
use crate::access::{Action, Role};
use crate::error::{Error, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    name: String,
    role: Role,
    /// Give an existing person (principal id) another token; omitted = a new principal.
    principal: Option<String>,
    /// The camera ids a camera token may post as (required for role `camera`, else empty).
    #[serde(default)]
    cameras: Vec<String>,
}

pub async fn create_token(
    State(s): State<AppState>,
    Auth(who): Auth,
    body: JsonBody<NewTokenBody>,
) -> Result<(StatusCode, Json<Value>)> {
    who.may(Action::CreateTokens)?;
    let b = s.json(body)?;
    let t =
        s.blocking(move |a| a.access.create_token(&who, &b.name, b.role, b.principal.as_deref(), &b.cameras)).await?;
    Ok((StatusCode::CREATED, Json(json!(t))))
}

pub async fn tokens(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<Value>> {
    Ok(Json(json!({"tokens": s.blocking(move |a| a.access.tokens(&who)).await?})))
}

pub async fn revoke_token(State(s): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> Result<Json<Value>> {
    who.may(Action::RevokeTokens)?;
    let id: i64 = id.parse().map_err(|_| Error::NotFound(format!("token {id}")))?;
    s.blocking(move |a| a.access.revoke_token(&who, id)).await?;
    Ok(Json(json!({"revoked": id})))
}

pub async fn audit(
    State(s): State<AppState>,
    Auth(who): Auth,
    q: std::result::Result<Query<SeqPage>, QueryRejection>,
) -> Result<Json<Value>> {
    who.may(Action::ReadAudit)?;
    let (after, limit) = SeqPage::parse(q)?;
    let entries = s.blocking(move |a| a.audit.entries(&who, after, limit)).await?;
    let next = entries.last().map(|e| e.seq);
    Ok(Json(json!({"entries": entries, "next_after": next})))
}

pub async fn verify_audit(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<Value>> {
    who.may(Action::VerifyAudit)?;
    // A full scan: one at a time, on a connection of its own (see ScanGate).
    let _running = s.audit_scans.enter().await?;
    Ok(Json(json!(s.blocking(move |a| a.audit.verify(&who)).await?)))
}
