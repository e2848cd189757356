//! Seeded arrival-hall clips with per-frame ground truth, for measuring decisions on video.
//!
//! Development faces (LFW: 250x250, the face the central ~110 px) walk toward the camera over a
//! background photo: each pass enters far away (face ~24 px), grows to ~160 px, then leaves
//! through the bottom of the frame. Several people are in view at once, crossing and hiding each
//! other (the larger face is nearer, so drawn in front); a person's photos are swapped along the
//! pass as if they turned. Motion blur, sensor noise and a slow brightness drift make it a
//! camera. The photos a subject is enrolled with are never shown in the clip.
//!
//! Everything depends on the seed alone: the same options give the same frames and truth.
//! [`Clip::write`] encodes the frames with `ffmpeg` (raw rgb24 on its stdin) and writes
//! `manifest.json` (options, enrollment photos, passes) and `truth.jsonl` (one line per frame).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use image::imageops::{FilterType, resize};
use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

use super::rng::Rng;
use crate::error::{Error, Result};
use crate::vision::decode::{DEFAULT_MAX_PIXELS, decode_file};

/// LFW photos are 250x250 with the face in the central ~110 px.
const PHOTO: f32 = 250.0;
const PHOTO_FACE: f32 = 110.0;
/// The head's ellipse in photo pixels (centre, semi-axes): hair and chin, not the shoulders
/// or the neighbours LFW photos often show.
const HEAD: [f32; 4] = [125.0, 122.0, 84.0, 108.0];
/// Share of the ellipse's radius over which the mask fades out.
const FEATHER: f32 = 0.18;
/// Share of a pass spent approaching; the rest is leaving through the bottom of the frame.
const APPROACH: f64 = 0.8;
/// Shutter time: how long a moving face smears.
const EXPOSURE_S: f64 = 1.0 / 30.0;
/// A person is in the truth while at least this share of their face box is inside the frame.
const MIN_INSIDE: f32 = 0.4;
/// Bounds on what one clip may ask for (a typo must not fill the disk).
const MAX_PASSES: usize = 10_000;
const MAX_SIDE: u32 = 3840;
const MAX_FPS: u32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    H264,
    H265,
    Mjpeg,
}

impl Codec {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "h264" => Ok(Codec::H264),
            "h265" => Ok(Codec::H265),
            "mjpeg" => Ok(Codec::Mjpeg),
            _ => Err(Error::Invalid(format!("codec {s:?}: expected h264, h265 or mjpeg"))),
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Codec::H264 | Codec::H265 => "clip.mp4",
            Codec::Mjpeg => "clip.avi",
        }
    }

    fn ffmpeg_args(self) -> &'static [&'static str] {
        match self {
            Codec::H264 => &["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"],
            Codec::H265 => &[
                "-c:v",
                "libx265",
                "-preset",
                "veryfast",
                "-crf",
                "24",
                "-pix_fmt",
                "yuv420p",
                "-tag:v",
                "hvc1",
                "-x265-params",
                "log-level=error",
            ],
            Codec::Mjpeg => &["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"],
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClipOptions {
    pub seed: u64,
    /// People crossing the hall, one pass each.
    pub passes: usize,
    /// How many of the passes are enrolled people (each a different subject).
    pub enrolled: usize,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub codec: Codec,
    /// `<Identity>/*.jpg` (LFW layout).
    pub faces_dir: PathBuf,
    /// Background photos (scaled and cropped to the frame).
    pub backgrounds_dir: PathBuf,
    /// Mean number of people in view at once.
    pub crowd: f64,
}

impl ClipOptions {
    /// The defaults of `facewatch eval clip`, on the development data in `data`.
    pub fn new(seed: u64, data: &Path) -> Self {
        Self {
            seed,
            passes: 72,
            enrolled: 24,
            width: 960,
            height: 540,
            fps: 10,
            codec: Codec::H264,
            faces_dir: data.join("faces"),
            backgrounds_dir: data.join("nonface"),
            crowd: 3.0,
        }
    }

    fn validate(&self) -> Result<()> {
        let mut bad = Vec::new();
        if self.passes == 0 || self.passes > MAX_PASSES {
            bad.push(format!("passes {} outside 1..={MAX_PASSES}", self.passes));
        }
        if self.enrolled > self.passes {
            bad.push(format!("enrolled {} over passes {}", self.enrolled, self.passes));
        }
        // yuv420p needs even sides; a face must fit.
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if !(64..=MAX_SIDE).contains(&v) || v % 2 != 0 {
                bad.push(format!("{name} {v}: an even number in 64..={MAX_SIDE}"));
            }
        }
        if !(1..=MAX_FPS).contains(&self.fps) {
            bad.push(format!("fps {} outside 1..={MAX_FPS}", self.fps));
        }
        if !(self.crowd.is_finite() && (0.5..=50.0).contains(&self.crowd)) {
            bad.push(format!("crowd {} outside 0.5..50", self.crowd));
        }
        if bad.is_empty() { Ok(()) } else { Err(Error::Invalid(bad.join("; "))) }
    }
}

/// One person seen in one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthPerson {
    pub pass: u32,
    pub identity: String,
    /// The watch-list subject this person is enrolled as; `None` for a stranger.
    pub subject: Option<String>,
    /// Face box `[x, y, w, h]` in frame pixels, clipped to the frame.
    pub bbox: [f32; 4],
    /// Share of the face not hidden by nearer people (0..1, sampled on a grid).
    pub visible: f32,
}

