//! Multiply-accumulate counts of ops (what `inspect` lists and `bench
//! --layers` divides by time).

use edgedetr::Model;
use edgedetr::graph::OpKind;

/// Multiply-accumulates of a convolution op (`None` for other ops):
/// output elements × (input channels per group × k²).
pub(crate) fn conv_macs(model: &Model<'_>, op: &edgedetr::format::OpDesc) -> Option<u64> {
    use edgedetr::ops::{codec::Fields, conv2d::Conv2d, conv2d_i8::Conv2dI8};
    let f = model.file();
    let fields = Fields::of(op);
    let (k, groups) = match OpKind::from_u16(op.kind)? {
        OpKind::Conv2d => Conv2d::decode(&fields).map(|p| (p.k, p.groups)).ok()?,
        OpKind::Conv2dI8 => Conv2dI8::decode(&fields).map(|p| (p.k, p.groups)).ok()?,
        _ => return None,
    };
    let cin = u64::from(f.buffer(op.inputs[0]).shape[0]);
    let out = f.buffer(op.outputs[0]);
    let elems: u64 = out.shape[..out.rank as usize]
        .iter()
        .map(|&d| u64::from(d))
        .product();
    Some(elems * (cin / u64::from(groups.max(1))) * u64::from(k) * u64::from(k))
}
