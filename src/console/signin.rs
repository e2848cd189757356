//! Sign-in and sign-out. A token (typed, or scanned from a badge: a scanner types it and
//! presses Enter) is checked as the API checks it and exchanged for a session cookie; the token
//! itself is never stored in the browser.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::api::AppState;
use crate::console::csrf::{self, Checked};
use crate::console::page::{PageError, PageResult, error_page};
use crate::console::session::{self, Session};
use crate::console::{home, layout};
use crate::error::Error;

fn form(message: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        p { "Type your token, or scan your badge." }
        @if let Some(m) = message {
            p.error role="alert" { (m) }
        }
        form.signin method="post" action="/signin" {
            label for="token" { "Token" }
            input #token type="password" name="token" autocomplete="off" autofocus required maxlength="256";
            button type="submit" { "Sign in" }
        }
    };
    layout::page("Sign in", None, body)
}

/// `GET /signin`: the form, or the role's home for a browser already signed in.
pub async fn show(who: Result<Session, PageError>) -> Response {
    match who {
        Ok(s) => match home(s.role()) {
            Some(to) => Redirect::to(to).into_response(),
            None => Html(form(None).into_string()).into_response(),
        },
        Err(_) => Html(form(None).into_string()).into_response(),
    }
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// `POST /signin`: same-origin only (there is no session, hence no form token, yet).
pub async fn submit(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<axum::Form<SignIn>, axum::extract::rejection::FormRejection>,
) -> PageResult<Response> {
    csrf::same_origin(&headers, s.app.sessions.secure_cookies(), "anonymous")?;
    let axum::Form(f) = body.map_err(|e| crate::api::rejection(e.status(), e.body_text(), csrf::MAX_FORM_BYTES))?;
    let principal = match crate::api::authenticate(&s, f.token.trim()).await {
        Ok(p) => p,
        Err(Error::Unauthorized) => {
            tracing::warn!("console sign-in with an unknown or revoked token");
            let page = form(Some("That token is not valid, or it was revoked."));
            return Ok((StatusCode::UNAUTHORIZED, Html(page.into_string())).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let Some(to) = home(principal.role) else {
        return Ok(error_page(&Error::Forbidden {
            role: principal.role.to_string(),
            action: "use the console (camera and relay tokens are for machines)".into(),
        }));
    };
    let app = s.app.clone();
    let new = s
        .blocking(move |a| a.sessions.create(principal, |t| app.access.cache.is_active(t), crate::clock::now_ms()))
        .await?;
    let cookie = session::set_cookie(&new.id, s.app.sessions.max_age_secs(), s.app.sessions.secure_cookies());
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response())
}

#[derive(Deserialize)]
pub struct SignOut {}

/// `POST /signout`: ends the session here (not only in this browser).
pub async fn signout(State(s): State<AppState>, f: Checked<SignOut>) -> PageResult<Response> {
    let session = f.session;
    s.blocking(move |a| a.sessions.end(&session)).await?;
    let cookie = session::clear_cookie(s.app.sessions.secure_cookies());
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/signin")).into_response())
}
