//! Bytes → `edgedetr::Model::from_bytes` (copied into 64-byte aligned
//! storage), once as given and once with the XXH64 body checksum rewritten so
//! that mutations reach structural validation. An accepted model with a small
//! arena is also run once (validation promises that every op is in bounds).
#![no_main]

use edgedetr::Model;
use edgedetr::format::checksum::seal;
use edgedetr::std_io::AlignedBytes;
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    let aligned = AlignedBytes::from_slice(bytes);
    let Ok(model) = Model::from_bytes(aligned.as_slice()) else {
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

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut b = data.to_vec();
    seal(&mut b);
    if b != data {
        check(&b);
    }
});
