//! [`AddTensor`]: `x + t` with a constant `t` of x's size (AIFI's positional
//! embedding).

use core::ops::Range;

use edgedetr_format::DType;
use edgedetr_kernels::Act;

use super::codec::{Tensor, op_params};
use super::{Cx, Io, Op, Setup, Span, ensure};
use crate::view::{f32s, f32s_mut};

op_params! {
    /// A sum with a constant tensor.
    pub struct AddTensor {
        /// The f32 constant, x's size.
        tensor: Tensor,
    }
}

impl Op for AddTensor {
    type Plan = Span;

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let y = cx.operands(1..=1, DType::F32, DType::F32)?;
        ensure(
            cx.input(0).numel() == y.numel()
                && cx.tensor_of(self.tensor, DType::F32)?.numel() == y.numel(),
            "add-tensor needs one input and one tensor of the output's size",
        )
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        Ok(cx.tensor_span(self.tensor))
    }

    fn run(&tensor: &Self::Plan, io: &mut Io<'_>, _work: Range<usize>) {
        let t = f32s(tensor.of(io.file));
        io.k.add_f32(f32s(io.ins[0]), t, Act::None, f32s_mut(io.out.all()));
    }
}
