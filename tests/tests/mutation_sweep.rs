//! An exhaustive companion to `robustness.rs` and the `model_file` fuzzer:
//! every tensor, buffer and op record of a model file, each field set to edge
//! values in turn, the checksum resealed so that validation sees the change.
//! No load may panic, and accepted mutations are run once.
//!
//! The fuzz seeds are swept on every test run (every accepted mutation run).
//! Any model file can be swept by hand (every `EDGEDETR_SWEEP_STRIDE`-th
//! accepted mutation run, default 20):
//!
//! ```sh
//! EDGEDETR_SWEEP_MODEL=m320_int8.edr \
//!   cargo test --release -p edgedetr-tests --test mutation_sweep -- --ignored --nocapture
//! ```
//!
//! On the int8 320 model: 100,655 mutations in 15 minutes. It found
//! `check_op` reading `inputs[0]` of an op without inputs.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use edgedetr::format::{BufferDesc, NONE, OpDesc, Record, SectionEntry, SectionKind, TensorDesc};
use edgedetr::{Model, Session};
use edgedetr_tests::Resealed;

/// A model file being mutated in place.
struct Sweep {
    file: Resealed,
    stride: usize,
    panics: Vec<String>,
}

/// What loading one mutation gave.
#[derive(PartialEq)]
enum Outcome {
    Rejected,
    Accepted,
    Panicked,
}

impl Sweep {
    /// Reseals the checksum, loads, and runs the model when `run` is set.
    fn load(&mut self, run: bool) -> Outcome {
        let bytes = self.file.sealed();
        let r = catch_unwind(AssertUnwindSafe(|| {
            let Ok(m) = Model::from_bytes(bytes) else {
                return Outcome::Rejected;
            };
            if run && m.arena_size() <= 256 << 20 {
                let mut arena = vec![0u8; m.arena_size()];
                if let Ok(mut s) = Session::new(&m, &mut arena) {
                    s.run();
                }
            }
            Outcome::Accepted
        }));
        r.unwrap_or(Outcome::Panicked)
    }

