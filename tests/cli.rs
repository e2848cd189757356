//! The `facewatch` binary end to end on real photos: enroll, identify, lists, remove, embed,
//! refusals with reasons, and bad inputs that must fail with one clear line (never a panic).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Cli {
    data: tempfile::TempDir,
    models: PathBuf,
}

impl Cli {
    fn new() -> Self {
        Self::with_models(common::models())
    }

    fn with_models(models: PathBuf) -> Self {
        Self { data: tempfile::tempdir().unwrap(), models }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_facewatch"))
            .args(args)
            .env("FACEWATCH_SERVICE__DATA_DIR", self.data.path())
            .env("FACEWATCH_MODELS__DIR", &self.models)
            .env_remove("FACEWATCH_LOG")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs a command that must fail cleanly; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(!err.contains("panicked") && !err.contains("stack backtrace"), "{args:?} panicked: {err}");
        assert!(err.lines().any(|l| l.starts_with("error:") || l.starts_with("refused")), "{args:?}: {err}");
        err
    }
}

fn face(rel: &str) -> String {
    common::data().join("faces").join(rel).display().to_string()
}

fn identify(cli: &Cli, img: &str) -> Value {
    let out = cli.ok(&["identify", "--json", img]);
    serde_json::from_str(out.lines().next().unwrap()).unwrap()
}

fn statuses(v: &Value) -> Vec<String> {
    v["faces"].as_array().unwrap().iter().map(|f| f["status"].as_str().unwrap().to_string()).collect()
}

#[test]
fn enroll_identify_list_remove() {
    let cli = Cli::new();
    let out = cli.ok(&[
        "enroll",
        "--list",
        "wanted",
        "--subject",
        "George_W_Bush",
        "--name",
        "George W Bush",
        &face("George_W_Bush/0001.jpg"),
        &face("George_W_Bush/0002.jpg"),
    ]);
    assert!(out.contains("2 template(s)"), "{out}");
    cli.ok(&["enroll", "--list", "wanted", "--subject", "Colin_Powell", &face("Colin_Powell/0001.jpg")]);
    cli.ok(&[
        "enroll",
        "--list",
        "overstay",
        "--threshold",
        "0.93",
        "--subject",
        "Tony_Blair",
        &face("Tony_Blair/0002.jpg"),
        &face("Tony_Blair/0003.jpg"),
    ]);

    let lists: Value = serde_json::from_str(&cli.ok(&["lists", "--json"])).unwrap();
    let wanted = lists.as_array().unwrap().iter().find(|l| l["name"] == "wanted").unwrap();
    assert_eq!(wanted["subjects"], 2);
    assert_eq!(wanted["templates"], 3);
    let overstay = lists.as_array().unwrap().iter().find(|l| l["name"] == "overstay").unwrap();
    assert!((overstay["threshold"].as_f64().unwrap() - 0.93).abs() < 1e-6);

    // Another photo of an enrolled person matches, in the right list, above its threshold.
    let v = identify(&cli, &face("George_W_Bush/0010.jpg"));
    let m = &v["faces"][0]["matches"][0];
    assert_eq!(m["subject"], "George_W_Bush", "{v}");
    assert_eq!(m["list"], "wanted");
    assert_eq!(m["name"], "George W Bush");
    assert!(m["score"].as_f64().unwrap() >= m["threshold"].as_f64().unwrap());
    let v = identify(&cli, &face("Tony_Blair/0006.jpg"));
    assert_eq!(v["faces"][0]["matches"][0]["list"], "overstay", "{v}");

    // A passer-by who is on no list is unknown.
    let v = identify(&cli, &face("Aaron_Sorkin/0001.jpg"));
    assert_eq!(statuses(&v), vec!["unknown"], "{v}");

    // Human-readable output names the match.
    let text = cli.ok(&["identify", &face("Colin_Powell/0005.jpg")]);
    assert!(text.contains("MATCH wanted/Colin_Powell"), "{text}");

    // Removal purges the templates: the person is no longer found.
    let out = cli.ok(&["remove", "--list", "wanted", "--subject", "George_W_Bush"]);
    assert!(out.contains("2 templates purged"), "{out}");
    let v = identify(&cli, &face("George_W_Bush/0010.jpg"));
    assert!(v["faces"][0]["matches"].as_array().unwrap().iter().all(|m| m["subject"] != "George_W_Bush"), "{v}");
    let err = cli.fails(&["remove", "--list", "wanted", "--subject", "George_W_Bush"]);
    assert!(err.contains("unknown subject"), "{err}");
    let err = cli.fails(&["remove", "--list", "nope", "--subject", "x"]);
    assert!(err.contains("unknown watch list: nope"), "{err}");
}

