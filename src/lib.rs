//! facewatch: an embedded face-recognition checkpoint service.
//!
//! One frame's way through the library: [`vision::decode`] -> [`vision::detect`] ->
//! [`vision::align`] -> [`vision::quality`] -> [`vision::embed`] (composed by [`pipeline`], run
//! off the async runtime by [`inference`], the models behind a [`backend`]) -> [`watchlist`]
//! (FAISS match against per-list policies) -> [`alert`] (stored with its crop, reviewed by
//! officers) -> [`api`] (HTTP, SSE).

pub mod alert;
pub mod api;
pub mod audit;
pub mod auth;
pub mod backend;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod data_lock;
pub mod db;
pub mod enroll;
pub mod error;
pub mod eval;
pub mod events;
pub mod inference;
pub mod logging;
pub mod manifest;
pub mod media;
pub mod memory;
pub mod metrics;
pub mod models_dir;
pub mod outbox_gauges;
pub mod pipeline;
pub mod secret;
pub mod serve;
pub mod token_cache;
pub mod vision;
pub mod watchlist;

pub use error::{Error, Result};
