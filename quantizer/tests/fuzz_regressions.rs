//! Replays the crash inputs of the `fuzz/` targets (`tests/data/fuzz/`, see its
//! README): none may panic, except those listed in [`KNOWN_OPEN`] while their
//! fix is pending (reported, not failed).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use edgedetr_quantizer::fuzzing::{model_file, pickle_vm};

/// `(target/file, reason)` of crashes whose fix is not in yet (none: the
/// `numel` overflows found by `model_file` are fixed).
const KNOWN_OPEN: &[(&str, &str)] = &[];

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
