//! `edgedetr quantize`: a checkpoint (`.pt` from ultralytics training, or a
//! `.safetensors` state dict) into a model file, in fp32, fp16 or the mixed
//! int8 recipe (calibrated on a folder of images), with a per-layer report.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use edgedetr_cli::calib_images::ImageFolder;
use edgedetr_quantizer::arch::{Arch, check_arch, node_from_pickle, parse_yaml};
use edgedetr_quantizer::calib::RangeMethod;
use edgedetr_quantizer::report::{LayerRow, layer_report};
use edgedetr_quantizer::{Int8Options, Options, Precision, StateDict, WeightRounding};

/// Numeric precision of the model file.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PrecisionArg {
    /// f32 weights and activations.
    Fp32,
    /// fp16 weights, f32 activations and arithmetic.
    Fp16,
    /// The mixed int8 recipe (needs --calib).
    Int8,
}

/// Arguments of `quantize`.
#[derive(Parser, Debug)]
pub struct Args {
    /// Checkpoint: ultralytics `best.pt`, or a `.safetensors` state dict.
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
    /// Folder of calibration images (JPEG/PNG) for int8. Never the evaluation images.
    #[arg(long)]
    pub calib: Option<PathBuf>,
    /// Use at most this many calibration images.
    #[arg(long)]
    pub calib_count: Option<usize>,
    /// Activation range method: mse (default), minmax, percentile[:p].
    #[arg(long, default_value = "mse")]
    pub range_method: String,
    /// int8 weight rounding: gptq (default; compensates rounding errors over the
    /// calibration images' inputs) or nearest.
    #[arg(long, default_value = "gptq")]
    pub weight_rounding: String,
    /// Op-name prefixes to keep in float, comma-separated (e.g. model.0.conv0,model.9.).
    #[arg(long, value_delimiter = ',')]
    pub keep_float: Vec<String>,
    /// Write the per-layer report as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Calibration images over which the report's local SQNR is measured.
    #[arg(long, default_value_t = 2)]
    pub report_images: usize,
    /// Class names, one per line (default: the checkpoint's, else class0, class1, ...).
    #[arg(long)]
    pub names: Option<PathBuf>,
    /// Model YAML (ultralytics format) describing the architecture of a
    /// `.safetensors` checkpoint (default: the seed's rtdetr-mnv4-bifpn.yaml;
    /// a `.pt` carries its own).
    #[arg(long)]
    pub cfg: Option<PathBuf>,
}

/// A checkpoint's weights, class names (if it carries them) and declared architecture.
type Checkpoint = (StateDict, Option<Vec<String>>, Option<Arch>);

/// Reads a `.pt` or `.safetensors` checkpoint.
fn read_checkpoint(path: &Path) -> Result<Checkpoint, String> {
    let ctx = |e: edgedetr_quantizer::QuantizeError| format!("{}: {e}", path.display());
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "safetensors" => Ok((StateDict::read_safetensors(path).map_err(ctx)?, None, None)),
        "pt" | "pth" => {
            let ck = edgedetr_quantizer::pt::read_pt_file(path).map_err(ctx)?;
            let arch = match &ck.yaml {
                Some(y) => Some(check_arch(&node_from_pickle(y)).map_err(ctx)?),
                None => None,
            };
            let names = (!ck.names.is_empty()).then_some(ck.names);
            Ok((ck.state_dict, names, arch))
        }
        _ => Err(format!(
            "{}: unsupported checkpoint type (expected an ultralytics .pt or a .safetensors file)",
            path.display()
        )),
    }
}

fn print_report(rows: &[LayerRow]) -> Result<(), String> {
    crate::out!(
        "  {:<44} {:<13} {:>12} {:>9}",
        "layer",
        "precision",
        "weight B",
        "SQNR dB"
    );
    for r in rows {
        let sq = r.sqnr_db.map_or("-".to_string(), |d| format!("{d:.1}"));
        crate::out!(
            "  {:<44} {:<13} {:>12} {:>9}",
            r.name,
            r.precision,
            r.weight_bytes,
            sq
        );
    }
    Ok(())
}

fn report_json(rows: &[LayerRow], model_bytes: usize) -> String {
    let layers: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::json!({"layer": r.name, "precision": r.precision, "weight_bytes": r.weight_bytes, "sqnr_db": r.sqnr_db}))
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({"model_bytes": model_bytes, "layers": layers}))
        .unwrap_or_default()
}

