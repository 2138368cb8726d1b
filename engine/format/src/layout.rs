//! The on-disk records: `#[repr(C)]` structs whose field offsets are the byte
//! offsets in the file (little-endian), checked at compile time.
//!
//! Records are decoded field by field from the borrowed bytes (no pointer casts),
//! so a record may sit at any address.

use core::mem::{offset_of, size_of};

/// Sentinel for "no buffer / no tensor" in id fields.
pub const NONE: u32 = u32::MAX;

/// Maximum tensor rank.
pub const MAX_RANK: usize = 4;

/// A reference to a UTF-8 string in the strings section.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StrRef {
    /// Byte offset inside the strings section.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

/// Element type of a tensor or buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DType {
    /// IEEE binary32.
    F32 = 1,
    /// IEEE binary16.
    F16 = 2,
    /// Signed 8-bit integer.
    I8 = 3,
    /// Unsigned 8-bit integer.
    U8 = 4,
    /// Signed 32-bit integer.
    I32 = 5,
}

impl DType {
    /// Decodes the stored byte.
    pub const fn from_u8(v: u8) -> Option<DType> {
        match v {
            1 => Some(DType::F32),
            2 => Some(DType::F16),
            3 => Some(DType::I8),
            4 => Some(DType::U8),
            5 => Some(DType::I32),
            _ => None,
        }
    }

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
            DType::I8 | DType::U8 => 1,
        }
    }

    /// Lower-case name (`f32`, `f16`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I32 => "i32",
        }
    }
}

/// Quantisation scheme of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum QuantKind {
    /// Not quantised.
    None = 0,
    /// One scale and zero point for the whole tensor.
    PerTensor = 1,
    /// One scale per slice along `quant_axis`, in the tensor `channel_params`; zero point 0.
    PerChannel = 2,
}

impl QuantKind {
    /// Decodes the stored byte.
    pub const fn from_u8(v: u8) -> Option<QuantKind> {
        match v {
            0 => Some(QuantKind::None),
            1 => Some(QuantKind::PerTensor),
            2 => Some(QuantKind::PerChannel),
            _ => None,
        }
    }
}

/// File header, at offset 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `b"EDGEDETR"`.
    pub magic: [u8; 8],
    /// [`crate::FORMAT_VERSION`].
    pub version: u32,
    /// Reserved flags, 0 in version 1.
    pub flags: u32,
    /// Length of the whole file in bytes.
    pub total_len: u64,
    /// XXH64 (seed 0) of bytes `[CHECKSUM_FROM, total_len)`: the rest of the
    /// header and every section. The fields before it are checked exactly.
    pub checksum: u64,
    /// Number of section-table entries that follow the header.
    pub section_count: u32,
    /// Size of this header (64).
    pub header_len: u32,
    /// Bytes of arena a session needs (peak of the memory plan plus over-read slack).
    pub arena_size: u64,
    /// Zero.
    pub reserved: [u8; 16],
}

/// One entry of the section table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SectionEntry {
    /// Which section ([`SectionKind`] number).
    pub kind: u32,
    /// Size of one record (0 for byte sections).
    pub record_size: u32,
    /// Absolute offset of the section, 64-byte aligned.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Number of records (equal to `len` for byte sections).
    pub count: u64,
}

/// Section numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionKind {
    /// One [`Meta`] record.
    Meta = 1,
    /// [`TensorDesc`] records (constants: weights, biases, tables).
    Tensors = 2,
    /// [`BufferDesc`] records (activations and scratch in the arena).
    Buffers = 3,
    /// [`OpDesc`] records, in execution order.
    Ops = 4,
    /// UTF-8 string bytes referenced by [`StrRef`]s.
    Strings = 5,
    /// Constant tensor data.
    Data = 6,
    /// One [`StrRef`] per class name.
    ClassNames = 7,
}

