//! fp32 2-D convolution over channel-major (CHW, batch 1) tensors.
//!
//! Dense convolutions (`groups == 1`) run as GEMM: `A` is the weight tensor in
//! place (`[cout, cin·k·k]` row-major), `B` the im2col matrix of the input,
//! packed tile by tile straight from the image into the GEMM's scratch (never a
//! full im2col), and `C` the output (`[cout, out_h·out_w]`). A 1×1 stride-1
//! convolution reads the input as `B` directly. Depthwise convolutions
//! (`groups == cin == cout`) run a direct kernel per channel.

use crate::Act;
use crate::Kernels;
use crate::gemm::sgemm_scratch_len;

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
    /// The geometry of `cin` channels of `h×w` to `cout` channels with a
    /// `k×k` kernel, `stride` and `groups` (field order).
    pub const fn new(
        cin: usize,
        h: usize,
        w: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
    ) -> ConvGeom {
        ConvGeom {
            cin,
            h,
            w,
            cout,
            k,
            stride,
            groups,
        }
    }

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

    /// f32 scratch elements [`Kernels::conv_f32`] needs, the same for every path:
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
    pub const fn is_depthwise(&self) -> bool {
        self.groups != 1
    }
}

const fn out_len(size: usize, k: usize, stride: usize) -> usize {
    let pad = k.saturating_sub(1) / 2;
    let stride = if stride == 0 { 1 } else { stride };
    (size + 2 * pad).saturating_sub(k) / stride + 1
}

/// The operands of an f32 convolution (the argument of the
/// [`Slot::ConvF32`](crate::Slot::ConvF32) and
/// [`Slot::DwConvF32`](crate::Slot::DwConvF32) slots).
///
/// `input` holds `cin·h·w` elements (CHW), `weight` [`ConvGeom::weight_len`]
/// (`[cout][cin/groups][k][k]`), `bias` `cout`.
#[derive(Clone, Copy, Debug)]
pub struct ConvF32<'a> {
    /// The geometry.
    pub g: ConvGeom,
    /// The CHW input.
    pub input: &'a [f32],
    /// The weights, `[cout][cin/groups][k][k]`.
    pub weight: &'a [f32],
    /// One bias per output channel.
    pub bias: &'a [f32],
    /// The activation applied last.
    pub act: Act,
}

impl<'a> ConvF32<'a> {
    /// The operands cut to what the geometry uses.
    fn trimmed<'o>(&self, out: &'o mut [f32]) -> (ConvF32<'a>, &'o mut [f32]) {
        let g = &self.g;
        let a = ConvF32 {
            input: &self.input[..g.cin * g.h * g.w],
            weight: &self.weight[..g.weight_len()],
            bias: &self.bias[..g.cout],
            ..*self
        };
        (a, &mut out[..g.cout * g.out_h() * g.out_w()])
    }

    /// Panics unless the geometry is supported and every slice fits it
    /// (programmer errors: the loader validates shapes).
    fn check(&self, out: &[f32]) {
        let g = &self.g;
        assert!(g.is_supported(), "conv2d_f32: unsupported geometry {g:?}");
        assert!(
            self.input.len() >= g.cin * g.h * g.w,
            "conv2d_f32: input too short"
        );
        assert!(
            self.weight.len() >= g.weight_len(),
            "conv2d_f32: weight too short"
        );
        assert!(self.bias.len() >= g.cout, "conv2d_f32: bias too short");
        assert!(
            out.len() >= g.cout * g.out_h() * g.out_w(),
            "conv2d_f32: out too short"
        );
    }
}

impl Kernels {
    /// out[CHW cout x out_h x out_w] = act(conv(input, weight) + bias), dense
    /// (`groups == 1`) or depthwise (`groups == cin == cout`): [`Kernels::conv_f32`]
    /// or [`Kernels::dwconv_f32`].
    pub fn conv2d_f32(&self, a: &ConvF32<'_>, out: &mut [f32], scratch: &mut [f32]) {
        if a.g.is_depthwise() {
            self.dwconv_f32(a, out);
        } else {
            self.conv_f32(a, out, scratch);
        }
    }

