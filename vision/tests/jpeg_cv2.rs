//! The JPEG decoder against libjpeg-turbo through OpenCV, on the fixtures of
//! `tests/data/jpeg` (written by its `make.py`: every sampling layout OpenCV
//! writes, grayscale, progressive, restart intervals, odd and tiny sizes),
//! with every kernel path this CPU runs: each must give cv2's bytes.

use edgedetr_kernels::table::PATHS;
use edgedetr_kernels::{Caps, Kernels};
use edgedetr_vision::Limits;
use edgedetr_vision::jpeg::decode_with_kernels;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jpeg");

/// `(name, [(w, h) at scales 1, 1/2, 1/4, 1/8])` of `cases.txt`.
fn cases() -> Vec<(String, [(usize, usize); 4])> {
    let text = std::fs::read_to_string(format!("{DIR}/cases.txt")).expect("cases.txt");
    let cases: Vec<_> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n: Vec<usize> = f[1..].iter().map(|v| v.parse().unwrap()).collect();
            (
                f[0].to_string(),
                core::array::from_fn(|i| (n[2 * i], n[2 * i + 1])),
            )
        })
        .collect();
    assert!(cases.len() >= 13, "cases.txt lists {} cases", cases.len());
    cases
}

fn paths() -> Vec<Kernels> {
    let k: Vec<Kernels> = PATHS
        .iter()
        .filter_map(|p| Kernels::for_path(p.name, Caps::detect()))
        .collect();
    assert!(k.iter().any(|k| k.name() == "scalar"));
    k
}

#[test]
fn full_scale_matches_cv2_imdecode() {
    for (name, dims) in cases() {
        let data = std::fs::read(format!("{DIR}/{name}.jpg")).unwrap();
        let want = std::fs::read(format!("{DIR}/{name}.rgb")).unwrap();
        for k in paths() {
            let img = decode_with_kernels(&data, &Limits::default(), &k)
                .unwrap_or_else(|e| panic!("{name} ({}): {e}", k.name()));
            assert_eq!((img.width, img.height), dims[0], "{name} ({})", k.name());
            assert!(
                img.rgb == want,
                "{name} ({}): first difference at byte {:?}",
                k.name(),
                img.rgb.iter().zip(&want).position(|(a, b)| a != b)
            );
        }
    }
}

/// libjpeg's DCT-domain downscaling (`IMREAD_REDUCED_COLOR_2/4/8`).
#[test]
fn reduced_scales_match_cv2_imread_reduced() {
    use edgedetr_vision::jpeg::{Scale, decode_scaled_with_kernels};
    for (name, dims) in cases() {
        let data = std::fs::read(format!("{DIR}/{name}.jpg")).unwrap();
        for (i, scale) in [Scale::Half, Scale::Quarter, Scale::Eighth]
            .into_iter()
            .enumerate()
        {
            let n = scale.denom();
            let want = std::fs::read(format!("{DIR}/{name}.s{n}.rgb")).unwrap();
            for k in paths() {
                let img = decode_scaled_with_kernels(&data, &Limits::default(), scale, &k)
                    .unwrap_or_else(|e| panic!("{name} 1/{n} ({}): {e}", k.name()));
                assert_eq!((img.width, img.height), dims[i + 1], "{name} 1/{n}");
                assert!(
                    img.rgb == want,
                    "{name} 1/{n} ({}): first difference at byte {:?}",
                    k.name(),
                    img.rgb.iter().zip(&want).position(|(a, b)| a != b)
                );
            }
        }
    }
}
