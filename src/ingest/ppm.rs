//! Cuts ffmpeg's stdout into frames. ffmpeg writes each frame as a binary PPM (`-f image2pipe
//! -c:v ppm -pix_fmt rgb24`): raw rgb24 pixels behind a header of a few bytes that carries the
//! frame's size. Chosen over bare `-f rawvideo` with a size probed beforehand, because a probe
//! is a second connection (some cameras allow one session; `ffmpeg -listen 1` serves one
//! client) and a stream that changes resolution would misalign every later frame; here each
//! frame says its size, and that size is checked against the limits before its pixels are read.

use std::io::{self, BufRead, Read};

#[derive(Debug)]
pub enum ReadError {
    /// The stream ended between frames.
    End,
    Io(io::Error),
    /// Not a frame of the expected form, cut short, or larger than allowed.
    Bad(String),
}

/// Longest header accepted ("P6\n16384 16384\n255\n" is 20 bytes).
const MAX_HEADER: usize = 64;

pub struct PpmReader<R> {
    r: R,
    max_width: u32,
    max_pixels: u64,
}

impl<R: BufRead> PpmReader<R> {
    pub fn new(r: R, max_width: u32, max_pixels: u64) -> Self {
        Self { r, max_width, max_pixels }
    }

    /// Reads the next frame's pixels into `buf` (cleared; its allocation is reused when large
    /// enough) and returns its size.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> Result<(u32, u32), ReadError> {
        let (w, h) = self.header()?;
        let n = w as usize * h as usize * 3;
        buf.clear();
        buf.reserve_exact(n);
        let got = (&mut self.r).take(n as u64).read_to_end(buf).map_err(ReadError::Io)?;
        if got != n {
            return Err(ReadError::Bad(format!("frame cut short: {got} of {n} bytes")));
        }
        Ok((w, h))
    }

    fn byte(&mut self) -> Result<Option<u8>, ReadError> {
        let mut b = [0u8];
        match self.r.read(&mut b) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(b[0])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.byte(),
            Err(e) => Err(ReadError::Io(e)),
        }
    }

    /// "P6", width, height and 255, separated by whitespace, then one whitespace byte.
    fn header(&mut self) -> Result<(u32, u32), ReadError> {
        let mut fields: [u64; 3] = [0; 3];
        let (mut field, mut digits, mut read) = (0usize, 0usize, 0usize);
        let bad = |m: &str| ReadError::Bad(format!("frame header: {m}"));
        match (self.byte()?, self.byte()?) {
            (None, _) => return Err(ReadError::End),
            (Some(b'P'), Some(b'6')) => read += 2,
            _ => return Err(bad("not a binary PPM (P6)")),
        }
        loop {
            let Some(b) = self.byte()? else { return Err(bad("cut short")) };
            read += 1;
            if read > MAX_HEADER {
                return Err(bad("too long"));
            }
            match b {
                b'0'..=b'9' => {
                    if field >= 3 || digits >= 6 {
                        return Err(bad("number too long"));
                    }
                    fields[field] = fields[field] * 10 + u64::from(b - b'0');
                    digits += 1;
                }
                b' ' | b'\n' | b'\r' | b'\t' => {
                    if digits > 0 {
                        field += 1;
                        digits = 0;
                        // The single whitespace after the maximum value ends the header.
                        if field == 3 {
                            break;
                        }
                    }
                }
                _ => return Err(bad("unexpected byte")),
            }
        }
        let [w, h, max] = fields;
        if max != 255 {
            return Err(bad("expected 8-bit samples (255)"));
        }
        if w == 0 || h == 0 || w > u64::from(self.max_width) || w * h > self.max_pixels {
            return Err(ReadError::Bad(format!(
                "frame {w}x{h} outside the limits (max_width {}, max_pixels {})",
                self.max_width, self.max_pixels
            )));
        }
        Ok((w as u32, h as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, fill: u8) -> Vec<u8> {
        let mut v = format!("P6\n{w} {h}\n255\n").into_bytes();
        v.extend(std::iter::repeat_n(fill, (w * h * 3) as usize));
        v
    }

    #[test]
    fn cuts_frames_and_refuses_what_is_not_one() {
        let mut s = frame(4, 2, 7);
        s.extend(frame(2, 2, 9));
        let mut r = PpmReader::new(&s[..], 64, 1000);
        let mut buf = Vec::new();
        assert_eq!(r.next_frame(&mut buf).unwrap(), (4, 2));
        assert_eq!(buf, vec![7; 24]);
        assert_eq!(r.next_frame(&mut buf).unwrap(), (2, 2));
        assert_eq!(buf, vec![9; 12]);
        assert!(matches!(r.next_frame(&mut buf), Err(ReadError::End)));
        for (bytes, says) in [
            (frame(4, 2, 0)[..20].to_vec(), "cut short"),
            (b"P5\n4 2\n255\n".to_vec(), "P6"),
            (frame(65, 1, 0), "outside the limits"),
            (frame(40, 40, 0), "outside the limits"),
            (b"P6\n4 2\n65535\n".to_vec(), "8-bit"),
            (b"P6\n99999999999 2\n255\n".to_vec(), "too long"),
            (format!("P6\n{}", " ".repeat(100)).into_bytes(), "too long"),
        ] {
            let mut r = PpmReader::new(&bytes[..], 64, 1000);
            match r.next_frame(&mut buf) {
                Err(ReadError::Bad(m)) => assert!(m.contains(says), "{m}"),
                other => panic!("{says}: {other:?}"),
            }
        }
    }
}
