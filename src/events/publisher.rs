//! Drains the outbox to the configured sink, oldest first, one event at a time: an event is
//! marked delivered only after the sink's ack, and a failure retries the same event (after an
//! exponential backoff with jitter) before any later one, so each camera's order is kept.
//! Events that can never be sent are parked with a reason instead of blocking the queue.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rusqlite::Connection;
use tokio::sync::Notify;

use super::nats::{NatsOptions, NatsSink};

use super::webhook::{self, WebhookSink};
use super::{Failure, envelope, outbox, subject};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

const BATCH: usize = 256;
const BACKOFF_BASE: Duration = Duration::from_millis(100);

/// Where events go: one sink per checkpoint.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    Nats(NatsOptions),
    Webhook { url: crate::secret::SecretUrl, secret: crate::secret::Secret },
}

impl SinkConfig {
    fn describe(&self) -> String {
        match self {
            SinkConfig::Nats(o) => format!("JetStream {} stream {}", o.url, o.stream),
            SinkConfig::Webhook { url, .. } => format!("webhook {url}"),
        }
    }
}

enum Sink {
    Nats(Box<NatsSink>),
    Webhook(Arc<WebhookSink>),
}

impl Sink {
    async fn connect(cfg: &SinkConfig) -> Result<Self, String> {
        Ok(match cfg {
            SinkConfig::Nats(o) => Sink::Nats(Box::new(NatsSink::connect(o).await?)),
            SinkConfig::Webhook { url, secret } => {
                Sink::Webhook(Arc::new(WebhookSink::new(url.expose(), secret.expose())))
            }
        })
    }

    /// `Err(reason)` when the event can never be sent for its size; NATS counts the headers
    /// that travel with the payload.
    fn check_size(&self, id: &str, payload: usize) -> Result<(), String> {
        match self {
            Sink::Nats(n) => n.check_size(id, payload),
            Sink::Webhook(_) if payload > webhook::MAX_BODY => {
                Err(format!("{payload} bytes, the webhook limit is {}", webhook::MAX_BODY))
            }
            Sink::Webhook(_) => Ok(()),
        }
    }

    /// Delivers one event; `Ok(true)` when the sink already had it.
    async fn send(&self, subject: String, id: &str, kind: &str, payload: Bytes) -> Result<bool, Failure> {
        match self {
            Sink::Nats(n) => n.publish(subject, id, payload).await.map(|ack| ack.duplicate),
            Sink::Webhook(w) => {
                let (w, id, kind) = (w.clone(), id.to_string(), kind.to_string());
                tokio::task::spawn_blocking(move || w.send(&id, &kind, &payload))
                    .await
                    .map_err(|e| Failure { permanent: false, message: e.to_string() })?
                    .map(|()| false)
            }
        }
    }
}

pub struct Publisher {
    db: Arc<Mutex<Connection>>,
    site: String,
    sink: SinkConfig,
    max_backoff: Duration,
    metrics: Arc<Metrics>,
    notify: Arc<Notify>,
}

/// Delay before retry number `attempt` (1-based): doubling from 100 ms up to `max`, with full
/// jitter over its upper half so many checkpoints do not reconnect in step.
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    let d = BACKOFF_BASE.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(max);
    let mut b = [0u8; 4];
    let r = getrandom::fill(&mut b).map(|_| u32::from_le_bytes(b)).unwrap_or(u32::MAX / 2);
    d / 2 + d.mul_f64((r as f64 / u32::MAX as f64) / 2.0)
}

impl Publisher {
    pub fn new(
        db: PathBuf,
        site: String,
        sink: SinkConfig,
        max_backoff: Duration,
        metrics: Arc<Metrics>,
        notify: Arc<Notify>,
    ) -> Result<Self> {
        let conn = crate::db::connect(&db)?;
        conn.execute_batch(outbox::SCHEMA)?;
        Ok(Self { db: Arc::new(Mutex::new(conn)), site, sink, max_backoff, metrics, notify })
    }

