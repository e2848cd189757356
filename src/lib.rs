//! facewatch: an embedded face-recognition checkpoint service.
//!
//! One frame's way through the library: [`vision::decode`] -> [`vision::detect`] ->
//! [`vision::align`] -> [`vision::quality`] -> [`vision::embed`] (composed by [`pipeline`]) ->
//! [`watchlist`] (FAISS match against per-list thresholds).

pub mod config;
pub mod enroll;
pub mod error;
pub mod eval;
pub mod manifest;
pub mod pipeline;
pub mod vision;
pub mod watchlist;

pub use error::{Error, Result};
