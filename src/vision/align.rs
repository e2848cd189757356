//! 5-point alignment: a 4-DoF similarity transform (rotation, uniform scale, translation)
//! fitted by least squares from the detected landmarks to the embedder's template, then a
//! bilinear warp to the square chip the embedder expects.

use image::RgbImage;

/// Row-major 2x3 affine matrix mapping source (frame) pixels to chip pixels.
pub type Affine = [[f32; 3]; 2];

/// Least-squares similarity transform taking `src` points onto `dst` points (Umeyama without
/// reflection; equals OpenCV's estimateAffinePartial2D when every point is an inlier).
pub fn similarity(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Affine {
    let n = src.len().min(dst.len()).max(1) as f64;
    let mean = |p: &[[f32; 2]]| {
        let (sx, sy) = p.iter().fold((0.0f64, 0.0f64), |(a, b), q| (a + q[0] as f64, b + q[1] as f64));
        (sx / n, sy / n)
    };
    let (mx, my) = mean(src);
    let (nx, ny) = mean(dst);
    let (mut sxx, mut a_num, mut b_num) = (0.0f64, 0.0f64, 0.0f64);
    for (p, q) in src.iter().zip(dst) {
        let (px, py) = (p[0] as f64 - mx, p[1] as f64 - my);
        let (qx, qy) = (q[0] as f64 - nx, q[1] as f64 - ny);
        sxx += px * px + py * py;
        a_num += px * qx + py * qy;
        b_num += px * qy - py * qx;
    }
    if sxx <= f64::EPSILON {
        // Degenerate landmarks (all at one point): identity shift onto the template centre.
        return [[1.0, 0.0, (nx - mx) as f32], [0.0, 1.0, (ny - my) as f32]];
    }
    let a = a_num / sxx;
    let b = b_num / sxx;
    let tx = nx - (a * mx - b * my);
    let ty = ny - (b * mx + a * my);
    [[a as f32, -b as f32, tx as f32], [b as f32, a as f32, ty as f32]]
}

/// Inverse of a similarity/affine matrix (chip -> frame).
pub fn invert(m: &Affine) -> Affine {
    let [[a, b, c], [d, e, f]] = *m;
    let det = a * e - b * d;
    let det = if det.abs() < 1e-12 { 1e-12 } else { det };
    let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
    [[ia, ib, -(ia * c + ib * f)], [id, ie, -(id * c + ie * f)]]
}

/// Warps the frame into a `size` x `size` chip with bilinear sampling; outside the frame is black
/// (OpenCV's warpAffine default border).
pub fn warp(img: &RgbImage, m: &Affine, size: u32) -> RgbImage {
    let inv = invert(m);
    let (w, h) = (img.width() as i64, img.height() as i64);
    let src = img.as_raw();
    let stride = (w * 3) as usize;
    let mut out = RgbImage::new(size, size);
    let sample = |x: i64, y: i64| -> [f32; 3] {
        if x < 0 || y < 0 || x >= w || y >= h {
            [0.0; 3]
        } else {
            let i = y as usize * stride + x as usize * 3;
            [f32::from(src[i]), f32::from(src[i + 1]), f32::from(src[i + 2])]
        }
    };
    for (v, row) in out.as_mut().chunks_exact_mut(size as usize * 3).enumerate() {
        let vf = v as f32;
        // Walk the source along the row: one add per pixel instead of a matrix product.
        let mut sx = inv[0][1] * vf + inv[0][2];
        let mut sy = inv[1][1] * vf + inv[1][2];
        for px in row.chunks_exact_mut(3) {
            let (x0, y0) = (floor(sx), floor(sy));
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            let weights = [(1.0 - fx) * (1.0 - fy), fx * (1.0 - fy), (1.0 - fx) * fy, fx * fy];
            if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
                let i = y0 as usize * stride + x0 as usize * 3;
                let (top, bottom) = (&src[i..i + 6], &src[i + stride..i + stride + 6]);
                for c in 0..3 {
                    let v = weights[0] * f32::from(top[c])
                        + weights[1] * f32::from(top[c + 3])
                        + weights[2] * f32::from(bottom[c])
                        + weights[3] * f32::from(bottom[c + 3]);
                    px[c] = (v + 0.5) as u8;
                }
            } else {
                let p = [sample(x0, y0), sample(x0 + 1, y0), sample(x0, y0 + 1), sample(x0 + 1, y0 + 1)];
                for c in 0..3 {
                    let v: f32 = (0..4).map(|k| weights[k] * p[k][c]).sum();
                    px[c] = (v + 0.5).clamp(0.0, 255.0) as u8;
                }
            }
            sx += inv[0][0];
            sy += inv[1][0];
        }
    }
    out
}

/// Floor without a libm call (the x86-64 baseline has no SSE4.1 round instruction).
#[inline(always)]
fn floor(v: f32) -> i64 {
    let t = v as i64;
    if (t as f32) > v { t - 1 } else { t }
}

/// Aligns one face: fit to the template, warp to the chip.
pub fn align(img: &RgbImage, landmarks: &[[f32; 2]; 5], template: &[[f32; 2]; 5], size: u32) -> (Affine, RgbImage) {
    let m = similarity(landmarks, template);
    let chip = warp(img, &m, size);
    (m, chip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_similarity() {
        let truth: Affine = [[1.2, -0.3, 5.0], [0.3, 1.2, -7.0]];
        let src = [[10.0, 20.0], [60.0, 22.0], [35.0, 50.0], [15.0, 80.0], [58.0, 79.0]];
        let dst: Vec<[f32; 2]> = src
            .iter()
            .map(|p| {
                [
                    truth[0][0] * p[0] + truth[0][1] * p[1] + truth[0][2],
                    truth[1][0] * p[0] + truth[1][1] * p[1] + truth[1][2],
                ]
            })
            .collect();
        let m = similarity(&src, &dst);
        for r in 0..2 {
            for c in 0..3 {
                assert!((m[r][c] - truth[r][c]).abs() < 1e-3, "{m:?}");
            }
        }
        let back = invert(&invert(&m));
        assert!((back[0][2] - m[0][2]).abs() < 1e-3);
    }

    #[test]
    fn identity_warp_copies_pixels() {
        let img = RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 7]));
        let chip = warp(&img, &[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], 4);
        assert_eq!(chip.get_pixel(3, 2).0, [30, 20, 7]);
    }
}
