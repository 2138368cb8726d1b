//! [`Model`]: a validated model file ready for sessions.

use edgedetr_format::{BUF_EXPORTED, BufferDesc, ModelFile};

use crate::error::Error;
use crate::graph::{Stage, check_op};

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
}

impl<'b> Model<'b> {
    /// Validates `bytes` (64-byte aligned: see [`crate::Aligned64`] and
    /// `AlignedBytes`): checksum, structure, memory plan and the meaning of every op.
    pub fn from_bytes(bytes: &'b [u8]) -> Result<Self, Error> {
        let file = ModelFile::parse(bytes)?;
        if bytes.as_ptr().align_offset(64) != 0 {
            return Err(Error::MisalignedModel);
        }
        for i in 0..file.op_count() as u32 {
            check_op(&file, i)?;
        }
        Ok(Model { file })
    }

    /// The underlying file view.
    pub fn file(&self) -> &ModelFile<'b> {
        &self.file
    }

    /// Bytes of arena a [`crate::Session`] needs (the plan's peak plus alignment slack).
    pub fn arena_size(&self) -> usize {
        self.file.arena_size() + 64
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