#[test]
fn corrupt_or_missing_index_is_rebuilt_from_the_store() {
    let cli = Cli::new();
    cli.ok(&["enroll", "--list", "wanted", "--subject", "Colin_Powell", &face("Colin_Powell/0001.jpg")]);
    let index_dir = cli.data.path().join("index");
    let files: Vec<PathBuf> = std::fs::read_dir(&index_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "faiss"))
        .collect();
    assert_eq!(files.len(), 1);
    std::fs::write(&files[0], b"garbage, not a FAISS index").unwrap();
    let v = identify(&cli, &face("Colin_Powell/0005.jpg"));
    assert_eq!(v["faces"][0]["matches"][0]["subject"], "Colin_Powell", "{v}");
    std::fs::remove_file(&files[0]).unwrap();
    let v = identify(&cli, &face("Colin_Powell/0005.jpg"));
    assert_eq!(v["faces"][0]["matches"][0]["subject"], "Colin_Powell", "{v}");
}

#[test]
fn import_a_folder_with_a_summary_of_refusals() {
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    for (who, n) in [("Colin_Powell", 2), ("Tony_Blair", 3)] {
        let d = dir.path().join(who);
        std::fs::create_dir(&d).unwrap();
        for i in 1..=n {
            std::fs::copy(face(&format!("{who}/{i:04}.jpg")), d.join(format!("{i}.jpg"))).unwrap();
        }
    }
    let d = dir.path().join("Nobody");
    std::fs::create_dir(&d).unwrap();
    std::fs::copy(common::data().join("nonface/coffee.jpg"), d.join("1.jpg")).unwrap();
    let out = cli.ok(&["import", "--list", "wanted", dir.path().to_str().unwrap()]);
    assert!(out.contains("imported 2/3 subjects"), "{out}");
    assert!(out.contains("no face found"), "{out}");
    assert!(out.contains("Nobody"), "{out}");
    let v = identify(&cli, &face("Tony_Blair/0006.jpg"));
    assert_eq!(v["faces"][0]["matches"][0]["subject"], "Tony_Blair");
}

fn write_jpeg(path: &Path, img: &image::RgbImage) {
    img.save_with_format(path, image::ImageFormat::Jpeg).unwrap();
}

#[test]
fn bad_enrollment_photos_are_refused_with_the_reason() {
    let cli = Cli::new();
    let tmp = tempfile::tempdir().unwrap();
    let src = image::open(face("George_W_Bush/0001.jpg")).unwrap().to_rgb8();
    let small = tmp.path().join("small.jpg");
    write_jpeg(&small, &image::imageops::resize(&src, 80, 80, image::imageops::FilterType::Triangle));
    let blurry = tmp.path().join("blurry.jpg");
    write_jpeg(&blurry, &image::imageops::blur(&src, 4.0));
    let cases = [
        (common::data().join("nonface/coffee.jpg").display().to_string(), "no face found"),
        (common::data().join("multiface/selfie.jpg").display().to_string(), "faces found, exactly one expected"),
        (small.display().to_string(), "face too small"),
        (blurry.display().to_string(), "too blurry"),
    ];
    for (img, reason) in &cases {
        let err = cli.fails(&["enroll", "--list", "wanted", "--subject", "X", img]);
        assert!(err.contains(reason), "{img}: expected {reason:?}, got {err}");
    }
    // A good photo next to a bad one: the good one is enrolled, the bad one reported.
    let o = cli.run(&["enroll", "--list", "wanted", "--subject", "X", &face("George_W_Bush/0001.jpg"), &cases[0].0]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no face found"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 template(s), 1 photo(s) refused"));
}

/// CRC-32 (IEEE) for hand-made PNG chunks.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    out
}

