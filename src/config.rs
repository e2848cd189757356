//! Configuration: one loader for `serve` and every other command (defaults, then a TOML file
//! in sections, then `FACEWATCH_<SECTION>__<KEY>` environment variables, then explicit
//! command-line flags). Keys of the old flat layout are refused with their new place.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::console::config::ConsoleSection;
use crate::error::Error;
use crate::inference::{DEFAULT_MAX_FACES, DEFAULT_MEMORY_BUDGET_MB, InferenceOptions};
use crate::ingest::{CameraConfig, IngestSection};
use crate::memory::FrameCost;
use crate::pipeline::PipelineOptions;
use crate::secret::{Secret, SecretUrl};
use crate::vision::decode::DEFAULT_MAX_PIXELS;
use crate::vision::detect::DetectorOptions;
use crate::vision::runtime::RuntimeOptions;
use crate::watchlist::index::DEFAULT_SPEC;

/// Flags every command accepts. Each overrides the config file and the environment only when
/// given: the environment is read by [`ServiceConfig::load`], so that a command and the service
/// started with the same file and environment use the same data folder.
#[derive(Debug, Clone, Default, Args)]
pub struct Settings {
    /// Folder for the SQLite store and index files [config: [service] data_dir].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Folder holding manifest.toml and the model files [config: [models] dir].
    #[arg(long, global = true)]
    pub models_dir: Option<PathBuf>,
    /// ONNX Runtime intra-op threads per model, 0 = all cores [config: [models] threads].
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Minimum detector score for a face [config: [inference] detect_threshold].
    #[arg(long, global = true)]
    pub detect_threshold: Option<f32>,
    /// Largest accepted image, in pixels [config: [limits] max_pixels].
    #[arg(long, global = true)]
    pub max_pixels: Option<u64>,
    /// Watch-list index: "auto" (exact up to 50k templates, an inverted file beyond) or a FAISS factory
    /// string with optional search parameters, e.g. "IDMap2,Flat", "IDMap2,HNSW32|efSearch=128",
    /// "IDMap2,IVF4096,Flat|nprobe=32" [config: [watchlist] index_factory].
    #[arg(long, global = true)]
    pub index_factory: Option<String>,
    /// Use the CUDA execution provider when built with the `cuda` feature [config: [models] cuda].
    #[arg(long, global = true)]
    pub cuda: bool,
}

impl Settings {
    /// The one loader: defaults <- `file` <- `FACEWATCH_*__*` in `env` <- these flags, validated.
    pub fn load(
        &self,
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> crate::Result<ServiceConfig> {
        let mut cfg = ServiceConfig::load(file, env)?;
        if let Some(d) = &self.data_dir {
            cfg.service.data_dir = d.clone();
        }
        if let Some(d) = &self.models_dir {
            cfg.models.dir = d.clone();
        }
        if let Some(t) = self.threads {
            cfg.models.threads = t;
        }
        if let Some(t) = self.detect_threshold {
            cfg.inference.detect_threshold = t;
        }
        if let Some(p) = self.max_pixels {
            cfg.limits.max_pixels = p;
        }
        if let Some(f) = &self.index_factory {
            cfg.watchlist.index_factory = f.clone();
        }
        cfg.models.cuda |= self.cuda;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The models folder given, else the defaults of [`crate::models_dir`] (never the build tree).
fn models_dir_or_default(given: Option<&std::path::Path>) -> PathBuf {
    crate::models_dir::resolve(given)
}

/// The service's configuration, in sections (`[service]`, `[models]`, ...): defaults, then a
/// TOML file, then `FACEWATCH_<SECTION>__<KEY>` environment variables (e.g.
/// `FACEWATCH_SERVICE__BIND`, `FACEWATCH_INFERENCE__QUEUE_CAPACITY`), validated once at start.
/// `Debug` prints no secret: the webhook key is `<redacted>`, URL credentials `***`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    pub service: ServiceSection,
    pub models: ModelsSection,
    pub inference: InferenceSection,
    pub limits: LimitsSection,
    pub watchlist: WatchlistSection,
    pub events: EventsSection,
    pub api: ApiSection,
    pub retention: RetentionSection,
    pub tracking: TrackingSection,
    /// `[console]`: the web console's sessions.
    pub console: ConsoleSection,
    /// `[ingest]`: what every camera shares (the ffmpeg binary, stderr logging).
    pub ingest: IngestSection,
    /// `[tls]`: HTTPS for the API and the console (plain HTTP only on loopback).
    pub tls: crate::tls::TlsSection,
    /// `[encryption]`: the data folder encrypted at rest (`crate::vault`).
    pub encryption: crate::vault::EncryptionSection,
    /// `[[cameras]]`: video pulled by the service (file only: a variable cannot hold a list).
    pub cameras: Vec<CameraConfig>,
}

/// `[service]`: who and where this checkpoint is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceSection {
    /// Name of this checkpoint, carried by every alert.
    pub site: String,
    /// Address the HTTP API listens on.
    pub bind: String,
    pub data_dir: PathBuf,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// Seconds a client refused with 503 is told to wait.
    pub retry_after_secs: u64,
}

/// `[models]`: the model files and how their sessions run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsSection {
    /// Models folder; empty = `./models`, else next to the executable (see [`crate::models_dir`]).
    pub dir: PathBuf,
    /// ONNX Runtime intra-op threads per model session (0 = all cores). The default, 2 per
    /// model even on 2 cores, lets a busy model use the cores of an idle one (the embedder
    /// while no frame is being detected, and the other way round); against 1 per model it cut
    /// p50 and p99 under load (BENCHMARKS.md, service load).
    pub threads: usize,
    pub cuda: bool,
    /// Check model files against the manifest's sha256 at start.
    pub verify: bool,
}

