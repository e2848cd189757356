//! JPEG -> packed RGB with libjpeg-turbo, the decoder OpenCV uses, so pixels (and detections)
//! agree with the reference pipeline exactly.
//!
//! A large baseline JPEG is decoded as two horizontal strips on two threads. Huffman decoding
//! is sequential (these photos have no restart markers), so the lower strip must first find
//! where its rows' data starts:
//! - preferably by [`split`]: walk the Huffman data above it at about 0.6x libjpeg-turbo's
//!   cost and cut the rows below into a JPEG of their own;
//! - else (restart intervals, several scans, a data error) with libjpeg-turbo's cropping,
//!   which Huffman-decodes every row above (about 60 % of a whole decode).
//!
//! The upper strip takes the larger share of rows in either case. Pixels are identical to one
//! whole decode either way (`tests` below).
//!
//! Every handle opened on attacker bytes (the whole image, the upper strip's, the cut-out
//! part's) is bounded the same way ([`Decompressor::open`]): the pixel limit is checked on
//! libjpeg-turbo's own header before anything is allocated, and libjpeg-turbo enforces it
//! again itself (`TJPARAM_MAXPIXELS`), with a cap on its internal buffers and scans.

use std::ffi::{CStr, c_int};
use std::mem::MaybeUninit;

use image::RgbImage;
use turbojpeg_sys as tj;

use crate::error::{Error, Result};

mod huffman;
mod layout;
mod split;

/// At most this many scans (libjpeg-turbo's own fuzzing setting): a normal progressive JPEG
/// has about 10, a hostile one thousands of tiny ones, each a pass over the whole image.
const MAX_SCANS: c_int = 500;

/// libjpeg-turbo's memory beyond the coefficient buffers (tables, row buffers), in MB.
const MEMORY_SLACK_MB: u64 = 64;

/// Below this many pixels a second thread costs more than it saves.
const PARALLEL_PIXELS: u64 = 500_000;

/// Share of the rows the upper strip decodes when the lower one crops (it also Huffman-decodes
/// the upper rows, about 60 % of a whole decode, so the split sits past the middle).
const UPPER_SHARE: f64 = 0.65;

/// The same when the lower strip is cut into its own JPEG (its walk over the upper rows costs
/// less, so the upper strip takes fewer rows).
const UPPER_SHARE_CUT: f64 = 0.6;

/// A JPEG whose header libjpeg-turbo has read and whose size is within the pixel limit;
/// nothing is allocated for its pixels until [`Jpeg::decode`].
pub struct Jpeg<'a> {
    bytes: &'a [u8],
    d: Decompressor,
    header: Header,
    max_pixels: u64,
}

impl<'a> Jpeg<'a> {
    /// Reads the header with the decoder that will decode: `ImageTooLarge` above `max_pixels`
    /// (its width x height, not what another parser makes of the same bytes), `CorruptImage`
    /// if libjpeg-turbo cannot read it.
    pub fn open(bytes: &'a [u8], max_pixels: u64) -> Result<Self> {
        let (d, header) = Decompressor::open(bytes, max_pixels)?;
        Ok(Self { bytes, d, header, max_pixels })
    }

    /// Width and height as libjpeg-turbo will decode them.
    pub fn dimensions(&self) -> (u32, u32) {
        // Within `max_pixels` and JPEG's 16-bit sizes: both fit.
        (self.header.width as u32, self.header.height as u32)
    }

