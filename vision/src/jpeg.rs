//! A JPEG decoder whose output is libjpeg-turbo's, bit for bit, with the
//! settings OpenCV uses in `cv2.imdecode(buf, cv2.IMREAD_COLOR)`: the
//! accurate integer IDCT (`JDCT_ISLOW`), "fancy" (triangle-filter) chroma
//! upsampling, and libjpeg's table-driven YCbCr→RGB conversion. ultralytics
//! feeds exactly that image to the network, so matching it makes the whole
//! preprocessing bit-exact (the pure-Rust decoders on crates.io use other
//! IDCTs and upsamplers and differ by up to 3–4 levels per pixel).
//!
//! Supported: baseline and extended sequential (SOF0/SOF1) and progressive
//! (SOF2) Huffman-coded 8-bit JPEGs with 1 (grayscale) or 3 (YCbCr or RGB)
//! components, any integral sampling factors, restart intervals, and the EXIF
//! orientation that OpenCV applies. Not supported (a clear error): arithmetic
//! coding, lossless and hierarchical JPEG, 12-bit samples, CMYK/YCCK.
//! A truncated file (no end-of-image marker, or entropy-coded data that ends
//! early) and corrupt data are errors, where libjpeg would warn and fill the
//! rest with grey. Incomplete progressive files (fewer
//! refinement scans than needed) decode, but libjpeg's block smoothing for
//! them is not reproduced.
//!
//! [`decode_scaled`] reproduces libjpeg's DCT-domain downscaling
//! (`scale_denom` 2, 4, 8: `cv2.IMREAD_REDUCED_COLOR_2/4/8`), a cheap first
//! reduction of camera frames far above the model's input ([`Scale`]).
//!
//! How it runs: a sequential scan of every component (nearly every camera
//! and phone JPEG) is decoded MCU row by MCU row; each row's blocks are
//! inverse-DCT'd into a small ring of sample rows per component (three MCU
//! rows: the context of fancy vertical upsampling), and the output rows are
//! upsampled and colour-converted from there, so nothing is stored per
//! block. Progressive and non-interleaved files store their coefficients and
//! then take the same path. The IDCT, the fancy upsampling and the colour
//! conversion are slots of the kernel table (`edgedetr_kernels::jpeg`:
//! scalar reference, AVX2 and NEON, byte-identical); [`decode_with_kernels`]
//! takes the table, [`decode`] uses the detected one.
//!
//! Each step names the libjpeg-turbo routine it reproduces; the code is
//! written from the JPEG standard (ITU T.81) and those routines' documented
//! arithmetic, not copied.

/// Zig-zag index → natural (row-major) index, with 16 extra entries pointing
/// at 63 so that a corrupt run length cannot index outside a block (libjpeg's
/// `jpeg_natural_order` does the same).
const NATURAL: [usize; 80] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 63, 63, 63,
];

/// [`NATURAL`] as bytes, padded to 128 entries so that `k & 127` indexes
/// it without a bounds check.
const NATURAL_U8: [u8; 128] = {
    let mut t = [63u8; 128];
    let mut i = 0;
    while i < 80 {
        t[i] = NATURAL[i] as u8;
        i += 1;
    }
    t
};

use alloc::vec;
use alloc::vec::Vec;

use edgedetr_kernels::Kernels;
use edgedetr_kernels::jpeg::range_limit;

use crate::error::DecodeError;
use crate::image::{Image, Limits};

type Result<T> = core::result::Result<T, DecodeError>;

fn truncated() -> DecodeError {
    DecodeError::Truncated("truncated or corrupt JPEG data (the entropy-coded data ends early)")
}

/// A canonical Huffman table (T.81 Annex C) with an 11-bit lookup for short codes.
struct Huffman {
    /// `(length << 8) | symbol` for each 11-bit prefix that starts with a
    /// code of at most 11 bits; 0 where a longer code (or none) starts.
    lookup: Vec<u16>,
    /// For AC tables, run/size and value decoded at once:
    /// `(value << 16) | (run << 8) | (code length + size)` for each 11-bit
    /// prefix that holds a whole code of a non-zero size and its value bits;
    /// 0 elsewhere.
    fast_ac: Vec<i32>,
    /// Largest code of each length (index 1..=16), -1 when none.
    maxcode: [i32; 17],
    /// `index of the first symbol of length l` − `first code of length l`.
    valoff: [i32; 17],
    values: Vec<u8>,
}

const LOOKUP_BITS: u32 = 11;

impl Huffman {
    /// The code at the top of `acc` (16 bits or more valid): `(length,
    /// symbol)`, or `None` for a bit pattern that is no code.
    #[inline]
    fn peek(&self, acc: u64) -> Option<(u32, u8)> {
        let e = self.lookup[(acc >> (64 - LOOKUP_BITS)) as usize];
        if e != 0 {
            return Some((u32::from(e >> 8), e as u8));
        }
        let code16 = (acc >> 48) as i32;
        for l in LOOKUP_BITS + 1..=16 {
            let code = code16 >> (16 - l);
            if code <= self.maxcode[l as usize] {
                let i = code + self.valoff[l as usize];
                return self.values.get(i as usize).map(|&v| (l, v));
            }
        }
        None
    }

    fn new(counts: &[u8; 16], values: &[u8]) -> Result<Self> {
        let mut lookup = vec![0u16; 1 << LOOKUP_BITS];
        let mut maxcode = [-1i32; 17];
        let mut valoff = [0i32; 17];
        let mut code = 0i32;
        let mut k = 0usize;
        for l in 1..=16u32 {
            let n = usize::from(counts[l as usize - 1]);
            valoff[l as usize] = k as i32 - code;
            for _ in 0..n {
                let sym = *values
                    .get(k)
                    .ok_or(DecodeError::Corrupt("bad JPEG Huffman table"))?;
                if code >= 1 << l {
                    return Err(DecodeError::Corrupt(
                        "bad JPEG Huffman table (code space overflow)",
                    ));
                }
                if l <= LOOKUP_BITS {
                    let shift = LOOKUP_BITS - l;
                    let base = (code as usize) << shift;
                    for e in &mut lookup[base..base + (1 << shift)] {
                        *e = ((l as u16) << 8) | u16::from(sym);
                    }
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                maxcode[l as usize] = code - 1;
            }
            // libjpeg (jpeg_make_d_derived_tbl): no code may be all ones.
            if code >= 1 << l {
                return Err(DecodeError::Corrupt(
                    "bad JPEG Huffman table (code space overflow)",
                ));
            }
            code <<= 1;
        }
        let fast_ac = (0..1usize << LOOKUP_BITS)
            .map(|i| {
                let e = lookup[i];
                let (l, rs) = (u32::from(e >> 8), e & 0xFF);
                let (r, sz) = (i32::from(rs >> 4), u32::from(rs & 15));
                if e == 0 || sz == 0 || l + sz > LOOKUP_BITS {
                    return 0;
                }
                let bits = ((i >> (LOOKUP_BITS - l - sz)) & ((1 << sz) - 1)) as i32;
                let v = if bits < 1 << (sz - 1) {
                    bits - (1 << sz) + 1
                } else {
                    bits
                };
                (v << 16) | (r << 8) | (l + sz) as i32
            })
            .collect();
        Ok(Huffman {
            lookup,
            fast_ac,
            maxcode,
            valoff,
            values: values[..k].to_vec(),
        })
    }
}

/// Entropy-coded data reader: removes stuffed zero bytes, stops at markers,
/// and remembers whether the decoder consumed bits past the real data
/// (libjpeg pads with zeros and warns; we report truncation).
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    nbits: u32,
    /// Zero bits at the bottom of `acc` that are padding past a marker or EOF.
    pad: u32,
    at_end: bool,
    overrun: bool,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        BitReader {
            data,
            pos,
            acc: 0,
            nbits: 0,
            pad: 0,
            at_end: false,
            overrun: false,
        }
    }

    fn next_byte(&mut self) -> u8 {
        if self.at_end {
            self.pad += 8;
            return 0;
        }
        match self.data.get(self.pos) {
            Some(&0xFF) => {
                let mut q = self.pos + 1;
                while self.data.get(q) == Some(&0xFF) {
                    q += 1;
                }
                if self.data.get(q) == Some(&0) {
                    self.pos = q + 1;
                    0xFF
                } else {
                    // A marker (or EOF): leave `pos` on it.
                    self.at_end = true;
                    self.pad += 8;
                    0
                }
            }
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => {
                self.at_end = true;
                self.pad += 8;
                0
            }
        }
    }

    #[inline]
    fn fill(&mut self) {
        // Fast path: as many whole bytes as fit, from eight that hold no 0xFF
        // (so no stuffing and no marker). Bits of a byte not yet counted may
        // land in `acc`: the byte is ORed in at the same place later.
        if !self.at_end
            && let Some(b) = self.data.get(self.pos..self.pos + 8)
        {
            let w = u64::from_be_bytes(b.try_into().unwrap_or([0xFF; 8]));
            let x = !w;
            if x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080 == 0 {
                let k = (64 - self.nbits) / 8;
                self.acc |= w >> self.nbits;
                self.pos += k as usize;
                self.nbits += 8 * k;
                return;
            }
        }
        self.fill_bytewise();
    }

    /// [`BitReader::fill`] byte by byte: stuffing, markers, the end.
    #[cold]
    #[inline(never)]
    fn fill_bytewise(&mut self) {
        while self.nbits <= 56 {
            let b = self.next_byte();
            self.acc |= u64::from(b) << (56 - self.nbits);
            self.nbits += 8;
        }
    }

    #[inline]
    fn consume(&mut self, n: u32) {
        self.acc <<= n;
        self.nbits -= n;
        if self.nbits < self.pad {
            self.overrun = true;
            self.pad = self.nbits;
        }
    }

    /// `n` (≤ 16) raw bits.
    fn bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        if self.nbits < n {
            self.fill();
        }
        let v = (self.acc >> (64 - n)) as u32;
        self.consume(n);
        v
    }

    #[inline]
    fn decode(&mut self, h: &Huffman) -> Result<u8> {
        if self.nbits < 16 {
            self.fill();
        }
        let e = h.lookup[(self.acc >> (64 - LOOKUP_BITS)) as usize];
        if e != 0 {
            self.consume(u32::from(e >> 8));
            return Ok(e as u8);
        }
        let code16 = (self.acc >> 48) as i32;
        for l in LOOKUP_BITS + 1..=16 {
            let code = code16 >> (16 - l);
            if code <= h.maxcode[l as usize] {
                self.consume(l);
                let i = code + h.valoff[l as usize];
                return h
                    .values
                    .get(i as usize)
                    .copied()
                    .ok_or(DecodeError::Corrupt("corrupt JPEG data (bad Huffman code)"));
            }
        }
        if self.overrun || self.at_end {
            Err(truncated())
        } else {
            Err(DecodeError::Corrupt("corrupt JPEG data (bad Huffman code)"))
        }
    }

    /// A value of `s` bits, sign-extended as T.81 F.2.2.1 (`HUFF_EXTEND`).
    fn receive_extend(&mut self, s: u32) -> Result<i32> {
        if s == 0 {
            return Ok(0);
        }
        if s > 16 {
            return Err(DecodeError::Corrupt(
                "corrupt JPEG data (coefficient size above 16 bits)",
            ));
        }
        let v = self.bits(s) as i32;
        Ok(if v < 1 << (s - 1) {
            v - (1 << s) + 1
        } else {
            v
        })
    }

    /// Restart: drops the buffered bits and skips the next RSTn marker.
    fn restart(&mut self) -> Result<()> {
        self.acc = 0;
        self.nbits = 0;
        self.pad = 0;
        self.at_end = false;
        let mut q = self.pos;
        loop {
            match self.data.get(q) {
                None => return Err(truncated()),
                Some(&0xFF) => {
                    let mut r = q + 1;
                    while self.data.get(r) == Some(&0xFF) {
                        r += 1;
                    }
                    match self.data.get(r) {
                        None => return Err(truncated()),
                        Some(&0) => q = r + 1,
                        Some(m) if (0xD0..=0xD7).contains(m) => {
                            self.pos = r + 1;
                            return Ok(());
                        }
                        Some(_) => {
                            return Err(DecodeError::Corrupt(
                                "corrupt JPEG data (missing restart marker)",
                            ));
                        }
                    }
                }
                Some(_) => q += 1,
            }
        }
    }
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Quantisation table latched at the component's first scan (libjpeg's
    /// `latch_quant_tables`), natural order.
    quant: Option<[u16; 64]>,
    /// `quant` as libjpeg's 16-bit `ISLOW_MULT_TYPE`.
    quant16: [i16; 64],
    /// `downsampled_width/height`: the component's real samples.
    dw: usize,
    dh: usize,
    /// Blocks per row and column, padded to whole MCUs.
    bw: usize,
    bh: usize,
    /// `bw * bh * 64` coefficients, natural order within each block.
    coefs: Vec<i16>,
}

