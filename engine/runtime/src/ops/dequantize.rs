//! [`Dequantize`]: int8 → f32, `(q − zp)·scale`.

use core::ops::Range;

use edgedetr_format::DType;

use super::codec::op_params;
use super::quantize::check_conversion;
use super::{Chunks, Cx, Io, Op, Setup};
use crate::view::i8s;

op_params! {
    /// A dequantisation.
    pub struct Dequantize {
        /// The input's scale.
        scale: f32,
        /// The input's zero point.
        zp: i8,
    }
}

impl Op for Dequantize {
    type Plan = (Chunks, Dequantize);

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        check_conversion(cx, DType::I8, DType::F32, self.scale)
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        Ok((Chunks { len: cx.out_len() }, *self))
    }

    fn run((c, q): &Self::Plan, io: &mut Io<'_>, work: Range<usize>) {
        let e = c.of(&work);
        let (x, y) = (&i8s(io.ins[0])[e.clone()], io.out.f32s(e));
        io.k.dequantize(x, q.scale, i32::from(q.zp), y);
    }
}
