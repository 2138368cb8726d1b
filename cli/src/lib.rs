//! Library side of the `edgedetr` command line: image decoding and
//! ultralytics-exact preprocessing, shared by the binary and the integration
//! tests.
#![deny(missing_docs)]

pub mod image_io;
