//! The kernel table: one typed slot per kernel, filled completely by the
//! scalar path and overridden slot by slot by each SIMD path after one feature
//! detection (tract's `best()` plugs, XNNPACK's configs).
//!
//! # Slots
//! `slots!` below is the one list of slots: it generates the private
//! [`Slots`] record of function pointers, the public [`Slot`] enum the
//! inventory, tests and benches iterate over, and the scalar table. Every
//! slot holds an `unsafe fn`; its contract is the same for all of them:
//!
//! 1. the CPU executes the instructions of the path that installed it (a
//!    path is only installed after [`PathDef::available`] proved that), and
//! 2. the arguments passed the checks of the slot's method on [`Kernels`]
//!    (lengths, geometry), which is the only caller.
//!
//! So a slot is reachable only through a [`Kernels`] value, and a `Kernels`
//! value only exists for paths the CPU runs.
//!
//! # Paths
//! A path ([`PathDef`]) is declared with `declare_path!` in its
//! architecture's module: a name, the path it builds on, a check that the CPU
//! has its features, and the list `slot = function`. That one list installs
//! the overrides *and* is the inventory ([`PathDef::overrides`]), so no
//! kernel can be installed without being listed, and the equivalence tests
//! (`tests/equivalence.rs`) and benches (`benches/benches/kernels.rs`) are
//! generated from it.

use crate::caps::Caps;
use crate::conv::ConvF32;
use crate::conv_i8::ConvI8;
use crate::elementwise_i8::SumI8;
use crate::gemm::Gemm;
use crate::image::Resize;
use crate::linear_bf16::LinearBf16;
use crate::ops::decoder::{DeformGeom, FinalTopK};
use crate::ops::norm::LayerNorm;
use crate::planes::OutPlanes;
use crate::winograd::WinogradF32;
use crate::{Act, image};

/// `(channels, height, width)` of a channel-major map.
pub type Dims = (usize, usize, usize);

