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

/// Bytes → the JPEG decoder, with the detected kernels and with the scalar
/// ones (which must give the same image or the same error), and at scale
/// 1/2 and 1/8 (both ways too). Panics only on a bug.
pub fn jpeg(data: &[u8]) {
    use crate::jpeg::{Scale, decode_scaled_with_kernels, decode_with_kernels};
    let best = Kernels::from_env();
    let got = decode_with_kernels(data, &FUZZ_LIMITS, &best);
    if best.name() != "scalar" {
        let scalar = decode_with_kernels(data, &FUZZ_LIMITS, &Kernels::scalar());
        assert!(
            got == scalar,
            "kernel path {} differs from scalar",
            best.name()
        );
    }
    if let Ok(img) = got {
        exercise(img);
        for s in [Scale::Half, Scale::Eighth] {
            let img = decode_scaled_with_kernels(data, &FUZZ_LIMITS, s, &best)
                .expect("what decodes at full size decodes scaled");
            assert_eq!(img.rgb.len(), img.width * img.height * 3);
            if best.name() != "scalar" {
                let scalar = decode_scaled_with_kernels(data, &FUZZ_LIMITS, s, &Kernels::scalar());
                assert!(
                    scalar.as_ref() == Ok(&img),
                    "{s:?}: {} differs from scalar",
                    best.name()
                );
            }
        }
    }
}

/// Bytes → the PNG decoder. Panics only on a bug.
pub fn png(data: &[u8]) {
    if let Ok(img) = crate::png::decode(data, &FUZZ_LIMITS) {
        exercise(img);
    }
}
