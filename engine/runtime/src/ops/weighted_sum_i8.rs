//! [`WeightedSumI8`]: the int8 weighted sum of 2–4 maps with integer
//! requantisation (`edgedetr_kernels::elementwise_i8`); inputs whose bit is
//! set in the mask are half-size maps read ×2-upsampled (the BiFPN's
//! upsample fused into its sum).
//!
//! Its i32 parameter table is [`SumTable`]: `(zp, m, shift)` per input, then
//! the output's `m, shift, zp, lo, hi`.

use core::ops::Range;

use edgedetr_format::DType;
use edgedetr_kernels::elementwise_i8::MAX_SUM_INPUTS;
use edgedetr_kernels::{QMul, SumI8, SumInput};

use super::codec::{Tensor, op_params};
use super::{Cx, Io, Op, Setup, ensure, items};
use crate::view::{i8s, i32s};

op_params! {
    /// An int8 weighted sum.
    pub struct WeightedSumI8 {
        /// The i32 [`SumTable`].
        table: Tensor,
        /// Bit `i` set: input `i` is read ×2-upsampled.
        upsampled: u32,
    }
}

/// The requantisation of an int8 weighted sum, as stored in its i32 tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SumTable {
    /// Inputs in use.
    pub n: usize,
    /// Per input: zero point and multiplier.
    pub inputs: [SumInput; MAX_SUM_INPUTS],
    /// The output multiplier.
    pub out_mul: QMul,
    /// The output zero point.
    pub zp: i8,
    /// Lower clamp.
    pub lo: i8,
    /// Upper clamp.
    pub hi: i8,
}

impl SumTable {
    /// Words of the table for `n` inputs.
    pub const fn len(n: usize) -> usize {
        3 * n + 5
    }

    /// The table's words (`SumTable::len(n)` of them).
    pub fn words(&self) -> impl Iterator<Item = i32> + '_ {
        self.inputs[..self.n]
            .iter()
            .flat_map(|p| [p.zp, p.mul.m, p.mul.shift])
            .chain([
                self.out_mul.m,
                self.out_mul.shift,
                i32::from(self.zp),
                i32::from(self.lo),
                i32::from(self.hi),
            ])
    }

    /// Reads a table of `n` inputs; zero points and clamps must be int8 and
    /// `lo ≤ hi`.
    pub fn decode(v: &[i32], n: usize) -> Result<SumTable, &'static str> {
        ensure(
            (1..=MAX_SUM_INPUTS).contains(&n) && v.len() == SumTable::len(n),
            "int8 weighted-sum parameter table has the wrong length",
        )?;
        let i8_of = |x: i32| i8::try_from(x).map_err(|_| "zero points and clamps must be int8");
        let mut inputs = [SumInput::default(); MAX_SUM_INPUTS];
        for (i, p) in inputs.iter_mut().enumerate().take(n) {
            *p = SumInput {
                zp: i32::from(i8_of(v[3 * i])?),
                mul: QMul {
                    m: v[3 * i + 1],
                    shift: v[3 * i + 2],
                },
            };
        }
        let o = 3 * n;
        let t = SumTable {
            n,
            inputs,
            out_mul: QMul {
                m: v[o],
                shift: v[o + 1],
            },
            zp: i8_of(v[o + 2])?,
            lo: i8_of(v[o + 3])?,
            hi: i8_of(v[o + 4])?,
        };
        ensure(t.lo <= t.hi, "zero points and clamps must be int8")?;
        Ok(t)
    }
}

/// The prepared sum.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    table: SumTable,
    upsampled: u32,
    dims: (usize, usize, usize),
}

impl Op for WeightedSumI8 {
    type Plan = Plan;

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let n = cx.n_in();
        let mask = self.upsampled;
        ensure(
            (2..=4).contains(&n) && mask >> n == 0,
            "int8 weighted sum needs 2 to 4 inputs and a mask of those upsampled",
        )?;
        cx.inputs_dtype(DType::I8)?;
        let y = cx.output();
        cx.dtype(&y, DType::I8)?;
        let (c, h, w) = cx.chw(&y)?;
        let sizes_ok = if mask == 0 {
            cx.op.input_ids().all(|id| cx.buf(id).numel() == y.numel())
        } else {
            y.rank == 3
                && h % 2 == 0
                && w % 2 == 0
                && cx.op.input_ids().enumerate().all(|(i, id)| {
                    let b = cx.buf(id);
                    let want = if mask >> i & 1 == 1 {
                        (c, h / 2, w / 2)
                    } else {
                        (c, h, w)
                    };
                    b.rank == 3 && cx.chw(&b) == Ok(want)
                })
        };
        ensure(
            sizes_ok,
            "int8 weighted-sum inputs must match the output (half its size when upsampled)",
        )?;
        cx.tensor_of(self.table, DType::I32)?;
        SumTable::decode(i32s(cx.file.tensor_bytes(self.table.0)), n).map(|_| ())
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        let table = SumTable::decode(i32s(cx.file.tensor_bytes(self.table.0)), cx.n_in())?;
        Ok(Plan {
            table,
            upsampled: self.upsampled,
            dims: cx.chw(&cx.output())?,
        })
    }

    fn run(p: &Plan, io: &mut Io<'_>, work: Range<usize>) {
        let (c, h, w) = p.dims;
        let n = p.table.n;
        let ch = items(&work, 1, c);
        let mut ins: [&[i8]; MAX_SUM_INPUTS] = [&[]; MAX_SUM_INPUTS];
        for (i, (d, s)) in ins.iter_mut().zip(&io.ins[..n]).enumerate() {
            let plane = if p.upsampled >> i & 1 == 1 {
                h * w / 4
            } else {
                h * w
            };
            *d = &i8s(s)[ch.start * plane..ch.end * plane];
        }
        let a = SumI8 {
            inputs: &ins[..n],
            upsampled: p.upsampled,
            dims: (ch.len(), h, w),
            params: &p.table.inputs[..n],
            out_mul: p.table.out_mul,
            zp_out: i32::from(p.table.zp),
            lo: p.table.lo,
            hi: p.table.hi,
        };
        io.k.weighted_sum_i8(&a, io.out.i8s(ch.start * h * w..ch.end * h * w));
    }
}

impl super::Units for Plan {
    fn units(&self) -> usize {
        self.dims.0
    }

    fn writes(&self, work: &Range<usize>) -> Option<Range<usize>> {
        let (c, h, w) = self.dims;
        let ch = items(work, 1, c);
        Some(ch.start * h * w..ch.end * h * w)
    }
}