struct Frame {
    progressive: bool,
    w: usize,
    h: usize,
    hmax: usize,
    vmax: usize,
    mcux: usize,
    mcuy: usize,
    comps: Vec<Component>,
}

#[derive(Default)]
struct Tables {
    quant: [Option<[u16; 64]>; 4],
    dc: [Option<Huffman>; 4],
    ac: [Option<Huffman>; 4],
    restart: usize,
    jfif: bool,
    adobe_transform: Option<u8>,
    orientation: u16,
}

fn be16(b: &[u8], i: usize) -> Result<usize> {
    match (b.get(i), b.get(i + 1)) {
        (Some(&h), Some(&l)) => Ok(usize::from(h) << 8 | usize::from(l)),
        _ => Err(DecodeError::Truncated("truncated JPEG header")),
    }
}

fn byte(b: &[u8], i: usize) -> Result<u8> {
    b.get(i)
        .copied()
        .ok_or(DecodeError::Truncated("truncated JPEG header"))
}

/// The next marker at or after `p`: `(code, index after the code)`, skipping
/// anything that is not a marker; `None` at the end of the data.
fn next_marker(data: &[u8], mut p: usize) -> Option<(u8, usize)> {
    loop {
        while *data.get(p)? != 0xFF {
            p += 1;
        }
        while *data.get(p)? == 0xFF {
            p += 1;
        }
        let m = *data.get(p)?;
        if m != 0 {
            return Some((m, p + 1));
        }
    }
}

fn parse_dqt(seg: &[u8], t: &mut Tables) -> Result<()> {
    let mut i = 0;
    while i < seg.len() {
        let pq = seg[i] >> 4;
        let tq = usize::from(seg[i] & 15);
        i += 1;
        if tq > 3 || pq > 1 {
            return Err(DecodeError::Corrupt("bad JPEG quantisation table"));
        }
        let mut q = [0u16; 64];
        for &zz in NATURAL.iter().take(64) {
            q[zz] = if pq == 0 {
                let v = u16::from(byte(seg, i)?);
                i += 1;
                v
            } else {
                let v = be16(seg, i)? as u16;
                i += 2;
                v
            };
        }
        t.quant[tq] = Some(q);
    }
    Ok(())
}

fn parse_dht(seg: &[u8], t: &mut Tables) -> Result<()> {
    let mut i = 0;
    while i < seg.len() {
        let tc = seg[i] >> 4;
        let th = usize::from(seg[i] & 15);
        if tc > 1 || th > 3 {
            return Err(DecodeError::Corrupt("bad JPEG Huffman table"));
        }
        let counts: [u8; 16] = seg
            .get(i + 1..i + 17)
            .and_then(|c| c.try_into().ok())
            .ok_or(DecodeError::Truncated("truncated JPEG Huffman table"))?;
        let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let values = seg
            .get(i + 17..i + 17 + n)
            .ok_or(DecodeError::Truncated("truncated JPEG Huffman table"))?;
        if n > 256 {
            return Err(DecodeError::Corrupt("bad JPEG Huffman table"));
        }
        let table = Huffman::new(&counts, values)?;
        if tc == 0 {
            t.dc[th] = Some(table);
        } else {
            t.ac[th] = Some(table);
        }
        i += 17 + n;
    }
    Ok(())
}

fn parse_sof(seg: &[u8], progressive: bool, limits: &Limits) -> Result<Frame> {
    let precision = byte(seg, 0)?;
    if precision != 8 {
        return Err(DecodeError::JpegPrecision(precision));
    }
    let h = be16(seg, 1)?;
    let w = be16(seg, 3)?;
    let nc = usize::from(byte(seg, 5)?);
    if w == 0 || h == 0 {
        return Err(DecodeError::Unsupported(
            "unsupported JPEG: zero width or height (DNL)",
        ));
    }
    limits.check(w as u64, h as u64)?;
    if nc != 1 && nc != 3 {
        return Err(DecodeError::JpegComponents(nc as u8));
    }
    let mut comps = Vec::with_capacity(nc);
    for c in 0..nc {
        let id = byte(seg, 6 + 3 * c)?;
        let hv = byte(seg, 7 + 3 * c)?;
        let tq = usize::from(byte(seg, 8 + 3 * c)?);
        let (hs, vs) = (usize::from(hv >> 4), usize::from(hv & 15));
        if !(1..=4).contains(&hs) || !(1..=4).contains(&vs) || tq > 3 {
            return Err(DecodeError::Corrupt("bad JPEG frame header"));
        }
        comps.push(Component {
            id,
            h: hs,
            v: vs,
            tq,
            quant: None,
            quant16: [0; 64],
            dw: 0,
            dh: 0,
            bw: 0,
            bh: 0,
            coefs: Vec::new(),
        });
    }
    let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
    let mcux = w.div_ceil(8 * hmax);
    let mcuy = h.div_ceil(8 * vmax);
    for c in &mut comps {
        c.dw = (w * c.h).div_ceil(hmax);
        c.dh = (h * c.v).div_ceil(vmax);
        c.bw = mcux * c.h;
        c.bh = mcuy * c.v;
        // The coefficients are allocated when a scan first needs them (see
        // `alloc_scan`), after its data has been seen to exist.
    }
    Ok(Frame {
        progressive,
        w,
        h,
        hmax,
        vmax,
        mcux,
        mcuy,
        comps,
    })
}

