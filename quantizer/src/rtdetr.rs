//! The seed architecture (SPEC.md §1.2–§4): MobileNetV4-Conv-Small backbone,
//! AIFI, BiFPN neck with RepC3 blocks, built as a static graph in logical-layer
//! order. Channel counts are taken from the weights.

use edgedetr::graph::Stage;
use edgedetr::kernels::Act;

use crate::builder::{Buf, GraphBuilder};
use crate::error::QuantizeError;
use crate::fold::{FoldedConv, fold_conv_bn, fuse_repconv};
use crate::state_dict::StateDict;

/// LayerNorm epsilon (torch default, SPEC.md §2).
pub const LN_EPS: f32 = 1e-5;

/// The stem convolution, the only op that reads the image input. When the
/// recipe runs it in int8, the model takes the u8 image directly
/// ([`GraphBuilder::input`]).
pub const STEM_CONV: &str = "model.0.conv0.convbn_0";

/// One UIB block of the backbone: start depthwise kernel (0 = none), middle
/// depthwise kernel (0 = none), stride of the middle depthwise conv.
type Uib = (usize, usize, usize);

/// `layer3` and `layer4` of MobileNetV4-Conv-Small (SPEC.md §3).
const LAYER3: [Uib; 6] = [
    (5, 5, 2),
    (0, 3, 1),
    (0, 3, 1),
    (0, 3, 1),
    (0, 3, 1),
    (3, 0, 1),
];
const LAYER4: [Uib; 6] = [
    (3, 3, 2),
    (5, 5, 1),
    (0, 5, 1),
    (0, 5, 1),
    (0, 3, 1),
    (0, 3, 1),
];

/// The named intermediates of layers 1–25 (golden names).
pub struct Neck {
    /// Backbone outputs x1..x4 (logical 1..4).
    pub backbone: [Buf; 4],
    /// AIFI output (L6).
    pub aifi: Buf,
    /// P3, P4, P5 (L19, L22, L25).
    pub p: [Buf; 3],
}

/// A seed `conv_2d` block: conv (no bias) + BN + optional ReLU6.
fn seed_conv(
    g: &mut GraphBuilder<'_>,
    sd: &StateDict,
    key: &str,
    x: Buf,
    stride: usize,
    act: bool,
) -> Result<Buf, QuantizeError> {
    let f = fold_conv_bn(
        sd,
        &format!("{key}.conv.weight"),
        &format!("{key}.BatchNorm2d."),
    )?;
    check_conv_input(&f, x, key)?;
    Ok(g.conv(key, x, &f, stride, if act { Act::Relu6 } else { Act::None }))
}

/// An ultralytics `Conv`: conv (no bias) + BN + SiLU or identity.
fn ul_conv(
    g: &mut GraphBuilder<'_>,
    sd: &StateDict,
    key: &str,
    x: Buf,
    stride: usize,
    act: Act,
) -> Result<Buf, QuantizeError> {
    let f = fold_conv_bn(sd, &format!("{key}.conv.weight"), &format!("{key}.bn."))?;
    check_conv_input(&f, x, key)?;
    Ok(g.conv(key, x, &f, stride, act))
}

fn check_conv_input(f: &FoldedConv, x: Buf, key: &str) -> Result<(), QuantizeError> {
    let dense = f.cin_per_group == x.c;
    let depthwise = f.cin_per_group == 1 && f.cout == x.c;
    if dense || depthwise {
        Ok(())
    } else {
        Err(QuantizeError::BadShape {
            name: format!("{key}.conv.weight"),
            expected: format!("{} input channels (dense) or depthwise", x.c),
            found: vec![f.cout, f.cin_per_group, f.k, f.k],
        })
    }
}

