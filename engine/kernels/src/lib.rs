//! Microkernels of the edgedetr engine, and the one table that dispatches them.
//!
//! Kernels know nothing of graphs: they take slices, sizes and parameters, never
//! allocate, never log and never look up CPU features. Every operation has a
//! scalar implementation that is its specification (or is checked against a
//! written-out one); SIMD paths override it slot by slot. A [`Kernels`] table
//! is chosen once, from a capability set ([`Caps`]), and every kernel is
//! called through it: see [`table`] for the slots, the paths and the safety
//! contract, and `tests/equivalence.rs` for the tests the inventory generates.
//!
//! ```
//! use edgedetr_kernels::{Act, Caps, ConvF32, ConvGeom, Kernels};
//!
//! let k = Kernels::for_caps(Caps::compile_time());
//! let g = ConvGeom { cin: 2, h: 4, w: 4, cout: 3, k: 3, stride: 1, groups: 1 };
//! let input = [1.0f32; 2 * 4 * 4];
//! let weight = [0.5f32; 3 * 2 * 3 * 3];
//! let bias = [0.0f32; 3];
//! let mut out = [0.0f32; 3 * 4 * 4];
//! let mut scratch = [0.0f32; 4096];
//! assert!(scratch.len() >= g.scratch_len());
//! let conv = ConvF32 { g, input: &input, weight: &weight, bias: &bias, act: Act::Relu };
//! k.conv_f32(&conv, &mut out, &mut scratch);
//! assert_eq!(out[5], 9.0); // an interior pixel: 2 channels x 9 taps x 0.5
//! ```
#![no_std]
#![deny(missing_docs)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod act;
pub mod caps;
pub mod conv;
pub mod conv_i8;
pub mod elementwise_i8;
pub mod f16;
pub mod gemm;
pub mod image;
pub mod jpeg;
pub mod linear_bf16;
pub mod ops;
pub mod planes;
pub mod quant;
pub mod table;
pub mod testing;
pub mod winograd;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod aarch64;
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod aarch64_jpeg;
#[cfg_attr(
    not(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    )),
    allow(dead_code)
)]
mod blocked;
mod reference;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_amx;
#[cfg(target_arch = "x86_64")]
mod x86_jpeg;
#[cfg(target_arch = "x86_64")]
mod x86_vnni;
#[cfg(target_arch = "x86_64")]
mod x86_vnni_c4;
#[cfg(target_arch = "x86_64")]
mod x86_vnni_dw;

pub use act::Act;
pub use caps::Caps;
pub use conv::{ConvF32, ConvGeom};
pub use conv_i8::{ConvI8, Requant, conv_i8_scratch_len, reference_conv2d_i8, weight_kpad};
pub use elementwise_i8::{
    SumI8, SumInput, u8_to_i8_image, upsample_nearest2x_i8, weighted_sum_i8, weighted_sum_params,
};
pub use f16::{f16_to_f32_slice, f32_to_f16_bits};
pub use gemm::{Epilogue, Gemm, MatRef, sgemm_scratch_len};
pub use image::Resize;
pub use linear_bf16::{LinearBf16, bf16_bits, bf16_value, linear_bf16_scratch_len};
pub use planes::OutPlanes;
pub use quant::{
    QMul, dequantize, dequantize_slice, qmuls_from_pairs, quantize_f32, quantize_f32_slice,
    quantize_multiplier, requant,
};
pub use table::{Dims, Kernels, PathDef, Slot};
pub use winograd::{
    WinogradF32, winograd_f43_fits, winograd_f43_scratch_len, winograd_f43_weights,
    winograd_f43_weights_len, winograd_f43_weights_with,
};
