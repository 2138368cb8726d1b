//! Shared helpers of the integration tests: locating the reference fixtures,
//! building models from them, and comparing tensors with SPEC.md §9's policy.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use edgedetr::std_io::{AlignedBytes, NpyArray, read_npy};
use edgedetr_quantizer::{Options, StateDict};

/// Environment variable naming the reference folder (default `../shared/reference`
/// beside the workspace).
pub const REFERENCE_ENV: &str = "EDGEDETR_REFERENCE";
/// Set to `1` to skip the fixture-based tests explicitly (users without the
/// reference). CI never sets it.
pub const SKIP_ENV: &str = "EDGEDETR_SKIP_REFERENCE";

/// Whether the user asked to skip fixture-based tests; prints why.
pub fn skip_requested(test: &str) -> bool {
    let skip = std::env::var(SKIP_ENV).is_ok_and(|v| v == "1");
    if skip {
        eprintln!("{test}: skipped because {SKIP_ENV}=1");
    }
    skip
}

/// The reference folder; panics with instructions when it is missing.
pub fn reference_dir() -> PathBuf {
    let dir = std::env::var_os(REFERENCE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference"));
    let probe = dir.join("fixtures/main/model.safetensors");
    assert!(
        probe.is_file(),
        "reference fixtures not found at {} (looked for {}).\n\
         Put the edgedetr reference folder (SPEC.md, fixtures/main with model.safetensors and golden/) at \
         ../shared/reference beside the repository, or set {REFERENCE_ENV}=/path/to/reference. \
         The fixtures are regenerated with `python make_reference.py --preset main` in reference/seed. \
         To skip these tests deliberately, set {SKIP_ENV}=1.",
        dir.display(),
        probe.display()
    );
    dir
}

/// `fixtures/main` of the reference.
pub fn fixture_dir() -> PathBuf {
    reference_dir().join("fixtures/main")
}

/// Reads golden `name` of run `run` (e.g. `bus_640`, `layer19_p3`).
pub fn golden(run: &str, name: &str) -> NpyArray {
    let p = fixture_dir()
        .join("golden")
        .join(run)
        .join(format!("{name}.npy"));
    read_npy(&p).unwrap_or_else(|e| panic!("cannot read golden {}: {e}", p.display()))
}

/// The fixture's state dict (read once per test binary).
pub fn state_dict() -> &'static StateDict {
    static SD: OnceLock<StateDict> = OnceLock::new();
    SD.get_or_init(|| {
        let p = fixture_dir().join("model.safetensors");
        StateDict::read_safetensors(&p)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
    })
}

/// The fp32 model file for input size `imgsz`, built once per test binary.
pub fn fp32_model(imgsz: usize) -> &'static AlignedBytes {
    static CACHE: OnceLock<Mutex<Vec<(usize, &'static AlignedBytes)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(_, m)) = c.iter().find(|(s, _)| *s == imgsz) {
        return m;
    }
    let opts = Options {
        imgsz,
        source: "fixtures/main/model.safetensors".into(),
        ..Options::default()
    };
    let built = edgedetr_quantizer::build(state_dict(), &opts)
        .unwrap_or_else(|e| panic!("quantize failed: {e}"));
    let m: &'static AlignedBytes = Box::leak(Box::new(AlignedBytes::from_slice(&built.bytes)));
    c.push((imgsz, m));
    m
}

/// An int8 model of the fixture at `imgsz`, calibrated on the first
/// `images` calibration photos (all of them: `None`) with options `q`.
pub fn build_int8(
    imgsz: usize,
    images: Option<usize>,
    q: &edgedetr_quantizer::Int8Options,
) -> edgedetr_quantizer::Int8Build {
    let mut src =
        edgedetr_cli::calib_images::ImageFolder::open(&reference_dir().join("calib"), images)
            .expect("calibration images");
    let opts = Options {
        imgsz,
        ..Options::default()
    };
    edgedetr_quantizer::build_int8(state_dict(), &opts, q, &mut src, &mut |_| {})
        .expect("int8 build")
}

/// The 320 px int8 model calibrated on four calibration images, built once
/// per test binary.
pub fn int8_320() -> &'static AlignedBytes {
    static M: OnceLock<AlignedBytes> = OnceLock::new();
    M.get_or_init(|| {
        let b = build_int8(320, Some(4), &Default::default());
        AlignedBytes::from_slice(&b.built.bytes)
    })
}

/// The 320 px fp16 model (f16-stored weights), built once per test binary.
pub fn fp16_320() -> &'static AlignedBytes {
    static M: OnceLock<AlignedBytes> = OnceLock::new();
    M.get_or_init(|| {
        let opts = Options {
            imgsz: 320,
            precision: edgedetr_quantizer::Precision::Fp16,
            ..Options::default()
        };
        let b = edgedetr_quantizer::build(state_dict(), &opts).expect("fp16 build");
        AlignedBytes::from_slice(&b.bytes)
    })
}

