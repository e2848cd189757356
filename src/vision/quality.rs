//! Per-face quality: size, detector score, sharpness, brightness and a pose estimate, and a
//! configurable gate that says why a face is refused. Measured on the aligned chip so numbers
//! do not depend on the frame's resolution.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::vision::detect::Detection;

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quality {
    /// Shorter side of the detector box, in frame pixels.
    pub face_px: f32,
    /// Distance between the eye centres, in frame pixels.
    pub eye_distance_px: f32,
    pub score: f32,
    /// Variance of the 4-neighbour Laplacian of the grey chip (higher = sharper).
    pub sharpness: f32,
    /// Mean grey level of the chip's central region, 0..255.
    pub brightness: f32,
    /// Rough head yaw / pitch in degrees from the 5 landmarks (0 = frontal).
    pub yaw_deg: f32,
    pub pitch_deg: f32,
}

impl Quality {
    /// One number in 0..1 for policies: the product of size, sharpness, lighting, pose and
    /// detector-score factors, each 1 when that measure is as good as a clear enrollment photo.
    pub fn overall(&self) -> f32 {
        let size = (self.face_px / 80.0).clamp(0.0, 1.0);
        let sharp = (self.sharpness / 40.0).clamp(0.0, 1.0);
        let light = 1.0 - ((self.brightness - 128.0).abs() / 128.0).clamp(0.0, 1.0).powi(2);
        let pose = self.yaw_deg.to_radians().cos().max(0.0) * self.pitch_deg.to_radians().cos().max(0.0);
        (size * sharp * light * pose * self.score.clamp(0.0, 1.0)).clamp(0.0, 1.0)
    }
}

/// A face's quality as it is stored with templates and alerts and reported: the measures and
/// their overall score ([`Quality::overall`]).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QualityReport {
    #[serde(flatten)]
    pub measures: Quality,
    /// The measures in one number, 0..1 (what a list's `min_quality` compares).
    pub overall: f32,
}

impl From<Quality> for QualityReport {
    fn from(q: Quality) -> Self {
        Self { measures: q, overall: q.overall() }
    }
}

/// Thresholds a face must pass (enrollment uses a stricter gate than live matching).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct QualityGate {
    pub min_face_px: f32,
    pub min_score: f32,
    pub min_sharpness: f32,
    pub min_brightness: f32,
    pub max_brightness: f32,
    pub max_abs_yaw_deg: f32,
    pub max_abs_pitch_deg: f32,
}

impl Default for QualityGate {
    /// The live gate: lenient, it only drops faces the embedder cannot use.
    fn default() -> Self {
        Self {
            min_face_px: 32.0,
            min_score: 0.6,
            min_sharpness: 3.0,
            min_brightness: 25.0,
            max_brightness: 235.0,
            max_abs_yaw_deg: 60.0,
            max_abs_pitch_deg: 45.0,
        }
    }
}

impl QualityGate {
    /// The enrollment gate: a watch-list photo must be a clear, frontal, well-lit face.
    pub fn enrollment() -> Self {
        Self {
            min_face_px: 60.0,
            min_score: 0.9,
            // LFW's labelled faces: 1st percentile 7.9, median 44 (measured on 400 photos).
            min_sharpness: 10.0,
            min_brightness: 40.0,
            max_brightness: 220.0,
            max_abs_yaw_deg: 45.0,
            max_abs_pitch_deg: 30.0,
        }
    }

    /// Every reason the face fails the gate (empty = accepted).
    pub fn check(&self, q: &Quality) -> Vec<Rejection> {
        let mut r = Vec::new();
        if q.face_px < self.min_face_px {
            r.push(Rejection::TooSmall { px: q.face_px, min: self.min_face_px });
        }
        if q.score < self.min_score {
            r.push(Rejection::LowScore { score: q.score, min: self.min_score });
        }
        if q.sharpness < self.min_sharpness {
            r.push(Rejection::Blurry { sharpness: q.sharpness, min: self.min_sharpness });
        }
        if q.brightness < self.min_brightness {
            r.push(Rejection::TooDark { brightness: q.brightness, min: self.min_brightness });
        }
        if q.brightness > self.max_brightness {
            r.push(Rejection::TooBright { brightness: q.brightness, max: self.max_brightness });
        }
        if q.yaw_deg.abs() > self.max_abs_yaw_deg || q.pitch_deg.abs() > self.max_abs_pitch_deg {
            r.push(Rejection::Pose { yaw: q.yaw_deg, pitch: q.pitch_deg });
        }
        r
    }
}

/// Why a face was refused.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Rejection {
    #[error("no face found")]
    NoFace,
    #[error("{count} faces found, exactly one expected")]
    SeveralFaces { count: usize },
    #[error("face too small ({px:.0} px, minimum {min:.0})")]
    TooSmall { px: f32, min: f32 },
    #[error("detector score too low ({score:.2}, minimum {min:.2})")]
    LowScore { score: f32, min: f32 },
    #[error("face too blurry (sharpness {sharpness:.1}, minimum {min:.1})")]
    Blurry { sharpness: f32, min: f32 },
    #[error("face too dark (brightness {brightness:.0}, minimum {min:.0})")]
    TooDark { brightness: f32, min: f32 },
    #[error("face over-exposed (brightness {brightness:.0}, maximum {max:.0})")]
    TooBright { brightness: f32, max: f32 },
    #[error("face not frontal (yaw {yaw:.0} deg, pitch {pitch:.0} deg)")]
    Pose { yaw: f32, pitch: f32 },
}

