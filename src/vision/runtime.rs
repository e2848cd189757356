//! ONNX Runtime: one environment per process (ort allows only one), sessions with explicit
//! threading, and the execution provider that really runs, logged.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use crate::error::{Error, Result};

/// How model sessions run.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Intra-op threads per session (0 = all cores).
    pub intra_threads: usize,
    /// Ask for the CUDA execution provider (needs the `cuda` feature and a GPU build of ONNX Runtime).
    pub cuda: bool,
    /// Let the intra-op threads spin between operators while a model runs; they stop as soon
    /// as the run returns. Only for sessions that never run at the same time as another
    /// session of this process (a [`Pipeline`](crate::pipeline::Pipeline) used from one
    /// thread): two pools spinning at once on 2 cores made every call about twice as slow.
    pub spin: bool,
}

#[allow(clippy::derivable_impls)] // `cuda` defaults on when built with the feature
impl Default for RuntimeOptions {
    fn default() -> Self {
        Self { intra_threads: 0, cuda: cfg!(feature = "cuda"), spin: false }
    }
}

static ENV: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

/// Where the ONNX Runtime shared library is: `ORT_DYLIB_PATH`, else the Debian package's copy
/// (`<exe dir>/../lib/facewatch/libonnxruntime.so`), else the copy that `scripts/setup.sh` put
/// under `.deps/onnxruntime/` in the working directory, next to the executable or one folder up
/// (never the build tree: an installed binary must not look there).
pub fn locate_library() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return Some(PathBuf::from(p));
    }
    let bin = std::env::current_exe().ok().and_then(|e| e.parent().map(PathBuf::from));
    if let Some(packaged) = bin.as_ref().map(|b| b.join("../lib/facewatch/libonnxruntime.so")).filter(|p| p.is_file()) {
        return Some(packaged);
    }
    let roots = [std::env::current_dir().ok(), bin.as_ref().and_then(|b| b.parent().map(PathBuf::from)), bin];
    for root in roots.into_iter().flatten() {
        let dir = root.join(".deps/onnxruntime");
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut libs: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so.")))
                .collect();
            libs.sort();
            if let Some(lib) = libs.pop() {
                return Some(lib);
            }
        }
    }
    None
}

/// The process-wide ONNX Runtime environment, loaded on first use.
pub fn environment() -> Result<&'static Environment> {
    let env = ENV.get_or_init(|| {
        let lib = locate_library()
            .ok_or_else(|| "ONNX Runtime library not found: set ORT_DYLIB_PATH or run scripts/setup.sh".to_string())?;
        let lib = std::path::absolute(&lib).unwrap_or(lib);
        if !lib.exists() {
            return Err(format!("ONNX Runtime library not found at {}", lib.display()));
        }
        tracing::debug!(lib = %lib.display(), "loading ONNX Runtime");
        let builder = ort::init_from(&lib).map_err(|e| format!("loading {}: {e}", lib.display()))?;
        builder.with_name("facewatch").build().map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|e| Error::Runtime(e.clone()))
}

fn threads(requested: usize) -> usize {
    if requested > 0 { requested } else { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) }
}

/// Builds a session for one model file. Intra-op threads spin only with `opts.spin`, and only
/// while a run of this session is under way: waking a sleeping thread for every operator
/// costs a model call 10-25 % on this machine, but a pool that keeps spinning after its run
/// takes the cores from the other model (both measured in BENCHMARKS.md).
pub fn session(model: &Path, opts: &RuntimeOptions) -> Result<Session> {
    let env = environment()?;
    let mut builder = Session::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(ort::Error::from)?
        .with_intra_threads(threads(opts.intra_threads))
        .map_err(ort::Error::from)?
        .with_inter_threads(1)
        .map_err(ort::Error::from)?
        .with_intra_op_spinning(opts.spin)
        .map_err(ort::Error::from)?
        .with_config_entry("session.force_spinning_stop", "1")
        .map_err(ort::Error::from)?;
    builder = register_providers(builder, opts)?;
    let session = builder.commit_from_file(model)?;
    tracing::info!(model = %model.display(), provider = provider_name(opts), "model session ready");
    Ok(session)
}

#[cfg(feature = "cuda")]
fn register_providers(
    mut builder: ort::session::builder::SessionBuilder,
    opts: &RuntimeOptions,
) -> Result<ort::session::builder::SessionBuilder> {
    use ort::ep::ExecutionProvider;
    if !opts.cuda {
        return Ok(builder);
    }
    // Registration fails cleanly with a CPU-only ONNX Runtime or without a usable GPU.
    match ort::ep::CUDA::default().register(&mut builder) {
        Ok(()) => CUDA_SESSIONS.store(true, std::sync::atomic::Ordering::Relaxed),
        Err(e) => {
            CPU_FALLBACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(error = %e, "CUDA execution provider unavailable: running on CPU");
        }
    }
    Ok(builder)
}

#[cfg(not(feature = "cuda"))]
fn register_providers(
    builder: ort::session::builder::SessionBuilder,
    opts: &RuntimeOptions,
) -> Result<ort::session::builder::SessionBuilder> {
    if opts.cuda {
        CPU_FALLBACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!("CUDA requested but facewatch was built without the `cuda` feature: running on CPU");
    }
    Ok(builder)
}

/// Whether some session registered CUDA, and how many asked for it and fell back to the CPU.
#[cfg(feature = "cuda")]
static CUDA_SESSIONS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static CPU_FALLBACKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many sessions of this process asked for CUDA and run on the CPU instead (a build
/// without the `cuda` feature, or registration refused: no GPU, a CPU-only ONNX Runtime).
pub fn cpu_fallbacks() -> usize {
    CPU_FALLBACKS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The execution provider that sessions built with `opts` actually run on: "CPU", "CUDA", or
/// "CUDA and CPU" when some sessions of this process got CUDA and others fell back.
pub fn provider_name(opts: &RuntimeOptions) -> &'static str {
    #[cfg(feature = "cuda")]
    if opts.cuda {
        use std::sync::atomic::Ordering::Relaxed;
        return match (CUDA_SESSIONS.load(Relaxed), CPU_FALLBACKS.load(Relaxed) > 0) {
            (true, false) => "CUDA",
            (true, true) => "CUDA and CPU",
            _ => "CPU",
        };
    }
    let _ = opts;
    "CPU"
}
