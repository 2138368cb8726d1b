//! From the inert pickle tree to tensors: storages, `_rebuild_tensor_v2`
//! layouts and the `nn.Module` walk that reproduces `model.state_dict()`.

use std::collections::BTreeSet;
use std::sync::Arc;

use half::{bf16, f16};

use super::pickle::{Dict, MAX_DEPTH, Value};
use super::zip::Archive;
use crate::error::QuantizeError;
use crate::state_dict::{StateDict, Tensor};

fn err(msg: impl Into<String>) -> QuantizeError {
    QuantizeError::Checkpoint(msg.into())
}

/// Element type of a torch storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// `torch.float16` (`HalfStorage`).
    F16,
    /// `torch.bfloat16` (`BFloat16Storage`).
    BF16,
    /// `torch.float32` (`FloatStorage`).
    F32,
    /// `torch.float64` (`DoubleStorage`).
    F64,
    /// `torch.int64` (`LongStorage`).
    I64,
    /// `torch.int32` (`IntStorage`).
    I32,
    /// `torch.int16` (`ShortStorage`).
    I16,
    /// `torch.int8` (`CharStorage`).
    I8,
    /// `torch.uint8` (`ByteStorage`).
    U8,
    /// `torch.bool` (`BoolStorage`).
    Bool,
}

