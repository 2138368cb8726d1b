//! The op table: what each op kind of the static graph means, the checks the
//! loader runs on it, and the scratch each needs.
//!
//! | kind | inputs | output | tensors | params |
//! |---|---|---|---|---|
//! | [`OpKind::Conv2d`] | x `[Cin,H,W]` | `[Cout,OH,OW]` | weight `[Cout,Cin/g,k,k]`, bias `[Cout]` | k, stride, groups; act |
//! | [`OpKind::Upsample2x`] | x `[C,H,W]` | `[C,2H,2W]` | – | – |
//! | [`OpKind::WeightedSum`] | 2–4 maps, same shape | same shape | – | coefficients (f32 bits) |
//! | [`OpKind::Add`] | a, b, same size | same size | – | act |
//! | [`OpKind::AddTensor`] | x | same size | t, same size | – |
//! | [`OpKind::Attention`] | Q `[C,T]`, K `[C,Tk]`, V `[C,Tk]` | `[C,T]` | – | heads |
//! | [`OpKind::LayerNorm`] | x `[C,T]`, optional residual | `[C,T]` | gamma `[C]`, beta `[C]` | eps (f32 bits) |
//! | [`OpKind::ConcatTokens`] | 1–4 maps `[C,h_i,w_i]` | `[C,Σh_i·w_i]` | – | – |
//! | [`OpKind::MaskTokens`] | x `[C,T]` | `[C,T]` | mask `[T]` | – |
//! | [`OpKind::TopKTokens`] | scores `[C,N]` | i32 `[K]` | – | – (scratch ≥ K) |
//! | [`OpKind::Gather`] | i32 index `[K]`, optional source `[C,N]` | `[C,K]` | source `[C,N]` when no source buffer | – |
//! | [`OpKind::Activation`] | x | same size | – | act |
//! | [`OpKind::SoftmaxGroups`] | x `[G·L,T]` | same | – | L |
//! | [`OpKind::DeformLocations`] | ref `[4,Q]`, offsets `[2S,Q]` | `[2S,Q]` | – | points |
//! | [`OpKind::DeformSample`] | value `[C,N]`, locations `[2S,Q]`, weights `[S,Q]` | `[C,Q]` | – | heads ∣ levels≪8 ∣ points≪16, level (h, w)… |
//! | [`OpKind::RefineBoxes`] | delta `[4,Q]`, ref `[4,Q]` | `[4,Q]` | – | – |
//! | [`OpKind::Conv2dI8`] | i8 x `[Cin,H,W]` | i8 `[Cout,OH,OW]` | i8 weight `[Cout,kpad]`, i32 bias `[Cout]`, i32 multipliers `[Cout,2]` (m, shift), optional i8 LUT `[256]` | k, stride, groups, zp_in, zp_out, lo, hi, kpad (scratch bytes) |
//! | [`OpKind::Quantize`] | f32 | i8, same size | – | 1/scale (f32 bits), zp |
//! | [`OpKind::Dequantize`] | i8 | f32, same size | – | scale (f32 bits), zp |
//! | [`OpKind::WeightedSumI8`] | 2–4 i8 maps (`[C,H,W]`, or `[C,H/2,W/2]` read ×2-upsampled when their bit is set in the mask) | i8 `[C,H,W]` | i32 table: (zp, m, shift) per input, then out m, shift, zp, lo, hi | mask of upsampled inputs |
//! | [`OpKind::FinalTopK`] | logits `[nc,Q]`, boxes `[4,Q]` | rows `[K,6]`, i32 queries `[K]` | – | – (scratch ≥ 2K) |
//!
//! Feature maps are channel-major; a token matrix `[C, T]` is the same memory as
//! a `[C, 1, T]` map, so linear layers are 1×1 convolutions.

use edgedetr_format::{BufferDesc, DType, ModelFile, NONE, OpDesc, QuantKind, TensorDesc};

use crate::view::bytes_as_i32;
use edgedetr_kernels::Act;
use edgedetr_kernels::conv::ConvGeom;
use edgedetr_kernels::gemm::sgemm_scratch_len;
use edgedetr_kernels::ops::decoder::DeformGeom;

