//! What the `fuzz/` targets of the decoders do with their input, in one
//! place: the targets call these, and `tests/fuzz_regressions.rs` replays the
//! recorded crash inputs through the same functions.

use edgedetr_kernels::Kernels;

use crate::image::{Image, Limits};
use crate::input::Preprocessor;

/// The pixel limit while fuzzing (4 MP): big enough for every decoder path,
/// small enough that each input runs in milliseconds.
const FUZZ_LIMITS: Limits = Limits {
    max_pixels: 1 << 22,
};

/// Checks a decoded image and stretches it to a 32×32 input (resize and
/// layout kernels on odd sizes).
fn exercise(img: Image) {
    assert_eq!(img.rgb.len(), img.width * img.height * 3);
    let k = Kernels::scalar();
    let mut out = [0f32; 3 * 32 * 32];
    Preprocessor::new()
        .chw_f32(&k, &img.rgb, (img.width, img.height), 32, &mut out)
        .expect("a decoded image preprocesses");
}

/// Bytes → the JPEG decoder. Panics only on a bug.
pub fn jpeg(data: &[u8]) {
    if let Ok(img) = crate::jpeg::decode(data, &FUZZ_LIMITS) {
        exercise(img);
    }
}

/// Bytes → the PNG decoder. Panics only on a bug.
pub fn png(data: &[u8]) {
    if let Ok(img) = crate::png::decode(data, &FUZZ_LIMITS) {
        exercise(img);
    }
}
