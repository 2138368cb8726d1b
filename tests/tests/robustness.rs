//! A real model file, truncated at many lengths or with bytes flipped at many
//! positions, is always rejected with an error and never panics.

use edgedetr::std_io::AlignedBytes;
use edgedetr::{Error, Model};
use edgedetr_format::FormatError;
use edgedetr_tests::*;

fn positions(len: usize, n: usize) -> Vec<usize> {
    // Every byte of the header and section table, then a deterministic spread.
    let mut p: Vec<usize> = (0..512.min(len)).collect();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        p.push((s % len as u64) as usize);
    }
    p.push(len - 1);
    p
}

#[test]
fn truncated_files_are_errors() {
    if skip_requested("truncated_files_are_errors") {
        return;
    }
    let full = fp32_model(320);
    assert!(Model::from_bytes(full).is_ok());
    for n in positions(full.len(), 300) {
        // A prefix of an aligned buffer is still aligned.
        match Model::from_bytes(&full[..n]) {
            Err(Error::Format(FormatError::Truncated { .. } | FormatError::BadMagic)) => {}
            other => panic!("truncated at {n}: expected a truncation error, got {other:?}"),
        }
    }
}

#[test]
fn flipped_bytes_are_errors() {
    if skip_requested("flipped_bytes_are_errors") {
        return;
    }
    let full = fp32_model(320);
    let mut buf = AlignedBytes::from_slice(full);
    for (k, at) in positions(full.len(), 200).into_iter().enumerate() {
        let mask = [0x01u8, 0x80, 0xff, 0x10][k % 4];
        buf.as_mut_slice()[at] ^= mask;
        let r = Model::from_bytes(&buf);
        assert!(r.is_err(), "flip of byte {at} by {mask:#x} was accepted");
        buf.as_mut_slice()[at] ^= mask;
    }
    assert!(
        Model::from_bytes(&buf).is_ok(),
        "restoring every flip restores the file"
    );
}

#[test]
fn misaligned_bytes_and_small_arenas_are_errors() {
    if skip_requested("misaligned_bytes_and_small_arenas_are_errors") {
        return;
    }
    let full = fp32_model(320);
    // Place the file at an address that is 64-aligned plus one.
    let mut v = vec![0u8; full.len() + 128];
    let off = v.as_ptr().align_offset(64) + 1;
    v[off..off + full.len()].copy_from_slice(full);
    assert_eq!(
        Model::from_bytes(&v[off..off + full.len()]).err(),
        Some(Error::MisalignedModel)
    );
    let model = Model::from_bytes(full).unwrap();
    let mut small = vec![0u8; model.arena_size() / 2];
    assert!(matches!(
        edgedetr::Session::new(&model, &mut small).err(),
        Some(Error::ArenaTooSmall { .. })
    ));
}

/// Every op of the real model with a constant-tensor or scratch slot or all
/// its inputs cleared is rejected with a typed error, and pointing a tensor
/// or input slot at another tensor or buffer never panics (rewiring on every
/// third op, to keep the test short: each case hashes the 75 MB file twice).
/// This is the class of corruption the fuzzer found reaching
/// `ModelFile::tensor(NONE)`.
#[test]
fn resealed_operand_mutations_are_errors() {
    if skip_requested("resealed_operand_mutations_are_errors") {
        return;
    }
    use edgedetr::format::{NONE, OpDesc, SectionKind};
    let full = fp32_model(320);
    let model = Model::from_bytes(full).unwrap();
    let (n_tensors, n_buffers) = (
        model.file().tensor_count() as u32,
        model.file().buffer_count() as u32,
    );
    let mut r = Resealed::new(full);
    let ops = r.section(SectionKind::Ops);
    let n_ops = ops.count as usize;
    assert_eq!(n_ops, model.file().op_count());
    let (mut tried, mut accepted) = (0, 0);
    for i in 0..n_ops {
        let op: OpDesc = r.record(&ops, i);
        assert_eq!(op, model.file().op(i as u32), "op {i} decodes the same");
        let mut cases = Vec::new();
        for (slot, &t) in op.tensors.iter().enumerate() {
            if t != NONE {
                let mut m = op;
                m.tensors[slot] = NONE;
                cases.push((m, true));
                if i % 3 == 0 {
                    let mut m = op;
                    m.tensors[slot] = (t + 1 + i as u32) % n_tensors;
                    cases.push((m, false));
                }
            }
        }
        let rewired = if i % 3 == 1 {
            op.input_ids().count()
        } else {
            0
        };
        for (slot, &b) in op.inputs.iter().enumerate().take(rewired) {
            let mut m = op;
            m.inputs[slot] = (b + 1 + i as u32) % n_buffers;
            cases.push((m, false));
        }
        // No inputs at all (the mutation sweep of the int8 model found
        // `check_op` reading `inputs[0]` before counting the inputs).
        let mut m = op;
        m.inputs = [NONE; 4];
        cases.push((m, true));
        if op.scratch != NONE {
            let mut m = op;
            m.scratch = NONE;
            cases.push((m, true));
        }
        // One parameter slot per op, to extremes and a small value.
        for v in [0, 3, u32::MAX] {
            let mut m = op;
            m.params[i % m.params.len()] = v;
            if m != op {
                cases.push((m, false));
            }
        }
        for (m, must_fail) in cases {
            tried += 1;
            // Rewiring may still describe a valid graph (a same-shaped
            // tensor); what matters is that nothing panics. A cleared operand
            // is always an error.
            r.set_record(&ops, i, &m);
            let res = Model::from_bytes(r.sealed()).map(|_| ());
            r.set_record(&ops, i, &op);
            accepted += res.is_ok() as usize;
            if must_fail {
                let e = res.expect_err("a cleared operand was accepted");
                assert!(matches!(e, Error::BadOp { .. }), "op {i}: {e:?}");
            }
        }
    }
    assert!(tried > n_ops, "{tried} mutations");
    eprintln!(
        "{tried} resealed mutations over {} ops, {accepted} accepted",
        n_ops
    );
}
