//! HTTPS on the real service with certificates made here (rcgen): the API answers over TLS
//! only, SIGHUP swaps the certificate for new connections without dropping open ones, a bad
//! new file leaves the old one in place, and plain HTTP is refused off loopback.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::server::{Server, bin};
use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    Ca { cert: params.self_signed(&key).unwrap(), key }
}

/// A leaf for localhost and 127.0.0.1, written as `cert.pem` / `key.pem` (key 0600); its DER.
fn issue(ca: &Ca, dir: &Path) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca.cert, &ca.key)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    let key_path = dir.join("key.pem");
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    leaf.der().clone()
}

fn client(ca: &Ca) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn connect(addr: &str, cfg: &Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = ClientConnection::new(cfg.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    StreamOwned::new(conn, tcp)
}

/// One keep-alive GET on an open connection; the status code.
fn get(tls: &mut Tls, path: &str) -> u16 {
    write!(tls, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    tls.flush().unwrap();
    // Headers, then a Content-Length body: enough for /healthz.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    tls.read_exact(&mut body).unwrap();
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

fn served_cert(tls: &Tls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().unwrap()[0].clone().into_owned()
}

fn sighup(server: &Server) {
    assert!(Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().unwrap().success());
}

#[test]
fn https_only_and_the_certificate_reloads_on_sighup_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (data, pki) = (dir.path().join("data"), dir.path().join("pki"));
    std::fs::create_dir_all(&pki).unwrap();
    let ca = ca();
    let first = issue(&ca, &pki);
    let (cert, key) = (pki.join("cert.pem"), pki.join("key.pem"));
    let mut server = Server::start(
        &data,
        &[("FACEWATCH_TLS__CERT", cert.to_str().unwrap()), ("FACEWATCH_TLS__KEY", key.to_str().unwrap())],
    );
    let addr = server.url.strip_prefix("https://").expect("the service says it listens on https").to_string();
    let cfg = client(&ca);

    let mut open = connect(&addr, &cfg);
    assert_eq!(get(&mut open, "/healthz"), 200);
    assert_eq!(served_cert(&open), first);

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(&addr).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP was answered: {:?}", String::from_utf8_lossy(&answer));

    // A new certificate, then SIGHUP: new connections get it, the open one carries on.
    let second = issue(&ca, &pki);
    assert_ne!(first, second);
    sighup(&server);
    let t = Instant::now();
    loop {
        let mut fresh = connect(&addr, &cfg);
        assert_eq!(get(&mut fresh, "/healthz"), 200);
        if served_cert(&fresh) == second {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the new certificate was not served after SIGHUP");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(&mut open, "/healthz"), 200, "the connection opened before the reload still works");

    // A broken file on reload: logged, and the certificate in use stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    sighup(&server);
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.alive(), "a bad certificate file on reload must not stop the service");
    let mut after = connect(&addr, &cfg);
    assert_eq!(get(&mut after, "/healthz"), 200);
    assert_eq!(served_cert(&after), second);
    assert!(server.stop().success());
}

/// `facewatch serve` with these settings must refuse to start; its stderr.
fn refused(data: &Path, env: &[(&str, &str)]) -> String {
    let out = Command::new(bin())
        .arg("serve")
        .env("FACEWATCH_SERVICE__DATA_DIR", data)
        .env("FACEWATCH_MODELS__DIR", common::models())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success(), "facewatch serve started with {env:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn plain_http_off_loopback_and_a_key_others_can_read_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let err = refused(&data, &[("FACEWATCH_SERVICE__BIND", "0.0.0.0:0")]);
    assert!(err.contains("plain HTTP is served on a loopback address only"), "{err}");

    let ca = ca();
    issue(&ca, dir.path());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let tls = [
        ("FACEWATCH_SERVICE__BIND", "127.0.0.1:0"),
        ("FACEWATCH_TLS__CERT", cert.to_str().unwrap()),
        ("FACEWATCH_TLS__KEY", key.to_str().unwrap()),
    ];
    let err = refused(&data, &tls);
    assert!(err.contains("readable by every user"), "{err}");

    let err = refused(&data, &tls[..2]);
    assert!(err.contains("[tls] cert and key are set together"), "{err}");
}
