//! [`Conv2dI8`]: an int8 convolution, dense or depthwise, with the
//! integer-only requantising epilogue (`edgedetr_kernels::conv_i8` states the
//! arithmetic and the layouts).
//!
//! The `[Cout, 2]` requantisation tensor holds `(m, shift)` per channel (or
//! one pair for every channel): [`requant_words`] writes it, the kernels read
//! it as [`QMul`]s.

use core::ops::Range;

use edgedetr_format::{DType, OpDesc};
use edgedetr_kernels::conv_i8::conv_i8_reduction_len;
use edgedetr_kernels::{
    ConvGeom, ConvI8, QMul, Requant, conv_i8_scratch_len, qmuls_from_pairs, weight_kpad,
};

use super::codec::{Fields, Tensor, op_params};
use super::conv2d::{ChannelBlock, conv_geom};
use super::{Cx, Io, Op, Setup, Span, ensure, items};
use crate::view::{i8s, i32s};

op_params! {
    /// An int8 convolution (`edgedetr_kernels::ConvI8`).
    pub struct Conv2dI8 {
        /// `[Cout, kpad]` int8 weights, rows zero-padded.
        weight: Tensor,
        /// `[Cout]` int32 biases (the input zero point folded in).
        bias: Tensor,
        /// `[Cout, 2]` (or `[1, 2]`) `(m, shift)` multipliers.
        requant: Tensor,
        /// A 256-entry int8 table applied last (e.g. SiLU).
        lut: Option<Tensor>,
        /// Kernel size (odd).
        k: u32,
        /// Stride.
        stride: u32,
        /// 1 (dense) or `Cin == Cout` (depthwise).
        groups: u32,
        /// Input zero point (what padding taps read).
        zp_in: i8,
        /// Output zero point.
        zp_out: i8,
        /// Lower clamp.
        lo: i8,
        /// Upper clamp.
        hi: i8,
        /// Weight row length ([`weight_kpad`] of the reduction depth).
        kpad: u32,
    }
}

impl Conv2dI8 {
    /// Scratch bytes an int8 convolution of geometry `g` needs.
    pub fn scratch_bytes(g: &ConvGeom) -> usize {
        conv_i8_scratch_len(g)
    }

    /// The parameters of an int8 op record.
    pub fn of(op: &OpDesc) -> Result<Self, &'static str> {
        Conv2dI8::decode(&Fields::of(op))
    }
}

/// The words of the requantisation tensor: `(m, shift)` per multiplier.
pub fn requant_words(muls: &[QMul]) -> impl Iterator<Item = i32> + '_ {
    muls.iter().flat_map(|q| [q.m, q.shift])
}

/// The prepared int8 convolution.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    g: ConvGeom,
    weight: Span,
    bias: Span,
    requant: Span,
    lut: Option<Span>,
    zp_in: i8,
    zp_out: i8,
    lo: i8,
    hi: i8,
    kpad: usize,
    /// Threads share the convolution by output pixels (work units of
    /// [`PIXELS_PER_UNIT`]) rather than by channel blocks.
    by_pixels: bool,
}

/// Output pixels per work unit of a convolution shared by pixels: the dense
/// kernels' tile, so that every thread's share packs whole tiles, as the
/// convolution run whole does (any other size gives the same bytes).
const PIXELS_PER_UNIT: usize = 32;

/// Whether threads share a convolution of geometry `g` by output pixels: a
/// dense one with at least 16 tiles of pixels. Shared by channel blocks,
/// every thread packs the whole input again (on the neck's 3×3 256-channel
/// layers about a quarter of the work, so 2 threads ran them only 1.5×
/// faster than one); shared by pixels, each packs its own pixels only and
/// reads all the weights, which every tile reads anyway.
fn by_pixels(g: &ConvGeom) -> bool {
    g.groups == 1 && g.out_h() * g.out_w() >= 16 * PIXELS_PER_UNIT
}

