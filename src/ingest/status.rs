//! What one camera is doing, for `GET /v1/cameras` and the metrics: its state, counters,
//! rates and the age of its last frame. Written by its supervisor, reader and consumer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not yet delivered a frame since the service started.
    Starting,
    Up,
    /// Not delivering; `reason` is the last failure. Stays down through restart attempts until
    /// a frame comes again (a camera that keeps failing reads "down", not "starting").
    Down {
        reason: String,
    },
    /// `enabled = false`, or a file replay that ended.
    Disabled,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Up => "up",
            State::Down { .. } => "down",
            State::Disabled => "disabled",
        }
    }
}

/// Why a camera's ffmpeg was restarted: a fixed set (metric labels stay bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Restart {
    /// ffmpeg could not be started.
    Spawn,
    /// ffmpeg exited (with any status: it exits 0 when the server goes away).
    Exited,
    /// No frame within the deadline: the child was killed.
    Stalled,
    /// Its output was not a frame of the expected form, or too large.
    BadStream,
}

impl Restart {
    pub const ALL: [Restart; 4] = [Restart::Spawn, Restart::Exited, Restart::Stalled, Restart::BadStream];

    pub fn name(self) -> &'static str {
        match self {
            Restart::Spawn => "spawn_failed",
            Restart::Exited => "exited",
            Restart::Stalled => "stalled",
            Restart::BadStream => "bad_stream",
        }
    }
}

/// Frames per second over the last complete ~2 s window (0 when nothing came for two windows).
struct Rate {
    window_start: Instant,
    count: u64,
    last: f64,
}

const RATE_WINDOW: Duration = Duration::from_secs(2);

impl Rate {
    fn new() -> Self {
        Self { window_start: Instant::now(), count: 0, last: 0.0 }
    }

    fn roll(&mut self, now: Instant) {
        let age = now.duration_since(self.window_start);
        if age >= RATE_WINDOW {
            self.last = if age >= RATE_WINDOW * 2 { 0.0 } else { self.count as f64 / age.as_secs_f64() };
            self.window_start = now;
            self.count = 0;
        }
    }

    fn tick(&mut self, now: Instant) {
        self.roll(now);
        // A window starts at its first frame, so the wait before a stream starts (or after it
        // stalled) does not count as a slow rate.
        if self.count == 0 {
            self.window_start = now;
        }
        self.count += 1;
    }

    fn read(&mut self, now: Instant) -> f64 {
        self.roll(now);
        self.last
    }
}

pub struct Status {
    state: Mutex<State>,
    frames_read: AtomicU64,
    frames_out: AtomicU64,
    restarts: Mutex<BTreeMap<Restart, u64>>,
    last_frame: Mutex<Option<Instant>>,
    size: Mutex<Option<(u32, u32)>>,
    rate_in: Mutex<Rate>,
    rate_out: Mutex<Rate>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Status {
    pub fn new(enabled: bool) -> Self {
        Self {
            state: Mutex::new(if enabled { State::Starting } else { State::Disabled }),
            frames_read: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            restarts: Mutex::new(BTreeMap::new()),
            last_frame: Mutex::new(None),
            size: Mutex::new(None),
            rate_in: Mutex::new(Rate::new()),
            rate_out: Mutex::new(Rate::new()),
        }
    }

    pub fn state(&self) -> State {
        lock(&self.state).clone()
    }

    pub fn set_state(&self, s: State) {
        let mut cur = lock(&self.state);
        if *cur != s {
            tracing::debug!(from = cur.name(), to = s.name(), "camera state");
            *cur = s;
        }
    }

    /// A frame came from ffmpeg: the camera is up.
    pub fn frame_read(&self, width: u32, height: u32) {
        let now = Instant::now();
        self.frames_read.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_frame) = Some(now);
        *lock(&self.size) = Some((width, height));
        lock(&self.rate_in).tick(now);
        let mut st = lock(&self.state);
        if *st != State::Up {
            tracing::info!(from = st.name(), "camera up");
            *st = State::Up;
        }
    }

    /// The consumer took a frame.
    pub fn frame_out(&self) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        lock(&self.rate_out).tick(Instant::now());
    }

    pub fn restarted(&self, why: Restart) {
        *lock(&self.restarts).entry(why).or_default() += 1;
    }

    pub fn frames_read(&self) -> u64 {
        self.frames_read.load(Ordering::Relaxed)
    }

    pub fn frames_out(&self) -> u64 {
        self.frames_out.load(Ordering::Relaxed)
    }

    pub fn restarts(&self, why: Restart) -> u64 {
        lock(&self.restarts).get(&why).copied().unwrap_or(0)
    }

    pub fn restarts_total(&self) -> u64 {
        lock(&self.restarts).values().sum()
    }

    pub fn last_frame_age(&self) -> Option<Duration> {
        lock(&self.last_frame).map(|t| t.elapsed())
    }

    pub fn size(&self) -> Option<(u32, u32)> {
        *lock(&self.size)
    }

    pub fn fps_in(&self) -> f64 {
        lock(&self.rate_in).read(Instant::now())
    }

    pub fn fps_out(&self) -> f64 {
        lock(&self.rate_out).read(Instant::now())
    }
}
