//! YuNet face detector: pad to a multiple of 32 (dynamic-size model, so small faces in large
//! frames survive), one ort call, anchor-free decoding per stride, then NMS.

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::manifest::{ChannelOrder, DetectorSpec};
use crate::vision::planar::{self, Normalize};

const STRIDES: [usize; 3] = [8, 16, 32];

/// One detected face in original-image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Detection {
    /// x, y, width, height.
    pub bbox: [f32; 4],
    /// Subject's right eye, left eye, nose tip, right mouth corner, left mouth corner.
    pub landmarks: [[f32; 2]; 5],
    pub score: f32,
}

impl Detection {
    pub fn area(&self) -> f32 {
        self.bbox[2].max(0.0) * self.bbox[3].max(0.0)
    }

    pub fn center(&self) -> [f32; 2] {
        [self.bbox[0] + self.bbox[2] / 2.0, self.bbox[1] + self.bbox[3] / 2.0]
    }

    fn iou(&self, other: &Detection) -> f32 {
        let [ax, ay, aw, ah] = self.bbox;
        let [bx, by, bw, bh] = other.bbox;
        let iw = ((ax + aw).min(bx + bw) - ax.max(bx)).max(0.0);
        let ih = ((ay + ah).min(by + bh) - ay.max(by)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

#[derive(Debug, Clone)]
pub struct DetectorOptions {
    /// Minimum face score (OpenCV's default 0.9 gives no false positives on the non-face set).
    pub score_threshold: f32,
    pub nms_iou: f32,
    /// Frames whose longer side exceeds this are downscaled before detection (0 = never).
    pub max_side: u32,
    /// Keep at most this many candidates before NMS.
    pub top_k: usize,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        Self { score_threshold: 0.9, nms_iou: 0.3, max_side: 2560, top_k: 5000 }
    }
}

pub struct Detector {
    session: Session,
    spec: DetectorSpec,
    pub options: DetectorOptions,
    input: Vec<f32>,
    /// Time spent inside `session.run` since creation: the model's own cost, without the
    /// pipeline's pre- and post-processing.
    pub model_time: std::time::Duration,
}

impl Detector {
    pub fn new(session: Session, spec: DetectorSpec, options: DetectorOptions) -> Self {
        Self { session, spec, options, input: Vec::new(), model_time: std::time::Duration::ZERO }
    }

    /// All faces above the score threshold, best first.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Detection>> {
        self.detect_within(img, 0)
    }

    /// As [`Detector::detect`], on the frame scaled down so that its longer side is at most
    /// `max_side` (0: only the configured `max_side` applies; the smaller of the two wins).
    /// Boxes and landmarks come back in `img`'s own pixels, so faces are aligned from the full
    /// resolution.
    pub fn detect_within(&mut self, img: &RgbImage, max_side: u32) -> Result<Vec<Detection>> {
        let limit = match (self.options.max_side, max_side) {
            (0, m) | (m, 0) => m,
            (a, b) => a.min(b),
        };
        let (w, h) = img.dimensions();
        let longest = w.max(h);
        let resized;
        let (src, sx, sy) = if limit > 0 && longest > limit {
            let scale = limit as f32 / longest as f32;
            let nw = ((w as f32 * scale).round() as u32).max(1);
            let nh = ((h as f32 * scale).round() as u32).max(1);
            resized = super::shrink::shrink(img, nw, nh);
            // Per axis: rounding the size makes the two ratios differ slightly.
            (&resized, w as f32 / nw as f32, h as f32 / nh as f32)
        } else {
            (img, 1.0, 1.0)
        };
        let mut dets = self.detect_unscaled(src)?;
        if src.dimensions() != img.dimensions() {
            for d in &mut dets {
                d.bbox = [d.bbox[0] * sx, d.bbox[1] * sy, d.bbox[2] * sx, d.bbox[3] * sy];
                d.landmarks.iter_mut().for_each(|p| *p = [p[0] * sx, p[1] * sy]);
            }
        }
        Ok(dets)
    }

    fn detect_unscaled(&mut self, img: &RgbImage) -> Result<Vec<Detection>> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let m = self.spec.pad_multiple as usize;
        let (pw, ph) = (w.div_ceil(m) * m, h.div_ceil(m) * m);
        let input = fill_planar(img, pw, ph, self.spec.channel_order, &mut self.input);
        let t = std::time::Instant::now();
        let outputs = self.session.run(ort::inputs![TensorRef::from_array_view(([1usize, 3, ph, pw], input))?])?;
        self.model_time += t.elapsed();
        let mut candidates = Vec::new();
        for s in STRIDES {
            let (cols, rows) = (pw / s, ph / s);
            let anchors = cols * rows;
            let get = |name: String, width: usize| -> Result<&[f32]> {
                let v =
                    outputs.get(&name).ok_or_else(|| Error::ModelOutput(format!("detector has no output {name}")))?;
                let (_, data) = v.try_extract_tensor::<f32>()?;
                if data.len() != anchors * width {
                    return Err(Error::ModelOutput(format!(
                        "{name}: {} values, expected {}",
                        data.len(),
                        anchors * width
                    )));
                }
                Ok(data)
            };
            let cls = get(format!("cls_{s}"), 1)?;
            let obj = get(format!("obj_{s}"), 1)?;
            let bbox = get(format!("bbox_{s}"), 4)?;
            let kps = get(format!("kps_{s}"), 10)?;
            let sf = s as f32;
            for a in 0..anchors {
                let score = (cls[a].clamp(0.0, 1.0) * obj[a].clamp(0.0, 1.0)).sqrt();
                if score < self.options.score_threshold {
                    continue;
                }
                let (row, col) = ((a / cols) as f32, (a % cols) as f32);
                let b = &bbox[a * 4..a * 4 + 4];
                let cx = (col + b[0]) * sf;
                let cy = (row + b[1]) * sf;
                let bw = b[2].exp() * sf;
                let bh = b[3].exp() * sf;
                let k = &kps[a * 10..a * 10 + 10];
                let mut landmarks = [[0.0f32; 2]; 5];
                for (j, lm) in landmarks.iter_mut().enumerate() {
                    *lm = [(k[2 * j] + col) * sf, (k[2 * j + 1] + row) * sf];
                }
                candidates.push(Detection { bbox: [cx - bw / 2.0, cy - bh / 2.0, bw, bh], landmarks, score });
            }
        }
        Ok(nms(candidates, self.options.nms_iou, self.options.top_k))
    }
}

