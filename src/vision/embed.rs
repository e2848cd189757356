//! Face embedder: a batch of aligned chips -> L2-normalised vectors, in one ort call per batch.
//! Input size, channel order and normalisation come from the model manifest.

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

use crate::error::{Error, Result};
use crate::manifest::EmbedderSpec;
use crate::vision::planar::{self, Normalize};

pub struct Embedder {
    session: Session,
    spec: EmbedderSpec,
    /// The manifest's channel order and normalisation, built once.
    norm: Normalize,
    /// Largest batch sent to the model in one call.
    pub max_batch: usize,
    input: Vec<f32>,
    /// Time spent inside `session.run` since creation: the model's own cost, without the
    /// pipeline's pre- and post-processing.
    pub model_time: std::time::Duration,
}

impl Embedder {
    pub fn new(session: Session, spec: EmbedderSpec, max_batch: usize) -> Self {
        let norm = Normalize::new(spec.channel_order, spec.mean, spec.std);
        Self {
            session,
            spec,
            norm,
            max_batch: max_batch.max(1),
            input: Vec::new(),
            model_time: std::time::Duration::ZERO,
        }
    }

    pub fn spec(&self) -> &EmbedderSpec {
        &self.spec
    }

    /// One unit-length embedding per chip, in order.
    pub fn embed(&mut self, chips: &[&RgbImage]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(chips.len());
        for batch in chips.chunks(self.max_batch) {
            self.embed_batch(batch, &mut out)?;
        }
        Ok(out)
    }

    fn embed_batch(&mut self, chips: &[&RgbImage], out: &mut Vec<Vec<f32>>) -> Result<()> {
        let s = self.spec.input_size as usize;
        let plane = s * s;
        // Every element is overwritten below.
        let input = planar::front(&mut self.input, chips.len() * 3 * plane);
        let norm = self.norm;
        for (chip, dst) in chips.iter().zip(input.chunks_exact_mut(3 * plane)) {
            if chip.width() as usize != s || chip.height() as usize != s {
                return Err(Error::Invalid(format!(
                    "chip is {}x{}, the embedder takes {s}x{s}",
                    chip.width(),
                    chip.height()
                )));
            }
            let (d0, rest) = dst.split_at_mut(plane);
            let (d1, d2) = rest.split_at_mut(plane);
            // A chip is one long row of s x s pixels.
            norm.row(chip.as_raw(), [d0, d1, d2]);
        }
        let t = std::time::Instant::now();
        let outputs = self.session.run(ort::inputs![TensorRef::from_array_view(([chips.len(), 3, s, s], &*input))?])?;
        self.model_time += t.elapsed();
        let (_, data) = outputs[0].try_extract_tensor::<f32>()?;
        let d = self.spec.embedding_size;
        if data.len() != chips.len() * d {
            return Err(Error::ModelOutput(format!(
                "embedder returned {} values for {} chips, expected {} each",
                data.len(),
                chips.len(),
                d
            )));
        }
        out.extend(data.chunks_exact(d).map(normalized));
        Ok(())
    }
}

/// The chip mirrored left to right: still an aligned face (the alignment template is nearly
/// symmetric), seen as if turned the other way.
pub fn mirrored(chip: &image::RgbImage) -> image::RgbImage {
    image::imageops::flip_horizontal(chip)
}

/// An enrollment template from a face's embedding and its mirror image's: their mean,
/// renormalised (see `EmbedderSpec::enroll_mirrored`).
pub fn mirror_template(face: &[f32], mirror: &[f32]) -> Vec<f32> {
    let sum: Vec<f32> = face.iter().zip(mirror).map(|(a, b)| a + b).collect();
    normalized(&sum)
}

/// L2-normalised copy (a zero vector stays zero).
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 { v.iter().map(|x| x / n).collect() } else { v.to_vec() }
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
