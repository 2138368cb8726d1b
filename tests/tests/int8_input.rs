//! Int8 models take the u8 image directly: the input buffer is int8 with
//! scale 1/255 and zero point −128 (byte `pixel ^ 0x80`), read by the int8
//! stem convolution without a `Quantize` op. Small synthetic graphs, no
//! reference fixtures needed (the full model is checked in `int8.rs`).

use std::collections::HashMap;

use edgedetr::format::{BUF_EXPORTED, BUF_INPUT, DType, FormatError, Meta, NONE, OpDesc};
use edgedetr::kernels::Act;
use edgedetr::model::{U8_INPUT_SCALE, U8_INPUT_ZERO_POINT};
use edgedetr::std_io::AlignedBytes;
use edgedetr::{Error, InputDType, Model, OpKind, Session};
use edgedetr_quantizer::builder::GraphBuilder;
use edgedetr_quantizer::fold::FoldedConv;
use edgedetr_quantizer::recipe::Recipe;

/// Input size of the synthetic graphs.
const S: usize = 32;
/// Name of their int8 stem convolution.
const STEM: &str = "model.0.stem";

fn ramp(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * scale)
        .collect()
}

/// A deterministic CHW u8 image, every byte value present.
fn image() -> Vec<u8> {
    let mut x = 12_345u64;
    (0..3 * S * S)
        .map(|i| {
            if i < 256 {
                return i as u8;
            }
            x = (x * 1_103_515_245 + 12_345) % (1 << 31);
            ((x >> 16) & 255) as u8
        })
        .collect()
}

/// `input → stem (int8 conv, ReLU6) → out`, plus a float reader of the input
/// (`float_in`, an activation). `first_conv` names the op the builder takes
/// as the input's reader: `STEM` gives the u8 input, anything else the f32
/// input with a `Quantize` op in front of the stem.
fn graph(first_conv: &str, int8: bool) -> AlignedBytes {
    let ranges: HashMap<String, (f32, f32)> = [(STEM.to_string(), (0.0, 4.0))].into();
    let mut g = GraphBuilder::with_recipe(Recipe {
        int8,
        ranges,
        ..Recipe::default()
    });
    let x = g.input_for("input", 3, S, S, first_conv);
    let f = FoldedConv {
        cout: 8,
        cin_per_group: 3,
        k: 3,
        weight: ramp(8 * 3 * 9, 0.05),
        bias: ramp(8, 0.1),
    };
    let y = g.conv(STEM, x, &f, 2, Act::Relu6);
    g.export(y, "out");
    let a = g.activation("float_in", x, Act::Relu);
    g.export(a, "float_out");
    edgedetr_tests::finish_synthetic(g, S, x.id, "int8_input test")
}

fn op_kinds_reading(model: &Model<'_>, id: u32) -> Vec<OpKind> {
    let f = model.file();
    (0..f.op_count() as u32)
        .map(|i| f.op(i))
        .filter(|d| d.input_ids().any(|x| x == id))
        .map(|d| OpKind::from_u16(d.kind).unwrap())
        .collect()
}

#[test]
fn the_int8_stem_reads_the_u8_image_directly() {
    let bytes = graph(STEM, true);
    let model = Model::from_bytes(&bytes).unwrap();
    assert_eq!(model.input_dtype(), InputDType::U8);
    let id = model.input_buffer();
    assert_eq!(id, model.file().meta().input_buffer);
    let b = model.buffer(id).unwrap();
    assert_eq!(model.buffer_name(id), Some("input"));
    assert_eq!(b.dtype, DType::I8 as u8);
    assert_eq!(&b.shape[..b.rank as usize], &[3, S as u32, S as u32]);
    assert_eq!(
        b.flags & (BUF_INPUT | BUF_EXPORTED),
        BUF_INPUT | BUF_EXPORTED
    );
    assert_eq!(b.quant(), Some((1.0 / 255.0, -128)));
    assert_eq!((U8_INPUT_SCALE, U8_INPUT_ZERO_POINT), (1.0 / 255.0, -128));
    // Read by the int8 conv and, for the float reader, one Dequantize.
    let mut kinds = op_kinds_reading(&model, id);
    kinds.sort_by_key(|k| *k as u16);
    assert_eq!(kinds, [OpKind::Conv2dI8, OpKind::Dequantize]);
    let f = model.file();
    assert!((0..f.op_count() as u32).all(|i| f.op(i).kind != OpKind::Quantize as u16));
}

#[test]
fn float_recipes_and_a_float_stem_keep_the_f32_input() {
    for (first, int8) in [(STEM, false), ("model.0.other", true)] {
        let bytes = graph(first, int8);
        let model = Model::from_bytes(&bytes).unwrap();
        assert_eq!(model.input_dtype(), InputDType::F32, "{first} {int8}");
        let b = model.buffer(model.input_buffer()).unwrap();
        assert_eq!(b.dtype, DType::F32 as u8);
    }
    // A calibrated recipe that keeps the stem in float.
    let ranges: HashMap<String, (f32, f32)> = [(STEM.to_string(), (0.0, 4.0))].into();
    let mut g = GraphBuilder::with_recipe(Recipe {
        int8: true,
        ranges,
        keep_float: vec!["model.0.".into()],
        ..Recipe::default()
    });
    let x = g.input_for("input", 3, S, S, STEM);
    assert!(x.q.is_none());
}

