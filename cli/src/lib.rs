//! Library side of the `edgedetr` command line: calibration image folders and
//! the goldens' tensor layout, shared by the binary and the integration tests.
//! (Images are `edgedetr_vision`.)
#![deny(missing_docs)]

pub mod calib_images;
pub mod golden_layout;