    /// Decodes to RGB; grey JPEGs are expanded. With `threads >= 2`, large baseline images
    /// are decoded as two strips in parallel. A truncated or corrupt stream is an error, not
    /// a half-grey picture.
    pub fn decode(self, threads: usize) -> Result<RgbImage> {
        let Self { bytes, mut d, header, max_pixels } = self;
        let (w, h) = (header.width, header.height);
        let len = w
            .checked_mul(h)
            .and_then(|p| p.checked_mul(3))
            .ok_or_else(|| Error::CorruptImage("JPEG too large".into()))?;
        // Not zero-filled first: the decoder writes every byte, and clearing 6 MB of memory that
        // is out of the cache cost about as much as a tenth of the decode.
        let mut pixels: Vec<u8> = Vec::with_capacity(len);
        let out = &mut pixels.spare_capacity_mut()[..len];
        if threads >= 2 && strips_pay_off(&header) {
            decode_strips(d, &header, bytes, out, max_pixels)?;
        } else {
            d.decode_rows(&header, bytes, out, 0, h)?;
        }
        // SAFETY: the decodes above succeeded, and a successful decode writes every byte of the
        // rows it is given (full width, pitch = width x 3); together they were given all `len`.
        unsafe { pixels.set_len(len) };
        RgbImage::from_raw(w as u32, h as u32, pixels).ok_or_else(|| Error::CorruptImage("short JPEG buffer".into()))
    }
}

/// [`Jpeg::open`] then [`Jpeg::decode`].
pub fn decode(bytes: &[u8], threads: usize, max_pixels: u64) -> Result<RgbImage> {
    Jpeg::open(bytes, max_pixels)?.decode(threads)
}

/// Whether two strips beat one decode: not for small images, nor for progressive or lossless
/// ones (those decode every scan up front, so strips would not save anything).
fn strips_pay_off(header: &Header) -> bool {
    !header.progressive && !header.lossless && (header.width as u64) * (header.height as u64) >= PARALLEL_PIXELS
}

/// The layout of a JPEG that [`split`] can cut: one whose markers agree with libjpeg-turbo's
/// header and that has an MCU row on either side of some cut (a frame 8-16 rows high and 30000
/// wide has only one).
fn cut_layout(bytes: &[u8], header: &Header) -> Option<layout::Layout> {
    layout::Layout::parse(bytes).filter(|l| l.width == header.width && l.height == header.height && l.mcus_y >= 2)
}

/// Two strips, cut at an MCU row where the lower part can be cut out, else cropped.
fn decode_strips(
    lower_d: Decompressor,
    header: &Header,
    bytes: &[u8],
    out: &mut [MaybeUninit<u8>],
    max_pixels: u64,
) -> Result<()> {
    let h = header.height;
    let layout = cut_layout(bytes, header);
    match &layout {
        Some(l) => {
            let row = ((h as f64 * UPPER_SHARE_CUT) as usize / l.mcu_height).clamp(1, l.mcus_y - 1);
            two_strips(lower_d, header, bytes, out, max_pixels, row * l.mcu_height, Some((l, row)))?;
        }
        None => {
            let mid = ((h as f64 * UPPER_SHARE) as usize).clamp(1, h - 1);
            two_strips(lower_d, header, bytes, out, max_pixels, mid, None)?;
        }
    }
    Ok(())
}

/// Rows `0..mid` on a helper thread (its own handle), `mid..` here with `lower_d`: from the
/// lower part cut out at `cut` (layout, MCU row of `mid`) if that works, else by cropping.
/// Returns whether the cut was used.
fn two_strips(
    mut lower_d: Decompressor,
    header: &Header,
    bytes: &[u8],
    out: &mut [MaybeUninit<u8>],
    max_pixels: u64,
    mid: usize,
    cut: Option<(&layout::Layout, usize)>,
) -> Result<bool> {
    let (w, h) = (header.width, header.height);
    let (upper, lower) = out.split_at_mut(mid * w * 3);
    let (a, b) = std::thread::scope(|s| {
        let helper = s.spawn(|| {
            let (mut d, own) = Decompressor::open(bytes, max_pixels)?;
            d.decode_rows(&own, bytes, upper, 0, mid)
        });
        // The cut-out part must decode cleanly; anything libjpeg-turbo objects to (e.g. bytes
        // an encoder left after the last block, which the rewrite shifts past what libjpeg
        // reads ahead) is decided by the classic crop instead, exactly as a whole decode would.
        let cut = cut.and_then(|(l, row)| split::lower_part(bytes, l, row));
        let b = match cut.map(|part| decode_part(&part, w, h - mid, lower, max_pixels)) {
            Some(Ok(())) => Ok(true),
            _ => lower_d.decode_rows(header, bytes, lower, mid, h - mid).map(|()| false),
        };
        (helper.join().unwrap_or_else(|e| std::panic::resume_unwind(e)), b)
    });
    a.and(b)
}

