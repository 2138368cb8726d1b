//! A safe reader of ultralytics `best.pt` checkpoints: no Python, nothing
//! executed.
//!
//! A `.pt` file written by `torch.save` (torch ≥ 1.6) is a zip archive
//! ([`zip`]) holding `<name>/data.pkl`, a pickle of the checkpoint dict, and
//! one `<name>/data/<key>` record per tensor storage. The pickle runs on an
//! inert virtual machine ([`pickle`]) that only builds an object tree and only
//! accepts whitelisted globals; [`torch`] turns `_rebuild_tensor_v2` layouts
//! into f32 tensors and walks the `nn.Module` tree into `state_dict()` keys.
//!
//! ```no_run
//! let ckpt = edgedetr_quantizer::pt::read_pt_file("best.pt")?;
//! let nc = ckpt.yaml.as_ref().and_then(|y| y.get("nc")).and_then(|v| v.as_int());
//! println!("{} tensors, {} classes ({nc:?} in the yaml), from `{}`",
//!     ckpt.state_dict.len(), ckpt.names.len(), ckpt.from_key);
//! # Ok::<(), edgedetr_quantizer::QuantizeError>(())
//! ```

pub mod pickle;
pub mod torch;
pub mod zip;

use std::path::Path;

pub use pickle::{Dict, Global, Object, Value, unpickle};
pub use torch::{DType, StorageRef, TensorRef};

use crate::error::QuantizeError;
use crate::state_dict::{StateDict, Tensor};

fn err(msg: impl Into<String>) -> QuantizeError {
    QuantizeError::Checkpoint(msg.into())
}

/// The message for `torch.save(..., _use_new_zipfile_serialization=False)` files.
pub const LEGACY_MESSAGE: &str =
    "legacy torch file format is not supported; re-save with torch >= 1.6";

/// The decoder's cached anchors (plain tensor attributes of `RTDETRDecoder`,
/// not part of the state dict). Ultralytics resets them to empty tensors when
/// saving, so both are usually of shape `[0]`.
#[derive(Clone, Debug)]
pub struct AnchorsCache {
    /// Module path of the decoder (`model.22`).
    pub module: String,
    /// `anchors`.
    pub anchors: Tensor,
    /// `valid_mask`.
    pub valid_mask: Tensor,
}

/// What [`read_pt`] extracts from an ultralytics checkpoint.
#[derive(Clone)]
pub struct Checkpoint {
    /// Floating parameters and persistent buffers, keyed as
    /// `model.state_dict()` (`model.0.conv0.convbn_0.conv.weight`), in f32.
    pub state_dict: StateDict,
    /// Integer persistent buffers left out of `state_dict`
    /// (`…BatchNorm2d.num_batches_tracked`).
    pub int_buffers: Vec<String>,
    /// Tensors that are not in the state dict: non-persistent buffers and
    /// plain tensor attributes (`stride`, `model.22.anchors`), in f32.
    pub attributes: StateDict,
    /// The model's `yaml` attribute (the architecture dict: `nc`,
    /// `backbone`, `head`, …), if present.
    pub yaml: Option<Value>,
    /// Class names in index order (from `model.names`, a `{0: 'person', …}`
    /// dict or a list); empty when the model has none.
    pub names: Vec<String>,
    /// Which checkpoint entry the model came from: `"ema"` or `"model"`.
    pub from_key: &'static str,
    /// The decoder's cached `anchors`/`valid_mask`, when a module has both.
    pub anchors_cache: Option<AnchorsCache>,
    /// The module object itself (class, attributes, submodules).
    pub model: Value,
    /// The whole checkpoint dict (`date`, `version`, `train_args`, …).
    pub root: Value,
}

impl std::fmt::Debug for Checkpoint {
    /// A summary: counts and names, not the tensor data or whole trees.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("from_key", &self.from_key)
            .field("model_class", &self.model.class().map(|g| g.to_string()))
            .field("state_dict_tensors", &self.state_dict.len())
            .field("int_buffers", &self.int_buffers.len())
            .field("attributes", &self.attributes.keys().collect::<Vec<_>>())
            .field("names", &self.names.len())
            .field("has_yaml", &self.yaml.is_some())
            .field(
                "anchors_cache",
                &self.anchors_cache.as_ref().map(|a| &a.module),
            )
            .finish()
    }
}

/// Reads a `.pt` checkpoint file; see [`read_pt`].
pub fn read_pt_file(path: impl AsRef<Path>) -> Result<Checkpoint, QuantizeError> {
    read_pt(&crate::error::read_file(path.as_ref())?)
}

/// The prefix (top folder) of the archive's `*/data.pkl`.
fn archive_prefix(a: &zip::Archive<'_>) -> Result<String, QuantizeError> {
    let mut found = a.entries().iter().filter_map(|e| {
        let (dir, file) = e.name.rsplit_once('/')?;
        (file == "data.pkl" && !dir.is_empty() && !dir.contains('/')).then(|| dir.to_owned())
    });
    let prefix = found
        .next()
        .ok_or_else(|| err("not a torch checkpoint: the zip has no `*/data.pkl` entry"))?;
    if found.next().is_some() {
        return Err(err("the zip has more than one `*/data.pkl` entry"));
    }
    Ok(prefix)
}

