//! The byte budget for frames held in memory: encoded bodies waiting to be decoded, decoded
//! frames in the queues and the models, and their face chips. Each frame reserves what it will
//! really allocate (from its header, before anything is decoded) when it is queued, and gives
//! it back when its analysis is dropped; a frame that does not fit is refused at once (503)
//! instead of making the process grow.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use image::metadata::Orientation;
use image::{ColorType, ImageDecoder, ImageFormat, ImageReader};

/// Bytes reserved by frames, out of a fixed limit.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: u64,
    used: Mutex<u64>,
}

impl MemoryBudget {
    pub fn new(limit_bytes: u64) -> Self {
        Self { inner: Arc::new(Inner { limit: limit_bytes, used: Mutex::new(0) }) }
    }

    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        *self.inner.lock()
    }

    /// Reserves `bytes` if they fit beside what is reserved already; never waits.
    pub fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        let mut used = self.inner.lock();
        let total = used.checked_add(bytes).filter(|&t| t <= self.inner.limit)?;
        *used = total;
        Some(Reservation { budget: self.inner.clone(), bytes })
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        // The guarded value is a plain counter: a panic elsewhere cannot leave it half-written.
        self.used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Bytes held by one frame; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Inner>,
    bytes: u64,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Resizes the reservation: shrinking always succeeds; growing only if the extra bytes fit
    /// (else it is left as it was and `false` is returned).
    pub fn resize(&mut self, bytes: u64) -> bool {
        let mut used = self.budget.lock();
        if bytes <= self.bytes {
            *used -= self.bytes - bytes;
        } else {
            match used.checked_add(bytes - self.bytes).filter(|&t| t <= self.budget.limit) {
                Some(t) => *used = t,
                None => return false,
            }
        }
        self.bytes = bytes;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        *self.budget.lock() -= self.bytes;
    }
}

/// What a frame allocates on its way through the engine, from its header alone.
#[derive(Debug, Clone)]
pub struct FrameCost {
    pub max_pixels: u64,
    /// The detector's downscale: frames whose longer side exceeds this are copied smaller.
    pub detect_max_side: u32,
    pub max_faces: usize,
    /// One face's aligned chip, embedding and bookkeeping.
    pub face_bytes: u64,
}

/// One face's share: its `side` x `side` RGB chip, its embedding of `dims` floats, and the
/// face's record.
pub fn face_bytes(side: u32, dims: usize) -> u64 {
    u64::from(side).pow(2) * 3 + dims as u64 * 4 + 512
}

/// Per frame, beyond its pixels: detections (up to the detector's `top_k`), the report, and
/// the decoders' own working sets.
const FRAME_OVERHEAD: u64 = 1 << 20;

impl FrameCost {
    /// Bytes to reserve when `bytes` is queued: the body itself until it is decoded, plus the
    /// larger of the decoder's peak and what the decoded frame holds afterwards. A header the
    /// `image` crate cannot read, or one over `max_pixels`, reserves only the body: the decoder
    /// refuses such a frame (with the error its caller reports) before it allocates pixels.
    pub fn admit(&self, bytes: &[u8]) -> u64 {
        let body = bytes.len() as u64 + FRAME_OVERHEAD;
        match header(bytes) {
            Some((w, h, peak_per_px)) if u64::from(w) * u64::from(h) <= self.max_pixels => {
                let pixels = u64::from(w) * u64::from(h);
                body.saturating_add(pixels.saturating_mul(peak_per_px).max(self.held(w, h)))
            }
            _ => body,
        }
    }

    /// Bytes a decoded `width` x `height` frame holds until its analysis is dropped: its
    /// pixels, the detector's downscaled copy and the chips of at most `max_faces` faces.
    pub fn held(&self, width: u32, height: u32) -> u64 {
        let (w, h) = (u64::from(width), u64::from(height));
        let longest = w.max(h);
        let side = u64::from(self.detect_max_side);
        let copy = if side > 0 && longest > side {
            // Rounded up, with a row and a column to spare for the detector's rounding (never
            // more than the side itself: the detector only shrinks).
            let scaled = |v: u64| ((v * side).div_ceil(longest) + 1).min(v);
            let (nw, nh) = (scaled(w), scaled(h));
            // `image`'s resize first samples the rows into an RGBA f32 buffer of the source's
            // width (16 bytes a pixel: the largest working set of a frame), then makes the copy.
            w * nh * 16 + nw * nh * 3
        } else {
            0
        };
        (w * h).saturating_mul(3).saturating_add(copy).saturating_add(self.faces_bytes())
    }

    /// The most one frame can reserve: a body of `max_body` bytes with the header of the
    /// costliest image within `max_pixels`: a 16-bit RGBA PNG turned by its EXIF orientation
    /// decodes through 16 bytes a pixel; any frame the detector shrinks holds 3 + 16 (its
    /// resize buffer is at most the source's size, see `held`).
    pub fn worst(&self, max_body: u64) -> u64 {
        // The detector's copy: each side scaled to at most `detect_max_side`, plus 2 (see `held`).
        let side = u64::from(self.detect_max_side) + 2;
        let held =
            self.max_pixels.saturating_mul(3 + 16).saturating_add(side * side * 3).saturating_add(self.faces_bytes());
        (max_body + FRAME_OVERHEAD).saturating_add(self.max_pixels.saturating_mul(16).max(held))
    }
}

