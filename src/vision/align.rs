//! 5-point alignment: a 4-DoF similarity transform (rotation, uniform scale, translation)
//! fitted by least squares from the detected landmarks to the embedder's template, then a
//! bilinear warp to the square chip the embedder expects.

use image::RgbImage;

use crate::vision::simd;

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

/// Fixed-point positions and steps are clamped to about +-2^30 (1M pixels, the reach of
/// OpenCV's own fixed point): a row start (plus `ROUND_DELTA`) plus a step then never
/// overflows i32, whatever the transform (a degenerate fit can map the chip millions of pixels
/// away), and a clamped position still lies outside the frame, so it samples black as the
/// exact one would.
const FAR: f64 = ((1 << 30) - 64) as f64;

/// A position or step in 1/1024 pixels, rounded and clamped to [`FAR`].
fn fixed(v: f64) -> i32 {
    v.round().clamp(-FAR, FAR) as i32
}

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
    warp_with(img, m, size, simd::avx2())
}

/// Fixed-point source position of a chip pixel: whole pixel (x, y) and the index of its 1/32
/// sub-pixel position in the weight table.
#[inline(always)]
fn at(x0: i32, y0: i32, ad: i32, bd: i32) -> (i32, i32, usize) {
    let (xs, ys) = ((x0 + ad) >> (AB_BITS - INTER_BITS), (y0 + bd) >> (AB_BITS - INTER_BITS));
    (xs >> INTER_BITS, ys >> INTER_BITS, (ys as usize & (INTER_TAB - 1)) * INTER_TAB + (xs as usize & (INTER_TAB - 1)))
}

/// One chip row whose source walk is a straight line: `x0`, `y0` start it, `adelta` and
/// `bdelta` step along it.
struct Row<'a> {
    x0: i32,
    y0: i32,
    adelta: &'a [i32],
    bdelta: &'a [i32],
}

fn warp_with(img: &RgbImage, m: &Affine, size: u32, vector: bool) -> RgbImage {
    // Walk the source in 1/1024 pixel steps along each chip row.
    let inverse = invert(m);
    if inverse.iter().flatten().any(|v| !v.is_finite()) {
        // No position at all (landmarks at infinity): nothing of the frame is in the chip.
        return RgbImage::new(size, size);
    }
    let [[ia, ib, ic], [id, ie, if_]] = inverse;
    let (w, h) = (img.width() as i32, img.height() as i32);
    let src = img.as_raw();
    let stride = w as usize * 3;
    let n = size as usize;
    let tab = weights();
    let adelta: Vec<i32> = (0..n).map(|x| fixed(ia * x as f64 * AB_SCALE)).collect();
    let bdelta: Vec<i32> = (0..n).map(|x| fixed(id * x as f64 * AB_SCALE)).collect();
    let mut out = RgbImage::new(size, size);
    let inside = |ix: i32, iy: i32| ix >= 0 && iy >= 0 && ix + 1 < w && iy + 1 < h;
    let row_at = |v: usize| Row {
        x0: fixed((ib * v as f64 + ic) * AB_SCALE) + ROUND_DELTA,
        y0: fixed((ie * v as f64 + if_) * AB_SCALE) + ROUND_DELTA,
        adelta: &adelta,
        bdelta: &bdelta,
    };
    // Chip pixels per 64-byte source line along a row (at least one).
    let step = (64.0 / (3.0 * ia.hypot(id))).clamp(1.0, 64.0) as usize;
    for v in 0..PREFETCH_ROWS.min(n) {
        prefetch_row(src, w, h, &row_at(v), step);
    }
    for (v, out_row) in out.as_mut().chunks_exact_mut(n * 3).enumerate() {
        if v + PREFETCH_ROWS < n {
            prefetch_row(src, w, h, &row_at(v + PREFETCH_ROWS), step);
        }
        let row = row_at(v);
        // The source walk along a row is a straight line: if both ends are inside the frame,
        // every pixel between is too, and the row takes a loop without border checks.
        let (fx, fy, _) = at(row.x0, row.y0, adelta[0], bdelta[0]);
        let (lx, ly, _) = at(row.x0, row.y0, adelta[n - 1], bdelta[n - 1]);
        if !(inside(fx, fy) && inside(lx, ly)) {
            row_bordered(src, w, h, &row, tab, out_row);
            continue;
        }
        #[cfg(target_arch = "x86_64")]
        if vector {
            // SAFETY: AVX2 is present (checked by the caller); every pixel of the row and the
            // one below it is inside `src`, and the function bounds-checks its 8-byte loads.
            unsafe { row_inside_avx2(src, stride, &row, tab, out_row) };
            continue;
        }
        let _ = vector;
        row_inside(src, stride, &row, tab, out_row);
    }
    out
}

