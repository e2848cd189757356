//! `[console]`: how long console sessions last and how many are kept.

/// `[console]`: the officers' and ops staff's web console (`GET /`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    /// A session unused this long ends (the screen of an absent officer stops showing faces).
    pub idle_secs: u64,
    /// A session ends this long after sign-in, used or not (a shift, plus margin).
    pub max_session_secs: u64,
    /// Sessions kept in all; sign-in beyond them is refused until one ends.
    pub max_sessions: usize,
    /// Sessions kept per token: signing in once more ends that token's oldest.
    pub max_sessions_per_token: usize,
    /// Marks the session cookie `Secure` (set when the service is served over TLS).
    pub secure_cookies: bool,
    /// The officer console blurs the faces after this long without a key press or pointer move.
    pub blur_after_secs: u64,
}

impl Default for ConsoleSection {
    fn default() -> Self {
        Self {
            idle_secs: 15 * 60,
            max_session_secs: 12 * 3600,
            max_sessions: 512,
            max_sessions_per_token: 4,
            secure_cookies: false,
            blur_after_secs: 120,
        }
    }
}

/// The section's problems, as `ServiceConfig::validate` reports them.
pub fn problems(c: &ConsoleSection, bad: &mut Vec<String>) {
    if !(1..=24 * 3600).contains(&c.idle_secs) {
        bad.push(format!("[console] idle_secs {}: expected 1..86400", c.idle_secs));
    }
    if c.max_session_secs < c.idle_secs || c.max_session_secs > 7 * 24 * 3600 {
        bad.push(format!("[console] max_session_secs {}: expected idle_secs..604800", c.max_session_secs));
    }
    if !(1..=3600).contains(&c.blur_after_secs) {
        bad.push(format!("[console] blur_after_secs {}: expected 1..3600", c.blur_after_secs));
    }
    if !(1..=100_000).contains(&c.max_sessions) {
        bad.push(format!("[console] max_sessions {}: expected 1..100000", c.max_sessions));
    }
    if c.max_sessions_per_token == 0 || c.max_sessions_per_token > c.max_sessions {
        bad.push(format!(
            "[console] max_sessions_per_token {}: expected 1..max_sessions ({})",
            c.max_sessions_per_token, c.max_sessions
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_named() {
        let mut bad = Vec::new();
        problems(&ConsoleSection::default(), &mut bad);
        assert!(bad.is_empty(), "{bad:?}");
        let c = ConsoleSection {
            idle_secs: 0,
            max_session_secs: 10,
            max_sessions: 0,
            max_sessions_per_token: 5,
            ..Default::default()
        };
        problems(&c, &mut bad);
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(bad[0].starts_with("[console] idle_secs 0"), "{bad:?}");
        assert!(bad.iter().any(|b| b.starts_with("[console] max_sessions 0")), "{bad:?}");
        assert!(bad.iter().any(|b| b.starts_with("[console] max_sessions_per_token 5")), "{bad:?}");
    }
}
