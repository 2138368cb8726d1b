//! `edgedetr bench`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use edgedetr::graph::Stage;
use edgedetr::{Model, Session};

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
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

pub fn run(a: Args) -> Result<(), String> {
    if a.iters == 0 {
        return Err("--iters must be at least 1".into());
    }
    let bytes = crate::load_model(&a.model)?;
    let model = Model::from_bytes(&bytes).map_err(|e| e.to_string())?;
    let mut arena = edgedetr::std_io::alloc_arena(&model).map_err(|e| e.to_string())?;
    let mut session = Session::new(&model, &mut arena).map_err(|e| e.to_string())?;
    let kernels = session.kernels().name();
    // A deterministic mid-grey-ish input (u8 pixels: f32 and int8 models alike).
    let pixels: Vec<u8> = (0..3 * model.input_size() * model.input_size())
        .map(|i| ((i * 2654435761) % 255) as u8)
        .collect();
    session.set_input_u8(&pixels).map_err(|e| e.to_string())?;
    let stages = [Stage::Backbone, Stage::Neck, Stage::Decoder, Stage::Post];
    let n = model.op_count();
    let mut per_stage: Vec<Vec<f64>> = vec![Vec::new(); stages.len()];
    let mut total = Vec::new();
    for it in 0..a.warmup + a.iters {
        let mut acc = [0f64; 4];
        let start = Instant::now();
        let mut last = Instant::now();
        session.run_each(0..n, |i| {
            let now = Instant::now();
            if let Some(s) = model.op_stage(i) {
                acc[s as usize] += (now - last).as_secs_f64() * 1e3;
            }
            last = now;
        });
        let t = start.elapsed().as_secs_f64() * 1e3;
        if it >= a.warmup {
            total.push(t);
            for (k, v) in acc.iter().enumerate() {
                per_stage[k].push(*v);
            }
        }
    }
    let med: Vec<f64> = per_stage.iter_mut().map(|v| median(v)).collect();
    let tot = median(&mut total);
    if a.json {
        crate::out!(
            "{{\"model\": {:?}, \"imgsz\": {}, \"threads\": 1, \"kernels\": {:?}, \"iters\": {}, \"ms\": {tot:.3}, \"backbone_ms\": {:.3}, \"neck_ms\": {:.3}, \"decoder_ms\": {:.3}, \"arena_bytes\": {}}}",
            a.model.display().to_string(),
            model.input_size(),
            kernels,
            a.iters,
            med[0],
            med[1],
            med[2] + med[3],
            model.arena_size()
        );
    } else {
        crate::out!(
            "{} at {s}x{s}, 1 thread, kernels {kernels}, median of {} runs:",
            a.model.display(),
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
    }
    Ok(())
}
