//! [`Conv2d`]: a float convolution, dense or depthwise, with bias and a
//! fused activation (also every linear layer, as a 1×1 convolution over a
//! `[C, T]` token matrix).
//!
//! Weights stored as f16 or per-channel int8 are expanded to f32 once, by
//! `prepare`, into the session's prepared data; f32 weights are used in place
//! from the model bytes. A frame only runs the convolution.
//!
//! Linear layers (1×1, stride 1, dense) with per-channel int8 weights run as
//! [`LinearBf16`] instead where the kernels compute it natively
//! ([`Kernels::linear_bf16_native`](edgedetr_kernels::Kernels::linear_bf16_native):
//! AMX): the integer weights are exact in bfloat16 and only the inputs are
//! rounded (a relative 2⁻⁹, below the weights' own quantisation step), for
//! several times the f32 rate. `prepare` keeps the integers as bfloat16 bits.
//! Only in the decoder (and later stages): every int8 tensor lies upstream
//! of it, so int8 results stay bit-identical on every CPU, while the neck's
//! float AIFI, which feeds int8 tensors, keeps the f32 arithmetic all paths
//! share.

use core::ops::Range;

use edgedetr_format::{DType, QuantKind};
use edgedetr_kernels::{Act, ConvF32, ConvGeom, LinearBf16, bf16_bits, linear_bf16_scratch_len};

use super::codec::{Tensor, op_params};
use super::{Cx, Io, Op, Setup, Span, ensure, items};
use crate::view::{f32s, f32s_mut, i8s, u16s};

/// The decoder's stage number ([`edgedetr_format::OpDesc::stage`]).
const DECODER_STAGE: u8 = 2;

/// Whether a convolution of geometry `g` with per-channel int8 weights, in
/// stage `stage`, runs as [`LinearBf16`] on kernels `k` with a scratch of
/// `scratch` bytes: a decoder linear layer in whole blocks of 32 channels
/// and 32 inputs (the tiles'), and a native kernel.
fn as_linear_bf16(g: &ConvGeom, stage: u8, k: &edgedetr_kernels::Kernels, scratch: usize) -> bool {
    stage >= DECODER_STAGE
        && g.k == 1
        && g.stride == 1
        && g.groups == 1
        && g.cout.is_multiple_of(32)
        && g.cin.is_multiple_of(32)
        && scratch >= linear_bf16_scratch_len(g.cin)
        && k.linear_bf16_native()
}

op_params! {
    /// A float convolution: padding `(k − 1)/2`, dilation 1.
    pub struct Conv2d {
        /// `[Cout, Cin/groups, k, k]` weights: f32, f16, or int8 per output
        /// channel (axis 0, f32 scales).
        weight: Tensor,
        /// `[Cout]` f32 biases.
        bias: Tensor,
        /// Kernel size (odd).
        k: u32,
        /// Stride.
        stride: u32,
        /// 1 (dense) or `Cin == Cout` (depthwise).
        groups: u32,
        /// Applied last.
        act: Act,
    }
}

impl Conv2d {
    /// Scratch bytes a convolution of geometry `g` needs (the same for every
    /// kernel path).
    pub fn scratch_bytes(g: &ConvGeom) -> usize {
        g.scratch_len() * 4
    }
}

/// The geometry of a convolution (float or int8) from its one input, its
/// output and its parameters: supported, and the output of its size.
pub(crate) fn conv_geom(
    cx: &Cx<'_, '_>,
    k: u32,
    stride: u32,
    groups: u32,
) -> Result<ConvGeom, &'static str> {
    cx.inputs(1..=1)?;
    let (cin, h, w) = cx.chw(&cx.input(0))?;
    let (cout, oh, ow) = cx.chw(&cx.output())?;
    let g = ConvGeom {
        cin,
        h,
        w,
        cout,
        k: k as usize,
        stride: stride as usize,
        groups: groups as usize,
    };
    ensure(g.is_supported(), "unsupported convolution geometry")?;
    ensure(
        (oh, ow) == (g.out_h(), g.out_w()),
        "output size does not match the convolution",
    )?;
    Ok(g)
}

/// The output channels of some work units of a convolution: the channels,
/// their geometry, and the input and output elements they read and write.
pub(crate) struct ChannelBlock {
    /// The output channels.
    pub co: Range<usize>,
    /// The geometry of those channels alone.
    pub g: ConvGeom,
    /// The input elements they read.
    pub input: Range<usize>,
    /// The output elements they write.
    pub out: Range<usize>,
}

impl ChannelBlock {
    /// Output channels per work unit: about an eighth of the channels, a
    /// multiple of 8 from 8 to 32, so that two or four threads get equal
    /// shares (80 channels: 10 units, not 32 + 48 as in units of 32; 96:
    /// 12, not 32 + 64). A thread runs its whole share of units as one
    /// block, so narrower units cost no extra packing of the input.
    const fn width(g: &ConvGeom) -> usize {
        let w = g.cout / 64 * 8;
        if w < 8 {
            8
        } else if w > 32 {
            32
        } else {
            w
        }
    }

    /// Work units of a convolution.
    pub fn units(g: &ConvGeom) -> usize {
        g.cout.div_ceil(ChannelBlock::width(g))
    }

    /// The channels of units `work` (`None` when there are none).
    pub fn of(g: &ConvGeom, work: &Range<usize>) -> Option<ChannelBlock> {
        let co = items(work, ChannelBlock::width(g), g.cout);
        let n = co.len();
        let (hw, plane) = (g.h * g.w, g.out_h() * g.out_w());
        let (sub, input) = if g.groups == 1 {
            (ConvGeom { cout: n, ..*g }, 0..g.cin * hw)
        } else {
            let sub = ConvGeom {
                cin: n,
                cout: n,
                groups: n,
                ..*g
            };
            (sub, co.start * hw..co.end * hw)
        };
        (n > 0).then(|| ChannelBlock {
            out: co.start * plane..co.end * plane,
            co,
            g: sub,
            input,
        })
    }
}

