//! The edgedetr quantizer: turns a trained RT-DETR checkpoint into one model
//! file. It reads the checkpoint (`.safetensors` now), folds every BatchNorm
//! into its convolution, fuses RepConv branches, builds the static graph in
//! logical-layer order, plans the arena and writes the file.
#![deny(missing_docs)]

pub mod arch;
pub mod builder;
pub mod calib;
pub mod check;
pub mod decoder;
pub mod error;
pub mod fold;
pub mod fuzzing;
pub mod gptq;
mod names;
pub mod progress;
pub mod pt;
pub mod recipe;
pub mod report;
pub mod rtdetr;
pub mod state_dict;

use edgedetr_format::{Meta, PREPROCESS_RGB, PREPROCESS_SCALE_255, PREPROCESS_STRETCH};

pub use error::QuantizeError;
pub use progress::{Event, Phase, Progress};
pub use state_dict::{StateDict, Tensor};

/// Numeric precision of the model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Every weight and activation in f32.
    Fp32,
    /// Every weight stored in fp16; activations and arithmetic in f32.
    Fp16,
    /// The mixed int8 recipe ([`recipe`]); needs calibration images.
    Int8,
}

/// What to build.
#[derive(Clone, Debug)]
pub struct Options {
    /// Square input size: a multiple of 32 in [`INPUT_SIZES`].
    pub imgsz: usize,
    /// Precision.
    pub precision: Precision,
    /// Class names; `None` takes them from the checkpoint (safetensors metadata
    /// `names`), else names them `class0`, `class1`, … (count from the score head).
    pub names: Option<Vec<String>>,
    /// Free text recorded in the file (source checkpoint).
    pub source: String,
    /// The architecture the checkpoint declares (its own YAML, or `--cfg`);
    /// `None` assumes the seed's `rtdetr-mnv4-bifpn.yaml`.
    pub arch: Option<arch::Arch>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            imgsz: 640,
            precision: Precision::Fp32,
            names: None,
            source: String::new(),
            arch: None,
        }
    }
}

/// Square input sizes the quantizer builds: multiples of 32 (the backbone's
/// stride) in this range. At 2048 the fp32 arena is already 0.5 GB and a
/// frame takes seconds; larger sizes outgrow the boards this engine targets.
pub const INPUT_SIZES: core::ops::RangeInclusive<usize> = 64..=2048;

/// Checks an input size against [`INPUT_SIZES`].
///
/// # Errors
/// [`QuantizeError::Option`] naming the size and the allowed ones.
pub fn check_input_size(s: usize) -> Result<(), QuantizeError> {
    if INPUT_SIZES.contains(&s) && s.is_multiple_of(32) {
        return Ok(());
    }
    Err(QuantizeError::Option(format!(
        "input size {s}: use a multiple of 32 from {} to {}",
        INPUT_SIZES.start(),
        INPUT_SIZES.end()
    )))
}

/// Summary of a built model.
#[derive(Clone, Debug)]
pub struct Built {
    /// The model file bytes.
    pub bytes: Vec<u8>,
    /// Bytes of constant data.
    pub weight_bytes: usize,
}

/// Number of classes of a checkpoint (rows of the decoder's encoder score head).
pub fn class_count(sd: &StateDict) -> Result<usize, QuantizeError> {
    Ok(sd.get("model.22.enc_score_head.weight")?.shape[0])
}

/// Builds the model file (backbone, AIFI, neck, decoder and postprocess) from a state dict.
pub fn build(sd: &StateDict, opts: &Options) -> Result<Built, QuantizeError> {
    let weights = match opts.precision {
        Precision::Fp32 => recipe::WeightPolicy::Fp32,
        Precision::Fp16 => recipe::WeightPolicy::Fp16,
        Precision::Int8 => {
            return Err(QuantizeError::Unsupported(
                "int8 needs calibration images: use build_int8 (edgedetr quantize --calib DIR)"
                    .into(),
            ));
        }
    };
    build_with(
        sd,
        opts,
        recipe::Recipe {
            weights,
            ..recipe::Recipe::default()
        },
    )
}

