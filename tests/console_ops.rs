//! The ops and admin pages of the console over HTTP, on a real `facewatch serve` and a real
//! evaluation report (`facewatch eval` on a small labelled folder): ops preview a threshold
//! change, then apply it, and it is in the audit log; roles are refused each other's pages;
//! admin creates a token (shown once) and revokes it; the audit page shows the chain's check.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::browser::Browser;
use common::console::{Page, get, post, sign_in};
use common::server::{self, Server};
use serde_json::{Value, json};

/// A form's fields with the page's CSRF token.
fn with_csrf<'a>(fields: &[(&'a str, &'a str)], csrf: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut all = fields.to_vec();
    all.push(("csrf", csrf));
    all
}

fn eval(data: &Path, faces: &Path) {
    let out = Command::new(server::bin())
        .args(["eval", faces.to_str().unwrap()])
        .env("FACEWATCH_SERVICE__DATA_DIR", data)
        .env("FACEWATCH_MODELS__DIR", common::models())
        .output()
        .unwrap();
    assert!(out.status.success(), "eval: {}", String::from_utf8_lossy(&out.stderr));
}

/// The form fields of `policy` (a form always sends the whole policy), `threshold` replaced.
fn policy_form(policy: &Value, threshold: &str) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    policy
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), if k == "threshold" { threshold.to_string() } else { text(v) }))
        .collect()
}