use crate::error::Error;

/// Op kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum OpKind {
    /// Convolution (dense or depthwise) with bias and fused activation.
    Conv2d = 1,
    /// Nearest-neighbour ×2 upsampling.
    Upsample2x = 2,
    /// Weighted sum of 2–4 maps (BiFPN).
    WeightedSum = 3,
    /// Element-wise sum of two buffers with fused activation.
    Add = 4,
    /// Element-wise sum of a buffer and a constant tensor.
    AddTensor = 5,
    /// Multi-head scaled dot-product attention core (no projections).
    Attention = 6,
    /// Layer normalisation over channels, with optional residual input.
    LayerNorm = 7,
    /// Concatenation of maps along the token axis.
    ConcatTokens = 8,
    /// Multiplies each token by a constant mask value.
    MaskTokens = 9,
    /// Indices of the top-K tokens by their maximum over channels.
    TopKTokens = 10,
    /// Gathers token columns by index.
    Gather = 11,
    /// Element-wise activation.
    Activation = 12,
    /// Softmax over groups of consecutive channels.
    SoftmaxGroups = 13,
    /// Deformable-attention sampling locations.
    DeformLocations = 14,
    /// Multi-scale deformable attention sampling.
    DeformSample = 15,
    /// Iterative box refinement.
    RefineBoxes = 16,
    /// Top-K (query, class) pairs of the final scores.
    FinalTopK = 17,
    /// int8 convolution with integer-only requantisation (and optional LUT).
    Conv2dI8 = 18,
    /// f32 → int8 (per-tensor scale and zero point).
    Quantize = 19,
    /// int8 → f32.
    Dequantize = 20,
    /// Weighted sum of 2–4 int8 maps with integer requantisation.
    WeightedSumI8 = 21,
}

impl OpKind {
    /// Decodes the stored kind number.
    pub const fn from_u16(v: u16) -> Option<OpKind> {
        Some(match v {
            1 => OpKind::Conv2d,
            2 => OpKind::Upsample2x,
            3 => OpKind::WeightedSum,
            4 => OpKind::Add,
            5 => OpKind::AddTensor,
            6 => OpKind::Attention,
            7 => OpKind::LayerNorm,
            8 => OpKind::ConcatTokens,
            9 => OpKind::MaskTokens,
            10 => OpKind::TopKTokens,
            11 => OpKind::Gather,
            12 => OpKind::Activation,
            13 => OpKind::SoftmaxGroups,
            14 => OpKind::DeformLocations,
            15 => OpKind::DeformSample,
            16 => OpKind::RefineBoxes,
            17 => OpKind::FinalTopK,
            18 => OpKind::Conv2dI8,
            19 => OpKind::Quantize,
            20 => OpKind::Dequantize,
            21 => OpKind::WeightedSumI8,
            _ => return None,
        })
    }

    /// Short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            OpKind::Conv2d => "conv2d",
            OpKind::Upsample2x => "upsample2x",
            OpKind::WeightedSum => "weighted_sum",
            OpKind::Add => "add",
            OpKind::AddTensor => "add_tensor",
            OpKind::Attention => "attention",
            OpKind::LayerNorm => "layer_norm",
            OpKind::ConcatTokens => "concat_tokens",
            OpKind::MaskTokens => "mask_tokens",
            OpKind::TopKTokens => "topk_tokens",
            OpKind::Gather => "gather",
            OpKind::Activation => "activation",
            OpKind::SoftmaxGroups => "softmax_groups",
            OpKind::DeformLocations => "deform_locations",
            OpKind::DeformSample => "deform_sample",
            OpKind::RefineBoxes => "refine_boxes",
            OpKind::FinalTopK => "final_topk",
            OpKind::Conv2dI8 => "conv2d_i8",
            OpKind::Quantize => "quantize",
            OpKind::Dequantize => "dequantize",
            OpKind::WeightedSumI8 => "weighted_sum_i8",
        }
    }
}

