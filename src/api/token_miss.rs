//! A bearer token missing from the token cache may have been created with the command line
//! since the last reload: the cache is reloaded from the store before the request is refused.
//! Reloads are coalesced and at most one per `MIN_GAP`, whatever the number of misses, so a
//! flood of made-up tokens costs a few small reads a second and caches nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkpoint::Checkpoint;

const MIN_GAP: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct MissReload {
    /// When the last reload started.
    last: tokio::sync::Mutex<Option<Instant>>,
}

impl MissReload {
    /// Returns once a reload that started after this call has finished.
    pub async fn reload(&self, core: &Arc<Checkpoint>) {
        let arrived = Instant::now();
        let mut last = self.last.lock().await;
        if let Some(t) = *last {
            if t >= arrived {
                return; // another miss's reload started after we arrived: it covers us
            }
            tokio::time::sleep_until((t + MIN_GAP).into()).await;
        }
        *last = Some(Instant::now());
        let c = core.clone();
        match tokio::task::spawn_blocking(move || c.reload_tokens()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "reloading the tokens after a miss"),
            Err(e) => tracing::warn!(error = %e, "token reload task failed"),
        }
    }
}

/// Whether `token` has the shape of ours (`fw_` and 64 hex digits): only those may trigger a
/// reload.
pub fn well_formed(token: &str) -> bool {
    token.len() == 67 && token.starts_with("fw_") && token[3..].bytes().all(|b| b.is_ascii_hexdigit())
}