/// Model metadata.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Square input size S the graph was planned for.
    pub input_size: u32,
    /// Input channels (3).
    pub in_channels: u32,
    /// Number of classes.
    pub num_classes: u32,
    /// Preprocessing flags ([`PREPROCESS_RGB`], [`PREPROCESS_SCALE_255`], [`PREPROCESS_STRETCH`]).
    pub preprocess: u32,
    /// Decoder queries (0 when the graph has no decoder).
    pub num_queries: u32,
    /// Buffer id of the preprocessed image input.
    pub input_buffer: u32,
    /// Free text naming the source checkpoint and recipe.
    pub source: StrRef,
    /// Zero.
    pub reserved: [u32; 8],
}

/// Input channels are RGB (the image decoder's BGR is flipped).
pub const PREPROCESS_RGB: u32 = 1;
/// Pixels are scaled by 1/255.
pub const PREPROCESS_SCALE_255: u32 = 2;
/// Images are resized to S×S without keeping the aspect ratio (ultralytics `scale_fill`).
pub const PREPROCESS_STRETCH: u32 = 4;

/// A constant tensor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TensorDesc {
    /// Name (e.g. `model.9.m.0.weight`).
    pub name: StrRef,
    /// [`DType`] byte.
    pub dtype: u8,
    /// Number of used entries of `shape`.
    pub rank: u8,
    /// [`QuantKind`] byte.
    pub quant: u8,
    /// Axis of per-channel parameters.
    pub quant_axis: u8,
    /// Dimensions, unused ones 1.
    pub shape: [u32; 4],
    /// Per-tensor scale.
    pub scale: f32,
    /// Per-tensor zero point.
    pub zero_point: i32,
    /// Tensor id of per-channel f32 scales, or [`NONE`].
    pub channel_params: u32,
    /// Absolute file offset of the data, 64-byte aligned.
    pub offset: u64,
    /// Data length in bytes (elements × dtype size).
    pub len: u64,
    /// Zero.
    pub reserved: [u8; 8],
}

/// Buffer flag: the buffer stays live until the end of the graph (a named output
/// such as `backbone_out1` or `layer19_p3`), so callers can read it after a run.
pub const BUF_EXPORTED: u8 = 1;
/// Buffer flag: scratch space of one op; its contents mean nothing outside it.
pub const BUF_SCRATCH: u8 = 2;
/// Buffer flag: written by the caller before the run (the image input).
pub const BUF_INPUT: u8 = 4;
/// Buffer flag: a channel-major `[C, T]` token matrix whose external layout
/// (the goldens, `--dump`) is token-major `[1, T, C]`.
pub const BUF_TOKENS: u8 = 8;

/// An activation or scratch buffer at a planned arena offset.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferDesc {
    /// Name (golden names for exported buffers).
    pub name: StrRef,
    /// [`DType`] byte.
    pub dtype: u8,
    /// Number of used entries of `shape`.
    pub rank: u8,
    /// `BUF_*` flags.
    pub flags: u8,
    /// Zero point of an int8 buffer (i8 two's complement), else 0.
    pub zero_point: u8,
    /// Dimensions (CHW for feature maps), unused ones 1.
    pub shape: [u32; 4],
    /// Index of the op that writes the buffer (0 for caller-written inputs).
    pub first_op: u32,
    /// Arena offset in bytes, 64-byte aligned.
    pub offset: u64,
    /// Bytes reserved, a multiple of 64 and at least elements × dtype size.
    pub size: u64,
    /// Index of the last op that uses the buffer (the last op for exported buffers).
    pub last_op: u32,
    /// Scale of an int8 buffer (f32 bits; real = scale · (q − zero_point)), else 0.
    pub scale_bits: u32,
}

/// One op of the static graph.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpDesc {
    /// Op kind number (defined by the runtime's op table).
    pub kind: u16,
    /// Stage (0 backbone, 1 neck, 2 decoder, 3 postprocess).
    pub stage: u8,
    /// Fused activation byte.
    pub act: u8,
    /// Name (e.g. `L19.m.0`).
    pub name: StrRef,
    /// Input buffer ids, unused [`NONE`].
    pub inputs: [u32; 4],
    /// Output buffer ids, unused [`NONE`].
    pub outputs: [u32; 2],
    /// Scratch buffer id or [`NONE`].
    pub scratch: u32,
    /// Constant tensor ids, unused [`NONE`].
    pub tensors: [u32; 6],
    /// Op-specific parameters (floats stored as their bits).
    pub params: [u32; 8],
}

