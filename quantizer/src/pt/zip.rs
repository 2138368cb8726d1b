//! A reader of the zip container `torch.save` writes.
//!
//! `torch.save` (PyTorch's `PyTorchStreamWriter`, built on miniz) writes every
//! record *stored* (uncompressed), each local header padded with an `FB` extra
//! field so that data starts on a 64-byte boundary, sizes and CRC in a data
//! descriptor after the data (general-purpose flag bit 3), and always a zip64
//! end-of-central-directory record. This reader handles exactly that shape,
//! and any other stored-only zip:
//!
//! * the central directory is the source of truth for sizes, CRCs and
//!   offsets (local headers may hold zeros when a data descriptor follows);
//! * zip64 end records and zip64 extra fields are used where the 32-bit
//!   fields are saturated;
//! * every offset and length is checked against the file before use, and
//!   nothing is allocated in proportion to a declared count or size unless
//!   that count or size fits in the bytes actually present;
//! * compressed, encrypted or multi-disk archives, duplicate names and
//!   overlapping records are errors.
//!
//! Hand-written rather than a crate (`zip`, `rawzip`): the format subset is
//! small (about 300 lines here), has no dependency, and every bound is
//! visible and tested in one place.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::QuantizeError;

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const EOCD_LEN: usize = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_LEN: usize = 56;

/// The four bytes every zip file written by `torch.save` starts with.
pub const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";

fn err(msg: impl Into<String>) -> QuantizeError {
    QuantizeError::Checkpoint(format!("zip: {}", msg.into()))
}

/// Little-endian field reads with bounds checks.
fn rd<const N: usize>(b: &[u8], at: usize, what: &str) -> Result<[u8; N], QuantizeError> {
    at.checked_add(N)
        .and_then(|end| b.get(at..end))
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| {
            err(format!(
                "{what} at offset {at} runs past the end of the file"
            ))
        })
}
fn u16_at(b: &[u8], at: usize, what: &str) -> Result<u16, QuantizeError> {
    Ok(u16::from_le_bytes(rd::<2>(b, at, what)?))
}
fn u32_at(b: &[u8], at: usize, what: &str) -> Result<u32, QuantizeError> {
    Ok(u32::from_le_bytes(rd::<4>(b, at, what)?))
}
fn u64_at(b: &[u8], at: usize, what: &str) -> Result<u64, QuantizeError> {
    Ok(u64::from_le_bytes(rd::<8>(b, at, what)?))
}

/// A u64 from the file as a `usize` that is at most the file length.
fn within(v: u64, len: usize, what: &str) -> Result<usize, QuantizeError> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v <= len)
        .ok_or_else(|| err(format!("{what} {v} is larger than the file ({len} bytes)")))
}

/// One stored record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Name inside the archive (`archive/data/0`).
    pub name: String,
    /// Offset of the first data byte in the file.
    pub data_offset: usize,
    /// Length of the data in bytes.
    pub size: usize,
    /// CRC-32 of the data from the central directory.
    pub crc32: u32,
}

/// A parsed stored-only zip archive borrowing the file bytes.
#[derive(Debug)]
pub struct Archive<'a> {
    bytes: &'a [u8],
    entries: Vec<Entry>,
    by_name: BTreeMap<String, usize>,
    /// Per entry: 0 = CRC not checked yet, 1 = checked and good.
    crc_ok: Vec<AtomicU8>,
}

