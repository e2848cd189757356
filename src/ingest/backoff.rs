//! Restart delays: exponential with full jitter on the upper half, so cameras that failed
//! together (a switch rebooted) do not reconnect in lockstep.

use std::time::Duration;

pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    next_ms: u64,
}

impl Backoff {
    pub fn new(initial_ms: u64, max_ms: u64) -> Self {
        Self { initial_ms, max_ms: max_ms.max(initial_ms), next_ms: initial_ms }
    }

    /// The next delay: between half and all of the current step, which then doubles.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next_ms;
        self.next_ms = step.saturating_mul(2).min(self.max_ms);
        let half = step / 2;
        let jitter = getrandom::u64().unwrap_or(0) % (step - half + 1);
        Duration::from_millis(half + jitter)
    }

    /// After a run that delivered frames for a while: the next failure starts from the bottom.
    pub fn reset(&mut self) {
        self.next_ms = self.initial_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(100, 1000);
        let steps: Vec<u64> = (0..6).map(|_| b.next_delay().as_millis() as u64).collect();
        for (d, step) in steps.iter().zip([100, 200, 400, 800, 1000, 1000]) {
            assert!((step / 2..=step).contains(d), "{steps:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
