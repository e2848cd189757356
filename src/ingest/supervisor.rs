//! One camera's life: start ffmpeg, read its frames on a thread of their own, and restart it
//! (exponential backoff with jitter) whenever it exits, stalls or sends something that is not
//! a frame. ffmpeg exits with status 0 when the server goes away and waits ~25 s in a stalled
//! stream, so any exit is a disconnect and the no-frame deadline is kept here. Every child is
//! killed and reaped before the supervisor moves on or returns: no ffmpeg outlives shutdown.

use std::io::BufReader;
use std::process::{Child, ChildStdout, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;
use tokio::sync::oneshot;

use super::Camera;
use super::backoff::Backoff;
use super::config::Source;
use super::frame::CameraFrame;
use super::ppm::{PpmReader, ReadError};
use super::status::{Restart, State};
use crate::shutdown::Shutdown;

/// What every camera's supervisor shares.
pub struct Env {
    pub ffmpeg: String,
    pub stderr_lines_per_minute: u64,
    pub max_pixels: u64,
}

/// A run of ffmpeg that delivered frames this long counts as healthy: the next failure
/// restarts after the shortest delay again.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// How the reader thread ended.
enum ReadEnd {
    Eof,
    Io(String),
    Bad(String),
    /// The queue was closed or the run cancelled while it waited for room.
    Cancelled,
}

/// What the reader tells the supervisor while it runs.
struct Progress {
    frames: AtomicU64,
    last: Mutex<Instant>,
    /// Waiting for room in the queue (lossless file replay): not a stall.
    waiting: AtomicBool,
}

/// One ffmpeg child and its reader thread.
struct Run {
    child: Child,
    reader: Option<std::thread::JoinHandle<()>>,
    done: oneshot::Receiver<ReadEnd>,
    cancel: Arc<AtomicBool>,
    progress: Arc<Progress>,
    started: Instant,
    /// The reader ended: ffmpeg closed its output and is exiting.
    reader_ended: bool,
}

enum Outcome {
    Shutdown,
    /// A file replayed to its end (without `loop`).
    Finished,
    Failed(Restart, String),
}

pub async fn supervise(cam: Arc<Camera>, env: Arc<Env>, mut shutdown: Shutdown) {
    let cfg = &cam.config;
    let id = cfg.id.as_str();
    let epoch_ms = cfg.epoch_ms().unwrap_or_else(crate::clock::now_ms);
    let seq = Arc::new(AtomicU64::new(0));
    let mut backoff = Backoff::new(cfg.backoff_initial_ms, cfg.backoff_max_ms);
    loop {
        let outcome = match Run::start(&cam, &env, epoch_ms, seq.clone()) {
            Err(e) => Outcome::Failed(Restart::Spawn, format!("could not start {}: {e}", env.ffmpeg)),
            Ok(mut run) => {
                let watched = run.watch(&cam, &mut shutdown).await;
                let healthy = run.progress.frames.load(Ordering::Relaxed) > 0 && run.started.elapsed() >= HEALTHY_RUN;
                let status = tokio::task::spawn_blocking(move || run.stop()).await.ok().flatten();
                if healthy {
                    backoff.reset();
                }
                match watched {
                    Some(o) => o,
                    None => match status {
                        Some(s) if s.success() && matches!(cam.source, Source::File(_)) && !cfg.repeat => {
                            Outcome::Finished
                        }
                        Some(s) => Outcome::Failed(Restart::Exited, format!("ffmpeg exited ({s})")),
                        None => Outcome::Failed(Restart::Exited, "ffmpeg exited".into()),
                    },
                }
            }
        };
        match outcome {
            Outcome::Shutdown => break,
            Outcome::Finished => {
                tracing::info!(camera = id, url = %cfg.url, "file replay ended");
                cam.status.set_state(State::Disabled);
                break;
            }
            Outcome::Failed(why, reason) => {
                cam.status.restarted(why);
                let delay = backoff.next_delay();
                tracing::warn!(camera = id, url = %cfg.url, %reason, delay_ms = delay.as_millis() as u64, "camera down: restarting");
                cam.status.set_state(State::Down { reason });
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.recv() => break,
                }
            }
        }
    }
    cam.queue.close();
}

