//! Scalar kernels of the RT-DETR decoder (SPEC.md §5), over channel-major
//! `[C, T]` token matrices.

use super::select::TopK;
use crate::Kernels;
use crate::act::sigmoid;

impl Kernels {
    /// [`concat_tokens`]. Panics unless `c > 0` divides every input and the
    /// inputs fill `out` exactly.
    pub fn concat_tokens(&self, inputs: &[&[f32]], c: usize, out: &mut [f32]) {
        assert!(
            c > 0
                && inputs.iter().all(|x| x.len().is_multiple_of(c))
                && inputs.iter().map(|x| x.len()).sum::<usize>() == out.len(),
            "concat_tokens: sizes do not add up"
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.concat_tokens)(inputs, c, out) }
    }

    /// [`mask_tokens`]. Panics unless `x` and `out` hold `c·mask.len()` values.
    pub fn mask_tokens(&self, x: &[f32], c: usize, mask: &[f32], out: &mut [f32]) {
        let n = c * mask.len();
        assert!(
            x.len() == n && out.len() == n,
            "mask_tokens: length mismatch"
        );
        // SAFETY: the table's contract (crate::table); lengths checked above.
        unsafe { (self.slots.mask_tokens)(x, c, mask, out) }
    }

    /// [`topk_tokens_by_max`]. Panics unless `c > 0` divides `scores`, there
    /// are at least `idx.len()` tokens and as much `scratch`.
    pub fn topk_tokens(&self, scores: &[f32], c: usize, idx: &mut [u32], scratch: &mut [f32]) {
        assert!(
            c > 0
                && scores.len().is_multiple_of(c)
                && idx.len() <= scores.len() / c
                && scratch.len() >= idx.len(),
            "topk_tokens: bad sizes"
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.topk_tokens)(scores, c, idx, scratch) }
    }

    /// [`gather_tokens`]. Panics unless `c > 0` divides `src` and `out`
    /// holds `c·idx.len()` values.
    pub fn gather_tokens(&self, src: &[f32], c: usize, idx: &[u32], out: &mut [f32]) {
        assert!(
            c > 0 && src.len().is_multiple_of(c) && out.len() == c * idx.len(),
            "gather_tokens: bad sizes"
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.gather_tokens)(src, c, idx, out) }
    }

    /// [`softmax_channel_groups`]. Panics unless `group·t > 0` divides `x`
    /// and `out` has `x`'s length.
    pub fn softmax_groups(&self, x: &[f32], group: usize, t: usize, out: &mut [f32]) {
        assert!(
            group > 0 && t > 0 && x.len() == out.len() && x.len().is_multiple_of(group * t),
            "softmax_groups: bad sizes"
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.softmax_groups)(x, group, t, out) }
    }

    /// [`deform_locations`]. Panics unless `reference` holds `4·q` values,
    /// `off` and `out` the same multiple of `2·q`, and `points > 0`.
    pub fn deform_locations(
        &self,
        reference: &[f32],
        off: &[f32],
        q: usize,
        points: usize,
        out: &mut [f32],
    ) {
        assert!(
            q > 0
                && reference.len() == 4 * q
                && off.len() == out.len()
                && off.len().is_multiple_of(2 * q)
                && points > 0,
            "deform_locations: bad sizes"
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.deform_locations)(reference, off, q, points, out) }
    }

    /// [`deform_sample`]. Panics unless the geometry is consistent and every
    /// operand holds what it calls for.
    pub fn deform_sample(
        &self,
        g: &DeformGeom,
        value: &[f32],
        loc: &[f32],
        aw: &[f32],
        out: &mut [f32],
    ) {
        assert!(g.is_valid(), "deform_sample: bad geometry {g:?}");
        assert!(
            value.len() >= g.channels * g.tokens()
                && loc.len() >= 2 * g.samples() * g.queries
                && aw.len() >= g.samples() * g.queries
                && out.len() >= g.channels * g.queries,
            "deform_sample: operands too short"
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.deform_sample)(g, value, loc, aw, out) }
    }

    /// [`refine_boxes`]. Panics unless the three lengths are equal.
    pub fn refine_boxes(&self, delta: &[f32], reference: &[f32], out: &mut [f32]) {
        assert!(
            delta.len() == out.len() && reference.len() == out.len(),
            "refine_boxes: length mismatch"
        );
        // SAFETY: the table's contract (crate::table); lengths checked above.
        unsafe { (self.slots.refine_boxes)(delta, reference, out) }
    }

    /// [`final_topk`]. Panics unless `logits` is `[nc, q]`, `boxes` `[4, q]`,
    /// `rows` `[k, 6]` for `k = query.len() <= nc·q`, and `idx`, `scratch`
    /// hold `k` values.
    pub fn final_topk(
        &self,
        a: &FinalTopK<'_>,
        rows: &mut [f32],
        query: &mut [u32],
        idx: &mut [u32],
        scratch: &mut [f32],
    ) {
        let k = query.len();
        assert!(
            a.logits.len() == a.nc * a.q
                && a.boxes.len() == 4 * a.q
                && rows.len() == 6 * k
                && k <= a.nc * a.q
                && idx.len() >= k
                && scratch.len() >= k,
            "final_topk: bad sizes"
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.final_topk)(a, rows, query, idx, scratch) }
    }
}