/// Decodes in two strips cut at MCU row `mcu_row` by [`split`] only; `Ok(None)` if this JPEG
/// cannot be cut there. For tests: every row of every test photo must give a whole decode's
/// pixels.
#[doc(hidden)]
pub fn decode_cut_at(bytes: &[u8], mcu_row: usize, max_pixels: u64) -> Result<Option<RgbImage>> {
    let (d, header) = Decompressor::open(bytes, max_pixels)?;
    let Some(l) = cut_layout(bytes, &header).filter(|l| (1..l.mcus_y).contains(&mcu_row)) else {
        return Ok(None);
    };
    let (w, h) = (header.width, header.height);
    let mut pixels: Vec<u8> = Vec::with_capacity(w * h * 3);
    let out = &mut pixels.spare_capacity_mut()[..w * h * 3];
    if !two_strips(d, &header, bytes, out, max_pixels, mcu_row * l.mcu_height, Some((&l, mcu_row)))? {
        return Ok(None);
    }
    // SAFETY: both strips decoded successfully, which writes every byte of `out`.
    unsafe { pixels.set_len(w * h * 3) };
    Ok(RgbImage::from_raw(w as u32, h as u32, pixels))
}

/// How many MCU rows a JPEG has, if [`decode_cut_at`] can cut it at all (for tests).
#[doc(hidden)]
pub fn mcu_rows(bytes: &[u8]) -> Option<usize> {
    layout::Layout::parse(bytes).map(|l| l.mcus_y)
}

