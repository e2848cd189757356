//! Tokens and the audit log (role `admin`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::openapi::{
    BadRequest, Forbidden, Internal, PayloadTooLarge, Unauthorized, Unavailable, UnsupportedMediaType,
};
use super::{AppState, Auth, JsonBody, SeqPage};
use crate::access::{Action, NewToken, Role, TokenInfo};
use crate::audit::{Entry, Verification};
use crate::error::{Error, Result};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// Free text, 1-64 printable characters (shown to officers reviewing with it).
    name: String,
    role: Role,
    /// Give an existing person (principal id) another token; omitted = a new principal. The
    /// two-officer rule compares principals, not names.
    #[schema(pattern = "^[A-Za-z0-9._@-]{1,64}$")]
    principal: Option<String>,
    /// The camera ids a camera token may post as: 1-256 for role `camera`, none for the others.
    #[serde(default)]
    #[schema(max_items = 256)]
    cameras: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenInfo>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// The token's id.
    revoked: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    entries: Vec<Entry>,
    /// The `after` of the next page (the last entry's `seq`); null when this page is empty.
    next_after: Option<i64>,
}

/// Create a token; its secret is in this answer only
///
/// Only the token's SHA-256 is stored. Audited.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "admin",
    security(("bearer" = [])),
    extensions(("x-role" = json!("admin"))),
    request_body = NewTokenBody,
    responses(
        (status = 201, description = "Created", body = NewToken),
        BadRequest,
        Unauthorized,
        Forbidden,
        PayloadTooLarge,
        UnsupportedMediaType,
        Internal,
    )
)]
pub async fn create_token(
    State(s): State<AppState>,
    Auth(who): Auth,
    body: JsonBody<NewTokenBody>,
) -> Result<(StatusCode, Json<NewToken>)> {
    who.may(Action::CreateTokens)?;
    let b = s.json(body)?;
    let t =
        s.blocking(move |a| a.access.create_token(&who, &b.name, b.role, b.principal.as_deref(), &b.cameras)).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

/// Tokens (never their secrets)
#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "admin",
    security(("bearer" = [])),
    extensions(("x-role" = json!("admin"))),
    responses((status = 200, description = "Every token, revoked ones too", body = TokenList), Unauthorized, Forbidden, Internal)
)]
pub async fn tokens(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<TokenList>> {
    Ok(Json(TokenList { tokens: s.blocking(move |a| a.access.tokens(&who)).await? }))
}

/// Revoke a token
///
/// Takes effect at once; its open alert streams end. Audited.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    tag = "admin",
    security(("bearer" = [])),
    extensions(("x-role" = json!("admin"))),
    params(("id" = i64, Path, description = "The token's id (not its secret)")),
    responses(
        (status = 200, description = "Revoked", body = Revoked),
        Unauthorized,
        Forbidden,
        (status = 404, description = "`not_found`: no active token of that id", body = super::error::ErrorBody),
        Internal,
    )
)]
pub async fn revoke_token(State(s): State<AppState>, Auth(who): Auth, Path(id): Path<String>) -> Result<Json<Revoked>> {
    who.may(Action::RevokeTokens)?;
    let id: i64 = id.parse().map_err(|_| Error::NotFound(format!("token {id}")))?;
    s.blocking(move |a| a.access.revoke_token(&who, id)).await?;
    Ok(Json(Revoked { revoked: id }))
}

/// Audit log entries after a sequence number, oldest first
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "admin",
    security(("bearer" = [])),
    extensions(("x-role" = json!("admin"))),
    params(SeqPage),
    responses((status = 200, description = "One page of entries", body = AuditPage), BadRequest, Unauthorized, Forbidden, Internal)
)]
pub async fn audit(
    State(s): State<AppState>,
    Auth(who): Auth,
    q: std::result::Result<Query<SeqPage>, QueryRejection>,
) -> Result<Json<AuditPage>> {
    who.may(Action::ReadAudit)?;
    let (after, limit) = SeqPage::parse(q)?;
    let entries = s.blocking(move |a| a.audit.entries(&who, after, limit)).await?;
    let next_after = entries.last().map(|e| e.seq);
    Ok(Json(AuditPage { entries, next_after }))
}

/// Check the audit log's hash chain
///
/// A full scan: one runs at a time, a few more wait in line (503 with `Retry-After` beyond).
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "admin",
    security(("bearer" = [])),
    extensions(("x-role" = json!("admin"))),
    responses((status = 200, description = "The verdict (`ok` false: the first bad entry)", body = Verification), Unauthorized, Forbidden, Internal, Unavailable)
)]
pub async fn verify_audit(State(s): State<AppState>, Auth(who): Auth) -> Result<Json<Verification>> {
    who.may(Action::VerifyAudit)?;
    // A full scan: one at a time, on a connection of its own (see ScanGate).
    let _running = s.audit_scans.enter().await?;
    Ok(Json(s.blocking(move |a| a.audit.verify(&who)).await?))
}
