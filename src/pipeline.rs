//! Frame -> faces with quality verdicts and embeddings. Composes the vision stages and is the
//! only owner of the model sessions.

use std::path::Path;

use image::RgbImage;
use serde::Serialize;

use crate::backend::onnx::OnnxBackend;
use crate::error::Result;
use crate::manifest::{EmbedderSpec, Manifest};
use crate::vision::align::{self, Affine};
use crate::vision::detect::{Detection, Detector, DetectorOptions};
use crate::vision::embed::{self, Embedder};
use crate::vision::quality::{self, Quality, QualityGate, Rejection};
use crate::vision::runtime::RuntimeOptions;

#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub runtime: RuntimeOptions,
    pub detector: DetectorOptions,
    pub max_batch: usize,
    /// Check model files against the manifest's sha256 when loading.
    pub verify_models: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            runtime: RuntimeOptions::default(),
            detector: DetectorOptions::default(),
            max_batch: 32,
            verify_models: true,
        }
    }
}

/// One face of a frame.
#[derive(Debug, Clone, Serialize)]
pub struct Face {
    pub detection: Detection,
    pub quality: Quality,
    /// Why the gate refused it (empty = usable).
    pub rejections: Vec<Rejection>,
    /// Unit-length embedding; `None` for refused faces.
    pub embedding: Option<Vec<f32>>,
    #[serde(skip)]
    pub transform: Affine,
    #[serde(skip)]
    pub chip: RgbImage,
}

pub struct Pipeline {
    pub detector: Detector,
    pub embedder: Embedder,
    pub manifest: Manifest,
}

impl Pipeline {
    /// Loads both models described by `models_dir/manifest.toml`.
    pub fn open(models_dir: &Path, opts: PipelineOptions) -> Result<Self> {
        let backend = OnnxBackend::open(models_dir, &opts)?;
        Ok(Self { detector: backend.onnx_detector()?, embedder: backend.onnx_embedder()?, manifest: backend.manifest })
    }

    /// Name of the embedding model, stored with every template.
    pub fn model_name(&self) -> &str {
        &self.manifest.embedder.name
    }

    /// Detection + alignment + quality for every face; faces that pass `gate` (all faces when
    /// `gate` is `None`) are embedded together in one batch.
    pub fn faces(&mut self, img: &RgbImage, gate: Option<&QualityGate>) -> Result<Vec<Face>> {
        let dets = self.detector.detect(img)?;
        let mut faces = self.prepare(img, dets, gate);
        self.embed_faces(&mut faces)?;
        Ok(faces)
    }

    /// Aligns and measures detections (no model call).
    pub fn prepare(&self, img: &RgbImage, dets: Vec<Detection>, gate: Option<&QualityGate>) -> Vec<Face> {
        prepare_faces(&self.manifest.embedder, img, dets, gate)
    }

    /// Embeds accepted faces as enrollment templates: as [`Pipeline::embed_faces`], and where
    /// the embedder's manifest says so, each averaged with its mirror image's embedding (one
    /// batched call for all the mirrors).
    pub fn embed_templates(&mut self, faces: &mut [Face]) -> Result<()> {
        if !self.manifest.embedder.enroll_mirrored {
            return self.embed_faces(faces);
        }
        // One call for the faces and their mirrors, in the order the engine's enroll mode uses,
        // so that both paths store the same template to the bit.
        let idx: Vec<usize> = (0..faces.len()).filter(|&i| faces[i].rejections.is_empty()).collect();
        if idx.is_empty() {
            return Ok(());
        }
        let mirrors: Vec<RgbImage> = idx.iter().map(|&i| embed::mirrored(&faces[i].chip)).collect();
        let chips: Vec<&RgbImage> = idx.iter().map(|&i| &faces[i].chip).chain(&mirrors).collect();
        let embs = self.embedder.embed(&chips)?;
        let (own, mirror) = embs.split_at(idx.len());
        for ((i, e), m) in idx.into_iter().zip(own).zip(mirror) {
            faces[i].embedding = Some(embed::mirror_template(e, m));
        }
        Ok(())
    }

