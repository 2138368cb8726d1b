//! [`Model`]: a validated model file ready for sessions.

use edgedetr_format::{BUF_EXPORTED, BufferDesc, DType, FormatError, ModelFile};

use crate::error::Error;
use crate::graph::Stage;
use crate::ops;
use crate::session::PreparedOp;

/// Scale of a [`InputDType::U8`] input buffer: `1/255`, the preprocessing's
/// division folded into the int8 quantisation of the image.
pub const U8_INPUT_SCALE: f32 = 1.0 / 255.0;

/// Zero point of a [`InputDType::U8`] input buffer: pixel `p` is stored as the
/// int8 `p − 128`, the byte `p ^ 0x80`.
pub const U8_INPUT_ZERO_POINT: i8 = -128;

/// How a model takes its image `[3, S, S]` (CHW, RGB): see
/// [`Model::input_dtype`].
///
/// [`crate::Session::set_input_u8`] and [`crate::Session::set_input_f32`]
/// accept either kind of model, so callers need not care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputDType {
    /// An f32 buffer holding `pixel / 255` (fp32 and fp16 models, and int8
    /// models whose stem convolution is kept in float).
    F32,
    /// The u8 pixels themselves, read directly by an int8 stem convolution:
    /// an int8 buffer with scale [`U8_INPUT_SCALE`] and zero point
    /// [`U8_INPUT_ZERO_POINT`], so pixel `p` is stored as the byte `p ^ 0x80`
    /// and means the value `p / 255` (int8 models).
    U8,
}

/// A loaded model: the validated, zero-copy view of a model file.
///
/// ```no_run
/// # fn demo(bytes: &[u8]) -> Result<(), edgedetr::Error> {
/// let model = edgedetr::Model::from_bytes(bytes)?;
/// let mut arena = vec![0u8; model.arena_size()];
/// let mut session = edgedetr::Session::new(&model, &mut arena)?;
/// session.run();
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Model<'b> {
    file: ModelFile<'b>,
    input: InputDType,
    /// Bytes of prepared data (expanded weights) a session keeps.
    prepared: usize,
}

impl<'b> Model<'b> {
    /// Validates `bytes` (64-byte aligned: see [`crate::Aligned64`] and
    /// `AlignedBytes`): checksum, structure, memory plan and the meaning of every op.
    pub fn from_bytes(bytes: &'b [u8]) -> Result<Self, Error> {
        let file = ModelFile::parse(bytes)?;
        if bytes.as_ptr().align_offset(64) != 0 {
            return Err(Error::MisalignedModel);
        }
        let mut prepared = 0usize;
        for i in 0..file.op_count() as u32 {
            ops::check_op(&file, i)?;
            prepared = prepared
                .checked_add(ops::prepared_bytes(&file, i)?)
                .ok_or(Error::ArenaOverflow)?;
        }
        let input = input_dtype_of(&file)?;
        let m = Model {
            file,
            input,
            prepared,
        };
        m.layout().total().ok_or(Error::ArenaOverflow)?;
        Ok(m)
    }

    /// Where a session puts its parts in the arena.
    pub(crate) fn layout(&self) -> Layout {
        Layout {
            activations: self.file.arena_size(),
            prepared: self.prepared,
            ops: self
                .op_count()
                .saturating_mul(core::mem::size_of::<PreparedOp>()),
        }
    }

    /// Bytes of the arena that hold prepared data: weights stored as f16 or
    /// int8 in float layers, expanded to f32 once by [`crate::Session::new`]
    /// (an upper bound over every kernel path).
    pub fn prepared_bytes(&self) -> usize {
        self.prepared
    }

    /// How the model takes its image: f32 `pixel / 255`, or the u8 pixels
    /// (int8 models). [`crate::Session::set_input_u8`] and
    /// [`crate::Session::set_input_f32`] write either.
    pub fn input_dtype(&self) -> InputDType {
        self.input
    }

    /// Id of the image input buffer `[3, S, S]`.
    pub fn input_buffer(&self) -> u32 {
        self.file.meta().input_buffer
    }

