//! [`GraphBuilder`]: declares buffers and ops of the static graph in execution
//! order, on top of the model-file writer.

use edgedetr::graph::{OpKind, Stage, attention_scratch_len};
use edgedetr::kernels::Act;
use edgedetr::kernels::conv::ConvGeom;
use edgedetr_format::{
    BUF_EXPORTED, BUF_INPUT, BUF_SCRATCH, BUF_TOKENS, DType, Meta, ModelWriter, NONE, OpDesc,
};

use crate::fold::FoldedConv;

/// A feature map (or `[C, T]` token matrix, as `h = 1, w = T`) in the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

impl Buf {
    /// Elements.
    pub fn numel(&self) -> usize {
        self.c * self.h * self.w
    }
}

/// Builds the static graph.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    w: ModelWriter,
    stage: u8,
    tensor_bytes: usize,
}

fn ids<const N: usize>(v: &[u32]) -> [u32; N] {
    let mut a = [NONE; N];
    a[..v.len()].copy_from_slice(v);
    a
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
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

    #[allow(clippy::too_many_arguments)] // one op record, filled field by field
    fn op(
        &mut self,
        name: &str,
        kind: OpKind,
        act: Act,
        inputs: &[u32],
        out: u32,
        scratch: u32,
        tensors: &[u32],
        params: &[u32],
    ) {
        let desc = OpDesc {
            kind: kind as u16,
            stage: self.stage,
            act: act as u8,
            inputs: ids(inputs),
            outputs: [out, NONE],
            scratch,
            tensors: ids(tensors),
            params: ids::<8>(params).map(|p| if p == NONE { 0 } else { p }),
            ..OpDesc::default()
        };
        self.w.add_op(name, desc);
    }

    /// The caller-written image input `[c, h, w]` (kept readable after a run).
    pub fn input(&mut self, name: &str, c: usize, h: usize, w: usize) -> Buf {
        self.map(name, c, h, w, BUF_INPUT | BUF_EXPORTED)
    }

    /// Renames `b` and keeps it live to the end of the graph (a named output).
    pub fn export(&mut self, b: Buf, name: &str) {
        let spec = self.w.buffer_mut(b.id);
        spec.name = name.into();
        spec.flags |= BUF_EXPORTED;
    }

    /// A convolution with folded BN (`groups` 1 or depthwise), padding (k−1)/2.
    pub fn conv(&mut self, name: &str, x: Buf, f: &FoldedConv, stride: usize, act: Act) -> Buf {
        let groups = if f.cin_per_group == x.c { 1 } else { x.c };
        let g = ConvGeom {
            cin: x.c,
            h: x.h,
            w: x.w,
            cout: f.cout,
            k: f.k,
            stride,
            groups,
        };
        let wt = self.tensor(
            &format!("{name}.weight"),
            &[
                f.cout as u32,
                f.cin_per_group as u32,
                f.k as u32,
                f.k as u32,
            ],
            &f.weight,
        );
        let bt = self.tensor(&format!("{name}.bias"), &[f.cout as u32], &f.bias);
        let out = if x.tokens {
            self.tok(name, f.cout, x.w)
        } else {
            self.map(name, f.cout, g.out_h(), g.out_w(), 0)
        };
        let scratch = match g.scratch_len() {
            0 => NONE,
            n => self.w.add_buffer(
                &format!("{name}.scratch"),
                DType::F32,
                &[n as u32],
                BUF_SCRATCH,
            ),
        };
        self.op(
            name,
            OpKind::Conv2d,
            act,
            &[x.id],
            out.id,
            scratch,
            &[wt, bt],
            &[f.k as u32, stride as u32, groups as u32],
        );
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

    /// Nearest ×2 upsampling.
    pub fn upsample2x(&mut self, name: &str, x: Buf) -> Buf {
        let out = self.map(name, x.c, 2 * x.h, 2 * x.w, 0);
        self.op(
            name,
            OpKind::Upsample2x,
            Act::None,
            &[x.id],
            out.id,
            NONE,
            &[],
            &[],
        );
        out
    }

    /// `Σ coef[i] · xs[i]` (2–4 inputs of one shape).
    pub fn weighted_sum(&mut self, name: &str, xs: &[Buf], coef: &[f32]) -> Buf {
        let x0 = xs[0];
        let out = self.like(name, x0, x0.c);
        let ins: Vec<u32> = xs.iter().map(|b| b.id).collect();
        let params: Vec<u32> = coef.iter().map(|c| c.to_bits()).collect();
        self.op(
            name,
            OpKind::WeightedSum,
            Act::None,
            &ins,
            out.id,
            NONE,
            &[],
            &params,
        );
        out
    }

    /// `act(a + b)`.
    pub fn add(&mut self, name: &str, a: Buf, b: Buf, act: Act) -> Buf {
        let out = self.like(name, a, a.c);
        self.op(
            name,
            OpKind::Add,
            act,
            &[a.id, b.id],
            out.id,
            NONE,
            &[],
            &[],
        );
        out
    }

    /// `x + t` with a constant `t` of x's shape.
    pub fn add_tensor(&mut self, name: &str, x: Buf, t: &[f32]) -> Buf {
        let tid = self.tensor(
            &format!("{name}.tensor"),
            &[x.c as u32, (x.h * x.w) as u32],
            t,
        );
        let out = self.map(name, x.c, x.h, x.w, 0);
        self.op(
            name,
            OpKind::AddTensor,
            Act::None,
            &[x.id],
            out.id,
            NONE,
            &[tid],
            &[],
        );
        out
    }

    /// Multi-head attention core (no projections).
    pub fn attention(&mut self, name: &str, q: Buf, k: Buf, v: Buf, heads: usize) -> Buf {
        let out = self.like(name, q, q.c);
        let n = attention_scratch_len(q.c, q.h * q.w, k.h * k.w);
        let scratch = self.w.add_buffer(
            &format!("{name}.scratch"),
            DType::F32,
            &[n as u32],
            BUF_SCRATCH,
        );
        self.op(
            name,
            OpKind::Attention,
            Act::None,
            &[q.id, k.id, v.id],
            out.id,
            scratch,
            &[],
            &[heads as u32],
        );
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
        let g = self.tensor(&format!("{name}.weight"), &[gamma.len() as u32], gamma);
        let b = self.tensor(&format!("{name}.bias"), &[beta.len() as u32], beta);
        let out = self.like(name, x, x.c);
        let mut ins = vec![x.id];
        ins.extend(residual.map(|r| r.id));
        self.op(
            name,
            OpKind::LayerNorm,
            Act::None,
            &ins,
            out.id,
            NONE,
            &[g, b],
            &[eps.to_bits()],
        );
        out
    }

    /// Concatenates maps along the token axis into a `[C, Σ h·w]` token matrix.
    pub fn concat_tokens(&mut self, name: &str, xs: &[Buf]) -> Buf {
        let t = xs.iter().map(|b| b.h * b.w).sum();
        let out = self.tok(name, xs[0].c, t);
        let ins: Vec<u32> = xs.iter().map(|b| b.id).collect();
        self.op(
            name,
            OpKind::ConcatTokens,
            Act::None,
            &ins,
            out.id,
            NONE,
            &[],
            &[],
        );
        out
    }

    /// `x[c, t] · mask[t]`.
    pub fn mask_tokens(&mut self, name: &str, x: Buf, mask: &[f32]) -> Buf {
        let m = self.tensor(&format!("{name}.mask"), &[mask.len() as u32], mask);
        let out = self.like(name, x, x.c);
        self.op(
            name,
            OpKind::MaskTokens,
            Act::None,
            &[x.id],
            out.id,
            NONE,
            &[m],
            &[],
        );
        out
    }

    /// Indices of the top `k` tokens by their maximum over channels.
    pub fn topk_tokens(&mut self, name: &str, scores: Buf, k: usize) -> u32 {
        let out = self.index(name, k);
        let scratch = self.w.add_buffer(
            &format!("{name}.scratch"),
            DType::F32,
            &[k as u32],
            BUF_SCRATCH,
        );
        self.op(
            name,
            OpKind::TopKTokens,
            Act::None,
            &[scores.id],
            out,
            scratch,
            &[],
            &[],
        );
        out
    }

    /// Gathers the token columns `index` (length k) of a buffer.
    pub fn gather(&mut self, name: &str, index: u32, k: usize, src: Buf) -> Buf {
        let out = self.tok(name, src.c, k);
        self.op(
            name,
            OpKind::Gather,
            Act::None,
            &[index, src.id],
            out.id,
            NONE,
            &[],
            &[],
        );
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
        self.op(
            name,
            OpKind::Gather,
            Act::None,
            &[index],
            out.id,
            NONE,
            &[t],
            &[],
        );
        out
    }

    /// Element-wise activation.
    pub fn activation(&mut self, name: &str, x: Buf, act: Act) -> Buf {
        let out = self.like(name, x, x.c);
        self.op(
            name,
            OpKind::Activation,
            act,
            &[x.id],
            out.id,
            NONE,
            &[],
            &[],
        );
        out
    }

    /// Softmax over each group of `group` consecutive channels.
    pub fn softmax_groups(&mut self, name: &str, x: Buf, group: usize) -> Buf {
        let out = self.like(name, x, x.c);
        self.op(
            name,
            OpKind::SoftmaxGroups,
            Act::None,
            &[x.id],
            out.id,
            NONE,
            &[],
            &[group as u32],
        );
        out
    }

    /// Deformable-attention sampling locations from `reference [4, Q]` and offsets.
    pub fn deform_locations(&mut self, name: &str, reference: Buf, off: Buf, points: usize) -> Buf {
        let out = self.like(name, off, off.c);
        self.op(
            name,
            OpKind::DeformLocations,
            Act::None,
            &[reference.id, off.id],
            out.id,
            NONE,
            &[],
            &[points as u32],
        );
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
        let out = self.like(name, loc, value.c);
        let mut params = vec![(heads | (shapes.len() << 8) | (points << 16)) as u32];
        for &(h, w) in shapes {
            params.push(h as u32);
            params.push(w as u32);
        }
        self.op(
            name,
            OpKind::DeformSample,
            Act::None,
            &[value.id, loc.id, weights.id],
            out.id,
            NONE,
            &[],
            &params,
        );
        out
    }

    /// `sigmoid(delta + inverse_sigmoid(reference))`.
    pub fn refine_boxes(&mut self, name: &str, delta: Buf, reference: Buf) -> Buf {
        let out = self.like(name, delta, delta.c);
        self.op(
            name,
            OpKind::RefineBoxes,
            Act::None,
            &[delta.id, reference.id],
            out.id,
            NONE,
            &[],
            &[],
        );
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
        let rows = self.w.add_buffer(name, DType::F32, &[k as u32, 6], 0);
        let query = self.index(query_name, k);
        let scratch = self.w.add_buffer(
            &format!("{name}.scratch"),
            DType::F32,
            &[2 * k as u32],
            BUF_SCRATCH,
        );
        let desc = OpDesc {
            kind: OpKind::FinalTopK as u16,
            stage: self.stage,
            act: Act::None as u8,
            inputs: ids(&[logits.id, boxes.id]),
            outputs: [rows, query],
            scratch,
            tensors: [NONE; 6],
            params: [0; 8],
            ..OpDesc::default()
        };
        self.w.add_op(name, desc);
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