/// EXIF orientation (tag 0x0112 in IFD0) of an APP1 segment, if any.
fn exif_orientation(seg: &[u8]) -> Option<u16> {
    let tiff = seg.strip_prefix(b"Exif\0\0")?;
    let le = match tiff.get(0..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let u16_at = |i: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(i..i + 2)?.try_into().ok()?;
        Some(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |i: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(i..i + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let ifd = u32_at(4)? as usize;
    let n = usize::from(u16_at(ifd)?);
    (0..n).find_map(|k| {
        let e = ifd + 2 + 12 * k;
        (u16_at(e)? == 0x0112 && u16_at(e + 2)? == 3).then(|| u16_at(e + 8))?
    })
}

/// One scan's parameters.
struct Scan {
    /// (component index, DC table, AC table).
    comps: Vec<(usize, usize, usize)>,
    ss: usize,
    se: usize,
    ah: u32,
    al: u32,
}

fn parse_sos(seg: &[u8], frame: &Frame) -> Result<Scan> {
    let ns = usize::from(byte(seg, 0)?);
    if !(1..=4).contains(&ns) {
        return Err(DecodeError::Corrupt("bad JPEG scan header"));
    }
    let mut comps = Vec::with_capacity(ns);
    for k in 0..ns {
        let id = byte(seg, 1 + 2 * k)?;
        let t = byte(seg, 2 + 2 * k)?;
        let ci = frame
            .comps
            .iter()
            .position(|c| c.id == id)
            .ok_or(DecodeError::Corrupt(
                "bad JPEG scan header (unknown component)",
            ))?;
        let (td, ta) = (usize::from(t >> 4), usize::from(t & 15));
        if td > 3 || ta > 3 {
            return Err(DecodeError::Corrupt("bad JPEG scan header"));
        }
        comps.push((ci, td, ta));
    }
    let ss = usize::from(byte(seg, 1 + 2 * ns)?);
    let se = usize::from(byte(seg, 2 + 2 * ns)?);
    let a = byte(seg, 3 + 2 * ns)?;
    let (ah, al) = (u32::from(a >> 4), u32::from(a & 15));
    if frame.progressive {
        let dc = ss == 0;
        if se > 63 || ss > se || (dc && se != 0) || (!dc && ns != 1) || al > 13 {
            return Err(DecodeError::Corrupt("bad progressive JPEG scan parameters"));
        }
        if ah != 0 && ah != al + 1 {
            return Err(DecodeError::Corrupt("bad progressive JPEG scan parameters"));
        }
    } else if ss != 0 || se != 63 || ah != 0 || al != 0 {
        return Err(DecodeError::Corrupt("bad JPEG scan parameters"));
    }
    if ns > 1 {
        let blocks: usize = comps
            .iter()
            .map(|&(ci, _, _)| frame.comps[ci].h * frame.comps[ci].v)
            .sum();
        if blocks > 10 {
            return Err(DecodeError::Corrupt(
                "bad JPEG scan: more than 10 blocks per MCU",
            ));
        }
    }
    Ok(Scan {
        comps,
        ss,
        se,
        ah,
        al,
    })
}

/// `decode_mcu` (jdhuff.c) for one block of a sequential scan: the DC
/// difference, then run-length AC coefficients, into `blk` (natural order).
/// Returns whether an AC code other than end-of-block came (`false`: a
/// DC-only block).
fn decode_block_seq(
    br: &mut BitReader<'_>,
    blk: &mut [i16; 64],
    dc: &Huffman,
    ac: &Huffman,
    pred: &mut i32,
) -> Result<bool> {
    blk.fill(0);
    let s = u32::from(br.decode(dc)?);
    *pred = pred.wrapping_add(br.receive_extend(s)?);
    blk[0] = *pred as i16;
    let mut k = 1;
    // Fast path, away from the end of the data: the bit buffer in locals
    // (registers), refilled 8 bytes at a time; at the first 0xFF (stuffing
    // or a marker) or near the end, the state goes back to `br` and the
    // general loop below finishes the block. Nothing can run past the end
    // here, so there is no padding to account for.
    if br.pad == 0 && !br.at_end {
        let (data, mut pos, mut acc, mut nbits) = (br.data, br.pos, br.acc, br.nbits);
        let mut done = false;
        while k < 64 {
            if nbits < 32 {
                let w = match data.get(pos..pos + 8) {
                    Some(b) => u64::from_be_bytes(b.try_into().unwrap_or([0xFF; 8])),
                    None => break,
                };
                let x = !w;
                if x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080 != 0 {
                    break;
                }
                let n = (64 - nbits) / 8;
                acc |= w >> nbits;
                pos += n as usize;
                nbits += 8 * n;
            }
            let e = ac.fast_ac[(acc >> (64 - LOOKUP_BITS)) as usize];
            if e != 0 {
                k += ((e >> 8) & 15) as usize;
                let n = (e & 15) as u32;
                acc <<= n;
                nbits -= n;
                blk[usize::from(NATURAL_U8[k & 127] & 63)] = (e >> 16) as i16;
                k += 1;
                continue;
            }
            let (l, rs) = ac
                .peek(acc)
                .ok_or(DecodeError::Corrupt("corrupt JPEG data (bad Huffman code)"))?;
            acc <<= l;
            nbits -= l;
            let (r, s) = (usize::from(rs >> 4), u32::from(rs & 15));
            if s != 0 {
                k += r;
                let v = (acc >> (64 - s)) as i32;
                acc <<= s;
                nbits -= s;
                let v = if v < 1 << (s - 1) {
                    v - (1 << s) + 1
                } else {
                    v
                };
                blk[usize::from(NATURAL_U8[k & 127] & 63)] = v as i16;
            } else if r != 15 {
                done = true;
                break;
            } else {
                k += 15;
            }
            k += 1;
        }
        (br.pos, br.acc, br.nbits) = (pos, acc, nbits);
        if done || k >= 64 {
            return Ok(k > 1);
        }
    }
    while k < 64 {
        // A refill leaves at least 57 bits: a code and its value take 31.
        if br.nbits < 32 {
            br.fill();
        }
        let e = ac.fast_ac[(br.acc >> (64 - LOOKUP_BITS)) as usize];
        if e != 0 {
            k += ((e >> 8) & 15) as usize;
            br.consume((e & 15) as u32);
            blk[usize::from(NATURAL_U8[k & 127] & 63)] = (e >> 16) as i16;
            k += 1;
            continue;
        }
        let rs = br.decode(ac)?;
        let (r, s) = (usize::from(rs >> 4), u32::from(rs & 15));
        if s != 0 {
            k += r;
            blk[usize::from(NATURAL_U8[k & 127] & 63)] = br.receive_extend(s)? as i16;
        } else if r != 15 {
            break;
        } else {
            k += 15;
        }
        k += 1;
    }
    Ok(k > 1)
}

/// Decodes one block of a scan into `blk` (natural order).
#[allow(clippy::too_many_arguments)]
fn decode_block(
    br: &mut BitReader<'_>,
    blk: &mut [i16],
    progressive: bool,
    scan: &Scan,
    dc: Option<&Huffman>,
    ac: Option<&Huffman>,
    pred: &mut i32,
    eobrun: &mut u32,
) -> Result<()> {
    let missing = || DecodeError::Corrupt("JPEG scan uses an undefined Huffman table");
    if !progressive {
        // decode_mcu (jdhuff.c): DC difference, then run-length AC.
        blk.fill(0);
        let (dc, ac) = (dc.ok_or_else(missing)?, ac.ok_or_else(missing)?);
        let s = u32::from(br.decode(dc)?);
        *pred = pred.wrapping_add(br.receive_extend(s)?);
        blk[0] = *pred as i16;
        let mut k = 1;
        while k < 64 {
            let rs = br.decode(ac)?;
            let (r, s) = (usize::from(rs >> 4), u32::from(rs & 15));
            if s != 0 {
                k += r;
                blk[NATURAL[k]] = br.receive_extend(s)? as i16;
            } else if r != 15 {
                break;
            } else {
                k += 15;
            }
            k += 1;
        }
        return Ok(());
    }
    let al = scan.al;
    if scan.ss == 0 {
        if scan.ah == 0 {
            // decode_mcu_DC_first (jdphuff.c)
            let s = u32::from(br.decode(dc.ok_or_else(missing)?)?);
            *pred = pred.wrapping_add(br.receive_extend(s)?);
            blk[0] = (*pred << al) as i16;
        } else if br.bits(1) != 0 {
            // decode_mcu_DC_refine
            blk[0] |= 1 << al;
        }
        return Ok(());
    }
    let ac = ac.ok_or_else(missing)?;
    let se = scan.se;
    if scan.ah == 0 {
        // decode_mcu_AC_first
        if *eobrun > 0 {
            *eobrun -= 1;
            return Ok(());
        }
        let mut k = scan.ss;
        while k <= se {
            let rs = br.decode(ac)?;
            let (r, s) = (usize::from(rs >> 4), u32::from(rs & 15));
            if s != 0 {
                k += r;
                let v = br.receive_extend(s)?;
                blk[NATURAL[k]] = (v << al) as i16;
            } else if r == 15 {
                k += 15;
            } else {
                *eobrun = 1 << r;
                if r != 0 {
                    *eobrun += br.bits(r as u32);
                }
                *eobrun -= 1;
                break;
            }
            k += 1;
        }
        return Ok(());
    }
    // decode_mcu_AC_refine: new coefficients are ±1 << al; already non-zero
    // ones get a correction bit each time the run passes them.
    let p1: i16 = 1 << al;
    let m1: i16 = (-1i16) << al;
    let refine = |br: &mut BitReader<'_>, c: &mut i16| {
        if br.bits(1) != 0 && (*c & p1) == 0 {
            *c = if *c >= 0 {
                c.wrapping_add(p1)
            } else {
                c.wrapping_add(m1)
            };
        }
    };
    let mut k = scan.ss;
    if *eobrun == 0 {
        while k <= se {
            let rs = br.decode(ac)?;
            let mut r = i32::from(rs >> 4);
            let s = rs & 15;
            let mut val = 0i16;
            if s != 0 {
                // Only size 1 is valid; libjpeg warns and carries on.
                val = if br.bits(1) != 0 { p1 } else { m1 };
            } else if r != 15 {
                *eobrun = 1u32 << r;
                if r != 0 {
                    *eobrun += br.bits(r as u32);
                }
                break;
            }
            while k <= se {
                let c = &mut blk[NATURAL[k]];
                if *c != 0 {
                    refine(br, c);
                } else {
                    r -= 1;
                    if r < 0 {
                        break;
                    }
                }
                k += 1;
            }
            if val != 0 {
                blk[NATURAL[k]] = val;
            }
            k += 1;
        }
    }
    if *eobrun > 0 {
        while k <= se {
            let c = &mut blk[NATURAL[k]];
            if *c != 0 {
                refine(br, c);
            }
            k += 1;
        }
        *eobrun -= 1;
    }
    Ok(())
}

/// Decodes the entropy-coded data of one scan starting at `pos`; returns the
/// position from which to look for the next marker. With `out`, a
/// sequential scan of every component, each MCU row is inverse-DCT'd and
/// written out as soon as it is decoded (nothing is stored per block);
/// otherwise the coefficients are stored for [`Output::write_coefficients`].
fn decode_scan(
    data: &[u8],
    pos: usize,
    frame: &mut Frame,
    scan: &Scan,
    t: &Tables,
    mut out: Option<&mut Output<'_>>,
) -> Result<usize> {
    let mut br = BitReader::new(data, pos);
    let mut preds = [0i32; 4];
    let mut eobrun = 0u32;
    let progressive = frame.progressive;
    let missing = || DecodeError::Corrupt("JPEG scan uses an undefined Huffman table");
    let tables = |k: usize| {
        let (_, td, ta) = scan.comps[k];
        (t.dc[td].as_ref(), t.ac[ta].as_ref())
    };
    let mut blk = [0i16; 64];
    // Blocks of each MCU: (scan component slot, block x, block y) offsets.
    let (mcus, single) = if scan.comps.len() == 1 {
        let c = &frame.comps[scan.comps[0].0];
        let (bx, by) = (c.dw.div_ceil(8), c.dh.div_ceil(8));
        (bx * by, Some(bx))
    } else {
        (frame.mcux * frame.mcuy, None)
    };
    // MCUs per frame MCU row (the unit `out` writes).
    let row_mcus = match single {
        Some(bx) => bx * frame.comps[scan.comps[0].0].v,
        None => frame.mcux,
    };
    for m in 0..mcus {
        if t.restart > 0 && m > 0 && m % t.restart == 0 {
            br.restart()?;
            preds = [0; 4];
            eobrun = 0;
        }
        if let Some(bx_count) = single {
            let ci = scan.comps[0].0;
            let (dc, ac) = tables(0);
            let (bx, by) = (m % bx_count, m / bx_count);
            if let Some(o) = out.as_deref_mut() {
                let (dc, ac) = (dc.ok_or_else(missing)?, ac.ok_or_else(missing)?);
                let coded = decode_block_seq(&mut br, &mut blk, dc, ac, &mut preds[0])?;
                o.block(&frame.comps[ci], ci, bx, by, &blk, coded);
            } else {
                let c = &mut frame.comps[ci];
                let b = by * c.bw + bx;
                let blk = &mut c.coefs[b * 64..b * 64 + 64];
                decode_block(
                    &mut br,
                    blk,
                    progressive,
                    scan,
                    dc,
                    ac,
                    &mut preds[0],
                    &mut eobrun,
                )?;
            }
        } else {
            let (mx, my) = (m % frame.mcux, m / frame.mcux);
            for (slot, &(ci, _, _)) in scan.comps.iter().enumerate() {
                let (dc, ac) = tables(slot);
                let (ch, cv) = (frame.comps[ci].h, frame.comps[ci].v);
                for v in 0..cv {
                    for h in 0..ch {
                        let (bx, by) = (mx * ch + h, my * cv + v);
                        if let Some(o) = out.as_deref_mut() {
                            let (dc, ac) = (dc.ok_or_else(missing)?, ac.ok_or_else(missing)?);
                            let coded =
                                decode_block_seq(&mut br, &mut blk, dc, ac, &mut preds[slot])?;
                            o.block(&frame.comps[ci], ci, bx, by, &blk, coded);
                        } else {
                            let c = &mut frame.comps[ci];
                            let b = by * c.bw + bx;
                            let blk = &mut c.coefs[b * 64..b * 64 + 64];
                            decode_block(
                                &mut br,
                                blk,
                                progressive,
                                scan,
                                dc,
                                ac,
                                &mut preds[slot],
                                &mut eobrun,
                            )?;
                        }
                    }
                }
            }
        }
        if br.overrun {
            return Err(truncated());
        }
        if let Some(o) = out.as_deref_mut()
            && ((m + 1) % row_mcus == 0 || m + 1 == mcus)
        {
            let row = m / row_mcus;
            if row > 0 {
                o.emit(row - 1);
            }
            if m + 1 == mcus {
                o.emit(row);
            }
        }
    }
    Ok(br.pos)
}

/// How the components become RGB (`default_decompress_parms`, jdapimin.c).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Color {
    Gray,
    Rgb,
    Ycc,
}

/// libjpeg's `scale_num / scale_denom` for decoding: the image comes out
/// `⌈w / n⌉ × ⌈h / n⌉` for a scale of `1/n`, made by inverse DCTs of fewer
/// points (jidctred.c's `jpeg_idct_4x4`, `2x2`, `1x1`) rather than by
/// decoding at full size and resizing, exactly as
/// `cv2.imdecode(buf, cv2.IMREAD_REDUCED_COLOR_n)`. Cheaper than a full
/// decode for camera frames far above the model's input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scale {
    /// Full size (`IMREAD_COLOR`).
    #[default]
    Full,
    /// 1/2 (`IMREAD_REDUCED_COLOR_2`).
    Half,
    /// 1/4 (`IMREAD_REDUCED_COLOR_4`).
    Quarter,
    /// 1/8 (`IMREAD_REDUCED_COLOR_8`).
    Eighth,
}

