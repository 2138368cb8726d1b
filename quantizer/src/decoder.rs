//! The RT-DETR decoder (`model.22.*`, SPEC.md §5) as static ops: input
//! projections, anchors, encoder head, top-k query selection, three decoder
//! layers with multi-scale deformable cross-attention, box refinement, and the
//! in-model top-300 postprocess. Buffers carry the goldens' names.

use edgedetr::graph::Stage;
use edgedetr::kernels::Act;

use crate::builder::{Buf, GraphBuilder};
use crate::error::QuantizeError;
use crate::fold::fold_conv_bn;
use crate::rtdetr::LN_EPS;
use crate::state_dict::StateDict;

const P: &str = "model.22.";

/// Decoder hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Queries (300).
    pub queries: usize,
    /// Attention heads (8).
    pub heads: usize,
    /// Sampling points per level (4).
    pub points: usize,
    /// Rows of the final output (300).
    pub max_det: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            queries: 300,
            heads: 8,
            points: 4,
            max_det: 300,
        }
    }
}

/// Anchors of `_generate_anchors` (grid 0.05, eps 0.01) for the level sizes,
/// channel-major `[4, N]` in logit space with `+inf` rows where invalid, and the
/// validity mask `[N]` (1 or 0). Computed in f32 as torch does; the logarithm
/// is the correctly rounded one (torch's matches it on every fixture anchor).
pub fn anchors(shapes: &[(usize, usize)]) -> (Vec<f32>, Vec<f32>) {
    let n: usize = shapes.iter().map(|&(h, w)| h * w).sum();
    let mut a = vec![0f32; 4 * n];
    let mut valid = vec![0f32; n];
    let mut t = 0;
    for (l, &(h, w)) in shapes.iter().enumerate() {
        let wh = 0.05f32 * 2f32.powi(l as i32);
        for y in 0..h {
            for x in 0..w {
                let v = [
                    (x as f32 + 0.5) / w as f32,
                    (y as f32 + 0.5) / h as f32,
                    wh,
                    wh,
                ];
                let ok = v.iter().all(|&c| c > 0.01f32 && c < 0.99f32);
                valid[t] = if ok { 1.0 } else { 0.0 };
                for (k, &c) in v.iter().enumerate() {
                    let r = c / (1.0 - c);
                    a[k * n + t] = if ok {
                        (r as f64).ln() as f32
                    } else {
                        f32::INFINITY
                    };
                }
                t += 1;
            }
        }
    }
    (a, valid)
}

struct Lin<'a> {
    weight: &'a [f32],
    bias: &'a [f32],
    out: usize,
}

fn lin<'a>(sd: &'a StateDict, key: &str, cin: usize) -> Result<Lin<'a>, QuantizeError> {
    let w = sd.get(&format!("{key}.weight"))?;
    let out = w.shape.first().copied().unwrap_or(0);
    let w = sd.get_shaped(&format!("{key}.weight"), &[out, cin])?;
    let b = sd.get_shaped(&format!("{key}.bias"), &[out])?;
    Ok(Lin {
        weight: &w.data,
        bias: &b.data,
        out,
    })
}

fn linear(
    g: &mut GraphBuilder<'_>,
    sd: &StateDict,
    key: &str,
    name: &str,
    x: Buf,
    act: Act,
) -> Result<Buf, QuantizeError> {
    let l = lin(sd, key, x.c)?;
    let _ = l.out;
    Ok(g.linear(name, x, l.weight, l.bias, act))
}

/// An MLP of `n` linear layers `<key>.layers.i` with ReLU between them.
fn mlp(
    g: &mut GraphBuilder<'_>,
    sd: &StateDict,
    key: &str,
    name: &str,
    x: Buf,
    n: usize,
) -> Result<Buf, QuantizeError> {
    let mut y = x;
    for i in 0..n {
        let act = if i + 1 < n { Act::Relu } else { Act::None };
        let nm = if i + 1 == n {
            name.to_string()
        } else {
            format!("{name}.{i}")
        };
        y = linear(g, sd, &format!("{key}.layers.{i}"), &nm, y, act)?;
    }
    Ok(y)
}

fn norm(
    g: &mut GraphBuilder<'_>,
    sd: &StateDict,
    key: &str,
    name: &str,
    x: Buf,
    res: Buf,
) -> Result<Buf, QuantizeError> {
    let w = sd.get_shaped(&format!("{key}.weight"), &[x.c])?;
    let b = sd.get_shaped(&format!("{key}.bias"), &[x.c])?;
    Ok(g.layer_norm(name, x, Some(res), &w.data, &b.data, LN_EPS))
}