impl<'a> Archive<'a> {
    /// Parses the central directory of `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, QuantizeError> {
        let len = bytes.len();
        if len < EOCD_LEN {
            return Err(err(format!(
                "file of {len} bytes is too short for a zip archive"
            )));
        }
        let eocd = find_eocd(bytes)?;
        let disk = u16_at(bytes, eocd + 4, "end record")?;
        let cd_disk = u16_at(bytes, eocd + 6, "end record")?;
        let mut count = u64::from(u16_at(bytes, eocd + 10, "end record")?);
        let mut cd_size = u64::from(u32_at(bytes, eocd + 12, "end record")?);
        let mut cd_offset = u64::from(u32_at(bytes, eocd + 16, "end record")?);
        // The central directory ends where the zip64 records (if any) or the
        // end record begin.
        let mut cd_limit = eocd;
        let saturated = count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF;
        let has_locator = eocd >= ZIP64_LOCATOR_LEN
            && u32_at(bytes, eocd - ZIP64_LOCATOR_LEN, "zip64 locator")? == ZIP64_LOCATOR_SIG;
        if has_locator {
            let loc = eocd - ZIP64_LOCATOR_LEN;
            let z_off = within(
                u64_at(bytes, loc + 8, "zip64 locator")?,
                len,
                "zip64 end record offset",
            )?;
            if u32_at(bytes, loc + 16, "zip64 locator")? > 1 {
                return Err(err("multi-disk archives are not supported"));
            }
            if z_off.checked_add(ZIP64_EOCD_LEN).is_none_or(|e| e > loc) {
                return Err(err(format!(
                    "zip64 end record at {z_off} overlaps its locator at {loc}"
                )));
            }
            if u32_at(bytes, z_off, "zip64 end record")? != ZIP64_EOCD_SIG {
                return Err(err(format!("no zip64 end record at offset {z_off}")));
            }
            if u32_at(bytes, z_off + 16, "zip64 end record")? != 0
                || u32_at(bytes, z_off + 20, "zip64 end record")? != 0
            {
                return Err(err("multi-disk archives are not supported"));
            }
            count = u64_at(bytes, z_off + 32, "zip64 end record")?;
            cd_size = u64_at(bytes, z_off + 40, "zip64 end record")?;
            cd_offset = u64_at(bytes, z_off + 48, "zip64 end record")?;
            cd_limit = z_off;
        } else if saturated {
            return Err(err(
                "the end record needs zip64 values but there is no zip64 locator",
            ));
        } else if disk != 0 || cd_disk != 0 {
            return Err(err("multi-disk archives are not supported"));
        }
        let cd_offset = within(cd_offset, len, "central directory offset")?;
        let cd_size = within(cd_size, len, "central directory size")?;
        let cd_end = cd_offset
            .checked_add(cd_size)
            .filter(|&e| e <= cd_limit)
            .ok_or_else(|| {
                err(format!(
                    "central directory ({cd_size} bytes at {cd_offset}) runs past its end record at {cd_limit}"
                ))
            })?;
        // Each central record takes at least CENTRAL_LEN bytes: a count that
        // cannot fit is rejected before anything is allocated for it.
        if count > (cd_size / CENTRAL_LEN) as u64 {
            return Err(err(format!(
                "{count} entries declared, but the central directory of {cd_size} bytes holds at most {}",
                cd_size / CENTRAL_LEN
            )));
        }
        let count = count as usize;
        let mut entries = Vec::with_capacity(count);
        let mut by_name = BTreeMap::new();
        let mut at = cd_offset;
        for i in 0..count {
            let (entry, next) = read_central(bytes, at, cd_end, cd_offset, i)?;
            if by_name.insert(entry.name.clone(), entries.len()).is_some() {
                return Err(err(format!("duplicate entry name `{}`", entry.name)));
            }
            entries.push(entry);
            at = next;
        }
        let crc_ok = (0..entries.len()).map(|_| AtomicU8::new(0)).collect();
        Ok(Archive {
            bytes,
            entries,
            by_name,
            crc_ok,
        })
    }

    /// All entries in central-directory order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry called `name`.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// The data of entry `name`, its CRC-32 verified (once per entry).
    pub fn read(&self, name: &str) -> Result<&'a [u8], QuantizeError> {
        let &i = self
            .by_name
            .get(name)
            .ok_or_else(|| err(format!("no entry `{name}`")))?;
        let e = &self.entries[i];
        // In bounds: checked in `read_central`.
        let data = &self.bytes[e.data_offset..e.data_offset + e.size];
        if self.crc_ok[i].load(Ordering::Relaxed) == 0 {
            let crc = crc32(data);
            if crc != e.crc32 {
                return Err(err(format!(
                    "entry `{name}` is corrupt: CRC-32 {crc:08x}, expected {:08x}",
                    e.crc32
                )));
            }
            self.crc_ok[i].store(1, Ordering::Relaxed);
        }
        Ok(data)
    }
}

