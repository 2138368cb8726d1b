//! [`Session`]: prepares a model's static graph once over a caller-provided
//! arena, then runs it frame after frame without allocating.

use core::ops::Range;

use edgedetr_format::{DType, NONE};
use edgedetr_kernels::Kernels;

use crate::error::Error;
use crate::model::{InputDType, Model, U8_INPUT_ZERO_POINT};
use crate::ops::{self, Io, Out, Plan, Planes, Setup, Span};
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
    /// Bytes per element of the first output.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    out_elem: u8,
    /// Threads may share the op: it has several work units, one output, and
    /// its units write consecutive, non-overlapping parts of that output
    /// (`ops::Units::writes`, checked by `splits_cleanly`).
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    split: bool,
}

/// One inference context: a model, the caller's arena and the chosen kernels.
///
/// [`Session::new`] prepares every op once, inside the arena: it chooses the
/// kernels and algorithms, expands weights stored as f16 or int8 in float
/// layers to f32, and resolves every buffer and tensor. [`Session::run`]
/// then allocates and converts nothing: every activation lives at its
/// planned offset in the arena, and every weight is read in place from the
/// model bytes or the prepared data. With `std`, [`Session::run_with`] runs
/// the same graph on a [`crate::ThreadPool`], with the same results.
pub struct Session<'m, 'a> {
    model: &'m Model<'m>,
    arena: ArenaPtr,
    prepared: &'a [u8],
    ops: &'a [PreparedOp],
    kernels: Kernels,
    /// The largest scratch buffer of any op (what each pool worker needs).
    worker_scratch: usize,
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
            let out = file.buffer(op.outputs[0]);
            let out_elem = DType::from_u8(out.dtype).map_or(4, |d| d.size());
            let elems = span_of(&out).len / out_elem.max(1);
            // Columns of int8 or f32 planes, or consecutive parts of the output.
            let parts_of = match plan.planes() {
                Some(n) if matches!(out_elem, 1 | 4) && n > 0 && elems.is_multiple_of(n) => n,
                Some(_) => 0,
                None => elems,
            };
            let split = op.outputs[1] == NONE
                && elems.saturating_mul(plan.cost_per_output()) >= MIN_SPLIT_COST
                && splits_cleanly(&plan, parts_of);
            Ok(PreparedOp {
                ins,
                n_in: op.input_ids().count() as u8,
                outs: [span(op.outputs[0]), span(op.outputs[1])],
                scratch: span(op.scratch),
                plan,
                out_elem: out_elem as u8,
                split,
            })
        })?;
        let worker_scratch = ops.iter().map(|p| p.scratch.len).max().unwrap_or(0);
        Ok(Session {
            model,
            arena: ArenaPtr::new(activations),
            prepared,
            ops,
            kernels,
            worker_scratch,
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

    /// Bytes of scratch each worker of a [`crate::ThreadPool`] needs to run
    /// this session's ops (the largest op scratch of the model).
    pub fn worker_scratch_bytes(&self) -> usize {
        self.worker_scratch
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

    /// Runs the whole graph on the threads of `pool`: the calling thread and
    /// the pool's workers each run a contiguous share of every op's work
    /// units (output-channel blocks, pixel tiles, heads, channels, element
    /// chunks), then any share a thread has not started yet (one the system
    /// has not scheduled), and start an op once the previous one has
    /// finished. An op with one unit (or too little work to share) runs on
    /// the calling thread alone, and a run of such ops only (with
    /// [`Session::run_ops_with`]) does not wake the pool.
    ///
    /// The results are the same bytes as [`Session::run`]'s for every
    /// thread count: no unit's reduction is split, so nothing is summed in a
    /// different order. Allocates nothing once the pool's workers have
    /// [`Session::worker_scratch_bytes`] of scratch (a pool made by
    /// [`crate::ThreadPool::for_session`] has; otherwise this grows it, once).
    #[cfg(feature = "std")]
    pub fn run_with(&mut self, pool: &mut crate::ThreadPool) {
        self.run_shared(0..self.model.op_count(), pool);
    }

    /// Runs ops `range` on the threads of `pool` (as [`Session::run_with`]).
    ///
    /// # Errors
    /// [`Error::BadRange`] for a range outside the graph.
    #[cfg(feature = "std")]
    pub fn run_ops_with(
        &mut self,
        range: Range<usize>,
        pool: &mut crate::ThreadPool,
    ) -> Result<(), Error> {
        if range.start > range.end || range.end > self.model.op_count() {
            return Err(Error::BadRange);
        }
        self.run_shared(range, pool);
        Ok(())
    }

    #[cfg(feature = "std")]
    fn run_shared(&mut self, range: Range<usize>, pool: &mut crate::ThreadPool) {
        // Nothing to share (one thread, or no op of the range splits): the
        // calling thread runs the ops without waking the pool.
        let ops = self.ops.get(range.clone()).unwrap_or(&[]);
        if pool.threads() == 1 || !ops.iter().any(|p| p.split) {
            self.run_each(range, |_| {});
            return;
        }
        pool.reserve_scratch(self.worker_scratch);
        pool.reserve_steps(ops.len());
        // Every thread runs `share` over the same ops while this thread holds
        // the session exclusively (`&mut self`); the shares it hands out are
        // disjoint (see `share`).
        let this: &Session<'m, 'a> = self;
        pool.run_on_ready(&|w: &mut crate::pool::Worker<'_>| this.share(w, range.clone()));
    }

    /// Thread `w`'s share of ops `range`, one [`crate::pool::Worker::steps`]
    /// step per op: a split op's units cut into [`CHUNKS_PER_THREAD`]
    /// contiguous runs per thread, each thread running its own first and
    /// then any another has not started; every other op whole, on the
    /// calling thread (a step of one chunk is thread 0's). An op
    /// starts once every chunk of the previous one has finished, so that no
    /// thread reads what another has not finished writing, nor writes what
    /// another still reads; a thread the system did not schedule holds no
    /// one up (the others run its chunks). Once one has panicked, the others
    /// stop at their next op.
    #[cfg(feature = "std")]
    fn share(&self, w: &mut crate::pool::Worker<'_>, range: Range<usize>) {
        let (me, n) = (w.index(), w.threads());
        let ops = self.ops.get(range.clone()).unwrap_or(&[]);
        let chunks = |p: &PreparedOp| {
            if p.split {
                p.plan.work_units().min(CHUNKS_PER_THREAD * n)
            } else {
                1
            }
        };
        w.steps(
            ops.len(),
            |s| chunks(&ops[s]),
            |s, c, scratch| {
                let (i, p) = (range.start + s, &ops[s]);
                let units = p.plan.work_units();
                if p.split {
                    let k = chunks(p);
                    let work = units * c / k..units * (c + 1) / k;
                    if work.is_empty() {
                        return;
                    }
                    let part = Session::part_of(p, &work);
                    let scratch = (me > 0).then(|| &mut scratch[..p.scratch.len]);
                    // SAFETY: the caller holds the session exclusively; each
                    // chunk is a disjoint run of units, run once, whose output
                    // parts are disjoint (`splits_cleanly`: units write
                    // consecutive parts, or consecutive columns of planes),
                    // with its thread's own scratch (thread 0 the arena's);
                    // the steps keep other ops out of the way.
                    unsafe { self.exec_part(i, work, Some(part), scratch) };
                } else {
                    // SAFETY: as above; one thread runs the op, with its own
                    // scratch in the arena.
                    unsafe { self.exec_part(i, 0..units, None, None) };
                }
            },
        );
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
        // SAFETY: `&mut self` excludes every other view of the arena, and
        // one call runs at a time.
        unsafe { self.exec_part(i, work, None, None) }
    }

    /// Runs units `work` of op `i`, writing only bytes `part` of its output
    /// (`None`: the whole output, and the second one), with `scratch` for
    /// scratch (`None`: the op's own, in the arena).
    ///
    /// # Safety
    /// While it runs, no view of op `i`'s output and scratch buffers may
    /// exist but those of other `exec_part` calls for the same op that write
    /// parts disjoint from `part` and have their own scratch (threads
    /// sharing the op); nothing may write op `i`'s inputs.
    unsafe fn exec_part(
        &self,
        i: usize,
        work: Range<usize>,
        part: Option<Range<usize>>,
        scratch: Option<&mut [u8]>,
    ) {
        let p = self.ops[i];
        let a = &self.arena;
        // The loader proved that every buffer this op touches is live at this
        // op, so its input, output and scratch buffers share no bytes; the
        // caller promises the rest (see above).
        let mut ins: [&[u8]; 4] = [&[]; 4];
        for (slot, span) in ins.iter_mut().zip(&p.ins[..p.n_in as usize]) {
            // SAFETY: see above; inputs are only read, by every thread.
            *slot = unsafe { a.bytes(span) };
        }
        let (out, out2) = match (part, p.plan.planes()) {
            // SAFETY: see above; this thread's columns of the output planes
            // overlap no other thread's, nor any input or scratch buffer. A
            // split op has no second output.
            (Some(cols), Some(n)) => {
                let (o, len) = (&p.outs[0], p.outs[0].len);
                let planes = if p.out_elem == 4 {
                    // SAFETY: as above, for an f32 output.
                    Planes::F32(unsafe { a.planes_mut(o, n, cols) })
                } else {
                    // SAFETY: as above, for an int8 output.
                    Planes::I8(unsafe { a.planes_mut(o, n, cols) })
                };
                (Out::columns(planes, len), &mut [][..])
            }
            // SAFETY: see above; this thread's part of the output overlaps no
            // other thread's, nor any input or scratch buffer. A split op
            // has no second output.
            (Some(r), None) => (
                Out::new(
                    unsafe { a.part_mut(&p.outs[0], r.clone()) },
                    r.start,
                    p.outs[0].len,
                ),
                &mut [][..],
            ),
            (None, _) => (
                // SAFETY: see above; the output overlaps no input or scratch buffer.
                Out::new(unsafe { a.bytes_mut(&p.outs[0]) }, 0, p.outs[0].len),
                // SAFETY: see above; the second output is another live buffer (or empty).
                unsafe { a.bytes_mut(&p.outs[1]) },
            ),
        };
        let scratch = match scratch {
            Some(s) => s,
            // SAFETY: see above; the op's scratch overlaps no input or output
            // buffer, and only one thread uses it.
            None => unsafe { a.bytes_mut(&p.scratch) },
        };
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

    /// The output bytes that units `work` of op `p` (a split op) write: from
    /// the first unit's start to the last one's end (of an op that splits
    /// planes by columns, the columns of every plane).
    #[cfg(feature = "std")]
    fn part_of(p: &PreparedOp, work: &Range<usize>) -> Range<usize> {
        let unit = |j: usize| p.plan.writes(&(j..j + 1)).unwrap_or(0..0);
        let e = if p.plan.planes().is_some() {
            1
        } else {
            usize::from(p.out_elem)
        };
        unit(work.start).start * e..unit(work.end - 1).end * e
    }
}

/// Chunks per thread that a split op's units are cut into: any thread runs
/// any chunk, so a thread that is slow to start leaves its share to the
/// others; more chunks balance better, but a convolution shared by channels
/// packs its input once per chunk.
#[cfg(feature = "std")]
const CHUNKS_PER_THREAD: usize = 1;

/// The least work (output elements × [`Plan::cost_per_output`]) that is worth
/// sharing between threads: below it, waking the others and meeting them at
/// a barrier (a few microseconds) costs about what the op does.
const MIN_SPLIT_COST: usize = 1 << 16;

/// Whether threads may share an op of `plan` whose output holds `len`
/// elements: it has several units, and each unit writes a part of the output
/// that starts where the previous unit's ends or after, so that runs of
/// units (from the first unit's start to the last one's end) never overlap.
fn splits_cleanly(plan: &Plan, len: usize) -> bool {
    let units = plan.work_units();
    let mut end = 0;
    for j in 0..units {
        match plan.writes(&(j..j + 1)) {
            Some(r) if r.start >= end && r.start <= r.end && r.end <= len => end = r.end,
            _ => return false,
        }
    }
    units >= 2
}

/// `Ok` when `given` elements fill a buffer of `expected` elements.
fn check_len(expected: usize, given: usize) -> Result<(), Error> {
    if expected == given {
        Ok(())
    } else {
        Err(Error::ShapeMismatch { expected, given })
    }
}