    async fn with_db<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let c = db.lock().unwrap_or_else(|p| p.into_inner());
            f(&c)
        })
        .await
        .map_err(|e| Error::Runtime(format!("outbox task failed: {e}")))?
    }

    /// Runs until `stop` fires; then keeps delivering for up to `drain` before returning
    /// (whatever is left stays in the outbox for the next start).
    pub async fn run(self, mut stop: Shutdown, drain: Duration) {
        let mut sink: Option<Sink> = None;
        let mut attempt = 0u32;
        let mut deadline: Option<Instant> = None;
        loop {
            if deadline.is_none() && stop.is_shutdown() {
                deadline = Some(Instant::now() + drain);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                tracing::warn!("publisher stopped with events still in the outbox");
                return;
            }
            let rows = match self.with_db(|c| outbox::pending(c, BATCH)).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "reading the outbox");
                    self.pause(&mut stop, Duration::from_secs(1), deadline).await;
                    continue;
                }
            };
            if rows.is_empty() {
                if deadline.is_some() {
                    return; // drained
                }
                tokio::select! {
                    _ = self.notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.recv() => {}
                }
                continue;
            }
            if sink.is_none() {
                match Sink::connect(&self.sink).await {
                    Ok(s) => {
                        tracing::info!(sink = %self.sink.describe(), "publishing events");
                        sink = Some(s);
                    }
                    Err(e) => {
                        attempt += 1;
                        self.metrics.publish_retries.inc();
                        let wait = backoff(attempt, self.max_backoff);
                        tracing::warn!(error = %e, retry_in = ?wait, "broker unreachable; events wait in the outbox");
                        self.pause(&mut stop, wait, deadline).await;
                        continue;
                    }
                }
            }
            let Some(s) = sink.as_ref() else { continue };
            for row in rows {
                let env = match envelope(&row, &self.site) {
                    Ok(e) => e,
                    Err(reason) => {
                        self.park(row.seq, &row.id, reason).await;
                        continue;
                    }
                };
                let payload = match serde_json::to_vec(&env) {
                    Ok(p) => match s.check_size(&row.id, p.len()) {
                        Ok(()) => p,
                        Err(why) => {
                            self.park(row.seq, &row.id, format!("oversized: {why}")).await;
                            continue;
                        }
                    },
                    Err(e) => {
                        self.park(row.seq, &row.id, format!("not serialisable: {e}")).await;
                        continue;
                    }
                };
                let t = Instant::now();
                let subj = subject(&self.site, &row.camera, &row.kind);
                match s.send(subj, &row.id, &row.kind, Bytes::from(payload)).await {
                    Ok(duplicate) => {
                        self.metrics.publish.observe(t.elapsed());
                        self.metrics.published.inc();
                        if duplicate {
                            self.metrics.publish_duplicates.inc();
                        }
                        attempt = 0;
                        let seq = row.seq;
                        if let Err(e) = self.with_db(move |c| outbox::mark_delivered(c, seq)).await {
                            // Not marked: it is sent again later and JetStream drops the repeat.
                            tracing::error!(error = %e, "marking an event delivered");
                        }
                    }
                    Err(f) if f.permanent => {
                        self.park(row.seq, &row.id, format!("rejected: {}", f.message)).await;
                    }
                    Err(Failure { message: e, .. }) => {
                        attempt += 1;
                        self.metrics.publish_retries.inc();
                        let (seq, err) = (row.seq, e.clone());
                        let _ = self.with_db(move |c| outbox::mark_failed(c, seq, &err)).await;
                        let wait = backoff(attempt, self.max_backoff);
                        tracing::warn!(error = %e, event = %row.id, retry_in = ?wait, "publish failed");
                        // Reconnect (and re-create the stream if it is gone) before the retry.
                        sink = None;
                        self.pause(&mut stop, wait, deadline).await;
                        break;
                    }
                }
            }
        }
    }

    async fn park(&self, seq: i64, id: &str, reason: String) {
        tracing::error!(event = %id, %reason, "event parked: it will not be sent");
        self.metrics.parked.inc();
        if let Err(e) = self.with_db(move |c| outbox::park(c, seq, &reason)).await {
            tracing::error!(error = %e, "parking an event");
        }
    }

    /// Sleeps `d`, cut short by a stop signal (then by the drain deadline).
    async fn pause(&self, stop: &mut Shutdown, d: Duration, deadline: Option<Instant>) {
        let d = match deadline {
            Some(dl) => d.min(dl.saturating_duration_since(Instant::now())),
            None => d,
        };
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.recv(), if deadline.is_none() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let max = Duration::from_secs(10);
        for attempt in 1..20 {
            let nominal = BACKOFF_BASE.saturating_mul(1 << (attempt - 1).min(16)).min(max);
            let d = backoff(attempt, max);
            assert!(d >= nominal / 2 && d <= nominal, "attempt {attempt}: {d:?} vs {nominal:?}");
        }
    }
}
