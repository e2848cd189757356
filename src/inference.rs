//! Model work off the async runtime, as a pipeline of threads joined by bounded queues:
//! ingest (encoded frames) -> decode thread -> detect workers (detect, align, quality) -> one
//! embedder thread, which batches the faces of whatever frames are waiting into one model call.
//! Decoding has its own thread so that it overlaps the models instead of adding to the
//! detector's time per frame (a 2 MP JPEG costs about 7 ms, a tenth of the detector's); its
//! output queue is short, so at most a few decoded frames are held at once. When no frame is in
//! the models and none waits, the models' cores are idle, and a large JPEG is decoded on two
//! threads: a lone frame (a quiet hall) gets its alert sooner, and a busy stream pays nothing.
//! Callers get the result on a oneshot channel. A full ingest queue is refused at once (the API
//! answers 503), and so is a frame whose bytes do not fit the memory budget: each frame
//! reserves what it will allocate (body, decoded pixels, chips; see [`FrameCost`]) from its
//! header when it is queued and gives it back when its [`Analysis`] is dropped, so the frames
//! held at once are bounded by bytes, not only by count. Faces per frame are capped too.
//!
//! The models are whatever [`Backend`] the engine is built from (the ONNX models for the
//! service, [`crate::backend::fake`] in tests). Frames come in encoded ([`Inference::submit`])
//! or already decoded ([`Inference::submit_image`], no JPEG round trip), under the same bounds.
//! Each job carries the tracing span it was submitted in, and the model threads enter it while
//! they work on that job, so their logs land under the request (or camera frame) they serve.
//! A camera's frames come back in order through a [`Feed`].

pub mod feed;

pub use feed::{Feed, FeedItem, FeedOptions};

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use image::RgbImage;
use tokio::sync::oneshot;
use tracing::Span;

use crate::backend::onnx::OnnxBackend;
use crate::backend::{Backend, Detect, Embed, Models};
use crate::error::{Error, Result};
use crate::manifest::EmbedderSpec;
use crate::memory::{FrameCost, MemoryBudget, Reservation};
use crate::metrics::{Metrics, Stage};
use crate::pipeline::{Face, PipelineOptions, largest_detections, prepare_faces};
use crate::vision::decode::decode_with;
use crate::vision::detect::DetectorOptions;
use crate::vision::quality::{QualityGate, Rejection};
use crate::watchlist::enroll;

#[derive(Debug, Clone)]
pub struct InferenceOptions {
    pub pipeline: PipelineOptions,
    /// Detector sessions, each on its own thread.
    pub detect_workers: usize,
    /// Frames that may wait for a detect worker; more are refused.
    pub queue_capacity: usize,
    pub max_pixels: u64,
    /// Seconds a refused client is told to wait.
    pub retry_after_s: u64,
    /// Bytes that queued and analysed frames may hold at once; more are refused.
    pub memory_budget_bytes: u64,
    /// Live frames keep their largest faces up to this many; the rest are counted as skipped.
    pub max_faces: usize,
    /// Posted frames keep detections scoring at least this. The detector itself runs at
    /// `pipeline.detector.score_threshold`, which may be lower: a tracked camera
    /// (`Mode::Track`) keeps weaker detections, because its tracker continues a track with a
    /// face half turned away instead of losing it.
    pub live_threshold: f32,
    /// Enrollment photos keep detections scoring at least this (`[inference] detect_threshold`):
    /// a weaker one must not make a photo look like two faces. Separate from `live_threshold`
    /// so that an evaluation can analyse frames lower and still enroll as the service does.
    pub enroll_threshold: f32,
    /// A tracked camera's frame (`Mode::Track`) is detected scaled down so that its longer side
    /// is at most this (0 = as posted frames); its faces are aligned from the full frame.
    pub track_detect_max_side: u32,
}