/// Concatenation of `[c, T_i]` token matrices along the tokens:
/// `out` is `[c, Σ T_i]` (`T_i = inputs[i].len() / c`).
pub fn concat_tokens(inputs: &[&[f32]], c: usize, out: &mut [f32]) {
    if c == 0 {
        return;
    }
    let n = out.len() / c;
    let mut start = 0;
    for x in inputs {
        let t = x.len() / c;
        for ch in 0..c {
            out[ch * n + start..ch * n + start + t].copy_from_slice(&x[ch * t..(ch + 1) * t]);
        }
        start += t;
    }
}

/// `out[c, t] = x[c, t] · mask[t]` (zeroes invalid anchors' features);
/// `T = mask.len()`.
pub fn mask_tokens(x: &[f32], c: usize, mask: &[f32], out: &mut [f32]) {
    let t = mask.len();
    assert!(x.len() >= c * t && out.len() >= c * t);
    for ch in 0..c {
        for (tok, (o, &v)) in out[ch * t..(ch + 1) * t]
            .iter_mut()
            .zip(&x[ch * t..(ch + 1) * t])
            .enumerate()
        {
            *o = v * mask[tok];
        }
    }
}

/// Indices of the `idx.len()` tokens with the largest `max_c scores[c, t]`
/// over `scores` `[c, N]` (`N = scores.len() / c`), sorted by score
/// descending then index ascending (SPEC.md §5.5). `scratch` holds at least
/// `idx.len()` values.
pub fn topk_tokens_by_max(scores: &[f32], c: usize, idx: &mut [u32], scratch: &mut [f32]) {
    assert!(c > 0);
    let n = scores.len() / c;
    let k = idx.len();
    let mut top = TopK::new(&mut scratch[..k], idx);
    for t in 0..n {
        let mut m = scores[t];
        for ch in 1..c {
            let v = scores[ch * n + t];
            // torch.max propagates NaN.
            if v > m || v.is_nan() {
                m = v;
            }
        }
        top.push(m, t as u32);
    }
}

/// `out[c, j] = src[c, idx[j]]` over `src` `[c, N]` (`N = src.len() / c`);
/// an index out of range yields NaN (never an out-of-bounds read).
pub fn gather_tokens(src: &[f32], c: usize, idx: &[u32], out: &mut [f32]) {
    let k = idx.len();
    let n = src.len().checked_div(c).unwrap_or(0);
    assert!(out.len() >= c * k);
    for ch in 0..c {
        for (j, &i) in idx.iter().enumerate() {
            out[ch * k + j] = if (i as usize) < n {
                src[ch * n + i as usize]
            } else {
                f32::NAN
            };
        }
    }
}

/// Softmax over each group of `group` consecutive channels, for every token:
/// `x` is `[G·group, T]`.
pub fn softmax_channel_groups(x: &[f32], group: usize, t: usize, out: &mut [f32]) {
    assert!(group > 0 && x.len() == out.len() && x.len().is_multiple_of(group * t));
    let groups = x.len() / (group * t);
    for g in 0..groups {
        let base = g * group * t;
        for tok in 0..t {
            let at = |j: usize| base + j * t + tok;
            let mut m = f32::NEG_INFINITY;
            for j in 0..group {
                m = m.max(x[at(j)]);
            }
            let mut sum = 0f32;
            for j in 0..group {
                let e = libm::expf(x[at(j)] - m);
                out[at(j)] = e;
                sum += e;
            }
            for j in 0..group {
                out[at(j)] /= sum;
            }
        }
    }
}