/// The stage an op belongs to (for per-stage timing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Stage {
    /// MobileNetV4 backbone.
    Backbone = 0,
    /// AIFI + BiFPN neck.
    Neck = 1,
    /// RT-DETR decoder.
    Decoder = 2,
    /// In-graph postprocessing.
    Post = 3,
}

impl Stage {
    /// Decodes the stored byte.
    pub const fn from_u8(v: u8) -> Option<Stage> {
        match v {
            0 => Some(Stage::Backbone),
            1 => Some(Stage::Neck),
            2 => Some(Stage::Decoder),
            3 => Some(Stage::Post),
            _ => None,
        }
    }
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Backbone => "backbone",
            Stage::Neck => "neck",
            Stage::Decoder => "decoder",
            Stage::Post => "post",
        }
    }
}

/// Scratch f32 elements of an [`OpKind::Attention`] op: the scaled queries, one
/// head's score matrix, and the GEMM packing space.
pub fn attention_scratch_len(c: usize, t: usize, tk: usize) -> usize {
    c * t + t * tk + sgemm_scratch_len(c.max(tk))
}

/// A buffer's shape read as channel-major `(C, H, W)`: rank 1 is `(n, 1, 1)`,
/// rank 2 `[C, T]` is `(C, 1, T)`.
pub fn chw(b: &BufferDesc) -> Option<(usize, usize, usize)> {
    let s = b.shape;
    match b.rank {
        1 => Some((s[0] as usize, 1, 1)),
        2 => Some((s[0] as usize, 1, s[1] as usize)),
        3 => Some((s[0] as usize, s[1] as usize, s[2] as usize)),
        _ => None,
    }
}

/// The convolution geometry of a [`OpKind::Conv2d`] op.
pub fn conv_geom(file: &ModelFile<'_>, op: &OpDesc) -> Option<ConvGeom> {
    let (cin, h, w) = chw(&file.buffer(op.inputs[0]))?;
    let (cout, _, _) = chw(&file.buffer(op.outputs[0]))?;
    Some(ConvGeom {
        cin,
        h,
        w,
        cout,
        k: op.params[0] as usize,
        stride: op.params[1] as usize,
        groups: op.params[2] as usize,
    })
}

/// The sampling geometry of a [`OpKind::DeformSample`] op (`None` if malformed).
pub fn deform_geom(file: &ModelFile<'_>, op: &OpDesc) -> Option<DeformGeom> {
    let p = op.params;
    let (heads, levels, points) = (
        (p[0] & 0xff) as usize,
        ((p[0] >> 8) & 0xff) as usize,
        (p[0] >> 16) as usize,
    );
    if heads == 0 || points == 0 || levels == 0 || levels > 3 {
        return None;
    }
    let mut shapes = [(0usize, 0usize); 4];
    for (l, s) in shapes.iter_mut().enumerate().take(levels) {
        *s = (p[1 + 2 * l] as usize, p[2 + 2 * l] as usize);
    }
    let (c, _, _) = chw(&file.buffer(op.inputs[0]))?;
    let (_, qh, qw) = chw(&file.buffer(op.outputs[0]))?;
    Some(DeformGeom {
        heads,
        levels,
        points,
        shapes,
        channels: c,
        queries: qh * qw,
    })
}

fn f32_param(p: u32) -> f32 {
    f32::from_bits(p)
}

