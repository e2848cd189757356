//! One camera's decoded frames through the engine, handed back in the order they were pushed.
//! The engine's detect workers finish frames out of order (a crowd takes longer than an empty
//! hall), but a tracker follows faces from one frame to the next and needs them in order.
//!
//! A feed keeps up to `in_flight` of its frames in the engine; their answers wait in their own
//! channels and are taken oldest first, so that window is the reorder buffer. Frames beyond it
//! wait in the feed, at most `waiting` of them: a live camera wants its newest frames analysed,
//! so when the wait is full the OLDEST waiting frame is dropped. A frame the engine refuses
//! (ingest queue full, memory budget, shutting down) is dropped in its place too. Drops are
//! reported in order as ranges of sequence numbers, so what a feed holds is bounded by count
//! whether or not its consumer keeps up (and the frames in it by the engine's memory budget).

use std::collections::VecDeque;

use image::RgbImage;
use tokio::sync::oneshot;
use tracing::Span;

use crate::error::{Error, Result};
use crate::inference::{Analysis, Inference, Mode};

#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// The camera's frames in the engine at once (at least 1); answers wait, in order, here.
    pub in_flight: usize,
    /// Frames waiting for a place in the engine; when more come, the oldest is dropped.
    pub waiting: usize,
}

impl Default for FeedOptions {
    /// Enough in flight to keep a few detect workers busy with one camera; a short wait (a live
    /// camera prefers a fresh frame to an old one).
    fn default() -> Self {
        Self { in_flight: 4, waiting: 2 }
    }
}

/// What a feed hands back, in sequence order.
pub enum FeedItem {
    /// Frame `seq`'s analysis, or the engine's error for it (a bad frame, a model failure).
    Frame { seq: u64, result: Result<Analysis> },
    /// Frames `first .. first + count` were not analysed: newer frames displaced them while
    /// they waited, or the engine refused them.
    Dropped { first: u64, count: u64 },
}

enum Slot {
    Waiting { seq: u64, image: RgbImage, span: Span },
    Submitted { seq: u64, rx: oneshot::Receiver<Result<Analysis>> },
    Dropped { first: u64, count: u64 },
}

/// A camera's frames in, analyses out in order (see the module). One owner pushes and takes.
pub struct Feed<'a> {
    engine: &'a Inference,
    camera: String,
    mode: Mode,
    opts: FeedOptions,
    next_seq: u64,
    /// In sequence order: submitted frames and drops, then waiting frames and drops.
    slots: VecDeque<Slot>,
    submitted: usize,
    waiting: usize,
    dropped: u64,
}

impl<'a> Feed<'a> {
    pub(crate) fn new(engine: &'a Inference, camera: &str, mode: Mode, opts: FeedOptions) -> Self {
        let opts = FeedOptions { in_flight: opts.in_flight.max(1), ..opts };
        Self {
            engine,
            camera: camera.to_string(),
            mode,
            opts,
            next_seq: 0,
            slots: VecDeque::new(),
            submitted: 0,
            waiting: 0,
            dropped: 0,
        }
    }

