//! Scalar reference kernels of the non-GEMM operators: element-wise sums,
//! nearest upsampling, layer normalisation over channel-major tokens, softmax.
//!
//! Layouts are channel-major: a feature map is `[C, H, W]` and a token matrix
//! `[C, T]` (element `(c, t)` at `c * T + t`).

pub mod decoder;
pub mod elementwise;
pub mod norm;
pub mod select;

pub use elementwise::{add, add_act, upsample_nearest2x, weighted_sum};
pub use norm::{layer_norm_channels, softmax_columns, softmax_in_place};
