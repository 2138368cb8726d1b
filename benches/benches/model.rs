//! Layer and model tiers, on the fp32 model built at 320×320 from the reference
//! checkpoint (`$EDGEDETR_REFERENCE`, or `../shared/reference` beside the
//! workspace), with the best kernels of this CPU (`EDGEDETR_KERNELS` forces a
//! path). Single thread.
//!
//! - `layers_320/<op name>`: one op of the graph at a time (`Session::run_ops`),
//!   for a fixed list of ops that stand for each kind of work: depthwise and 1×1
//!   convolutions of the backbone, AIFI's attention and feed-forward, and the
//!   neck's 1×1 and fused RepConv 3×3 at P3 and P4. Each op's inputs hold the
//!   values a real run gives them (the ops before it run first).
//! - `model_320/whole_graph/<path>`: `Session::run`, every op of the file.
//! - `model_320/backbone/<path>`: the backbone only (ops up to the one writing
//!   `backbone_out4`).
//! - `fp16_320/session_new/<path>` and `fp16_320/frame/<path>`: the fp16
//!   model (f16-stored weights). Its weights are expanded to f32 once, by
//!   `Session::new` (the first figure), so a frame (the second) costs what an
//!   fp32 frame costs, with no weight conversion in it.
//!
//! Without the reference the bench prints where it looked and exits with
//! success: benches are not tests.
//!
//! `cargo bench -p edgedetr-benches --bench model [-- <filter>]`

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod common;
use common::fit;
use criterion::{BenchmarkId, Criterion};
use edgedetr::std_io::AlignedBytes;
use edgedetr::{Model, Session};
use edgedetr_quantizer::{Options, StateDict};

/// Input size of the benched model (the size of the `bus_320` golden run).
const IMGSZ: usize = 320;

/// The layer tier: op names of the model file (`edgedetr inspect` lists them).
/// Logical layer L of SPEC.md is `model.{L-4}` for L >= 5.
const LAYERS: [&str; 8] = [
    // Backbone: depthwise 5×5, 64 channels at 40×40.
    "model.0.layer3.uib_0._start_dw_",
    // Backbone: depthwise 5×5 stride 2, 192 channels, 40×40 → 20×20.
    "model.0.layer3.uib_0._middle_dw",
    // Backbone: the widest 1×1, 960 → 1280 at 10×10.
    "model.0.layer5.convbn_1",
    // AIFI (L6): 8-head attention over 100 tokens, then the 256 → 1024 GELU linear.
    "model.2.attn",
    "model.2.fc1",
    // Neck, RepC3 at P3 (L19): cv1 1×1 and the first fused RepConv 3×3, 40×40.
    "model.15.cv1",
    "model.15.m.0",
    // Neck, RepC3 at P4 (L22): a fused RepConv 3×3 at 20×20.
    "model.18.m.0",
];

