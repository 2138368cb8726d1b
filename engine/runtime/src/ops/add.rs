//! [`Add`]: `act(a + b)` over two f32 buffers of one size.

use core::ops::Range;

use edgedetr_format::DType;
use edgedetr_kernels::Act;

use super::codec::op_params;
use super::{Chunks, Cx, Io, Op, Setup, ensure};
use crate::view::f32s;

op_params! {
    /// An element-wise sum with a fused activation.
    pub struct Add {
        /// Applied to the sum.
        act: Act,
    }
}

impl Op for Add {
    type Plan = (Chunks, Act);

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let y = cx.operands(2..=2, DType::F32, DType::F32)?;
        ensure(
            cx.input(0).numel() == y.numel() && cx.input(1).numel() == y.numel(),
            "add needs two inputs of the output's size",
        )
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        Ok((Chunks { len: cx.out_len() }, self.act))
    }

    fn run(&(c, act): &Self::Plan, io: &mut Io<'_>, work: Range<usize>) {
        let e = c.of(&work);
        let (a, b) = (&f32s(io.ins[0])[e.clone()], &f32s(io.ins[1])[e.clone()]);
        io.k.add_f32(a, b, act, io.out.f32s(e));
    }
}
