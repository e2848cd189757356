//! Configuration: one loader for `serve` and every other command (defaults, then a TOML file,
//! then `FACEWATCH_*` environment variables, then explicit command-line flags).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::inference::{DEFAULT_MAX_FACES, DEFAULT_MEMORY_BUDGET_MB, InferenceOptions};
use crate::memory::FrameCost;
use crate::pipeline::PipelineOptions;
use crate::vision::decode::DEFAULT_MAX_PIXELS;
use crate::vision::detect::DetectorOptions;
use crate::vision::runtime::RuntimeOptions;
use crate::watchlist::index::DEFAULT_SPEC;

/// Flags every command accepts. Each overrides the config file and the environment only when
/// given: the environment is read by [`ServiceConfig::load`], so that a command and the service
/// started with the same file and environment use the same data folder.
#[derive(Debug, Clone, Default, Args)]
pub struct Settings {
    /// Folder for the SQLite store and index files [config: data_dir].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Folder holding manifest.toml and the model files [config: models_dir].
    #[arg(long, global = true)]
    pub models_dir: Option<PathBuf>,
    /// ONNX Runtime intra-op threads per model, 0 = all cores [config: threads].
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Minimum detector score for a face [config: detect_threshold].
    #[arg(long, global = true)]
    pub detect_threshold: Option<f32>,
    /// Largest accepted image, in pixels [config: max_pixels].
    #[arg(long, global = true)]
    pub max_pixels: Option<u64>,
    /// Watch-list index: "auto" (exact up to 50k templates, an inverted file beyond) or a FAISS factory
    /// string with optional search parameters, e.g. "IDMap2,Flat", "IDMap2,HNSW32|efSearch=128",
    /// "IDMap2,IVF4096,Flat|nprobe=32" [config: index_factory].
    #[arg(long, global = true)]
    pub index_factory: Option<String>,
    /// Use the CUDA execution provider when built with the `cuda` feature [config: cuda].
    #[arg(long, global = true)]
    pub cuda: bool,
}

