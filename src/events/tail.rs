//! `facewatch events tail`: follows the central stream with a durable pull consumer (it resumes
//! where it stopped), printing one JSON event per line and acknowledging it after printing.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt as _;

use crate::error::{Error, Result};

pub struct TailOptions {
    pub url: String,
    pub stream: String,
    pub durable: String,
    /// e.g. `facewatch.*.*.alert.>`; empty = everything.
    pub filter: String,
    /// Stop after this many events.
    pub count: Option<usize>,
    /// Stop after this long without a new event.
    pub idle_exit: Option<Duration>,
}

fn nats_err(what: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::Runtime(format!("{what}: {e}"))
}

/// Calls `emit` with each event's payload (a JSON text) in stream order; returns how many.
pub async fn tail(o: &TailOptions, mut emit: impl FnMut(&str)) -> Result<usize> {
    let client = async_nats::connect(o.url.as_str()).await.map_err(|e| nats_err("connecting")(e.to_string()))?;
    let js = jetstream::new(client);
    let stream = js.get_stream(&o.stream).await.map_err(|e| nats_err("opening the stream")(e.to_string()))?;
    let cfg = pull::Config {
        durable_name: Some(o.durable.clone()),
        filter_subject: o.filter.clone(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ..Default::default()
    };
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(&o.durable, cfg)
        .await
        .map_err(|e| nats_err("creating the consumer")(e.to_string()))?;
    let mut n = 0;
    let mut last = Instant::now();
    loop {
        let mut batch = consumer
            .batch()
            .max_messages(256)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .map_err(|e| nats_err("fetching")(e.to_string()))?;
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| nats_err("reading")(e.to_string()))?;
            emit(&String::from_utf8_lossy(&m.payload));
            m.ack().await.map_err(|e| nats_err("acknowledging")(e.to_string()))?;
            n += 1;
            last = Instant::now();
            if o.count.is_some_and(|c| n >= c) {
                return Ok(n);
            }
        }
        if o.idle_exit.is_some_and(|d| last.elapsed() >= d) {
            return Ok(n);
        }
    }
}
