//! Area-average downscaling for the detector: each output pixel is the mean of the source
//! pixels it covers (partly covered ones weighted by their share), separable and in fixed point.
//! An area average cannot alias, so a small face keeps its shape; and it is cheap: a 1080p frame
//! to 1280x720 is about 2 source taps per output in each direction, where the `image` crate's
//! triangle filter took longer than the detector saved.

use image::RgbImage;

/// Weights sum to this in each direction.
const ONE: u32 = 1 << 14;

/// Which source samples each output sample averages: `taps` per output, from `start`, with
/// their weights (zero-padded, so every output has the same count).
struct Taps {
    taps: usize,
    start: Vec<usize>,
    weights: Vec<u32>,
}

impl Taps {
    /// `src` samples down to `dst` (`1 <= dst <= src`).
    fn new(src: usize, dst: usize) -> Self {
        let scale = src as f64 / dst as f64;
        let taps = (scale.ceil() as usize + 1).min(src);
        let (mut start, mut weights) = (Vec::with_capacity(dst), vec![0u32; dst * taps]);
        for i in 0..dst {
            let (lo, hi) = (i as f64 * scale, ((i + 1) as f64 * scale).min(src as f64));
            let first = (lo.floor() as usize).min(src - 1);
            // Near the end the window is shifted left so that all `taps` samples exist.
            let s = first.min(src - taps);
            let w = &mut weights[i * taps..(i + 1) * taps];
            let mut sum = 0u32;
            for (k, wk) in w.iter_mut().enumerate() {
                let j = (s + k) as f64;
                let cover = (hi.min(j + 1.0) - lo.max(j)).max(0.0);
                *wk = (cover / scale * ONE as f64).round() as u32;
                sum += *wk;
            }
            // Rounding may leave the sum a little off: the largest weight takes the difference.
            let big = (0..taps).max_by_key(|&k| w[k]).unwrap_or(0);
            w[big] = (w[big] + ONE).saturating_sub(sum);
            start.push(s);
        }
        Self { taps, start, weights }
    }
}

/// `img` scaled to `width` x `height`, each at most the source's (and at least 1). Large
/// frames are split between two threads by output rows (the detector's cores are idle meanwhile,
/// as in its planar fill).
pub fn shrink(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    if sw == 0 || sh == 0 {
        return RgbImage::new(0, 0);
    }
    let (dw, dh) = ((width as usize).clamp(1, sw), (height as usize).clamp(1, sh));
    let (hx, vy) = (Taps::new(sw, dw), Taps::new(sh, dh));
    let mut out = vec![0u8; dw * dh * 3];
    const PARALLEL_PIXELS: usize = 1 << 18;
    if dw * dh < PARALLEL_PIXELS || dh < 2 {
        rows(img.as_raw(), sw, &hx, &vy, 0, &mut out);
    } else {
        let (top, bottom) = out.split_at_mut(dh / 2 * dw * 3);
        std::thread::scope(|s| {
            s.spawn(|| rows(img.as_raw(), sw, &hx, &vy, 0, top));
            rows(img.as_raw(), sw, &hx, &vy, dh / 2, bottom);
        });
    }
    RgbImage::from_raw(dw as u32, dh as u32, out).unwrap_or_default()
}

/// Output rows from `first` on, into `out` (whole rows). Vertical first: each output row is
/// the weighted sum of a few whole source rows (contiguous, so it vectorises), kept with 6
/// fractional bits, then averaged across.
fn rows(src: &[u8], sw: usize, hx: &Taps, vy: &Taps, first: usize, out: &mut [u8]) {
    let dw = hx.start.len();
    let mut acc = vec![0u32; sw * 3];
    let mut column = vec![0u16; sw * 3];
    for (i, out_row) in out.chunks_exact_mut(dw * 3).enumerate() {
        let y = first + i;
        acc.iter_mut().for_each(|a| *a = 0);
        let s = vy.start[y];
        for (t, &wy) in vy.weights[y * vy.taps..(y + 1) * vy.taps].iter().enumerate() {
            if wy == 0 {
                continue;
            }
            let j = s + t;
            for (a, &p) in acc.iter_mut().zip(&src[j * sw * 3..(j + 1) * sw * 3]) {
                *a += wy * u32::from(p);
            }
        }
        // 14 fractional bits of weight down to 6: at most 255 << 6.
        for (c, &a) in column.iter_mut().zip(&acc) {
            *c = ((a + (1 << 7)) >> 8) as u16;
        }
        horizontal(&column, hx, out_row);
    }
}

/// One vertically averaged row (RGB, 6 fractional bits) across to `out` (RGB).
fn horizontal(src: &[u16], hx: &Taps, out: &mut [u8]) {
    let taps = hx.taps;
    for ((o, &s), w) in out.chunks_exact_mut(3).zip(&hx.start).zip(hx.weights.chunks_exact(taps)) {
        let px = &src[s * 3..(s + taps) * 3];
        let (mut r, mut g, mut b) = (0u32, 0u32, 0u32);
        for (p, &wk) in px.chunks_exact(3).zip(w) {
            r += wk * u32::from(p[0]);
            g += wk * u32::from(p[1]);
            b += wk * u32::from(p[2]);
        }
        // 6 + 14 fractional bits; the weights sum to one, so the mean is at most 255.
        o[0] = ((r + (1 << 19)) >> 20).min(255) as u8;
        o[1] = ((g + (1 << 19)) >> 20).min(255) as u8;
        o[2] = ((b + (1 << 19)) >> 20).min(255) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x + y) % 256) as u8]))
    }

    #[test]
    fn halving_averages_each_two_by_two_block() {
        let img = pattern(64, 36);
        let small = shrink(&img, 32, 18);
        assert_eq!(small.dimensions(), (32, 18));
        for (x, y, p) in small.enumerate_pixels() {
            for c in 0..3 {
                let sum: u32 = (0..4).map(|k| u32::from(img.get_pixel(2 * x + k % 2, 2 * y + k / 2)[c])).sum();
                let mean = sum as f32 / 4.0;
                assert!((f32::from(p[c]) - mean).abs() <= 0.51, "({x},{y})[{c}]: {} vs {mean}", p[c]);
            }
        }
    }

    #[test]
    fn flat_images_stay_flat_at_any_ratio() {
        for (w, h, nw, nh) in
            [(1920, 1080, 1280, 720), (1919, 1079, 960, 540), (7, 5, 3, 2), (5, 5, 5, 5), (9, 1, 1, 1)]
        {
            let img = RgbImage::from_pixel(w, h, image::Rgb([0, 128, 255]));
            let small = shrink(&img, nw, nh);
            assert_eq!(small.dimensions(), (nw, nh));
            assert!(small.pixels().all(|p| p.0 == [0, 128, 255]), "{w}x{h} -> {nw}x{nh}");
        }
    }

    #[test]
    fn a_non_integer_ratio_keeps_the_mean_and_the_edges() {
        // A vertical edge at x = 600 of 1920 lands at 400 of 1280.
        let img = RgbImage::from_fn(1920, 1080, |x, _| image::Rgb(if x < 600 { [0; 3] } else { [240; 3] }));
        let small = shrink(&img, 1280, 720);
        assert_eq!(small.get_pixel(398, 10)[0], 0);
        assert_eq!(small.get_pixel(401, 10)[0], 240);
        let mean = |i: &RgbImage| i.pixels().map(|p| f64::from(p[0])).sum::<f64>() / i.pixels().len() as f64;
        assert!((mean(&img) - mean(&small)).abs() < 0.2);
    }
}