/// `[inference]`: detection, the frame queue and the embedder's batches.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceSection {
    pub detect_threshold: f32,
    pub detect_workers: usize,
    /// Frames that may wait for a detect worker before new ones get 503.
    pub queue_capacity: usize,
    pub embed_max_batch: usize,
    /// Faces analysed per frame (the largest first); the rest are reported as `faces_skipped`.
    pub max_faces_per_frame: usize,
}

/// `[limits]`: what one request, and all of them together, may cost.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub max_pixels: u64,
    /// Largest request body in bytes (frames and enrollment uploads).
    pub max_body_bytes: usize,
    /// Frames held in memory at once (bodies waiting to be decoded, decoded frames, face
    /// chips), in MiB; a frame that does not fit is refused with 503. Must hold the largest
    /// frame that `max_pixels` and `max_body_bytes` allow. The models come on top.
    pub memory_budget_mb: u64,
    /// Frame and enrollment bodies read at once (each up to `max_body_bytes`); more get 503.
    /// Bodies are memory before they are queued (and counted in `memory_budget_mb`).
    pub max_concurrent_uploads: usize,
}

/// `[watchlist]`: how templates are searched.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchlistSection {
    pub index_factory: String,
}

/// `[events]`: where events go (NATS JetStream or a webhook) and how long they are kept.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    /// NATS server(s) for the central stream, e.g. "nats://hq-leaf:4222"; empty = events stay
    /// in the local outbox and are served by `GET /v1/events`. May carry credentials.
    pub nats_url: SecretUrl,
    pub nats_stream: String,
    /// Stream replicas (3 on a clustered JetStream at the centre).
    pub nats_replicas: usize,
    pub nats_max_age_days: u64,
    /// JetStream drops a repeated event id inside this window (covers retries after lost acks).
    pub nats_duplicate_window_secs: u64,
    /// Longest wait between retries while the broker is unreachable.
    pub publish_max_backoff_ms: u64,
    /// Delivered events (and, with no broker, all events) are deleted after this many days.
    pub retention_days: u64,
    /// Instead of NATS: POST each event to this URL, signed with `webhook_secret` (HMAC-SHA256).
    pub webhook_url: SecretUrl,
    pub webhook_secret: Secret,
}

/// `[api]`: what the HTTP API tells cameras and how many alert streams it keeps open.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// What a camera learns from its frame's answer: "minimal" (face boxes and alert ids) or
    /// "full" (also each face's quality, matches with list, subject, name and score). A stolen
    /// camera token must not be a watch-list lookup service, hence the default.
    pub camera_response: String,
    /// Open alert streams (`/v1/alerts/stream`) in all, and per token; more get 429.
    pub sse_max_streams: usize,
    pub sse_max_streams_per_token: usize,
    /// Alert events buffered for live streams; a stream further behind is sent `resync`.
    pub sse_buffer: usize,
}

/// `[tracking]`: how tracked cameras follow faces (`crate::track`) and decide per pass (the
/// track rule, `crate::decide::track`). Each list's `track_threshold` is in its policy.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingSection {
    /// Detections at least this confident are matched first and may start tracks.
    pub high: f32,
    /// Weaker ones (from `low`) only continue tracks.
    pub low: f32,
    /// Detections before a track counts (a lone false detection never does).
    pub min_hits: u32,
    /// Missed frames, and milliseconds, a track survives (short occlusions).
    pub max_age: u32,
    pub max_lost_ms: u64,
    /// Gate on the distance between a track's prediction and a detection, in face sides.
    pub max_distance: f32,
    /// Live tracks per camera at most.
    pub max_tracks: u32,
    /// An embedding whose cosine with its track's mean is below this is another person's.
    pub split_below: f32,
    /// Embedded faces of a pass that must agree on the subject ...
    pub min_agreeing: u32,
    /// ... unless one face scores this much above the list's frame threshold.
    pub strong_margin: f32,
    /// Embeddings per track at most.
    pub max_embeddings: u32,
    /// Embed again only when the face grew by this factor, or its quality by `quality_gain`.
    pub grow: f32,
    pub quality_gain: f32,
    /// A pass scoring this far below every list's track threshold after `min_agreeing + 1`
    /// embeddings is settled: no more embeddings for it.
    pub settle_margin: f32,
    /// A tracked camera's frames are detected scaled down to this longer side (0 = the full
    /// frame); faces are still aligned and embedded from the full frame. Faces of about 32 px
    /// and more in a 1080p frame are all still found at 1280.
    pub detect_max_side: u32,
    /// A new track continues a pass lost at most `rejoin_within_ms` before it began (0: never),
    /// within `rejoin_distance` face sides, when its first embedding's cosine with the pass's
    /// fused one is at least `rejoin_above`: no second alert, the same embedding budget.
    pub rejoin_above: f32,
    pub rejoin_within_ms: u64,
    pub rejoin_distance: f32,
}

