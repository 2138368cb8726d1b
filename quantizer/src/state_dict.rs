//! A checkpoint's parameters as f32 tensors keyed by their `state_dict` names.

use std::collections::BTreeMap;
use std::path::Path;

use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use crate::error::QuantizeError;

/// One tensor, converted to f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values in C order.
    pub data: Vec<f32>,
}

impl Tensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Parameters and buffers by `state_dict` key (integer buffers such as
/// `num_batches_tracked` are skipped).
#[derive(Clone, Debug, Default)]
pub struct StateDict {
    tensors: BTreeMap<String, Tensor>,
    metadata: BTreeMap<String, String>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts a tensor.
    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) {
        self.tensors.insert(name.into(), t);
    }

    /// Reads a `.safetensors` file.
    pub fn read_safetensors(path: impl AsRef<Path>) -> Result<Self, QuantizeError> {
        Self::from_safetensors(&crate::error::read_file(path.as_ref())?)
    }

    /// Parses `.safetensors` bytes.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self, QuantizeError> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| QuantizeError::Checkpoint(format!("safetensors: {e}")))?;
        let mut sd = StateDict::new();
        if let Ok((_, meta)) = SafeTensors::read_metadata(bytes)
            && let Some(m) = meta.metadata()
        {
            sd.metadata = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        for (name, view) in st.tensors() {
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Dtype::F16 => raw
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => raw
                    .chunks_exact(2)
                    .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                Dtype::F64 => raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                    .collect(),
                _ => continue, // integer buffers (num_batches_tracked) are not parameters
            };
            sd.insert(
                name,
                Tensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(sd)
    }

    /// The tensor `name`.
    pub fn get(&self, name: &str) -> Result<&Tensor, QuantizeError> {
        self.tensors
            .get(name)
            .ok_or_else(|| QuantizeError::MissingTensor(name.into()))
    }

    /// The tensor `name`, checked to have `shape`.
    pub fn get_shaped(&self, name: &str, shape: &[usize]) -> Result<&Tensor, QuantizeError> {
        let t = self.get(name)?;
        if t.shape != shape {
            return Err(QuantizeError::BadShape {
                name: name.into(),
                expected: format!("{shape:?}"),
                found: t.shape.clone(),
            });
        }
        Ok(t)
    }

    /// The file's free-form metadata (safetensors `__metadata__`).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Class names from the metadata entry `names` (a JSON object
    /// `{"0": "person", ...}` as ultralytics exports write it), in index order.
    pub fn metadata_names(&self) -> Option<Vec<String>> {
        let v: serde_json::Value = serde_json::from_str(self.metadata.get("names")?).ok()?;
        let obj = v.as_object()?;
        let mut pairs: Vec<(usize, String)> = obj
            .iter()
            .map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
            .collect::<Option<_>>()?;
        pairs.sort();
        pairs
            .iter()
            .enumerate()
            .all(|(i, (k, _))| i == *k)
            .then(|| pairs.into_iter().map(|(_, n)| n).collect())
    }

    /// Whether `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// All keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}
