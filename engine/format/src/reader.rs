//! The validated, zero-copy view over a model file.

use crate::checksum::xxh64;
use crate::error::FormatError;
use crate::layout::*;
use crate::{CHECKSUM_FROM, FORMAT_VERSION, MAGIC, OVERREAD_BYTES};

/// Most sections a version-1 file may have.
const MAX_SECTIONS: u32 = 16;
/// Upper bound on the arena a file may ask for (64 GiB): rejects absurd plans.
const MAX_ARENA: u64 = 1 << 36;

/// A byte range of the file.
#[derive(Clone, Copy, Debug, Default)]
struct Range {
    offset: usize,
    len: usize,
    count: usize,
}

/// A validated model file borrowed from its bytes.
///
/// [`ModelFile::parse`] checks every offset, length, shape, dtype, string, buffer
/// id and the memory plan once; afterwards every accessor indexes only ranges that
/// were proven in bounds.
#[derive(Clone, Copy, Debug)]
pub struct ModelFile<'a> {
    bytes: &'a [u8],
    header: Header,
    meta: Meta,
    tensors: Range,
    buffers: Range,
    ops: Range,
    strings: Range,
    data: Range,
    class_names: Range,
}

fn truncated(needed: u64, found: usize) -> FormatError {
    FormatError::Truncated {
        needed,
        found: found as u64,
    }
}

