//! [`GraphBuilder`]: declares buffers and ops of the static graph in execution
//! order, on top of the model-file writer.

use edgedetr::graph::Stage;
use edgedetr::kernels::Act;
use edgedetr::kernels::conv::ConvGeom;
use edgedetr::ops::conv2d_i8::requant_words;
use edgedetr::ops::deform_sample::{Levels, MAX_LEVELS};
use edgedetr::ops::weighted_sum_i8::SumTable;
use edgedetr::ops::{self, Params, Tensor};
use edgedetr_format::{
    BUF_EXPORTED, BUF_INPUT, BUF_SCRATCH, BUF_TOKENS, DType, Meta, ModelWriter, NONE, OpDesc,
};

use std::collections::HashMap;

use edgedetr::kernels::{QMul, SumInput, quantize_multiplier, weight_kpad, weighted_sum_params};

use crate::fold::FoldedConv;
use crate::progress::{Event, Phase, Progress};
use crate::recipe::{Recipe, WeightPrec, qparams};

/// A feature map (or `[C, T]` token matrix, as `h = 1, w = T`) in the graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Buf {
    /// Buffer id.
    pub id: u32,
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width (tokens for a token matrix).
    pub w: usize,
    /// A `[C, T]` token matrix (stored rank 2, dumped token-major).
    pub tokens: bool,
    /// `(scale, zero_point)` when the buffer holds int8 values.
    pub q: Option<(f32, i8)>,
}

impl Buf {
    /// Elements.
    pub fn numel(&self) -> usize {
        self.c * self.h * self.w
    }
}

/// The per-channel int8 weight scale with the least squared rounding and
/// clipping error, searched over clipping ratios 0.5–1.0 of the largest
/// magnitude (symmetric, q ∈ [−127, 127]).
pub fn weight_scale(row: &[f32]) -> f64 {
    let amax = row.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    if amax == 0.0 {
        return 1.0;
    }
    let err = |s: f64| -> f64 {
        row.iter()
            .map(|&v| {
                let q = (v as f64 / s).round().clamp(-127.0, 127.0);
                (q * s - v as f64).powi(2)
            })
            .sum()
    };
    let mut best = (err(amax / 127.0), amax / 127.0);
    for i in 50..100 {
        let s = amax * i as f64 / 100.0 / 127.0;
        let e = err(s);
        if e < best.0 {
            best = (e, s);
        }
    }
    best.1
}

/// Builds the static graph.
#[derive(Debug, Default)]
pub struct GraphBuilder<'p> {
    w: ModelWriter,
    /// Where GPTQ rounding reports its progress.
    reporter: Reporter<'p>,
    stage: u8,
    tensor_bytes: usize,
    recipe: Recipe,
    /// Calibration key (producing op's name) of each buffer.
    key: HashMap<u32, String>,
    /// Float copies of int8 buffers already dequantised.
    dequantized: HashMap<u32, Buf>,
    /// Int8 copies of float buffers already quantised.
    quantized: HashMap<u32, Buf>,
}

fn ids<const N: usize>(v: &[u32]) -> [u32; N] {
    let mut a = [NONE; N];
    a[..v.len()].copy_from_slice(v);
    a
}

/// The progress callback of a [`GraphBuilder`], with the GPTQ layers done.
#[derive(Default)]
struct Reporter<'p> {
    progress: Option<&'p mut Progress<'p>>,
    rounded: usize,
}

impl core::fmt::Debug for Reporter<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Reporter({} rounded)", self.rounded)
    }
}

impl<'p> GraphBuilder<'p> {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty graph built with `recipe`.
    pub fn with_recipe(recipe: Recipe) -> Self {
        GraphBuilder {
            recipe,
            ..Self::default()
        }
    }

    /// Reports each GPTQ-rounded layer to `progress` ([`Phase::Rounding`]).
    pub fn reporting(mut self, progress: &'p mut Progress<'p>) -> Self {
        self.reporter.progress = Some(progress);
        self
    }

    /// The recipe.
    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    fn set_key(&mut self, b: Buf, key: &str) {
        self.key.insert(b.id, key.to_string());
    }

    /// The calibrated range of the values in `b`.
    fn range_of(&self, b: Buf) -> Option<(f32, f32)> {
        let k = self.key.get(&b.id)?;
        self.recipe.ranges.get(k).copied()
    }

    /// An int8 buffer shaped like `like` with `c` channels and parameters `q`.
    fn i8_like(
        &mut self,
        name: &str,
        like: Buf,
        c: usize,
        h: usize,
        w: usize,
        q: (f32, i8),
    ) -> Buf {
        let shape: Vec<u32> = if like.tokens {
            vec![c as u32, (h * w) as u32]
        } else {
            vec![c as u32, h as u32, w as u32]
        };
        let flags = if like.tokens { BUF_TOKENS } else { 0 };
        let id = self.w.add_buffer(name, DType::I8, &shape, flags);
        self.w.buffer_mut(id).quant = Some(q);
        Buf {
            id,
            c,
            h,
            w,
            tokens: like.tokens,
            q: Some(q),
        }
    }