/// One line of `truth.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthFrame {
    pub frame: u64,
    /// Seconds from the clip's start (`frame / fps`).
    pub time: f64,
    pub people: Vec<TruthPerson>,
}

/// One person's walk through the view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassInfo {
    pub id: u32,
    pub identity: String,
    pub subject: Option<String>,
    /// First and last frame the person is in the truth.
    pub first_frame: u64,
    pub last_frame: u64,
    /// Photos shown, in order, relative to the faces folder.
    pub photos: Vec<String>,
}

/// The photos to enroll a subject with (never shown in the clip).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrollment {
    pub subject: String,
    pub identity: String,
    /// Relative to the faces folder.
    pub photos: Vec<String>,
}

/// `manifest.json`: how the clip was made, whom to enroll, who walks when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipManifest {
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u64,
    pub codec: Codec,
    /// The video's file name, next to the manifest.
    pub video: String,
    pub faces_dir: PathBuf,
    pub background: PathBuf,
    pub enroll: Vec<Enrollment>,
    pub passes: Vec<PassInfo>,
}

impl ClipManifest {
    /// Every identity shown in the clip (a watch list's distractors must come from elsewhere).
    pub fn identities(&self) -> std::collections::BTreeSet<&str> {
        self.passes.iter().map(|p| p.identity.as_str()).collect()
    }
}

/// A person's path: where the face is and how large at each frame of the pass.
#[derive(Debug, Clone)]
struct Walker {
    pass: u32,
    identity: String,
    subject: Option<String>,
    start: u64,
    frames: u64,
    from: [f64; 2],
    near: [f64; 2],
    exit: [f64; 2],
    small: f64,
    large: f64,
    /// Decoded photos, in the order shown.
    photos: Vec<usize>,
}

impl Walker {
    /// Face centre and side at frame `f` (which may lie outside the pass).
    fn at(&self, f: f64) -> ([f64; 2], f64) {
        let u = ((f - self.start as f64) / (self.frames - 1).max(1) as f64).clamp(0.0, 1.0);
        if u <= APPROACH {
            let a = u / APPROACH;
            // Perspective: the face grows geometrically as the person nears.
            let side = self.small * (self.large / self.small).powf(a);
            let mix = |p: f64, q: f64| p + (q - p) * a;
            ([mix(self.from[0], self.near[0]), mix(self.from[1], self.near[1])], side)
        } else {
            let a = (u - APPROACH) / (1.0 - APPROACH);
            let mix = |p: f64, q: f64| p + (q - p) * a;
            ([mix(self.near[0], self.exit[0]), mix(self.near[1], self.exit[1])], self.large)
        }
    }

    fn photo_at(&self, f: u64) -> usize {
        let u = (f.saturating_sub(self.start)) as f64 / self.frames.max(1) as f64;
        self.photos[((u * self.photos.len() as f64) as usize).min(self.photos.len() - 1)]
    }

    fn covers(&self, f: u64) -> bool {
        f >= self.start && f < self.start + self.frames
    }
}

/// A planned clip: render any frame with [`Clip::frame`], or encode it all with [`Clip::write`].
pub struct Clip {
    pub manifest: ClipManifest,
    pub truth: Vec<TruthFrame>,
    walkers: Vec<Walker>,
    photos: Vec<RgbImage>,
    background: RgbImage,
    /// Brightness drift: amplitude, period (s) and phase.
    drift: [f64; 3],
}

