//! The errors of decoding and preprocessing: small `Copy` enums with a
//! message each, usable without an allocator.

use core::fmt;

/// Why image bytes could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Neither a JPEG nor a PNG signature.
    NotAnImage,
    /// The data ends early (the message says where).
    Truncated(&'static str),
    /// The data is not a valid file of its format.
    Corrupt(&'static str),
    /// A valid file of a variant this decoder does not handle.
    Unsupported(&'static str),
    /// A JPEG with samples of this many bits (only 8 is supported).
    JpegPrecision(u8),
    /// A JPEG with this many components (1 or 3 are supported).
    JpegComponents(u8),
    /// A JPEG coding process `SOFn` other than baseline, extended and
    /// progressive Huffman (lossless, hierarchical or arithmetic-coded).
    JpegProcess(u8),
    /// The image declares more pixels than the decoder's limit.
    TooLarge {
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// The limit, in pixels.
        limit: u64,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::NotAnImage => f.write_str("not a JPEG or PNG image"),
            DecodeError::Truncated(m) | DecodeError::Corrupt(m) | DecodeError::Unsupported(m) => {
                f.write_str(m)
            }
            DecodeError::JpegPrecision(p) => {
                write!(f, "unsupported JPEG: {p}-bit samples (only 8-bit)")
            }
            DecodeError::JpegComponents(n) => write!(
                f,
                "unsupported JPEG: {n} components (only grayscale and 3-component colour; CMYK is not supported)"
            ),
            DecodeError::JpegProcess(n) => write!(
                f,
                "unsupported JPEG process (SOF{n}: lossless, hierarchical or arithmetic-coded)"
            ),
            DecodeError::TooLarge {
                width,
                height,
                limit,
            } => write!(
                f,
                "image too large: {width}x{height} pixels (the limit is {limit} pixels)"
            ),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Why a preprocessing step refused its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreprocessError {
    /// A width or height is zero.
    ZeroSize,
    /// A size is so large that a buffer length or a coordinate overflows.
    TooLarge,
    /// The source slice does not hold `w * h * 3` bytes.
    SrcLen {
        /// Elements the sizes call for.
        expected: usize,
        /// Elements given.
        given: usize,
    },
    /// The destination slice does not hold the elements the sizes call for.
    DstLen {
        /// Elements the sizes call for.
        expected: usize,
        /// Elements given.
        given: usize,
    },
    /// The scratch slice is shorter than the resize needs.
    ScratchTooSmall {
        /// `i32`s needed.
        needed: usize,
        /// `i32`s given.
        given: usize,
    },
}

impl fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PreprocessError::ZeroSize => f.write_str("image width and height must be non-zero"),
            PreprocessError::TooLarge => f.write_str("image size overflows the buffer arithmetic"),
            PreprocessError::SrcLen { expected, given } => {
                write!(
                    f,
                    "source holds {given} elements, the sizes need {expected}"
                )
            }
            PreprocessError::DstLen { expected, given } => {
                write!(
                    f,
                    "destination holds {given} elements, the sizes need {expected}"
                )
            }
            PreprocessError::ScratchTooSmall { needed, given } => {
                write!(f, "resize scratch holds {given} i32s, needs {needed}")
            }
        }
    }
}

impl core::error::Error for PreprocessError {}

/// Anything that can go wrong between an image file and a session's input.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[cfg(feature = "std")]
    Read(std::io::Error),
    /// Its bytes are not a supported image.
    Decode(DecodeError),
    /// The image's sizes or buffers.
    Preprocess(PreprocessError),
    /// The session refused the input.
    Session(edgedetr::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "std")]
            Error::Read(e) => write!(f, "cannot read image: {e}"),
            Error::Decode(e) => e.fmt(f),
            Error::Preprocess(e) => write!(f, "preprocessing: {e}"),
            Error::Session(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for Error {}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
    }
}

impl From<PreprocessError> for Error {
    fn from(e: PreprocessError) -> Self {
        Error::Preprocess(e)
    }
}

impl From<edgedetr::Error> for Error {
    fn from(e: edgedetr::Error) -> Self {
        Error::Session(e)
    }
}
