//! NATS JetStream sink: creates the stream if absent, publishes with `Nats-Msg-Id` = event id
//! (the stream drops a repeat inside its duplicate window) and returns only after the ack.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;

/// Stream settings; replicas > 1 need a clustered JetStream.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    pub url: String,
    pub stream: String,
    pub replicas: usize,
    pub max_age: Duration,
    pub duplicate_window: Duration,
}

pub struct NatsSink {
    js: jetstream::Context,
    max_payload: usize,
}

/// What JetStream said about a stored event.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub stream_seq: u64,
    /// The stream already had this id (a retry after a lost ack): stored once.
    pub duplicate: bool,
}

const TIMEOUT: Duration = Duration::from_secs(5);

impl NatsSink {
    pub async fn connect(o: &NatsOptions) -> Result<Self, String> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(TIMEOUT)
            .request_timeout(Some(TIMEOUT))
            .name("facewatch")
            .connect(o.url.as_str())
            .await
            .map_err(|e| format!("connecting to {}: {e}", o.url))?;
        let max_payload = client.server_info().max_payload;
        let js = jetstream::new(client);
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
        Ok(Self { js, max_payload })
    }

    /// The largest message the server accepts.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    pub async fn publish(&self, subject: String, id: &str, payload: Bytes) -> Result<Ack, String> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        let send = async {
            let ack = self.js.publish_with_headers(subject, headers, payload).await.map_err(|e| e.to_string())?;
            ack.await.map_err(|e| e.to_string())
        };
        let ack = tokio::time::timeout(TIMEOUT, send).await.map_err(|_| "no ack within 5 s".to_string())??;
        Ok(Ack { stream_seq: ack.sequence, duplicate: ack.duplicate })
    }
}