/// Sorted `<Identity>` folders of `dir` with their sorted photos.
fn identities(dir: &Path) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.flatten() {
        let p = e.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        if !p.is_dir() {
            continue;
        }
        let mut photos: Vec<String> = std::fs::read_dir(&p)
            .map_err(|e| Error::io(&p, e))?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.to_ascii_lowercase().ends_with(".jpg"))
            .map(|n| format!("{name}/{n}"))
            .collect();
        photos.sort();
        out.push((name, photos));
    }
    out.sort();
    Ok(out)
}

/// Scales `img` to cover `w`x`h` and crops the centre.
fn cover(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let s = (w as f64 / img.width() as f64).max(h as f64 / img.height() as f64);
    let (sw, sh) = (((img.width() as f64 * s).ceil() as u32).max(w), ((img.height() as f64 * s).ceil() as u32).max(h));
    let scaled = resize(img, sw, sh, FilterType::Triangle);
    image::imageops::crop_imm(&scaled, (sw - w) / 2, (sh - h) / 2, w, h).to_image()
}

impl Clip {
    /// Chooses people, photos, paths and the background from the seed, and computes the truth.
    pub fn plan(opts: &ClipOptions) -> Result<Self> {
        opts.validate()?;
        let mut rng = Rng::derive(opts.seed, 0);
        let (w, h) = (opts.width as f64, opts.height as f64);

        // Enrolled people need two photos to enroll (the gate refuses some) and at least two to
        // show; strangers two to show.
        let mut ids = identities(&opts.faces_dir)?;
        ids.retain(|(_, p)| p.len() >= 2);
        rng.shuffle(&mut ids);
        let (mut enrollable, mut others): (Vec<_>, Vec<_>) = ids.into_iter().partition(|(_, p)| p.len() >= 4);
        let strangers_needed = opts.passes - opts.enrolled;
        if enrollable.len() < opts.enrolled {
            return Err(Error::Invalid(format!(
                "{} has {} identities with 4+ photos, {} enrolled passes asked",
                opts.faces_dir.display(),
                enrollable.len(),
                opts.enrolled
            )));
        }
        let enrolled: Vec<_> = enrollable.drain(..opts.enrolled).collect();
        others.extend(enrollable);
        rng.shuffle(&mut others);
        if others.len() < strangers_needed {
            return Err(Error::Invalid(format!(
                "{} has too few identities with 2+ photos for {strangers_needed} strangers",
                opts.faces_dir.display()
            )));
        }
        let strangers: Vec<_> = others.drain(..strangers_needed).collect();

        let mut enroll = Vec::new();
        // (identity, subject, photos shown) per pass, enrolled ones at seeded positions.
        let mut people: Vec<(String, Option<String>, Vec<String>)> = Vec::new();
        for (identity, mut photos) in enrolled {
            rng.shuffle(&mut photos);
            let n_enroll = 2;
            let shown: Vec<String> = photos[n_enroll..].iter().take(4).cloned().collect();
            enroll.push(Enrollment {
                subject: identity.clone(),
                identity: identity.clone(),
                photos: photos[..n_enroll].to_vec(),
            });
            people.push((identity.clone(), Some(identity), shown));
        }
        for (identity, mut photos) in strangers {
            rng.shuffle(&mut photos);
            photos.truncate(4);
            people.push((identity, None, photos));
        }
        rng.shuffle(&mut people);

        // Photos decoded once; a pass refers to them by position.
        let mut photo_ix: BTreeMap<String, usize> = BTreeMap::new();
        let mut photos = Vec::new();
        for (_, _, shown) in &people {
            for p in shown {
                if !photo_ix.contains_key(p) {
                    let img = decode_file(&opts.faces_dir.join(p), DEFAULT_MAX_PIXELS)?;
                    // LFW is 250x250; anything else is brought to it so the face geometry holds.
                    let img =
                        if img.dimensions() == (250, 250) { img } else { resize(&img, 250, 250, FilterType::Triangle) };
                    photo_ix.insert(p.clone(), photos.len());
                    photos.push(img);
                }
            }
        }

        let mut bgs: Vec<PathBuf> = std::fs::read_dir(&opts.backgrounds_dir)
            .map_err(|e| Error::io(&opts.backgrounds_dir, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("jpg")))
            .collect();
        bgs.sort();
        if bgs.is_empty() {
            return Err(Error::Invalid(format!("{}: no .jpg backgrounds", opts.backgrounds_dir.display())));
        }
        let bg_path = bgs[rng.below(bgs.len())].clone();
        let background = cover(&decode_file(&bg_path, DEFAULT_MAX_PIXELS)?, opts.width, opts.height);

        // Sizes from the issue (24 -> 160 px), shrunk for frames too small to hold them.
        let large = 160f64.min(0.3 * h);
        let small = 24f64.min(0.5 * large);
        let fps = opts.fps as f64;
        let mean_frames = 3.25 * fps;
        let mut start = (0.5 * fps).round();
        let mut walkers = Vec::new();
        for (i, (identity, subject, shown)) in people.iter().enumerate() {
            let frames = (rng.range(2.5, 4.0) * fps).round().max(4.0) as u64;
            let from = [rng.range(0.15, 0.85) * w, rng.range(0.22, 0.38) * h];
            let near_x = (from[0] + rng.range(-0.45, 0.45) * w).clamp(0.5 * large, w - 0.5 * large);
            let near = [near_x, rng.range(0.62, 0.72) * h];
            let exit = [near_x + rng.range(-0.3, 0.3) * w, h + large];
            walkers.push(Walker {
                pass: i as u32,
                identity: identity.clone(),
                subject: subject.clone(),
                start: start as u64,
                frames,
                from,
                near,
                exit,
                small,
                large,
                photos: shown.iter().map(|p| photo_ix[p]).collect(),
            });
            start += mean_frames / opts.crowd * rng.range(0.5, 1.5);
        }
        let frames = walkers.iter().map(|w| w.start + w.frames).max().unwrap_or(0) + (0.5 * fps) as u64;
        let drift = [rng.range(0.08, 0.18), rng.range(8.0, 20.0), rng.range(0.0, std::f64::consts::TAU)];

        let mut clip = Clip {
            manifest: ClipManifest {
                seed: opts.seed,
                width: opts.width,
                height: opts.height,
                fps: opts.fps,
                frames,
                codec: opts.codec,
                video: opts.codec.file_name().to_string(),
                faces_dir: opts.faces_dir.clone(),
                background: bg_path,
                enroll,
                passes: Vec::new(),
            },
            truth: Vec::new(),
            walkers,
            photos,
            background,
            drift,
        };
        clip.truth = (0..frames).map(|f| clip.truth_at(f)).collect();
        for (i, (identity, subject, shown)) in people.into_iter().enumerate() {
            let seen: Vec<u64> =
                clip.truth.iter().filter(|t| t.people.iter().any(|p| p.pass == i as u32)).map(|t| t.frame).collect();
            let (Some(&first_frame), Some(&last_frame)) = (seen.first(), seen.last()) else { continue };
            clip.manifest.passes.push(PassInfo {
                id: i as u32,
                identity,
                subject,
                first_frame,
                last_frame,
                photos: shown,
            });
        }
        Ok(clip)
    }