impl<'a> ModelFile<'a> {
    /// Validates `bytes` and returns the view.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        // The magic first: any other file is "not a model file", whatever
        // its length.
        let head = &bytes[..bytes.len().min(MAGIC.len())];
        if head != &MAGIC[..head.len()] {
            return Err(FormatError::BadMagic);
        }
        if bytes.len() < HEADER_LEN {
            return Err(truncated(HEADER_LEN as u64, bytes.len()));
        }
        let header = Header::decode(&bytes[..HEADER_LEN]);
        if header.version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: header.version,
            });
        }
        if header.total_len != bytes.len() as u64
            && xxh64(&bytes[CHECKSUM_FROM..]) == header.checksum
        {
            // The bytes present are exactly those the checksum sealed: the
            // size field is what is wrong, not the file.
            return Err(FormatError::CorruptHeader {
                declared: header.total_len,
                found: bytes.len() as u64,
            });
        }
        if header.total_len > bytes.len() as u64 {
            return Err(truncated(header.total_len, bytes.len()));
        }
        if header.total_len < bytes.len() as u64 {
            return Err(FormatError::TrailingBytes {
                declared: header.total_len,
                found: bytes.len() as u64,
            });
        }
        let computed = xxh64(&bytes[CHECKSUM_FROM..]);
        if computed != header.checksum {
            return Err(FormatError::ChecksumMismatch {
                stored: header.checksum,
                computed,
            });
        }
        if header.header_len as usize != HEADER_LEN {
            return Err(FormatError::BadHeader("header length is not 64"));
        }
        if header.flags != 0 || header.reserved != [0; 16] {
            return Err(FormatError::BadHeader(
                "reserved header fields are not zero",
            ));
        }
        if header.arena_size > MAX_ARENA {
            return Err(FormatError::BadHeader("arena size is absurd"));
        }
        if header.section_count == 0 || header.section_count > MAX_SECTIONS {
            return Err(FormatError::BadHeader("bad section count"));
        }
        let table_end = HEADER_LEN + header.section_count as usize * SECTION_ENTRY_LEN;
        if table_end > bytes.len() {
            return Err(truncated(table_end as u64, bytes.len()));
        }

        let mut found: [Option<Range>; 8] = [None; 8];
        for i in 0..header.section_count as usize {
            let at = HEADER_LEN + i * SECTION_ENTRY_LEN;
            let e = SectionEntry::decode(&bytes[at..at + SECTION_ENTRY_LEN]);
            let bad = |reason| FormatError::BadSection {
                kind: e.kind,
                reason,
            };
            let want = match e.kind {
                k if k == SectionKind::Meta as u32 => META_LEN,
                k if k == SectionKind::Tensors as u32 => TENSOR_DESC_LEN,
                k if k == SectionKind::Buffers as u32 => BUFFER_DESC_LEN,
                k if k == SectionKind::Ops as u32 => OP_DESC_LEN,
                k if k == SectionKind::Strings as u32 => 1,
                k if k == SectionKind::Data as u32 => 1,
                k if k == SectionKind::ClassNames as u32 => STR_REF_LEN,
                _ => return Err(bad("unknown section kind")),
            };
            let rec = if want == 1 { 0 } else { want };
            if e.record_size as usize != rec {
                return Err(bad("wrong record size"));
            }
            if e.offset % 64 != 0 {
                return Err(bad("section offset is not 64-byte aligned"));
            }
            let end = e
                .offset
                .checked_add(e.len)
                .ok_or(bad("section range overflows"))?;
            if e.offset < table_end as u64 || end > header.total_len {
                return Err(bad("section lies outside the file body"));
            }
            if e.count.checked_mul(want as u64) != Some(e.len) {
                return Err(bad("record count does not match the length"));
            }
            let slot = &mut found[e.kind as usize];
            if slot.is_some() {
                return Err(bad("duplicate section"));
            }
            *slot = Some(Range {
                offset: e.offset as usize,
                len: e.len as usize,
                count: e.count as usize,
            });
        }
        let need = |k: SectionKind| {
            found[k as usize].ok_or(FormatError::MissingSection { kind: k as u32 })
        };
        let meta_r = need(SectionKind::Meta)?;
        if meta_r.count != 1 {
            return Err(FormatError::BadMeta(
                "the meta section must hold one record",
            ));
        }
        let meta = Meta::decode(&bytes[meta_r.offset..meta_r.offset + META_LEN]);
        let file = ModelFile {
            bytes,
            header,
            meta,
            tensors: need(SectionKind::Tensors)?,
            buffers: need(SectionKind::Buffers)?,
            ops: need(SectionKind::Ops)?,
            strings: need(SectionKind::Strings)?,
            data: need(SectionKind::Data)?,
            class_names: need(SectionKind::ClassNames)?,
        };
        file.validate()?;
        Ok(file)
    }

    fn check_str(&self, s: StrRef) -> Result<(), FormatError> {
        let end = s.offset as usize + s.len as usize;
        if end > self.strings.len {
            return Err(FormatError::BadString);
        }
        let b = &self.bytes[self.strings.offset + s.offset as usize..self.strings.offset + end];
        core::str::from_utf8(b)
            .map(|_| ())
            .map_err(|_| FormatError::BadString)
    }

    fn validate(&self) -> Result<(), FormatError> {
        // Metadata.
        let m = &self.meta;
        if m.input_size == 0 || !m.input_size.is_multiple_of(32) || m.input_size > 8192 {
            return Err(FormatError::BadMeta(
                "input size must be a positive multiple of 32 up to 8192",
            ));
        }
        if m.in_channels != 3 {
            return Err(FormatError::BadMeta("input must have 3 channels"));
        }
        if m.num_classes == 0 || m.num_classes as usize != self.class_names.count {
            return Err(FormatError::BadMeta(
                "class count does not match the class names",
            ));
        }
        if m.input_buffer as usize >= self.buffers.count {
            return Err(FormatError::BadMeta("input buffer id out of range"));
        }
        if m.reserved != [0; 8] {
            return Err(FormatError::BadMeta("reserved fields are not zero"));
        }
        self.check_str(m.source)?;
        for i in 0..self.class_names.count {
            self.check_str(self.class_name_ref(i))?;
        }

        // Constant tensors.
        let n_tensors = self.tensors.count;
        for i in 0..n_tensors {
            let t = self.tensor(i as u32);
            let bad = |reason| FormatError::BadTensor {
                index: i as u32,
                reason,
            };
            self.check_str(t.name)?;
            let dt = DType::from_u8(t.dtype).ok_or(bad("unknown dtype"))?;
            if t.rank == 0 || t.rank as usize > MAX_RANK {
                return Err(bad("rank must be 1..=4"));
            }
            if t.shape[t.rank as usize..].iter().any(|&d| d != 1) || t.shape.contains(&0) {
                return Err(bad("bad shape"));
            }
            if t.numel().checked_mul(dt.size() as u64) != Some(t.len) {
                return Err(bad("data length does not match shape and dtype"));
            }
            if !t.offset.is_multiple_of(64) {
                return Err(bad("data is not 64-byte aligned"));
            }
            let start = self.data.offset as u64;
            let end = start + self.data.len as u64;
            let tend = t
                .offset
                .checked_add(t.len)
                .and_then(|e| e.checked_add(OVERREAD_BYTES as u64));
            if t.offset < start || tend.is_none_or(|e| e > end) {
                return Err(bad(
                    "data (with its over-read padding) lies outside the data section",
                ));
            }
            match QuantKind::from_u8(t.quant).ok_or(bad("unknown quantisation kind"))? {
                QuantKind::None => {}
                QuantKind::PerTensor => {
                    if !(t.scale.is_finite() && t.scale > 0.0) {
                        return Err(bad("bad quantisation scale"));
                    }
                }
                QuantKind::PerChannel => {
                    if t.quant_axis >= t.rank || t.channel_params as usize >= n_tensors {
                        return Err(bad("bad per-channel parameters"));
                    }
                    let p = self.tensor(t.channel_params);
                    if p.dtype != DType::F32 as u8
                        || p.numel() != t.shape[t.quant_axis as usize] as u64
                    {
                        return Err(bad("per-channel scales have the wrong dtype or length"));
                    }
                }
            }
        }

        // Buffers.
        let n_ops = self.ops.count;
        if n_ops == 0 {
            return Err(FormatError::BadOp {
                index: 0,
                reason: "the graph has no ops",
            });
        }
        for i in 0..self.buffers.count {
            let b = self.buffer(i as u32);
            let bad = |reason| FormatError::BadBuffer {
                index: i as u32,
                reason,
            };
            self.check_str(b.name)?;
            let dt = DType::from_u8(b.dtype).ok_or(bad("unknown dtype"))?;
            if b.rank == 0 || b.rank as usize > MAX_RANK {
                return Err(bad("rank must be 1..=4"));
            }
            if b.shape[b.rank as usize..].iter().any(|&d| d != 1) || b.shape.contains(&0) {
                return Err(bad("bad shape"));
            }
            if b.flags & !(BUF_EXPORTED | BUF_SCRATCH | BUF_INPUT | BUF_TOKENS) != 0 {
                return Err(bad("unknown flags"));
            }
            let scale = f32::from_bits(b.scale_bits);
            let quant_ok = if dt == DType::I8 && b.flags & BUF_SCRATCH == 0 {
                scale.is_finite() && scale > 0.0
            } else {
                b.scale_bits == 0 && b.zero_point == 0
            };
            if !quant_ok {
                return Err(bad(
                    "an int8 buffer needs a positive scale; other buffers none",
                ));
            }
            if !b.offset.is_multiple_of(64) || !b.size.is_multiple_of(64) {
                return Err(bad("offset or size is not a multiple of 64"));
            }
            if b.numel()
                .checked_mul(dt.size() as u64)
                .is_none_or(|n| n > b.size)
            {
                return Err(bad("size is smaller than shape × dtype"));
            }
            if b.offset
                .checked_add(b.size)
                .is_none_or(|e| e > self.header.arena_size)
            {
                return Err(bad("lies outside the arena"));
            }
            if b.first_op > b.last_op || b.last_op as usize >= n_ops {
                return Err(bad("bad lifetime"));
            }
            if b.flags & BUF_EXPORTED != 0 && b.last_op as usize != n_ops - 1 {
                return Err(bad("an exported buffer must live to the end"));
            }
            if b.flags & BUF_INPUT != 0 && b.first_op != 0 {
                return Err(bad("an input buffer must live from the start"));
            }
        }

        // Ops: ids in range, and every use inside the buffer's planned lifetime.
        for i in 0..n_ops {
            let op = self.op(i as u32);
            let bad = |reason| FormatError::BadOp {
                index: i as u32,
                reason,
            };
            self.check_str(op.name)?;
            if op.stage > 3 {
                return Err(bad("unknown stage"));
            }
            for list in [&op.inputs[..], &op.outputs[..]] {
                let used = list.iter().take_while(|&&x| x != NONE).count();
                if list[used..].iter().any(|&x| x != NONE) {
                    return Err(bad("buffer id after an empty slot"));
                }
            }
            if op.outputs[0] == NONE {
                return Err(bad("op has no output"));
            }
            if op.outputs[1] != NONE && op.outputs[0] == op.outputs[1] {
                return Err(bad("op writes one buffer twice"));
            }
            for id in op.buffer_ids() {
                if id as usize >= self.buffers.count {
                    return Err(bad("buffer id out of range"));
                }
                let b = self.buffer(id);
                if (i as u32) < b.first_op || i as u32 > b.last_op {
                    return Err(bad("buffer used outside its planned lifetime"));
                }
            }
            for id in op.input_ids() {
                let b = self.buffer(id);
                if b.flags & BUF_SCRATCH != 0 {
                    return Err(bad("reads a scratch buffer"));
                }
                if b.flags & BUF_INPUT == 0 && b.first_op >= i as u32 {
                    return Err(bad("reads a buffer before it is written"));
                }
            }
            for id in op.output_ids() {
                let b = self.buffer(id);
                if b.flags & (BUF_SCRATCH | BUF_INPUT) != 0 || b.first_op != i as u32 {
                    return Err(bad("writes a buffer it does not own"));
                }
            }
            if op.scratch != NONE && self.buffer(op.scratch).flags & BUF_SCRATCH == 0 {
                return Err(bad("scratch slot names a non-scratch buffer"));
            }
            for &t in op.tensors.iter() {
                if t != NONE && t as usize >= n_tensors {
                    return Err(bad("tensor id out of range"));
                }
            }
        }
        // Every non-input, non-scratch buffer must be written by some op.
        for i in 0..self.buffers.count {
            let b = self.buffer(i as u32);
            if b.flags & (BUF_INPUT | BUF_SCRATCH) == 0 {
                let op = self.op(b.first_op);
                if !op.output_ids().any(|o| o == i as u32) {
                    return Err(FormatError::BadBuffer {
                        index: i as u32,
                        reason: "no op writes it",
                    });
                }
            }
        }

        // The plan: buffers live at the same time must not share bytes.
        for a in 0..self.buffers.count {
            let ba = self.buffer(a as u32);
            for b in a + 1..self.buffers.count {
                let bb = self.buffer(b as u32);
                let live_together = ba.first_op <= bb.last_op && bb.first_op <= ba.last_op;
                let share = ba.offset < bb.offset + bb.size && bb.offset < ba.offset + ba.size;
                if live_together && share {
                    return Err(FormatError::PlanOverlap {
                        a: a as u32,
                        b: b as u32,
                    });
                }
            }
        }
        Ok(())
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// The metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }
    /// Bytes of arena a session needs.
    pub fn arena_size(&self) -> usize {
        self.header.arena_size as usize
    }
    /// Number of constant tensors.
    pub fn tensor_count(&self) -> usize {
        self.tensors.count
    }
    /// Number of activation/scratch buffers.
    pub fn buffer_count(&self) -> usize {
        self.buffers.count
    }
    /// Number of ops.
    pub fn op_count(&self) -> usize {
        self.ops.count
    }
    /// Number of classes.
    pub fn class_count(&self) -> usize {
        self.class_names.count
    }

    fn record<R: Record>(&self, r: Range, i: u32) -> R {
        let at = r.offset + i as usize * R::LEN;
        R::decode(&self.bytes[at..at + R::LEN])
    }

    /// Tensor descriptor `i` (`i < tensor_count()`).
    pub fn tensor(&self, i: u32) -> TensorDesc {
        self.record(self.tensors, i)
    }
    /// Buffer descriptor `i` (`i < buffer_count()`).
    pub fn buffer(&self, i: u32) -> BufferDesc {
        self.record(self.buffers, i)
    }
    /// Op descriptor `i` (`i < op_count()`).
    pub fn op(&self, i: u32) -> OpDesc {
        self.record(self.ops, i)
    }
    fn class_name_ref(&self, i: usize) -> StrRef {
        self.record(self.class_names, i as u32)
    }
    /// Class name `i` (`i < class_count()`).
    pub fn class_name(&self, i: usize) -> &'a str {
        self.str(self.class_name_ref(i))
    }
    /// A validated string.
    pub fn str(&self, s: StrRef) -> &'a str {
        let start = self.strings.offset + s.offset as usize;
        core::str::from_utf8(&self.bytes[start..start + s.len as usize]).unwrap_or("")
    }
    /// The data of tensor `i` (exactly `len` bytes).
    pub fn tensor_bytes(&self, i: u32) -> &'a [u8] {
        let t = self.tensor(i);
        &self.bytes[t.offset as usize..(t.offset + t.len) as usize]
    }
    /// The data of tensor `i` followed by the [`OVERREAD_BYTES`] that kernels may read.
    pub fn tensor_bytes_padded(&self, i: u32) -> &'a [u8] {
        let t = self.tensor(i);
        &self.bytes[t.offset as usize..(t.offset + t.len) as usize + OVERREAD_BYTES]
    }
    /// The id of the buffer named `name`.
    pub fn find_buffer(&self, name: &str) -> Option<u32> {
        (0..self.buffers.count as u32).find(|&i| self.str(self.buffer(i).name) == name)
    }
    /// The id of the tensor named `name`.
    pub fn find_tensor(&self, name: &str) -> Option<u32> {
        (0..self.tensors.count as u32).find(|&i| self.str(self.tensor(i).name) == name)
    }
}
