//! Kernel tier, generated from the kernel inventory: every slot of the table
//! (`Slot::ALL`) on the shapes where it is hot in RT-DETR (MobileNetV4-Conv-
//! Small + BiFPN, 640×640 input), for every path this CPU runs that installs
//! its own kernel in that slot (a path inheriting a slot would time the same
//! function again). Single thread.
//!
//! Groups are `<slot>/<where the shape occurs>`, functions the path names.
//! Throughput is counted in FLOPs (`2·MACs`) for convolutions and GEMMs and
//! in output elements otherwise, so criterion's `elem/s` reads as FLOP/s or
//! elements/s.
//!
//! `cargo bench -p edgedetr-benches --bench kernels [-- <filter>]`
//! (`EDGEDETR_KERNELS` is not needed: every available path is timed).

use std::hint::black_box;
use std::time::Instant;

mod common;
use common::fit;
use criterion::{BenchmarkId, Criterion, Throughput};
use criterion::{criterion_group, criterion_main};
use edgedetr_benches::values;
use edgedetr_kernels::conv_i8::conv_i8_reduction_len;
use edgedetr_kernels::ops::decoder::{DeformGeom, FinalTopK};
use edgedetr_kernels::ops::norm::LayerNorm;
use edgedetr_kernels::table::PATHS;
use edgedetr_kernels::winograd::{
    WinogradF32, winograd_f43_scratch_len, winograd_f43_weights, winograd_f43_weights_len,
};
use edgedetr_kernels::{
    Act, Caps, ConvF32, ConvGeom, ConvI8, Epilogue, Gemm, Kernels, MatRef, QMul, Requant, Resize,
    Slot, SumI8, SumInput, conv_i8_scratch_len, quantize_multiplier, sgemm_scratch_len,
    weight_kpad,
};

/// One benchmarked shape of a slot: where it occurs, its throughput count,
/// and the call (owning its data).
struct Case {
    name: &'static str,
    count: u64,
    run: Box<dyn FnMut(&Kernels)>,
}

fn case(name: &'static str, count: usize, run: impl FnMut(&Kernels) + 'static) -> Case {
    Case {
        name,
        count: count as u64,
        run: Box::new(run),
    }
}

/// A dense convolution of the neck: 256→256 channels, stride 1.
const fn neck(k: usize, hw: usize) -> ConvGeom {
    ConvGeom::new(256, hw, hw, 256, k, 1, 1)
}

/// A depthwise convolution of the backbone.
const fn depthwise(c: usize, k: usize, hw: usize, stride: usize) -> ConvGeom {
    ConvGeom::new(c, hw, hw, c, k, stride, c)
}

fn bytes(n: usize, seed: u64) -> Vec<i8> {
    values(n, seed).iter().map(|v| (v * 127.0) as i8).collect()
}

fn conv_f32(name: &'static str, g: ConvGeom, act: Act) -> Case {
    let (input, weight, bias) = (
        values(g.cin * g.h * g.w, 1),
        values(g.weight_len(), 2),
        values(g.cout, 3),
    );
    let mut out = vec![0f32; g.cout * g.out_h() * g.out_w()];
    let mut scratch = vec![0f32; g.scratch_len()];
    let flops = 2 * g.weight_len() * g.out_h() * g.out_w();
    case(name, flops, move |k| {
        let a = ConvF32 {
            g,
            input: black_box(&input),
            weight: &weight,
            bias: &bias,
            act,
        };
        if g.groups == 1 {
            k.conv_f32(&a, &mut out, &mut scratch);
        } else {
            k.dwconv_f32(&a, &mut out);
        }
    })
}

/// A Winograd F(4×4, 3×3) convolution; the count is the direct
/// convolution's flops (what the layer would cost without Winograd).
fn winograd_f32(name: &'static str, g: ConvGeom, act: Act) -> Case {
    let (input, weight, bias) = (
        values(g.cin * g.h * g.w, 1),
        values(g.weight_len(), 2),
        values(g.cout, 3),
    );
    let mut u = vec![0f32; winograd_f43_weights_len(&g)];
    winograd_f43_weights(&g, &weight, &mut u);
    let mut out = vec![0f32; g.cout * g.h * g.w];
    let mut scratch = vec![0f32; winograd_f43_scratch_len(&g)];
    let flops = 2 * g.weight_len() * g.h * g.w;
    case(name, flops, move |k| {
        let a = WinogradF32 {
            g,
            input: black_box(&input),
            u: &u,
            bias: &bias,
            act,
            co_start: 0,
            co_end: g.cout,
        };
        k.winograd_f43_f32(&a, &mut out, &mut scratch);
    })
}

