//! The composition root: builds the services from the configuration, and owns the service's
//! start-up and shutdown order. `facewatch serve` is [`run`].
//!
//! Shutdown order on SIGINT/SIGTERM: stop accepting and end live streams, let in-flight
//! requests finish (up to the grace period), stop the background loops, stop the model
//! workers after their queued frames, persist the indexes, then let the publisher send what
//! the last frames wrote and stop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

use crate::access::Access;
use crate::alerts::{Alerts, ModelIds};
use crate::api::{self, AppState};
use crate::audit::AuditLog;
use crate::backend::Backend;
use crate::backend::onnx::OnnxBackend;
use crate::config::ServiceConfig;
use crate::console::session::Sessions;
use crate::decide::FrameRule;
use crate::error::{Error, Result};
use crate::events::gauges::{OutboxGaugeReader, OutboxGauges};
use crate::events::local::LocalOutbox;
use crate::events::publisher::Publisher;
use crate::frames::Frames;
use crate::inference::Inference;
use crate::ingest::Cameras;
use crate::matching::Matching;
use crate::media::Media;
use crate::metrics::{Gauges, Metrics};
use crate::passes::Passes;
use crate::push::PushCameras;
use crate::readiness::{Readiness, StoreProbe};
use crate::retention::Retention;
use crate::shutdown::{self, Shutdown};
use crate::tuning::Tuning;
use crate::watchlist::{EmbedderInfo, Watchlists};

/// Every service of a running checkpoint. Front ends (the API; the command line builds only
/// what it needs) call the services; nothing here does work of its own.
pub struct App {
    pub config: ServiceConfig,
    pub metrics: Arc<Metrics>,
    pub inference: Inference,
    pub access: Arc<Access>,
    pub watchlists: Arc<Watchlists>,
    pub alerts: Arc<Alerts>,
    pub frames: Frames,
    pub audit: AuditLog,
    pub outbox: LocalOutbox,
    pub retention: Retention,
    /// What a policy change would do (ops pages), from the latest evaluation and reviews.
    pub tuning: Tuning,
    /// Cameras pulled by the service (`[[cameras]]`); started by [`run`].
    pub cameras: Arc<Cameras>,
    /// Cameras whose posted frames are tracked (`url = "push:"`).
    pub push: PushCameras,
    pub store_probe: StoreProbe,
    outbox_gauges: OutboxGaugeReader,
    /// Woken whenever an event is written, so the publisher sends it at once.
    pub outbox_notify: Arc<Notify>,
    pub db_path: PathBuf,
    /// Signed-in browsers of the web console (`crate::console`).
    pub sessions: Arc<Sessions>,
}

impl App {
    /// Loads the models, the store and the indexes; fails early with a clear error (blocking).
    pub fn open(config: ServiceConfig) -> Result<Self> {
        let backend = OnnxBackend::open(&config.models_dir(), &config.inference_options().pipeline)?;
        Self::with_backend(config, &backend)
    }

