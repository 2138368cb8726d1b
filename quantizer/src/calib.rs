//! Calibration: run the engine's own fp32 graph over calibration images, one
//! image at a time, collect per-tensor activation statistics (min/max, then a
//! histogram), and choose int8 ranges.
//!
//! Range methods (measured on the reference fixture, see the issue notes):
//! [`RangeMethod::MinMax`] keeps every value; [`RangeMethod::Percentile`]
//! clips the tails at a quantile; [`RangeMethod::Mse`] picks the clipping
//! range that minimises the expected squared quantisation error over the
//! histogram (clipping error outside, uniform rounding error `scale²/12`
//! inside).

use std::collections::HashMap;

use edgedetr::format::DType;
use edgedetr::std_io::AlignedBytes;
use edgedetr::{Model, Session};

use crate::error::QuantizeError;
use crate::gptq::{ConvShape, Hessian};
use crate::progress::{Event, Phase, Progress};
use crate::recipe::Ranges;

/// Histogram bins per tensor.
pub const BINS: usize = 2048;

/// Images for calibration, loaded one at a time.
pub trait CalibSource {
    /// Number of images.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A label for messages (e.g. the file name).
    fn label(&self, i: usize) -> String;
    /// Writes image `i`, preprocessed, as `[3, s, s]` f32 into `out`.
    fn load(&mut self, i: usize, s: usize, out: &mut [f32]) -> Result<(), String>;
}

/// Statistics of one tensor over the calibration set.
#[derive(Clone, Debug)]
pub struct TensorStats {
    /// Smallest value seen.
    pub min: f32,
    /// Largest value seen.
    pub max: f32,
    /// Counts over `BINS` equal bins spanning `[min, max]`.
    pub hist: Vec<u64>,
    /// Per-channel sums (channel-major tensors), for means.
    pub channel_sum: Vec<f64>,
    /// Values summed per channel.
    pub channel_count: u64,
}

impl TensorStats {
    fn new(channels: usize) -> Self {
        TensorStats {
            min: f32::MAX,
            max: f32::MIN,
            hist: vec![0; BINS],
            channel_sum: vec![0.0; channels],
            channel_count: 0,
        }
    }

    /// Mean of each channel over the calibration set.
    pub fn channel_means(&self) -> Vec<f32> {
        let n = self.channel_count.max(1) as f64;
        self.channel_sum.iter().map(|s| (s / n) as f32).collect()
    }

    /// Pass 0: range and per-channel sums of one tensor `[channels, …]`.
    fn observe(&mut self, v: &[f32]) {
        let c = self.channel_sum.len().max(1);
        let per = v.len() / c;
        for (ch, row) in v.chunks(per.max(1)).enumerate().take(c) {
            let mut sum = 0f64;
            for &x in row {
                if x.is_finite() {
                    self.min = self.min.min(x);
                    self.max = self.max.max(x);
                    sum += x as f64;
                }
            }
            if let Some(s) = self.channel_sum.get_mut(ch) {
                *s += sum;
            }
        }
        self.channel_count += per as u64;
    }

    fn bin_width(&self) -> f64 {
        ((self.max as f64 - self.min as f64) / BINS as f64).max(f64::MIN_POSITIVE)
    }
    fn add(&mut self, v: &[f32]) {
        let (lo, w) = (self.min as f64, self.bin_width());
        for &x in v {
            if x.is_finite() {
                let b = ((x as f64 - lo) / w) as usize;
                self.hist[b.min(BINS - 1)] += 1;
            }
        }
    }
}

/// How a tensor's int8 range is chosen from its statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeMethod {
    /// `[min, max]`.
    MinMax,
    /// Quantiles `[1 − p, p]` of the histogram (e.g. 0.9999).
    Percentile(f64),
    /// The clipping range with the least expected squared error.
    Mse,
}

