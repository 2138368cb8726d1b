//! Every op's work units are independent: running an op's units in pieces,
//! in any order, writes exactly the bytes of running it whole
//! (`Session::run_op_units`, what a thread pool will split ops with). Checked
//! on every op of the fp32, fp16 and int8 320 px models, after poisoning the
//! output so a unit that is never run, or writes outside its range, shows.

use std::collections::BTreeSet;

use edgedetr::format::{DType, NONE};
use edgedetr::{Model, OpKind, Session};
use edgedetr_tests::*;

/// Overwrites buffer `id` with a pattern no op writes.
fn poison(s: &mut Session<'_, '_>, id: u32) {
    let d = s.model().buffer(id).unwrap();
    let n = d.numel() as usize;
    match DType::from_u8(d.dtype).unwrap() {
        DType::F32 => s.set_buffer(id, &vec![f32::from_bits(0x7fc0_dead); n]),
        DType::I8 => s.set_buffer_i8(id, &vec![0x5a; n]),
        DType::I32 => s.set_buffer_i32(id, &vec![-7; n]),
        other => panic!("unexpected output dtype {other:?}"),
    }
    .unwrap();
}

/// Splits `0..units` into pieces of 1–3 units, in a scrambled order.
fn pieces(units: usize, seed: usize) -> Vec<std::ops::Range<usize>> {
    let mut v = Vec::new();
    let mut at = 0;
    while at < units {
        let len = (1 + (at + seed) % 3).min(units - at);
        v.push(at..at + len);
        at += len;
    }
    let n = v.len();
    for i in 0..n {
        v.swap(i, (i * 7 + seed) % n);
    }
    v
}

/// Runs every op whole, then in pieces, and compares; returns the kinds
/// that had more than one unit.
fn check(bytes: &[u8]) -> BTreeSet<&'static str> {
    let model = Model::from_bytes(bytes).expect("model loads");
    let mut arena = vec![0u8; model.arena_size()];
    let mut s = Session::new(&model, &mut arena).expect("session");
    s.set_input_f32(&golden("bus_320", "input").data).unwrap();
    let f = model.file();
    let mut split = BTreeSet::new();
    for i in 0..model.op_count() {
        s.run_ops(i..i + 1).unwrap();
        let op = f.op(i as u32);
        let outs: Vec<u32> = op.outputs.iter().copied().filter(|&o| o != NONE).collect();
        let whole: Vec<Vec<u8>> = outs.iter().map(|&o| buffer_bytes(&s, o)).collect();
        let units = s.op_work_units(i).unwrap();
        if units < 2 {
            continue;
        }
        for &o in &outs {
            poison(&mut s, o);
        }
        for w in pieces(units, i) {
            s.run_op_units(i, w).unwrap();
        }
        let name = f.str(op.name);
        for (&o, want) in outs.iter().zip(&whole) {
            assert!(
                buffer_bytes(&s, o) == *want,
                "op {i} {name}: {units} units run in pieces differ from the whole op"
            );
        }
        split.insert(OpKind::from_u16(op.kind).unwrap().name());
    }
    assert!(s.run_op_units(model.op_count(), 0..1).is_err());
    assert!(s.run_op_units(0, 0..usize::MAX).is_err());
    split
}

#[test]
fn ops_split_into_units_give_the_same_bytes() {
    if skip_requested("ops_split_into_units_give_the_same_bytes") {
        return;
    }
    let fp32 = check(fp32_model(320));
    eprintln!("fp32: split {fp32:?}");
    for kind in ["conv2d", "attention", "weighted_sum", "upsample2x", "add"] {
        assert!(fp32.contains(kind), "fp32 model: no split {kind} op");
    }
    let fp16 = check(fp16_320());
    assert!(fp16.contains("conv2d"));
    let int8 = check(int8_320());
    eprintln!("int8: split {int8:?}");
    for kind in ["conv2d_i8", "weighted_sum_i8", "dequantize"] {
        assert!(int8.contains(kind), "int8 model: no split {kind} op");
    }
}
