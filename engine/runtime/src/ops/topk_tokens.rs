//! [`TopKTokens`]: the indices of the K tokens with the largest maximum over
//! channels (SPEC.md §5.5), into an i32 `[K]` buffer.

use core::ops::Range;

use edgedetr_format::DType;

use super::codec::op_params;
use super::{Cx, Io, Op, Setup, ensure};
use crate::view::{f32s, f32s_mut, u32s_mut};

op_params! {
    /// A top-K over tokens (no parameters; K is the output's length).
    pub struct TopKTokens {}
}

impl Op for TopKTokens {
    type Plan = usize;

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let y = cx.operands(1..=1, DType::F32, DType::I32)?;
        let (c, h, w) = cx.chw(&cx.input(0))?;
        let k = y.numel() as usize;
        ensure(
            c > 0 && y.rank == 1 && k > 0 && k <= h * w && cx.scratch_bytes() >= 4 * k,
            "top-k needs K <= N, a rank-1 output and K scratch values",
        )
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        Ok(cx.chw(&cx.input(0))?.0)
    }

    fn run(&c: &Self::Plan, io: &mut Io<'_>, _work: Range<usize>) {
        let idx = u32s_mut(io.out.all());
        let k = idx.len();
        let scratch = &mut f32s_mut(io.scratch)[..k];
        io.k.topk_tokens(f32s(io.ins[0]), c, idx, scratch);
    }
}
