//! Service metrics, kept and written by the Prometheus project's Rust client
//! (`prometheus-client`, OpenMetrics text). These types keep the names the code uses
//! (`Histogram::observe(Duration)`, `LabeledCounter::inc(label)`); the registry owns the
//! exposition format, escaping and bucket arithmetic.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeMetric;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Latency buckets in seconds: 0.5 ms .. 4 s.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096];

/// A latency histogram in seconds.
#[derive(Clone, Debug)]
pub struct Histogram(prometheus_client::metrics::histogram::Histogram);

impl Default for Histogram {
    fn default() -> Self {
        Self(prometheus_client::metrics::histogram::Histogram::new(BUCKETS))
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        self.0.observe(d.as_secs_f64());
    }
}

type Labels = Vec<(&'static str, String)>;

/// A counter per value of one label (camera, reason, ...).
#[derive(Clone, Debug)]
pub struct LabeledCounter {
    label: &'static str,
    family: Family<Labels, Counter>,
}

impl LabeledCounter {
    fn new(label: &'static str) -> Self {
        Self { label, family: Family::default() }
    }

    pub fn inc(&self, value: &str) {
        self.add(value, 1);
    }

    pub fn add(&self, value: &str, n: u64) {
        self.family.get_or_create(&vec![(self.label, value.to_string())]).inc_by(n);
    }

    pub fn get(&self, value: &str) -> u64 {
        self.family.get(&vec![(self.label, value.to_string())]).map_or(0, |c| c.get())
    }
}

/// Pipeline stages with a latency histogram.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    Decode,
    Detect,
    Align,
    Embed,
    Match,
    /// Frame received -> answer ready.
    Frame,
    /// A pulled camera's frame: read from its ffmpeg -> its faces tracked and decided (queue
    /// wait included).
    Camera,
}

impl Stage {
    const ALL: [Stage; 7] =
        [Stage::Decode, Stage::Detect, Stage::Align, Stage::Embed, Stage::Match, Stage::Frame, Stage::Camera];
    fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Detect => "detect",
            Stage::Align => "align",
            Stage::Embed => "embed",
            Stage::Match => "match",
            Stage::Frame => "frame",
            Stage::Camera => "camera",
        }
    }
}

pub struct Metrics {
    pub frames: LabeledCounter,
    pub faces: Counter,
    pub matches: Counter,
    pub alerts: Counter,
    /// Matches that added no alert because of the list's cooldown.
    pub suppressed: Counter,
    pub rejections: LabeledCounter,
    pub reviews: LabeledCounter,
    /// Embedder calls and the faces they carried (their ratio is the mean batch size).
    pub embed_calls: Counter,
    pub embed_faces: Counter,
    /// Events acknowledged by the broker, repeats it dropped, failed attempts, parked events.
    pub published: Counter,
    pub publish_duplicates: Counter,
    pub publish_retries: Counter,
    pub parked: Counter,
    /// Broker round trip of one event (publish -> ack).
    pub publish: Histogram,
    stages: [Histogram; 7],
    gauges: ScrapeGauges,
    registry: Mutex<Registry>,
}

/// Values read at scrape time.
pub struct Gauges {
    pub ingest_queue: usize,
    pub embed_queue: usize,
    pub sse_clients: usize,
    pub outbox_depth: i64,
    pub outbox_oldest_s: f64,
    pub outbox_parked: i64,
}

