//! `edgedetr quantize`: a checkpoint (`.pt` from ultralytics training, or a
//! `.safetensors` state dict) into a model file, in fp32, fp16 or the mixed
//! int8 recipe (calibrated on a folder of images), with a per-layer report.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use edgedetr_cli::calib_images::ImageFolder;
use edgedetr_quantizer::arch::{Arch, check_arch, node_from_pickle, parse_yaml};
use edgedetr_quantizer::calib::RangeMethod;
use edgedetr_quantizer::check::Agreement;
use edgedetr_quantizer::report::{LayerRow, layer_report};
use edgedetr_quantizer::{
    Event, Int8Options, Options, Precision, QuantizeError, StateDict, WeightRounding,
};

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
    /// Square input size: a multiple of 32 from 64 to 2048.
    #[arg(long, default_value_t = 640)]
    pub imgsz: usize,
    /// Precision.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32)]
    pub precision: PrecisionArg,
    /// Folder of calibration images (JPEG/PNG) for int8. Never the evaluation images.
    #[arg(long)]
    pub calib: Option<PathBuf>,
    /// Use at most this many calibration images (the first, by file name).
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
    /// Print the full per-layer report (default: a summary with the worst layers).
    #[arg(short, long)]
    pub verbose: bool,
    /// Held-out images (never the calibration ones) on which the int8 model's
    /// detections are compared with fp32's (default: up to 8 images of --calib
    /// beyond --calib-count).
    #[arg(long)]
    pub holdout: Option<PathBuf>,
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
    let ctx = blame(path);
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

/// How a quantizer error reads: problems of the checkpoint's content are
/// prefixed with its path; I/O errors already name their file, and
/// calibration and option errors are not the checkpoint's.
fn blame(checkpoint: &Path) -> impl Fn(QuantizeError) -> String + Copy + '_ {
    move |e| match e {
        QuantizeError::Io(_) | QuantizeError::Calibration(_) | QuantizeError::Option(_) => {
            e.to_string()
        }
        _ => format!("{}: {e}", checkpoint.display()),
    }
}

/// Prints quantizer progress on stderr: one updating bar per phase on a
/// terminal, plain lines (every tenth of a phase) otherwise, and a warning
/// for each skipped image.
struct ProgressPrinter {
    tty: bool,
    /// Printed before the first event (so that an option error found before
    /// calibration starts stays the only line).
    header: Option<String>,
}

impl ProgressPrinter {
    fn event(&mut self, e: Event<'_>) {
        let mut err = std::io::stderr().lock();
        if let Some(h) = self.header.take() {
            let _ = writeln!(err, "{h}");
        }
        match e {
            Event::Skipped { image, reason } => {
                if self.tty {
                    let _ = write!(err, "\r\x1b[K");
                }
                let _ = writeln!(err, "edgedetr: warning: skipping {image}: {reason}");
            }
            Event::Step { phase, done, total } => {
                let label = phase.label();
                let unit = phase.unit();
                if self.tty {
                    let width = 30;
                    let filled = done * width / total.max(1);
                    let _ = write!(
                        err,
                        "\r  {label} [{}{}] {done}/{total} {unit}",
                        "#".repeat(filled),
                        " ".repeat(width - filled)
                    );
                    if done == total {
                        let _ = writeln!(err);
                    }
                    let _ = err.flush();
                } else if done == total || done * 10 / total > (done - 1) * 10 / total {
                    let _ = writeln!(err, "  {label}: {done}/{total} {unit}");
                }
            }
        }
    }
}

/// Held-out images the end-to-end check takes from the calibration folder
/// (those beyond `--calib-count`) when `--holdout` is not given.
const HELD_OUT: usize = 8;

/// Score threshold of the end-to-end check (ultralytics' default `conf`).
const CHECK_CONF: f32 = 0.25;

