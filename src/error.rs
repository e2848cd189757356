//! The one error type of the library: domain errors that keep their sources. Only the HTTP
//! layer knows about statuses (`api::error::status`).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a supported image (JPEG or PNG expected): {0}")]
    UnsupportedImage(String),
    #[error("corrupt or truncated image: {0}")]
    CorruptImage(String),
    #[error("image too large: {width}x{height} is {pixels} pixels, the limit is {max_pixels}")]
    ImageTooLarge { width: u32, height: u32, pixels: u64, max_pixels: u64 },
    #[error("empty input: zero bytes")]
    EmptyInput,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("models not found: {0}")]
    ModelsNotFound(String),
    #[error("model file missing: {path} (run scripts/setup.sh, see models/README.md)")]
    ModelMissing { path: PathBuf },
    #[error("model file {path} has sha256 {actual}, the manifest expects {expected}")]
    ModelChecksum { path: PathBuf, expected: String, actual: String },
    #[error("model manifest: {0}")]
    Manifest(String),
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    #[error("model output: {0}")]
    ModelOutput(String),
    #[error("watch-list index: {0}")]
    Index(String),
    #[error("store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("store migration: {0}")]
    Migration(String),
    #[error("unknown watch list: {0}")]
    UnknownList(String),
    #[error("unknown subject {subject} in list {list}")]
    UnknownSubject { list: String, subject: String },
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("enrollment refused: {0}")]
    EnrollmentRefused(String),
    #[error("templates were made by model {stored}, the loaded embedder is {loaded}: re-enroll the list")]
    ModelMismatch { stored: String, loaded: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("role {role} may not {action}")]
    Forbidden { role: String, action: String },
    #[error("unsupported content type {0:?}")]
    UnsupportedMediaType(String),
    #[error("request body too large (limit {limit} bytes)")]
    PayloadTooLarge { limit: usize },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("busy: the {queue} queue is full, retry in {retry_after_s} s")]
    Overloaded { queue: &'static str, retry_after_s: u64 },
    #[error("shutting down")]
    ShuttingDown,
    #[error("too many open alert streams {scope} (limit {limit}): close one first")]
    TooManyStreams { scope: &'static str, limit: usize },
    #[error("configuration: {0}")]
    Config(String),
    #[error("encryption at rest: {0}")]
    Encryption(String),
    /// Another process (the running service) holds the data folder; changing watch lists behind
    /// its back would not reach its in-memory index and policies.
    #[error("the service is running on {}: use the API (POST /v1/lists/...) or stop it", dir.display())]
    DataDirInUse { dir: PathBuf },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

impl From<ort::Error> for Error {
    fn from(e: ort::Error) -> Self {
        Error::Runtime(e.to_string())
    }
}

impl From<faiss::error::Error> for Error {
    fn from(e: faiss::error::Error) -> Self {
        Error::Index(e.to_string())
    }
}
