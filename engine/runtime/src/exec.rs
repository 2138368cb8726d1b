//! Executes one validated op with the chosen kernels.

use edgedetr_format::{DType, ModelFile, NONE, OpDesc};
use edgedetr_kernels::Act;
use edgedetr_kernels::dispatch::Kernels;
use edgedetr_kernels::gemm::{Epilogue, MatRef};
use edgedetr_kernels::ops;
use edgedetr_kernels::ops::decoder;

use crate::graph::{OpKind, chw, conv_geom, deform_geom};
use crate::view::{bytes_as_f32, bytes_as_f32_mut, bytes_as_i8, bytes_as_i32, bytes_as_u16};
use edgedetr_kernels::{QMul, Requant, SumInput};

fn tensor<'b>(file: &ModelFile<'b>, op: &OpDesc, slot: usize) -> &'b [f32] {
    bytes_as_f32(file.tensor_bytes(op.tensors[slot]))
}

/// The f32 weights of a float convolution: in place when stored as f32,
/// otherwise expanded from f16 or per-channel int8 into `spare`.
fn conv_weights<'w>(file: &ModelFile<'w>, op: &OpDesc, spare: &'w mut [f32]) -> &'w [f32] {
    let id = op.tensors[0];
    let t = file.tensor(id);
    let raw = file.tensor_bytes(id);
    match DType::from_u8(t.dtype) {
        Some(DType::F16) => {
            let n = t.numel() as usize;
            edgedetr_kernels::f16_to_f32_slice(bytes_as_u16(raw), &mut spare[..n]);
            &spare[..n]
        }
        Some(DType::I8) => {
            let n = t.numel() as usize;
            let scales = bytes_as_f32(file.tensor_bytes(t.channel_params));
            let per = n / scales.len().max(1);
            for ((dst, src), &s) in spare[..n]
                .chunks_exact_mut(per)
                .zip(bytes_as_i8(raw).chunks_exact(per))
                .zip(scales)
            {
                for (d, &q) in dst.iter_mut().zip(src) {
                    *d = q as f32 * s;
                }
            }
            &spare[..n]
        }
        _ => bytes_as_f32(raw),
    }
}

/// Runs the int8 ops; returns false for the float ones.
fn run_int8_op(
    k: &Kernels,
    file: &ModelFile<'_>,
    op: &OpDesc,
    kind: OpKind,
    ins: &[&[u8]],
    out: &mut [u8],
    scratch: &mut [u8],
) -> bool {
    let i8s = bytes_as_i8;
    match kind {
        OpKind::Conv2dI8 => {
            let Some(g) = conv_geom(file, op) else {
                return true;
            };
            let p = op.params;
            let muls_raw = bytes_as_i32(file.tensor_bytes(op.tensors[2]));
            let lut: Option<&[i8; 256]> = if op.tensors[3] == NONE {
                None
            } else {
                bytes_as_i8(file.tensor_bytes(op.tensors[3]))
                    .try_into()
                    .ok()
            };
            let muls: &[QMul] = edgedetr_kernels::qmuls_from_pairs(muls_raw);
            let rq = Requant {
                mul: muls,
                zp_out: p[4] as i32,
                lo: p[5] as i32 as i8,
                hi: p[6] as i32 as i8,
                lut,
            };
            k.conv2d_i8(
                &g,
                i8s(ins[0]),
                p[3] as i32,
                bytes_as_i8(file.tensor_bytes(op.tensors[0])),
                p[7] as usize,
                bytes_as_i32(file.tensor_bytes(op.tensors[1])),
                &rq,
                bytemuck::cast_slice_mut(out),
                scratch,
            );
        }
        OpKind::Quantize => {
            let inv = f32::from_bits(op.params[0]);
            edgedetr_kernels::quantize_f32_slice(
                bytes_as_f32(ins[0]),
                inv,
                op.params[1] as i32,
                bytemuck::cast_slice_mut(out),
            );
        }
        OpKind::Dequantize => {
            let scale = f32::from_bits(op.params[0]);
            edgedetr_kernels::dequantize_slice(
                i8s(ins[0]),
                scale,
                op.params[1] as i32,
                bytes_as_f32_mut(out),
            );
        }
        OpKind::WeightedSumI8 => {
            let v = bytes_as_i32(file.tensor_bytes(op.tensors[0]));
            let n = ins.len();
            let mut params = [SumInput::default(); 4];
            for (i, p) in params.iter_mut().enumerate().take(n) {
                *p = SumInput {
                    zp: v[3 * i],
                    mul: QMul {
                        m: v[3 * i + 1],
                        shift: v[3 * i + 2],
                    },
                };
            }
            let mut inputs: [&[i8]; 4] = [&[]; 4];
            for (d, s) in inputs.iter_mut().zip(ins) {
                *d = i8s(s);
            }
            let o = 3 * n;
            let out_mul = QMul {
                m: v[o],
                shift: v[o + 1],
            };
            let (zp, lo, hi) = (v[o + 2], v[o + 3] as i8, v[o + 4] as i8);
            let Some(dims) = chw(&file.buffer(op.outputs[0])) else {
                return true; // unreachable: the loader checked the rank
            };
            edgedetr_kernels::weighted_sum_i8_map(
                &inputs[..n],
                op.params[0],
                dims,
                &params[..n],
                out_mul,
                zp,
                lo,
                hi,
                bytemuck::cast_slice_mut(out),
            );
        }
        OpKind::Upsample2x if file.buffer(op.inputs[0]).dtype == DType::I8 as u8 => {
            if let Some((c, h, w)) = chw(&file.buffer(op.inputs[0])) {
                edgedetr_kernels::upsample_nearest2x_i8(
                    i8s(ins[0]),
                    c,
                    h,
                    w,
                    bytemuck::cast_slice_mut(out),
                );
            }
        }
        _ => return false,
    }
    true
}

