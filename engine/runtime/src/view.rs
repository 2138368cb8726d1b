//! Typed views of the arena and of the model's constants: the runtime's
//! `unsafe` code, but for the thread pool's hand-over of a borrowed job to its
//! workers (`pool.rs`, `JobRef`).
//!
//! The loader proves once, for every op, that the buffers it touches lie inside
//! the arena, are 64-byte aligned and, being live together, share no bytes
//! (`edgedetr_format::ModelFile::parse` plus [`crate::Model::from_bytes`]). The
//! views below rely on exactly that.

use edgedetr_format::BufferDesc;

use crate::ops::Span;

/// A 64-byte aligned wrapper, for model bytes in statics:
/// `static MODEL: &Aligned64<[u8]> = &Aligned64(*include_bytes!("m.edr"));`
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Aligned64<T: ?Sized>(pub T);

impl<T: ?Sized + AsRef<[u8]>> AsRef<[u8]> for Aligned64<T> {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref()
    }
}

/// The activation region of a session's arena: its (64-byte aligned) start
/// and length.
pub(crate) struct ArenaPtr {
    base: *mut u8,
    len: usize,
}

// SAFETY: an `ArenaPtr` stands for the session's exclusive borrow of its
// arena (`&'a mut [u8]`, which is `Send`); it hands out views only through
// the unsafe functions below, whose callers promise that the views they hold
// at once, on whatever threads, do not overlap (a mutable one) or are only
// read (shared ones).
unsafe impl Send for ArenaPtr {}
// SAFETY: as above: sharing the pointer between threads creates no view;
// every view is created under the same no-overlap contract.
unsafe impl Sync for ArenaPtr {}

/// The arena span of buffer `b`'s elements (elements × dtype size bytes).
pub(crate) fn span_of(b: &BufferDesc) -> Span {
    let size = edgedetr_format::DType::from_u8(b.dtype).map_or(4, |d| d.size());
    Span {
        off: b.offset as usize,
        len: b.numel() as usize * size,
    }
}

impl ArenaPtr {
    /// The activation region `region` (64-byte aligned, the file's planned
    /// arena size).
    pub(crate) fn new(region: &mut [u8]) -> ArenaPtr {
        ArenaPtr {
            base: region.as_mut_ptr(),
            len: region.len(),
        }
    }

    fn check(&self, s: &Span) {
        // Guaranteed by the loader; kept as a cheap guard against misuse.
        assert!(
            s.off.checked_add(s.len).is_some_and(|e| e <= self.len) && s.off.is_multiple_of(64),
            "buffer outside the arena"
        );
    }

    /// Shared view of the bytes of span `s`.
    ///
    /// # Safety
    /// No mutable view of overlapping bytes may exist while the returned
    /// slice lives, and `s` must be a validated buffer span of the session's
    /// model.
    pub(crate) unsafe fn bytes<'x>(&self, s: &Span) -> &'x [u8] {
        if s.len == 0 {
            return &[];
        }
        self.check(s);
        // SAFETY: in bounds (checked above); the caller promises no overlapping
        // mutable view exists.
        unsafe { core::slice::from_raw_parts(self.base.add(s.off), s.len) }
    }

    /// Mutable view of the bytes of span `s`.
    ///
    /// # Safety
    /// No other view of overlapping bytes may exist while the returned slice
    /// lives, and `s` must be a validated buffer span of the session's model.
    #[allow(clippy::mut_from_ref)] // disjointness is the loader's proof, see the module docs
    pub(crate) unsafe fn bytes_mut<'x>(&self, s: &Span) -> &'x mut [u8] {
        if s.len == 0 {
            return &mut [];
        }
        self.check(s);
        // SAFETY: in bounds (checked above); the caller promises that no other view
        // overlaps this one (buffers live at the same op share no bytes).
        unsafe { core::slice::from_raw_parts_mut(self.base.add(s.off), s.len) }
    }
}

