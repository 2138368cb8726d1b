//! Activation functions applied in kernel epilogues.
//!
//! The scalar functions here are the specification (SPEC.md §2): SIMD epilogues
//! must agree with them within the float bound stated in their tests.

/// An activation fused into the epilogue of a convolution or linear layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Act {
    /// Identity.
    None = 0,
    /// `max(x, 0)`.
    Relu = 1,
    /// `min(max(x, 0), 6)` (the MobileNetV4 backbone).
    Relu6 = 2,
    /// `x * sigmoid(x)` (ultralytics `Conv`).
    Silu = 3,
    /// Exact GELU `0.5 x (1 + erf(x / sqrt 2))` (AIFI feed-forward).
    Gelu = 4,
    /// Logistic sigmoid (decoder boxes and scores).
    Sigmoid = 5,
}

impl Act {
    /// Decodes the byte stored in a model file.
    pub const fn from_u8(v: u8) -> Option<Act> {
        match v {
            0 => Some(Act::None),
            1 => Some(Act::Relu),
            2 => Some(Act::Relu6),
            3 => Some(Act::Silu),
            4 => Some(Act::Gelu),
            5 => Some(Act::Sigmoid),
            _ => None,
        }
    }

    /// Applies the activation to one value (the scalar reference).
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::None => x,
            Act::Relu => relu(x),
            Act::Relu6 => relu6(x),
            Act::Silu => silu(x),
            Act::Gelu => gelu(x),
            Act::Sigmoid => sigmoid(x),
        }
    }

    /// Applies the activation to every value of a slice in place.
    pub fn apply_slice(self, xs: &mut [f32]) {
        if self == Act::None {
            return;
        }
        for x in xs {
            *x = self.apply(*x);
        }
    }
}

/// `max(x, 0)`; NaN stays NaN.
#[inline]
pub fn relu(x: f32) -> f32 {
    if x < 0.0 { 0.0 } else { x }
}

/// `min(max(x, 0), 6)`; NaN stays NaN.
#[inline]
pub fn relu6(x: f32) -> f32 {
    x.clamp(0.0, 6.0)
}

/// Logistic sigmoid `1 / (1 + exp(-x))`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// SiLU `x * sigmoid(x)`, computed as torch does: `x / (1 + exp(-x))`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + libm::expf(-x))
}

/// Exact GELU `0.5 x (1 + erf(x / sqrt 2))` (torch `nn.GELU()` default).
#[inline]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * core::f32::consts::FRAC_1_SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_match_their_definitions() {
        for i in -400..400 {
            let x = i as f32 * 0.05;
            let xd = x as f64;
            let sig = 1.0 / (1.0 + (-xd).exp());
            assert!((silu(x) as f64 - xd * sig).abs() <= 1e-6 * (1.0 + xd.abs()));
            assert!((sigmoid(x) as f64 - sig).abs() <= 1e-6);
            assert_eq!(relu6(x), x.clamp(0.0, 6.0));
            assert_eq!(relu(x), x.max(0.0));
        }
        // erf reference values (Abramowitz & Stegun table).
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_25).abs() < 1e-6);
        assert!((gelu(2.0) - 1.954_499_7).abs() < 1e-6);
        for v in 0..=5u8 {
            assert_eq!(Act::from_u8(v).map(|a| a as u8), Some(v));
        }
        assert_eq!(Act::from_u8(6), None);
    }
}
