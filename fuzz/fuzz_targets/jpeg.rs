//! Bytes → the JPEG decoder (4 MP limit), and a decoded image through the
//! preprocessing: `edgedetr_vision::fuzzing::jpeg` (which the crash-input
//! replay test runs too).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgedetr_vision::fuzzing::jpeg(data));