/// Sampling locations of multi-scale deformable attention (SPEC.md §5.7):
/// `loc = ref_xy + off / points · ref_wh · 0.5`. `reference` is `[4, Q]`
/// (cx, cy, w, h); `off` and `out` are `[S·2, Q]` with the channel index
/// `s·2 + {0: x, 1: y}` for sample `s = (head·levels + level)·points + point`.
pub fn deform_locations(reference: &[f32], off: &[f32], q: usize, points: usize, out: &mut [f32]) {
    assert!(
        reference.len() >= 4 * q
            && off.len() == out.len()
            && off.len().is_multiple_of(2 * q)
            && points > 0
    );
    let samples = off.len() / (2 * q);
    let p = points as f32;
    for s in 0..samples {
        for axis in 0..2 {
            let row = (s * 2 + axis) * q;
            for j in 0..q {
                let centre = reference[axis * q + j];
                let size = reference[(2 + axis) * q + j];
                out[row + j] = centre + off[row + j] / p * size * 0.5;
            }
        }
    }
}

/// Geometry of a deformable-attention sampling op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeformGeom {
    /// Heads.
    pub heads: usize,
    /// Feature levels (at most 4).
    pub levels: usize,
    /// Points per level.
    pub points: usize,
    /// `(h, w)` of each level, in token order.
    pub shapes: [(usize, usize); 4],
    /// Channels (heads × head dim).
    pub channels: usize,
    /// Queries.
    pub queries: usize,
}

impl DeformGeom {
    /// Total value tokens (Σ h·w).
    pub fn tokens(&self) -> usize {
        self.shapes[..self.levels].iter().map(|&(h, w)| h * w).sum()
    }
    /// Samples per query (heads × levels × points).
    pub fn samples(&self) -> usize {
        self.heads * self.levels * self.points
    }

    /// At least one head, point and query, 1 to 4 levels of non-empty maps,
    /// channels divisible by the heads.
    pub fn is_valid(&self) -> bool {
        self.heads > 0
            && self.points > 0
            && self.queries > 0
            && (1..=4).contains(&self.levels)
            && self.channels.is_multiple_of(self.heads)
            && self.shapes[..self.levels]
                .iter()
                .all(|&(h, w)| h > 0 && w > 0)
    }
}

/// Multi-scale deformable attention sampling (SPEC.md §5.7): for each query,
/// head h and channel d of the head,
/// `out[h·D + d, q] = Σ_{l,p} aw[h, l·P + p] · bilinear(V_{l,h,d}, loc)`, with
/// `F.grid_sample(align_corners=False, padding_mode='zeros')` semantics
/// (pixel `x = ((2·loc − 1 + 1)·W − 1) / 2`, taps outside the map count 0).
/// `value` is `[C, N]`, `loc` is `[S·2, Q]`, `aw` (softmaxed) is `[S, Q]`.
pub fn deform_sample(g: &DeformGeom, value: &[f32], loc: &[f32], aw: &[f32], out: &mut [f32]) {
    let (q, n, d) = (g.queries, g.tokens(), g.channels / g.heads);
    let per_head = g.levels * g.points;
    assert!(
        value.len() >= g.channels * n
            && loc.len() >= 2 * g.samples() * q
            && aw.len() >= g.samples() * q
    );
    assert!(out.len() >= g.channels * q);
    out[..g.channels * q].fill(0.0);
    for h in 0..g.heads {
        let mut start = 0;
        for l in 0..g.levels {
            let (lh, lw) = g.shapes[l];
            for p in 0..g.points {
                let s = h * per_head + l * g.points + p;
                for j in 0..q {
                    let gx = 2.0 * loc[(2 * s) * q + j] - 1.0;
                    let gy = 2.0 * loc[(2 * s + 1) * q + j] - 1.0;
                    let ix = ((gx + 1.0) * lw as f32 - 1.0) / 2.0;
                    let iy = ((gy + 1.0) * lh as f32 - 1.0) / 2.0;
                    let w = aw[s * q + j];
                    let x0 = libm::floorf(ix);
                    let y0 = libm::floorf(iy);
                    let (x1, y1) = (x0 + 1.0, y0 + 1.0);
                    // Corner weights as torch computes them.
                    let taps = [
                        (x0, y0, (x1 - ix) * (y1 - iy)),
                        (x1, y0, (ix - x0) * (y1 - iy)),
                        (x0, y1, (x1 - ix) * (iy - y0)),
                        (x1, y1, (ix - x0) * (iy - y0)),
                    ];
                    for dd in 0..d {
                        let ch = h * d + dd;
                        let row = &value[ch * n + start..ch * n + start + lh * lw];
                        let mut v = 0f32;
                        for &(tx, ty, tw) in &taps {
                            let inside = tx >= 0.0 && ty >= 0.0 && tx < lw as f32 && ty < lh as f32;
                            if inside {
                                v += row[ty as usize * lw + tx as usize] * tw;
                            }
                        }
                        out[ch * q + j] += w * v;
                    }
                }
            }
            start += lh * lw;
        }
    }
}