impl ArenaPtr {
    /// Columns `cols` of the planes of `n` elements (int8 or f32) that span
    /// `s` holds (a thread's share of an op shared by output pixels).
    ///
    /// # Safety
    /// As [`ArenaPtr::bytes_mut`], for columns `cols` of every plane only:
    /// nothing else may read or write them while the planes live.
    pub(crate) unsafe fn planes_mut<'x, T: bytemuck::Pod>(
        &self,
        s: &Span,
        n: usize,
        cols: core::ops::Range<usize>,
    ) -> edgedetr_kernels::OutPlanes<'x, T> {
        assert!(
            cols.start <= cols.end && cols.end <= n,
            "columns outside the planes"
        );
        let plane_bytes = n * core::mem::size_of::<T>();
        if s.len == 0 || plane_bytes == 0 {
            return edgedetr_kernels::OutPlanes::new(&mut [], n);
        }
        self.check(s);
        let at = self.base.wrapping_add(s.off).cast::<T>();
        assert!(at.is_aligned(), "planes misaligned");
        // SAFETY: the planes lie in the span (checked above: ⌊len/plane⌋
        // planes of n elements), aligned (checked), of a plain-data type
        // every byte pattern of which is valid; the caller promises that
        // nothing else touches columns `cols` of any plane.
        unsafe {
            edgedetr_kernels::OutPlanes::from_raw(
                self.base.add(s.off).cast::<T>(),
                s.len / plane_bytes,
                n,
                cols,
            )
        }
    }

    /// Mutable view of bytes `part` of span `s` (a thread's share of an op's
    /// output).
    ///
    /// # Safety
    /// As [`ArenaPtr::bytes_mut`], for the bytes of the part only: no other
    /// view of them may exist while the returned slice lives.
    #[allow(clippy::mut_from_ref)] // disjointness is the caller's proof
    pub(crate) unsafe fn part_mut<'x>(
        &self,
        s: &Span,
        part: core::ops::Range<usize>,
    ) -> &'x mut [u8] {
        if part.is_empty() {
            return &mut [];
        }
        self.check(s);
        assert!(part.end <= s.len, "part outside its buffer");
        // SAFETY: in bounds (the span is checked above and the part lies in
        // it); the caller promises that no other view overlaps the part.
        unsafe { core::slice::from_raw_parts_mut(self.base.add(s.off + part.start), part.len()) }
    }
}

/// Writes `n` values made by `f` into `bytes` and returns them as a slice
/// (the session's table of prepared ops, kept in the caller's arena).
///
/// Panics unless `bytes` is aligned for `T` and holds `n` of them.
pub(crate) fn place<T: Copy, E>(
    bytes: &mut [u8],
    n: usize,
    mut f: impl FnMut(usize) -> Result<T, E>,
) -> Result<&[T], E> {
    let slots = bytes.as_mut_ptr().cast::<T>();
    assert!(
        slots.align_offset(core::mem::align_of::<T>()) == 0
            && n.checked_mul(core::mem::size_of::<T>())
                .is_some_and(|len| len <= bytes.len()),
        "place: region too small or misaligned"
    );
    for i in 0..n {
        let v = f(i)?;
        // SAFETY: slot i lies in `bytes` (checked above) and is aligned for
        // T; `bytes` is borrowed mutably, so nothing else views it. A `Copy`
        // value needs no drop, so overwriting (or abandoning) slots is fine.
        unsafe { slots.add(i).write(v) };
    }
    // SAFETY: the first n slots were initialised above; the shared slice
    // takes over the mutable borrow of `bytes` for its lifetime.
    Ok(unsafe { core::slice::from_raw_parts(slots, n) })
}

// Typed views of validated, 64-byte aligned bytes (model tensors, arena
// buffers, prepared data): empty if the bytes are not aligned (a checked
// model never gives such bytes), never a panic or an unaligned read.

/// The bytes as f32.
pub(crate) fn f32s(bytes: &[u8]) -> &[f32] {
    bytemuck::try_cast_slice(bytes).unwrap_or(&[])
}

/// The bytes as mutable f32.
pub(crate) fn f32s_mut(bytes: &mut [u8]) -> &mut [f32] {
    bytemuck::try_cast_slice_mut(bytes).unwrap_or(&mut [])
}

/// The bytes as i32.
pub(crate) fn i32s(bytes: &[u8]) -> &[i32] {
    bytemuck::try_cast_slice(bytes).unwrap_or(&[])
}

/// The bytes as u32 (indices).
pub(crate) fn u32s(bytes: &[u8]) -> &[u32] {
    bytemuck::try_cast_slice(bytes).unwrap_or(&[])
}

/// The bytes as mutable u32 (indices).
pub(crate) fn u32s_mut(bytes: &mut [u8]) -> &mut [u32] {
    bytemuck::try_cast_slice_mut(bytes).unwrap_or(&mut [])
}

/// The bytes as u16 (f16 bits).
pub(crate) fn u16s(bytes: &[u8]) -> &[u16] {
    bytemuck::try_cast_slice(bytes).unwrap_or(&[])
}

/// The bytes as mutable u16 (bfloat16 bits).
pub(crate) fn u16s_mut(bytes: &mut [u8]) -> &mut [u16] {
    bytemuck::try_cast_slice_mut(bytes).unwrap_or(&mut [])
}

/// The bytes as i8.
pub(crate) fn i8s(bytes: &[u8]) -> &[i8] {
    bytemuck::cast_slice(bytes)
}

/// The bytes as mutable i8.
pub(crate) fn i8s_mut(bytes: &mut [u8]) -> &mut [i8] {
    bytemuck::cast_slice_mut(bytes)
}

/// One 64-byte aligned block; the storage unit of `AlignedBytes`.
#[cfg(feature = "std")]
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Block(pub(crate) [u8; 64]);

// SAFETY: `Block` is a byte array with no padding (size 64 = align 64); the
// all-zero pattern is valid.
#[cfg(feature = "std")]
unsafe impl bytemuck::Zeroable for Block {}
// SAFETY: as above: every bit pattern of a byte array is valid, it is Copy and
// 'static, and has no padding or interior mutability.
#[cfg(feature = "std")]
unsafe impl bytemuck::Pod for Block {}
