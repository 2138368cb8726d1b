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
use super::{Cx, Io, Op, Setup, Span, ensure};
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
        })
    }

    fn run(p: &Plan, io: &mut Io<'_>, work: Range<usize>) {
        let Some(b) = ChannelBlock::of(&p.g, &work) else {
            return;
        };
        let muls = qmuls_from_pairs(i32s(p.requant.of(io.file)));
        let a = ConvI8 {
            g: b.g,
            input: &i8s(io.ins[0])[b.input],
            zp_in: i32::from(p.zp_in),
            weight: &i8s(p.weight.of(io.file))[b.co.start * p.kpad..b.co.end * p.kpad],
            kpad: p.kpad,
            bias: &i32s(p.bias.of(io.file))[b.co.clone()],
            rq: Requant {
                // One multiplier for every channel, or this block's.
                mul: if muls.len() == 1 { muls } else { &muls[b.co] },
                zp_out: i32::from(p.zp_out),
                lo: p.lo,
                hi: p.hi,
                lut: p.lut.and_then(|s| i8s(s.of(io.file)).try_into().ok()),
            },
        };
        let out = io.out.i8s(b.out);
        if p.g.groups == 1 {
            io.k.conv_i8(&a, out, io.scratch);
        } else {
            io.k.dwconv_i8(&a, out);
        }
    }
}

impl super::Units for Plan {
    fn units(&self) -> usize {
        ChannelBlock::units(&self.g)
    }

    fn writes(&self, work: &Range<usize>) -> Option<Range<usize>> {
        Some(ChannelBlock::of(&self.g, work).map_or(0..0, |b| b.out))
    }

    fn cost_per_output(&self) -> usize {
        self.g.weight_len() / self.g.cout.max(1)
    }
}
