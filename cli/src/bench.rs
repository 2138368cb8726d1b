//! `edgedetr bench`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use edgedetr::graph::{OpKind, Stage};
use edgedetr::{Model, Session, ThreadPool};

/// Arguments of `bench`.
#[derive(Parser, Debug)]
pub struct Args {
    /// Model file.
    pub model: PathBuf,
    /// Timed iterations.
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Untimed warm-up iterations.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also time every op: median ms, share of the frame, GMAC and GMAC/s
    /// of the convolutions (in the JSON as `layers`). With several threads
    /// each op runs on all of them, one op per wake-up of the pool.
    #[arg(long)]
    pub layers: bool,
    /// Threads (default: 1, so that figures compare across machines and
    /// with single-threaded peers; `detect` defaults to every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

pub fn run(a: Args) -> Result<(), String> {
    if a.iters == 0 {
        return Err("--iters must be at least 1".into());
    }
    let threads = crate::threads(Some(a.threads.unwrap_or(1)))?;
    let bytes = crate::load_model(&a.model)?;
    let model = Model::from_bytes(&bytes).map_err(|e| e.to_string())?;
    let mut arena = edgedetr::std_io::alloc_arena(&model).map_err(|e| e.to_string())?;
    let mut session = Session::new(&model, &mut arena).map_err(|e| e.to_string())?;
    let mut pool = ThreadPool::for_session(&session, threads)
        .map_err(|e| format!("cannot start {threads} threads: {e}"))?;
    let kernels = session.kernels().name();
    // A deterministic mid-grey-ish input (u8 pixels: f32 and int8 models alike).
    let pixels: Vec<u8> = (0..3 * model.input_size() * model.input_size())
        .map(|i| ((i * 2654435761) % 255) as u8)
        .collect();
    session.set_input_u8(&pixels).map_err(|e| e.to_string())?;
    let stages = [Stage::Backbone, Stage::Neck, Stage::Decoder, Stage::Post];
    let n = model.op_count();
    let mut per_stage: Vec<Vec<f64>> = vec![Vec::new(); stages.len()];
    let mut per_op: Vec<Vec<f64>> = vec![Vec::with_capacity(a.iters); n];
    let mut total = Vec::new();
    let mut op_ms = vec![0f64; n];
    // What is timed: every op with --layers, else each run of consecutive
    // ops of one stage (the threads meet once per piece either way).
    let mut pieces: Vec<std::ops::Range<usize>> = Vec::new();
    for i in 0..n {
        match pieces.last_mut() {
            Some(p) if !a.layers && model.op_stage(p.start) == model.op_stage(i) => p.end = i + 1,
            _ => pieces.push(i..i + 1),
        }
    }
    for it in 0..a.warmup + a.iters {
        let mut acc = [0f64; 4];
        let start = Instant::now();
        for piece in &pieces {
            let t0 = Instant::now();
            session
                .run_ops_with(piece.clone(), &mut pool)
                .map_err(|e| e.to_string())?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            if let Some(s) = model.op_stage(piece.start) {
                acc[s as usize] += ms;
            }
            op_ms[piece.start] = ms;
        }
        let t = start.elapsed().as_secs_f64() * 1e3;
        if it >= a.warmup {
            total.push(t);
            for (k, v) in acc.iter().enumerate() {
                per_stage[k].push(*v);
            }
            for (v, &ms) in per_op.iter_mut().zip(&op_ms) {
                v.push(ms);
            }
        }
    }
    let med: Vec<f64> = per_stage.iter_mut().map(|v| median(v)).collect();
    let tot = median(&mut total);
    let layers: Vec<Layer> = if a.layers {
        let f = model.file();
        per_op
            .iter_mut()
            .enumerate()
            .map(|(i, v)| {
                let op = f.op(i as u32);
                Layer {
                    index: i,
                    name: f.str(op.name).to_string(),
                    kind: OpKind::from_u16(op.kind).map_or("?", OpKind::name),
                    stage: model.op_stage(i).map_or("?", Stage::name),
                    ms: median(v),
                    macs: crate::macs::conv_macs(&model, &op),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    if a.json {
        crate::out!(
            "{{\"model\": {:?}, \"imgsz\": {}, \"threads\": {threads}, \"kernels\": {:?}, \"iters\": {}, \"ms\": {tot:.3}, \"backbone_ms\": {:.3}, \"neck_ms\": {:.3}, \"decoder_ms\": {:.3}, \"arena_bytes\": {}{}}}",
            a.model.display().to_string(),
            model.input_size(),
            kernels,
            a.iters,
            med[0],
            med[1],
            med[2] + med[3],
            model.arena_size(),
            layers_json(&layers, tot)
        );
    } else {
        crate::out!(
            "{} at {s}x{s}, {threads} thread{}, kernels {kernels}, median of {} runs:",
            a.model.display(),
            if threads == 1 { "" } else { "s" },
            a.iters,
            s = model.input_size()
        );
        for (s, m) in stages.iter().zip(&med) {
            if per_stage[*s as usize].iter().any(|&v| v > 0.0) {
                crate::out!("  {:<9} {m:9.2} ms", s.name());
            }
        }
        crate::out!("  {:<9} {tot:9.2} ms", "total");
        crate::out!("  arena     {} bytes", model.arena_size());
        if !layers.is_empty() {
            print_layers(&layers, tot)?;
        }
    }
    Ok(())
}

/// One op's median time and work.
struct Layer {
    index: usize,
    name: String,
    kind: &'static str,
    stage: &'static str,
    ms: f64,
    macs: Option<u64>,
}

impl Layer {
    /// GMAC per second, for ops whose MACs are counted.
    fn gmacs(&self) -> Option<f64> {
        self.macs
            .filter(|_| self.ms > 0.0)
            .map(|m| m as f64 / 1e9 / (self.ms / 1e3))
    }
}

/// The per-op table, in execution order, and the totals of the convolutions.
fn print_layers(layers: &[Layer], total_ms: f64) -> Result<(), String> {
    crate::out!();
    crate::out!(
        "  {:>4}  {:<9} {:<15} {:<44} {:>9} {:>6} {:>8} {:>8}",
        "#",
        "stage",
        "op",
        "name",
        "ms",
        "share",
        "GMAC",
        "GMAC/s"
    );
    for l in layers {
        crate::out!(
            "  {:>4}  {:<9} {:<15} {:<44} {:>9.3} {:>5.1}% {:>8} {:>8}",
            l.index,
            l.stage,
            l.kind,
            l.name,
            l.ms,
            100.0 * l.ms / total_ms.max(1e-9),
            l.macs
                .map_or("-".into(), |m| format!("{:.3}", m as f64 / 1e9)),
            l.gmacs().map_or("-".into(), |g| format!("{g:.1}"))
        );
    }
    let conv: Vec<&Layer> = layers.iter().filter(|l| l.macs.is_some()).collect();
    let (ms, macs) = conv
        .iter()
        .fold((0.0, 0u64), |(t, m), l| (t + l.ms, m + l.macs.unwrap_or(0)));
    crate::out!(
        "  convolutions: {:.1} ms ({:.0}% of the frame), {:.2} GMAC, {:.1} GMAC/s",
        ms,
        100.0 * ms / total_ms.max(1e-9),
        macs as f64 / 1e9,
        macs as f64 / 1e9 / (ms / 1e3).max(1e-12)
    );
    Ok(())
}

/// `, "layers": [...]` for the JSON line (empty without `--layers`).
fn layers_json(layers: &[Layer], total_ms: f64) -> String {
    if layers.is_empty() {
        return String::new();
    }
    let rows: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "index": l.index,
                "name": l.name,
                "op": l.kind,
                "stage": l.stage,
                "ms": l.ms,
                "share": l.ms / total_ms.max(1e-9),
                "macs": l.macs,
                "gmac_per_s": l.gmacs(),
            })
        })
        .collect();
    format!(", \"layers\": {}", serde_json::Value::Array(rows))
}
