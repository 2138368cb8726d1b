//! The end-to-end check of an int8 model against fp32: both run whole on
//! held-out images (never the calibration images), and their detections are
//! matched class by class by IoU.

use edgedetr::std_io::{AlignedBytes, alloc_arena};
use edgedetr::{Detection, Model, PostProcess, Session};

use crate::calib::CalibSource;
use crate::error::QuantizeError;
use crate::progress::{Event, Phase, Progress};

/// Detections of the two models are the same object when their classes agree
/// and their boxes overlap by at least this IoU.
pub const MATCH_IOU: f32 = 0.5;

/// How many of fp32's highest-scoring detections per image
/// [`Agreement::top_k_matched`] counts.
pub const TOP_K: usize = 10;

/// How closely an int8 model's detections follow fp32's.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Agreement {
    /// Held-out images compared.
    pub images: usize,
    /// fp32 detections compared (those above the threshold, and at least
    /// each image's [`TOP_K`] best), over all images.
    pub reference: usize,
    /// fp32 detections above the threshold, over all images.
    pub reference_confident: usize,
    /// int8 detections above the threshold, over all images.
    pub candidate: usize,
    /// fp32 detections with an int8 match (same class, IoU ≥ [`MATCH_IOU`]).
    pub matched: usize,
    /// Mean IoU of the matched pairs.
    pub mean_iou: f64,
    /// Mean |score difference| of the matched pairs.
    pub mean_score_error: f64,
    /// Largest |score difference| of the matched pairs.
    pub max_score_error: f64,
    /// Of fp32's [`TOP_K`] best detections per image, how many match one of
    /// int8's [`TOP_K`] best.
    pub top_k_matched: usize,
    /// fp32 detections counted by [`Agreement::top_k_matched`].
    pub top_k: usize,
}

