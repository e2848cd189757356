//! A real nats-server (JetStream, temp store) on a free loopback port, stopped by its PID;
//! optionally with a configuration file (accounts, permissions, limits).
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return p.into();
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/sbin", "/usr/local/bin"]) {
        let p = PathBuf::from(dir).join("nats-server");
        if p.is_file() {
            return p;
        }
    }
    panic!("nats-server not found: scripts/setup.sh installs it (apt nats-server), or set NATS_SERVER");
}

pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    store: tempfile::TempDir,
    config: Option<PathBuf>,
}

impl Nats {
    /// Reserves a port and a store without starting the server (a broker that is down).
    pub fn reserve() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self { child: None, port, store: tempfile::tempdir().unwrap(), config: None }
    }

    /// Starts a server with this configuration file text (port and store still come from the
    /// command line).
    pub fn start_with(config: &str) -> Self {
        let mut n = Self::reserve();
        let path = n.store.path().join("nats.conf");
        std::fs::write(&path, config).unwrap();
        n.config = Some(path);
        n.up();
        n
    }

    pub fn start() -> Self {
        let mut n = Self::reserve();
        n.up();
        n
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (same port, same store) and waits until it accepts connections.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut cmd = Command::new(binary());
        if let Some(c) = &self.config {
            cmd.arg("-c").arg(c);
        }
        let child = cmd
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(15), "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server by its PID (SIGTERM) and waits for it.
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }

    /// Creates the service's stream before the service does (it then uses it as it is), with
    /// a per-message size limit.
    pub fn create_stream(&self, name: &str, max_msg_size: i32) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let js = async_nats::jetstream::new(async_nats::connect(self.url()).await.unwrap());
            let cfg = async_nats::jetstream::stream::Config {
                name: name.to_string(),
                subjects: vec!["facewatch.>".into()],
                max_message_size: max_msg_size,
                ..Default::default()
            };
            js.create_stream(cfg).await.unwrap();
        });
    }

    /// Every event in the stream, read by a new durable consumer through `facewatch events tail`.
    pub fn events(&self, durable: &str) -> Vec<Value> {
        let out = Command::new(super::server::bin())
            .args(["events", "tail", "--nats", &self.url(), "--durable", durable, "--idle-exit", "1"])
            .output()
            .expect("run facewatch events tail");
        assert!(out.status.success(), "events tail: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