pub fn run(a: Args) -> Result<(), String> {
    let (sd, ck_names, ck_arch) = read_checkpoint(&a.checkpoint)?;
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
        None => ck_names,
    };
    let arch = match &a.cfg {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let yaml = parse_yaml(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            Some(check_arch(&yaml).map_err(|e| format!("{}: {e}", p.display()))?)
        }
        None => ck_arch,
    };
    let precision = match a.precision {
        PrecisionArg::Fp32 => Precision::Fp32,
        PrecisionArg::Fp16 => Precision::Fp16,
        PrecisionArg::Int8 => Precision::Int8,
    };
    let opts = Options {
        arch,
        imgsz: a.imgsz,
        precision,
        names,
        source: a
            .checkpoint
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let ctx = |e: edgedetr_quantizer::QuantizeError| format!("{}: {e}", a.checkpoint.display());
    let (bytes, weight_bytes, rows) = if let Precision::Int8 = precision {
        let dir = a
            .calib
            .as_ref()
            .ok_or("--precision int8 needs calibration images: --calib DIR")?;
        let method = RangeMethod::parse(&a.range_method).ok_or_else(|| {
            format!(
                "--range-method {}: use mse, minmax or percentile[:p]",
                a.range_method
            )
        })?;
        let rounding = WeightRounding::parse(&a.weight_rounding).ok_or_else(|| {
            format!(
                "--weight-rounding {}: use gptq or nearest",
                a.weight_rounding
            )
        })?;
        let mut src = ImageFolder::open(dir, a.calib_count)?;
        let n = src.paths().len();
        eprintln!(
            "calibrating on {n} images from {} ({} range, {} weight rounding)",
            dir.display(),
            a.range_method,
            a.weight_rounding
        );
        let mut progress = |done: usize, total: usize| {
            let width = 30;
            let filled = done * width / total.max(1);
            eprint!(
                "\r  [{}{}] {done}/{total}",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            let _ = std::io::stderr().flush();
            if done == total {
                eprintln!();
            }
        };
        let q = Int8Options {
            method,
            keep_float: a.keep_float.clone(),
            rounding,
        };
        let b =
            edgedetr_quantizer::build_int8(&sd, &opts, &q, &mut src, &mut progress).map_err(ctx)?;
        eprintln!(
            "measuring local SQNR on {} image(s)",
            a.report_images.min(n)
        );
        let mut rows =
            layer_report(&b.built.bytes, &b.calibration, &mut src, a.report_images).map_err(ctx)?;
        for r in &mut rows {
            if r.precision == "int8" && b.gptq.binary_search(&r.name).is_ok() {
                r.precision = "int8 gptq".into();
            }
        }
        eprintln!(
            "{} int8 convolutions rounded with GPTQ (patches up to {} long; longer ones to nearest)",
            b.gptq.len(),
            edgedetr_quantizer::gptq::MAX_K
        );
        (b.built.bytes, b.built.weight_bytes, Some(rows))
    } else {
        if a.calib.is_some() {
            eprintln!("edgedetr: note: --calib is only used with --precision int8");
        }
        let b = edgedetr_quantizer::build(&sd, &opts).map_err(ctx)?;
        (b.bytes, b.weight_bytes, None)
    };
    std::fs::write(&a.output, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", a.output.display()))?;
    let aligned = edgedetr::std_io::AlignedBytes::from_slice(&bytes);
    let model = edgedetr::Model::from_bytes(&aligned)
        .map_err(|e| format!("internal error: the written model does not load: {e}"))?;
    if let Some(rows) = &rows {
        print_report(rows)?;
        if let Some(p) = &a.report {
            std::fs::write(p, report_json(rows, bytes.len()))
                .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        }
    } else if let Some(p) = &a.report {
        let rows = edgedetr_quantizer::report::static_report(&bytes).map_err(ctx)?;
        std::fs::write(p, report_json(&rows, bytes.len()))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    crate::out!(
        "wrote {} ({} bytes, {} bytes of weights, arena {} bytes, input {}x{}, {} classes)",
        a.output.display(),
        bytes.len(),
        weight_bytes,
        model.arena_size(),
        a.imgsz,
        a.imgsz,
        model.num_classes()
    );
    Ok(())
}