#[test]
fn ops_preview_then_apply_a_threshold_admin_tokens_and_audit() {
    const LIST: &str = "O'Neil watch";
    const IN_PATH: &str = "O%27Neil%20watch";
    let data = tempfile::tempdir().unwrap();
    let (faces, _) = common::labelled_folder(40);
    eval(data.path(), faces.path());
    let ops_token = server::token(data.path(), "ops", "Olga Ops");
    let officer_token = server::token(data.path(), "officer", "Oscar Officer");
    let admin_token = server::token(data.path(), "admin", "Ada Admin");
    let camera_token = server::camera_token(data.path(), "gate-1", &["gate-1"]);
    let srv = Server::start(data.path(), &[]);
    srv.post_json("/v1/lists", Some(&ops_token), &json!({"name": LIST, "policy": {"threshold": 0.9}})).ok();
    // One reviewed alert: Colin Powell enrolled, seen in another photo, confirmed by an officer.
    let form = server::multipart(&[("subject", "colin")], &[("0001.jpg", "image/jpeg", common::colin(1))]);
    srv.call("POST", &format!("/v1/lists/{IN_PATH}/subjects"), Some(&ops_token), form).ok();
    let seen = srv.frame("gate-1", &camera_token, &common::colin(4)).ok();
    let alert = seen["alerts"][0].as_str().expect("an alert").to_string();
    let review = json!({"decision": "confirm"});
    srv.post_json(&format!("/v1/alerts/{alert}/review"), Some(&officer_token), &review).ok();

    // An officer is refused the ops pages and their charts with the 403 page, not a blank.
    let officer = sign_in(&srv, &officer_token);
    for path in ["/ops", &format!("/ops/lists/{IN_PATH}"), &format!("/ops/lists/{IN_PATH}/det.svg"), "/ops/status"] {
        let p = get(&srv, path, Some(&officer));
        assert_eq!(p.status, 403, "{path}");
        assert!(p.header("content-type").unwrap().starts_with("text/html"), "{path}");
        assert!(p.body.contains("Not allowed"), "{path}: {}", p.body);
    }

    // Ops: the list, its policy beside the evaluation's charts and expected rates.
    let ops = sign_in(&srv, &ops_token);
    let home = get(&srv, "/ops", Some(&ops));
    assert_eq!(home.status, 200);
    assert!(home.body.contains(&format!(r#"href="/ops/lists/{IN_PATH}""#)), "{}", home.body);
    let page = get(&srv, &format!("/ops/lists/{IN_PATH}"), Some(&ops));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&format!(r#"src="/ops/lists/{IN_PATH}/det.svg?threshold=0.9""#)), "{}", page.body);
    assert!(page.body.contains("Expected false alarms (FPIR)"), "{}", page.body);
    // The confirmed alert counts at and above the threshold in force.
    assert!(page.body.contains("<td>0.90 (in force)</td><td>1</td><td>1</td><td>0</td>"), "{}", page.body);
    assert!(!page.body.contains("<script>") && !page.body.contains(" style="));
    let det = get(&srv, &format!("/ops/lists/{IN_PATH}/det.svg?threshold=0.9"), Some(&ops));
    assert_eq!((det.status, det.header("content-type")), (200, Some("image/svg+xml")));
    assert!(det.body.starts_with("<svg") && det.body.contains("DET curve, list O&#39;Neil watch"), "{}", det.body);
    let hist = get(&srv, &format!("/ops/lists/{IN_PATH}/histogram.svg?threshold=0.95"), Some(&ops));
    assert!(hist.status == 200 && hist.body.contains("threshold 0.950"), "{}", hist.body);

    // Preview: what changes, nothing changed yet.
    let policy = srv.get(&format!("/v1/lists/{IN_PATH}/policy"), Some(&ops_token)).ok();
    let form = policy_form(&policy, "0.955");
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let csrf = page.csrf();
    let preview = post(&srv, &format!("/ops/lists/{IN_PATH}/preview"), Some(&ops), &with_csrf(&fields, &csrf));
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(preview.body.contains("<td>threshold</td><td>0.9</td><td>0.955</td>"), "{}", preview.body);
    assert!(preview.body.contains("Apply this policy") && preview.body.contains("(now "), "{}", preview.body);
    let unchanged = srv.get(&format!("/v1/lists/{IN_PATH}/policy"), Some(&ops_token)).ok();
    assert_eq!(unchanged["threshold"].as_f64().unwrap() as f32, 0.9, "a preview changes nothing");
    // Without the form token nothing is applied.
    let forged = post(&srv, &format!("/ops/lists/{IN_PATH}/policy"), Some(&ops), &fields);
    assert_eq!(forged.status, 403, "{}", forged.body);

    // Apply (the preview page's form), back to the list.
    let applied = post(&srv, &format!("/ops/lists/{IN_PATH}/policy"), Some(&ops), &with_csrf(&fields, &csrf));
    assert_eq!(applied.status, 303, "{}", applied.body);
    assert_eq!(applied.location(), Some(format!("/ops/lists/{IN_PATH}?applied=1").as_str()));
    let now = srv.get(&format!("/v1/lists/{IN_PATH}/policy"), Some(&ops_token)).ok();
    assert_eq!(now["threshold"].as_f64().unwrap() as f32, 0.955);
    assert!(get(&srv, &format!("/ops/lists/{IN_PATH}?applied=1"), Some(&ops)).body.contains("Policy applied"));
    // The status page; ops may not open the admin pages.
    let status = get(&srv, "/ops/status", Some(&ops));
    assert!(status.status == 200 && status.body.contains("Frames waiting for inference"), "{}", status.body);
    assert_eq!(get(&srv, "/admin", Some(&ops)).status, 403);

    // Admin: the change is in the audit log, by the ops principal, old and new; the chain holds.
    let admin = sign_in(&srv, &admin_token);
    let audit = srv.get("/v1/audit?limit=1000", Some(&admin_token)).ok();
    let change = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "policy.update" && e["target"] == format!("list:{LIST}"))
        .expect("the policy change is audited")
        .clone();
    assert_eq!(change["actor"], "Olga Ops");
    assert_eq!(change["old"]["threshold"].as_f64().unwrap() as f32, 0.9);
    assert_eq!(change["new"]["threshold"].as_f64().unwrap() as f32, 0.955);
    let page = get(&srv, "/admin/audit", Some(&admin));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Chain verified: all"), "{}", page.body);
    assert!(page.body.contains("<td>policy.update</td>") && page.body.contains("Olga Ops"), "{}", page.body);

    // Admin creates a token: shown on the answer once, working, then revoked.
    let csrf = get(&srv, "/admin", Some(&admin)).csrf();
    let new = with_csrf(&[("name", "Nina <New>"), ("role", "officer")], &csrf);
    let posted = post(&srv, "/admin/tokens", Some(&admin), &new);
    assert_eq!((posted.status, posted.location()), (303, Some("/admin")), "post, redirect, get: {}", posted.body);
    let created = get(&srv, "/admin", Some(&admin));
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(created.body.contains("Nina &lt;New&gt;"), "{}", created.body);
    let at = r#"<output id="new-token"><code>"#;
    let i = created.body.find(at).expect("the new token") + at.len();
    let secret = created.body[i..i + created.body[i..].find('<').unwrap()].to_string();
    assert_eq!(srv.get("/v1/alerts", Some(&secret)).status, 200, "the new token works");
    let list: Page = get(&srv, "/admin", Some(&admin));
    assert!(!list.body.contains(&secret), "a token is shown once: a reload does not show it again");
    assert_eq!(list.body.matches("<td>Nina &lt;New&gt;</td>").count(), 1, "and made no second token");
    let tokens = srv.get("/v1/tokens", Some(&admin_token)).ok();
    let id = tokens["tokens"].as_array().unwrap().iter().find(|t| t["name"] == "Nina <New>").unwrap()["id"].clone();
    let revoked = post(&srv, &format!("/admin/tokens/{id}/revoke"), Some(&admin), &with_csrf(&[], &csrf));
    assert_eq!((revoked.status, revoked.location()), (303, Some("/admin")));
    assert_eq!(srv.get("/v1/alerts", Some(&secret)).status, 401, "revoked at once");
    assert!(get(&srv, "/admin/audit", Some(&admin)).body.contains("<td>token.revoke</td>"));
    srv.stop();
}

const WAIT: Duration = Duration::from_secs(20);

/// Ops in headless Chromium: signs in, opens the list, moves the threshold, reads the preview
/// (its charts load under the CSP), applies it; admin sees the change in the audit log.
#[test]
fn ops_move_a_threshold_in_a_real_browser() {
    let data = tempfile::tempdir().unwrap();
    let (faces, _) = common::labelled_folder(20);
    eval(data.path(), faces.path());
    let ops_token = server::token(data.path(), "ops", "Olga Ops");
    let admin_token = server::token(data.path(), "admin", "Ada Admin");
    let srv = Server::start(data.path(), &[]);
    srv.post_json("/v1/lists", Some(&ops_token), &json!({"name": "wanted", "policy": {"threshold": 0.94}})).ok();
    let b = Browser::start();
    let sign_in_as = |token: &str| {
        b.goto(&format!("{}/", srv.url));
        b.type_into(&b.wait("#token", WAIT), token);
        b.click(&b.wait("form.signin button", WAIT));
        // Signed in once the home page shows: only then does the next navigation carry the cookie.
        b.wait("form.signout button", WAIT);
    };

    sign_in_as(&ops_token);
    b.click(&b.wait(r#"a[href="/ops/lists/wanted"]"#, WAIT));
    let field = b.wait("#threshold", WAIT);
    assert_eq!(b.attr(&field, "value").as_deref(), Some("0.94"));
    b.exec("document.getElementById('threshold').value = ''");
    b.type_into(&field, "0.93");
    b.click(&b.wait("form.policy button", WAIT));

    // The preview: the change in words, the expected rates, the charts at the new threshold.
    let changes = b.wait_text("table.plain", "threshold", WAIT);
    assert!(changes.contains("0.94") && changes.contains("0.93"), "{changes}");
    assert!(b.text(&b.wait("dl.facts", WAIT)).contains("Expected false alarms (FPIR)"));
    // Both charts load (same origin, under the CSP), each 480 wide.
    let widths = "return [...document.querySelectorAll('figure img')].map(i => i.complete && i.naturalWidth)";
    let deadline = std::time::Instant::now() + WAIT;
    while b.exec(widths) != json!([480, 480]) {
        assert!(std::time::Instant::now() < deadline, "charts not loaded: {}", b.exec(widths));
        std::thread::sleep(Duration::from_millis(50));
    }
    b.screenshot("ops-preview");
    let policy = srv.get("/v1/lists/wanted/policy", Some(&ops_token)).ok();
    assert_eq!(policy["threshold"].as_f64().unwrap() as f32, 0.94, "a preview changes nothing");

    b.click(&b.wait("form.policy button", WAIT));
    b.wait_text(".notice", "Policy applied", WAIT);
    let policy = srv.get("/v1/lists/wanted/policy", Some(&ops_token)).ok();
    assert_eq!(policy["threshold"].as_f64().unwrap() as f32, 0.93);
    assert_eq!(b.attr(&b.wait("#threshold", WAIT), "value").as_deref(), Some("0.93"));

    // Admin, at the same browser after sign-out: the audit page has the change, chain verified.
    b.click(&b.wait("form.signout button", WAIT));
    b.wait("#token", WAIT);
    sign_in_as(&admin_token);
    b.goto(&format!("{}/admin/audit", srv.url));
    b.wait_text("p.notice", "Chain verified", WAIT);
    let log = b.text(&b.wait("table.audit", WAIT));
    assert!(log.contains("policy.update") && log.contains("list:wanted") && log.contains("Olga Ops"), "{log}");
    assert!(log.contains(r#""threshold":0.93"#), "{log}");
    b.screenshot("admin-audit");
    srv.stop();
}
