//! The kernel table, chosen once from a capability set.
//!
//! The scalar path is always there; each architecture adds one path, reachable
//! only through a capability token that proves its instructions exist (x86_64:
//! `cpuid`/`xgetbv` checked at selection; aarch64: NEON compiled in). A caller
//! that claims a feature the CPU lacks gets a slower path, never an illegal
//! instruction.

use crate::caps::Caps;

/// The SIMD path behind a [`Kernels`], holding its capability token.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Path {
    /// The scalar reference kernels.
    Scalar,
    /// AVX2 + FMA3 (x86_64).
    #[cfg(target_arch = "x86_64")]
    Avx2Fma(crate::x86::Avx2Fma),
    /// NEON (aarch64).
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    Neon(crate::aarch64::Neon),
    /// NEON with the dot-product extension (aarch64, Armv8.2+: A55/A76/A78):
    /// the NEON float kernels, and int8 kernels built with `sdot`.
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    NeonDotprod(crate::aarch64::Neon, crate::aarch64::Dotprod),
}

/// Every path of the crate, as (name, the capability set that selects it):
/// the inventory `from_env` and the tests iterate over.
#[cfg(any(test, feature = "std"))]
pub(crate) const PATHS: [(&str, Caps); 4] = [
    ("scalar", Caps::scalar()),
    (
        "avx2_fma",
        Caps {
            avx2_fma: true,
            ..Caps::scalar()
        },
    ),
    (
        "neon",
        Caps {
            neon: true,
            ..Caps::scalar()
        },
    ),
    (
        "neon_dotprod",
        Caps {
            neon: true,
            dotprod: true,
            ..Caps::scalar()
        },
    ),
];

/// The kernel table, chosen once.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    pub(crate) path: Path,
}

impl Kernels {
    /// Scalar reference kernels only.
    pub fn scalar() -> Kernels {
        Kernels { path: Path::Scalar }
    }