impl Run {
    fn start(cam: &Arc<Camera>, env: &Env, epoch_ms: i64, seq: Arc<AtomicU64>) -> std::io::Result<Self> {
        let mut child = super::command::ffmpeg(&env.ffmpeg, &cam.config, &cam.source).spawn()?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("no pipes to ffmpeg"));
        };
        let (id, per_minute) = (cam.config.id.clone(), env.stderr_lines_per_minute);
        std::thread::Builder::new()
            .name(format!("ffmpeg-log-{id}"))
            .spawn(move || super::stderr_log::forward(&id, stderr, per_minute))?;
        let progress = Arc::new(Progress {
            frames: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
            waiting: AtomicBool::new(false),
        });
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, done) = oneshot::channel();
        let reader = {
            let (cam, progress, cancel, max_pixels) = (cam.clone(), progress.clone(), cancel.clone(), env.max_pixels);
            let span = tracing::Span::current();
            std::thread::Builder::new().name(format!("camera-{}", cam.config.id)).spawn(move || {
                let _span = span.entered();
                let end = read_frames(stdout, &cam, max_pixels, epoch_ms, &seq, &progress, &cancel);
                let _ = tx.send(end);
            })
        };
        let reader = match reader {
            Ok(r) => r,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(Self { child, reader: Some(reader), done, cancel, progress, started: Instant::now(), reader_ended: false })
    }

    /// Until the reader ends (`None`: look at ffmpeg's exit), the deadline passes or shutdown.
    async fn watch(&mut self, cam: &Camera, shutdown: &mut Shutdown) -> Option<Outcome> {
        let cfg = &cam.config;
        let tick_ms = (cfg.no_frame_timeout_ms.min(cfg.start_timeout_ms) / 4).clamp(10, 250);
        let mut tick = tokio::time::interval(Duration::from_millis(tick_ms));
        loop {
            tokio::select! {
                end = &mut self.done => {
                    self.reader_ended = true;
                    return match end {
                    Ok(ReadEnd::Eof) | Err(_) => None,
                    Ok(ReadEnd::Io(e)) => Some(Outcome::Failed(Restart::Exited, format!("reading ffmpeg: {e}"))),
                    Ok(ReadEnd::Bad(m)) => Some(Outcome::Failed(Restart::BadStream, m)),
                    Ok(ReadEnd::Cancelled) => Some(Outcome::Shutdown),
                    };
                }
                _ = tick.tick() => {
                    if self.progress.waiting.load(Ordering::Relaxed) {
                        continue;
                    }
                    let first = self.progress.frames.load(Ordering::Relaxed) == 0;
                    let limit = Duration::from_millis(if first { cfg.start_timeout_ms } else { cfg.no_frame_timeout_ms });
                    let since = self.progress.last.lock().map(|t| t.elapsed()).unwrap_or_default();
                    if since > limit {
                        let what = if first { "no first frame" } else { "no frame" };
                        return Some(Outcome::Failed(Restart::Stalled, format!("{what} for {} ms", limit.as_millis())));
                    }
                }
                _ = shutdown.recv() => return Some(Outcome::Shutdown),
            }
        }
    }

    /// Ends the run (blocking): lets an exiting ffmpeg finish for a moment, kills it otherwise,
    /// reaps it and joins the reader. Returns the exit status when ffmpeg exited by itself.
    fn stop(mut self) -> Option<ExitStatus> {
        self.cancel.store(true, Ordering::Relaxed);
        let mut exited = None;
        for _ in 0..20 {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    exited = Some(s);
                    break;
                }
                Ok(None) if self.reader_ended => std::thread::sleep(Duration::from_millis(25)),
                _ => break,
            }
        }
        if exited.is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        exited
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // A run dropped without stop() (a cancelled task): the child must not outlive it.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads frames until ffmpeg's output ends, handing each to the queue. Buffers of frames the
/// queue dropped are reused for the next frame: at steady state no allocation per frame.
fn read_frames(
    stdout: ChildStdout,
    cam: &Camera,
    max_pixels: u64,
    epoch_ms: i64,
    seq: &AtomicU64,
    progress: &Progress,
    cancel: &AtomicBool,
) -> ReadEnd {
    let cfg = &cam.config;
    let live_clock = cam.source.is_live();
    let lossless = !cam.source.is_live() && !cfg.realtime;
    let max_pixels = cam.max_frame_pixels(max_pixels);
    let mut r = PpmReader::new(BufReader::with_capacity(1 << 16, stdout), cfg.max_width, max_pixels);
    let mut spare = Vec::new();
    loop {
        let mut buf = std::mem::take(&mut spare);
        let (w, h) = match r.next_frame(&mut buf) {
            Ok(size) => size,
            Err(ReadError::End) => return ReadEnd::Eof,
            Err(ReadError::Io(e)) => return ReadEnd::Io(e.to_string()),
            Err(ReadError::Bad(m)) => return ReadEnd::Bad(m),
        };
        let Some(image) = RgbImage::from_raw(w, h, buf) else {
            return ReadEnd::Bad(format!("frame {w}x{h}: wrong pixel count"));
        };
        let n = seq.fetch_add(1, Ordering::Relaxed);
        let captured_at_ms =
            if live_clock { crate::clock::now_ms() } else { epoch_ms + (n as f64 * 1000.0 / cfg.fps).round() as i64 };
        progress.frames.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut t) = progress.last.lock() {
            *t = Instant::now();
        }
        cam.status.frame_read(w, h);
        let frame = CameraFrame { seq: n, captured_at_ms, image, read_at: std::time::Instant::now() };
        if lossless {
            progress.waiting.store(true, Ordering::Relaxed);
            let pushed = cam.queue.push_wait(frame, cancel);
            progress.waiting.store(false, Ordering::Relaxed);
            // The deadline counts from here: waiting for the consumer is not a stall.
            if let Ok(mut t) = progress.last.lock() {
                *t = Instant::now();
            }
            if pushed.is_err() {
                return ReadEnd::Cancelled;
            }
        } else if let Some(old) = cam.queue.push_drop_oldest(frame) {
            spare = old.image.into_raw();
        }
    }
}