    /// [`App::open`] on the given models (the fake ones in tests).
    pub fn with_backend(config: ServiceConfig, backend: &dyn Backend) -> Result<Self> {
        // Before any store or file of the data folder is opened: they all learn its key here.
        crate::vault::unlock(&config.encryption, &config.service.data_dir)?;
        let metrics = Arc::new(Metrics::default());
        let inference = Inference::with_backend(backend, &config.inference_options(), metrics.clone())?;
        let db_path = config.service.data_dir.join("facewatch.db");
        let outbox_notify = Arc::new(Notify::new());
        let media = Arc::new(Media::open(&config.service.data_dir)?);
        let spec = inference.embedder_spec();
        let embedder = EmbedderInfo {
            name: spec.name.clone(),
            dim: spec.embedding_size as u32,
            default_threshold: spec.default_threshold,
        };
        let watchlists = Arc::new(Watchlists::open(
            &config.service.data_dir,
            &config.watchlist.index_factory,
            &embedder,
            media.clone(),
            outbox_notify.clone(),
            true,
        )?);
        let access = Arc::new(Access::open(&db_path)?);
        let alerts = Arc::new(Alerts::open(
            &db_path,
            media.clone(),
            config.api.sse_buffer,
            metrics.clone(),
            outbox_notify.clone(),
        )?);
        let models = ModelIds::from(inference.models());
        let frames = Frames::new(
            Matching::new(watchlists.live()),
            Box::new(FrameRule),
            alerts.clone(),
            access.clone(),
            metrics.clone(),
            config.service.site.clone(),
            models,
        );
        let retention = Retention::new(
            watchlists.clone(),
            alerts.clone(),
            media,
            db_path.clone(),
            config.events.retention_days,
            config.sink().is_some(),
        )?;
        let cameras = Arc::new(Cameras::new(&config.ingest, &config.cameras, config.limits.max_pixels));
        metrics.register_collector(Box::new(cameras.metrics()));
        let tuning = Tuning::new(
            watchlists.clone(),
            alerts.clone(),
            crate::eval::report::dir(&config.service.data_dir),
            embedder.name.clone(),
        );
        // Served over TLS, the session cookie is `Secure` and forms are checked against https.
        let console = crate::console::config::ConsoleSection {
            secure_cookies: config.console.secure_cookies || config.tls.enabled(),
            ..config.console.clone()
        };
        let sessions = Arc::new(Sessions::open(&db_path, console, crate::clock::now_ms())?);
        let app = Self {
            tuning,
            cameras,
            push: PushCameras::new(&config.cameras),
            sessions,
            audit: AuditLog::new(db_path.clone()),
            outbox: LocalOutbox::open(&db_path, &config.service.site)?,
            store_probe: StoreProbe::new(db_path.clone()),
            outbox_gauges: OutboxGaugeReader::new(db_path.clone()),
            config,
            metrics,
            inference,
            access,
            watchlists,
            alerts,
            frames,
            retention,
            outbox_notify,
            db_path,
        };
        // Files a crash left behind are found at start-up, not only at the first sweep.
        if let Err(e) = app.retention.sweep_orphans(crate::clock::now_ms()) {
            tracing::error!(error = %e, "orphaned face images: start-up sweep failed");
        }
        app.store_probe.run();
        Ok(app)
    }

    /// A tracked camera's decisions (see [`Passes`]): the track rule over this camera's frames.
    pub fn passes(&self, camera: &str) -> Result<Passes> {
        crate::frames::validate_camera(camera)?;
        Passes::new(
            camera,
            self.config.tracking.tracker(),
            self.config.tracking.rule(),
            Matching::new(self.watchlists.live()),
            self.alerts.clone(),
            self.metrics.clone(),
            &self.config.service.site,
            ModelIds::from(self.inference.models()),
        )
    }

    /// Embeds faces chosen by a tracked camera, waiting for the embedder (blocking).
    pub fn embed_blocking(&self, faces: Vec<crate::pipeline::Face>) -> Result<Vec<crate::pipeline::Face>> {
        let rx = self.inference.embed_faces(faces)?;
        Ok(rx.blocking_recv().map_err(|_| Error::ShuttingDown)??.faces)
    }

    /// From state only (no store access, no lock wait): cheap enough for the async runtime.
    pub fn readiness(&self) -> Readiness {
        let models_loaded = self.inference.alive();
        let index_loaded = self.watchlists.healthy();
        let store_writable = self.store_probe.writable();
        Readiness {
            ready: models_loaded && index_loaded && store_writable,
            models_loaded,
            index_loaded,
            store_writable,
            provider: self.inference.provider,
        }
    }

    /// The outbox gauges, read off the store locks (see [`OutboxGaugeReader`]).
    pub async fn outbox_gauges(&self) -> OutboxGauges {
        self.outbox_gauges.read().await
    }

    /// The Prometheus text from counters and the given outbox gauges (no store access).
    pub fn render_metrics(&self, outbox: OutboxGauges) -> String {
        let (ingest_queue, embed_queue) = self.inference.queue_depths();
        self.metrics.render(&Gauges {
            ingest_queue,
            embed_queue,
            sse_clients: self.alerts.subscribers(),
            outbox_depth: outbox.depth,
            outbox_oldest_s: outbox.oldest_ms as f64 / 1000.0,
            outbox_parked: outbox.parked,
        })
    }

    /// Stops the model workers after the queued frames and persists the indexes (blocking).
    pub fn stop(&self) {
        self.inference.shutdown();
        self.watchlists.close();
    }
}

