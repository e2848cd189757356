//! Hostile HTTP input against a real `facewatch serve`: seeded, mutated requests to every route
//! (multipart enrollment forms, JSON bodies, query strings, path segments, headers, image
//! bodies) over raw TCP, so that anything a client can put on the wire can be sent. Every
//! answer must be a complete response, 2xx or 4xx, every 4xx in the documented JSON error shape;
//! the process must survive with bounded memory. Pagination values get their own test: 400 or
//! a correct page, never an overflow.
//!
//! Inputs that once failed are kept as named cases (`REGRESSIONS`), run before the fuzz loop.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::photo;
use common::server::{Server, camera_token, multipart, token};
use serde_json::{Value, json};

/// Seed and size of the fuzz run (a few seconds on the 2-core CI machine); to explore further,
/// `FACEWATCH_FUZZ_SEED` and `FACEWATCH_FUZZ_REQUESTS` override them.
const SEED: u64 = 0x15_f00d_cafe;
const REQUESTS: usize = 6000;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
const MIB: u64 = 1 << 20;
const BUDGET_MB: u64 = 128;

// ---- a raw HTTP/1.1 client -------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Req {
    method: String,
    /// Path and query as sent (bytes outside the URI alphabet are percent-encoded on sending).
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// A `Content-Length` other than the body's (the body is then cut or the write side closed).
    declared: Option<usize>,
}

impl Req {
    fn new(method: &str, target: impl Into<String>) -> Self {
        Self { method: method.into(), target: target.into(), headers: Vec::new(), body: Vec::new(), declared: None }
    }

    fn header(mut self, k: &str, v: impl AsRef<[u8]>) -> Self {
        self.headers.push((k.into(), v.as_ref().to_vec()));
        self
    }

    fn auth(self, token: &str) -> Self {
        self.header("Authorization", format!("Bearer {token}"))
    }

    fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        if !content_type.is_empty() {
            self = self.header("Content-Type", content_type);
        }
        self.body = body;
        self
    }

    /// A short description for failure messages.
    fn show(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned();
        let headers: Vec<String> =
            self.headers.iter().map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v))).collect();
        format!(
            "{} {} {headers:?} declared={:?} body({})={body:?}",
            self.method,
            self.target,
            self.declared,
            self.body.len()
        )
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// Percent-encodes what may not appear in a request target (keeps `%` as sent: `%zz` and
/// `%FF` are for the server to judge).
fn wire_target(t: &str) -> String {
    let mut out = String::new();
    for b in t.bytes() {
        if b.is_ascii_alphanumeric() || b"/?&=%:@!$'()*+,;-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn send(addr: &str, r: &Req) -> Result<Resp, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head =
        format!("{} {} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n", r.method, wire_target(&r.target)).into_bytes();
    for (k, v) in &r.headers {
        head.extend(k.as_bytes());
        head.extend(b": ");
        head.extend(v);
        head.extend(b"\r\n");
    }
    let declared = r.declared.unwrap_or(r.body.len());
    if declared > 0 || !r.body.is_empty() || r.method == "POST" || r.method == "PUT" {
        head.extend(format!("Content-Length: {declared}\r\n").bytes());
    }
    head.extend(b"\r\n");
    head.extend(&r.body[..r.body.len().min(declared)]);
    s.write_all(&head).map_err(|e| format!("write: {e}"))?;
    if declared > r.body.len() {
        // A truncated upload: the client gives up sending.
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        if let Some(resp) = parse(&buf, false, r.method == "HEAD") {
            // A live stream never ends: its head is the answer.
            if resp.status == 200 && resp.content_type.starts_with("text/event-stream") {
                return Ok(resp);
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend(&chunk[..n]),
            Err(e) => return Err(format!("read after {} bytes: {e}", buf.len())),
        }
    }
    parse(&buf, true, r.method == "HEAD")
        .ok_or_else(|| format!("no complete response ({} bytes: {:?})", buf.len(), String::from_utf8_lossy(&buf)))
}

/// Status, content type and body of a response (`complete`: the connection has closed;
/// `head`: an answer to HEAD, which has no body whatever its length says).
fn parse(buf: &[u8], complete: bool, head_only: bool) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let (mut content_type, mut length, mut chunked) = (String::new(), None, false);
    for l in lines {
        let (k, v) = l.split_once(':')?;
        match k.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = v.trim().to_string(),
            "content-length" => length = v.trim().parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let raw = &buf[end + 4..];
    let body = if head_only {
        Vec::new()
    } else if chunked {
        if !complete {
            return (status == 200 && content_type.starts_with("text/event-stream")).then(|| Resp {
                status,
                content_type,
                body: Vec::new(),
            });
        }
        dechunk(raw)?
    } else {
        match length {
            Some(n) if raw.len() >= n => raw[..n].to_vec(),
            Some(_) => return None,
            None if complete => raw.to_vec(),
            None => return None,
        }
    };
    Some(Resp { status, content_type, body })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).ok()?.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// The invariants of every answer.
fn check(r: &Req, res: Result<Resp, String>) -> Resp {
    let resp = res.unwrap_or_else(|e| panic!("connection failed: {e}\n  request: {}", r.show()));
    assert!(
        resp.status < 500,
        "status {}: {}\n  request: {}",
        resp.status,
        String::from_utf8_lossy(&resp.body),
        r.show()
    );
    if (400..500).contains(&resp.status) && r.method != "HEAD" {
        assert!(
            resp.content_type.starts_with("application/json"),
            "{} as {:?}: {}",
            resp.status,
            resp.content_type,
            r.show()
        );
        let v: Value = serde_json::from_slice(&resp.body).unwrap_or_else(|_| {
            panic!("{}: not JSON: {:?}\n  request: {}", resp.status, String::from_utf8_lossy(&resp.body), r.show())
        });
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string() && v.as_object().unwrap().len() == 1,
            "{}: not the error shape: {v}\n  request: {}",
            resp.status,
            r.show()
        );
    }
    resp
}

// ---- seeded mutations ------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Values for ids, names and query parameters that a parser may trip over.
fn weird(rng: &mut Rng) -> String {
    const FIXED: &[&str] = &[
        "",
        "0",
        "-1",
        "1",
        "18446744073709551615",
        "18446744073709551616",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "4294967296",
        "1e9",
        "1.5",
        "NaN",
        "-0",
        "+7",
        " 7",
        "0x10",
        "null",
        "true",
        "[]",
        "{}",
        "..",
        "../../etc/passwd",
        "%00",
        "%FF%FE",
        "%zz",
        "%",
        "%C0%AF",
        "%ED%A0%80",
        "a%2Fb",
        "日本語",
        "😀",
        "' OR 1=1 --",
        "\"quoted\"",
        "a b",
        "a+b",
        "tab\tbed",
        "open",
        "verified",
        "wanted",
        "colin",
        "gate-1",
        "2026-01-01T00:00:00Z",
        "2026-13-45T99:99:99Z",
        "+275760-09-13T00:00:00Z",
        "-000001-01-01T00:00:00Z",
    ];
    match rng.below(10) {
        0 => "x".repeat(1 + rng.below(8000)),
        1 => (0..1 + rng.below(40)).map(|_| format!("%{:02X}", rng.below(256))).collect(),
        2 => format!("{}", rng.next() as i64),
        _ => rng.pick(FIXED).to_string(),
    }
}

/// A query string from `base` pairs, mutated: values swapped for weird ones, keys duplicated,
/// dropped, unknown or valueless.
fn query(rng: &mut Rng, base: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, Option<String>)> =
        base.iter().filter(|_| rng.chance(60)).map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect();
    for _ in 0..rng.below(4) {
        match rng.below(6) {
            0 | 1 if !base.is_empty() => {
                let (k, _) = rng.pick(base);
                pairs.push((k.to_string(), Some(weird(rng))));
            }
            2 if !pairs.is_empty() => {
                let i = rng.below(pairs.len());
                pairs.push(pairs[i].clone());
            }
            3 => pairs.push((weird(rng), Some(weird(rng)))),
            4 if !base.is_empty() => pairs.push((rng.pick(base).0.to_string(), None)),
            _ => {
                if !pairs.is_empty() {
                    let i = rng.below(pairs.len());
                    pairs[i].1 = Some(weird(rng));
                }
            }
        }
    }
    if pairs.is_empty() {
        return if rng.chance(20) { "?".into() } else { String::new() };
    }
    let q: Vec<String> = pairs.into_iter().map(|(k, v)| v.map_or(k.clone(), |v| format!("{k}={v}"))).collect();
    format!("?{}", q.join(if rng.chance(10) { "&&" } else { "&" }))
}