    /// `b` as f32: itself, or a dequantised copy.
    pub fn float_of(&mut self, b: Buf) -> Buf {
        let Some((scale, zp)) = b.q else { return b };
        if let Some(&d) = self.dequantized.get(&b.id) {
            return d;
        }
        let name = format!("{}.f32", self.w.buffer(b.id).name);
        let out = if b.tokens {
            self.tok(&name, b.c, b.w)
        } else {
            self.map(&name, b.c, b.h, b.w, 0)
        };
        self.op(
            &name,
            &ops::dequantize::Dequantize { scale, zp },
            &[b.id],
            out.id,
            NONE,
        );
        if let Some(k) = self.key.get(&b.id).cloned() {
            self.set_key(out, &k);
        }
        self.dequantized.insert(b.id, out);
        out
    }

    /// `b` as int8: itself, or a copy quantised with its calibrated range.
    fn int8_of(&mut self, b: Buf) -> Option<Buf> {
        if b.q.is_some() {
            return Some(b);
        }
        if let Some(&q) = self.quantized.get(&b.id) {
            return Some(q);
        }
        let (lo, hi) = self.range_of(b)?;
        let q = qparams(lo, hi);
        let name = format!("{}.i8", self.w.buffer(b.id).name);
        let out = self.i8_like(&name, b, b.c, b.h, b.w, q);
        self.op(
            &name,
            &ops::quantize::Quantize {
                inv_scale: 1.0 / q.0,
                zp: q.1,
            },
            &[b.id],
            out.id,
            NONE,
        );
        self.quantized.insert(b.id, out);
        Some(out)
    }

    /// The scratch buffer `<name>.scratch` of at least `bytes` bytes (as
    /// f32 words) for op `name`, or [`NONE`] when it needs none.
    fn scratch(&mut self, name: &str, bytes: usize) -> u32 {
        match bytes.div_ceil(4) {
            0 => NONE,
            n => self.w.add_buffer(
                &format!("{name}.scratch"),
                DType::F32,
                &[n as u32],
                BUF_SCRATCH,
            ),
        }
    }

    /// Stage of the ops added from now on.
    pub fn set_stage(&mut self, stage: Stage) {
        self.stage = stage as u8;
    }

    /// Bytes of constant data added so far.
    pub fn tensor_bytes(&self) -> usize {
        self.tensor_bytes
    }

    fn map(&mut self, name: &str, c: usize, h: usize, w: usize, flags: u8) -> Buf {
        let id = self
            .w
            .add_buffer(name, DType::F32, &[c as u32, h as u32, w as u32], flags);
        Buf {
            id,
            c,
            h,
            w,
            tokens: false,
            q: None,
        }
    }

    /// A `[c, t]` token matrix.
    fn tok(&mut self, name: &str, c: usize, t: usize) -> Buf {
        let id = self
            .w
            .add_buffer(name, DType::F32, &[c as u32, t as u32], BUF_TOKENS);
        Buf {
            id,
            c,
            h: 1,
            w: t,
            tokens: true,
            q: None,
        }
    }

    /// A buffer shaped like `like` (map or token matrix) with `c` channels.
    fn like(&mut self, name: &str, like: Buf, c: usize) -> Buf {
        if like.tokens {
            self.tok(name, c, like.w)
        } else {
            self.map(name, c, like.h, like.w, 0)
        }
    }

    /// An i32 index vector of length `k`.
    fn index(&mut self, name: &str, k: usize) -> u32 {
        self.w.add_buffer(name, DType::I32, &[k as u32], 0)
    }

    fn tensor(&mut self, name: &str, shape: &[u32], v: &[f32]) -> u32 {
        self.tensor_bytes += v.len() * 4;
        self.w.add_f32(name, shape, v)
    }

    /// Adds op `name` with parameters `p` (their kind, activation, tensors
    /// and words: the op module's own encoding), reading `inputs` and writing
    /// `out`.
    fn op<P: Params>(&mut self, name: &str, p: &P, inputs: &[u32], out: u32, scratch: u32) {
        self.op2(name, p, inputs, [out, NONE], scratch);
    }

    /// [`GraphBuilder::op`] with up to two outputs.
    fn op2<P: Params>(
        &mut self,
        name: &str,
        p: &P,
        inputs: &[u32],
        outputs: [u32; 2],
        scratch: u32,
    ) {
        let f = p.fields();
        let desc = OpDesc {
            kind: P::KIND as u16,
            stage: self.stage,
            act: f.act,
            inputs: ids(inputs),
            outputs,
            scratch,
            tensors: f.tensors,
            params: f.params,
            ..OpDesc::default()
        };
        self.w.add_op(name, desc);
        self.key
            .entry(outputs[0])
            .or_insert_with(|| name.to_string());
    }

