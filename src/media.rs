//! Face images kept on disk: alert crops (`crops/<alert>.jpg`) and enrolled reference images
//! (`references/<template>.jpg`). Only these two kinds exist: a face that matches nothing is
//! never written anywhere. Both are deleted by the retention sweep.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::{RgbImage, imageops};

use crate::error::{Error, Result};

/// Margin around the detector box in a crop, as a fraction of the box size.
const MARGIN: f32 = 0.25;
const JPEG_QUALITY: u8 = 90;

#[derive(Debug, Clone)]
pub struct Media {
    crops: PathBuf,
    references: PathBuf,
}

/// Where the reference images of `data_dir` live (`<template id>.jpg`; template ids are never
/// reused, so a file names one template for ever).
pub fn references_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("references")
}

impl Media {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let m = Self { crops: data_dir.join("crops"), references: references_dir(data_dir) };
        for d in [&m.crops, &m.references] {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        Ok(m)
    }

    pub fn crop_path(&self, alert_id: &str) -> PathBuf {
        self.crops.join(format!("{alert_id}.jpg"))
    }

    pub fn reference_path(&self, template_id: i64) -> PathBuf {
        self.references.join(format!("{template_id}.jpg"))
    }

    pub fn save_crop(&self, alert_id: &str, jpeg: &[u8]) -> Result<PathBuf> {
        let p = self.crop_path(alert_id);
        write_atomic(&p, jpeg)?;
        Ok(p)
    }

    pub fn save_reference(&self, template_id: i64, jpeg: &[u8]) -> Result<PathBuf> {
        let p = self.reference_path(template_id);
        write_atomic(&p, jpeg)?;
        Ok(p)
    }

    /// Deletes a file if present; true if something was deleted.
    pub fn delete(path: &Path) -> bool {
        match std::fs::remove_file(path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not delete a face image");
                false
            }
        }
    }

    pub fn delete_references(&self, template_ids: &[i64]) -> usize {
        template_ids.iter().filter(|&&t| Self::delete(&self.reference_path(t))).count()
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("jpg.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The face's box with a margin, clipped to the frame, as JPEG.
pub fn face_jpeg(img: &RgbImage, bbox: [f32; 4]) -> Result<Vec<u8>> {
    let [x, y, w, h] = bbox;
    let (mx, my) = (w * MARGIN, h * MARGIN);
    let x0 = (x - mx).floor().clamp(0.0, img.width().saturating_sub(1) as f32) as u32;
    let y0 = (y - my).floor().clamp(0.0, img.height().saturating_sub(1) as f32) as u32;
    let x1 = (x + w + mx).ceil().clamp(x0 as f32 + 1.0, img.width() as f32) as u32;
    let y1 = (y + h + my).ceil().clamp(y0 as f32 + 1.0, img.height() as f32) as u32;
    let crop = imageops::crop_imm(img, x0, y0, x1 - x0, y1 - y0).to_image();
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .encode_image(&crop)
        .map_err(|e| Error::Runtime(format!("encoding a face crop: {e}")))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_is_clipped_to_the_frame() {
        let img = RgbImage::from_pixel(100, 80, image::Rgb([120, 90, 60]));
        let jpeg = face_jpeg(&img, [80.0, 60.0, 40.0, 40.0]).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (30, 30), "box 40 + margins 10, cut at the right and bottom edges");
        assert!(face_jpeg(&img, [-50.0, -50.0, 10.0, 10.0]).is_ok(), "box outside the frame still crops");
    }
}
