//! A real `facewatch serve` process on a free loopback port, driven over HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_facewatch")
}

/// Creates a token with the CLI (as an operator would) and returns its secret.
pub fn token(data: &Path, role: &str, name: &str) -> String {
    create_token(data, role, name, &[])
}

/// Creates a camera token bound to `cameras` with the CLI and returns its secret.
pub fn camera_token(data: &Path, name: &str, cameras: &[&str]) -> String {
    create_token(data, "camera", name, cameras)
}

fn create_token(data: &Path, role: &str, name: &str, cameras: &[&str]) -> String {
    let mut args = vec!["--data-dir", data.to_str().unwrap(), "token", "create", "--role", role, "--name", name];
    for c in cameras {
        args.extend(["--camera", c]);
    }
    let out = Command::new(bin()).args(args).output().expect("run facewatch token create");
    assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub struct Server {
    child: Child,
    pub url: String,
    pub data: PathBuf,
}

impl Server {
    /// Starts the service on `data` with extra `FACEWATCH_*` settings; waits until it listens.
    pub fn start(data: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin());
        cmd.arg("serve").env("FACEWATCH_SERVICE__DATA_DIR", data);
        Self::spawn(cmd, data, env)
    }

    /// Starts `facewatch serve --config FILE` (whose `data_dir` is `data`); waits until it listens.
    pub fn start_with_config(config: &Path, data: &Path) -> Self {
        let mut cmd = Command::new(bin());
        cmd.arg("serve").arg("--config").arg(config).env_remove("FACEWATCH_SERVICE__DATA_DIR");
        Self::spawn(cmd, data, &[])
    }

    fn spawn(mut cmd: Command, data: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = cmd
            .env("FACEWATCH_SERVICE__BIND", "127.0.0.1:0")
            .env("FACEWATCH_MODELS__DIR", super::models())
            .env("FACEWATCH_SERVICE__SITE", "test-site")
            .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start facewatch serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("facewatch listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                panic!("facewatch serve did not start listening (exit: {:?})", child.try_wait());
            }
        };
        Self { child, url, data: data.to_path_buf() }
    }

    /// The server's process id (for /proc/<pid>/status).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A `kB` field of /proc/<pid>/status (`VmRSS`, `VmHWM`), in bytes.
    pub fn proc_status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("{field} missing from /proc/<pid>/status"))
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        for _ in 0..600 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("facewatch did not stop within 30 s of SIGTERM");
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A sample of `/metrics` (first line starting with `name `).
    pub fn metric(&self, name: &str) -> f64 {
        let text = String::from_utf8(self.get("/metrics", None).body).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }

    /// Waits until the outbox is empty (every event acknowledged).
    pub fn wait_delivered(&self, within: Duration) {
        let t = std::time::Instant::now();
        while self.metric("facewatch_outbox_depth") > 0.0 {
            assert!(t.elapsed() < within, "outbox still holds {} events", self.metric("facewatch_outbox_depth"));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call("GET", path, token, Body::None)
    }

    pub fn post_json(&self, path: &str, token: Option<&str>, v: &Value) -> Resp {
        self.call("POST", path, token, Body::Json(v.clone()))
    }

    pub fn frame(&self, camera: &str, token: &str, jpeg: &[u8]) -> Resp {
        let path = format!("/v1/cameras/{camera}/frames");
        self.call("POST", &path, Some(token), Body::Raw("image/jpeg".into(), jpeg.to_vec()))
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Body) -> Resp {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
        let mut r = agent.request(method, &format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        let res = match body {
            Body::None => r.call(),
            Body::Json(v) => r.set("Content-Type", "application/json").send_string(&v.to_string()),
            Body::Raw(ct, bytes) => {
                if !ct.is_empty() {
                    r = r.set("Content-Type", &ct);
                }
                r.send_bytes(&bytes)
            }
        };
        let resp = match res {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let content_type = resp.header("Content-Type").unwrap_or("").to_string();
        let retry_after = resp.header("Retry-After").map(str::to_string);
        let www_authenticate = resp.header("WWW-Authenticate").map(str::to_string);
        let mut body = Vec::new();
        resp.into_reader().take(64 << 20).read_to_end(&mut body).unwrap();
        Resp { status, body, content_type, retry_after, www_authenticate }
    }

    /// Follows `/v1/alerts/stream`; events arrive as `(event, data)` on the channel.
    pub fn sse(&self, token: &str) -> mpsc::Receiver<(String, Value)> {
        let resp = ureq::get(&format!("{}/v1/alerts/stream", self.url))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .expect("open the alert stream");
        assert_eq!(resp.header("Content-Type"), Some("text/event-stream"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || follow_sse(resp, &tx));
        rx
    }
}

/// Reads an open Server-Sent Events answer and sends each event as `(event, data)` until the
/// stream ends (returns) or nobody listens any more.
pub fn follow_sse(resp: ureq::Response, tx: &mpsc::Sender<(String, Value)>) {
    let mut event = String::new();
    for line in BufReader::new(resp.into_reader()).lines().map_while(Result::ok) {
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_string();
        } else if let Some(d) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(d).unwrap_or(Value::Null);
            if tx.send((event.clone(), v)).is_err() {
                return;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub enum Body {
    None,
    Json(Value),
    /// Content type (empty = no header) and bytes.
    Raw(String, Vec<u8>),
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub www_authenticate: Option<String>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("status {}: not JSON: {}", self.status, String::from_utf8_lossy(&self.body)))
    }

    /// The documented error shape; returns its code.
    pub fn error_code(&self) -> String {
        let v = self.json();
        assert!(v["error"]["message"].is_string(), "error shape: {v}");
        v["error"]["code"].as_str().unwrap_or_else(|| panic!("error shape: {v}")).to_string()
    }

    pub fn ok(self) -> Value {
        assert!((200..300).contains(&self.status), "status {}: {}", self.status, String::from_utf8_lossy(&self.body));
        self.json()
    }
}

/// A multipart/form-data body: text fields and (file name, content type, bytes) files.
pub fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, Vec<u8>)]) -> Body {
    let boundary = "facewatch-test-boundary-7d41";
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").bytes());
    }
    for (name, ct, data) in files {
        b.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\nContent-Type: {ct}\r\n\r\n"
            )
            .bytes(),
        );
        b.extend(data);
        b.extend(b"\r\n");
    }
    b.extend(format!("--{boundary}--\r\n").bytes());
    Body::Raw(format!("multipart/form-data; boundary={boundary}"), b)
}