/// `facewatch serve`: holds the data folder, opens the [`App`], serves the API and runs the
/// background loops until SIGINT/SIGTERM, then shuts down in order.
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
    // A data-key rotation cut short (`key rotate --data-key`) is finished before anything opens.
    crate::vault::finish_interrupted(&config.encryption, &config.service.data_dir, &_data_lock)?;
    let app = tokio::task::spawn_blocking(move || App::open(config))
        .await
        .map_err(|e| Error::Runtime(format!("start-up task failed: {e}")))??;
    let app = Arc::new(app);
    // Read before binding: a bad certificate or key stops the start with its file named.
    let certs = if app.config.tls.enabled() { Some(crate::tls::Certificates::load(&app.config.tls)?) } else { None };
    let listener = TcpListener::bind(&bind).await.map_err(|e| Error::Config(format!("bind {bind}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Error::io(&bind, e))?;

    let (trigger, shutdown) = shutdown::channel();
    // The background loops; awaited after the server has drained.
    let loops = TaskTracker::new();
    loops.spawn(retention_loop(app.clone(), sweep_every, shutdown.clone()));
    loops.spawn(state_loop(app.clone(), shutdown.clone()));
    // Each camera's supervisor and consumer; every ffmpeg is killed and reaped at shutdown.
    app.cameras.start(&loops, Arc::new(crate::camera_feed::EngineSink::new(app.clone())), &shutdown);
    if let Some(certs) = &certs {
        loops.spawn(crate::tls::reload_on_sighup(certs.clone(), shutdown.clone()));
    }
    loops.close();
    // The publisher has its own signal: it stops only after the model workers, so the events
    // of in-flight frames still go out.
    let (pub_trigger, pub_shutdown) = shutdown::channel();
    let publisher = TaskTracker::new();
    match app.config.sink() {
        Some(sink) => {
            let p = Publisher::new(
                app.db_path.clone(),
                app.config.service.site.clone(),
                sink,
                Duration::from_millis(app.config.events.publish_max_backoff_ms),
                app.metrics.clone(),
                app.outbox_notify.clone(),
            )?;
            publisher.spawn(p.run(pub_shutdown, grace));
        }
        None => tracing::info!("no broker configured: events stay in the local outbox (GET /v1/events)"),
    }
    publisher.close();
    tracing::info!(%addr, site = %app.config.service.site, provider = app.inference.provider, "facewatch serving");
    // Scripts and tests wait for this line (the port may have been chosen by the OS).
    println!("facewatch listening on {}://{addr}", if certs.is_some() { "https" } else { "http" });

    let state = AppState::new(app.clone(), shutdown.clone());
    let router = api::router(state);
    let stop = async move {
        signal().await;
        tracing::info!("shutting down: no new connections, finishing in-flight requests");
        trigger.fire();
    };
    let server = match certs {
        Some(certs) => {
            let tls = crate::tls::TlsListener::new(listener, certs, &app.config.tls, shutdown.clone())?;
            let server = axum::serve(tls, router).with_graceful_shutdown(stop);
            tokio::spawn(async move { server.await })
        }
        None => {
            let server = axum::serve(listener, router).with_graceful_shutdown(stop);
            tokio::spawn(async move { server.await })
        }
    };
    // After the signal, in-flight requests get `grace` to finish.
    shutdown.clone().recv().await;
    match tokio::time::timeout(grace, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "server error"),
        Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
        Err(_) => tracing::warn!(?grace, "in-flight requests still running after the grace period: stopping"),
    }
    loops.wait().await;
    let a = app.clone();
    let _ = tokio::task::spawn_blocking(move || a.stop()).await;
    pub_trigger.fire();
    publisher.wait().await;
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
async fn state_loop(app: Arc<App>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(STATE_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.recv() => return,
        }
        let a = app.clone();
        let res = tokio::task::spawn_blocking(move || {
            a.store_probe.run();
            a.access.reload()
        })
        .await;
        match res {
            Ok(Err(e)) => tracing::error!(error = %e, "reloading the tokens failed"),
            Err(e) => tracing::error!(error = %e, "state check task failed"),
            Ok(Ok(())) => {}
        }
    }
}

async fn retention_loop(app: Arc<App>, every: Duration, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.recv() => return,
        }
        let a = app.clone();
        let now = crate::clock::now_ms();
        match tokio::task::spawn_blocking(move || a.retention.sweep(now)).await {
            Ok(Err(e)) => tracing::error!(error = %e, "retention sweep failed"),
            Err(e) => tracing::error!(error = %e, "retention sweep task failed"),
            Ok(Ok(_)) => {}
        }
    }
}
