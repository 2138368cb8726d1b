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
//!
//! Feature maps are channel-major; a token matrix `[C, T]` is the same memory as
//! a `[C, 1, T]` map, so linear layers are 1×1 convolutions.

use edgedetr_format::{BufferDesc, DType, ModelFile, NONE, OpDesc, TensorDesc};
use edgedetr_kernels::Act;
use edgedetr_kernels::conv::ConvGeom;
use edgedetr_kernels::gemm::sgemm_scratch_len;

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
    let is_f32 = |b: &BufferDesc| b.dtype == DType::F32 as u8;
    let n_in = op.input_ids().count();
    let out = buf(op.outputs[0]);
    if op.outputs[1] != NONE {
        return Err(bad("this op kind has one output"));
    }
    for id in op.buffer_ids() {
        if !is_f32(&buf(id)) {
            return Err(bad("only f32 buffers are supported"));
        }
    }
    let tensor = |slot: usize| -> Result<TensorDesc, Error> {
        let t = op.tensors[slot];
        if t == NONE {
            return Err(bad("missing constant tensor"));
        }
        let d = file.tensor(t);
        if d.dtype != DType::F32 as u8 {
            return Err(bad("only f32 constants are supported"));
        }
        Ok(d)
    };
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
            let w = tensor(0)?;
            let cin_g = g.cin / g.groups;
            if w.rank != 4 || w.shape != [g.cout as u32, cin_g as u32, g.k as u32, g.k as u32] {
                return Err(bad("weight shape does not match the convolution"));
            }
            if tensor(1)?.numel() != g.cout as u64 {
                return Err(bad("bias length does not match the output channels"));
            }
            if scratch_len() < g.scratch_len() {
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
    }
    Ok(())
}
