//! The web console: server-rendered pages for officers, ops staff and admins, served by the
//! service itself (`GET /`), working offline. Pages are thin, like the API's handlers: they
//! call the same core services with the session's [`Caller`](crate::access::Caller), so the
//! role rules and the two-officer rule are the core's, not the page's.
//!
//! The security model: a token is exchanged at sign-in for a server-side session
//! ([`session`]: HttpOnly, SameSite=Strict cookie; 15 idle minutes, 12 h at most; revoking the
//! token ends it); every form POST is same-origin (`Origin`, or `Sec-Fetch-Site` where the
//! browser sends `Origin: null`) and carries the session's CSRF token
//! ([`csrf`]); every response has the CSP and the other headers of [`headers`]. Cookies never
//! authorize `/v1`, which stays bearer-only.
//!
//! # Adding a page
//!
//! 1. **Route**: add it in [`router`] (or merge a `routes()` of your file, as [`officer`]
//!    does), under the role's prefix: `/alerts` officer, `/ops` ops, `/admin` admin
//!    ([`roles::owner`]: a session of another role gets the 403 page before your handler
//!    runs). The banner's links per role are in [`layout`]'s `nav`; a role's landing page
//!    is [`home`].
//! 2. **Role**: take a [`Session`] (no session: redirected to sign-in) and let the core service
//!    refuse the wrong role with `Error::Forbidden` (call it with `session.caller()`); a page
//!    that reads nothing of a service checks first with `session.caller().may(Action::...)?`.
//!    Return [`PageResult`]: an error becomes a page with the API's status (403 "Not allowed",
//!    404, ...), never JSON and never blank.
//! 3. **Template**: a function returning `maud::Markup`, wrapped in [`layout::page`]
//!    (`Html(layout::page(title, Some(&session), body).into_string())`). `(value)` escapes; never
//!    use `PreEscaped` with data. No inline `style=` or `<script>` (the CSP refuses them): styles
//!    go in `assets/console.css`, behaviour in `assets/console.js` (then update
//!    `assets/manifest.toml`'s sha256; a unit test checks it).
//! 4. **Forms**: `method="post"`, include [`layout::csrf_field`]`(&session)`, and take the body
//!    as [`csrf::Checked<YourForm>`](csrf::Checked) (Origin and token checked, 16 KiB at most;
//!    its `session` replaces the `Session` argument). Answer with a redirect (303) to the page
//!    that shows the result, so a reload does not post twice.
//! 5. **Images and other bytes** that show faces: `Cache-Control: no-store` is already set on
//!    every response that does not set its own.

pub mod admin;
pub mod assets;
pub mod config;
pub mod csrf;
pub mod headers;
pub mod layout;
pub mod live;
pub mod officer;
pub mod ops;
pub mod page;
pub mod roles;
pub mod session;
pub mod signin;
pub mod status;

use axum::Router;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::access::Role;
use crate::api::AppState;
pub use page::{PageError, PageResult};
pub use session::Session;

/// Where a role lands after sign-in (`None`: machines' roles have no console).
pub fn home(role: Role) -> Option<&'static str> {
    match role {
        Role::Officer => Some("/alerts"),
        Role::Ops => Some("/ops"),
        Role::Admin => Some("/admin"),
        Role::Camera | Role::Relay => None,
    }
}

/// `GET /`: the role's home, or sign-in.
async fn root(who: Result<Session, PageError>) -> Response {
    match who.ok().and_then(|s| home(s.role())) {
        Some(to) => Redirect::to(to).into_response(),
        None => Redirect::to("/signin").into_response(),
    }
}

/// The console's routes, with its security headers (merged beside `/v1` by `api::router`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/signin", get(signin::show).post(signin::submit))
        .route("/signout", post(signin::signout))
        .route("/assets/{name}", get(assets::serve))
        .merge(officer::routes())
        .merge(ops::routes())
        .merge(admin::routes())
        .layer(axum::extract::DefaultBodyLimit::max(csrf::MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn(headers::secure))
}