impl Settings {
    /// The one loader: defaults <- `file` <- `FACEWATCH_*` in `env` <- these flags, validated.
    pub fn load(
        &self,
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> crate::Result<ServiceConfig> {
        let mut cfg = ServiceConfig::load(file, env)?;
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        if let Some(d) = &self.models_dir {
            cfg.models_dir = d.clone();
        }
        if let Some(t) = self.threads {
            cfg.threads = t;
        }
        if let Some(t) = self.detect_threshold {
            cfg.detect_threshold = t;
        }
        if let Some(p) = self.max_pixels {
            cfg.max_pixels = p;
        }
        if let Some(f) = &self.index_factory {
            cfg.index_factory = f.clone();
        }
        cfg.cuda |= self.cuda;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The models folder given, else the defaults of [`crate::models_dir`] (never the build tree).
fn models_dir_or_default(given: Option<&std::path::Path>) -> PathBuf {
    crate::models_dir::resolve(given)
}

/// The service's configuration: defaults, then a TOML file, then `FACEWATCH_<KEY>` environment
/// variables (e.g. `FACEWATCH_BIND`, `FACEWATCH_QUEUE_CAPACITY`), validated once at start.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Name of this checkpoint, carried by every alert.
    pub site: String,
    /// Address the HTTP API listens on.
    pub bind: String,
    pub data_dir: PathBuf,
    /// Models folder; empty = `./models`, else next to the executable (see [`crate::models_dir`]).
    pub models_dir: PathBuf,
    /// ONNX Runtime intra-op threads per model session (0 = all cores). The default, 2 per
    /// model even on 2 cores, lets a busy model use the cores of an idle one (the embedder
    /// while no frame is being detected, and the other way round); against 1 per model it cut
    /// p50 and p99 under load (BENCHMARKS.md, service load).
    pub threads: usize,
    pub detect_workers: usize,
    /// Frames that may wait for a detect worker before new ones get 503.
    pub queue_capacity: usize,
    pub embed_max_batch: usize,
    pub detect_threshold: f32,
    pub max_pixels: u64,
    /// Largest request body in bytes (frames and enrollment uploads).
    pub max_body_bytes: usize,
    /// Frames held in memory at once (bodies waiting to be decoded, decoded frames, face
    /// chips), in MiB; a frame that does not fit is refused with 503. Must hold the largest
    /// frame that `max_pixels` and `max_body_bytes` allow. The models come on top.
    pub memory_budget_mb: u64,
    /// Faces analysed per frame (the largest first); the rest are reported as `faces_skipped`.
    pub max_faces_per_frame: usize,
    pub index_factory: String,
    pub cuda: bool,
    /// Seconds a client refused with 503 is told to wait.
    pub retry_after_secs: u64,
    /// How often the retention sweep runs.
    pub retention_sweep_secs: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// Check model files against the manifest's sha256 at start.
    pub verify_models: bool,
    /// NATS server(s) for the central stream, e.g. "nats://hq-leaf:4222"; empty = events stay
    /// in the local outbox and are served by `GET /v1/events`.
    pub nats_url: String,
    pub nats_stream: String,
    /// Stream replicas (3 on a clustered JetStream at the centre).
    pub nats_replicas: usize,
    pub nats_max_age_days: u64,
    /// JetStream drops a repeated event id inside this window (covers retries after lost acks).
    pub nats_duplicate_window_secs: u64,
    /// Longest wait between retries while the broker is unreachable.
    pub publish_max_backoff_ms: u64,
    /// Delivered events (and, with no broker, all events) are deleted after this many days.
    pub events_retention_days: u64,
    /// Instead of NATS: POST each event to this URL, signed with `webhook_secret` (HMAC-SHA256).
    pub webhook_url: String,
    pub webhook_secret: crate::secret::Secret,
    /// What a camera learns from its frame's answer: "minimal" (face boxes and alert ids) or
    /// "full" (also each face's quality, matches with list, subject, name and score). A stolen
    /// camera token must not be a watch-list lookup service, hence the default.
    pub camera_response: String,
    /// Open alert streams (`/v1/alerts/stream`) in all, and per token; more get 429.
    pub sse_max_streams: usize,
    pub sse_max_streams_per_token: usize,
    /// Alert events buffered for live streams; a stream further behind is sent `resync`.
    pub sse_buffer: usize,
    /// Frame and enrollment bodies read at once (each up to `max_body_bytes`); more get 503.
    /// Bodies are memory before they are queued (and counted in `memory_budget_mb`).
    pub max_concurrent_uploads: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            site: "checkpoint".into(),
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            models_dir: PathBuf::new(),
            threads: 2,
            detect_workers: 1,
            queue_capacity: 32,
            embed_max_batch: 32,
            detect_threshold: 0.9,
            max_pixels: DEFAULT_MAX_PIXELS,
            max_body_bytes: 20 << 20,
            memory_budget_mb: DEFAULT_MEMORY_BUDGET_MB,
            max_faces_per_frame: DEFAULT_MAX_FACES,
            index_factory: DEFAULT_SPEC.into(),
            cuda: cfg!(feature = "cuda"),
            retry_after_secs: 1,
            retention_sweep_secs: 3600,
            shutdown_grace_secs: 30,
            verify_models: true,
            nats_url: String::new(),
            nats_stream: "FACEWATCH".into(),
            nats_replicas: 1,
            nats_max_age_days: 30,
            nats_duplicate_window_secs: 3600,
            publish_max_backoff_ms: 10_000,
            events_retention_days: 30,
            webhook_url: String::new(),
            webhook_secret: crate::secret::Secret::default(),
            camera_response: "minimal".into(),
            sse_max_streams: 64,
            sse_max_streams_per_token: 4,
            sse_buffer: 1024,
            max_concurrent_uploads: 16,
        }
    }
}

