//! Building a model file (behind the `alloc` feature): the quantizer declares
//! tensors, buffers and ops; [`ModelWriter::finish`] plans the arena and lays
//! out the bytes.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::layout::*;
use crate::plan::{Lifetime, plan_greedy};
use crate::{FORMAT_VERSION, MAGIC, OVERREAD_BYTES};

/// A buffer declared to the writer (offset and lifetime are planned).
#[derive(Clone, Debug)]
pub struct BufferSpec {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape (1..=4 dims).
    pub shape: Vec<u32>,
    /// `BUF_*` flags.
    pub flags: u8,
    /// `(scale, zero_point)` of an int8 buffer.
    pub quant: Option<(f32, i8)>,
}

/// Accumulates the parts of a model file.
#[derive(Debug, Default)]
pub struct ModelWriter {
    strings: Vec<u8>,
    tensors: Vec<TensorDesc>,
    data: Vec<u8>,
    buffers: Vec<BufferSpec>,
    ops: Vec<OpDesc>,
    class_names: Vec<StrRef>,
    meta: Meta,
}

fn round_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}

fn encode_all<R: Record>(recs: &[R]) -> Vec<u8> {
    let mut out = vec![0u8; recs.len() * R::LEN];
    for (r, chunk) in recs.iter().zip(out.chunks_exact_mut(R::LEN)) {
        r.encode(chunk);
    }
    out
}

fn shape4(shape: &[u32]) -> [u32; 4] {
    assert!(
        !shape.is_empty() && shape.len() <= MAX_RANK,
        "rank must be 1..=4"
    );
    let mut s = [1u32; 4];
    s[..shape.len()].copy_from_slice(shape);
    s
}

