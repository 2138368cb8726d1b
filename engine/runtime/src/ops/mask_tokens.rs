//! [`MaskTokens`]: `x[c, t]·mask[t]` (zeroes the features of invalid
//! anchors).

use core::ops::Range;

use edgedetr_format::DType;

use super::codec::{Tensor, op_params};
use super::{Cx, Io, Op, Rows, Setup, Span, ensure};
use crate::view::f32s;

op_params! {
    /// A per-token mask.
    pub struct MaskTokens {
        /// `[T]` f32 mask values.
        mask: Tensor,
    }
}

impl Op for MaskTokens {
    type Plan = (Rows, Span);

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
        let (c, h, w) = cx.chw(&cx.output())?;
        Ok((Rows { c, t: h * w }, cx.tensor_span(self.mask)))
    }

    fn run(&(rows, mask): &Self::Plan, io: &mut Io<'_>, work: Range<usize>) {
        // Channel rows are independent: units `work` mask the rows `ch`.
        let ch = rows.of(&work);
        if ch.is_empty() {
            return;
        }
        let mask = f32s(mask.of(io.file));
        let e = ch.start * rows.t..ch.end * rows.t;
        let x = &f32s(io.ins[0])[e.clone()];
        io.k.mask_tokens(x, ch.len(), mask, io.out.f32s(e));
    }
}