/// `inverse_sigmoid(x) = log(clamp(x, 1e-5) / clamp(1 − x, 1e-5))` after
/// clamping x to `[0, 1]` (ultralytics `nn/modules/utils.py`).
#[inline]
pub fn inverse_sigmoid(x: f32) -> f32 {
    let x = x.clamp(0.0, 1.0);
    libm::logf(x.max(1e-5) / (1.0 - x).max(1e-5))
}

/// Iterative box refinement: `out = sigmoid(delta + inverse_sigmoid(reference))`.
pub fn refine_boxes(delta: &[f32], reference: &[f32], out: &mut [f32]) {
    assert!(delta.len() == reference.len() && out.len() == delta.len());
    for ((o, &dl), &r) in out.iter_mut().zip(delta).zip(reference) {
        *o = sigmoid(dl + inverse_sigmoid(r));
    }
}

/// The inputs of the in-model postprocess (the argument of the
/// [`Slot::FinalTopK`](crate::Slot::FinalTopK) slot).
#[derive(Clone, Copy, Debug)]
pub struct FinalTopK<'a> {
    /// `[nc, Q]` class logits.
    pub logits: &'a [f32],
    /// `[4, Q]` boxes `(cx, cy, w, h)`.
    pub boxes: &'a [f32],
    /// Classes.
    pub nc: usize,
    /// Queries.
    pub q: usize,
}