/// The end-to-end check's result, or how to get one.
fn print_agreement(a: Option<&Agreement>) -> Result<(), String> {
    let Some(a) = a else {
        crate::out!(
            "end-to-end check against fp32: no held-out images (pass --holdout DIR, or a \
             --calib-count below the folder's image count)"
        );
        return Ok(());
    };
    let pct = |n: usize, d: usize| {
        if d == 0 {
            100.0
        } else {
            100.0 * n as f64 / d as f64
        }
    };
    crate::out!(
        "end-to-end check against fp32 on {} held-out images (detections scoring over {CHECK_CONF}, and each image's {} best):",
        a.images,
        edgedetr_quantizer::check::TOP_K
    );
    crate::out!(
        "  {}/{} fp32 detections matched by int8 ({:.0}%; same class, IoU >= {}); over {CHECK_CONF}: fp32 {}, int8 {}",
        a.matched,
        a.reference,
        pct(a.matched, a.reference),
        edgedetr_quantizer::check::MATCH_IOU,
        a.reference_confident,
        a.candidate
    );
    crate::out!(
        "  matched boxes: mean IoU {:.3}; score error mean {:.3}, max {:.3}; top-{} agreement {:.0}%",
        a.mean_iou,
        a.mean_score_error,
        a.max_score_error,
        edgedetr_quantizer::check::TOP_K,
        pct(a.top_k_matched, a.top_k)
    );
    Ok(())
}

/// The report's summary: layers and weight bytes per precision, and the
/// int8 layers with the lowest local SQNR.
fn print_summary(rows: &[LayerRow]) -> Result<(), String> {
    let mut mix: Vec<(&str, usize, u64)> = Vec::new();
    for r in rows {
        match mix.iter_mut().find(|m| m.0 == r.precision) {
            Some(m) => {
                m.1 += 1;
                m.2 += r.weight_bytes;
            }
            None => mix.push((&r.precision, 1, r.weight_bytes)),
        }
    }
    crate::out!("precision mix (layers, weight bytes):");
    for (p, n, b) in &mix {
        crate::out!("  {p:<13} {n:>4} layers {b:>12} B");
    }
    let mut worst: Vec<&LayerRow> = rows.iter().filter(|r| r.sqnr_db.is_some()).collect();
    worst.sort_by(|a, b| {
        a.sqnr_db
            .partial_cmp(&b.sqnr_db)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if !worst.is_empty() {
        crate::out!("lowest local SQNR (keep a layer in float with --keep-float NAME):");
        for r in worst.iter().take(5) {
            crate::out!(
                "  {:<44} {:<13} {:>6.1} dB",
                r.name,
                r.precision,
                r.sqnr_db.unwrap_or(0.0)
            );
        }
    }
    crate::out!("(full per-layer table: --verbose; as JSON: --report FILE)");
    Ok(())
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
    if edgedetr_quantizer::check_input_size(a.imgsz).is_err() {
        let r = edgedetr_quantizer::INPUT_SIZES;
        return Err(format!(
            "--imgsz {}: use a multiple of 32 from {} to {}",
            a.imgsz,
            r.start(),
            r.end()
        ));
    }
    if a.calib_count == Some(0) {
        return Err("--calib-count 0: calibration needs at least one image".into());
    }
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
    let ctx = blame(&a.checkpoint);
    let mut agreement = None;
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
        let mut printer = ProgressPrinter {
            tty: std::io::stderr().is_terminal(),
            header: Some(format!(
                "calibrating on {n} images from {} ({} range, {} weight rounding)",
                dir.display(),
                a.range_method,
                a.weight_rounding
            )),
        };
        let mut progress = |e: Event<'_>| printer.event(e);
        let q = Int8Options {
            method,
            keep_float: a.keep_float.clone(),
            rounding,
        };
        let b =
            edgedetr_quantizer::build_int8(&sd, &opts, &q, &mut src, &mut progress).map_err(ctx)?;
        let report_images = &b.images[..a.report_images.min(b.images.len())];
        let mut rows = layer_report(
            &b.built.bytes,
            &b.calibration,
            &mut src,
            report_images,
            &mut progress,
        )
        .map_err(ctx)?;
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
        let held_out = match &a.holdout {
            Some(d) => ImageFolder::open(d, None)?,
            None => ImageFolder::from_paths(
                ImageFolder::list(dir)?
                    .into_iter()
                    .skip(n)
                    .take(HELD_OUT)
                    .collect(),
            ),
        };
        agreement = if held_out.paths().is_empty() {
            None
        } else {
            let images: Vec<usize> = (0..held_out.paths().len()).collect();
            let mut held_out = held_out;
            Some(
                edgedetr_quantizer::check::compare(
                    &b.calibration,
                    &b.built.bytes,
                    &mut held_out,
                    &images,
                    CHECK_CONF,
                    &mut progress,
                )
                .map_err(ctx)?,
            )
        };
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
        if a.verbose {
            print_report(rows)?;
        } else {
            print_summary(rows)?;
        }
        print_agreement(agreement.as_ref())?;
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