fn conv_i8(name: &'static str, g: ConvGeom, lut: bool) -> Case {
    let kk = conv_i8_reduction_len(&g);
    let kpad = weight_kpad(kk);
    let input = bytes(g.cin * g.h * g.w, 1);
    let mut weight = vec![0i8; g.cout * kpad];
    for (row, src) in weight
        .chunks_exact_mut(kpad)
        .zip(bytes(g.cout * kk, 2).chunks_exact(kk))
    {
        row[..kk].copy_from_slice(src);
    }
    let bias: Vec<i32> = (0..g.cout as i32).map(|c| c * 37 - 4000).collect();
    let mul = vec![quantize_multiplier(1.0 / 4096.0); g.cout];
    let table = [7i8; 256];
    let mut out = vec![0i8; g.cout * g.out_h() * g.out_w()];
    let mut scratch = vec![0u8; conv_i8_scratch_len(&g)];
    let flops = 2 * g.cout * kk * g.out_h() * g.out_w();
    case(name, flops, move |k| {
        let a = ConvI8 {
            g,
            input: black_box(&input),
            zp_in: -3,
            weight: &weight,
            kpad,
            bias: &bias,
            rq: Requant {
                mul: &mul,
                zp_out: 5,
                lo: -128,
                hi: 127,
                lut: lut.then_some(&table),
            },
        };
        if g.groups == 1 {
            k.conv_i8(&a, &mut out, &mut scratch);
        } else {
            k.dwconv_i8(&a, &mut out);
        }
    })
}

fn sgemm(name: &'static str, m: usize, n: usize, kk: usize) -> Case {
    let (a, b, bias) = (values(m * kk, 4), values(kk * n, 5), values(m, 6));
    let mut c = vec![0f32; m * n];
    let mut scratch = vec![0f32; sgemm_scratch_len(kk)];
    case(name, 2 * m * n * kk, move |k| {
        let g = Gemm {
            m,
            n,
            k: kk,
            a: MatRef {
                data: &a,
                rs: kk,
                cs: 1,
            },
            b: MatRef {
                data: black_box(&b),
                rs: n,
                cs: 1,
            },
            rsc: n,
            epi: Epilogue {
                bias: Some(&bias),
                accumulate: false,
                act: Act::None,
            },
        };
        k.sgemm(&g, &mut c, &mut scratch);
    })
}

/// A bfloat16 linear layer `m × k` over `n` tokens (int8-valued weights).
fn linear_bf16(name: &'static str, m: usize, n: usize, kk: usize) -> Case {
    let w: Vec<u16> = values(m * kk, 4)
        .iter()
        .map(|&v| edgedetr_kernels::bf16_bits((v * 100.0).round()))
        .collect();
    let (x, scale, bias) = (values(kk * n, 5), values(m, 6), values(m, 7));
    let mut y = vec![0f32; m * n];
    let mut scratch = vec![0u8; edgedetr_kernels::linear_bf16_scratch_len(kk)];
    case(name, 2 * m * n * kk, move |k| {
        let a = edgedetr_kernels::LinearBf16 {
            m,
            n,
            k: kk,
            weight: &w,
            scale: &scale,
            bias: &bias,
            input: black_box(&x),
            act: Act::None,
        };
        k.linear_bf16(&a, &mut y, &mut scratch);
    })
}

