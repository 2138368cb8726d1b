//! IEEE-754 binary16 storage: weights and activations stored as fp16 bits
//! (`u16`), computed in f32.
//!
//! Both conversions are integer bit manipulation, so they are bit-exact on
//! every architecture and independent of the FPU's modes (no flush-to-zero,
//! no hardware conversion instruction whose NaN handling could differ):
//! - [`f16_to_f32`] is exact for every value (binary16 ⊂ binary32), NaNs
//!   become quiet NaNs with the same sign and payload (shifted up 13 bits);
//! - [`f32_to_f16_bits`] rounds to nearest, ties to even (IEEE default),
//!   overflowing to ±∞ and underflowing through the binary16 subnormals to
//!   ±0; NaNs become quiet NaNs keeping sign and the payload's top 9 bits.
//!
//! This is exactly what the `half` crate's software conversions do (the tests
//! compare them over every binary16 and a sweep of binary32 values).

/// One binary16 (as bits) to binary32, exactly.
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x03ff) as u32;
    let bits = match exp {
        0 if man == 0 => sign,
        0 => {
            // Subnormal: man·2^−24 with the top set bit at position p < 10
            // is 1.f·2^(p−24), biased exponent p − 24 + 127.
            let p = 31 - man.leading_zeros();
            sign | ((p + 103) << 23) | ((man << (23 - p)) & 0x007f_ffff)
        }
        0x1f if man == 0 => sign | 0x7f80_0000,
        0x1f => sign | 0x7fc0_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// binary16 bits to binary32, element by element. Panics if the lengths differ.
pub fn f16_to_f32_slice(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32_slice: length mismatch");
    for (d, &h) in dst.iter_mut().zip(src) {
        *d = f16_to_f32(h);
    }
}

impl crate::Kernels {
    /// binary16 bits to binary32 ([`f16_to_f32`]), element by element.
    /// Panics if the lengths differ.
    pub fn f16_to_f32(&self, src: &[u16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len(), "f16_to_f32: length mismatch");
        // SAFETY: the table's contract (crate::table); lengths checked above.
        unsafe { (self.slots.f16_to_f32)(src, dst) }
    }
}

/// binary32 to binary16 bits, rounding to nearest, ties to even (host-side:
/// the quantizer's conversion of fp16-stored tensors).
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x007f_ffff;
    if exp == 0xff {
        return if man == 0 {
            sign | 0x7c00
        } else {
            sign | 0x7e00 | (man >> 13) as u16
        };
    }
    // Biased binary16 exponent.
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal binary16 (or zero): mantissa (1.f)·2^(e−1−10)/2^−24
        // = (man | 2^23) >> (14 − e), rounded to nearest even. Below e = −10
        // the value is under half the smallest subnormal: ±0.
        if e < -10 {
            return sign;
        }
        let m = man | 0x0080_0000;
        let sh = (14 - e) as u32; // 14..=24
        let q = m >> sh;
        let rem = m & ((1 << sh) - 1);
        let half = 1 << (sh - 1);
        let up = rem > half || (rem == half && q & 1 == 1);
        // A carry into bit 10 is the smallest normal, correctly encoded.
        return sign | (q + up as u32) as u16;
    }
    let q = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    let up = rem > 0x1000 || (rem == 0x1000 && q & 1 == 1);
    // A carry propagates into the exponent; from the top binade it gives ∞.
    sign | (q + up as u32) as u16
}

/// [`f32_to_f16_bits`] of every element. Panics if the lengths differ.
pub fn f32_to_f16_slice(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_f16_slice: length mismatch");
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = f32_to_f16_bits(x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn every_f16_converts_like_half() {
        for h in 0..=u16::MAX {
            let ours = f16_to_f32(h);
            let theirs = f16::from_bits(h).to_f32();
            assert_eq!(ours.to_bits(), theirs.to_bits(), "{h:#06x}");
            // And back: every binary16 round-trips (NaNs keep their payload).
            assert_eq!(f32_to_f16_bits(ours) & !0x0200, h & !0x0200, "{h:#06x}");
            if !ours.is_nan() {
                assert_eq!(f32_to_f16_bits(ours), h);
            }
        }
        let mut dst = [0f32; 3];
        f16_to_f32_slice(&[0x3c00, 0xc000, 0x0001], &mut dst);
        assert_eq!(dst, [1.0, -2.0, 2f32.powi(-24)]);
    }

    #[test]
    fn f32_to_f16_rounds_like_half() {
        // Every 2^k-th binary32 plus its neighbours (hits ties and carries),
        // and every value around each binary16 rounding boundary.
        let step: u32 = if cfg!(target_arch = "x86_64") {
            251
        } else {
            4093
        };
        let mut b: u32 = 0;
        loop {
            for x in [b, b.wrapping_add(1), b.wrapping_sub(1)] {
                let v = f32::from_bits(x);
                assert_eq!(
                    f32_to_f16_bits(v),
                    f16::from_f32(v).to_bits(),
                    "{x:#010x} {v}"
                );
            }
            match b.checked_add(step) {
                Some(n) => b = n,
                None => break,
            }
        }
        for h in 0..=0x7c00u32 {
            // The midpoint between h and h + 1, and its neighbours, both signs.
            let lo = f16_to_f32(h as u16) as f64;
            let hi = f16_to_f32((h + 1).min(0x7c00) as u16) as f64;
            let mid = ((lo + hi) / 2.0) as f32;
            for x in [mid.to_bits() - 1, mid.to_bits(), mid.to_bits() + 1] {
                for s in [0, 0x8000_0000] {
                    let v = f32::from_bits(x | s);
                    assert_eq!(f32_to_f16_bits(v), f16::from_f32(v).to_bits(), "{v}");
                }
            }
        }
        assert_eq!(f32_to_f16_bits(65504.0), 0x7bff);
        assert_eq!(f32_to_f16_bits(65520.0), 0x7c00); // the tie rounds to ∞
        assert_eq!(f32_to_f16_bits(65519.99), 0x7bff);
        assert_eq!(f32_to_f16_bits(2f32.powi(-25)), 0); // tie to even: 0
        assert_eq!(f32_to_f16_bits(2f32.powi(-25) * 1.5), 1);
        assert_eq!(f32_to_f16_bits(-0.0), 0x8000);
        assert_eq!(f32_to_f16_bits(f32::NEG_INFINITY), 0xfc00);
        assert_eq!(f32_to_f16_bits(f32::NAN) & 0x7e00, 0x7e00);
        let mut dst = [0u16; 2];
        f32_to_f16_slice(&[1.0, -0.5], &mut dst);
        assert_eq!(dst, [0x3c00, 0xb800]);
    }
}
