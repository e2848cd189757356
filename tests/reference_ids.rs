//! An alert keeps the reference image it was raised against, or none: a deleted template's id
//! is never handed to a newer subject (issue 15, item 2). A real `facewatch serve`, real photos.

mod common;

use common::photo;
use common::server::{Body, Server, camera_token, multipart, token};
use serde_json::json;

#[test]
fn an_old_alert_never_shows_a_newer_subjects_face() {
    let dir = tempfile::tempdir().unwrap();
    let (ops, camera, officer) = (
        token(dir.path(), "ops", "olga"),
        camera_token(dir.path(), "gate-1", &["gate-1"]),
        token(dir.path(), "officer", "ann"),
    );
    let s = Server::start(dir.path(), &[]);
    let created = s.post_json("/v1/lists", Some(&ops), &json!({"name": "wanted", "policy": {"threshold": 0.93}}));
    assert_eq!(created.status, 201);
    let enroll = |subject: &str, rel: &str| {
        let form = multipart(&[("subject", subject)], &[("a.jpg", "image/jpeg", photo(&format!("faces/{rel}")))]);
        let r = s.call("POST", "/v1/lists/wanted/subjects", Some(&ops), form).ok();
        r["images"][0]["template_id"].as_i64().unwrap_or_else(|| panic!("no template: {r}"))
    };

    // A is the last subject enrolled; an alert is raised against A's template.
    let a_tid = enroll("colin", "Colin_Powell/0001.jpg");
    let r = s.frame("gate-1", &camera, &photo("faces/Colin_Powell/0004.jpg")).ok();
    let alert = r["alerts"][0].as_str().unwrap_or_else(|| panic!("no alert: {r}")).to_string();
    let reference = format!("/v1/alerts/{alert}/reference");
    let a_face = s.get(&reference, Some(&officer));
    assert_eq!(a_face.status, 200);

    // A is deleted and B enrolled: B must not inherit A's template id, nor its alert.
    s.call("DELETE", "/v1/lists/wanted/subjects/colin", Some(&ops), Body::None).ok();
    let b_tid = enroll("george", "George_W_Bush/0001.jpg");
    assert!(b_tid > a_tid, "template id {a_tid} of the deleted subject was reused ({b_tid})");
    let after = s.get(&reference, Some(&officer));
    assert_eq!(
        (after.status, after.error_code().as_str()),
        (404, "not_found"),
        "the old alert's reference must be gone, not another subject's face"
    );
    let view = s.get(&format!("/v1/alerts/{alert}"), Some(&officer)).ok();
    assert_eq!(view["reference_url"], json!(null), "{view}");
    assert_eq!(view["subject"], "colin", "the alert record itself stays");

    // A store that reused the id before it was migrated: B's template now carries the id the
    // alert names, with B's image under that name. The alert's subject differs: still 404.
    assert!(s.stop().success());
    let db = rusqlite::Connection::open(dir.path().join("facewatch.db")).unwrap();
    db.execute("UPDATE templates SET id = ?1 WHERE id = ?2", [a_tid, b_tid]).unwrap();
    drop(db);
    let refs = dir.path().join("references");
    std::fs::rename(refs.join(format!("{b_tid}.jpg")), refs.join(format!("{a_tid}.jpg"))).unwrap();
    let s = Server::start(dir.path(), &[]);
    let reused = s.get(&reference, Some(&officer));
    assert_eq!(reused.status, 404, "the template named by the alert belongs to another subject now");
    assert_eq!(s.get(&format!("/v1/alerts/{alert}"), Some(&officer)).ok()["reference_url"], json!(null));

    // Ids come from the store, not from memory: after a restart they still count up.
    s.call("DELETE", "/v1/lists/wanted/subjects/george", Some(&ops), Body::None).ok();
    let form =
        multipart(&[("subject", "gerhard")], &[("a.jpg", "image/jpeg", photo("faces/Gerhard_Schroeder/0001.jpg"))]);
    let r = s.call("POST", "/v1/lists/wanted/subjects", Some(&ops), form).ok();
    assert!(r["images"][0]["template_id"].as_i64().unwrap() > b_tid, "{r}");
    assert_eq!(s.get(&reference, Some(&officer)).status, 404);
}