/// Size of [`Header`] in bytes.
pub const HEADER_LEN: usize = 64;
/// Size of [`SectionEntry`].
pub const SECTION_ENTRY_LEN: usize = 32;
/// Size of [`Meta`].
pub const META_LEN: usize = 64;
/// Size of [`TensorDesc`].
pub const TENSOR_DESC_LEN: usize = 64;
/// Size of [`BufferDesc`].
pub const BUFFER_DESC_LEN: usize = 56;
/// Size of [`OpDesc`].
pub const OP_DESC_LEN: usize = 96;
/// Size of [`StrRef`].
pub const STR_REF_LEN: usize = 8;

const _: () = {
    assert!(size_of::<Header>() == HEADER_LEN);
    assert!(offset_of!(Header, version) == 8);
    assert!(offset_of!(Header, total_len) == 16);
    assert!(offset_of!(Header, checksum) == 24);
    assert!(offset_of!(Header, section_count) == 32);
    assert!(offset_of!(Header, arena_size) == 40);
    assert!(size_of::<SectionEntry>() == SECTION_ENTRY_LEN);
    assert!(offset_of!(SectionEntry, offset) == 8);
    assert!(offset_of!(SectionEntry, count) == 24);
    assert!(size_of::<StrRef>() == STR_REF_LEN);
    assert!(size_of::<Meta>() == META_LEN);
    assert!(offset_of!(Meta, source) == 24);
    assert!(size_of::<TensorDesc>() == TENSOR_DESC_LEN);
    assert!(offset_of!(TensorDesc, shape) == 12);
    assert!(offset_of!(TensorDesc, scale) == 28);
    assert!(offset_of!(TensorDesc, channel_params) == 36);
    assert!(offset_of!(TensorDesc, offset) == 40);
    assert!(offset_of!(TensorDesc, len) == 48);
    assert!(size_of::<BufferDesc>() == BUFFER_DESC_LEN);
    assert!(offset_of!(BufferDesc, shape) == 12);
    assert!(offset_of!(BufferDesc, offset) == 32);
    assert!(offset_of!(BufferDesc, first_op) == 28);
    assert!(offset_of!(BufferDesc, size) == 40);
    assert!(offset_of!(BufferDesc, last_op) == 48);
    assert!(size_of::<OpDesc>() == OP_DESC_LEN);
    assert!(offset_of!(OpDesc, name) == 4);
    assert!(offset_of!(OpDesc, inputs) == 12);
    assert!(offset_of!(OpDesc, outputs) == 28);
    assert!(offset_of!(OpDesc, scratch) == 36);
    assert!(offset_of!(OpDesc, tensors) == 40);
    assert!(offset_of!(OpDesc, params) == 64);
};

/// Sequential little-endian field reader over one record.
pub(crate) struct Rd<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Rd<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Rd { b, i: 0 }
    }
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[self.i..self.i + N]);
        self.i += N;
        a
    }
    pub(crate) fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    pub(crate) fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.take())
    }
    pub(crate) fn f32(&mut self) -> f32 {
        f32::from_le_bytes(self.take())
    }
    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    pub(crate) fn u32s<const N: usize>(&mut self) -> [u32; N] {
        core::array::from_fn(|_| self.u32())
    }
    pub(crate) fn bytes<const N: usize>(&mut self) -> [u8; N] {
        self.take()
    }
    pub(crate) fn str_ref(&mut self) -> StrRef {
        StrRef {
            offset: self.u32(),
            len: self.u32(),
        }
    }
}

/// Sequential little-endian field writer into one record.
pub(crate) struct Wr<'a> {
    b: &'a mut [u8],
    i: usize,
}