/// Whether `bytes` look like a pre-1.6 torch file (a bare pickle stream
/// starting with torch's magic number, or the even older tar layout).
fn is_legacy(bytes: &[u8]) -> bool {
    // pickle of the legacy magic number 0x1950a86a20f9469cfc6c as LONG1.
    const MAGIC: &[u8] = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
    let pickled = bytes.first() == Some(&0x80) && bytes.get(2..2 + MAGIC.len()) == Some(MAGIC);
    let tar = bytes.get(257..262) == Some(b"ustar");
    pickled || tar
}

/// Parses an ultralytics checkpoint (`best.pt`, `last.pt`) from its bytes.
///
/// The model is `ckpt["ema"]` when that is not `None`, else `ckpt["model"]`
/// (what ultralytics' `attempt_load_one_weight` does; a stripped `best.pt`
/// has `ema = None` and the model under `"model"`). Every error is a
/// [`QuantizeError`] with a message; no input panics, executes anything, or
/// allocates more than a small multiple of its own size.
pub fn read_pt(bytes: &[u8]) -> Result<Checkpoint, QuantizeError> {
    if bytes.get(..4) != Some(&zip::ZIP_MAGIC[..]) {
        if is_legacy(bytes) {
            return Err(err(LEGACY_MESSAGE));
        }
        return Err(err(format!(
            "not a torch zip checkpoint: the file starts with {:02x?}, not `PK\\x03\\x04`",
            &bytes[..bytes.len().min(4)]
        )));
    }
    let archive = zip::Archive::parse(bytes)?;
    let prefix = archive_prefix(&archive)?;
    if let Some(e) = archive.entry(&format!("{prefix}/byteorder")) {
        let order = archive.read(&e.name)?;
        if order != b"little" {
            return Err(QuantizeError::Unsupported(format!(
                "checkpoint byte order `{}`; only little-endian files are read",
                String::from_utf8_lossy(order)
            )));
        }
    }
    let pkl = archive.read(&format!("{prefix}/data.pkl"))?;
    let root = unpickle(pkl)?;
    let ckpt = root.as_dict().ok_or_else(|| {
        err(format!(
            "the checkpoint is a {}, not an ultralytics checkpoint dict",
            root.kind()
        ))
    })?;
    let (from_key, model) = match (ckpt.get("ema"), ckpt.get("model")) {
        (Some(m), _) if !m.is_none() => ("ema", m.clone()),
        (_, Some(m)) if !m.is_none() => ("model", m.clone()),
        _ => {
            return Err(err(
                "the checkpoint dict has neither `ema` nor `model` (or both are None)",
            ));
        }
    };
    let mut reader = torch::TensorReader::new(&archive, &prefix, bytes.len().saturating_mul(2));
    let tensors = torch::module_tensors(&model, &mut reader, pkl.len() + 4096)?;
    let yaml = model.get("yaml").filter(|v| !v.is_none()).cloned();
    let names = match model.get("names") {
        None | Some(Value::None) => Vec::new(),
        Some(v) => names_of(v)?,
    };
    let anchors_cache = anchors_cache(&tensors.attributes);
    Ok(Checkpoint {
        state_dict: tensors.state_dict,
        int_buffers: tensors.int_buffers,
        attributes: tensors.attributes,
        yaml,
        names,
        from_key,
        anchors_cache,
        model,
        root,
    })
}

/// `model.names`: a `{index: name}` dict with keys `0..n`, or a list.
fn names_of(v: &Value) -> Result<Vec<String>, QuantizeError> {
    let bad = |what: String| err(format!("model.names: {what}"));
    match v {
        Value::Dict(d) => {
            let mut pairs = Vec::with_capacity(d.len());
            for (k, n) in d.iter() {
                let i = k
                    .as_int()
                    .ok_or_else(|| bad(format!("key {k:?} is not an int")))?;
                let n = n
                    .as_str()
                    .ok_or_else(|| bad(format!("name of class {i} is a {}", n.kind())))?;
                pairs.push((i, n.to_owned()));
            }
            pairs.sort_by_key(|p| p.0);
            for (want, (i, _)) in pairs.iter().enumerate() {
                if *i != want as i64 {
                    return Err(bad(format!(
                        "class indices are not 0..{}: {i} at position {want}",
                        pairs.len()
                    )));
                }
            }
            Ok(pairs.into_iter().map(|p| p.1).collect())
        }
        Value::List(items) | Value::Tuple(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("name of class {i} is a {}", n.kind())))
            })
            .collect(),
        v => Err(bad(format!("a {}, not a dict or list", v.kind()))),
    }
}

/// The first module (in key order) with both `anchors` and `valid_mask`.
fn anchors_cache(attrs: &StateDict) -> Option<AnchorsCache> {
    attrs.keys().find_map(|k| {
        let module = k.strip_suffix("anchors")?;
        let module = if module.is_empty() {
            ""
        } else {
            module.strip_suffix('.')?
        };
        let dot = if module.is_empty() { "" } else { "." };
        let mask = attrs.get(&format!("{module}{dot}valid_mask")).ok()?;
        Some(AnchorsCache {
            module: module.to_owned(),
            anchors: attrs.get(k).ok()?.clone(),
            valid_mask: mask.clone(),
        })
    })
}