/// Decodes the rows of a cut-out lower part below its overlap into `out` (`rows` rows of
/// `width` pixels), with a handle of its own: the caller's handle keeps the whole image's
/// header for the crop it falls back to.
fn decode_part(
    part: &split::Lower,
    width: usize,
    rows: usize,
    out: &mut [MaybeUninit<u8>],
    max_pixels: u64,
) -> Result<()> {
    let (mut d, header) = Decompressor::open(&part.bytes, max_pixels)?;
    if header.width != width || header.height != part.overlap + rows {
        return Err(Error::CorruptImage("JPEG cut has the wrong size".into()));
    }
    d.decode_rows(&header, &part.bytes, out, part.overlap, rows)
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
    /// A bounded handle with `bytes`' header read (cropping needs it), and that header;
    /// `ImageTooLarge` if that header's width x height exceeds `max_pixels`.
    fn open(bytes: &[u8], max_pixels: u64) -> Result<(Self, Header)> {
        // SAFETY: plain constructor; a null handle is checked below.
        let h = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as c_int) };
        if h.is_null() {
            return Err(Error::Runtime("libjpeg-turbo could not create a decompressor".into()));
        }
        let mut d = Self(h);
        d.bound(max_pixels)?;
        let header = d.header(bytes)?;
        let pixels = header.width as u64 * header.height as u64;
        if pixels > max_pixels {
            let (width, height) = (header.width as u32, header.height as u32);
            return Err(Error::ImageTooLarge { width, height, pixels, max_pixels });
        }
        Ok((d, header))
    }

    /// libjpeg-turbo's own limits, so that no decode on this handle can cost more than an
    /// image of `max_pixels` should, whatever the Rust side checked: the pixel count of the
    /// header it reads at decode time, the memory for whole-image buffers (progressive and
    /// multi-scan images keep every coefficient), the number of scans (each progressive scan
    /// passes over all of them), and a stop at the first warning (corrupt data would otherwise
    /// be decoded to the end, then refused anyway).
    fn bound(&mut self, max_pixels: u64) -> Result<()> {
        let max = i64::from(c_int::MAX) as u64;
        // 0 means "no limit" to libjpeg-turbo; a limit of 0 is already refused by the header check.
        let pixels = max_pixels.clamp(1, max) as c_int;
        // Coefficients: 2 bytes per sample, at most 4 components at full resolution, on a frame
        // padded by up to 32 rows and columns (65535 px sides), plus the decoder's working set.
        let padded = max_pixels.min(max).saturating_add(32 * 2 * 65_536);
        let memory_mb = (padded.saturating_mul(8) >> 20).saturating_add(MEMORY_SLACK_MB).min(max) as c_int;
        for (param, value) in [
            (tj::TJPARAM_TJPARAM_MAXPIXELS, pixels),
            (tj::TJPARAM_TJPARAM_MAXMEMORY, memory_mb),
            (tj::TJPARAM_TJPARAM_SCANLIMIT, MAX_SCANS),
            (tj::TJPARAM_TJPARAM_STOPONWARNING, 1),
        ] {
            // SAFETY: valid handle; plain integer parameters.
            self.check(unsafe { tj::tj3Set(self.0, param as c_int, value) })?;
        }
        Ok(())
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

    const NO_LIMIT: u64 = u64::MAX;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        // A smooth gradient with some texture, so every MCU row has different content.
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x ^ y) % 256) as u8])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
        out
    }

    /// The same texture encoded by libjpeg-turbo with the given chroma subsampling, optionally
    /// with optimised Huffman tables (built for this image: they may lack DC sizes), progressive
    /// or with a restart marker every `restart_rows` MCU rows.
    fn encode(w: usize, h: usize, subsamp: turbojpeg::Subsamp, optimize: bool, progressive: bool) -> Vec<u8> {
        let img = RgbImage::from_fn(w as u32, h as u32, |x, y| {
            image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, (((x * 3) ^ y) % 256) as u8])
        });
        let mut c = turbojpeg::Compressor::new().unwrap();
        c.set_quality(88).unwrap();
        c.set_subsamp(subsamp).unwrap();
        c.set_optimize(optimize).unwrap();
        c.set_progressive(progressive).unwrap();
        let image = turbojpeg::Image {
            pixels: img.as_raw().as_slice(),
            width: w,
            pitch: w * 3,
            height: h,
            format: turbojpeg::PixelFormat::RGB,
        };
        c.compress_to_vec(image).unwrap()
    }

    #[test]
    fn cut_strips_equal_a_whole_decode_for_every_subsampling() {
        use turbojpeg::Subsamp::*;
        for subsamp in [None, Sub2x1, Sub2x2, Sub1x2, Sub4x1, Sub1x4, Gray] {
            for optimize in [false, true] {
                let bytes = encode(1003, 777, subsamp, optimize, false);
                let whole = decode(&bytes, 1, NO_LIMIT).unwrap();
                let rows = mcu_rows(&bytes).unwrap_or_else(|| panic!("{subsamp:?}: not cuttable"));
                let mut cuts = 0;
                for row in [1, rows / 3, rows / 2, rows - 1] {
                    if let Some(img) = decode_cut_at(&bytes, row, NO_LIMIT).unwrap() {
                        assert!(img.as_raw() == whole.as_raw(), "{subsamp:?} optimize={optimize} row {row}");
                        cuts += 1;
                    }
                }
                // The standard tables code every DC size, so those images always cut.
                assert!(optimize || cuts == 4, "{subsamp:?}: {cuts} of 4 cuts");
                // And the two-thread decode agrees whichever way it went.
                assert!(
                    decode(&bytes, 2, NO_LIMIT).unwrap().as_raw() == whole.as_raw(),
                    "{subsamp:?} optimize={optimize}"
                );
            }
        }
    }

    #[test]
    fn progressive_and_restart_jpegs_are_not_cut_and_still_decode_the_same() {
        let progressive = encode(1003, 777, turbojpeg::Subsamp::Sub2x2, false, true);
        assert!(mcu_rows(&progressive).is_none());
        assert!(
            decode(&progressive, 2, NO_LIMIT).unwrap().as_raw() == decode(&progressive, 1, NO_LIMIT).unwrap().as_raw()
        );
        // A restart interval (DRI) inserted into a baseline file's header, before the scan;
        // an interval longer than the image keeps the data valid without restart markers.
        let plain = encode(1003, 777, turbojpeg::Subsamp::Sub2x2, false, false);
        let sos = plain.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let mut dri = plain[..sos].to_vec();
        dri.extend_from_slice(&[0xFF, 0xDD, 0x00, 0x04, 0xFF, 0xFF]);
        dri.extend_from_slice(&plain[sos..]);
        assert!(mcu_rows(&dri).is_none(), "restart intervals are not cut");
        assert!(decode(&dri, 2, NO_LIMIT).unwrap().as_raw() == decode(&plain, 1, NO_LIMIT).unwrap().as_raw());
    }

    #[test]
    fn corrupt_data_decodes_the_same_in_strips_as_whole() {
        // Bytes overwritten anywhere in the entropy-coded data, above or below the cut: the
        // two-thread decode must fail when a whole decode fails, else give the same pixels.
        let bytes = encode(1003, 777, turbojpeg::Subsamp::Sub2x2, false, false);
        let sos = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap() + 14;
        let data = bytes.len() - 2 - sos;
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let (mut failed, mut same) = (0, 0);
        for _ in 0..60 {
            let mut bad = bytes.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = sos + (seed as usize % data);
                bad[at] = (seed >> 32) as u8;
            }
            match (decode(&bad, 1, NO_LIMIT), decode(&bad, 2, NO_LIMIT)) {
                (Err(_), Err(_)) => failed += 1,
                (Ok(a), Ok(b)) => {
                    assert!(a.as_raw() == b.as_raw(), "corrupt data decoded differently in strips");
                    same += 1;
                }
                (a, b) => panic!("whole {:?} but strips {:?}", a.map(|_| ()), b.map(|_| ())),
            }
        }
        eprintln!("corrupt: {failed} failed in both, {same} decoded the same");
        assert!(failed > 0 && same > 0, "both outcomes exercised");
    }

    fn uses_strips(bytes: &[u8]) -> bool {
        strips_pay_off(&Decompressor::open(bytes, NO_LIMIT).unwrap().1)
    }

    #[test]
    fn strips_give_the_same_pixels_as_one_decode() {
        // Odd height: the split row is not on an MCU boundary.
        let bytes = jpeg(1000, 777);
        assert!(uses_strips(&bytes), "large baseline JPEG qualifies");
        let whole = decode(&bytes, 1, NO_LIMIT).unwrap();
        let strips = decode(&bytes, 2, NO_LIMIT).unwrap();
        assert_eq!(whole.dimensions(), strips.dimensions());
        assert!(whole.as_raw() == strips.as_raw(), "pixels differ");
        // And both agree with the `turbojpeg` crate's whole-image decode.
        let reference = turbojpeg::decompress(&bytes, turbojpeg::PixelFormat::RGB).unwrap();
        assert!(reference.pixels == *whole.as_raw(), "pixels differ from turbojpeg::decompress");
    }

    #[test]
    fn small_images_are_decoded_whole() {
        assert!(!uses_strips(&jpeg(200, 150)));
        assert_eq!(decode(&jpeg(200, 150), 2, NO_LIMIT).unwrap().dimensions(), (200, 150));
    }

    #[test]
    fn truncated_large_jpeg_is_an_error_in_strips_too() {
        let bytes = jpeg(1000, 777);
        let cut = &bytes[..bytes.len() * 2 / 3];
        assert!(matches!(decode(cut, 2, NO_LIMIT), Err(Error::CorruptImage(_))));
        assert!(matches!(decode(cut, 1, NO_LIMIT), Err(Error::CorruptImage(_))));
    }

    #[test]
    fn grey_jpegs_become_rgb() {
        let grey = image::GrayImage::from_fn(64, 48, |x, y| image::Luma([((x * 4 + y) % 256) as u8]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95).encode_image(&grey).unwrap();
        let img = decode(&bytes, 2, NO_LIMIT).unwrap();
        assert_eq!(img.dimensions(), (64, 48));
        assert!(img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
        let diff = img.pixels().zip(grey.pixels()).map(|(a, b)| i32::from(a[0]).abs_diff(i32::from(b[0]))).max();
        assert!(diff.unwrap_or(0) <= 8, "grey levels kept (max difference {diff:?})");
    }
}
