//! Buffers in the layout of the reference goldens (and of `--dump`).

use edgedetr::Session;
use edgedetr::format::{BUF_TOKENS, DType};

/// Buffer `id` shaped like the goldens, as f32 (int8 dequantised, i32
/// converted): feature maps `[1, C, H, W]`, token matrices token-major
/// `[1, T, C]`, index vectors in their stored shape.
pub fn golden_layout(
    session: &Session<'_, '_>,
    id: u32,
) -> Result<(Vec<usize>, Vec<f32>), edgedetr::Error> {
    let desc = session
        .model()
        .buffer(id)
        .ok_or(edgedetr::Error::UnknownBuffer)?;
    let dims: Vec<usize> = desc.shape[..desc.rank as usize]
        .iter()
        .map(|&d| d as usize)
        .collect();
    let mut data = vec![0f32; desc.numel() as usize];
    session.read_f32(id, &mut data)?;
    if desc.dtype == DType::I32 as u8 {
        return Ok((dims, data));
    }
    if desc.flags & BUF_TOKENS != 0 && dims.len() == 2 {
        let (c, t) = (dims[0], dims[1]);
        let mut tr = vec![0f32; c * t];
        for ch in 0..c {
            for tok in 0..t {
                tr[tok * c + ch] = data[ch * t + tok];
            }
        }
        return Ok((vec![1, t, c], tr));
    }
    let mut shape = vec![1usize];
    shape.extend(dims);
    Ok((shape, data))
}
