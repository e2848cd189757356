//! Crafted hostile images, built by code (no binaries in the repository): the regression
//! inputs of issue 15 and the seeds the decoder fuzz test mutates.
#![allow(dead_code)]

/// A real baseline JPEG of `w` x `h` (a gradient, quality 90, the `image` crate's encoder).
pub fn small_jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 13) as u8, (y * 11) as u8, ((x ^ y) * 7) as u8]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
    out
}

/// The marker segments of a JPEG up to and including the scan header: (marker, whole segment).
pub fn segments(jpeg: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        out.push((marker, jpeg[i..i + 2 + len].to_vec()));
        if marker == 0xDA {
            break;
        }
        i += 2 + len;
    }
    out
}

/// Issue 15's pixel-limit bypass: SOI, RST0, a 2-byte COM, then a `width` x `height` frame
/// header with its tables and scan header, zero padding to offset 65538, then a whole 16x16
/// JPEG after its SOI. libjpeg-turbo reads RST0 as a marker without a length and sees the
/// large frame; the `image` crate's parser (zune-jpeg) reads a 16-bit length after RST0
/// (0xFFFE, the COM marker), skips to offset 65538 and sees the small image. (zune-jpeg
/// 0.5.15 would read a length after a second SOI too, so the small image starts at its first
/// segment.)
pub fn rst_before_sof(width: u16, height: u16) -> Vec<u8> {
    let inner = small_jpeg(16, 16);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xD0, 0xFF, 0xFE, 0x00, 0x02];
    for (marker, mut seg) in segments(&inner) {
        match marker {
            0xDB | 0xC4 | 0xDA => out.extend_from_slice(&seg),
            0xC0 => {
                seg[5..7].copy_from_slice(&height.to_be_bytes());
                seg[7..9].copy_from_slice(&width.to_be_bytes());
                out.extend_from_slice(&seg);
            }
            _ => {}
        }
    }
    assert!(out.len() < 65_538);
    out.resize(65_538, 0);
    out.extend_from_slice(&inner[2..]);
    out
}

/// A valid JPEG whose frame header claims `width` x `height`.
pub fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = small_jpeg(16, 16);
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline frame header");
    bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    bytes
}

/// A PNG of `w` x `h` pixels of `color`.
pub fn png(w: u32, h: u32, color: image::ExtendedColorType) -> Vec<u8> {
    let bytes_per_pixel = color.bits_per_pixel() as usize / 8;
    let data: Vec<u8> = (0..w as usize * h as usize * bytes_per_pixel).map(|i| (i * 31 % 251) as u8).collect();
    let mut out = Vec::new();
    image::ImageEncoder::write_image(image::codecs::png::PngEncoder::new(&mut out), &data, w, h, color).unwrap();
    out
}

/// A 16x16 PNG whose IHDR claims `width` x `height`, with a valid checksum (as an attacker's).
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(16, 16, image::ExtendedColorType::Rgb8);
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    fix_png_crc(&mut bytes, 8);
    bytes
}

/// Recomputes the CRC of the PNG chunk starting at `at` (its length field).
pub fn fix_png_crc(bytes: &mut [u8], at: usize) {
    let Some(len) = bytes.get(at..at + 4).map(|b| u32::from_be_bytes(b.try_into().unwrap()) as usize) else { return };
    let Some(body) = bytes.get(at + 4..at + 8 + len) else { return };
    let crc = crc32(body);
    if let Some(dst) = bytes.get_mut(at + 8 + len..at + 12 + len) {
        dst.copy_from_slice(&crc.to_be_bytes());
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { 0xEDB8_8320 ^ (crc >> 1) } else { crc >> 1 };
        }
    }
    !crc
}