impl DType {
    /// The dtype of a `torch.<Name>Storage` class.
    pub fn from_storage_class(name: &str) -> Option<DType> {
        Some(match name {
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    /// The dtype named by a `torch.<name>` global (`float16`, `half`, …).
    pub fn from_torch_name(name: &str) -> Option<DType> {
        Some(match name {
            "float16" | "half" => DType::F16,
            "bfloat16" => DType::BF16,
            "float32" | "float" => DType::F32,
            "float64" | "double" => DType::F64,
            "int64" | "long" => DType::I64,
            "int32" | "int" => DType::I32,
            "int16" | "short" => DType::I16,
            "int8" => DType::I8,
            "uint8" => DType::U8,
            "bool" => DType::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    /// Decodes one little-endian element to f32 (`c.len() == self.size()`).
    fn decode(self, c: &[u8]) -> f32 {
        let a = |i: usize| c.get(i).copied().unwrap_or(0);
        match self {
            DType::F16 => f16::from_le_bytes([a(0), a(1)]).to_f32(),
            DType::BF16 => bf16::from_le_bytes([a(0), a(1)]).to_f32(),
            DType::F32 => f32::from_le_bytes([a(0), a(1), a(2), a(3)]),
            DType::F64 => f64::from_le_bytes(std::array::from_fn(a)) as f32,
            DType::I64 => i64::from_le_bytes(std::array::from_fn(a)) as f32,
            DType::I32 => i32::from_le_bytes([a(0), a(1), a(2), a(3)]) as f32,
            DType::I16 => i16::from_le_bytes([a(0), a(1)]) as f32,
            DType::I8 => a(0) as i8 as f32,
            DType::U8 | DType::Bool => f32::from(a(0)),
        }
    }
}

/// A storage persistent id: `('storage', torch.HalfStorage, '12', 'cpu', 864)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRef {
    /// Element type (from the storage class).
    pub dtype: DType,
    /// Record name under `<archive>/data/`.
    pub key: String,
    /// Device it was saved from (`cpu`, `cuda:0`).
    pub location: String,
    /// Number of elements.
    pub numel: usize,
}

/// A tensor as `_rebuild_tensor_v2` describes it (no data yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage it views (storages may be shared by several tensors).
    pub storage: Arc<StorageRef>,
    /// Offset of element `[0, …, 0]` in the storage, in elements.
    pub offset: usize,
    /// Size per dimension.
    pub shape: Vec<usize>,
    /// Stride per dimension, in elements.
    pub stride: Vec<usize>,
    /// `requires_grad`.
    pub requires_grad: bool,
    /// Rebuilt through `_rebuild_parameter` (an `nn.Parameter`).
    pub parameter: bool,
}

impl TensorRef {
    /// Number of elements (`None` on overflow).
    pub fn numel(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }
}

/// Reads tensor data from the `data/` records of a checkpoint archive.
///
/// Memory: the total number of elements decoded over the reader's lifetime is
/// limited to twice the archive's size (a plain fp16 checkpoint decodes about
/// half its size in elements), so tensors viewing one storage many times
/// (stride 0, many overlapping views) cannot expand a small file into a huge
/// allocation.
pub struct TensorReader<'z, 'a> {
    archive: &'z Archive<'a>,
    prefix: String,
    budget: usize,
}

impl<'z, 'a> TensorReader<'z, 'a> {
    /// A reader of `<prefix>/data/<key>` records of `archive`, with a budget
    /// of `budget` decoded elements.
    pub fn new(archive: &'z Archive<'a>, prefix: &str, budget: usize) -> Self {
        TensorReader {
            archive,
            prefix: prefix.to_owned(),
            budget,
        }
    }

    /// The raw bytes of a storage, checked to hold `numel` elements.
    pub fn storage_bytes(&self, s: &StorageRef) -> Result<&'a [u8], QuantizeError> {
        let name = format!("{}/data/{}", self.prefix, s.key);
        if self.archive.entry(&name).is_none() {
            return Err(err(format!("storage record `{name}` is missing")));
        }
        let bytes = self.archive.read(&name)?;
        let need = s.numel.checked_mul(s.dtype.size());
        if need.is_none_or(|n| n > bytes.len()) {
            return Err(err(format!(
                "storage `{}` declares {} {:?} elements but its record holds {} bytes",
                s.key,
                s.numel,
                s.dtype,
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Decodes a tensor to f32 in C order. `name` is used in messages.
    pub fn load(&mut self, name: &str, t: &TensorRef) -> Result<Tensor, QuantizeError> {
        let bytes = self.storage_bytes(&t.storage)?;
        let numel = t
            .numel()
            .ok_or_else(|| err(format!("tensor `{name}`: {:?} elements overflow", t.shape)))?;
        if numel > 0 {
            // Largest storage index the view touches.
            let mut last = Some(t.offset);
            for (&d, &s) in t.shape.iter().zip(&t.stride) {
                last = last.and_then(|l| (d - 1).checked_mul(s).and_then(|x| l.checked_add(x)));
            }
            if last.is_none_or(|l| l >= t.storage.numel) {
                return Err(err(format!(
                    "tensor `{name}` (offset {}, size {:?}, stride {:?}) reaches past its storage `{}` of {} elements",
                    t.offset, t.shape, t.stride, t.storage.key, t.storage.numel
                )));
            }
        }
        if numel > self.budget {
            return Err(err(format!(
                "tensor `{name}` has {numel} elements: the checkpoint's tensors add up to more elements than the file can hold (overlapping or broadcast views)"
            )));
        }
        self.budget -= numel;
        let es = t.storage.dtype.size();
        let dt = t.storage.dtype;
        let mut data = Vec::with_capacity(numel);
        if numel > 0 {
            let nd = t.shape.len();
            // Contiguous fast path.
            let mut contiguous = true;
            let mut expect = 1usize;
            for i in (0..nd).rev() {
                if t.shape[i] != 1 && t.stride[i] != expect {
                    contiguous = false;
                }
                expect = expect.saturating_mul(t.shape[i]);
            }
            if contiguous {
                let start = t.offset * es;
                let raw = &bytes[start..start + numel * es];
                data.extend(raw.chunks_exact(es).map(|c| dt.decode(c)));
            } else {
                let mut idx = vec![0usize; nd];
                let mut at = t.offset;
                for _ in 0..numel {
                    data.push(dt.decode(&bytes[at * es..at * es + es]));
                    // Increment the multi-index, last dimension fastest.
                    let mut k = nd;
                    while k > 0 {
                        k -= 1;
                        // Wrapping: past-the-end positions may exceed
                        // usize, the in-range ones are exact (checked above).
                        idx[k] += 1;
                        at = at.wrapping_add(t.stride[k]);
                        if idx[k] < t.shape[k] {
                            break;
                        }
                        at = at.wrapping_sub(t.stride[k].wrapping_mul(t.shape[k]));
                        idx[k] = 0;
                    }
                }
            }
        }
        Ok(Tensor {
            shape: t.shape.clone(),
            data,
        })
    }
}

/// The tensors of an `nn.Module` tree.
#[derive(Debug, Default)]
pub struct ModuleTensors {
    /// Floating parameters and persistent buffers, keyed as `model.state_dict()`.
    pub state_dict: StateDict,
    /// Integer or boolean persistent buffers (`num_batches_tracked`): in
    /// `model.state_dict()`, but not parameters; left out of `state_dict`.
    pub int_buffers: Vec<String>,
    /// Tensors outside the state dict: non-persistent buffers and plain tensor
    /// attributes (`stride`, the decoder's cached `anchors`/`valid_mask`),
    /// keyed the same way (`model.22.anchors`), converted to f32.
    pub attributes: StateDict,
}

/// Walks the module `root` (an object with `_parameters`, `_buffers` and
/// `_modules` in its state) like `nn.Module.state_dict()`: parameters, then
/// persistent buffers, then children, `None` entries skipped.
///
/// Each module visit follows a reference in the pickle, which costs input
/// bytes, but shared submodules are visited once per reference path (as
/// `state_dict()` does), which a hostile pickle could multiply: at most
/// `max_visits` module visits are made (the pickle length is a good bound).
pub fn module_tensors(
    root: &Value,
    reader: &mut TensorReader<'_, '_>,
    max_visits: usize,
) -> Result<ModuleTensors, QuantizeError> {
    let mut out = ModuleTensors::default();
    let mut visits = 0usize;
    walk(root, "", 0, reader, &mut out, &mut visits, max_visits)?;
    Ok(out)
}

fn module_dict<'v>(
    state: &'v Dict,
    field: &str,
    path: &str,
) -> Result<Option<&'v Dict>, QuantizeError> {
    match state.get(field) {
        None | Some(Value::None) => Ok(None),
        Some(Value::Dict(d)) => Ok(Some(d)),
        Some(v) => Err(err(format!(
            "module `{path}`: `{field}` is a {}, not a dict",
            v.kind()
        ))),
    }
}

fn key_str<'v>(k: &'v Value, path: &str, field: &str) -> Result<&'v str, QuantizeError> {
    k.as_str().ok_or_else(|| {
        err(format!(
            "module `{path}`: a `{field}` key is a {}, not a str",
            k.kind()
        ))
    })
}

fn insert_unique(sd: &mut StateDict, key: String, t: Tensor) -> Result<(), QuantizeError> {
    if sd.contains(&key) {
        return Err(err(format!("two tensors named `{key}`")));
    }
    sd.insert(key, t);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn walk(
    module: &Value,
    prefix: &str,
    depth: usize,
    reader: &mut TensorReader<'_, '_>,
    out: &mut ModuleTensors,
    visits: &mut usize,
    cap: usize,
) -> Result<(), QuantizeError> {
    let path = if prefix.is_empty() {
        "<root>"
    } else {
        prefix.trim_end_matches('.')
    };
    *visits += 1;
    if *visits > cap {
        return Err(err(format!(
            "module tree repeats shared modules too often (more than {cap} visits)"
        )));
    }
    if depth > MAX_DEPTH {
        return Err(err(format!("modules nested deeper than {MAX_DEPTH}")));
    }
    let obj = module.as_object().ok_or_else(|| {
        err(format!(
            "`{path}` is a {}, not an nn.Module object",
            module.kind()
        ))
    })?;
    let state = obj.state_dict().ok_or_else(|| {
        err(format!(
            "`{path}` ({}) has no attribute dict; not an nn.Module",
            obj.class
        ))
    })?;
    if state.get("_parameters").is_none() || state.get("_modules").is_none() {
        return Err(err(format!(
            "`{path}` ({}) lacks `_parameters`/`_modules`; not an nn.Module",
            obj.class
        )));
    }
    let mut non_persistent = BTreeSet::new();
    match state.get("_non_persistent_buffers_set") {
        None | Some(Value::None) => {}
        Some(v) => {
            let items = v.as_seq().ok_or_else(|| {
                err(format!(
                    "module `{path}`: `_non_persistent_buffers_set` is a {}",
                    v.kind()
                ))
            })?;
            for i in items {
                non_persistent.insert(key_str(i, path, "_non_persistent_buffers_set")?);
            }
        }
    }
    if let Some(params) = module_dict(state, "_parameters", path)? {
        for (k, v) in params.iter() {
            let k = key_str(k, path, "_parameters")?;
            match v {
                Value::None => {}
                Value::Tensor(t) => {
                    let name = format!("{prefix}{k}");
                    if t.storage.dtype.is_float() {
                        let data = reader.load(&name, t)?;
                        insert_unique(&mut out.state_dict, name, data)?;
                    } else {
                        reader.storage_bytes(&t.storage)?;
                        out.int_buffers.push(name);
                    }
                }
                v => {
                    return Err(err(format!(
                        "parameter `{prefix}{k}` is a {}, not a tensor",
                        v.kind()
                    )));
                }
            }
        }
    }
    if let Some(buffers) = module_dict(state, "_buffers", path)? {
        for (k, v) in buffers.iter() {
            let k = key_str(k, path, "_buffers")?;
            match v {
                Value::None => {}
                Value::Tensor(t) => {
                    let name = format!("{prefix}{k}");
                    if non_persistent.contains(k) {
                        let data = reader.load(&name, t)?;
                        insert_unique(&mut out.attributes, name, data)?;
                    } else if t.storage.dtype.is_float() {
                        let data = reader.load(&name, t)?;
                        insert_unique(&mut out.state_dict, name, data)?;
                    } else {
                        // Checked like any other tensor, but not converted.
                        reader.storage_bytes(&t.storage)?;
                        out.int_buffers.push(name);
                    }
                }
                v => {
                    return Err(err(format!(
                        "buffer `{prefix}{k}` is a {}, not a tensor",
                        v.kind()
                    )));
                }
            }
        }
    }
    // Plain tensor attributes (`self.anchors = torch.empty(0)`).
    for (k, v) in state.iter() {
        if let (Some(k), Value::Tensor(t)) = (k.as_str(), v) {
            let name = format!("{prefix}{k}");
            let data = reader.load(&name, t)?;
            insert_unique(&mut out.attributes, name, data)?;
        }
    }
    if let Some(children) = module_dict(state, "_modules", path)? {
        for (k, v) in children.iter() {
            let k = key_str(k, path, "_modules")?;
            if v.is_none() {
                continue;
            }
            walk(
                v,
                &format!("{prefix}{k}."),
                depth + 1,
                reader,
                out,
                visits,
                cap,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(dtype: DType, numel: usize) -> Arc<StorageRef> {
        Arc::new(StorageRef {
            dtype,
            key: "0".into(),
            location: "cpu".into(),
            numel,
        })
    }

    fn load(bytes: &[u8], t: &TensorRef) -> Result<Tensor, QuantizeError> {
        let z = super::super::zip::write_stored(&[("a/data/0", bytes)]);
        let a = Archive::parse(&z).unwrap();
        let mut r = TensorReader::new(&a, "a", 1 << 20);
        r.load("t", t)
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn strided_views() {
        let vals: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let b = f32_bytes(&vals);
        // The transpose of a 3x4 matrix.
        let t = TensorRef {
            storage: storage(DType::F32, 12),
            offset: 0,
            shape: vec![4, 3],
            stride: vec![1, 4],
            requires_grad: false,
            parameter: false,
        };
        let x = load(&b, &t).unwrap();
        assert_eq!(x.shape, [4, 3]);
        assert_eq!(x.data, [0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.]);
        // A column with an offset, a broadcast (stride 0) and a scalar.
        let col = TensorRef {
            offset: 1,
            shape: vec![3],
            stride: vec![4],
            ..t.clone()
        };
        assert_eq!(load(&b, &col).unwrap().data, [1., 5., 9.]);
        let bc = TensorRef {
            offset: 2,
            shape: vec![2, 3],
            stride: vec![0, 1],
            ..t.clone()
        };
        assert_eq!(load(&b, &bc).unwrap().data, [2., 3., 4., 2., 3., 4.]);
        let sc = TensorRef {
            offset: 11,
            shape: vec![],
            stride: vec![],
            ..t.clone()
        };
        assert_eq!(load(&b, &sc).unwrap().data, [11.]);
        // Contiguous with a size-1 dimension of odd stride.
        let c = TensorRef {
            offset: 4,
            shape: vec![1, 2, 2],
            stride: vec![99, 2, 1],
            ..t.clone()
        };
        assert_eq!(load(&b, &c).unwrap().data, [4., 5., 6., 7.]);
        // Empty tensors touch nothing.
        let e = TensorRef {
            offset: 100,
            shape: vec![0, 5],
            stride: vec![5, 1],
            ..t.clone()
        };
        assert!(load(&b, &e).unwrap().data.is_empty());
    }

    #[test]
    fn dtypes() {
        let h: Vec<u8> = [1.5f32, -2.0, 65504.0]
            .iter()
            .flat_map(|&x| f16::from_f32(x).to_le_bytes())
            .collect();
        let t = TensorRef {
            storage: storage(DType::F16, 3),
            offset: 0,
            shape: vec![3],
            stride: vec![1],
            requires_grad: false,
            parameter: false,
        };
        assert_eq!(load(&h, &t).unwrap().data, [1.5, -2.0, 65504.0]);
        let bf: Vec<u8> = [1.5f32, -2.0, 3.0]
            .iter()
            .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
            .collect();
        let t2 = TensorRef {
            storage: storage(DType::BF16, 3),
            ..t.clone()
        };
        assert_eq!(load(&bf, &t2).unwrap().data, [1.5, -2.0, 3.0]);
        let d: Vec<u8> = [0.25f64, 1e3, -7.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let t3 = TensorRef {
            storage: storage(DType::F64, 3),
            ..t.clone()
        };
        assert_eq!(load(&d, &t3).unwrap().data, [0.25, 1e3, -7.0]);
    }

    #[test]
    fn short_storages_are_errors() {
        let b = f32_bytes(&[0.0; 6]);
        let base = TensorRef {
            storage: storage(DType::F32, 6),
            offset: 0,
            shape: vec![2, 3],
            stride: vec![3, 1],
            requires_grad: false,
            parameter: false,
        };
        assert!(load(&b, &base).is_ok());
        for t in [
            TensorRef {
                offset: 1,
                ..base.clone()
            },
            TensorRef {
                stride: vec![4, 1],
                ..base.clone()
            },
            TensorRef {
                shape: vec![3, 3],
                ..base.clone()
            },
            TensorRef {
                stride: vec![usize::MAX, 1],
                ..base.clone()
            },
            TensorRef {
                shape: vec![usize::MAX, 2],
                stride: vec![0, 0],
                ..base.clone()
            },
            TensorRef {
                offset: usize::MAX,
                ..base.clone()
            },
        ] {
            let e = load(&b, &t).unwrap_err().to_string();
            assert!(e.contains("reaches past") || e.contains("overflow"), "{e}");
        }
        // The storage claims more elements than its record holds.
        let t = TensorRef {
            storage: storage(DType::F32, 7),
            ..base.clone()
        };
        let e = load(&b, &t).unwrap_err().to_string();
        assert!(e.contains("declares 7"), "{e}");
        // A broadcast view larger than the budget.
        let t = TensorRef {
            shape: vec![1 << 40],
            stride: vec![0],
            ..base.clone()
        };
        let e = load(&b, &t).unwrap_err().to_string();
        assert!(e.contains("more elements than the file"), "{e}");
    }
}
