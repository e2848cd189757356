//! A bearer token missing from the token cache may have been created with the command line
//! since the last reload: the cache is reloaded from the store before the request is refused.
//! Reloads are coalesced and at most one per `MIN_GAP`, whatever the number of misses, so a
//! flood of made-up tokens costs a few small reads a second and caches nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Access;

const MIN_GAP: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct MissReload {
    /// When the last reload started.
    last: tokio::sync::Mutex<Option<Instant>>,
}

impl MissReload {
    /// Returns once a reload of the token cache that started after this call has finished.
    pub async fn reload(&self, access: &Arc<Access>) {
        let a = access.clone();
        self.run(move || a.reload()).await
    }

    async fn run(&self, reload: impl FnOnce() -> crate::Result<()> + Send + 'static) {
        let arrived = Instant::now();
        let mut last = self.last.lock().await;
        if let Some(t) = *last {
            if t >= arrived {
                return; // another miss's reload started after we arrived: it covers us
            }
            tokio::time::sleep_until((t + MIN_GAP).into()).await;
        }
        *last = Some(Instant::now());
        match tokio::task::spawn_blocking(reload).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A flood of misses costs a reload per `MIN_GAP`, not one each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn misses_share_reloads_at_most_one_per_gap() {
        let m = Arc::new(MissReload::default());
        let reloads = Arc::new(AtomicUsize::new(0));
        let t = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let (m, reloads) = (m.clone(), reloads.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..3 {
                    let r = reloads.clone();
                    m.run(move || {
                        r.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let n = reloads.load(Ordering::SeqCst);
        let allowed = (t.elapsed().as_millis() / MIN_GAP.as_millis()) as usize + 1;
        assert!(n >= 2 && n <= allowed, "{n} reloads for 600 misses in {:?} (at most {allowed})", t.elapsed());
        assert!(
            well_formed(&format!("fw_{}", "ab".repeat(32))) && !well_formed("fw_xyz") && !well_formed(&"f".repeat(67))
        );
    }
}
