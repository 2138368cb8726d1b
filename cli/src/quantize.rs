//! `edgedetr quantize`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use edgedetr_quantizer::{Options, Precision, StateDict};

/// Numeric precision of the model file.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PrecisionArg {
    /// f32 weights and activations.
    Fp32,
}

/// Arguments of `quantize`.
#[derive(Parser, Debug)]
pub struct Args {
    /// Checkpoint: a `.safetensors` state dict.
    pub checkpoint: PathBuf,
    /// Output model file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Square input size (a multiple of 32).
    #[arg(long, default_value_t = 640)]
    pub imgsz: usize,
    /// Precision.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32)]
    pub precision: PrecisionArg,
    /// Class names, one per line (default: the checkpoint's, else class0, class1, ...).
    #[arg(long)]
    pub names: Option<PathBuf>,
    /// Model YAML (ultralytics format) describing the architecture of a
    /// `.safetensors` checkpoint (default: the seed's rtdetr-mnv4-bifpn.yaml).
    #[arg(long)]
    pub cfg: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<(), String> {
    let ext = a
        .checkpoint
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    if ext != "safetensors" {
        return Err(format!(
            "{}: unsupported checkpoint type (expected a .safetensors file)",
            a.checkpoint.display()
        ));
    }
    let sd = StateDict::read_safetensors(&a.checkpoint)
        .map_err(|e| format!("{}: {e}", a.checkpoint.display()))?;
    let names = match &a.names {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read names {}: {e}", p.display()))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        ),
        None => None,
    };
    let arch = match &a.cfg {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let yaml = edgedetr_quantizer::arch::parse_yaml(&text)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            Some(
                edgedetr_quantizer::arch::check_arch(&yaml)
                    .map_err(|e| format!("{}: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let opts = Options {
        arch,
        imgsz: a.imgsz,
        precision: match a.precision {
            PrecisionArg::Fp32 => Precision::Fp32,
        },
        names,
        source: a
            .checkpoint
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let built = edgedetr_quantizer::build(&sd, &opts)
        .map_err(|e| format!("{}: {e}", a.checkpoint.display()))?;
    std::fs::write(&a.output, &built.bytes)
        .map_err(|e| format!("cannot write {}: {e}", a.output.display()))?;
    let model =
        edgedetr::Model::from_bytes(&edgedetr::std_io::AlignedBytes::from_slice(&built.bytes))
            .map_err(|e| format!("internal error: the written model does not load: {e}"))?
            .arena_size();
    crate::out!(
        "wrote {} ({} bytes, {} bytes of weights, arena {} bytes, input {}x{})",
        a.output.display(),
        built.bytes.len(),
        built.weight_bytes,
        model,
        a.imgsz,
        a.imgsz
    );
    Ok(())
}
