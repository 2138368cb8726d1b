//! The op table: every op kind of the static graph, each declared once in its
//! own module.
//!
//! An op module owns everything about its kind: its typed parameters (a
//! struct declared with `op_params!`, whose `encode`/`decode` the
//! quantizer's graph builder and the loader share), its load-time checks,
//! the scratch it needs, what `prepare` does once per session (choose the
//! algorithm, expand or pack weights into the arena), and `run` over a range
//! of its independent work units (output-channel blocks, heads: so that a
//! thread pool can split an op without touching it). `ops!` below is the
//! one list that generates [`OpKind`], the names, the dispatch and the table
//! in these docs (`ops.md`, checked against the code by a test).
//!
//! Feature maps are channel-major; a token matrix `[C, T]` is the same memory
//! as a `[C, 1, T]` map, so linear layers are 1×1 convolutions.
//!
#![doc = include_str!("ops.md")]

use core::fmt;
use core::ops::Range;

use edgedetr_format::{BufferDesc, DType, ModelFile, NONE, OpDesc, TensorDesc};
use edgedetr_kernels::{Kernels, OutPlanes};

use crate::error::Error;
use crate::graph::{Stage, chw};

pub mod codec;

pub mod activation;
pub mod add;
pub mod add_tensor;
pub mod attention;
pub mod concat_tokens;
pub mod conv2d;
pub mod conv2d_i8;
pub mod deform_locations;
pub mod deform_sample;
pub mod dequantize;
pub mod final_topk;
pub mod gather;
pub mod layer_norm;
pub mod mask_tokens;
pub mod quantize;
pub mod refine_boxes;
pub mod softmax_groups;
pub mod topk_tokens;
pub mod upsample2x;
pub mod weighted_sum;
pub mod weighted_sum_i8;

pub use codec::{Fields, Tensor};

/// What an op kind does at load time, once per session, and per frame.
///
/// Implemented by each op's parameter struct; `ops!` dispatches to it.
pub trait Op: Copy + Sized {
    /// What `prepare` decides once per session: resolved geometry, tensor
    /// and arena places, the algorithm. Plain data, kept in the arena; its
    /// [`Units`] are the op's independent units of work.
    type Plan: Copy + fmt::Debug + Units;

    /// The load-time checks: operand counts, dtypes and shapes, tensors,
    /// parameter ranges, scratch size. After they pass, `prepare` and `run`
    /// cannot fail or read out of bounds.
    fn check(&self, cx: &Cx<'_, '_>) -> Result<(), &'static str>;

    /// Bytes of prepared data (expanded or packed weights) the op keeps in
    /// the arena for the session: an upper bound over every kernel path.
    fn prepared_bytes(&self, _cx: &Cx<'_, '_>) -> usize {
        0
    }