/// The shapes of `slot`. Exhaustive over [`Slot`]: a new slot does not
/// compile until it has a bench.
fn cases(slot: Slot) -> Vec<Case> {
    const P3: usize = 256 * 80 * 80;
    match slot {
        Slot::Sgemm => vec![
            // The GEMM of the 3×3 RepConv at P4 (B in memory).
            sgemm("neck_repconv_3x3_gemm_m256_k2304_n1600", 256, 1600, 2304),
            // A decoder linear over 300 queries.
            sgemm("decoder_linear_m256_k256_n300", 256, 300, 256),
        ],
        Slot::LinearBf16 => vec![
            // The decoder's value projection over 2100 tokens (320 px), and
            // its FFN over 300 queries.
            linear_bf16("decoder_value_m256_k256_n2100", 256, 2100, 256),
            linear_bf16("decoder_ffn_m1024_k256_n300", 1024, 300, 256),
        ],
        Slot::WinogradF32 => vec![
            winograd_f32("neck_repconv_3x3_256to256_40x40", neck(3, 40), Act::Silu),
            winograd_f32("neck_repconv_3x3_256to256_80x80", neck(3, 80), Act::Silu),
        ],
        Slot::ConvF32 => vec![
            conv_f32("neck_repconv_3x3_256to256_40x40", neck(3, 40), Act::Silu),
            conv_f32("neck_repc3_cv_1x1_256to256_80x80", neck(1, 80), Act::Silu),
        ],
        Slot::DwConvF32 => vec![
            conv_f32(
                "backbone_uib_start_dw_5x5_64ch_80x80",
                depthwise(64, 5, 80, 1),
                Act::None,
            ),
            conv_f32(
                "backbone_uib_middle_dw_5x5_192ch_s2_80to40",
                depthwise(192, 5, 80, 2),
                Act::Relu6,
            ),
        ],
        Slot::ConvI8 => vec![
            conv_i8("neck_repconv_3x3_256to256_40x40", neck(3, 40), true),
            conv_i8("neck_repc3_cv_1x1_256to256_80x80", neck(1, 80), true),
        ],
        Slot::DwConvI8 => vec![
            conv_i8(
                "backbone_uib_start_dw_5x5_64ch_80x80",
                depthwise(64, 5, 80, 1),
                false,
            ),
            conv_i8(
                "backbone_uib_middle_dw_5x5_192ch_s2_80to40",
                depthwise(192, 5, 80, 2),
                false,
            ),
        ],
        Slot::WeightedSumI8 => {
            // BiFPN top-down node at P3: P3 plus P4 read ×2-upsampled.
            let (a, b) = (bytes(P3, 1), bytes(P3 / 4, 2));
            let p = [SumInput {
                zp: 3,
                mul: QMul {
                    m: 1 << 30,
                    shift: -1,
                },
            }; 2];
            let mut out = vec![0i8; P3];
            vec![case("bifpn_p3_upsampled_sum_256x80x80", P3, move |k| {
                let ins: [&[i8]; 2] = [black_box(&a), &b];
                let s = SumI8 {
                    inputs: &ins,
                    upsampled: 0b10,
                    dims: (256, 80, 80),
                    params: &p,
                    out_mul: QMul {
                        m: 1 << 30,
                        shift: -18,
                    },
                    zp_out: -2,
                    lo: -128,
                    hi: 127,
                };
                k.weighted_sum_i8(&s, &mut out);
            })]
        }
        Slot::Quantize => {
            let x = values(P3, 1);
            let mut q = vec![0i8; P3];
            vec![case("neck_p3_256x80x80", P3, move |k| {
                k.quantize(black_box(&x), 31.0, 4, &mut q)
            })]
        }
        Slot::Dequantize => {
            let q = bytes(P3, 1);
            let mut x = vec![0f32; P3];
            vec![case("neck_p3_256x80x80", P3, move |k| {
                k.dequantize(black_box(&q), 0.03, 4, &mut x)
            })]
        }
        Slot::Upsample2xI8 => {
            let x = bytes(P3 / 4, 1);
            let mut y = vec![0i8; P3];
            vec![case("bifpn_p4_to_p3_256x40x40", P3, move |k| {
                k.upsample2x_i8(black_box(&x), (256, 40, 40), &mut y)
            })]
        }
        Slot::U8ToI8 => {
            let x: Vec<u8> = (0..3 * 640 * 640).map(|i| (i * 7) as u8).collect();
            let mut y = vec![0i8; x.len()];
            vec![case("input_3x640x640", x.len(), move |k| {
                k.u8_to_i8(black_box(&x), &mut y)
            })]
        }
        Slot::WeightedSumF32 => {
            let xs = [values(P3, 1), values(P3, 2), values(P3, 3)];
            let mut y = vec![0f32; P3];
            vec![case("bifpn_p3_3_inputs_256x80x80", P3, move |k| {
                let ins: [&[f32]; 3] = [black_box(&xs[0]), &xs[1], &xs[2]];
                k.weighted_sum_f32(&ins, &[0.4, 0.35, 0.25], &mut y)
            })]
        }
        Slot::AddF32 => {
            let (a, b) = (values(256 * 400, 1), values(256 * 400, 2));
            let mut y = vec![0f32; a.len()];
            vec![case("aifi_residual_256x400", a.len(), move |k| {
                k.add_f32(black_box(&a), &b, Act::None, &mut y)
            })]
        }
        Slot::ActF32 => {
            let x = values(P3, 1);
            let mut y = vec![0f32; P3];
            vec![case("silu_256x80x80", P3, move |k| {
                k.act_f32(Act::Silu, black_box(&x), &mut y)
            })]
        }
        Slot::Upsample2xF32 => {
            let x = values(P3 / 4, 1);
            let mut y = vec![0f32; P3];
            vec![case("bifpn_p4_to_p3_256x40x40", P3, move |k| {
                k.upsample2x_f32(black_box(&x), (256, 40, 40), &mut y)
            })]
        }
        Slot::F16ToF32 => {
            let h: Vec<u16> = (0u32..1 << 20)
                .map(|i| (i.wrapping_mul(2_654_435_761u32) >> 16) as u16 & 0x7bff)
                .collect();
            let mut y = vec![0f32; h.len()];
            vec![case("prepare_1m_weights", h.len(), move |k| {
                k.f16_to_f32(black_box(&h), &mut y)
            })]
        }
        Slot::LayerNorm => {
            let (x, r) = (values(256 * 400, 1), values(256 * 400, 2));
            let (g, b) = (values(256, 3), values(256, 4));
            let mut y = vec![0f32; x.len()];
            vec![case("aifi_256x400", x.len(), move |k| {
                let a = LayerNorm {
                    x: black_box(&x),
                    residual: Some(&r),
                    c: 256,
                    t: 400,
                    gamma: &g,
                    beta: &b,
                    eps: 1e-5,
                };
                k.layer_norm(&a, &mut y)
            })]
        }
        Slot::SoftmaxCols => {
            let x = values(400 * 400, 1);
            let mut y = x.clone();
            let d = values(300 * 300, 2);
            let mut e = d.clone();
            vec![
                case("aifi_scores_400x400", x.len(), move |k| {
                    y.copy_from_slice(black_box(&x));
                    k.softmax_cols(&mut y, 400)
                }),
                case("decoder_self_attn_scores_300x300", d.len(), move |k| {
                    e.copy_from_slice(black_box(&d));
                    k.softmax_cols(&mut e, 300)
                }),
            ]
        }
        Slot::ConcatTokens => {
            let parts = [
                values(256 * 6400, 1),
                values(256 * 1600, 2),
                values(256 * 400, 3),
            ];
            let mut y = vec![0f32; 256 * 8400];
            vec![case("encoder_tokens_256x8400", y.len(), move |k| {
                let ins: [&[f32]; 3] = [black_box(&parts[0]), &parts[1], &parts[2]];
                k.concat_tokens(&ins, 256, &mut y)
            })]
        }
        Slot::MaskTokens => {
            let (x, m) = (values(256 * 8400, 1), values(8400, 2));
            let mut y = vec![0f32; x.len()];
            vec![case("encoder_tokens_256x8400", x.len(), move |k| {
                k.mask_tokens(black_box(&x), 256, &m, &mut y)
            })]
        }
        Slot::TopKTokens => {
            let s = values(80 * 8400, 1);
            let (mut idx, mut sc) = (vec![0u32; 300], vec![0f32; 300]);
            vec![case("encoder_scores_80x8400_top300", s.len(), move |k| {
                k.topk_tokens(black_box(&s), 80, &mut idx, &mut sc)
            })]
        }
        Slot::GatherTokens => {
            let s = values(256 * 8400, 1);
            let idx: Vec<u32> = (0..300).map(|i| i * 28).collect();
            let mut y = vec![0f32; 256 * 300];
            vec![case("decoder_queries_256x300", y.len(), move |k| {
                k.gather_tokens(black_box(&s), 256, &idx, &mut y)
            })]
        }
        Slot::SoftmaxGroups => {
            let x = values(96 * 300, 1);
            let mut y = vec![0f32; x.len()];
            vec![case(
                "decoder_attention_weights_96x300",
                x.len(),
                move |k| k.softmax_groups(black_box(&x), 12, 300, &mut y),
            )]
        }
        Slot::DeformLocations => {
            let (r, off) = (values(4 * 300, 1), values(192 * 300, 2));
            let mut y = vec![0f32; off.len()];
            vec![case("decoder_192x300", y.len(), move |k| {
                k.deform_locations(black_box(&r), &off, 300, 4, &mut y)
            })]
        }
        Slot::DeformSample => {
            let g = DeformGeom {
                heads: 8,
                levels: 3,
                points: 4,
                shapes: [(80, 80), (40, 40), (20, 20), (0, 0)],
                channels: 256,
                queries: 300,
            };
            let value = values(256 * 8400, 1);
            let loc: Vec<f32> = values(2 * 96 * 300, 2)
                .iter()
                .map(|v| 0.5 + 0.4 * v)
                .collect();
            let aw = values(96 * 300, 3);
            let mut y = vec![0f32; 256 * 300];
            vec![case("decoder_8h_3l_4p_256x300", y.len(), move |k| {
                k.deform_sample(&g, black_box(&value), &loc, &aw, &mut y)
            })]
        }
        Slot::RefineBoxes => {
            let (d, r) = (
                values(1200, 1),
                values(1200, 2)
                    .iter()
                    .map(|v| 0.5 + 0.4 * v)
                    .collect::<Vec<_>>(),
            );
            let mut y = vec![0f32; 1200];
            vec![case("decoder_4x300", 1200, move |k| {
                k.refine_boxes(black_box(&d), &r, &mut y)
            })]
        }
        Slot::FinalTopK => {
            let (l, b) = (values(80 * 300, 1), values(4 * 300, 2));
            let (mut rows, mut q, mut idx, mut sc) = (
                vec![0f32; 6 * 300],
                vec![0u32; 300],
                vec![0u32; 300],
                vec![0f32; 300],
            );
            vec![case("postprocess_80x300_top300", l.len(), move |k| {
                let a = FinalTopK {
                    logits: black_box(&l),
                    boxes: &b,
                    nc: 80,
                    q: 300,
                };
                k.final_topk(&a, &mut rows, &mut q, &mut idx, &mut sc)
            })]
        }
        Slot::ResizeRgb8 => {
            let r = Resize {
                sw: 1080,
                sh: 810,
                dw: 640,
                dh: 640,
            };
            let src: Vec<u8> = (0..1080 * 810 * 3).map(|i| (i * 13 % 251) as u8).collect();
            let mut dst = vec![0u8; 640 * 640 * 3];
            let mut scratch = vec![0i32; r.scratch_len()];
            vec![case("image_1080x810_to_640", dst.len(), move |k| {
                k.resize_rgb8(&r, black_box(&src), &mut dst, &mut scratch)
            })]
        }
        Slot::HwcToChwU8 => {
            let src: Vec<u8> = (0..640 * 640 * 3).map(|i| (i * 13 % 251) as u8).collect();
            let mut dst = vec![0u8; src.len()];
            vec![case("input_640", src.len(), move |k| {
                k.hwc_to_chw_u8(black_box(&src), [0, 1, 2], &mut dst)
            })]
        }
        Slot::HwcToChwF32 => {
            let src: Vec<u8> = (0..640 * 640 * 3).map(|i| (i * 13 % 251) as u8).collect();
            let mut dst = vec![0f32; src.len()];
            vec![case("input_640", src.len(), move |k| {
                k.hwc_to_chw_f32(black_box(&src), [0, 1, 2], &mut dst)
            })]
        }
        Slot::IdctIslowU8 => {
            // The 8160 luma blocks of a 1920×1088 frame, typical q90 blocks.
            let (blocks, quant) = luma_blocks_1088p();
            let mut out = vec![0u8; 1920 * 8];
            vec![case("luma_1920x1088", 8160 * 64, move |k| {
                for (i, b) in black_box(&blocks).iter().enumerate() {
                    let x = (i % 240) * 8;
                    k.idct_islow_u8(b, &quant, &mut out[x..], 1920);
                }
            })]
        }
        Slot::Idct4x4U8 => {
            // The 8160 luma blocks of a 1920×1088 frame decoded at 1/2.
            let (blocks, quant) = luma_blocks_1088p();
            let mut out = vec![0u8; 960 * 4];
            vec![case("luma_1920x1088_half", 8160 * 16, move |k| {
                for (i, b) in black_box(&blocks).iter().enumerate() {
                    let x = (i % 240) * 4;
                    k.idct_4x4_u8(b, &quant, &mut out[x..], 960);
                }
            })]
        }
        Slot::UpsampleH2v1FancyU8 => {
            let src: Vec<u8> = (0..960).map(|i| (i * 13 % 251) as u8).collect();
            let mut dst = vec![0u8; 1920];
            vec![case("chroma_row_960", 1920, move |k| {
                k.upsample_h2v1_fancy_u8(black_box(&src), &mut dst)
            })]
        }
        Slot::UpsampleH2v2FancyU8 => {
            let a: Vec<u8> = (0..960).map(|i| (i * 13 % 251) as u8).collect();
            let b: Vec<u8> = (0..960).map(|i| (i * 7 % 253) as u8).collect();
            let mut dst = vec![0u8; 1920];
            vec![case("chroma_row_960", 1920, move |k| {
                k.upsample_h2v2_fancy_u8(black_box(&a), &b, &mut dst)
            })]
        }
        Slot::YccToRgbU8 => {
            let p: Vec<u8> = (0..3 * 1920).map(|i| (i * 13 % 251) as u8).collect();
            let mut dst = vec![0u8; 3 * 1920];
            vec![case("row_1920", 1920, move |k| {
                k.ycc_to_rgb_u8(black_box(&p[..1920]), &p[1920..3840], &p[3840..], &mut dst)
            })]
        }
    }
}