/// Builds the backbone (logical layers 1–4) from `model.0.*`.
pub fn backbone(
    g: &mut GraphBuilder<'_>,
    sd: &StateDict,
    input: Buf,
) -> Result<[Buf; 4], QuantizeError> {
    g.set_stage(Stage::Backbone);
    let p = "model.0.";
    let x = seed_conv(g, sd, STEM_CONV, input, 2, true)?;
    let x = seed_conv(g, sd, &format!("{p}layer1.convbn_0"), x, 2, true)?;
    let x1 = seed_conv(g, sd, &format!("{p}layer1.convbn_1"), x, 1, true)?;
    let x = seed_conv(g, sd, &format!("{p}layer2.convbn_0"), x1, 2, true)?;
    let x2 = seed_conv(g, sd, &format!("{p}layer2.convbn_1"), x, 1, true)?;
    let mut x = x2;
    let mut stage_out = [x2; 2];
    for (si, (stage, blocks)) in [("layer3", LAYER3), ("layer4", LAYER4)]
        .into_iter()
        .enumerate()
    {
        for (i, (sk, mk, s)) in blocks.into_iter().enumerate() {
            let b = format!("{p}{stage}.uib_{i}.");
            if sk > 0 {
                x = seed_conv(g, sd, &format!("{b}_start_dw_"), x, 1, false)?;
            }
            x = seed_conv(g, sd, &format!("{b}_expand_conv"), x, 1, true)?;
            if mk > 0 {
                x = seed_conv(g, sd, &format!("{b}_middle_dw"), x, s, true)?;
            }
            x = seed_conv(g, sd, &format!("{b}_proj_conv"), x, 1, false)?;
        }
        stage_out[si] = x;
    }
    let x3 = stage_out[0];
    let x = seed_conv(g, sd, &format!("{p}layer5.convbn_0"), stage_out[1], 1, true)?;
    let x4 = seed_conv(g, sd, &format!("{p}layer5.convbn_1"), x, 1, true)?;
    for (b, name) in [
        (x1, "backbone_out1"),
        (x2, "backbone_out2"),
        (x3, "backbone_out3"),
        (x4, "backbone_out4"),
    ] {
        g.export(b, name);
    }
    Ok([x1, x2, x3, x4])
}

/// The 2-D sin-cos position embedding of AIFI (SPEC.md §4.1), channel-major
/// `[c, h·w]`: channels `[sin(r·ω), cos(r·ω), sin(col·ω), cos(col·ω)]`, computed
/// in f32 as torch does.
pub fn sincos_position_embedding(c: usize, h: usize, w: usize) -> Vec<f32> {
    let d = c / 4;
    let omega: Vec<f32> = (0..d)
        .map(|k| {
            let e = k as f32 / d as f32;
            1.0 / 10000f32.powf(e)
        })
        .collect();
    let t = h * w;
    let mut pos = vec![0f32; c * t];
    for r in 0..h {
        for col in 0..w {
            let tok = r * w + col;
            for k in 0..d {
                let a = r as f32 * omega[k];
                let b = col as f32 * omega[k];
                pos[k * t + tok] = (a as f64).sin() as f32;
                pos[(d + k) * t + tok] = (a as f64).cos() as f32;
                pos[(2 * d + k) * t + tok] = (b as f64).sin() as f32;
                pos[(3 * d + k) * t + tok] = (b as f64).cos() as f32;
            }
        }
    }
    pos
}