impl RangeMethod {
    /// Parses `minmax`, `percentile`, `percentile:0.999` or `mse`.
    pub fn parse(s: &str) -> Option<RangeMethod> {
        match s {
            "minmax" => Some(RangeMethod::MinMax),
            "mse" => Some(RangeMethod::Mse),
            "percentile" => Some(RangeMethod::Percentile(0.9999)),
            _ => {
                let p: f64 = s.strip_prefix("percentile:")?.parse().ok()?;
                (0.5..1.0)
                    .contains(&p)
                    .then_some(RangeMethod::Percentile(p))
            }
        }
    }
}

/// Collects statistics of every f32 op output of `model_bytes` (an fp32 model
/// built with `split_silu`), keyed by op name. Two passes over the images:
/// ranges, then histograms (see [`collect`] for `progress` and unreadable
/// images).
pub fn collect_stats(
    model_bytes: &[u8],
    src: &mut dyn CalibSource,
    progress: &mut Progress<'_>,
) -> Result<HashMap<String, TensorStats>, QuantizeError> {
    Ok(collect(model_bytes, src, &|_| false, progress)?.stats)
}

/// What [`collect`] gathers.
#[derive(Debug, Default)]
pub struct Calibration {
    /// Statistics of every f32 op output, by op name.
    pub stats: HashMap<String, TensorStats>,
    /// Input second moments of the convolutions chosen for GPTQ rounding, by
    /// op name.
    pub hessians: HashMap<String, Hessian>,
    /// The images of the source that were read and used, in order.
    pub images: Vec<usize>,
}

/// [`collect_stats`], and also the input second moments ([`Hessian`]) of
/// every convolution op named `n` with `hessian_for(n)` and a patch no longer
/// than [`crate::gptq::MAX_K`] (accumulated in the second pass, over the first
/// [`crate::gptq::MAX_IMAGES`] images).
///
/// `progress` gets a [`Phase::Ranges`] then a [`Phase::Statistics`] step after
/// each image. An image that cannot be read is reported as
/// [`Event::Skipped`] and left out of both passes; calibration fails only
/// when fewer than half of the images (or none) can be read.
pub fn collect(
    model_bytes: &[u8],
    src: &mut dyn CalibSource,
    hessian_for: &dyn Fn(&str) -> bool,
    progress: &mut Progress<'_>,
) -> Result<Calibration, QuantizeError> {
    if src.is_empty() {
        return Err(QuantizeError::Calibration("no calibration images".into()));
    }
    let aligned = AlignedBytes::from_slice(model_bytes);
    let model = Model::from_bytes(&aligned)
        .map_err(|e| QuantizeError::Unsupported(format!("calibration model: {e}")))?;
    let f = model.file();
    let s = model.input_size();
    let mut arena = edgedetr::std_io::alloc_arena(&model)
        .map_err(|e| QuantizeError::Unsupported(e.to_string()))?;
    let mut session =
        Session::new(&model, &mut arena).map_err(|e| QuantizeError::Unsupported(e.to_string()))?;
    let n = src.len();
    let mut stats: HashMap<String, TensorStats> = HashMap::new();
    let mut hessians: HashMap<String, Hessian> = HashMap::new();
    let mut images: Vec<usize> = (0..n).collect();
    let mut failures: Vec<String> = Vec::new();
    for (pass, phase) in [Phase::Ranges, Phase::Statistics].into_iter().enumerate() {
        let mut used = Vec::with_capacity(images.len());
        let total = images.len();
        for (done, &i) in images.iter().enumerate() {
            if let Err(e) = src.load(i, s, session.input_mut()) {
                let image = src.label(i);
                progress(Event::Skipped {
                    image: &image,
                    reason: &e,
                });
                failures.push(format!("{image}: {e}"));
                progress(Event::Step {
                    phase,
                    done: done + 1,
                    total,
                });
                continue;
            }
            used.push(i);
            // The image input, then every f32 op output, by op name.
            let input = f.meta().input_buffer;
            let record =
                |stats: &mut HashMap<String, TensorStats>, name: &str, id: u32, v: &[f32]| {
                    let channels = f.buffer(id).shape[0] as usize;
                    let e = stats
                        .entry(name.to_string())
                        .or_insert_with(|| TensorStats::new(channels));
                    if pass == 0 {
                        e.observe(v);
                    } else {
                        e.add(v);
                    }
                };
            let err = |e: edgedetr::Error| QuantizeError::Unsupported(e.to_string());
            record(
                &mut stats,
                f.str(f.buffer(input).name),
                input,
                session.buffer(input).map_err(err)?,
            );
            for op in 0..model.op_count() {
                let d = f.op(op as u32);
                if pass == 1
                    && used.len() <= crate::gptq::MAX_IMAGES
                    && let Some(shape) = conv_shape(f, &d)
                    && shape.kdim() <= crate::gptq::MAX_K
                    && hessian_for(f.str(d.name))
                {
                    let x = session.buffer(d.inputs[0]).map_err(err)?;
                    hessians
                        .entry(f.str(d.name).to_string())
                        .or_insert_with(|| Hessian::new(&shape))
                        .accumulate(&shape, x);
                }
                session.run_ops(op..op + 1).map_err(err)?;
                if f.buffer(d.outputs[0]).dtype != DType::F32 as u8 {
                    continue;
                }
                record(
                    &mut stats,
                    f.str(d.name),
                    d.outputs[0],
                    session.buffer(d.outputs[0]).map_err(err)?,
                );
            }
            progress(Event::Step {
                phase,
                done: done + 1,
                total,
            });
        }
        if used.is_empty() || used.len() * 2 < n {
            return Err(QuantizeError::Calibration(format!(
                "only {} of {n} calibration images could be read (at least half are needed); first failure: {}",
                used.len(),
                failures.first().map_or("-", String::as_str)
            )));
        }
        images = used;
    }
    Ok(Calibration {
        stats,
        hessians,
        images,
    })
}