impl ServiceConfig {
    /// Defaults <- `file` (if given) <- environment (`env` is the process environment in production).
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> crate::Result<Self> {
        use crate::error::Error;
        let defaults = toml::Table::try_from(Self::default()).map_err(|e| Error::Config(e.to_string()))?;
        let mut table = defaults.clone();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            let from_file: toml::Table = text.parse().map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            for (k, v) in from_file {
                if !defaults.contains_key(&k) {
                    return Err(Error::Config(format!("{}: unknown key {k:?}", path.display())));
                }
                table.insert(k, v);
            }
        }
        for (name, raw) in env {
            let Some(key) = name.strip_prefix("FACEWATCH_").map(str::to_ascii_lowercase) else { continue };
            let Some(default) = defaults.get(&key) else { continue };
            let value = match default {
                toml::Value::String(_) => toml::Value::String(raw.clone()),
                toml::Value::Integer(_) => toml::Value::Integer(
                    raw.trim().parse().map_err(|_| Error::Config(format!("{name}={raw:?}: expected an integer")))?,
                ),
                toml::Value::Float(_) => toml::Value::Float(
                    raw.trim().parse().map_err(|_| Error::Config(format!("{name}={raw:?}: expected a number")))?,
                ),
                toml::Value::Boolean(_) => toml::Value::Boolean(match raw.trim() {
                    "1" | "true" | "yes" => true,
                    "0" | "false" | "no" => false,
                    _ => return Err(Error::Config(format!("{name}={raw:?}: expected true or false"))),
                }),
                _ => continue,
            };
            table.insert(key, value);
        }
        let cfg: Self = table.try_into().map_err(|e: toml::de::Error| Error::Config(e.message().to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> crate::Result<()> {
        let mut bad = Vec::new();
        if self.bind.parse::<std::net::SocketAddr>().is_err() {
            bad.push(format!("bind {:?} is not an address:port", self.bind));
        }
        if self.site.is_empty() || !self.site.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bad.push(format!("site {:?}: letters, digits, '-' or '_'", self.site));
        }
        for (k, v) in [
            ("detect_workers", self.detect_workers),
            ("queue_capacity", self.queue_capacity),
            ("embed_max_batch", self.embed_max_batch),
            ("max_concurrent_uploads", self.max_concurrent_uploads),
        ] {
            if v == 0 || v > 1024 {
                bad.push(format!("{k} {v}: expected 1..1024"));
            }
        }
        if !(0.0..=1.0).contains(&self.detect_threshold) {
            bad.push(format!("detect_threshold {}: expected 0..1", self.detect_threshold));
        }
        if self.max_body_bytes < 1024 {
            bad.push(format!("max_body_bytes {}: at least 1024", self.max_body_bytes));
        }
        if self.max_pixels == 0 {
            bad.push("max_pixels must be at least 1".into());
        }
        if !(1..=DetectorOptions::default().top_k).contains(&self.max_faces_per_frame) {
            bad.push(format!(
                "max_faces_per_frame {}: expected 1..{}",
                self.max_faces_per_frame,
                DetectorOptions::default().top_k
            ));
        }
        if !(64..=1 << 20).contains(&self.memory_budget_mb) {
            bad.push(format!("memory_budget_mb {}: expected 64..1048576", self.memory_budget_mb));
        } else {
            let worst = self.frame_cost().worst(self.max_body_bytes as u64);
            if worst > self.memory_budget_mb << 20 {
                bad.push(format!(
                    "memory_budget_mb {}: the largest frame allowed (max_pixels {}, max_body_bytes {}) needs {} MiB; \
                     raise it or lower max_pixels",
                    self.memory_budget_mb,
                    self.max_pixels,
                    self.max_body_bytes,
                    worst.div_ceil(1 << 20)
                ));
            }
        }
        if self.nats_stream.is_empty()
            || !self.nats_stream.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bad.push(format!("nats_stream {:?}: letters, digits, '-' or '_'", self.nats_stream));
        }
        if !(1..=5).contains(&self.nats_replicas) {
            bad.push(format!("nats_replicas {}: expected 1..5", self.nats_replicas));
        }
        if !self.webhook_url.is_empty() {
            if !self.nats_url.is_empty() {
                bad.push("set nats_url or webhook_url, not both (one sink per checkpoint)".into());
            }
            if !(self.webhook_url.starts_with("https://") || self.webhook_url.starts_with("http://")) {
                bad.push(format!("webhook_url {:?}: expected http:// or https://", self.webhook_url));
            }
            if self.webhook_secret.len() < 16 {
                bad.push("webhook_secret: at least 16 characters".into());
            }
        }
        if self.publish_max_backoff_ms < 100 {
            bad.push("publish_max_backoff_ms must be at least 100".into());
        }
        if !matches!(self.camera_response.as_str(), "minimal" | "full") {
            bad.push(format!("camera_response {:?}: expected \"minimal\" or \"full\"", self.camera_response));
        }
        if !(1..=4096).contains(&self.sse_max_streams) {
            bad.push(format!("sse_max_streams {}: expected 1..4096", self.sse_max_streams));
        }
        if self.sse_max_streams_per_token == 0 || self.sse_max_streams_per_token > self.sse_max_streams {
            bad.push(format!(
                "sse_max_streams_per_token {}: expected 1..sse_max_streams ({})",
                self.sse_max_streams_per_token, self.sse_max_streams
            ));
        }
        if !(1..=65_536).contains(&self.sse_buffer) {
            bad.push(format!("sse_buffer {}: expected 1..65536", self.sse_buffer));
        }
        if self.retention_sweep_secs == 0 {
            bad.push("retention_sweep_secs must be at least 1".into());
        }
        if bad.is_empty() { Ok(()) } else { Err(crate::error::Error::Config(bad.join("; "))) }
    }