/// Writes the image as planar float 0..255 in the model's channel order, zero-padded
/// right/bottom to `pw` x `ph`, into the front of `buf` ([`planar::front`]), and returns that
/// part; only the padding is cleared. Large frames are split between two
/// threads, because this runs while the cores the model uses sit idle.
fn fill_planar<'a>(img: &RgbImage, pw: usize, ph: usize, order: ChannelOrder, buf: &'a mut Vec<f32>) -> &'a [f32] {
    const PARALLEL_PIXELS: usize = 500_000;
    let plane = pw * ph;
    let buf = planar::front(buf, 3 * plane);
    let norm = Normalize::raw(order);
    let (w, h) = (img.width() as usize, img.height() as usize);
    let src = img.as_raw();
    let (p0, rest) = buf.split_at_mut(plane);
    let (p1, p2) = rest.split_at_mut(plane);
    if w * h < PARALLEL_PIXELS {
        fill_rows(src, w, pw, &norm, [p0, p1, p2]);
        return buf;
    }
    // Rows [0, mid) on a helper thread, [mid, ph) here.
    let mid = h / 2;
    let (a0, b0) = p0.split_at_mut(mid * pw);
    let (a1, b1) = p1.split_at_mut(mid * pw);
    let (a2, b2) = p2.split_at_mut(mid * pw);
    let (top, bottom) = src.split_at(mid * w * 3);
    std::thread::scope(|s| {
        s.spawn(|| fill_rows(top, w, pw, &norm, [a0, a1, a2]));
        fill_rows(bottom, w, pw, &norm, [b0, b1, b2]);
    });
    buf
}

/// Fills whole rows of three planes (`pw` wide) from packed RGB rows (`w` wide); planes may
/// hold more rows than `src` (bottom padding), which are zeroed.
fn fill_rows(src: &[u8], w: usize, pw: usize, norm: &Normalize, planes: [&mut [f32]; 3]) {
    let [a, b, c] = planes;
    let mut rows = src.chunks_exact(w * 3);
    for ((ra, rb), rc) in a.chunks_exact_mut(pw).zip(b.chunks_exact_mut(pw)).zip(c.chunks_exact_mut(pw)) {
        let Some(row) = rows.next() else {
            ra.fill(0.0);
            rb.fill(0.0);
            rc.fill(0.0);
            continue;
        };
        let (ra, pad_a) = ra.split_at_mut(w);
        let (rb, pad_b) = rb.split_at_mut(w);
        let (rc, pad_c) = rc.split_at_mut(w);
        norm.row(row, [ra, rb, rc]);
        pad_a.fill(0.0);
        pad_b.fill(0.0);
        pad_c.fill(0.0);
    }
}

/// Greedy non-maximum suppression, highest score first (as OpenCV's NMSBoxes).
pub fn nms(mut dets: Vec<Detection>, iou: f32, top_k: usize) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    dets.truncate(top_k);
    let mut keep: Vec<Detection> = Vec::new();
    for d in dets {
        if keep.iter().all(|k| k.iou(&d) <= iou) {
            keep.push(d);
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, score: f32) -> Detection {
        Detection { bbox: [x, 0.0, 10.0, 10.0], landmarks: [[0.0; 2]; 5], score }
    }

    #[test]
    fn nms_keeps_best_of_overlapping() {
        let out = nms(vec![det(0.0, 0.8), det(1.0, 0.95), det(50.0, 0.91)], 0.3, 100);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.95);
        assert_eq!(out[1].bbox[0], 50.0);
    }

    #[test]
    fn planar_fill_pads_and_swaps_channels() {
        let img = RgbImage::from_raw(1, 1, vec![1, 2, 3]).unwrap();
        // A dirty buffer from a previous, larger frame: padding must come back as zeros.
        let mut buf = vec![9.0; 40];
        let input = fill_planar(&img, 2, 2, ChannelOrder::Bgr, &mut buf);
        assert_eq!(input, [3.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(buf.len(), 40, "the buffer keeps its size for larger frames");
    }

    #[test]
    fn planar_fill_splits_large_frames_exactly() {
        let img =
            RgbImage::from_fn(1001, 601, |x, y| image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 7) as u8]));
        let (pw, ph) = (1024, 608);
        let mut buf = vec![5.0; 7];
        let buf = fill_planar(&img, pw, ph, ChannelOrder::Rgb, &mut buf);
        let plane = pw * ph;
        for (x, y) in [(0, 0), (1000, 300), (17, 600), (500, 299)] {
            let p = img.get_pixel(x as u32, y as u32).0;
            for c in 0..3 {
                assert_eq!(buf[c * plane + y * pw + x], f32::from(p[c]), "({x},{y}) channel {c}");
            }
        }
        assert!(buf[..plane].chunks_exact(pw).all(|r| r[1001..].iter().all(|&v| v == 0.0)));
        assert!(buf[2 * plane + 601 * pw..].iter().all(|&v| v == 0.0));
    }
}
