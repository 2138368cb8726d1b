//! [`LayerNorm`]: layer normalisation over the channels of each token of a
//! `[C, T]` matrix, optionally of `x + residual` (SPEC.md §2).

use core::ops::Range;

use edgedetr_format::DType;
use edgedetr_kernels::ops::norm;

use super::codec::{Tensor, op_params};
use super::{Cx, Io, Op, Setup, Span, ensure, items};
use crate::view::f32s;

op_params! {
    /// A layer normalisation.
    pub struct LayerNorm {
        /// `[C]` scales.
        gamma: Tensor,
        /// `[C]` offsets.
        beta: Tensor,
        /// Added to the variance.
        eps: f32,
    }
}

/// The prepared normalisation.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    c: usize,
    t: usize,
    gamma: Span,
    beta: Span,
    eps: f32,
}

impl Op for LayerNorm {
    type Plan = Plan;

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let y = cx.operands(1..=2, DType::F32, DType::F32)?;
        let (c, _, _) = cx.chw(&y)?;
        for id in cx.op.input_ids() {
            ensure(
                cx.buf(id).numel() == y.numel(),
                "layer-norm inputs must match the output size",
            )?;
        }
        ensure(
            cx.tensor_of(self.gamma, DType::F32)?.numel() == c as u64
                && cx.tensor_of(self.beta, DType::F32)?.numel() == c as u64,
            "layer-norm needs gamma and beta of length C",
        )?;
        ensure(self.eps.is_finite() && self.eps >= 0.0, "bad epsilon")
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        let (c, h, w) = cx.chw(&cx.output())?;
        Ok(Plan {
            c,
            t: h * w,
            gamma: cx.tensor_span(self.gamma),
            beta: cx.tensor_span(self.beta),
            eps: self.eps,
        })
    }

    fn run(p: &Plan, io: &mut Io<'_>, work: Range<usize>) {
        let a = norm::LayerNorm {
            x: f32s(io.ins[0]),
            residual: (io.n_in > 1).then(|| f32s(io.ins[1])),
            c: p.c,
            t: p.t,
            gamma: f32s(p.gamma.of(io.file)),
            beta: f32s(p.beta.of(io.file)),
            eps: p.eps,
        };
        let cols = p.tokens(&work);
        io.k.layer_norm_planes(&a, &mut io.out.planes_f32(p.t).narrow(cols));
    }
}

/// Tokens per work unit.
const TOKENS_PER_UNIT: usize = 64;

/// Threads share a layer norm by tokens only from this many (the encoder's
/// memory, not the decoder's 300 queries, whose norms take microseconds).
const MIN_SPLIT_TOKENS: usize = 1024;

impl Plan {
    /// Whether threads share the layer norm by tokens.
    fn splits(&self) -> bool {
        self.t >= MIN_SPLIT_TOKENS
    }

    /// The tokens of units `work` (every token when the op does not split).
    fn tokens(&self, work: &Range<usize>) -> Range<usize> {
        if self.splits() {
            items(work, TOKENS_PER_UNIT, self.t)
        } else {
            0..self.t
        }
    }
}

impl super::Units for Plan {
    fn units(&self) -> usize {
        if self.splits() {
            self.t.div_ceil(TOKENS_PER_UNIT)
        } else {
            1
        }
    }

    fn writes(&self, work: &Range<usize>) -> Option<Range<usize>> {
        self.splits().then(|| self.tokens(work))
    }

    fn planes(&self) -> Option<usize> {
        self.splits().then_some(self.t)
    }
}
