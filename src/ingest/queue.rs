//! A camera's bounded frame queue: one producer (the thread reading ffmpeg), one consumer.
//! Live sources never wait: when the queue is full the OLDEST frame is dropped (counted), so
//! latency stays bounded by the queue's length. A file replayed for evaluation waits instead
//! and loses nothing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::frame::CameraFrame;

pub struct FrameQueue {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Wakes the consumer (one permit is kept when it is not waiting).
    ready: Notify,
    /// Wakes a producer waiting for room.
    room: Condvar,
    dropped: AtomicU64,
    high_water: AtomicUsize,
}

struct Inner {
    frames: VecDeque<CameraFrame>,
    closed: bool,
}

impl FrameQueue {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Mutex::new(Inner { frames: VecDeque::with_capacity(capacity), closed: false }),
            capacity,
            ready: Notify::new(),
            room: Condvar::new(),
            dropped: AtomicU64::new(0),
            high_water: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `frame`; when full, drops the oldest and returns it (its buffer can be reused).
    pub fn push_drop_oldest(&self, frame: CameraFrame) -> Option<CameraFrame> {
        let mut q = self.lock();
        let old = if q.frames.len() >= self.capacity {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            q.frames.pop_front()
        } else {
            None
        };
        q.frames.push_back(frame);
        self.high_water.fetch_max(q.frames.len(), Ordering::Relaxed);
        drop(q);
        self.ready.notify_one();
        old
    }

    /// Adds `frame`, waiting (blocking this thread) while the queue is full. Gives the frame
    /// back when the queue is closed or `cancel` is set while waiting.
    pub fn push_wait(&self, frame: CameraFrame, cancel: &AtomicBool) -> Result<(), CameraFrame> {
        let mut q = self.lock();
        while q.frames.len() >= self.capacity {
            if q.closed || cancel.load(Ordering::Relaxed) {
                return Err(frame);
            }
            q = self
                .room
                .wait_timeout(q, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        q.frames.push_back(frame);
        self.high_water.fetch_max(q.frames.len(), Ordering::Relaxed);
        drop(q);
        self.ready.notify_one();
        Ok(())
    }

    /// The oldest frame, waiting for one; `None` once closed and empty. One consumer.
    pub async fn pop(&self) -> Option<CameraFrame> {
        loop {
            if let Some(f) = self.try_pop() {
                return Some(f);
            }
            if self.lock().closed {
                return None;
            }
            self.ready.notified().await;
        }
    }

    pub fn try_pop(&self) -> Option<CameraFrame> {
        let f = self.lock().frames.pop_front();
        if f.is_some() {
            self.room.notify_one();
        }
        f
    }

    /// No more frames: the consumer gets what is queued, then `None`; a waiting producer returns.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
        self.room.notify_all();
    }

    pub fn len(&self) -> usize {
        self.lock().frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Frames dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The most frames the queue has held at once (never above its capacity).
    pub fn high_water(&self) -> usize {
        self.high_water.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> CameraFrame {
        CameraFrame { seq, captured_at_ms: 0, image: image::RgbImage::new(2, 2), read_at: std::time::Instant::now() }
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_and_a_closed_one_drains() {
        let q = FrameQueue::new(3);
        let dropped: Vec<u64> = (0..10).filter_map(|i| q.push_drop_oldest(frame(i))).map(|f| f.seq).collect();
        assert_eq!(dropped, (0..7).collect::<Vec<_>>());
        assert_eq!((q.len(), q.dropped(), q.high_water()), (3, 7, 3));
        q.close();
        let mut left = Vec::new();
        while let Some(f) = q.pop().await {
            left.push(f.seq);
        }
        assert_eq!(left, [7, 8, 9]);
        let cancel = AtomicBool::new(false);
        // Closed and full: a waiting producer gets its frame back instead of blocking.
        for i in 0..3 {
            q.push_drop_oldest(frame(i));
        }
        assert!(q.push_wait(frame(3), &cancel).is_err());
    }
}
