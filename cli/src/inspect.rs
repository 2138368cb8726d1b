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
    crate::out!("  input        [1, 3, {s}, {s}]", s = m.input_size);
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
        "  {:>4}  {:<9} {:<13} {:<6} {:<36} {:>18}  {}",
        "#",
        "stage",
        "op",
        "dtype",
        "name",
        "output",
        "weights"
    );
    for i in 0..f.op_count() as u32 {
        let op = f.op(i);
        let kind = OpKind::from_u16(op.kind).map(OpKind::name).unwrap_or("?");
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
        let dtype = edgedetr::format::DType::from_u8(out.dtype)
            .map(|d| d.name())
            .unwrap_or("?");
        crate::out!(
            "  {i:>4}  {stage:<9} {kind:<13} {dtype:<6} {:<36} {:>18}  {w}",
            f.str(op.name),
            shape.join("x")
        );
    }
    Ok(())
}