    /// The best path the caps allow. A path is only reachable if `caps` says the
    /// feature exists *and* the CPU confirms it (x86_64: `cpuid`; aarch64: NEON
    /// is compiled in); otherwise the next best, down to scalar.
    pub fn for_caps(caps: Caps) -> Kernels {
        #[cfg(target_arch = "x86_64")]
        if caps.avx2_fma
            && let Some(t) = crate::x86::Avx2Fma::new()
        {
            return Kernels {
                path: Path::Avx2Fma(t),
            };
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        if caps.neon
            && caps.dotprod
            && let Some(d) = crate::aarch64::Dotprod::new()
        {
            return Kernels {
                path: Path::NeonDotprod(crate::aarch64::Neon::new(), d),
            };
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        if caps.neon {
            return Kernels {
                path: Path::Neon(crate::aarch64::Neon::new()),
            };
        }
        let _ = caps;
        Kernels::scalar()
    }

    /// The path's name: `"scalar"`, `"avx2_fma"`, `"neon"` or `"neon_dotprod"`.
    pub fn name(&self) -> &'static str {
        match self.path {
            Path::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Path::Avx2Fma(_) => "avx2_fma",
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Path::Neon(_) => "neon",
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Path::NeonDotprod(..) => "neon_dotprod",
        }
    }

    /// [`Caps::detect`], unless the environment variable `EDGEDETR_KERNELS`
    /// forces a path: `scalar`, `avx2` (or `avx2_fma`), `neon`, `neon_dotprod`,
    /// or `best` (the default). A forced path the CPU lacks, or an unknown value, gives the
    /// scalar path (no panic); [`name`](Self::name) tells which one was taken.
    #[cfg(feature = "std")]
    pub fn from_env() -> Kernels {
        let var = std::env::var("EDGEDETR_KERNELS").unwrap_or_default();
        Kernels::from_name(&var, Caps::detect())
    }

    /// The path a value of `EDGEDETR_KERNELS` selects, given the detected caps.
    #[cfg(feature = "std")]
    fn from_name(name: &str, detected: Caps) -> Kernels {
        let only = |wanted: Caps| {
            Kernels::for_caps(Caps {
                avx2_fma: wanted.avx2_fma && detected.avx2_fma,
                neon: wanted.neon && detected.neon,
                dotprod: wanted.dotprod && detected.dotprod,
                ..Caps::scalar()
            })
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "best" => Kernels::for_caps(detected),
            "avx2" => only(PATHS[1].1),
            other => match PATHS.iter().find(|(n, _)| *n == other) {
                Some(&(_, caps)) => only(caps),
                None => Kernels::scalar(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_is_scalar() {
        assert_eq!(Kernels::scalar().name(), "scalar");
        assert_eq!(Kernels::for_caps(Caps::scalar()).name(), "scalar");
    }

    /// The best path on this CPU is the SIMD one the architecture has.
    #[test]
    fn best_path_is_selected() {
        let caps = PATHS.iter().fold(Caps::scalar(), |acc, (_, c)| Caps {
            avx2_fma: acc.avx2_fma || c.avx2_fma,
            neon: acc.neon || c.neon,
            ..acc
        });
        let k = Kernels::for_caps(caps);
        std::println!("best path on this CPU: {}", k.name());
        #[cfg(target_arch = "x86_64")]
        if crate::x86::Avx2Fma::new().is_some() {
            assert_eq!(k.name(), "avx2_fma");
        } else {
            assert_eq!(k.name(), "scalar");
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        assert_eq!(k.name(), "neon");
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        assert_eq!(k.name(), "scalar");
    }

    /// A claimed feature of another architecture selects nothing.
    #[test]
    fn foreign_features_fall_back() {
        let k = Kernels::for_caps(Caps {
            neon: !cfg!(target_arch = "aarch64"),
            avx2_fma: !cfg!(target_arch = "x86_64"),
            ..Caps::scalar()
        });
        assert_eq!(k.name(), "scalar");
    }

    #[cfg(feature = "std")]
    #[test]
    fn detect_selects_the_simd_path() {
        let k = Kernels::for_caps(Caps::detect());
        std::println!("detected path: {}", k.name());
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            assert_eq!(k.name(), "avx2_fma");
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            assert_eq!(k.name(), "neon_dotprod");
        } else {
            assert_eq!(k.name(), "neon");
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn env_names_force_paths() {
        let all = Caps {
            avx2_fma: true,
            neon: true,
            dotprod: true,
            ..Caps::scalar()
        };
        assert_eq!(Kernels::from_name("scalar", all).name(), "scalar");
        assert_eq!(Kernels::from_name("nonsense", all).name(), "scalar");
        let best = Kernels::for_caps(all).name();
        assert_eq!(Kernels::from_name("", all).name(), best);
        assert_eq!(Kernels::from_name("BEST", all).name(), best);
        // A forced path is taken when it exists, else scalar, never a panic.
        for name in ["avx2", "avx2_fma", "neon", "neon_dotprod"] {
            let got = Kernels::from_name(name, all).name();
            // (neon_dotprod falls back to neon on a CPU without the extension)
            assert!(
                got == "scalar" || got.starts_with(name) || name.starts_with(got),
                "{name} -> {got}"
            );
            assert_eq!(Kernels::from_name(name, Caps::scalar()).name(), "scalar");
        }
        #[cfg(target_arch = "aarch64")]
        assert_eq!(Kernels::from_name("neon", all).name(), "neon");
        // neon_dotprod only where the CPU has the extension.
        #[cfg(target_arch = "aarch64")]
        assert_eq!(
            Kernels::from_name("neon_dotprod", all).name(),
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                "neon_dotprod"
            } else {
                "neon"
            }
        );
        #[cfg(target_arch = "aarch64")]
        assert_eq!(Kernels::from_name("avx2", all).name(), "scalar");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(Kernels::from_name("neon", all).name(), "scalar");
    }
}
