//! Service metrics in the Prometheus text format. A handful of fixed series, so a small
//! lock-light registry is clearer than a generic one.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency buckets in seconds: 0.5 ms .. 4 s.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096];

#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cum = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cum += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cum}");
        }
        let n = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {n}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {n}");
    }
}

/// A counter per label value (camera, reason, ...).
#[derive(Default)]
pub struct LabeledCounter(Mutex<BTreeMap<String, u64>>);

impl LabeledCounter {
    pub fn inc(&self, label: &str) {
        self.add(label, 1);
    }

    pub fn add(&self, label: &str, n: u64) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(label.to_string()).or_default() += n;
        }
    }

    pub fn get(&self, label: &str) -> u64 {
        self.0.lock().map(|m| m.get(label).copied().unwrap_or(0)).unwrap_or(0)
    }

    fn render(&self, out: &mut String, name: &str, label: &str) {
        if let Ok(m) = self.0.lock() {
            for (v, n) in m.iter() {
                let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape(v));
            }
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
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

#[derive(Default)]
pub struct Metrics {
    pub frames: LabeledCounter,
    pub faces: AtomicU64,
    pub matches: AtomicU64,
    pub alerts: AtomicU64,
    /// Matches that added no alert because of the list's cooldown.
    pub suppressed: AtomicU64,
    pub rejections: LabeledCounter,
    pub reviews: LabeledCounter,
    /// Embedder calls and the faces they carried (their ratio is the mean batch size).
    pub embed_calls: AtomicU64,
    /// Events acknowledged by the broker, repeats it dropped, failed attempts, parked events.
    pub published: AtomicU64,
    pub publish_duplicates: AtomicU64,
    pub publish_retries: AtomicU64,
    pub parked: AtomicU64,
    /// Broker round trip of one event (publish -> ack).
    pub publish: Histogram,
    pub embed_faces: AtomicU64,
    stages: [Histogram; 7],
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

impl Metrics {
    pub fn stage(&self, s: Stage) -> &Histogram {
        &self.stages[s as usize]
    }

    pub fn render(&self, g: &Gauges) -> String {
        let mut o = String::with_capacity(8192);
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let _ = writeln!(
            o,
            "# HELP facewatch_frames_total Frames accepted for analysis.\n# TYPE facewatch_frames_total counter"
        );
        self.frames.render(&mut o, "facewatch_frames_total", "camera");
        counter(&mut o, "facewatch_faces_total", "Faces detected.", self.faces.load(Ordering::Relaxed));
        counter(
            &mut o,
            "facewatch_matches_total",
            "Faces above a list's threshold.",
            self.matches.load(Ordering::Relaxed),
        );
        counter(&mut o, "facewatch_alerts_total", "Alerts created.", self.alerts.load(Ordering::Relaxed));
        counter(
            &mut o,
            "facewatch_alerts_suppressed_total",
            "Matches within a list's cooldown (no new alert).",
            self.suppressed.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP facewatch_rejections_total Requests or faces refused, by reason.\n# TYPE facewatch_rejections_total counter"
        );
        self.rejections.render(&mut o, "facewatch_rejections_total", "reason");
        let _ = writeln!(
            o,
            "# HELP facewatch_reviews_total Alert reviews, by decision.\n# TYPE facewatch_reviews_total counter"
        );
        self.reviews.render(&mut o, "facewatch_reviews_total", "decision");
        let _ = writeln!(
            o,
            "# HELP facewatch_stage_seconds Latency per pipeline stage.\n# TYPE facewatch_stage_seconds histogram"
        );
        for s in Stage::ALL {
            self.stage(s).render(&mut o, "facewatch_stage_seconds", &format!("stage=\"{}\"", s.name()));
        }
        counter(
            &mut o,
            "facewatch_embed_calls_total",
            "Embedder model calls.",
            self.embed_calls.load(Ordering::Relaxed),
        );
        counter(
            &mut o,
            "facewatch_embed_faces_total",
            "Faces embedded (over calls: the mean batch size).",
            self.embed_faces.load(Ordering::Relaxed),
        );
        let gauge = |o: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(&mut o, "facewatch_queue_depth_ingest", "Frames waiting for detection.", g.ingest_queue as f64);
        gauge(&mut o, "facewatch_queue_depth_embed", "Frames waiting for the embedder.", g.embed_queue as f64);
        gauge(&mut o, "facewatch_sse_clients", "Open alert streams.", g.sse_clients as f64);
        gauge(&mut o, "facewatch_outbox_depth", "Events not yet delivered.", g.outbox_depth as f64);
        gauge(&mut o, "facewatch_outbox_oldest_seconds", "Age of the oldest undelivered event.", g.outbox_oldest_s);
        gauge(&mut o, "facewatch_outbox_parked", "Events parked as undeliverable.", g.outbox_parked as f64);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut o,
            "facewatch_events_published_total",
            "Events acknowledged by the broker.",
            load(&self.published),
        );
        counter(
            &mut o,
            "facewatch_events_duplicates_total",
            "Events the broker already had (dropped by id).",
            load(&self.publish_duplicates),
        );
        counter(
            &mut o,
            "facewatch_publish_retries_total",
            "Failed publish or connect attempts.",
            load(&self.publish_retries),
        );
        counter(&mut o, "facewatch_events_parked_total", "Events parked since start.", load(&self.parked));
        let _ = writeln!(
            o,
            "# HELP facewatch_publish_seconds Broker round trip per event.\n# TYPE facewatch_publish_seconds histogram"
        );
        self.publish.render(&mut o, "facewatch_publish_seconds", "");
        o
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
        assert!(text.contains("facewatch_stage_seconds_bucket{stage=\"detect\",le=\"0.001\"} 1"), "{text}");
        assert!(text.contains("facewatch_stage_seconds_bucket{stage=\"detect\",le=\"0.004\"} 2"));
        assert!(text.contains("facewatch_stage_seconds_count{stage=\"detect\"} 2"));
        assert!(text.contains("facewatch_rejections_total{reason=\"queue_full\"} 1"));
        assert!(text.contains("facewatch_queue_depth_ingest 2") && text.contains("facewatch_outbox_depth 5"));
    }
}