/// Swaps, drops or damages a JSON object's fields, or the whole document.
fn mutate_json(rng: &mut Rng, base: &Value) -> Vec<u8> {
    let mut v = base.clone();
    if let Value::Object(m) = &mut v {
        for _ in 0..1 + rng.below(3) {
            let keys: Vec<String> = m.keys().cloned().collect();
            let key = if keys.is_empty() || rng.chance(20) { weird(rng) } else { rng.pick(&keys).clone() };
            let value = match rng.below(12) {
                0 => Value::Null,
                1 => json!(rng.next() as i64),
                2 => json!(-1),
                3 => json!(u64::MAX),
                4 => json!(1e300),
                5 => json!([weird(rng)]),
                6 => json!({"nested": weird(rng)}),
                7 => json!(true),
                8 => json!("x".repeat(rng.below(200_000))),
                9 => {
                    m.remove(&key);
                    continue;
                }
                _ => json!(weird(rng)),
            };
            m.insert(key, value);
        }
    }
    let mut bytes = v.to_string().into_bytes();
    match rng.below(12) {
        0 => bytes.truncate(rng.below(bytes.len() + 1)),
        1 => {
            for _ in 0..1 + rng.below(5) {
                if !bytes.is_empty() {
                    let i = rng.below(bytes.len());
                    bytes[i] = rng.next() as u8;
                }
            }
        }
        2 => bytes = format!("{}{}", "[".repeat(1 + rng.below(20_000)), "]".repeat(rng.below(3))).into_bytes(),
        3 => bytes = br#"{"name": "a", "name": "b", "decision": "confirm", "decision": "dismiss"}"#.to_vec(),
        4 => bytes = br#"{"name": "\ud800", "note": "\u0000"}"#.to_vec(),
        5 => bytes = rng.pick(&["", "null", "[]", "1e400", "\"str\"", "{", "}"]).as_bytes().to_vec(),
        _ => {}
    }
    bytes
}

/// Damages image bytes: flipped bytes, a cut, garbage after, or a header claiming a huge size.
fn mutate_image(rng: &mut Rng, img: &[u8]) -> Vec<u8> {
    let mut b = img.to_vec();
    match rng.below(9) {
        0 => b.truncate(rng.below(b.len() + 1)),
        1 | 2 => {
            for _ in 0..1 + rng.below(30) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
        }
        3 => b.extend((0..rng.below(5000)).map(|_| rng.next() as u8)),
        4 => {
            // SOF0 dimensions: huge, zero, or random.
            if let Some(sof) = b.windows(2).position(|w| w == [0xFF, 0xC0]) {
                let dims = *rng.pick(&[[0xFFu8, 0xFF, 0xFF, 0xFF], [0, 0, 0, 0], [0, 1, 0xFF, 0xFF]]);
                b[sof + 5..sof + 9].copy_from_slice(&dims);
            }
        }
        5 => b = (0..rng.below(4000)).map(|_| rng.next() as u8).collect(),
        6 => {
            // A PNG signature and IHDR claiming 65535 x 65535 (or zero), then nothing.
            let side: u32 = *rng.pick(&[65_535, 0, 1 << 31]);
            b = [&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13][..], b"IHDR"].concat();
            b.extend(side.to_be_bytes());
            b.extend(side.to_be_bytes());
            b.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
        }
        7 => b.clear(),
        _ => {}
    }
    b
}