    /// A dense (`groups == 1`) f32 convolution: GEMM with tile-wise im2col
    /// packing of `B` (1×1 stride-1 reads the input directly).
    ///
    /// `out` holds at least `cout·out_h·out_w` elements and `scratch` at
    /// least [`ConvGeom::scratch_len`]; only those prefixes are used. Panics
    /// on an unsupported or depthwise geometry or a short slice.
    pub fn conv_f32(&self, a: &ConvF32<'_>, out: &mut [f32], scratch: &mut [f32]) {
        a.check(out);
        assert!(!a.g.is_depthwise(), "conv_f32: depthwise geometry");
        assert!(
            scratch.len() >= a.g.scratch_len(),
            "conv2d_f32: scratch too short"
        );
        let (a, out) = a.trimmed(out);
        // SAFETY: the table's contract (crate::table); operands checked above.
        unsafe { (self.slots.conv_f32)(&a, out, scratch) }
    }

    /// A depthwise (`groups == cin == cout`, one channel included) f32
    /// convolution: a direct kernel per channel (k = 3 and 5, stride 1 and 2
    /// are the hot cases). Panics on another or unsupported geometry or a
    /// short slice.
    pub fn dwconv_f32(&self, a: &ConvF32<'_>, out: &mut [f32]) {
        a.check(out);
        assert!(
            a.g.groups == a.g.cin && a.g.cin == a.g.cout,
            "dwconv_f32: not a depthwise geometry"
        );
        let (a, out) = a.trimmed(out);
        // SAFETY: the table's contract (crate::table); operands checked above.
        unsafe { (self.slots.dwconv_f32)(&a, out) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::{KC, NC_MAX};

    #[test]
    fn scratch_is_small_and_path_independent() {
        assert_eq!(sgemm_scratch_len(0), 0);
        assert_eq!(sgemm_scratch_len(1), NC_MAX + 16);
        assert_eq!(sgemm_scratch_len(100_000), KC * NC_MAX + 16);
        let g = ConvGeom::new(256, 80, 80, 256, 3, 1, 1);
        // 128 KiB for the 3x3 256->256 conv at 80x80, not its 59 MiB im2col.
        assert!(g.scratch_len() * 4 <= 130 * 1024);
        assert_eq!(ConvGeom { groups: 256, ..g }.scratch_len(), 0);
    }

    #[test]
    fn geometry_rules() {
        let g = ConvGeom::new(3, 640, 640, 16, 3, 2, 1);
        assert!(g.is_supported());
        assert_eq!(
            (g.pad(), g.out_h(), g.out_w(), g.weight_len()),
            (1, 320, 320, 432)
        );
        let odd = ConvGeom {
            h: 7,
            w: 5,
            k: 5,
            ..g
        };
        assert_eq!((odd.pad(), odd.out_h(), odd.out_w()), (2, 4, 3));
        assert!(!ConvGeom { k: 2, ..g }.is_supported());
        assert!(!ConvGeom { k: 0, ..g }.is_supported());
        assert!(!ConvGeom { stride: 0, ..g }.is_supported());
        assert!(!ConvGeom { h: 0, ..g }.is_supported());
        assert!(!ConvGeom { groups: 3, ..g }.is_supported());
        assert!(!ConvGeom { groups: 0, ..g }.is_supported());
        assert!(
            ConvGeom {
                groups: 3,
                cout: 3,
                ..g
            }
            .is_supported()
        );
        assert!(!ConvGeom { w: usize::MAX, ..g }.is_supported());
        assert!(
            !ConvGeom {
                cin: usize::MAX / 2,
                ..g
            }
            .is_supported()
        );
        // Out-of-range geometries do not panic in the size helpers.
        let bad = ConvGeom {
            k: 0,
            stride: 0,
            groups: 0,
            ..g
        };
        let _ = (bad.pad(), bad.out_h(), bad.out_w(), bad.weight_len());
    }
}
