//! [`Conv2d`]: a float convolution, dense or depthwise, with bias and a
//! fused activation (also every linear layer, as a 1×1 convolution over a
//! `[C, T]` token matrix).
//!
//! Weights stored as f16 or per-channel int8 are expanded to f32 once, by
//! `prepare`, into the session's prepared data; f32 weights are used in place
//! from the model bytes. A frame only runs the convolution.
//!
//! `prepare` chooses the algorithm: dense 3×3 stride-1 convolutions of at
//! least [`WINOGRAD_MIN_CHANNELS`] channels in and out and
//! [`WINOGRAD_MIN_TILES`] output tiles run as Winograd F(4×4, 3×3)
//! (`edgedetr_kernels::winograd`, 4× fewer multiplies) when the model file
//! planned the larger scratch that needs ([`Conv2d::scratch_bytes_planned`]);
//! the weights (f32, or f16 and int8 expanded nine at a time) are then
//! transformed once into the prepared data (`36·Cout·Cin` f32). Every other convolution, and those of files planned
//! with the direct scratch only, run directly (im2col + GEMM).
//!
//! In an int8 file's decoder after the token selection, linear layers (1×1,
//! stride 1, dense) with int8 or f16 weights run as [`LinearBf16`] instead where the kernels
//! compute it natively
//! ([`Kernels::linear_bf16_native`](edgedetr_kernels::Kernels::linear_bf16_native):
//! AMX), at several times the f32 rate: the inputs are rounded to bfloat16
//! (a relative 2⁻⁹), int8 weights are exact in it and f16 ones rounded (the
//! same 2⁻⁹); sums stay f32. Measured on bus 320 against the f32 decoder:
//! logits 68.7 dB, boxes 77 dB SQNR (scores within 3·10⁻⁴), far below the
//! int8 model's own error.
//! `prepare` keeps the weights as bfloat16 bits. Only in the decoder (and
//! later stages): every int8 tensor lies upstream of it, so int8 results
//! stay bit-identical on every CPU, while the neck's float AIFI, which feeds
//! int8 tensors, keeps the f32 arithmetic all paths share. fp32 and fp16
//! files never round.

use core::ops::Range;

use edgedetr_format::{DType, QuantKind};
use edgedetr_kernels::{
    Act, ConvF32, ConvGeom, LinearBf16, WinogradF32, bf16_bits, dequantize, f16_to_f32_slice,
    linear_bf16_scratch_len, winograd_f43_fits, winograd_f43_scratch_len, winograd_f43_weights,
    winograd_f43_weights_len, winograd_f43_weights_with,
};

use super::codec::{Tensor, op_params};
use super::{Cx, Io, Op, OpKind, Setup, Span, ensure, items};
use crate::view::{f32s, f32s_mut, i8s, u16s};

/// The decoder's stage number ([`edgedetr_format::OpDesc::stage`]).
const DECODER_STAGE: u8 = 2;

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

/// Fewest input and output channels for Winograd: below, the transforms
/// cost more than the multiplies they save (measured on AVX-512: 2× faster
/// at 256 channels, 1.3× at 64).
pub const WINOGRAD_MIN_CHANNELS: usize = 32;

/// Fewest 4×4 output tiles for Winograd: the 36 GEMMs have one column per
/// tile, and below two dozen columns they run far from the GEMM's peak (a
/// 10×10 map, 9 tiles, runs 1.5× slower than direct; 20×20, 25 tiles, 1.5×
/// faster).
pub const WINOGRAD_MIN_TILES: usize = 16;

impl Conv2d {
    /// Scratch bytes a convolution of geometry `g` needs run directly (the
    /// same for every kernel path): what every file plans at least.
    pub fn scratch_bytes(g: &ConvGeom) -> usize {
        g.scratch_len() * 4
    }