    /// Whether cameras get the full frame report (`camera_response = "full"`).
    pub fn full_camera_response(&self) -> bool {
        self.camera_response == "full"
    }

    pub fn models_dir(&self) -> PathBuf {
        models_dir_or_default((!self.models_dir.as_os_str().is_empty()).then_some(self.models_dir.as_path()))
    }

    /// What one frame reserves in the memory budget, with the shipped embedder's 150x150 chips
    /// (the engine charges the loaded model's own size).
    pub fn frame_cost(&self) -> FrameCost {
        FrameCost {
            max_pixels: self.max_pixels,
            detect_max_side: DetectorOptions::default().max_side,
            max_faces: self.max_faces_per_frame,
            face_bytes: crate::memory::face_bytes(150, 128),
        }
    }

    /// The largest `max_pixels` whose frames fit the memory budget beside a body of
    /// `max_body_bytes` (what `validate` accepts).
    pub fn largest_max_pixels(&self) -> u64 {
        let fits = |px: u64| {
            let c = ServiceConfig { max_pixels: px, ..self.clone() };
            c.frame_cost().worst(self.max_body_bytes as u64) <= self.memory_budget_mb << 20
        };
        let (mut lo, mut hi) = (0u64, 1u64 << 40);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) { lo = mid } else { hi = mid - 1 }
        }
        lo
    }

    pub fn inference_options(&self) -> InferenceOptions {
        InferenceOptions {
            pipeline: self.pipeline_options(),
            detect_workers: self.detect_workers,
            queue_capacity: self.queue_capacity,
            max_pixels: self.max_pixels,
            retry_after_s: self.retry_after_secs,
            memory_budget_bytes: self.memory_budget_mb << 20,
            max_faces: self.max_faces_per_frame,
        }
    }

    /// Where events are delivered, if anywhere (else they wait in the local outbox).
    pub fn sink(&self) -> Option<crate::events::publisher::SinkConfig> {
        use crate::events::publisher::SinkConfig;
        if !self.webhook_url.is_empty() {
            return Some(SinkConfig::Webhook { url: self.webhook_url.clone(), secret: self.webhook_secret.clone() });
        }
        (!self.nats_url.is_empty()).then(|| {
            SinkConfig::Nats(crate::events::nats::NatsOptions {
                url: self.nats_url.clone(),
                stream: self.nats_stream.clone(),
                replicas: self.nats_replicas,
                max_age: std::time::Duration::from_secs(self.nats_max_age_days * 86_400),
                duplicate_window: std::time::Duration::from_secs(self.nats_duplicate_window_secs),
            })
        })
    }

    pub fn pipeline_options(&self) -> PipelineOptions {
        PipelineOptions {
            // The engine's detect workers and embedder run at the same time: no spinning.
            runtime: RuntimeOptions { intra_threads: self.threads, cuda: self.cuda, spin: false },
            detector: DetectorOptions { score_threshold: self.detect_threshold, ..DetectorOptions::default() },
            max_batch: self.embed_max_batch,
            verify_models: self.verify_models,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_then_validation() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("fw.toml");
        std::fs::write(&f, "site = \"lhr-t5\"\nqueue_capacity = 4\n").unwrap();
        let env =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let c = ServiceConfig::load(Some(&f), env(&[("FACEWATCH_QUEUE_CAPACITY", "8"), ("HOME", "/x")])).unwrap();
        assert_eq!((c.site.as_str(), c.queue_capacity, c.detect_workers), ("lhr-t5", 8, 1));
        let e = ServiceConfig::load(Some(&f), env(&[("FACEWATCH_QUEUE_CAPACITY", "many")])).unwrap_err();
        assert!(e.to_string().contains("FACEWATCH_QUEUE_CAPACITY"), "{e}");
        let e = ServiceConfig::load(None, env(&[("FACEWATCH_BIND", "nowhere")])).unwrap_err();
        assert!(e.to_string().contains("bind"), "{e}");
        std::fs::write(&f, "sight = \"typo\"\n").unwrap();
        assert!(ServiceConfig::load(Some(&f), env(&[])).unwrap_err().to_string().contains("sight"));
        assert!(ServiceConfig::load(Some(&dir.path().join("missing.toml")), env(&[])).is_err());
    }

    #[test]
    fn the_memory_budget_must_hold_the_largest_frame() {
        let env =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let c = ServiceConfig::load(None, env(&[])).unwrap();
        assert_eq!((c.memory_budget_mb, c.max_faces_per_frame), (1024, 64));
        // 40 MP: the detector's resize works through 16 bytes a pixel beside the frame's 3.
        let e = ServiceConfig::load(None, env(&[("FACEWATCH_MEMORY_BUDGET_MB", "512")])).unwrap_err();
        assert!(e.to_string().contains("memory_budget_mb 512: the largest frame"), "{e}");
        let small = ServiceConfig { memory_budget_mb: 256, max_body_bytes: 4 << 20, ..c.clone() };
        let px = small.largest_max_pixels();
        assert!((12_000_000..13_000_000).contains(&px), "{px}");
        assert!(ServiceConfig { max_pixels: px, ..small.clone() }.validate().is_ok());
        assert!(ServiceConfig { max_pixels: px + 1, ..small.clone() }.validate().is_err());
        for (k, v) in [("MEMORY_BUDGET_MB", "0"), ("MEMORY_BUDGET_MB", "99999999"), ("MAX_FACES_PER_FRAME", "0")] {
            let e = ServiceConfig::load(None, env(&[(&format!("FACEWATCH_{k}"), v)])).unwrap_err();
            assert!(e.to_string().contains(&k.to_ascii_lowercase()), "{e}");
        }
    }

    #[test]
    fn debug_and_the_sink_never_print_the_webhook_secret() {
        let secret = "s3cret-0123456789abcdef";
        let env = [("FACEWATCH_WEBHOOK_URL", "http://127.0.0.1:9/hook"), ("FACEWATCH_WEBHOOK_SECRET", secret)];
        let c = ServiceConfig::load(None, env.map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        let printed = format!("{c:?} {:?} {c:#?}", c.sink());
        assert!(!printed.contains(secret), "{printed}");
        assert!(printed.contains("webhook_secret: \"<redacted>\""), "{printed}");
        assert_eq!(c.webhook_secret.expose(), secret, "loaded as given");
    }

    #[test]
    fn the_example_file_is_valid() {
        let f = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("facewatch.example.toml");
        let c = ServiceConfig::load(Some(&f), Vec::new()).unwrap();
        assert_eq!(c.site, "lhr-t5-arrivals");
    }
}