fn mutate_multipart(rng: &mut Rng, ctx: &Ctx) -> (String, Vec<u8>) {
    let boundary = if rng.chance(90) { "fuzz-boundary-42".to_string() } else { weird(rng) };
    let mut parts: Vec<(String, Option<String>, Option<String>, Vec<u8>)> = Vec::new();
    if rng.chance(85) {
        let subject = if rng.chance(60) { format!("s{}", rng.below(1000)) } else { weird(rng) };
        parts.push(("subject".into(), None, None, subject.into_bytes()));
    }
    if rng.chance(40) {
        parts.push(("name".into(), None, None, weird(rng).into_bytes()));
    }
    let most = if rng.chance(5) { 20 } else { 3 };
    for _ in 0..rng.below(most) {
        let data = if rng.chance(40) { ctx.face.clone() } else { mutate_image(rng, &ctx.face) };
        let ct = if rng.chance(80) { "image/jpeg".to_string() } else { weird(rng) };
        parts.push(("image".into(), Some(format!("{}.jpg", weird(rng))), Some(ct), data));
    }
    if rng.chance(15) {
        parts.push((weird(rng), None, None, weird(rng).into_bytes()));
    }
    if rng.chance(10) {
        parts.push(("subject".into(), None, None, vec![0xFF, 0xFE, 0x00]));
    }
    let mut b = Vec::new();
    let crlf: &[u8] = if rng.chance(90) { b"\r\n" } else { b"\n" };
    for (name, file, ct, data) in &parts {
        b.extend(format!("--{boundary}").bytes());
        b.extend(crlf);
        match file {
            Some(f) => b.extend(format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"").bytes()),
            None if rng.chance(5) => b.extend(b"Content-Disposition: form-data"),
            None => b.extend(format!("Content-Disposition: form-data; name=\"{name}\"").bytes()),
        }
        b.extend(crlf);
        if let Some(ct) = ct {
            b.extend(format!("Content-Type: {ct}").bytes());
            b.extend(crlf);
        }
        b.extend(crlf);
        b.extend(data);
        b.extend(crlf);
    }
    if rng.chance(90) {
        b.extend(format!("--{boundary}--").bytes());
        b.extend(crlf);
    }
    if rng.chance(15) {
        b.truncate(rng.below(b.len() + 1));
    }
    let header_boundary = if rng.chance(90) { boundary } else { weird(rng) };
    let ct = match rng.below(20) {
        0 => "multipart/form-data".to_string(),
        1 => "text/plain".to_string(),
        2 => String::new(),
        3 => format!("multipart/mixed; boundary={header_boundary}"),
        _ => format!("multipart/form-data; boundary={header_boundary}"),
    };
    (ct, b)
}

struct Ctx {
    admin: String,
    ops: String,
    ann: String,
    relay: String,
    camera: String,
    alert: String,
    /// A real face photo (LFW, 250 x 250 JPEG).
    face: Vec<u8>,
    png: Vec<u8>,
}

/// A path segment: usually the real one, sometimes a weird one.
fn seg(rng: &mut Rng, real: &str) -> String {
    if rng.chance(70) { real.to_string() } else { weird(rng).replace(['/', '?', '#'], "_") }
}

