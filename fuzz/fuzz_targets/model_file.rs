//! Bytes → `Model::from_bytes`, as given and with the checksum resealed, and
//! a run of small accepted models: `edgedetr_quantizer::fuzzing::model_file`
//! (which the crash-input replay test runs too).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgedetr_quantizer::fuzzing::model_file(data));