impl Default for TrackingSection {
    fn default() -> Self {
        let (t, r) = (crate::track::TrackerOptions::default(), crate::decide::track::TrackRuleOptions::default());
        Self {
            high: t.high,
            low: t.low,
            min_hits: t.min_hits,
            max_age: t.max_age,
            max_lost_ms: t.max_lost_ms.max(0) as u64,
            max_distance: t.max_distance,
            max_tracks: t.max_tracks as u32,
            split_below: t.split_below,
            min_agreeing: r.min_agreeing,
            strong_margin: r.strong_margin,
            max_embeddings: r.max_embeddings,
            grow: r.grow,
            quality_gain: r.quality_gain,
            settle_margin: r.settle_margin,
            detect_max_side: crate::inference::DEFAULT_TRACK_DETECT_MAX_SIDE,
            rejoin_above: r.rejoin_above,
            rejoin_within_ms: r.rejoin_within_ms,
            rejoin_distance: r.rejoin_distance,
        }
    }
}

impl TrackingSection {
    pub fn tracker(&self) -> crate::track::TrackerOptions {
        crate::track::TrackerOptions {
            high: self.high,
            low: self.low,
            min_hits: self.min_hits,
            max_age: self.max_age,
            max_lost_ms: self.max_lost_ms.min(i64::MAX as u64) as i64,
            max_distance: self.max_distance,
            max_tracks: self.max_tracks as usize,
            split_below: self.split_below,
            ..crate::track::TrackerOptions::default()
        }
    }

    pub fn rule(&self) -> crate::decide::track::TrackRuleOptions {
        crate::decide::track::TrackRuleOptions {
            min_agreeing: self.min_agreeing,
            strong_margin: self.strong_margin,
            max_embeddings: self.max_embeddings,
            grow: self.grow,
            quality_gain: self.quality_gain,
            settle_margin: self.settle_margin,
            rejoin_above: self.rejoin_above,
            rejoin_within_ms: self.rejoin_within_ms,
            rejoin_distance: self.rejoin_distance,
        }
    }
}

/// `[retention]`: the sweep that deletes expired crops, reference images and events.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// How often the retention sweep runs.
    pub sweep_secs: u64,
}

impl Default for ServiceSection {
    fn default() -> Self {
        Self {
            site: "checkpoint".into(),
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            shutdown_grace_secs: 30,
            retry_after_secs: 1,
        }
    }
}

impl Default for ModelsSection {
    fn default() -> Self {
        Self { dir: PathBuf::new(), threads: 2, cuda: cfg!(feature = "cuda"), verify: true }
    }
}

impl Default for InferenceSection {
    fn default() -> Self {
        Self {
            detect_threshold: 0.9,
            detect_workers: 1,
            queue_capacity: 32,
            embed_max_batch: 32,
            max_faces_per_frame: DEFAULT_MAX_FACES,
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_pixels: DEFAULT_MAX_PIXELS,
            max_body_bytes: 20 << 20,
            memory_budget_mb: DEFAULT_MEMORY_BUDGET_MB,
            max_concurrent_uploads: 16,
        }
    }
}

impl Default for WatchlistSection {
    fn default() -> Self {
        Self { index_factory: DEFAULT_SPEC.into() }
    }
}

impl Default for EventsSection {
    fn default() -> Self {
        Self {
            nats_url: SecretUrl::default(),
            nats_stream: "FACEWATCH".into(),
            nats_replicas: 1,
            nats_max_age_days: 30,
            nats_duplicate_window_secs: 3600,
            publish_max_backoff_ms: 10_000,
            retention_days: 30,
            webhook_url: SecretUrl::default(),
            webhook_secret: Secret::default(),
        }
    }
}

impl Default for ApiSection {
    fn default() -> Self {
        Self { camera_response: "minimal".into(), sse_max_streams: 64, sse_max_streams_per_token: 4, sse_buffer: 1024 }
    }
}

impl Default for RetentionSection {
    fn default() -> Self {
        Self { sweep_secs: 3600 }
    }
}

/// Keys of the flat configuration (before sections) and where each lives now: an old file or
/// variable is refused with this, never silently ignored.
const MOVED: &[(&str, &str, &str)] = &[
    ("site", "service", "site"),
    ("bind", "service", "bind"),
    ("data_dir", "service", "data_dir"),
    ("shutdown_grace_secs", "service", "shutdown_grace_secs"),
    ("retry_after_secs", "service", "retry_after_secs"),
    ("models_dir", "models", "dir"),
    ("threads", "models", "threads"),
    ("cuda", "models", "cuda"),
    ("verify_models", "models", "verify"),
    ("detect_threshold", "inference", "detect_threshold"),
    ("detect_workers", "inference", "detect_workers"),
    ("queue_capacity", "inference", "queue_capacity"),
    ("embed_max_batch", "inference", "embed_max_batch"),
    ("max_faces_per_frame", "inference", "max_faces_per_frame"),
    ("max_pixels", "limits", "max_pixels"),
    ("max_body_bytes", "limits", "max_body_bytes"),
    ("memory_budget_mb", "limits", "memory_budget_mb"),
    ("max_concurrent_uploads", "limits", "max_concurrent_uploads"),
    ("index_factory", "watchlist", "index_factory"),
    ("nats_url", "events", "nats_url"),
    ("nats_stream", "events", "nats_stream"),
    ("nats_replicas", "events", "nats_replicas"),
    ("nats_max_age_days", "events", "nats_max_age_days"),
    ("nats_duplicate_window_secs", "events", "nats_duplicate_window_secs"),
    ("publish_max_backoff_ms", "events", "publish_max_backoff_ms"),
    ("events_retention_days", "events", "retention_days"),
    ("webhook_url", "events", "webhook_url"),
    ("webhook_secret", "events", "webhook_secret"),
    ("camera_response", "api", "camera_response"),
    ("sse_max_streams", "api", "sse_max_streams"),
    ("sse_max_streams_per_token", "api", "sse_max_streams_per_token"),
    ("sse_buffer", "api", "sse_buffer"),
    ("retention_sweep_secs", "retention", "sweep_secs"),
];

