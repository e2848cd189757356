//! Enrollment policy: a watch-list photo must show one clear face. The largest face is taken;
//! a second face of comparable size makes the photo ambiguous and it is refused.

use image::RgbImage;

use crate::error::Result;
use crate::pipeline::{Face, Pipeline};
use crate::vision::detect::Detection;
use crate::vision::quality::{QualityGate, Rejection};

/// Another face at least this fraction of the largest face's area makes the photo ambiguous.
const AMBIGUOUS_AREA_RATIO: f32 = 0.5;

/// The face to enroll from one photo, or every reason it is refused.
pub fn select(pipeline: &mut Pipeline, img: &RgbImage, gate: &QualityGate) -> Result<Result<Face, Vec<Rejection>>> {
    let dets = pipeline.detector.detect(img)?;
    let chosen = match choose(&dets) {
        Ok(d) => d,
        Err(r) => return Ok(Err(vec![r])),
    };
    let mut faces = pipeline.prepare(img, vec![chosen], Some(gate));
    let mut face = faces.pop().expect("one detection in, one face out");
    if !face.rejections.is_empty() {
        return Ok(Err(face.rejections));
    }
    pipeline.embed_faces(std::slice::from_mut(&mut face))?;
    Ok(Ok(face))
}

/// The detection to enroll: the largest, unless there is none or another is comparable.
pub fn choose(dets: &[Detection]) -> Result<Detection, Rejection> {
    let largest = dets.iter().max_by(|a, b| a.area().total_cmp(&b.area())).ok_or(Rejection::NoFace)?;
    let comparable = dets.iter().filter(|d| d.area() >= AMBIGUOUS_AREA_RATIO * largest.area()).count();
    if comparable > 1 {
        return Err(Rejection::SeveralFaces { count: comparable });
    }
    Ok(*largest)
}
