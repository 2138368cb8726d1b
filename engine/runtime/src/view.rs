//! Typed views of the arena and of the model's constants: the only `unsafe`
//! code of the runtime.
//!
//! The loader proves once, for every op, that the buffers it touches lie inside
//! the arena, are 64-byte aligned and, being live together, share no bytes
//! (`edgedetr_format::ModelFile::parse` plus [`crate::Model::from_bytes`]). The
//! views below rely on exactly that.

use edgedetr_format::BufferDesc;

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

/// The aligned start of a caller's arena and its usable length.
pub(crate) struct ArenaPtr {
    base: *mut u8,
    len: usize,
}

impl ArenaPtr {
    /// Aligns `arena` to 64 bytes; `None` if fewer than `needed` bytes remain.
    pub(crate) fn new(arena: &mut [u8], needed: usize) -> Option<ArenaPtr> {
        let skip = arena.as_ptr().align_offset(64);
        let rest = arena.get_mut(skip..)?;
        if rest.len() < needed {
            return None;
        }
        Some(ArenaPtr {
            base: rest.as_mut_ptr(),
            len: rest.len(),
        })
    }

    fn check(&self, b: &BufferDesc, bytes: usize) {
        // Guaranteed by the loader; kept as a cheap guard against misuse.
        assert!(
            b.offset as usize + bytes <= self.len && (b.offset as usize).is_multiple_of(64),
            "buffer outside the arena"
        );
    }

    /// Shared byte view of buffer `b` (elements × dtype size bytes).
    ///
    /// # Safety
    /// No mutable view of an overlapping buffer may exist while the returned
    /// slice lives, and `b` must be a validated buffer of the session's model.
    pub(crate) unsafe fn bytes<'x>(&self, b: &BufferDesc) -> &'x [u8] {
        let n = elem_bytes(b);
        self.check(b, n);
        // SAFETY: in bounds (checked above); the caller promises no overlapping
        // mutable view exists.
        unsafe { core::slice::from_raw_parts(self.base.add(b.offset as usize), n) }
    }

    /// Mutable byte view of buffer `b`.
    ///
    /// # Safety
    /// No other view of an overlapping buffer may exist while the returned slice
    /// lives, and `b` must be a validated buffer of the session's model.
    #[allow(clippy::mut_from_ref)] // disjointness is the loader's proof, see the module docs
    pub(crate) unsafe fn bytes_mut<'x>(&self, b: &BufferDesc) -> &'x mut [u8] {
        let n = elem_bytes(b);
        self.check(b, n);
        // SAFETY: in bounds (checked above); the caller promises that no other view
        // overlaps this one (buffers live at the same op share no bytes).
        unsafe { core::slice::from_raw_parts_mut(self.base.add(b.offset as usize), n) }
    }

    /// Shared f32 view of buffer `b`.
    ///
    /// # Safety
    /// No mutable view of an overlapping buffer may exist while the returned
    /// slice lives, and `b` must be a validated f32 buffer of the session's model.
    pub(crate) unsafe fn f32s<'x>(&self, b: &BufferDesc) -> &'x [f32] {
        let n = b.numel() as usize;
        self.check(b, n * 4);
        // SAFETY: in bounds and 4-byte aligned (checked above: the base is 64-aligned
        // and so is the offset); every bit pattern is a valid f32; the caller promises
        // no overlapping mutable view exists.
        unsafe { core::slice::from_raw_parts(self.base.add(b.offset as usize) as *const f32, n) }
    }

    /// Mutable f32 view of buffer `b`.
    ///
    /// # Safety
    /// No other view of an overlapping buffer may exist while the returned slice
    /// lives, and `b` must be a validated f32 buffer of the session's model.
    #[allow(clippy::mut_from_ref)] // disjointness is the loader's proof, see the module docs
    pub(crate) unsafe fn f32s_mut<'x>(&self, b: &BufferDesc) -> &'x mut [f32] {
        let n = b.numel() as usize;
        self.check(b, n * 4);
        // SAFETY: in bounds and aligned (checked above); the caller promises that no
        // other view overlaps this one (buffers live at the same op share no bytes).
        unsafe { core::slice::from_raw_parts_mut(self.base.add(b.offset as usize) as *mut f32, n) }
    }
}

/// Bytes of buffer `b`'s elements.
fn elem_bytes(b: &BufferDesc) -> usize {
    let size = edgedetr_format::DType::from_u8(b.dtype).map_or(4, |d| d.size());
    b.numel() as usize * size
}

/// Reinterprets validated, 64-byte aligned model bytes as f32 (empty if not aligned).
pub(crate) fn bytes_as_f32(bytes: &[u8]) -> &[f32] {
    bytemuck::try_cast_slice(bytes).unwrap_or(&[])
}

/// Reinterprets validated, aligned bytes as i32 (empty if not aligned).
pub(crate) fn bytes_as_i32(bytes: &[u8]) -> &[i32] {
    bytemuck::try_cast_slice(bytes).unwrap_or(&[])
}

/// Reinterprets validated, aligned bytes as u16 (f16 bits; empty if not aligned).
pub(crate) fn bytes_as_u16(bytes: &[u8]) -> &[u16] {
    bytemuck::try_cast_slice(bytes).unwrap_or(&[])
}

/// Reinterprets bytes as i8.
pub(crate) fn bytes_as_i8(bytes: &[u8]) -> &[i8] {
    bytemuck::cast_slice(bytes)
}

/// Reinterprets validated, aligned mutable bytes as f32 (empty if not aligned).
pub(crate) fn bytes_as_f32_mut(bytes: &mut [u8]) -> &mut [f32] {
    bytemuck::try_cast_slice_mut(bytes).unwrap_or(&mut [])
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