    /// Whether a convolution of geometry `g` is one Winograd serves well
    /// (dense 3×3 stride 1, [`WINOGRAD_MIN_CHANNELS`],
    /// [`WINOGRAD_MIN_TILES`]); it runs so when its scratch allows.
    pub fn winograd_suits(g: &ConvGeom) -> bool {
        winograd_f43_fits(g)
            && g.cin >= WINOGRAD_MIN_CHANNELS
            && g.cout >= WINOGRAD_MIN_CHANNELS
            && g.h >= 8
            && g.w >= 8
            && g.h.div_ceil(4) * g.w.div_ceil(4) >= WINOGRAD_MIN_TILES
    }

    /// Scratch bytes the quantizer plans for a convolution of geometry `g`:
    /// Winograd's ([`winograd_f43_scratch_len`]) where it suits the
    /// convolution, else [`Conv2d::scratch_bytes`].
    pub fn scratch_bytes_planned(g: &ConvGeom) -> usize {
        let direct = Conv2d::scratch_bytes(g);
        if Conv2d::winograd_suits(g) {
            direct.max(winograd_f43_scratch_len(g) * 4)
        } else {
            direct
        }
    }

    /// Whether the convolution of `cx` (geometry `g`) runs as [`LinearBf16`]
    /// on kernels `k`: a linear layer (1×1, stride 1, dense) of an int8 file's
    /// decoder after its token selection (the encoder's scores are often
    /// near ties, and a rounding there would change which queries are
    /// chosen), with int8 or f16 weights, in whole blocks of 32 channels and
    /// 32 inputs (the tiles'; also every thread's share of the channels, so
    /// that each runs the same kernel whatever the thread count), with the
    /// scratch it needs, and a native kernel. fp32 and fp16 files keep the f32
    /// arithmetic they promise.
    fn as_bf16(&self, cx: &Cx<'_, '_>, g: &ConvGeom, k: &edgedetr_kernels::Kernels) -> bool {
        let input = cx.file.buffer(cx.file.meta().input_buffer);
        let selected = (0..cx.index).any(|i| cx.file.op(i).kind == OpKind::TopKTokens as u16);
        cx.op.stage >= DECODER_STAGE
            && input.dtype == DType::I8 as u8
            && selected
            && g.k == 1
            && g.stride == 1
            && g.groups == 1
            && ChannelBlock::width(g).is_multiple_of(32)
            && g.cout.is_multiple_of(32)
            && g.cin.is_multiple_of(32)
            && cx.scratch_bytes() >= linear_bf16_scratch_len(g.cin)
            && k.linear_bf16_native()
    }

