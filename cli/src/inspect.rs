//! `edgedetr inspect`.

use std::path::PathBuf;

use clap::Parser;
use edgedetr::Model;
use edgedetr::graph::{OpKind, Stage};

/// Arguments of `inspect`.
#[derive(Parser, Debug)]
pub struct Args {
    /// Model file.
    pub model: PathBuf,
}

pub fn run(a: Args) -> Result<(), String> {
    let bytes = crate::load_model(&a.model)?;
    let model = Model::from_bytes(&bytes).map_err(|e| e.to_string())?;
    let f = model.file();
    let m = f.meta();
    crate::out!("{}", a.model.display());
    crate::out!("  file size    {} bytes", bytes.len());
    crate::out!("  format       v{}", f.header().version);
    crate::out!("  source       {}", f.str(m.source));
    let input = match model.input_dtype() {
        edgedetr::InputDType::F32 => "f32 (pixel / 255)",
        edgedetr::InputDType::U8 => "u8 pixels (read directly by the int8 stem)",
        _ => "?",
    };
    crate::out!("  input        [1, 3, {s}, {s}] {input}", s = m.input_size);
    crate::out!("  classes      {}", m.num_classes);
    crate::out!(
        "  arena        {} bytes (plan peak {})",
        model.arena_size(),
        f.arena_size()
    );
    let weight_bytes: u64 = (0..f.tensor_count() as u32).map(|t| f.tensor(t).len).sum();
    crate::out!(
        "  weights      {weight_bytes} bytes in {} tensors",
        f.tensor_count()
    );
    crate::out!("  ops          {}", f.op_count());
    crate::out!();
    crate::out!(
        "  {:>4}  {:<9} {:<13} {:<7} {:<7} {:<36} {:>18} {:>11} {:>10}",
        "#",
        "stage",
        "op",
        "weights",
        "compute",
        "name",
        "output",
        "weight B",
        "MMAC"
    );
    let mut total_macs = 0u64;
    for i in 0..f.op_count() as u32 {
        let op = f.op(i);
        let kind = OpKind::from_u16(op.kind);
        let kind_name = kind.map(OpKind::name).unwrap_or("?");
        let stage = Stage::from_u8(op.stage).map(Stage::name).unwrap_or("?");
        let out = f.buffer(op.outputs[0]);
        let shape: Vec<String> = out.shape[..out.rank as usize]
            .iter()
            .map(u32::to_string)
            .collect();
        let w: u64 = op
            .tensors
            .iter()
            .filter(|&&t| t != edgedetr::format::NONE)
            .map(|&t| f.tensor(t).len)
            .sum();
        let stored = match op.tensors[0] {
            edgedetr::format::NONE => "-",
            t => dtype_name(f.tensor(t).dtype),
        };
        let macs = crate::macs::conv_macs(&model, &op);
        total_macs += macs.unwrap_or(0);
        crate::out!(
            "  {i:>4}  {stage:<9} {kind_name:<13} {stored:<7} {:<7} {:<36} {:>18} {w:>11} {:>10}",
            compute_type(kind, f.buffer(op.inputs[0]).dtype, out.dtype),
            f.str(op.name),
            shape.join("x"),
            macs.map_or("-".into(), |m| format!("{:.1}", m as f64 / 1e6))
        );
    }
    crate::out!(
        "  convolutions: {:.2} GMAC per frame",
        total_macs as f64 / 1e9
    );
    Ok(())
}

/// A dtype byte's name.
fn dtype_name(d: u8) -> &'static str {
    edgedetr::format::DType::from_u8(d).map_or("?", |d| d.name())
}

/// The arithmetic an op does: int8 ops compute in integers, everything else
/// in f32 (fp16- and int8-stored float weights are expanded at load).
fn compute_type(kind: Option<OpKind>, input: u8, output: u8) -> &'static str {
    use edgedetr::format::DType;
    match kind {
        Some(OpKind::Conv2dI8 | OpKind::WeightedSumI8) => "int8",
        Some(OpKind::Quantize) => "f32>i8",
        Some(OpKind::Dequantize) => "i8>f32",
        _ if input == DType::I8 as u8 && output == DType::I8 as u8 => "int8",
        _ => "f32",
    }
}
