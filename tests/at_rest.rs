//! Encryption at rest on the real service: with `[encryption] key_file` nothing biometric in
//! the data folder is readable without the key (no enrolled template's bytes, no JPEG), the
//! key rotates while the service runs, everything still reads back after a restart on the new
//! key, and the old key opens nothing. The same flow without a key finds both in clear, so
//! the search can fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::server::{Server, bin, multipart};
use common::{colin, photo};
use serde_json::{Value, json};

const JPEG_SOI: &[u8] = b"\xff\xd8\xff";

fn cli(data: &Path, key: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(bin());
    cmd.arg("--data-dir").arg(data).args(args).env("FACEWATCH_MODELS__DIR", common::models());
    if let Some(k) = key {
        cmd.env("FACEWATCH_ENCRYPTION__KEY_FILE", k);
    }
    cmd.output().unwrap()
}

fn token(data: &Path, key: Option<&Path>, role: &str, name: &str, cameras: &[&str]) -> String {
    let mut args = vec!["token", "create", "--role", role, "--name", name];
    for c in cameras {
        args.extend(["--camera", c]);
    }
    let out = cli(data, key, &args);
    assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The first 8 floats of the enrolled photo's embedding, as stored: little-endian f32.
fn template_bytes(photo_path: &Path) -> Vec<u8> {
    let out = Command::new(bin())
        .args(["embed", "--json"])
        .arg(photo_path)
        .env("FACEWATCH_MODELS__DIR", common::models())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: Value = serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().next().unwrap()).unwrap();
    let e = line["embedding"].as_array().expect("an embedding");
    e[..8].iter().flat_map(|v| (v.as_f64().unwrap() as f32).to_le_bytes()).collect()
}

/// Every file under `dir` that contains `needle`.
fn files_with(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).unwrap().windows(needle.len()).any(|w| w == needle) {
                hits.push(p);
            }
        }
    }
    hits
}

struct Run {
    alert: String,
}

/// Enrolls Colin Powell, posts a new photo of him (one alert with a crop); returns the alert.
fn enroll_and_match(s: &Server, ops: &str, camera: &str) -> Run {
    assert_eq!(s.post_json("/v1/lists", Some(ops), &json!({"name": "wanted"})).status, 201);
    let form = multipart(&[("subject", "colin"), ("name", "Colin Powell")], &[("0001.jpg", "image/jpeg", colin(1))]);
    let r = s.call("POST", "/v1/lists/wanted/subjects", Some(ops), form).ok();
    assert_eq!(r["templates"], 1, "{r}");
    let r = s.frame("gate-1", camera, &colin(4)).ok();
    let alert = r["alerts"][0].as_str().unwrap_or_else(|| panic!("no alert: {r}")).to_string();
    Run { alert }
}

fn reads_back(s: &Server, officer: &str, alert: &str) {
    for part in ["crop", "reference"] {
        let r = s.get(&format!("/v1/alerts/{alert}/{part}"), Some(officer));
        assert_eq!(r.status, 200, "{part}");
        assert!(r.body.starts_with(JPEG_SOI), "{part} is a JPEG again when served");
    }
    assert_eq!(s.get(&format!("/v1/alerts/{alert}"), Some(officer)).json()["subject"], "colin");
}

#[test]
fn nothing_biometric_is_readable_without_the_key_and_the_key_rotates_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let template = template_bytes(&common::data().join("faces/Colin_Powell/0001.jpg"));

    // Without a key: the template's bytes and JPEGs are on disk in clear (the search works).
    let plain = dir.path().join("plain");
    let (ops, cam, ann) = (
        token(&plain, None, "ops", "olga", &[]),
        token(&plain, None, "camera", "gate-1", &["gate-1"]),
        token(&plain, None, "officer", "ann", &[]),
    );
    let s = Server::start(&plain, &[]);
    let run = enroll_and_match(&s, &ops, &cam);
    reads_back(&s, &ann, &run.alert);
    assert!(s.stop().success());
    assert!(!files_with(&plain, &template).is_empty(), "the unencrypted store holds the template");
    assert!(!files_with(&plain, JPEG_SOI).is_empty(), "the unencrypted folder holds JPEGs");

    // With a key file.
    let key = dir.path().join("facewatch.key");
    let out = cli(&plain, None, &["key", "create", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let data = dir.path().join("data");
    let k = Some(key.as_path());
    let (ops, cam, ann) = (
        token(&data, k, "ops", "olga", &[]),
        token(&data, k, "camera", "gate-1", &["gate-1"]),
        token(&data, k, "officer", "ann", &[]),
    );
    let env = [("FACEWATCH_ENCRYPTION__KEY_FILE", key.to_str().unwrap()), ("FACEWATCH_API__CAMERA_RESPONSE", "full")];
    let s = Server::start(&data, &env);
    let run = enroll_and_match(&s, &ops, &cam);
    reads_back(&s, &ann, &run.alert);

    // Rotate beside the running service; it keeps serving everything.
    let old = dir.path().join("old.key");
    std::fs::copy(&key, &old).unwrap();
    let out = cli(&data, k, &["key", "rotate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(std::fs::read(&key).unwrap(), std::fs::read(&old).unwrap());
    reads_back(&s, &ann, &run.alert);
    assert!(s.stop().success());

    let hits = files_with(&data, &template);
    assert!(hits.is_empty(), "an enrolled template's bytes are readable in {hits:?}");
    let hits = files_with(&data, JPEG_SOI);
    assert!(hits.is_empty(), "JPEG data is readable in {hits:?}");

    // A restart on the new key reads everything back and still matches (the index decrypts).
    let s = Server::start(&data, &env);
    reads_back(&s, &ann, &run.alert);
    let r = s.frame("gate-1", &cam, &photo("faces/Colin_Powell/0005.jpg")).ok();
    assert_eq!(r["faces"][0]["matches"][0]["subject"], "colin", "{r}");
    assert!(s.stop().success());

    // The old key opens nothing.
    let out = cli(&data, Some(&old), &["token", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not open"), "{}", String::from_utf8_lossy(&out.stderr));
}