    /// The walkers in view at frame `f`, farthest (smallest) first: the drawing order.
    fn in_view(&self, f: u64) -> Vec<(&Walker, [f64; 2], f64)> {
        let mut v: Vec<_> = self
            .walkers
            .iter()
            .filter(|w| w.covers(f))
            .map(|w| {
                let (c, s) = w.at(f as f64);
                (w, c, s)
            })
            .collect();
        v.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.pass.cmp(&b.0.pass)));
        v
    }

    fn truth_at(&self, f: u64) -> TruthFrame {
        let (w, h) = (self.manifest.width as f32, self.manifest.height as f32);
        let view = self.in_view(f);
        let mut people = Vec::new();
        for (i, (walker, c, s)) in view.iter().enumerate() {
            let (c, s) = ([c[0] as f32, c[1] as f32], *s as f32);
            let (x0, y0) = ((c[0] - s / 2.0).max(0.0), (c[1] - s / 2.0).max(0.0));
            let (x1, y1) = ((c[0] + s / 2.0).min(w), (c[1] + s / 2.0).min(h));
            if x1 <= x0 || y1 <= y0 || (x1 - x0) * (y1 - y0) < MIN_INSIDE * s * s {
                continue;
            }
            // Hidden where a nearer person's head (drawn later) is opaque, on an 8x8 grid.
            let mut seen = 0;
            for gy in 0..8 {
                for gx in 0..8 {
                    let p = [x0 + (x1 - x0) * (gx as f32 + 0.5) / 8.0, y0 + (y1 - y0) * (gy as f32 + 0.5) / 8.0];
                    let hidden = view[i + 1..]
                        .iter()
                        .any(|(_, oc, os)| head_alpha(p, [oc[0] as f32, oc[1] as f32], *os as f32) > 0.5);
                    seen += usize::from(!hidden);
                }
            }
            people.push(TruthPerson {
                pass: walker.pass,
                identity: walker.identity.clone(),
                subject: walker.subject.clone(),
                bbox: [x0, y0, x1 - x0, y1 - y0],
                visible: seen as f32 / 64.0,
            });
        }
        people.sort_by_key(|p| p.pass);
        TruthFrame { frame: f, time: f as f64 / self.manifest.fps as f64, people }
    }

    /// Renders frame `f` (background, people far to near, then the camera's blur, noise and
    /// brightness).
    pub fn frame(&self, f: u64) -> RgbImage {
        let (w, h) = (self.manifest.width, self.manifest.height);
        let mut img = self.background.clone();
        for (walker, c, s) in self.in_view(f) {
            let (c2, _) = walker.at(f as f64 + 1.0);
            let (c0, _) = walker.at(f as f64 - 1.0);
            // The smear of a 1/30 s exposure (half of it each way), sampled along the path.
            let k = 0.25 * self.manifest.fps as f64 * EXPOSURE_S;
            let motion = [((c2[0] - c0[0]) * k) as f32, ((c2[1] - c0[1]) * k) as f32];
            let photo = &self.photos[walker.photo_at(f)];
            composite(&mut img, photo, [c[0] as f32, c[1] as f32], s as f32, motion);
        }
        let t = f as f64 / self.manifest.fps as f64;
        let gain = (1.0 + self.drift[0] * (std::f64::consts::TAU * t / self.drift[1] + self.drift[2]).sin()) as f32;
        let mut noise = Rng::derive(self.manifest.seed, 1 << 40 | f);
        for y in 0..h {
            for x in 0..w {
                let r = noise.next_u64().to_le_bytes();
                let px = img.get_pixel_mut(x, y);
                for ch in 0..3 {
                    // Triangular noise, about +-6 levels.
                    let n = (r[2 * ch] as f32 + r[2 * ch + 1] as f32 - 255.0) * (6.0 / 255.0);
                    px.0[ch] = (px.0[ch] as f32 * gain + n).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        img
    }

    /// Encodes every frame into `out/<video>` with ffmpeg and writes `manifest.json` and
    /// `truth.jsonl` beside it.
    pub fn write(&self, out: &Path) -> Result<()> {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let video = out.join(&self.manifest.video);
        let (w, h, fps) = (self.manifest.width, self.manifest.height, self.manifest.fps);
        let mut child = Command::new("ffmpeg")
            .args(["-y", "-nostdin", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"])
            .args(["-s", &format!("{w}x{h}"), "-r", &fps.to_string(), "-i", "-"])
            .args(self.manifest.codec.ffmpeg_args())
            .args(["-g", &(2 * fps).to_string()])
            .arg(&video)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("ffmpeg", e))?;
        let mut stdin = child.stdin.take().ok_or_else(|| Error::io("ffmpeg", std::io::Error::other("no stdin")))?;
        let mut write_err = None;
        for f in 0..self.manifest.frames {
            if let Err(e) = stdin.write_all(self.frame(f).as_raw()) {
                write_err = Some(e);
                break;
            }
        }
        drop(stdin);
        let done = child.wait_with_output().map_err(|e| Error::io("ffmpeg", e))?;
        if !done.status.success() || write_err.is_some() {
            let why = String::from_utf8_lossy(&done.stderr).trim().to_string();
            return Err(Error::io(&video, std::io::Error::other(format!("ffmpeg {}: {why}", done.status))));
        }
        let manifest = out.join("manifest.json");
        let text = serde_json::to_string_pretty(&self.manifest).map_err(|e| Error::Invalid(e.to_string()))?;
        std::fs::write(&manifest, text).map_err(|e| Error::io(&manifest, e))?;
        let truth = out.join("truth.jsonl");
        let mut lines = String::new();
        for t in &self.truth {
            lines.push_str(&serde_json::to_string(t).map_err(|e| Error::Invalid(e.to_string()))?);
            lines.push('\n');
        }
        std::fs::write(&truth, lines).map_err(|e| Error::io(&truth, e))?;
        Ok(())
    }
}

/// Plans and writes a clip (what `facewatch eval clip` does).
pub fn generate(opts: &ClipOptions, out: &Path) -> Result<ClipManifest> {
    let clip = Clip::plan(opts)?;
    clip.write(out)?;
    Ok(clip.manifest)
}

/// Reads back what [`Clip::write`] wrote.
pub fn read(dir: &Path) -> Result<(ClipManifest, Vec<TruthFrame>)> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let manifest: ClipManifest =
        serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    let path = dir.join("truth.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut truth = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        truth.push(
            serde_json::from_str(line).map_err(|e| Error::Invalid(format!("{}:{}: {e}", path.display(), n + 1)))?,
        );
    }
    Ok((manifest, truth))
}

/// Opacity of the head of a face of side `side` centred at `c`, at frame point `p`.
fn head_alpha(p: [f32; 2], c: [f32; 2], side: f32) -> f32 {
    let scale = side / PHOTO_FACE;
    let (hx, hy) = (c[0] + (HEAD[0] - PHOTO / 2.0) * scale, c[1] + (HEAD[1] - PHOTO / 2.0) * scale);
    let (dx, dy) = ((p[0] - hx) / (HEAD[2] * scale), (p[1] - hy) / (HEAD[3] * scale));
    ((1.0 - (dx * dx + dy * dy).sqrt()) / FEATHER).clamp(0.0, 1.0)
}

/// Draws the head of `photo` with its face centred at `c`, `side` px wide, through a feathered
/// elliptical mask; `motion` (frame px) smears it into a motion blur.
fn composite(img: &mut RgbImage, photo: &RgbImage, c: [f32; 2], side: f32, motion: [f32; 2]) {
    let scale = side / PHOTO_FACE;
    let (hx, hy) = (c[0] + (HEAD[0] - PHOTO / 2.0) * scale, c[1] + (HEAD[1] - PHOTO / 2.0) * scale);
    let (ax, ay) = (HEAD[2] * scale, HEAD[3] * scale);
    let (w, h) = (img.width() as i64, img.height() as i64);
    let x0 = ((hx - ax - motion[0].abs()).floor() as i64).clamp(0, w);
    let x1 = ((hx + ax + motion[0].abs()).ceil() as i64).clamp(0, w);
    let y0 = ((hy - ay - motion[1].abs()).floor() as i64).clamp(0, h);
    let y1 = ((hy + ay + motion[1].abs()).ceil() as i64).clamp(0, h);
    let taps = ((motion[0].hypot(motion[1]) * 2.0).ceil() as usize).clamp(1, 6);
    for y in y0..y1 {
        for x in x0..x1 {
            let mut acc = [0f32; 4];
            for k in 0..taps {
                let t = if taps == 1 { 0.0 } else { k as f32 / (taps - 1) as f32 - 0.5 };
                let p = [x as f32 + 0.5 - motion[0] * t * 2.0, y as f32 + 0.5 - motion[1] * t * 2.0];
                let a = head_alpha(p, c, side);
                if a <= 0.0 {
                    continue;
                }
                let s = sample(photo, (p[0] - c[0]) / scale + PHOTO / 2.0, (p[1] - c[1]) / scale + PHOTO / 2.0);
                for ch in 0..3 {
                    acc[ch] += a * s[ch];
                }
                acc[3] += a;
            }
            if acc[3] <= 0.0 {
                continue;
            }
            let a = acc[3] / taps as f32;
            let px = img.get_pixel_mut(x as u32, y as u32);
            for ch in 0..3 {
                let fg = acc[ch] / acc[3];
                px.0[ch] = (px.0[ch] as f32 * (1.0 - a) + fg * a).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Bilinear sample at photo coordinates (pixel centres at +0.5), edges clamped.
fn sample(photo: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (w, h) = (photo.width() as i64, photo.height() as i64);
    let (fx, fy) = (x - 0.5, y - 0.5);
    let (x0, y0) = (fx.floor(), fy.floor());
    let (tx, ty) = (fx - x0, fy - y0);
    let at = |xi: i64, yi: i64| -> Rgb<u8> { *photo.get_pixel(xi.clamp(0, w - 1) as u32, yi.clamp(0, h - 1) as u32) };
    let (x0, y0) = (x0 as i64, y0 as i64);
    let (a, b, c, d) = (at(x0, y0), at(x0 + 1, y0), at(x0, y0 + 1), at(x0 + 1, y0 + 1));
    let mut out = [0f32; 3];
    for ch in 0..3 {
        let top = a.0[ch] as f32 * (1.0 - tx) + b.0[ch] as f32 * tx;
        let bottom = c.0[ch] as f32 * (1.0 - tx) + d.0[ch] as f32 * tx;
        out[ch] = top * (1.0 - ty) + bottom * ty;
    }
    out
}
