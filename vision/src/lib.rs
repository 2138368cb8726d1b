//! edgedetr-vision: images in and out of the engine.
//!
//! - [`decode`] turns JPEG (a decoder bit-exact with libjpeg-turbo, as
//!   OpenCV uses it) and PNG (feature `std`) bytes into an RGB8 [`Image`],
//!   with typed errors ([`DecodeError`]); [`decode_scaled`] decodes a JPEG
//!   at 1/2, 1/4 or 1/8 of its size in the DCT domain, as libjpeg does
//!   (`cv2.IMREAD_REDUCED_COLOR_n`);
//! - [`preprocess`] and [`Preprocessor`] stretch it to the model's input
//!   exactly as ultralytics' `RTDETRPredictor` does, through the kernel
//!   table's image slots, allocation-free from the second frame on;
//! - [`draw`] draws detections with `embedded-graphics`, and [`encode`]
//!   writes JPEG snapshots.
//!
//! ```
//! # fn demo(bytes: &[u8], session: &mut edgedetr::Session<'_, '_>) -> Result<(), Box<dyn std::error::Error>> {
//! let img = edgedetr_vision::decode(bytes)?;
//! let mut pre = edgedetr_vision::Preprocessor::new();
//! pre.to_session(session, &img.rgb, img.width, img.height)?;
//! session.run();
//! # Ok(()) }
//! ```
//!
//! The crate is `no_std`: preprocessing, drawing and the errors need nothing;
//! the feature `alloc` adds the JPEG decoder, [`Image`], [`Preprocessor`] and
//! JPEG encoding; `std` (the default) adds PNG and files ([`mod@file`]).
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod draw;
#[cfg(feature = "alloc")]
pub mod encode;
pub mod error;
#[cfg(feature = "std")]
pub mod file;
#[cfg(feature = "std")]
pub mod fuzzing;
#[cfg(feature = "alloc")]
pub mod image;
#[cfg(feature = "alloc")]
pub mod input;
#[cfg(feature = "alloc")]
pub mod jpeg;
#[cfg(feature = "std")]
pub mod png;
pub mod preprocess;

pub use draw::{RgbCanvas, draw_detections};
pub use error::{DecodeError, Error, PreprocessError};
#[cfg(feature = "alloc")]
pub use image::{Image, Limits, decode, decode_with};
#[cfg(feature = "alloc")]
pub use input::{Preprocessor, preprocess_to_input};
#[cfg(feature = "alloc")]
pub use jpeg::{Scale, decode_scaled};
