//! Helpers shared by the edgedetr benches (`benches/kernels.rs`, `benches/model.rs`):
//! deterministic input data and the location of the reference checkpoint.
//!
//! The benches themselves are described in `README.md`.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

/// Environment variable naming the reference folder (default `../shared/reference`
/// beside the workspace), as for the integration tests.
pub const REFERENCE_ENV: &str = "EDGEDETR_REFERENCE";

/// `n` deterministic values in [-1, 1) (a linear congruential generator): the
/// same data on every run and machine, and no denormals to skew timings.
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// The reference checkpoint `fixtures/main/model.safetensors` under
/// `$EDGEDETR_REFERENCE`, or under `../shared/reference` beside the workspace;
/// a message saying where it was looked for when it is missing.
pub fn reference_checkpoint() -> Result<PathBuf, String> {
    let dir = std::env::var_os(REFERENCE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference"));
    let path = dir.join("fixtures/main/model.safetensors");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "reference checkpoint not found at {} (put the reference folder at \
             ../shared/reference beside the repository, or set {REFERENCE_ENV}=/path/to/reference)",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::values;

    #[test]
    fn values_are_deterministic_and_in_range() {
        let (a, b) = (values(1000, 7), values(1000, 7));
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
        assert_ne!(values(10, 1), values(10, 2));
    }
}
