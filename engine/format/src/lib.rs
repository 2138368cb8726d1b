//! The edgedetr model-file contract (format version 1).
//!
//! One flat little-endian file holds everything a session needs: the static
//! graph, the constant tensors, and the memory plan of every activation buffer
//! in one arena. [`ModelFile::parse`] validates it once and is then a zero-copy
//! view over the bytes; [`ModelWriter`] (feature `alloc`) builds it.
//!
//! # Layout
//!
//! | offset | size | what |
//! |---|---|---|
//! | 0 | 64 | [`Header`]: magic `EDGEDETR`, version, flags, total length, XXH64 checksum of every byte after the checksum field (`[32, total)`), section count, header length, arena size |
//! | 64 | 32 × n | [`SectionEntry`] table: kind, record size, offset (64-aligned), length, record count |
//! | … | 64 | [`SectionKind::Meta`]: one [`Meta`] (input size S, channels, classes, preprocessing flags, queries, input buffer) |
//! | … | 64 × n | [`SectionKind::Tensors`]: [`TensorDesc`] per constant (name, dtype, shape, quantisation, data offset and length) |
//! | … | 56 × n | [`SectionKind::Buffers`]: [`BufferDesc`] per activation/scratch buffer (name, dtype, shape, flags, arena offset and size, lifetime) |
//! | … | 96 × n | [`SectionKind::Ops`]: [`OpDesc`] per op in execution order (kind, stage, activation, ≤4 input / 2 output / 1 scratch buffer ids, ≤6 tensor ids, 8 parameter words) |
//! | … | 8 × n | [`SectionKind::ClassNames`]: [`StrRef`] per class |
//! | … | bytes | [`SectionKind::Strings`]: UTF-8 strings |
//! | … | bytes | [`SectionKind::Data`]: tensor data, each 64-byte aligned and followed by [`OVERREAD_BYTES`] readable bytes |
//!
//! Every record is `#[repr(C)]` with its size and field offsets asserted at
//! compile time, and decoded field by field (no pointer casts).
//!
//! # What the reader guarantees
//! After [`ModelFile::parse`] succeeds: every section, tensor and string lies in
//! the file; every tensor's length equals its shape × dtype and it can be
//! over-read by [`OVERREAD_BYTES`]; every buffer lies in the arena with a size of
//! at least shape × dtype; every id an op names exists; every op reads buffers
//! written by an earlier op (or by the caller), writes only buffers it owns, and
//! touches them inside their planned lifetime; and no two buffers live at the
//! same time share arena bytes. What each op kind means (its shapes and
//! parameters) is checked by the runtime, which owns the op table.
#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod checksum;
pub mod error;
pub mod layout;
pub mod plan;
pub mod reader;
#[cfg(feature = "alloc")]
pub mod writer;

pub use error::FormatError;
pub use layout::*;
pub use reader::ModelFile;
#[cfg(feature = "alloc")]
pub use writer::{BufferSpec, ModelWriter};