#[test]
fn bad_inputs_fail_with_one_clear_line() {
    let cli = Cli::new();
    let tmp = tempfile::tempdir().unwrap();
    let jpeg = std::fs::read(face("George_W_Bush/0001.jpg")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated.jpg", jpeg[..jpeg.len() / 3].to_vec(), "corrupt or truncated"),
        ("empty.jpg", Vec::new(), "zero bytes"),
        ("notes.jpg", b"this is a text file, not a photo\n".to_vec(), "not a supported image"),
        ("bomb.png", png_header_only(20_000, 20_000), "image too large"),
    ];
    for (name, bytes, want) in &cases {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let p = p.display().to_string();
        for cmd in [vec!["identify", p.as_str()], vec!["embed", "--json", p.as_str()]] {
            let err = cli.fails(&cmd);
            assert!(err.contains(want), "{cmd:?}: expected {want:?}, got {err}");
            assert_eq!(err.lines().count(), 1, "{cmd:?}: one line, got {err}");
        }
        let err = cli.fails(&["enroll", "--list", "wanted", "--subject", "X", &p]);
        assert!(err.contains(want), "enroll {name}: {err}");
    }
    let err = cli.fails(&["identify", "/no/such/file.jpg"]);
    assert!(err.contains("No such file"), "{err}");
}