/// The environment variable of `[section] key`.
pub fn env_name(section: &str, key: &str) -> String {
    format!("FACEWATCH_{}__{}", section.to_ascii_uppercase(), key.to_ascii_uppercase())
}

/// "nats_url is now [events] nats_url / FACEWATCH_EVENTS__NATS_URL", for a flat key of old.
fn moved_hint(old: &str) -> Option<String> {
    let (_, section, key) = MOVED.iter().find(|(o, ..)| *o == old)?;
    Some(format!("{old} is now [{section}] {key} / {}", env_name(section, key)))
}

/// `value` as the type of `default` (the key's type), or why not. Integers are all counts and
/// sizes here: a negative one is refused by name rather than by serde's type error.
fn typed(default: &toml::Value, value: toml::Value) -> std::result::Result<toml::Value, &'static str> {
    use toml::Value as V;
    match (default, value) {
        (V::String(_), v @ V::String(_)) | (V::Boolean(_), v @ V::Boolean(_)) | (V::Float(_), v @ V::Float(_)) => Ok(v),
        (V::Integer(_), V::Integer(i)) if i >= 0 => Ok(V::Integer(i)),
        (V::Integer(_), _) => Err("expected a non-negative integer"),
        (V::Float(_), V::Integer(i)) => Ok(V::Float(i as f64)),
        (V::Float(_), _) => Err("expected a number"),
        (V::String(_), _) => Err("expected a string"),
        (V::Boolean(_), _) => Err("expected true or false"),
        _ => Err("unsupported value"),
    }
}

/// An environment value as the type of `default`.
fn parse_env(default: &toml::Value, raw: &str) -> std::result::Result<toml::Value, &'static str> {
    use toml::Value as V;
    match default {
        V::String(_) => Ok(V::String(raw.to_string())),
        V::Integer(_) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|i| i64::try_from(i).ok())
            .map(V::Integer)
            .ok_or("expected a non-negative integer"),
        V::Float(_) => raw.trim().parse().map(V::Float).map_err(|_| "expected a number"),
        V::Boolean(_) => match raw.trim() {
            "1" | "true" | "yes" => Ok(V::Boolean(true)),
            "0" | "false" | "no" => Ok(V::Boolean(false)),
            _ => Err("expected true or false"),
        },
        _ => Err("unsupported value"),
    }
}