    /// The caller-written image input `[c, h, w]` (kept readable after a run),
    /// values in `[0, 1]`, read by the RT-DETR stem convolution
    /// [`crate::rtdetr::STEM_CONV`]: see [`GraphBuilder::input_for`].
    pub fn input(&mut self, name: &str, c: usize, h: usize, w: usize) -> Buf {
        self.input_for(name, c, h, w, crate::rtdetr::STEM_CONV)
    }

    /// The caller-written image input `[c, h, w]` (kept readable after a run),
    /// values in `[0, 1]` (`pixel / 255`), whose first reader is the
    /// convolution named `first_conv`.
    ///
    /// When the recipe runs `first_conv` in int8 (and has calibrated it), the
    /// input is the u8 image itself: an int8 buffer with scale 1/255 and zero
    /// point −128 ([`edgedetr::model::InputDType::U8`]: byte `pixel ^ 0x80`),
    /// which that convolution reads directly, the division by 255 folded into
    /// its input scale. Float readers get a dequantised copy
    /// ([`GraphBuilder::float_of`]). Otherwise (fp32, fp16, the calibration
    /// graph, a float stem) it is an f32 buffer.
    pub fn input_for(&mut self, name: &str, c: usize, h: usize, w: usize, first_conv: &str) -> Buf {
        self.recipe.ranges.insert(name.to_string(), (0.0, 1.0));
        if self.recipe.int8_op(first_conv) && self.recipe.ranges.contains_key(first_conv) {
            return self.u8_image_input(name, c, h, w);
        }
        let b = self.map(name, c, h, w, BUF_INPUT | BUF_EXPORTED);
        self.set_key(b, name);
        b
    }

    /// The int8 image input of [`GraphBuilder::input_for`]: `(1/255, −128)`,
    /// the parameters the calibrated range `[0, 1]` gives
    /// ([`crate::recipe::qparams`]), so the stem convolution is the one it
    /// was when a `Quantize` op made the int8 copy of an f32 input.
    fn u8_image_input(&mut self, name: &str, c: usize, h: usize, w: usize) -> Buf {
        use edgedetr::model::{U8_INPUT_SCALE, U8_INPUT_ZERO_POINT};
        let q = (U8_INPUT_SCALE, U8_INPUT_ZERO_POINT);
        debug_assert_eq!(q, qparams(0.0, 1.0));
        let shape = [c as u32, h as u32, w as u32];
        let id = self
            .w
            .add_buffer(name, DType::I8, &shape, BUF_INPUT | BUF_EXPORTED);
        self.w.buffer_mut(id).quant = Some(q);
        // No calibration key, like the `.i8` copy a `Quantize` op made: the
        // stem convolution's bias correction stays as it was (none).
        Buf {
            id,
            c,
            h,
            w,
            tokens: false,
            q: Some(q),
        }
    }

    /// Renames `b` and keeps it live to the end of the graph (a named output).
    pub fn export(&mut self, b: Buf, name: &str) {
        let spec = self.w.buffer_mut(b.id);
        spec.name = name.into();
        spec.flags |= BUF_EXPORTED;
    }

    /// A convolution with folded BN (`groups` 1 or depthwise), padding (k−1)/2:
    /// int8 when the recipe says so, else float with the recipe's weight storage.
    pub fn conv(&mut self, name: &str, x: Buf, f: &FoldedConv, stride: usize, act: Act) -> Buf {
        let post_key = if act == Act::Silu {
            format!("{name}#act")
        } else {
            name.to_string()
        };
        if self.recipe.int8_op(name)
            && matches!(act, Act::None | Act::Relu | Act::Relu6 | Act::Silu)
            && self.recipe.ranges.contains_key(name)
            && self.recipe.ranges.contains_key(&post_key)
            && let Some(xq) = self.int8_of(x)
        {
            let out = self.conv_i8(name, xq, f, stride, act);
            self.set_key(out, &post_key);
            return out;
        }
        let x = self.float_of(x);
        if act == Act::Silu && self.recipe.split_silu {
            let pre = self.conv_f32(name, x, f, stride, Act::None);
            self.set_key(pre, name);
            let out = self.activation(&post_key, pre, Act::Silu);
            self.set_key(out, &post_key);
            return out;
        }
        let out = self.conv_f32(name, x, f, stride, act);
        self.set_key(out, &post_key);
        out
    }