/// The in-model postprocess (SPEC.md §5.8): the top `k` (query, class) pairs by
/// `sigmoid(logits)`, over the query-major flattening `index = q·nc + c`.
/// `logits` is `[nc, Q]`, `boxes` `[4, Q]`; each output row is
/// `[cx, cy, w, h, score, class]` (`rows`: `[k, 6]`), `query` gets the query of
/// each row. `idx` and `scratch` hold at least k values.
pub fn final_topk(
    a: &FinalTopK<'_>,
    rows: &mut [f32],
    query: &mut [u32],
    idx: &mut [u32],
    scratch: &mut [f32],
) {
    let FinalTopK {
        logits,
        boxes,
        nc,
        q,
    } = *a;
    let k = query.len();
    assert!(
        logits.len() >= nc * q && boxes.len() >= 4 * q && rows.len() >= 6 * k && idx.len() >= k
    );
    {
        let mut top = TopK::new(&mut scratch[..k], &mut idx[..k]);
        for qi in 0..q {
            for c in 0..nc {
                top.push(sigmoid(logits[c * q + qi]), (qi * nc + c) as u32);
            }
        }
    }
    for r in 0..k {
        let flat = idx[r] as usize;
        let (qi, c) = (flat / nc, flat % nc);
        query[r] = qi as u32;
        for a in 0..4 {
            rows[r * 6 + a] = boxes[a * q + qi];
        }
        rows[r * 6 + 4] = scratch[r];
        rows[r * 6 + 5] = c as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_sampling_matches_hand_values() {
        // One head, one level 2x2, one point, one query, head dim 1.
        let g = DeformGeom {
            heads: 1,
            levels: 1,
            points: 1,
            shapes: [(2, 2), (0, 0), (0, 0), (0, 0)],
            channels: 1,
            queries: 1,
        };
        let value = [1.0, 2.0, 3.0, 4.0];
        let mut out = [0.0];
        // Centre of the map: loc (0.5, 0.5) -> pixel (0.5, 0.5): mean of all 4.
        deform_sample(&g, &value, &[0.5, 0.5], &[1.0], &mut out);
        assert!((out[0] - 2.5).abs() < 1e-6);
        // Pixel centre of the top-left cell: loc (0.25, 0.25) -> pixel (0, 0).
        deform_sample(&g, &value, &[0.25, 0.25], &[0.5], &mut out);
        assert!((out[0] - 0.5).abs() < 1e-6);
        // Outside the left border by half a pixel: x = -0.5 -> half of column 0.
        deform_sample(&g, &value, &[0.0, 0.25], &[1.0], &mut out);
        assert!((out[0] - 0.5).abs() < 1e-6);
        // Far outside: zero.
        deform_sample(&g, &value, &[5.0, 5.0], &[1.0], &mut out);
        assert_eq!(out[0], 0.0);
    }

    #[test]
    fn locations_softmax_refine_and_topk() {
        // ref (cx, cy, w, h) = (0.5, 0.5, 0.2, 0.4); off (x, y) = (2, -4), 4 points.
        let mut loc = [0.0; 2];
        deform_locations(&[0.5, 0.5, 0.2, 0.4], &[2.0, -4.0], 1, 4, &mut loc);
        assert!((loc[0] - (0.5 + 2.0 / 4.0 * 0.2 * 0.5)).abs() < 1e-7);
        assert!((loc[1] - (0.5 - 4.0 / 4.0 * 0.4 * 0.5)).abs() < 1e-7);

        // [2 channels, 2 tokens]: token 0 = (0, 1), token 1 = (1, 1).
        let mut sm = [0.0; 4];
        softmax_channel_groups(&[0.0, 1.0, 1.0, 1.0], 2, 2, &mut sm);
        let e = 1f32.exp();
        assert!((sm[0] - 1.0 / (1.0 + e)).abs() < 1e-7 && (sm[2] - e / (1.0 + e)).abs() < 1e-7);
        assert!((sm[1] - 0.5).abs() < 1e-7 && (sm[3] - 0.5).abs() < 1e-7);

        let mut r = [0.0];
        refine_boxes(&[0.0], &[0.3], &mut r);
        assert!((r[0] - 0.3).abs() < 1e-6);
        assert!((inverse_sigmoid(0.0) - (1e-5f32).ln()).abs() < 1e-6);

        // Scores [c=2, n=3]: token maxima 5, 7, 6.
        let scores = [5.0, 1.0, 6.0, 0.0, 7.0, 2.0];
        let mut idx = [0u32; 2];
        let mut s = [0f32; 2];
        topk_tokens_by_max(&scores, 2, &mut idx, &mut s);
        assert_eq!(idx, [1, 2]);
        let mut out = [0.0; 4];
        gather_tokens(&scores, 2, &[2, 9], &mut out);
        assert_eq!(out[0], 6.0);
        assert!(out[1].is_nan());
        assert_eq!(out[2], 2.0);

        // Final top-k over 2 classes x 2 queries.
        let logits = [0.0, 3.0, 1.0, -1.0]; // [nc=2, q=2]: (c0: q0=0, q1=3), (c1: q0=1, q1=-1)
        let boxes = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
        let mut rows = [0.0; 12];
        let mut query = [0u32; 2];
        let mut fidx = [0u32; 2];
        let mut sc = [0.0; 2];
        let a = FinalTopK {
            logits: &logits,
            boxes: &boxes,
            nc: 2,
            q: 2,
        };
        final_topk(&a, &mut rows, &mut query, &mut fidx, &mut sc);
        assert_eq!(query, [1, 0]);
        assert_eq!(&rows[..6], &[0.2, 0.4, 0.6, 0.8, sigmoid(3.0), 0.0]);
        assert_eq!(rows[11], 1.0);
    }
}
