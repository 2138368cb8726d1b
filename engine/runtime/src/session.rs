//! [`Session`]: runs a model's static graph over a caller-provided arena.

use core::ops::Range;

use edgedetr_format::{DType, NONE, OpDesc};
use edgedetr_kernels::Act;
use edgedetr_kernels::dispatch::Kernels;

use crate::error::Error;
use crate::exec;
use crate::model::Model;
use crate::view::ArenaPtr;

/// One inference context: a model, the caller's arena and the chosen kernels.
///
/// `run` allocates nothing: every activation lives at its planned offset in
/// the arena, and every weight is read in place from the model bytes.
pub struct Session<'m, 'a> {
    model: &'m Model<'m>,
    arena: ArenaPtr,
    kernels: Kernels,
    _arena: core::marker::PhantomData<&'a mut [u8]>,
}

impl<'m, 'a> Session<'m, 'a> {
    /// A session with the best kernels for this CPU (`std`: detected at run time,
    /// honouring `EDGEDETR_KERNELS`; no_std: the compile-time target features).
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8]) -> Result<Self, Error> {
        #[cfg(feature = "std")]
        let kernels = Kernels::from_env();
        #[cfg(not(feature = "std"))]
        let kernels = Kernels::for_caps(edgedetr_kernels::caps::Caps::compile_time());
        Self::with_kernels(model, arena, kernels)
    }

    /// A session with an explicit kernel table (e.g. [`Kernels::scalar`]).
    pub fn with_kernels(
        model: &'m Model<'m>,
        arena: &'a mut [u8],
        kernels: Kernels,
    ) -> Result<Self, Error> {
        let given = arena.len();
        let needed = model.file().arena_size();
        let arena = ArenaPtr::new(arena, needed).ok_or(Error::ArenaTooSmall {
            needed: model.arena_size(),
            given,
        })?;
        Ok(Session {
            model,
            arena,
            kernels,
            _arena: core::marker::PhantomData,
        })
    }

    /// The model.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// The kernel table in use.
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// Bytes of the arena the plan uses.
    pub fn arena_used_bytes(&self) -> usize {
        self.model.file().arena_size()
    }

    fn f32_buffer(&self, id: u32) -> Result<edgedetr_format::BufferDesc, Error> {
        let b = self.model.buffer(id).ok_or(Error::UnknownBuffer)?;
        if b.dtype != DType::F32 as u8 {
            return Err(Error::WrongDType);
        }
        Ok(b)
    }

    /// Reads f32 buffer `id`. Its contents are meaningful while the buffer is
    /// live: exported buffers and the input keep theirs after a run.
    pub fn buffer(&self, id: u32) -> Result<&[f32], Error> {
        let b = self.f32_buffer(id)?;
        // SAFETY: `&self` excludes any mutable view for the slice's lifetime.
        Ok(unsafe { self.arena.f32s(&b) })
    }

    /// Reads i32 buffer `id` (indices such as `dec_topk_index`).
    pub fn buffer_i32(&self, id: u32) -> Result<&[i32], Error> {
        let b = self.model.buffer(id).ok_or(Error::UnknownBuffer)?;
        if b.dtype != DType::I32 as u8 {
            return Err(Error::WrongDType);
        }
        // SAFETY: `&self` excludes any mutable view; an i32 buffer has 4-byte elements.
        let v = unsafe { self.arena.f32s(&b) };
        Ok(bytemuck::cast_slice(v))
    }

    /// Reads int8 buffer `id` (its scale and zero point are in its descriptor,
    /// [`edgedetr_format::BufferDesc::quant`]).
    pub fn buffer_i8(&self, id: u32) -> Result<&[i8], Error> {
        let b = self.model.buffer(id).ok_or(Error::UnknownBuffer)?;
        if b.dtype != DType::I8 as u8 {
            return Err(Error::WrongDType);
        }
        // SAFETY: `&self` excludes any mutable view for the slice's lifetime.
        let v = unsafe { self.arena.bytes(&b) };
        Ok(bytemuck::cast_slice(v))
    }

    /// Copies `data` into int8 buffer `id`.
    pub fn set_buffer_i8(&mut self, id: u32, data: &[i8]) -> Result<(), Error> {
        let b = self.model.buffer(id).ok_or(Error::UnknownBuffer)?;
        if b.dtype != DType::I8 as u8 {
            return Err(Error::WrongDType);
        }
        // SAFETY: `&mut self` excludes every other view for the slice's lifetime.
        let dst = unsafe { self.arena.bytes_mut(&b) };
        if dst.len() != data.len() {
            return Err(Error::ShapeMismatch {
                expected: dst.len(),
                given: data.len(),
            });
        }
        dst.copy_from_slice(bytemuck::cast_slice(data));
        Ok(())
    }

    /// Reads buffer `id` as f32 into `out` (int8 buffers dequantised, i32 converted).
    pub fn read_f32(&self, id: u32, out: &mut [f32]) -> Result<(), Error> {
        let b = self.model.buffer(id).ok_or(Error::UnknownBuffer)?;
        let n = b.numel() as usize;
        if out.len() != n {
            return Err(Error::ShapeMismatch {
                expected: n,
                given: out.len(),
            });
        }
        match DType::from_u8(b.dtype) {
            Some(DType::F32) => out.copy_from_slice(self.buffer(id)?),
            Some(DType::I8) => {
                let (scale, zp) = b.quant().unwrap_or((1.0, 0));
                edgedetr_kernels::dequantize_slice(self.buffer_i8(id)?, scale, zp, out);
            }
            Some(DType::I32) => {
                for (o, &v) in out.iter_mut().zip(self.buffer_i32(id)?) {
                    *o = v as f32;
                }
            }
            _ => return Err(Error::WrongDType),
        }
        Ok(())
    }

    /// Copies `data` into i32 buffer `id` (e.g. to inject the golden top-k).
    pub fn set_buffer_i32(&mut self, id: u32, data: &[i32]) -> Result<(), Error> {
        let b = self.model.buffer(id).ok_or(Error::UnknownBuffer)?;
        if b.dtype != DType::I32 as u8 {
            return Err(Error::WrongDType);
        }
        // SAFETY: `&mut self` excludes every other view; 4-byte elements.
        let v = unsafe { self.arena.f32s_mut(&b) };
        let dst: &mut [i32] = bytemuck::cast_slice_mut(v);
        if dst.len() != data.len() {
            return Err(Error::ShapeMismatch {
                expected: dst.len(),
                given: data.len(),
            });
        }
        dst.copy_from_slice(data);
        Ok(())
    }

    /// Mutable access to f32 buffer `id` (to feed an input or a stage).
    pub fn buffer_mut(&mut self, id: u32) -> Result<&mut [f32], Error> {
        let b = self.f32_buffer(id)?;
        // SAFETY: `&mut self` excludes every other view for the slice's lifetime.
        Ok(unsafe { self.arena.f32s_mut(&b) })
    }

    /// Copies `data` into f32 buffer `id`.
    pub fn set_buffer(&mut self, id: u32, data: &[f32]) -> Result<(), Error> {
        let dst = self.buffer_mut(id)?;
        if dst.len() != data.len() {
            return Err(Error::ShapeMismatch {
                expected: dst.len(),
                given: data.len(),
            });
        }
        dst.copy_from_slice(data);
        Ok(())
    }

    /// The preprocessed image input `[3, S, S]`, to fill before [`Session::run`].
    pub fn input_mut(&mut self) -> &mut [f32] {
        let id = self.model.file().meta().input_buffer;
        self.buffer_mut(id).unwrap_or(&mut [])
    }

    /// Runs the whole graph.
    pub fn run(&mut self) {
        self.run_each(0..self.model.op_count(), |_| {});
    }

    /// Runs ops `range` only (stage tests feed a buffer, then run what follows it).
    pub fn run_ops(&mut self, range: Range<usize>) -> Result<(), Error> {
        if range.start > range.end || range.end > self.model.op_count() {
            return Err(Error::BadRange);
        }
        self.run_each(range, |_| {});
        Ok(())
    }

    /// Runs ops `range` (clamped to the graph), calling `after(op_index)` after each
    /// op (for per-stage timing or tracing; the callback must not allocate if the
    /// caller needs an allocation-free run).
    pub fn run_each(&mut self, range: Range<usize>, mut after: impl FnMut(usize)) {
        let end = range.end.min(self.model.op_count());
        for i in range.start..end {
            let op = self.model.file().op(i as u32);
            self.exec_op(&op);
            after(i);
        }
    }

    fn exec_op(&mut self, op: &OpDesc) {
        let file = self.model.file();
        let act = Act::from_u8(op.act).unwrap_or(Act::None);
        let a = &self.arena;
        let desc = |id: u32| file.buffer(id);
        let n_in = op.input_ids().count();
        // SAFETY (all views below): the loader proved that every buffer this op
        // touches is live at this op, so the input, output and scratch buffers
        // share no bytes; `&mut self` excludes every other view of the arena.
        let mut ins: [&[u8]; 4] = [&[]; 4];
        for (slot, id) in ins.iter_mut().zip(op.input_ids()) {
            // SAFETY: see above; inputs are only read.
            *slot = unsafe { a.bytes(&desc(id)) };
        }
        // SAFETY: see above; the output overlaps no input or scratch buffer.
        let out = unsafe { a.bytes_mut(&desc(op.outputs[0])) };
        let out2: &mut [u8] = if op.outputs[1] == NONE {
            &mut []
        } else {
            // SAFETY: see above; the second output is another live buffer.
            unsafe { a.bytes_mut(&desc(op.outputs[1])) }
        };
        let scratch: &mut [u8] = if op.scratch == NONE {
            &mut []
        } else {
            // SAFETY: see above; scratch overlaps no input or output buffer.
            unsafe { a.bytes_mut(&desc(op.scratch)) }
        };
        exec::run_op(
            &self.kernels,
            file,
            op,
            &ins[..n_in],
            out,
            out2,
            scratch,
            act,
        );
    }
}
