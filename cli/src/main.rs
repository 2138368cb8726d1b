//! `edgedetr`: quantize a checkpoint, run it, inspect and benchmark model files.

/// `println!` that exits quietly when stdout is closed (e.g. piped into `head`)
/// instead of panicking.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let mut o = std::io::stdout().lock();
        if let Err(e) = writeln!(o, $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(format!("cannot write to stdout: {e}"));
        }
    }};
}

mod bench;
mod detect;
mod inspect;
mod macs;
mod quantize;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// RT-DETR inference engine for CPUs.
#[derive(Parser, Debug)]
#[command(name = "edgedetr", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Turn a checkpoint (ultralytics `.pt` or `.safetensors`) into a model file: fp32, fp16 or int8.
    Quantize(quantize::Args),
    /// Detect objects in JPEG/PNG images (or preprocessed `.npy` tensors); save annotated images, dump intermediates.
    Detect(detect::Args),
    /// Show a model file's layers, shapes and sizes.
    Inspect(inspect::Args),
    /// Time the model per stage.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Quantize(a) => quantize::run(a),
        Command::Detect(a) => detect::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Bench(a) => bench::run(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgedetr: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads and validates a model file into aligned memory.
pub(crate) fn load_model(path: &std::path::Path) -> Result<edgedetr::std_io::AlignedBytes, String> {
    let bytes = edgedetr::std_io::AlignedBytes::read(path)
        .map_err(|e| format!("cannot read model {}: {e}", path.display()))?;
    edgedetr::Model::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

/// The thread count of `--threads` (default: every core the system offers).
pub(crate) fn threads(arg: Option<usize>) -> Result<usize, String> {
    match arg {
        Some(0) => Err("--threads must be at least 1".into()),
        Some(n) => Ok(n),
        None => Ok(edgedetr::ThreadPool::available()),
    }
}