/// The default `[tracking] detect_max_side`: a 1080p frame is detected at 1280x720, where every
/// face the tracker can use (from about 32 px) is still found (BENCHMARKS.md, "Pulled cameras").
pub const DEFAULT_TRACK_DETECT_MAX_SIDE: u32 = 1280;

impl Default for InferenceOptions {
    fn default() -> Self {
        Self {
            pipeline: PipelineOptions::default(),
            detect_workers: 1,
            queue_capacity: 32,
            max_pixels: crate::vision::decode::DEFAULT_MAX_PIXELS,
            retry_after_s: 1,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_MB << 20,
            max_faces: DEFAULT_MAX_FACES,
            live_threshold: DetectorOptions::default().score_threshold,
            enroll_threshold: DetectorOptions::default().score_threshold,
            track_detect_max_side: DEFAULT_TRACK_DETECT_MAX_SIDE,
        }
    }
}

/// Holds the largest frame the default `max_pixels` allows (40 MP: about 810 MiB while it is
/// detected, see [`FrameCost::worst`]), or about 70 HD frames (12-14 MiB each) at once.
pub const DEFAULT_MEMORY_BUDGET_MB: u64 = 1024;

/// More faces than a camera's view of an arrival hall holds at a usable size.
pub const DEFAULT_MAX_FACES: usize = 64;

/// What to do with the faces of an image.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Every face is a probe; faces failing the gate are reported but not embedded.
    Live(QualityGate),
    /// A watch-list photo: only the one clear face is embedded (see [`enroll::choose`]).
    Enroll(QualityGate),
    /// A tracked camera's frame: faces are found, aligned and measured as in `Live`, but not
    /// embedded: the caller embeds only the faces that can change a decision
    /// ([`Inference::embed_faces`]).
    Track(QualityGate),
}

impl Mode {
    fn embeds(&self) -> bool {
        !matches!(self, Mode::Track(_))
    }
}

/// One analysed image. Its bytes stay reserved in the memory budget until it is dropped.
pub struct Analysis {
    pub image: RgbImage,
    pub faces: Vec<Face>,
    /// Faces found beyond the cap on faces per frame (the smallest), not analysed.
    pub faces_skipped: usize,
    /// Enrollment only: why the photo has no face to enroll.
    pub refused: Option<Rejection>,
    _memory: Reservation,
}

type Reply = oneshot::Sender<Result<Analysis>>;

/// What a caller hands in: an encoded image for the decode thread, or one decoded already.
enum Input {
    Encoded(Bytes),
    Decoded(RgbImage),
}

struct DetectJob {
    input: Input,
    mode: Mode,
    reply: Reply,
    memory: Reservation,
    /// The submitter's span, entered by each model thread while it works on this job.
    span: Span,
}

struct DecodedJob {
    image: RgbImage,
    mode: Mode,
    reply: Reply,
    in_flight: InFlight,
    memory: Reservation,
    span: Span,
}

struct EmbedJob {
    analysis: Analysis,
    reply: Reply,
    in_flight: InFlight,
    span: Span,
    /// An enrollment photo under an embedder with `enroll_mirrored`: each face is embedded with
    /// its mirror image too, and its template is their mean.
    mirror: bool,
}

