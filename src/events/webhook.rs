//! Webhook sink for agencies without NATS: each event is POSTed as JSON with an HMAC-SHA256
//! signature. Headers: `X-Facewatch-Event-Id` (the idempotency key: a retry after a lost
//! response repeats it), `X-Facewatch-Timestamp` (Unix seconds) and
//! `X-Facewatch-Signature: sha256=<hex HMAC(secret, "<timestamp>.<body>")>`; the receiver
//! recomputes it and rejects stale timestamps. Blocking client: call from the blocking pool.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Failure;

/// Largest event body sent.
pub const MAX_BODY: usize = 4 << 20;

pub struct WebhookSink {
    agent: ureq::Agent,
    url: String,
    secret: Vec<u8>,
}

/// `sha256=<hex>` over `"<timestamp>.<body>"`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl WebhookSink {
    pub fn new(url: &str, secret: &str) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
        Self { agent, url: url.to_string(), secret: secret.as_bytes().to_vec() }
    }

    pub fn send(&self, id: &str, kind: &str, body: &[u8]) -> Result<(), Failure> {
        let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let res = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json")
            .set("X-Facewatch-Event-Id", id)
            .set("X-Facewatch-Event-Type", kind)
            .set("X-Facewatch-Timestamp", &ts.to_string())
            .set("X-Facewatch-Signature", &signature(&self.secret, ts, body))
            .send_bytes(body);
        match res {
            Ok(_) => Ok(()),
            // 4xx says the event itself is refused (except timeouts and rate limits): retrying
            // it would block the queue forever.
            Err(ureq::Error::Status(code, _)) => Err(Failure {
                permanent: (400..500).contains(&code) && code != 408 && code != 429,
                message: format!("webhook answered {code}"),
            }),
            // The client's message quotes the URL, which may carry credentials.
            Err(e) => {
                Err(Failure { permanent: false, message: crate::secret::redact_urls_in(&format!("webhook: {e}")) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: python3 -c "import hmac,hashlib; hmac.new(b'key', b'1.{}', hashlib.sha256).hexdigest()"
        let s = signature(b"key", 1, b"{}");
        assert_eq!(s, "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224");
        assert_ne!(signature(b"key", 2, b"{}"), s, "the timestamp is signed");
        assert_ne!(signature(b"other", 1, b"{}"), s, "the secret matters");
    }

    #[test]
    fn a_failed_delivery_names_the_url_without_its_credentials() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://hook:h00k-pa55@127.0.0.1:{port}/in?token=t0k3n");
        let f = WebhookSink::new(&url, "0123456789abcdef").send("id-1", "alert.created", b"{}").unwrap_err();
        assert!(!f.permanent, "nothing listening: retried later");
        assert!(!f.message.contains("h00k-pa55") && !f.message.contains("t0k3n"), "{}", f.message);
        assert!(f.message.contains(&format!("hook:***@127.0.0.1:{port}/in?token=***")), "{}", f.message);
    }
}
