//! The evaluation's charts: the DET curve (FNIR against FPIR, log scales) and the mated and
//! non-mated score histograms, with a threshold marked. A chart is a few marks drawn once as SVG
//! (the ops pages, `<img src>`: no script, nothing inline for the CSP to refuse) and once as PNG
//! (reports; lines and points only, the SVG carries the words).

use std::fmt::Write as _;

use image::{Rgb, RgbImage};

use crate::error::{Error, Result};
use crate::eval::report::{Histogram, OperatingPoint, Scores};

const W: f32 = 480.0;
const H: f32 = 300.0;
/// The plot area inside the margins (axis labels left and below, title above).
pub const AREA: Area = Area { left: 60.0, top: 30.0, right: W - 16.0, bottom: H - 44.0 };

/// Colours told apart by everyone (Okabe-Ito), and always named in a legend.
const MATED: Rgb<u8> = Rgb([0x00, 0x72, 0xB2]);
const NON_MATED: Rgb<u8> = Rgb([0xD5, 0x5E, 0x00]);
const INK: Rgb<u8> = Rgb([0x22, 0x22, 0x22]);
const GRID: Rgb<u8> = Rgb([0xDD, 0xDD, 0xDD]);

#[derive(Debug, Clone, Copy)]
pub struct Area {
    pub left: f32,
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Anchor {
    Start,
    Middle,
    End,
}

#[derive(Debug, Clone)]
enum Mark {
    Line { points: Vec<(f32, f32)>, colour: Rgb<u8>, width: f32, dashed: bool },
    Dot { x: f32, y: f32, r: f32, colour: Rgb<u8> },
    Text { x: f32, y: f32, text: String, anchor: Anchor },
}

/// Marks on a `W` x `H` canvas, y down.
#[derive(Debug, Clone)]
pub struct Chart {
    title: String,
    marks: Vec<Mark>,
}

/// Escapes text for XML and HTML (element content and quoted attributes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn hex(c: Rgb<u8>) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

impl Chart {
    fn new(title: &str) -> Self {
        Self { title: title.to_string(), marks: Vec::new() }
    }

    fn line(&mut self, points: Vec<(f32, f32)>, colour: Rgb<u8>, width: f32, dashed: bool) {
        self.marks.push(Mark::Line { points, colour, width, dashed });
    }

    fn text(&mut self, x: f32, y: f32, text: impl Into<String>, anchor: Anchor) {
        self.marks.push(Mark::Text { x, y, text: text.into(), anchor });
    }