    /// Embeds every accepted face in one batched call.
    pub fn embed_faces(&mut self, faces: &mut [Face]) -> Result<()> {
        let idx: Vec<usize> = (0..faces.len()).filter(|&i| faces[i].rejections.is_empty()).collect();
        if idx.is_empty() {
            return Ok(());
        }
        let chips: Vec<&RgbImage> = idx.iter().map(|&i| &faces[i].chip).collect();
        let embs = self.embedder.embed(&chips)?;
        for (i, e) in idx.into_iter().zip(embs) {
            faces[i].embedding = Some(e);
        }
        Ok(())
    }
}

/// Aligns every detection to the embedder's chip and measures its quality against `gate`.
/// Frames with several faces are split over two threads (0.1-0.15 ms per face adds up in a
/// crowd, and the models are idle meanwhile); the order of the faces is kept.
pub fn prepare_faces(
    spec: &EmbedderSpec,
    img: &RgbImage,
    dets: Vec<Detection>,
    gate: Option<&QualityGate>,
) -> Vec<Face> {
    const PARALLEL_FACES: usize = 2;
    let one = |d: &Detection| {
        let (transform, chip) = align::align(img, &d.landmarks, &spec.template, spec.input_size);
        let quality = quality::measure(d, &chip);
        let rejections = gate.map(|g| g.check(&quality)).unwrap_or_default();
        Face { detection: *d, quality, rejections, embedding: None, transform, chip }
    };
    if dets.len() < PARALLEL_FACES {
        return dets.iter().map(one).collect();
    }
    let (first, second) = dets.split_at(dets.len() / 2);
    std::thread::scope(|s| {
        let helper = s.spawn(|| first.iter().map(one).collect::<Vec<_>>());
        let rest: Vec<Face> = second.iter().map(one).collect();
        // A panic in the helper is re-raised here, as it would have been without the split.
        let mut faces = helper.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        faces.extend(rest);
        faces
    })
}

impl Face {
    pub fn accepted(&self) -> bool {
        self.rejections.is_empty()
    }
}

/// At most `max` detections: the largest boxes, in their original (best score first) order,
/// and how many were left out.
pub fn largest_detections(mut dets: Vec<Detection>, max: usize) -> (Vec<Detection>, usize) {
    if dets.len() <= max {
        return (dets, 0);
    }
    let skipped = dets.len() - max;
    let mut by_area: Vec<usize> = (0..dets.len()).collect();
    // Stable: among equal boxes the better-scored (earlier) one is kept.
    by_area.sort_by(|&a, &b| dets[b].area().total_cmp(&dets[a].area()));
    let mut keep = vec![false; dets.len()];
    by_area[..max].iter().for_each(|&i| keep[i] = true);
    let mut i = 0;
    dets.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    (dets, skipped)
}

/// The face whose box centre is nearest the image centre (LFW's labelled person).
pub fn nearest_center(faces: &[Face], width: u32, height: u32) -> Option<&Face> {
    let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
    faces.iter().min_by(|a, b| {
        let d = |f: &Face| {
            let c = f.detection.center();
            (c[0] - cx).powi(2) + (c[1] - cy).powi(2)
        };
        d(a).total_cmp(&d(b))
    })
}

/// The largest face by box area.
pub fn largest(faces: &[Face]) -> Option<&Face> {
    faces.iter().max_by(|a, b| a.detection.area().total_cmp(&b.detection.area()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(side: f32, score: f32) -> Detection {
        Detection { bbox: [0.0, 0.0, side, side], landmarks: [[0.0; 2]; 5], score }
    }

    #[test]
    fn the_largest_faces_are_kept_in_score_order() {
        let dets = vec![det(10.0, 0.99), det(50.0, 0.98), det(f32::NAN, 0.97), det(30.0, 0.96), det(50.0, 0.95)];
        let (kept, skipped) = largest_detections(dets.clone(), 3);
        assert_eq!(skipped, 2);
        let sides: Vec<f32> = kept.iter().map(|d| d.bbox[2]).collect();
        assert_eq!(sides, [50.0, 30.0, 50.0]);
        assert_eq!((largest_detections(dets.clone(), 5).0.len(), largest_detections(dets.clone(), 5).1), (5, 0));
        assert_eq!(largest_detections(dets, 0).1, 5);
    }
}
