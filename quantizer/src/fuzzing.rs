//! What the `fuzz/` targets do with their input, in one place: the targets
//! call these, and `tests/fuzz_regressions.rs` replays the recorded crash
//! inputs through the same functions, so the two cannot drift apart.

use edgedetr::format::checksum::seal;
use edgedetr::std_io::AlignedBytes;

use crate::pt;

/// Bytes → the pickle VM; the same bytes as `archive/data.pkl` of a
/// torch-layout zip (with a few storage records) → `read_pt`; and the raw
/// bytes → `read_pt` (zip parser, legacy detection). Panics only on a bug.
pub fn pickle_vm(data: &[u8]) {
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
            if let Ok(t) = c.state_dict.get(k) {
                assert_eq!(t.numel(), t.data.len());
            }
        }
    }
    let _ = pt::read_pt(data);
}

/// Bytes → `edgedetr::Model::from_bytes` (copied into 64-byte aligned
/// storage), once as given and once with the XXH64 body checksum rewritten so
/// that mutations reach structural validation. An accepted model with an
/// arena of at most 1 MiB is also run once (validation promises that every
/// op is in bounds). Panics only on a bug.
pub fn model_file(data: &[u8]) {
    model_check(data);
    let mut b = data.to_vec();
    seal(&mut b);
    if b != data {
        model_check(&b);
    }
}

fn model_check(bytes: &[u8]) {
    let aligned = AlignedBytes::from_slice(bytes);
    let Ok(model) = edgedetr::Model::from_bytes(aligned.as_slice()) else {
        return;
    };
    let _ = (model.input_size(), model.num_classes(), model.arena_size());
    for i in 0..model.num_classes() {
        let _ = model.class_name(i);
    }
    if model.arena_size() <= 1 << 20 {
        let mut arena = vec![0u8; model.arena_size()];
        if let Ok(mut s) = edgedetr::Session::new(&model, &mut arena) {
            s.run();
        }
    }
}
