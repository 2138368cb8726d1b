//! [`OutPlanes`]: where a dense convolution writes, the whole output or
//! only some columns (output pixels) of every channel's plane, so that
//! threads can share one convolution by pixels instead of by channels.
//!
//! Split by channels, every thread packs the whole input for its channels:
//! the packing is done once per thread, and on a 256-channel 3×3 layer it is
//! about a quarter of the work. Split by pixels, each thread packs only its
//! own pixels, and writes a column range of every plane of the CHW output:
//! parts that interleave in memory, which `&mut [i8]` cannot express. An
//! `OutPlanes` holds the output by pointer and hands out one row segment at
//! a time, checked against the columns it was given.

use core::marker::PhantomData;
use core::ops::Range;

/// `planes` planes of `n` elements (channel `c`'s plane at `c·n`; int8 or
/// f32), of which the holder writes columns `cols` only.
#[derive(Debug)]
pub struct OutPlanes<'a, T = i8> {
    ptr: *mut T,
    planes: usize,
    n: usize,
    cols: Range<usize>,
    _out: PhantomData<&'a mut [T]>,
}

impl<'a, T> OutPlanes<'a, T> {
    /// All of `out`, as planes of `n` elements (`⌊len/n⌋` of them; none when
    /// `n` is 0).
    pub fn new(out: &'a mut [T], n: usize) -> Self {
        OutPlanes {
            planes: out.len().checked_div(n).unwrap_or(0),
            ptr: out.as_mut_ptr(),
            n,
            cols: 0..n,
            _out: PhantomData,
        }
    }

    /// Columns `cols` of the `planes` planes of `n` elements at `ptr`.
    ///
    /// # Safety
    /// `ptr` is aligned and valid for reads and writes of `planes·n`
    /// elements for `'a`,
    /// and while `'a` lasts nothing else reads or writes columns `cols` of
    /// any plane (other holders hold disjoint columns); `cols` lies in
    /// `0..n`.
    pub unsafe fn from_raw(ptr: *mut T, planes: usize, n: usize, cols: Range<usize>) -> Self {
        debug_assert!(cols.start <= cols.end && cols.end <= n);
        OutPlanes {
            ptr,
            planes,
            n,
            cols,
            _out: PhantomData,
        }
    }

    /// The same planes, columns `cols ∩ self.cols()` only.
    pub fn narrow(&mut self, cols: Range<usize>) -> OutPlanes<'_, T> {
        let start = cols.start.clamp(self.cols.start, self.cols.end);
        let end = cols.end.clamp(start, self.cols.end);
        OutPlanes {
            ptr: self.ptr,
            planes: self.planes,
            n: self.n,
            cols: start..end,
            _out: PhantomData,
        }
    }

    /// Planes held.
    pub fn planes(&self) -> usize {
        self.planes
    }

    /// Elements per plane.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The columns held (of every plane).
    pub fn cols(&self) -> Range<usize> {
        self.cols.clone()
    }

    /// Elements `j0..j0 + len` of plane `c`.
    ///
    /// # Panics
    /// Unless `c` is a plane and `j0..j0 + len` lies in the columns held.
    pub fn row(&mut self, c: usize, j0: usize, len: usize) -> &mut [T] {
        self.check(c, j0, len);
        // SAFETY: in bounds (checked: c < planes, the columns inside 0..n),
        // and columns `cols` of every plane are this holder's alone
        // (`from_raw`'s contract, or the whole `&mut` slice of `new`); the
        // borrow of `self` keeps this the only live segment.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(c * self.n + j0), len) }
    }

    /// Elements `j0..j0 + len` of planes `c` and `c + 1`.
    ///
    /// # Panics
    /// As [`OutPlanes::row`], for both planes.
    pub fn rows2(&mut self, c: usize, j0: usize, len: usize) -> (&mut [T], &mut [T]) {
        self.check(c + 1, j0, len);
        let (a, b) = (c * self.n + j0, (c + 1) * self.n + j0);
        // SAFETY: as in `row`, for two planes; the segments do not overlap
        // (len ≤ n, planes n apart).
        unsafe {
            (
                core::slice::from_raw_parts_mut(self.ptr.add(a), len),
                core::slice::from_raw_parts_mut(self.ptr.add(b), len),
            )
        }
    }

    fn check(&self, c: usize, j0: usize, len: usize) {
        assert!(
            c < self.planes && j0 >= self.cols.start && j0 + len <= self.cols.end,
            "plane {c}, columns {j0}..{} outside {} planes × columns {:?}",
            j0 + len,
            self.planes,
            self.cols
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_the_slices_columns() {
        let mut v: [i8; 12] = core::array::from_fn(|i| i as i8);
        let mut p = OutPlanes::new(&mut v, 4);
        assert_eq!((p.planes(), p.n(), p.cols()), (3, 4, 0..4));
        assert_eq!(p.row(1, 1, 3), &[5, 6, 7]);
        let mut q = p.narrow(2..9);
        assert_eq!(q.cols(), 2..4);
        let (a, b) = q.rows2(1, 2, 2);
        a[0] = -1;
        b[1] = -2;
        assert_eq!(v[6], -1);
        assert_eq!(v[11], -2);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn columns_outside_panic() {
        let mut v = [0i8; 12];
        let mut p = OutPlanes::new(&mut v, 4);
        let mut q = p.narrow(0..2);
        q.row(0, 1, 2);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn planes_outside_panic() {
        let mut v = [0i8; 12];
        OutPlanes::new(&mut v, 4).rows2(2, 0, 1);
    }
}
