//! The frame of every console page: head (the vendored stylesheet and the one ES module), the
//! banner with the role's links and sign-out, and `main`. Markup is `maud`: checked at compile
//! time, and every `(value)` spliced in is HTML-escaped.

use maud::{DOCTYPE, Markup, html};

use crate::access::Role;
use crate::console::assets;
use crate::console::session::Session;

/// The links a role sees in the banner (pages of other roles are not offered, and refused).
fn nav(role: Role) -> &'static [(&'static str, &'static str)] {
    match role {
        Role::Officer => &[("/alerts", "Alerts")],
        Role::Ops => &[("/ops", "Lists and policies"), ("/ops/status", "Status")],
        Role::Admin => &[("/admin", "Tokens and audit")],
        Role::Camera | Role::Relay => &[],
    }
}

/// A whole page: `title` in the tab and the heading, `body` in `main`.
pub fn page(title: &str, who: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · facewatch" }
                link rel="stylesheet" href=(assets::url("console.css"));
                script type="module" src=(assets::url("console.js")) {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "facewatch" }
                    @if let Some(s) = who {
                        nav aria-label="Pages" {
                            @for (href, label) in nav(s.role()) {
                                a href=(href) { (label) }
                            }
                        }
                        span.who {
                            (s.principal.name) " · " (s.role().as_str())
                        }
                        form.signout method="post" action="/signout" {
                            (csrf_field(s))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    (body)
                }
            }
        }
    }
}

/// The hidden field every form of a session carries (checked by `csrf::Checked`).
pub fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Principal;

    #[test]
    fn names_are_escaped_in_the_banner_and_the_title() {
        let s = Session {
            principal: Principal {
                token_id: 1,
                name: "<script>alert(1)</script> & \"Ann\"".into(),
                role: Role::Officer,
                principal: "p".into(),
                cameras: vec![],
            },
            csrf: "c".into(),
            digest: [0; 32],
        };
        let html = page("<b>T</b>", Some(&s), html! { p { "x" } }).into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Ann&quot;"), "{html}");
        assert!(html.contains("<title>&lt;b&gt;T&lt;/b&gt; · facewatch</title>"), "{html}");
        assert!(html.contains(r#"<input type="hidden" name="csrf" value="c">"#), "{html}");
        // No inline script or style anywhere: the CSP forbids them.
        assert!(!html.contains("<style") && !html.contains(" style=") && !html.contains("<script>"), "{html}");
    }
}
