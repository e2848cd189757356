//! JPEG -> packed RGB with libjpeg-turbo, the decoder OpenCV uses, so pixels (and detections)
//! agree with the reference pipeline exactly.
//!
//! A large baseline JPEG can be decoded as two horizontal strips on two threads. Entropy
//! decoding is sequential, so the lower strip still has to entropy-decode (without the inverse
//! DCT or colour conversion) every row above it, while the upper strip stops at its last row.
//! The upper strip therefore takes the larger share of rows. On this project's 2 MP crowd photos
//! two strips take 0.75-0.85 of one whole decode, with identical pixels (`tests` below).

use std::ffi::{CStr, c_int};
use std::mem::MaybeUninit;

use image::RgbImage;
use turbojpeg_sys as tj;

use crate::error::{Error, Result};

/// Below this many pixels a second thread costs more than it saves.
const PARALLEL_PIXELS: u64 = 500_000;

/// Share of the rows the upper strip decodes (the lower one also entropy-decodes the upper
/// rows, which is about 60 % of a whole decode here, so the split sits past the middle).
const UPPER_SHARE: f64 = 0.65;

/// Decodes a JPEG to RGB; grey JPEGs are expanded. With `threads >= 2`, large baseline images
/// are decoded as two strips in parallel. A truncated or corrupt stream is an error, not a
/// half-grey picture.
pub fn decode(bytes: &[u8], threads: usize) -> Result<RgbImage> {
    // This handle's header decides; it then decodes the whole image, or the lower strip.
    let (mut d, header) = Decompressor::open(bytes)?;
    let (w, h) = (header.width, header.height);
    let len =
        w.checked_mul(h).and_then(|p| p.checked_mul(3)).ok_or_else(|| Error::CorruptImage("JPEG too large".into()))?;
    // Not zero-filled first: the decoder writes every byte, and clearing 6 MB of memory that
    // is out of the cache cost about as much as a tenth of the decode.
    let mut pixels: Vec<u8> = Vec::with_capacity(len);
    let out = &mut pixels.spare_capacity_mut()[..len];
    if threads >= 2 && strips_pay_off(&header) {
        decode_strips(d, &header, bytes, out)?;
    } else {
        d.decode_rows(&header, bytes, out, 0, h)?;
    }
    // SAFETY: the decodes above succeeded, and a successful decode writes every byte of the
    // rows it is given (full width, pitch = width x 3); together they were given all `len`.
    unsafe { pixels.set_len(len) };
    RgbImage::from_raw(w as u32, h as u32, pixels).ok_or_else(|| Error::CorruptImage("short JPEG buffer".into()))
}

/// Whether two strips beat one decode: not for small images, nor for progressive or lossless
/// ones (those decode every scan up front, so strips would not save anything).
fn strips_pay_off(header: &Header) -> bool {
    !header.progressive && !header.lossless && (header.width as u64) * (header.height as u64) >= PARALLEL_PIXELS
}

/// The upper strip on a helper thread (its own handle), the lower one here with `lower_d`.
fn decode_strips(mut lower_d: Decompressor, header: &Header, bytes: &[u8], out: &mut [MaybeUninit<u8>]) -> Result<()> {
    let (w, h) = (header.width, header.height);
    let mid = ((h as f64 * UPPER_SHARE) as usize).clamp(1, h - 1);
    let (upper, lower) = out.split_at_mut(mid * w * 3);
    let (a, b) = std::thread::scope(|s| {
        let helper = s.spawn(|| {
            let (mut d, own) = Decompressor::open(bytes)?;
            d.decode_rows(&own, bytes, upper, 0, mid)
        });
        let b = lower_d.decode_rows(header, bytes, lower, mid, h - mid);
        (helper.join().unwrap_or_else(|e| std::panic::resume_unwind(e)), b)
    });
    a.and(b)
}

struct Header {
    width: usize,
    height: usize,
    progressive: bool,
    lossless: bool,
}

/// An owned TurboJPEG decompression handle.
struct Decompressor(tj::tjhandle);

