//! The ops and admin pages of the console over HTTP, on a real `facewatch serve` and a real
//! evaluation report (`facewatch eval` on a small labelled folder): ops preview a threshold
//! change, then apply it, and it is in the audit log; roles are refused each other's pages;
//! admin creates a token (shown once) and revokes it; the audit page shows the chain's check.

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::server::{self, Server};
use serde_json::{Value, json};

/// A signed-in browser without JavaScript: its session cookie and the CSRF token of the last page.
struct Browser {
    url: String,
    agent: ureq::Agent,
    cookie: String,
    csrf: String,
}

struct Page {
    status: u16,
    location: Option<String>,
    content_type: String,
    body: String,
}

impl Browser {
    fn sign_in(url: &str, token: &str) -> Self {
        // No redirects followed: the session cookie is on the 303 itself.
        let agent = ureq::AgentBuilder::new().redirects(0).timeout(Duration::from_secs(60)).build();
        let resp = agent.post(&format!("{url}/signin")).set("Origin", url).send_form(&[("token", token)]).unwrap();
        assert_eq!(resp.status(), 303, "sign-in");
        let set = resp.header("Set-Cookie").expect("session cookie").to_string();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
        let cookie = set.split(';').next().unwrap().to_string();
        Self { url: url.to_string(), agent, cookie, csrf: String::new() }
    }

