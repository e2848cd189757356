//! The web console against a real `facewatch serve` process: sessions, CSRF, headers and role
//! rules over HTTP, and the officers' whole flow in a real headless Chromium.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::colin;
use common::console::{get, post, request, sign_in};
use common::server::{Server, camera_token, multipart, token};
use serde_json::{Value, json};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

fn assert_secure_headers(p: &common::console::Page, what: &str) {
    assert_eq!(p.header("content-security-policy"), Some(CSP), "{what}");
    assert_eq!(p.header("x-content-type-options"), Some("nosniff"), "{what}");
    assert_eq!(p.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(p.header("cache-control"), Some("no-store"), "{what}");
}

/// Sessions (cookie flags, idle expiry, revocation, sign-out), CSRF and Origin checks, the
/// security headers and the role rules, over HTTP.
#[test]
fn sessions_csrf_headers_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ann, bob, ops, admin) =
        (token(d, "officer", "Ann"), token(d, "officer", "Bob"), token(d, "ops", "Olga"), token(d, "admin", "Adam"));
    let cam = camera_token(d, "gate cam", &["gate-1"]);
    let s = Server::start(d, &[("FACEWATCH_CONSOLE__IDLE_SECS", "2")]);

    // Not signed in: / and every page go to sign-in; the sign-in page has the headers.
    assert_eq!(get(&s, "/", None).location(), Some("/signin"));
    assert_eq!(get(&s, "/alerts", None).location(), Some("/signin"));
    let form = get(&s, "/signin", None);
    assert_eq!(form.status, 200);
    assert!(form.header("content-type").unwrap().starts_with("text/html"));
    assert_secure_headers(&form, "sign-in page");

    // A wrong token is refused with the form again; a machine's token has no console.
    let bad = post(&s, "/signin", None, &[("token", "fw_not-a-token")]);
    assert_eq!(bad.status, 401);
    assert!(bad.body.contains("not valid") && bad.session_cookie().is_none(), "{}", bad.body);
    let machine = post(&s, "/signin", None, &[("token", &cam)]);
    assert_eq!(machine.status, 403, "{}", machine.body);
    assert!(machine.session_cookie().is_none());
    // Sign-in from another site, or without Origin, is refused (login CSRF).
    for origin in [Some("http://evil.example"), None] {
        let p = request(&s, "POST", "/signin", None, origin, Some(&[("token", &ann)]));
        assert_eq!(p.status, 403, "{origin:?}: {}", p.body);
        assert!(p.session_cookie().is_none());
    }

    // Signing in: an HttpOnly, SameSite=Strict cookie (not Secure: no TLS here), then home.
    let p = post(&s, "/signin", None, &[("token", &ann)]);
    assert_eq!((p.status, p.location()), (303, Some("/alerts")));
    let set = p.header("set-cookie").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    assert!(!set.contains(&ann), "the token never reaches the browser");
    let ann_c = p.session_cookie().unwrap();
    assert_eq!(get(&s, "/", Some(&ann_c)).location(), Some("/alerts"));
    let page = get(&s, "/alerts", Some(&ann_c));
    assert_eq!(page.status, 200, "{}", page.body);
    assert_secure_headers(&page, "officer console");
    assert!(page.body.contains("Ann") && page.body.contains("No alert waits for review"), "{}", page.body);
    let asset = get(&s, "/assets/console.js", None);
    assert_eq!(asset.status, 200);
    assert!(asset.header("content-type").unwrap().starts_with("text/javascript"));
    assert_eq!(asset.header("x-content-type-options"), Some("nosniff"));
    let etag = asset.header("etag").unwrap().to_string();
    let again = ureq::get(&format!("{}/assets/console.js", s.url)).set("If-None-Match", &etag).call().unwrap();
    assert_eq!(again.status(), 304);

    // Cookies never authorize /v1.
    let v1 = ureq::get(&format!("{}/v1/alerts", s.url)).set("Cookie", &ann_c).call();
    assert!(matches!(v1, Err(ureq::Error::Status(401, _))), "{v1:?}");

    // Roles: an officer is refused the ops and admin pages, ops the officers' (403 pages).
    for path in ["/ops", "/ops/lists", "/admin"] {
        let p = get(&s, path, Some(&ann_c));
        assert_eq!(p.status, 403, "{path}");
        assert!(p.body.contains("Not allowed") && p.body.contains("role officer may not"), "{}", p.body);
        assert!(p.header("content-type").unwrap().starts_with("text/html"));
        assert_secure_headers(&p, path);
    }
    let ops_c = sign_in(&s, &ops);
    assert_eq!(get(&s, "/", Some(&ops_c)).location(), Some("/ops"));
    for path in ["/alerts", "/alerts/live", "/alerts/x/crop"] {
        let p = get(&s, path, Some(&ops_c));
        assert_eq!(p.status, 403, "{path}: {}", p.body);
    }

    // CSRF: a form without the session's token, with a wrong one, or from another origin: 403.
    let csrf = page.csrf();
    let wrong = "0".repeat(csrf.len());
    for (origin, fields) in [
        (Some(s.url.as_str()), vec![]),
        (Some(s.url.as_str()), vec![("csrf", wrong.as_str())]),
        (Some("http://evil.example"), vec![("csrf", csrf.as_str())]),
        (None, vec![("csrf", csrf.as_str())]),
    ] {
        let p = request(&s, "POST", "/signout", Some(&ann_c), origin, Some(&fields));
        assert_eq!(p.status, 403, "{origin:?} {fields:?}: {}", p.body);
    }
    // A form over the console's 16 KiB limit, even with the right token, or to the sign-in page
    // before any session: 413, and nothing changed.
    let big = "x".repeat(17 * 1024);
    let p = request(&s, "POST", "/signout", Some(&ann_c), Some(&s.url), Some(&[("csrf", &csrf), ("note", &big)]));
    assert_eq!(p.status, 413, "{}", p.body);
    let p = request(&s, "POST", "/signin", None, Some(&s.url), Some(&[("token", &big)]));
    assert_eq!(p.status, 413, "{}", p.body);
    assert!(p.session_cookie().is_none());
    assert_eq!(get(&s, "/alerts", Some(&ann_c)).status, 200, "refused posts changed nothing");
    // The right token from this origin signs out: the session ends on the server.
    let out = post(&s, "/signout", Some(&ann_c), &[("csrf", &csrf)]);
    assert_eq!((out.status, out.location()), (303, Some("/signin")));
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(get(&s, "/alerts", Some(&ann_c)).location(), Some("/signin"), "signed out");

    // Revoking a token ends its sessions at once.
    let bob_c = sign_in(&s, &bob);
    assert_eq!(get(&s, "/alerts", Some(&bob_c)).status, 200);
    let tokens = s.get("/v1/tokens", Some(&admin)).ok();
    let bob_id = tokens["tokens"].as_array().unwrap().iter().find(|t| t["name"] == "Bob").unwrap()["id"].clone();
    let revoked = s.call("DELETE", &format!("/v1/tokens/{bob_id}"), Some(&admin), common::server::Body::None);
    assert!(revoked.status < 300, "{}", revoked.status);
    assert_eq!(get(&s, "/alerts", Some(&bob_c)).location(), Some("/signin"), "revoked");

    // Idle sessions end (2 s here, 15 min by default); use keeps one alive.
    let c = sign_in(&s, &ann);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(900));
        assert_eq!(get(&s, "/alerts", Some(&c)).status, 200, "in use");
    }
    std::thread::sleep(Duration::from_millis(2300));
    assert_eq!(get(&s, "/alerts", Some(&c)).location(), Some("/signin"), "idle");
}