impl Decompressor {
    /// A handle with `bytes`' header read (cropping needs it), and that header.
    fn open(bytes: &[u8]) -> Result<(Self, Header)> {
        // SAFETY: plain constructor; a null handle is checked below.
        let h = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as c_int) };
        if h.is_null() {
            return Err(Error::Runtime("libjpeg-turbo could not create a decompressor".into()));
        }
        let mut d = Self(h);
        let header = d.header(bytes)?;
        Ok((d, header))
    }

    /// Decodes rows `y .. y + rows` (full width) of the image whose `header` this handle read
    /// into `out`, which must hold exactly those rows; on success every byte of `out` is written.
    fn decode_rows(
        &mut self,
        header: &Header,
        bytes: &[u8],
        out: &mut [MaybeUninit<u8>],
        y: usize,
        rows: usize,
    ) -> Result<()> {
        let pitch = header.width * 3;
        if y + rows > header.height || out.len() != rows * pitch {
            return Err(Error::CorruptImage("JPEG header changed between reads".into()));
        }
        let to_int = |v: usize| c_int::try_from(v).map_err(|_| Error::CorruptImage("JPEG too large".into()));
        // Rows 0..height are no crop at all to TurboJPEG: the whole image needs no case of its own.
        let region = tj::tjregion { x: 0, y: to_int(y)?, w: 0, h: to_int(rows)? };
        // SAFETY: the handle is valid and its header has been read, as cropping requires.
        self.check(unsafe { tj::tj3SetCroppingRegion(self.0, region) })?;
        // SAFETY: `out` holds `rows` rows of `pitch` bytes (checked above against this handle's
        // header), exactly what a crop of `rows` full-width rows writes; `bytes` outlives the call.
        self.check(unsafe {
            tj::tj3Decompress8(
                self.0,
                bytes.as_ptr(),
                bytes.len() as tj::size_t,
                out.as_mut_ptr().cast::<u8>(),
                to_int(pitch)?,
                tj::TJPF_TJPF_RGB as c_int,
            )
        })
    }

    fn header(&mut self, bytes: &[u8]) -> Result<Header> {
        // SAFETY: valid handle; the pointer and length describe `bytes`.
        self.check(unsafe { tj::tj3DecompressHeader(self.0, bytes.as_ptr(), bytes.len() as tj::size_t) })?;
        // SAFETY: valid handle; reading parameters has no preconditions.
        let get = |p: tj::TJPARAM| unsafe { tj::tj3Get(self.0, p as c_int) };
        let dim = |v: c_int| usize::try_from(v).ok().filter(|&v| v > 0);
        let (Some(width), Some(height)) =
            (dim(get(tj::TJPARAM_TJPARAM_JPEGWIDTH)), dim(get(tj::TJPARAM_TJPARAM_JPEGHEIGHT)))
        else {
            return Err(Error::CorruptImage("JPEG has no valid size".into()));
        };
        Ok(Header {
            width,
            height,
            progressive: get(tj::TJPARAM_TJPARAM_PROGRESSIVE) == 1,
            lossless: get(tj::TJPARAM_TJPARAM_LOSSLESS) == 1,
        })
    }

    /// A TurboJPEG return code as a result (warnings count as errors, as in `turbojpeg`).
    fn check(&self, rc: c_int) -> Result<()> {
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: valid handle; the message is a NUL-terminated string owned by the handle.
        let msg = unsafe { CStr::from_ptr(tj::tj3GetErrorStr(self.0)) };
        Err(Error::CorruptImage(msg.to_string_lossy().into_owned()))
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        // A smooth gradient with some texture, so every MCU row has different content.
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x ^ y) % 256) as u8])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
        out
    }

    fn uses_strips(bytes: &[u8]) -> bool {
        strips_pay_off(&Decompressor::open(bytes).unwrap().1)
    }

    #[test]
    fn strips_give_the_same_pixels_as_one_decode() {
        // Odd height: the split row is not on an MCU boundary.
        let bytes = jpeg(1000, 777);
        assert!(uses_strips(&bytes), "large baseline JPEG qualifies");
        let whole = decode(&bytes, 1).unwrap();
        let strips = decode(&bytes, 2).unwrap();
        assert_eq!(whole.dimensions(), strips.dimensions());
        assert!(whole.as_raw() == strips.as_raw(), "pixels differ");
        // And both agree with the `turbojpeg` crate's whole-image decode.
        let reference = turbojpeg::decompress(&bytes, turbojpeg::PixelFormat::RGB).unwrap();
        assert!(reference.pixels == *whole.as_raw(), "pixels differ from turbojpeg::decompress");
    }

    #[test]
    fn small_images_are_decoded_whole() {
        assert!(!uses_strips(&jpeg(200, 150)));
        assert_eq!(decode(&jpeg(200, 150), 2).unwrap().dimensions(), (200, 150));
    }

    #[test]
    fn truncated_large_jpeg_is_an_error_in_strips_too() {
        let bytes = jpeg(1000, 777);
        let cut = &bytes[..bytes.len() * 2 / 3];
        assert!(matches!(decode(cut, 2), Err(Error::CorruptImage(_))));
        assert!(matches!(decode(cut, 1), Err(Error::CorruptImage(_))));
    }

    #[test]
    fn grey_jpegs_become_rgb() {
        let grey = image::GrayImage::from_fn(64, 48, |x, y| image::Luma([((x * 4 + y) % 256) as u8]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95).encode_image(&grey).unwrap();
        let img = decode(&bytes, 2).unwrap();
        assert_eq!(img.dimensions(), (64, 48));
        assert!(img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
        let diff = img.pixels().zip(grey.pixels()).map(|(a, b)| i32::from(a[0]).abs_diff(i32::from(b[0]))).max();
        assert!(diff.unwrap_or(0) <= 8, "grey levels kept (max difference {diff:?})");
    }
}