    /// Chooses the algorithm and kernels and fills the prepared data (at
    /// most [`Op::prepared_bytes`], taken from `s`).
    fn prepare(&self, cx: &Cx<'_, '_>, s: &mut Setup<'_>) -> Result<Self::Plan, &'static str>;

    /// Runs the units `work` of the op.
    fn run(plan: &Self::Plan, io: &mut Io<'_>, work: Range<usize>);
}

/// The independent units of work of a prepared op (output-channel blocks,
/// heads, element chunks): running any partition of `0..units()` in any
/// order writes the same bytes as running it whole.
pub trait Units {
    /// Work units (1: the op does not split).
    fn units(&self) -> usize {
        1
    }

    /// The elements of the (first) output that units `work` write, or
    /// `None` when they may write anywhere in it (ops of one unit).
    ///
    /// An op that splits states it so that threads can each be handed only
    /// their part of the output: unit `j`'s elements must end where unit
    /// `j + 1`'s start or before, and a run of units writes from its first
    /// unit's start to its last unit's end (`Session::new` checks both, and
    /// runs an op that fails on one thread).
    fn writes(&self, _work: &Range<usize>) -> Option<Range<usize>> {
        None
    }

    /// `Some(n)` when the units split every plane of `n` elements of an
    /// int8 or f32 output by columns instead (a convolution or linear shared
    /// by output pixels or tokens, a layer norm by tokens): [`Units::writes`]
    /// then gives the columns units `work` write in every plane, under the
    /// same rules, and the op writes through [`Out::planes_i8`] or
    /// [`Out::planes_f32`].
    fn planes(&self) -> Option<usize> {
        None
    }

    /// Rough arithmetic per output element (a convolution's reduction
    /// depth; 1 for element-wise ops): with the output's size, whether the
    /// op is worth sharing between threads at all.
    fn cost_per_output(&self) -> usize {
        1
    }
}

impl Units for () {}
impl Units for usize {}
impl Units for Span {}
impl Units for (usize, usize) {}
impl Units for (usize, Span) {}
impl Units for (usize, Option<Span>) {}

impl<T> Units for (Chunks, T) {
    fn units(&self) -> usize {
        self.0.units()
    }

    fn writes(&self, work: &Range<usize>) -> Option<Range<usize>> {
        Some(self.0.of(work))
    }
}

impl<T> Units for (Rows, T) {
    fn units(&self) -> usize {
        self.0.units()
    }

    fn writes(&self, work: &Range<usize>) -> Option<Range<usize>> {
        let ch = self.0.of(work);
        Some(ch.start * self.0.t..ch.end * self.0.t)
    }
}

/// An op's typed parameters, with the kind they are stored under: what the
/// graph builder writes into a record.
pub trait Params: Copy {
    /// The kind.
    const KIND: OpKind;
    /// The record fields the parameters are stored in.
    fn fields(&self) -> Fields;
}

/// Generates [`OpKind`], its names and docs, the [`Plan`] enum and the
/// dispatch functions from the one list of ops.
macro_rules! ops {
    ($( $(#[$doc:meta])* $variant:ident = $num:literal, $name:literal => $module:ident :: $ty:ident; )*) => {
        /// Op kinds (the record's kind number).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u16)]
        #[non_exhaustive]
        pub enum OpKind {
            $( $(#[$doc])* $variant = $num, )*
        }

        impl OpKind {
            /// Every kind, in kind-number order.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$variant,)*];

            /// Decodes the stored kind number.
            pub const fn from_u16(v: u16) -> Option<OpKind> {
                match v {
                    $( $num => Some(OpKind::$variant), )*
                    _ => None,
                }
            }

            /// Short name for reports (`conv2d_i8`, …).
            pub const fn name(self) -> &'static str {
                match self {
                    $( OpKind::$variant => $name, )*
                }
            }

            /// The names of the kind's parameters, in storage order.
            pub const fn fields(self) -> &'static [&'static str] {
                match self {
                    $( OpKind::$variant => $module::$ty::FIELDS, )*
                }
            }
        }

        $(
            impl Params for $module::$ty {
                const KIND: OpKind = OpKind::$variant;
                fn fields(&self) -> Fields {
                    self.encode()
                }
            }
        )*

        /// The prepared form of one op.
        #[derive(Clone, Copy, Debug)]
        pub(crate) enum Plan {
            $( $variant(<$module::$ty as Op>::Plan), )*
        }

        /// Decodes and checks the op of `cx`.
        fn check_kind(kind: OpKind, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
            let f = Fields::of(&cx.op);
            match kind {
                $( OpKind::$variant => $module::$ty::decode(&f)?.check(cx), )*
            }
        }

        /// Prepared bytes of a checked op.
        fn prepared_bytes_kind(kind: OpKind, cx: &Cx<'_, '_>) -> Result<usize, &'static str> {
            let f = Fields::of(&cx.op);
            Ok(match kind {
                $( OpKind::$variant => $module::$ty::decode(&f)?.prepared_bytes(cx), )*
            })
        }

        /// Prepares a checked op.
        fn prepare_kind(kind: OpKind, cx: &Cx<'_, '_>, s: &mut Setup<'_>) -> Result<Plan, &'static str> {
            let f = Fields::of(&cx.op);
            Ok(match kind {
                $( OpKind::$variant => Plan::$variant($module::$ty::decode(&f)?.prepare(cx, s)?), )*
            })
        }

        impl Plan {
            /// Independent units of work of the op.
            pub(crate) fn work_units(&self) -> usize {
                match self {
                    $( Plan::$variant(p) => p.units(), )*
                }
            }

            /// The output elements units `work` write (`Units::writes`).
            pub(crate) fn writes(&self, work: &Range<usize>) -> Option<Range<usize>> {
                match self {
                    $( Plan::$variant(p) => p.writes(work), )*
                }
            }

            /// Elements per plane when the units split planes by columns
            /// (`Units::planes`).
            pub(crate) fn planes(&self) -> Option<usize> {
                match self {
                    $( Plan::$variant(p) => p.planes(), )*
                }
            }

            /// Rough arithmetic per output element (`Units::cost_per_output`).
            pub(crate) fn cost_per_output(&self) -> usize {
                match self {
                    $( Plan::$variant(p) => p.cost_per_output(), )*
                }
            }

            /// Runs units `work`.
            pub(crate) fn run(&self, io: &mut Io<'_>, work: Range<usize>) {
                match self {
                    $( Plan::$variant(p) => <$module::$ty as Op>::run(p, io, work), )*
                }
            }
        }
    };
}

ops! {
    /// Convolution (dense or depthwise) with bias and fused activation.
    Conv2d = 1, "conv2d" => conv2d::Conv2d;
    /// Nearest-neighbour ×2 upsampling.
    Upsample2x = 2, "upsample2x" => upsample2x::Upsample2x;
    /// Weighted sum of 2–4 maps (BiFPN).
    WeightedSum = 3, "weighted_sum" => weighted_sum::WeightedSum;
    /// Element-wise sum of two buffers with fused activation.
    Add = 4, "add" => add::Add;
    /// Element-wise sum of a buffer and a constant tensor.
    AddTensor = 5, "add_tensor" => add_tensor::AddTensor;
    /// Multi-head scaled dot-product attention core (no projections).
    Attention = 6, "attention" => attention::Attention;
    /// Layer normalisation over channels, with optional residual input.
    LayerNorm = 7, "layer_norm" => layer_norm::LayerNorm;
    /// Concatenation of maps along the token axis.
    ConcatTokens = 8, "concat_tokens" => concat_tokens::ConcatTokens;
    /// Multiplies each token by a constant mask value.
    MaskTokens = 9, "mask_tokens" => mask_tokens::MaskTokens;
    /// Indices of the top-K tokens by their maximum over channels.
    TopKTokens = 10, "topk_tokens" => topk_tokens::TopKTokens;
    /// Gathers token columns by index.
    Gather = 11, "gather" => gather::Gather;
    /// Element-wise activation.
    Activation = 12, "activation" => activation::Activation;
    /// Softmax over groups of consecutive channels.
    SoftmaxGroups = 13, "softmax_groups" => softmax_groups::SoftmaxGroups;
    /// Deformable-attention sampling locations.
    DeformLocations = 14, "deform_locations" => deform_locations::DeformLocations;
    /// Multi-scale deformable attention sampling.
    DeformSample = 15, "deform_sample" => deform_sample::DeformSample;
    /// Iterative box refinement.
    RefineBoxes = 16, "refine_boxes" => refine_boxes::RefineBoxes;
    /// Top-K (query, class) pairs of the final scores.
    FinalTopK = 17, "final_topk" => final_topk::FinalTopK;
    /// int8 convolution with integer-only requantisation (and optional LUT).
    Conv2dI8 = 18, "conv2d_i8" => conv2d_i8::Conv2dI8;
    /// f32 → int8 (per-tensor scale and zero point).
    Quantize = 19, "quantize" => quantize::Quantize;
    /// int8 → f32.
    Dequantize = 20, "dequantize" => dequantize::Dequantize;
    /// Weighted sum of 2–4 int8 maps with integer requantisation.
    WeightedSumI8 = 21, "weighted_sum_i8" => weighted_sum_i8::WeightedSumI8;
}

/// The checks every op shares, then the op's own: the meaning of op `index`.
pub(crate) fn check_op(file: &ModelFile<'_>, index: u32) -> Result<(), Error> {
    let cx = Cx::new(file, index);
    let kind = cx.kind()?;
    check_common(kind, &cx)
        .and_then(|()| check_kind(kind, &cx))
        .map_err(|reason| Error::BadOp { index, reason })
}

/// Prepared bytes of checked op `index` (64-byte multiple).
pub(crate) fn prepared_bytes(file: &ModelFile<'_>, index: u32) -> Result<usize, Error> {
    let cx = Cx::new(file, index);
    let kind = cx.kind()?;
    prepared_bytes_kind(kind, &cx)
        .map(|n| n.next_multiple_of(64))
        .map_err(|reason| Error::BadOp { index, reason })
}

/// Prepares checked op `index`.
pub(crate) fn prepare(file: &ModelFile<'_>, index: u32, s: &mut Setup<'_>) -> Result<Plan, Error> {
    let cx = Cx::new(file, index);
    let kind = cx.kind()?;
    prepare_kind(kind, &cx, s).map_err(|reason| Error::BadOp { index, reason })
}

/// What every kind requires: a known stage, at least one input buffer (the
/// op checks may then read `inputs[0]`), the kind's number of outputs, and an
/// f32-typed scratch buffer.
fn check_common(kind: OpKind, cx: &Cx<'_, '_>) -> Result<(), &'static str> {
    Stage::from_u8(cx.op.stage).ok_or("unknown stage")?;
    if cx.n_in() == 0 {
        return Err("op reads no buffer");
    }
    let two_outputs = kind == OpKind::FinalTopK;
    if (cx.op.outputs[1] != NONE) != two_outputs {
        return Err("wrong number of outputs for this op kind");
    }
    if cx.op.scratch != NONE && cx.buf(cx.op.scratch).dtype != DType::F32 as u8 {
        return Err("buffer has the wrong dtype for this operand");
    }
    Ok(())
}

/// The load-time view of one op: its record and the file around it.
pub struct Cx<'f, 'b> {
    /// The file.
    pub file: &'f ModelFile<'b>,
    /// The op's record.
    pub op: OpDesc,
    /// The op's index.
    pub index: u32,
}

/// `Err(reason)` unless `ok`.
pub(crate) fn ensure(ok: bool, reason: &'static str) -> Result<(), &'static str> {
    if ok { Ok(()) } else { Err(reason) }
}

impl<'f, 'b> Cx<'f, 'b> {
    fn new(file: &'f ModelFile<'b>, index: u32) -> Self {
        Cx {
            file,
            op: file.op(index),
            index,
        }
    }

    fn kind(&self) -> Result<OpKind, Error> {
        OpKind::from_u16(self.op.kind).ok_or(Error::UnsupportedOp {
            index: self.index,
            kind: self.op.kind,
        })
    }

    /// Buffer `id` (validated by the reader).
    pub fn buf(&self, id: u32) -> BufferDesc {
        self.file.buffer(id)
    }

    /// Number of input buffers.
    pub fn n_in(&self) -> usize {
        self.op.input_ids().count()
    }

    /// Input `i` (`i < n_in()`, else the first).
    pub fn input(&self, i: usize) -> BufferDesc {
        match self.op.inputs.get(i) {
            Some(&id) if id != NONE => self.buf(id),
            _ => self.buf(self.op.inputs[0]),
        }
    }

    /// The (first) output.
    pub fn output(&self) -> BufferDesc {
        self.buf(self.op.outputs[0])
    }

    /// The second output, if any.
    pub fn output2(&self) -> Option<BufferDesc> {
        (self.op.outputs[1] != NONE).then(|| self.buf(self.op.outputs[1]))
    }

    /// Bytes of the scratch buffer (0 without one).
    pub fn scratch_bytes(&self) -> usize {
        match self.op.scratch {
            NONE => 0,
            id => self.buf(id).numel() as usize * 4,
        }
    }

    /// Requires a scratch buffer of at least `bytes`.
    pub fn need_scratch(&self, bytes: usize) -> Result<(), &'static str> {
        ensure(self.scratch_bytes() >= bytes, "scratch buffer too small")
    }

    /// Requires a number of inputs in `n`.
    pub fn inputs(&self, n: core::ops::RangeInclusive<usize>) -> Result<usize, &'static str> {
        let got = self.n_in();
        ensure(n.contains(&got), "wrong number of inputs for this op kind")?;
        Ok(got)
    }

    /// The usual operands: a number of inputs in `n`, all of dtype `input`,
    /// and an output of dtype `output`, which it returns.
    pub fn operands(
        &self,
        n: core::ops::RangeInclusive<usize>,
        input: DType,
        output: DType,
    ) -> Result<BufferDesc, &'static str> {
        self.inputs(n)?;
        self.inputs_dtype(input)?;
        let y = self.output();
        self.dtype(&y, output)?;
        Ok(y)
    }

    /// Elements of the output.
    pub fn out_len(&self) -> usize {
        self.output().numel() as usize
    }

    /// Requires buffer `b` to have dtype `dt`.
    pub fn dtype(&self, b: &BufferDesc, dt: DType) -> Result<(), &'static str> {
        ensure(
            b.dtype == dt as u8,
            "buffer has the wrong dtype for this operand",
        )
    }