/// One request to one route, with valid parts and mutated ones.
fn request(rng: &mut Rng, c: &Ctx) -> Req {
    let list = seg(rng, "wanted");
    let alert = seg(rng, &c.alert);
    let r = match rng.below(24) {
        0..=3 => {
            let q = query(rng, &[("captured_at", "2026-01-01T00:00:00Z")]);
            let (ct, body) = match rng.below(10) {
                0 => ("image/png", if rng.chance(50) { c.png.clone() } else { mutate_image(rng, &c.png) }),
                1 => (
                    *rng.pick(&["", "text/plain", "image/gif", "image/jpeg; q=0.1", "IMAGE/JPEG", "image/"]),
                    c.face.clone(),
                ),
                2 => ("image/jpeg", c.face.clone()),
                _ => ("image/jpeg", mutate_image(rng, &c.face)),
            };
            Req::new("POST", format!("/v1/cameras/{}/frames{q}", seg(rng, "gate-1"))).auth(&c.camera).body(ct, body)
        }
        4 | 5 => {
            let q = query(
                rng,
                &[
                    ("status", "open"),
                    ("camera", "gate-1"),
                    ("list", "wanted"),
                    ("subject", "colin"),
                    ("since", "2026-01-01T00:00:00Z"),
                    ("limit", "10"),
                    ("offset", "0"),
                ],
            );
            Req::new("GET", format!("/v1/alerts{q}")).auth(&c.ann)
        }
        6 => Req::new("GET", format!("/v1/alerts/{alert}{}", rng.pick(&["", "/crop", "/reference"]))).auth(&c.ann),
        7 | 8 => {
            let base = json!({"decision": *rng.pick(&["confirm", "dismiss"]), "note": "seen at gate 1"});
            let body = mutate_json(rng, &base);
            Req::new("POST", format!("/v1/alerts/{alert}/review")).auth(&c.ann).body("application/json", body)
        }
        9 => Req::new("GET", format!("/v1/alerts/stream{}", query(rng, &[]))).auth(&c.ann),
        10 => Req::new("GET", "/v1/lists").auth(&c.ops),
        11 | 12 => {
            let base = json!({"name": format!("l{}", rng.below(50)), "policy": {"threshold": 0.9, "cooldown_secs": 0}});
            let body = mutate_json(rng, &base);
            Req::new("POST", "/v1/lists").auth(&c.ops).body("application/json", body)
        }
        13 => Req::new(*rng.pick(&["GET", "GET", "DELETE"]), format!("/v1/lists/{list}")).auth(&c.ops),
        14 | 15 => {
            let base = json!({"threshold": 0.93, "min_face_px": 40, "min_quality": 0.1, "severity": "high",
                              "cooldown_secs": 60, "retention_days": 30, "share_crops": false});
            let body = mutate_json(rng, &base);
            Req::new(*rng.pick(&["PUT", "PUT", "GET"]), format!("/v1/lists/{list}/policy"))
                .auth(&c.ops)
                .body("application/json", body)
        }
        16..=18 => {
            let (ct, body) = mutate_multipart(rng, c);
            Req::new("POST", format!("/v1/lists/{list}/subjects")).auth(&c.ops).body(&ct, body)
        }
        19 => {
            let subject = seg(rng, "colin");
            Req::new(*rng.pick(&["GET", "GET", "DELETE"]), format!("/v1/lists/{list}/subjects/{subject}")).auth(&c.ops)
        }
        20 => {
            let base = json!({"name": "fuzz", "role": *rng.pick(&["camera", "officer", "ops", "admin", "relay"])});
            let body = mutate_json(rng, &base);
            Req::new(*rng.pick(&["POST", "POST", "GET"]), "/v1/tokens").auth(&c.admin).body("application/json", body)
        }
        21 => Req::new("DELETE", format!("/v1/tokens/{}", seg(rng, "7"))).auth(&c.admin),
        22 => {
            let path = rng.pick(&["/v1/audit", "/v1/audit/verify"]);
            Req::new("GET", format!("{path}{}", query(rng, &[("after", "0"), ("limit", "10")]))).auth(&c.admin)
        }
        _ => Req::new("GET", format!("/v1/events{}", query(rng, &[("after", "0"), ("limit", "10")]))).auth(&c.relay),
    };
    mutate_request(rng, r, c)
}

