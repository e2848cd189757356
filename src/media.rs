//! Face images kept on disk: alert crops (`crops/<alert>.jpg`) and enrolled reference images
//! (`references/<template>.jpg`). Only these two kinds exist: a face that matches nothing is
//! never written anywhere. Both are deleted by the retention sweep; files that no record names
//! (a crash between writing a crop and inserting its alert, between deleting a row and its file,
//! or in the middle of a write) are deleted by the orphan sweep.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use image::codecs::jpeg::JpegEncoder;
use image::{RgbImage, imageops};

use crate::error::{Error, Result};

/// Margin around the detector box in a crop, as a fraction of the box size.
const MARGIN: f32 = 0.25;
const JPEG_QUALITY: u8 = 90;

/// The orphan sweep leaves younger files alone: a crop is written before its alert row, so the
/// crop of an alert being raised right now has no row yet.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(300);

/// What one orphan sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Orphans {
    pub crops: usize,
    pub references: usize,
    /// `*.jpg.tmp` leftovers of an interrupted write.
    pub partial: usize,
}

impl Orphans {
    pub fn total(&self) -> usize {
        self.crops + self.references + self.partial
    }
}

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
    /// A face image's JPEG bytes (decrypted when the data folder is encrypted).
    pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
        crate::vault::read(path)
    }

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

    /// Deletes the face images last modified before `cutoff` that no record names:
    /// `crops/<alert>.jpg` unless `crop_known(alert)`, `references/<template>.jpg` unless
    /// `reference_known(template)`, and every `*.jpg.tmp`. Other files are left alone. The
    /// folders are read as a stream, one lookup per file.
    pub fn sweep_orphans(
        &self,
        cutoff: SystemTime,
        mut crop_known: impl FnMut(&str) -> Result<bool>,
        mut reference_known: impl FnMut(i64) -> Result<bool>,
    ) -> Result<Orphans> {
        let mut out = Orphans::default();
        for (dir, is_crop) in [(&self.crops, true), (&self.references, false)] {
            for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
                let entry = entry.map_err(|e| Error::io(dir, e))?;
                let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < cutoff);
                let name = entry.file_name();
                let Some(name) = name.to_str().filter(|_| old) else { continue };
                if name.ends_with(".jpg.tmp") {
                    out.partial += Self::delete(&entry.path()) as usize;
                    continue;
                }
                let Some(stem) = name.strip_suffix(".jpg") else { continue };
                if is_crop {
                    if !crop_known(stem)? {
                        out.crops += Self::delete(&entry.path()) as usize;
                    }
                } else {
                    // A name that is not a template id cannot be named by any template.
                    let known = match stem.parse::<i64>() {
                        Ok(id) => reference_known(id)?,
                        Err(_) => false,
                    };
                    if !known {
                        out.references += Self::delete(&entry.path()) as usize;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Encrypted first when the data folder is (`crate::vault`): no face reaches the disk in clear.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let bytes = crate::vault::for_disk(path, bytes)?;
    let tmp = path.with_extension("jpg.tmp");
    std::fs::write(&tmp, &bytes).map_err(|e| Error::io(&tmp, e))?;
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
    fn orphan_sweep_deletes_only_old_files_no_record_names() {
        let dir = tempfile::tempdir().unwrap();
        let m = Media::open(dir.path()).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        let write = |p: PathBuf, mtime: Option<SystemTime>| {
            std::fs::write(&p, b"jpeg").unwrap();
            if let Some(t) = mtime {
                std::fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
            }
            p
        };
        let kept_crop = write(m.crop_path("alert-1"), Some(old));
        let orphan_crop = write(m.crop_path("crashed"), Some(old));
        let fresh_crop = write(m.crop_path("being-raised"), None);
        let partial = write(m.crops.join("alert-2.jpg.tmp"), Some(old));
        let kept_ref = write(m.reference_path(7), Some(old));
        let orphan_ref = write(m.reference_path(8), Some(old));
        let foreign = write(m.references.join("README"), Some(old));
        let cutoff = SystemTime::now() - ORPHAN_GRACE;
        let n = m.sweep_orphans(cutoff, |id| Ok(id == "alert-1"), |t| Ok(t == 7)).unwrap();
        assert_eq!(n, Orphans { crops: 1, references: 1, partial: 1 });
        for p in [&kept_crop, &fresh_crop, &kept_ref, &foreign] {
            assert!(p.exists(), "{} must stay", p.display());
        }
        for p in [&orphan_crop, &partial, &orphan_ref] {
            assert!(!p.exists(), "{} must go", p.display());
        }
        let again = m.sweep_orphans(cutoff, |_| Ok(false), |_| Err(Error::Invalid("lookup failed".into())));
        assert!(again.is_err(), "a failed lookup stops the sweep instead of deleting");
    }

    #[test]
    fn crop_is_clipped_to_the_frame() {
        let img = RgbImage::from_pixel(100, 80, image::Rgb([120, 90, 60]));
        let jpeg = face_jpeg(&img, [80.0, 60.0, 40.0, 40.0]).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (30, 30), "box 40 + margins 10, cut at the right and bottom edges");
        assert!(face_jpeg(&img, [-50.0, -50.0, 10.0, 10.0]).is_ok(), "box outside the frame still crops");
    }
}