    pub fn svg(&self) -> String {
        let mut s = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" font-family="sans-serif" font-size="12"><title>{}</title><rect width="{W}" height="{H}" fill="white"/>"#,
            escape(&self.title)
        );
        for m in &self.marks {
            match m {
                Mark::Line { points, colour, width, dashed } => {
                    let d: Vec<String> = points
                        .iter()
                        .enumerate()
                        .map(|(i, (x, y))| format!("{}{x:.1},{y:.1}", if i == 0 { 'M' } else { 'L' }))
                        .collect();
                    let dash = if *dashed { r#" stroke-dasharray="5,4""# } else { "" };
                    let _ = write!(
                        s,
                        r#"<path d="{}" fill="none" stroke="{}" stroke-width="{width}"{dash}/>"#,
                        d.join(""),
                        hex(*colour)
                    );
                }
                Mark::Dot { x, y, r, colour } => {
                    let _ = write!(s, r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{}"/>"#, hex(*colour));
                }
                Mark::Text { x, y, text, anchor } => {
                    let a = match anchor {
                        Anchor::Start => "start",
                        Anchor::Middle => "middle",
                        Anchor::End => "end",
                    };
                    let _ = write!(s, r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{a}">{}</text>"#, escape(text));
                }
            }
        }
        s.push_str("</svg>");
        s
    }

    /// The chart's lines and points as a PNG (twice the SVG's size; without its words).
    pub fn png(&self) -> Result<Vec<u8>> {
        const SCALE: f32 = 2.0;
        let mut img = RgbImage::from_pixel((W * SCALE) as u32, (H * SCALE) as u32, Rgb([255, 255, 255]));
        for m in &self.marks {
            match m {
                Mark::Line { points, colour, width, dashed } => {
                    let mut walked = 0.0;
                    for w in points.windows(2) {
                        let (a, b) = ((w[0].0 * SCALE, w[0].1 * SCALE), (w[1].0 * SCALE, w[1].1 * SCALE));
                        walked = stroke(&mut img, a, b, width * SCALE, *colour, dashed.then_some(walked));
                    }
                }
                Mark::Dot { x, y, r, colour } => disc(&mut img, x * SCALE, y * SCALE, r * SCALE, *colour),
                Mark::Text { .. } => {}
            }
        }
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).map_err(|e| Error::Invalid(format!("chart PNG: {e}")))?;
        Ok(out.into_inner())
    }
}

/// A segment drawn as discs every half pixel; `dash_from` (the length walked so far) skips
/// every other 10 px. Returns the length walked at its end.
fn stroke(img: &mut RgbImage, a: (f32, f32), b: (f32, f32), width: f32, c: Rgb<u8>, dash_from: Option<f32>) -> f32 {
    let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    let steps = (len * 2.0).ceil().max(1.0) as usize;
    for i in 0..=steps {
        let t = i as f32 / steps as f32;
        if let Some(from) = dash_from
            && ((from + t * len) / 10.0) as u32 % 2 == 1
        {
            continue;
        }
        disc(img, a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1), width / 2.0, c);
    }
    dash_from.unwrap_or(0.0) + len
}

fn disc(img: &mut RgbImage, cx: f32, cy: f32, r: f32, c: Rgb<u8>) {
    let r = r.max(0.5);
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x0, x1) = (((cx - r).floor() as i64).max(0), ((cx + r).ceil() as i64).min(w - 1));
    let (y0, y1) = (((cy - r).floor() as i64).max(0), ((cy + r).ceil() as i64).min(h - 1));
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            if dx * dx + dy * dy <= r * r {
                img.put_pixel(x as u32, y as u32, c);
            }
        }
    }
}

/// Rates below this are drawn at it on the log axes (and the axes start there).
fn rate_floor(scores: &Scores) -> f64 {
    let n = scores.mated_total.max(scores.non_mated_total).max(10) as f64;
    // The decade strictly below one probe's share: a rate of one probe is off the axis.
    10f64.powf(((1.0 / n).log10() - 1e-9).ceil() - 1.0).max(1e-6)
}

/// Where a rate sits on a log axis from `floor` (0) to 1 (1).
fn log_pos(rate: f64, floor: f64) -> f32 {
    let r = rate.max(floor).min(1.0);
    ((r.log10() - floor.log10()) / -floor.log10()) as f32
}

