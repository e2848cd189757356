//! Packed 8-bit RGB pixels -> the planar float input the models take: per channel
//! `(v - mean) * scale`, in the model's channel order. Both models' inputs are filled here.
//!
//! With AVX2 eight pixels go per step (two byte shuffles per channel, widen, convert). The
//! arithmetic is the scalar loop's, subtraction then multiplication in f32 per lane, so the
//! result is bit-identical (tested). The scalar loop took about 1.3 ns a pixel, so a 2 MP frame
//! cost 2.7 ms on one core; the vector one is limited by memory bandwidth instead.

use crate::manifest::ChannelOrder;

/// The first `len` elements of a model's input buffer, which grows as needed and never
/// shrinks: a frame or batch after a smaller one does not clear (zero-fill) memory that is
/// overwritten next. Callers write every element they use.
pub fn front(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// How one model wants its input: channel order and per-channel mean and scale (1 / std).
#[derive(Debug, Clone, Copy)]
pub struct Normalize {
    /// Source channel (0 = R) for each plane.
    map: [usize; 3],
    mean: [f32; 3],
    scale: [f32; 3],
}

impl Normalize {
    /// Mean and std in the model's channel order, as the manifest gives them.
    pub fn new(order: ChannelOrder, mean: [f32; 3], std: [f32; 3]) -> Self {
        let map = match order {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        Self { map, mean, scale: std.map(|v| 1.0 / v) }
    }

    /// Pixel values as they are (0..255), only reordered.
    pub fn raw(order: ChannelOrder) -> Self {
        Self::new(order, [0.0; 3], [1.0; 3])
    }

    /// Writes the first `planes[k].len()` pixels of `src` (packed RGB) into the three planes;
    /// the planes must have equal lengths and `src` must hold that many pixels.
    pub fn row(&self, src: &[u8], planes: [&mut [f32]; 3]) {
        let n = planes[0].len();
        assert!(planes.iter().all(|p| p.len() == n) && src.len() >= 3 * n, "planar row: mismatched lengths");
        #[cfg(target_arch = "x86_64")]
        if crate::vision::simd::avx2() {
            // SAFETY: AVX2 is present; lengths were checked above.
            unsafe { self.row_avx2(src, planes) };
            return;
        }
        self.row_scalar(src, planes, 0);
    }

    /// Pixels `from..` of the row, one at a time.
    fn row_scalar(&self, src: &[u8], planes: [&mut [f32]; 3], from: usize) {
        let [a, b, c] = planes;
        let (m, s) = (self.mean, self.scale);
        for (((px, xa), xb), xc) in
            src[3 * from..].chunks_exact(3).zip(&mut a[from..]).zip(&mut b[from..]).zip(&mut c[from..])
        {
            *xa = (f32::from(px[self.map[0]]) - m[0]) * s[0];
            *xb = (f32::from(px[self.map[1]]) - m[1]) * s[1];
            *xc = (f32::from(px[self.map[2]]) - m[2]) * s[2];
        }
    }

    /// Eight pixels (24 bytes) per step: the bytes of one channel are gathered from two
    /// overlapping 16-byte loads (offsets 0 and 8) with a shuffle each, then widened to f32.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn row_avx2(&self, src: &[u8], planes: [&mut [f32]; 3]) {
        use std::arch::x86_64::*;
        let n = planes[0].len();
        // Byte 3i + ch of the 24 comes from the first load if it is below 16, else from the second.
        let mask = |ch: usize, second: bool| {
            let mut m = [-1i8; 16]; // -1: zero that lane, the other load fills it
            for (i, lane) in m.iter_mut().take(8).enumerate() {
                let p = 3 * i + ch;
                if (p >= 16) == second {
                    *lane = if second { (p - 8) as i8 } else { p as i8 };
                }
            }
            // SAFETY: reads 16 bytes of a 16-byte array.
            unsafe { _mm_loadu_si128(m.as_ptr().cast()) }
        };
        let first = self.map.map(|ch| mask(ch, false));
        let second = self.map.map(|ch| mask(ch, true));
        let mean = self.mean.map(|m| _mm256_set1_ps(m));
        let scale = self.scale.map(|s| _mm256_set1_ps(s));
        let [a, b, c] = planes;
        let out = [a.as_mut_ptr(), b.as_mut_ptr(), c.as_mut_ptr()];
        let mut x = 0;
        while x + 8 <= n {
            // SAFETY: pixels x..x+8 are bytes 3x..3x+24 of `src` (src.len() >= 3n), and
            // elements x..x+8 of each plane (len n).
            unsafe {
                let p = src.as_ptr().add(3 * x);
                let (lo, hi) = (_mm_loadu_si128(p.cast()), _mm_loadu_si128(p.add(8).cast()));
                for k in 0..3 {
                    let bytes = _mm_or_si128(_mm_shuffle_epi8(lo, first[k]), _mm_shuffle_epi8(hi, second[k]));
                    let v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
                    _mm256_storeu_ps(out[k].add(x), _mm256_mul_ps(_mm256_sub_ps(v, mean[k]), scale[k]));
                }
            }
            x += 8;
        }
        self.row_scalar(src, [a, b, c], x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(norm: &Normalize, src: &[u8], n: usize) -> Vec<f32> {
        let mut out = vec![0.0; 3 * n];
        let (a, rest) = out.split_at_mut(n);
        let (b, c) = rest.split_at_mut(n);
        norm.row_scalar(src, [a, b, c], 0);
        out
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vector_rows_equal_scalar_rows_bit_for_bit() {
        if !crate::vision::simd::avx2() {
            // Said, not passed by comparing the scalar path with itself.
            eprintln!("vector_rows_equal_scalar_rows_bit_for_bit: SKIPPED, this CPU lacks AVX2");
            return;
        }
        let src: Vec<u8> = (0..3 * 203).map(|i| (i * 37 % 256) as u8).collect();
        let norms = [
            Normalize::raw(ChannelOrder::Bgr),
            Normalize::raw(ChannelOrder::Rgb),
            Normalize::new(ChannelOrder::Rgb, [122.8, 116.7, 104.1], [58.4, 57.1, 57.4]),
        ];
        for norm in norms {
            // Lengths around the 8-pixel step, and a source longer than the row.
            for n in [0, 1, 7, 8, 9, 16, 23, 200] {
                let mut out = vec![f32::NAN; 3 * n];
                let (a, rest) = out.split_at_mut(n);
                let (b, c) = rest.split_at_mut(n);
                // SAFETY: AVX2 is present (checked above); src holds 3n bytes, the planes n each.
                unsafe { norm.row_avx2(&src, [a, b, c]) };
                let want = scalar(&norm, &src, n);
                assert!(out.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()), "{norm:?} n={n}");
            }
        }
    }

    #[test]
    fn raw_bgr_swaps_channels() {
        let mut out = [0.0f32; 3];
        let (a, rest) = out.split_at_mut(1);
        let (b, c) = rest.split_at_mut(1);
        Normalize::raw(ChannelOrder::Bgr).row(&[1, 2, 3], [a, b, c]);
        assert_eq!(out, [3.0, 2.0, 1.0]);
    }
}
