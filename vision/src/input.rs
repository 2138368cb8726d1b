//! From a decoded image to the model's input: the stretch to `S×S` and the
//! layout change, with buffers reused from frame to frame.

use alloc::vec::Vec;

use edgedetr::Session;
use edgedetr_kernels::{Kernels, Resize};

use crate::error::{Error, PreprocessError};
use crate::preprocess::{Order, hwc_to_chw, image_len, resize};

/// Turns RGB8 images into the network input as ultralytics'
/// `RTDETRPredictor` does: stretch to `S×S` with OpenCV's `INTER_LINEAR` (no
/// letterbox; no resize when already `S×S`), then planar CHW RGB.
///
/// It keeps its buffers, so after the first image of a given size a frame
/// allocates nothing (camera streams).
#[derive(Debug, Default)]
pub struct Preprocessor {
    resized: Vec<u8>,
    scratch: Vec<i32>,
    planar: Vec<u8>,
}

impl Preprocessor {
    /// A preprocessor with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `w×h` RGB image stretched to `s×s` (itself when already `s×s`).
    fn resized<'x>(
        &'x mut self,
        k: &Kernels,
        rgb: &'x [u8],
        w: usize,
        h: usize,
        s: usize,
    ) -> Result<&'x [u8], PreprocessError> {
        if w == s && h == s {
            return Ok(rgb);
        }
        let r = Resize {
            sw: w,
            sh: h,
            dw: s,
            dh: s,
        };
        self.resized.resize(image_len(s, s)?, 0);
        self.scratch.resize(r.scratch_len(), 0);
        resize(k, &r, rgb, &mut self.resized, &mut self.scratch)?;
        Ok(&self.resized)
    }

    /// The CHW RGB `u8` pixels of the `s×s` input (`3·s·s` bytes): what
    /// `Session::set_input_u8` takes, and int8 models read directly.
    ///
    /// # Errors
    /// [`PreprocessError`] for zero sizes or an `rgb` of the wrong length.
    pub fn chw_u8(
        &mut self,
        k: &Kernels,
        rgb: &[u8],
        w: usize,
        h: usize,
        s: usize,
    ) -> Result<&[u8], PreprocessError> {
        let mut planar = core::mem::take(&mut self.planar);
        planar.resize(image_len(s, s)?, 0);
        let r = self
            .resized(k, rgb, w, h, s)
            .and_then(|src| hwc_to_chw(k, src, (s, s), Order::Rgb, &mut planar));
        self.planar = planar;
        r.map(|()| &self.planar[..])
    }

    /// The `[1, 3, s, s]` f32 input (`v / 255`) in `out` (`3·s·s` values).
    ///
    /// # Errors
    /// [`PreprocessError`] for zero sizes or buffers of the wrong length.
    pub fn chw_f32(
        &mut self,
        k: &Kernels,
        rgb: &[u8],
        (w, h): (usize, usize),
        s: usize,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        let src = self.resized(k, rgb, w, h, s)?;
        hwc_to_chw(k, src, (s, s), Order::Rgb, out)
    }

    /// Writes the image into `session`'s input (its model's size and input
    /// type), with the session's kernels.
    ///
    /// # Errors
    /// [`Error::Preprocess`] for an image of the wrong length or zero size.
    pub fn to_session(
        &mut self,
        session: &mut Session<'_, '_>,
        rgb: &[u8],
        w: usize,
        h: usize,
    ) -> Result<(), Error> {
        let k = *session.kernels();
        let s = session.model().input_size();
        let chw = self.chw_u8(&k, rgb, w, h, s)?;
        session.set_input_u8(chw)?;
        Ok(())
    }
}

/// Stretches a `w×h` RGB image to `s×s` and writes the `[1, 3, s, s]` f32
/// input (`out`, `3·s·s` values), allocating its buffers once (see
/// [`Preprocessor`] to reuse them).
///
/// # Errors
/// [`PreprocessError`] for zero sizes or buffers of the wrong length.
pub fn preprocess_to_input(
    k: &Kernels,
    rgb: &[u8],
    w: usize,
    h: usize,
    s: usize,
    out: &mut [f32],
) -> Result<(), PreprocessError> {
    Preprocessor::new().chw_f32(k, rgb, (w, h), s, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn preprocess_checks_sizes() {
        let k = Kernels::scalar();
        let rgb = vec![0u8; 4 * 2 * 3];
        let mut out = vec![0f32; 3 * 3 * 3];
        let mut p = Preprocessor::new();
        p.chw_f32(&k, &rgb, (4, 2), 3, &mut out).unwrap();
        assert!(p.chw_f32(&k, &rgb, (4, 2), 3, &mut out[1..]).is_err());
        assert!(p.chw_f32(&k, &rgb, (0, 2), 3, &mut out).is_err());
        assert!(p.chw_f32(&k, &rgb[1..], (4, 2), 3, &mut out).is_err());
        assert_eq!(p.chw_u8(&k, &rgb, 4, 2, 3).unwrap().len(), 27);
        assert!(p.chw_u8(&k, &rgb, 0, 2, 3).is_err());
        assert!(p.chw_u8(&k, &rgb[1..], 4, 2, 3).is_err());
        // Same-size input (no resize) also checks its length.
        assert!(p.chw_u8(&k, &rgb[1..], 3, 3, 3).is_err());
    }

    #[test]
    fn the_u8_input_is_the_f32_input_times_255() {
        let k = Kernels::scalar();
        let mut x = 7u32;
        let mut px = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        };
        let mut p = Preprocessor::new();
        for (w, h, s) in [
            (5, 3, 4),
            (13, 9, 32),
            (32, 32, 32),
            (40, 7, 32),
            (1, 1, 32),
        ] {
            let rgb: Vec<u8> = (0..w * h * 3).map(|_| px()).collect();
            let mut f = vec![0f32; 3 * s * s];
            p.chw_f32(&k, &rgb, (w, h), s, &mut f).unwrap();
            let u = p.chw_u8(&k, &rgb, w, h, s).unwrap();
            for (&a, &b) in f.iter().zip(u) {
                assert_eq!((a * 255.0).round(), f32::from(b), "{w}x{h} -> {s}");
                assert_eq!(a.to_bits(), (f32::from(b) / 255.0).to_bits());
            }
        }
    }
}
