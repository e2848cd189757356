//! The real models on ONNX Runtime: YuNet and the embedder named by `models/manifest.toml`.

use std::path::Path;

use image::RgbImage;

use crate::backend::{Backend, Detect, Embed, ModelId, Models};
use crate::error::Result;
use crate::manifest::{self, Manifest};
use crate::pipeline::PipelineOptions;
use crate::vision::detect::{Detection, Detector};
use crate::vision::embed::Embedder;
use crate::vision::runtime;

/// The models of one models folder; each call to [`Backend::detector`] or
/// [`Backend::embedder`] loads a session of its own.
pub struct OnnxBackend {
    pub manifest: Manifest,
    options: PipelineOptions,
    models: Models,
}

impl OnnxBackend {
    /// Reads the manifest and (with `verify_models`) checks both files' sha256; loads nothing yet.
    pub fn open(models_dir: &Path, options: &PipelineOptions) -> Result<Self> {
        let manifest = Manifest::load(models_dir)?;
        if options.verify_models {
            manifest::verify_file(&manifest.detector_path(), &manifest.detector.sha256)?;
            manifest::verify_file(&manifest.embedder_path(), &manifest.embedder.sha256)?;
        }
        let models = Models {
            detector: ModelId { name: manifest.detector.name.clone(), sha256: manifest.detector.sha256.clone() },
            embedder: manifest.embedder.clone(),
        };
        Ok(Self { manifest, options: options.clone(), models })
    }

    /// A YuNet session with the configured detector options.
    pub fn onnx_detector(&self) -> Result<Detector> {
        let s = runtime::session(&self.manifest.detector_path(), &self.options.runtime)?;
        Ok(Detector::new(s, self.manifest.detector.clone(), self.options.detector.clone()))
    }

    /// An embedder session batching up to `max_batch` chips per call.
    pub fn onnx_embedder(&self) -> Result<Embedder> {
        let s = runtime::session(&self.manifest.embedder_path(), &self.options.runtime)?;
        Ok(Embedder::new(s, self.manifest.embedder.clone(), self.options.max_batch))
    }
}

impl Backend for OnnxBackend {
    fn models(&self) -> &Models {
        &self.models
    }

    fn detector(&self) -> Result<Box<dyn Detect>> {
        Ok(Box::new(self.onnx_detector()?))
    }

    fn embedder(&self) -> Result<Box<dyn Embed>> {
        Ok(Box::new(self.onnx_embedder()?))
    }

    fn provider(&self) -> &'static str {
        runtime::provider_name(&self.options.runtime)
    }
}

impl Detect for Detector {
    fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>> {
        Detector::detect(self, image)
    }

    fn detect_within(&mut self, image: &RgbImage, max_side: u32) -> Result<Vec<Detection>> {
        Detector::detect_within(self, image, max_side)
    }
}

impl Embed for Embedder {
    fn embed(&mut self, chips: &[&RgbImage]) -> Result<Vec<Vec<f32>>> {
        Embedder::embed(self, chips)
    }
}