#[test]
fn embed_json_is_the_evaluation_interface() {
    let cli = Cli::new();
    let nonface = common::data().join("nonface/coffee.jpg").display().to_string();
    let out = cli.ok(&["embed", "--json", &face("George_W_Bush/0001.jpg"), &nonface]);
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let f = &lines[0];
    assert_eq!(f["file"], face("George_W_Bush/0001.jpg"));
    assert_eq!(f["bbox"].as_array().unwrap().len(), 4);
    assert!(f["score"].as_f64().unwrap() > 0.9);
    let lm = f["landmarks"].as_array().unwrap();
    assert_eq!(lm.len(), 5);
    assert!(lm.iter().all(|p| p.as_array().unwrap().len() == 2));
    let e: Vec<f64> = f["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(e.len(), 128);
    assert!((e.iter().map(|x| x * x).sum::<f64>().sqrt() - 1.0).abs() < 1e-4);
    assert_eq!(lines[1], serde_json::json!({"file": nonface, "faces": 0}));
}

#[test]
fn missing_models_are_a_clear_error() {
    let models = tempfile::tempdir().unwrap();
    std::fs::copy(common::models().join("manifest.toml"), models.path().join("manifest.toml")).unwrap();
    let cli = Cli::with_models(models.path().to_path_buf());
    let photo = face("George_W_Bush/0001.jpg");
    let err = cli.fails(&["embed", "--json", &photo]);
    assert!(err.contains("model file missing"), "{err}");
    // A file that is not the manifest's model is refused by its checksum.
    std::fs::write(models.path().join("face_detection_yunet_2023mar_dynamic.onnx"), b"not a model").unwrap();
    let err = cli.fails(&["embed", "--json", &photo]);
    assert!(err.contains("sha256"), "{err}");
}

#[test]
fn an_installed_binary_never_looks_for_models_in_the_build_tree() {
    // Run from a folder without models and no models folder configured: the binary must fail
    // naming where it looked (here, next to it), not quietly load the source tree's models.
    let cwd = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_facewatch"))
        .args(["embed", "--json", &face("George_W_Bush/0001.jpg")])
        .current_dir(cwd.path())
        .env("FACEWATCH_SERVICE__DATA_DIR", cwd.path().join("data"))
        .env_remove("FACEWATCH_MODELS__DIR")
        .env_remove("FACEWATCH_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "loaded models from somewhere: {err}");
    assert!(err.contains("models not found"), "{err}");
    let here = cwd.path().canonicalize().unwrap().join("models");
    assert!(err.contains(&here.display().to_string()), "names where it looked: {err}");
    let source_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    assert!(!err.contains(&format!("{}/", source_tree.display())), "{err}");
    assert!(!err.contains(&format!("{} ", source_tree.display())), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn old_setting_names_are_refused_and_url_credentials_never_printed() {
    let cli = Cli::new();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let o = Command::new(env!("CARGO_BIN_EXE_facewatch"))
            .args(args)
            .env("FACEWATCH_SERVICE__DATA_DIR", cli.data.path())
            .env("FACEWATCH_MODELS__DIR", &cli.models)
            .env_remove("FACEWATCH_LOG")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };
    // An operator upgrading with the flat variable of before is told where it went.
    let (ok, out) = run(&["lists"], &[("FACEWATCH_DATA_DIR", "/srv/old")]);
    assert!(!ok && out.contains("data_dir is now [service] data_dir / FACEWATCH_SERVICE__DATA_DIR"), "{out}");
    // ... and so is a flat key in a file, without the password in it.
    let file = cli.data.path().join("old.toml");
    std::fs::write(&file, "nats_url = \"nats://fw:n4ts-pa55@hq:4222\"\n").unwrap();
    let (ok, out) = run(&["--config", file.to_str().unwrap(), "lists"], &[]);
    assert!(!ok && out.contains("nats_url is now [events] nats_url / FACEWATCH_EVENTS__NATS_URL"), "{out}");
    assert!(!out.contains("n4ts-pa55"), "{out}");
    // A refused webhook URL is named with its credentials redacted.
    let hook = [("FACEWATCH_EVENTS__WEBHOOK_URL", "ftp://u:h00k-pa55@h/in?token=t0k3n")];
    let (ok, out) = run(&["lists"], &[hook[0], ("FACEWATCH_EVENTS__WEBHOOK_SECRET", "0123456789abcdef")]);
    assert!(!ok && out.contains("webhook_url \"ftp://u:***@h/in?token=***\""), "{out}");
    assert!(!out.contains("h00k-pa55") && !out.contains("t0k3n"), "{out}");
    // Help shows which variable `events tail` reads, never its value.
    let (ok, out) =
        run(&["events", "tail", "--help"], &[("FACEWATCH_EVENTS__NATS_URL", "nats://fw:n4ts-pa55@hq:4222")]);
    assert!(ok && out.contains("FACEWATCH_EVENTS__NATS_URL") && !out.contains("n4ts-pa55"), "{out}");
}

#[test]
fn eval_writes_the_report_and_charts_ops_read() {
    // A small labelled folder: the first 60 identities of the development faces, up to 3 photos
    // each (identities with one photo are the non-mated probes). No pairs file: no verification.
    let (faces, photos) = common::labelled_folder(60);
    let cli = Cli::new();
    let dir = faces.path().to_str().unwrap();
    assert!(cli.fails(&["eval", dir, "--target-fpir", "2"]).contains("--target-fpir"));
    let out: Value = serde_json::from_str(&cli.ok(&["eval", dir, "--target-fpir", "0.05"])).unwrap();

    // Where the service's ops pages read it, with its charts.
    let eval_dir = cli.data.path().join("eval");
    let report: Value = serde_json::from_slice(&std::fs::read(eval_dir.join("latest.json")).unwrap()).unwrap();
    assert_eq!(report["schema"], "facewatch.eval.v1");
    assert_eq!(report["images"], photos);
    assert_eq!(report["verification"], Value::Null);
    // Printed and written alike (the threshold is an f32: compared as one).
    let f32_of = |v: &Value| v.as_f64().unwrap() as f32;
    for k in ["threshold", "fpir", "fnir"] {
        assert_eq!(f32_of(&out["recommended"][k]), f32_of(&report["recommended"][k]), "{k}");
    }
    let ident = &report["identification"];
    let n = |v: &Value| v.as_u64().unwrap();
    assert_eq!(n(&ident["gallery"]) + n(&ident["mated"]) + n(&ident["non_mated"]), photos);
    let scores = &report["scores"];
    assert_eq!(scores["mated_total"], ident["mated"]);
    assert_eq!(scores["non_mated_total"], ident["non_mated"]);
    let list = |v: &Value| -> Vec<f32> { v.as_array().unwrap().iter().map(f32_of).collect() };
    let (hits, non) = (list(&scores["mated_hits"]), list(&scores["non_mated"]));
    assert!(hits.len() > 10 && non.len() > 10, "{} mated hits, {} non-mated scores", hits.len(), non.len());
    assert!(hits.is_sorted() && non.is_sorted());
    // The recommended threshold keeps FPIR at or under the target, and the report's rates are
    // the scores' own.
    let rec = &report["recommended"];
    let t = f32_of(&rec["threshold"]);
    let fpir = non.iter().filter(|s| **s >= t).count() as f64 / n(&scores["non_mated_total"]) as f64;
    let fnir = 1.0 - hits.iter().filter(|s| **s >= t).count() as f64 / n(&scores["mated_total"]) as f64;
    assert!(fpir <= 0.05, "{rec}");
    assert!((rec["fpir"].as_f64().unwrap() - fpir).abs() < 1e-9 && (rec["fnir"].as_f64().unwrap() - fnir).abs() < 1e-9);
    let det = report["det"].as_array().unwrap();
    assert!(det.windows(2).all(|w| w[0]["fpir"].as_f64() >= w[1]["fpir"].as_f64()));
    let h = &report["histogram"];
    assert_eq!(list(&h["mated"]).iter().sum::<f32>() as usize, hits.len());
    assert_eq!(list(&h["non_mated"]).iter().sum::<f32>() as usize, non.len());
    for chart in ["det", "histogram"] {
        let svg = std::fs::read_to_string(eval_dir.join(format!("{chart}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<path"), "{chart}.svg");
        let png = image::open(eval_dir.join(format!("{chart}.png"))).unwrap();
        assert_eq!((png.width(), png.height()), (960, 600));
    }
    assert!(!eval_dir.read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
}

#[test]
fn eval_reviews_counts_confirmed_and_dismissed_alerts_by_score() {
    use facewatch::access::{Principal, Role};
    use facewatch::alerts::{AlertStore, Decision, ModelId, ModelIds, NewAlert, Raised};
    let cli = Cli::new();
    // Reviewed alerts as the service stores them: 0.95 confirmed, 0.97 dismissed, 0.99 left open.
    let mut store = AlertStore::open(&cli.data.path().join("facewatch.db")).unwrap();
    let model = ModelId { name: "m".into(), sha256: "0".repeat(64) };
    let officer =
        Principal { token_id: 1, name: "o".into(), role: Role::Officer, principal: "p".into(), cameras: vec![] };
    for (i, (score, decision)) in
        [(0.95, Some(Decision::Confirm)), (0.97, Some(Decision::Dismiss)), (0.99, None)].into_iter().enumerate()
    {
        let mut a = NewAlert {
            site: "s".into(),
            camera: "gate-1".into(),
            captured_ms: 0,
            list: "wanted".into(),
            subject: format!("s{i}"),
            subject_name: None,
            template_id: 1,
            score,
            threshold: 0.94,
            severity: facewatch::watchlist::policy::Severity::High,
            bbox: [0.0; 4],
            quality: Default::default(),
            models: ModelIds { detector: model.clone(), embedder: model.clone() },
            retention_days: 30,
            has_crop: false,
            shared_crop: None,
        };
        let Raised::Created(alert) = store.raise(&mut a, 0, |_, _| {}, |_| {}).unwrap() else { panic!() };
        if let Some(d) = decision {
            store.review(&alert.id, &officer, d, None).unwrap();
        }
    }
    drop(store);
    let out = cli.ok(&["eval", "reviews", "--threshold", "0.96", "--threshold", "0.9"]);
    let line: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(line["list"], "wanted");
    let rates: Vec<(f64, u64, u64)> = line["rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["threshold"].as_f64().unwrap(), r["confirmed"].as_u64().unwrap(), r["dismissed"].as_u64().unwrap()))
        .collect();
    assert_eq!(rates.len(), 2);
    assert_eq!((rates[0].1, rates[0].2), (1, 1), "at 0.9: {rates:?}");
    assert_eq!((rates[1].1, rates[1].2), (0, 1), "at 0.96: {rates:?}");
    assert_eq!(line["rates"][0]["confirm_rate"], 0.5);
}

#[test]
fn eval_video_recommends_a_threshold_for_each_rule() {
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip");
    let (clip_s, data) = (clip.display().to_string(), common::data().display().to_string());
    let small = ["--passes", "4", "--enrolled", "2", "--width", "480", "--height", "270", "--fps", "5"];
    let mut args = vec!["eval", "clip", "--seed", "5", "--out", clip_s.as_str(), "--data", data.as_str()];
    args.extend(small);
    cli.ok(&args);
    let t = std::time::Instant::now();
    let out = cli.ok(&["eval", "video", "--clip", &clip_s, "--list-size", "40", "--target-tpir", "0.5"]);
    eprintln!("eval video: {:.1} s", t.elapsed().as_secs_f64());
    assert!(out.contains("| frame | 0.940 |") && out.contains("| track | 0.950 |"), "{out}");
    assert!(out.contains("recommended frame rule: threshold = "), "{out}");
    assert!(out.contains("recommended track rule: track_threshold = "), "{out}");
    let json: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let (frame, track) = (json["threshold"].as_f64().unwrap(), json["track_threshold"].as_f64().unwrap());
    assert!((0.9..=0.98).contains(&frame) && (0.9..=0.98).contains(&track), "{json}");
    assert!(json["track"]["pass_tpir"].as_f64().unwrap() >= 0.5, "{json}");

    let err = cli.fails(&["eval", "video", "--clip", &dir.path().join("nothing").display().to_string()]);
    assert!(err.contains("manifest.json missing"), "{err}");
}
