//! [`Attention`]: the multi-head scaled dot-product attention core over
//! channel-major token matrices, as torch's `MultiheadAttention` (SPEC.md
//! §4.1): per head h, `A = softmax((Q_h·s)ᵀ K_h)` with `s = sqrt(1/d)` applied
//! to Q first, then `O_h = V_h · Aᵀ`. The projections are separate linears.
//!
//! `A` is formed transposed, `Aᵀ = softmax down the columns of K_hᵀ (Q_h·s)`
//! (`[Tk, T]`), so that both GEMMs read their packed operand (`Q_h`, then
//! `Aᵀ`) along its rows; each score sums the same products in the same order.

use core::ops::Range;

use edgedetr_format::{BufferDesc, DType};
use edgedetr_kernels::{Act, Epilogue, Gemm, MatRef, sgemm_scratch_len};

use super::codec::op_params;
use super::{Cx, Io, Op, Setup, ensure};
use crate::view::{f32s, f32s_mut};

op_params! {
    /// The attention core.
    pub struct Attention {
        /// Heads (dividing the channels).
        heads: u32,
    }
}

impl Attention {
    /// Scratch bytes for `c` channels, `t` queries and `tk` keys: the scaled
    /// queries, one head's score matrix, and the GEMM packing space.
    pub fn scratch_bytes(c: usize, t: usize, tk: usize) -> usize {
        4 * (c * t + t * tk + sgemm_scratch_len(c.max(tk)))
    }
}

/// The prepared attention.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    c: usize,
    t: usize,
    tk: usize,
    heads: usize,
}

impl Op for Attention {
    type Plan = Plan;

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        cx.inputs(3..=3)?;
        cx.inputs_dtype(DType::F32)?;
        cx.dtype(&cx.output(), DType::F32)?;
        let p = self.plan(cx)?;
        let (c, t, tk, heads) = (p.c, p.t, p.tk, p.heads);
        let tokens = |b: BufferDesc| cx.chw(&b).map(|(c, h, w)| (c, h * w));
        ensure(
            heads != 0
                && c % heads == 0
                && tokens(cx.input(1))? == (c, tk)
                && tokens(cx.input(2))? == (c, tk)
                && tokens(cx.output())? == (c, t),
            "attention shapes or head count are inconsistent",
        )?;
        cx.need_scratch(Attention::scratch_bytes(c, t, tk))
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        self.plan(cx)
    }

    fn run(p: &Plan, io: &mut Io<'_>, work: Range<usize>) {
        let (c, t, tk) = (p.c, p.t, p.tk);
        let d = c / p.heads;
        let scale = libm::sqrt(1.0 / d as f64) as f32;
        let (q, key, v) = (f32s(io.ins[0]), f32s(io.ins[1]), f32s(io.ins[2]));
        let scratch = f32s_mut(io.scratch);
        let (qs, rest) = scratch.split_at_mut(c * t);
        let (scores, gemm_scratch) = rest.split_at_mut(t * tk);
        let plain = Epilogue {
            bias: None,
            accumulate: false,
            act: Act::None,
        };
        for h in work {
            let head = h * d * t..(h + 1) * d * t;
            let qh = &mut qs[head.clone()];
            for (o, &x) in qh.iter_mut().zip(&q[head.clone()]) {
                *o = x * scale;
            }
            let kh = &key[h * d * tk..(h + 1) * d * tk];
            let vh = &v[h * d * tk..(h + 1) * d * tk];
            // The scores transposed, key-major: scores[j, i] = Σ_p K[p, j] Q[p, i]
            // (both operands read along their rows), softmaxed down each
            // column (over the keys of query i).
            let g = Gemm {
                m: tk,
                n: t,
                k: d,
                a: MatRef {
                    data: kh,
                    rs: 1,
                    cs: tk,
                },
                b: MatRef {
                    data: qh,
                    rs: t,
                    cs: 1,
                },
                rsc: t,
                epi: plain,
            };
            io.k.sgemm(&g, scores, gemm_scratch);
            io.k.softmax_cols(scores, t);
            // out[p, i] = Σ_j V[p, j] A[i, j], with Aᵀ = scores row-major.
            let g = Gemm {
                m: d,
                n: t,
                k: tk,
                a: MatRef {
                    data: vh,
                    rs: tk,
                    cs: 1,
                },
                b: MatRef {
                    data: scores,
                    rs: t,
                    cs: 1,
                },
                rsc: t,
                epi: plain,
            };
            io.k.sgemm(&g, io.out.f32s(head), gemm_scratch);
        }
    }
}

impl Attention {
    /// `(C, T, Tk, heads)` from the operands.
    fn plan(&self, cx: &Cx<'_, '_>) -> Result<Plan, &'static str> {
        let (c, qh, qw) = cx.chw(&cx.input(0))?;
        let (_, kh, kw) = cx.chw(&cx.input(1))?;
        Ok(Plan {
            c,
            t: qh * qw,
            tk: kh * kw,
            heads: self.heads as usize,
        })
    }
}

impl super::Units for Plan {
    fn units(&self) -> usize {
        self.heads
    }

    fn writes(&self, work: &Range<usize>) -> Option<Range<usize>> {
        let per_head = self.c / self.heads * self.t;
        Some(work.start * per_head..work.end * per_head)
    }

    fn cost_per_output(&self) -> usize {
        // Q·Kᵀ and A·V: 2·tk multiply-adds per output element.
        2 * self.tk
    }
}
