//! The runtime's error type.

use core::fmt;

pub use edgedetr_format::FormatError;

/// Why a model cannot be loaded or a session cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a valid model file.
    Format(FormatError),
    /// The model bytes do not start on a 64-byte boundary; load them with
    /// [`crate::Aligned64`] or `AlignedBytes`.
    MisalignedModel,
    /// The arena is smaller than [`crate::Model::arena_size`].
    ArenaTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// An op kind this runtime does not know (a newer model file?).
    UnsupportedOp {
        /// Op index.
        index: u32,
        /// Op kind number.
        kind: u16,
    },
    /// An op's shapes, dtypes or parameters are inconsistent.
    BadOp {
        /// Op index.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// No buffer has that name.
    UnknownBuffer,
    /// Data given for a buffer has the wrong number of elements.
    ShapeMismatch {
        /// Elements the buffer holds.
        expected: usize,
        /// Elements given.
        given: usize,
    },
    /// The buffer's element type is not the one asked for.
    WrongDType,
    /// An op range outside the graph.
    BadRange,
    /// The session's arena would be larger than this machine's address space.
    ArenaOverflow,
    /// The memory for the session's arena could not be allocated
    /// ([`crate::std_io::alloc_arena`]).
    OutOfMemory {
        /// Bytes asked for.
        bytes: usize,
    },
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::Format(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Format(e) => e.fmt(f),
            Error::MisalignedModel => f.write_str("model bytes must start on a 64-byte boundary"),
            Error::ArenaTooSmall { needed, given } => {
                write!(
                    f,
                    "arena too small: the model needs {needed} bytes, got {given}"
                )
            }
            Error::UnsupportedOp { index, kind } => {
                write!(
                    f,
                    "op #{index} has kind {kind}, which this runtime does not support"
                )
            }
            Error::BadOp { index, reason } => write!(f, "bad op #{index}: {reason}"),
            Error::UnknownBuffer => f.write_str("no buffer with that name"),
            Error::ShapeMismatch { expected, given } => {
                write!(f, "wrong element count: expected {expected}, got {given}")
            }
            Error::WrongDType => f.write_str("buffer has another element type"),
            Error::BadRange => f.write_str("op range outside the graph"),
            Error::ArenaOverflow => {
                f.write_str("the model needs more arena than this machine can address")
            }
            Error::OutOfMemory { bytes } => write!(
                f,
                "cannot allocate the model's {} MiB arena: out of memory (a smaller --imgsz needs less)",
                bytes.div_ceil(1 << 20)
            ),
        }
    }
}

impl core::error::Error for Error {}
