//! Decoding and preprocessing of the reference images against the golden
//! `input.npy` (SPEC.md §6): `cv2.imdecode` → `cv2.resize(INTER_LINEAR)` →
//! CHW RGB `float32 / 255`, as ultralytics' `RTDETRPredictor` does.
//!
//! The bound asked of any decoder is one grey level (1/255) per element. The
//! CLI's JPEG decoder reproduces libjpeg-turbo and the resize reproduces
//! OpenCV, so the result is in fact bit-identical; the tests assert that too,
//! so that a change which loses exactness is noticed.

use edgedetr::kernels::Kernels;
use edgedetr_tests::{fixture_dir, golden, skip_requested};
use edgedetr_vision::file::load;
use edgedetr_vision::{decode, preprocess_to_input};

/// Decoding as a string result, as a user sees it.
fn decode_rgb8(bytes: &[u8]) -> Result<(), String> {
    decode(bytes).map(|_| ()).map_err(|e| e.to_string())
}

/// Loading as a string result.
fn load_rgb8(path: &std::path::Path) -> Result<(Vec<u8>, usize, usize), String> {
    load(path)
        .map(|i| (i.rgb, i.width, i.height))
        .map_err(|e| e.to_string())
}

fn check(run: &str, image: &str, s: usize) {
    if skip_requested(run) {
        return;
    }
    let path = fixture_dir().join("images").join(image);
    let (rgb, w, h) = load_rgb8(&path).unwrap_or_else(|e| panic!("{e}"));
    let g = golden(run, "input");
    assert_eq!(g.shape, [1, 3, s, s], "{run}: golden input shape");
    let mut ours = vec![0f32; 3 * s * s];
    preprocess_to_input(&Kernels::from_env(), &rgb, w, h, s, &mut ours)
        .unwrap_or_else(|e| panic!("{e}"));

    let mut max = 0f32;
    let mut equal = 0usize;
    for (&a, &b) in ours.iter().zip(&g.data) {
        max = max.max((a - b).abs());
        equal += usize::from(a.to_bits() == b.to_bits());
    }
    let frac = equal as f64 / ours.len() as f64;
    eprintln!(
        "{run}: {image} {w}x{h} -> {s}x{s}: max |ours - golden| = {max:.3e} ({:.2} grey levels), \
         exactly equal {frac:.6} ({equal} of {})",
        max * 255.0,
        ours.len()
    );
    assert!(
        max <= 1.0 / 255.0 + 1e-6,
        "{run}: max |ours - golden| = {max} exceeds one grey level"
    );
    assert_eq!(
        equal,
        ours.len(),
        "{run}: decode + resize are meant to be bit-exact with cv2 (libjpeg-turbo + INTER_LINEAR); \
         {} elements differ (max {max})",
        ours.len() - equal
    );
}

#[test]
fn bus_640() {
    check("bus_640", "bus.jpg", 640);
}

#[test]
fn zidane_640() {
    check("zidane_640", "zidane.jpg", 640);
}

#[test]
fn bus_320() {
    check("bus_320", "bus.jpg", 320);
}

#[test]
fn truncated_and_corrupt_images_are_errors() {
    if skip_requested("truncated_and_corrupt_images_are_errors") {
        return;
    }
    let bytes = std::fs::read(fixture_dir().join("images/bus.jpg")).expect("read bus.jpg");
    for cut in [3, 20, 200, 700, bytes.len() / 3, bytes.len() - 100] {
        let e = decode_rgb8(&bytes[..cut]).expect_err("a truncated JPEG must not decode");
        assert!(
            e.contains("truncated") || e.contains("corrupt"),
            "cut at {cut}: {e}"
        );
    }
    // A flipped bit pattern in the entropy-coded data: an error or an image,
    // never a panic.
    let mut bad = bytes.clone();
    for i in (bytes.len() / 2..bytes.len() / 2 + 64).step_by(7) {
        bad[i] ^= 0x5A;
    }
    let _ = decode_rgb8(&bad);
    // Not an image at all.
    let e = load_rgb8(&fixture_dir().join("manifest.json")).expect_err("not an image");
    assert!(e.contains("not a JPEG or PNG"), "{e}");
    let e = load_rgb8(&fixture_dir().join("images/no-such.jpg")).expect_err("missing file");
    assert!(e.contains("cannot read"), "{e}");
}