    /// Whether the convolution of `cx` runs as Winograd: it suits it and the
    /// file planned the scratch for it (files planned before Winograd run
    /// directly).
    fn uses_winograd(&self, cx: &Cx<'_, '_>, g: &ConvGeom) -> bool {
        Conv2d::winograd_suits(g) && cx.scratch_bytes() >= winograd_f43_scratch_len(g) * 4
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
    /// int8- or f16-stored weights of a linear layer as bfloat16 bits in
    /// the prepared data, with per-channel scales (the int8 weights', ones
    /// for f16).
    Bf16 {
        /// `[cout][cin]` bfloat16 bits, in the prepared data.
        weight: Span,
        /// `[cout]` f32 scales, in the prepared data.
        scale: Span,
    },
}

/// How the convolution runs.
#[derive(Clone, Copy, Debug)]
pub enum Algo {
    /// im2col + GEMM (or the depthwise kernel), with these f32 weights.
    Direct(Weights),
    /// Winograd F(4×4, 3×3) with the transformed weights `U[36][Cout][Cin]`
    /// in the prepared data.
    Winograd(Span),
}

/// The prepared convolution.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    g: ConvGeom,
    algo: Algo,
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
        match conv_geom(cx, self.k, self.stride, self.groups) {
            // U only: f16 and int8 weights are expanded nine at a time.
            Ok(g) if self.uses_winograd(cx, &g) => winograd_f43_weights_len(&g) * 4,
            _ if w.dtype == DType::F32 as u8 => 0,
            _ => w.numel() as usize * 4,
        }
    }

    fn prepare(&self, cx: &Cx<'_, '_>, s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        let g = conv_geom(cx, self.k, self.stride, self.groups)?;
        let w = cx.tensor(self.weight);
        let raw = cx.tensor_span(self.weight).of(cx.file.bytes());
        let n = w.numel() as usize;
        let dtype = DType::from_u8(w.dtype);
        let scales = || f32s(cx.file.tensor_bytes(w.channel_params));
        let algo = if self.uses_winograd(cx, &g) {
            let (span, u) = s.f32s(winograd_f43_weights_len(&g));
            let at = |co: usize, ci: usize| (co * g.cin + ci) * 9;
            match dtype {
                Some(DType::F16) => {
                    let h = u16s(raw);
                    winograd_f43_weights_with(
                        &g,
                        |co, ci| {
                            let mut k = [0f32; 9];
                            f16_to_f32_slice(&h[at(co, ci)..][..9], &mut k);
                            k
                        },
                        u,
                    );
                }
                Some(DType::I8) => {
                    let (q, scales) = (i8s(raw), scales());
                    winograd_f43_weights_with(
                        &g,
                        |co, ci| {
                            let scale = scales.get(co).copied().unwrap_or(0.0);
                            core::array::from_fn(|i| dequantize(q[at(co, ci) + i], scale, 0))
                        },
                        u,
                    );
                }
                _ => winograd_f43_weights(&g, f32s(raw), u),
            }
            Algo::Winograd(span)
        } else {
            Algo::Direct(match dtype {
                Some(t @ (DType::I8 | DType::F16)) if self.as_bf16(cx, &g, &s.k) => {
                    let scales: &[f32] = if t == DType::I8 {
                        let scale = Tensor(w.channel_params);
                        ensure(
                            cx.tensor_of(scale, DType::F32)?.numel() == g.cout as u64,
                            "int8 weight scales do not match the output channels",
                        )?;
                        scales()
                    } else {
                        &[]
                    };
                    let (scale, dst) = s.f32s(g.cout);
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = scales.get(i).copied().unwrap_or(1.0);
                    }
                    let (weight, dst) = s.u16s(n);
                    if t == DType::I8 {
                        for (d, &q) in dst.iter_mut().zip(i8s(raw)) {
                            *d = bf16_bits(q as f32);
                        }
                    } else {
                        for (d, &h) in dst.iter_mut().zip(u16s(raw)) {
                            *d = bf16_bits(half::f16::from_bits(h).to_f32());
                        }
                    }
                    Weights::Bf16 { weight, scale }
                }
                Some(DType::F16) => {
                    let k = s.k;
                    let (span, dst) = s.f32s(n);
                    k.f16_to_f32(u16s(raw), dst);
                    Weights::Prepared(span)
                }
                Some(DType::I8) => {
                    let k = s.k;
                    let scales = scales();
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
            })
        };
        Ok(Plan {
            g,
            algo,
            bias: cx.tensor_span(self.bias),
            act: self.act,
        })
    }

    fn run(p: &Plan, io: &mut Io<'_>, work: Range<usize>) {
        let pixels = p.pixels(&work);
        let b = if pixels.is_some() {
            // Every channel, the tokens of `work` (below).
            ChannelBlock::of(&p.g, &(0..ChannelBlock::units(&p.g)))
        } else {
            ChannelBlock::of(&p.g, &work)
        };
        let Some(b) = b else {
            return;
        };
        let bias = f32s(p.bias.of(io.file));
        let weight = match p.algo {
            Algo::Direct(Weights::File(s)) => f32s(s.of(io.file)),
            Algo::Direct(Weights::Prepared(s)) => f32s(s.of(io.prepared)),
            Algo::Direct(Weights::Bf16 { weight, scale }) => {
                let (m, k) = (b.co.len(), p.g.cin);
                let a = LinearBf16 {
                    m,
                    n: p.g.h * p.g.w,
                    k,
                    weight: &u16s(weight.of(io.prepared))[b.co.start * k..][..m * k],
                    scale: &f32s(scale.of(io.prepared))[b.co.clone()],
                    bias: &bias[b.co.clone()],
                    input: &f32s(io.ins[0])[b.input],
                    act: p.act,
                };
                if let Some(cols) = pixels {
                    let mut planes = io.out.planes_f32(p.g.h * p.g.w);
                    io.k.linear_bf16_planes(&a, &mut planes.narrow(cols), io.scratch);
                } else {
                    io.k.linear_bf16(&a, io.out.f32s(b.out), io.scratch);
                }
                return;
            }
            Algo::Winograd(u) => {
                let a = WinogradF32 {
                    g: p.g,
                    input: f32s(io.ins[0]),
                    u: f32s(u.of(io.prepared)),
                    bias,
                    act: p.act,
                    co_start: b.co.start,
                    co_end: b.co.end,
                };
                if let Some(cols) = pixels {
                    let mut planes = io.out.planes_f32(p.g.h * p.g.w);
                    io.k.winograd_f43_f32_planes(
                        &a,
                        &mut planes.narrow(cols),
                        f32s_mut(io.scratch),
                    );
                } else {
                    io.k.winograd_f43_f32(&a, io.out.f32s(b.out), f32s_mut(io.scratch));
                }
                return;
            }
        };
        let per_out = p.g.weight_len() / p.g.cout;
        let a = ConvF32 {
            g: b.g,
            input: &f32s(io.ins[0])[b.input],
            weight: &weight[b.co.start * per_out..b.co.end * per_out],
            bias: &bias[b.co],
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

/// Tokens (pixels) per work unit of a bfloat16 linear shared by tokens: the
/// AMX kernel's tile of columns.
const TOKENS_PER_UNIT: usize = 32;

impl Plan {
    /// Output pixels per work unit when threads share the layer by pixels
    /// (columns of the output planes) rather than by channel blocks: a
    /// bfloat16 linear over at least 16 tiles of 32 tokens, a Winograd
    /// convolution over at least 8 rows of 4×4 tiles (a unit: one row of
    /// tiles). By channels, every thread transforms or packs all the inputs
    /// again (the encoder memory's value projections ran only 1.3x faster
    /// on 2 threads); by pixels, each its own.
    fn pixels_per_unit(&self) -> Option<usize> {
        let g = &self.g;
        match self.algo {
            Algo::Direct(Weights::Bf16 { .. }) if g.h * g.w >= 16 * TOKENS_PER_UNIT => {
                Some(TOKENS_PER_UNIT)
            }
            Algo::Winograd(_) if g.h.div_ceil(4) >= 8 => Some(4 * g.w),
            _ => None,
        }
    }

    /// The output pixels of units `work` when the layer splits by pixels.
    fn pixels(&self, work: &Range<usize>) -> Option<Range<usize>> {
        let n = self.g.h * self.g.w;
        self.pixels_per_unit().map(|per| items(work, per, n))
    }
}

impl super::Units for Plan {
    fn units(&self) -> usize {
        match self.pixels_per_unit() {
            Some(per) => (self.g.h * self.g.w).div_ceil(per),
            None => ChannelBlock::units(&self.g),
        }
    }

    fn writes(&self, work: &Range<usize>) -> Option<Range<usize>> {
        self.pixels(work)
            .or_else(|| Some(ChannelBlock::of(&self.g, work).map_or(0..0, |b| b.out)))
    }

    fn planes(&self) -> Option<usize> {
        self.pixels_per_unit().map(|_| self.g.h * self.g.w)
    }

    fn cost_per_output(&self) -> usize {
        self.g.weight_len() / self.g.cout.max(1)
    }
}