/// Where the f32 weights are.
#[derive(Clone, Copy, Debug)]
pub enum Weights {
    /// In place in the model bytes (f32-stored).
    File(Span),
    /// Expanded by `prepare` into the prepared data (f16- or int8-stored).
    Prepared(Span),
    /// int8-stored weights of a linear layer as bfloat16 bits in the
    /// prepared data, with their per-channel scales in the model bytes.
    Bf16 {
        /// `[cout][cin]` bfloat16 bits.
        weight: Span,
        /// `[cout]` f32 scales.
        scale: Span,
    },
}

/// The prepared convolution.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    g: ConvGeom,
    weight: Weights,
    bias: Span,
    act: Act,
}

impl Op for Conv2d {
    type Plan = Plan;

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        cx.operands(1..=1, DType::F32, DType::F32)?;
        let g = conv_geom(cx, self.k, self.stride, self.groups)?;
        let w = cx.tensor(self.weight);
        let cin_g = g.cin / g.groups;
        ensure(
            w.rank == 4 && w.shape == [g.cout as u32, cin_g as u32, g.k as u32, g.k as u32],
            "weight shape does not match the convolution",
        )?;
        ensure(
            cx.tensor_of(self.bias, DType::F32)?.numel() == g.cout as u64,
            "bias length does not match the output channels",
        )?;
        let per_channel_i8 = w.quant == QuantKind::PerChannel as u8 && w.quant_axis == 0;
        match DType::from_u8(w.dtype) {
            Some(DType::F32 | DType::F16) => {}
            Some(DType::I8) if per_channel_i8 => {}
            _ => return Err("conv weights must be f32, f16, or per-channel int8"),
        }
        cx.need_scratch(Conv2d::scratch_bytes(&g))
    }

    fn prepared_bytes(&self, cx: &Cx<'_, '_>) -> usize {
        let w = cx.tensor(self.weight);
        if w.dtype == DType::F32 as u8 {
            0
        } else {
            w.numel() as usize * 4
        }
    }

    fn prepare(&self, cx: &Cx<'_, '_>, s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        let g = conv_geom(cx, self.k, self.stride, self.groups)?;
        let w = cx.tensor(self.weight);
        let raw = cx.tensor_span(self.weight).of(cx.file.bytes());
        let n = w.numel() as usize;
        let weight = match DType::from_u8(w.dtype) {
            Some(DType::F16) => {
                let k = s.k;
                let (span, dst) = s.f32s(n);
                k.f16_to_f32(u16s(raw), dst);
                Weights::Prepared(span)
            }
            Some(DType::I8) if as_linear_bf16(&g, cx.op.stage, &s.k, cx.scratch_bytes()) => {
                let scale = Tensor(w.channel_params);
                ensure(
                    cx.tensor_of(scale, DType::F32)?.numel() == g.cout as u64,
                    "int8 weight scales do not match the output channels",
                )?;
                let (span, dst) = s.u16s(n);
                for (d, &q) in dst.iter_mut().zip(i8s(raw)) {
                    *d = bf16_bits(q as f32);
                }
                Weights::Bf16 {
                    weight: span,
                    scale: cx.tensor_span(scale),
                }
            }
            Some(DType::I8) => {
                let k = s.k;
                let scales = f32s(cx.file.tensor_bytes(w.channel_params));
                let (span, dst) = s.f32s(n);
                let per = n / scales.len().max(1);
                for ((d, q), &scale) in dst
                    .chunks_exact_mut(per)
                    .zip(i8s(raw).chunks_exact(per))
                    .zip(scales)
                {
                    k.dequantize(q, scale, 0, d);
                }
                Weights::Prepared(span)
            }
            _ => Weights::File(cx.tensor_span(self.weight)),
        };
        Ok(Plan {
            g,
            weight,
            bias: cx.tensor_span(self.bias),
            act: self.act,
        })
    }

    fn run(p: &Plan, io: &mut Io<'_>, work: Range<usize>) {
        let Some(b) = ChannelBlock::of(&p.g, &work) else {
            return;
        };
        let weight = match p.weight {
            Weights::File(s) => f32s(s.of(io.file)),
            Weights::Prepared(s) => f32s(s.of(io.prepared)),
            Weights::Bf16 { weight, scale } => {
                let (m, k) = (b.co.len(), p.g.cin);
                let a = LinearBf16 {
                    m,
                    n: p.g.h * p.g.w,
                    k,
                    weight: &crate::view::u16s(weight.of(io.prepared))[b.co.start * k..][..m * k],
                    scale: &f32s(scale.of(io.file))[b.co.clone()],
                    bias: &f32s(p.bias.of(io.file))[b.co.clone()],
                    input: &f32s(io.ins[0])[b.input],
                    act: p.act,
                };
                io.k.linear_bf16(&a, io.out.f32s(b.out), io.scratch);
                return;
            }
        };
        let per_out = p.g.weight_len() / p.g.cout;
        let a = ConvF32 {
            g: b.g,
            input: &f32s(io.ins[0])[b.input],
            weight: &weight[b.co.start * per_out..b.co.end * per_out],
            bias: &f32s(p.bias.of(io.file))[b.co],
            act: p.act,
        };
        let out = io.out.f32s(b.out);
        if p.g.groups == 1 {
            io.k.conv_f32(&a, out, f32s_mut(io.scratch));
        } else {
            io.k.dwconv_f32(&a, out);
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
