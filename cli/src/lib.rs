//! Library side of the `edgedetr` command line: image decoding and
//! ultralytics-exact preprocessing, and calibration image folders, shared by
//! the binary and the integration tests.
#![deny(missing_docs)]

pub mod calib_images;
pub mod golden_layout;
pub mod image_io;
