//! [`DeformLocations`]: the sampling locations of multi-scale deformable
//! attention, `ref_xy + offset / points · ref_wh · 0.5` (SPEC.md §5.7).

use core::ops::Range;

use edgedetr_format::DType;

use super::codec::op_params;
use super::{Cx, Io, Op, Setup, ensure};
use crate::view::{f32s, f32s_mut};

op_params! {
    /// Deformable sampling locations.
    pub struct DeformLocations {
        /// Points per level.
        points: u32,
    }
}

impl Op for DeformLocations {
    type Plan = (usize, usize);

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let y = cx.operands(2..=2, DType::F32, DType::F32)?;
        let (_, rh, rw) = cx.chw(&cx.input(0))?;
        let q = rh * rw;
        let (c, _, _) = cx.chw(&y)?;
        ensure(
            q > 0
                && cx.input(0).numel() as usize == 4 * q
                && cx.input(1).numel() == y.numel()
                && c % 2 == 0
                && c * q == y.numel() as usize
                && self.points != 0,
            "deformable locations need ref [4, Q] and offsets [2S, Q]",
        )
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        let (_, rh, rw) = cx.chw(&cx.input(0))?;
        Ok((rh * rw, self.points as usize))
    }

    fn run(&(q, points): &Self::Plan, io: &mut Io<'_>, _work: Range<usize>) {
        let (r, off) = (f32s(io.ins[0]), f32s(io.ins[1]));
        io.k.deform_locations(r, off, q, points, f32s_mut(io.out.all()));
    }
}