fn kernels(c: &mut Criterion) {
    let caps = Caps::detect();
    let paths: Vec<Kernels> = PATHS
        .iter()
        .filter_map(|p| Kernels::for_path(p.name, caps))
        .collect();
    println!(
        "kernel tier: paths {:?}, single thread; elem/s = FLOP/s for conv/GEMM, elements/s otherwise",
        paths.iter().map(|k| k.name()).collect::<Vec<_>>()
    );
    for &slot in Slot::ALL {
        for mut case in cases(slot) {
            let mut group = c.benchmark_group(format!("{}/{}", slot.name(), case.name));
            group.throughput(Throughput::Elements(case.count));
            for k in &paths {
                // A path that inherits the slot would time its origin again.
                if k.path().origin(slot).name != k.name() {
                    continue;
                }
                let t = Instant::now();
                (case.run)(k);
                fit(&mut group, t.elapsed());
                group.bench_function(BenchmarkId::from_parameter(k.name()), |b| {
                    b.iter(|| (case.run)(k))
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);

/// The 8160 luma blocks of a 1920×1088 frame as a q90 encoder leaves them
/// (ten small low-frequency coefficients, the rest zero) and a quantiser.
fn luma_blocks_1088p() -> (Vec<[i16; 64]>, [i16; 64]) {
    let blocks = (0..8160)
        .map(|b| {
            core::array::from_fn(|i| {
                if i < 10 {
                    ((b * 7 + i * 13) % 41) as i16 - 20
                } else {
                    0
                }
            })
        })
        .collect();
    (blocks, core::array::from_fn(|i| 3 + (i as i16) / 4))
}
