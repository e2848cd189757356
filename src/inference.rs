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

use crate::error::{Error, Result};
use crate::manifest::{self, EmbedderSpec, Manifest};
use crate::memory::{FrameCost, MemoryBudget, Reservation};
use crate::metrics::{Metrics, Stage};
use crate::pipeline::{Face, PipelineOptions, largest_detections, prepare_faces};
use crate::vision::decode::decode_with;
use crate::vision::detect::Detector;
use crate::vision::embed::Embedder;
use crate::vision::quality::{QualityGate, Rejection};
use crate::vision::runtime;
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
}

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

struct DetectJob {
    bytes: Bytes,
    mode: Mode,
    reply: Reply,
    memory: Reservation,
}

struct DecodedJob {
    image: RgbImage,
    mode: Mode,
    reply: Reply,
    in_flight: InFlight,
    memory: Reservation,
}

struct EmbedJob {
    analysis: Analysis,
    reply: Reply,
    in_flight: InFlight,
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
    ingest_rx: Receiver<DetectJob>,
    embed_rx: Receiver<EmbedJob>,
    in_flight: Arc<AtomicUsize>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    retry_after_s: u64,
    budget: MemoryBudget,
    cost: FrameCost,
    pub manifest: Manifest,
    pub provider: &'static str,
}

impl Inference {
    /// Loads every session now (so a missing or corrupt model fails the start) and starts the threads.
    pub fn start(models_dir: &Path, opts: &InferenceOptions, metrics: Arc<Metrics>) -> Result<Self> {
        let manifest = Manifest::load(models_dir)?;
        if opts.pipeline.verify_models {
            manifest::verify_file(&manifest.detector_path(), &manifest.detector.sha256)?;
            manifest::verify_file(&manifest.embedder_path(), &manifest.embedder.sha256)?;
        }
        let rt = &opts.pipeline.runtime;
        let embedder = Embedder::new(
            runtime::session(&manifest.embedder_path(), rt)?,
            manifest.embedder.clone(),
            opts.pipeline.max_batch,
        );
        let mut detectors = Vec::new();
        for _ in 0..opts.detect_workers.max(1) {
            let s = runtime::session(&manifest.detector_path(), rt)?;
            detectors.push(Detector::new(s, manifest.detector.clone(), opts.pipeline.detector.clone()));
        }
        let spec = &manifest.embedder;
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
        let retry_after_s = opts.retry_after_s;
        threads.push(spawn("decode", move || decode_loop(c, retry_after_s, rx, decoded_tx, count, m))?);
        for (i, det) in detectors.into_iter().enumerate() {
            let (rx, tx, m) = (decoded_rx.clone(), embed_tx.clone(), metrics.clone());
            let (spec, max_faces) = (manifest.embedder.clone(), cost.max_faces);
            threads.push(spawn(&format!("detect-{i}"), move || detect_loop(det, spec, max_faces, rx, tx, m))?);
        }
        drop(embed_tx);
        let (rx, m, max_batch) = (embed_rx.clone(), metrics.clone(), opts.pipeline.max_batch);
        threads.push(spawn("embed", move || embed_loop(embedder, max_batch, rx, m))?);
        Ok(Self {
            ingest: Mutex::new(Some(ingest_tx)),
            ingest_rx,
            embed_rx,
            in_flight,
            threads: Mutex::new(threads),
            retry_after_s: opts.retry_after_s,
            budget,
            cost,
            provider: runtime::provider_name(rt),
            manifest,
        })
    }

    /// Queues an image; `Overloaded` at once when the ingest queue is full or the image's
    /// bytes do not fit the memory budget. A bad image is the decoder's to refuse (an
    /// enrollment reports it per photo).
    pub fn submit(&self, bytes: Bytes, mode: Mode) -> Result<oneshot::Receiver<Result<Analysis>>> {
        let need = self.cost.admit(&bytes);
        let memory = self
            .budget
            .try_reserve(need)
            .ok_or(Error::Overloaded { queue: "frame memory", retry_after_s: self.retry_after_s })?;
        let (reply, rx) = oneshot::channel();
        let guard = self.ingest.lock().map_err(|_| Error::ShuttingDown)?;
        let tx = guard.as_ref().ok_or(Error::ShuttingDown)?;
        match tx.try_send(DetectJob { bytes, mode, reply, memory }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(Error::Overloaded { queue: "ingest", retry_after_s: self.retry_after_s }),
            Err(TrySendError::Disconnected(_)) => Err(Error::ShuttingDown),
        }
    }

    /// Analyses one image and waits for the result.
    pub async fn analyse(&self, bytes: Bytes, mode: Mode) -> Result<Analysis> {
        self.submit(bytes, mode)?.await.map_err(|_| Error::ShuttingDown)?
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
        let threads = self.threads.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
    }

