//! The models behind a small interface, as text-embeddings-inference puts its backends behind
//! `Backend`: the inference engine drives detectors and an embedder without knowing what runs
//! them. [`onnx`] runs the real models with ONNX Runtime; [`fake`] is deterministic, needs no
//! files and takes microseconds, so the engine, matching, alert and review logic can be tested
//! without the models or the test photos.
//!
//! Two traits, not one: the engine runs one detector per detect worker (each on its own thread,
//! each with its own session) and one embedder on its own thread, so a backend is a factory of
//! per-thread model handles plus what the rest of the service must know about the models.

pub mod fake;
pub mod onnx;

use image::RgbImage;

use crate::error::Result;
use crate::manifest::EmbedderSpec;
use crate::vision::detect::Detection;

/// One detector session; used from one thread at a time.
pub trait Detect: Send {
    /// All faces above the detector's threshold, best first, in the image's pixels.
    fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>>;

    /// As `detect`, on the image scaled down so that its longer side is at most `max_side`
    /// (0: as `detect`), still in the image's own pixels. A backend that cannot scale detects
    /// on the whole image.
    fn detect_within(&mut self, image: &RgbImage, max_side: u32) -> Result<Vec<Detection>> {
        let _ = max_side;
        self.detect(image)
    }
}

/// One embedder session; used from one thread at a time.
pub trait Embed: Send {
    /// One unit-length embedding per chip (each `input_size` square, aligned to the
    /// embedder's template), in order.
    fn embed(&mut self, chips: &[&RgbImage]) -> Result<Vec<Vec<f32>>>;
}

/// What runs the models, and what the service reports and stores about them.
pub trait Backend: Send + Sync {
    /// Names and hashes (stored with alerts and templates) and how the embedder is fed.
    fn models(&self) -> &Models;
    /// A new detector session (one per detect worker).
    fn detector(&self) -> Result<Box<dyn Detect>>;
    /// A new embedder session.
    fn embedder(&self) -> Result<Box<dyn Embed>>;
    /// The execution provider the sessions made so far really run on ("CPU", "CUDA", ...).
    fn provider(&self) -> &'static str;
}

/// A model's identity, as alerts and events carry it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ModelId {
    pub name: String,
    pub sha256: String,
}

/// What the service needs to know about the loaded models.
#[derive(Debug, Clone)]
pub struct Models {
    pub detector: ModelId,
    /// Name, sha256, chip size and template, embedding size, default threshold.
    pub embedder: EmbedderSpec,
}
