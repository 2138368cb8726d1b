//! [`Session`]: prepares a model's static graph once over a caller-provided
//! arena, then runs it frame after frame without allocating.

use core::ops::Range;

use edgedetr_format::{DType, NONE};
use edgedetr_kernels::Kernels;

use crate::error::Error;
use crate::model::{InputDType, Model, U8_INPUT_ZERO_POINT};
use crate::ops::{self, Io, Plan, Setup, Span};
use crate::view::{ArenaPtr, f32s, f32s_mut, i8s, i8s_mut, i32s, place, span_of};

/// One op as `Session::new` prepared it: where its buffers are in the arena,
/// and its plan (algorithm, kernels, tensor and prepared-data places).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreparedOp {
    ins: [Span; 4],
    n_in: u8,
    outs: [Span; 2],
    scratch: Span,
    plan: Plan,
}

/// One inference context: a model, the caller's arena and the chosen kernels.
///
/// [`Session::new`] prepares every op once, inside the arena: it chooses the
/// kernels and algorithms, expands weights stored as f16 or int8 in float
/// layers to f32, and resolves every buffer and tensor. [`Session::run`]
/// then allocates and converts nothing: every activation lives at its
/// planned offset in the arena, and every weight is read in place from the
/// model bytes or the prepared data.
pub struct Session<'m, 'a> {
    model: &'m Model<'m>,
    arena: ArenaPtr,
    prepared: &'a [u8],
    ops: &'a [PreparedOp],
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
    ///
    /// # Errors
    /// [`Error::ArenaTooSmall`] when `arena` is shorter than
    /// [`Model::arena_size`].
    pub fn with_kernels(
        model: &'m Model<'m>,
        arena: &'a mut [u8],
        kernels: Kernels,
    ) -> Result<Self, Error> {
        let given = arena.len();
        let too_small = Error::ArenaTooSmall {
            needed: model.arena_size(),
            given,
        };
        let layout = model.layout();
        let (Some(prep_at), Some(ops_at), Some(used)) =
            (layout.prepared_at(), layout.ops_at(), layout.used())
        else {
            return Err(Error::ArenaOverflow);
        };
        let skip = arena.as_ptr().align_offset(64);
        let arena = arena
            .get_mut(skip..)
            .and_then(|a| a.get_mut(..used))
            .ok_or(too_small)?;
        let (activations, rest) = arena.split_at_mut(prep_at);
        let (prepared, table) = rest.split_at_mut(ops_at - prep_at);
        let file = model.file();
        // Prepare every op: its prepared data, then its record in the table.
        let mut at = 0;
        let ops = place(table, model.op_count(), |i| -> Result<PreparedOp, Error> {
            let n = ops::prepared_bytes(file, i as u32)?;
            let region = prepared.get_mut(at..at + n).ok_or(Error::ArenaOverflow)?;
            let plan = ops::prepare(file, i as u32, &mut Setup::new(kernels, region, at))?;
            at += n;
            let op = file.op(i as u32);
            let span = |id: u32| match id {
                NONE => Span::default(),
                id => span_of(&file.buffer(id)),
            };
            let mut ins = [Span::default(); 4];
            for (d, id) in ins.iter_mut().zip(op.input_ids()) {
                *d = span(id);
            }
            Ok(PreparedOp {
                ins,
                n_in: op.input_ids().count() as u8,
                outs: [span(op.outputs[0]), span(op.outputs[1])],
                scratch: span(op.scratch),
                plan,
            })
        })?;
        Ok(Session {
            model,
            arena: ArenaPtr::new(activations),
            prepared,
            ops,
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

    /// Bytes of the arena the session uses (activations, prepared data and
    /// the op table).
    pub fn arena_used_bytes(&self) -> usize {
        self.model.layout().used().unwrap_or(0)
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
        Ok(f32s(unsafe { self.arena.bytes(&span_of(&b)) }))
    }

    /// Reads i32 buffer `id` (indices such as `dec_topk_index`).
    pub fn buffer_i32(&self, id: u32) -> Result<&[i32], Error> {
        let b = self.model.buffer(id).ok_or(Error::UnknownBuffer)?;
        if b.dtype != DType::I32 as u8 {
            return Err(Error::WrongDType);
        }
        // SAFETY: `&self` excludes any mutable view for the slice's lifetime.
        Ok(i32s(unsafe { self.arena.bytes(&span_of(&b)) }))
    }

    /// Reads int8 buffer `id` (its scale and zero point are in its descriptor,
    /// [`edgedetr_format::BufferDesc::quant`]).
    pub fn buffer_i8(&self, id: u32) -> Result<&[i8], Error> {
        let b = self.model.buffer(id).ok_or(Error::UnknownBuffer)?;
        if b.dtype != DType::I8 as u8 {
            return Err(Error::WrongDType);
        }
        // SAFETY: `&self` excludes any mutable view for the slice's lifetime.
        Ok(i8s(unsafe { self.arena.bytes(&span_of(&b)) }))
    }

    /// Mutable bytes of int8 buffer `id`.
    fn i8_bytes_mut(&mut self, id: u32) -> Result<&mut [u8], Error> {
        let b = self.model.buffer(id).ok_or(Error::UnknownBuffer)?;
        if b.dtype != DType::I8 as u8 {
            return Err(Error::WrongDType);
        }
        // SAFETY: `&mut self` excludes every other view for the slice's lifetime.
        Ok(unsafe { self.arena.bytes_mut(&span_of(&b)) })
    }

    /// Copies `data` into int8 buffer `id`.
    pub fn set_buffer_i8(&mut self, id: u32, data: &[i8]) -> Result<(), Error> {
        let dst = self.i8_bytes_mut(id)?;
        check_len(dst.len(), data.len())?;
        dst.copy_from_slice(bytemuck::cast_slice(data));
        Ok(())
    }

    /// Reads buffer `id` as f32 into `out` (int8 buffers dequantised, i32 converted).
    pub fn read_f32(&self, id: u32, out: &mut [f32]) -> Result<(), Error> {
        let b = self.model.buffer(id).ok_or(Error::UnknownBuffer)?;
        let n = b.numel() as usize;
        check_len(n, out.len())?;
        match DType::from_u8(b.dtype) {
            Some(DType::F32) => out.copy_from_slice(self.buffer(id)?),
            Some(DType::I8) => {
                let (scale, zp) = b.quant().unwrap_or((1.0, 0));
                self.kernels.dequantize(self.buffer_i8(id)?, scale, zp, out);
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
        // SAFETY: `&mut self` excludes every other view for the slice's lifetime.
        let v = unsafe { self.arena.bytes_mut(&span_of(&b)) };
        let dst: &mut [i32] = bytemuck::try_cast_slice_mut(v).unwrap_or(&mut []);
        check_len(dst.len(), data.len())?;
        dst.copy_from_slice(data);
        Ok(())
    }

    /// Mutable access to f32 buffer `id` (to feed an input or a stage).
    pub fn buffer_mut(&mut self, id: u32) -> Result<&mut [f32], Error> {
        let b = self.f32_buffer(id)?;
        // SAFETY: `&mut self` excludes every other view for the slice's lifetime.
        Ok(f32s_mut(unsafe { self.arena.bytes_mut(&span_of(&b)) }))
    }

    /// Copies `data` into f32 buffer `id`.
    pub fn set_buffer(&mut self, id: u32, data: &[f32]) -> Result<(), Error> {
        let dst = self.buffer_mut(id)?;
        check_len(dst.len(), data.len())?;
        dst.copy_from_slice(data);
        Ok(())
    }

    /// The f32 image input `[3, S, S]` (`pixel / 255`), to fill before
    /// [`Session::run`].
    ///
    /// Only models whose [`Model::input_dtype`] is [`InputDType::F32`] have
    /// one: for a u8-input model (int8) this slice is **empty**. Prefer
    /// [`Session::set_input_u8`] or [`Session::set_input_f32`], which write
    /// either kind of model.
    pub fn input_mut(&mut self) -> &mut [f32] {
        let id = self.model.input_buffer();
        self.buffer_mut(id).unwrap_or(&mut [])
    }

    /// Writes the image, `3·S·S` CHW RGB `u8` pixels (the preprocessed,
    /// resized image), before [`Session::run`].
    ///
    /// A u8-input model ([`InputDType::U8`]) stores each pixel `p` as the
    /// byte `p ^ 0x80` (the int8 `p − 128`); an f32-input model gets
    /// `p / 255` in `f32` (a correctly rounded division, as numpy's
    /// `float32 / 255`). Either way the model sees exactly the values of the
    /// f32 preprocessing. Allocates nothing.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `chw` does not hold `3·S·S` pixels.
    pub fn set_input_u8(&mut self, chw: &[u8]) -> Result<(), Error> {
        let id = self.model.input_buffer();
        let n = self.model.buffer(id).map_or(0, |b| b.numel() as usize);
        check_len(n, chw.len())?;
        self.write_input_u8(0, chw)
    }

    /// Writes part of the image: `pixels` (CHW RGB `u8`, as in
    /// [`Session::set_input_u8`]) from element `offset` of `[3, S, S]` on, so
    /// that firmware can copy a camera frame a line at a time without a
    /// frame buffer of its own. Allocates nothing.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `offset + pixels.len()` exceeds `3·S·S`
    /// (`expected` is the room left).
    pub fn write_input_u8(&mut self, offset: usize, pixels: &[u8]) -> Result<(), Error> {
        let id = self.model.input_buffer();
        let room = |len: usize| -> Result<core::ops::Range<usize>, Error> {
            match offset.checked_add(pixels.len()) {
                Some(end) if end <= len => Ok(offset..end),
                _ => Err(Error::ShapeMismatch {
                    expected: len.saturating_sub(offset),
                    given: pixels.len(),
                }),
            }
        };
        let k = self.kernels;
        match self.model.input_dtype() {
            InputDType::U8 => {
                let dst = self.i8_bytes_mut(id)?;
                let r = room(dst.len())?;
                k.u8_to_i8(pixels, i8s_mut(&mut dst[r]));
            }
            InputDType::F32 => {
                let dst = self.buffer_mut(id)?;
                let r = room(dst.len())?;
                for (d, &p) in dst[r].iter_mut().zip(pixels) {
                    *d = f32::from(p) / 255.0;
                }
            }
        }
        Ok(())
    }

    /// Writes the image as `3·S·S` CHW RGB `f32` values in `[0, 1]`
    /// (`pixel / 255`, e.g. a golden `input.npy`), before [`Session::run`].
    ///
    /// An f32-input model gets a copy. A u8-input model ([`InputDType::U8`])
    /// stores `round(v · 255)` clamped to `0..=255` (rounding half away from
    /// zero; NaN as 0), as the byte `^ 0x80`: lossless for values `k / 255`,
    /// which is what the f32 preprocessing produces. Allocates nothing.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `chw` does not hold `3·S·S` values.
    pub fn set_input_f32(&mut self, chw: &[f32]) -> Result<(), Error> {
        let id = self.model.input_buffer();
        match self.model.input_dtype() {
            InputDType::U8 => {
                let dst = self.i8_bytes_mut(id)?;
                check_len(dst.len(), chw.len())?;
                let zp = i32::from(U8_INPUT_ZERO_POINT);
                for (d, &v) in dst.iter_mut().zip(chw) {
                    // clamp(round(v·255) − 128, −128, 127): the pixel minus 128.
                    *d = edgedetr_kernels::quantize_f32(v, 255.0, zp) as u8;
                }
            }
            InputDType::F32 => {
                let dst = self.buffer_mut(id)?;
                check_len(dst.len(), chw.len())?;
                dst.copy_from_slice(chw);
            }
        }
        Ok(())
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
            let units = self.ops[i].plan.work_units();
            self.exec(i, 0..units);
            after(i);
        }
    }

    /// The independent work units of op `index` (output-channel blocks,
    /// heads, element chunks; 1 when the op does not split), or `None` past
    /// the graph.
    pub fn op_work_units(&self, index: usize) -> Option<usize> {
        self.ops.get(index).map(|p| p.plan.work_units())
    }

    /// Runs the work units `work` of op `index` only: running any partition
    /// of `0..op_work_units(index)` writes the same bytes as running the op
    /// whole (how a thread pool splits an op; tests check it).
    ///
    /// # Errors
    /// [`Error::BadRange`] for an op or units outside the graph.
    pub fn run_op_units(&mut self, index: usize, work: Range<usize>) -> Result<(), Error> {
        let units = self.op_work_units(index).ok_or(Error::BadRange)?;
        if work.start > work.end || work.end > units {
            return Err(Error::BadRange);
        }
        self.exec(index, work);
        Ok(())
    }

    fn exec(&mut self, i: usize, work: Range<usize>) {
        let p = self.ops[i];
        let a = &self.arena;
        // SAFETY (all views below): the loader proved that every buffer this op
        // touches is live at this op, so the input, output and scratch buffers
        // share no bytes; `&mut self` excludes every other view of the arena.
        let mut ins: [&[u8]; 4] = [&[]; 4];
        for (slot, span) in ins.iter_mut().zip(&p.ins[..p.n_in as usize]) {
            // SAFETY: see above; inputs are only read.
            *slot = unsafe { a.bytes(span) };
        }
        // SAFETY: see above; the output overlaps no input or scratch buffer.
        let out = unsafe { a.bytes_mut(&p.outs[0]) };
        // SAFETY: see above; the second output is another live buffer (or empty).
        let out2 = unsafe { a.bytes_mut(&p.outs[1]) };
        // SAFETY: see above; scratch overlaps no input or output buffer.
        let scratch = unsafe { a.bytes_mut(&p.scratch) };
        let mut io = Io {
            k: &self.kernels,
            ins,
            n_in: p.n_in as usize,
            out,
            out2,
            scratch,
            file: self.model.file().bytes(),
            prepared: self.prepared,
        };
        p.plan.run(&mut io, work);
    }
}

/// `Ok` when `given` elements fill a buffer of `expected` elements.
fn check_len(expected: usize, given: usize) -> Result<(), Error> {
    if expected == given {
        Ok(())
    } else {
        Err(Error::ShapeMismatch { expected, given })
    }
}
