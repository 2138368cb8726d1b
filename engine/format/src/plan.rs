//! The memory plan: where each activation buffer lives in the arena.
//!
//! # Algorithm (greedy by size over lifetimes)
//! Each buffer has a lifetime `[first, last]` (op indices, inclusive) and a size
//! (a multiple of 64). Buffers are placed largest first (ties: earlier `first`,
//! then lower id); each goes at the lowest 64-aligned offset where it overlaps no
//! already-placed buffer whose lifetime intersects its own. The peak is the
//! highest end offset. This is the greedy scheme of TFLite Micro's
//! `GreedyMemoryPlanner`; it is not optimal, but it is simple, deterministic and
//! close to the lower bound (the largest sum of sizes live at one op) on
//! feed-forward graphs. [`check_plan`] verifies any plan independently, and the
//! reader repeats that check on every file it loads.

/// A buffer's lifetime and size, the planner's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    /// First op that touches the buffer (0 for caller-written inputs).
    pub first: u32,
    /// Last op that touches the buffer.
    pub last: u32,
    /// Bytes, a multiple of 64.
    pub size: u64,
}

impl Lifetime {
    /// Whether two lifetimes share an op.
    pub fn overlaps(&self, o: &Lifetime) -> bool {
        self.first <= o.last && o.first <= self.last
    }
}

/// Checks that no two buffers live at the same time share bytes; returns the
/// first offending pair.
pub fn check_plan(lifetimes: &[Lifetime], offsets: &[u64]) -> Result<(), (usize, usize)> {
    for a in 0..lifetimes.len() {
        for b in a + 1..lifetimes.len() {
            let (la, lb) = (&lifetimes[a], &lifetimes[b]);
            let share = offsets[a] < offsets[b] + lb.size && offsets[b] < offsets[a] + la.size;
            if la.overlaps(lb) && share {
                return Err((a, b));
            }
        }
    }
    Ok(())
}

/// The lower bound of any plan: the largest total size live at one op.
pub fn lower_bound(lifetimes: &[Lifetime]) -> u64 {
    let last = lifetimes.iter().map(|l| l.last).max().unwrap_or(0);
    (0..=last)
        .map(|op| {
            lifetimes
                .iter()
                .filter(|l| l.first <= op && op <= l.last)
                .map(|l| l.size)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

/// Plans offsets for `lifetimes`; returns `(offsets, peak)`.
#[cfg(feature = "alloc")]
pub fn plan_greedy(lifetimes: &[Lifetime]) -> (alloc::vec::Vec<u64>, u64) {
    use alloc::vec;
    use alloc::vec::Vec;
    let mut order: Vec<usize> = (0..lifetimes.len()).collect();
    order.sort_by(|&a, &b| {
        let (la, lb) = (&lifetimes[a], &lifetimes[b]);
        lb.size
            .cmp(&la.size)
            .then(la.first.cmp(&lb.first))
            .then(a.cmp(&b))
    });
    let mut offsets = vec![0u64; lifetimes.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut peak = 0u64;
    for &i in &order {
        let me = &lifetimes[i];
        // Intervals taken by conflicting buffers, sorted by offset.
        let mut taken: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&j| lifetimes[j].overlaps(me))
            .map(|&j| (offsets[j], offsets[j] + lifetimes[j].size))
            .collect();
        taken.sort_unstable();
        let mut at = 0u64;
        for (s, e) in taken {
            if at + me.size <= s {
                break;
            }
            at = at.max(e);
        }
        offsets[i] = at;
        peak = peak.max(at + me.size);
        placed.push(i);
    }
    (offsets, peak)
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn lt(first: u32, last: u32, size: u64) -> Lifetime {
        Lifetime { first, last, size }
    }

    #[test]
    fn hand_computed_chain_reuses_memory() {
        // a -> b -> c -> d: each buffer lives across two ops; sizes 64,128,64,128.
        let l = [lt(0, 1, 64), lt(1, 2, 128), lt(2, 3, 64), lt(3, 3, 128)];
        let (off, peak) = plan_greedy(&l);
        // Largest first: b at 0, d at 0 (b dead by op 3); a at 128, c at 128.
        assert_eq!(off, [128, 0, 128, 0]);
        assert_eq!(peak, 192);
        assert_eq!(lower_bound(&l), 192);
        assert!(check_plan(&l, &off).is_ok());
    }

    #[test]
    fn gap_is_reused_when_big_enough() {
        let l = [lt(0, 5, 256), lt(0, 1, 64), lt(2, 5, 64), lt(2, 3, 64)];
        let (off, peak) = plan_greedy(&l);
        assert!(check_plan(&l, &off).is_ok());
        assert_eq!(peak, 256 + 128);
    }

    #[test]
    fn checker_finds_overlaps() {
        let l = [lt(0, 2, 128), lt(1, 3, 128)];
        assert_eq!(check_plan(&l, &[0, 64]), Err((0, 1)));
        assert!(check_plan(&l, &[0, 128]).is_ok());
        // Disjoint lifetimes may share bytes.
        let l = [lt(0, 1, 128), lt(2, 3, 128)];
        assert!(check_plan(&l, &[0, 0]).is_ok());
    }

    #[test]
    fn random_plans_are_valid_and_near_the_bound() {
        let mut s = 12345u64;
        let mut rnd = |n: u64| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) % n
        };
        for _ in 0..50 {
            let n = 1 + rnd(40) as usize;
            let l: Vec<Lifetime> = (0..n)
                .map(|_| {
                    let f = rnd(30) as u32;
                    lt(f, f + rnd(6) as u32, 64 * (1 + rnd(20)))
                })
                .collect();
            let (off, peak) = plan_greedy(&l);
            assert!(check_plan(&l, &off).is_ok());
            assert!(peak >= lower_bound(&l));
            assert!(off.iter().all(|o| o % 64 == 0));
        }
    }
}