    /// Tries every variant of every record of section `e`; returns the number
    /// of mutations and how many were accepted, per field.
    fn records<R: Record + Copy + core::fmt::Debug>(
        &mut self,
        e: &SectionEntry,
        variants: impl Fn(&R) -> Vec<(&'static str, R)>,
    ) -> (usize, BTreeMap<&'static str, usize>) {
        let (mut tried, mut accepted) = (0, BTreeMap::new());
        let mut n_accepted = 0;
        for i in 0..e.count as usize {
            let orig: R = self.file.record(e, i);
            for (field, m) in variants(&orig) {
                self.file.set_record(e, i, &m);
                tried += 1;
                match self.load(n_accepted % self.stride == 0) {
                    Outcome::Accepted => {
                        n_accepted += 1;
                        *accepted.entry(field).or_default() += 1;
                    }
                    Outcome::Panicked => self.panics.push(format!("record {i}, {field}: {m:?}")),
                    Outcome::Rejected => {}
                }
                self.file.set_record(e, i, &orig);
            }
        }
        (tried, accepted)
    }
}

/// Pushes `(field, record with one field replaced)` for each value that
/// changes it.
macro_rules! vary {
    ($out:ident, $orig:expr, $field:literal, $f:ident $([$k:expr])? ; $values:expr) => {
        for v in $values {
            let mut m = *$orig;
            m.$f $([$k])? = v;
            if m != *$orig {
                $out.push(($field, m));
            }
        }
    };
}

const IDS: [u32; 10] = [0, 1, 2, 3, 7, 64, 0xffff, 0x7fff_ffff, u32::MAX - 1, NONE];

fn op_variants(o: &OpDesc) -> Vec<(&'static str, OpDesc)> {
    let mut v = Vec::new();
    for k in 0..o.tensors.len() {
        vary!(v, o, "tensors", tensors[k]; IDS);
    }
    for k in 0..o.inputs.len() {
        vary!(v, o, "inputs", inputs[k]; IDS);
    }
    for k in 0..o.outputs.len() {
        vary!(v, o, "outputs", outputs[k]; IDS);
    }
    vary!(v, o, "scratch", scratch; IDS);
    for k in 0..o.params.len() {
        vary!(v, o, "params", params[k]; IDS);
    }
    vary!(v, o, "kind", kind; 0..32u16);
    vary!(v, o, "act", act; 0..12u8);
    vary!(v, o, "stage", stage; 0..6u8);
    v
}

/// The fields tensors and buffers share: shape, rank and dtype.
macro_rules! vary_layout {
    ($out:ident, $orig:expr) => {
        for k in 0..$orig.shape.len() {
            vary!($out, $orig, "shape", shape[k]; dims($orig.shape[k]));
        }
        vary!($out, $orig, "rank", rank; 0..6u8);
        vary!($out, $orig, "dtype", dtype; 0..6u8);
    };
}

/// Offsets and sizes: zero, `step`, one `step` either side, and near the top.
fn around(x: u64, step: u64) -> [u64; 5] {
    [
        0,
        step,
        x.wrapping_add(step),
        x.wrapping_sub(step),
        u64::MAX - 63,
    ]
}

fn dims(d: u32) -> [u32; 6] {
    [0, 1, 2, d.wrapping_add(1), d.wrapping_sub(1), u32::MAX]
}

fn buffer_variants(o: &BufferDesc) -> Vec<(&'static str, BufferDesc)> {
    let mut v = Vec::new();
    vary_layout!(v, o);
    vary!(v, o, "flags", flags; [0u8, 1, 2, 4, 8, 0xff]);
    vary!(v, o, "zero_point", zero_point; [0u8, 1, 0x7f, 0x80]);
    let scales = [0.0f32, -1.0, 1e-30, 1e30, f32::INFINITY, f32::NAN];
    vary!(v, o, "scale", scale_bits; scales.map(f32::to_bits));
    vary!(v, o, "first_op", first_op; dims(o.first_op));
    vary!(v, o, "last_op", last_op; dims(o.last_op));
    vary!(v, o, "offset", offset; around(o.offset, 64));
    vary!(v, o, "size", size; around(o.size, 64));
    v
}

fn tensor_variants(o: &TensorDesc) -> Vec<(&'static str, TensorDesc)> {
    let mut v = Vec::new();
    vary_layout!(v, o);
    vary!(v, o, "quant", quant; 0..4u8);
    vary!(v, o, "quant_axis", quant_axis; 0..4u8);
    vary!(v, o, "scale", scale; [0.0f32, -1.0, 1e-30, 1e30, f32::INFINITY]);
    vary!(v, o, "zero_point", zero_point; [0, 1, -1, 127, -128, i32::MAX, i32::MIN]);
    vary!(v, o, "channel_params", channel_params; IDS);
    vary!(v, o, "offset", offset; around(o.offset, 64));
    vary!(v, o, "len", len; around(o.len, 1));
    v
}

/// Sweeps every record of `bytes`; returns the panicking mutations.
fn sweep(bytes: &[u8], stride: usize, what: &str) -> Vec<String> {
    let mut sweep = Sweep {
        file: Resealed::new(bytes),
        stride,
        panics: Vec::new(),
    };
    assert!(
        sweep.load(false) == Outcome::Accepted,
        "{what} does not load as it is"
    );
    for e in sweep.file.sections() {
        let (name, (tried, accepted)) = match e.kind {
            k if k == SectionKind::Tensors as u32 => {
                ("tensors", sweep.records(&e, tensor_variants))
            }
            k if k == SectionKind::Buffers as u32 => {
                ("buffers", sweep.records(&e, buffer_variants))
            }
            k if k == SectionKind::Ops as u32 => ("ops", sweep.records(&e, op_variants)),
            _ => continue,
        };
        eprintln!("{what}: {name}: {tried} mutations; accepted, by field: {accepted:?}");
    }
    sweep.panics
}

fn assert_no_panics(panics: &[String], what: &str) {
    assert!(
        panics.is_empty(),
        "{what}: {} mutations panicked, the first: {:?}",
        panics.len(),
        &panics[..panics.len().min(5)]
    );
}

/// The fuzz seeds (float, int8 and decoder graphs, every op kind between
/// them; `fuzz/seeds/model_file/`), every accepted mutation run: about a
/// second in all.
#[test]
fn seed_models_survive_every_field_mutation() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/model_file");
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= 3,
        "expected the three seed models in {}",
        dir.display()
    );
    for p in seeds {
        let what = p.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&p).unwrap();
        assert_no_panics(&sweep(&bytes, 1, &what), &what);
    }
}

#[test]
#[ignore = "manual: about 14 minutes on a 320 model (see the module docs)"]
fn every_field_of_every_record() {
    let path = std::env::var("EDGEDETR_SWEEP_MODEL")
        .expect("set EDGEDETR_SWEEP_MODEL to a model file (e.g. from `edgedetr quantize`)");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let stride = std::env::var("EDGEDETR_SWEEP_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20usize)
        .max(1);
    assert_no_panics(&sweep(&bytes, stride, &path), &path);
}
