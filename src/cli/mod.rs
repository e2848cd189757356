//! The `facewatch` command line: its clap types and what the command families open from the
//! one configuration. One file per family; `main.rs` parses and dispatches.

pub mod audit;
pub mod config;
pub mod eval;
pub mod events;
pub mod key;
pub mod probe;
pub mod serve;
pub mod token;
pub mod watchlist;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use facewatch::config::{ServiceConfig, Settings};
use facewatch::pipeline::Pipeline;
use facewatch::watchlist::{EmbedderInfo, Watchlist, Watchlists};

#[derive(Parser)]
#[command(name = "facewatch", version, about = "Face-recognition checkpoint: watch-list matching on the edge")]
pub struct Cli {
    /// TOML file with settings (see facewatch.example.toml), read by every command: defaults,
    /// then this file, then FACEWATCH_<SECTION>__<KEY> environment variables, then the flags given.
    #[arg(long, global = true, env = "FACEWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the checkpoint service (HTTP API). Configuration: --config file, then FACEWATCH_* env,
    /// then flags. While it runs, commands that change watch lists refuse (use the API).
    Serve,
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: token::TokenAction,
    },
    /// Check the settings and what they point at (models, ONNX Runtime, data folder, ffmpeg).
    Config {
        #[command(subcommand)]
        action: config::ConfigAction,
    },
    /// The key that seals the data folder's data key (encryption at rest).
    Key {
        #[command(subcommand)]
        action: key::KeyAction,
    },
    /// Inspect the audit log.
    Audit {
        #[command(subcommand)]
        action: audit::AuditAction,
    },
    /// Follow the central event stream.
    Events {
        #[command(subcommand)]
        action: events::EventsAction,
    },
    /// Enroll a subject from one or more photos (the largest good face of each).
    Enroll {
        #[arg(long)]
        list: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        name: Option<String>,
        /// Threshold for the list if it is created now (default: the model's).
        #[arg(long)]
        threshold: Option<f32>,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Enroll a folder with one sub-folder of photos per subject.
    Import {
        #[arg(long)]
        list: String,
        #[arg(long)]
        threshold: Option<f32>,
        dir: PathBuf,
    },
    /// Match every face of every image against the watch lists.
    Identify {
        #[arg(long)]
        json: bool,
        /// Candidates to report per face.
        #[arg(long, default_value_t = 3)]
        top: usize,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Print detections and embeddings, one JSON line per face.
    Embed {
        #[arg(long, required = true)]
        json: bool,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Print the HTTP API's OpenAPI document (JSON), as `GET /v1/openapi.json` serves it.
    Openapi,
    /// Show the watch lists.
    Lists {
        #[arg(long)]
        json: bool,
    },
    /// Remove a subject and purge its templates.
    Remove {
        #[arg(long)]
        list: String,
        #[arg(long)]
        subject: String,
    },
    /// Set a list's match threshold.
    Threshold {
        #[arg(long)]
        list: String,
        value: f32,
    },
    /// Measure accuracy on an LFW-style folder (pairs + open-set identification), or make an
    /// evaluation clip (`eval clip`).
    #[command(args_conflicts_with_subcommands = true)]
    Eval {
        #[command(subcommand)]
        action: Option<eval::EvalAction>,
        /// Labelled folder: <Identity>/*.jpg (and pairs_lfw_view2.tsv for LFW pair verification).
        faces: Option<PathBuf>,
        /// Parallel pipelines (each with --threads intra-op threads).
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// The false-alarm rate (share of non-mated probes that alert) to recommend a threshold for.
        #[arg(long, default_value_t = 0.01)]
        target_fpir: f64,
        /// Where the report (latest.json) and the charts (det.svg/png, histogram.svg/png) go;
        /// default <data_dir>/eval, where the service's ops pages read it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// One pipeline used from this thread: its two models never run at once, so they may spin.
fn open_pipeline(s: &ServiceConfig) -> anyhow::Result<Pipeline> {
    let mut opts = s.pipeline_options();
    opts.runtime.spin = true;
    Pipeline::open(&s.models_dir(), opts).context("loading models")
}

fn open_watchlist(s: &ServiceConfig, p: &Pipeline) -> anyhow::Result<Watchlist> {
    watchlist_for(s, &p.manifest.embedder)
}

fn watchlist_for(s: &ServiceConfig, e: &facewatch::manifest::EmbedderSpec) -> anyhow::Result<Watchlist> {
    Ok(Watchlist::open(&s.service.data_dir, &s.watchlist.index_factory, &e.name, e.embedding_size as u32)?)
}

/// The watch-list service, as the running service has it, for the operator at this machine:
/// the same use cases (and audit entries); indexes are persisted when the command ends.
fn watchlists_for(s: &ServiceConfig, e: &facewatch::manifest::EmbedderSpec) -> anyhow::Result<Watchlists> {
    let info =
        EmbedderInfo { name: e.name.clone(), dim: e.embedding_size as u32, default_threshold: e.default_threshold };
    let media = std::sync::Arc::new(facewatch::media::Media::open(&s.service.data_dir)?);
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    Ok(Watchlists::open(&s.service.data_dir, &s.watchlist.index_factory, &info, media, notify, false)?)
}

/// [`watchlists_for`] without loading the model sessions (model identity from the manifest).
fn open_watchlists(s: &ServiceConfig) -> anyhow::Result<Watchlists> {
    watchlists_for(s, &facewatch::manifest::Manifest::load(&s.models_dir())?.embedder)
}
