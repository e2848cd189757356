//! The per-face vision stages, in pipeline order.
pub mod align;
pub mod decode;
pub mod detect;
pub mod embed;
pub mod jpeg;
pub mod planar;
pub mod quality;
pub mod runtime;
pub mod shrink;
pub mod simd;