/// The input geometry of an f32 convolution op over a map, if `d` is one.
fn conv_shape(
    f: &edgedetr::format::ModelFile<'_>,
    d: &edgedetr::format::OpDesc,
) -> Option<ConvShape> {
    if d.kind != edgedetr::OpKind::Conv2d as u16 {
        return None;
    }
    let x = f.buffer(d.inputs[0]);
    if x.dtype != DType::F32 as u8 || x.rank != 3 || x.flags & edgedetr::format::BUF_TOKENS != 0 {
        return None;
    }
    let p = edgedetr::ops::conv2d::Conv2d::decode(&edgedetr::ops::Fields::of(d)).ok()?;
    let [k, stride, groups] = [p.k, p.stride, p.groups].map(|v| v as usize);
    let (cin, h, w) = (
        x.shape[0] as usize,
        x.shape[1] as usize,
        x.shape[2] as usize,
    );
    (k % 2 == 1 && stride > 0 && groups > 0 && cin % groups == 0).then_some(ConvShape {
        cin,
        h,
        w,
        k,
        stride,
        groups,
    })
}

/// The squared-error cost of quantising the histogram with range `[lo, hi]`.
fn mse_cost(st: &TensorStats, lo: f64, hi: f64) -> f64 {
    let lo = lo.min(0.0);
    let hi = hi.max(0.0);
    let scale = ((hi - lo) / 255.0).max(1e-12);
    let inside = scale * scale / 12.0;
    let w = st.bin_width();
    let mut cost = 0.0;
    for (b, &c) in st.hist.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let v = st.min as f64 + (b as f64 + 0.5) * w;
        let e = if v < lo {
            (v - lo) * (v - lo)
        } else if v > hi {
            (v - hi) * (v - hi)
        } else {
            inside
        };
        cost += c as f64 * e;
    }
    cost
}

