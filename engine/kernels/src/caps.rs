//! CPU capabilities: the one place where instruction-set features are looked up.
//!
//! A [`Caps`] is only a *claim*. [`Kernels::for_caps`](crate::Kernels::for_caps)
//! intersects it with what the CPU provably has (a `cpuid` check on x86_64, the
//! compile-time target features on aarch64) before it hands out a SIMD path, so a
//! wrong claim falls back to a slower path instead of executing an illegal
//! instruction.

/// CPU capabilities that select kernel paths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    /// x86_64 AVX2 and FMA3 (Haswell, Zen and later).
    pub avx2_fma: bool,
    /// x86_64 AVX-512 Foundation (no kernel uses it alone).
    pub avx512f: bool,
    /// x86_64 AVX-512 F, BW, VL and VNNI (`vpdpbusd`; Cascade Lake, Ice Lake,
    /// Zen 4 and later).
    pub avx512_vnni: bool,
    /// x86_64 AMX-TILE, AMX-INT8 and AMX-BF16 (tile multiplies; Sapphire
    /// Rapids and later Xeons). Used only where the OS also grants the tile
    /// state to the process (Linux, asked on first use).
    pub amx: bool,
    /// Advanced SIMD. Baseline on aarch64. On armv7 it is reported but selects
    /// nothing yet: stable Rust has no armv7 NEON intrinsics, armv7 runs the
    /// portable path.
    pub neon: bool,
    /// aarch64 `SDOT`/`UDOT` (Armv8.2 dot product; Cortex-A76/A78, Orin).
    pub dotprod: bool,
    /// aarch64 half-precision arithmetic (Armv8.2 FP16).
    pub fp16: bool,
    /// aarch64 int8 matrix multiply (`SMMLA`, Armv8.6).
    pub i8mm: bool,
}

impl Caps {
    /// Nothing: the scalar reference path.
    pub const fn scalar() -> Caps {
        Caps {
            avx2_fma: false,
            avx512f: false,
            avx512_vnni: false,
            amx: false,
            neon: false,
            dotprod: false,
            fp16: false,
            i8mm: false,
        }
    }

    /// The features the crate was compiled for (`cfg!(target_feature = ...)`).
    ///
    /// NEON is baseline on every aarch64 target that enables it (all the Linux
    /// ones). This is what a `no_std` caller without its own detection passes.
    pub fn compile_time() -> Caps {
        Caps {
            avx2_fma: cfg!(all(
                target_arch = "x86_64",
                target_feature = "avx2",
                target_feature = "fma"
            )),
            avx512f: cfg!(all(target_arch = "x86_64", target_feature = "avx512f")),
            avx512_vnni: cfg!(all(
                target_arch = "x86_64",
                target_feature = "avx512f",
                target_feature = "avx512bw",
                target_feature = "avx512vl",
                target_feature = "avx512vnni"
            )),
            amx: cfg!(all(
                target_arch = "x86_64",
                target_feature = "amx-tile",
                target_feature = "amx-int8",
                target_feature = "amx-bf16"
            )),
            neon: cfg!(all(
                any(target_arch = "aarch64", target_arch = "arm"),
                target_feature = "neon"
            )),
            dotprod: cfg!(all(target_arch = "aarch64", target_feature = "dotprod")),
            fp16: cfg!(all(target_arch = "aarch64", target_feature = "fp16")),
            i8mm: cfg!(all(target_arch = "aarch64", target_feature = "i8mm")),
        }
    }

    /// Runtime detection (`is_x86_feature_detected!`, `is_aarch64_feature_detected!`);
    /// other architectures report [`Caps::compile_time`].
    #[cfg(feature = "std")]
    pub fn detect() -> Caps {
        #[cfg(target_arch = "x86_64")]
        {
            Caps {
                avx2_fma: std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma"),
                avx512f: std::is_x86_feature_detected!("avx512f"),
                avx512_vnni: std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512vnni"),
                amx: crate::x86_amx::cpu_has_amx(),
                ..Caps::scalar()
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            Caps {
                neon: std::arch::is_aarch64_feature_detected!("neon"),
                dotprod: std::arch::is_aarch64_feature_detected!("dotprod"),
                fp16: std::arch::is_aarch64_feature_detected!("fp16"),
                i8mm: std::arch::is_aarch64_feature_detected!("i8mm"),
                ..Caps::scalar()
            }
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            Caps::compile_time()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Caps;

    #[test]
    fn scalar_is_default_and_empty() {
        assert_eq!(Caps::scalar(), Caps::default());
    }

    #[test]
    fn compile_time_neon_is_baseline_on_aarch64() {
        if cfg!(target_arch = "aarch64") {
            assert!(Caps::compile_time().neon);
        }
        if cfg!(target_arch = "x86_64") {
            assert!(!Caps::compile_time().neon);
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn detect_includes_compile_time_features() {
        let (d, c) = (Caps::detect(), Caps::compile_time());
        assert!(d.avx2_fma >= c.avx2_fma && d.avx512f >= c.avx512f && d.neon >= c.neon);
        assert!(d.avx512_vnni >= c.avx512_vnni);
    }
}