/// Settings of the int8 recipe.
#[derive(Clone, Debug)]
pub struct Int8Options {
    /// How activation ranges are chosen from the calibration statistics.
    pub method: calib::RangeMethod,
    /// Op-name prefixes kept in float (`--keep-float`).
    pub keep_float: Vec<String>,
    /// How int8 convolution weights are rounded.
    pub rounding: WeightRounding,
}

impl Default for Int8Options {
    fn default() -> Self {
        Int8Options {
            method: calib::RangeMethod::Mse,
            keep_float: Vec::new(),
            rounding: WeightRounding::Gptq,
        }
    }
}

/// How the weights of int8 convolutions are rounded to their int8 levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightRounding {
    /// Each weight to its nearest level.
    Nearest,
    /// GPTQ ([`gptq`]): in order, compensating each rounding error with the
    /// weights not yet rounded, so that the output error over the
    /// calibration images is least (patches up to [`gptq::MAX_K`] long;
    /// longer ones round to nearest).
    Gptq,
}

impl WeightRounding {
    /// Parses `nearest` or `gptq`.
    pub fn parse(s: &str) -> Option<WeightRounding> {
        match s {
            "nearest" => Some(WeightRounding::Nearest),
            "gptq" => Some(WeightRounding::Gptq),
            _ => None,
        }
    }
}

/// What [`build_int8`] produces.
#[derive(Clone, Debug)]
pub struct Int8Build {
    /// The int8 model.
    pub built: Built,
    /// The activation ranges it used, by op name.
    pub ranges: recipe::Ranges,
    /// The fp32 calibration graph (SiLU split out), the reference of the report.
    pub calibration: Vec<u8>,
    /// The int8 convolutions whose weights GPTQ rounded, sorted.
    pub gptq: Vec<String>,
    /// The calibration images that were read and used (indices into the
    /// source; unreadable ones were skipped).
    pub images: Vec<usize>,
}

/// Builds the mixed int8 model: calibrates the fp32 graph over `src` (one
/// image at a time), chooses ranges, and builds the int8 recipe.
///
/// `progress` hears each phase ([`Phase::Ranges`], [`Phase::Statistics`],
/// [`Phase::Rounding`]) step by step, and every calibration image that is
/// skipped because it cannot be read ([`calib::collect`]).
///
/// # Errors
/// A checkpoint the architecture does not fit, a `keep_float` prefix that
/// names no layer ([`QuantizeError::Option`], with the closest names), or too
/// few readable calibration images ([`QuantizeError::Calibration`]).
pub fn build_int8(
    sd: &StateDict,
    opts: &Options,
    q: &Int8Options,
    src: &mut dyn calib::CalibSource,
    progress: &mut Progress<'_>,
) -> Result<Int8Build, QuantizeError> {
    let calibration = build_with(
        sd,
        opts,
        recipe::Recipe {
            split_silu: true,
            ..recipe::Recipe::default()
        },
    )?;
    check_keep_float(&q.keep_float, &calibration.bytes)?;
    let plan = recipe::Recipe {
        int8: true,
        keep_float: q.keep_float.clone(),
        ..recipe::Recipe::default()
    };
    let gptq = q.rounding == WeightRounding::Gptq;
    let cal = calib::collect(
        &calibration.bytes,
        src,
        &|name| gptq && plan.int8_op(name),
        progress,
    )?;
    let mut gptq: Vec<String> = cal.hessians.keys().cloned().collect();
    gptq.sort();
    let ranges = calib::choose_ranges(&cal.stats, q.method);
    let means = calib::channel_means(&cal.stats);

    let built = build_reporting(
        sd,
        opts,
        recipe::Recipe {
            int8: true,
            ranges: ranges.clone(),
            means,
            hessians: cal.hessians,
            keep_float: q.keep_float.clone(),
            weights: recipe::WeightPolicy::Mixed,
            split_silu: false,
        },
        progress,
    )?;
    Ok(Int8Build {
        built,
        ranges,
        calibration: calibration.bytes,
        gptq,
        images: cal.images,
    })
}