    /// Adds the camera's next frame and returns its sequence number (0, 1, 2, ...). Never
    /// waits: the frame goes to the engine if the feed has room there, else it waits (and the
    /// oldest waiting frame is dropped when too many do).
    pub fn push(&mut self, image: RgbImage) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        // The frame's span: the model threads log under it (camera and sequence number).
        let span = tracing::debug_span!("frame", camera = %self.camera, seq);
        self.slots.push_back(Slot::Waiting { seq, image, span });
        self.waiting += 1;
        if self.waiting > self.opts.waiting {
            let oldest = self.slots.iter().position(|s| matches!(s, Slot::Waiting { .. }));
            if let Some(i) = oldest {
                self.drop_at(i);
            }
        }
        self.pump();
        seq
    }

    /// The next item in order if it is ready; never waits.
    pub fn try_next(&mut self) -> Option<FeedItem> {
        self.pump();
        let result = match self.slots.front_mut()? {
            Slot::Submitted { rx, .. } => match rx.try_recv() {
                Ok(r) => r,
                Err(oneshot::error::TryRecvError::Empty) => return None,
                Err(oneshot::error::TryRecvError::Closed) => Err(Error::ShuttingDown),
            },
            _ => return self.pop(None),
        };
        self.pop(Some(result))
    }

    /// The next item in order, waiting for it; `None` when nothing was pushed that has not been
    /// handed back. Cancel-safe: an interrupted wait loses nothing.
    pub async fn next(&mut self) -> Option<FeedItem> {
        self.pump();
        let result = match self.slots.front_mut()? {
            Slot::Submitted { rx, .. } => rx.await.unwrap_or(Err(Error::ShuttingDown)),
            _ => return self.pop(None),
        };
        self.pop(Some(result))
    }

    /// [`Feed::next`] for a plain thread (a camera's reader); must not be called on the async
    /// runtime.
    pub fn next_blocking(&mut self) -> Option<FeedItem> {
        self.pump();
        // A blocking wait cannot be interrupted: the slot may leave the queue first.
        match self.slots.pop_front()? {
            Slot::Submitted { seq, rx } => {
                self.submitted -= 1;
                let result = rx.blocking_recv().unwrap_or(Err(Error::ShuttingDown));
                self.pump();
                Some(FeedItem::Frame { seq, result })
            }
            other => {
                self.slots.push_front(other);
                self.pop(None)
            }
        }
    }

    /// Frames pushed and not yet handed back (analysed, in the engine, or waiting).
    pub fn pending(&self) -> usize {
        self.submitted
            + self.waiting
            + self
                .slots
                .iter()
                .map(|s| if let Slot::Dropped { count, .. } = s { *count as usize } else { 0 })
                .sum::<usize>()
    }

    /// Frames dropped so far (displaced while waiting, or refused by the engine).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Hands back the front slot: a drop, or the submitted frame whose answer is `result`.
    fn pop(&mut self, result: Option<Result<Analysis>>) -> Option<FeedItem> {
        let item = match (self.slots.front()?, result) {
            (Slot::Submitted { seq, .. }, Some(result)) => FeedItem::Frame { seq: *seq, result },
            (Slot::Dropped { first, count }, _) => FeedItem::Dropped { first: *first, count: *count },
            // `pump` sends a waiting frame before anything behind it can be taken, so a waiting
            // frame is never in front here; a submitted one is popped only with its answer.
            _ => return None,
        };
        if matches!(self.slots.pop_front(), Some(Slot::Submitted { .. })) {
            self.submitted -= 1;
        }
        self.pump();
        Some(item)
    }

    /// Sends waiting frames, oldest first, while the feed has room in the engine.
    fn pump(&mut self) {
        while self.submitted < self.opts.in_flight {
            let Some(i) = self.slots.iter().position(|s| matches!(s, Slot::Waiting { .. })) else { return };
            let Some(Slot::Waiting { seq, image, span }) = self.slots.remove(i) else { return };
            self.waiting -= 1;
            match span.in_scope(|| self.engine.submit_image(image, self.mode.clone())) {
                Ok(rx) => {
                    self.slots.insert(i, Slot::Submitted { seq, rx });
                    self.submitted += 1;
                }
                Err(e) => {
                    span.in_scope(|| tracing::debug!(error = %e, "frame refused by the engine: dropped"));
                    self.slots.insert(i, Slot::Dropped { first: seq, count: 1 });
                    self.dropped += 1;
                    self.merge_drop(i);
                }
            }
        }
    }

    /// Drops the waiting frame at `i`.
    fn drop_at(&mut self, i: usize) {
        if let Slot::Waiting { seq, .. } = self.slots[i] {
            self.slots[i] = Slot::Dropped { first: seq, count: 1 };
            self.waiting -= 1;
            self.dropped += 1;
            self.merge_drop(i);
        }
    }

    /// Joins the drop at `i` to a drop just before it: consecutive drops hold one slot, so the
    /// slots stay bounded however many frames are dropped.
    fn merge_drop(&mut self, i: usize) {
        if i == 0 {
            return;
        }
        let Slot::Dropped { first: seq, count: n } = self.slots[i] else { return };
        if let Slot::Dropped { first, count } = &mut self.slots[i - 1]
            && *first + *count == seq
        {
            *count += n;
            self.slots.remove(i);
        }
    }
}
