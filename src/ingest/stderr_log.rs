//! ffmpeg's stderr into the log: each line with its camera, credentials in quoted URLs
//! redacted, at most `per_minute` lines a minute (a broken stream prints a line per packet);
//! the lines left out are counted and the count logged with the next line that is.

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

/// Longest line logged; the rest of a longer line is skipped, never buffered.
const MAX_LINE: usize = 512;

pub fn forward(camera: &str, stderr: impl Read, per_minute: u64) {
    let mut r = BufReader::new(stderr);
    let mut window = Instant::now();
    let (mut logged, mut skipped) = (0u64, 0u64);
    let mut line = Vec::with_capacity(MAX_LINE);
    loop {
        line.clear();
        match read_line_capped(&mut r, &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.is_empty() => continue,
            Ok(_) => {}
        }
        if window.elapsed() >= Duration::from_secs(60) {
            window = Instant::now();
            logged = 0;
        }
        if logged >= per_minute {
            skipped += 1;
            continue;
        }
        logged += 1;
        let text = crate::secret::redact_urls_in(String::from_utf8_lossy(&line).trim_end());
        if skipped > 0 {
            tracing::warn!(camera, skipped, "ffmpeg: {text}");
            skipped = 0;
        } else {
            tracing::warn!(camera, "ffmpeg: {text}");
        }
    }
}

/// One line (without its end) into `out`, at most `MAX_LINE` bytes kept; the bytes consumed,
/// 0 at the end of the stream.
fn read_line_capped(r: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(consumed);
        }
        let (keep, used, ended) = match memchr::memchr2(b'\n', b'\r', buf) {
            Some(i) => (i, i + 1, true),
            None => (buf.len(), buf.len(), false),
        };
        let room = MAX_LINE.saturating_sub(out.len());
        out.extend_from_slice(&buf[..keep.min(room)]);
        r.consume(used);
        consumed += used;
        if ended {
            return Ok(consumed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_capped_and_split_on_either_end() {
        let long = "x".repeat(2000);
        let text = format!("first\r\n{long}\nlast");
        let mut r = BufReader::with_capacity(64, text.as_bytes());
        let mut lines = Vec::new();
        let mut l = Vec::new();
        while read_line_capped(&mut r, &mut l).unwrap() > 0 {
            lines.push(String::from_utf8(l.clone()).unwrap());
            l.clear();
        }
        let lens: Vec<usize> = lines.iter().map(String::len).collect();
        assert_eq!(lens, [5, 0, 512, 4], "{lines:?}");
    }
}
