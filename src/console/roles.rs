//! Which role owns which part of the console, checked before any page runs: a signed-in
//! browser asking for another role's pages gets the 403 page, whether or not that page exists
//! or remembers its own check. The core services check again (`Action`), as for the API.

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::access::Role;
use crate::api::AppState;
use crate::console::page::PageError;
use crate::console::session::Session;
use crate::error::Error;

/// The role whose pages live under `path` (`None`: sign-in, assets, `/v1`, anything else).
pub fn owner(path: &str) -> Option<(Role, &'static str)> {
    const PREFIXES: [(&str, Role, &str); 3] = [
        ("/alerts", Role::Officer, "open the officers' alert pages"),
        ("/ops", Role::Ops, "open the ops pages"),
        ("/admin", Role::Admin, "open the admin pages"),
    ];
    PREFIXES.into_iter().find_map(|(prefix, role, what)| {
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then_some((role, what))
    })
}

/// Middleware over the whole router: a session of the wrong role is refused with the 403 page.
/// Requests without a session go on (the page sends them to sign-in).
pub async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some((role, what)) = owner(req.uri().path()) else { return next.run(req).await };
    let (mut parts, body) = req.into_parts();
    if let Ok(session) = Session::from_request_parts(&mut parts, &s).await
        && session.role() != role
    {
        tracing::info!(principal = %session.principal.principal, role = %session.role(), path = %parts.uri.path(),
            "console page of another role refused");
        let e = Error::Forbidden { role: session.role().to_string(), action: what.to_string() };
        let mut resp = PageError::Failed(e).into_response();
        crate::console::headers::apply(&mut resp);
        return resp;
    }
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert_eq!(owner("/ops").map(|o| o.0), Some(Role::Ops));
        assert_eq!(owner("/ops/lists/x").map(|o| o.0), Some(Role::Ops));
        assert_eq!(owner("/alerts/abc/crop").map(|o| o.0), Some(Role::Officer));
        assert_eq!(owner("/admin").map(|o| o.0), Some(Role::Admin));
        assert_eq!(owner("/opsx"), None);
        assert_eq!(owner("/v1/alerts"), None);
        assert_eq!(owner("/signin"), None);
        assert_eq!(owner("/"), None);
    }
}
