//! [`Quantize`]: f32 → int8 with a per-tensor scale and zero point,
//! `clamp(round(x / scale) + zp)` (the multiply by `1/scale` is stored); and
//! the check both (de)quantisations share.

use core::ops::Range;

use edgedetr_format::DType;

use super::codec::op_params;
use super::{Chunks, Cx, Io, Op, Setup, ensure};
use crate::view::f32s;

op_params! {
    /// A quantisation.
    pub struct Quantize {
        /// `1 / scale` of the output.
        inv_scale: f32,
        /// The output's zero point.
        zp: i8,
    }
}

/// One input of `from`'s dtype and an output of `to`'s, of the same size,
/// and a positive finite scale (or inverse scale).
pub(crate) fn check_conversion(
    cx: &Cx<'_, '_>,
    from: DType,
    to: DType,
    scale: f32,
) -> Result<(), &'static str> {
    let y = cx.operands(1..=1, from, to)?;
    ensure(
        cx.input(0).numel() == y.numel() && scale.is_finite() && scale > 0.0,
        "(de)quantisation needs a positive scale, an int8 zero point and equal sizes",
    )
}

impl Op for Quantize {
    type Plan = (Chunks, Quantize);

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        check_conversion(cx, DType::F32, DType::I8, self.inv_scale)
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        Ok((Chunks { len: cx.out_len() }, *self))
    }

    fn run((c, q): &Self::Plan, io: &mut Io<'_>, work: Range<usize>) {
        let e = c.of(&work);
        let (x, y) = (&f32s(io.ins[0])[e.clone()], io.out.i8s(e));
        io.k.quantize(x, q.inv_scale, i32::from(q.zp), y);
    }
}