fn percent(r: f64) -> String {
    let p = r * 100.0;
    if p >= 1.0 {
        format!("{p:.0}%")
    } else {
        let s = format!("{p:.3}");
        format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// The point of `at` on the DET chart of `scores` (x: FPIR, y: FNIR, both log).
pub fn det_xy(scores: &Scores, at: &OperatingPoint) -> (f32, f32) {
    let floor = rate_floor(scores);
    let a = AREA;
    (a.left + log_pos(at.fpir, floor) * (a.right - a.left), a.bottom - log_pos(at.fnir, floor) * (a.bottom - a.top))
}

fn axes(c: &mut Chart, x_label: &str, y_label: &str) {
    let a = AREA;
    c.line(vec![(a.left, a.top), (a.left, a.bottom), (a.right, a.bottom)], INK, 1.0, false);
    c.text((a.left + a.right) / 2.0, H - 8.0, x_label, Anchor::Middle);
    if !y_label.is_empty() {
        c.text(8.0, a.top - 12.0, y_label, Anchor::Start);
    }
}

/// The DET curve of `scores` titled for `what` ("list wanted"), with `marked` (the threshold in force or being
/// tried) as a point and its rates in words.
pub fn det_chart(what: &str, scores: &Scores, det: &[OperatingPoint], marked: Option<&OperatingPoint>) -> Chart {
    let mut c = Chart::new(&format!("DET curve, {what}"));
    let a = AREA;
    let floor = rate_floor(scores);
    // Decade grid lines and labels on both axes.
    let decades = (-floor.log10()).round() as i32;
    for k in -decades..=0 {
        let r = 10f64.powi(k);
        let (x, _) = det_xy(scores, &OperatingPoint { threshold: 0.0, fpir: r, fnir: 1.0 });
        let (_, y) = det_xy(scores, &OperatingPoint { threshold: 0.0, fpir: 1.0, fnir: r });
        c.line(vec![(x, a.top), (x, a.bottom)], GRID, 1.0, false);
        c.line(vec![(a.left, y), (a.right, y)], GRID, 1.0, false);
        c.text(x, a.bottom + 16.0, percent(r), Anchor::Middle);
        c.text(a.left - 6.0, y + 4.0, percent(r), Anchor::End);
    }
    axes(&mut c, "FPIR (non-mated probes that alert)", "FNIR (mated probes missed)");
    let points: Vec<(f32, f32)> = det.iter().map(|p| det_xy(scores, p)).collect();
    c.line(points, MATED, 2.0, false);
    if let Some(m) = marked {
        let (x, y) = det_xy(scores, m);
        c.marks.push(Mark::Dot { x, y, r: 4.0, colour: NON_MATED });
        let words = format!("{:.3}: FPIR {} FNIR {}", m.threshold, percent(m.fpir), percent(m.fnir));
        c.text(a.right, a.top - 12.0, words, Anchor::End);
    }
    c
}

/// Where a score sits on the histogram's x axis.
pub fn score_x(h: &Histogram, score: f32) -> f32 {
    let hi = h.lo + h.width * h.mated.len() as f32;
    let a = AREA;
    if !(hi > h.lo) {
        return a.left;
    }
    a.left + ((score - h.lo) / (hi - h.lo)).clamp(0.0, 1.0) * (a.right - a.left)
}

/// The mated and non-mated score histograms (each as a share of its probes) with `threshold`
/// as a dashed line, titled for `what`.
pub fn histogram_chart(what: &str, h: &Histogram, threshold: Option<f32>) -> Chart {
    let mut c = Chart::new(&format!("Score histograms, {what}"));
    let a = AREA;
    let share = |v: &[u64]| -> Vec<f64> {
        let n = v.iter().sum::<u64>().max(1) as f64;
        v.iter().map(|x| *x as f64 / n).collect()
    };
    let (m, n) = (share(&h.mated), share(&h.non_mated));
    let top = m.iter().chain(&n).copied().fold(0.0, f64::max).max(1e-9);
    let y = |v: f64| a.bottom - (v / top) as f32 * (a.bottom - a.top);
    let bins = h.mated.len().min(h.non_mated.len());
    for frac in [0.25, 0.5, 0.75, 1.0] {
        let yy = y(top * frac);
        c.line(vec![(a.left, yy), (a.right, yy)], GRID, 1.0, false);
        c.text(a.left - 6.0, yy + 4.0, percent(top * frac), Anchor::End);
    }
    let ticks = 5;
    for i in 0..=ticks {
        let s = h.lo + (h.width * bins as f32) * i as f32 / ticks as f32;
        c.text(score_x(h, s), a.bottom + 16.0, format!("{s:.2}"), Anchor::Middle);
    }
    axes(&mut c, "top-1 cosine score; the share of each group's probes per bin", "");
    for (v, colour) in [(&m, MATED), (&n, NON_MATED)] {
        // A step outline: across each bin at its height.
        let mut pts = vec![(score_x(h, h.lo), a.bottom)];
        for (i, share) in v.iter().take(bins).enumerate() {
            let (x0, x1) = (score_x(h, h.lo + h.width * i as f32), score_x(h, h.lo + h.width * (i + 1) as f32));
            pts.push((x0, y(*share)));
            pts.push((x1, y(*share)));
        }
        pts.push((score_x(h, h.lo + h.width * bins as f32), a.bottom));
        c.line(pts, colour, 1.5, false);
    }
    // The legend in the title row: inside the plot it would cover a curve or the threshold.
    c.line(vec![(8.0, a.top - 16.0), (28.0, a.top - 16.0)], MATED, 3.0, false);
    c.text(32.0, a.top - 12.0, "mated (enrolled)", Anchor::Start);
    c.line(vec![(150.0, a.top - 16.0), (170.0, a.top - 16.0)], NON_MATED, 3.0, false);
    c.text(174.0, a.top - 12.0, "non-mated (on no list)", Anchor::Start);
    if let Some(t) = threshold {
        let x = score_x(h, t);
        c.line(vec![(x, a.top), (x, a.bottom)], INK, 1.5, true);
        c.text(a.right, a.top - 12.0, format!("threshold {t:.3}"), Anchor::End);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::report::tests::known;

    #[test]
    fn det_marks_the_operating_point_where_its_rates_are() {
        let s = known();
        // At 0.95: FPIR 10 %, FNIR 60 %. 10 probes each: the axes start at 1 % (two decades).
        let at = s.at(0.95);
        let svg = det_chart("wanted", &s, &s.det(), Some(&at)).svg();
        let x = AREA.left + 0.5 * (AREA.right - AREA.left);
        let y = AREA.bottom - (1.0 + 0.6f64.log10() / 2.0) as f32 * (AREA.bottom - AREA.top);
        assert!(svg.contains(&format!(r#"<circle cx="{x:.1}" cy="{y:.1}""#)), "{svg}");
        assert!(svg.contains("0.950: FPIR 10% FNIR 60%"), "{svg}");
        // The 100 % corner of both axes is the plot area's top right.
        assert_eq!(det_xy(&s, &OperatingPoint { threshold: 0.0, fpir: 1.0, fnir: 1.0 }), (AREA.right, AREA.top));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn histogram_bars_and_threshold_line_where_expected() {
        let s = known();
        let h = s.histogram();
        let svg = histogram_chart("wanted", &h, Some(0.9)).svg();
        let x = score_x(&h, 0.9);
        let expect = AREA.left + (0.9 - h.lo) / (1.0 + h.width - h.lo) * (AREA.right - AREA.left);
        assert!((x - expect).abs() < 0.05, "{x} {expect}");
        assert!(svg.contains(&format!("M{x:.1},{:.1}L{x:.1},{:.1}", AREA.top, AREA.bottom)), "{svg}");
        // The tallest bar (one of 8 mated or one of 10 non-mated: 12.5 %) touches the top.
        assert!(svg.contains(&format!(",{:.1}", AREA.top)));
        assert!(svg.contains("threshold 0.900"));
    }

    #[test]
    fn list_names_are_escaped() {
        let s = known();
        let name = r#"<script>alert("x")</script> & 'co'"#;
        for svg in [det_chart(name, &s, &s.det(), None).svg(), histogram_chart(name, &s.histogram(), None).svg()] {
            assert!(!svg.contains("<script>"), "{svg}");
            assert!(svg.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;co&#39;"), "{svg}");
        }
        assert_eq!(escape("a\u{7}b"), "a b");
    }

    #[test]
    fn png_has_the_curve_in_its_colour() {
        let s = known();
        let png = det_chart("x", &s, &s.det(), None).png().unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (960, 600));
        assert!(img.pixels().any(|p| *p == MATED), "no curve drawn");
    }
}
