//! Top-k selection without allocation: a sorted list of the best `k`
//! candidates, kept in caller-provided slices.
//!
//! Order: score descending, then index ascending (SPEC.md §5.5: ONNX TopK's
//! tie rule, which the fixtures never need). NaN scores rank above every
//! number, as in `torch.topk`.

/// Whether candidate `(s, i)` ranks before `(t, j)`.
#[inline]
fn before(s: f32, i: u32, t: f32, j: u32) -> bool {
    match (s.is_nan(), t.is_nan()) {
        (true, true) => i < j,
        (true, false) => true,
        (false, true) => false,
        (false, false) => s > t || (s == t && i < j),
    }
}

/// Streams candidates into a sorted top-k list held in `scores`/`idx` (both of
/// length k).
pub struct TopK<'a> {
    scores: &'a mut [f32],
    idx: &'a mut [u32],
    len: usize,
}

impl<'a> TopK<'a> {
    /// An empty list with capacity `min(scores.len(), idx.len())`.
    pub fn new(scores: &'a mut [f32], idx: &'a mut [u32]) -> Self {
        TopK {
            scores,
            idx,
            len: 0,
        }
    }

    fn cap(&self) -> usize {
        self.scores.len().min(self.idx.len())
    }

    /// Offers candidate `i` with score `s`.
    #[inline]
    pub fn push(&mut self, s: f32, i: u32) {
        let cap = self.cap();
        if cap == 0 {
            return;
        }
        if self.len == cap && !before(s, i, self.scores[cap - 1], self.idx[cap - 1]) {
            return;
        }
        // Binary search for the insertion point among the kept candidates.
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if before(self.scores[mid], self.idx[mid], s, i) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let end = if self.len == cap { cap - 1 } else { self.len };
        self.scores.copy_within(lo..end, lo + 1);
        self.idx.copy_within(lo..end, lo + 1);
        self.scores[lo] = s;
        self.idx[lo] = i;
        if self.len < cap {
            self.len += 1;
        }
    }

    /// Number of kept candidates.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn matches_a_full_sort() {
        let mut s = 7u64;
        for n in [1usize, 2, 5, 17, 300, 1000] {
            for k in [1usize, 3, 300] {
                let vals: Vec<f32> = (0..n)
                    .map(|_| {
                        s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                        ((s >> 40) % 50) as f32 // many ties
                    })
                    .collect();
                let mut sc = std::vec![0f32; k];
                let mut ix = std::vec![0u32; k];
                let mut t = TopK::new(&mut sc, &mut ix);
                for (i, &v) in vals.iter().enumerate() {
                    t.push(v, i as u32);
                }
                let kept = t.len();
                let mut all: Vec<(f32, u32)> = vals
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (v, i as u32))
                    .collect();
                all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                assert_eq!(kept, k.min(n));
                for r in 0..kept {
                    assert_eq!((sc[r], ix[r]), all[r], "n={n} k={k} rank {r}");
                }
            }
        }
    }

    #[test]
    fn nan_ranks_first() {
        let mut sc = [0f32; 2];
        let mut ix = [0u32; 2];
        let mut t = TopK::new(&mut sc, &mut ix);
        t.push(1.0, 0);
        t.push(f32::NAN, 1);
        t.push(2.0, 2);
        assert_eq!(ix, [1, 2]);
    }
}
