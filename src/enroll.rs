//! Enrollment policy: a watch-list photo must show one clear face. The largest face is taken;
//! a second face of comparable size makes the photo ambiguous and it is refused.

use image::RgbImage;

use crate::error::Result;
use crate::pipeline::{Face, Pipeline};
use crate::vision::quality::{QualityGate, Rejection};

/// Another face at least this fraction of the largest face's area makes the photo ambiguous.
const AMBIGUOUS_AREA_RATIO: f32 = 0.5;

/// The face to enroll from one photo, or every reason it is refused.
pub fn select(pipeline: &mut Pipeline, img: &RgbImage, gate: &QualityGate) -> Result<Result<Face, Vec<Rejection>>> {
    let dets = pipeline.detector.detect(img)?;
    if dets.is_empty() {
        return Ok(Err(vec![Rejection::NoFace]));
    }
    let largest = dets.iter().enumerate().max_by(|a, b| a.1.area().total_cmp(&b.1.area())).map(|(i, _)| i).unwrap_or(0);
    let big = dets[largest].area();
    let comparable = dets.iter().filter(|d| d.area() >= AMBIGUOUS_AREA_RATIO * big).count();
    if comparable > 1 {
        return Ok(Err(vec![Rejection::SeveralFaces { count: comparable }]));
    }
    let mut faces = pipeline.prepare(img, vec![dets[largest]], Some(gate));
    let mut face = faces.pop().expect("one detection in, one face out");
    if !face.rejections.is_empty() {
        return Ok(Err(face.rejections));
    }
    pipeline.embed_faces(std::slice::from_mut(&mut face))?;
    Ok(Ok(face))
}
