//! Encryption at rest on the real service: with `[encryption] key_file` nothing biometric in
//! the data folder is readable without the key (no enrolled template's bytes, no JPEG), the
//! key rotates while the service runs, everything still reads back after a restart on the new
//! key, and the old key opens nothing. The same flow without a key finds both in clear, so
//! the search can fail. The data key itself is replaced with the service stopped (refused
//! while it runs): everything reads back after, and the old key file with the old sealed data
//! key opens neither the store nor any file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::server::{Server, bin, multipart};
use common::{colin, photo};
use serde_json::json;

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
    // The template as the service stores it (mirrored for dlib's embedder), made by the same
    // code with the same settings: the CLI's enrollment path computes it to the bit.
    let opts = facewatch::config::ServiceConfig::default().pipeline_options();
    let mut p = facewatch::pipeline::Pipeline::open(&common::models(), opts).unwrap();
    let img =
        facewatch::vision::decode::decode_file(photo_path, facewatch::vision::decode::DEFAULT_MAX_PIXELS).unwrap();
    let gate = facewatch::vision::quality::QualityGate::enrollment();
    let (face, refused) = facewatch::watchlist::enroll::examine(&mut p, &img, &gate).unwrap();
    assert!(refused.is_none(), "{refused:?}");
    let e = face.and_then(|f| f.embedding).expect("an enrollment template");
    e[..8].iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Every file under `dir` whose bytes pass `keep`.
fn files_where(dir: &Path, keep: impl Fn(&[u8]) -> bool) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if keep(&std::fs::read(&p).unwrap()) {
                hits.push(p);
            }
        }
    }
    hits
}