/// Intersection over union of two boxes.
pub fn iou(a: &Detection, b: &Detection) -> f32 {
    let w = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let h = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let area = |d: &Detection| (d.x2 - d.x1).max(0.0) * (d.y2 - d.y1).max(0.0);
    let inter = w * h;
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Greedy matching: each detection of `reference`, in order, takes the
/// not yet taken detection of `candidate` of its class with the highest IoU,
/// if at least [`MATCH_IOU`]. Returns, per reference detection, its match's
/// index and IoU.
fn match_greedy(reference: &[Detection], candidate: &[Detection]) -> Vec<Option<(usize, f32)>> {
    let mut taken = vec![false; candidate.len()];
    reference
        .iter()
        .map(|r| {
            let best = candidate
                .iter()
                .enumerate()
                .filter(|(j, c)| !taken[*j] && c.class_id == r.class_id)
                .map(|(j, c)| (j, iou(r, c)))
                .filter(|&(_, v)| v >= MATCH_IOU)
                .max_by(|x, y| x.1.total_cmp(&y.1));
            if let Some((j, _)) = best {
                taken[j] = true;
            }
            best
        })
        .collect()
}

/// Adds one image to `a`. `reference` and `candidate` are every detection of
/// fp32 and int8 (threshold 0), best first. fp32's detections scoring above
/// `conf` — and its [`TOP_K`] best in any case, so that a model with low
/// scores is still compared — are matched against all of int8's; the top-k
/// agreement matches fp32's [`TOP_K`] best against int8's [`TOP_K`] best.
pub fn accumulate(a: &mut Agreement, reference: &[Detection], candidate: &[Detection], conf: f32) {
    let count = reference
        .iter()
        .enumerate()
        .take_while(|(rank, d)| d.score > conf || *rank < TOP_K)
        .count();
    a.images += 1;
    a.reference += count;
    a.reference_confident += reference.iter().filter(|d| d.score > conf).count();
    a.candidate += candidate.iter().filter(|d| d.score > conf).count();
    let (mut iou_sum, mut err_sum) = (
        a.mean_iou * a.matched as f64,
        a.mean_score_error * a.matched as f64,
    );
    for (r, m) in reference
        .iter()
        .zip(match_greedy(&reference[..count], candidate))
    {
        let Some((j, v)) = m else { continue };
        let e = f64::from((r.score - candidate[j].score).abs());
        a.matched += 1;
        iou_sum += f64::from(v);
        err_sum += e;
        a.max_score_error = a.max_score_error.max(e);
    }
    if a.matched > 0 {
        a.mean_iou = iou_sum / a.matched as f64;
        a.mean_score_error = err_sum / a.matched as f64;
    }
    let k = TOP_K.min(reference.len());
    let top = match_greedy(&reference[..k], &candidate[..TOP_K.min(candidate.len())]);
    a.top_k += k;
    a.top_k_matched += top.iter().flatten().count();
}

/// Runs `reference` (an fp32 model file, e.g. [`crate::Int8Build::calibration`])
/// and `candidate` (the int8 model) on the `images` of `src` and compares
/// their detections ([`accumulate`]; boxes in model-input pixels), one
/// [`Phase::Check`] step per image.
///
/// # Errors
/// Models that do not load or differ in input size, or an image that cannot
/// be read.
pub fn compare(
    reference: &[u8],
    candidate: &[u8],
    src: &mut dyn CalibSource,
    images: &[usize],
    conf: f32,
    progress: &mut Progress<'_>,
) -> Result<Agreement, QuantizeError> {
    let err = |e: edgedetr::Error| QuantizeError::Unsupported(e.to_string());
    let (ra, ca) = (
        AlignedBytes::from_slice(reference),
        AlignedBytes::from_slice(candidate),
    );
    let (rm, cm) = (
        Model::from_bytes(&ra).map_err(err)?,
        Model::from_bytes(&ca).map_err(err)?,
    );
    let s = rm.input_size();
    if cm.input_size() != s {
        return Err(QuantizeError::Unsupported(format!(
            "the models' input sizes differ: {s} and {}",
            cm.input_size()
        )));
    }
    let (mut rarena, mut carena) = (
        alloc_arena(&rm).map_err(err)?,
        alloc_arena(&cm).map_err(err)?,
    );
    let mut rs = Session::new(&rm, &mut rarena).map_err(err)?;
    let mut cs = Session::new(&cm, &mut carena).map_err(err)?;
    let post = PostProcess {
        conf: 0.0,
        max_det: 300,
    };
    let mut rd = vec![Detection::default(); 300];
    let mut cd = vec![Detection::default(); 300];
    let mut a = Agreement::default();
    for (done, &i) in images.iter().enumerate() {
        src.load(i, s, rs.input_mut())
            .map_err(|e| QuantizeError::Calibration(format!("{}: {e}", src.label(i))))?;
        let input = rs.input_mut().to_vec();
        cs.set_input_f32(&input).map_err(err)?;
        rs.run();
        cs.run();
        let rn = rs.detections(&post, s, s, &mut rd).map_err(err)?;
        let cn = cs.detections(&post, s, s, &mut cd).map_err(err)?;
        accumulate(&mut a, &rd[..rn], &cd[..cn], conf);
        progress(Event::Step {
            phase: Phase::Check,
            done: done + 1,
            total: images.len(),
        });
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x1: f32, score: f32, class_id: u32) -> Detection {
        Detection {
            x1,
            y1: 0.0,
            x2: x1 + 10.0,
            y2: 10.0,
            score,
            class_id,
        }
    }

    #[test]
    fn matching_counts_class_iou_and_score() {
        assert_eq!(iou(&det(0.0, 1.0, 0), &det(0.0, 1.0, 0)), 1.0);
        assert!((iou(&det(0.0, 1.0, 0), &det(5.0, 1.0, 0)) - 1.0 / 3.0).abs() < 1e-6);
        let mut a = Agreement::default();
        // Same box and class: a match; other class: none; shifted by 6 of 10
        // (IoU 0.25): none. The third scores below `conf` but is within the
        // top k, so it counts.
        let reference = [det(0.0, 0.9, 1), det(50.0, 0.8, 2), det(100.0, 0.2, 3)];
        let candidate = [det(0.0, 0.8, 1), det(50.0, 0.8, 5), det(106.0, 0.2, 3)];
        accumulate(&mut a, &reference, &candidate, 0.5);
        assert_eq!(
            (a.images, a.reference, a.candidate, a.matched),
            (1, 3, 2, 1)
        );
        assert_eq!(a.reference_confident, 2);
        assert_eq!((a.top_k_matched, a.top_k), (1, 3));
        assert!((a.max_score_error - 0.1).abs() < 1e-6 && a.mean_iou == 1.0);
        // A candidate is matched once only; means accumulate over images.
        accumulate(
            &mut a,
            &[det(0.0, 0.9, 1), det(1.0, 0.9, 1)],
            &[det(0.0, 0.7, 1)],
            0.5,
        );
        assert_eq!((a.images, a.matched), (2, 2));
        assert!((a.mean_score_error - 0.15).abs() < 1e-6, "{a:?}");
    }
}