/// The range of one tensor by `method`.
pub fn choose_range(st: &TensorStats, method: RangeMethod) -> (f32, f32) {
    if st.min > st.max {
        return (0.0, 0.0);
    }
    match method {
        RangeMethod::MinMax => (st.min, st.max),
        RangeMethod::Percentile(p) => {
            let total: u64 = st.hist.iter().sum();
            let w = st.bin_width();
            let at = |q: f64| -> f32 {
                let target = (q * total as f64) as u64;
                let mut acc = 0;
                for (b, &c) in st.hist.iter().enumerate() {
                    acc += c;
                    if acc > target {
                        return (st.min as f64 + (b as f64 + 1.0) * w) as f32;
                    }
                }
                st.max
            };
            let lo = if st.min >= 0.0 {
                st.min
            } else {
                at(1.0 - p).min(0.0)
            };
            (lo, at(p).max(lo))
        }
        RangeMethod::Mse => {
            let (mn, mx) = (st.min as f64, st.max as f64);
            let mut best = (mse_cost(st, mn, mx), mn, mx);
            for i in 0..=40 {
                let a = 1.0 - i as f64 * 0.02; // 1.0 .. 0.2
                for j in 0..=40 {
                    let b = 1.0 - j as f64 * 0.02;
                    let (lo, hi) = (
                        if mn < 0.0 { mn * a } else { mn },
                        if mx > 0.0 { mx * b } else { mx },
                    );
                    let c = mse_cost(st, lo, hi);
                    if c < best.0 {
                        best = (c, lo, hi);
                    }
                }
                if mn >= 0.0 {
                    // Only the upper end matters; the inner loop covered it.
                    break;
                }
            }
            (best.1 as f32, best.2 as f32)
        }
    }
}

/// Per-channel means of every tensor.
pub fn channel_means(stats: &HashMap<String, TensorStats>) -> HashMap<String, Vec<f32>> {
    stats
        .iter()
        .map(|(k, v)| (k.clone(), v.channel_means()))
        .collect()
}

/// Ranges of every tensor by `method`.
pub fn choose_ranges(stats: &HashMap<String, TensorStats>, method: RangeMethod) -> Ranges {
    stats
        .iter()
        .map(|(k, v)| (k.clone(), choose_range(v, method)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(values: &[f32]) -> TensorStats {
        let mut st = TensorStats::new(1);
        st.observe(values);
        st.add(values);
        st
    }

    #[test]
    fn channel_means() {
        let mut st = TensorStats::new(2);
        st.observe(&[1.0, 3.0, 10.0, 20.0]);
        st.observe(&[1.0, 3.0, 10.0, 20.0]);
        assert_eq!(st.channel_means(), [2.0, 15.0]);
        assert_eq!((st.min, st.max), (1.0, 20.0));
    }

    #[test]
    fn methods_clip_outliers_differently() {
        // 10 000 values in [-1, 1] and one outlier at 50.
        let mut v: Vec<f32> = (0..10_000).map(|i| (i as f32 / 5000.0) - 1.0).collect();
        v.push(50.0);
        let st = stats(&v);
        assert_eq!(choose_range(&st, RangeMethod::MinMax), (-1.0, 50.0));
        let (lo, hi) = choose_range(&st, RangeMethod::Percentile(0.999));
        assert!(hi < 2.0 && lo < -0.9, "{lo} {hi}");
        let (lo, hi) = choose_range(&st, RangeMethod::Mse);
        assert!(hi < 50.0 && lo <= -0.5, "{lo} {hi}");
        assert!(mse_cost(&st, lo as f64, hi as f64) <= mse_cost(&st, -1.0, 50.0));
        assert_eq!(
            RangeMethod::parse("percentile:0.99"),
            Some(RangeMethod::Percentile(0.99))
        );
        assert_eq!(RangeMethod::parse("nope"), None);
    }

    #[test]
    fn non_negative_tensors_keep_zero_as_the_low_end() {
        let v: Vec<f32> = (0..1000).map(|i| i as f32 / 100.0).collect();
        let st = stats(&v);
        for m in [
            RangeMethod::MinMax,
            RangeMethod::Percentile(0.9999),
            RangeMethod::Mse,
        ] {
            assert_eq!(choose_range(&st, m).0, 0.0);
        }
    }
}
