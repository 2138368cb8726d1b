//! fp32 2-D convolution over channel-major (CHW, batch 1) tensors.
//!
//! Dense convolutions (`groups == 1`) run as GEMM: `A` is the weight tensor in
//! place (`[cout, cin·k·k]` row-major), `B` the im2col matrix of the input,
//! packed tile by tile straight from the image into the GEMM's scratch (never a
//! full im2col), and `C` the output (`[cout, out_h·out_w]`). A 1×1 stride-1
//! convolution reads the input as `B` directly. Depthwise convolutions
//! (`groups == cin == cout`) run a direct kernel per channel.

use crate::Act;
use crate::dispatch::{Kernels, Path};
use crate::gemm::sgemm_scratch_len;
use crate::reference;

/// Geometry of a 2-D convolution over a CHW tensor; padding is (k-1)/2 on every side (zero padding), dilation 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Input channels.
    pub cin: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel size (square, odd).
    pub k: usize,
    /// Stride (both directions).
    pub stride: usize,
    /// Groups: 1 (dense) or `cin == cout` (depthwise).
    pub groups: usize,
}

impl ConvGeom {
    /// Zero padding on each side, `(k-1)/2`.
    pub const fn pad(&self) -> usize {
        self.k.saturating_sub(1) / 2
    }

    /// Output height, `(h + 2*pad - k)/stride + 1` (meaningful when [`is_supported`](Self::is_supported)).
    pub const fn out_h(&self) -> usize {
        out_len(self.h, self.k, self.stride)
    }

    /// Output width, `(w + 2*pad - k)/stride + 1` (meaningful when [`is_supported`](Self::is_supported)).
    pub const fn out_w(&self) -> usize {
        out_len(self.w, self.k, self.stride)
    }

    /// Weight elements, `cout * (cin/groups) * k * k`.
    pub const fn weight_len(&self) -> usize {
        let cpg = match self.cin.checked_div(self.groups) {
            Some(c) => c,
            None => 0,
        };
        self.cout * cpg * self.k * self.k
    }

    /// f32 scratch elements [`Kernels::conv2d_f32`] needs, the same for every path:
    /// one packed block of the GEMM for dense convolutions, nothing for depthwise.
    pub fn scratch_len(&self) -> usize {
        if self.is_depthwise() {
            0
        } else {
            sgemm_scratch_len(self.cin * self.k * self.k)
        }
    }

    /// k odd >= 1, stride >= 1, all dims > 0, groups == 1 or groups == cin == cout,
    /// and every tensor size fits in `usize`. The model loader rejects the rest.
    pub fn is_supported(&self) -> bool {
        let dims_ok = self.k % 2 == 1
            && self.stride >= 1
            && self.cin > 0
            && self.h > 0
            && self.w > 0
            && self.cout > 0
            && (self.groups == 1 || (self.groups == self.cin && self.groups == self.cout));
        let fits = |a: usize, b: usize, c: usize| a.checked_mul(b).and_then(|x| x.checked_mul(c));
        dims_ok
            && self.h.checked_add(self.k).is_some()
            && self.w.checked_add(self.k).is_some()
            && fits(self.cin, self.h, self.w).is_some()
            && fits(self.cout, self.out_h(), self.out_w()).is_some()
            && fits(self.cout, self.cin, self.k)
                .and_then(|x| x.checked_mul(self.k))
                .is_some()
    }

    /// `groups != 1` (then `groups == cin == cout` when supported).
    fn is_depthwise(&self) -> bool {
        self.groups != 1
    }
}

const fn out_len(size: usize, k: usize, stride: usize) -> usize {
    let pad = k.saturating_sub(1) / 2;
    let stride = if stride == 0 { 1 } else { stride };
    (size + 2 * pad).saturating_sub(k) / stride + 1
}

impl Kernels {
    /// out[CHW cout x out_h x out_w] = act(conv(input, weight) + bias). Supports groups == 1 (dense, via GEMM with tile-wise im2col packing of B; 1x1 stride-1 reads the input directly) and depthwise (groups == cin == cout; a direct kernel, k = 3 and 5, stride 1 and 2 are the hot cases).
    ///
    /// `input` holds at least `cin·h·w` elements, `weight` at least
    /// [`ConvGeom::weight_len`], `bias` at least `cout`, `out` at least
    /// `cout·out_h·out_w` and `scratch` at least [`ConvGeom::scratch_len`]; only
    /// those prefixes are used. Panics on an unsupported geometry or a short
    /// slice (programmer errors: the loader validates shapes).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_f32(
        &self,
        g: &ConvGeom,
        input: &[f32],
        weight: &[f32],
        bias: &[f32],
        act: Act,
        out: &mut [f32],
        scratch: &mut [f32],
    ) {
        assert!(g.is_supported(), "conv2d_f32: unsupported geometry {g:?}");
        let out_len = g.cout * g.out_h() * g.out_w();
        assert!(
            input.len() >= g.cin * g.h * g.w,
            "conv2d_f32: input too short"
        );
        assert!(
            weight.len() >= g.weight_len(),
            "conv2d_f32: weight too short"
        );
        assert!(bias.len() >= g.cout, "conv2d_f32: bias too short");
        assert!(out.len() >= out_len, "conv2d_f32: out too short");
        assert!(
            scratch.len() >= g.scratch_len(),
            "conv2d_f32: scratch too short"
        );
        let (input, weight) = (&input[..g.cin * g.h * g.w], &weight[..g.weight_len()]);
        let (bias, out) = (&bias[..g.cout], &mut out[..out_len]);
        match self.path {
            Path::Scalar => reference::conv2d_f32(g, input, weight, bias, act, out),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2Fma(t) => {
                if g.is_depthwise() {
                    crate::x86::avx2_fma_dwconv_f32(t, g, input, weight, bias, act, out);
                } else {
                    crate::blocked::conv_dense(t, g, input, weight, bias, act, out, scratch);
                }
            }
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Path::Neon(t) | Path::NeonDotprod(t, _) => {
                if g.is_depthwise() {
                    crate::aarch64::neon_dwconv_f32(t, g, input, weight, bias, act, out);
                } else {
                    crate::blocked::conv_dense(t, g, input, weight, bias, act, out, scratch);
                }
            }
        }
    }
}