impl Scale {
    /// The denominator `n` of the scale `1/n`.
    pub const fn denom(self) -> usize {
        match self {
            Scale::Full => 1,
            Scale::Half => 2,
            Scale::Quarter => 4,
            Scale::Eighth => 8,
        }
    }

    /// The smallest scale whose output of a `width × height` image still
    /// covers `min_width × min_height` (e.g. the model input): `Full` when
    /// even 1/2 would not.
    pub fn at_least(width: usize, height: usize, min_width: usize, min_height: usize) -> Scale {
        [Scale::Eighth, Scale::Quarter, Scale::Half]
            .into_iter()
            .find(|s| {
                width.div_ceil(s.denom()) >= min_width && height.div_ceil(s.denom()) >= min_height
            })
            .unwrap_or(Scale::Full)
    }
}

/// One component on the output side: its inverse-DCT size, real samples,
/// upsampling and a ring of sample rows.
struct Plane {
    /// `DCT_scaled_size`: samples per block side (8, 4, 2 or 1).
    ssize: usize,
    /// Ring row length, `bw · ssize`.
    stride: usize,
    /// `3 · v · ssize`: three MCU rows (the previous, the current and the
    /// next: the context of fancy vertical upsampling); sample row `r` lives
    /// at ring row `r mod ring_rows`.
    ring_rows: usize,
    /// `downsampled_width/height` at this scale.
    dw: usize,
    dh: usize,
    /// Integral upsampling factors to the output size.
    hx: usize,
    vx: usize,
    /// Whether fancy upsampling is on (`do_fancy`: not at scale 1/8).
    fancy: bool,
    ring: Vec<u8>,
    /// One upsampled row (`max(w, 2·dw)` samples).
    up: Vec<u8>,
}

/// The output side of the decoder, libjpeg's main/upsample/colour
/// controllers: the components' sample rows in rings, one upsampled row
/// per component, and the RGB image.
struct Output<'k> {
    k: &'k Kernels,
    color: Color,
    planes: Vec<Plane>,
    /// Output size (`output_width/height`).
    w: usize,
    h: usize,
    /// Output rows per MCU row (`max_v_samp_factor · min_DCT_scaled_size`).
    mcu_rows: usize,
    rgb: Vec<u8>,
}

impl<'k> Output<'k> {
    fn new(k: &'k Kernels, frame: &Frame, color: Color, scale: Scale) -> Result<Self> {
        let denom = scale.denom();
        let min = 8 / denom;
        let (w, h) = (frame.w.div_ceil(denom), frame.h.div_ceil(denom));
        let mut planes = Vec::with_capacity(frame.comps.len());
        for c in &frame.comps {
            // jpeg_core_output_dimensions: scale chroma up through the IDCT
            // rather than the upsampler where the factors allow.
            let mut ssize = min;
            while ssize < 8
                && (frame.hmax * min).is_multiple_of(c.h * ssize * 2)
                && (frame.vmax * min).is_multiple_of(c.v * ssize * 2)
            {
                ssize *= 2;
            }
            let (hs, vs) = (c.h * ssize, c.v * ssize);
            if !(frame.hmax * min).is_multiple_of(hs) || !(frame.vmax * min).is_multiple_of(vs) {
                return Err(DecodeError::Unsupported(
                    "unsupported JPEG: fractional sampling factors",
                ));
            }
            let dw = (frame.w * hs).div_ceil(frame.hmax * 8);
            let dh = (frame.h * vs).div_ceil(frame.vmax * 8);
            planes.push(Plane {
                ssize,
                stride: c.bw * ssize,
                ring_rows: 3 * vs,
                dw,
                dh,
                hx: frame.hmax * min / hs,
                vx: frame.vmax * min / vs,
                fancy: min > 1,
                ring: vec![0u8; 3 * vs * c.bw * ssize],
                up: vec![0u8; w.max(2 * dw)],
            });
        }
        Ok(Output {
            k,
            color,
            planes,
            w,
            h,
            mcu_rows: frame.vmax * min,
            rgb: vec![0u8; w * h * 3],
        })
    }

    /// [`Output::idct_block`], or for a DC-only block (`!coded`) of a
    /// moderate DC the flat block that every IDCT of libjpeg makes of it:
    /// `range_limit((dc·q + 4) >> 3)` (the same numbers as the full
    /// computation while `|dc·q| < 2^13`, where no intermediate of any of
    /// them wraps; real DC values stay below 2^11·q_dc / q_dc = 2^11).
    fn block(
        &mut self,
        c: &Component,
        ci: usize,
        bx: usize,
        by: usize,
        blk: &[i16; 64],
        coded: bool,
    ) {
        let dcq = i32::from(blk[0]) * i32::from(c.quant16[0]);
        if coded || dcq.unsigned_abs() >= 1 << 13 {
            return self.idct_block(c, ci, bx, by, blk);
        }
        let v = range_limit(descale(dcq, 3));
        let p = &mut self.planes[ci];
        let (s, stride) = (p.ssize, p.stride);
        let row = (by * s) % p.ring_rows;
        for r in 0..s {
            let o = (row + r) * stride + bx * s;
            p.ring[o..o + s].fill(v);
        }
    }