/// Damages the request as a whole: its token, content type, method, path, extra headers, or
/// a body cut short of (or longer than) its declared length.
fn mutate_request(rng: &mut Rng, mut r: Req, c: &Ctx) -> Req {
    if rng.chance(15) {
        r.headers.retain(|(k, _)| k != "Authorization");
        let auth: Vec<u8> = match rng.below(8) {
            0 => return r,
            1 => b"Bearer ".to_vec(),
            2 => format!("bearer {}", c.admin).into_bytes(),
            3 => b"Basic YWRtaW46YWRtaW4=".to_vec(),
            4 => format!("Bearer {}", rng.pick(&[&c.admin, &c.ops, &c.ann, &c.relay, &c.camera])).into_bytes(),
            5 => [b"Bearer ".as_slice(), &[0x80, 0xFF, 0xC3, 0x28]].concat(),
            6 => format!("Bearer {}", "A".repeat(rng.below(10_000))).into_bytes(),
            _ => format!("Bearer {}x", c.admin).into_bytes(),
        };
        r.headers.push(("Authorization".into(), auth));
    }
    if rng.chance(10) {
        r.headers.retain(|(k, _)| k != "Content-Type");
        let ct: &[u8] = *rng.pick(&[
            b"application/json; charset=utf-16".as_slice(),
            b"application/x-www-form-urlencoded",
            b"multipart/form-data; boundary=",
            b"text/html",
            b"*/*",
            b";;;",
            &[0xE2, 0x98, 0x83],
        ]);
        r.headers.push(("Content-Type".into(), ct.to_vec()));
    }
    if rng.chance(5) {
        r.method = rng.pick(&["PATCH", "PUT", "DELETE", "OPTIONS", "HEAD", "GET", "POST"]).to_string();
    }
    if rng.chance(5) {
        r.target = match rng.below(5) {
            0 => format!("{}/", r.target),
            1 => r.target.replacen("/v1/", "//v1//", 1),
            2 => format!("/v1/{}", weird(rng)),
            3 => format!("/v2{}", r.target.trim_start_matches("/v1")),
            _ => format!("{}/{}", r.target, "a/".repeat(rng.below(500))),
        };
    }
    if rng.chance(10) {
        for _ in 0..1 + rng.below(10) {
            let name = rng.pick(&[
                "X-Forwarded-For",
                "Accept",
                "Accept-Encoding",
                "Content-Encoding",
                "Cookie",
                "X-Weird",
                "Range",
                "If-None-Match",
            ]);
            let value = weird(rng).bytes().filter(|b| *b >= 0x20 && *b != 0x7F).collect::<Vec<u8>>();
            r.headers.push((name.to_string(), value));
        }
    }
    if rng.chance(5) && !r.body.is_empty() {
        r.declared = Some(if rng.chance(50) { r.body.len() + 1 + rng.below(1000) } else { rng.below(r.body.len()) });
    }
    r
}

/// A tokens id of this test's own tokens (1..=6): the fuzz must not revoke the callers.
fn revokes_a_caller(r: &Req) -> bool {
    let Some(id) = r.target.strip_prefix("/v1/tokens/") else { return false };
    let mut decoded = Vec::new();
    let b = id.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                decoded.push(v);
                i += 3;
                continue;
            }
        }
        decoded.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&decoded).trim_end_matches('/').parse::<i64>().is_ok_and(|n| (1..=6).contains(&n))
}

// ---- the server under test -------------------------------------------------------------------

struct Setup {
    server: Server,
    ctx: Ctx,
    addr: String,
}

