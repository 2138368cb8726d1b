//! [`Gather`]: token columns of a `[C, N]` source (a buffer, or a constant
//! tensor such as the decoder's anchors) gathered by an i32 index `[K]` into
//! `[C, K]`. An index out of range gives NaN, never an out-of-bounds read.

use core::ops::Range;

use edgedetr_format::DType;

use super::codec::{Tensor, op_params};
use super::{Cx, Io, Op, Setup, Span, ensure};
use crate::view::{f32s, f32s_mut, u32s};

op_params! {
    /// A gather of token columns.
    pub struct Gather {
        /// The `[C, N]` f32 source when there is no source buffer.
        source: Option<Tensor>,
    }
}

impl Op for Gather {
    type Plan = (usize, Option<Span>);

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
        Ok((
            cx.chw(&cx.output())?.0,
            self.source.map(|t| cx.tensor_span(t)),
        ))
    }

    fn run(&(c, source): &Self::Plan, io: &mut Io<'_>, _work: Range<usize>) {
        let idx = u32s(io.ins[0]);
        let src = match source {
            Some(s) => f32s(s.of(io.file)),
            None => f32s(io.ins[1]),
        };
        io.k.gather_tokens(src, c, idx, f32s_mut(io.out.all()));
    }
}
