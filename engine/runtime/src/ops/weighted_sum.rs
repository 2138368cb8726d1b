//! [`WeightedSum`]: `Σ coef[i]·x[i]` over 2–4 f32 maps of one shape (BiFPN),
//! summed in input order as torch stacks and sums them (SPEC.md §4.2).

use core::ops::Range;

use edgedetr_format::DType;

use super::codec::op_params;
use super::{Cx, Io, Op, Setup, ensure, items};
use crate::view::f32s;

op_params! {
    /// A weighted sum of 2–4 f32 maps.
    pub struct WeightedSum {
        /// One coefficient per input; zero past the last input.
        coef: [f32; 4],
    }
}

/// The prepared weighted sum.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    coef: [f32; 4],
    n: usize,
    /// Elements per channel (the work unit).
    plane: usize,
    channels: usize,
}

impl Op for WeightedSum {
    type Plan = Plan;

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let n = cx.inputs(2..=4)?;
        cx.inputs_dtype(DType::F32)?;
        let y = cx.output();
        cx.dtype(&y, DType::F32)?;
        for (k, id) in cx.op.input_ids().enumerate() {
            let b = cx.buf(id);
            ensure(
                b.shape == y.shape && b.rank == y.rank,
                "weighted-sum inputs must match the output shape",
            )?;
            ensure(
                self.coef[k].is_finite(),
                "weighted-sum coefficient is not finite",
            )?;
        }
        ensure(
            self.coef[n..].iter().all(|c| c.to_bits() == 0),
            "unused parameter words must be zero",
        )?;
        cx.chw(&y).map(|_| ())
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        let (c, h, w) = cx.chw(&cx.output())?;
        Ok(Plan {
            coef: self.coef,
            n: cx.n_in(),
            plane: h * w,
            channels: c,
        })
    }

    fn run(p: &Plan, io: &mut Io<'_>, work: Range<usize>) {
        let e = items(&work, p.plane, p.plane * p.channels);
        let mut ins: [&[f32]; 4] = [&[]; 4];
        for (d, s) in ins.iter_mut().zip(&io.ins[..p.n]) {
            *d = &f32s(s)[e.clone()];
        }
        let out = io.out.f32s(e);
        io.k.weighted_sum_f32(&ins[..p.n], &p.coef[..p.n], out);
    }
}

impl super::Units for Plan {
    fn units(&self) -> usize {
        self.channels
    }

    fn writes(&self, work: &Range<usize>) -> Option<Range<usize>> {
        Some(items(work, self.plane, self.plane * self.channels))
    }
}