    /// Inverse-DCTs block `(bx, by)` of component `ci` into its ring.
    fn idct_block(&mut self, c: &Component, ci: usize, bx: usize, by: usize, blk: &[i16; 64]) {
        let p = &mut self.planes[ci];
        let (s, stride) = (p.ssize, p.stride);
        let row = (by * s) % p.ring_rows;
        let out = &mut p.ring[row * stride + bx * s..];
        match s {
            8 => self.k.idct_islow_u8(blk, &c.quant16, out, stride),
            4 => self.k.idct_4x4_u8(blk, &c.quant16, out, stride),
            2 => idct_2x2(blk, &c.quant16, out, stride),
            _ => idct_1x1(blk, &c.quant16, out),
        }
    }

    /// The progressive (or non-interleaved) path: every block from the
    /// stored coefficients, MCU row by MCU row.
    fn write_coefficients(&mut self, frame: &Frame) -> Result<()> {
        for c in &frame.comps {
            if c.quant.is_none() || c.coefs.is_empty() {
                return Err(DecodeError::Corrupt(
                    "JPEG component has no data (never appears in a scan)",
                ));
            }
        }
        for m in 0..frame.mcuy {
            for (ci, c) in frame.comps.iter().enumerate() {
                for by in m * c.v..(m + 1) * c.v {
                    for bx in 0..c.bw {
                        let b = by * c.bw + bx;
                        let blk: &[i16; 64] = c.coefs[b * 64..b * 64 + 64]
                            .try_into()
                            .expect("64 coefficients");
                        self.idct_block(c, ci, bx, by, blk);
                    }
                }
            }
            if m > 0 {
                self.emit(m - 1);
            }
        }
        self.emit(frame.mcuy - 1);
        Ok(())
    }

    /// Upsamples and colour-converts the output rows of MCU row `m` (whose
    /// components' rows, and those of MCU rows `m ± 1` where they exist, are
    /// in the rings).
    fn emit(&mut self, m: usize) {
        let (w, h) = (self.w, self.h);
        let y0 = m * self.mcu_rows;
        for y in y0..(y0 + self.mcu_rows).min(h) {
            let mut rows: [&[u8]; 3] = [&[]; 3];
            for (p, row) in self.planes.iter_mut().zip(rows.iter_mut()) {
                *row = upsample_row(self.k, p, w, y);
            }
            let out = &mut self.rgb[y * w * 3..(y + 1) * w * 3];
            match self.color {
                Color::Gray => {
                    for (px, &g) in out.chunks_exact_mut(3).zip(rows[0]) {
                        px.fill(g);
                    }
                }
                Color::Rgb => {
                    for (i, px) in out.chunks_exact_mut(3).enumerate() {
                        px.copy_from_slice(&[rows[0][i], rows[1][i], rows[2][i]]);
                    }
                }
                Color::Ycc => self.k.ycc_to_rgb_u8(rows[0], rows[1], rows[2], out),
            }
        }
    }
}

/// Output row `y` of a component upsampled to the output width `w`, as
/// libjpeg-turbo's `jinit_upsampler` would choose: full size, `h2v1`/`h2v2`
/// fancy (triangle filter with ordered-dither rounding; box when the
/// component is at most 2 samples wide), `h1v2` fancy, or integral box
/// replication (also whenever fancy upsampling is off). The row above the
/// first and below the last real row repeat that row (jdmainct.c's context
/// pointers); columns use only the real samples.
fn upsample_row<'a>(k: &Kernels, p: &'a mut Plane, w: usize, y: usize) -> &'a [u8] {
    let Plane {
        stride,
        ring_rows,
        dw,
        dh,
        hx,
        vx,
        fancy,
        ring,
        up,
        ..
    } = p;
    let (stride, ring_rows, dw, last) = (*stride, *ring_rows, *dw, *dh - 1);
    let ring: &'a [u8] = ring;
    let row = move |r: usize| {
        let r = r % ring_rows;
        &ring[r * stride..r * stride + dw]
    };
    // The adjacent row of the fancy vertical filter, and its rounding bias.
    let neighbour = |y: usize| {
        let (ry, upper) = (y / 2, y.is_multiple_of(2));
        if upper {
            (ry, ry.saturating_sub(1), 1)
        } else {
            (ry, (ry + 1).min(last), 2)
        }
    };
    let fancy_h = *fancy && dw > 2;
    match (*hx, *vx) {
        (1, 1) => return &row(y)[..w],
        (2, 1) if fancy_h => {
            k.upsample_h2v1_fancy_u8(row(y), &mut up[..2 * dw]);
        }
        (1, 2) if *fancy => {
            // h1v2_fancy_upsample
            let (ry, ny, bias) = neighbour(y);
            let (r0, r1) = (row(ry), row(ny));
            for ((d, &a), &b) in up[..w].iter_mut().zip(r0).zip(r1) {
                *d = ((u32::from(a) * 3 + u32::from(b) + bias) >> 2) as u8;
            }
        }
        (2, 2) if fancy_h => {
            let (ry, ny, _) = neighbour(y);
            k.upsample_h2v2_fancy_u8(row(ry), row(ny), &mut up[..2 * dw]);
        }
        (hx, vx) => {
            // h2v1_upsample, h2v2_upsample, int_upsample: box replication.
            let r = row(y / vx);
            for (x, d) in up[..w].iter_mut().enumerate() {
                *d = r[x / hx];
            }
        }
    }
    &up[..w]
}

// jidctred.c: the 2×2 and 1×1 inverse DCTs (the 4×4 one is a kernel slot),
// FIX(x) with CONST_BITS = 13.
const FIX_0_720959822: i32 = 5906;
const FIX_0_850430095: i32 = 6967;
const FIX_1_272758580: i32 = 10426;
const FIX_3_624509785: i32 = 29692;

/// `(x + 2^(n−1)) >> n` in wrapping 32-bit arithmetic.
fn descale(x: i32, n: u32) -> i32 {
    x.wrapping_add(1 << (n - 1)) >> n
}

/// `jpeg_idct_2x2`'s 1-D step: inputs 0, 1, 3, 5, 7; outputs 0, 1.
fn idct2_1d(i: [i32; 8]) -> [i32; 2] {
    let (a, m) = (i32::wrapping_add, i32::wrapping_mul);
    let tmp10 = i[0].wrapping_shl(15);
    let tmp0 = a(
        a(m(i[7], -FIX_0_720959822), m(i[5], FIX_0_850430095)),
        a(m(i[3], -FIX_1_272758580), m(i[1], FIX_3_624509785)),
    );
    [a(tmp10, tmp0), tmp10.wrapping_sub(tmp0)]
}

/// `jpeg_idct_2x2` (scale 1/4): a 2×2 block at `out[r·stride + c]`.
///
/// Like libjpeg, a column or row whose AC inputs are zero is its DC value
/// (`dc << 2` in the first pass, `range_limit((w + 16) >> 5)` in the
/// second): the same numbers as the full step while the DC is below 2^15,
/// where nothing wraps, so it is taken only then.
fn idct_2x2(coef: &[i16; 64], q: &[i16; 64], out: &mut [u8], stride: usize) {
    let mut ws = [0i32; 16];
    for col in [0, 1, 3, 5, 7] {
        let dcq = i32::from(coef[col]) * i32::from(q[col]);
        if [1, 3, 5, 7].iter().all(|&r| coef[r * 8 + col] == 0) && dcq.unsigned_abs() < 1 << 15 {
            ws[col] = dcq << 2;
            ws[8 + col] = dcq << 2;
            continue;
        }
        let o = idct2_1d(core::array::from_fn(|r| {
            i32::from(coef[r * 8 + col]) * i32::from(q[r * 8 + col])
        }));
        ws[col] = descale(o[0], 13);
        ws[8 + col] = descale(o[1], 13);
    }
    for row in 0..2 {
        let w0 = ws[row * 8];
        if [1, 3, 5, 7].iter().all(|&c| ws[row * 8 + c] == 0) && w0.unsigned_abs() < 1 << 15 {
            let v = range_limit(descale(w0, 5));
            out[row * stride..row * stride + 2].fill(v);
            continue;
        }
        let o = idct2_1d(core::array::from_fn(|c| ws[row * 8 + c]));
        out[row * stride] = range_limit(descale(o[0], 20));
        out[row * stride + 1] = range_limit(descale(o[1], 20));
    }
}

/// `jpeg_idct_1x1` (scale 1/8): the block's mean.
fn idct_1x1(coef: &[i16; 64], q: &[i16; 64], out: &mut [u8]) {
    out[0] = range_limit(descale(i32::from(coef[0]) * i32::from(q[0]), 3));
}

/// Applies an EXIF orientation (1–8) as OpenCV's `ApplyExifOrientation`:
/// flips and a transpose of the decoded image.
fn orient(rgb: Vec<u8>, w: usize, h: usize, orientation: u16) -> (Vec<u8>, usize, usize) {
    // (transpose first, then flip x, flip y)
    let (transpose, fx, fy) = match orientation {
        2 => (false, true, false),
        3 => (false, true, true),
        4 => (false, false, true),
        5 => (true, false, false),
        6 => (true, true, false),
        7 => (true, true, true),
        8 => (true, false, true),
        _ => return (rgb, w, h),
    };
    let (ow, oh) = if transpose { (h, w) } else { (w, h) };
    let mut out = vec![0u8; rgb.len()];
    for oy in 0..oh {
        for ox in 0..ow {
            let (tx, ty) = (
                if fx { ow - 1 - ox } else { ox },
                if fy { oh - 1 - oy } else { oy },
            );
            let (sx, sy) = if transpose { (ty, tx) } else { (tx, ty) };
            let s = (sy * w + sx) * 3;
            let d = (oy * ow + ox) * 3;
            out[d..d + 3].copy_from_slice(&rgb[s..s + 3]);
        }
    }
    (out, ow, oh)
}