/// Every file under `dir` that contains `needle`.
fn files_with(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_where(dir, |bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

struct Run {
    alert: String,
}

/// A key file made by `facewatch key create`, an encrypted data folder beside it with an ops, a
/// camera (`gate-1`) and an officer token, and the settings that start the service on them.
struct Encrypted {
    key: PathBuf,
    data: PathBuf,
    ops: String,
    cam: String,
    ann: String,
    env: Vec<(&'static str, String)>,
}

impl Encrypted {
    fn new(dir: &Path) -> Self {
        let key = dir.join("facewatch.key");
        let out = cli(dir, None, &["key", "create", key.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let data = dir.join("data");
        let k = Some(key.as_path());
        let (ops, cam, ann) = (
            token(&data, k, "ops", "olga", &[]),
            token(&data, k, "camera", "gate-1", &["gate-1"]),
            token(&data, k, "officer", "ann", &[]),
        );
        let env = vec![
            ("FACEWATCH_ENCRYPTION__KEY_FILE", key.to_str().unwrap().to_string()),
            ("FACEWATCH_API__CAMERA_RESPONSE", "full".to_string()),
        ];
        Self { key, data, ops, cam, ann, env }
    }

    fn start(&self) -> Server {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start(&self.data, &env)
    }

    /// `facewatch` on the folder with the key file.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        cli(&self.data, Some(&self.key), args)
    }
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
    let f = Encrypted::new(dir.path());
    let (key, data, cam, ann) = (&f.key, &f.data, &f.cam, &f.ann);
    let s = f.start();
    let run = enroll_and_match(&s, &f.ops, cam);
    reads_back(&s, ann, &run.alert);

    // Rotate beside the running service; it keeps serving everything.
    let old = dir.path().join("old.key");
    std::fs::copy(key, &old).unwrap();
    let out = f.cli(&["key", "rotate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(std::fs::read(key).unwrap(), std::fs::read(&old).unwrap());
    reads_back(&s, ann, &run.alert);
    assert!(s.stop().success());

    let hits = files_with(data, &template);
    assert!(hits.is_empty(), "an enrolled template's bytes are readable in {hits:?}");
    let hits = files_with(data, JPEG_SOI);
    assert!(hits.is_empty(), "JPEG data is readable in {hits:?}");

    // A restart on the new key reads everything back and still matches (the index decrypts).
    let s = f.start();
    reads_back(&s, ann, &run.alert);
    let r = s.frame("gate-1", cam, &photo("faces/Colin_Powell/0005.jpg")).ok();
    assert_eq!(r["faces"][0]["matches"][0]["subject"], "colin", "{r}");
    assert!(s.stop().success());

    // The old key opens nothing.
    let out = cli(data, Some(&old), &["token", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not open"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Every file under `dir` sealed by the vault (`FWE1`), with its name.
fn sealed_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let sealed = files_where(dir, |bytes| bytes.starts_with(b"FWE1"));
    sealed.into_iter().map(|p| (p.clone(), p.file_name().unwrap().to_str().unwrap().to_string())).collect()
}

#[test]
fn the_data_key_is_replaced_with_the_service_stopped_and_the_old_pair_opens_nothing() {
    use facewatch::vault::{self, EncryptionSection};

    let dir = tempfile::tempdir().unwrap();
    let f = Encrypted::new(dir.path());
    let (key, data, ops, cam, ann) = (&f.key, &f.data, &f.ops, &f.cam, &f.ann);
    let s = f.start();
    // Two subjects, two alerts with crops.
    let Run { alert } = enroll_and_match(&s, ops, cam);
    let form = multipart(
        &[("subject", "bush"), ("name", "George W Bush")],
        &[("0001.jpg", "image/jpeg", photo("faces/George_W_Bush/0001.jpg"))],
    );
    assert_eq!(s.call("POST", "/v1/lists/wanted/subjects", Some(ops), form).ok()["templates"], 1);
    let r = s.frame("gate-1", cam, &photo("faces/George_W_Bush/0002.jpg")).ok();
    let alerts = [alert, r["alerts"][0].as_str().unwrap_or_else(|| panic!("no alert: {r}")).to_string()];

    // Refused while the service runs, and nothing changes.
    let sealed = data.join(vault::SEALED_NAME);
    let (key_before, sealed_before) = (std::fs::read(key).unwrap(), std::fs::read(&sealed).unwrap());
    let out = f.cli(&["key", "rotate", "--data-key"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it first"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((std::fs::read(key).unwrap(), std::fs::read(&sealed).unwrap()), (key_before, sealed_before));
    assert!(s.stop().success());

    // The pair a thief might have kept: the key file and the sealed data key of before.
    let thief = dir.path().join("thief");
    std::fs::create_dir(&thief).unwrap();
    std::fs::copy(key, thief.join("old.key")).unwrap();
    std::fs::copy(&sealed, thief.join(vault::SEALED_NAME)).unwrap();
    let before = sealed_files(data);
    assert!(before.len() >= 5, "2 crops, 2 references, the index: {before:?}");

    let out = f.cli(&["key", "rotate", "--data-key"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("store re-keyed") && said.contains(&format!("{} file(s) re-encrypted", before.len())),
        "{said}"
    );
    assert_ne!(std::fs::read(key).unwrap(), std::fs::read(thief.join("old.key")).unwrap(), "a new key file too");

    // A restart on the new keys: every alert, crop and reference reads back, and matching works.
    let s = f.start();
    for (a, subject) in alerts.iter().zip(["colin", "bush"]) {
        for part in ["crop", "reference"] {
            let got = s.get(&format!("/v1/alerts/{a}/{part}"), Some(ann));
            assert!(got.status == 200 && got.body.starts_with(JPEG_SOI), "{a} {part}: {}", got.status);
        }
        assert_eq!(s.get(&format!("/v1/alerts/{a}"), Some(ann)).json()["subject"], subject);
    }
    assert_eq!(s.get("/v1/alerts", Some(ann)).json()["alerts"].as_array().map(Vec::len), Some(2));
    let r = s.frame("gate-1", cam, &photo("faces/Colin_Powell/0005.jpg")).ok();
    assert_eq!(r["faces"][0]["matches"][0]["subject"], "colin", "{r}");
    assert!(s.stop().success());

    // The old pair is a real key (it opens the old sealed data key) but opens nothing here.
    let old = vault::unlock(&EncryptionSection { key_file: thief.join("old.key") }, &thief).unwrap().unwrap();
    let db = data.join("facewatch.db");
    let e = facewatch::db::open_keyed(&db, &old).err().expect("the old data key opens the store").to_string();
    assert!(e.contains("does not open"), "{e}");
    let new = vault::unlock(&EncryptionSection { key_file: key.clone() }, data).unwrap().unwrap();
    let after = sealed_files(data);
    assert_eq!(after.len(), before.len());
    for (p, name) in &after {
        let bytes = std::fs::read(p).unwrap();
        assert!(vault::open_blob(&old, name, &bytes).is_err(), "the old data key opens {}", p.display());
        assert!(vault::open_blob(&new, name, &bytes).is_ok(), "the new data key opens {}", p.display());
    }
    facewatch::db::open_keyed(&db, &new).unwrap();
}
