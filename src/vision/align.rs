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

/// Inverse of an affine matrix (chip -> frame), in f64 as OpenCV's `warpAffine` computes it.
pub fn invert(m: &Affine) -> [[f64; 3]; 2] {
    let [[a, b, c], [d, e, f]] = m.map(|r| r.map(f64::from));
    let det = a * e - b * d;
    let det = if det.abs() < 1e-12 { 1e-12 } else { det };
    let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
    [[ia, ib, -(ia * c + ib * f)], [id, ie, -(id * c + ie * f)]]
}

/// Sub-pixel positions per pixel (OpenCV's INTER_BITS = 5) and fixed-point scales: the same
/// arithmetic as OpenCV's `warpAffine` with `INTER_LINEAR`, which the reference pipeline uses.
const INTER_BITS: i32 = 5;
const INTER_TAB: usize = 1 << INTER_BITS;
const AB_BITS: i32 = 10;
const AB_SCALE: f64 = (1 << AB_BITS) as f64;
const ROUND_DELTA: i32 = 1 << (AB_BITS - INTER_BITS - 1);
const COEF_BITS: i32 = 15;

/// Bilinear weights for each of the 32x32 sub-pixel positions, scaled to 2^15 and summing to it.
fn weights() -> &'static [[i32; 4]; INTER_TAB * INTER_TAB] {
    static TAB: std::sync::OnceLock<[[i32; 4]; INTER_TAB * INTER_TAB]> = std::sync::OnceLock::new();
    TAB.get_or_init(|| {
        let mut tab = [[0i32; 4]; INTER_TAB * INTER_TAB];
        let scale = (1 << COEF_BITS) as f32;
        for fy in 0..INTER_TAB {
            for fx in 0..INTER_TAB {
                let (ax, ay) = (fx as f32 / INTER_TAB as f32, fy as f32 / INTER_TAB as f32);
                let f = [(1.0 - ax) * (1.0 - ay), ax * (1.0 - ay), (1.0 - ax) * ay, ax * ay];
                let mut w = f.map(|v| (v * scale).round() as i32);
                // Put the rounding error on the largest weight, as OpenCV does.
                let err = (1 << COEF_BITS) - w.iter().sum::<i32>();
                let big = (0..4).max_by(|&a, &b| f[a].total_cmp(&f[b])).unwrap_or(0);
                w[big] += err;
                tab[fy * INTER_TAB + fx] = w;
            }
        }
        tab
    })
}

/// Warps the frame into a `size` x `size` chip with bilinear sampling in fixed point; outside
/// the frame is black (OpenCV's warpAffine default border).
pub fn warp(img: &RgbImage, m: &Affine, size: u32) -> RgbImage {
    // Walk the source in 1/1024 pixel steps along each chip row.
    let [[ia, ib, ic], [id, ie, if_]] = invert(m);
    let (w, h) = (img.width() as i32, img.height() as i32);
    let src = img.as_raw();
    let stride = w as usize * 3;
    let n = size as usize;
    let tab = weights();
    let adelta: Vec<i32> = (0..n).map(|x| (ia * x as f64 * AB_SCALE).round() as i32).collect();
    let bdelta: Vec<i32> = (0..n).map(|x| (id * x as f64 * AB_SCALE).round() as i32).collect();
    let mut out = RgbImage::new(size, size);
    let pixel = |x: i32, y: i32, ch: usize| -> i32 {
        if x < 0 || y < 0 || x >= w || y >= h { 0 } else { i32::from(src[y as usize * stride + x as usize * 3 + ch]) }
    };
    let at = |x0: i32, y0: i32, ad: i32, bd: i32| {
        let (xs, ys) = ((x0 + ad) >> (AB_BITS - INTER_BITS), (y0 + bd) >> (AB_BITS - INTER_BITS));
        (
            xs >> INTER_BITS,
            ys >> INTER_BITS,
            (ys as usize & (INTER_TAB - 1)) * INTER_TAB + (xs as usize & (INTER_TAB - 1)),
        )
    };
    let inside = |ix: i32, iy: i32| ix >= 0 && iy >= 0 && ix + 1 < w && iy + 1 < h;
    for (v, row) in out.as_mut().chunks_exact_mut(n * 3).enumerate() {
        let x0 = ((ib * v as f64 + ic) * AB_SCALE).round() as i32 + ROUND_DELTA;
        let y0 = ((ie * v as f64 + if_) * AB_SCALE).round() as i32 + ROUND_DELTA;
        // The source walk along a row is a straight line: if both ends are inside the frame,
        // every pixel between is too, and the row takes the loop without border checks.
        let (fx, fy, _) = at(x0, y0, adelta[0], bdelta[0]);
        let (lx, ly, _) = at(x0, y0, adelta[n - 1], bdelta[n - 1]);
        let row_inside = inside(fx, fy) && inside(lx, ly);
        let pixels = row.chunks_exact_mut(3).zip(&adelta).zip(&bdelta);
        if row_inside {
            for ((px, &ad), &bd) in pixels {
                let (ix, iy, t) = at(x0, y0, ad, bd);
                let wt = tab[t];
                let i = iy as usize * stride + ix as usize * 3;
                let s = &src[i..i + stride + 6];
                let (top, bottom) = (&s[..6], &s[stride..]);
                for ch in 0..3 {
                    let v = wt[0] * i32::from(top[ch])
                        + wt[1] * i32::from(top[ch + 3])
                        + wt[2] * i32::from(bottom[ch])
                        + wt[3] * i32::from(bottom[ch + 3]);
                    // Non-negative weights summing to 2^15: the result is already in 0..=255.
                    px[ch] = ((v + (1 << (COEF_BITS - 1))) >> COEF_BITS) as u8;
                }
            }
        } else {
            for ((px, &ad), &bd) in pixels {
                let (ix, iy, t) = at(x0, y0, ad, bd);
                let wt = &tab[t];
                for (ch, out) in px.iter_mut().enumerate() {
                    let v = wt[0] * pixel(ix, iy, ch)
                        + wt[1] * pixel(ix + 1, iy, ch)
                        + wt[2] * pixel(ix, iy + 1, ch)
                        + wt[3] * pixel(ix + 1, iy + 1, ch);
                    *out = ((v + (1 << (COEF_BITS - 1))) >> COEF_BITS).clamp(0, 255) as u8;
                }
            }
        }
    }
    out
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
        let back = invert(&invert(&m).map(|r| r.map(|v| v as f32)));
        assert!((back[0][2] as f32 - m[0][2]).abs() < 1e-3);
    }

    #[test]
    fn identity_warp_copies_pixels() {
        let img = RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 7]));
        let chip = warp(&img, &[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], 4);
        assert_eq!(chip.get_pixel(3, 2).0, [30, 20, 7]);
    }
}
