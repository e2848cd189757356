//! How a console page fails: to sign-in when there is no session, else a page with the status
//! the API would give (`api::status`, the one mapping), e.g. the 403 page of a role that may
//! not open it. Never a blank page, never the API's JSON.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;

use crate::console::layout;
use crate::error::Error;

#[derive(Debug)]
pub enum PageError {
    /// No live session: sign in (again).
    SignIn,
    Failed(Error),
}

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        PageError::Failed(e)
    }
}

pub type PageResult<T> = std::result::Result<T, PageError>;

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn => Redirect::to("/signin").into_response(),
            PageError::Failed(e) => error_page(&e),
        }
    }
}

/// The page of an error, with the API's status for it.
pub fn error_page(e: &Error) -> Response {
    let (status, _) = crate::api::status(e);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %e, "console page failed");
    }
    let (title, hint) = match status.as_u16() {
        401 => ("Not signed in", "Sign in with your token."),
        403 => ("Not allowed", "This page belongs to another role: roles do not nest (separation of duties)."),
        404 => ("Not found", "It may have been deleted, or the link is wrong."),
        503 => ("Busy", "Try again in a minute."),
        _ => ("Something went wrong", "Try again; if it persists, tell the operator."),
    };
    let body = html! {
        h1 { (status.as_u16()) " " (title) }
        p.error role="alert" { (e.to_string()) }
        p { (hint) }
        p { a href="/" { "Back to your console" } }
    };
    let mut resp = (status, Html(layout::page(title, None, body).into_string())).into_response();
    if let Error::Overloaded { retry_after_s, .. } = e {
        resp.headers_mut().insert(header::RETRY_AFTER, (*retry_after_s).into());
    }
    resp
}