impl ModelWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a string and returns its reference (identical strings are shared).
    pub fn intern(&mut self, s: &str) -> StrRef {
        let b = s.as_bytes();
        if let Some(pos) = self.strings.windows(b.len().max(1)).position(|w| w == b)
            && !b.is_empty()
        {
            return StrRef {
                offset: pos as u32,
                len: b.len() as u32,
            };
        }
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(b);
        StrRef {
            offset,
            len: b.len() as u32,
        }
    }

    /// Sets the metadata (its `source` is interned from `source`).
    pub fn set_meta(&mut self, mut meta: Meta, source: &str, class_names: &[&str]) {
        meta.source = self.intern(source);
        meta.num_classes = class_names.len() as u32;
        self.meta = meta;
        self.class_names = class_names.iter().map(|n| self.intern(n)).collect();
    }

    /// Adds a constant tensor with its raw little-endian bytes; returns its id.
    pub fn add_tensor(&mut self, name: &str, dtype: DType, shape: &[u32], bytes: &[u8]) -> u32 {
        let mut d = TensorDesc {
            name: self.intern(name),
            dtype: dtype as u8,
            rank: shape.len() as u8,
            shape: shape4(shape),
            channel_params: NONE,
            ..TensorDesc::default()
        };
        assert_eq!(
            d.numel() * dtype.size() as u64,
            bytes.len() as u64,
            "tensor {name}: bytes do not match shape"
        );
        let at = round_up(self.data.len() as u64, 64);
        self.data.resize(at as usize, 0);
        self.data.extend_from_slice(bytes);
        self.data.resize(self.data.len() + OVERREAD_BYTES, 0);
        d.offset = at; // relative to the data section until `finish`
        d.len = bytes.len() as u64;
        self.tensors.push(d);
        (self.tensors.len() - 1) as u32
    }

    /// Adds an f32 tensor; returns its id.
    pub fn add_f32(&mut self, name: &str, shape: &[u32], values: &[f32]) -> u32 {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_tensor(name, DType::F32, shape, &bytes)
    }

    /// Sets per-tensor quantisation parameters of tensor `id`.
    pub fn set_per_tensor_quant(&mut self, id: u32, scale: f32, zero_point: i32) {
        let t = &mut self.tensors[id as usize];
        t.quant = QuantKind::PerTensor as u8;
        t.scale = scale;
        t.zero_point = zero_point;
    }

    /// Sets per-channel quantisation of tensor `id` along `axis`, with scales in tensor `scales`.
    pub fn set_per_channel_quant(&mut self, id: u32, axis: u8, scales: u32) {
        let t = &mut self.tensors[id as usize];
        t.quant = QuantKind::PerChannel as u8;
        t.quant_axis = axis;
        t.channel_params = scales;
    }

    /// Declares an activation or scratch buffer; returns its id.
    pub fn add_buffer(&mut self, name: &str, dtype: DType, shape: &[u32], flags: u8) -> u32 {
        shape4(shape);
        self.buffers.push(BufferSpec {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            flags,
            quant: None,
        });
        (self.buffers.len() - 1) as u32
    }

    /// The declared buffer `id`.
    pub fn buffer(&self, id: u32) -> &BufferSpec {
        &self.buffers[id as usize]
    }

    /// The declared buffer `id`, mutable (to rename or flag it).
    pub fn buffer_mut(&mut self, id: u32) -> &mut BufferSpec {
        &mut self.buffers[id as usize]
    }

    /// Number of ops added so far.
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }

    /// Appends an op (its `name` is interned from `name`); returns its index.
    pub fn add_op(&mut self, name: &str, mut op: OpDesc) -> u32 {
        op.name = self.intern(name);
        self.ops.push(op);
        (self.ops.len() - 1) as u32
    }

    /// Computes each buffer's lifetime from the ops (inputs from op 0, exported
    /// buffers to the last op).
    pub fn lifetimes(&self) -> Vec<Lifetime> {
        let last = self.ops.len().saturating_sub(1) as u32;
        let mut lt: Vec<Option<(u32, u32)>> = vec![None; self.buffers.len()];
        for (i, b) in self.buffers.iter().enumerate() {
            if b.flags & BUF_INPUT != 0 {
                lt[i] = Some((0, 0));
            }
        }
        for (i, op) in self.ops.iter().enumerate() {
            for id in op.buffer_ids() {
                let e = &mut lt[id as usize];
                *e = Some(match *e {
                    None => (i as u32, i as u32),
                    Some((f, _)) => (f, i as u32),
                });
            }
        }
        self.buffers
            .iter()
            .zip(lt)
            .map(|(b, l)| {
                let (first, mut end) = l.unwrap_or((0, 0));
                if b.flags & BUF_EXPORTED != 0 {
                    end = last;
                }
                let bytes =
                    b.shape.iter().map(|&d| d as u64).product::<u64>() * b.dtype.size() as u64;
                Lifetime {
                    first,
                    last: end,
                    size: round_up(bytes.max(1), 64),
                }
            })
            .collect()
    }

    /// Plans the arena and serialises the file.
    pub fn finish(mut self) -> Vec<u8> {
        let lifetimes = self.lifetimes();
        let (offsets, peak) = plan_greedy(&lifetimes);
        let arena_size = peak;
        let buffer_descs: Vec<BufferDesc> = (0..self.buffers.len())
            .map(|i| {
                let b = self.buffers[i].clone();
                BufferDesc {
                    name: self.intern(&b.name),
                    dtype: b.dtype as u8,
                    rank: b.shape.len() as u8,
                    flags: b.flags,
                    zero_point: b.quant.map_or(0, |(_, z)| z as u8),
                    shape: shape4(&b.shape),
                    first_op: lifetimes[i].first,
                    offset: offsets[i],
                    size: lifetimes[i].size,
                    last_op: lifetimes[i].last,
                    scale_bits: b.quant.map_or(0, |(s, _)| s.to_bits()),
                }
            })
            .collect();

        // Sections in file order; the data section goes last.
        let mut meta_bytes = vec![0u8; META_LEN];
        self.meta.encode(&mut meta_bytes);
        let tensors_bytes_len = self.tensors.len() * TENSOR_DESC_LEN;
        let buffers_bytes = encode_all(&buffer_descs);
        let ops_bytes = encode_all(&self.ops);
        let names_bytes = encode_all(&self.class_names);

        let sections: [(SectionKind, usize, usize, usize); 7] = [
            (SectionKind::Meta, META_LEN, META_LEN, 1),
            (
                SectionKind::Tensors,
                TENSOR_DESC_LEN,
                tensors_bytes_len,
                self.tensors.len(),
            ),
            (
                SectionKind::Buffers,
                BUFFER_DESC_LEN,
                buffers_bytes.len(),
                buffer_descs.len(),
            ),
            (
                SectionKind::Ops,
                OP_DESC_LEN,
                ops_bytes.len(),
                self.ops.len(),
            ),
            (
                SectionKind::ClassNames,
                STR_REF_LEN,
                names_bytes.len(),
                self.class_names.len(),
            ),
            (
                SectionKind::Strings,
                0,
                self.strings.len(),
                self.strings.len(),
            ),
            (SectionKind::Data, 0, self.data.len(), self.data.len()),
        ];
        let mut at = round_up((HEADER_LEN + sections.len() * SECTION_ENTRY_LEN) as u64, 64);
        let mut entries = Vec::new();
        for &(kind, rec, len, count) in &sections {
            entries.push(SectionEntry {
                kind: kind as u32,
                record_size: rec as u32,
                offset: at,
                len: len as u64,
                count: count as u64,
            });
            at = round_up(at + len as u64, 64);
        }
        let data_base = entries[6].offset;
        let total = entries[6].offset + entries[6].len;
        let mut out = vec![0u8; total as usize];
        for (i, e) in entries.iter().enumerate() {
            let o = HEADER_LEN + i * SECTION_ENTRY_LEN;
            e.encode(&mut out[o..o + SECTION_ENTRY_LEN]);
        }
        let put = |out: &mut Vec<u8>, e: &SectionEntry, b: &[u8]| {
            out[e.offset as usize..e.offset as usize + b.len()].copy_from_slice(b);
        };
        put(&mut out, &entries[0], &meta_bytes);
        for (i, t) in self.tensors.iter().enumerate() {
            let mut t = *t;
            t.offset += data_base;
            let o = entries[1].offset as usize + i * TENSOR_DESC_LEN;
            t.encode(&mut out[o..o + TENSOR_DESC_LEN]);
        }
        put(&mut out, &entries[2], &buffers_bytes);
        put(&mut out, &entries[3], &ops_bytes);
        put(&mut out, &entries[4], &names_bytes);
        put(&mut out, &entries[5], &self.strings);
        put(&mut out, &entries[6], &self.data);
        let header = Header {
            magic: MAGIC,
            version: FORMAT_VERSION,
            flags: 0,
            total_len: total,
            checksum: 0,
            section_count: sections.len() as u32,
            header_len: HEADER_LEN as u32,
            arena_size,
            reserved: [0; 16],
        };
        header.encode(&mut out[..HEADER_LEN]);
        crate::checksum::seal(&mut out);
        out
    }
}