    /// The underlying file view.
    pub fn file(&self) -> &ModelFile<'b> {
        &self.file
    }

    /// Bytes of arena a [`crate::Session`] needs: the activations' planned
    /// peak, the prepared data ([`Model::prepared_bytes`]), the table of
    /// prepared ops, and 64 bytes of alignment slack.
    pub fn arena_size(&self) -> usize {
        // Checked by `from_bytes`.
        self.layout().total().unwrap_or(usize::MAX)
    }

    /// Square input size S.
    pub fn input_size(&self) -> usize {
        self.file.meta().input_size as usize
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.file.class_count()
    }

    /// Name of class `i`.
    pub fn class_name(&self, i: usize) -> Option<&'b str> {
        (i < self.num_classes()).then(|| self.file.class_name(i))
    }

    /// Number of ops.
    pub fn op_count(&self) -> usize {
        self.file.op_count()
    }

    /// Stage of op `i`.
    pub fn op_stage(&self, i: usize) -> Option<Stage> {
        if i >= self.op_count() {
            return None;
        }
        Stage::from_u8(self.file.op(i as u32).stage)
    }

    /// The id of the buffer named `name` (e.g. `layer19_p3`).
    pub fn buffer_id(&self, name: &str) -> Option<u32> {
        self.file.find_buffer(name)
    }

    /// The index of the op that writes buffer `id` (`None` for caller-written inputs).
    pub fn producer(&self, id: u32) -> Option<usize> {
        if id as usize >= self.file.buffer_count() {
            return None;
        }
        let b = self.file.buffer(id);
        let op = self.file.op(b.first_op);
        op.output_ids()
            .any(|o| o == id)
            .then_some(b.first_op as usize)
    }

    /// Descriptor of buffer `id` (name, dtype, shape, arena placement).
    pub fn buffer(&self, id: u32) -> Option<BufferDesc> {
        ((id as usize) < self.file.buffer_count()).then(|| self.file.buffer(id))
    }

    /// Name of buffer `id`.
    pub fn buffer_name(&self, id: u32) -> Option<&'b str> {
        self.buffer(id).map(|b| self.file.str(b.name))
    }

    /// Ids of the exported buffers (named intermediates kept to the end of a run).
    pub fn exported_buffers(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.file.buffer_count() as u32)
            .filter(|&i| self.file.buffer(i).flags & BUF_EXPORTED != 0)
    }
}

/// The input buffer's kind: `[3, S, S]` elements, f32, or int8 holding u8
/// pixels (scale 1/255, zero point −128).
fn input_dtype_of(file: &ModelFile<'_>) -> Result<InputDType, Error> {
    // The reader checked that the id is in range.
    let b = file.buffer(file.meta().input_buffer);
    let s = u64::from(file.meta().input_size);
    if b.numel() != 3 * s * s {
        return Err(FormatError::BadMeta("the input buffer must hold [3, S, S] values").into());
    }
    match DType::from_u8(b.dtype) {
        Some(DType::F32) => Ok(InputDType::F32),
        Some(DType::I8) if b.quant() == Some((U8_INPUT_SCALE, i32::from(U8_INPUT_ZERO_POINT))) => {
            Ok(InputDType::U8)
        }
        _ => Err(FormatError::BadMeta(
            "the input buffer must be f32, or int8 with scale 1/255 and zero point -128",
        )
        .into()),
    }
}

/// The parts of a session's arena, in order, each starting on a 64-byte line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// The activations and scratch buffers (the file's memory plan).
    pub activations: usize,
    /// The prepared data.
    pub prepared: usize,
    /// The table of prepared ops.
    pub ops: usize,
}

impl Layout {
    /// Offset of the prepared data.
    pub fn prepared_at(&self) -> Option<usize> {
        self.activations.checked_next_multiple_of(64)
    }

    /// Offset of the op table.
    pub fn ops_at(&self) -> Option<usize> {
        self.prepared_at()?
            .checked_add(self.prepared)?
            .checked_next_multiple_of(64)
    }

    /// Bytes used from the aligned start.
    pub fn used(&self) -> Option<usize> {
        self.ops_at()?.checked_add(self.ops)
    }

    /// Bytes of arena to ask for: what is used, plus 64 bytes for aligning
    /// the caller's buffer.
    pub fn total(&self) -> Option<usize> {
        self.used()?.checked_add(64)
    }
}