/// The file magic.
pub const MAGIC: [u8; 8] = *b"EDGEDETR";
/// The format version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// The checksum covers bytes from this offset (just after the checksum field) to the end.
pub const CHECKSUM_FROM: usize = 32;
/// Bytes after each tensor's data that kernels may read (never write).
pub const OVERREAD_BYTES: usize = 64;

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn tiny() -> Vec<u8> {
        let mut w = ModelWriter::new();
        w.set_meta(
            Meta {
                input_size: 32,
                in_channels: 3,
                num_queries: 0,
                input_buffer: 0,
                preprocess: PREPROCESS_RGB,
                ..Meta::default()
            },
            "unit test",
            &["a", "b"],
        );
        let wt = w.add_f32("w", &[4, 3], &[1.0; 12]);
        let x = w.add_buffer("input", DType::F32, &[3, 32, 32], BUF_INPUT);
        let y = w.add_buffer("y", DType::F32, &[4, 32, 32], 0);
        let z = w.add_buffer("z", DType::F32, &[4, 32, 32], BUF_EXPORTED);
        let mut op = OpDesc {
            kind: 1,
            inputs: [x, NONE, NONE, NONE],
            outputs: [y, NONE],
            scratch: NONE,
            tensors: [wt, NONE, NONE, NONE, NONE, NONE],
            ..OpDesc::default()
        };
        w.add_op("first", op);
        op.inputs[0] = y;
        op.outputs[0] = z;
        w.add_op("second", op);
        w.finish()
    }

    #[test]
    fn roundtrip() {
        let bytes = tiny();
        let f = ModelFile::parse(&bytes).expect("valid");
        assert_eq!(f.meta().input_size, 32);
        assert_eq!(f.class_count(), 2);
        assert_eq!(f.class_name(1), "b");
        assert_eq!(f.op_count(), 2);
        assert_eq!(f.str(f.op(1).name), "second");
        assert_eq!(f.find_buffer("z"), Some(2));
        assert_eq!(f.tensor_bytes(0).len(), 48);
        assert_eq!(f.tensor_bytes_padded(0).len(), 48 + OVERREAD_BYTES);
        // input (0..0), y (0..1), z (1..1 exported) -> input and z may share.
        let (x, y, z) = (f.buffer(0), f.buffer(1), f.buffer(2));
        assert_eq!((y.first_op, y.last_op), (0, 1));
        assert_eq!((z.first_op, z.last_op), (1, 1));
        assert!(x.offset + x.size <= f.arena_size() as u64);
        assert_eq!(f.arena_size() as u64, y.size + z.size.max(x.size));
    }

    #[test]
    fn every_truncation_and_flip_is_an_error() {
        let bytes = tiny();
        for n in 0..bytes.len() {
            assert!(ModelFile::parse(&bytes[..n]).is_err(), "length {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(ModelFile::parse(&b).is_err(), "flip at {i}");
        }
        let mut b = bytes.clone();
        b.push(0);
        assert!(matches!(
            ModelFile::parse(&b),
            Err(FormatError::TrailingBytes { .. })
        ));
        // Not a model file at all, however short.
        for other in [&b"a text file, 26 bytes long"[..], b"x", b"EDGEDETX"] {
            assert_eq!(ModelFile::parse(other).err(), Some(FormatError::BadMagic));
        }
        assert!(matches!(
            ModelFile::parse(b"EDGE"),
            Err(FormatError::Truncated { .. })
        ));
        // A flipped bit in the size field: the header is corrupt, the file is not.
        let mut b = bytes.clone();
        b[20] ^= 0x10;
        assert!(matches!(
            ModelFile::parse(&b),
            Err(FormatError::CorruptHeader { .. })
        ));
        let mut b = bytes.clone();
        b[10] ^= 0x10;
        let e = ModelFile::parse(&b).unwrap_err();
        assert!(
            alloc::format!("{e}").contains("corrupt model header"),
            "{e}"
        );
    }

    #[test]
    fn validation_catches_resealed_corruption() {
        let bytes = tiny();
        let f = ModelFile::parse(&bytes).unwrap();
        let mut checked = 0;
        // Flip each byte of every descriptor, reseal, and require no panic; most
        // flips must be caught by validation, not by luck.
        for i in 64..bytes.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= mask;
                checksum::seal(&mut b);
                if let Ok(g) = ModelFile::parse(&b) {
                    // Accepted: then every accessor must still be in bounds.
                    for t in 0..g.tensor_count() as u32 {
                        let _ = g.tensor_bytes_padded(t);
                    }
                    for o in 0..g.op_count() as u32 {
                        let _ = g.str(g.op(o).name);
                    }
                } else {
                    checked += 1;
                }
            }
        }
        assert!(checked > 0);
        // Specific corruptions.
        let mut b = bytes.clone();
        b[8] = 2; // version
        assert!(matches!(
            ModelFile::parse(&b),
            Err(FormatError::UnsupportedVersion { found: 2 })
        ));
        let ops_entry = 64 + 3 * SECTION_ENTRY_LEN;
        let mut b = bytes.clone();
        let ops_off =
            u64::from_le_bytes(b[ops_entry + 8..ops_entry + 16].try_into().unwrap()) as usize;
        // Second op reads a buffer id that does not exist.
        b[ops_off + OP_DESC_LEN + 12..ops_off + OP_DESC_LEN + 16]
            .copy_from_slice(&77u32.to_le_bytes());
        checksum::seal(&mut b);
        assert!(matches!(
            ModelFile::parse(&b),
            Err(FormatError::BadOp { index: 1, .. })
        ));
        let _ = f;
    }
}