/// Result of comparing a tensor with its golden.
#[derive(Clone, Debug)]
pub struct Diff {
    /// Largest |engine − golden|.
    pub max_abs: f32,
    /// Largest |golden|.
    pub max_ref: f32,
    /// Elements outside `atol + rtol·|g|`.
    pub violations: usize,
    /// Non-finite entries that differ in finiteness.
    pub nonfinite_mismatch: usize,
    /// First violation `(index, engine, golden)`.
    pub first: Option<(usize, f32, f32)>,
}

/// Compares element-wise with `|e − g| ≤ atol + rtol·|g|`; non-finite golden
/// entries must be identical.
pub fn compare(engine: &[f32], golden: &[f32], atol: f32, rtol: f32) -> Diff {
    assert_eq!(engine.len(), golden.len(), "element counts differ");
    let mut d = Diff {
        max_abs: 0.0,
        max_ref: 0.0,
        violations: 0,
        nonfinite_mismatch: 0,
        first: None,
    };
    for (i, (&e, &g)) in engine.iter().zip(golden).enumerate() {
        if !g.is_finite() || !e.is_finite() {
            if e.to_bits() != g.to_bits() && !(e.is_nan() && g.is_nan()) {
                d.nonfinite_mismatch += 1;
                d.first.get_or_insert((i, e, g));
            }
            continue;
        }
        let err = (e - g).abs();
        d.max_abs = d.max_abs.max(err);
        d.max_ref = d.max_ref.max(g.abs());
        if err > atol + rtol * g.abs() {
            d.violations += 1;
            d.first.get_or_insert((i, e, g));
        }
    }
    d
}

/// Asserts that `engine` matches golden `name` of `run` within the bounds, and
/// prints the measured error.
pub fn assert_close(run: &str, name: &str, engine: &[f32], atol: f32, rtol: f32) -> Diff {
    let g = golden(run, name);
    let d = compare(engine, &g.data, atol, rtol);
    eprintln!(
        "{run}/{name}: max|e-g| = {:.3e} (max|g| = {:.3}), bound {atol:e} + {rtol:e}|g|, violations {}",
        d.max_abs, d.max_ref, d.violations
    );
    assert!(
        d.violations == 0 && d.nonfinite_mismatch == 0,
        "{run}/{name}: {} elements outside |e-g| <= {atol} + {rtol}|g| and {} non-finite mismatches; first at {:?}; max|e-g| = {}",
        d.violations,
        d.nonfinite_mismatch,
        d.first,
        d.max_abs
    );
    d
}

/// Input size of a run name (`bus_320` → 320).
pub fn run_size(run: &str) -> usize {
    run.rsplit('_')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(640)
}

/// Reads buffer `name` of a session in the goldens' layout: token matrices
/// (`BUF_TOKENS`) transposed to token-major, indices as f32.
pub fn engine_tensor(session: &edgedetr::Session<'_, '_>, name: &str) -> Option<Vec<f32>> {
    let id = session.model().buffer_id(name)?;
    edgedetr_cli::golden_layout::golden_layout(session, id)
        .ok()
        .map(|(_, data)| data)
}

/// Transposes token-major `[T, C]` data to channel-major `[C, T]`.
pub fn to_channel_major(data: &[f32], t: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0f32; c * t];
    for tok in 0..t {
        for ch in 0..c {
            out[ch * t + tok] = data[tok * c + ch];
        }
    }
    out
}

/// Whether run `run` has golden `name`.
pub fn has_golden(run: &str, name: &str) -> bool {
    fixture_dir()
        .join("golden")
        .join(run)
        .join(format!("{name}.npy"))
        .is_file()
}

/// The `predict_conf<thr>` golden of a run: `(threshold, file stem)`.
pub fn predict_conf_golden(run: &str) -> (f32, String) {
    let dir = fixture_dir().join("golden").join(run);
    let mut found = None;
    for e in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(thr) = name
            .strip_prefix("predict_conf")
            .and_then(|r| r.strip_suffix(".npy"))
            && let Ok(v) = thr.parse::<f32>()
        {
            found = Some((v, name.trim_end_matches(".npy").to_string()));
        }
    }
    found.unwrap_or_else(|| panic!("no predict_conf<thr>.npy in {}", dir.display()))
}

