//! Precision recipes: which ops run in int8, and how the weights of float ops
//! are stored.
//!
//! The default int8 recipe (SPEC-independent; from what RT-DETR quantisation
//! research shows, `docs/research/anchors-performance.md` §3) quantises the
//! backbone, the neck's convolutions, BiFPN sums and RepC3 additions, and the
//! decoder's input projections. It keeps in float what is fragile: AIFI's
//! attention and LayerNorms, the decoder's sampling offsets, attention weights,
//! softmax, LayerNorms and the score/box heads. Float ops store weights in
//! fp16; the decoder's and AIFI's plain projections (feed-forward, value and
//! output projections, self-attention projections) store per-channel int8
//! weights that are expanded to f32 at run time.

use std::collections::HashMap;

/// How a float op's weights are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightPrec {
    /// f32.
    F32,
    /// IEEE binary16, expanded to f32 at run time.
    F16,
    /// Per-output-channel symmetric int8, expanded to f32 at run time.
    I8,
}

/// The weight-storage policy of float ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WeightPolicy {
    /// Every weight in f32.
    #[default]
    Fp32,
    /// Every weight in f16.
    Fp16,
    /// The int8 recipe's float ops: f16, int8 for plain projections.
    Mixed,
}

/// Calibrated activation ranges by op name, `(lo, hi)`.
pub type Ranges = HashMap<String, (f32, f32)>;

/// What the graph builder produces.
#[derive(Clone, Debug, Default)]
pub struct Recipe {
    /// Build SiLU as separate ops so calibration sees pre-activations.
    pub split_silu: bool,
    /// Run the default int8 ops in int8 (needs `ranges`).
    pub int8: bool,
    /// Calibrated ranges of every op output, by op name.
    pub ranges: Ranges,
    /// Per-channel means of every op output, by op name (for bias correction).
    pub means: HashMap<String, Vec<f32>>,
    /// Input second moments of int8 convolutions, by op name: those listed
    /// round their weights with GPTQ ([`crate::gptq`]), the others to nearest.
    pub hessians: HashMap<String, crate::gptq::Hessian>,

    /// Op-name prefixes kept in float (`--keep-float`).
    pub keep_float: Vec<String>,
    /// Weight storage of float ops.
    pub weights: WeightPolicy,
}

/// Ops the default int8 recipe quantises: everything named `model.<p>.` except
/// AIFI (`model.2.`) and the decoder (`model.22.`), plus the decoder's input
/// projections.
pub fn default_int8_op(name: &str) -> bool {
    if name.starts_with("model.22.input_proj.") {
        return true;
    }
    name.starts_with("model.") && !name.starts_with("model.2.") && !name.starts_with("model.22.")
}

/// Float ops whose weights the mixed policy stores as int8: AIFI's
/// feed-forward layers and the decoder's plain projections.
pub fn int8_weight_op(name: &str) -> bool {
    const AIFI: [&str; 2] = ["model.2.fc1", "model.2.fc2"];
    const DECODER: [&str; 7] = [
        "_sa_q",
        "_sa_k",
        "_sa_v",
        "_sa_out",
        "_value",
        "_ffn_hidden",
        "_ffn_out",
    ];
    AIFI.contains(&name) || (name.starts_with("dec_l") && DECODER.iter().any(|s| name.ends_with(s)))
}

impl Recipe {
    /// Whether op `name` runs in int8.
    pub fn int8_op(&self, name: &str) -> bool {
        self.int8
            && default_int8_op(name)
            && !self.keep_float.iter().any(|p| name.starts_with(p.as_str()))
    }

    /// How float op `name` stores its weights.
    pub fn weight_prec(&self, name: &str) -> WeightPrec {
        match self.weights {
            WeightPolicy::Fp32 => WeightPrec::F32,
            WeightPolicy::Fp16 => WeightPrec::F16,
            WeightPolicy::Mixed if int8_weight_op(name) => WeightPrec::I8,
            WeightPolicy::Mixed => WeightPrec::F16,
        }
    }
}

/// Asymmetric int8 parameters `(scale, zero_point)` covering `[lo, hi]`
/// (widened to contain 0, so that zero padding is exact).
pub fn qparams(lo: f32, hi: f32) -> (f32, i8) {
    let lo = lo.min(0.0);
    let hi = hi.max(0.0);
    let scale = ((hi as f64 - lo as f64) / 255.0).max(1e-8) as f32;
    let zp = (-128.0 - lo as f64 / scale as f64)
        .round()
        .clamp(-128.0, 127.0) as i8;
    (scale, zp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qparams_cover_the_range_and_zero() {
        let (s, z) = qparams(0.0, 6.0);
        assert_eq!(z, -128);
        assert!((s - 6.0 / 255.0).abs() < 1e-9);
        let (s, z) = qparams(-1.0, 3.0);
        assert!((s * (127 - z as i32) as f32 - 3.0).abs() < 2.0 * s);
        assert!((s * (-128 - z as i32) as f32 + 1.0).abs() < 2.0 * s);
        let (s, _) = qparams(0.0, 0.0);
        assert!(s > 0.0);
    }

    #[test]
    fn the_default_recipe() {
        let r = Recipe {
            int8: true,
            keep_float: vec!["model.9.".into()],
            weights: WeightPolicy::Mixed,
            ..Recipe::default()
        };
        assert!(r.int8_op("model.0.conv0.convbn_0"));
        assert!(r.int8_op("model.13"));
        assert!(!r.int8_op("model.2.q"));
        assert!(!r.int8_op("model.9.m.0"));
        assert!(r.int8_op("model.22.input_proj.1"));
        assert!(!r.int8_op("dec_enc_linear"));
        assert_eq!(r.weight_prec("dec_l1_ffn_out"), WeightPrec::I8);
        assert_eq!(
            r.weight_prec("dec_l1_sampling_offsets_raw"),
            WeightPrec::F16
        );
        assert_eq!(r.weight_prec("model.2.fc1"), WeightPrec::I8);
        assert_eq!(r.weight_prec("model.2.q"), WeightPrec::F16);
    }
}