/// Checks that every `--keep-float` prefix names at least one op of `model`
/// (the calibration graph, whose op names are the int8 model's).
fn check_keep_float(prefixes: &[String], model: &[u8]) -> Result<(), QuantizeError> {
    if prefixes.is_empty() {
        return Ok(());
    }
    let aligned = edgedetr::std_io::AlignedBytes::from_slice(model);
    let model = edgedetr::Model::from_bytes(&aligned)
        .map_err(|e| QuantizeError::Unsupported(format!("calibration model: {e}")))?;
    let f = model.file();
    let names: Vec<&str> = (0..f.op_count())
        .map(|i| f.str(f.op(i as u32).name))
        .collect();
    for p in prefixes {
        if p.is_empty() || names.iter().any(|n| n.starts_with(p.as_str())) {
            continue;
        }
        let close = names::closest(p, &names, 5);
        return Err(QuantizeError::Option(format!(
            "--keep-float {p}: no layer name starts with it; closest: {}",
            close.join(", ")
        )));
    }
    Ok(())
}

/// Builds the model file with an explicit [`recipe::Recipe`].
pub fn build_with(
    sd: &StateDict,
    opts: &Options,
    recipe: recipe::Recipe,
) -> Result<Built, QuantizeError> {
    build_reporting(sd, opts, recipe, &mut |_| {})
}

/// [`build_with`], reporting GPTQ rounding ([`Phase::Rounding`]) to `progress`.
pub fn build_reporting(
    sd: &StateDict,
    opts: &Options,
    recipe: recipe::Recipe,
    progress: &mut Progress<'_>,
) -> Result<Built, QuantizeError> {
    let s = opts.imgsz;
    check_input_size(s)?;
    let names_given = opts.names.clone().or_else(|| sd.metadata_names());
    let nc = match &names_given {
        Some(n) => n.len(),
        None => class_count(sd)?,
    };
    if nc == 0 {
        return Err(QuantizeError::Unsupported(
            "a model needs at least one class".into(),
        ));
    }
    let names: Vec<String> = match names_given {
        Some(n) => n,
        None => (0..nc).map(|i| format!("class{i}")).collect(),
    };
    let arch = opts.arch.clone().unwrap_or_else(arch::seed_arch);
    let score_rows = class_count(sd)?;
    if let (Some(declared), Some(_)) = (arch.nc, &opts.arch)
        && declared != score_rows
    {
        return Err(QuantizeError::Unsupported(format!(
            "the architecture declares nc = {declared}, but the checkpoint's score head has {score_rows} classes"
        )));
    }
    let layers = decoder::layer_count(sd);
    if layers != arch.decoder_layers {
        return Err(QuantizeError::Unsupported(format!(
            "the architecture declares {} decoder layers, the checkpoint has {layers}",
            arch.decoder_layers
        )));
    }
    let mut g = builder::GraphBuilder::with_recipe(recipe).reporting(progress);
    let input = g.input("input", 3, s, s);
    let bb = rtdetr::backbone(&mut g, sd, input)?;
    let (p, _) = rtdetr::neck(&mut g, sd, bb, arch.aifi_heads)?;
    if p[0].c != arch.hidden {
        return Err(QuantizeError::Unsupported(format!(
            "the architecture declares a decoder width of {}, the checkpoint's neck gives {}",
            arch.hidden, p[0].c
        )));
    }
    let dcfg = arch.decoder;
    let model_nc = decoder::decoder(&mut g, sd, p, &dcfg)?;
    if model_nc != nc {
        return Err(QuantizeError::Unsupported(format!(
            "{} class names given for a checkpoint with {model_nc} classes",
            nc
        )));
    }
    let meta = Meta {
        input_size: s as u32,
        in_channels: 3,
        num_classes: nc as u32,
        preprocess: PREPROCESS_RGB | PREPROCESS_SCALE_255 | PREPROCESS_STRETCH,
        num_queries: dcfg.queries as u32,
        input_buffer: input.id,
        ..Meta::default()
    };
    let weight_bytes = g.tensor_bytes();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let bytes = g.finish(meta, &opts.source, &name_refs);
    Ok(Built {
        bytes,
        weight_bytes,
    })
}
