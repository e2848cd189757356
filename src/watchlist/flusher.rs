//! Persists changed list indexes on a thread of its own, off the request path: enrollments
//! only wake it, and a burst of them is written once. The store is the source of truth, so a
//! crash before a write loses nothing: the fingerprint check rebuilds a stale index at start.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::watchlist::live::Live;

/// At most one write per this interval, or per 10x the last write's duration when longer
/// (writing a very large list then takes at most a tenth of the disk's time).
const MIN_INTERVAL: Duration = Duration::from_secs(1);

enum Msg {
    Wake,
    Stop,
}

pub struct Flusher {
    tx: SyncSender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Flusher {
    pub fn spawn(live: Arc<Live>) -> Result<Self> {
        // One pending wake-up is enough: a full channel means a flush is already due.
        let (tx, rx) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("index-flusher".into())
            .spawn(move || run(&live, &rx))
            .map_err(|e| Error::Runtime(format!("cannot start the index flusher thread: {e}")))?;
        Ok(Self { tx, thread: Mutex::new(Some(thread)) })
    }

    /// Asks for the changed indexes to be written soon; never blocks.
    pub fn wake(&self) {
        match self.tx.try_send(Msg::Wake) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => tracing::warn!("index flusher stopped: indexes persist at shutdown"),
        }
    }

    /// Writes what is pending and stops the thread (blocking; idempotent).
    pub fn stop(&self) {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = self.tx.send(Msg::Stop);
            if t.join().is_err() {
                tracing::error!("index flusher thread panicked");
            }
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(live: &Live, rx: &Receiver<Msg>) {
    let mut next = Instant::now();
    loop {
        let mut stop = !matches!(rx.recv(), Ok(Msg::Wake));
        if !stop {
            stop = wait_until(rx, next);
        }
        let t = Instant::now();
        // Errors are logged per list in `flush`; the list stays marked and is retried.
        let _ = live.flush();
        next = Instant::now() + MIN_INTERVAL.max(t.elapsed() * 10);
        if stop {
            return;
        }
    }
}

/// Sleeps until `deadline`, absorbing wake-ups; true when asked to stop.
fn wait_until(rx: &Receiver<Msg>, deadline: Instant) -> bool {
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(Msg::Wake) => {}
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return true,
            Err(RecvTimeoutError::Timeout) => return false,
        }
    }
    false
}