/// Checks that the scan's data can hold its blocks and, unless the scan is
/// written out as it is decoded (`stream`), allocates the coefficients of
/// its components the first time a scan reads them. A sequential scan codes
/// every block with at least two Huffman codes (DC and end-of-block, one bit
/// or more each), so data shorter than two bits per block is refused before
/// any allocation: a small file cannot make the decoder reserve memory for a
/// huge image it does not contain. (Progressive scans can skip runs of
/// blocks; the pixel limit bounds them.)
fn alloc_scan(f: &mut Frame, scan: &Scan, data_left: usize, stream: bool) -> Result<()> {
    if !f.progressive {
        let blocks: usize = scan
            .comps
            .iter()
            .map(|&(ci, _, _)| f.comps[ci].dw.div_ceil(8) * f.comps[ci].dh.div_ceil(8))
            .sum();
        if data_left.saturating_mul(4) < blocks {
            return Err(DecodeError::Truncated(
                "truncated JPEG data (the scan is shorter than the image it declares)",
            ));
        }
    }
    if stream {
        return Ok(());
    }
    for &(ci, _, _) in &scan.comps {
        let c = &mut f.comps[ci];
        if c.coefs.is_empty() {
            c.coefs = vec![0i16; c.bw * c.bh * 64];
        }
    }
    Ok(())
}

/// The kernel table [`decode`] uses: [`Kernels::from_env`] once per process
/// with `std`, the compiled-in features without.
fn default_kernels() -> Kernels {
    #[cfg(feature = "std")]
    {
        static K: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
        *K.get_or_init(Kernels::from_env)
    }
    #[cfg(not(feature = "std"))]
    {
        Kernels::for_caps(edgedetr_kernels::Caps::compile_time())
    }
}

/// Decodes a JPEG file's bytes to RGB, exactly as libjpeg-turbo does for
/// `cv2.imdecode(buf, cv2.IMREAD_COLOR)` (there in BGR order), including the
/// EXIF orientation OpenCV applies. Images above `limits` are refused from
/// their header, before any large allocation. The kernels are the detected
/// ones ([`Kernels::from_env`] with `std`); see [`decode_with_kernels`].
pub fn decode(data: &[u8], limits: &Limits) -> Result<Image> {
    decode_scaled_with_kernels(data, limits, Scale::Full, &default_kernels())
}

/// [`decode`] with the given kernel table (every path gives the same bytes).
pub fn decode_with_kernels(data: &[u8], limits: &Limits, k: &Kernels) -> Result<Image> {
    decode_scaled_with_kernels(data, limits, Scale::Full, k)
}

/// [`decode`] at a reduced [`Scale`], exactly as
/// `cv2.imdecode(buf, cv2.IMREAD_REDUCED_COLOR_n)`; `limits` bound the
/// full-size image.
pub fn decode_scaled(data: &[u8], limits: &Limits, scale: Scale) -> Result<Image> {
    decode_scaled_with_kernels(data, limits, scale, &default_kernels())
}

