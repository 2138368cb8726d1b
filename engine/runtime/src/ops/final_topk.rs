//! [`FinalTopK`]: the in-model postprocess (SPEC.md §5.8): the top-K (query,
//! class) pairs of `sigmoid(logits)` as rows `[K, 6]` (`cx, cy, w, h, score,
//! class`) and their queries (i32 `[1, K]`, ultralytics' `output_topk_query`).

use core::ops::Range;

use edgedetr_format::DType;
use edgedetr_kernels::ops::decoder;

use super::codec::op_params;
use super::{Cx, Io, Op, Setup, ensure};
use crate::view::{f32s, f32s_mut, u32s_mut};

op_params! {
    /// The final top-K (no parameters; K is the second output's length).
    pub struct FinalTopK {}
}

impl Op for FinalTopK {
    type Plan = (usize, usize);

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        cx.inputs(2..=2)?;
        cx.inputs_dtype(DType::F32)?;
        let rows = cx.output();
        let query = cx.output2().ok_or("final top-k has two outputs")?;
        cx.dtype(&rows, DType::F32)?;
        cx.dtype(&query, DType::I32)?;
        let (nc, lh, lw) = cx.chw(&cx.input(0))?;
        let q = lh * lw;
        let k = query.numel() as usize;
        ensure(
            cx.input(1).numel() as usize == 4 * q
                && rows.numel() as usize == 6 * k
                && k != 0
                && k <= nc * q
                && cx.scratch_bytes() >= 8 * k,
            "final top-k needs logits [nc, Q], boxes [4, Q], rows [K, 6], K <= nc*Q",
        )
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        let (nc, h, w) = cx.chw(&cx.input(0))?;
        Ok((nc, h * w))
    }

    fn run(&(nc, q): &Self::Plan, io: &mut Io<'_>, _work: Range<usize>) {
        let a = decoder::FinalTopK {
            logits: f32s(io.ins[0]),
            boxes: f32s(io.ins[1]),
            nc,
            q,
        };
        let query = u32s_mut(io.out2);
        let k = query.len();
        let (sc, ix) = f32s_mut(io.scratch).split_at_mut(k);
        let idx = &mut bytemuck::cast_slice_mut::<f32, u32>(ix)[..k];
        io.k.final_topk(&a, f32s_mut(io.out.all()), query, idx, sc);
    }
}