    /// Requires every input to have dtype `dt`.
    pub fn inputs_dtype(&self, dt: DType) -> Result<(), &'static str> {
        for id in self.op.input_ids() {
            self.dtype(&self.buf(id), dt)?;
        }
        Ok(())
    }

    /// `(C, H, W)` of a buffer ([`chw`]).
    pub fn chw(&self, b: &BufferDesc) -> Result<(usize, usize, usize), &'static str> {
        chw(b).ok_or("buffer rank must be 1..=3")
    }

    /// Constant tensor `t`.
    pub fn tensor(&self, t: Tensor) -> TensorDesc {
        self.file.tensor(t.0)
    }

    /// Constant tensor `t`, which must have dtype `dt`.
    pub fn tensor_of(&self, t: Tensor, dt: DType) -> Result<TensorDesc, &'static str> {
        let d = self.tensor(t);
        ensure(d.dtype == dt as u8, "constant tensor has the wrong dtype")?;
        Ok(d)
    }

    /// Where tensor `t`'s bytes are in the file.
    pub fn tensor_span(&self, t: Tensor) -> Span {
        let d = self.tensor(t);
        Span {
            off: d.offset as usize,
            len: d.len as usize,
        }
    }
}

/// A byte range: of the model file (constant tensors), of the arena
/// (buffers), or of the session's prepared data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub off: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Span {
    /// The bytes of `s` in `bytes` (empty if out of range: a checked model
    /// never asks for that).
    pub fn of<'x>(&self, bytes: &'x [u8]) -> &'x [u8] {
        bytes.get(self.off..self.off + self.len).unwrap_or(&[])
    }
}

