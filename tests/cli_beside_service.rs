//! The CLI next to a running service (issue 16): one config loader for every command, watch-list
//! changes refused while the service holds the data folder, and one enrollment path for the CLI
//! and the API. One service start serves all three, to keep CI time down.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::server::{Server, multipart};
use serde_json::Value;

/// Runs the CLI from `cwd` with only the config file to go by (no FACEWATCH_SERVICE__DATA_DIR).
fn cli(cwd: &Path, args: &[&str]) -> Output {
    Command::new(common::server::bin())
        .current_dir(cwd)
        .args(args)
        .env_remove("FACEWATCH_SERVICE__DATA_DIR")
        .env_remove("FACEWATCH_CONFIG")
        .env("FACEWATCH_MODELS__DIR", common::models())
        .env_remove("FACEWATCH_LOG")
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn colin(n: u32) -> std::path::PathBuf {
    common::data().join(format!("faces/Colin_Powell/{n:04}.jpg"))
}

/// (quality JSON, source) of every template in a store.
fn templates(data: &Path) -> Vec<(Value, String)> {
    let db = rusqlite::Connection::open(data.join("facewatch.db")).unwrap();
    let mut st = db.prepare("SELECT quality, source FROM templates ORDER BY id").unwrap();
    st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|r| {
            let (q, s) = r.unwrap();
            (serde_json::from_str(&q).unwrap(), s)
        })
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn config_file_for_every_command_refusal_while_serving_and_one_enrollment_path() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("x");
    let cfg = tmp.path().join("facewatch.toml");
    std::fs::write(&cfg, format!("[service]\ndata_dir = {:?}\n", data.to_str().unwrap())).unwrap();
    let cfg_arg = cfg.to_str().unwrap();

    // Item: `token create` reads the config file's data_dir (it used to write into ./data).
    let ops = ok(cli(tmp.path(), &["--config", cfg_arg, "token", "create", "--role", "ops", "--name", "olga"]));
    let ops = ops.trim().to_string();
    assert!(data.join("facewatch.db").exists(), "the token went elsewhere");
    assert!(!tmp.path().join("data").exists(), "the token was written into ./data");

    // Item: the CLI enrolls through the API's path (into a second store, with no service).
    let cli_store = tmp.path().join("cli-store");
    let o = cli(
        tmp.path(),
        &[
            "--data-dir",
            cli_store.to_str().unwrap(),
            "enroll",
            "--list",
            "wanted",
            "--subject",
            "colin",
            colin(1).to_str().unwrap(),
        ],
    );
    ok(o);

    let s = Server::start_with_config(&cfg, &data);
    // The service started from the same file accepts the token the CLI made.
    let created =
        s.post_json("/v1/lists", Some(&ops), &serde_json::json!({"name": "wanted", "policy": {"threshold": 0.93}}));
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let form = multipart(&[("subject", "colin")], &[("0001.jpg", "image/jpeg", std::fs::read(colin(1)).unwrap())]);
    let report = s.call("POST", "/v1/lists/wanted/subjects", Some(&ops), form).ok();
    assert_eq!(report["templates"], 1, "{report}");

    // Same keys (overall included), sources that name no directory, one reference image each.
    let (by_cli, by_api) = (templates(&cli_store), templates(&data));
    assert_eq!((by_cli.len(), by_api.len()), (1, 1));
    assert_eq!(keys(&by_cli[0].0), keys(&by_api[0].0));
    assert!(by_cli[0].0["overall"].is_number(), "{:?}", by_cli[0]);
    assert_eq!(by_cli[0].1, "cli:0001.jpg");
    assert_eq!(by_api[0].1, "api:0001.jpg");
    for store in [&cli_store, &data] {
        assert_eq!(std::fs::read_dir(store.join("references")).unwrap().count(), 1, "{}", store.display());
    }

    // Item: while the service holds the folder, watch-list changes are refused, changing nothing.
    for args in [
        &["remove", "--list", "wanted", "--subject", "colin"][..],
        &["threshold", "--list", "wanted", "0.5"],
        &["enroll", "--list", "wanted", "--subject", "colin", colin(2).to_str().unwrap()],
    ] {
        let o = cli(tmp.path(), &[&["--config", cfg_arg][..], args].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} ran beside the service");
        assert!(err.contains("error: the service is running on") && err.contains("use the API"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let subjects = s.get("/v1/lists/wanted/subjects", Some(&ops)).ok();
    assert_eq!(subjects["subjects"].as_array().map(Vec::len), Some(1), "{subjects}");
    // A second service on the same folder stops at start, saying why.
    let o = Command::new(common::server::bin())
        .args(["--config", cfg_arg, "serve"])
        .env_remove("FACEWATCH_SERVICE__DATA_DIR")
        .env("FACEWATCH_SERVICE__BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("is in use"), "{o:?}");
    // Read-only commands still work beside it.
    let lists: Value = serde_json::from_str(&ok(cli(tmp.path(), &["--config", cfg_arg, "lists", "--json"]))).unwrap();
    assert_eq!(lists[0]["templates"], 1, "{lists}");
    assert!((lists[0]["threshold"].as_f64().unwrap() - 0.93).abs() < 1e-6, "{lists}");
    assert_eq!(templates(&data).len(), 1);

    // Once the service has stopped, the same command works.
    assert!(s.stop().success());
    let out = ok(cli(tmp.path(), &["--config", cfg_arg, "remove", "--list", "wanted", "--subject", "colin"]));
    assert!(out.contains("1 templates purged"), "{out}");
}
