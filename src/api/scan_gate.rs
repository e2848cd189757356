//! Full scans on request (audit verification) run one at a time, with a short bounded line of
//! waiters: a flood of them cannot occupy the blocking pool or the cores that frames need.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{Error, Result};

pub struct ScanGate {
    what: &'static str,
    run: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    retry_after_s: u64,
}

impl ScanGate {
    pub fn new(what: &'static str, max_waiting: usize, retry_after_s: u64) -> Self {
        Self { what, run: Semaphore::new(1), waiting: AtomicUsize::new(0), max_waiting, retry_after_s }
    }

    /// The right to run one scan now, after waiting in line; `Overloaded` (503) when the line is full.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>> {
        if let Ok(p) = self.run.try_acquire() {
            return Ok(p);
        }
        // Counted out on drop too: a client that hangs up while waiting leaves the line.
        let _in_line = InLine(&self.waiting);
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            return Err(Error::Overloaded { queue: self.what, retry_after_s: self.retry_after_s });
        }
        self.run.acquire().await.map_err(|_| Error::ShuttingDown)
    }
}

struct InLine<'a>(&'a AtomicUsize);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
