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
