//! Configured secrets: the webhook's HMAC key ([`Secret`]) and URLs that may carry
//! credentials ([`SecretUrl`]: `nats://user:pass@host`, `https://host/hook?token=...`). Both are
//! loaded and used like strings but never printed whole, so that logging a config (`{:?}`), a
//! sink or an error cannot leak them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Serializes as the plain string (the config loader round-trips through TOML); `Debug`
/// shows only whether it is set.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that signs with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"<redacted>\"" })
    }
}

/// A URL, or a comma-separated list of them (NATS servers), that may carry a password, a token
/// as user name, or a token in the query. `Debug` and `Display` show it with those parts as
/// `***` ([`redact_url`]); [`SecretUrl::expose`] gives it whole to the one client that connects.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The URL itself, for the client that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&redact_url(&self.0), f)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// `url` (or each of a comma-separated list) with the password (`user:***@`), a user-only
/// token (`***@`), every query value (`?token=***`) and any fragment replaced by `***`; scheme,
/// user name, host, port and path stay, so the log still says where it went.
pub fn redact_url(url: &str) -> String {
    url.split(',').map(redact_one).collect::<Vec<_>>().join(",")
}

fn redact_one(url: &str) -> String {
    // NATS accepts "user:pass@host:4222" without a scheme in a server list.
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str("***"),
            }
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((b, _)) => (b, Some("***")),
        None => (tail, None),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) => format!("{k}=***"),
                    None if kv.is_empty() => String::new(),
                    None => "***".to_string(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
        None => out.push_str(before_fragment),
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// `text` (an error message from an HTTP or NATS client, which quotes the URL it used) with
/// every `scheme://...` in it redacted by [`redact_url`].
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| j + 1);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '(' | ')' | ',' | '`'))
            .map_or(rest.len(), |j| i + j);
        // "<url>: <reason>": punctuation after the URL is the message's, not the URL's.
        let end = start + rest[start..end].trim_end_matches([':', ';', '.', '!']).len();
        out.push_str(&rest[..start]);
        out.push_str(&redact_one(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2-hunter2-hunter2");
        assert_eq!(format!("{s:?}"), "\"<redacted>\"");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
        assert_eq!(s.expose(), "hunter2-hunter2-hunter2");
    }

    #[test]
    fn urls_lose_their_credentials_but_not_where_they_point() {
        for (given, shown) in [
            ("nats://user:pa55@hq:4222", "nats://user:***@hq:4222"),
            ("nats://t0ken@hq:4222", "nats://***@hq:4222"),
            ("nats://a:pa55@h1:4222,b:pa66@h2:4222", "nats://a:***@h1:4222,b:***@h2:4222"),
            ("nats://hq:4222", "nats://hq:4222"),
            (
                "https://u:pa55@hooks.example/x/y?token=t0ken&v=2#pa77",
                "https://u:***@hooks.example/x/y?token=***&v=***#***",
            ),
            ("https://hooks.example/x?t0ken", "https://hooks.example/x?***"),
            ("http://h/p@th", "http://h/p@th"),
            ("", ""),
        ] {
            assert_eq!(redact_url(given), shown, "{given}");
            let u = SecretUrl::new(given);
            assert_eq!(format!("{u}"), shown);
            assert_eq!(format!("{u:?}"), format!("{shown:?}"));
            assert_eq!(u.expose(), given);
        }
        let e = "https://u:pa55@hooks.example/x?token=t0ken: Connection Failed: refused (nats://pa66@h)";
        let r = redact_urls_in(e);
        assert_eq!(r, "https://u:***@hooks.example/x?token=***: Connection Failed: refused (nats://***@h)");
    }
}

/// A file holding a secret (the TLS key, the key that seals the data key) must not be
/// readable by every user of the machine; the error says how to fix it.
pub fn check_private(meta: &std::fs::Metadata) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o004 != 0 {
            return Err(format!("readable by every user (mode {mode:o}); chmod o-r it"));
        }
    }
    let _ = meta;
    Ok(())
}