impl ServiceConfig {
    /// Defaults <- `file` (if given) <- environment (`env` is the process environment in production).
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> crate::Result<Self> {
        let defaults = toml::Table::try_from(Self::default()).map_err(|e| Error::Config(e.to_string()))?;
        let mut table = defaults.clone();
        if let Some(path) = file {
            let at = |m: String| Error::Config(format!("{}: {m}", path.display()));
            let text = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
            let from_file: toml::Table = text.parse().map_err(|e: toml::de::Error| at(e.to_string()))?;
            merge_file(&defaults, &mut table, from_file).map_err(at)?;
        }
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        // Sorted: with several bad variables, the first message is the same every run.
        env.sort();
        for (name, raw) in env {
            let Some(rest) = name.strip_prefix("FACEWATCH_") else { continue };
            let Some((section, key)) = rest.split_once("__") else {
                // FACEWATCH_CONFIG, FACEWATCH_LOG, ... are not settings; a flat setting of old is.
                if let Some(hint) = moved_hint(&rest.to_ascii_lowercase()) {
                    return Err(Error::Config(format!("{name}: {hint}")));
                }
                continue;
            };
            let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
            if section == "cameras" {
                return Err(Error::Config(format!("{name}: cameras are set in the file only ([[cameras]])")));
            }
            let Some(default) = defaults.get(&section).and_then(|t| t.as_table()).and_then(|t| t.get(&key)) else {
                return Err(Error::Config(format!("{name}: no setting [{section}] {key}")));
            };
            let value = parse_env(default, &raw).map_err(|why| Error::Config(format!("{name}={raw:?}: {why}")))?;
            if let Some(t) = table.get_mut(&section).and_then(|t| t.as_table_mut()) {
                t.insert(key, value);
            }
        }
        let cfg: Self = table.try_into().map_err(|e: toml::de::Error| Error::Config(e.message().to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> crate::Result<()> {
        let mut bad = Vec::new();
        let (svc, inf, lim, ev, api) = (&self.service, &self.inference, &self.limits, &self.events, &self.api);
        if svc.bind.parse::<std::net::SocketAddr>().is_err() {
            bad.push(format!("[service] bind {:?} is not an address:port", svc.bind));
        }
        if svc.site.is_empty() || !svc.site.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bad.push(format!("[service] site {:?}: letters, digits, '-' or '_'", svc.site));
        }
        for (k, v) in [
            ("[inference] detect_workers", inf.detect_workers),
            ("[inference] queue_capacity", inf.queue_capacity),
            ("[inference] embed_max_batch", inf.embed_max_batch),
            ("[limits] max_concurrent_uploads", lim.max_concurrent_uploads),
        ] {
            if v == 0 || v > 1024 {
                bad.push(format!("{k} {v}: expected 1..1024"));
            }
        }
        if let Err(e) = self.tracking.tracker().validate().and_then(|()| self.tracking.rule().validate()) {
            bad.push(format!("[tracking] {e}"));
        }
        let side = self.tracking.detect_max_side;
        if side != 0 && !(160..=16_384).contains(&side) {
            bad.push(format!("[tracking] detect_max_side {side}: 0 (the full frame) or 160..16384"));
        }
        if !(0.0..=1.0).contains(&inf.detect_threshold) {
            bad.push(format!("[inference] detect_threshold {}: expected 0..1", inf.detect_threshold));
        }
        if lim.max_body_bytes < 1024 {
            bad.push(format!("[limits] max_body_bytes {}: at least 1024", lim.max_body_bytes));
        }
        if lim.max_pixels == 0 {
            bad.push("[limits] max_pixels must be at least 1".into());
        }
        if !(1..=DetectorOptions::default().top_k).contains(&inf.max_faces_per_frame) {
            bad.push(format!(
                "[inference] max_faces_per_frame {}: expected 1..{}",
                inf.max_faces_per_frame,
                DetectorOptions::default().top_k
            ));
        }
        if !(64..=1 << 20).contains(&lim.memory_budget_mb) {
            bad.push(format!("[limits] memory_budget_mb {}: expected 64..1048576", lim.memory_budget_mb));
        } else {
            let worst = self.frame_cost().worst(lim.max_body_bytes as u64);
            if worst > lim.memory_budget_mb << 20 {
                bad.push(format!(
                    "[limits] memory_budget_mb {}: the largest frame allowed (max_pixels {}, max_body_bytes {}) needs {} MiB; \
                     raise it or lower max_pixels",
                    lim.memory_budget_mb,
                    lim.max_pixels,
                    lim.max_body_bytes,
                    worst.div_ceil(1 << 20)
                ));
            }
        }
        if ev.nats_stream.is_empty()
            || !ev.nats_stream.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bad.push(format!("[events] nats_stream {:?}: letters, digits, '-' or '_'", ev.nats_stream));
        }
        if !(1..=5).contains(&ev.nats_replicas) {
            bad.push(format!("[events] nats_replicas {}: expected 1..5", ev.nats_replicas));
        }
        if !ev.webhook_url.is_empty() {
            if !ev.nats_url.is_empty() {
                bad.push("[events]: set nats_url or webhook_url, not both (one sink per checkpoint)".into());
            }
            let url = ev.webhook_url.expose();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                // Debug of a SecretUrl: quoted, credentials redacted.
                bad.push(format!("[events] webhook_url {:?}: expected http:// or https://", ev.webhook_url));
            }
            if ev.webhook_secret.len() < 16 {
                bad.push("[events] webhook_secret: at least 16 characters".into());
            }
        }
        if ev.publish_max_backoff_ms < 100 {
            bad.push("[events] publish_max_backoff_ms must be at least 100".into());
        }
        if !matches!(api.camera_response.as_str(), "minimal" | "full") {
            bad.push(format!("[api] camera_response {:?}: expected \"minimal\" or \"full\"", api.camera_response));
        }
        if !(1..=4096).contains(&api.sse_max_streams) {
            bad.push(format!("[api] sse_max_streams {}: expected 1..4096", api.sse_max_streams));
        }
        if api.sse_max_streams_per_token == 0 || api.sse_max_streams_per_token > api.sse_max_streams {
            bad.push(format!(
                "[api] sse_max_streams_per_token {}: expected 1..sse_max_streams ({})",
                api.sse_max_streams_per_token, api.sse_max_streams
            ));
        }
        if !(1..=65_536).contains(&api.sse_buffer) {
            bad.push(format!("[api] sse_buffer {}: expected 1..65536", api.sse_buffer));
        }
        if self.retention.sweep_secs == 0 {
            bad.push("[retention] sweep_secs must be at least 1".into());
        }
        crate::ingest::config::problems(&self.ingest, &self.cameras, &mut bad);
        self.tls.problems(&svc.bind, &mut bad);
        crate::console::config::problems(&self.console, &mut bad);
        if bad.is_empty() { Ok(()) } else { Err(Error::Config(bad.join("; "))) }
    }

    /// Whether cameras get the full frame report (`camera_response = "full"`).
    pub fn full_camera_response(&self) -> bool {
        self.api.camera_response == "full"
    }

    pub fn models_dir(&self) -> PathBuf {
        let dir = &self.models.dir;
        models_dir_or_default((!dir.as_os_str().is_empty()).then_some(dir.as_path()))
    }

    /// What one frame reserves in the memory budget, with the shipped embedder's 150x150 chips
    /// (the engine charges the loaded model's own size).
    pub fn frame_cost(&self) -> FrameCost {
        FrameCost {
            max_pixels: self.limits.max_pixels,
            detect_max_side: DetectorOptions::default().max_side,
            max_faces: self.inference.max_faces_per_frame,
            face_bytes: crate::memory::face_bytes(150, 128),
        }
    }