/// AIFI (`model.2.*`): post-norm transformer encoder layer over the tokens of `x`.
fn aifi(
    g: &mut GraphBuilder<'_>,
    sd: &StateDict,
    x: Buf,
    heads: usize,
) -> Result<Buf, QuantizeError> {
    let p = "model.2.";
    let c = x.c;
    if !c.is_multiple_of(4) {
        return Err(QuantizeError::Unsupported(format!(
            "AIFI width {c} is not a multiple of 4"
        )));
    }
    if heads == 0 || !c.is_multiple_of(heads) {
        return Err(QuantizeError::Unsupported(format!(
            "AIFI: {heads} heads do not divide the width {c}"
        )));
    }
    let inw = sd.get_shaped(&format!("{p}ma.in_proj_weight"), &[3 * c, c])?;
    let inb = sd.get_shaped(&format!("{p}ma.in_proj_bias"), &[3 * c])?;
    let cc = c * c;
    let pos = sincos_position_embedding(c, x.h, x.w);
    let qk_in = g.add_tensor("model.2.pos", x, &pos);
    let q = g.linear(
        "model.2.q",
        qk_in,
        &inw.data[..cc],
        &inb.data[..c],
        Act::None,
    );
    let k = g.linear(
        "model.2.k",
        qk_in,
        &inw.data[cc..2 * cc],
        &inb.data[c..2 * c],
        Act::None,
    );
    let v = g.linear(
        "model.2.v",
        x,
        &inw.data[2 * cc..],
        &inb.data[2 * c..],
        Act::None,
    );
    let o = g.attention("model.2.attn", q, k, v, heads);
    let ow = sd.get_shaped(&format!("{p}ma.out_proj.weight"), &[c, c])?;
    let ob = sd.get_shaped(&format!("{p}ma.out_proj.bias"), &[c])?;
    let o = g.linear("model.2.out_proj", o, &ow.data, &ob.data, Act::None);
    let n1w = sd.get_shaped(&format!("{p}norm1.weight"), &[c])?;
    let n1b = sd.get_shaped(&format!("{p}norm1.bias"), &[c])?;
    let n1 = g.layer_norm("model.2.norm1", x, Some(o), &n1w.data, &n1b.data, LN_EPS);
    let f1w = sd.get(&format!("{p}fc1.weight"))?;
    let hidden = f1w.shape[0];
    let f1w = sd.get_shaped(&format!("{p}fc1.weight"), &[hidden, c])?;
    let f1b = sd.get_shaped(&format!("{p}fc1.bias"), &[hidden])?;
    let f = g.linear("model.2.fc1", n1, &f1w.data, &f1b.data, Act::Gelu);
    let f2w = sd.get_shaped(&format!("{p}fc2.weight"), &[c, hidden])?;
    let f2b = sd.get_shaped(&format!("{p}fc2.bias"), &[c])?;
    let f = g.linear("model.2.fc2", f, &f2w.data, &f2b.data, Act::None);
    let n2w = sd.get_shaped(&format!("{p}norm2.weight"), &[c])?;
    let n2b = sd.get_shaped(&format!("{p}norm2.bias"), &[c])?;
    Ok(g.layer_norm("model.2.norm2", n1, Some(f), &n2w.data, &n2b.data, LN_EPS))
}

/// BiFPN weights as torch computes them in f32: `w_i / (Σ_j w_j·sigmoid(w_j) + 1e-4)`.
pub fn bifpn_coefficients(w: &[f32]) -> Vec<f32> {
    let mut denom = 0f32;
    for &x in w {
        denom += x * (1.0 / (1.0 + (-x).exp()));
    }
    denom += 1e-4;
    w.iter().map(|&x| x / denom).collect()
}

fn bifpn(
    g: &mut GraphBuilder<'_>,
    sd: &StateDict,
    pos: usize,
    xs: &[Buf],
) -> Result<Buf, QuantizeError> {
    let key = format!("model.{pos}.weight");
    let w = sd.get_shaped(&key, &[xs.len()])?;
    if xs
        .iter()
        .any(|b| (b.c, b.h, b.w) != (xs[0].c, xs[0].h, xs[0].w))
    {
        return Err(QuantizeError::Unsupported(format!(
            "BiFPN `model.{pos}` inputs differ in shape"
        )));
    }
    Ok(g.weighted_sum(&format!("model.{pos}"), xs, &bifpn_coefficients(&w.data)))
}

