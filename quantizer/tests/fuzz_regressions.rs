//! Replays the crash inputs of the `fuzz/` targets (`tests/data/fuzz/`, see its
//! README): none may panic, except those listed in [`KNOWN_OPEN`] while their
//! fix is pending (reported, not failed).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use edgedetr::format::checksum::seal;
use edgedetr::std_io::AlignedBytes;
use edgedetr_quantizer::pt;

/// `(target/file, reason)` of crashes whose fix is not in yet (none: the
/// `numel` overflows found by `model_file` are fixed).
const KNOWN_OPEN: &[(&str, &str)] = &[];

/// What `fuzz/fuzz_targets/pickle_vm.rs` does with its input.
fn pickle_vm(data: &[u8]) {
    if let Ok(v) = pt::unpickle(data) {
        let _ = format!("{v:?}");
    }
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
    }
    let _ = pt::read_pt(data);
}

fn model_check(bytes: &[u8]) {
    let aligned = AlignedBytes::from_slice(bytes);
    let Ok(model) = edgedetr::Model::from_bytes(aligned.as_slice()) else {
        return;
    };
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

/// What `fuzz/fuzz_targets/model_file.rs` does with its input.
fn model_file(data: &[u8]) {
    model_check(data);
    let mut b = data.to_vec();
    seal(&mut b);
    if b != data {
        model_check(&b);
    }
}

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return; // no regressions recorded for this target
    };
    let mut failed = Vec::new();
    for e in entries {
        let path = e.unwrap().path();
        let name = format!("{target}/{}", path.file_name().unwrap().to_string_lossy());
        let data = std::fs::read(&path).unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| run(&data)));
        match (outcome, KNOWN_OPEN.iter().find(|k| k.0 == name)) {
            (Ok(()), _) => {}
            (Err(_), Some((_, why))) => eprintln!("known open fuzz crash {name}: {why}"),
            (Err(_), None) => failed.push(name),
        }
    }
    assert!(failed.is_empty(), "fuzz regressions panic: {failed:?}");
}

#[test]
fn pickle_vm_regressions() {
    replay("pickle_vm", pickle_vm);
}

#[test]
fn model_file_regressions() {
    replay("model_file", model_file);
}