    /// The largest `max_pixels` whose frames fit the memory budget beside a body of
    /// `max_body_bytes` (what `validate` accepts).
    pub fn largest_max_pixels(&self) -> u64 {
        let fits = |px: u64| {
            let mut c = self.clone();
            c.limits.max_pixels = px;
            c.frame_cost().worst(self.limits.max_body_bytes as u64) <= self.limits.memory_budget_mb << 20
        };
        let (mut lo, mut hi) = (0u64, 1u64 << 40);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) { lo = mid } else { hi = mid - 1 }
        }
        lo
    }

    pub fn inference_options(&self) -> InferenceOptions {
        let mut pipeline = self.pipeline_options();
        // Tracked cameras keep detections down to [tracking] low (see InferenceOptions).
        pipeline.detector.score_threshold = self.inference.detect_threshold.min(self.tracking.low);
        InferenceOptions {
            pipeline,
            live_threshold: self.inference.detect_threshold,
            enroll_threshold: self.inference.detect_threshold,
            detect_workers: self.inference.detect_workers,
            queue_capacity: self.inference.queue_capacity,
            max_pixels: self.limits.max_pixels,
            retry_after_s: self.service.retry_after_secs,
            memory_budget_bytes: self.limits.memory_budget_mb << 20,
            max_faces: self.inference.max_faces_per_frame,
            track_detect_max_side: self.tracking.detect_max_side,
        }
    }

    /// Where events are delivered, if anywhere (else they wait in the local outbox).
    pub fn sink(&self) -> Option<crate::events::publisher::SinkConfig> {
        use crate::events::publisher::SinkConfig;
        let ev = &self.events;
        if !ev.webhook_url.is_empty() {
            return Some(SinkConfig::Webhook { url: ev.webhook_url.clone(), secret: ev.webhook_secret.clone() });
        }
        (!ev.nats_url.is_empty()).then(|| {
            SinkConfig::Nats(crate::events::nats::NatsOptions {
                url: ev.nats_url.clone(),
                stream: ev.nats_stream.clone(),
                replicas: ev.nats_replicas,
                max_age: std::time::Duration::from_secs(ev.nats_max_age_days * 86_400),
                duplicate_window: std::time::Duration::from_secs(ev.nats_duplicate_window_secs),
            })
        })
    }

    pub fn pipeline_options(&self) -> PipelineOptions {
        PipelineOptions {
            // The engine's detect workers and embedder run at the same time: no spinning.
            runtime: RuntimeOptions { intra_threads: self.models.threads, cuda: self.models.cuda, spin: false },
            detector: DetectorOptions {
                score_threshold: self.inference.detect_threshold,
                ..DetectorOptions::default()
            },
            max_batch: self.inference.embed_max_batch,
            verify_models: self.models.verify,
        }
    }
}

/// Lays a file's sections over `table`: every key must be one of `defaults` (an old flat key
/// is refused with its new place) and of its key's type.
fn merge_file(defaults: &toml::Table, table: &mut toml::Table, file: toml::Table) -> std::result::Result<(), String> {
    for (name, value) in file {
        if name == "cameras" {
            table.insert(name, merge_cameras(value)?);
            continue;
        }
        let Some(toml::Value::Table(known)) = defaults.get(&name) else {
            return Err(match moved_hint(&name) {
                Some(hint) => hint,
                None => format!("unknown key {name:?} (sections: {})", section_names(defaults)),
            });
        };
        let toml::Value::Table(given) = value else {
            return Err(format!("{name} must be a section ([{name}])"));
        };
        let Some(toml::Value::Table(into)) = table.get_mut(&name) else { continue };
        for (key, v) in given {
            let Some(default) = known.get(&key) else {
                return Err(format!("unknown key {key:?} in [{name}]"));
            };
            let v = typed(default, v).map_err(|why| format!("[{name}] {key}: {why}"))?;
            into.insert(key, v);
        }
    }
    Ok(())
}

/// `[[cameras]]`: an array of tables, each laid over a default camera with the same checks.
fn merge_cameras(value: toml::Value) -> std::result::Result<toml::Value, String> {
    let toml::Value::Array(given) = value else {
        return Err("cameras must be an array of tables ([[cameras]])".into());
    };
    let known = toml::Table::try_from(CameraConfig::default()).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(given.len());
    for (i, cam) in given.into_iter().enumerate() {
        let toml::Value::Table(cam) = cam else {
            return Err(format!("cameras[{i}] must be a table ([[cameras]])"));
        };
        let mut into = known.clone();
        for (key, v) in cam {
            let Some(default) = known.get(&key) else {
                return Err(format!("unknown key {key:?} in [[cameras]] #{}", i + 1));
            };
            into.insert(key.clone(), typed(default, v).map_err(|why| format!("[[cameras]] #{} {key}: {why}", i + 1))?);
        }
        out.push(toml::Value::Table(into));
    }
    Ok(toml::Value::Array(out))
}

