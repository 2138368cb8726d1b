//! [`ConcatTokens`]: 1–4 maps `[C, h_i, w_i]` concatenated along the tokens
//! into `[C, Σ h_i·w_i]`.

use core::ops::Range;

use edgedetr_format::DType;

use super::codec::op_params;
use super::{Cx, Io, Op, Rows, Setup, ensure};
use crate::view::f32s;

op_params! {
    /// A concatenation along the tokens (no parameters).
    pub struct ConcatTokens {}
}

impl Op for ConcatTokens {
    type Plan = (Rows, ());

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let y = cx.operands(1..=4, DType::F32, DType::F32)?;
        let (c, _, _) = cx.chw(&y)?;
        let mut total = 0;
        for id in cx.op.input_ids() {
            let (ci, h, w) = cx.chw(&cx.buf(id))?;
            ensure(ci == c, "concatenated maps differ in channels")?;
            total += h * w;
        }
        ensure(
            c > 0 && total * c == y.numel() as usize,
            "concatenation size does not match the output",
        )
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        let (c, h, w) = cx.chw(&cx.output())?;
        Ok((Rows { c, t: h * w }, ()))
    }

    fn run(&(rows, ()): &Self::Plan, io: &mut Io<'_>, work: Range<usize>) {
        // Channel rows are independent: units `work` concatenate the rows
        // `ch` of every input into the rows `ch` of the output.
        let ch = rows.of(&work);
        if ch.is_empty() {
            return;
        }
        let mut ins: [&[f32]; 4] = [&[]; 4];
        for (d, s) in ins.iter_mut().zip(&io.ins[..io.n_in]) {
            let x = f32s(s);
            let t = x.len() / rows.c;
            *d = &x[ch.start * t..ch.end * t];
        }
        let out = io.out.f32s(ch.start * rows.t..ch.end * rows.t);
        io.k.concat_tokens(&ins[..io.n_in], ch.len(), out);
    }
}
