//! TLS for the API and the console (rustls with the ring provider): the certificate chain and
//! key come from PEM files named in `[tls]`, and SIGHUP reloads them without dropping the
//! service (connections already open keep their session; new handshakes get the new files; a
//! bad new file is logged and the old one stays). Handshakes run in their own tasks, bounded in
//! number and time, so a client that connects and says nothing cannot stall the accept loop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::error::{Error, Result};
use crate::shutdown::Shutdown;

/// A PEM file larger than this is not a certificate chain or a key.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// `[tls]`: HTTPS for the API and the console. Both paths empty = plain HTTP, which the
/// service allows only on a loopback address.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1); refused when others can read it.
    pub key: PathBuf,
    /// A client must finish its handshake within this.
    pub handshake_timeout_ms: u64,
    /// Handshakes in progress at once; more connections wait in the kernel's backlog.
    pub max_handshakes: usize,
}

impl Default for TlsSection {
    fn default() -> Self {
        Self { cert: PathBuf::new(), key: PathBuf::new(), handshake_timeout_ms: 10_000, max_handshakes: 64 }
    }
}

impl TlsSection {
    pub fn enabled(&self) -> bool {
        !self.cert.as_os_str().is_empty() || !self.key.as_os_str().is_empty()
    }

    /// What is wrong with the section and with `bind` for it, as config messages.
    pub fn problems(&self, bind: &str, bad: &mut Vec<String>) {
        if self.cert.as_os_str().is_empty() != self.key.as_os_str().is_empty() {
            bad.push("[tls] cert and key are set together or not at all".into());
        }
        if self.handshake_timeout_ms == 0 || self.max_handshakes == 0 {
            bad.push("[tls] handshake_timeout_ms and max_handshakes must be > 0".into());
        }
        let loopback = bind.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
        if !self.enabled() && !loopback && bind.parse::<SocketAddr>().is_ok() {
            bad.push(format!(
                "[service] bind {bind:?}: plain HTTP is served on a loopback address only; set [tls] cert and key \
                 (FACEWATCH_TLS__CERT / FACEWATCH_TLS__KEY) or bind 127.0.0.1"
            ));
        }
    }
}

/// Reads one PEM file whole, bounded; a key file must not be readable by others.
fn read_pem(path: &Path, secret: bool) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Config(format!("[tls] {}: {e}", path.display())))?;
    if meta.len() > MAX_PEM_BYTES {
        return Err(Error::Config(format!("[tls] {}: larger than {MAX_PEM_BYTES} bytes", path.display())));
    }
    if secret {
        crate::secret::check_private(&meta).map_err(|m| Error::Config(format!("[tls] key {}: {m}", path.display())))?;
    }
    std::fs::read(path).map_err(|e| Error::Config(format!("[tls] {}: {e}", path.display())))
}

/// The rustls configuration from the two files, or a clear error naming the file.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let bad = |p: &Path, m: String| Error::Config(format!("[tls] {}: {m}", p.display()));
    let pem = read_pem(cert, false)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(bad(cert, "no certificate in it".into()));
    }
    let pem = read_pem(key, true)?;
    let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| bad(key, format!("not a PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("[tls] {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| bad(key, format!("does not fit the certificate: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The configuration in use, swapped whole on reload.
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl Certificates {
    pub fn load(section: &TlsSection) -> Result<Arc<Self>> {
        let current = server_config(&section.cert, &section.key)?;
        Ok(Arc::new(Self { cert: section.cert.clone(), key: section.key.clone(), current: RwLock::new(current) }))
    }

    /// Re-reads both files; on error the configuration in use stays.
    pub fn reload(&self) -> Result<()> {
        let fresh = server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// Reloads the certificates on every SIGHUP until shutdown.
pub async fn reload_on_sighup(certs: Arc<Certificates>, mut shutdown: Shutdown) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be watched: TLS certificates reload only on restart");
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.recv() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    match certs.reload() {
                        Ok(()) => tracing::info!(cert = %certs.cert.display(), "TLS certificate reloaded"),
                        Err(e) => tracing::error!(error = %e, "TLS certificate reload failed; the previous one stays"),
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (certs, shutdown.recv().await);
    }
}

/// An axum listener that yields connections whose TLS handshake has finished.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` in a task of its own; it ends with the shutdown signal.
    pub fn new(
        tcp: TcpListener,
        certs: Arc<Certificates>,
        section: &TlsSection,
        mut shutdown: Shutdown,
    ) -> Result<Self> {
        let local = tcp.local_addr().map_err(|e| Error::Runtime(format!("listener address: {e}")))?;
        let (tx, ready) = mpsc::channel(section.max_handshakes);
        let slots = Arc::new(Semaphore::new(section.max_handshakes));
        let deadline = Duration::from_millis(section.handshake_timeout_ms);
        tokio::spawn(async move {
            loop {
                // A free handshake slot first: past the limit, connections wait in the backlog.
                let slot = tokio::select! {
                    _ = shutdown.recv() => return,
                    s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => return },
                };
                let (stream, peer) = tokio::select! {
                    _ = shutdown.recv() => return,
                    r = tcp.accept() => match r {
                        Ok(c) => c,
                        Err(e) => {
                            // As axum does: out of descriptors and the like pass; don't spin.
                            tracing::debug!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let acceptor = certs.acceptor();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task ended (shutdown): no more connections, and axum stops asking.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
