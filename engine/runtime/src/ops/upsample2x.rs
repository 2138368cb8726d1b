//! [`Upsample2x`]: nearest-neighbour ×2 upsampling of an f32 or int8 map
//! (an int8 map keeps its quantisation).

use core::ops::Range;

use edgedetr_format::DType;
use edgedetr_kernels::Dims;

use super::codec::op_params;
use super::{Cx, Io, Op, Setup, ensure, items};
use crate::view::{f32s, i8s};

op_params! {
    /// Nearest ×2 upsampling (no parameters).
    pub struct Upsample2x {}
}

/// The prepared upsampling.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    dims: Dims,
    int8: bool,
}

impl Op for Upsample2x {
    type Plan = Plan;

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        cx.inputs(1..=1)?;
        let x = cx.input(0);
        let dt = match DType::from_u8(x.dtype) {
            Some(d @ (DType::F32 | DType::I8)) => d,
            _ => return Err("upsampling takes f32 or i8 maps"),
        };
        cx.dtype(&cx.output(), dt)?;
        let (c, h, w) = cx.chw(&x)?;
        ensure(
            cx.chw(&cx.output()) == Ok((c, 2 * h, 2 * w)),
            "upsample output must be [C, 2H, 2W]",
        )
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        let x = cx.input(0);
        Ok(Plan {
            dims: cx.chw(&x)?,
            int8: x.dtype == DType::I8 as u8,
        })
    }

    fn run(p: &Plan, io: &mut Io<'_>, work: Range<usize>) {
        let (c, h, w) = p.dims;
        let ch = items(&work, 1, c);
        let (inp, out) = (
            ch.start * h * w..ch.end * h * w,
            4 * ch.start * h * w..4 * ch.end * h * w,
        );
        let dims = (ch.len(), h, w);
        if p.int8 {
            io.k.upsample2x_i8(&i8s(io.ins[0])[inp], dims, io.out.i8s(out));
        } else {
            io.k.upsample2x_f32(&f32s(io.ins[0])[inp], dims, io.out.f32s(out));
        }
    }
}

impl super::Units for Plan {
    fn units(&self) -> usize {
        self.dims.0
    }

    fn writes(&self, work: &Range<usize>) -> Option<Range<usize>> {
        let (c, h, w) = self.dims;
        let ch = items(work, 1, c);
        Some(4 * ch.start * h * w..4 * ch.end * h * w)
    }
}