/// Runs a graph on the image written by `write`; returns the int8 stem output
/// and the float reader's output.
fn run(bytes: &[u8], write: impl FnOnce(&mut Session<'_, '_>)) -> (Vec<i8>, Vec<f32>) {
    let model = Model::from_bytes(bytes).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    write(&mut s);
    s.run();
    let out = s
        .buffer_i8(model.buffer_id("out").unwrap())
        .unwrap()
        .to_vec();
    let fl = s
        .buffer(model.buffer_id("float_out").unwrap())
        .unwrap()
        .to_vec();
    (out, fl)
}

#[test]
fn u8_and_f32_writes_agree_and_match_the_quantize_op() {
    let img = image();
    let as_f32: Vec<f32> = img.iter().map(|&p| f32::from(p) / 255.0).collect();
    let u8_model = graph(STEM, true);
    let by_u8 = run(&u8_model, |s| s.set_input_u8(&img).unwrap());
    let by_f32 = run(&u8_model, |s| s.set_input_f32(&as_f32).unwrap());
    assert_eq!(by_u8.0, by_f32.0, "int8 outputs differ");
    assert_eq!(by_u8.1, by_f32.1);
    // The stored bytes are pixel ^ 0x80.
    {
        let model = Model::from_bytes(&u8_model).unwrap();
        let mut arena = vec![0u8; model.arena_size()];
        let mut s = Session::new(&model, &mut arena).unwrap();
        s.set_input_u8(&img).unwrap();
        let stored = s.buffer_i8(model.input_buffer()).unwrap();
        assert!(stored.iter().zip(&img).all(|(&q, &p)| q as u8 == p ^ 0x80));
        assert!(
            s.input_mut().is_empty(),
            "a u8-input model has no f32 input"
        );
    }

    // The old graph: an f32 input quantised by a Quantize op before the stem.
    let f32_model = graph("model.0.other", true);
    let m = Model::from_bytes(&f32_model).unwrap();
    assert_eq!(
        op_kinds_reading(&m, m.input_buffer()),
        [OpKind::Quantize, OpKind::Activation]
    );
    let old = run(&f32_model, |s| s.set_input_f32(&as_f32).unwrap());
    assert_eq!(
        by_u8.0, old.0,
        "the stem computes what it did behind a Quantize op"
    );
    let old_u8 = run(&f32_model, |s| s.set_input_u8(&img).unwrap());
    assert_eq!(old.0, old_u8.0);
    assert_eq!(old.1, old_u8.1);
    // The float reader sees p/255 through the Dequantize (one multiply by the
    // rounded 1/255: within an ulp of the f32 model's division).
    for (a, b) in by_u8.1.iter().zip(&old.1) {
        assert!((a - b).abs() <= 1e-7, "{a} vs {b}");
    }
}

#[test]
fn f32_writes_round_and_clamp_to_pixels() {
    let bytes = graph(STEM, true);
    let model = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    let mut v = vec![0.5f32; 3 * S * S];
    let cases: [(f32, u8); 9] = [
        (0.0, 0),
        (1.0, 255),
        (-0.3, 0),
        (7.0, 255),
        (f32::NAN, 0),
        (f32::INFINITY, 255),
        (100.4 / 255.0, 100),
        (100.6 / 255.0, 101),
        (254.6 / 255.0, 255),
    ];
    for (i, &(x, _)) in cases.iter().enumerate() {
        v[i] = x;
    }
    s.set_input_f32(&v).unwrap();
    let stored = s.buffer_i8(model.input_buffer()).unwrap();
    for (i, &(x, want)) in cases.iter().enumerate() {
        assert_eq!(stored[i] as u8 ^ 0x80, want, "value {x}");
    }
    // Every k/255 goes back to k.
    for k in 0..=255u8 {
        let v = vec![f32::from(k) / 255.0; 3 * S * S];
        s.set_input_f32(&v).unwrap();
        let stored = s.buffer_i8(model.input_buffer()).unwrap();
        assert!(stored.iter().all(|&q| q as u8 ^ 0x80 == k), "pixel {k}");
    }
}

#[test]
fn wrong_lengths_are_typed_errors() {
    for int8 in [true, false] {
        let bytes = graph(STEM, int8);
        let model = Model::from_bytes(&bytes).unwrap();
        let mut arena = vec![0u8; model.arena_size()];
        let mut s = Session::new(&model, &mut arena).unwrap();
        let n = 3 * S * S;
        let want = |given| Err(Error::ShapeMismatch { expected: n, given });
        assert_eq!(s.set_input_u8(&vec![0; n - 1]), want(n - 1));
        assert_eq!(s.set_input_u8(&vec![0; n + 1]), want(n + 1));
        assert_eq!(s.set_input_f32(&vec![0.0; n - 1]), want(n - 1));
        assert_eq!(s.set_input_f32(&[]), want(0));
        assert_eq!(s.input_mut().len(), if int8 { 0 } else { n });
    }
}

