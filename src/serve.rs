//! `facewatch serve`: loads everything, serves the API, runs the retention sweep, and shuts
//! down in order on SIGINT/SIGTERM: stop accepting, end live streams, finish in-flight frames,
//! stop the model workers, persist the indexes.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, AppState};
use crate::checkpoint::Checkpoint;
use crate::config::ServiceConfig;
use crate::error::{Error, Result};
use crate::events::publisher::Publisher;

pub async fn run(config: ServiceConfig) -> Result<()> {
    let grace = Duration::from_secs(config.service.shutdown_grace_secs);
    let sweep_every = Duration::from_secs(config.retention.sweep_secs);
    let bind = config.service.bind.clone();
    // Held until this function returns: watch-list commands refuse while the service runs.
    let _data_lock = crate::data_lock::DataLock::acquire(&config.service.data_dir).map_err(|e| match e {
        Error::DataDirInUse { dir } => Error::Config(format!(
            "data folder {} is in use by another facewatch service or watch-list command",
            dir.display()
        )),
        e => e,
    })?;
    let core = tokio::task::spawn_blocking(move || Checkpoint::open(config))
        .await
        .map_err(|e| Error::Runtime(format!("start-up task failed: {e}")))??;
    let core = Arc::new(core);
    let listener = TcpListener::bind(&bind).await.map_err(|e| Error::Config(format!("bind {bind}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Error::io(&bind, e))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = AppState::new(core.clone(), stop_rx.clone());

    let sweeper = tokio::spawn(retention_loop(core.clone(), sweep_every, stop_rx.clone()));
    let checker = tokio::spawn(state_loop(core.clone(), stop_rx.clone()));
    // The publisher stops only after the workers: events of in-flight frames still go out.
    let (pub_stop_tx, pub_stop_rx) = watch::channel(false);
    let publisher = match core.config.sink() {
        Some(sink) => {
            let p = Publisher::new(
                core.db_path.clone(),
                core.config.service.site.clone(),
                sink,
                Duration::from_millis(core.config.events.publish_max_backoff_ms),
                core.metrics.clone(),
                core.outbox_notify.clone(),
            )?;
            Some(tokio::spawn(p.run(pub_stop_rx, grace)))
        }
        None => {
            tracing::info!("no broker configured: events stay in the local outbox (GET /v1/events)");
            None
        }
    };
    tracing::info!(%addr, site = %core.config.service.site, provider = core.inference.provider, "facewatch serving");
    // Scripts and tests wait for this line (the port may have been chosen by the OS).
    println!("facewatch listening on http://{addr}");

    let mut drained = stop_rx.clone();
    let server = axum::serve(listener, api::router(state)).with_graceful_shutdown(async move {
        signal().await;
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        let _ = stop_tx.send(true);
    });
    let server = tokio::spawn(async move { server.await });
    // After the signal, in-flight requests get `grace` to finish.
    let _ = drained.wait_for(|down| *down).await;
    match tokio::time::timeout(grace, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "server error"),
        Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
        Err(_) => tracing::warn!(?grace, "in-flight requests still running after the grace period: stopping"),
    }
    let _ = sweeper.await;
    let _ = checker.await;
    let c = core.clone();
    let _ = tokio::task::spawn_blocking(move || c.shutdown()).await;
    let _ = pub_stop_tx.send(true);
    if let Some(p) = publisher {
        let _ = p.await;
    }
    tracing::info!("facewatch stopped");
    Ok(())
}

async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// How often the store write probe (for `/readyz`) and the token cache reload run.
const STATE_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Keeps the state that requests read without touching the store: the store write probe behind
/// `/readyz`, and the token cache (tokens created or revoked with the command line while the
/// service runs take effect within `STATE_CHECK_EVERY`; the API's own changes at once).
async fn state_loop(core: Arc<Checkpoint>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(STATE_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|down| *down) => return,
        }
        let c = core.clone();
        let res = tokio::task::spawn_blocking(move || {
            c.probe_store();
            c.reload_tokens()
        })
        .await;
        match res {
            Ok(Err(e)) => tracing::error!(error = %e, "reloading the tokens failed"),
            Err(e) => tracing::error!(error = %e, "state check task failed"),
            Ok(Ok(())) => {}
        }
    }
}

async fn retention_loop(core: Arc<Checkpoint>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|down| *down) => return,
        }
        let c = core.clone();
        let now = crate::clock::now_ms();
        match tokio::task::spawn_blocking(move || c.sweep(now)).await {
            Ok(Err(e)) => tracing::error!(error = %e, "retention sweep failed"),
            Err(e) => tracing::error!(error = %e, "retention sweep task failed"),
            Ok(Ok(_)) => {}
        }
    }
}
