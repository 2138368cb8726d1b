//! Folding BatchNorm into convolutions and fusing RepConv branches (in f64,
//! rounded once to f32).

use crate::error::QuantizeError;
use crate::state_dict::StateDict;

/// BatchNorm epsilon of every BatchNorm2d in the model (ultralytics
/// `initialize_weights` sets 1e-3; it is stored nowhere, SPEC.md §2).
pub const BN_EPS: f64 = 1e-3;

/// A convolution with folded bias: weight `[cout, cin/groups, k, k]`, bias `[cout]`.
#[derive(Clone, Debug, PartialEq)]
pub struct FoldedConv {
    /// Output channels.
    pub cout: usize,
    /// Input channels per group.
    pub cin_per_group: usize,
    /// Kernel size.
    pub k: usize,
    /// Weights in PyTorch order.
    pub weight: Vec<f32>,
    /// Bias.
    pub bias: Vec<f32>,
}

/// Per-channel `(scale, shift)` of an eval-mode BatchNorm: `y = x·scale + shift`.
fn bn_affine(sd: &StateDict, prefix: &str, c: usize) -> Result<Vec<(f64, f64)>, QuantizeError> {
    let g = sd.get_shaped(&format!("{prefix}weight"), &[c])?;
    let b = sd.get_shaped(&format!("{prefix}bias"), &[c])?;
    let m = sd.get_shaped(&format!("{prefix}running_mean"), &[c])?;
    let v = sd.get_shaped(&format!("{prefix}running_var"), &[c])?;
    Ok((0..c)
        .map(|i| {
            let s = g.data[i] as f64 / (v.data[i] as f64 + BN_EPS).sqrt();
            (s, b.data[i] as f64 - m.data[i] as f64 * s)
        })
        .collect())
}

fn conv_weight<'a>(
    sd: &'a StateDict,
    name: &str,
) -> Result<&'a crate::state_dict::Tensor, QuantizeError> {
    let w = sd.get(name)?;
    if w.shape.len() != 4 || w.shape[2] != w.shape[3] || w.shape[2] % 2 == 0 {
        return Err(QuantizeError::BadShape {
            name: name.into(),
            expected: "[cout, cin, k, k] with odd k".into(),
            found: w.shape.clone(),
        });
    }
    Ok(w)
}

/// Folds `<bn_prefix>*` into the bias-free convolution `<weight_key>`.
pub fn fold_conv_bn(
    sd: &StateDict,
    weight_key: &str,
    bn_prefix: &str,
) -> Result<FoldedConv, QuantizeError> {
    let w = conv_weight(sd, weight_key)?;
    let (cout, cin_g, k) = (w.shape[0], w.shape[1], w.shape[2]);
    let aff = bn_affine(sd, bn_prefix, cout)?;
    let per = cin_g * k * k;
    let mut weight = vec![0f32; w.data.len()];
    for (o, &(s, _)) in aff.iter().enumerate() {
        for j in 0..per {
            weight[o * per + j] = (w.data[o * per + j] as f64 * s) as f32;
        }
    }
    Ok(FoldedConv {
        cout,
        cin_per_group: cin_g,
        k,
        weight,
        bias: aff.iter().map(|&(_, t)| t as f32).collect(),
    })
}

/// Fuses an ultralytics RepConv (3×3 conv+BN plus 1×1 conv+BN, no identity
/// branch) into one 3×3 convolution with bias (SPEC.md §4.3).
pub fn fuse_repconv(sd: &StateDict, prefix: &str) -> Result<FoldedConv, QuantizeError> {
    let w3 = conv_weight(sd, &format!("{prefix}conv1.conv.weight"))?;
    let w1 = conv_weight(sd, &format!("{prefix}conv2.conv.weight"))?;
    let (cout, cin, k) = (w3.shape[0], w3.shape[1], w3.shape[2]);
    if w1.shape != [cout, cin, 1, 1] {
        return Err(QuantizeError::BadShape {
            name: format!("{prefix}conv2.conv.weight"),
            expected: format!("[{cout}, {cin}, 1, 1]"),
            found: w1.shape.clone(),
        });
    }
    let a3 = bn_affine(sd, &format!("{prefix}conv1.bn."), cout)?;
    let a1 = bn_affine(sd, &format!("{prefix}conv2.bn."), cout)?;
    let kk = k * k;
    let centre = (k / 2) * k + k / 2;
    let mut weight = vec![0f32; cout * cin * kk];
    for o in 0..cout {
        for i in 0..cin {
            for t in 0..kk {
                let mut v = w3.data[(o * cin + i) * kk + t] as f64 * a3[o].0;
                if t == centre {
                    v += w1.data[o * cin + i] as f64 * a1[o].0;
                }
                weight[(o * cin + i) * kk + t] = v as f32;
            }
        }
    }
    Ok(FoldedConv {
        cout,
        cin_per_group: cin,
        k,
        weight,
        bias: (0..cout).map(|o| (a3[o].1 + a1[o].1) as f32).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_dict::Tensor;

    fn t(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: data.to_vec(),
        }
    }

    fn bn(sd: &mut StateDict, p: &str, g: f32, b: f32, m: f32, v: f32) {
        sd.insert(format!("{p}weight"), t(&[1], &[g]));
        sd.insert(format!("{p}bias"), t(&[1], &[b]));
        sd.insert(format!("{p}running_mean"), t(&[1], &[m]));
        sd.insert(format!("{p}running_var"), t(&[1], &[v]));
    }

    #[test]
    fn folding_matches_bn_of_conv() {
        // One channel, 1x1: y = ((w x) - m)/sqrt(v+eps)*g + b.
        let mut sd = StateDict::new();
        sd.insert("c.weight", t(&[1, 1, 1, 1], &[2.0]));
        bn(&mut sd, "bn.", 1.5, 0.25, 0.5, 3.0);
        let f = fold_conv_bn(&sd, "c.weight", "bn.").unwrap();
        let s = 1.5 / (3.0f64 + 1e-3).sqrt();
        for x in [-1.0f64, 0.0, 2.5] {
            let want = (2.0 * x - 0.5) * s + 0.25;
            let got = f.weight[0] as f64 * x + f.bias[0] as f64;
            assert!((want - got).abs() < 1e-6);
        }
    }

    #[test]
    fn repconv_puts_the_1x1_branch_at_the_centre() {
        let mut sd = StateDict::new();
        sd.insert("r.conv1.conv.weight", t(&[1, 1, 3, 3], &[1.0; 9]));
        sd.insert("r.conv2.conv.weight", t(&[1, 1, 1, 1], &[10.0]));
        bn(&mut sd, "r.conv1.bn.", 1.0, 1.0, 0.0, 1.0 - 1e-3);
        bn(&mut sd, "r.conv2.bn.", 2.0, 0.5, 1.0, 4.0 - 1e-3);
        let f = fuse_repconv(&sd, "r.").unwrap();
        assert_eq!(f.k, 3);
        assert!((f.weight[4] - (1.0 + 10.0)).abs() < 1e-6);
        assert!((f.weight[0] - 1.0).abs() < 1e-6);
        assert!((f.bias[0] - (1.0 + 0.5 - 1.0)).abs() < 1e-6);
    }
}