    fn geom(x: Buf, f: &FoldedConv, stride: usize) -> ConvGeom {
        ConvGeom {
            cin: x.c,
            h: x.h,
            w: x.w,
            cout: f.cout,
            k: f.k,
            stride,
            groups: if f.cin_per_group == x.c { 1 } else { x.c },
        }
    }

    fn conv_f32(&mut self, name: &str, x: Buf, f: &FoldedConv, stride: usize, act: Act) -> Buf {
        let g = Self::geom(x, f, stride);
        let shape = [
            f.cout as u32,
            f.cin_per_group as u32,
            f.k as u32,
            f.k as u32,
        ];
        let wname = format!("{name}.weight");
        let wt = match self.recipe.weight_prec(name) {
            WeightPrec::F32 => self.tensor(&wname, &shape, &f.weight),
            WeightPrec::F16 => {
                let mut h = vec![0u16; f.weight.len()];
                edgedetr::kernels::f16::f32_to_f16_slice(&f.weight, &mut h);
                let bytes: Vec<u8> = h.iter().flat_map(|v| v.to_le_bytes()).collect();
                self.tensor_bytes += bytes.len();
                self.w.add_tensor(&wname, DType::F16, &shape, &bytes)
            }
            WeightPrec::I8 => {
                let per = f.weight.len() / f.cout;
                let mut q = vec![0u8; f.weight.len()];
                let mut scales = vec![0f32; f.cout];
                for (c, row) in f.weight.chunks_exact(per).enumerate() {
                    let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let sc = if amax > 0.0 { amax / 127.0 } else { 1.0 };
                    scales[c] = sc;
                    for (d, &v) in q[c * per..(c + 1) * per].iter_mut().zip(row) {
                        *d = (v / sc).round().clamp(-127.0, 127.0) as i8 as u8;
                    }
                }
                let sid = self.tensor(&format!("{name}.weight_scale"), &[f.cout as u32], &scales);
                self.tensor_bytes += q.len();
                let id = self.w.add_tensor(&wname, DType::I8, &shape, &q);
                self.w.set_per_channel_quant(id, 0, sid);
                id
            }
        };
        let bt = self.tensor(&format!("{name}.bias"), &[f.cout as u32], &f.bias);
        let out = if x.tokens {
            self.tok(name, f.cout, x.w)
        } else {
            self.map(name, f.cout, g.out_h(), g.out_w(), 0)
        };
        // f16- and int8-stored weights are expanded by the session's prepare
        // step, into its prepared data: the scratch is the GEMM's, or
        // Winograd's where it suits the convolution (the session then
        // chooses it). int8 files and the calibration graph of int8 files
        // plan the GEMM's only, so that they stay as they were.
        let scratch_bytes = if self.recipe.int8 || self.recipe.split_silu {
            ops::conv2d::Conv2d::scratch_bytes(&g)
        } else {
            ops::conv2d::Conv2d::scratch_bytes_planned(&g)
        };
        let scratch = self.scratch(name, scratch_bytes);
        let p = ops::conv2d::Conv2d {
            weight: Tensor(wt),
            bias: Tensor(bt),
            k: f.k as u32,
            stride: stride as u32,
            groups: g.groups as u32,
            act,
        };
        self.op(name, &p, &[x.id], out.id, scratch);
        out
    }