#[allow(dead_code)] // the writer half is used by the `alloc` writer only
impl<'a> Wr<'a> {
    pub(crate) fn new(b: &'a mut [u8]) -> Self {
        Wr { b, i: 0 }
    }
    fn put(&mut self, v: &[u8]) {
        self.b[self.i..self.i + v.len()].copy_from_slice(v);
        self.i += v.len();
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.put(&v.to_le_bytes());
    }
    pub(crate) fn f32(&mut self, v: f32) {
        self.put(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
    pub(crate) fn u32s(&mut self, v: &[u32]) {
        for &x in v {
            self.u32(x);
        }
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.put(v);
    }
    pub(crate) fn str_ref(&mut self, s: StrRef) {
        self.u32(s.offset);
        self.u32(s.len);
    }
}

/// A fixed-size record stored in a section.
pub trait Record: Sized + Copy {
    /// Encoded size in bytes.
    const LEN: usize;
    /// Decodes from exactly `LEN` bytes.
    fn decode(b: &[u8]) -> Self;
    /// Encodes into exactly `LEN` bytes.
    fn encode(&self, b: &mut [u8]);
}

impl Record for Header {
    const LEN: usize = HEADER_LEN;
    fn decode(b: &[u8]) -> Self {
        let mut r = Rd::new(b);
        Header {
            magic: r.bytes(),
            version: r.u32(),
            flags: r.u32(),
            total_len: r.u64(),
            checksum: r.u64(),
            section_count: r.u32(),
            header_len: r.u32(),
            arena_size: r.u64(),
            reserved: r.bytes(),
        }
    }
    fn encode(&self, b: &mut [u8]) {
        let mut w = Wr::new(b);
        w.bytes(&self.magic);
        w.u32(self.version);
        w.u32(self.flags);
        w.u64(self.total_len);
        w.u64(self.checksum);
        w.u32(self.section_count);
        w.u32(self.header_len);
        w.u64(self.arena_size);
        w.bytes(&self.reserved);
    }
}

impl Record for SectionEntry {
    const LEN: usize = SECTION_ENTRY_LEN;
    fn decode(b: &[u8]) -> Self {
        let mut r = Rd::new(b);
        SectionEntry {
            kind: r.u32(),
            record_size: r.u32(),
            offset: r.u64(),
            len: r.u64(),
            count: r.u64(),
        }
    }
    fn encode(&self, b: &mut [u8]) {
        let mut w = Wr::new(b);
        w.u32(self.kind);
        w.u32(self.record_size);
        w.u64(self.offset);
        w.u64(self.len);
        w.u64(self.count);
    }
}

impl Record for StrRef {
    const LEN: usize = STR_REF_LEN;
    fn decode(b: &[u8]) -> Self {
        Rd::new(b).str_ref()
    }
    fn encode(&self, b: &mut [u8]) {
        Wr::new(b).str_ref(*self);
    }
}

impl Record for Meta {
    const LEN: usize = META_LEN;
    fn decode(b: &[u8]) -> Self {
        let mut r = Rd::new(b);
        Meta {
            input_size: r.u32(),
            in_channels: r.u32(),
            num_classes: r.u32(),
            preprocess: r.u32(),
            num_queries: r.u32(),
            input_buffer: r.u32(),
            source: r.str_ref(),
            reserved: r.u32s(),
        }
    }
    fn encode(&self, b: &mut [u8]) {
        let mut w = Wr::new(b);
        w.u32(self.input_size);
        w.u32(self.in_channels);
        w.u32(self.num_classes);
        w.u32(self.preprocess);
        w.u32(self.num_queries);
        w.u32(self.input_buffer);
        w.str_ref(self.source);
        w.u32s(&self.reserved);
    }
}

impl Record for TensorDesc {
    const LEN: usize = TENSOR_DESC_LEN;
    fn decode(b: &[u8]) -> Self {
        let mut r = Rd::new(b);
        TensorDesc {
            name: r.str_ref(),
            dtype: r.u8(),
            rank: r.u8(),
            quant: r.u8(),
            quant_axis: r.u8(),
            shape: r.u32s(),
            scale: r.f32(),
            zero_point: r.i32(),
            channel_params: r.u32(),
            offset: r.u64(),
            len: r.u64(),
            reserved: r.bytes(),
        }
    }
    fn encode(&self, b: &mut [u8]) {
        let mut w = Wr::new(b);
        w.str_ref(self.name);
        w.u8(self.dtype);
        w.u8(self.rank);
        w.u8(self.quant);
        w.u8(self.quant_axis);
        w.u32s(&self.shape);
        w.f32(self.scale);
        w.i32(self.zero_point);
        w.u32(self.channel_params);
        w.u64(self.offset);
        w.u64(self.len);
        w.bytes(&self.reserved);
    }
}

impl Record for BufferDesc {
    const LEN: usize = BUFFER_DESC_LEN;
    fn decode(b: &[u8]) -> Self {
        let mut r = Rd::new(b);
        BufferDesc {
            name: r.str_ref(),
            dtype: r.u8(),
            rank: r.u8(),
            flags: r.u8(),
            zero_point: r.u8(),
            shape: r.u32s(),
            first_op: r.u32(),
            offset: r.u64(),
            size: r.u64(),
            last_op: r.u32(),
            scale_bits: r.u32(),
        }
    }
    fn encode(&self, b: &mut [u8]) {
        let mut w = Wr::new(b);
        w.str_ref(self.name);
        w.u8(self.dtype);
        w.u8(self.rank);
        w.u8(self.flags);
        w.u8(self.zero_point);
        w.u32s(&self.shape);
        w.u32(self.first_op);
        w.u64(self.offset);
        w.u64(self.size);
        w.u32(self.last_op);
        w.u32(self.scale_bits);
    }
}

impl Record for OpDesc {
    const LEN: usize = OP_DESC_LEN;
    fn decode(b: &[u8]) -> Self {
        let mut r = Rd::new(b);
        OpDesc {
            kind: r.u16(),
            stage: r.u8(),
            act: r.u8(),
            name: r.str_ref(),
            inputs: r.u32s(),
            outputs: r.u32s(),
            scratch: r.u32(),
            tensors: r.u32s(),
            params: r.u32s(),
        }
    }
    fn encode(&self, b: &mut [u8]) {
        let mut w = Wr::new(b);
        w.u16(self.kind);
        w.u8(self.stage);
        w.u8(self.act);
        w.str_ref(self.name);
        w.u32s(&self.inputs);
        w.u32s(&self.outputs);
        w.u32(self.scratch);
        w.u32s(&self.tensors);
        w.u32s(&self.params);
    }
}

impl TensorDesc {
    /// Number of elements (product of the used dimensions).
    pub fn numel(&self) -> u64 {
        self.shape[..(self.rank as usize).min(MAX_RANK)]
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
            .unwrap_or(u64::MAX)
    }
}

impl BufferDesc {
    /// `(scale, zero_point)` of an int8 buffer.
    pub fn quant(&self) -> Option<(f32, i32)> {
        (self.dtype == DType::I8 as u8).then(|| {
            (
                f32::from_bits(self.scale_bits),
                self.zero_point as i8 as i32,
            )
        })
    }

    /// Number of elements (product of the used dimensions).
    pub fn numel(&self) -> u64 {
        self.shape[..(self.rank as usize).min(MAX_RANK)]
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
            .unwrap_or(u64::MAX)
    }
}

impl OpDesc {
    /// Used input ids (up to the first [`NONE`]).
    pub fn input_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.inputs.iter().copied().take_while(|&i| i != NONE)
    }
    /// Used output ids (up to the first [`NONE`]).
    pub fn output_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.outputs.iter().copied().take_while(|&i| i != NONE)
    }
    /// Every buffer the op touches: inputs, outputs and scratch.
    pub fn buffer_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.input_ids()
            .chain(self.output_ids())
            .chain(core::iter::once(self.scratch).filter(|&s| s != NONE))
    }
}