/// Checks the meaning of op `index`: dtypes, shapes, parameters and scratch.
pub(crate) fn check_op(file: &ModelFile<'_>, index: u32) -> Result<(), Error> {
    let op = file.op(index);
    let bad = |reason| Error::BadOp { index, reason };
    let kind = OpKind::from_u16(op.kind).ok_or(Error::UnsupportedOp {
        index,
        kind: op.kind,
    })?;
    Stage::from_u8(op.stage).ok_or(bad("unknown stage"))?;
    let act = Act::from_u8(op.act).ok_or(bad("unknown activation"))?;
    let buf = |i: u32| file.buffer(i);
    let n_in = op.input_ids().count();
    // Every op kind reads at least one buffer; the checks below may look at
    // `inputs[0]` before they count the inputs.
    if n_in == 0 {
        return Err(bad("op reads no buffer"));
    }
    let out = buf(op.outputs[0]);
    let two_outputs = kind == OpKind::FinalTopK;
    if (op.outputs[1] != NONE) != two_outputs {
        return Err(bad("wrong number of outputs for this op kind"));
    }
    // Operand dtypes: indices are i32, quantised maps i8, scratch is f32-typed
    // bytes, everything else f32.
    let want = |id: u32| -> DType {
        if id == op.scratch {
            return DType::F32;
        }
        let is_in = op.input_ids().any(|i| i == id);
        match kind {
            OpKind::TopKTokens if !is_in => DType::I32,
            OpKind::Gather if id == op.inputs[0] => DType::I32,
            OpKind::FinalTopK if id == op.outputs[1] => DType::I32,
            OpKind::Conv2dI8 | OpKind::WeightedSumI8 => DType::I8,
            OpKind::Quantize if !is_in => DType::I8,
            OpKind::Dequantize if is_in => DType::I8,
            OpKind::Upsample2x => DType::from_u8(buf(op.inputs[0]).dtype).unwrap_or(DType::F32),
            _ => DType::F32,
        }
    };
    for id in op.buffer_ids() {
        if buf(id).dtype != want(id) as u8 {
            return Err(bad("buffer has the wrong dtype for this operand"));
        }
    }
    if kind == OpKind::Upsample2x && !matches!(want(op.inputs[0]), DType::F32 | DType::I8) {
        return Err(bad("upsampling takes f32 or i8 maps"));
    }
    // The descriptor in tensor slot `slot`, which must be filled.
    let slot_tensor = |slot: usize| -> Result<TensorDesc, Error> {
        match op.tensors[slot] {
            NONE => Err(bad("missing constant tensor")),
            t => Ok(file.tensor(t)),
        }
    };
    let any_tensor = |slot: usize, dt: DType| -> Result<TensorDesc, Error> {
        let d = slot_tensor(slot)?;
        if d.dtype != dt as u8 {
            return Err(bad("constant tensor has the wrong dtype"));
        }
        Ok(d)
    };
    let numel = |id: u32| buf(id).numel() as usize;
    let tensor = |slot: usize| any_tensor(slot, DType::F32);
    let scratch_len = || -> usize {
        if op.scratch == NONE {
            0
        } else {
            buf(op.scratch).numel() as usize
        }
    };
    let no_act = || {
        if act == Act::None {
            Ok(())
        } else {
            Err(bad("activation not supported here"))
        }
    };
    match kind {
        OpKind::Conv2d => {
            if n_in != 1 {
                return Err(bad("conv takes one input"));
            }
            let g = conv_geom(file, &op).ok_or(bad("conv input/output must be rank 1..=3"))?;
            if !g.is_supported() {
                return Err(bad("unsupported convolution geometry"));
            }
            let (_, oh, ow) = chw(&out).ok_or(bad("bad output rank"))?;
            if (oh, ow) != (g.out_h(), g.out_w()) {
                return Err(bad("output size does not match the convolution"));
            }
            let w = slot_tensor(0)?;
            let cin_g = g.cin / g.groups;
            if w.rank != 4 || w.shape != [g.cout as u32, cin_g as u32, g.k as u32, g.k as u32] {
                return Err(bad("weight shape does not match the convolution"));
            }
            if tensor(1)?.numel() != g.cout as u64 {
                return Err(bad("bias length does not match the output channels"));
            }
            let expand = match DType::from_u8(w.dtype) {
                Some(DType::F32) => 0,
                Some(DType::F16) => w.numel() as usize,
                Some(DType::I8) if w.quant == QuantKind::PerChannel as u8 && w.quant_axis == 0 => {
                    w.numel() as usize
                }
                _ => return Err(bad("conv weights must be f32, f16, or per-channel int8")),
            };
            if scratch_len() < g.scratch_len() + expand {
                return Err(bad("scratch buffer too small"));
            }
        }
        OpKind::Upsample2x => {
            no_act()?;
            let (c, h, w) = chw(&buf(op.inputs[0])).ok_or(bad("bad input rank"))?;
            if n_in != 1 || chw(&out) != Some((c, 2 * h, 2 * w)) {
                return Err(bad("upsample output must be [C, 2H, 2W]"));
            }
        }
        OpKind::WeightedSum => {
            no_act()?;
            if n_in < 2 {
                return Err(bad("weighted sum needs 2 to 4 inputs"));
            }
            for (k, id) in op.input_ids().enumerate() {
                if buf(id).shape != out.shape || buf(id).rank != out.rank {
                    return Err(bad("weighted-sum inputs must match the output shape"));
                }
                if !f32_param(op.params[k]).is_finite() {
                    return Err(bad("weighted-sum coefficient is not finite"));
                }
            }
        }
        OpKind::Add => {
            if n_in != 2
                || buf(op.inputs[0]).numel() != out.numel()
                || buf(op.inputs[1]).numel() != out.numel()
            {
                return Err(bad("add needs two inputs of the output's size"));
            }
        }
        OpKind::AddTensor => {
            no_act()?;
            if n_in != 1
                || buf(op.inputs[0]).numel() != out.numel()
                || tensor(0)?.numel() != out.numel()
            {
                return Err(bad(
                    "add-tensor needs one input and one tensor of the output's size",
                ));
            }
        }
        OpKind::Attention => {
            no_act()?;
            let heads = op.params[0] as usize;
            if n_in != 3 {
                return Err(bad("attention takes Q, K and V"));
            }
            let tokens = |id: u32| chw(&buf(id)).map(|(c, h, w)| (c, h * w));
            let (q, k, v, o) = (
                tokens(op.inputs[0]),
                tokens(op.inputs[1]),
                tokens(op.inputs[2]),
                tokens(op.outputs[0]),
            );
            let (Some((c, t)), Some((ck, tk)), Some(vv), Some(oo)) = (q, k, v, o) else {
                return Err(bad("attention operands must be rank 1..=3"));
            };
            if heads == 0 || c % heads != 0 || ck != c || vv != (c, tk) || oo != (c, t) {
                return Err(bad("attention shapes or head count are inconsistent"));
            }
            if scratch_len() < attention_scratch_len(c, t, tk) {
                return Err(bad("scratch buffer too small"));
            }
        }
        OpKind::LayerNorm => {
            no_act()?;
            let (c, _, _) = chw(&out).ok_or(bad("bad output rank"))?;
            for id in op.input_ids() {
                if buf(id).numel() != out.numel() {
                    return Err(bad("layer-norm inputs must match the output size"));
                }
            }
            if n_in > 2 || tensor(0)?.numel() != c as u64 || tensor(1)?.numel() != c as u64 {
                return Err(bad("layer-norm needs gamma and beta of length C"));
            }
            let eps = f32_param(op.params[0]);
            if !(eps.is_finite() && eps >= 0.0) {
                return Err(bad("bad epsilon"));
            }
        }
        OpKind::ConcatTokens => {
            no_act()?;
            let (c, _, _) = chw(&out).ok_or(bad("bad output rank"))?;
            let mut total = 0;
            for id in op.input_ids() {
                let (ci, h, w) = chw(&buf(id)).ok_or(bad("bad input rank"))?;
                if ci != c {
                    return Err(bad("concatenated maps differ in channels"));
                }
                total += h * w;
            }
            if n_in == 0 || total * c != out.numel() as usize {
                return Err(bad("concatenation size does not match the output"));
            }
        }
        OpKind::MaskTokens => {
            no_act()?;
            let (_, h, w) = chw(&out).ok_or(bad("bad output rank"))?;
            if n_in != 1
                || numel(op.inputs[0]) != out.numel() as usize
                || tensor(0)?.numel() != (h * w) as u64
            {
                return Err(bad(
                    "mask needs one input of the output's size and a mask per token",
                ));
            }
        }
        OpKind::TopKTokens => {
            no_act()?;
            let (_, h, w) = chw(&buf(op.inputs[0])).ok_or(bad("bad input rank"))?;
            let k = out.numel() as usize;
            if n_in != 1 || out.rank != 1 || k == 0 || k > h * w || scratch_len() < k {
                return Err(bad(
                    "top-k needs K <= N, a rank-1 output and K scratch values",
                ));
            }
        }
        OpKind::Gather => {
            no_act()?;
            let k = numel(op.inputs[0]);
            let (c, oh, ow) = chw(&out).ok_or(bad("bad output rank"))?;
            if buf(op.inputs[0]).rank != 1 || oh * ow != k {
                return Err(bad("gather output must be [C, K] for K indices"));
            }
            let src_c = match n_in {
                1 => {
                    let t = tensor(0)?;
                    if t.rank != 2 {
                        return Err(bad("gather source tensor must be [C, N]"));
                    }
                    t.shape[0] as usize
                }
                2 => chw(&buf(op.inputs[1])).ok_or(bad("bad source rank"))?.0,
                _ => return Err(bad("gather takes an index and at most one source buffer")),
            };
            if src_c != c {
                return Err(bad("gather source and output differ in channels"));
            }
        }
        OpKind::Activation => {
            if n_in != 1 || numel(op.inputs[0]) != out.numel() as usize {
                return Err(bad("activation output must match its input"));
            }
        }
        OpKind::SoftmaxGroups => {
            no_act()?;
            let l = op.params[0] as usize;
            let (c, h, w) = chw(&out).ok_or(bad("bad output rank"))?;
            if n_in != 1
                || numel(op.inputs[0]) != out.numel() as usize
                || l == 0
                || c % l != 0
                || h * w == 0
            {
                return Err(bad("softmax groups must divide the channels"));
            }
        }
        OpKind::DeformLocations => {
            no_act()?;
            let (_, rh, rw) = chw(&buf(op.inputs[0])).ok_or(bad("bad rank"))?;
            let q = rh * rw;
            let (c, _, _) = chw(&out).ok_or(bad("bad rank"))?;
            if n_in != 2
                || numel(op.inputs[0]) != 4 * q
                || numel(op.inputs[1]) != out.numel() as usize
                || c % 2 != 0
                || c * q != out.numel() as usize
                || op.params[0] == 0
            {
                return Err(bad(
                    "deformable locations need ref [4, Q] and offsets [2S, Q]",
                ));
            }
        }
        OpKind::DeformSample => {
            no_act()?;
            let g = deform_geom(file, &op).ok_or(bad("bad deformable-attention geometry"))?;
            let (c, vh, vw) = chw(&buf(op.inputs[0])).ok_or(bad("bad rank"))?;
            let s = g.samples();
            if n_in != 3
                || c % g.heads != 0
                || vh * vw != g.tokens()
                || g.shapes[..g.levels].iter().any(|&(h, w)| h == 0 || w == 0)
                || numel(op.inputs[1]) != 2 * s * g.queries
                || numel(op.inputs[2]) != s * g.queries
                || out.numel() as usize != c * g.queries
            {
                return Err(bad(
                    "deformable sampling operands do not match its geometry",
                ));
            }
        }
        OpKind::RefineBoxes => {
            no_act()?;
            if n_in != 2
                || numel(op.inputs[0]) != out.numel() as usize
                || numel(op.inputs[1]) != out.numel() as usize
            {
                return Err(bad(
                    "box refinement needs delta and ref of the output's size",
                ));
            }
        }
        OpKind::Conv2dI8 => {
            no_act()?;
            let g = conv_geom(file, &op).ok_or(bad("conv input/output must be rank 1..=3"))?;
            let (_, oh, ow) = chw(&out).ok_or(bad("bad output rank"))?;
            if n_in != 1 || !g.is_supported() || (oh, ow) != (g.out_h(), g.out_w()) {
                return Err(bad("unsupported int8 convolution geometry"));
            }
            let p = op.params;
            let kpad = p[7] as usize;
            let kdim = g.cin / g.groups * g.k * g.k;
            if kpad != edgedetr_kernels::weight_kpad(kdim) {
                return Err(bad("weight rows are not padded as the kernels expect"));
            }
            let w = any_tensor(0, DType::I8)?;
            if w.numel() != (g.cout * kpad) as u64 {
                return Err(bad("int8 weight size does not match the convolution"));
            }
            if any_tensor(1, DType::I32)?.numel() != g.cout as u64 {
                return Err(bad("bias length does not match the output channels"));
            }
            let m = any_tensor(2, DType::I32)?.numel();
            if m != 2 && m != 2 * g.cout as u64 {
                return Err(bad(
                    "requantisation multipliers must be per tensor or per channel",
                ));
            }
            if op.tensors[3] != NONE && any_tensor(3, DType::I8)?.numel() != 256 {
                return Err(bad("a lookup table has 256 entries"));
            }
            let (zi, zo, lo, hi) = (p[3] as i32, p[4] as i32, p[5] as i32, p[6] as i32);
            let i8r = -128..=127;
            if !(i8r.contains(&zi)
                && i8r.contains(&zo)
                && i8r.contains(&lo)
                && i8r.contains(&hi)
                && lo <= hi)
            {
                return Err(bad("zero points and clamps must be int8"));
            }
            if scratch_len() * 4 < edgedetr_kernels::conv_i8_scratch_len(&g) {
                return Err(bad("scratch buffer too small"));
            }
        }
        OpKind::Quantize | OpKind::Dequantize => {
            no_act()?;
            let scale = f32_param(op.params[0]);
            let zp = op.params[1] as i32;
            if n_in != 1
                || numel(op.inputs[0]) != out.numel() as usize
                || !(scale.is_finite() && scale > 0.0)
                || !(-128..=127).contains(&zp)
            {
                return Err(bad(
                    "(de)quantisation needs a positive scale, an int8 zero point and equal sizes",
                ));
            }
        }
        OpKind::WeightedSumI8 => {
            no_act()?;
            let mask = op.params[0];
            let up = |i: usize| mask >> i & 1 == 1;
            if !(2..=4).contains(&n_in) || mask >> n_in != 0 {
                return Err(bad(
                    "int8 weighted sum needs 2 to 4 inputs and a mask of those upsampled",
                ));
            }
            let (c, h, w) = chw(&out).ok_or(bad("bad rank"))?;
            let sizes_ok = if mask == 0 {
                op.input_ids().all(|id| numel(id) == out.numel() as usize)
            } else {
                out.rank == 3
                    && h % 2 == 0
                    && w % 2 == 0
                    && op.input_ids().enumerate().all(|(i, id)| {
                        let b = buf(id);
                        let want = if up(i) { (c, h / 2, w / 2) } else { (c, h, w) };
                        b.rank == 3 && chw(&b) == Some(want)
                    })
            };
            if !sizes_ok {
                return Err(bad(
                    "int8 weighted-sum inputs must match the output (half its size when upsampled)",
                ));
            }
            let t = any_tensor(0, DType::I32)?;
            if t.numel() != (3 * n_in + 5) as u64 {
                return Err(bad(
                    "int8 weighted-sum parameter table has the wrong length",
                ));
            }
            let v = bytes_as_i32(file.tensor_bytes(op.tensors[0]));
            let i8r = -128..=127;
            let zps_ok =
                (0..n_in).all(|i| i8r.contains(&v[3 * i])) && i8r.contains(&v[3 * n_in + 2]);
            let (lo, hi) = (v[3 * n_in + 3], v[3 * n_in + 4]);
            if !zps_ok || !i8r.contains(&lo) || !i8r.contains(&hi) || lo > hi {
                return Err(bad("zero points and clamps must be int8"));
            }
        }
        OpKind::FinalTopK => {
            no_act()?;
            let (nc, lh, lw) = chw(&buf(op.inputs[0])).ok_or(bad("bad rank"))?;
            let q = lh * lw;
            let k = numel(op.outputs[1]);
            if n_in != 2
                || numel(op.inputs[1]) != 4 * q
                || out.numel() as usize != 6 * k
                || k == 0
                || k > nc * q
                || scratch_len() < 2 * k
            {
                return Err(bad(
                    "final top-k needs logits [nc, Q], boxes [4, Q], rows [K, 6], K <= nc*Q",
                ));
            }
        }
    }
    Ok(())
}
