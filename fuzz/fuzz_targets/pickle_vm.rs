//! Bytes → the pickle VM; the same bytes as `archive/data.pkl` of a
//! torch-layout zip (with a few storage records) → `read_pt`; and the raw
//! bytes → `read_pt` (zip parser, legacy detection).
#![no_main]

use edgedetr_quantizer::pt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = pt::unpickle(data) {
        // Debug output is budgeted; Drop of the frozen tree is depth-limited.
        let _ = format!("{v:?}");
    }
    // Storage records `0`..`3` of 0, 4, 64 and 4096 bytes, so storage
    // references in the pickle can resolve (or be too short).
    let s1 = [0x3cu8; 4];
    let s2 = [0x00u8; 64];
    let s3 = [0x41u8; 4096];
    let zip = pt::zip::write_stored(&[
        ("archive/data.pkl", data),
        ("archive/data/0", &[]),
        ("archive/data/1", &s1),
        ("archive/data/2", &s2),
        ("archive/data/3", &s3),
        ("archive/byteorder", b"little"),
    ]);
    if let Ok(c) = pt::read_pt(&zip) {
        let _ = format!("{c:?}");
        for k in c.state_dict.keys() {
            let t = c.state_dict.get(k).unwrap();
            assert_eq!(t.numel(), t.data.len());
        }
    }
    let _ = pt::read_pt(data);
});
