//! The arithmetic peak of one core, measured with tight loops of independent
//! multiply-accumulates (what a kernel's GMAC/s is judged against):
//! `vpdpbusd` on zmm (64 int8 MACs) and ymm, f32 FMA on zmm (16) and ymm (8).
//!
//! ```sh
//! cargo run --release -p edgedetr-kernels --example peak
//! ```

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;
    use std::hint::black_box;
    use std::time::Instant;

    /// Independent accumulators per loop (hides each instruction's latency).
    const CHAINS: usize = 12;

    /// Runs `f` (which does `macs` multiply-accumulates) a few times and
    /// prints the best rate.
    fn rate(name: &str, macs: u64, f: impl Fn()) {
        f();
        let best = (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!("{name:<28} {:>8.1} GMAC/s", macs as f64 / best / 1e9);
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn vnni_zmm(iters: usize) -> i32 {
        let (a, b) = (_mm512_set1_epi8(3), _mm512_set1_epi8(-2));
        let mut acc = [_mm512_setzero_si512(); CHAINS];
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm512_dpbusd_epi32(*x, a, b);
            }
        }
        acc.iter()
            .map(|&x| _mm512_reduce_add_epi32(x))
            .fold(0, i32::wrapping_add)
    }

    #[target_feature(enable = "avxvnni,avx2")]
    fn vnni_ymm(iters: usize) -> i32 {
        let (a, b) = (_mm256_set1_epi8(3), _mm256_set1_epi8(-2));
        let mut acc = [_mm256_setzero_si256(); CHAINS];
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm256_dpbusd_avx_epi32(*x, a, b);
            }
        }
        let mut out = [0i32; 8];
        let s = acc
            .iter()
            .fold(_mm256_setzero_si256(), |s, &x| _mm256_add_epi32(s, x));
        // SAFETY: `out` is 32 writable bytes.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), s) };
        out.iter().fold(0, |s, &x| s.wrapping_add(x))
    }

    #[target_feature(enable = "avx512f")]
    fn fma_zmm(iters: usize) -> f32 {
        let (a, b) = (_mm512_set1_ps(0.999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        acc.iter().map(|&x| _mm512_reduce_add_ps(x)).sum()
    }

    #[target_feature(enable = "avx2,fma")]
    fn fma_ymm(iters: usize) -> f32 {
        let (a, b) = (_mm256_set1_ps(0.999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut out = [0f32; 8];
        let s = acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x));
        // SAFETY: `out` is 32 writable bytes.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }

    pub fn main() {
        const N: usize = 20_000_000;
        let per = (N * CHAINS) as u64;
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
        {
            rate("int8 vpdpbusd zmm", per * 64, || {
                // SAFETY: the features were detected above.
                black_box(unsafe { vnni_zmm(black_box(N)) });
            });
        }
        if std::is_x86_feature_detected!("avxvnni") {
            rate("int8 vpdpbusd ymm (AVX-VNNI)", per * 32, || {
                // SAFETY: the feature was detected above.
                black_box(unsafe { vnni_ymm(black_box(N)) });
            });
        }
        if std::is_x86_feature_detected!("avx512f") {
            rate("f32 FMA zmm", per * 16, || {
                // SAFETY: the feature was detected above.
                black_box(unsafe { fma_zmm(black_box(N)) });
            });
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            rate("f32 FMA ymm", per * 8, || {
                // SAFETY: the features were detected above.
                black_box(unsafe { fma_ymm(black_box(N)) });
            });
        }
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    x86::main();
    #[cfg(not(target_arch = "x86_64"))]
    println!("peak: only x86_64 loops are written; see llvm-mca for Arm");
}