fn enroll_colin(s: &Server, ops: &str) {
    let policy = json!({"threshold": 0.93, "cooldown_secs": 600, "severity": "critical"});
    let created = s.post_json("/v1/lists", Some(ops), &json!({"name": "wanted", "policy": policy}));
    assert_eq!(created.status, 201);
    let form = multipart(
        &[("subject", "colin"), ("name", "Colin Powell")],
        &[("0001.jpg", "image/jpeg", colin(1)), ("0002.jpg", "image/jpeg", colin(2))],
    );
    s.call("POST", "/v1/lists/wanted/subjects", Some(ops), form).ok();
}

const WAIT: Duration = Duration::from_secs(20);
const ENTER: &str = "\u{E007}";

fn sign_in_browser(b: &Browser, s: &Server, token: &str) {
    b.goto(&format!("{}/", s.url));
    let field = b.wait("#token", WAIT);
    b.type_into(&field, token);
    b.click(&b.wait("form.signin button", WAIT));
    b.wait("#live[data-state=\"live\"]", WAIT);
}

fn sign_out_browser(b: &Browser) {
    b.click(&b.wait("form.signout button", WAIT));
    b.wait("#token", WAIT);
}

/// The officers' flow in headless Chromium: A signs in, a camera's frame makes an alert appear
/// without a reload, A opens it (keys) and confirms; B verifies; B is refused the ops page; the
/// live banner says Reconnecting while the service is down and Live after it restarts.
#[test]
fn officers_review_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ann, bob, ops, admin) =
        (token(d, "officer", "Ann"), token(d, "officer", "Bob"), token(d, "ops", "Olga"), token(d, "admin", "Adam"));
    let cam = camera_token(d, "gate cam", &["gate-1"]);
    let s = Server::start(d, &[]);
    enroll_colin(&s, &ops);
    let b = Browser::start();

    // A signs in (the token is typed, as a badge scanner would) and waits on the live queue.
    sign_in_browser(&b, &s, &ann);
    assert!(b.url().ends_with("/alerts"), "{}", b.url());
    assert_eq!(b.all("#queue li").len(), 0);
    // A camera's frame: the alert appears without a reload, and is announced.
    let r = s.frame("gate-1", &cam, &colin(4)).ok();
    let alert_id = r["alerts"][0].as_str().unwrap_or_else(|| panic!("no alert: {r}")).to_string();
    let item = b.wait(&format!("#queue li[data-id=\"{alert_id}\"]"), WAIT);
    assert!(b.text(&item).contains("Colin Powell"), "{}", b.text(&item));
    b.wait_text("#announce", "New critical alert: Colin Powell", WAIT);
    b.wait_text("#queue-count", "(1)", WAIT);

    // Keys: j highlights the first alert, Enter opens it.
    b.keys("j");
    b.keys(ENTER);
    b.wait("#card .faces img", WAIT);
    assert!(b.url().ends_with(&format!("/alerts/{alert_id}")), "{}", b.url());
    // Both faces loaded, side by side at the same size.
    let sizes = b.exec(
        "return [...document.querySelectorAll('.faces img')].map(i => \
         [i.complete && i.naturalWidth > 0, Math.round(i.getBoundingClientRect().width), \
          Math.round(i.getBoundingClientRect().height), Math.round(i.getBoundingClientRect().top)])",
    );
    let sizes = sizes.as_array().unwrap();
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert!(sizes.iter().all(|s| s[0] == true), "both images load through the session: {sizes:?}");
    assert_eq!(sizes[0].as_array().unwrap()[1..], sizes[1].as_array().unwrap()[1..], "same size, same row: {sizes:?}");
    let card = b.text(&b.wait("#card", WAIT));
    for fact in ["Score", "list threshold 0.930", "Face size", "Quality", "Times seen", "gate-1", "ago"] {
        assert!(card.contains(fact), "{fact} missing from the card:\n{card}");
    }
    let viewport = b.exec("return [window.innerWidth, window.innerHeight]");
    assert_eq!(viewport, json!([1366, 768]));
    // At 1366x768 the decision is reachable without scrolling.
    let bottom = b.exec("return document.getElementById('dismiss').getBoundingClientRect().bottom");
    assert!(bottom.as_f64().unwrap() <= 768.0, "the review buttons are below the fold: {bottom}");
    b.screenshot("officer-alert");
    // Keys: ? opens the help, Esc closes it; c goes to Confirm (Enter would submit it).
    b.keys("?");
    b.wait("dialog#help[open]", WAIT);
    b.keys("\u{E00C}");
    assert!(b.find("dialog#help[open]").is_none(), "Esc closes the help");
    b.keys("c");
    assert_eq!(b.exec("return document.activeElement.id"), "confirm");
    // Start shift: sound on (WebAudio, after this click).
    b.click(&b.wait("#shift", WAIT));
    assert_eq!(b.attr(&b.wait("#shift", WAIT), "aria-pressed").as_deref(), Some("true"));
    // The idle blur (after 2 idle minutes; set here at once): the README's screenshot.
    b.exec("document.body.classList.add('idle')");
    let blur = b.exec("return getComputedStyle(document.querySelector('.faces img')).filter");
    assert!(blur.as_str().unwrap().starts_with("blur("), "{blur}");
    b.screenshot("console-idle");
    b.exec("document.body.classList.remove('idle')");

    // A confirms with a note; the card then says it awaits a different officer.
    b.type_into(&b.wait("#note", WAIT), "Matches the enrolled photo <b>");
    b.click(&b.wait("#confirm", WAIT));
    let standing = b.wait_text(".awaits", "awaits a different officer", WAIT);
    assert!(standing.contains("You confirmed"), "{standing}");
    assert!(b.find("#confirm").is_none(), "no second confirmation offered to the same officer");
    assert!(b.text(&b.wait(".history", WAIT)).contains("Matches the enrolled photo <b>"));
    b.screenshot("officer-confirmed");

    // Opening the alert was audited once for Ann.
    let audit = s.get("/v1/audit?limit=1000", Some(&admin)).ok();
    let viewed: Vec<&Value> =
        audit["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "alert.viewed").collect();
    assert_eq!(viewed.len(), 1, "{audit}");
    assert_eq!(viewed[0]["actor"], "Ann");
    // Without JavaScript too: a plain form post. Ann confirming twice is refused on the card
    // (409), and opening the alert again is not audited again.
    let c = sign_in(&s, &ann);
    let page = get(&s, &format!("/alerts/{alert_id}"), Some(&c));
    let form = [("csrf", page.csrf()), ("decision", "confirm".into()), ("note", String::new())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let twice = post(&s, &format!("/alerts/{alert_id}/review"), Some(&c), &form);
    assert_eq!(twice.status, 409, "{}", twice.body);
    assert!(twice.body.contains("already confirmed") && twice.body.contains("role=\"alert\""), "{}", twice.body);
    let audit = s.get("/v1/audit?limit=1000", Some(&admin)).ok();
    let views = audit["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "alert.viewed").count();
    assert_eq!(views, 1, "one person, one view entry");

    // B signs in at the same screen and verifies.
    sign_out_browser(&b);
    sign_in_browser(&b, &s, &bob);
    b.click(&b.wait(&format!("#queue li[data-id=\"{alert_id}\"] a"), WAIT));
    let standing = b.wait_text(".awaits", "awaits a different officer", WAIT);
    assert!(standing.contains("Confirmed by Ann"), "{standing}");
    b.click(&b.wait("#confirm", WAIT));
    b.wait_text(".final", "Verified by two officers", WAIT);
    let v = s.get(&format!("/v1/alerts/{alert_id}"), Some(&ann)).ok();
    assert_eq!(v["status"], "verified", "{v}");

    // B is refused the ops page: a page saying so, not a blank.
    b.goto(&format!("{}/ops", s.url));
    let h1 = b.text(&b.wait("h1", WAIT));
    assert_eq!(h1, "403 Not allowed");
    b.screenshot("officer-refused-ops");

    // The live banner: Reconnecting while the service is down, Live after it restarts on the
    // same port and data (the session survives the restart).
    b.goto(&format!("{}/alerts", s.url));
    b.wait("#live[data-state=\"live\"]", WAIT);
    let bind = s.url.trim_start_matches("http://").to_string();
    assert!(s.stop().success());
    b.wait_text("#live", "Reconnecting", WAIT);
    b.screenshot("officer-reconnecting");
    let s = Server::start(d, &[("FACEWATCH_SERVICE__BIND", &bind)]);
    b.wait_text("#live", "Live", Duration::from_secs(30));
    assert!(b.url().ends_with("/alerts"), "still signed in: {}", b.url());
    drop(s);
}

/// An unattended officer screen blurs the faces after `[console] blur_after_secs` (1 s here)
/// without input, and the next key press shows them again.
#[test]
fn an_unattended_console_blurs_the_faces_and_input_shows_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ann, ops) = (token(d, "officer", "Ann"), token(d, "ops", "Olga"));
    let cam = camera_token(d, "gate cam", &["gate-1"]);
    let s = Server::start(d, &[("FACEWATCH_CONSOLE__BLUR_AFTER_SECS", "1")]);
    enroll_colin(&s, &ops);
    let r = s.frame("gate-1", &cam, &colin(4)).ok();
    let alert_id = r["alerts"][0].as_str().unwrap_or_else(|| panic!("no alert: {r}")).to_string();
    let b = Browser::start();
    sign_in_browser(&b, &s, &ann);
    b.goto(&format!("{}/alerts/{alert_id}", s.url));
    b.wait("#card .faces img", WAIT);
    let blurred = "return document.body.classList.contains('idle') && \
                   getComputedStyle(document.querySelector('.faces img')).filter.startsWith('blur(')";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while b.exec(blurred) != json!(true) {
        assert!(std::time::Instant::now() < deadline, "faces not blurred after 1 s without input");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Shift, a key press that does nothing else on the page, lifts the blur (recorded as it
    // happens: on a loaded machine the next second may already blur the faces again).
    b.exec(
        "window.unblurred = false; new MutationObserver(() => { \
         if (!document.body.classList.contains('idle')) window.unblurred = true; }) \
         .observe(document.body, { attributes: true })",
    );
    b.keys("\u{E008}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while b.exec("return window.unblurred") != json!(true) {
        assert!(std::time::Instant::now() < deadline, "input did not show the faces again");
        std::thread::sleep(Duration::from_millis(50));
    }
    s.stop();
}