/// What an op is prepared with: the session's kernels and its own region of
/// the prepared data.
pub struct Setup<'p> {
    /// The session's kernels.
    pub k: Kernels,
    region: &'p mut [u8],
    base: usize,
    used: usize,
}

impl<'p> Setup<'p> {
    /// Kernels `k` and the region `region`, at offset `base` of the session's
    /// prepared data.
    pub(crate) fn new(k: Kernels, region: &'p mut [u8], base: usize) -> Self {
        Setup {
            k,
            region,
            base,
            used: 0,
        }
    }

    /// `n` f32s of the region (64-byte aligned), and where they are.
    /// Panics past [`Op::prepared_bytes`] (a programming error).
    pub fn f32s(&mut self, n: usize) -> (Span, &mut [f32]) {
        let (span, bytes) = self.bytes(n * 4);
        (span, crate::view::f32s_mut(bytes))
    }

    /// `n` u16s of the region (64-byte aligned), and where they are.
    /// Panics past [`Op::prepared_bytes`] (a programming error).
    pub fn u16s(&mut self, n: usize) -> (Span, &mut [u16]) {
        let (span, bytes) = self.bytes(n * 2);
        (span, crate::view::u16s_mut(bytes))
    }

    /// `len` bytes of the region, 64-byte aligned.
    fn bytes(&mut self, len: usize) -> (Span, &mut [u8]) {
        let start = self.used.next_multiple_of(64);
        self.used = start + len;
        (
            Span {
                off: self.base + start,
                len,
            },
            &mut self.region[start..start + len],
        )
    }
}

