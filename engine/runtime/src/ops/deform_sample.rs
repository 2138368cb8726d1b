//! [`DeformSample`]: multi-scale deformable attention sampling (SPEC.md
//! §5.7) over a `[C, N]` value matrix, N the tokens of every level.

use core::ops::Range;

use edgedetr_format::DType;
use edgedetr_kernels::ops::decoder::DeformGeom;

use super::codec::{Field, Reader, Writer, op_params};
use super::{Cx, Io, Op, Setup, ensure};
use crate::view::f32s;

/// Most feature levels one op record can describe.
pub const MAX_LEVELS: usize = 3;

/// Heads, points and the `(h, w)` of each level: one word
/// `heads | levels << 8 | points << 16`, then `h, w` per level (zero past the
/// last).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Levels {
    /// Heads (1–255).
    pub heads: u8,
    /// Points per level (1–65535).
    pub points: u16,
    /// Levels in use (1–3).
    pub levels: u8,
    /// `(h, w)` of each level, in token order.
    pub shapes: [(u32, u32); MAX_LEVELS],
}

impl Field for Levels {
    fn put(&self, w: &mut Writer) {
        w.word(u32::from(self.heads) | u32::from(self.levels) << 8 | u32::from(self.points) << 16);
        for &(h, wd) in &self.shapes {
            w.word(h);
            w.word(wd);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, &'static str> {
        let head = r.word()?;
        let mut shapes = [(0, 0); MAX_LEVELS];
        for s in &mut shapes {
            *s = (r.word()?, r.word()?);
        }
        Ok(Levels {
            heads: head as u8,
            levels: (head >> 8) as u8,
            points: (head >> 16) as u16,
            shapes,
        })
    }
}

op_params! {
    /// Deformable-attention sampling.
    pub struct DeformSample {
        /// Heads, points and levels.
        levels: Levels,
    }
}

impl DeformSample {
    /// The geometry with the operands' channels and queries, if consistent.
    fn geom(&self, cx: &Cx<'_, '_>) -> Result<DeformGeom, &'static str> {
        let l = self.levels;
        let levels = l.levels as usize;
        ensure(
            l.heads != 0 && l.points != 0 && (1..=MAX_LEVELS).contains(&levels),
            "bad deformable-attention geometry",
        )?;
        ensure(
            l.shapes[levels..].iter().all(|&s| s == (0, 0)),
            "unused parameter words must be zero",
        )?;
        let mut shapes = [(0usize, 0usize); 4];
        for (d, &(h, w)) in shapes.iter_mut().zip(&l.shapes[..levels]) {
            *d = (h as usize, w as usize);
        }
        let (c, _, _) = cx.chw(&cx.input(0))?;
        let (_, qh, qw) = cx.chw(&cx.output())?;
        Ok(DeformGeom {
            heads: l.heads as usize,
            levels,
            points: l.points as usize,
            shapes,
            channels: c,
            queries: qh * qw,
        })
    }
}

impl Op for DeformSample {
    type Plan = DeformGeom;

    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
        let y = cx.operands(3..=3, DType::F32, DType::F32)?;
        let g = self.geom(cx)?;
        let (c, vh, vw) = cx.chw(&cx.input(0))?;
        let s = g.samples();
        ensure(
            g.is_valid()
                && vh * vw == g.tokens()
                && cx.input(1).numel() as usize == 2 * s * g.queries
                && cx.input(2).numel() as usize == s * g.queries
                && y.numel() as usize == c * g.queries,
            "deformable sampling operands do not match its geometry",
        )
    }

    fn prepare(&self, cx: &Cx<'_, '_>, _s: &mut Setup<'_>) -> Result<Self::Plan, &'static str> {
        self.geom(cx)
    }

    fn run(g: &DeformGeom, io: &mut Io<'_>, work: Range<usize>) {
        // Heads are independent: head `h` reads value rows `h·d..(h+1)·d`,
        // its samples' location and weight rows, and writes output rows
        // `h·d..(h+1)·d` (all channel-major), so units `work` are the same
        // sampling over the heads `work` alone.
        let (q, n) = (g.queries, g.tokens());
        let d = g.channels / g.heads;
        let per_head = g.levels * g.points;
        let sub = DeformGeom {
            heads: work.len(),
            channels: work.len() * d,
            ..*g
        };
        if work.is_empty() {
            return;
        }
        let (value, loc, aw) = (f32s(io.ins[0]), f32s(io.ins[1]), f32s(io.ins[2]));
        let rows = |per: usize| work.start * per..work.end * per;
        io.k.deform_sample(
            &sub,
            &value[rows(d * n)],
            &loc[rows(2 * per_head * q)],
            &aw[rows(per_head * q)],
            io.out.f32s(rows(d * q)),
        );
    }
}

impl super::Units for DeformGeom {
    fn units(&self) -> usize {
        self.heads
    }

    fn writes(&self, work: &Range<usize>) -> Option<Range<usize>> {
        let per_head = self.channels / self.heads * self.queries;
        Some(work.start * per_head..work.end * per_head)
    }

    fn cost_per_output(&self) -> usize {
        // Four bilinear taps per sample and point.
        4 * self.levels * self.points
    }
}
