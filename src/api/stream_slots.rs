//! Caps on open alert streams, in all and per token: each open stream holds a slot, given back
//! when the stream is dropped (client gone, token revoked, shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

pub struct StreamSlots {
    open: Mutex<Open>,
    max_total: usize,
    max_per_token: usize,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_token: HashMap<i64, usize>,
}

/// One open stream's slot; dropping it frees the slot.
pub struct Slot {
    slots: Arc<StreamSlots>,
    token_id: i64,
}

impl StreamSlots {
    pub fn new(max_total: usize, max_per_token: usize) -> Arc<Self> {
        Arc::new(Self { open: Mutex::default(), max_total, max_per_token })
    }

    /// A slot for a stream of `token_id`, or `TooManyStreams` (429).
    pub fn acquire(self: &Arc<Self>, token_id: i64) -> Result<Slot> {
        let mut o = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = o.by_token.get(&token_id).copied().unwrap_or(0);
        if mine >= self.max_per_token {
            return Err(Error::TooManyStreams { scope: "for this token", limit: self.max_per_token });
        }
        if o.total >= self.max_total {
            return Err(Error::TooManyStreams { scope: "on this checkpoint", limit: self.max_total });
        }
        o.total += 1;
        *o.by_token.entry(token_id).or_default() += 1;
        Ok(Slot { slots: self.clone(), token_id })
    }

    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        o.total = o.total.saturating_sub(1);
        if let Some(n) = o.by_token.get_mut(&self.token_id) {
            *n -= 1;
            if *n == 0 {
                o.by_token.remove(&self.token_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_token_and_in_all_and_frees_on_drop() {
        let s = StreamSlots::new(3, 2);
        let a1 = s.acquire(1).unwrap();
        let _a2 = s.acquire(1).unwrap();
        assert!(matches!(s.acquire(1), Err(Error::TooManyStreams { limit: 2, .. })));
        let _b1 = s.acquire(2).unwrap();
        assert!(matches!(s.acquire(3), Err(Error::TooManyStreams { limit: 3, .. })));
        drop(a1);
        assert_eq!(s.open(), 2);
        let _c = s.acquire(3).unwrap();
        assert_eq!(s.open(), 3);
    }
}