/// What an op reads and writes while it runs.
pub struct Io<'a> {
    /// The session's kernels.
    pub k: &'a Kernels,
    /// The input buffers' bytes (`n_in` of them).
    pub ins: [&'a [u8]; 4],
    /// Number of inputs.
    pub n_in: usize,
    /// The output buffer, or the part of it the units being run write.
    pub out: Out<'a>,
    /// The second output's bytes (empty when there is none).
    pub out2: &'a mut [u8],
    /// The scratch buffer's bytes (empty when there is none).
    pub scratch: &'a mut [u8],
    /// The model file (constant tensors).
    pub file: &'a [u8],
    /// The session's prepared data.
    pub prepared: &'a [u8],
}

/// What an op writes its (first) output through: the whole buffer, or, when
/// threads share the op, only the part its units write ([`Units::writes`]).
/// Ops index it in elements of the whole output; asking for anything outside
/// the part held panics.
pub struct Out<'a> {
    bytes: &'a mut [u8],
    /// Where `bytes` starts in the whole output (bytes).
    at: usize,
    /// Bytes of the whole output.
    total: usize,
    /// Columns of every plane instead of `bytes` ([`Units::planes`]).
    planes: Option<Planes<'a>>,
}

/// The columns of int8 or f32 output planes an [`Out`] holds.
pub(crate) enum Planes<'a> {
    /// Of an int8 output.
    I8(OutPlanes<'a, i8>),
    /// Of an f32 output.
    F32(OutPlanes<'a, f32>),
}

impl<'a> Out<'a> {
    /// Bytes `at..at + bytes.len()` of an output of `total` bytes.
    pub(crate) fn new(bytes: &'a mut [u8], at: usize, total: usize) -> Self {
        Out {
            bytes,
            at,
            total,
            planes: None,
        }
    }

    /// Some columns of every plane of an output of `total` bytes.
    pub(crate) fn columns(planes: Planes<'a>, total: usize) -> Self {
        Out {
            bytes: &mut [],
            at: 0,
            total,
            planes: Some(planes),
        }
    }

    /// The int8 output as planes of `n` elements: the columns held, or
    /// every column of the whole output.
    ///
    /// # Panics
    /// When only a contiguous part of the output is held, or the planes held
    /// are not of `n` elements.
    pub fn planes_i8(&mut self, n: usize) -> OutPlanes<'_, i8> {
        match self.planes {
            None => OutPlanes::new(crate::view::i8s_mut(self.all()), n),
            Some(Planes::I8(ref mut p)) => reborrow(p, n),
            Some(Planes::F32(_)) => panic!("an op asked for int8 planes of an f32 output"),
        }
    }

    /// [`Out::planes_i8`] of an f32 output.
    ///
    /// # Panics
    /// As [`Out::planes_i8`].
    pub fn planes_f32(&mut self, n: usize) -> OutPlanes<'_, f32> {
        match self.planes {
            None => OutPlanes::new(crate::view::f32s_mut(self.all()), n),
            Some(Planes::F32(ref mut p)) => reborrow(p, n),
            Some(Planes::I8(_)) => panic!("an op asked for f32 planes of an int8 output"),
        }
    }

    /// The whole output (what an op of one unit writes).
    ///
    /// # Panics
    /// When only part of the output is held.
    pub fn all(&mut self) -> &mut [u8] {
        assert!(
            self.at == 0 && self.bytes.len() == self.total,
            "an op asked for the whole output of a split op"
        );
        self.bytes
    }

    /// Bytes `r` of the whole output.
    ///
    /// # Panics
    /// When `r` is not inside the part held.
    pub fn bytes(&mut self, r: Range<usize>) -> &mut [u8] {
        if r.is_empty() {
            return &mut [];
        }
        let at = self.at;
        r.start
            .checked_sub(at)
            .and_then(|s| self.bytes.get_mut(s..r.end - at))
            .expect("an op wrote outside the output units it was given")
    }

    /// f32 elements `e` of the whole output.
    pub fn f32s(&mut self, e: Range<usize>) -> &mut [f32] {
        crate::view::f32s_mut(self.bytes(e.start * 4..e.end * 4))
    }

    /// i8 elements `e` of the whole output.
    pub fn i8s(&mut self, e: Range<usize>) -> &mut [i8] {
        crate::view::i8s_mut(self.bytes(e.start..e.end))
    }
}

