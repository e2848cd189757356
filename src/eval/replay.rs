//! A generated clip through today's engine: the video decoded by `ffmpeg`, every frame analysed
//! by [`Inference`] in order (detect, align, quality gate, embed), and the watch list the
//! manifest asks for, padded with distractor identities. The analyses are kept (without the
//! face chips) so that several rules, or one rule at several thresholds, decide on the same
//! frames (see [`super::rule`]).

use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use image::RgbImage;
use tokio::sync::oneshot;

use super::clip::ClipManifest;
use super::rng::Rng;
use crate::error::{Error, Result};
use crate::inference::{Analysis, Inference, Mode};
use crate::pipeline::Face;
use crate::vision::decode::{DEFAULT_MAX_PIXELS, decode_file};
use crate::vision::quality::QualityGate;
use crate::watchlist::index::ListIndex;
use crate::watchlist::store::TemplateRow;

/// Frames in the engine at once: enough to keep both stages busy, well under its queue.
const WINDOW: usize = 4;
/// What ffmpeg may say on stderr before it is cut (a broken file can be chatty).
const MAX_STDERR: u64 = 16 << 10;

/// One frame's faces as the engine saw them (chips dropped; embeddings kept).
pub struct AnalysedFrame {
    pub frame: u64,
    /// Seconds from the clip's start.
    pub time: f64,
    pub faces: Vec<Face>,
    pub faces_skipped: usize,
}

/// Decodes `video` to `width`x`height` rgb24 frames with ffmpeg and hands each to `each`, in
/// order. At most `max_frames` are read (the clip's own count bounds a hostile file).
pub fn decode_video(
    video: &Path,
    width: u32,
    height: u32,
    max_frames: u64,
    mut each: impl FnMut(RgbImage) -> Result<()>,
) -> Result<u64> {
    if width == 0 || height == 0 || u64::from(width) * u64::from(height) > DEFAULT_MAX_PIXELS {
        return Err(Error::Invalid(format!("frame size {width}x{height}")));
    }
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(video)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", &format!("{width}x{height}"), "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("ffmpeg", e))?;
    let missing = || Error::io("ffmpeg", std::io::Error::other("no pipe"));
    let mut stdout = child.stdout.take().ok_or_else(missing)?;
    let stderr = child.stderr.take().ok_or_else(missing)?;
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.take(MAX_STDERR).read_to_string(&mut s);
        s
    });
    let size = width as usize * height as usize * 3;
    let mut n = 0;
    let mut result = Ok(());
    while n < max_frames {
        let mut buf = vec![0u8; size];
        match read_full(&mut stdout, &mut buf) {
            Ok(0) => break,
            Ok(got) if got < size => {
                result = Err(Error::Invalid(format!("{}: frame {n} cut short", video.display())));
                break;
            }
            Ok(_) => {}
            Err(e) => {
                result = Err(Error::io(video, e));
                break;
            }
        }
        let img = RgbImage::from_raw(width, height, buf).ok_or_else(|| Error::Invalid("frame buffer".into()))?;
        if let Err(e) = each(img) {
            result = Err(e);
            break;
        }
        n += 1;
    }
    drop(stdout);
    // Stopped early (a bound, an error): ffmpeg must not outlive the read.
    let _ = child.kill();
    let status = child.wait().map_err(|e| Error::io("ffmpeg", e))?;
    let said = errors.join().unwrap_or_default();
    result?;
    if n < max_frames && !status.success() {
        return Err(Error::io(video, std::io::Error::other(format!("ffmpeg {status}: {}", said.trim()))));
    }
    Ok(n)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Submits images to the engine keeping up to [`WINDOW`] in flight, answers in order.
struct InOrder<'a> {
    engine: &'a Inference,
    mode: Mode,
    waiting: VecDeque<oneshot::Receiver<Result<Analysis>>>,
}

impl<'a> InOrder<'a> {
    fn new(engine: &'a Inference, mode: Mode) -> Self {
        Self { engine, mode, waiting: VecDeque::new() }
    }

    /// Queues `img`; returns the oldest answer once the window is full.
    fn push(&mut self, img: RgbImage) -> Result<Option<Result<Analysis>>> {
        self.waiting.push_back(self.engine.submit_image(img, self.mode.clone())?);
        if self.waiting.len() >= WINDOW { self.pop() } else { Ok(None) }
    }

    fn pop(&mut self) -> Result<Option<Result<Analysis>>> {
        match self.waiting.pop_front() {
            Some(rx) => Ok(Some(rx.blocking_recv().map_err(|_| Error::ShuttingDown)?)),
            None => Ok(None),
        }
    }
}

