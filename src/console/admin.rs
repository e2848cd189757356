//! Admin pages: tokens (create: the secret is shown once, on the page the form redirects to, so
//! a reload neither shows it again nor creates another; revoke)
//! and the audit log, paged, with the chain's verification. Through the same services as
//! `/v1/tokens` and `/v1/audit`, so every change is audited as there.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use crate::access::{Action, NewToken, Role, TokenInfo};
use crate::api::AppState;
use crate::console::csrf::Checked;
use crate::console::{PageResult, Session, layout};
use crate::error::Error;

/// Audit entries per page.
const AUDIT_PAGE: usize = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(tokens))
        .route("/admin/tokens", post(create))
        .route("/admin/tokens/{id}/revoke", post(revoke))
        .route("/admin/audit", get(audit))
}

fn tokens_page(who: &Session, tokens: &[TokenInfo], created: Option<&NewToken>) -> Markup {
    html! {
        h1 { "Tokens" }
        p { a href="/admin/audit" { "Audit log" } }
        @if let Some(t) = created {
            section.created role="status" {
                h2 { "Token created for " (t.name) " (" (t.role.as_str()) ")" }
                p { "Copy it now: it is shown this once and stored only as its hash." }
                output #new-token { code { (t.token) } }
                p { "Principal " code { (t.principal) } }
            }
        }
        h2 { "New token" }
        form.token method="post" action="/admin/tokens" {
            (layout::csrf_field(who))
            label for="name" { "Name (who holds it)" }
            input #name name="name" required maxlength="128";
            label for="role" { "Role" }
            select #role name="role" {
                @for r in Role::ALL {
                    option value=(r.as_str()) { (r.as_str()) }
                }
            }
            label for="principal" { "Principal (an existing person's id; empty: a new person)" }
            input #principal name="principal" maxlength="128";
            label for="cameras" { "Cameras (camera tokens: ids separated by spaces)" }
            input #cameras name="cameras" maxlength="2000";
            button type="submit" { "Create token" }
        }
        h2 { "Tokens" }
        table.plain {
            thead { tr { th { "Id" } th { "Name" } th { "Role" } th { "Principal" } th { "Created" } th { "Cameras" } th { "State" } } }
            tbody {
                @for t in tokens {
                    tr {
                        td { (t.id) }
                        td { (t.name) }
                        td { (t.role.as_str()) }
                        td { code { (t.principal) } }
                        td { (crate::clock::rfc3339(t.created_at_ms)) }
                        td { (t.cameras.join(" ")) }
                        td {
                            @if t.revoked { "revoked" } @else {
                                form.revoke method="post" action=(format!("/admin/tokens/{}/revoke", t.id)) {
                                    (layout::csrf_field(who))
                                    button type="submit" aria-label=(format!("Revoke token {} ({})", t.id, t.name)) { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /admin`: the tokens and the form for a new one; above them, once, the token this
/// session just created.
async fn tokens(State(s): State<AppState>, who: Session) -> PageResult<Html<String>> {
    let caller = who.caller();
    let created = s.app.sessions.take_once(&who, crate::clock::now_ms());
    let list = s.blocking(move |a| a.access.tokens(&caller)).await?;
    let title = if created.is_some() { "Token created" } else { "Tokens" };
    Ok(Html(layout::page(title, Some(&who), tokens_page(&who, &list, created.as_ref())).into_string()))
}

#[derive(Deserialize)]
struct NewTokenForm {
    name: String,
    role: Role,
    #[serde(default)]
    principal: String,
    #[serde(default)]
    cameras: String,
}

/// `POST /admin/tokens`: creates the token, then sends the browser to `/admin`, which shows
/// the secret once (pages are not cached).
async fn create(
    State(s): State<AppState>,
    Checked { session: who, form }: Checked<NewTokenForm>,
) -> PageResult<Response> {
    let caller = who.caller();
    let new = s
        .blocking(move |a| {
            let principal = Some(form.principal.trim()).filter(|p| !p.is_empty());
            let cameras: Vec<String> = form.cameras.split_whitespace().map(str::to_string).collect();
            a.access.create_token(&caller, form.name.trim(), form.role, principal, &cameras)
        })
        .await?;
    s.app.sessions.show_once(&who, new, crate::clock::now_ms());
    Ok(Redirect::to("/admin").into_response())
}

/// `POST /admin/tokens/{id}/revoke`: revokes it (its sessions and streams end), back to the list.
async fn revoke(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Checked { session: who, .. }: Checked<Empty>,
) -> PageResult<Response> {
    let caller = who.caller();
    let id: i64 = id.parse().map_err(|_| Error::NotFound(format!("token {id}")))?;
    s.blocking(move |a| a.access.revoke_token(&caller, id)).await?;
    Ok(Redirect::to("/admin").into_response())
}

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
struct Empty {}

#[derive(Deserialize)]
struct AuditPage {
    after: Option<i64>,
}

/// `GET /admin/audit?after=SEQ`: the chain's verification, then a page of entries.
async fn audit(
    State(s): State<AppState>,
    who: Session,
    q: Result<Query<AuditPage>, QueryRejection>,
) -> PageResult<Html<String>> {
    let Query(q) = q.map_err(|e| Error::BadRequest(e.body_text()))?;
    let after = q.after.unwrap_or(0).max(0);
    let caller = who.caller();
    caller.may(Action::VerifyAudit)?;
    // A full scan: one at a time, as the API's (see ScanGate).
    let verification = {
        let _running = s.audit_scans.enter().await?;
        let c = caller.clone();
        s.blocking(move |a| a.audit.verify(&c)).await?
    };
    let entries = s.blocking(move |a| a.audit.entries(&caller, after, AUDIT_PAGE)).await?;
    let body = html! {
        h1 { "Audit log" }
        p { a href="/admin" { "Tokens" } }
        @if verification.ok {
            p.notice role="status" { "Chain verified: all " (verification.entries) " entries intact." }
        } @else {
            p.error role="alert" {
                "Chain BROKEN at entry " (verification.first_bad_seq.unwrap_or_default()) ": "
                (verification.problem.as_deref().unwrap_or("")) " (" (verification.entries) " entries read)."
            }
        }
        table.plain.audit {
            thead { tr { th { "#" } th { "When" } th { "Who" } th { "Role" } th { "Action" } th { "Target" } th { "Before" } th { "After" } } }
            tbody {
                @for e in &entries {
                    tr {
                        td { (e.seq) }
                        td { (crate::clock::rfc3339(e.at_ms)) }
                        td { (e.actor) }
                        td { (e.role) }
                        td { (e.action) }
                        td { (e.target) }
                        td { @if let Some(v) = &e.old { code { (v.to_string()) } } }
                        td { @if let Some(v) = &e.new { code { (v.to_string()) } } }
                    }
                }
            }
        }
        nav aria-label="Audit pages" {
            @if after > 0 { a href="/admin/audit" { "First page" } " " }
            @if entries.len() == AUDIT_PAGE {
                @if let Some(last) = entries.last() { a href=(format!("/admin/audit?after={}", last.seq)) { "Next page" } }
            }
        }
    };
    Ok(Html(layout::page("Audit log", Some(&who), body).into_string()))
}
