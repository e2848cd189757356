//! A real headless Chromium, driven over the W3C WebDriver protocol by Debian's `chromedriver`
//! (both installed by scripts/setup.sh). The protocol is JSON over local HTTP, spoken here with
//! the `ureq` client the tests already use: no async runtime, no extra crate.
//!
//! `Browser::start()` once per test binary (Chromium takes a second or two to start); each
//! `Browser` has its own profile, so cookies never leak between browsers. Screenshots go to
//! `target/screenshots/`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

#[derive(Clone, Debug)]
pub struct Element(String);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn json_of(r: ureq::Response) -> Option<Value> {
    serde_json::from_str(&r.into_string().ok()?).ok()
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of 1366x768 (the console's smallest
    /// supported screen).
    pub fn start() -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (scripts/setup.sh installs chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = agent().get(&format!("{base}/status")).call().ok().and_then(json_of);
            if ready.is_some_and(|v| v["value"]["ready"] == true) {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1366,768", "--force-device-scale-factor=1", "--no-first-run",
                         "--autoplay-policy=no-user-gesture-required",
                         format!("--user-data-dir={}", profile.path().display())],
            },
        }}});
        let mut b = Browser { driver, base, session: String::new(), _profile: profile };
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        // The window's frame takes some of its height: grow it until the page sees 1366x768.
        let inner = b.exec("return [window.innerWidth, window.innerHeight]");
        let (w, h) = (inner[0].as_i64().unwrap_or(1366), inner[1].as_i64().unwrap_or(768));
        if (w, h) != (1366, 768) {
            let rect = json!({"width": 1366 + 1366 - w, "height": 768 + 768 - h});
            b.cmd("POST", "/window/rect", Some(rect));
        }
        b
    }

    /// One WebDriver command; its `value`. An error answer panics with WebDriver's message.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let r = agent().request(method, &url);
        let res = match body {
            Some(b) => r.set("Content-Type", "application/json").send_string(&b.to_string()),
            None => r.call(),
        };
        match res {
            Ok(resp) => json_of(resp).map(|v| v["value"].clone()).unwrap_or(Value::Null),
            Err(ureq::Error::Status(code, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                panic!("webdriver {method} {path}: {code} {text}")
            }
            Err(e) => panic!("webdriver {method} {path}: {e}"),
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap_or_default().to_string()
    }

    pub fn title(&self) -> String {
        self.cmd("GET", "/title", None).as_str().unwrap_or_default().to_string()
    }

    /// The page's HTML as the browser holds it now (after scripts ran).
    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None).as_str().unwrap_or_default().to_string()
    }

    /// The elements matching a CSS selector now (none is not an error).
    pub fn all(&self, css: &str) -> Vec<Element> {
        let v = self.cmd("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        v.as_array()
            .map(|a| a.iter().filter_map(|e| e[ELEMENT].as_str()).map(|s| Element(s.to_string())).collect())
            .unwrap_or_default()
    }

    pub fn find(&self, css: &str) -> Option<Element> {
        self.all(css).into_iter().next()
    }

    /// Waits up to `within` for `css` to match; panics naming the selector (and the page).
    pub fn wait(&self, css: &str, within: Duration) -> Element {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            if Instant::now() > deadline {
                panic!("{css} did not appear within {within:?} on {}:\n{}", self.url(), self.source());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the text of `css` contains `text`.
    pub fn wait_text(&self, css: &str, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(t) = self.find(css).map(|e| self.text(&e))
                && t.contains(text)
            {
                return t;
            }
            if Instant::now() > deadline {
                let now = self.find(css).map(|e| self.text(&e));
                panic!("{css} did not say {text:?} within {within:?} (it says {now:?}) on {}", self.url());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn text(&self, e: &Element) -> String {
        self.cmd("GET", &format!("/element/{}/text", e.0), None).as_str().unwrap_or_default().to_string()
    }

    pub fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.cmd("GET", &format!("/element/{}/attribute/{name}", e.0), None).as_str().map(str::to_string)
    }

    pub fn click(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(json!({})));
    }

    /// Types into an element (a token field, a note).
    pub fn type_into(&self, e: &Element, text: &str) {
        self.cmd("POST", &format!("/element/{}/value", e.0), Some(json!({"text": text})));
    }

    /// Presses keys on whatever has focus, as a person would (`"\u{E007}"` is Enter).
    pub fn keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for k in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": k.to_string()}));
            actions.push(json!({"type": "keyUp", "value": k.to_string()}));
        }
        self.cmd("POST", "/actions", Some(json!({"actions": [{"type": "key", "id": "kbd", "actions": actions}]})));
        self.cmd("DELETE", "/actions", None);
    }

    /// Runs a script in the page (for what a person sees but a selector cannot ask, e.g. focus).
    pub fn exec(&self, script: &str) -> Value {
        self.cmd("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    /// Saves a PNG of the window as `target/screenshots/<name>.png`; its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap()).unwrap();
        let dir = super::root().join("target").join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Forgets the cookies (another person at the same browser).
    pub fn clear_cookies(&self) {
        self.cmd("DELETE", "/cookie", None);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = agent().delete(&format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