/// [`decode_scaled`] with the given kernel table.
pub fn decode_scaled_with_kernels(
    data: &[u8],
    limits: &Limits,
    scale: Scale,
    k: &Kernels,
) -> Result<Image> {
    if data.get(0..2) != Some(&[0xFF, 0xD8]) {
        return Err(DecodeError::Corrupt("not a JPEG file (no SOI marker)"));
    }
    let mut t = Tables::default();
    let mut frame: Option<Frame> = None;
    let mut out: Option<Output<'_>> = None;
    let mut streamed = false;
    let mut scans = 0usize;
    let mut p = 2;
    let mut eoi = false;
    while let Some((m, after)) = next_marker(data, p) {
        match m {
            0xD9 => {
                eoi = true;
                break;
            }
            0xD0..=0xD7 | 0x01 => {
                p = after;
                continue;
            }
            0xD8 => return Err(DecodeError::Corrupt("corrupt JPEG (a second SOI marker)")),
            _ => {}
        }
        let len = be16(data, after)?;
        let seg = data
            .get(after + 2..after + len)
            .filter(|_| len >= 2)
            .ok_or(DecodeError::Truncated("truncated JPEG header"))?;
        p = after + len;
        match m {
            0xC0..=0xC2 => {
                if frame.is_some() {
                    return Err(DecodeError::Unsupported(
                        "unsupported JPEG: more than one frame",
                    ));
                }
                frame = Some(parse_sof(seg, m == 0xC2, limits)?);
            }
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(DecodeError::JpegProcess(m - 0xC0));
            }
            0xC4 => parse_dht(seg, &mut t)?,
            0xDB => parse_dqt(seg, &mut t)?,
            0xDD => t.restart = be16(seg, 0)?,
            0xDC => return Err(DecodeError::Unsupported("unsupported JPEG: DNL marker")),
            0xE0 => t.jfif |= seg.starts_with(b"JFIF\0"),
            // The first Exif segment with an orientation counts.
            0xE1 if t.orientation == 0 => {
                t.orientation = exif_orientation(seg).unwrap_or(0);
            }
            0xEE if seg.starts_with(b"Adobe") && seg.len() >= 12 => {
                t.adobe_transform = Some(seg[11]);
            }
            0xDA => {
                let f = frame.as_mut().ok_or(DecodeError::Corrupt(
                    "corrupt JPEG: scan before frame header",
                ))?;
                let scan = parse_sos(seg, f)?;
                if streamed {
                    return Err(DecodeError::Corrupt(
                        "corrupt JPEG: a sequential frame's components in a second scan",
                    ));
                }
                // A sequential scan of every component is written out as it
                // is decoded; other scans store their coefficients.
                let stream = !f.progressive && scans == 0 && scan.comps.len() == f.comps.len();
                alloc_scan(f, &scan, data.len() - p.min(data.len()), stream)?;
                for &(ci, _, _) in &scan.comps {
                    let c = &mut f.comps[ci];
                    if c.quant.is_none() {
                        let q = t.quant[c.tq].ok_or(DecodeError::Corrupt(
                            "JPEG uses an undefined quantisation table",
                        ))?;
                        // ISLOW_MULT_TYPE is a short: 16-bit quantisers wrap.
                        c.quant16 = q.map(|v| v as i16);
                        c.quant = Some(q);
                    }
                }
                if out.is_none() {
                    // default_decompress_parms (jdapimin.c), at the first
                    // scan: JFIF means YCbCr; else the Adobe transform flag;
                    // else component ids 'R','G','B' mean RGB.
                    let ids: Vec<u8> = f.comps.iter().map(|c| c.id).collect();
                    let color = if ids.len() == 1 {
                        Color::Gray
                    } else if !t.jfif
                        && match t.adobe_transform {
                            Some(tr) => tr == 0,
                            None => ids == b"RGB",
                        }
                    {
                        Color::Rgb
                    } else {
                        Color::Ycc
                    };
                    out = Some(Output::new(k, f, color, scale)?);
                }
                p = decode_scan(data, p, f, &scan, &t, out.as_mut().filter(|_| stream))?;
                streamed = stream;
                scans += 1;
            }
            _ => {}
        }
    }
    if !eoi {
        // libjpeg warns "premature end of JPEG file" and returns what it has
        // (grey where data is missing); we refuse a file that was cut.
        return Err(DecodeError::Truncated(
            "truncated JPEG (the file ends before its end-of-image marker)",
        ));
    }
    let (Some(frame), Some(mut out)) = (frame, out) else {
        return Err(DecodeError::Corrupt(
            "not a JPEG image (no frame header or no scan before the end marker)",
        ));
    };
    if !streamed {
        out.write_coefficients(&frame)?;
    }
    let (w, h) = (out.w, out.h);
    let (rgb, w, h) = orient(out.rgb, w, h, t.orientation);
    Ok(Image {
        rgb,
        width: w,
        height: h,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Tiny images made with opencv-python 5.0.0 (libjpeg-turbo 3.1.2); the
    // expected pixels are cv2.imdecode's, flipped from BGR to RGB.
    // cv2.imencode('.jpg', img5x3, [IMWRITE_JPEG_QUALITY, 90, IMWRITE_JPEG_PROGRESSIVE, 1,
    //   IMWRITE_JPEG_RST_INTERVAL, 1, IMWRITE_JPEG_SAMPLING_FACTOR, IMWRITE_JPEG_SAMPLING_FACTOR_420])
    const PROGRESSIVE_420_5X3: [u8; 573] = [
        255, 216, 255, 224, 0, 16, 74, 70, 73, 70, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 255, 219, 0, 67,
        0, 3, 2, 2, 3, 2, 2, 3, 3, 3, 3, 4, 3, 3, 4, 5, 8, 5, 5, 4, 4, 5, 10, 7, 7, 6, 8, 12, 10,
        12, 12, 11, 10, 11, 11, 13, 14, 18, 16, 13, 14, 17, 14, 11, 11, 16, 22, 16, 17, 19, 20, 21,
        21, 21, 12, 15, 23, 24, 22, 20, 24, 18, 20, 21, 20, 255, 219, 0, 67, 1, 3, 4, 4, 5, 4, 5,
        9, 5, 5, 9, 20, 13, 11, 13, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
        20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
        20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 255, 194, 0, 17, 8, 0, 3, 0, 5, 3, 1, 34, 0, 2,
        17, 1, 3, 17, 1, 255, 196, 0, 21, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6,
        255, 196, 0, 21, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 6, 255, 221, 0, 4,
        0, 1, 255, 218, 0, 12, 3, 1, 0, 2, 16, 3, 16, 0, 0, 1, 163, 18, 233, 255, 196, 0, 23, 16,
        0, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 255, 218, 0, 8, 1, 1, 0, 1, 5,
        2, 120, 193, 255, 196, 0, 24, 17, 0, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3,
        18, 49, 255, 218, 0, 8, 1, 3, 1, 1, 63, 1, 145, 218, 218, 127, 255, 196, 0, 23, 17, 1, 0,
        3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 4, 19, 255, 218, 0, 8, 1, 2, 1, 1, 63, 1,
        178, 186, 179, 255, 196, 0, 24, 16, 0, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        17, 18, 33, 255, 218, 0, 8, 1, 1, 0, 6, 63, 2, 154, 235, 63, 255, 196, 0, 23, 16, 0, 3, 1,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 17, 65, 255, 218, 0, 8, 1, 1, 0, 1, 63, 33,
        206, 81, 214, 127, 255, 218, 0, 12, 3, 1, 0, 2, 0, 3, 0, 0, 0, 16, 247, 255, 196, 0, 24,
        17, 0, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 65, 0, 49, 81, 255, 218, 0, 8, 1, 3,
        1, 1, 63, 16, 108, 160, 206, 9, 255, 196, 0, 23, 17, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 1, 0, 81, 177, 255, 218, 0, 8, 1, 2, 1, 1, 63, 16, 17, 141, 97, 63, 255, 196, 0,
        23, 16, 0, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 65, 81, 255, 218, 0, 8, 1, 1,
        0, 1, 63, 16, 221, 194, 204, 255, 217,
    ];

    // cv2.imdecode(with_exif(PROGRESSIVE_420_5X3, o), cv2.IMREAD_COLOR)[:, :, ::-1] for o = 1..=8
    // (with_exif inserts an APP1 Exif segment, little-endian TIFF, IFD0 = [0x0112 SHORT o]).
    const PROGRESSIVE_ORIENTED: [(u16, usize, usize, [u8; 45]); 8] = [
        (
            1,
            5,
            3,
            [
                187, 141, 143, 170, 115, 120, 169, 98, 112, 170, 105, 103, 160, 121, 80, 183, 148,
                146, 173, 131, 132, 182, 122, 130, 185, 130, 123, 170, 141, 97, 171, 159, 147, 170,
                150, 141, 187, 149, 148, 189, 158, 140, 169, 164, 109,
            ],
        ),
        (
            2,
            5,
            3,
            [
                160, 121, 80, 170, 105, 103, 169, 98, 112, 170, 115, 120, 187, 141, 143, 170, 141,
                97, 185, 130, 123, 182, 122, 130, 173, 131, 132, 183, 148, 146, 169, 164, 109, 189,
                158, 140, 187, 149, 148, 170, 150, 141, 171, 159, 147,
            ],
        ),
        (
            3,
            5,
            3,
            [
                169, 164, 109, 189, 158, 140, 187, 149, 148, 170, 150, 141, 171, 159, 147, 170,
                141, 97, 185, 130, 123, 182, 122, 130, 173, 131, 132, 183, 148, 146, 160, 121, 80,
                170, 105, 103, 169, 98, 112, 170, 115, 120, 187, 141, 143,
            ],
        ),
        (
            4,
            5,
            3,
            [
                171, 159, 147, 170, 150, 141, 187, 149, 148, 189, 158, 140, 169, 164, 109, 183,
                148, 146, 173, 131, 132, 182, 122, 130, 185, 130, 123, 170, 141, 97, 187, 141, 143,
                170, 115, 120, 169, 98, 112, 170, 105, 103, 160, 121, 80,
            ],
        ),
        (
            5,
            3,
            5,
            [
                187, 141, 143, 183, 148, 146, 171, 159, 147, 170, 115, 120, 173, 131, 132, 170,
                150, 141, 169, 98, 112, 182, 122, 130, 187, 149, 148, 170, 105, 103, 185, 130, 123,
                189, 158, 140, 160, 121, 80, 170, 141, 97, 169, 164, 109,
            ],
        ),
        (
            6,
            3,
            5,
            [
                171, 159, 147, 183, 148, 146, 187, 141, 143, 170, 150, 141, 173, 131, 132, 170,
                115, 120, 187, 149, 148, 182, 122, 130, 169, 98, 112, 189, 158, 140, 185, 130, 123,
                170, 105, 103, 169, 164, 109, 170, 141, 97, 160, 121, 80,
            ],
        ),
        (
            7,
            3,
            5,
            [
                169, 164, 109, 170, 141, 97, 160, 121, 80, 189, 158, 140, 185, 130, 123, 170, 105,
                103, 187, 149, 148, 182, 122, 130, 169, 98, 112, 170, 150, 141, 173, 131, 132, 170,
                115, 120, 171, 159, 147, 183, 148, 146, 187, 141, 143,
            ],
        ),
        (
            8,
            3,
            5,
            [
                160, 121, 80, 170, 141, 97, 169, 164, 109, 170, 105, 103, 185, 130, 123, 189, 158,
                140, 169, 98, 112, 182, 122, 130, 187, 149, 148, 170, 115, 120, 173, 131, 132, 170,
                150, 141, 187, 141, 143, 183, 148, 146, 171, 159, 147,
            ],
        ),
    ];
    // cv2.imencode('.jpg', img7x2, [IMWRITE_JPEG_QUALITY, 75, IMWRITE_JPEG_SAMPLING_FACTOR, IMWRITE_JPEG_SAMPLING_FACTOR_422])
    const BASELINE_422_7X2: [u8; 671] = [
        255, 216, 255, 224, 0, 16, 74, 70, 73, 70, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 255, 219, 0, 67,
        0, 8, 6, 6, 7, 6, 5, 8, 7, 7, 7, 9, 9, 8, 10, 12, 20, 13, 12, 11, 11, 12, 25, 18, 19, 15,
        20, 29, 26, 31, 30, 29, 26, 28, 28, 32, 36, 46, 39, 32, 34, 44, 35, 28, 28, 40, 55, 41, 44,
        48, 49, 52, 52, 52, 31, 39, 57, 61, 56, 50, 60, 46, 51, 52, 50, 255, 219, 0, 67, 1, 9, 9,
        9, 12, 11, 12, 24, 13, 13, 24, 50, 33, 28, 33, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50,
        50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50,
        50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 255, 192, 0, 17, 8, 0, 2,
        0, 7, 3, 1, 33, 0, 2, 17, 1, 3, 17, 1, 255, 196, 0, 31, 0, 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0,
        0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 255, 196, 0, 181, 16, 0, 2, 1, 3, 3,
        2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 125, 1, 2, 3, 0, 4, 17, 5, 18, 33, 49, 65, 6, 19, 81, 97, 7,
        34, 113, 20, 50, 129, 145, 161, 8, 35, 66, 177, 193, 21, 82, 209, 240, 36, 51, 98, 114,
        130, 9, 10, 22, 23, 24, 25, 26, 37, 38, 39, 40, 41, 42, 52, 53, 54, 55, 56, 57, 58, 67, 68,
        69, 70, 71, 72, 73, 74, 83, 84, 85, 86, 87, 88, 89, 90, 99, 100, 101, 102, 103, 104, 105,
        106, 115, 116, 117, 118, 119, 120, 121, 122, 131, 132, 133, 134, 135, 136, 137, 138, 146,
        147, 148, 149, 150, 151, 152, 153, 154, 162, 163, 164, 165, 166, 167, 168, 169, 170, 178,
        179, 180, 181, 182, 183, 184, 185, 186, 194, 195, 196, 197, 198, 199, 200, 201, 202, 210,
        211, 212, 213, 214, 215, 216, 217, 218, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234,
        241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 255, 196, 0, 31, 1, 0, 3, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 255, 196, 0, 181, 17, 0,
        2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 119, 0, 1, 2, 3, 17, 4, 5, 33, 49, 6, 18, 65, 81,
        7, 97, 113, 19, 34, 50, 129, 8, 20, 66, 145, 161, 177, 193, 9, 35, 51, 82, 240, 21, 98,
        114, 209, 10, 22, 36, 52, 225, 37, 241, 23, 24, 25, 26, 38, 39, 40, 41, 42, 53, 54, 55, 56,
        57, 58, 67, 68, 69, 70, 71, 72, 73, 74, 83, 84, 85, 86, 87, 88, 89, 90, 99, 100, 101, 102,
        103, 104, 105, 106, 115, 116, 117, 118, 119, 120, 121, 122, 130, 131, 132, 133, 134, 135,
        136, 137, 138, 146, 147, 148, 149, 150, 151, 152, 153, 154, 162, 163, 164, 165, 166, 167,
        168, 169, 170, 178, 179, 180, 181, 182, 183, 184, 185, 186, 194, 195, 196, 197, 198, 199,
        200, 201, 202, 210, 211, 212, 213, 214, 215, 216, 217, 218, 226, 227, 228, 229, 230, 231,
        232, 233, 234, 242, 243, 244, 245, 246, 247, 248, 249, 250, 255, 218, 0, 12, 3, 1, 0, 2,
        17, 3, 17, 0, 63, 0, 169, 171, 187, 220, 24, 109, 167, 99, 45, 188, 154, 141, 200, 120,
        156, 238, 86, 10, 91, 0, 131, 193, 198, 6, 62, 130, 138, 218, 180, 229, 25, 90, 46, 219,
        254, 108, 244, 178, 138, 112, 158, 22, 50, 146, 77, 179, 255, 217,
    ];

    // cv2.imdecode(BASELINE_422_7X2, cv2.IMREAD_COLOR)[:, :, ::-1].reshape(-1)
    const BASELINE_422_7X2_RGB: [u8; 42] = [
        143, 189, 215, 125, 169, 180, 109, 152, 133, 181, 213, 202, 171, 185, 222, 131, 131, 183,
        16, 10, 44, 141, 178, 220, 46, 80, 107, 113, 138, 134, 149, 157, 160, 117, 99, 147, 82, 44,
        105, 145, 92, 134,
    ];

    // cv2.imencode('.jpg', gray3x4, [IMWRITE_JPEG_QUALITY, 80])
    const GRAY_3X4: [u8; 367] = [
        255, 216, 255, 224, 0, 16, 74, 70, 73, 70, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 255, 219, 0, 67,
        0, 6, 4, 5, 6, 5, 4, 6, 6, 5, 6, 7, 7, 6, 8, 10, 16, 10, 10, 9, 9, 10, 20, 14, 15, 12, 16,
        23, 20, 24, 24, 23, 20, 22, 22, 26, 29, 37, 31, 26, 27, 35, 28, 22, 22, 32, 44, 32, 35, 38,
        39, 41, 42, 41, 25, 31, 45, 48, 45, 40, 48, 37, 40, 41, 40, 255, 192, 0, 11, 8, 0, 4, 0, 3,
        1, 1, 17, 0, 255, 196, 0, 31, 0, 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2,
        3, 4, 5, 6, 7, 8, 9, 10, 11, 255, 196, 0, 181, 16, 0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0,
        0, 1, 125, 1, 2, 3, 0, 4, 17, 5, 18, 33, 49, 65, 6, 19, 81, 97, 7, 34, 113, 20, 50, 129,
        145, 161, 8, 35, 66, 177, 193, 21, 82, 209, 240, 36, 51, 98, 114, 130, 9, 10, 22, 23, 24,
        25, 26, 37, 38, 39, 40, 41, 42, 52, 53, 54, 55, 56, 57, 58, 67, 68, 69, 70, 71, 72, 73, 74,
        83, 84, 85, 86, 87, 88, 89, 90, 99, 100, 101, 102, 103, 104, 105, 106, 115, 116, 117, 118,
        119, 120, 121, 122, 131, 132, 133, 134, 135, 136, 137, 138, 146, 147, 148, 149, 150, 151,
        152, 153, 154, 162, 163, 164, 165, 166, 167, 168, 169, 170, 178, 179, 180, 181, 182, 183,
        184, 185, 186, 194, 195, 196, 197, 198, 199, 200, 201, 202, 210, 211, 212, 213, 214, 215,
        216, 217, 218, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 241, 242, 243, 244, 245,
        246, 247, 248, 249, 250, 255, 218, 0, 8, 1, 1, 0, 0, 63, 0, 242, 141, 99, 226, 255, 0, 141,
        116, 221, 74, 107, 61, 43, 86, 91, 11, 56, 72, 68, 130, 11, 120, 246, 142, 6, 91, 149, 39,
        44, 114, 199, 156, 101, 142, 48, 56, 175, 255, 217,
    ];

    // cv2.imdecode(GRAY_3X4, cv2.IMREAD_COLOR)[:, :, ::-1].reshape(-1)
    const GRAY_3X4_RGB: [u8; 36] = [
        120, 120, 120, 95, 95, 95, 226, 226, 226, 162, 162, 162, 171, 171, 171, 190, 190, 190, 83,
        83, 83, 238, 238, 238, 0, 0, 0, 74, 74, 74, 41, 41, 41, 5, 5, 5,
    ];

    /// Inserts an APP1 Exif segment with orientation `o` after SOI, as the
    /// Python `with_exif` that made the expected pixels.
    fn with_exif(jpg: &[u8], o: u16) -> Vec<u8> {
        let mut tiff = b"II".to_vec();
        tiff.extend_from_slice(&42u16.to_le_bytes());
        tiff.extend_from_slice(&8u32.to_le_bytes());
        for v in [1u16, 0x0112, 3] {
            tiff.extend_from_slice(&v.to_le_bytes());
        }
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&o.to_le_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&(app1.len() as u16 + 2).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpg[2..]);
        out
    }

    fn rgb(data: &[u8]) -> (Vec<u8>, usize, usize) {
        let d = decode(data, &Limits::default()).unwrap();
        (d.rgb, d.width, d.height)
    }

    #[test]
    fn matches_libjpeg_turbo() {
        assert_eq!(
            rgb(&BASELINE_422_7X2),
            (BASELINE_422_7X2_RGB.to_vec(), 7, 2)
        );
        assert_eq!(rgb(&GRAY_3X4), (GRAY_3X4_RGB.to_vec(), 3, 4));
        let (o, w, h, px) = &PROGRESSIVE_ORIENTED[0];
        assert_eq!(*o, 1);
        assert_eq!(rgb(&PROGRESSIVE_420_5X3), (px.to_vec(), *w, *h));
    }

    #[test]
    fn exif_orientation_as_opencv() {
        for (o, w, h, px) in &PROGRESSIVE_ORIENTED {
            let got = rgb(&with_exif(&PROGRESSIVE_420_5X3, *o));
            assert_eq!(got, (px.to_vec(), *w, *h), "orientation {o}");
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for data in [
            &PROGRESSIVE_420_5X3[..],
            &BASELINE_422_7X2[..],
            &GRAY_3X4[..],
        ] {
            for cut in 0..data.len() {
                assert!(
                    decode(&data[..cut], &Limits::default()).is_err(),
                    "cut at {cut} of {}",
                    data.len()
                );
            }
        }
    }

    /// `jpg` with its frame header declaring `w×h`.
    fn resized_header(jpg: &[u8], w: u16, h: u16) -> Vec<u8> {
        let mut d = jpg.to_vec();
        let sof = (0..d.len() - 1)
            .find(|&i| d[i] == 0xFF && (0xC0..=0xC2).contains(&d[i + 1]))
            .unwrap();
        d[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
        d[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
        d
    }

    /// A few hundred bytes declaring a huge image are refused before the
    /// decoder reserves memory for it: above the pixel limit from the
    /// header, below it (sequential) from the length of the scan data.
    #[test]
    fn huge_declared_sizes_are_refused_before_allocating() {
        let big = resized_header(&PROGRESSIVE_420_5X3, 16384, 16384);
        assert!(matches!(
            decode(&big, &Limits::default()),
            Err(DecodeError::TooLarge {
                width: 16384,
                height: 16384,
                ..
            })
        ));
        let limits = Limits {
            max_pixels: 16384 * 16384,
        };
        let within = resized_header(&BASELINE_422_7X2, 8192, 8192);
        let t = std::time::Instant::now();
        assert!(matches!(
            decode(&within, &limits),
            Err(DecodeError::Truncated(_))
        ));
        assert!(t.elapsed().as_secs_f64() < 0.5, "{:?}", t.elapsed());
    }

    /// The zero-AC shortcuts of the 2×2 IDCT give the full step's
    /// bytes: sparse blocks (most columns and rows take the shortcut), dense
    /// ones, and arbitrary `i16` values and quantisers (where the DC bounds
    /// keep the shortcut off whenever an intermediate would wrap).
    #[test]
    fn idct_2x2_shortcuts_are_exact() {
        let full2 = |coef: &[i16; 64], q: &[i16; 64]| {
            let mut ws = [0i32; 16];
            for col in [0, 1, 3, 5, 7] {
                let o = idct2_1d(core::array::from_fn(|r| {
                    i32::from(coef[r * 8 + col]) * i32::from(q[r * 8 + col])
                }));
                ws[col] = descale(o[0], 13);
                ws[8 + col] = descale(o[1], 13);
            }
            let mut out = [0u8; 4];
            for row in 0..2 {
                let o = idct2_1d(core::array::from_fn(|c| ws[row * 8 + c]));
                out[row * 2] = range_limit(descale(o[0], 20));
                out[row * 2 + 1] = range_limit(descale(o[1], 20));
            }
            out
        };
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for case in 0..20_000 {
            let kind = case % 4;
            let coef: [i16; 64] = core::array::from_fn(|_| {
                let v = next();
                match kind {
                    0 if v % 8 != 0 => 0,
                    0 | 1 => (v >> 8) as i16 % 200,
                    2 if v % 3 == 0 => 0,
                    _ => (v >> 8) as i16,
                }
            });
            let q: [i16; 64] = core::array::from_fn(|_| {
                let v = next();
                if kind == 3 {
                    (v >> 16) as i16
                } else {
                    1 + (v % 99) as i16
                }
            });
            let mut out = [0u8; 4];
            idct_2x2(&coef, &q, &mut out, 2);
            assert_eq!(out, full2(&coef, &q), "2x2 case {case}");
        }
    }

    #[test]
    fn scale_at_least_keeps_the_model_input_covered() {
        assert_eq!(Scale::at_least(3840, 2160, 640, 640), Scale::Half);
        assert_eq!(Scale::at_least(3840, 2160, 640, 480), Scale::Quarter);
        assert_eq!(Scale::at_least(1920, 1080, 640, 640), Scale::Full);
        assert_eq!(Scale::at_least(1920, 1280, 640, 640), Scale::Half);
        assert_eq!(Scale::at_least(5120, 5120, 640, 640), Scale::Eighth);
        assert_eq!(Scale::at_least(100, 100, 640, 640), Scale::Full);
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for data in [
            &PROGRESSIVE_420_5X3[..],
            &BASELINE_422_7X2[..],
            &GRAY_3X4[..],
        ] {
            for _ in 0..2000 {
                let mut d = data.to_vec();
                for _ in 0..3 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = (x as usize) % d.len();
                    d[i] = (x >> 32) as u8;
                }
                if let Ok(img) = decode(&d, &Limits::default()) {
                    assert_eq!(img.rgb.len(), img.width * img.height * 3);
                }
                for s in [Scale::Half, Scale::Eighth] {
                    if let Ok(img) = decode_scaled(&d, &Limits::default(), s) {
                        assert_eq!(img.rgb.len(), img.width * img.height * 3);
                    }
                }
            }
        }
    }
}