#[test]
fn an_f32_model_gets_pixel_over_255() {
    let img = image();
    let bytes = graph(STEM, false);
    let model = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    s.set_input_u8(&img).unwrap();
    let got = s.buffer(model.input_buffer()).unwrap().to_vec();
    // Exactly the f32 preprocessing (correctly rounded division).
    let mut hwc = vec![0u8; img.len()];
    let plane = S * S;
    for c in 0..3 {
        for i in 0..plane {
            hwc[i * 3 + c] = img[c * plane + i];
        }
    }
    let mut want = vec![0f32; img.len()];
    let k = edgedetr::kernels::Kernels::scalar();
    let rgb = edgedetr_vision::preprocess::Order::Rgb;
    edgedetr_vision::preprocess::hwc_to_chw(&k, &hwc, (S, S), rgb, &mut want).unwrap();
    assert!(
        got.iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    let mut u = vec![0u8; img.len()];
    edgedetr_vision::preprocess::hwc_to_chw(&k, &hwc, (S, S), rgb, &mut u).unwrap();
    assert_eq!(u, img);
    // set_input_f32 copies.
    let v: Vec<f32> = (0..img.len()).map(|i| i as f32 * 0.001).collect();
    s.set_input_f32(&v).unwrap();
    assert_eq!(s.buffer(model.input_buffer()).unwrap(), &v[..]);
}

#[test]
fn an_int8_input_with_other_parameters_is_rejected() {
    for (scale, zp, shape) in [
        (0.5f32, 0i8, [3u32, 32, 32]),
        (1.0 / 255.0, 0, [3, 32, 32]),
        (1.0 / 255.0, -128, [3, 32, 16]),
    ] {
        let mut w = edgedetr::format::ModelWriter::new();
        w.set_meta(
            Meta {
                input_size: 32,
                in_channels: 3,
                num_classes: 1,
                input_buffer: 0,
                ..Meta::default()
            },
            "bad input",
            &["a"],
        );
        let x = w.add_buffer("input", DType::I8, &shape, BUF_INPUT);
        w.buffer_mut(x).quant = Some((scale, zp));
        let y = w.add_buffer("y", DType::F32, &shape, BUF_EXPORTED);
        w.add_op(
            "dq",
            OpDesc {
                kind: OpKind::Dequantize as u16,
                inputs: [x, NONE, NONE, NONE],
                outputs: [y, NONE],
                scratch: NONE,
                tensors: [NONE; 6],
                params: [scale.to_bits(), zp as i32 as u32, 0, 0, 0, 0, 0, 0],
                ..OpDesc::default()
            },
        );
        let bytes = AlignedBytes::from_slice(&w.finish());
        match Model::from_bytes(&bytes) {
            Err(Error::Format(FormatError::BadMeta(m))) => assert!(m.contains("input"), "{m}"),
            other => panic!("({scale}, {zp}, {shape:?}) accepted: {other:?}"),
        }
    }
}

#[test]
fn the_image_can_be_written_a_line_at_a_time() {
    let img = image();
    for int8 in [true, false] {
        let bytes = graph(STEM, int8);
        let model = Model::from_bytes(&bytes).unwrap();
        let stored = |write: &dyn Fn(&mut Session<'_, '_>)| -> Vec<u32> {
            let mut arena = vec![0u8; model.arena_size()];
            let mut s = Session::new(&model, &mut arena).unwrap();
            write(&mut s);
            let id = model.input_buffer();
            match model.input_dtype() {
                InputDType::U8 => s
                    .buffer_i8(id)
                    .unwrap()
                    .iter()
                    .map(|&v| v as u8 as u32)
                    .collect(),
                _ => s.buffer(id).unwrap().iter().map(|v| v.to_bits()).collect(),
            }
        };
        let whole = stored(&|s| s.set_input_u8(&img).unwrap());
        // Odd-sized pieces, the last one short.
        let lines = stored(&|s| {
            for (i, piece) in img.chunks(7).enumerate() {
                s.write_input_u8(i * 7, piece).unwrap();
            }
        });
        assert_eq!(whole, lines);
        let mut arena = vec![0u8; model.arena_size()];
        let mut s = Session::new(&model, &mut arena).unwrap();
        let n = 3 * S * S;
        assert_eq!(
            s.write_input_u8(n - 2, &[0; 3]),
            Err(Error::ShapeMismatch {
                expected: 2,
                given: 3
            })
        );
        assert_eq!(
            s.write_input_u8(usize::MAX, &[0; 1]),
            Err(Error::ShapeMismatch {
                expected: 0,
                given: 1
            })
        );
        assert_eq!(s.write_input_u8(n, &[]), Ok(()));
    }
}
