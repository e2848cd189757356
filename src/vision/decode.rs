//! Bytes -> upright RGB image. The header of the decoder that will decode is read first, so a
//! decompression bomb is refused before any pixel buffer is allocated; EXIF orientation is
//! applied; grey and alpha become RGB.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};
use crate::vision::jpeg;

/// 40 megapixels: a 8K frame fits, a 20000x20000 bomb does not.
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

/// Decodes JPEG or PNG bytes into an upright 8-bit RGB image of at most `max_pixels` pixels.
///
/// JPEG goes through libjpeg-turbo ([`jpeg`]), the decoder OpenCV uses, so pixels (and
/// therefore detections) agree with the reference pipeline exactly; PNG through the `image` crate.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    decode_with(bytes, max_pixels, 1)
}

/// [`decode`] with up to `threads` threads for a large JPEG: for a caller whose other cores are
/// idle meanwhile (one image at a time), not for one whose cores are busy with the models.
pub fn decode_with(bytes: &[u8], max_pixels: u64, threads: usize) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(Error::EmptyInput);
    }
    let reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| Error::CorruptImage(e.to_string()))?;
    let format = match reader.format() {
        Some(f @ (ImageFormat::Jpeg | ImageFormat::Png)) => f,
        Some(other) => return Err(Error::UnsupportedImage(format!("{other:?}"))),
        None => return Err(Error::UnsupportedImage("unrecognised file signature".into())),
    };
    // Refuse oversized images from the header alone, before any decoder allocates: a PNG's
    // size sits at a fixed offset; a JPEG's is checked on libjpeg-turbo's own header below.
    if let Some((w, h)) = png_dimensions(bytes).filter(|_| format == ImageFormat::Png) {
        check_size(w, h, max_pixels)?;
    }
    let mut decoder = reader.into_decoder().map_err(|e| Error::CorruptImage(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    let orientation = decoder.orientation().ok();
    let mut img = if format == ImageFormat::Jpeg {
        drop(decoder);
        // The limit holds on the size of the decoder that decodes: this crate's header parser
        // and libjpeg-turbo disagree on some malformed marker sequences (an RST marker before
        // the frame header has a length to one and none to the other), so a file can show
        // each of them a different frame. Such a file is refused, never decoded.
        let jpeg = jpeg::Jpeg::open(bytes, max_pixels)?;
        let (w, h) = jpeg.dimensions();
        if (w, h) != (width, height) {
            return Err(Error::CorruptImage(format!(
                "JPEG headers disagree: {width}x{height} to one parser, {w}x{h} to the decoder"
            )));
        }
        DynamicImage::ImageRgb8(jpeg.decode(threads)?)
    } else {
        let pixels = check_size(width, height, max_pixels)?;
        let mut limits = Limits::default();
        // Room for the decoded buffer at 16 bits x 4 channels plus the decoder's working set.
        limits.max_alloc = Some(pixels.saturating_mul(8).saturating_add(64 << 20));
        decoder.set_limits(limits).map_err(|e| Error::CorruptImage(e.to_string()))?;
        DynamicImage::from_decoder(decoder).map_err(|e| Error::CorruptImage(e.to_string()))?
    };
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageRgba8(rgba) => flatten_alpha(&rgba),
        other if other.color().has_alpha() => flatten_alpha(&other.to_rgba8()),
        other => other.to_rgb8(),
    })
}

/// Width and height from a PNG's IHDR chunk (always the first chunk, at a fixed offset).
fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |o: usize| u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    Some((be(16), be(20)))
}

fn check_size(width: u32, height: u32, max_pixels: u64) -> Result<u64> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(Error::ImageTooLarge { width, height, pixels, max_pixels });
    }
    if pixels == 0 {
        return Err(Error::CorruptImage("image has zero width or height".into()));
    }
    Ok(pixels)
}

/// Composites transparent pixels onto white (a transparent background is not a black face).
fn flatten_alpha(rgba: &image::RgbaImage) -> RgbImage {
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u16::from(src[3]);
        for c in 0..3 {
            dst[c] = ((u16::from(src[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

/// Reads and decodes a file.
pub fn decode_file(path: &std::path::Path, max_pixels: u64) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes, max_pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, color: image::ExtendedColorType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        image::ImageEncoder::write_image(image::codecs::png::PngEncoder::new(&mut out), data, w, h, color).unwrap();
        out
    }

    #[test]
    fn grey_and_alpha_become_rgb() {
        let grey = png(2, 1, image::ExtendedColorType::L8, &[10, 200]);
        let img = decode(&grey, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(img.get_pixel(1, 0).0, [200, 200, 200]);
        let rgba = png(1, 1, image::ExtendedColorType::Rgba8, &[0, 0, 0, 0]);
        let img = decode(&rgba, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255], "transparent composites onto white");
    }

    #[test]
    fn refuses_empty_text_and_truncated() {
        assert!(matches!(decode(b"", DEFAULT_MAX_PIXELS), Err(Error::EmptyInput)));
        assert!(matches!(decode(b"hello, world\n", DEFAULT_MAX_PIXELS), Err(Error::UnsupportedImage(_))));
        let ok = png(4, 4, image::ExtendedColorType::Rgb8, &[7; 48]);
        let cut = &ok[..ok.len() / 2];
        assert!(matches!(decode(cut, DEFAULT_MAX_PIXELS), Err(Error::CorruptImage(_))));
    }

    #[test]
    fn oversized_jpeg_header_is_refused_before_decoding() {
        // A real 16x16 JPEG whose frame header (SOF0) is rewritten to claim 20000x20000.
        let img = RgbImage::from_pixel(16, 16, image::Rgb([90, 120, 150]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&img).unwrap();
        let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline frame header");
        // Marker, length (2), precision (1), then height and width, big-endian.
        bytes[sof + 5..sof + 9].copy_from_slice(&[0x4E, 0x20, 0x4E, 0x20]);
        assert!(matches!(
            decode(&bytes, DEFAULT_MAX_PIXELS),
            Err(Error::ImageTooLarge { width: 20_000, height: 20_000, .. })
        ));
    }

    #[test]
    fn pixel_limit_is_checked_before_decoding() {
        let ok = png(4, 4, image::ExtendedColorType::Rgb8, &[7; 48]);
        assert!(matches!(decode(&ok, 15), Err(Error::ImageTooLarge { pixels: 16, .. })));
    }
}