/// Runs `f` once and returns how long it took.
fn time_once(mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// The index of the op named `name`.
fn op_named(model: &Model<'_>, name: &str) -> Option<usize> {
    let file = model.file();
    (0..model.op_count()).find(|&i| file.str(file.op(i as u32).name) == name)
}

fn bench_layers(c: &mut Criterion, session: &mut Session<'_, '_>) {
    let model = session.model();
    let kernels = session.kernels().name();
    let mut group = c.benchmark_group(format!("layers_{IMGSZ}"));
    for name in LAYERS {
        let Some(i) = op_named(model, name) else {
            eprintln!("layers_{IMGSZ}: no op named {name} in this model file, skipped");
            continue;
        };
        // Give op i the inputs of a real run; running op i alone writes only its
        // output and scratch, which no input of it shares, so they stay valid.
        session.run_each(0..i, |_| {});
        let once = time_once(|| session.run_each(i..i + 1, |_| {}));
        fit(&mut group, once);
        group.bench_function(BenchmarkId::new(name, kernels), |b| {
            b.iter(|| session.run_each(black_box(i..i + 1), |_| {}))
        });
    }
    group.finish();
}

fn bench_model(c: &mut Criterion, session: &mut Session<'_, '_>) {
    let model = session.model();
    let kernels = session.kernels().name();
    let mut group = c.benchmark_group(format!("model_{IMGSZ}"));

    fit(&mut group, time_once(|| session.run()));
    group.bench_function(BenchmarkId::new("whole_graph", kernels), |b| {
        b.iter(|| {
            session.run();
            black_box(&mut *session);
        })
    });

    match model
        .buffer_id("backbone_out4")
        .and_then(|id| model.producer(id))
    {
        Some(last) => {
            let ops = 0..last + 1;
            fit(
                &mut group,
                time_once(|| session.run_each(ops.clone(), |_| {})),
            );
            group.bench_function(BenchmarkId::new("backbone", kernels), |b| {
                b.iter(|| session.run_each(black_box(ops.clone()), |_| {}))
            });
        }
        None => eprintln!("model_{IMGSZ}: no op writes backbone_out4, backbone skipped"),
    }
    group.finish();
}

/// The fp16 model: `Session::new` (which expands its weights) and a frame.
fn bench_fp16(c: &mut Criterion, bytes: &[u8]) -> Result<(), String> {
    let model = Model::from_bytes(bytes).map_err(|e| e.to_string())?;
    let mut arena = vec![0u8; model.arena_size()];
    let kernels = Session::new(&model, &mut arena)
        .map_err(|e| e.to_string())?
        .kernels()
        .name();
    println!(
        "fp16 model: {} bytes, arena {} bytes of which {} are weights expanded to f32 by Session::new",
        bytes.len(),
        model.arena_size(),
        model.prepared_bytes()
    );
    let mut group = c.benchmark_group(format!("fp16_{IMGSZ}"));
    let new = |a: &mut [u8]| {
        let s = Session::new(&model, black_box(a));
        black_box(s.map(|s| s.arena_used_bytes()).ok());
    };
    fit(&mut group, time_once(|| new(&mut arena)));
    group.bench_function(BenchmarkId::new("session_new", kernels), |b| {
        b.iter(|| new(&mut arena))
    });
    let mut session = Session::new(&model, &mut arena).map_err(|e| e.to_string())?;
    session
        .set_input_f32(&vec![0.5; 3 * IMGSZ * IMGSZ])
        .map_err(|e| e.to_string())?;
    fit(&mut group, time_once(|| session.run()));
    group.bench_function(BenchmarkId::new("frame", kernels), |b| {
        b.iter(|| {
            session.run();
            black_box(&mut session);
        })
    });
    group.finish();
    Ok(())
}

fn main() -> ExitCode {
    let path = match edgedetr_benches::reference_checkpoint() {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("model benches skipped: {msg}");
            return ExitCode::SUCCESS;
        }
    };
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("model benches: {what}: {e}");
        ExitCode::FAILURE
    };
    let t = Instant::now();
    let sd = match StateDict::read_safetensors(&path) {
        Ok(sd) => sd,
        Err(e) => return fail(&format!("cannot read {}", path.display()), &e),
    };
    let opts = Options {
        imgsz: IMGSZ,
        ..Options::default()
    };
    let built = match edgedetr_quantizer::build(&sd, &opts) {
        Ok(b) => b,
        Err(e) => return fail("cannot build the model", &e),
    };
    let fp16 = Options {
        precision: edgedetr_quantizer::Precision::Fp16,
        ..opts
    };
    let built16 = match edgedetr_quantizer::build(&sd, &fp16) {
        Ok(b) => AlignedBytes::from_slice(&b.bytes),
        Err(e) => return fail("cannot build the fp16 model", &e),
    };
    drop(sd);
    let bytes = AlignedBytes::from_slice(&built.bytes);
    drop(built);
    let model = match Model::from_bytes(&bytes) {
        Ok(m) => m,
        Err(e) => return fail("the engine rejects the built model", &e),
    };
    let mut arena = vec![0u8; model.arena_size()];
    let mut session = match Session::new(&model, &mut arena) {
        Ok(s) => s,
        Err(e) => return fail("cannot start a session", &e),
    };
    // A deterministic image-like input in [0, 1).
    for (v, x) in session
        .input_mut()
        .iter_mut()
        .zip(edgedetr_benches::values(3 * IMGSZ * IMGSZ, 9))
    {
        *v = 0.5 * (x + 1.0);
    }
    println!(
        "model tier: fp32 {IMGSZ}x{IMGSZ} from {} ({} ops, {} bytes, arena {} bytes), \
         built in {:.1} s; kernels {}, single thread",
        path.display(),
        model.op_count(),
        bytes.len(),
        model.arena_size(),
        t.elapsed().as_secs_f64(),
        session.kernels().name()
    );

    let mut c = Criterion::default().configure_from_args();
    bench_layers(&mut c, &mut session);
    bench_model(&mut c, &mut session);
    if let Err(e) = bench_fp16(&mut c, &built16) {
        return fail("fp16 model", &e);
    }
    c.final_summary();
    ExitCode::SUCCESS
}