/// A server with one token per role, a watch list with one subject, and one alert.
fn setup(data: &Path) -> Setup {
    let t = |role: &str, name: &str| token(data, role, name);
    let (admin, ops, ann, relay, camera) = (
        t("admin", "root"),
        t("ops", "olga"),
        t("officer", "ann"),
        t("relay", "hq"),
        camera_token(data, "gates", &["gate-1", "gate-2", "gate-3", "gate-4", "gate-5"]),
    );
    let _bob = t("officer", "bob");
    let server = Server::start(
        data,
        &[
            ("FACEWATCH_LIMITS__MEMORY_BUDGET_MB", &BUDGET_MB.to_string()),
            ("FACEWATCH_LIMITS__MAX_PIXELS", "4000000"),
            ("FACEWATCH_LIMITS__MAX_BODY_BYTES", "1048576"),
        ],
    );
    let created = server.post_json(
        "/v1/lists",
        Some(&ops),
        &json!({"name": "wanted", "policy": {"threshold": 0.9, "cooldown_secs": 0}}),
    );
    assert_eq!(created.status, 201);
    let form = multipart(
        &[("subject", "colin"), ("name", "Colin Powell")],
        &[
            ("0001.jpg", "image/jpeg", photo("faces/Colin_Powell/0001.jpg")),
            ("0002.jpg", "image/jpeg", photo("faces/Colin_Powell/0002.jpg")),
        ],
    );
    server.call("POST", "/v1/lists/wanted/subjects", Some(&ops), form).ok();
    let face = photo("faces/Colin_Powell/0003.jpg");
    let report = server.frame("gate-1", &camera, &face).ok();
    let alert = report["alerts"][0].as_str().unwrap_or_else(|| panic!("no alert: {report}")).to_string();
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(facewatch::vision::decode::decode(&face, 1 << 20).unwrap())
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let addr = server.url.trim_start_matches("http://").to_string();
    Setup { server, ctx: Ctx { admin, ops, ann, relay, camera, alert, face, png }, addr }
}

/// Inputs that failed before their fix (the fuzz found the first two; the third is issue 15's).
fn regressions(c: &Ctx) -> Vec<(&'static str, Req, u16)> {
    vec![
        // axum's own rejection of a path segment that is not UTF-8 was plain text.
        ("path segment not UTF-8", Req::new("GET", "/v1/lists/%FF").auth(&c.ops), 400),
        ("alert id not UTF-8", Req::new("GET", "/v1/alerts/%C0%AF/crop").auth(&c.ann), 400),
        // usize::MAX bound as -1, which SQLite reads as offset 0: the first page, not an empty one,
        // and `offset + n` overflowed (a panic in debug builds).
        ("alerts offset u64::MAX", Req::new("GET", "/v1/alerts?offset=18446744073709551615").auth(&c.ann), 400),
    ]
}

#[test]
fn mutated_requests_to_every_route_get_a_documented_answer() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { mut server, ctx, addr } = setup(dir.path());
    let after_setup = server.proc_status_bytes("VmRSS");
    for (name, r, status) in regressions(&ctx) {
        let resp = check(&r, send(&addr, &r));
        assert_eq!(resp.status, status, "regression {name}: {}", String::from_utf8_lossy(&resp.body));
    }
    let (seed, requests) = (env_or("FACEWATCH_FUZZ_SEED", SEED), env_or("FACEWATCH_FUZZ_REQUESTS", REQUESTS));
    let mut rng = Rng(seed);
    let t = Instant::now();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    let mut sent = 0;
    while sent < requests {
        let r = request(&mut rng, &ctx);
        if revokes_a_caller(&r) {
            continue;
        }
        let resp = check(&r, send(&addr, &r));
        *by_status.entry(resp.status).or_default() += 1;
        sent += 1;
        if r.method == "DELETE" && r.target == "/v1/lists/wanted" && resp.status == 200 {
            // Keep the list routes' fixture (its subject is gone until the fuzz enrolls one).
            let created = server.post_json("/v1/lists", Some(&ctx.ops), &json!({"name": "wanted"}));
            assert_eq!(created.status, 201);
        }
    }
    let hwm = server.proc_status_bytes("VmHWM");
    eprintln!(
        "fuzz: {sent} requests in {:.1} s, statuses {by_status:?}; RSS after setup {} MiB, peak {} MiB",
        t.elapsed().as_secs_f64(),
        after_setup / MIB,
        hwm / MIB
    );
    assert!(
        by_status.keys().any(|s| (200..300).contains(s)) && by_status.len() >= 8,
        "too few kinds of answer: {by_status:?}"
    );
    assert!(server.alive(), "the server died");
    assert!(hwm <= after_setup + BUDGET_MB * MIB + 96 * MIB, "peak RSS {} MiB", hwm / MIB);
    // Still whole: ready, and a real frame is still analysed.
    assert_eq!(server.get("/readyz", None).status, 200);
    let report = server.frame("gate-1", &ctx.camera, &ctx.face).ok();
    assert_eq!(report["faces"].as_array().unwrap().len(), 1, "{report}");
    assert!(server.stop().success());
}

