//! The quantizer's error type.

use std::fmt;

/// Why a checkpoint cannot be turned into a model file.
#[derive(Debug)]
#[non_exhaustive]
pub enum QuantizeError {
    /// Reading a file failed.
    Io(std::io::Error),
    /// The checkpoint container is malformed.
    Checkpoint(String),
    /// A tensor the architecture needs is absent.
    MissingTensor(String),
    /// A tensor has an unexpected shape.
    BadShape {
        /// Tensor name.
        name: String,
        /// What was expected.
        expected: String,
        /// Its shape.
        found: Vec<usize>,
    },
    /// The architecture or an option is not supported.
    Unsupported(String),
    /// Calibration cannot proceed (no or too few readable images).
    Calibration(String),
    /// An option's value is invalid (the message names the option).
    Option(String),
}

impl fmt::Display for QuantizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantizeError::Io(e) => write!(f, "{e}"),
            QuantizeError::Checkpoint(m) => write!(f, "bad checkpoint: {m}"),
            QuantizeError::MissingTensor(n) => write!(f, "checkpoint lacks tensor `{n}`"),
            QuantizeError::BadShape {
                name,
                expected,
                found,
            } => {
                write!(
                    f,
                    "tensor `{name}` has shape {found:?}, expected {expected}"
                )
            }
            QuantizeError::Unsupported(m) => write!(f, "unsupported: {m}"),
            QuantizeError::Calibration(m) => write!(f, "calibration: {m}"),
            QuantizeError::Option(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for QuantizeError {}

impl From<std::io::Error> for QuantizeError {
    fn from(e: std::io::Error) -> Self {
        QuantizeError::Io(e)
    }
}

/// Reads a whole file; an error names the file.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, QuantizeError> {
    std::fs::read(path).map_err(|e| {
        QuantizeError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", path.display()),
        ))
    })
}