    fn read(&mut self, res: Result<ureq::Response, ureq::Error>) -> Page {
        let resp = match res {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        let status = resp.status();
        let location = resp.header("Location").map(str::to_string);
        let content_type = resp.header("Content-Type").unwrap_or("").to_string();
        let mut body = String::new();
        resp.into_reader().take(8 << 20).read_to_string(&mut body).unwrap();
        if let Some(i) = body.find(r#"name="csrf" value=""#) {
            let rest = &body[i + r#"name="csrf" value=""#.len()..];
            self.csrf = rest[..rest.find('"').unwrap()].to_string();
        }
        Page { status, location, content_type, body }
    }

    fn get(&mut self, path: &str) -> Page {
        let res = self.agent.get(&format!("{}{path}", self.url)).set("Cookie", &self.cookie).call();
        self.read(res)
    }

    /// Posts a form as the page's own would: same origin, with the CSRF token unless `csrf` is false.
    fn post(&mut self, path: &str, fields: &[(&str, &str)], csrf: bool) -> Page {
        let token = self.csrf.clone();
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        if csrf {
            all.push(("csrf", &token));
        }
        let res = self
            .agent
            .post(&format!("{}{path}", self.url))
            .set("Cookie", &self.cookie)
            .set("Origin", &self.url)
            .send_form(&all);
        self.read(res)
    }
}

/// The first `n` identities of the development faces, up to 3 photos each.
fn labelled_folder(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut ids: Vec<PathBuf> = std::fs::read_dir(common::data().join("faces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    ids.sort();
    for id in ids.iter().take(n) {
        let mut jpgs: Vec<PathBuf> = std::fs::read_dir(id).unwrap().map(|e| e.unwrap().path()).collect();
        jpgs.sort();
        let d = dir.path().join(id.file_name().unwrap());
        std::fs::create_dir(&d).unwrap();
        for j in jpgs.iter().take(3) {
            std::fs::copy(j, d.join(j.file_name().unwrap())).unwrap();
        }
    }
    dir
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
    let faces = labelled_folder(40);
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
    let mut officer = Browser::sign_in(&srv.url, &officer_token);
    for path in ["/ops", &format!("/ops/lists/{IN_PATH}"), &format!("/ops/lists/{IN_PATH}/det.svg"), "/ops/status"] {
        let p = officer.get(path);
        assert_eq!(p.status, 403, "{path}");
        assert!(p.content_type.starts_with("text/html") && p.body.contains("Not allowed"), "{path}: {}", p.body);
    }

    // Ops: the list, its policy beside the evaluation's charts and expected rates.
    let mut ops = Browser::sign_in(&srv.url, &ops_token);
    let home = ops.get("/ops");
    assert_eq!(home.status, 200);
    assert!(home.body.contains(&format!(r#"href="/ops/lists/{IN_PATH}""#)), "{}", home.body);
    let page = ops.get(&format!("/ops/lists/{IN_PATH}"));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&format!(r#"src="/ops/lists/{IN_PATH}/det.svg?threshold=0.9""#)), "{}", page.body);
    assert!(page.body.contains("Expected false alarms (FPIR)"), "{}", page.body);
    // The confirmed alert counts at and above the threshold in force.
    assert!(page.body.contains("<td>0.90 (in force)</td><td>1</td><td>1</td><td>0</td>"), "{}", page.body);
    assert!(!page.body.contains("<script>") && !page.body.contains(" style="));
    let det = ops.get(&format!("/ops/lists/{IN_PATH}/det.svg?threshold=0.9"));
    assert_eq!((det.status, det.content_type.as_str()), (200, "image/svg+xml"));
    assert!(det.body.starts_with("<svg") && det.body.contains("DET curve, list O&#39;Neil watch"), "{}", det.body);
    let hist = ops.get(&format!("/ops/lists/{IN_PATH}/histogram.svg?threshold=0.95"));
    assert!(hist.status == 200 && hist.body.contains("threshold 0.950"), "{}", hist.body);

    // Preview: what changes, nothing changed yet.
    let policy = srv.get(&format!("/v1/lists/{IN_PATH}/policy"), Some(&ops_token)).ok();
    let form = policy_form(&policy, "0.955");
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let preview = ops.post(&format!("/ops/lists/{IN_PATH}/preview"), &fields, true);
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(preview.body.contains("<td>threshold</td><td>0.9</td><td>0.955</td>"), "{}", preview.body);
    assert!(preview.body.contains("Apply this policy") && preview.body.contains("(now "), "{}", preview.body);
    let unchanged = srv.get(&format!("/v1/lists/{IN_PATH}/policy"), Some(&ops_token)).ok();
    assert_eq!(unchanged["threshold"].as_f64().unwrap() as f32, 0.9, "a preview changes nothing");
    // Without the form token, or from another site, nothing is applied.
    let forged = ops.post(&format!("/ops/lists/{IN_PATH}/policy"), &fields, false);
    assert_eq!(forged.status, 403, "{}", forged.body);

    // Apply (the preview page's form), back to the list.
    let applied = ops.post(&format!("/ops/lists/{IN_PATH}/policy"), &fields, true);
    assert_eq!(applied.status, 303, "{}", applied.body);
    assert_eq!(applied.location.as_deref(), Some(format!("/ops/lists/{IN_PATH}?applied=1").as_str()));
    let now = srv.get(&format!("/v1/lists/{IN_PATH}/policy"), Some(&ops_token)).ok();
    assert_eq!(now["threshold"].as_f64().unwrap() as f32, 0.955);
    assert!(ops.get(&format!("/ops/lists/{IN_PATH}?applied=1")).body.contains("Policy applied"));
    // The status page; ops may not open the admin pages.
    let status = ops.get("/ops/status");
    assert!(status.status == 200 && status.body.contains("Frames waiting for inference"), "{}", status.body);
    assert_eq!(ops.get("/admin").status, 403);

    // Admin: the change is in the audit log, by the ops principal, old and new; the chain holds.
    let mut admin = Browser::sign_in(&srv.url, &admin_token);
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
    let page = admin.get("/admin/audit");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Chain verified: all"), "{}", page.body);
    assert!(page.body.contains("<td>policy.update</td>") && page.body.contains("Olga Ops"), "{}", page.body);

    // Admin creates a token: shown on the answer once, working, then revoked.
    admin.get("/admin");
    let created = admin.post("/admin/tokens", &[("name", "Nina <New>"), ("role", "officer")], true);
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.body.contains("Nina &lt;New&gt;"), "{}", created.body);
    let at = r#"<output id="new-token"><code>"#;
    let i = created.body.find(at).expect("the new token") + at.len();
    let secret = created.body[i..i + created.body[i..].find('<').unwrap()].to_string();
    assert_eq!(srv.get("/v1/alerts", Some(&secret)).status, 200, "the new token works");
    let list = admin.get("/admin");
    assert!(!list.body.contains(&secret), "a token is shown once");
    let tokens = srv.get("/v1/tokens", Some(&admin_token)).ok();
    let id = tokens["tokens"].as_array().unwrap().iter().find(|t| t["name"] == "Nina <New>").unwrap()["id"].clone();
    let revoked = admin.post(&format!("/admin/tokens/{id}/revoke"), &[], true);
    assert_eq!((revoked.status, revoked.location.as_deref()), (303, Some("/admin")));
    assert_eq!(srv.get("/v1/alerts", Some(&secret)).status, 401, "revoked at once");
    assert!(admin.get("/admin/audit").body.contains("<td>token.revoke</td>"));
    srv.stop();
}
