//! NATS JetStream sink: creates the stream if absent, publishes with `Nats-Msg-Id` = event id
//! (the stream drops a repeat inside its duplicate window) and returns only after the ack.
//! A refusal that repeating cannot cure (message too large for the stream or the server, no
//! permission to publish on the subject) is reported as permanent, so the event is parked
//! instead of blocking every later one.

use std::time::Duration;

use async_nats::jetstream::{self, ErrorCode, context::PublishErrorKind, stream};
use async_nats::{HeaderMap, ServerError};
use bytes::Bytes;
use tokio::sync::watch;

use super::Failure;

/// Stream settings; replicas > 1 need a clustered JetStream.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// May carry credentials: printed redacted.
    pub url: crate::secret::SecretUrl,
    pub stream: String,
    pub replicas: usize,
    pub max_age: Duration,
    pub duplicate_window: Duration,
}

pub struct NatsSink {
    client: async_nats::Client,
    js: jetstream::Context,
    /// The subject of the latest publish the server refused for lack of permission. The server
    /// answers such a publish only with an asynchronous `-ERR` (no ack ever comes), so the
    /// connection's event callback hands it over here.
    denied: watch::Receiver<Option<String>>,
}

/// What JetStream said about a stored event.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub stream_seq: u64,
    /// The stream already had this id (a retry after a lost ack): stored once.
    pub duplicate: bool,
}

const TIMEOUT: Duration = Duration::from_secs(5);
const MSG_ID: &str = "Nats-Msg-Id";

/// JetStream refusals of one message that no retry can cure.
const PERMANENT_CODES: [ErrorCode; 2] =
    [ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM, ErrorCode::STREAM_HEADER_EXCEEDS_MAXIMUM];

/// The headers every event travels with.
fn headers(id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(MSG_ID, id);
    h
}

/// Bytes a message counts against the server's `max_payload`: the header block
/// (`NATS/1.0\r\n`, one `Name: value\r\n` per value, `\r\n`) plus the payload.
pub fn wire_size(headers: &HeaderMap, payload: usize) -> usize {
    if headers.is_empty() {
        return payload;
    }
    let mut n = "NATS/1.0\r\n".len() + "\r\n".len();
    for (name, values) in headers.iter() {
        for v in values {
            n += AsRef::<str>::as_ref(name).len() + ": ".len() + v.as_str().len() + "\r\n".len();
        }
    }
    n + payload
}

/// The subject of a `Permissions Violation for Publish to "<subject>"` server error.
fn denied_subject(e: &ServerError) -> Option<String> {
    let ServerError::Other(text) = e else { return None };
    let lower = text.to_ascii_lowercase();
    let at = lower.find("permissions violation for publish")?;
    let rest = &text[at..];
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    Some(rest[start..start + len].to_string())
}

impl NatsSink {
    pub async fn connect(o: &NatsOptions) -> Result<Self, String> {
        let (denied_tx, denied) = watch::channel(None);
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(TIMEOUT)
            .request_timeout(Some(TIMEOUT))
            .name("facewatch")
            .event_callback(move |event| {
                if let async_nats::Event::ServerError(e) = &event {
                    tracing::warn!(error = %e, "NATS server error");
                    if let Some(subject) = denied_subject(e) {
                        denied_tx.send_replace(Some(subject));
                    }
                }
                async {}
            })
            .connect(o.url.expose())
            .await
            .map_err(|e| crate::secret::redact_urls_in(&format!("connecting to {}: {e}", o.url)))?;
        let js = jetstream::new(client.clone());
        let cfg = stream::Config {
            name: o.stream.clone(),
            subjects: vec!["facewatch.>".into()],
            storage: stream::StorageType::File,
            num_replicas: o.replicas,
            max_age: o.max_age,
            duplicate_window: o.duplicate_window,
            ..Default::default()
        };
        tokio::time::timeout(TIMEOUT, js.get_or_create_stream(cfg))
            .await
            .map_err(|_| "creating the stream timed out".to_string())?
            .map_err(|e| format!("creating stream {}: {e}", o.stream))?;
        Ok(Self { client, js, denied })
    }

    /// `Err(reason)` when the event with this id and payload size is larger than the server
    /// accepts (headers included), so it can never be sent.
    pub fn check_size(&self, id: &str, payload: usize) -> Result<(), String> {
        let max = self.client.server_info().max_payload;
        let size = wire_size(&headers(id), payload);
        if size > max {
            return Err(format!("{size} bytes with headers ({payload} payload), the broker accepts {max}"));
        }
        Ok(())
    }

    pub async fn publish(&self, subject: String, id: &str, payload: Bytes) -> Result<Ack, Failure> {
        let transient = |message: String| Failure { permanent: false, message };
        // A disconnected client would buffer the message and wait out the ack timeout: fail
        // now and let the publisher back off and reconnect.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(transient("not connected to the broker".into()));
        }
        // Only a refusal reported after this publish counts.
        let mut denied = self.denied.clone();
        denied.mark_unchanged();
        let refused = async {
            while denied.changed().await.is_ok() {
                if denied.borrow_and_update().as_deref() == Some(subject.as_str()) {
                    return;
                }
            }
            std::future::pending().await
        };
        let send = async {
            let ack = self.js.publish_with_headers(subject.clone(), headers(id), payload).await.map_err(classify)?;
            ack.await.map_err(classify)
        };
        tokio::select! {
            r = tokio::time::timeout(TIMEOUT, send) => {
                let ack = r.map_err(|_| transient("no ack within 5 s".into()))??;
                Ok(Ack { stream_seq: ack.sequence, duplicate: ack.duplicate })
            }
            () = refused => Err(Failure {
                permanent: true,
                message: format!("permissions violation for publish to {subject}"),
            }),
        }
    }
}

/// Permanent: the message itself is refused (too large for the server or the stream);
/// everything else (timeouts, lost connection, no stream yet) is worth a retry.
fn classify(e: jetstream::context::PublishError) -> Failure {
    let code = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<jetstream::Error>()).map(|j| j.error_code());
    let permanent =
        e.kind() == PublishErrorKind::MaxPayloadExceeded || code.is_some_and(|c| PERMANENT_CODES.contains(&c));
    Failure { permanent, message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_size_counts_the_header_block() {
        let id = "0190b5a2-7c3e-7000-8000-000000000000";
        // "NATS/1.0\r\n" + "Nats-Msg-Id: <36>\r\n" + "\r\n"
        assert_eq!(wire_size(&headers(id), 100), 10 + 13 + 36 + 2 + 2 + 100);
        assert_eq!(wire_size(&HeaderMap::new(), 100), 100);
    }

    #[test]
    fn permission_errors_name_the_subject() {
        let e =
            ServerError::Other(r#"Permissions Violation for Publish to "facewatch.s._site.subject.enrolled""#.into());
        assert_eq!(denied_subject(&e).as_deref(), Some("facewatch.s._site.subject.enrolled"));
        assert_eq!(denied_subject(&ServerError::Other("Maximum Payload Violation".into())), None);
        assert_eq!(denied_subject(&ServerError::AuthorizationViolation), None);
    }
}