/// Measures one face from its detection and its aligned chip.
pub fn measure(det: &Detection, chip: &RgbImage) -> Quality {
    let l = &det.landmarks;
    let eye_distance_px = dist(l[0], l[1]);
    let (yaw_deg, pitch_deg) = pose(l);
    let (sharpness, brightness) = sharpness_brightness(chip);
    Quality {
        face_px: det.bbox[2].min(det.bbox[3]),
        eye_distance_px,
        score: det.score,
        sharpness,
        brightness,
        yaw_deg,
        pitch_deg,
    }
}

fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Yaw from how far the nose sits from the eyes' midline (relative to half the eye distance);
/// pitch from where the nose sits between the eye line and the mouth line, against a frontal
/// face's ratio (0.57 on the alignment template). Both in a frame rotated so the eyes are level.
fn pose(l: &[[f32; 2]; 5]) -> (f32, f32) {
    let (re, le, nose) = (l[0], l[1], l[2]);
    let mouth = [(l[3][0] + l[4][0]) / 2.0, (l[3][1] + l[4][1]) / 2.0];
    let eyes = [(re[0] + le[0]) / 2.0, (re[1] + le[1]) / 2.0];
    let angle = (le[1] - re[1]).atan2(le[0] - re[0]);
    let (s, c) = (-angle).sin_cos();
    let rot = |p: [f32; 2]| {
        let (x, y) = (p[0] - eyes[0], p[1] - eyes[1]);
        [x * c - y * s, x * s + y * c]
    };
    let (n, m) = (rot(nose), rot(mouth));
    let half_eye = (dist(re, le) / 2.0).max(1e-3);
    let yaw = (n[0] / half_eye).clamp(-1.0, 1.0).asin().to_degrees();
    let ratio = if m[1].abs() > 1e-3 { n[1] / m[1] } else { 0.57 };
    let pitch = ((ratio - 0.57) / 0.43).clamp(-1.0, 1.0).asin().to_degrees();
    (yaw, pitch)
}

/// Laplacian variance and mean grey over the chip's central 60% (hair and background excluded).
fn sharpness_brightness(chip: &RgbImage) -> (f32, f32) {
    let (w, h) = (chip.width() as usize, chip.height() as usize);
    if w < 5 || h < 5 {
        return (0.0, 0.0);
    }
    // Grey only where the Laplacian reads it: the central region plus a one-pixel border.
    let (x0, x1, y0, y1) = ((w / 5).max(1), (w - w / 5).min(w - 1), (h / 5).max(1), (h - h / 5).min(h - 1));
    let (gx0, gw) = (x0 - 1, x1 - x0 + 2);
    let raw = chip.as_raw();
    let mut grey = vec![0.0f32; (y1 - y0 + 2) * gw];
    for (y, dst) in (y0 - 1..=y1).zip(grey.chunks_exact_mut(gw)) {
        let src = &raw[(y * w + gx0) * 3..(y * w + gx0 + gw) * 3];
        for (g, p) in dst.iter_mut().zip(src.chunks_exact(3)) {
            *g = 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
        }
    }
    let (mut sum, mut sum2, mut bright, mut n) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for gy in 1..=y1 - y0 {
        let (up, row, down) = (&grey[(gy - 1) * gw..gy * gw], &grey[gy * gw..(gy + 1) * gw], &grey[(gy + 1) * gw..]);
        let (mut rs, mut rs2, mut rb) = (0.0f32, 0.0f32, 0.0f32);
        for x in 1..gw - 1 {
            let lap = row[x - 1] + row[x + 1] + up[x] + down[x] - 4.0 * row[x];
            rs += lap;
            rs2 += lap * lap;
            rb += row[x];
        }
        // Per-row partial sums in f32 (at most 150 terms), accumulated in f64.
        sum += f64::from(rs);
        sum2 += f64::from(rs2);
        bright += f64::from(rb);
        n += (gw - 2) as f64;
    }
    let mean = sum / n;
    ((sum2 / n - mean * mean) as f32, (bright / n) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontal_template_has_small_pose() {
        let t = [[46.6, 44.5], [103.0, 45.4], [74.5, 77.2], [50.8, 101.7], [98.7, 102.2]];
        let (yaw, pitch) = pose(&t);
        assert!(yaw.abs() < 5.0 && pitch.abs() < 5.0, "{yaw} {pitch}");
        let turned = [[46.6, 44.5], [103.0, 45.4], [98.0, 77.2], [50.8, 101.7], [98.7, 102.2]];
        assert!(pose(&turned).0 > 40.0);
    }

    #[test]
    fn flat_chip_is_blurry_and_gate_says_why() {
        let chip = RgbImage::from_pixel(150, 150, image::Rgb([128, 128, 128]));
        let (sharp, bright) = sharpness_brightness(&chip);
        assert!(sharp < 1e-3 && (bright - 128.0).abs() < 1.0);
        let q = Quality {
            face_px: 20.0,
            eye_distance_px: 8.0,
            score: 0.95,
            sharpness: sharp,
            brightness: bright,
            yaw_deg: 0.0,
            pitch_deg: 0.0,
        };
        let r = QualityGate::enrollment().check(&q);
        assert!(r.iter().any(|x| matches!(x, Rejection::TooSmall { .. })));
        assert!(r.iter().any(|x| matches!(x, Rejection::Blurry { .. })));
    }
}