/// Finds the end-of-central-directory record (the last one whose comment
/// fits in the file).
fn find_eocd(b: &[u8]) -> Result<usize, QuantizeError> {
    let last = b.len() - EOCD_LEN;
    let first = last.saturating_sub(0xFFFF);
    for at in (first..=last).rev() {
        if b[at..at + 4] == EOCD_SIG.to_le_bytes() {
            let comment = usize::from(u16::from_le_bytes([b[at + 20], b[at + 21]]));
            if at + EOCD_LEN + comment <= b.len() {
                return Ok(at);
            }
        }
    }
    Err(err(
        "no end-of-central-directory record (truncated or not a zip file)",
    ))
}

/// Reads central record `index` at `at`; returns it and the next record's offset.
fn read_central(
    b: &[u8],
    at: usize,
    cd_end: usize,
    cd_start: usize,
    index: usize,
) -> Result<(Entry, usize), QuantizeError> {
    let what = "central directory record";
    if at.checked_add(CENTRAL_LEN).is_none_or(|e| e > cd_end) {
        return Err(err(format!(
            "central directory record {index} at {at} runs past the directory end {cd_end}"
        )));
    }
    if u32_at(b, at, what)? != CENTRAL_SIG {
        return Err(err(format!(
            "bad signature for central directory record {index} at offset {at}"
        )));
    }
    let flags = u16_at(b, at + 8, what)?;
    let method = u16_at(b, at + 10, what)?;
    let crc = u32_at(b, at + 16, what)?;
    let mut csize = u64::from(u32_at(b, at + 20, what)?);
    let mut usize_ = u64::from(u32_at(b, at + 24, what)?);
    let name_len = usize::from(u16_at(b, at + 28, what)?);
    let extra_len = usize::from(u16_at(b, at + 30, what)?);
    let comment_len = usize::from(u16_at(b, at + 32, what)?);
    let disk = u16_at(b, at + 34, what)?;
    let mut local = u64::from(u32_at(b, at + 42, what)?);
    let name_at = at + CENTRAL_LEN;
    let extra_at = name_at + name_len;
    let next = extra_at + extra_len + comment_len;
    if next > cd_end {
        return Err(err(format!(
            "central directory record {index} at {at} runs past the directory end {cd_end}"
        )));
    }
    let name = std::str::from_utf8(&b[name_at..extra_at])
        .map_err(|_| err(format!("entry name of record {index} is not UTF-8")))?
        .to_owned();
    if flags & 1 != 0 {
        return Err(err(format!("entry `{name}` is encrypted")));
    }
    if method != 0 {
        return Err(err(format!(
            "entry `{name}` is compressed (method {method}); torch.save writes stored entries only"
        )));
    }
    // zip64 extended information: only the saturated fields are present, in
    // this order.
    let mut disk = u32::from(disk);
    let need = [
        usize_ == 0xFFFF_FFFF,
        csize == 0xFFFF_FFFF,
        local == 0xFFFF_FFFF,
        disk == 0xFFFF,
    ];
    if need.iter().any(|&n| n) {
        let mut x = extra_at;
        let x_end = extra_at + extra_len;
        let mut found = false;
        while x + 4 <= x_end {
            let id = u16_at(b, x, "extra field")?;
            let sz = usize::from(u16_at(b, x + 2, "extra field")?);
            let body = x + 4;
            if body + sz > x_end {
                return Err(err(format!("extra field of `{name}` runs past its record")));
            }
            if id == 0x0001 {
                let mut p = body;
                let take8 = |p: &mut usize| -> Result<u64, QuantizeError> {
                    if *p + 8 > body + sz {
                        return Err(err(format!("zip64 extra field of `{name}` is too short")));
                    }
                    let v = u64_at(b, *p, "zip64 extra field")?;
                    *p += 8;
                    Ok(v)
                };
                if need[0] {
                    usize_ = take8(&mut p)?;
                }
                if need[1] {
                    csize = take8(&mut p)?;
                }
                if need[2] {
                    local = take8(&mut p)?;
                }
                if need[3] {
                    if p + 4 > body + sz {
                        return Err(err(format!("zip64 extra field of `{name}` is too short")));
                    }
                    disk = u32_at(b, p, "zip64 extra field")?;
                }
                found = true;
                break;
            }
            x = body + sz;
        }
        if !found {
            return Err(err(format!(
                "entry `{name}` needs zip64 values but has no zip64 extra field"
            )));
        }
    }
    if disk != 0 {
        return Err(err("multi-disk archives are not supported"));
    }
    if csize != usize_ {
        return Err(err(format!(
            "stored entry `{name}` has compressed size {csize} but size {usize_}"
        )));
    }
    let size = within(usize_, b.len(), &format!("size of entry `{name}`"))?;
    let local = within(local, b.len(), &format!("local header offset of `{name}`"))?;
    // The local header: its own name and extra lengths decide where data starts.
    let lwhat = "local header";
    if local.checked_add(LOCAL_LEN).is_none_or(|e| e > cd_start) {
        return Err(err(format!(
            "local header of `{name}` at {local} overlaps the central directory at {cd_start}"
        )));
    }
    if u32_at(b, local, lwhat)? != LOCAL_SIG {
        return Err(err(format!(
            "no local header for `{name}` at offset {local}"
        )));
    }
    let lname = usize::from(u16_at(b, local + 26, lwhat)?);
    let lextra = usize::from(u16_at(b, local + 28, lwhat)?);
    let data_offset = local + LOCAL_LEN + lname + lextra;
    if b.get(local + LOCAL_LEN..local + LOCAL_LEN + lname) != Some(name.as_bytes()) {
        return Err(err(format!(
            "local header at {local} names a different entry than `{name}`"
        )));
    }
    if data_offset.checked_add(size).is_none_or(|e| e > cd_start) {
        return Err(err(format!(
            "data of `{name}` ({size} bytes at {data_offset}) runs into the central directory at {cd_start}"
        )));
    }
    Ok((
        Entry {
            name,
            data_offset,
            size,
            crc32: crc,
        },
        next,
    ))
}