#[derive(Clone, Default)]
struct ScrapeGauges {
    ingest_queue: Gauge,
    embed_queue: Gauge,
    sse_clients: Gauge,
    outbox_depth: Gauge,
    outbox_oldest_s: Gauge<f64, std::sync::atomic::AtomicU64>,
    outbox_parked: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Self {
            frames: LabeledCounter::new("camera"),
            faces: Counter::default(),
            matches: Counter::default(),
            alerts: Counter::default(),
            suppressed: Counter::default(),
            rejections: LabeledCounter::new("reason"),
            reviews: LabeledCounter::new("decision"),
            embed_calls: Counter::default(),
            embed_faces: Counter::default(),
            published: Counter::default(),
            publish_duplicates: Counter::default(),
            publish_retries: Counter::default(),
            parked: Counter::default(),
            publish: Histogram::default(),
            stages: Default::default(),
            gauges: ScrapeGauges::default(),
            registry: Mutex::new(Registry::default()),
        };
        let mut r = Registry::default();
        // Counters are registered without `_total`: the encoder appends it (OpenMetrics).
        r.register("facewatch_frames", "Frames accepted for analysis", m.frames.family.clone());
        r.register("facewatch_faces", "Faces detected", m.faces.clone());
        r.register("facewatch_matches", "Faces above a list's threshold", m.matches.clone());
        r.register("facewatch_alerts", "Alerts created", m.alerts.clone());
        r.register(
            "facewatch_alerts_suppressed",
            "Matches within a list's cooldown (no new alert)",
            m.suppressed.clone(),
        );
        r.register("facewatch_rejections", "Requests or faces refused, by reason", m.rejections.family.clone());
        r.register("facewatch_reviews", "Alert reviews, by decision", m.reviews.family.clone());
        // One family labelled `stage`, sharing each stage's histogram with `stage(s)`.
        r.register("facewatch_stage_seconds", "Latency per pipeline stage", StageFamily(m.stages.clone()));
        r.register("facewatch_embed_calls", "Embedder model calls", m.embed_calls.clone());
        r.register("facewatch_embed_faces", "Faces embedded (over calls: the mean batch size)", m.embed_faces.clone());
        let g = &m.gauges;
        r.register("facewatch_queue_depth_ingest", "Frames waiting for detection", g.ingest_queue.clone());
        r.register("facewatch_queue_depth_embed", "Frames waiting for the embedder", g.embed_queue.clone());
        r.register("facewatch_sse_clients", "Open alert streams", g.sse_clients.clone());
        r.register("facewatch_outbox_depth", "Events not yet delivered", g.outbox_depth.clone());
        r.register("facewatch_outbox_oldest_seconds", "Age of the oldest undelivered event", g.outbox_oldest_s.clone());
        r.register("facewatch_outbox_parked", "Events parked as undeliverable", g.outbox_parked.clone());
        r.register("facewatch_events_published", "Events acknowledged by the broker", m.published.clone());
        r.register(
            "facewatch_events_duplicates",
            "Events the broker already had (dropped by id)",
            m.publish_duplicates.clone(),
        );
        r.register("facewatch_publish_retries", "Failed publish or connect attempts", m.publish_retries.clone());
        r.register("facewatch_events_parked", "Events parked since start", m.parked.clone());
        r.register("facewatch_publish_seconds", "Broker round trip per event", m.publish.0.clone());
        *m.registry.lock().unwrap_or_else(|p| p.into_inner()) = r;
        m
    }
}

/// The stage histograms as one family labelled `stage`.
#[derive(Debug, Clone)]
struct StageFamily([Histogram; 7]);

impl EncodeMetric for StageFamily {
    fn encode(&self, mut encoder: prometheus_client::encoding::MetricEncoder) -> std::fmt::Result {
        for s in Stage::ALL {
            let labels = [("stage", s.name())];
            self.0[s as usize].0.encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

impl Metrics {
    pub fn stage(&self, s: Stage) -> &Histogram {
        &self.stages[s as usize]
    }

    /// Series computed at each scrape (the cameras'), beside the ones kept here.
    pub fn register_collector(&self, c: Box<dyn Collector>) {
        self.registry.lock().unwrap_or_else(|p| p.into_inner()).register_collector(c);
    }

    /// The OpenMetrics text of every series, with the scrape-time values `g`.
    pub fn render(&self, g: &Gauges) -> String {
        let s = &self.gauges;
        s.ingest_queue.set(g.ingest_queue as i64);
        s.embed_queue.set(g.embed_queue as i64);
        s.sse_clients.set(g.sse_clients as i64);
        s.outbox_depth.set(g.outbox_depth);
        s.outbox_oldest_s.set(g.outbox_oldest_s);
        s.outbox_parked.set(g.outbox_parked);
        let mut out = String::with_capacity(8192);
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets() {
        let m = Metrics::default();
        m.stage(Stage::Detect).observe(Duration::from_micros(700));
        m.stage(Stage::Detect).observe(Duration::from_millis(3));
        m.rejections.inc("queue_full");
        let g = Gauges {
            ingest_queue: 2,
            embed_queue: 0,
            sse_clients: 1,
            outbox_depth: 5,
            outbox_oldest_s: 1.5,
            outbox_parked: 0,
        };
        let text = m.render(&g);
        // The client writes `le` first; label order carries no meaning in the format.
        assert!(text.contains("facewatch_stage_seconds_bucket{le=\"0.001\",stage=\"detect\"} 1"), "{text}");
        assert!(text.contains("facewatch_stage_seconds_bucket{le=\"0.004\",stage=\"detect\"} 2"));
        assert!(text.contains("facewatch_stage_seconds_count{stage=\"detect\"} 2"));
        assert!(text.contains("facewatch_rejections_total{reason=\"queue_full\"} 1"));
        assert!(text.contains("facewatch_queue_depth_ingest 2") && text.contains("facewatch_outbox_depth 5"));
    }
}