/// Counts a frame from the moment it is decoded until it is answered (dropped first, so a
/// client that waits for the answer before sending its next frame finds the models idle).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }

    /// Leaves the count, then answers.
    fn answer(self, reply: Reply, res: Result<Analysis>) {
        drop(self);
        let _ = reply.send(res);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Inference {
    ingest: Mutex<Option<Sender<DetectJob>>>,
    /// Faces chosen after detection ([`Inference::embed_faces`]) go straight to the embedder.
    embed: Mutex<Option<Sender<EmbedJob>>>,
    ingest_rx: Receiver<DetectJob>,
    embed_rx: Receiver<EmbedJob>,
    in_flight: Arc<AtomicUsize>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    retry_after_s: u64,
    budget: MemoryBudget,
    cost: FrameCost,
    track_max_side: u32,
    models: Models,
    /// The execution provider the model sessions run on ("CPU", "CUDA", "fake", ...).
    pub provider: &'static str,
}

impl Inference {
    /// The ONNX models of `models_dir` (see [`Inference::with_backend`]).
    pub fn start(models_dir: &Path, opts: &InferenceOptions, metrics: Arc<Metrics>) -> Result<Self> {
        Self::with_backend(&OnnxBackend::open(models_dir, &opts.pipeline)?, opts, metrics)
    }

    /// Makes every model session now (so a missing or corrupt model fails the start: one
    /// detector per detect worker, one embedder) and starts the threads.
    pub fn with_backend(backend: &dyn Backend, opts: &InferenceOptions, metrics: Arc<Metrics>) -> Result<Self> {
        let models = backend.models().clone();
        let embedder = backend.embedder()?;
        let mut detectors = Vec::new();
        for _ in 0..opts.detect_workers.max(1) {
            detectors.push(backend.detector()?);
        }
        let spec = &models.embedder;
        let cost = FrameCost {
            max_pixels: opts.max_pixels,
            detect_max_side: opts.pipeline.detector.max_side,
            max_faces: opts.max_faces.max(1),
            face_bytes: crate::memory::face_bytes(spec.input_size, spec.embedding_size),
        };
        let budget = MemoryBudget::new(opts.memory_budget_bytes);
        let (ingest_tx, ingest_rx) = crossbeam_channel::bounded::<DetectJob>(opts.queue_capacity.max(1));
        // One decoded frame waiting per detect worker: decoded frames are large, encoded ones small.
        let (decoded_tx, decoded_rx) = crossbeam_channel::bounded::<DecodedJob>(detectors.len());
        // Each stage blocks on a full queue after it: back-pressure reaches the ingest queue.
        let (embed_tx, embed_rx) = crossbeam_channel::bounded::<EmbedJob>(opts.queue_capacity.max(1));
        let mut threads = Vec::new();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (rx, m, c, count) = (ingest_rx.clone(), metrics.clone(), cost.clone(), in_flight.clone());
        let (retry_after_s, side) = (opts.retry_after_s, opts.track_detect_max_side);
        threads.push(spawn("decode", move || decode_loop(c, side, retry_after_s, rx, decoded_tx, count, m))?);
        for (i, det) in detectors.into_iter().enumerate() {
            let (rx, tx, m) = (decoded_rx.clone(), embed_tx.clone(), metrics.clone());
            let limits = Limits {
                max_faces: cost.max_faces,
                live_threshold: opts.live_threshold,
                enroll_threshold: opts.enroll_threshold,
                track_max_side: opts.track_detect_max_side,
            };
            let spec = models.embedder.clone();
            threads.push(spawn(&format!("detect-{i}"), move || detect_loop(det, spec, limits, rx, tx, m))?);
        }
        let (rx, m, max_batch) = (embed_rx.clone(), metrics.clone(), opts.pipeline.max_batch);
        threads.push(spawn("embed", move || embed_loop(embedder, max_batch, rx, m))?);
        Ok(Self {
            ingest: Mutex::new(Some(ingest_tx)),
            embed: Mutex::new(Some(embed_tx)),
            ingest_rx,
            embed_rx,
            in_flight,
            threads: Mutex::new(threads),
            retry_after_s: opts.retry_after_s,
            budget,
            cost,
            track_max_side: opts.track_detect_max_side,
            provider: backend.provider(),
            models,
        })
    }

    /// Queues an image; `Overloaded` at once when the ingest queue is full or the image's
    /// bytes do not fit the memory budget. A bad image is the decoder's to refuse (an
    /// enrollment reports it per photo).
    pub fn submit(&self, bytes: Bytes, mode: Mode) -> Result<oneshot::Receiver<Result<Analysis>>> {
        let mut need = self.cost.admit(&bytes);
        if matches!(mode, Mode::Track(_)) && self.track_max_side > 0 {
            // A posted frame's size is known only once decoded: the largest copy the limit allows.
            need = need.saturating_add((u64::from(self.track_max_side) + 1).pow(2) * 3);
        }
        self.enqueue(Input::Encoded(bytes), need, mode)
    }

    /// Queues a decoded image (a camera's frame from a video decoder): no encoding round trip,
    /// the same bounds as [`Inference::submit`]. It reserves what it holds from its real size;
    /// one over `max_pixels` is refused as an encoded one would be.
    pub fn submit_image(&self, image: RgbImage, mode: Mode) -> Result<oneshot::Receiver<Result<Analysis>>> {
        let (width, height) = image.dimensions();
        let pixels = u64::from(width) * u64::from(height);
        if pixels == 0 {
            return Err(Error::Invalid(format!("image is {width}x{height}: no pixels")));
        }
        let max_pixels = self.cost.max_pixels;
        if pixels > max_pixels {
            return Err(Error::ImageTooLarge { width, height, pixels, max_pixels });
        }
        let mut need = self.cost.held(width, height);
        if matches!(mode, Mode::Track(_)) {
            need = need.saturating_add(track_copy_bytes(&self.cost, self.track_max_side, width, height));
        }
        self.enqueue(Input::Decoded(image), need, mode)
    }

    fn enqueue(&self, input: Input, need: u64, mode: Mode) -> Result<oneshot::Receiver<Result<Analysis>>> {
        let memory = self
            .budget
            .try_reserve(need)
            .ok_or(Error::Overloaded { queue: "frame memory", retry_after_s: self.retry_after_s })?;
        let (reply, rx) = oneshot::channel();
        let guard = self.ingest.lock().map_err(|_| Error::ShuttingDown)?;
        let tx = guard.as_ref().ok_or(Error::ShuttingDown)?;
        match tx.try_send(DetectJob { input, mode, reply, memory, span: Span::current() }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(Error::Overloaded { queue: "ingest", retry_after_s: self.retry_after_s }),
            Err(TrySendError::Disconnected(_)) => Err(Error::ShuttingDown),
        }
    }

    /// Embeds the given faces (chosen from `Mode::Track` analyses) in the embedder's next
    /// batch, beside other frames' faces; faces refused by their gate are not embedded. The
    /// answer is an [`Analysis`] without an image holding the faces, each with its embedding.
    /// `Overloaded` at once when the embedder's queue is full or the chips do not fit the
    /// memory budget.
    pub fn embed_faces(&self, faces: Vec<Face>) -> Result<oneshot::Receiver<Result<Analysis>>> {
        let (reply, rx) = oneshot::channel();
        if !faces.iter().any(Face::accepted) {
            let memory = self
                .budget
                .try_reserve(0)
                .ok_or(Error::Overloaded { queue: "frame memory", retry_after_s: self.retry_after_s })?;
            let _ = reply
                .send(Ok(Parts { image: RgbImage::new(0, 0), faces, faces_skipped: 0, refused: None }.with(memory)));
            return Ok(rx);
        }
        let need = self.cost.face_bytes.saturating_mul(faces.len() as u64);
        let memory = self
            .budget
            .try_reserve(need)
            .ok_or(Error::Overloaded { queue: "frame memory", retry_after_s: self.retry_after_s })?;
        let analysis = Parts { image: RgbImage::new(0, 0), faces, faces_skipped: 0, refused: None }.with(memory);
        let guard = self.embed.lock().map_err(|_| Error::ShuttingDown)?;
        let tx = guard.as_ref().ok_or(Error::ShuttingDown)?;
        let job = EmbedJob {
            analysis,
            reply,
            in_flight: InFlight::enter(&self.in_flight),
            span: Span::current(),
            mirror: false,
        };
        match tx.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(Error::Overloaded { queue: "embed", retry_after_s: self.retry_after_s }),
            Err(TrySendError::Disconnected(_)) => Err(Error::ShuttingDown),
        }
    }

    /// Analyses one image and waits for the result.
    pub async fn analyse(&self, bytes: Bytes, mode: Mode) -> Result<Analysis> {
        self.submit(bytes, mode)?.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Analyses one decoded image and waits for the result.
    pub async fn analyse_image(&self, image: RgbImage, mode: Mode) -> Result<Analysis> {
        self.submit_image(image, mode)?.await.map_err(|_| Error::ShuttingDown)?
    }

    /// A camera's stream of decoded frames, analysed in `mode` and handed back in the order
    /// they were pushed (see [`Feed`]).
    pub fn feed(&self, camera: &str, mode: Mode, opts: FeedOptions) -> Feed<'_> {
        Feed::new(self, camera, mode, opts)
    }

    pub fn queue_depths(&self) -> (usize, usize) {
        (self.ingest_rx.len(), self.embed_rx.len())
    }

    /// Bytes reserved by frames now, and the budget's limit.
    pub fn memory_reserved(&self) -> (u64, u64) {
        (self.budget.used(), self.budget.limit())
    }

    /// Frames decoded and not yet answered (in the detector, align or embedder).
    pub fn frames_in_models(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Every worker thread is running.
    pub fn alive(&self) -> bool {
        self.threads.lock().map(|t| !t.is_empty() && t.iter().all(|h| !h.is_finished())).unwrap_or(false)
    }

    /// Refuses new work, lets the workers finish what is queued, and joins them (blocking).
    pub fn shutdown(&self) {
        if let Ok(mut g) = self.ingest.lock() {
            g.take();
        }
        if let Ok(mut g) = self.embed.lock() {
            g.take();
        }
        let threads = self.threads.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
    }

    pub fn embedder_spec(&self) -> &EmbedderSpec {
        &self.models.embedder
    }

    /// The models' names and hashes (for alerts) and the embedder's spec, from the backend.
    pub fn models(&self) -> &Models {
        &self.models
    }
}

/// The tracked detector's scaled copy of a `width` x `height` frame (longer side `side`), when
/// [`FrameCost::held`] has not counted one already (it counts the copy of the detector's own,
/// larger `max_side`).
fn track_copy_bytes(cost: &FrameCost, side: u32, width: u32, height: u32) -> u64 {
    let (side, longest) = (u64::from(side), u64::from(width.max(height)));
    let counted = cost.detect_max_side > 0 && longest > u64::from(cost.detect_max_side);
    if side == 0 || longest <= side || counted {
        return 0;
    }
    let scaled = |v: u32| (u64::from(v) * side).div_ceil(longest) + 1;
    scaled(width) * scaled(height) * 3
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("facewatch-{name}"))
        .spawn(f)
        .map_err(|e| Error::Runtime(format!("starting thread {name}: {e}")))
}