#[test]
fn pagination_values_give_400_or_a_correct_page() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { server: s, ctx: c, .. } = setup(dir.path());
    // Four more alerts (one per camera: no cooldown between cameras).
    for cam in ["gate-2", "gate-3", "gate-4", "gate-5"] {
        assert_eq!(s.frame(cam, &c.camera, &c.face).ok()["alerts"].as_array().unwrap().len(), 1);
    }
    let ids = |v: &Value, key: &str, field: &str| -> Vec<String> {
        v[key].as_array().unwrap().iter().map(|a| a[field].to_string()).collect()
    };
    let all = s.get("/v1/alerts", Some(&c.ann)).ok();
    let all_ids = ids(&all, "alerts", "id");
    assert_eq!(all_ids.len(), 5);
    let page = s.get("/v1/alerts?offset=2&limit=2", Some(&c.ann)).ok();
    assert_eq!(ids(&page, "alerts", "id"), all_ids[2..4].to_vec());
    assert_eq!(page["next_offset"], 4);
    for (q, status, expect) in [
        ("offset=9223372036854775807", 200, Some(0)),
        ("offset=9223372036854775806&limit=500", 200, Some(0)),
        ("offset=9223372036854775808", 400, None),
        ("offset=18446744073709551615", 400, None),
        ("offset=18446744073709551616", 400, None),
        ("offset=-1", 400, None),
        ("offset=1&offset=2", 400, None),
        ("offset=%F0%9F%98%80", 400, None),
        ("limit=0", 400, None),
        ("limit=501", 400, None),
        ("limit=18446744073709551615", 400, None),
        ("limit=-9223372036854775808", 400, None),
    ] {
        let r = s.get(&format!("/v1/alerts?{q}"), Some(&c.ann));
        assert_eq!(r.status, status, "{q}: {}", String::from_utf8_lossy(&r.body));
        if let Some(n) = expect {
            let v = r.json();
            assert_eq!(v["alerts"].as_array().unwrap().len(), n, "{q}");
            assert_eq!(v["next_offset"], Value::Null, "{q}");
        } else {
            r.error_code();
        }
    }
    // Sequence numbers: `after` is any i64 (all of them before the first entry are the first page).
    for (path, token, key) in [("/v1/audit", &c.admin, "entries"), ("/v1/events", &c.relay, "events")] {
        let first = s.get(&format!("{path}?limit=3"), Some(token)).ok();
        let seqs = ids(&first, key, "seq");
        assert_eq!(seqs.len(), 3, "{path}: {first}");
        for (q, status, want) in [
            ("after=-9223372036854775808&limit=3", 200, Some(seqs.clone())),
            ("after=-1&limit=3", 200, Some(seqs.clone())),
            ("after=9223372036854775807", 200, Some(Vec::new())),
            ("after=9223372036854775808", 400, None),
            ("after=-9223372036854775809", 400, None),
            ("after=18446744073709551615", 400, None),
            ("after=1&after=2", 400, None),
            ("after=1e3", 400, None),
            ("after=%00", 400, None),
            ("limit=0", 400, None),
            ("limit=1001", 400, None),
            ("limit=18446744073709551616", 400, None),
            ("limit=-1", 400, None),
        ] {
            let r = s.get(&format!("{path}?{q}"), Some(token));
            assert_eq!(r.status, status, "{path}?{q}: {}", String::from_utf8_lossy(&r.body));
            match want {
                Some(w) => assert_eq!(ids(&r.json(), key, "seq"), w, "{path}?{q}"),
                None => {
                    r.error_code();
                }
            }
        }
    }
}