fn section_names(defaults: &toml::Table) -> String {
    defaults.keys().map(|k| format!("[{k}]")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn file_then_env_then_validation() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("fw.toml");
        std::fs::write(&f, "[service]\nsite = \"lhr-t5\"\n[inference]\nqueue_capacity = 4\n").unwrap();
        let c = ServiceConfig::load(Some(&f), env(&[("FACEWATCH_INFERENCE__QUEUE_CAPACITY", "8"), ("HOME", "/x")]))
            .unwrap();
        assert_eq!((c.service.site.as_str(), c.inference.queue_capacity, c.inference.detect_workers), ("lhr-t5", 8, 1));
        let e = ServiceConfig::load(Some(&f), env(&[("FACEWATCH_INFERENCE__QUEUE_CAPACITY", "many")])).unwrap_err();
        assert!(e.to_string().contains("FACEWATCH_INFERENCE__QUEUE_CAPACITY"), "{e}");
        let e = ServiceConfig::load(None, env(&[("FACEWATCH_SERVICE__BIND", "nowhere")])).unwrap_err();
        assert!(e.to_string().contains("bind"), "{e}");
        std::fs::write(&f, "[service]\nsight = \"typo\"\n").unwrap();
        assert!(ServiceConfig::load(Some(&f), env(&[])).unwrap_err().to_string().contains("sight"));
        assert!(ServiceConfig::load(Some(&dir.path().join("missing.toml")), env(&[])).is_err());
    }

    #[test]
    fn sections_from_the_file_and_double_underscore_variables_over_them() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("fw.toml");
        std::fs::write(
            &f,
            "[service]\nbind = \"127.0.0.2:9000\"\ndata_dir = \"/srv/fw\"\n\
             [models]\nthreads = 3\nverify = false\n\
             [inference]\ndetect_threshold = 1\n\
             [events]\nnats_url = \"nats://leaf:4222\"\nretention_days = 7\n\
             [api]\ncamera_response = \"full\"\n[retention]\nsweep_secs = 60\n",
        )
        .unwrap();
        let c = ServiceConfig::load(
            Some(&f),
            env(&[
                ("FACEWATCH_SERVICE__BIND", "127.0.0.1:9001"),
                // Names are case-insensitive; section and key are split at the double underscore.
                ("facewatch_models__threads", "ignored: not the prefix"),
                ("FACEWATCH_Models__Threads", "4"),
                ("FACEWATCH_EVENTS__NATS_URL", "nats://hq:4222,nats://hq2:4222"),
                ("FACEWATCH_LIMITS__MAX_CONCURRENT_UPLOADS", "3"),
                // Not settings: left alone.
                ("FACEWATCH_CONFIG", "/elsewhere.toml"),
                ("FACEWATCH_LOG", "debug"),
                ("FACEWATCH_TEST_DATA", "/data"),
            ]),
        )
        .unwrap();
        assert_eq!(c.service.bind, "127.0.0.1:9001", "the variable wins over the file");
        assert_eq!(c.service.data_dir, PathBuf::from("/srv/fw"), "the file wins over the default");
        assert_eq!((c.models.threads, c.models.verify), (4, false));
        assert_eq!(c.inference.detect_threshold, 1.0, "an integer is a number");
        assert_eq!(c.events.nats_url.expose(), "nats://hq:4222,nats://hq2:4222");
        assert_eq!((c.events.retention_days, c.retention.sweep_secs), (7, 60));
        assert_eq!(c.limits.max_concurrent_uploads, 3);
        assert!(c.full_camera_response());
        // Flags win over both.
        let flags = Settings { data_dir: Some("/flag".into()), threads: Some(1), ..Settings::default() };
        let c = flags.load(Some(&f), env(&[("FACEWATCH_MODELS__THREADS", "4")])).unwrap();
        assert_eq!((c.service.data_dir, c.models.threads), (PathBuf::from("/flag"), 1));
    }

    #[test]
    fn a_bad_value_or_key_names_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("fw.toml");
        let file_err = |text: &str| {
            std::fs::write(&f, text).unwrap();
            ServiceConfig::load(Some(&f), env(&[])).unwrap_err().to_string()
        };
        for (text, says) in [
            ("[inference]\nqueue_capacity = \"many\"\n", "[inference] queue_capacity: expected a non-negative integer"),
            ("[limits]\nmax_pixels = -1\n", "[limits] max_pixels: expected a non-negative integer"),
            ("[models]\ncuda = \"yes\"\n", "[models] cuda: expected true or false"),
            ("[inference]\nqueue_capacity = 0\n", "[inference] queue_capacity 0: expected 1..1024"),
            ("[api]\ncamera_respons = \"full\"\n", "unknown key \"camera_respons\" in [api]"),
            ("[streams]\nsse_buffer = 1\n", "unknown key \"streams\""),
            ("events = 1\n", "events must be a section"),
        ] {
            let e = file_err(text);
            assert!(e.contains(says), "{text:?}: {e}");
            // A value of the wrong type or a wrong key is in the file; a range is the merged value's.
            assert!(e.contains("fw.toml") || says.contains("1..1024"), "names the file: {e}");
        }
        for (name, value, says) in [
            (
                "FACEWATCH_LIMITS__MAX_PIXELS",
                "-5",
                "FACEWATCH_LIMITS__MAX_PIXELS=\"-5\": expected a non-negative integer",
            ),
            ("FACEWATCH_MODELS__CUDA", "maybe", "FACEWATCH_MODELS__CUDA=\"maybe\": expected true or false"),
            ("FACEWATCH_EVENTS__NATS_URLS", "x", "FACEWATCH_EVENTS__NATS_URLS: no setting [events] nats_urls"),
            ("FACEWATCH_NOPE__BIND", "x", "FACEWATCH_NOPE__BIND: no setting [nope] bind"),
            ("FACEWATCH_API__SSE_BUFFER", "0", "[api] sse_buffer 0: expected 1..65536"),
        ] {
            let e = ServiceConfig::load(None, env(&[(name, value)])).unwrap_err().to_string();
            assert!(e.contains(says), "{name}: {e}");
        }
    }

    #[test]
    fn old_flat_names_are_refused_with_their_new_place() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("fw.toml");
        std::fs::write(&f, "nats_url = \"nats://hq:4222\"\n").unwrap();
        let e = ServiceConfig::load(Some(&f), env(&[])).unwrap_err().to_string();
        assert!(e.contains("nats_url is now [events] nats_url / FACEWATCH_EVENTS__NATS_URL"), "{e}");
        let e = ServiceConfig::load(None, env(&[("FACEWATCH_NATS_URL", "nats://hq:4222")])).unwrap_err().to_string();
        assert!(
            e.contains("FACEWATCH_NATS_URL: nats_url is now [events] nats_url / FACEWATCH_EVENTS__NATS_URL"),
            "{e}"
        );
        let e = ServiceConfig::load(None, env(&[("FACEWATCH_RETENTION_SWEEP_SECS", "1")])).unwrap_err().to_string();
        assert!(
            e.contains("retention_sweep_secs is now [retention] sweep_secs / FACEWATCH_RETENTION__SWEEP_SECS"),
            "{e}"
        );
        std::fs::write(&f, "models_dir = \"/m\"\n").unwrap();
        let e = ServiceConfig::load(Some(&f), env(&[])).unwrap_err().to_string();
        assert!(e.contains("models_dir is now [models] dir / FACEWATCH_MODELS__DIR"), "{e}");
        // Every key of the flat layout (33) has a hint, and each hint names a key that exists.
        let defaults = toml::Table::try_from(ServiceConfig::default()).unwrap();
        assert_eq!(MOVED.len(), 33);
        for (old, section, key) in MOVED {
            let t = defaults.get(*section).and_then(|t| t.as_table());
            assert!(t.is_some_and(|t| t.contains_key(*key)), "{old} -> [{section}] {key} does not exist");
        }
    }

    #[test]
    fn the_memory_budget_must_hold_the_largest_frame() {
        let c = ServiceConfig::load(None, env(&[])).unwrap();
        assert_eq!((c.limits.memory_budget_mb, c.inference.max_faces_per_frame), (1024, 64));
        // 40 MP: the detector's resize works through 16 bytes a pixel beside the frame's 3.
        let e = ServiceConfig::load(None, env(&[("FACEWATCH_LIMITS__MEMORY_BUDGET_MB", "512")])).unwrap_err();
        assert!(e.to_string().contains("memory_budget_mb 512: the largest frame"), "{e}");
        let mut small = c.clone();
        small.limits.memory_budget_mb = 256;
        small.limits.max_body_bytes = 4 << 20;
        let px = small.largest_max_pixels();
        assert!((12_000_000..13_000_000).contains(&px), "{px}");
        let with_pixels = |px: u64| {
            let mut c = small.clone();
            c.limits.max_pixels = px;
            c
        };
        assert!(with_pixels(px).validate().is_ok());
        assert!(with_pixels(px + 1).validate().is_err());
        for (k, v) in [
            ("LIMITS__MEMORY_BUDGET_MB", "0"),
            ("LIMITS__MEMORY_BUDGET_MB", "99999999"),
            ("INFERENCE__MAX_FACES_PER_FRAME", "0"),
        ] {
            let e = ServiceConfig::load(None, env(&[(&format!("FACEWATCH_{k}"), v)])).unwrap_err();
            let key = k.split_once("__").unwrap().1.to_ascii_lowercase();
            assert!(e.to_string().contains(&key), "{e}");
        }
    }

    #[test]
    fn debug_and_the_sink_never_print_the_webhook_secret() {
        let secret = "s3cret-0123456789abcdef";
        let env = [
            ("FACEWATCH_EVENTS__WEBHOOK_URL", "http://127.0.0.1:9/hook"),
            ("FACEWATCH_EVENTS__WEBHOOK_SECRET", secret),
        ];
        let c = ServiceConfig::load(None, env.map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        let printed = format!("{c:?} {:?} {c:#?}", c.sink());
        assert!(!printed.contains(secret), "{printed}");
        assert!(printed.contains("webhook_secret: \"<redacted>\""), "{printed}");
        assert_eq!(c.events.webhook_secret.expose(), secret, "loaded as given");
    }

    #[test]
    fn debug_the_sink_and_errors_never_print_url_credentials() {
        let (nats, hook) =
            ("nats://fw:n4ts-pa55@hq:4222,fw:n4ts-pa66@hq2:4222", "https://u:h00k-pa55@hooks.example/in?token=t0k3n");
        let c = ServiceConfig::load(None, env(&[("FACEWATCH_EVENTS__NATS_URL", nats)])).unwrap();
        let printed = format!("{c:?} {:?} {c:#?}", c.sink());
        for p in ["n4ts-pa55", "n4ts-pa66"] {
            assert!(!printed.contains(p), "{printed}");
        }
        assert!(printed.contains("nats://fw:***@hq:4222,fw:***@hq2:4222"), "{printed}");
        assert_eq!(c.events.nats_url.expose(), nats, "loaded as given");
        let c = ServiceConfig::load(
            None,
            env(&[("FACEWATCH_EVENTS__WEBHOOK_URL", hook), ("FACEWATCH_EVENTS__WEBHOOK_SECRET", "0123456789abcdef")]),
        )
        .unwrap();
        let printed = format!("{c:?} {:?}", c.sink());
        assert!(!printed.contains("h00k-pa55") && !printed.contains("t0k3n"), "{printed}");
        assert!(printed.contains("https://u:***@hooks.example/in?token=***"), "{printed}");
        // A refused configuration says which URL without its credentials.
        let e = ServiceConfig::load(
            None,
            env(&[
                ("FACEWATCH_EVENTS__WEBHOOK_URL", "ftp://u:h00k-pa55@h/?token=t0k3n"),
                ("FACEWATCH_EVENTS__WEBHOOK_SECRET", "0123456789abcdef"),
                ("FACEWATCH_EVENTS__NATS_URL", nats),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("pa55") && !e.contains("pa66") && !e.contains("t0k3n"), "{e}");
        assert!(e.contains("webhook_url \"ftp://u:***@h/?token=***\""), "{e}");
    }

    #[test]
    fn the_example_file_is_valid() {
        let f = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("facewatch.example.toml");
        let c = ServiceConfig::load(Some(&f), Vec::new()).unwrap();
        assert_eq!(c.service.site, "lhr-t5-arrivals");
    }
}