#[allow(clippy::too_many_arguments)] // the op's operands, unpacked once by the session
pub(crate) fn run_op(
    k: &Kernels,
    file: &ModelFile<'_>,
    op: &OpDesc,
    ins_b: &[&[u8]],
    out_b: &mut [u8],
    out2_b: &mut [u8],
    scratch_b: &mut [u8],
    act: Act,
) {
    let out_desc = file.buffer(op.outputs[0]);
    let Some(kind) = OpKind::from_u16(op.kind) else {
        return; // unreachable: the loader rejects unknown kinds
    };
    if run_int8_op(k, file, op, kind, ins_b, out_b, scratch_b) {
        return;
    }
    let mut ins_f: [&[f32]; 4] = [&[]; 4];
    for (d, s) in ins_f.iter_mut().zip(ins_b) {
        *d = bytes_as_f32(s);
    }
    let ins = &ins_f[..ins_b.len()];
    let out = bytes_as_f32_mut(out_b);
    let out2 = bytes_as_f32_mut(out2_b);
    let scratch = bytes_as_f32_mut(scratch_b);
    match kind {
        OpKind::Conv2d => {
            if let Some(g) = conv_geom(file, op) {
                let (conv_scratch, spare) =
                    scratch.split_at_mut(g.scratch_len().min(scratch.len()));
                let weight = conv_weights(file, op, spare);
                k.conv2d_f32(
                    &g,
                    ins[0],
                    weight,
                    tensor(file, op, 1),
                    act,
                    out,
                    conv_scratch,
                );
            }
        }
        OpKind::Upsample2x => {
            if let Some((c, h, w)) = chw(&file.buffer(op.inputs[0])) {
                ops::upsample_nearest2x(ins[0], c, h, w, out);
            }
        }
        OpKind::WeightedSum => {
            let mut coef = [0f32; 4];
            for (c, p) in coef.iter_mut().zip(op.params) {
                *c = f32::from_bits(p);
            }
            ops::weighted_sum(ins, &coef[..ins.len()], out);
        }
        OpKind::Add => ops::add_act(ins[0], ins[1], act, out),
        OpKind::AddTensor => ops::add(ins[0], tensor(file, op, 0), out),
        OpKind::Attention => {
            let heads = op.params[0] as usize;
            let (Some((c, qh, qw)), Some((_, kh, kw))) = (
                chw(&file.buffer(op.inputs[0])),
                chw(&file.buffer(op.inputs[1])),
            ) else {
                return;
            };
            let (t, tk) = (qh * qw, kh * kw);
            attention(k, ins[0], ins[1], ins[2], c, t, tk, heads, out, scratch);
        }
        OpKind::LayerNorm => {
            if let Some((c, h, w)) = chw(&out_desc) {
                let eps = f32::from_bits(op.params[0]);
                ops::layer_norm_channels(
                    ins[0],
                    ins.get(1).copied(),
                    c,
                    h * w,
                    tensor(file, op, 0),
                    tensor(file, op, 1),
                    eps,
                    out,
                );
            }
        }
        OpKind::ConcatTokens => {
            let Some((c, oh, ow)) = chw(&out_desc) else {
                return;
            };
            let n = oh * ow;
            let mut start = 0;
            for (x, id) in ins.iter().zip(op.input_ids()) {
                let t = file.buffer(id).numel() as usize / c.max(1);
                for ch in 0..c {
                    out[ch * n + start..ch * n + start + t]
                        .copy_from_slice(&x[ch * t..(ch + 1) * t]);
                }
                start += t;
            }
        }
        OpKind::MaskTokens => {
            let Some((c, h, w)) = chw(&out_desc) else {
                return;
            };
            decoder::mask_tokens(ins[0], c, h * w, tensor(file, op, 0), out);
        }
        OpKind::TopKTokens => {
            let Some((c, h, w)) = chw(&file.buffer(op.inputs[0])) else {
                return;
            };
            let idx: &mut [u32] = bytemuck::cast_slice_mut(out);
            let k = idx.len();
            decoder::topk_tokens_by_max(ins[0], c, h * w, idx, &mut scratch[..k]);
        }
        OpKind::Gather => {
            let idx: &[u32] = bytemuck::cast_slice(ins[0]);
            let (src, n) = if op.inputs[1] != NONE {
                let (_, h, w) = chw(&file.buffer(op.inputs[1])).unwrap_or((0, 0, 0));
                (ins[1], h * w)
            } else {
                let t = file.tensor(op.tensors[0]);
                (tensor(file, op, 0), t.shape[1] as usize)
            };
            let c = chw(&out_desc).map_or(0, |s| s.0);
            decoder::gather_tokens(src, c, n, idx, out);
        }
        OpKind::Activation => {
            out.copy_from_slice(ins[0]);
            act.apply_slice(out);
        }
        OpKind::SoftmaxGroups => {
            let Some((_, h, w)) = chw(&out_desc) else {
                return;
            };
            decoder::softmax_channel_groups(ins[0], op.params[0] as usize, h * w, out);
        }
        OpKind::DeformLocations => {
            let Some((_, h, w)) = chw(&file.buffer(op.inputs[0])) else {
                return;
            };
            decoder::deform_locations(ins[0], ins[1], h * w, op.params[0] as usize, out);
        }
        OpKind::DeformSample => {
            if let Some(g) = deform_geom(file, op) {
                decoder::deform_sample(&g, ins[0], ins[1], ins[2], out);
            }
        }
        OpKind::RefineBoxes => decoder::refine_boxes(ins[0], ins[1], out),
        // Handled by `run_int8_op`.
        OpKind::Conv2dI8 | OpKind::Quantize | OpKind::Dequantize | OpKind::WeightedSumI8 => {}
        OpKind::FinalTopK => {
            let Some((nc, h, w)) = chw(&file.buffer(op.inputs[0])) else {
                return;
            };
            let query: &mut [u32] = bytemuck::cast_slice_mut(out2);
            let k = query.len();
            let (sc, ix) = scratch.split_at_mut(k);
            let idx: &mut [u32] = bytemuck::cast_slice_mut(&mut ix[..k]);
            decoder::final_topk(ins[0], ins[1], nc, h * w, out, query, idx, sc);
        }
    }
}

