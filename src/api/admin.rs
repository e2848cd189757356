//! Tokens and the audit log (role `admin`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Auth, JsonBody, SeqPage};
use crate::auth::Role;
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
    who.require(Role::Admin, "create tokens")?;
    let b = s.json(body)?;
    let by = who.actor();
    let t = s.blocking(move |c| c.create_token(&b.name, b.role, b.principal.as_deref(), &b.cameras, &by)).await?;
    Ok((StatusCode::CREATED, Json(json!(t))))
}

pub async fn tokens(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<Value>> {
    who.require(Role::Admin, "list tokens")?;
    Ok(Json(json!({"tokens": s.blocking(|c| c.tokens()).await?})))
}

pub async fn revoke_token(State(s): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> Result<Json<Value>> {
    who.require(Role::Admin, "revoke tokens")?;
    let id: i64 = id.parse().map_err(|_| Error::NotFound(format!("token {id}")))?;
    let by = who.actor();
    s.blocking(move |c| c.revoke_token(id, &by)).await?;
    Ok(Json(json!({"revoked": id})))
}

pub async fn audit(
    State(s): State<AppState>,
    Auth(who): Auth,
    q: std::result::Result<Query<SeqPage>, QueryRejection>,
) -> Result<Json<Value>> {
    who.require(Role::Admin, "read the audit log")?;
    let (after, limit) = SeqPage::parse(q)?;
    let entries = s.blocking(move |c| c.audit(after, limit)).await?;
    let next = entries.last().map(|e| e.seq);
    Ok(Json(json!({"entries": entries, "next_after": next})))
}

pub async fn verify_audit(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<Value>> {
    who.require(Role::Admin, "verify the audit log")?;
    // A full scan: one at a time, on a connection of its own (see ScanGate).
    let _running = s.audit_scans.enter().await?;
    Ok(Json(json!(s.blocking(|c| c.verify_audit()).await?)))
}
