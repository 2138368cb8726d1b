//! The BiFPN's nearest ×2 upsampling fused into the int8 weighted sum: no
//! upsampled map, the same bytes as upsampling then summing, and the loader
//! rejecting bad masks and shapes. Small synthetic graphs, no fixtures.

use std::collections::HashMap;

use edgedetr::format::{OpDesc, SectionKind};
use edgedetr::kernels::Act;
use edgedetr::std_io::AlignedBytes;
use edgedetr::{Model, OpKind, Session};
use edgedetr_quantizer::builder::GraphBuilder;
use edgedetr_quantizer::fold::FoldedConv;
use edgedetr_quantizer::recipe::Recipe;
use edgedetr_tests::Resealed;

/// Input size of the graphs.
const S: usize = 32;

fn ramp(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * scale)
        .collect()
}

fn conv(cin: usize, k: usize, seed: usize) -> FoldedConv {
    FoldedConv {
        cout: 6,
        cin_per_group: cin,
        k,
        weight: ramp(6 * cin * k * k + seed, 0.04)[seed..].to_vec(),
        bias: ramp(6, 0.05),
    }
}

/// `input → a (3×3 s2 conv) → upsample ⊕ b (1×1 conv of input) → out`,
/// fused (`upsample_weighted_sum`) or as two ops, int8 or float.
fn graph(fused: bool, int8: bool) -> AlignedBytes {
    let ranges: HashMap<String, (f32, f32)> = [
        ("input".to_string(), (0.0, 1.0)),
        ("model.5".to_string(), (-1.5, 2.0)),
        ("model.6".to_string(), (-1.0, 1.0)),
        ("model.8".to_string(), (-2.0, 2.5)),
    ]
    .into();
    let mut g = GraphBuilder::with_recipe(Recipe {
        int8,
        ranges,
        ..Recipe::default()
    });
    let x = g.input_for("input", 3, S, S, "none");
    let a = g.conv("model.5", x, &conv(3, 3, 0), 2, Act::None);
    let b = g.conv("model.6", x, &conv(3, 1, 5), 1, Act::None);
    let coef = [0.7, 0.45];
    let y = if fused {
        g.upsample_weighted_sum("model.7", "model.8", &[a, b], 0, &coef)
    } else {
        let up = g.upsample2x("model.7", a);
        g.weighted_sum("model.8", &[up, b], &coef)
    };
    g.export(y, "out");
    edgedetr_tests::finish_synthetic(g, S, x.id, "upsample-sum test")
}

fn kinds(model: &Model<'_>) -> Vec<OpKind> {
    let f = model.file();
    (0..f.op_count() as u32)
        .map(|i| OpKind::from_u16(f.op(i).kind).unwrap())
        .collect()
}

fn run(bytes: &[u8]) -> Vec<f32> {
    let model = Model::from_bytes(bytes).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    let img: Vec<f32> = (0..3 * S * S)
        .map(|i| (i * 37 % 256) as f32 / 255.0)
        .collect();
    s.set_input_f32(&img).unwrap();
    s.run();
    let id = model.buffer_id("out").unwrap();
    let mut v = vec![0f32; model.buffer(id).unwrap().numel() as usize];
    s.read_f32(id, &mut v).unwrap();
    v
}

#[test]
fn int8_fuses_the_upsampling_into_the_sum_with_the_same_bytes() {
    let fused = graph(true, true);
    let model = Model::from_bytes(&fused).unwrap();
    let k = kinds(&model);
    assert!(!k.contains(&OpKind::Upsample2x), "{k:?}");
    let f = model.file();
    let sum = (0..f.op_count() as u32)
        .map(|i| f.op(i))
        .find(|d| d.kind == OpKind::WeightedSumI8 as u16)
        .expect("an int8 weighted sum");
    assert_eq!(sum.params[0], 1, "input 0 is read upsampled");
    let small = f.buffer(sum.inputs[0]);
    assert_eq!(&small.shape[..3], &[6, S as u32 / 2, S as u32 / 2]);
    let out = f.buffer(sum.outputs[0]);
    assert_eq!(&out.shape[..3], &[6, S as u32, S as u32]);

    let two_ops = graph(false, true);
    let m2 = Model::from_bytes(&two_ops).unwrap();
    assert!(kinds(&m2).contains(&OpKind::Upsample2x));
    assert!(model.arena_size() <= m2.arena_size());
    assert_eq!(
        run(&fused),
        run(&two_ops),
        "fused differs from upsample + sum"
    );
}

#[test]
fn float_recipes_keep_the_upsampling_op() {
    let bytes = graph(true, false);
    let model = Model::from_bytes(&bytes).unwrap();
    let k = kinds(&model);
    assert!(k.contains(&OpKind::Upsample2x) && k.contains(&OpKind::WeightedSum));
    assert_eq!(run(&bytes), run(&graph(false, false)));
}

/// The fused model with the weighted sum's mask replaced by `mask`
/// (checksum rewritten so that validation sees it).
fn with_mask(mask: u32) -> Resealed {
    let mut file = Resealed::new(&graph(true, true));
    let ops = file.section(SectionKind::Ops);
    let (i, mut sum) = (0..ops.count as usize)
        .map(|i| (i, file.record::<OpDesc>(&ops, i)))
        .find(|(_, d)| d.kind == OpKind::WeightedSumI8 as u16)
        .unwrap();
    sum.params[0] = mask;
    file.set_record(&ops, i, &sum);
    file
}

#[test]
fn the_loader_rejects_bad_masks() {
    assert!(Model::from_bytes(with_mask(1).sealed()).is_ok());
    for mask in [0, 0b10, 0b11, 0b100] {
        let e = Model::from_bytes(with_mask(mask).sealed())
            .err()
            .unwrap_or_else(|| panic!("mask {mask:#b} accepted"));
        assert!(e.to_string().contains("weighted"), "mask {mask:#b}: {e}");
    }
}