fn decode_loop(
    cost: FrameCost,
    track_max_side: u32,
    retry_after_s: u64,
    rx: Receiver<DetectJob>,
    tx: Sender<DecodedJob>,
    in_flight: Arc<AtomicUsize>,
    m: Arc<Metrics>,
) {
    let spare_core = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    while let Ok(DetectJob { input, mode, reply, mut memory, span }) = rx.recv() {
        let entered = span.enter();
        let res = match input {
            // Already decoded: its reservation was made from its real size.
            Input::Decoded(image) => Ok(image),
            Input::Encoded(bytes) => {
                let t = Instant::now();
                let idle = spare_core && rx.is_empty() && in_flight.load(Ordering::SeqCst) == 0;
                let threads = if idle { 2 } else { 1 };
                // A decoder panic must cost one frame, not the thread.
                let res = std::panic::catch_unwind(AssertUnwindSafe(|| decode_with(&bytes, cost.max_pixels, threads)))
                    .unwrap_or_else(|_| Err(Error::Runtime("internal error while decoding the image".into())));
                drop(bytes);
                m.stage(Stage::Decode).observe(t.elapsed());
                tracing::trace!(ok = res.is_ok(), threads, "decoded");
                // The body is gone and the decoder's peak is over: keep what the frame holds from
                // now on. A frame larger than its header said (a header that only libjpeg-turbo
                // reads) must still fit, or it is refused; only this one decode can be over its
                // reservation.
                res.and_then(|image| {
                    let (w, h) = image.dimensions();
                    let copy =
                        if matches!(mode, Mode::Track(_)) { track_copy_bytes(&cost, track_max_side, w, h) } else { 0 };
                    if memory.resize(cost.held(w, h).saturating_add(copy)) {
                        Ok(image)
                    } else {
                        Err(Error::Overloaded { queue: "frame memory", retry_after_s })
                    }
                })
            }
        };
        drop(entered);
        match res {
            Ok(image) => {
                let job = DecodedJob { image, mode, reply, in_flight: InFlight::enter(&in_flight), memory, span };
                if let Err(e) = tx.send(job) {
                    let DecodedJob { reply, in_flight, .. } = e.0;
                    in_flight.answer(reply, Err(Error::ShuttingDown));
                }
            }
            Err(e) => {
                // Its bytes are back before the answer, as for every answered frame.
                drop(memory);
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// What a detect worker keeps of a frame's detections.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_faces: usize,
    live_threshold: f32,
    enroll_threshold: f32,
    track_max_side: u32,
}

fn detect_loop(
    mut det: Box<dyn Detect>,
    spec: EmbedderSpec,
    limits: Limits,
    rx: Receiver<DecodedJob>,
    tx: Sender<EmbedJob>,
    m: Arc<Metrics>,
) {
    while let Ok(DecodedJob { image, mode, reply, in_flight, memory, span }) = rx.recv() {
        let entered = span.enter();
        // A model panic must cost one frame, not the worker.
        let res = std::panic::catch_unwind(AssertUnwindSafe(|| analyse(det.as_mut(), &spec, limits, image, &mode, &m)))
            .unwrap_or_else(|_| Err(Error::Runtime("internal error while analysing the image".into())))
            .map(|parts| parts.with(memory));
        match &res {
            Ok(a) => tracing::trace!(faces = a.faces.len(), skipped = a.faces_skipped, "detected"),
            Err(e) => tracing::debug!(error = %e, "detection failed"),
        }
        drop(entered);
        match res {
            Ok(a) if mode.embeds() && a.faces.iter().any(Face::accepted) => {
                let mirror = spec.enroll_mirrored && matches!(mode, Mode::Enroll(_));
                if let Err(e) = tx.send(EmbedJob { analysis: a, reply, in_flight, span, mirror }) {
                    let EmbedJob { reply, in_flight, .. } = e.0;
                    in_flight.answer(reply, Err(Error::ShuttingDown));
                }
            }
            other => in_flight.answer(reply, other),
        }
    }
}

/// An [`Analysis`] before its memory reservation joins it.
struct Parts {
    image: RgbImage,
    faces: Vec<Face>,
    faces_skipped: usize,
    refused: Option<Rejection>,
}

impl Parts {
    fn with(self, memory: Reservation) -> Analysis {
        let Parts { image, faces, faces_skipped, refused } = self;
        Analysis { image, faces, faces_skipped, refused, _memory: memory }
    }
}

fn analyse(
    det: &mut dyn Detect,
    spec: &EmbedderSpec,
    limits: Limits,
    image: RgbImage,
    mode: &Mode,
    m: &Metrics,
) -> Result<Parts> {
    let Limits { max_faces, live_threshold, enroll_threshold, track_max_side } = limits;
    let t = Instant::now();
    // A tracked camera is detected on a smaller copy (the boxes come back in the frame's
    // pixels); the faces are aligned and measured from the full frame below.
    let mut dets = match mode {
        Mode::Track(_) => det.detect_within(&image, track_max_side)?,
        _ => det.detect(&image)?,
    };
    m.stage(Stage::Detect).observe(t.elapsed());
    match mode {
        Mode::Live(_) => dets.retain(|d| d.score >= live_threshold),
        Mode::Enroll(_) => dets.retain(|d| d.score >= enroll_threshold),
        Mode::Track(_) => {}
    }
    let t = Instant::now();
    let (faces, faces_skipped, refused) = match mode {
        // A crowd (or a crafted frame) must not cost a chip per detection: the largest faces
        // are the ones an officer can use.
        Mode::Live(gate) | Mode::Track(gate) => {
            let (dets, skipped) = largest_detections(dets, max_faces);
            (prepare_faces(spec, &image, dets, Some(gate)), skipped, None)
        }
        Mode::Enroll(gate) => match enroll::choose(&dets) {
            Ok(d) => (prepare_faces(spec, &image, vec![d], Some(gate)), 0, None),
            Err(r) => (Vec::new(), 0, Some(r)),
        },
    };
    if !faces.is_empty() {
        m.stage(Stage::Align).observe(t.elapsed());
    }
    Ok(Parts { image, faces, faces_skipped, refused })
}

fn embed_loop(mut emb: Box<dyn Embed>, max_batch: usize, rx: Receiver<EmbedJob>, m: Arc<Metrics>) {
    // Model inputs a job takes: a mirrored job two per face.
    let accepted =
        |j: &EmbedJob| j.analysis.faces.iter().filter(|f| f.accepted()).count() * (1 + usize::from(j.mirror));
    while let Ok(first) = rx.recv() {
        // Batch the faces of every frame already waiting, up to the model's batch size.
        let mut n = accepted(&first);
        let mut jobs = vec![first];
        while n < max_batch {
            match rx.try_recv() {
                Ok(j) => {
                    n += accepted(&j);
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let t = Instant::now();
        let res = {
            let mirrors: Vec<Vec<RgbImage>> = jobs
                .iter()
                .map(|j| {
                    let faces = j.analysis.faces.iter().filter(|f| f.accepted() && j.mirror);
                    faces.map(|f| crate::vision::embed::mirrored(&f.chip)).collect()
                })
                .collect();
            // Each job's faces in order, a mirrored job's mirrors after its faces.
            let chips: Vec<&RgbImage> = jobs
                .iter()
                .zip(&mirrors)
                .flat_map(|(j, m)| j.analysis.faces.iter().filter(|f| f.accepted()).map(|f| &f.chip).chain(m))
                .collect();
            std::panic::catch_unwind(AssertUnwindSafe(|| emb.embed(&chips)))
                .unwrap_or_else(|_| Err(Error::Runtime("internal error in the embedder".into())))
        };
        let took = t.elapsed();
        m.stage(Stage::Embed).observe(took);
        m.embed_calls.inc();
        m.embed_faces.inc_by(n as u64);
        // One model call served several frames: each frame's span gets its own record of it.
        let (frames, ms) = (jobs.len(), took.as_secs_f64() * 1e3);
        match res {
            Ok(embs) => {
                let mut it = embs.into_iter();
                for mut j in jobs {
                    let mut faces = 0;
                    for f in j.analysis.faces.iter_mut().filter(|f| f.accepted()) {
                        f.embedding = it.next();
                        faces += 1;
                    }
                    if j.mirror {
                        for f in j.analysis.faces.iter_mut().filter(|f| f.accepted()) {
                            if let (Some(e), Some(m)) = (f.embedding.as_mut(), it.next()) {
                                *e = crate::vision::embed::mirror_template(e, &m);
                            }
                        }
                    }
                    j.span.in_scope(|| tracing::trace!(faces, batch = n, frames, ms, "embedded"));
                    j.in_flight.answer(j.reply, Ok(j.analysis));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for EmbedJob { analysis, reply, in_flight, span, .. } in jobs {
                    drop(analysis);
                    span.in_scope(|| tracing::debug!(error = %msg, batch = n, frames, "embedding failed"));
                    in_flight.answer(reply, Err(Error::Runtime(msg.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
