//! The web console over plain HTTP, as a browser would call it but without one: sign-in,
//! the session cookie, pages and form posts with their headers, redirects not followed.
#![allow(dead_code)]

use std::io::Read;
use std::time::Duration;

use super::server::Server;

#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The redirect's target.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The session cookie's value from `Set-Cookie`.
    pub fn session_cookie(&self) -> Option<String> {
        let c = self.header("set-cookie")?;
        let v = c.split(';').next()?.strip_prefix("facewatch_session=")?;
        (!v.is_empty()).then(|| format!("facewatch_session={v}"))
    }

    /// The CSRF token a page's forms carry.
    pub fn csrf(&self) -> String {
        let at = self.body.find(r#"name="csrf" value=""#).unwrap_or_else(|| panic!("no form token in {}", self.body));
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

/// One request: `cookie` and `origin` headers when given; a form body when given.
pub fn request(
    s: &Server,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    form: Option<&[(&str, &str)]>,
) -> Page {
    let agent = ureq::AgentBuilder::new().redirects(0).timeout(Duration::from_secs(60)).build();
    let mut r = agent.request(method, &format!("{}{path}", s.url));
    if let Some(c) = cookie {
        r = r.set("Cookie", c);
    }
    if let Some(o) = origin {
        r = r.set("Origin", o);
    }
    let res = match form {
        Some(fields) => r.send_form(fields),
        None => r.call(),
    };
    let resp = match res {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .flat_map(|n| resp.all(&n).into_iter().map(|v| (n.clone(), v.to_string())).collect::<Vec<_>>())
        .collect();
    let mut body = String::new();
    resp.into_reader().take(16 << 20).read_to_string(&mut body).unwrap_or_default();
    Page { status, headers, body }
}

pub fn get(s: &Server, path: &str, cookie: Option<&str>) -> Page {
    request(s, "GET", path, cookie, None, None)
}

/// A form posted from the console's own origin (what the browser sends).
pub fn post(s: &Server, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Page {
    request(s, "POST", path, cookie, Some(&s.url), Some(form))
}

/// Signs in with `token`; the session cookie (`name=value`, for a `Cookie` header).
pub fn sign_in(s: &Server, token: &str) -> String {
    let p = post(s, "/signin", None, &[("token", token)]);
    assert_eq!(p.status, 303, "sign-in: {}", p.body);
    p.session_cookie().expect("a session cookie")
}
