//! [`Activation`]: an element-wise activation of an f32 buffer.

use core::ops::Range;

use edgedetr_format::DType;
use edgedetr_kernels::Act;

use super::codec::op_params;
use super::{Chunks, Cx, Io, Op, Setup, ensure};
use crate::view::f32s;

op_params! {
    /// An element-wise activation.
    pub struct Activation {
        /// The activation.
        act: Act,
    }
}

impl Op for Activation {
    type Plan = (Chunks, Act);

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let y = cx.operands(1..=1, DType::F32, DType::F32)?;
        ensure(
            cx.input(0).numel() == y.numel(),
            "activation output must match its input",
        )
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        Ok((Chunks { len: cx.out_len() }, self.act))
    }

    fn run(&(c, act): &Self::Plan, io: &mut Io<'_>, work: Range<usize>) {
        let e = c.of(&work);
        io.k.act_f32(act, &f32s(io.ins[0])[e.clone()], io.out.f32s(e));
    }
}
