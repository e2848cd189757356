//! Log output: `tracing` events to stderr, filtered by `FACEWATCH_LOG` (an `EnvFilter`
//! directive such as `info` or `facewatch=debug`; default `warn`).

/// Installs the subscriber; a second call (or one after another subscriber) does nothing.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FACEWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).try_init();
}