/// All the columns of `p`, which must be planes of `n` elements.
fn reborrow<'p, T>(p: &'p mut OutPlanes<'_, T>, n: usize) -> OutPlanes<'p, T> {
    assert_eq!(p.n(), n, "an op asked for planes of another length");
    let cols = p.cols();
    p.narrow(cols)
}

/// The items (channels, elements, …) of work units `work` when each unit
/// holds `per_unit` of the `total` items (the last unit fewer).
pub(crate) fn items(work: &Range<usize>, per_unit: usize, total: usize) -> Range<usize> {
    (work.start * per_unit).min(total)..(work.end * per_unit).min(total)
}

/// Elements per work unit of the element-wise ops.
pub(crate) const CHUNK: usize = 4096;

/// A flat run of `len` elements split into `CHUNK`s (the work units of an
/// element-wise op).
#[derive(Clone, Copy, Debug)]
pub struct Chunks {
    /// Elements.
    pub len: usize,
}

impl Chunks {
    /// Work units.
    pub fn units(&self) -> usize {
        self.len.div_ceil(CHUNK)
    }

    /// The elements of units `work`.
    pub fn of(&self, work: &Range<usize>) -> Range<usize> {
        items(work, CHUNK, self.len)
    }
}

/// Channels per work unit of the ops that split a `[C, T]` output by
/// channel rows.
pub(crate) const ROW_BLOCK: usize = 8;

