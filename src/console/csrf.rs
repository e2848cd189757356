//! Forms that change something are checked twice against cross-site requests: the `Origin`
//! header must be this service's own (browsers send it with every POST), and the body must carry
//! the session's CSRF token. `SameSite=Strict` on the cookie is a third, browser-side guard.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

use crate::api::AppState;
use crate::console::page::PageError;
use crate::console::session::Session;
use crate::error::Error;

/// Form bodies are a note and a few fields: anything larger is refused before parsing.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// A form posted by a signed-in browser of this site, with its CSRF token checked.
pub struct Checked<T> {
    pub session: Session,
    pub form: T,
}

fn refused(role: &str, why: &str) -> Error {
    Error::Forbidden { role: role.into(), action: format!("post this form: {why}") }
}

/// `Forbidden` unless the request came from this service's own pages: `Origin` names this
/// service as the browser reached it (`Host`), or, when the browser withholds the origin
/// (`Origin: null`, which it sends with every POST of a page whose `Referrer-Policy` is
/// `no-referrer`, as ours is), its Fetch Metadata says `Sec-Fetch-Site: same-origin`. Both
/// headers are set by the browser alone: a page on another site cannot forge them.
pub fn same_origin(headers: &HeaderMap, secure: bool, role: &str) -> Result<(), Error> {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    let (origin, host, site) = (get("origin"), get("host"), get("sec-fetch-site"));
    let scheme = if secure { "https" } else { "http" };
    match (origin, host) {
        (Some(o), Some(h)) if o.len() == scheme.len() + 3 + h.len() && o == format!("{scheme}://{h}") => Ok(()),
        (None | Some("null"), _) if site == Some("same-origin") => Ok(()),
        (None | Some("null"), _) => Err(refused(role, "its origin is unknown (cross-site requests are refused)")),
        (Some(o), _) => Err(refused(role, &format!("it came from another site ({o})"))),
    }
}

/// Compares in time independent of where the strings differ.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(serde::Deserialize)]
struct Token {
    csrf: Option<String>,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Checked<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let role = session.role().as_str();
        same_origin(&parts.headers, state.app.sessions.secure_cookies(), role)?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| Error::PayloadTooLarge { limit: MAX_FORM_BYTES })?;
        let token: Token = serde_urlencoded::from_bytes(&bytes).map_err(|e| Error::BadRequest(e.to_string()))?;
        if !token.csrf.is_some_and(|t| same_token(&t, &session.csrf)) {
            return Err(refused(role, "missing or wrong form token (reload the page)").into());
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| Error::BadRequest(format!("form: {e}")))?;
        Ok(Checked { session, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    fn fetched_from(origin: Option<&str>, site: &str) -> HeaderMap {
        let mut h = headers(origin, "gate.example");
        h.insert("sec-fetch-site", site.parse().unwrap());
        h
    }

    #[test]
    fn only_this_sites_origin_passes() {
        assert!(same_origin(&headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"), false, "officer").is_ok());
        assert!(same_origin(&headers(Some("https://gate.example"), "gate.example"), true, "officer").is_ok());
        for (o, host, secure) in [
            (None, "127.0.0.1:8080", false),
            (Some("http://evil.example"), "127.0.0.1:8080", false),
            (Some("http://127.0.0.1:8081"), "127.0.0.1:8080", false),
            (Some("http://gate.example"), "gate.example", true),
            (Some("null"), "gate.example", false),
        ] {
            let e = same_origin(&headers(o, host), secure, "officer").unwrap_err();
            assert!(matches!(e, Error::Forbidden { .. }), "{o:?}");
        }
        // A browser that withholds the origin (no-referrer) still tells the site apart.
        assert!(same_origin(&fetched_from(Some("null"), "same-origin"), false, "officer").is_ok());
        assert!(same_origin(&fetched_from(None, "same-origin"), false, "officer").is_ok());
        for site in ["cross-site", "same-site", "none"] {
            assert!(same_origin(&fetched_from(Some("null"), site), false, "officer").is_err(), "{site}");
        }
        // A named foreign origin loses whatever else is claimed.
        assert!(same_origin(&fetched_from(Some("http://evil.example"), "same-origin"), false, "officer").is_err());
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("abc", "ab"));
    }
}
