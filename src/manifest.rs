//! The model manifest (`models/manifest.toml`): which files to load, their sha256, and how each
//! model is fed. The embedder is described entirely here, so a deployer can swap in another
//! embedding model (input size, channel order, normalisation, template) without code changes.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DetectorSpec {
    pub name: String,
    pub file: String,
    pub sha256: String,
    #[serde(default = "default_pad")]
    pub pad_multiple: u32,
    #[serde(default = "bgr")]
    pub channel_order: ChannelOrder,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmbedderSpec {
    pub name: String,
    pub file: String,
    pub sha256: String,
    pub input_size: u32,
    pub channel_order: ChannelOrder,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub embedding_size: usize,
    /// 5 points in chip pixels, YuNet landmark order.
    pub template: [[f32; 2]; 5],
    pub default_threshold: f32,
    /// An enrollment template is the mean of the embeddings of the aligned face and of its
    /// mirror image (renormalised): set where it was measured to help the model (dlib's:
    /// BENCHMARKS.md, "Mirrored enrollment templates"). Probes are embedded once, as before.
    #[serde(default)]
    pub enroll_mirrored: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub detector: DetectorSpec,
    pub embedder: EmbedderSpec,
    #[serde(skip)]
    pub dir: PathBuf,
}

fn default_pad() -> u32 {
    32
}
fn bgr() -> ChannelOrder {
    ChannelOrder::Bgr
}

impl Manifest {
    /// Reads `manifest.toml` from the models folder; model files are resolved against that folder.
    pub fn load(models_dir: &Path) -> Result<Self> {
        let path = models_dir.join("manifest.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::ModelsNotFound(crate::models_dir::not_found(models_dir)),
            _ => Error::io(&path, e),
        })?;
        let mut m: Manifest = toml::from_str(&text).map_err(|e| Error::Manifest(format!("{}: {e}", path.display())))?;
        m.dir = models_dir.to_path_buf();
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<()> {
        let e = &self.embedder;
        if e.input_size < 16 || e.input_size > 1024 {
            return Err(Error::Manifest(format!("embedder input_size {} out of range", e.input_size)));
        }
        if e.embedding_size == 0 || e.embedding_size > 4096 {
            return Err(Error::Manifest(format!("embedding_size {} out of range", e.embedding_size)));
        }
        if e.std.contains(&0.0) {
            return Err(Error::Manifest("embedder std must be non-zero".into()));
        }
        if self.detector.pad_multiple == 0 {
            return Err(Error::Manifest("detector pad_multiple must be > 0".into()));
        }
        Ok(())
    }

    pub fn detector_path(&self) -> PathBuf {
        self.dir.join(&self.detector.file)
    }

    pub fn embedder_path(&self) -> PathBuf {
        self.dir.join(&self.embedder.file)
    }
}

/// Fails clearly when a model file is missing or is not the file the manifest names.
pub fn verify_file(path: &Path, expected_sha256: &str) -> Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::ModelMissing { path: path.to_path_buf() });
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let actual = hex::encode(Sha256::digest(&bytes));
    if !actual.eq_ignore_ascii_case(expected_sha256) {
        return Err(Error::ModelChecksum { path: path.to_path_buf(), expected: expected_sha256.to_string(), actual });
    }
    Ok(())
}