/// Logical layer `pos − 1` (nearest ×2 upsampling of `small`) feeding the
/// BiFPN fusion `pos` of `[upsampled, other]`; fused into one op in int8.
fn upsample_bifpn(
    g: &mut GraphBuilder<'_>,
    sd: &StateDict,
    pos: usize,
    small: Buf,
    other: Buf,
) -> Result<Buf, QuantizeError> {
    let w = sd.get_shaped(&format!("model.{pos}.weight"), &[2])?;
    if (small.c, 2 * small.h, 2 * small.w) != (other.c, other.h, other.w) {
        return Err(QuantizeError::Unsupported(format!(
            "BiFPN `model.{pos}` inputs differ in shape"
        )));
    }
    Ok(g.upsample_weighted_sum(
        &format!("model.{}", pos - 1),
        &format!("model.{pos}"),
        &[small, other],
        0,
        &bifpn_coefficients(&w.data),
    ))
}

/// RepC3 (c1 = c2, e = 1: `cv3` is the identity): `m(cv1(x)) + cv2(x)`.
fn repc3(
    g: &mut GraphBuilder<'_>,
    sd: &StateDict,
    pos: usize,
    x: Buf,
) -> Result<Buf, QuantizeError> {
    let p = format!("model.{pos}.");
    if sd.contains(&format!("{p}cv3.conv.weight")) {
        return Err(QuantizeError::Unsupported(format!(
            "RepC3 `model.{pos}` with a cv3 convolution"
        )));
    }
    let mut y = ul_conv(g, sd, &format!("{p}cv1"), x, 1, Act::Silu)?;
    let mut i = 0;
    while sd.contains(&format!("{p}m.{i}.conv1.conv.weight")) {
        let key = format!("{p}m.{i}");
        let f = fuse_repconv(sd, &format!("{key}."))?;
        check_conv_input(&f, y, &key)?;
        y = g.conv(&key, y, &f, 1, Act::Silu);
        i += 1;
    }
    let z = ul_conv(g, sd, &format!("{p}cv2"), x, 1, Act::Silu)?;
    Ok(g.add(&format!("model.{pos}"), y, z, Act::None))
}

/// Builds logical layers 5–25 (AIFI and the BiFPN neck).
pub fn neck(
    g: &mut GraphBuilder<'_>,
    sd: &StateDict,
    bb: [Buf; 4],
    aifi_heads: usize,
) -> Result<([Buf; 3], Buf), QuantizeError> {
    g.set_stage(Stage::Neck);
    let [x1, x2, x3, x4] = bb;
    let l5 = ul_conv(g, sd, "model.1", x4, 1, Act::None)?;
    let l6 = aifi(g, sd, l5, aifi_heads)?;
    g.export(l6, "layer06_aifi");
    let l7 = ul_conv(g, sd, "model.3", l6, 1, Act::Silu)?;
    let l8 = ul_conv(g, sd, "model.4", x2, 1, Act::Silu)?;
    let l9 = ul_conv(g, sd, "model.5", x3, 1, Act::Silu)?;
    let l10 = ul_conv(g, sd, "model.6", l7, 1, Act::Silu)?;
    // l11 and l14 (upsampling) are fused into the sums l12 and l15 in int8.
    let l12 = upsample_bifpn(g, sd, 8, l10, l9)?;
    let l13 = repc3(g, sd, 9, l12)?;
    let l15 = upsample_bifpn(g, sd, 11, l13, l8)?;
    let l16 = repc3(g, sd, 12, l15)?;
    let l17 = ul_conv(g, sd, "model.13", x1, 2, Act::Silu)?;
    let l18 = bifpn(g, sd, 14, &[l17, l8, l16])?;
    let l19 = repc3(g, sd, 15, l18)?;
    let l20 = ul_conv(g, sd, "model.16", l19, 2, Act::Silu)?;
    let l21 = bifpn(g, sd, 17, &[l20, l9, l13])?;
    let l22 = repc3(g, sd, 18, l21)?;
    let l23 = ul_conv(g, sd, "model.19", l22, 2, Act::Silu)?;
    let l24 = bifpn(g, sd, 20, &[l23, l10])?;
    let l25 = repc3(g, sd, 21, l24)?;
    for (b, name) in [
        (l19, "layer19_p3"),
        (l22, "layer22_p4"),
        (l25, "layer25_p5"),
    ] {
        g.export(b, name);
    }
    Ok(([l19, l22, l25], l6))
}
