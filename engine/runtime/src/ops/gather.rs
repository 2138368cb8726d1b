//! [`Gather`]: token columns of a `[C, N]` source (a buffer, or a constant
//! tensor such as the decoder's anchors) gathered by an i32 index `[K]` into
//! `[C, K]`. An index out of range gives NaN, never an out-of-bounds read.

use core::ops::Range;

use edgedetr_format::DType;

use super::codec::{Tensor, op_params};
use super::{Cx, Io, Op, Rows, Setup, Span, ensure};
use crate::view::{f32s, u32s};

op_params! {
    /// A gather of token columns.
    pub struct Gather {
        /// The `[C, N]` f32 source when there is no source buffer.
        source: Option<Tensor>,
    }
}

impl Op for Gather {
    type Plan = (Rows, Option<Span>);

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let n = cx.inputs(1..=2)?;
        let (index, y) = (cx.input(0), cx.output());
        cx.dtype(&index, DType::I32)?;
        cx.dtype(&y, DType::F32)?;
        let k = index.numel() as usize;
        let (c, oh, ow) = cx.chw(&y)?;
        ensure(
            index.rank == 1 && oh * ow == k,
            "gather output must be [C, K] for K indices",
        )?;
        let src_c = match (n, self.source) {
            (1, Some(t)) => {
                let t = cx.tensor_of(t, DType::F32)?;
                ensure(t.rank == 2, "gather source tensor must be [C, N]")?;
                t.shape[0] as usize
            }
            (2, None) => {
                let src = cx.input(1);
                cx.dtype(&src, DType::F32)?;
                cx.chw(&src)?.0
            }
            _ => return Err("gather takes a source buffer or a source tensor, not both"),
        };
        ensure(
            c > 0 && src_c == c,
            "gather source and output differ in channels",
        )
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        let (c, h, w) = cx.chw(&cx.output())?;
        Ok((Rows { c, t: h * w }, self.source.map(|t| cx.tensor_span(t))))
    }

    fn run(&(rows, source): &Self::Plan, io: &mut Io<'_>, work: Range<usize>) {
        // Channel rows are independent: units `work` gather the rows `ch`
        // of the source into the rows `ch` of the output.
        let ch = rows.of(&work);
        if ch.is_empty() {
            return;
        }
        let idx = u32s(io.ins[0]);
        let src = match source {
            Some(s) => f32s(s.of(io.file)),
            None => f32s(io.ins[1]),
        };
        let n = src.len() / rows.c;
        let src = &src[ch.start * n..ch.end * n];
        let out = io.out.f32s(ch.start * rows.t..ch.end * rows.t);
        io.k.gather_tokens(src, ch.len(), idx, out);
    }
}