/// Declares the slots: `name (Variant): fn type = scalar implementation;`.
macro_rules! slots {
    ($( $(#[$doc:meta])* $name:ident ($variant:ident): $ty:ty = $scalar:path; )*) => {
        /// The function pointers of one table (see the module docs for the
        /// contract every slot shares).
        #[derive(Clone, Copy)]
        pub struct Slots {
            $( $(#[$doc])* pub(crate) $name: $ty, )*
        }

        /// A slot of the kernel table. Deliberately exhaustive: the
        /// equivalence tests and the benches match on it, so a new slot does
        /// not compile until it has both.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Slot {
            $( $(#[$doc])* $variant, )*
        }

        impl Slot {
            /// Every slot, in table order.
            pub const ALL: &'static [Slot] = &[$(Slot::$variant,)*];

            /// The slot's name (its field in the table, e.g. `conv_i8`).
            pub const fn name(self) -> &'static str {
                match self {
                    $( Slot::$variant => stringify!($name), )*
                }
            }

            /// The slot named `name`.
            pub fn from_name(name: &str) -> Option<Slot> {
                Slot::ALL.iter().copied().find(|s| s.name() == name)
            }
        }

        impl Slots {
            /// The scalar path: every slot filled with its portable implementation.
            pub(crate) const SCALAR: Slots = Slots {
                $( $name: $scalar, )*
            };
        }
    };
}

slots! {
    /// f32 GEMM with a fused epilogue (`C = act(A·B + bias + C?)`).
    sgemm (Sgemm): unsafe fn(&Gemm<'_>, &mut [f32], &mut [f32]) = crate::reference::sgemm;
    /// Linear layer with integer weights and bfloat16-rounded inputs.
    linear_bf16 (LinearBf16): unsafe fn(&LinearBf16<'_>, &mut OutPlanes<'_, f32>, &mut [u8]) = crate::linear_bf16::linear_bf16_portable;
    /// Winograd F(4×4, 3×3) f32 convolution of whole rows of tiles (its GEMMs
    /// and activation through the table it is given).
    winograd_f32 (WinogradF32): unsafe fn(&Kernels, &WinogradF32<'_>, &mut OutPlanes<'_, f32>, &mut [f32]) = crate::winograd::winograd_portable;
    /// Dense (`groups == 1`) f32 convolution.
    conv_f32 (ConvF32): unsafe fn(&ConvF32<'_>, &mut [f32], &mut [f32]) = crate::reference::conv2d_f32_slot;
    /// Depthwise f32 convolution.
    dwconv_f32 (DwConvF32): unsafe fn(&ConvF32<'_>, &mut [f32]) = crate::reference::dwconv_f32_slot;
    /// Dense int8 convolution with the requantising epilogue.
    conv_i8 (ConvI8): unsafe fn(&ConvI8<'_>, &mut OutPlanes<'_>, &mut [u8]) = crate::conv_i8::portable_conv_i8;
    /// Depthwise int8 convolution with the requantising epilogue.
    dwconv_i8 (DwConvI8): unsafe fn(&ConvI8<'_>, &mut [i8]) = crate::conv_i8::portable_dwconv_i8;
    /// Weighted sum of 1–4 int8 maps (some read ×2-upsampled), requantised.
    weighted_sum_i8 (WeightedSumI8): unsafe fn(&SumI8<'_>, &mut [i8]) = crate::elementwise_i8::weighted_sum_i8_slot;
    /// f32 → int8 (`round(x / scale) + zp`, clamped).
    quantize (Quantize): unsafe fn(&[f32], f32, i32, &mut [i8]) = crate::quant::quantize_f32_slice;
    /// int8 → f32 (`(q − zp)·scale`).
    dequantize (Dequantize): unsafe fn(&[i8], f32, i32, &mut [f32]) = crate::quant::dequantize_slice;
    /// Nearest ×2 upsampling of an int8 map.
    upsample2x_i8 (Upsample2xI8): unsafe fn(&[i8], Dims, &mut [i8]) = crate::elementwise_i8::upsample2x_i8_slot;
    /// The u8 image as int8 (`p − 128`).
    u8_to_i8 (U8ToI8): unsafe fn(&[u8], &mut [i8]) = crate::elementwise_i8::u8_to_i8_image;
    /// Weighted sum of 1–4 f32 maps, in input order.
    weighted_sum_f32 (WeightedSumF32): unsafe fn(&[&[f32]], &[f32], &mut [f32]) = crate::ops::elementwise::weighted_sum;
    /// `act(a + b)` in f32.
    add_f32 (AddF32): unsafe fn(&[f32], &[f32], Act, &mut [f32]) = crate::ops::elementwise::add_act;
    /// `act(x)` in f32, element-wise.
    act_f32 (ActF32): unsafe fn(Act, &[f32], &mut [f32]) = crate::ops::elementwise::act;
    /// Nearest ×2 upsampling of an f32 map.
    upsample2x_f32 (Upsample2xF32): unsafe fn(&[f32], Dims, &mut [f32]) = crate::ops::elementwise::upsample2x_slot;
    /// binary16 bits → f32.
    f16_to_f32 (F16ToF32): unsafe fn(&[u16], &mut [f32]) = crate::f16::f16_to_f32_slice;
    /// Layer normalisation over the channels of each token.
    layer_norm (LayerNorm): unsafe fn(&LayerNorm<'_>, &mut OutPlanes<'_, f32>) = crate::ops::norm::layer_norm;
    /// Softmax down each column of a row-major `[rows, cols]` matrix, in place.
    softmax_cols (SoftmaxCols): unsafe fn(&mut [f32], usize) = crate::ops::norm::softmax_columns;
    /// Concatenation of `[C, T_i]` token matrices along the tokens.
    concat_tokens (ConcatTokens): unsafe fn(&[&[f32]], usize, &mut [f32]) = crate::ops::decoder::concat_tokens;
    /// `x[c, t]·mask[t]`.
    mask_tokens (MaskTokens): unsafe fn(&[f32], usize, &[f32], &mut [f32]) = crate::ops::decoder::mask_tokens;
    /// Indices of the top-K tokens by their maximum over channels.
    topk_tokens (TopKTokens): unsafe fn(&[f32], usize, &mut [u32], &mut [f32]) = crate::ops::decoder::topk_tokens_by_max;
    /// Token columns gathered by index.
    gather_tokens (GatherTokens): unsafe fn(&[f32], usize, &[u32], &mut [f32]) = crate::ops::decoder::gather_tokens;
    /// Softmax over groups of consecutive channels, per token.
    softmax_groups (SoftmaxGroups): unsafe fn(&[f32], usize, usize, &mut [f32]) = crate::ops::decoder::softmax_channel_groups;
    /// Deformable-attention sampling locations.
    deform_locations (DeformLocations): unsafe fn(&[f32], &[f32], usize, usize, &mut [f32]) = crate::ops::decoder::deform_locations;
    /// Multi-scale deformable attention sampling.
    deform_sample (DeformSample): unsafe fn(&DeformGeom, &[f32], &[f32], &[f32], &mut [f32]) = crate::ops::decoder::deform_sample;
    /// Iterative box refinement.
    refine_boxes (RefineBoxes): unsafe fn(&[f32], &[f32], &mut [f32]) = crate::ops::decoder::refine_boxes;
    /// The top-K (query, class) rows of the final scores.
    final_topk (FinalTopK): unsafe fn(&FinalTopK<'_>, &mut [f32], &mut [u32], &mut [u32], &mut [f32]) = crate::ops::decoder::final_topk;
    /// OpenCV-exact `INTER_LINEAR` resize of an interleaved RGB `u8` image.
    resize_rgb8 (ResizeRgb8): unsafe fn(&Resize, &[u8], &mut [u8], &mut [i32]) = image::resize_rgb8;
    /// Interleaved (HWC) RGB/BGR `u8` → planar (CHW) `u8`, channels reordered.
    hwc_to_chw_u8 (HwcToChwU8): unsafe fn(&[u8], [usize; 3], &mut [u8]) = image::hwc_to_chw_u8;
    /// Interleaved (HWC) `u8` → planar (CHW) `f32` `v / 255`, channels reordered.
    hwc_to_chw_f32 (HwcToChwF32): unsafe fn(&[u8], [usize; 3], &mut [f32]) = image::hwc_to_chw_f32;
    /// JPEG: dequantisation and libjpeg's accurate integer IDCT of one 8×8 block.
    idct_islow_u8 (IdctIslowU8): unsafe fn(&[i16; 64], &[i16; 64], &mut [u8], usize) = crate::jpeg::idct_islow_u8;
    /// JPEG: dequantisation and libjpeg's 4×4 reduced IDCT (scale 1/2) of one block.
    idct_4x4_u8 (Idct4x4U8): unsafe fn(&[i16; 64], &[i16; 64], &mut [u8], usize) = crate::jpeg::idct_4x4_u8;
    /// JPEG: libjpeg's fancy ×2 horizontal chroma upsampling of one row.
    upsample_h2v1_fancy_u8 (UpsampleH2v1FancyU8): unsafe fn(&[u8], &mut [u8]) = crate::jpeg::upsample_h2v1_fancy_u8;
    /// JPEG: libjpeg's fancy ×2×2 chroma upsampling of one output row.
    upsample_h2v2_fancy_u8 (UpsampleH2v2FancyU8): unsafe fn(&[u8], &[u8], &mut [u8]) = crate::jpeg::upsample_h2v2_fancy_u8;
    /// JPEG: libjpeg's YCbCr → RGB conversion of one row.
    ycc_to_rgb_u8 (YccToRgbU8): unsafe fn(&[u8], &[u8], &[u8], &mut [u8]) = crate::jpeg::ycc_to_rgb_u8;
}

/// A kernel path: the slots it overrides on top of its base path.
///
/// Declared with `declare_path!`; the same list installs the kernels and
/// is the inventory the tests and benches are generated from.
pub struct PathDef {
    /// The path's name (`EDGEDETR_KERNELS`, `bench --json`'s `kernels`).
    pub name: &'static str,
    /// The path this one builds on (`None` for the scalar path).
    pub base: Option<&'static PathDef>,
    /// The slots this path overrides, by name ([`Slot::name`]).
    pub overrides: &'static [&'static str],
    /// Whether the claimed `caps` include the path's features *and* the CPU
    /// provably has them (`cpuid` on x86_64; compiled in or detected on aarch64).
    pub(crate) available: fn(Caps) -> bool,
    /// Installs the overrides.
    pub(crate) plug: fn(&mut Slots),
}

impl core::fmt::Debug for PathDef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PathDef")
            .field("name", &self.name)
            .field("base", &self.base.map(|b| b.name))
            .field("overrides", &self.overrides)
            .finish()
    }
}

impl PathDef {
    /// Whether this CPU runs the path, given a capability claim.
    pub fn available(&self, caps: Caps) -> bool {
        (self.available)(caps) && self.base.is_none_or(|b| b.available(caps))
    }

    /// Whether the path itself (not its base) installs `slot`.
    pub fn overrides(&self, slot: Slot) -> bool {
        self.overrides.contains(&slot.name())
    }

    /// The path that provides `slot` in this path's table: itself, its
    /// nearest base that overrides it, or the scalar path.
    pub fn origin(&'static self, slot: Slot) -> &'static PathDef {
        let mut p = self;
        loop {
            if p.overrides(slot) {
                return p;
            }
            match p.base {
                Some(b) => p = b,
                None => return p,
            }
        }
    }

    fn fill(&self, s: &mut Slots) {
        if let Some(b) = self.base {
            b.fill(s);
        }
        (self.plug)(s);
    }
}

/// Declares a [`PathDef`] static:
///
/// ```ignore
/// declare_path! {
///     /// Docs.
///     pub(crate) static AVX2_FMA = "avx2_fma", base SCALAR, available |caps| ..., {
///         sgemm = avx2_fma_sgemm_f32,
///         conv_f32 = avx2_fma_conv_f32,
///     }
/// }
/// ```
macro_rules! declare_path {
    (
        $(#[$doc:meta])*
        $vis:vis static $id:ident = $name:literal, base $base:expr, available $avail:expr,
        { $( $slot:ident = $f:expr, )* }
    ) => {
        $(#[$doc])*
        $vis static $id: $crate::table::PathDef = $crate::table::PathDef {
            name: $name,
            base: $base,
            overrides: &[$(stringify!($slot),)*],
            available: $avail,
            plug: {
                #[allow(unused_variables)]
                fn plug(s: &mut $crate::table::Slots) {
                    $( s.$slot = $f; )*
                }
                plug
            },
        };
    };
}
// Used by the architecture modules; unused where only the scalar path exists.
#[allow(unused_imports)]
pub(crate) use declare_path;

declare_path! {
    /// The scalar path: portable Rust, the same on every architecture (and
    /// the only one on armv7 and Cortex-M until they get their own).
    pub static SCALAR = "scalar", base None, available |_| true, {}
}

/// Every path compiled for this architecture, best first; [`SCALAR`] last.
pub static PATHS: &[&PathDef] = &[
    #[cfg(target_arch = "x86_64")]
    &crate::x86_amx::AVX512_AMX,
    #[cfg(target_arch = "x86_64")]
    &crate::x86_vnni::AVX512_VNNI,
    #[cfg(target_arch = "x86_64")]
    &crate::x86::AVX2_FMA,
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    &crate::aarch64::NEON_DOTPROD,
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    &crate::aarch64::NEON,
    &SCALAR,
];

/// The names of every path of every architecture (a path not compiled for
/// this one is reported as ignored by the tests, never as passed).
pub const ALL_PATH_NAMES: &[&str] = &[
    "scalar",
    "avx2_fma",
    "avx512_vnni",
    "avx512_amx",
    "neon",
    "neon_dotprod",
];

/// The kernel table, chosen once: a name and one function per [`Slot`].
#[derive(Clone, Copy)]
pub struct Kernels {
    pub(crate) path: &'static PathDef,
    pub(crate) slots: Slots,
}

impl core::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Kernels").field(&self.path.name).finish()
    }
}

impl Kernels {
    /// The scalar path.
    pub fn scalar() -> Kernels {
        Kernels {
            path: &SCALAR,
            slots: Slots::SCALAR,
        }
    }

    /// The table of `path` (which must be available: see [`Kernels::for_path`]).
    fn build(path: &'static PathDef) -> Kernels {
        let mut slots = Slots::SCALAR;
        path.fill(&mut slots);
        Kernels { path, slots }
    }

    /// The best path the claimed `caps` allow on this CPU: a path is only
    /// taken if `caps` says its features exist *and* the CPU confirms them
    /// (x86_64: `cpuid`; aarch64: compiled in or detected); otherwise the next
    /// best, down to scalar. A wrong claim gives a slower path, never an
    /// illegal instruction.
    pub fn for_caps(caps: Caps) -> Kernels {
        let best = PATHS
            .iter()
            .copied()
            .find(|p| p.available(caps))
            .unwrap_or(&SCALAR);
        Kernels::build(best)
    }

    /// Exactly the path named `name`, if it is compiled for this architecture
    /// and the claimed `caps` (confirmed by the CPU) allow it.
    pub fn for_path(name: &str, caps: Caps) -> Option<Kernels> {
        PATHS
            .iter()
            .copied()
            .find(|p| p.name == name && p.available(caps))
            .map(Kernels::build)
    }

    /// The path's name: `"scalar"`, `"avx2_fma"`, `"avx512_vnni"`, `"avx512_amx"`, `"neon"` or
    /// `"neon_dotprod"`.
    pub fn name(&self) -> &'static str {
        self.path.name
    }

    /// The path's declaration (its inventory of overrides).
    pub fn path(&self) -> &'static PathDef {
        self.path
    }

    /// [`Caps::detect`], unless the environment variable `EDGEDETR_KERNELS`
    /// forces a path: `scalar`, `avx2` (or `avx2_fma`), `neon`,
    /// `neon_dotprod`, or `best` (the default). A forced path the CPU lacks
    /// gives the best of the paths it builds on (e.g. `neon_dotprod` → `neon`),
    /// an unknown value the scalar path; never a panic. [`name`](Self::name)
    /// tells which one was taken.
    #[cfg(feature = "std")]
    pub fn from_env() -> Kernels {
        let var = std::env::var("EDGEDETR_KERNELS").unwrap_or_default();
        Kernels::from_name(&var, Caps::detect())
    }

    /// The path a value of `EDGEDETR_KERNELS` selects, given the detected caps.
    pub fn from_name(name: &str, detected: Caps) -> Kernels {
        let name = name.trim();
        if name.is_empty() || name.eq_ignore_ascii_case("best") {
            return Kernels::for_caps(detected);
        }
        let wanted = if name.eq_ignore_ascii_case("avx2") {
            "avx2_fma"
        } else {
            name
        };
        let Some(mut p) = PATHS
            .iter()
            .copied()
            .find(|p| p.name.eq_ignore_ascii_case(wanted))
        else {
            return Kernels::scalar();
        };
        loop {
            if p.available(detected) {
                return Kernels::build(p);
            }
            match p.base {
                Some(b) => p = b,
                None => return Kernels::scalar(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Caps::compile_time()` never selects a path the CPU lacks.
    #[test]
    fn compile_time_caps_are_runnable() {
        use crate::{Act, Epilogue, Gemm, MatRef};
        let k = Kernels::for_caps(Caps::compile_time());
        let mut c = [0.0f32; 1];
        let one = MatRef {
            data: &[2.0],
            rs: 1,
            cs: 1,
        };
        let g = Gemm {
            m: 1,
            n: 1,
            k: 1,
            a: one,
            b: one,
            rsc: 1,
            epi: Epilogue {
                bias: None,
                accumulate: false,
                act: Act::None,
            },
        };
        k.sgemm(&g, &mut c, &mut [0.0; 200]);
        assert_eq!(c[0], 4.0);
    }

    #[test]
    fn scalar_is_scalar() {
        assert_eq!(Kernels::scalar().name(), "scalar");
        assert_eq!(Kernels::for_caps(Caps::scalar()).name(), "scalar");
    }

    #[test]
    fn slots_have_unique_names() {
        for (i, a) in Slot::ALL.iter().enumerate() {
            assert_eq!(Slot::from_name(a.name()), Some(*a));
            assert!(Slot::ALL[..i].iter().all(|b| b.name() != a.name()));
        }
    }

    #[test]
    fn every_compiled_path_is_known_and_ends_in_scalar() {
        assert_eq!(PATHS.last().map(|p| p.name), Some("scalar"));
        for p in PATHS {
            assert!(ALL_PATH_NAMES.contains(&p.name), "{}", p.name);
            for s in p.overrides {
                assert!(Slot::from_name(s).is_some(), "{}: {s}", p.name);
            }
            let mut b = *p;
            while let Some(next) = b.base {
                b = next;
            }
            assert_eq!(b.name, "scalar");
        }
    }

    /// A claimed feature of another architecture selects nothing.
    #[test]
    fn foreign_features_fall_back() {
        let k = Kernels::for_caps(Caps {
            neon: !cfg!(target_arch = "aarch64"),
            dotprod: !cfg!(target_arch = "aarch64"),
            avx2_fma: !cfg!(target_arch = "x86_64"),
            ..Caps::scalar()
        });
        assert_eq!(k.name(), "scalar");
    }

    #[cfg(feature = "std")]
    #[test]
    fn detect_selects_the_best_simd_path() {
        let k = Kernels::for_caps(Caps::detect());
        std::println!("detected path: {}", k.name());
        #[cfg(target_arch = "x86_64")]
        if crate::x86_amx::Amx::new().is_some() {
            assert_eq!(k.name(), "avx512_amx");
        } else if std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx512bw")
        {
            assert_eq!(k.name(), "avx512_vnni");
        } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            assert_eq!(k.name(), "avx2_fma");
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            assert_eq!(k.name(), "neon_dotprod");
        } else {
            assert_eq!(k.name(), "neon");
        }
    }

    #[test]
    fn env_names_force_paths() {
        let all = Caps {
            avx2_fma: true,
            avx512_vnni: true,
            amx: true,
            neon: true,
            dotprod: true,
            ..Caps::scalar()
        };
        assert_eq!(Kernels::from_name("scalar", all).name(), "scalar");
        assert_eq!(Kernels::from_name("nonsense", all).name(), "scalar");
        let best = Kernels::for_caps(all).name();
        assert_eq!(Kernels::from_name("", all).name(), best);
        assert_eq!(Kernels::from_name("BEST", all).name(), best);
        for name in [
            "avx2",
            "avx2_fma",
            "avx512_vnni",
            "avx512_amx",
            "neon",
            "neon_dotprod",
        ] {
            // The path, or (where the CPU lacks it) one of its bases.
            let got = Kernels::from_name(name, all).name();
            let mut chain = PATHS.iter().find(|p| p.name.starts_with(name)).copied();
            let mut ok = got == "scalar";
            while let Some(p) = chain {
                ok |= p.name == got;
                chain = p.base;
            }
            assert!(ok, "{name} -> {got}");
            assert_eq!(Kernels::from_name(name, Caps::scalar()).name(), "scalar");
        }
        #[cfg(target_arch = "aarch64")]
        assert_eq!(Kernels::from_name("neon", all).name(), "neon");
        #[cfg(target_arch = "aarch64")]
        assert_eq!(Kernels::from_name("avx2", all).name(), "scalar");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(Kernels::from_name("neon", all).name(), "scalar");
    }
}