/// The channel rows of a `[C, T]` output split into blocks of
/// `ROW_BLOCK` (the work units of the token copies, masks and gathers,
/// which treat every channel alike and alone).
#[derive(Clone, Copy, Debug)]
pub struct Rows {
    /// Channels.
    pub c: usize,
    /// Elements per channel of the output.
    pub t: usize,
}

impl Rows {
    /// Work units.
    pub fn units(&self) -> usize {
        self.c.div_ceil(ROW_BLOCK)
    }

    /// The channels of units `work`.
    pub fn of(&self, work: &Range<usize>) -> Range<usize> {
        items(work, ROW_BLOCK, self.c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table in `ops.md` (the module docs) lists every kind, in order,
    /// by number and name, and names every parameter of each.
    #[test]
    fn ops_md_matches_the_code() {
        let doc = include_str!("ops.md");
        let rows: std::vec::Vec<&str> = doc
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| kind"))
            .collect();
        assert_eq!(rows.len(), OpKind::ALL.len(), "ops.md: one row per kind");
        for (row, &k) in rows.iter().zip(OpKind::ALL) {
            let head = std::format!("| {} | `{}` |", k as u16, k.name());
            assert!(
                row.starts_with(&head),
                "ops.md: row {row:?} should start with {head:?}"
            );
            for f in k.fields() {
                assert!(
                    row.contains(f),
                    "ops.md: the row of `{}` does not name `{f}`",
                    k.name()
                );
            }
        }
    }

    #[test]
    fn kinds_roundtrip() {
        for &k in OpKind::ALL {
            assert_eq!(OpKind::from_u16(k as u16), Some(k));
            assert!(OpKind::ALL.iter().filter(|o| o.name() == k.name()).count() == 1);
        }
        assert_eq!(OpKind::from_u16(0), None);
        assert_eq!(OpKind::from_u16(22), None);
    }
}
