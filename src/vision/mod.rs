//! The per-face vision stages, in pipeline order.
pub mod decode;
pub mod detect;
pub mod align;
pub mod embed;
pub mod quality;
pub mod runtime;
