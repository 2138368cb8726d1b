//! The error type of the model-file reader.

use core::fmt;

/// Why a byte slice is not a valid model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// Shorter than the header, or than the length the header declares.
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        found: u64,
    },
    /// The file does not start with `EDGEDETR`.
    BadMagic,
    /// A format version this reader does not understand.
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
    },
    /// The file is longer than its header declares.
    TrailingBytes {
        /// Declared length.
        declared: u64,
        /// Actual length.
        found: u64,
    },
    /// The checksum of the body does not match the header: the file is corrupt.
    ChecksumMismatch {
        /// Checksum stored in the header.
        stored: u64,
        /// Checksum of the bytes present.
        computed: u64,
    },
    /// The header's size field disagrees with the file, but the rest of the
    /// file matches its checksum: the header itself is corrupt (the fields
    /// before the checksum are not covered by it).
    CorruptHeader {
        /// Length the header declares.
        declared: u64,
        /// Actual length.
        found: u64,
    },
    /// The bytes do not start on a 64-byte boundary (load them with an aligned buffer).
    Misaligned,
    /// A header field is inconsistent.
    BadHeader(&'static str),
    /// A section table entry is out of range, duplicated or has a wrong record size.
    BadSection {
        /// Section kind number.
        kind: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// A required section is absent.
    MissingSection {
        /// Section kind number.
        kind: u32,
    },
    /// A string reference is out of range or not UTF-8.
    BadString,
    /// The metadata record is inconsistent.
    BadMeta(&'static str),
    /// A tensor descriptor is inconsistent.
    BadTensor {
        /// Tensor index.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// An activation-buffer descriptor is inconsistent.
    BadBuffer {
        /// Buffer index.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// An op descriptor is inconsistent.
    BadOp {
        /// Op index.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two buffers that are live at the same time overlap in the arena.
    PlanOverlap {
        /// First buffer.
        a: u32,
        /// Second buffer.
        b: u32,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FormatError::Truncated { needed, found } => write!(
                f,
                "model file is truncated: needs {needed} bytes, has {found}"
            ),
            FormatError::BadMagic => f.write_str("not an edgedetr model file (bad magic)"),
            // Versions are small numbers; anything else is a damaged header.
            FormatError::UnsupportedVersion { found } if found > 255 => write!(
                f,
                "corrupt model header: version field {found:#x} (this build reads version {})",
                crate::FORMAT_VERSION
            ),
            FormatError::UnsupportedVersion { found } => write!(
                f,
                "unsupported model file version {found} (this build reads version {})",
                crate::FORMAT_VERSION
            ),
            FormatError::CorruptHeader { declared, found } => write!(
                f,
                "corrupt model header: it declares {declared} bytes, the file has {found} \
                 (whose contents match their checksum)"
            ),
            FormatError::TrailingBytes { declared, found } => write!(
                f,
                "model file has {found} bytes but its header declares {declared}"
            ),
            FormatError::ChecksumMismatch { stored, computed } => write!(
                f,
                "model file is corrupt: checksum {computed:016x} does not match {stored:016x}"
            ),
            FormatError::Misaligned => f.write_str("model bytes must start on a 64-byte boundary"),
            FormatError::BadHeader(r) => write!(f, "bad model header: {r}"),
            FormatError::BadSection { kind, reason } => write!(f, "bad section {kind}: {reason}"),
            FormatError::MissingSection { kind } => write!(f, "missing section {kind}"),
            FormatError::BadString => f.write_str("bad string reference in model file"),
            FormatError::BadMeta(r) => write!(f, "bad model metadata: {r}"),
            FormatError::BadTensor { index, reason } => write!(f, "bad tensor #{index}: {reason}"),
            FormatError::BadBuffer { index, reason } => write!(f, "bad buffer #{index}: {reason}"),
            FormatError::BadOp { index, reason } => write!(f, "bad op #{index}: {reason}"),
            FormatError::PlanOverlap { a, b } => write!(
                f,
                "memory plan overlap: buffers #{a} and #{b} are live together and share bytes"
            ),
        }
    }
}

impl core::error::Error for FormatError {}