    /// An int8 convolution: per-channel symmetric weights, int32 bias with the
    /// input zero point folded in, fixed-point requantisation to the calibrated
    /// output range; ReLU/ReLU6 as clamps, SiLU as a 256-entry table.
    fn conv_i8(&mut self, name: &str, x: Buf, f: &FoldedConv, stride: usize, act: Act) -> Buf {
        let g = Self::geom(x, f, stride);
        let (sx, zx) = x.q.unwrap_or((1.0, 0));
        let kdim = f.cin_per_group * f.k * f.k;
        let kpad = weight_kpad(kdim);
        // Bias correction: the mean output error of the rounded weights,
        // Σ_k (ŵ − w)·E[x], estimated from the input's calibrated channel means.
        let means = self
            .key
            .get(&x.id)
            .and_then(|k| self.recipe.means.get(k))
            .cloned();
        let mut wq = vec![0u8; f.cout * kpad];
        let mut bias = Vec::with_capacity(f.cout);
        let sw: Vec<f64> = f.weight.chunks_exact(kdim).map(weight_scale).collect();
        // The int8 levels: GPTQ where calibration measured the input's
        // second moments, else nearest.
        let levels: Vec<i8> = match self.recipe.hessians.get(name) {
            Some(h) if h.kdim == kdim && h.groups == g.groups => {
                let levels = crate::gptq::round_rows(&f.weight, &sw, h, f.cout);
                let r = &mut self.reporter;
                r.rounded += 1;
                if let Some(p) = r.progress.as_mut() {
                    p(Event::Step {
                        phase: Phase::Rounding,
                        done: r.rounded,
                        total: self.recipe.hessians.len(),
                    });
                }
                levels
            }
            _ => f
                .weight
                .iter()
                .enumerate()
                .map(|(i, &v)| (v as f64 / sw[i / kdim]).round().clamp(-127.0, 127.0) as i8)
                .collect(),
        };
        for (c, row) in f.weight.chunks_exact(kdim).enumerate() {
            let s = sw[c];
            let mut sum = 0i64;
            let mut shift = 0f64;
            for (j, (d, &v)) in wq[c * kpad..c * kpad + kdim]
                .iter_mut()
                .zip(row)
                .enumerate()
            {
                let q = levels[c * kdim + j];
                sum += q as i64;
                *d = q as u8;
                if let Some(m) = &means {
                    let ci = if g.groups == 1 { j / (f.k * f.k) } else { c };
                    shift += (q as f64 * s - v as f64) * m.get(ci).copied().unwrap_or(0.0) as f64;
                }
            }
            let b = ((f.bias[c] as f64 - shift) / (sx as f64 * s)).round() as i64 - zx as i64 * sum;
            bias.push(b.clamp(i32::MIN as i64, i32::MAX as i64) as i32);
        }
        let post_key = if act == Act::Silu {
            format!("{name}#act")
        } else {
            name.to_string()
        };
        let (lo_r, hi_r) = self.recipe.ranges[&post_key];
        let (out_q, acc_q, lo, hi, lut) = match act {
            Act::Silu => {
                let (plo, phi) = self.recipe.ranges[name];
                let pre = qparams(plo, phi);
                let post = qparams(lo_r, hi_r);
                let mut lut = [0i8; 256];
                edgedetr::kernels::quant::lut_from_fn(
                    pre.0,
                    pre.1 as i32,
                    1.0 / post.0,
                    post.1 as i32,
                    edgedetr::kernels::act::silu,
                    &mut lut,
                );
                (post, pre, -128, 127, Some(lut))
            }
            Act::Relu6 | Act::Relu => {
                let cap = if act == Act::Relu6 { 6.0 } else { f32::MAX };
                let post = qparams(lo_r.max(0.0), hi_r.min(cap));
                let lo = post.1 as i32;
                let hi = if act == Act::Relu6 {
                    (post.1 as i32 + (6.0 / post.0).round() as i32).min(127)
                } else {
                    127
                };
                (post, post, lo, hi, None)
            }
            _ => {
                let q = qparams(lo_r, hi_r);
                (q, q, -128, 127, None)
            }
        };
        let muls: Vec<QMul> = sw
            .iter()
            .map(|&s| quantize_multiplier(sx as f64 * s / acc_q.0 as f64))
            .collect();
        let muls: Vec<i32> = requant_words(&muls).collect();
        let i32_bytes = |v: &[i32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        self.tensor_bytes += wq.len() + 4 * bias.len() + 4 * muls.len();
        let wt = self.w.add_tensor(
            &format!("{name}.weight"),
            DType::I8,
            &[f.cout as u32, kpad as u32],
            &wq,
        );
        let bt = self.w.add_tensor(
            &format!("{name}.bias"),
            DType::I32,
            &[f.cout as u32],
            &i32_bytes(&bias),
        );
        let mt = self.w.add_tensor(
            &format!("{name}.requant"),
            DType::I32,
            &[f.cout as u32, 2],
            &i32_bytes(&muls),
        );
        let lt = match lut {
            Some(l) => {
                let b: Vec<u8> = l.iter().map(|&v| v as u8).collect();
                self.tensor_bytes += 256;
                self.w
                    .add_tensor(&format!("{name}.lut"), DType::I8, &[256], &b)
            }
            None => NONE,
        };
        let out = self.i8_like(name, x, f.cout, g.out_h(), g.out_w(), out_q);
        let scratch = self.scratch(name, ops::conv2d_i8::Conv2dI8::scratch_bytes(&g));
        let p = ops::conv2d_i8::Conv2dI8 {
            weight: Tensor(wt),
            bias: Tensor(bt),
            requant: Tensor(mt),
            lut: (lt != NONE).then_some(Tensor(lt)),
            k: f.k as u32,
            stride: stride as u32,
            groups: g.groups as u32,
            zp_in: zx,
            zp_out: acc_q.1,
            lo: lo as i8,
            hi: hi as i8,
            kpad: kpad as u32,
        };
        self.op(name, &p, &[x.id], out.id, scratch);
        out
    }

    /// A linear layer (`weight [out, in]`, `bias [out]`) over the channels of
    /// `x`, as a 1×1 convolution.
    pub fn linear(&mut self, name: &str, x: Buf, weight: &[f32], bias: &[f32], act: Act) -> Buf {
        let cout = bias.len();
        let f = FoldedConv {
            cout,
            cin_per_group: x.c,
            k: 1,
            weight: weight.to_vec(),
            bias: bias.to_vec(),
        };
        self.conv(name, x, &f, 1, act)
    }

    /// Nearest ×2 upsampling (int8 maps stay int8, with their parameters).
    pub fn upsample2x(&mut self, name: &str, x: Buf) -> Buf {
        let out = match x.q {
            Some(q) => self.i8_like(name, x, x.c, 2 * x.h, 2 * x.w, q),
            None => self.map(name, x.c, 2 * x.h, 2 * x.w, 0),
        };
        self.op(name, &ops::upsample2x::Upsample2x {}, &[x.id], out.id, NONE);
        if let Some(k) = self.key.get(&x.id).cloned() {
            self.set_key(out, &k);
        }
        out
    }

    /// `Σ coef[i] · xs[i]` (2–4 inputs of one shape): int8 when the recipe says
    /// so and the coefficients are non-negative, else f32.
    pub fn weighted_sum(&mut self, name: &str, xs: &[Buf], coef: &[f32]) -> Buf {
        if let Some(out) = self.weighted_sum_i8(name, xs, coef) {
            return out;
        }
        let xs: Vec<Buf> = xs.iter().map(|&b| self.float_of(b)).collect();
        let x0 = xs[0];
        let out = self.like(name, x0, x0.c);
        let ins: Vec<u32> = xs.iter().map(|b| b.id).collect();
        let mut p = ops::weighted_sum::WeightedSum { coef: [0.0; 4] };
        p.coef[..coef.len()].copy_from_slice(coef);
        self.op(name, &p, &ins, out.id, NONE);
        self.set_key(out, name);
        out
    }

    /// `Σ coef[i] · xs'[i]` where `xs'[up] = upsample2x(xs[up])` (named
    /// `up_name`) and the other inputs have the upsampled shape. In int8 the
    /// upsampling is fused into the weighted sum (no upsampled map); in float
    /// it is an op of its own.
    pub fn upsample_weighted_sum(
        &mut self,
        up_name: &str,
        name: &str,
        xs: &[Buf],
        up: usize,
        coef: &[f32],
    ) -> Buf {
        if let Some(out) = self.weighted_sum_i8_masked(name, xs, 1 << up, coef) {
            return out;
        }
        let mut v = xs.to_vec();
        v[up] = self.upsample2x(up_name, xs[up]);
        self.weighted_sum(name, &v, coef)
    }

    fn weighted_sum_i8(&mut self, name: &str, xs: &[Buf], coef: &[f32]) -> Option<Buf> {
        self.weighted_sum_i8_masked(name, xs, 0, coef)
    }

    /// The int8 weighted sum; inputs whose bit is set in `upsampled` are
    /// half-size maps read through nearest ×2 upsampling.
    fn weighted_sum_i8_masked(
        &mut self,
        name: &str,
        xs: &[Buf],
        upsampled: u32,
        coef: &[f32],
    ) -> Option<Buf> {
        if !self.recipe.int8_op(name) || coef.iter().any(|&c| !(c >= 0.0 && c.is_finite())) {
            return None;
        }
        if upsampled != 0 && xs.iter().any(|b| b.tokens) {
            return None;
        }
        let (lo, hi) = *self.recipe.ranges.get(name)?;
        let mut qs = Vec::new();
        for &b in xs {
            qs.push(self.int8_of(b)?);
        }
        let out_q = qparams(lo, hi);
        let coefs: Vec<f64> = coef.iter().map(|&c| c as f64).collect();
        let scales: Vec<f64> = qs.iter().map(|b| b.q.map_or(1.0, |q| q.0 as f64)).collect();
        let zps: Vec<i32> = qs.iter().map(|b| b.q.map_or(0, |q| q.1 as i32)).collect();
        let n = qs.len();
        let mut table = SumTable {
            n,
            inputs: [SumInput::default(); 4],
            out_mul: QMul::ZERO,
            zp: out_q.1,
            lo: -128,
            hi: 127,
        };
        table.out_mul = weighted_sum_params(
            &coefs,
            &scales,
            &zps,
            out_q.0 as f64,
            &mut table.inputs[..n],
        );
        let bytes: Vec<u8> = table.words().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor_bytes += bytes.len();
        let t = self.w.add_tensor(
            &format!("{name}.params"),
            DType::I32,
            &[SumTable::len(n) as u32],
            &bytes,
        );
        let x0 = qs[0];
        let (h, w) = if upsampled & 1 == 1 {
            (2 * x0.h, 2 * x0.w)
        } else {
            (x0.h, x0.w)
        };
        let out = self.i8_like(name, x0, x0.c, h, w, out_q);
        let ins: Vec<u32> = qs.iter().map(|b| b.id).collect();
        let p = ops::weighted_sum_i8::WeightedSumI8 {
            table: Tensor(t),
            upsampled,
        };
        self.op(name, &p, &ins, out.id, NONE);
        self.set_key(out, name);
        Some(out)
    }

    /// `act(a + b)` (int8 as a weighted sum with unit coefficients when the
    /// recipe says so and there is no activation).
    pub fn add(&mut self, name: &str, a: Buf, b: Buf, act: Act) -> Buf {
        if act == Act::None
            && let Some(out) = self.weighted_sum_i8(name, &[a, b], &[1.0, 1.0])
        {
            return out;
        }
        let (a, b) = (self.float_of(a), self.float_of(b));
        let out = self.like(name, a, a.c);
        self.op(name, &ops::add::Add { act }, &[a.id, b.id], out.id, NONE);
        self.set_key(out, name);
        out
    }

    /// `x + t` with a constant `t` of x's shape.
    pub fn add_tensor(&mut self, name: &str, x: Buf, t: &[f32]) -> Buf {
        let x = self.float_of(x);
        let tid = self.tensor(
            &format!("{name}.tensor"),
            &[x.c as u32, (x.h * x.w) as u32],
            t,
        );
        let out = self.map(name, x.c, x.h, x.w, 0);
        let p = ops::add_tensor::AddTensor {
            tensor: Tensor(tid),
        };
        self.op(name, &p, &[x.id], out.id, NONE);
        out
    }

    /// Multi-head attention core (no projections).
    pub fn attention(&mut self, name: &str, q: Buf, k: Buf, v: Buf, heads: usize) -> Buf {
        let (q, k, v) = (self.float_of(q), self.float_of(k), self.float_of(v));
        let out = self.like(name, q, q.c);
        let n = ops::attention::Attention::scratch_bytes(q.c, q.h * q.w, k.h * k.w);
        let scratch = self.scratch(name, n);
        let p = ops::attention::Attention {
            heads: heads as u32,
        };
        self.op(name, &p, &[q.id, k.id, v.id], out.id, scratch);
        out
    }

    /// Layer norm over channels of `x (+ residual)`.
    pub fn layer_norm(
        &mut self,
        name: &str,
        x: Buf,
        residual: Option<Buf>,
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) -> Buf {
        let x = self.float_of(x);
        let residual = residual.map(|r| self.float_of(r));
        let g = self.tensor(&format!("{name}.weight"), &[gamma.len() as u32], gamma);
        let b = self.tensor(&format!("{name}.bias"), &[beta.len() as u32], beta);
        let out = self.like(name, x, x.c);
        let mut ins = vec![x.id];
        ins.extend(residual.map(|r| r.id));
        let p = ops::layer_norm::LayerNorm {
            gamma: Tensor(g),
            beta: Tensor(b),
            eps,
        };
        self.op(name, &p, &ins, out.id, NONE);
        out
    }

    /// Concatenates maps along the token axis into a `[C, Σ h·w]` token matrix.
    pub fn concat_tokens(&mut self, name: &str, xs: &[Buf]) -> Buf {
        let xs: Vec<Buf> = xs.iter().map(|&b| self.float_of(b)).collect();
        let xs = &xs[..];
        let t = xs.iter().map(|b| b.h * b.w).sum();
        let out = self.tok(name, xs[0].c, t);
        let ins: Vec<u32> = xs.iter().map(|b| b.id).collect();
        self.op(
            name,
            &ops::concat_tokens::ConcatTokens {},
            &ins,
            out.id,
            NONE,
        );
        out
    }

    /// `x[c, t] · mask[t]`.
    pub fn mask_tokens(&mut self, name: &str, x: Buf, mask: &[f32]) -> Buf {
        let x = self.float_of(x);
        let m = self.tensor(&format!("{name}.mask"), &[mask.len() as u32], mask);
        let out = self.like(name, x, x.c);
        let p = ops::mask_tokens::MaskTokens { mask: Tensor(m) };
        self.op(name, &p, &[x.id], out.id, NONE);
        out
    }

    /// Indices of the top `k` tokens by their maximum over channels.
    pub fn topk_tokens(&mut self, name: &str, scores: Buf, k: usize) -> u32 {
        let scores = self.float_of(scores);
        let out = self.index(name, k);
        let scratch = self.scratch(name, 4 * k);
        let p = ops::topk_tokens::TopKTokens {};
        self.op(name, &p, &[scores.id], out, scratch);
        out
    }

    /// Gathers the token columns `index` (length k) of a buffer.
    pub fn gather(&mut self, name: &str, index: u32, k: usize, src: Buf) -> Buf {
        let src = self.float_of(src);
        let out = self.tok(name, src.c, k);
        let p = ops::gather::Gather { source: None };
        self.op(name, &p, &[index, src.id], out.id, NONE);
        out
    }

    /// Gathers the columns `index` of a constant `[c, n]` tensor.
    pub fn gather_const(
        &mut self,
        name: &str,
        index: u32,
        k: usize,
        c: usize,
        n: usize,
        data: &[f32],
    ) -> Buf {
        let t = self.tensor(&format!("{name}.source"), &[c as u32, n as u32], data);
        let out = self.tok(name, c, k);
        let p = ops::gather::Gather {
            source: Some(Tensor(t)),
        };
        self.op(name, &p, &[index], out.id, NONE);
        out
    }

    /// Element-wise activation.
    pub fn activation(&mut self, name: &str, x: Buf, act: Act) -> Buf {
        let x = self.float_of(x);
        let out = self.like(name, x, x.c);
        let p = ops::activation::Activation { act };
        self.op(name, &p, &[x.id], out.id, NONE);
        out
    }

    /// Softmax over each group of `group` consecutive channels.
    pub fn softmax_groups(&mut self, name: &str, x: Buf, group: usize) -> Buf {
        let x = self.float_of(x);
        let out = self.like(name, x, x.c);
        let p = ops::softmax_groups::SoftmaxGroups {
            group: group as u32,
        };
        self.op(name, &p, &[x.id], out.id, NONE);
        out
    }

    /// Deformable-attention sampling locations from `reference [4, Q]` and offsets.
    pub fn deform_locations(&mut self, name: &str, reference: Buf, off: Buf, points: usize) -> Buf {
        let (reference, off) = (self.float_of(reference), self.float_of(off));
        let out = self.like(name, off, off.c);
        let p = ops::deform_locations::DeformLocations {
            points: points as u32,
        };
        self.op(name, &p, &[reference.id, off.id], out.id, NONE);
        out
    }

    /// Multi-scale deformable attention sampling over `value [C, N]`.
    #[allow(clippy::too_many_arguments)] // the op's geometry
    pub fn deform_sample(
        &mut self,
        name: &str,
        value: Buf,
        loc: Buf,
        weights: Buf,
        heads: usize,
        points: usize,
        shapes: &[(usize, usize)],
    ) -> Buf {
        let (value, loc, weights) = (
            self.float_of(value),
            self.float_of(loc),
            self.float_of(weights),
        );
        let out = self.like(name, loc, value.c);
        assert!(
            shapes.len() <= MAX_LEVELS && heads < 256 && points < 65536,
            "deform_sample: at most {MAX_LEVELS} levels, 255 heads, 65535 points"
        );
        let mut levels = Levels {
            heads: heads as u8,
            points: points as u16,
            levels: shapes.len() as u8,
            shapes: [(0, 0); MAX_LEVELS],
        };
        for (d, &(h, w)) in levels.shapes.iter_mut().zip(shapes) {
            *d = (h as u32, w as u32);
        }
        let p = ops::deform_sample::DeformSample { levels };
        self.op(name, &p, &[value.id, loc.id, weights.id], out.id, NONE);
        out
    }

    /// `sigmoid(delta + inverse_sigmoid(reference))`.
    pub fn refine_boxes(&mut self, name: &str, delta: Buf, reference: Buf) -> Buf {
        let (delta, reference) = (self.float_of(delta), self.float_of(reference));
        let out = self.like(name, delta, delta.c);
        let p = ops::refine_boxes::RefineBoxes {};
        self.op(name, &p, &[delta.id, reference.id], out.id, NONE);
        out
    }

    /// The final top-`k` (query, class) rows `[k, 6]` and their queries.
    pub fn final_topk(
        &mut self,
        name: &str,
        query_name: &str,
        logits: Buf,
        boxes: Buf,
        k: usize,
    ) -> (u32, u32) {
        let (logits, boxes) = (self.float_of(logits), self.float_of(boxes));
        let rows = self.w.add_buffer(name, DType::F32, &[k as u32, 6], 0);
        // `[1, K]`, the shape of ultralytics' `output_topk_query`.
        let query = self.w.add_buffer(query_name, DType::I32, &[1, k as u32], 0);
        let scratch = self.scratch(name, 8 * k);
        let p = ops::final_topk::FinalTopK {};
        self.op2(name, &p, &[logits.id, boxes.id], [rows, query], scratch);
        (rows, query)
    }

    /// Keeps buffer `id` live to the end of the graph.
    pub fn export_id(&mut self, id: u32) {
        self.w.buffer_mut(id).flags |= BUF_EXPORTED;
    }

    /// Sets the metadata and serialises the model file (plans the arena).
    pub fn finish(mut self, meta: Meta, source: &str, class_names: &[&str]) -> Vec<u8> {
        self.w.set_meta(meta, source, class_names);
        self.w.finish()
    }
}
