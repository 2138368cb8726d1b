//! The per-layer quantisation report: precision, weight bytes, and **local**
//! SQNR of every int8 op — its int8 output against the fp32 output when both
//! are fed the same fp32 input (quantised with the op's input parameters) —
//! accumulated over calibration images.

use std::collections::HashMap;

use edgedetr::format::{DType, NONE};
use edgedetr::graph::OpKind;
use edgedetr::std_io::{AlignedBytes, alloc_arena};
use edgedetr::{Model, Session};

use crate::calib::CalibSource;
use crate::error::QuantizeError;
use crate::progress::{Event, Phase, Progress};

/// One row of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRow {
    /// Op name.
    pub name: String,
    /// `int8`, `f32`, `f16 weights` or `int8 weights` (the CLI marks int8
    /// convolutions whose weights GPTQ rounded `int8 gptq`).
    pub precision: String,
    /// Bytes of the op's constants (weights, biases, tables).
    pub weight_bytes: u64,
    /// Local SQNR in dB (int8 ops only).
    pub sqnr_db: Option<f64>,
}

fn err(e: impl std::fmt::Display) -> QuantizeError {
    QuantizeError::Unsupported(e.to_string())
}

/// The fp32 buffer (in the calibration model) holding what an int8 buffer
/// approximates.
fn reference_name(model: &Model<'_>, id: u32) -> String {
    let f = model.file();
    let name = model.buffer_name(id).unwrap_or_default().to_string();
    if let Some(src) = name.strip_suffix(".i8") {
        return src.to_string();
    }
    if let Some(op) = model.producer(id) {
        let d = f.op(op as u32);
        let has_lut = edgedetr::ops::conv2d_i8::Conv2dI8::of(&d).is_ok_and(|p| p.lut.is_some());
        if d.kind == OpKind::Conv2dI8 as u16 && has_lut {
            return format!("{}#act", f.str(d.name));
        }
    }
    name
}

/// Builds the report of `model_bytes` (int8 recipe), with local SQNR measured
/// against `calib_bytes` (the fp32 calibration graph) over the `images` of
/// `src` (indices), one [`Phase::Report`] step each.
pub fn layer_report(
    model_bytes: &[u8],
    calib_bytes: &[u8],
    src: &mut dyn CalibSource,
    images: &[usize],
    progress: &mut Progress<'_>,
) -> Result<Vec<LayerRow>, QuantizeError> {
    let qa = AlignedBytes::from_slice(model_bytes);
    let model = Model::from_bytes(&qa).map_err(err)?;
    let fa = AlignedBytes::from_slice(calib_bytes);
    let fmodel = Model::from_bytes(&fa).map_err(err)?;
    let (f, ff) = (model.file(), fmodel.file());
    let mut qarena = alloc_arena(&model).map_err(err)?;
    let mut farena = alloc_arena(&fmodel).map_err(err)?;
    let mut qs = Session::new(&model, &mut qarena).map_err(err)?;
    let mut fs = Session::new(&fmodel, &mut farena).map_err(err)?;
    let mut power: HashMap<u32, (f64, f64)> = HashMap::new();
    let s = model.input_size();
    for (done, &i) in images.iter().enumerate() {
        src.load(i, s, fs.input_mut())
            .map_err(|e| QuantizeError::Calibration(format!("{}: {e}", src.label(i))))?;
        // Every fp32 buffer by name, as the calibration graph computes it.
        let mut reference: HashMap<String, Vec<f32>> = HashMap::new();
        let input = ff.meta().input_buffer;
        reference.insert(
            fmodel.buffer_name(input).unwrap_or_default().into(),
            fs.buffer(input).map_err(err)?.to_vec(),
        );
        for op in 0..fmodel.op_count() {
            fs.run_ops(op..op + 1).map_err(err)?;
            let out = ff.op(op as u32).outputs[0];
            if ff.buffer(out).dtype == DType::F32 as u8 {
                let name = fmodel.buffer_name(out).unwrap_or_default().to_string();
                reference.insert(name, fs.buffer(out).map_err(err)?.to_vec());
            }
        }
        for op in 0..model.op_count() {
            let d = f.op(op as u32);
            if d.kind != OpKind::Conv2dI8 as u16 && d.kind != OpKind::WeightedSumI8 as u16 {
                continue;
            }
            // Feed every input with the quantised fp32 reference.
            let mut fed = true;
            for id in d.input_ids() {
                let (scale, zp) = model.buffer(id).and_then(|b| b.quant()).unwrap_or((1.0, 0));
                let Some(r) = reference.get(&reference_name(&model, id)) else {
                    fed = false;
                    break;
                };
                let mut q = vec![0i8; r.len()];
                qs.kernels().quantize(r, 1.0 / scale, zp, &mut q);
                qs.set_buffer_i8(id, &q).map_err(err)?;
            }
            let out = d.outputs[0];
            let Some(r) = reference.get(&reference_name(&model, out)) else {
                continue;
            };
            if !fed {
                continue;
            }
            qs.run_ops(op..op + 1).map_err(err)?;
            let mut got = vec![0f32; r.len()];
            qs.read_f32(out, &mut got).map_err(err)?;
            let e = power.entry(op as u32).or_default();
            for (&g, &x) in r.iter().zip(&got) {
                e.0 += g as f64 * g as f64;
                e.1 += (x as f64 - g as f64).powi(2);
            }
        }
        progress(Event::Step {
            phase: Phase::Report,
            done: done + 1,
            total: images.len(),
        });
    }
    Ok(rows_of(&model, &power))
}

/// The report without SQNR (fp32/fp16 models).
pub fn static_report(model_bytes: &[u8]) -> Result<Vec<LayerRow>, QuantizeError> {
    let a = AlignedBytes::from_slice(model_bytes);
    let model = Model::from_bytes(&a).map_err(err)?;
    Ok(rows_of(&model, &HashMap::new()))
}

fn rows_of(model: &Model<'_>, power: &HashMap<u32, (f64, f64)>) -> Vec<LayerRow> {
    let f = model.file();
    let mut rows = Vec::new();
    for op in 0..model.op_count() as u32 {
        let d = f.op(op);
        let kind = OpKind::from_u16(d.kind);
        let weight_bytes: u64 = d
            .tensors
            .iter()
            .filter(|&&t| t != NONE)
            .map(|&t| f.tensor(t).len)
            .sum();
        let precision = match kind {
            Some(OpKind::Conv2dI8 | OpKind::WeightedSumI8) => "int8",
            Some(OpKind::Conv2d) => {
                match edgedetr::ops::conv2d::Conv2d::decode(&edgedetr::ops::Fields::of(&d))
                    .map(|p| f.tensor(p.weight.0).dtype)
                    .ok()
                    .and_then(DType::from_u8)
                {
                    Some(DType::F16) => "f16 weights",
                    Some(DType::I8) => "int8 weights",
                    _ => "f32",
                }
            }
            Some(OpKind::Quantize | OpKind::Dequantize) => continue,
            _ if weight_bytes == 0 && f.buffer(d.outputs[0]).dtype == DType::I8 as u8 => "int8",
            _ => "f32",
        };
        let sqnr_db = power
            .get(&op)
            .map(|&(s, n)| 10.0 * (s / n.max(1e-30)).log10());
        rows.push(LayerRow {
            name: f.str(d.name).to_string(),
            precision: precision.into(),
            weight_bytes,
            sqnr_db,
        });
    }
    rows
}