/// Original `(width, height)` of a run's image, from the manifest.
pub fn original_size(run: &str) -> (usize, usize) {
    let text = std::fs::read_to_string(fixture_dir().join("manifest.json")).expect("manifest.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("manifest.json is JSON");
    let image = if run.starts_with("bus") {
        "images/bus.jpg"
    } else {
        "images/zidane.jpg"
    };
    let files = v["files"].as_array().expect("files");
    let entry = files
        .iter()
        .find(|f| f["file"] == image)
        .expect("image in manifest");
    let wh = entry["size_wh"].as_array().expect("size_wh");
    (
        wh[0].as_u64().unwrap() as usize,
        wh[1].as_u64().unwrap() as usize,
    )
}

/// The id of buffer `name`; panics with the name when the model lacks it.
pub fn id(model: &edgedetr::Model<'_>, name: &str) -> u32 {
    model
        .buffer_id(name)
        .unwrap_or_else(|| panic!("model has no buffer {name}"))
}

/// The index of the op that writes buffer `name`.
pub fn producer(model: &edgedetr::Model<'_>, name: &str) -> usize {
    model
        .producer(id(model, name))
        .unwrap_or_else(|| panic!("no op writes {name}"))
}

/// Finishes a small synthetic graph (one-class, `size`² RGB input `input`)
/// into an aligned model file.
pub fn finish_synthetic(
    g: edgedetr_quantizer::builder::GraphBuilder<'_>,
    size: usize,
    input: u32,
    source: &str,
) -> AlignedBytes {
    let meta = edgedetr::format::Meta {
        input_size: size as u32,
        in_channels: 3,
        num_classes: 1,
        input_buffer: input,
        ..edgedetr::format::Meta::default()
    };
    AlignedBytes::from_slice(&g.finish(meta, source, &["a"]))
}

/// A model file whose records the tests rewrite in place; [`Resealed::sealed`]
/// rewrites the XXH64 checksum so that validation sees the change.
pub struct Resealed {
    raw: AlignedBytes,
}

impl Resealed {
    /// A 64-byte aligned copy of `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        Resealed {
            raw: AlignedBytes::from_slice(bytes),
        }
    }

    /// The section table, in file order.
    pub fn sections(&self) -> Vec<edgedetr::format::SectionEntry> {
        use edgedetr::format::{HEADER_LEN, Header, Record, SECTION_ENTRY_LEN, SectionEntry};
        let header = Header::decode(&self.raw[..HEADER_LEN]);
        (0..header.section_count as usize)
            .map(|i| {
                let at = HEADER_LEN + i * SECTION_ENTRY_LEN;
                SectionEntry::decode(&self.raw[at..at + SECTION_ENTRY_LEN])
            })
            .collect()
    }

    /// The section of `kind`; panics if the file has none.
    pub fn section(&self, kind: edgedetr::format::SectionKind) -> edgedetr::format::SectionEntry {
        self.sections()
            .into_iter()
            .find(|e| e.kind == kind as u32)
            .unwrap_or_else(|| panic!("no {kind:?} section"))
    }

    /// Record `i` of section `e`.
    pub fn record<R: edgedetr::format::Record>(
        &self,
        e: &edgedetr::format::SectionEntry,
        i: usize,
    ) -> R {
        let at = e.offset as usize + i * R::LEN;
        R::decode(&self.raw[at..at + R::LEN])
    }

    /// Replaces record `i` of section `e` (the checksum is left stale).
    pub fn set_record<R: edgedetr::format::Record>(
        &mut self,
        e: &edgedetr::format::SectionEntry,
        i: usize,
        rec: &R,
    ) {
        let at = e.offset as usize + i * R::LEN;
        rec.encode(&mut self.raw.as_mut_slice()[at..at + R::LEN]);
    }

    /// The file with its checksum rewritten over the current bytes.
    pub fn sealed(&mut self) -> &AlignedBytes {
        edgedetr::format::checksum::seal(self.raw.as_mut_slice());
        &self.raw
    }
}

/// Two tests per golden run: `$stage` calls `$ty { run }.stage_fed()` (each
/// stage fed its golden input) and `$chain` calls `.chained()` (end to end),
/// each skipped when [`SKIP_ENV`] asks for it.
#[macro_export]
macro_rules! golden_runs {
    ($ty:ident; $($stage:ident, $chain:ident, $run:literal;)*) => {$(
        #[test]
        fn $stage() {
            if $crate::skip_requested(stringify!($stage)) { return; }
            $ty { run: $run }.stage_fed();
        }
        #[test]
        fn $chain() {
            if $crate::skip_requested(stringify!($chain)) { return; }
            $ty { run: $run }.chained();
        }
    )*};
}

/// The raw bytes of buffer `id` after a run (f32 as their bit patterns, i8
/// and i32 little-endian): what byte-identity tests compare.
pub fn buffer_bytes(s: &edgedetr::Session<'_, '_>, id: u32) -> Vec<u8> {
    use edgedetr::format::DType;
    let d = s.model().buffer(id).unwrap();
    match DType::from_u8(d.dtype).unwrap() {
        DType::F32 => s
            .buffer(id)
            .unwrap()
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect(),
        DType::I8 => s.buffer_i8(id).unwrap().iter().map(|&v| v as u8).collect(),
        DType::I32 => s
            .buffer_i32(id)
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        other => panic!("unexpected buffer dtype {other:?}"),
    }
}
