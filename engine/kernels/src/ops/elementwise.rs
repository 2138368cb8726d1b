//! Element-wise kernels.

use crate::Act;

/// `out = a + b`.
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(a.len() == out.len() && b.len() == out.len());
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

/// `out = act(a + b)`.
pub fn add_act(a: &[f32], b: &[f32], act: Act, out: &mut [f32]) {
    add(a, b, out);
    act.apply_slice(out);
}

/// `out = Σ_i coef[i] · inputs[i]`, summed in input order, as torch stacks the
/// weighted maps and sums over the stack (BiFPN, SPEC.md §4.2).
pub fn weighted_sum(inputs: &[&[f32]], coef: &[f32], out: &mut [f32]) {
    assert!(!inputs.is_empty() && inputs.len() == coef.len());
    assert!(inputs.iter().all(|x| x.len() == out.len()));
    for (j, o) in out.iter_mut().enumerate() {
        let mut acc = coef[0] * inputs[0][j];
        for (x, &c) in inputs[1..].iter().zip(&coef[1..]) {
            acc += c * x[j];
        }
        *o = acc;
    }
}

/// Nearest ×2 upsampling of a `[C, H, W]` map: `out[c, i, j] = in[c, i/2, j/2]`.
pub fn upsample_nearest2x(input: &[f32], c: usize, h: usize, w: usize, out: &mut [f32]) {
    assert!(input.len() == c * h * w && out.len() == 4 * c * h * w);
    let ow = 2 * w;
    for (plane_in, plane_out) in input
        .chunks_exact(h * w)
        .zip(out.chunks_exact_mut(4 * h * w))
    {
        for (row_in, rows_out) in plane_in
            .chunks_exact(w)
            .zip(plane_out.chunks_exact_mut(2 * ow))
        {
            let (r0, r1) = rows_out.split_at_mut(ow);
            for (x, &v) in row_in.iter().enumerate() {
                r0[2 * x] = v;
                r0[2 * x + 1] = v;
            }
            r1.copy_from_slice(r0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsample_matches_definition() {
        for &(c, h, w) in &[(1, 1, 1), (2, 3, 5), (3, 4, 1)] {
            let input: std::vec::Vec<f32> = (0..c * h * w).map(|i| i as f32).collect();
            let mut out = std::vec![0.0; 4 * c * h * w];
            upsample_nearest2x(&input, c, h, w, &mut out);
            for ch in 0..c {
                for i in 0..2 * h {
                    for j in 0..2 * w {
                        assert_eq!(
                            out[ch * 4 * h * w + i * 2 * w + j],
                            input[ch * h * w + (i / 2) * w + j / 2]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn weighted_sum_and_add() {
        let a = [1.0, 2.0, 3.0];
        let b = [10.0, 20.0, 30.0];
        let d = [100.0, 200.0, 300.0];
        let mut out = [0.0; 3];
        weighted_sum(&[&a, &b, &d], &[0.5, 0.25, 2.0], &mut out);
        assert_eq!(out, [203.0, 406.0, 609.0]);
        add(&a, &b, &mut out);
        assert_eq!(out, [11.0, 22.0, 33.0]);
        add_act(&[-1.0, 7.0, 3.0], &[0.0, 0.0, 0.0], Act::Relu6, &mut out);
        assert_eq!(out, [0.0, 6.0, 3.0]);
    }
}