/// Multi-head attention core over channel-major token matrices, as torch's
/// `MultiheadAttention` (SPEC.md §4.1): per head h, `softmax((Q_h·s)ᵀ K_h) ` with
/// `s = sqrt(1/d)` applied to Q first, then `O_h = V_h · Aᵀ`.
#[allow(clippy::too_many_arguments)]
fn attention(
    k: &Kernels,
    q: &[f32],
    key: &[f32],
    v: &[f32],
    c: usize,
    t: usize,
    tk: usize,
    heads: usize,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let d = c / heads;
    let scale = libm::sqrt(1.0 / d as f64) as f32;
    let (qs, rest) = scratch.split_at_mut(c * t);
    let (scores, gemm_scratch) = rest.split_at_mut(t * tk);
    for (o, &x) in qs.iter_mut().zip(q) {
        *o = x * scale;
    }
    for h in 0..heads {
        let qh = &qs[h * d * t..(h + 1) * d * t];
        let kh = &key[h * d * tk..(h + 1) * d * tk];
        let vh = &v[h * d * tk..(h + 1) * d * tk];
        // scores[i, j] = Σ_p Q[p, i] K[p, j]
        k.sgemm(
            t,
            tk,
            d,
            MatRef {
                data: qh,
                rs: 1,
                cs: t,
            },
            MatRef {
                data: kh,
                rs: tk,
                cs: 1,
            },
            scores,
            tk,
            Epilogue {
                bias: None,
                accumulate: false,
                act: Act::None,
            },
            gemm_scratch,
        );
        for row in scores.chunks_exact_mut(tk) {
            ops::softmax_in_place(row);
        }
        // out[p, i] = Σ_j V[p, j] A[i, j]
        k.sgemm(
            d,
            t,
            tk,
            MatRef {
                data: vh,
                rs: tk,
                cs: 1,
            },
            MatRef {
                data: scores,
                rs: 1,
                cs: tk,
            },
            &mut out[h * d * t..(h + 1) * d * t],
            t,
            Epilogue {
                bias: None,
                accumulate: false,
                act: Act::None,
            },
            gemm_scratch,
        );
    }
}
