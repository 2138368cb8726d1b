//! Bytes → the pickle VM, a torch-layout zip around them, and `read_pt`:
//! `edgedetr_quantizer::fuzzing::pickle_vm` (which the crash-input replay
//! test runs too).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgedetr_quantizer::fuzzing::pickle_vm(data));
