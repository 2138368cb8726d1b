//! Detections from the in-model top-K rows, as ultralytics' `RTDETRPredictor`
//! post-processes them (SPEC.md §6): `[cx, cy, w, h]` → `[x1, y1, x2, y2]`,
//! rows with `score > conf` (strict), the first `max_det` (rows are sorted),
//! scaled to the original image. No clipping, no NMS.

use crate::error::Error;
use crate::session::Session;

/// One detected object, in original-image pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Detection {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
    /// Confidence (sigmoid score).
    pub score: f32,
    /// Class index.
    pub class_id: u32,
}

/// Thresholds of the postprocess.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PostProcess {
    /// Keep rows with `score > conf`.
    pub conf: f32,
    /// Keep at most this many rows.
    pub max_det: usize,
}

impl Default for PostProcess {
    fn default() -> Self {
        PostProcess {
            conf: 0.25,
            max_det: 300,
        }
    }
}

/// Name of the buffer holding the `[K, 6]` rows.
pub const OUTPUT_ROWS: &str = "output_topk";

/// Converts rows `[K, 6]` (`cx, cy, w, h` normalised, score, class) into
/// detections for an `orig_w × orig_h` image; returns how many were written
/// (at most `out.len()`).
pub fn rows_to_detections(
    rows: &[f32],
    p: &PostProcess,
    orig_w: f32,
    orig_h: f32,
    out: &mut [Detection],
) -> usize {
    let mut n = 0;
    for r in rows.chunks_exact(6) {
        if n >= p.max_det || n >= out.len() {
            break;
        }
        let score = r[4];
        if score.is_nan() || score <= p.conf {
            continue;
        }
        let (cx, cy, w, h) = (r[0], r[1], r[2], r[3]);
        out[n] = Detection {
            x1: (cx - w / 2.0) * orig_w,
            y1: (cy - h / 2.0) * orig_h,
            x2: (cx + w / 2.0) * orig_w,
            y2: (cy + h / 2.0) * orig_h,
            score,
            class_id: if r[5] >= 0.0 { r[5] as u32 } else { 0 },
        };
        n += 1;
    }
    n
}

impl Session<'_, '_> {
    /// Detections of the last run for an `orig_w × orig_h` image; returns how
    /// many were written into `out` (allocation-free).
    pub fn detections(
        &self,
        p: &PostProcess,
        orig_w: usize,
        orig_h: usize,
        out: &mut [Detection],
    ) -> Result<usize, Error> {
        let id = self
            .model()
            .buffer_id(OUTPUT_ROWS)
            .ok_or(Error::UnknownBuffer)?;
        let rows = self.buffer(id)?;
        Ok(rows_to_detections(
            rows,
            p,
            orig_w as f32,
            orig_h as f32,
            out,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_pixel_boxes() {
        let rows = [
            0.5, 0.5, 0.2, 0.4, 0.9, 3.0, //
            0.1, 0.1, 0.2, 0.2, 0.25, 1.0, // not above conf (strict)
            0.0, 0.0, 0.5, 0.5, 0.3, 2.0,
        ];
        let mut out = [Detection::default(); 4];
        let p = PostProcess {
            conf: 0.25,
            max_det: 300,
        };
        let n = rows_to_detections(&rows, &p, 100.0, 200.0, &mut out);
        assert_eq!(n, 2);
        let d = out[0];
        for (got, want) in [(d.x1, 40.0), (d.y1, 60.0), (d.x2, 60.0), (d.y2, 140.0)] {
            assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        }
        assert_eq!((d.score, d.class_id), (0.9, 3));
        // No clipping: negative coordinates stay.
        assert_eq!(out[1].x1, -25.0);
        let n = rows_to_detections(
            &rows,
            &PostProcess {
                conf: 0.0,
                max_det: 1,
            },
            1.0,
            1.0,
            &mut out,
        );
        assert_eq!(n, 1);
    }
}