impl Op for Conv2dI8 {
    type Plan = Plan;

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        cx.operands(1..=1, DType::I8, DType::I8)?;
        let g = conv_geom(cx, self.k, self.stride, self.groups)?;
        let kpad = self.kpad as usize;
        ensure(
            kpad == weight_kpad(conv_i8_reduction_len(&g)),
            "weight rows are not padded as the kernels expect",
        )?;
        ensure(
            cx.tensor_of(self.weight, DType::I8)?.numel() == (g.cout * kpad) as u64,
            "int8 weight size does not match the convolution",
        )?;
        ensure(
            cx.tensor_of(self.bias, DType::I32)?.numel() == g.cout as u64,
            "bias length does not match the output channels",
        )?;
        let m = cx.tensor_of(self.requant, DType::I32)?.numel();
        ensure(
            m == 2 || m == 2 * g.cout as u64,
            "requantisation multipliers must be per tensor or per channel",
        )?;
        if let Some(t) = self.lut {
            ensure(
                cx.tensor_of(t, DType::I8)?.numel() == 256,
                "a lookup table has 256 entries",
            )?;
        }
        ensure(self.lo <= self.hi, "zero points and clamps must be int8")?;
        cx.need_scratch(Conv2dI8::scratch_bytes(&g))
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        let g = conv_geom(cx, self.k, self.stride, self.groups)?;
        Ok(Plan {
            g,
            weight: cx.tensor_span(self.weight),
            bias: cx.tensor_span(self.bias),
            requant: cx.tensor_span(self.requant),
            lut: self.lut.map(|t| cx.tensor_span(t)),
            zp_in: self.zp_in,
            zp_out: self.zp_out,
            lo: self.lo,
            hi: self.hi,
            kpad: self.kpad as usize,
            by_pixels: by_pixels(&g),
        })
    }

    fn run(p: &Plan, io: &mut Io<'_>, work: Range<usize>) {
        if p.by_pixels {
            let n = p.g.out_h() * p.g.out_w();
            let a = p.operands(io.file, i8s(io.ins[0]), 0..p.g.cout, p.g);
            let cols = items(&work, PIXELS_PER_UNIT, n);
            let mut planes = io.out.planes_i8(n);
            io.k.conv_i8_planes(&a, &mut planes.narrow(cols), io.scratch);
            return;
        }
        let Some(b) = ChannelBlock::of(&p.g, &work) else {
            return;
        };
        let a = p.operands(io.file, &i8s(io.ins[0])[b.input], b.co, b.g);
        let out = io.out.i8s(b.out);
        if p.g.groups == 1 {
            io.k.conv_i8(&a, out, io.scratch);
        } else {
            io.k.dwconv_i8(&a, out);
        }
    }
}

impl Plan {
    /// The kernel operands of output channels `co` (geometry `g`, reading
    /// `input`).
    fn operands<'f>(
        &self,
        file: &'f [u8],
        input: &'f [i8],
        co: Range<usize>,
        g: ConvGeom,
    ) -> ConvI8<'f> {
        let muls = qmuls_from_pairs(i32s(self.requant.of(file)));
        ConvI8 {
            g,
            input,
            zp_in: i32::from(self.zp_in),
            weight: &i8s(self.weight.of(file))[co.start * self.kpad..co.end * self.kpad],
            kpad: self.kpad,
            bias: &i32s(self.bias.of(file))[co.clone()],
            rq: Requant {
                // One multiplier for every channel, or these channels'.
                mul: if muls.len() == 1 { muls } else { &muls[co] },
                zp_out: i32::from(self.zp_out),
                lo: self.lo,
                hi: self.hi,
                lut: self.lut.and_then(|s| i8s(s.of(file)).try_into().ok()),
            },
        }
    }
}

impl super::Units for Plan {
    fn units(&self) -> usize {
        if self.by_pixels {
            (self.g.out_h() * self.g.out_w()).div_ceil(PIXELS_PER_UNIT)
        } else {
            ChannelBlock::units(&self.g)
        }
    }

    fn writes(&self, work: &Range<usize>) -> Option<Range<usize>> {
        if self.by_pixels {
            let n = self.g.out_h() * self.g.out_w();
            return Some(items(work, PIXELS_PER_UNIT, n));
        }
        Some(ChannelBlock::of(&self.g, work).map_or(0..0, |b| b.out))
    }

    fn planes(&self) -> Option<usize> {
        self.by_pixels.then(|| self.g.out_h() * self.g.out_w())
    }

    fn cost_per_output(&self) -> usize {
        self.g.weight_len() / self.g.cout.max(1)
    }
}
