//! [`MaskTokens`]: `x[c, t]·mask[t]` (zeroes the features of invalid
//! anchors).

use core::ops::Range;

use edgedetr_format::DType;

use super::codec::{Tensor, op_params};
use super::{Cx, Io, Op, Setup, Span, ensure};
use crate::view::{f32s, f32s_mut};

op_params! {
    /// A per-token mask.
    pub struct MaskTokens {
        /// `[T]` f32 mask values.
        mask: Tensor,
    }
}

impl Op for MaskTokens {
    type Plan = (usize, Span);

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let y = cx.operands(1..=1, DType::F32, DType::F32)?;
        let (_, h, w) = cx.chw(&y)?;
        ensure(
            cx.input(0).numel() == y.numel()
                && cx.tensor_of(self.mask, DType::F32)?.numel() == (h * w) as u64,
            "mask needs one input of the output's size and a mask per token",
        )
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        Ok((cx.chw(&cx.output())?.0, cx.tensor_span(self.mask)))
    }

    fn run(&(c, mask): &Self::Plan, io: &mut Io<'_>, _work: Range<usize>) {
        let mask = f32s(mask.of(io.file));
        io.k.mask_tokens(f32s(io.ins[0]), c, mask, f32s_mut(io.out.all()));
    }
}
