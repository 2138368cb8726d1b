//! File helpers for `std` builds: 64-byte aligned model loading and `.npy`
//! reading/writing (the format of the reference goldens and of `--dump`).

use std::io::{self, Read, Write};
use std::path::Path;
use std::string::{String, ToString};
use std::vec::Vec;

use crate::Error;
use crate::view::Block;

/// Owned bytes starting on a 64-byte boundary (what [`crate::Model::from_bytes`] needs).
#[derive(Clone)]
pub struct AlignedBytes {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedBytes {
    /// Copies `bytes` into aligned storage.
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut blocks = std::vec![Block([0; 64]); bytes.len().div_ceil(64)];
        bytemuck::cast_slice_mut::<Block, u8>(&mut blocks)[..bytes.len()].copy_from_slice(bytes);
        AlignedBytes {
            blocks,
            len: bytes.len(),
        }
    }

    /// Reads a whole file into aligned storage.
    pub fn read(path: impl AsRef<Path>) -> io::Result<Self> {
        let mut f = std::fs::File::open(path)?;
        let len = usize::try_from(f.metadata()?.len()).map_err(|_| io::ErrorKind::OutOfMemory)?;
        let mut blocks = zeroed(len.div_ceil(64), Block([0; 64]))
            .ok_or(io::Error::from(io::ErrorKind::OutOfMemory))?;
        f.read_exact(&mut bytemuck::cast_slice_mut::<Block, u8>(&mut blocks)[..len])?;
        Ok(AlignedBytes { blocks, len })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &bytemuck::cast_slice::<Block, u8>(&self.blocks)[..self.len]
    }

    /// The bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<Block, u8>(&mut self.blocks)[..self.len]
    }
}

impl core::ops::Deref for AlignedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// A zeroed arena of [`crate::Model::arena_size`] bytes for a
/// [`crate::Session`], or [`Error::OutOfMemory`] where the allocator cannot
/// give that much (never an abort).
///
/// # Errors
/// [`Error::OutOfMemory`].
pub fn alloc_arena(model: &crate::Model<'_>) -> Result<Vec<u8>, Error> {
    zeroed(model.arena_size(), 0u8).ok_or(Error::OutOfMemory {
        bytes: model.arena_size(),
    })
}

/// `len` copies of `zero`, or `None` where they cannot be allocated.
fn zeroed<T: Clone>(len: usize, zero: T) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, zero);
    Some(v)
}

/// An array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values converted to f32 (from `<f4`, `<f8`, `<f2`, `<i8`, `<i4`, `|b1`, `|u1`).
    pub data: Vec<f32>,
    /// Values as i64 when the file holds integers or booleans (exact), else empty.
    pub ints: Vec<i64>,
    /// The numpy dtype string, e.g. `<f4`.
    pub descr: String,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn header_field<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header.find(&std::format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

/// Parses `.npy` bytes (C order, little-endian numeric dtypes).
pub fn parse_npy(bytes: &[u8]) -> io::Result<NpyArray> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(std::format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(start..start + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated .npy header"))?;
    let descr = header_field(header, "descr")
        .and_then(|r| r.strip_prefix('\''))
        .and_then(|r| r.split('\'').next())
        .ok_or_else(|| bad("no descr in .npy header"))?
        .to_string();
    if header_field(header, "fortran_order").is_some_and(|r| r.starts_with("True")) {
        return Err(bad("fortran-order .npy files are not supported"));
    }
    let shape_src = header_field(header, "shape")
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| bad("no shape in .npy header"))?;
    let shape = shape_src
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad("bad shape in .npy header"))
        })
        .collect::<io::Result<Vec<usize>>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("shape overflows"))?;
    let body = &bytes[start + hlen..];
    let elem = match descr.as_str() {
        "<f4" | "<i4" => 4,
        "<f8" | "<i8" => 8,
        "<f2" => 2,
        "|b1" | "|u1" => 1,
        d => return Err(bad(std::format!("unsupported .npy dtype {d}"))),
    };
    if n.checked_mul(elem) != Some(body.len()) {
        return Err(bad("the .npy body does not match its shape"));
    }
    let chunks = body.chunks_exact(elem);
    let (data, ints): (Vec<f32>, Vec<i64>) = match descr.as_str() {
        "<f4" => (
            chunks
                .map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4])))
                .collect(),
            Vec::new(),
        ),
        "<f8" => (
            chunks
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            Vec::new(),
        ),
        "<f2" => (
            chunks
                .map(|c| half_to_f32(u16::from_le_bytes(c.try_into().unwrap_or([0; 2]))))
                .collect(),
            Vec::new(),
        ),
        _ => {
            let ints: Vec<i64> = chunks
                .map(|c| match c.len() {
                    8 => i64::from_le_bytes(c.try_into().unwrap_or([0; 8])),
                    4 => i32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as i64,
                    _ => c[0] as i64,
                })
                .collect();
            (ints.iter().map(|&v| v as f32).collect(), ints)
        }
    };
    Ok(NpyArray {
        shape,
        data,
        ints,
        descr,
    })
}

fn half_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// Reads a `.npy` file.
pub fn read_npy(path: impl AsRef<Path>) -> io::Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), std::format!("{}: {e}", path.display())))?;
    parse_npy(&bytes).map_err(|e| bad(std::format!("{}: {e}", path.display())))
}

fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_s = if shape.len() == 1 {
        std::format!("({},)", dims[0])
    } else {
        std::format!("({})", dims.join(", "))
    };
    let mut h =
        std::format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    let total = 10 + h.len() + 1;
    h.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    h.push('\n');
    let mut out = Vec::with_capacity(10 + h.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out
}

/// Writes an f32 array as `.npy` (`<f4`, C order).
pub fn write_npy_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> io::Result<()> {
    let mut out = npy_header("<f4", shape);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::File::create(path)?.write_all(&out)
}

/// Writes an i64 array as `.npy` (`<i8`, C order).
pub fn write_npy_i64(path: impl AsRef<Path>, shape: &[usize], data: &[i64]) -> io::Result<()> {
    let mut out = npy_header("<i8", shape);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::File::create(path)?.write_all(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_that_cannot_be_made_is_none_not_an_abort() {
        // Beyond isize::MAX bytes on every target (usize::MAX / 2 bytes is
        // a real 2 GiB allocation on 32-bit ones).
        assert!(zeroed(usize::MAX, 0u8).is_none());
        assert!(zeroed(usize::MAX / 32, Block([0; 64])).is_none());
        assert_eq!(zeroed(3, 7u8), Some(std::vec![7, 7, 7]));
    }

    #[test]
    fn npy_roundtrip_and_errors() {
        let dir = std::env::temp_dir().join(std::format!("edgedetr-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        write_npy_f32(&p, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]).unwrap();
        let a = read_npy(&p).unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.data, [1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        let q = dir.join("b.npy");
        write_npy_i64(&q, &[3], &[7, -1, 300]).unwrap();
        let b = read_npy(&q).unwrap();
        assert_eq!(b.ints, [7, -1, 300]);
        assert_eq!(b.shape, [3]);
        let bytes = std::fs::read(&p).unwrap();
        assert!(parse_npy(&bytes[..bytes.len() - 1]).is_err());
        assert!(parse_npy(&bytes[..20]).is_err());
        assert!(parse_npy(b"garbage").is_err());
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x0001), 5.960_464_5e-8);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn aligned_bytes_are_aligned() {
        let a = AlignedBytes::from_slice(&[1, 2, 3]);
        assert_eq!(a.as_ptr().align_offset(64), 0);
        assert_eq!(&a[..], &[1, 2, 3]);
    }
}
