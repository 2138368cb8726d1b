//! [`SoftmaxGroups`]: softmax over each group of `L` consecutive channels,
//! for every token (the decoder's attention weights over levels × points).

use core::ops::Range;

use edgedetr_format::DType;

use super::codec::op_params;
use super::{Cx, Io, Op, Setup, ensure};
use crate::view::{f32s, f32s_mut};

op_params! {
    /// A grouped softmax.
    pub struct SoftmaxGroups {
        /// Channels per group.
        group: u32,
    }
}

impl Op for SoftmaxGroups {
    type Plan = (usize, usize);

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let y = cx.operands(1..=1, DType::F32, DType::F32)?;
        let l = self.group as usize;
        let (c, h, w) = cx.chw(&y)?;
        ensure(
            cx.input(0).numel() == y.numel() && l != 0 && c % l == 0 && h * w != 0,
            "softmax groups must divide the channels",
        )
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        let (_, h, w) = cx.chw(&cx.output())?;
        Ok((self.group as usize, h * w))
    }

    fn run(&(group, t): &Self::Plan, io: &mut Io<'_>, _work: Range<usize>) {
        io.k.softmax_groups(f32s(io.ins[0]), group, t, f32s_mut(io.out.all()));
    }
}