/// Number of decoder layers in the checkpoint.
pub fn layer_count(sd: &StateDict) -> usize {
    (0..)
        .take_while(|i| sd.contains(&format!("{P}decoder.layers.{i}.norm1.weight")))
        .count()
}

/// Builds the decoder on P3–P5 and the postprocess. Returns the number of classes.
pub fn decoder(
    g: &mut GraphBuilder<'_>,
    sd: &StateDict,
    p: [Buf; 3],
    cfg: &DecoderConfig,
) -> Result<usize, QuantizeError> {
    g.set_stage(Stage::Decoder);
    let layers = layer_count(sd);
    if layers == 0 {
        return Err(QuantizeError::MissingTensor(format!(
            "{P}decoder.layers.0.*"
        )));
    }
    // 1-2. Input projections (conv 1x1 + BN) and token concatenation.
    let mut proj = Vec::new();
    for (i, x) in p.iter().enumerate() {
        let f = fold_conv_bn(
            sd,
            &format!("{P}input_proj.{i}.0.weight"),
            &format!("{P}input_proj.{i}.1."),
        )?;
        if f.k != 1 || f.cin_per_group != x.c {
            return Err(QuantizeError::Unsupported(format!(
                "{P}input_proj.{i}: expected a 1x1 conv on {} channels",
                x.c
            )));
        }
        proj.push(g.conv(&format!("{P}input_proj.{i}"), *x, &f, 1, Act::None));
    }
    let hd = proj[0].c;
    if proj.iter().any(|b| b.c != hd) || hd % cfg.heads != 0 {
        return Err(QuantizeError::Unsupported(
            "decoder levels differ in width or heads do not divide it".into(),
        ));
    }
    let shapes: Vec<(usize, usize)> = proj.iter().map(|b| (b.h, b.w)).collect();
    let feats = g.concat_tokens("dec_feats", &proj);
    let n = feats.w;
    // 3. Anchors and the valid mask.
    let (anchor_data, valid) = anchors(&shapes);
    // 4. Encoder head.
    let masked = g.mask_tokens("dec_masked_feats", feats, &valid);
    let mem = linear(
        g,
        sd,
        &format!("{P}enc_output.0"),
        "dec_enc_linear",
        masked,
        Act::None,
    )?;
    let lnw = sd.get_shaped(&format!("{P}enc_output.1.weight"), &[hd])?;
    let lnb = sd.get_shaped(&format!("{P}enc_output.1.bias"), &[hd])?;
    let memory = g.layer_norm("dec_enc_memory", mem, None, &lnw.data, &lnb.data, LN_EPS);
    let scores = linear(
        g,
        sd,
        &format!("{P}enc_score_head"),
        "dec_enc_scores_all",
        memory,
        Act::None,
    )?;
    let nc = scores.c;
    g.export(scores, "dec_enc_scores_all");
    // 5. Query selection.
    let k = cfg.queries.min(n);
    let topk = g.topk_tokens("dec_topk_index", scores, k);
    g.export_id(topk);
    let query_init = g.gather("dec_query_init", topk, k, memory);
    g.gather("dec_topk_enc_logits", topk, k, scores);
    let topk_anchors = g.gather_const("dec_topk_anchors", topk, k, 4, n, &anchor_data);
    let delta = mlp(
        g,
        sd,
        &format!("{P}enc_bbox_head"),
        "dec_enc_bbox_delta",
        query_init,
        3,
    )?;
    let ref_logits = g.add("dec_ref_logits_init", delta, topk_anchors, Act::None);
    let mut reference = g.activation("dec_ref_boxes_init", ref_logits, Act::Sigmoid);
    // 6. Decoder layers.
    let mut x = query_init;
    let levels_points = shapes.len() * cfg.points;
    for i in 0..layers {
        let lp = format!("{P}decoder.layers.{i}.");
        let name = |s: &str| format!("dec_l{i}_{s}");
        let qpos = mlp(
            g,
            sd,
            &format!("{P}query_pos_head"),
            &name("query_pos"),
            reference,
            2,
        )?;
        // Self-attention.
        let qk_in = g.add(&name("sa_in"), x, qpos, Act::None);
        let inw = sd.get_shaped(&format!("{lp}self_attn.in_proj_weight"), &[3 * hd, hd])?;
        let inb = sd.get_shaped(&format!("{lp}self_attn.in_proj_bias"), &[3 * hd])?;
        let hh = hd * hd;
        let q = g.linear(
            &name("sa_q"),
            qk_in,
            &inw.data[..hh],
            &inb.data[..hd],
            Act::None,
        );
        let kk = g.linear(
            &name("sa_k"),
            qk_in,
            &inw.data[hh..2 * hh],
            &inb.data[hd..2 * hd],
            Act::None,
        );
        let v = g.linear(
            &name("sa_v"),
            x,
            &inw.data[2 * hh..],
            &inb.data[2 * hd..],
            Act::None,
        );
        let sa = g.attention(&name("sa"), q, kk, v, cfg.heads);
        let sa = linear(
            g,
            sd,
            &format!("{lp}self_attn.out_proj"),
            &name("sa_out"),
            sa,
            Act::None,
        )?;
        let x1 = norm(
            g,
            sd,
            &format!("{lp}norm1"),
            &name("after_self_attn"),
            x,
            sa,
        )?;
        // Deformable cross-attention.
        let ca_q = g.add(&name("ca_in"), x1, qpos, Act::None);
        let value = linear(
            g,
            sd,
            &format!("{lp}cross_attn.value_proj"),
            &name("value"),
            feats,
            Act::None,
        )?;
        let off = linear(
            g,
            sd,
            &format!("{lp}cross_attn.sampling_offsets"),
            &name("sampling_offsets_raw"),
            ca_q,
            Act::None,
        )?;
        let awl = linear(
            g,
            sd,
            &format!("{lp}cross_attn.attention_weights"),
            &name("attn_logits"),
            ca_q,
            Act::None,
        )?;
        if off.c != 2 * cfg.heads * levels_points || awl.c != cfg.heads * levels_points {
            return Err(QuantizeError::Unsupported(format!(
                "{lp}cross_attn: {} offsets and {} weights do not fit {} heads x {} levels x {} points",
                off.c,
                awl.c,
                cfg.heads,
                shapes.len(),
                cfg.points
            )));
        }
        let aw = g.softmax_groups(&name("attn_weights"), awl, levels_points);
        let loc = g.deform_locations(&name("sampling_locations"), reference, off, cfg.points);
        let sampled = g.deform_sample(
            &name("sampled"),
            value,
            loc,
            aw,
            cfg.heads,
            cfg.points,
            &shapes,
        );
        let ca = linear(
            g,
            sd,
            &format!("{lp}cross_attn.output_proj"),
            &name("cross_attn_out"),
            sampled,
            Act::None,
        )?;
        let x2 = norm(
            g,
            sd,
            &format!("{lp}norm2"),
            &name("after_cross_attn"),
            x1,
            ca,
        )?;
        // Feed-forward.
        let f = linear(
            g,
            sd,
            &format!("{lp}linear1"),
            &name("ffn_hidden"),
            x2,
            Act::Relu,
        )?;
        let f = linear(
            g,
            sd,
            &format!("{lp}linear2"),
            &name("ffn_out"),
            f,
            Act::None,
        )?;
        let x3 = norm(g, sd, &format!("{lp}norm3"), &name("out"), x2, f)?;
        // Box refinement.
        let bd = mlp(
            g,
            sd,
            &format!("{P}dec_bbox_head.{i}"),
            &name("bbox_delta"),
            x3,
            3,
        )?;
        let ref_name = if i + 1 == layers {
            "dec_boxes".to_string()
        } else {
            name("ref_out")
        };
        reference = g.refine_boxes(&ref_name, bd, reference);
        x = x3;
    }
    g.export(reference, "dec_boxes");
    let logits = linear(
        g,
        sd,
        &format!("{P}dec_score_head.{}", layers - 1),
        "dec_logits",
        x,
        Act::None,
    )?;
    if logits.c != nc {
        return Err(QuantizeError::Unsupported(
            "the score heads disagree on the class count".into(),
        ));
    }
    g.export(logits, "dec_logits");
    let scores = g.activation("dec_scores", logits, Act::Sigmoid);
    g.export(scores, "dec_scores");
    // 8. In-model postprocess.
    g.set_stage(Stage::Post);
    let (rows, query) = g.final_topk(
        "output_topk",
        "output_topk_query",
        logits,
        reference,
        cfg.max_det.min(k * nc),
    );
    g.export_id(rows);
    g.export_id(query);
    Ok(nc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_the_spec() {
        let (a, valid) = anchors(&[(80, 80), (40, 40), (20, 20)]);
        let n = 8400;
        assert_eq!(a.len(), 4 * n);
        // At 640 the border ring of the 80x80 level is invalid: 316 anchors.
        assert_eq!(valid.iter().filter(|&&v| v == 0.0).count(), 316);
        assert!(a[0].is_infinite() && valid[0] == 0.0);
        // Cell (1, 1) of level 0: x = 1.5/80.
        let t = 81;
        let x = 1.5f32 / 80.0;
        assert_eq!(a[t], ((x / (1.0 - x)) as f64).ln() as f32);
        let (_, valid320) = anchors(&[(40, 40), (20, 20), (10, 10)]);
        assert!(valid320.iter().all(|&v| v == 1.0));
    }
}
