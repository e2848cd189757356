//! One shutdown signal for every loop and stream (tokio's mini-redis `shutdown.rs`): the
//! composition root ([`crate::app`]) holds the [`Trigger`]; every task holds a [`Shutdown`]
//! and returns when it fires.

use tokio::sync::watch;

/// Fires the shutdown (once; later calls do nothing).
pub struct Trigger(watch::Sender<bool>);

/// Listens for the shutdown.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }

    pub fn listener(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once the shutdown has fired (at once if it already has).
    pub async fn recv(&mut self) {
        // An error means the trigger is gone: that is a shutdown too.
        let _ = self.0.wait_for(|down| *down).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_listener_hears_the_shutdown_once_fired_even_late() {
        let (trigger, mut early) = channel();
        assert!(!early.is_shutdown());
        let waiting = tokio::spawn(async move { early.recv().await });
        trigger.fire();
        waiting.await.unwrap();
        let mut late = trigger.listener();
        late.recv().await;
        assert!(late.is_shutdown());
        drop(trigger);
        let (t, mut orphan) = channel();
        drop(t);
        orphan.recv().await;
    }
}
