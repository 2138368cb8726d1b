//! [`RefineBoxes`]: iterative box refinement,
//! `sigmoid(delta + inverse_sigmoid(reference))`.

use core::ops::Range;

use edgedetr_format::DType;

use super::codec::op_params;
use super::{Cx, Io, Op, Setup, ensure};
use crate::view::{f32s, f32s_mut};

op_params! {
    /// A box refinement (no parameters).
    pub struct RefineBoxes {}
}

impl Op for RefineBoxes {
    type Plan = ();

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let y = cx.operands(2..=2, DType::F32, DType::F32)?;
        ensure(
            cx.input(0).numel() == y.numel() && cx.input(1).numel() == y.numel(),
            "box refinement needs delta and ref of the output's size",
        )
    }

    fn prepare(&self, _cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        Ok(())
    }

    fn run(_p: &(), io: &mut Io<'_>, _work: Range<usize>) {
        io.k.refine_boxes(f32s(io.ins[0]), f32s(io.ins[1]), f32s_mut(io.out.all()));
    }
}