/// How many chip rows ahead the source is prefetched. By the time faces are aligned the
/// detector's activations have evicted the frame from the cache, and a chip row walks a
/// slanted line across source rows that the hardware prefetcher does not predict.
const PREFETCH_ROWS: usize = 4;

/// Asks the cache for the source pixels (both rows of each 2x2 block) that `row` will read,
/// one address every `step` chip pixels. Only addresses inside the frame are touched.
fn prefetch_row(src: &[u8], w: i32, h: i32, row: &Row, step: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        if w <= 0 || h <= 0 {
            return;
        }
        let stride = w as usize * 3;
        let last = row.adelta.len().saturating_sub(1);
        for x in (0..row.adelta.len()).step_by(step).chain(std::iter::once(last)) {
            let (ix, iy, _) = at(row.x0, row.y0, row.adelta[x], row.bdelta[x]);
            let (ix, iy) = (ix.clamp(0, w - 1) as usize, iy.clamp(0, h - 1) as usize);
            let i = iy * stride + ix * 3;
            for off in [i, i + stride] {
                if let Some(p) = src.get(off) {
                    // SAFETY: `p` points into `src`; a prefetch reads nothing architecturally.
                    unsafe { _mm_prefetch::<_MM_HINT_T0>((p as *const u8).cast()) };
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (src, w, h, row, step);
}

/// A row that lies inside the frame, without border checks.
fn row_inside(src: &[u8], stride: usize, row: &Row, tab: &[[i32; 4]], out: &mut [u8]) {
    for ((px, &ad), &bd) in out.chunks_exact_mut(3).zip(row.adelta).zip(row.bdelta) {
        let (ix, iy, t) = at(row.x0, row.y0, ad, bd);
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
}

/// The same arithmetic as [`row_inside`] with one pixel's three channels and both source
/// columns in the eight 32-bit lanes of an AVX2 register: two loads, two widenings and two
/// multiplies per pixel instead of twelve scalar multiplies. Integer arithmetic, so the
/// result is bit-identical (tested).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_inside_avx2(src: &[u8], stride: usize, row: &Row, tab: &[[i32; 4]], out: &mut [u8]) {
    use std::arch::x86_64::*;
    // Lanes 0-2: the left source pixel's R, G, B; lanes 3-5: the right one's (6, 7 unused).
    let top_w = _mm256_setr_epi32(0, 0, 0, 1, 1, 1, 1, 1);
    let bottom_w = _mm256_setr_epi32(2, 2, 2, 3, 3, 3, 3, 3);
    let fold = _mm256_setr_epi32(3, 4, 5, 3, 4, 5, 3, 4);
    let half = _mm256_set1_epi32(1 << (COEF_BITS - 1));
    for ((px, &ad), &bd) in out.chunks_exact_mut(3).zip(row.adelta).zip(row.bdelta) {
        let (ix, iy, t) = at(row.x0, row.y0, ad, bd);
        let i = iy as usize * stride + ix as usize * 3;
        // The 8-byte loads read two bytes past the 2x2 block; at the frame's last pixels that
        // would pass its end, so those take the scalar arithmetic.
        if i + stride + 8 > src.len() {
            let one = Row { x0: row.x0, y0: row.y0, adelta: &[ad], bdelta: &[bd] };
            row_inside(src, stride, &one, tab, px);
            continue;
        }
        // SAFETY: a weight entry is 16 bytes; i + stride + 8 <= src.len() was checked above.
        let (wt, top, bottom) = unsafe {
            (
                _mm_loadu_si128(tab[t].as_ptr().cast()),
                _mm_loadl_epi64(src.as_ptr().add(i).cast()),
                _mm_loadl_epi64(src.as_ptr().add(i + stride).cast()),
            )
        };
        let wt = _mm256_zextsi128_si256(wt);
        let (top, bottom) = (_mm256_cvtepu8_epi32(top), _mm256_cvtepu8_epi32(bottom));
        let sum = _mm256_add_epi32(
            _mm256_mullo_epi32(top, _mm256_permutevar8x32_epi32(wt, top_w)),
            _mm256_mullo_epi32(bottom, _mm256_permutevar8x32_epi32(wt, bottom_w)),
        );
        let v = _mm256_add_epi32(sum, _mm256_permutevar8x32_epi32(sum, fold));
        let v = _mm256_srai_epi32::<COEF_BITS>(_mm256_add_epi32(v, half));
        let v = _mm256_castsi256_si128(v);
        let bytes = _mm_cvtsi128_si32(_mm_packus_epi16(_mm_packus_epi32(v, v), v)).to_le_bytes();
        px.copy_from_slice(&bytes[..3]);
    }
}

/// A row that leaves the frame: pixels outside are black.
fn row_bordered(src: &[u8], w: i32, h: i32, row: &Row, tab: &[[i32; 4]], out: &mut [u8]) {
    let stride = w as usize * 3;
    let pixel = |x: i32, y: i32, ch: usize| -> i32 {
        if x < 0 || y < 0 || x >= w || y >= h { 0 } else { i32::from(src[y as usize * stride + x as usize * 3 + ch]) }
    };
    for ((px, &ad), &bd) in out.chunks_exact_mut(3).zip(row.adelta).zip(row.bdelta) {
        let (ix, iy, t) = at(row.x0, row.y0, ad, bd);
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
    fn simd_rows_match_scalar_rows_exactly() {
        if !simd::avx2() {
            // Said, not silently passed: there is no vector path here to compare.
            eprintln!("simd_rows_match_scalar_rows_exactly: SKIPPED, this CPU lacks AVX2");
            return;
        }
        // Textured frame; rotated, scaled and shifted transforms, some leaving the frame.
        let img =
            RgbImage::from_fn(301, 257, |x, y| image::Rgb([(x * 13 + y * 7) as u8, (x * y) as u8, (x ^ y) as u8]));
        for (k, (scale, angle, tx, ty)) in [
            (1.0f32, 0.0f32, 0.0f32, 0.0f32),
            (0.7, 0.3, -40.0, -30.0),
            (1.9, -0.8, 60.0, 20.0),
            (0.45, 2.5, 90.0, 140.0),
        ]
        .into_iter()
        .enumerate()
        {
            let (c, s) = (scale * angle.cos(), scale * angle.sin());
            let m: Affine = [[c, -s, tx], [s, c, ty]];
            let (a, b) = (warp_with(&img, &m, 150, false), warp_with(&img, &m, 150, true));
            assert!(a.as_raw() == b.as_raw(), "transform {k} differs");
        }
        // The frame's last pixels (the 8-byte loads would pass the end there).
        let m: Affine = [[1.0, 0.0, -(301.0 - 151.0)], [0.0, 1.0, -(257.0 - 151.0)]];
        assert!(warp_with(&img, &m, 150, false).as_raw() == warp_with(&img, &m, 150, true).as_raw());
    }

    #[test]
    fn identity_warp_copies_pixels() {
        let img = RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 7]));
        let chip = warp(&img, &[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], 4);
        assert_eq!(chip.get_pixel(3, 2).0, [30, 20, 7]);
    }

    #[test]
    fn transforms_far_off_or_at_infinity_give_black_chips() {
        let img = RgbImage::from_pixel(64, 64, image::Rgb([200, 200, 200]));
        // Chip rows that start about 2^21 px right of the frame and step 10^7 px per pixel:
        // in 1/1024 px the start sits just below i32::MAX and every step saturates, so an
        // unclamped start + step overflowed (a panic with overflow checks) and wrapped to just
        // left of the frame, which blended column 0 into the chip.
        let a = 1e-7f32;
        let ic = f64::from((1u32 << 31) - 512 - 16) / AB_SCALE;
        let c = (-ic * f64::from(a)) as f32;
        let far = warp(&img, &[[a, 0.0, c], [0.0, 1.0, 0.0]], 32);
        assert!(far.as_raw().iter().all(|&v| v == 0), "a chip 2M px off the frame must be black");
        // Landmarks at infinity: a NaN transform (its prefetch step was 0, a panic).
        let m = similarity(&[[f32::INFINITY, 0.0], [1.0, 2.0]], &[[0.0, 0.0], [1.0, 1.0]]);
        assert!(m.iter().flatten().any(|v| !v.is_finite()));
        assert!(warp(&img, &m, 16).as_raw().iter().all(|&v| v == 0));
        // The largest positions and steps stay in range: sums of two never overflow.
        for v in [f64::MAX, -f64::MAX, 1e300, -1e300, 3e9, -3e9] {
            let (x0, ad) = (fixed(v) + ROUND_DELTA, fixed(v));
            let (ix, iy, _) = at(x0, x0, ad, ad);
            assert!(ix.unsigned_abs() >= 1 << 20 && iy.unsigned_abs() >= 1 << 20, "{v}: {ix}, {iy}");
        }
    }

    #[test]
    fn chips_off_or_without_a_frame_are_black() {
        // The walk (and its prefetching) leaves the frame entirely, or there is no frame.
        let img = RgbImage::from_pixel(8, 8, image::Rgb([200, 200, 200]));
        let far = warp(&img, &[[1.0, 0.0, -5000.0], [0.0, 1.0, 9000.0]], 16);
        assert!(far.as_raw().iter().all(|&v| v == 0));
        let empty = warp(&RgbImage::new(0, 0), &[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], 4);
        assert!(empty.as_raw().iter().all(|&v| v == 0));
    }
}