impl FrameCost {
    fn faces_bytes(&self) -> u64 {
        (self.max_faces as u64).saturating_mul(self.face_bytes).saturating_add(FRAME_OVERHEAD)
    }
}

/// The headers of nearly every image fit in this many leading bytes (EXIF and ICC segments
/// included): reading them from a prefix spares a copy of the whole body (the `image` crate's
/// JPEG decoder copies its input) on every request, refused ones included.
const HEADER_PREFIX: usize = 256 << 10;

/// Width, height and the decoder's peak bytes per pixel, from the header (`None` if the
/// `image` crate cannot read one).
fn header(bytes: &[u8]) -> Option<(u32, u32, u64)> {
    // A prefix that parses gives what the whole would (the parser reads front to back).
    header_of(&bytes[..bytes.len().min(HEADER_PREFIX)])
        .or_else(|| (bytes.len() > HEADER_PREFIX).then(|| header_of(bytes)).flatten())
}

fn header_of(bytes: &[u8]) -> Option<(u32, u32, u64)> {
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().ok()?;
    let format = reader.format()?;
    let mut d = reader.into_decoder().ok()?;
    let (w, h) = d.dimensions();
    // EXIF rotations by a quarter turn copy the whole image (flips work in place).
    let turns = matches!(
        d.orientation().unwrap_or(Orientation::NoTransforms),
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    );
    let copies = if turns { 2 } else { 1 };
    let peak = match format {
        // libjpeg-turbo writes RGB straight into the frame's buffer.
        ImageFormat::Jpeg => 3 * copies,
        ImageFormat::Png => png_peak(d.color_type(), copies),
        _ => return None,
    };
    Some((w, h, peak))
}

/// Peak bytes per pixel of a PNG decode (`vision::decode`): the decoded image (twice while it
/// is turned), then its conversion to 8-bit RGB beside it (through RGBA when it has alpha).
fn png_peak(color: ColorType, copies: u64) -> u64 {
    let bpp = u64::from(color.bytes_per_pixel());
    let convert = match color {
        ColorType::Rgb8 => bpp,
        ColorType::Rgba8 => bpp + 3,
        c if c.has_alpha() => bpp + 4 + 3,
        _ => bpp + 3,
    };
    (bpp * copies).max(convert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_within_the_limit_and_gives_back_on_drop() {
        let b = MemoryBudget::new(100);
        let mut a = b.try_reserve(60).unwrap();
        assert!(b.try_reserve(41).is_none(), "60 + 41 > 100");
        assert!(b.try_reserve(u64::MAX).is_none(), "no overflow");
        let c = b.try_reserve(40).unwrap();
        assert_eq!(b.used(), 100);
        assert!(!a.resize(61), "growing past the limit fails");
        assert_eq!((a.bytes(), b.used()), (60, 100));
        assert!(a.resize(10));
        assert_eq!(b.used(), 50);
        drop(c);
        assert!(a.resize(100));
        assert_eq!(b.used(), 100);
        drop(a);
        assert_eq!(b.used(), 0);
    }

    fn cost() -> FrameCost {
        FrameCost { max_pixels: 40_000_000, detect_max_side: 2560, max_faces: 64, face_bytes: 70_000 }
    }

    fn encode(img: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_frame_reserves_what_its_decode_allocates() {
        let c = cost();
        let rgb = image::DynamicImage::ImageRgb8(image::RgbImage::new(4000, 3000));
        let jpeg = encode(&rgb, ImageFormat::Jpeg);
        let held = c.held(4000, 3000);
        assert_eq!(held, 36_000_000 + 4000 * 1921 * 16 + 2561 * 1921 * 3 + 64 * 70_000 + FRAME_OVERHEAD);
        // A one-row strip: the resize buffer is as wide as the source, one row high.
        assert_eq!(c.held(40_000, 1), 120_000 + 40_000 * 16 + 2561 * 3 + 64 * 70_000 + FRAME_OVERHEAD);
        assert_eq!(c.admit(&jpeg), jpeg.len() as u64 + FRAME_OVERHEAD + held);
        // A 16-bit RGBA PNG: 8 bytes a pixel decoded, then RGBA8 and RGB8 beside it.
        let png16 = encode(&image::DynamicImage::new_rgba16(1000, 1000), ImageFormat::Png);
        assert_eq!(c.admit(&png16), png16.len() as u64 + FRAME_OVERHEAD + 15_000_000);
        assert!(c.admit(&png16) <= c.worst(png16.len() as u64));
        assert!(c.admit(&jpeg) <= c.worst(jpeg.len() as u64));
        // A header beyond the prefix (after 320 KB of APP2 segments) is still read.
        let mut late = jpeg[..2].to_vec();
        for _ in 0..5 {
            late.extend([0xFF, 0xE2, 0xFF, 0xFF]);
            late.extend(std::iter::repeat_n(0u8, 0xFFFF - 2));
        }
        late.extend(&jpeg[2..]);
        assert!(late.len() > HEADER_PREFIX + jpeg.len());
        assert_eq!(c.admit(&late), late.len() as u64 + FRAME_OVERHEAD + held);
        // Not an image: only the body (the decoder refuses it before allocating).
        assert_eq!(c.admit(b"hello"), 5 + FRAME_OVERHEAD);
        let small = FrameCost { max_pixels: 1000, ..c };
        assert_eq!(small.admit(&jpeg), jpeg.len() as u64 + FRAME_OVERHEAD, "the decoder refuses it first");
    }
}