    pub fn embedder_spec(&self) -> &EmbedderSpec {
        &self.manifest.embedder
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("facewatch-{name}"))
        .spawn(f)
        .map_err(|e| Error::Runtime(format!("starting thread {name}: {e}")))
}

fn decode_loop(
    cost: FrameCost,
    retry_after_s: u64,
    rx: Receiver<DetectJob>,
    tx: Sender<DecodedJob>,
    in_flight: Arc<AtomicUsize>,
    m: Arc<Metrics>,
) {
    let spare_core = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    while let Ok(DetectJob { bytes, mode, reply, mut memory }) = rx.recv() {
        let t = Instant::now();
        let idle = spare_core && rx.is_empty() && in_flight.load(Ordering::SeqCst) == 0;
        let threads = if idle { 2 } else { 1 };
        // A decoder panic must cost one frame, not the thread.
        let res = std::panic::catch_unwind(AssertUnwindSafe(|| decode_with(&bytes, cost.max_pixels, threads)))
            .unwrap_or_else(|_| Err(Error::Runtime("internal error while decoding the image".into())));
        drop(bytes);
        m.stage(Stage::Decode).observe(t.elapsed());
        // The body is gone and the decoder's peak is over: keep what the frame holds from now on.
        // A frame larger than its header said (a header that only libjpeg-turbo reads) must
        // still fit, or it is refused; only this one decode can be over its reservation.
        let res = res.and_then(|image| {
            if memory.resize(cost.held(image.width(), image.height())) {
                Ok(image)
            } else {
                Err(Error::Overloaded { queue: "frame memory", retry_after_s })
            }
        });
        match res {
            Ok(image) => {
                let job = DecodedJob { image, mode, reply, in_flight: InFlight::enter(&in_flight), memory };
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

fn detect_loop(
    mut det: Detector,
    spec: EmbedderSpec,
    max_faces: usize,
    rx: Receiver<DecodedJob>,
    tx: Sender<EmbedJob>,
    m: Arc<Metrics>,
) {
    while let Ok(DecodedJob { image, mode, reply, in_flight, memory }) = rx.recv() {
        // A model panic must cost one frame, not the worker.
        let res = std::panic::catch_unwind(AssertUnwindSafe(|| analyse(&mut det, &spec, max_faces, image, &mode, &m)))
            .unwrap_or_else(|_| Err(Error::Runtime("internal error while analysing the image".into())))
            .map(|parts| parts.with(memory));
        match res {
            Ok(a) if a.faces.iter().any(Face::accepted) => {
                if let Err(e) = tx.send(EmbedJob { analysis: a, reply, in_flight }) {
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
    det: &mut Detector,
    spec: &EmbedderSpec,
    max_faces: usize,
    image: RgbImage,
    mode: &Mode,
    m: &Metrics,
) -> Result<Parts> {
    let t = Instant::now();
    let dets = det.detect(&image)?;
    m.stage(Stage::Detect).observe(t.elapsed());
    let t = Instant::now();
    let (faces, faces_skipped, refused) = match mode {
        // A crowd (or a crafted frame) must not cost a chip per detection: the largest faces
        // are the ones an officer can use.
        Mode::Live(gate) => {
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

fn embed_loop(mut emb: Embedder, max_batch: usize, rx: Receiver<EmbedJob>, m: Arc<Metrics>) {
    let accepted = |j: &EmbedJob| j.analysis.faces.iter().filter(|f| f.accepted()).count();
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
            let chips: Vec<&RgbImage> =
                jobs.iter().flat_map(|j| j.analysis.faces.iter().filter(|f| f.accepted()).map(|f| &f.chip)).collect();
            std::panic::catch_unwind(AssertUnwindSafe(|| emb.embed(&chips)))
                .unwrap_or_else(|_| Err(Error::Runtime("internal error in the embedder".into())))
        };
        m.stage(Stage::Embed).observe(t.elapsed());
        m.embed_calls.fetch_add(1, Ordering::Relaxed);
        m.embed_faces.fetch_add(n as u64, Ordering::Relaxed);
        match res {
            Ok(embs) => {
                let mut it = embs.into_iter();
                for mut j in jobs {
                    for f in j.analysis.faces.iter_mut().filter(|f| f.accepted()) {
                        f.embedding = it.next();
                    }
                    j.in_flight.answer(j.reply, Ok(j.analysis));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for EmbedJob { analysis, reply, in_flight } in jobs {
                    drop(analysis);
                    in_flight.answer(reply, Err(Error::Runtime(msg.clone())));
                }
            }
        }
    }
}