const CRC_TABLE: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        s += 1;
    }
    t
};

/// CRC-32 (IEEE, the zip checksum), slicing-by-8.
pub fn crc32(data: &[u8]) -> u32 {
    let t = &CRC_TABLE;
    let mut c = !0u32;
    let mut chunks = data.chunks_exact(8);
    for ch in &mut chunks {
        let lo = c ^ u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]);
        c = t[7][(lo & 0xFF) as usize]
            ^ t[6][((lo >> 8) & 0xFF) as usize]
            ^ t[5][((lo >> 16) & 0xFF) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][ch[4] as usize]
            ^ t[2][ch[5] as usize]
            ^ t[1][ch[6] as usize]
            ^ t[0][ch[7] as usize];
    }
    for &x in chunks.remainder() {
        c = t[0][((c ^ u32::from(x)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// Writes a stored zip archive the way `torch.save` lays one out (64-byte
/// aligned data, data descriptors, zip64 end records): for tests and fuzzing.
pub fn write_stored(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let local = out.len() as u64;
        let crc = crc32(data);
        let base = out.len() + LOCAL_LEN + name.len() + 4;
        let pad = (64 - base % 64) % 64;
        out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0x08, 0x08, 0, 0, 0, 0, 0, 0]); // version, flags, method, time, date
        out.extend_from_slice(&[0; 12]); // crc, sizes: in the data descriptor
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&((pad + 4) as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"FB");
        out.extend_from_slice(&(pad as u16).to_le_bytes());
        out.resize(out.len() + pad, b'Z');
        out.extend_from_slice(data);
        out.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
        central.extend_from_slice(&[0x1e, 0x03, 0x2d, 0, 0x08, 0x08, 0, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(data.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]); // extra, comment, disk, attributes
        central.extend_from_slice(&(local as u32).to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u64;
    out.extend_from_slice(&central);
    let z64 = out.len() as u64;
    let n = entries.len() as u64;
    out.extend_from_slice(&ZIP64_EOCD_SIG.to_le_bytes());
    out.extend_from_slice(&44u64.to_le_bytes());
    out.extend_from_slice(&[0x1e, 0x03, 0x2d, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u64).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&ZIP64_LOCATOR_SIG.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&z64.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&EOCD_SIG.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(n.min(0xFFFF) as u16).to_le_bytes());
    out.extend_from_slice(&(n.min(0xFFFF) as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&(cd_offset.min(0xFFFF_FFFF) as u32).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        write_stored(&[
            ("archive/data.pkl", b"\x80\x02N.".as_slice()),
            ("archive/data/0", &[1, 2, 3, 4, 5, 6, 7, 8]),
            ("archive/byteorder", b"little"),
        ])
    }

    #[test]
    fn crc32_known_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let long: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        // Byte-at-a-time reference.
        let mut c = !0u32;
        for &x in &long {
            c ^= u32::from(x);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        assert_eq!(crc32(&long), !c);
    }

    #[test]
    fn reads_what_it_writes() {
        let z = sample();
        let a = Archive::parse(&z).unwrap();
        assert_eq!(a.entries().len(), 3);
        assert_eq!(a.read("archive/data/0").unwrap(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(a.read("archive/byteorder").unwrap(), b"little");
        assert_eq!(a.entry("archive/data/0").unwrap().data_offset % 64, 0);
        assert!(a.read("archive/nope").is_err());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let z = sample();
        for n in 0..z.len() {
            assert!(
                Archive::parse(&z[..n]).is_err(),
                "prefix of {n} bytes parsed"
            );
        }
    }

    #[test]
    fn every_single_byte_flip_is_handled() {
        let z = sample();
        for i in 0..z.len() {
            for x in [0x00u8, 0xFF, 0x80] {
                let mut m = z.clone();
                m[i] = x;
                if let Ok(a) = Archive::parse(&m) {
                    for e in a.entries() {
                        let _ = a.read(&e.name);
                    }
                }
            }
        }
    }

    #[test]
    fn corrupt_data_fails_the_crc() {
        let mut z = sample();
        let a = Archive::parse(&z).unwrap();
        let off = a.entry("archive/data/0").unwrap().data_offset;
        z[off] ^= 1;
        let a = Archive::parse(&z).unwrap();
        let e = a.read("archive/data/0").unwrap_err().to_string();
        assert!(e.contains("CRC-32"), "{e}");
    }

    #[test]
    fn huge_declared_sizes_are_rejected() {
        let z = sample();
        let a = Archive::parse(&z).unwrap();
        let cd = z
            .windows(4)
            .position(|w| w == CENTRAL_SIG.to_le_bytes())
            .unwrap();
        let _ = a;
        // Entry size 0xFFFFFFFE (no zip64 needed).
        let mut m = z.clone();
        m[cd + 20..cd + 28].copy_from_slice(&[0xFE, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF]);
        let e = Archive::parse(&m).unwrap_err().to_string();
        assert!(e.contains("larger than the file"), "{e}");
        // Entry count in the zip64 end record: 2^60.
        let mut m = z.clone();
        let z64 = m
            .windows(4)
            .rposition(|w| w == ZIP64_EOCD_SIG.to_le_bytes())
            .unwrap();
        m[z64 + 32..z64 + 40].copy_from_slice(&(1u64 << 60).to_le_bytes());
        let e = Archive::parse(&m).unwrap_err().to_string();
        assert!(e.contains("entries declared"), "{e}");
        // Central directory size beyond the file.
        let mut m = z.clone();
        m[z64 + 40..z64 + 48].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Archive::parse(&m).is_err());
    }

    #[test]
    fn compressed_entries_are_rejected() {
        let z = sample();
        let cd = z
            .windows(4)
            .position(|w| w == CENTRAL_SIG.to_le_bytes())
            .unwrap();
        let mut m = z.clone();
        m[cd + 10] = 8; // deflate
        let e = Archive::parse(&m).unwrap_err().to_string();
        assert!(e.contains("compressed"), "{e}");
    }

    #[test]
    fn plain_end_record_without_zip64() {
        // Python's zipfile writes no zip64 records for small archives.
        let z = sample();
        let z64 = z
            .windows(4)
            .rposition(|w| w == ZIP64_EOCD_SIG.to_le_bytes())
            .unwrap();
        let eocd = z.len() - EOCD_LEN;
        let mut m = z[..z64].to_vec();
        m.extend_from_slice(&z[eocd..]);
        let a = Archive::parse(&m).unwrap();
        assert_eq!(a.read("archive/byteorder").unwrap(), b"little");
    }
}
