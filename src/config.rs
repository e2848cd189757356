//! Settings shared by every command, from flags or `FACEWATCH_*` environment variables.

use std::path::PathBuf;

use clap::Args;

use crate::pipeline::PipelineOptions;
use crate::vision::decode::DEFAULT_MAX_PIXELS;
use crate::vision::detect::DetectorOptions;
use crate::vision::runtime::RuntimeOptions;
use crate::watchlist::index::DEFAULT_FACTORY;

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Folder for the SQLite store and index files.
    #[arg(long, global = true, env = "FACEWATCH_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Folder holding manifest.toml and the model files.
    #[arg(long, global = true, env = "FACEWATCH_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// ONNX Runtime intra-op threads per model (0 = all cores).
    #[arg(long, global = true, env = "FACEWATCH_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// Minimum detector score for a face.
    #[arg(long, global = true, env = "FACEWATCH_DETECT_THRESHOLD", default_value_t = 0.9)]
    pub detect_threshold: f32,
    /// Largest accepted image, in pixels.
    #[arg(long, global = true, env = "FACEWATCH_MAX_PIXELS", default_value_t = DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// FAISS index factory string for watch lists (e.g. "IDMap2,Flat", "IDMap2,HNSW32").
    #[arg(long, global = true, env = "FACEWATCH_INDEX_FACTORY", default_value = DEFAULT_FACTORY)]
    pub index_factory: String,
    /// Use the CUDA execution provider when built with the `cuda` feature.
    #[arg(long, global = true, env = "FACEWATCH_CUDA", default_value_t = false)]
    pub cuda: bool,
}

impl Settings {
    /// `--models-dir`, else `./models`, else the crate's own `models/` (for `cargo run`).
    pub fn models_dir(&self) -> PathBuf {
        if let Some(d) = &self.models_dir {
            return d.clone();
        }
        let local = PathBuf::from("models");
        if local.join("manifest.toml").exists() {
            local
        } else {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
        }
    }

    pub fn pipeline_options(&self) -> PipelineOptions {
        PipelineOptions {
            runtime: RuntimeOptions { intra_threads: self.threads, cuda: self.cuda || cfg!(feature = "cuda") },
            detector: DetectorOptions { score_threshold: self.detect_threshold, ..DetectorOptions::default() },
            ..PipelineOptions::default()
        }
    }
}