/// Every frame of the clip in `dir` through the engine in live mode with `gate`.
pub fn analyse_clip(engine: &Inference, dir: &Path, m: &ClipManifest, gate: QualityGate) -> Result<Vec<AnalysedFrame>> {
    // The manifest's count is a claim: grow as frames really arrive.
    let mut frames = Vec::with_capacity(m.frames.min(1 << 16) as usize);
    let fps = m.fps.max(1) as f64;
    let keep = |a: Analysis, frames: &mut Vec<AnalysedFrame>| {
        let frame = frames.len() as u64;
        let mut faces = a.faces;
        for f in &mut faces {
            f.chip = RgbImage::new(0, 0);
        }
        frames.push(AnalysedFrame { frame, time: frame as f64 / fps, faces, faces_skipped: a.faces_skipped });
    };
    let mut q = InOrder::new(engine, Mode::Live(gate));
    decode_video(&dir.join(&m.video), m.width, m.height, m.frames, |img| {
        if let Some(a) = q.push(img)? {
            keep(a?, &mut frames);
        }
        Ok(())
    })?;
    while let Some(a) = q.pop()? {
        keep(a?, &mut frames);
    }
    if frames.len() as u64 != m.frames {
        return Err(Error::Invalid(format!("{}: {} frames decoded, {} expected", m.video, frames.len(), m.frames)));
    }
    Ok(frames)
}

/// The watch list a clip is measured against.
pub struct EvalList {
    pub index: ListIndex,
    pub subjects: usize,
    /// The clip's enrolled subjects that got at least one template.
    pub enrolled: usize,
    /// Photos the enrollment gate refused (clip subjects and distractors).
    pub refused: usize,
    /// The templates the index was built from (for analyses of scores beyond the top hit).
    pub templates: Vec<TemplateRow>,
}

/// Enrolls the manifest's subjects from their enrollment photos, then distractor identities
/// (never shown in the clip; one photo each, chosen by `seed`) until the list holds `size`
/// subjects, through the engine's enrollment mode as the service does.
pub fn build_list(engine: &Inference, m: &ClipManifest, size: usize, seed: u64, factory: &str) -> Result<EvalList> {
    let mut jobs: Vec<(String, std::path::PathBuf)> = Vec::new();
    for e in &m.enroll {
        jobs.extend(e.photos.iter().map(|p| (e.subject.clone(), m.faces_dir.join(p))));
    }
    let shown = m.identities();
    let mut others: Vec<std::path::PathBuf> = std::fs::read_dir(&m.faces_dir)
        .map_err(|e| Error::io(&m.faces_dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !shown.contains(n)))
        .collect();
    others.sort();
    Rng::derive(seed, 2).shuffle(&mut others);

    let spec = engine.embedder_spec().clone();
    let mut templates: Vec<TemplateRow> = Vec::new();
    let mut refused = 0;
    let mut add = |subject: &str, a: Result<Analysis>, templates: &mut Vec<TemplateRow>| match a
        .ok()
        .and_then(|a| a.faces.into_iter().find_map(|f| f.embedding))
    {
        Some(embedding) => templates.push(TemplateRow {
            id: templates.len() as i64 + 1,
            subject: subject.to_string(),
            name: None,
            model: spec.name.clone(),
            embedding,
        }),
        None => refused += 1,
    };
    let mode = Mode::Enroll(QualityGate::enrollment());
    let mut run = |batch: &[(String, std::path::PathBuf)], templates: &mut Vec<TemplateRow>| -> Result<()> {
        let mut q = InOrder::new(engine, mode.clone());
        let mut names = batch.iter().map(|b| b.0.as_str());
        for (_, path) in batch {
            if let Some(a) = q.push(decode_file(path, DEFAULT_MAX_PIXELS)?)? {
                add(names.next().unwrap_or_default(), a, templates);
            }
        }
        while let Some(a) = q.pop()? {
            add(names.next().unwrap_or_default(), a, templates);
        }
        Ok(())
    };
    run(&jobs, &mut templates)?;
    let subjects =
        |t: &[TemplateRow]| t.iter().map(|t| t.subject.as_str()).collect::<std::collections::BTreeSet<_>>().len();
    let enrolled = subjects(&templates);
    // Distractors in batches until the list is full (some photos are refused).
    let mut next = others.into_iter();
    while subjects(&templates) < size {
        let need = size - subjects(&templates);
        let batch: Vec<(String, std::path::PathBuf)> = next
            .by_ref()
            .take(need)
            .filter_map(|dir| {
                let name = dir.file_name()?.to_str()?.to_string();
                let mut photos: Vec<_> = std::fs::read_dir(&dir).ok()?.flatten().map(|e| e.path()).collect();
                photos.sort();
                Some((name, photos.into_iter().next()?))
            })
            .collect();
        if batch.is_empty() {
            break;
        }
        run(&batch, &mut templates)?;
    }
    let n = subjects(&templates);
    let index = ListIndex::build(&templates, factory, &spec.name, spec.embedding_size as u32)?;
    Ok(EvalList { index, subjects: n, enrolled, refused, templates })
}
