//! facewatch: an embedded face-recognition checkpoint service.
//!
//! One frame's way through the library: [`vision::decode`] -> [`vision::detect`] ->
//! [`vision::align`] -> [`vision::quality`] -> [`vision::embed`] (composed by [`pipeline`], run
//! off the async runtime by [`inference`], the models behind a [`backend`]) -> [`frames`] (the use case: [`matching`] against
//! the [`watchlist`] indexes with each list's policy, [`decide`], then [`alerts`]: stored with
//! its crop and its outbox event, reviewed by officers) -> [`events`] (to the central system).
//! [`app`] builds the services and runs them; [`api`] is the HTTP front end over them.

pub mod access;
pub mod alerts;
pub mod api;
pub mod app;
pub mod camera_feed;
pub mod audit;
pub mod backend;
pub mod clock;
pub mod config;
pub mod console;
pub mod data_lock;
pub mod db;
pub mod decide;
pub mod error;
pub mod eval;
pub mod events;
pub mod frames;
pub mod inference;
pub mod ingest;
pub mod logging;
pub mod manifest;
pub mod matching;
pub mod media;
pub mod memory;
pub mod metrics;
pub mod models_dir;
pub mod passes;
pub mod push;
pub mod pipeline;
pub mod readiness;
pub mod retention;
pub mod secret;
pub mod shutdown;
pub mod tls;
pub mod track;
pub mod tuning;
pub mod vault;
pub mod vision;
pub mod watchlist;

pub use error::{Error, Result};
