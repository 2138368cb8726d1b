//! The int8 recipe: calibrated on `reference/calib`, compared with the fp32
//! goldens (chained SQNR), its size against the fp32 file, and allocation-free.

use edgedetr::format::DType;
use edgedetr::{Model, Session};
use edgedetr_quantizer::{Int8Options, Options};
use edgedetr_tests::*;

/// Signal-to-quantisation-noise ratio in dB.
fn sqnr(engine: &[f32], golden: &[f32]) -> f64 {
    let (mut s, mut n) = (0f64, 0f64);
    for (&e, &g) in engine.iter().zip(golden) {
        s += g as f64 * g as f64;
        n += (e as f64 - g as f64).powi(2);
    }
    10.0 * (s / n.max(1e-30)).log10()
}

/// A buffer's values as f32 (int8 buffers dequantised).
fn values(s: &Session<'_, '_>, name: &str) -> Vec<f32> {
    engine_tensor(s, name).unwrap_or_else(|| panic!("no buffer {name}"))
}

/// ONNX Runtime's static per-channel int8 on the same model (issue 5):
/// chained SQNR at backbone_out1 and backbone_out2.
const ORT_SQNR: [f64; 2] = [33.2, 30.2];
/// The targets of issue 5.
const TARGET_SQNR: [f64; 2] = [34.0, 31.0];

/// The acceptance bar of issue 5 at 640: the targets, hence above ONNX
/// Runtime, and the file no more than 0.3× the fp32 one.
#[test]
fn int8_640_meets_the_sqnr_targets_and_is_small() {
    if skip_requested("int8_640_meets_the_sqnr_targets_and_is_small") {
        return;
    }
    let sq = int8_640_sqnr_and_size();
    assert!(
        sq[0] > ORT_SQNR[0] && sq[1] > ORT_SQNR[1],
        "chained SQNR {sq:?} dB does not beat ONNX Runtime's {ORT_SQNR:?}"
    );
    assert!(
        sq[0] >= TARGET_SQNR[0] && sq[1] >= TARGET_SQNR[1],
        "chained SQNR {sq:?} dB below {TARGET_SQNR:?}"
    );
}

/// Builds the int8 model at 640 (calibrated on `reference/calib`), checks its
/// size, runs `bus_640` and returns the chained SQNR at backbone_out1/2.
fn int8_640_sqnr_and_size() -> [f64; 2] {
    let t = std::time::Instant::now();
    // EDGEDETR_INT8_METHOD (minmax, percentile[:p], mse) compares range methods.
    let mut q = Int8Options::default();
    if let Ok(m) = std::env::var("EDGEDETR_INT8_METHOD") {
        q.method = edgedetr_quantizer::calib::RangeMethod::parse(&m).expect("a range method");
    }
    // EDGEDETR_INT8_ROUNDING (gptq, nearest) compares weight rounding.
    if let Ok(r) = std::env::var("EDGEDETR_INT8_ROUNDING") {
        q.rounding = edgedetr_quantizer::WeightRounding::parse(&r).expect("gptq or nearest");
    }
    let b = build_int8(640, None, &q);
    let (built, ranges) = (b.built, b.ranges);
    for k in [
        "model.0.conv0.convbn_0",
        "model.0.layer1.convbn_0",
        "model.0.layer1.convbn_1",
    ] {
        eprintln!("range {k}: {:?}", ranges.get(k));
    }
    eprintln!(
        "int8 build with calibration: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let fp32 = fp32_model(640);
    let ratio = built.bytes.len() as f64 / fp32.len() as f64;
    eprintln!(
        "int8 file {} bytes = {ratio:.3} x fp32 ({} bytes)",
        built.bytes.len(),
        fp32.len()
    );
    let bytes = edgedetr::std_io::AlignedBytes::from_slice(&built.bytes);
    let model = Model::from_bytes(&bytes).expect("int8 model loads");
    let mut arena = vec![0u8; model.arena_size()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    s.set_input_f32(&golden("bus_640", "input").data).unwrap();
    let t = std::time::Instant::now();
    s.run();
    eprintln!("int8 frame: {:.1} s", t.elapsed().as_secs_f64());
    let mut report = Vec::new();
    for n in [
        "backbone_out1",
        "backbone_out2",
        "backbone_out3",
        "backbone_out4",
        "layer06_aifi",
        "layer19_p3",
        "layer22_p4",
        "layer25_p5",
    ] {
        let db = sqnr(&values(&s, n), &golden("bus_640", n).data);
        eprintln!("bus_640 chained SQNR {n}: {db:.1} dB");
        report.push((n, db));
    }
    assert!(ratio <= 0.3, "int8 file is {ratio:.3} x fp32");
    [report[0].1, report[1].1]
}

/// Diagnostic: chained SQNR of every int8 op output against the fp32 model.
#[test]
#[ignore = "diagnostic: prints the chained SQNR of every int8 op (cargo test --test int8 diagnostic -- --ignored --nocapture)"]
fn int8_layer_by_layer_diagnostic() {
    let built = build_int8(320, None, &Int8Options::default()).built;
    let bytes = edgedetr::std_io::AlignedBytes::from_slice(&built.bytes);
    let model = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    let fbytes = fp32_model(320);
    let fmodel = Model::from_bytes(fbytes).unwrap();
    let mut farena = vec![0u8; fmodel.arena_size()];
    let mut fs = Session::new(&fmodel, &mut farena).unwrap();
    let input = golden("bus_320", "input").data;
    s.set_input_f32(&input).unwrap();
    fs.input_mut().copy_from_slice(&input);
    // Run fp32 op by op, remembering every output by op name.
    let mut ref_out = std::collections::HashMap::new();
    let ff = fmodel.file();
    for i in 0..fmodel.op_count() {
        fs.run_ops(i..i + 1).unwrap();
        let id = ff.op(i as u32).outputs[0];
        let mut v = vec![0f32; ff.buffer(id).numel() as usize];
        fs.read_f32(id, &mut v).unwrap();
        ref_out.insert(ff.str(ff.op(i as u32).name).to_string(), v);
    }
    let f = model.file();
    for i in 0..model.op_count().min(90) {
        s.run_ops(i..i + 1).unwrap();
        let id = f.op(i as u32).outputs[0];
        let name = f.str(f.op(i as u32).name);
        if let Some(r) = ref_out.get(name) {
            let mut v = vec![0f32; f.buffer(id).numel() as usize];
            s.read_f32(id, &mut v).unwrap();
            eprintln!("{i:3} {name:40} {:6.1} dB", sqnr(&v, r));
        }
    }
}

#[test]
fn int8_model_detects_and_reports_every_int8_layer() {
    if skip_requested("int8_model_detects_and_reports_every_int8_layer") {
        return;
    }
    let model = Model::from_bytes(int8_320()).unwrap();
    let f = model.file();
    let int8_ops = (0..f.op_count() as u32)
        .filter(|&i| f.op(i).kind == edgedetr::OpKind::Conv2dI8 as u16)
        .count();
    assert!(int8_ops >= 70, "only {int8_ops} int8 convolutions");
    // The BiFPN's two upsamplings are fused into their int8 weighted sums.
    let fused = (0..f.op_count() as u32)
        .filter(|&i| {
            f.op(i).kind == edgedetr::OpKind::WeightedSumI8 as u16 && f.op(i).params[0] == 1
        })
        .count();
    assert_eq!(fused, 2);
    assert!((0..f.op_count() as u32).all(|i| f.op(i).kind != edgedetr::OpKind::Upsample2x as u16));
    let mut arena = vec![0u8; model.arena_size()];
    let mut s = Session::new(&model, &mut arena).unwrap();
    s.set_input_f32(&golden("bus_320", "input").data).unwrap();
    s.run();
    let mut dets = [edgedetr::Detection::default(); 300];
    let n = s
        .detections(
            &edgedetr::PostProcess {
                conf: 0.0,
                max_det: 300,
            },
            810,
            1080,
            &mut dets,
        )
        .unwrap();
    assert_eq!(n, 300);
    assert!(
        dets[..n]
            .iter()
            .all(|d| d.score.is_finite() && d.x1.is_finite())
    );
}

/// The int8 model takes the u8 image: its input buffer is int8 with scale
/// 1/255 and zero point −128, read directly by the int8 stem convolution.
#[test]
fn int8_model_takes_the_u8_image_directly() {
    if skip_requested("int8_model_takes_the_u8_image_directly") {
        return;
    }
    let model = Model::from_bytes(int8_320()).unwrap();
    assert_eq!(model.input_dtype(), edgedetr::InputDType::U8);
    let f = model.file();
    let input = f.meta().input_buffer;
    assert_eq!(model.input_buffer(), input);
    assert_eq!(model.buffer_name(input), Some("input"));
    let b = model.buffer(input).unwrap();
    assert_eq!(b.dtype, DType::I8 as u8);
    assert_eq!(&b.shape[..b.rank as usize], &[3, 320, 320]);
    assert_eq!(b.quant(), Some((1.0 / 255.0, -128)));
    let flags = edgedetr::format::BUF_INPUT | edgedetr::format::BUF_EXPORTED;
    assert_eq!(b.flags & flags, flags);
    let readers: Vec<_> = (0..f.op_count() as u32)
        .map(|i| f.op(i))
        .filter(|d| d.input_ids().any(|id| id == input))
        .collect();
    assert!(
        readers
            .iter()
            .all(|d| d.kind != edgedetr::OpKind::Quantize as u16),
        "a Quantize op reads the input"
    );
    let stem = edgedetr_quantizer::rtdetr::STEM_CONV;
    assert!(
        readers
            .iter()
            .any(|d| f.str(d.name) == stem && d.kind == edgedetr::OpKind::Conv2dI8 as u16),
        "{stem} does not read the input as an int8 convolution"
    );
}

/// Every exported buffer of a run, as bytes, by name.
fn exported_bytes(s: &Session<'_, '_>) -> Vec<(String, Vec<u8>)> {
    let model = s.model();
    model
        .exported_buffers()
        .map(|id| {
            (
                model.buffer_name(id).unwrap().to_string(),
                buffer_bytes(s, id),
            )
        })
        .collect()
}

/// An image's u8 pixels through `set_input_u8`, the same values `/ 255`
/// through `set_input_f32`, and the golden `input.npy` give byte-identical
/// runs of the int8 model.
#[test]
fn int8_u8_and_f32_inputs_give_identical_outputs() {
    if skip_requested("int8_u8_and_f32_inputs_give_identical_outputs") {
        return;
    }
    let model = Model::from_bytes(int8_320()).unwrap();
    let s = model.input_size();
    let img = edgedetr_vision::file::load(&fixture_dir().join("images/bus.jpg")).unwrap();
    let k = edgedetr::kernels::Kernels::scalar();
    let pixels = edgedetr_vision::Preprocessor::new()
        .chw_u8(&k, &img.rgb, img.width, img.height, s)
        .unwrap()
        .to_vec();
    let as_f32: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    let run = |write: &dyn Fn(&mut Session<'_, '_>)| {
        let mut arena = vec![0u8; model.arena_size()];
        let mut session = Session::new(&model, &mut arena).unwrap();
        write(&mut session);
        session.run();
        exported_bytes(&session)
    };
    let by_u8 = run(&|s| s.set_input_u8(&pixels).unwrap());
    let by_f32 = run(&|s| s.set_input_f32(&as_f32).unwrap());
    assert!(by_u8.len() >= 10, "{} exported buffers", by_u8.len());
    assert!(by_u8.iter().any(|(n, _)| n == "output_topk"));
    for ((n, a), (_, b)) in by_u8.iter().zip(&by_f32) {
        assert!(a == b, "{n} differs between set_input_u8 and set_input_f32");
    }
    let by_golden = run(&|s| s.set_input_f32(&golden("bus_320", "input").data).unwrap());
    for ((n, a), (_, b)) in by_u8.iter().zip(&by_golden) {
        assert!(
            a == b,
            "{n} differs between the image and the golden input.npy"
        );
    }
}

/// Byte-identical int8 tensors on every architecture: the x86 run writes the
/// model and the hashes of its int8 tensors to `$EDGEDETR_BITEXACT_DIR`; runs
/// on other architectures (qemu in CI) load that model and compare.
#[test]
fn int8_tensors_are_bit_exact_across_architectures() {
    if skip_requested("int8_tensors_are_bit_exact_across_architectures") {
        return;
    }
    let dir = std::env::var_os("EDGEDETR_BITEXACT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("edgedetr-bitexact"));
    let model_path = dir.join("int8_320.edr");
    let hashes_path = dir.join("int8_320.hashes");
    let writer = cfg!(target_arch = "x86_64");
    let bytes = if writer {
        let m = int8_320();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&model_path, &m[..]).unwrap();
        m.clone()
    } else {
        edgedetr::std_io::AlignedBytes::read(&model_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}. Run this test natively on x86_64 first with EDGEDETR_BITEXACT_DIR={} (CI does)",
                model_path.display(),
                dir.display()
            )
        })
    };
    let model = Model::from_bytes(&bytes).unwrap();
    // The hashes of every exported int8 tensor, with the given kernels.
    let hashes = |kernels: edgedetr::kernels::Kernels| -> Vec<String> {
        let mut arena = vec![0u8; model.arena_size()];
        let mut s = Session::with_kernels(&model, &mut arena, kernels).unwrap();
        s.set_input_f32(&golden("bus_320", "input").data).unwrap();
        s.run();
        let mut lines = Vec::new();
        for id in model.exported_buffers() {
            let d = model.buffer(id).unwrap();
            if d.dtype == DType::I8 as u8 {
                let v = s.buffer_i8(id).unwrap();
                let bytes: Vec<u8> = v.iter().map(|&x| x as u8).collect();
                let h = edgedetr::format::checksum::xxh64(&bytes);
                lines.push(format!("{} {h:016x}", model.buffer_name(id).unwrap()));
            }
        }
        lines
    };
    let best = edgedetr::kernels::Kernels::from_env();
    let lines = hashes(best);
    assert!(
        lines.len() >= 7,
        "expected int8 backbone outputs and P3-P5, got {lines:?}"
    );
    // The SIMD path and the scalar path agree on this architecture.
    assert_eq!(
        lines,
        hashes(edgedetr::kernels::Kernels::scalar()),
        "int8 tensors differ between the {} and scalar kernels",
        best.name()
    );
    let text = lines.join("\n");
    eprintln!("int8 tensor hashes ({}):\n{text}", std::env::consts::ARCH);
    if writer {
        std::fs::write(&hashes_path, &text).unwrap();
    } else {
        let want = std::fs::read_to_string(&hashes_path).expect("hashes written by the x86_64 run");
        assert_eq!(
            text,
            want,
            "int8 tensors differ from x86_64 on {}",
            std::env::consts::ARCH
        );
    }
}

#[test]
fn fp16_is_half_the_size_and_close_to_fp32() {
    if skip_requested("fp16_is_half_the_size_and_close_to_fp32") {
        return;
    }
    let opts = Options {
        imgsz: 640,
        precision: edgedetr_quantizer::Precision::Fp16,
        ..Options::default()
    };
    let built = edgedetr_quantizer::build(state_dict(), &opts).unwrap();
    let fp32 = fp32_model(640);
    let ratio = built.bytes.len() as f64 / fp32.len() as f64;
    eprintln!("fp16 file {} bytes = {ratio:.3} x fp32", built.bytes.len());
    assert!(ratio <= 0.52, "fp16 file is {ratio:.3} x fp32");
    // P3-P5 fed the golden backbone outputs and AIFI, against fp32 fed the same.
    let run = |bytes: &[u8]| -> Vec<Vec<f32>> {
        let model = Model::from_bytes(bytes).unwrap();
        let mut arena = vec![0u8; model.arena_size()];
        let mut s = Session::new(&model, &mut arena).unwrap();
        for n in [
            "backbone_out1",
            "backbone_out2",
            "backbone_out3",
            "layer06_aifi",
        ] {
            s.set_buffer(model.buffer_id(n).unwrap(), &golden("bus_640", n).data)
                .unwrap();
        }
        let from = model
            .producer(model.buffer_id("layer06_aifi").unwrap())
            .unwrap()
            + 1;
        let to = model
            .producer(model.buffer_id("layer25_p5").unwrap())
            .unwrap()
            + 1;
        s.run_ops(from..to).unwrap();
        ["layer19_p3", "layer22_p4", "layer25_p5"]
            .iter()
            .map(|n| values(&s, n))
            .collect()
    };
    let half = run(&edgedetr::std_io::AlignedBytes::from_slice(&built.bytes));
    let full = run(fp32);
    for (n, (h, f)) in ["layer19_p3", "layer22_p4", "layer25_p5"]
        .iter()
        .zip(half.iter().zip(&full))
    {
        let num: f64 = h.iter().zip(f).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
        let den: f64 = f.iter().map(|&b| (b as f64).powi(2)).sum();
        let rel = (num / den).sqrt();
        let max_abs = h
            .iter()
            .zip(f)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let max_ref = f.iter().fold(0f32, |m, v| m.max(v.abs()));
        eprintln!(
            "fp16 vs fp32 {n}: relative RMS {rel:.2e}, max |d| {max_abs:.3e} (max |ref| {max_ref:.1})"
        );
        assert!(rel <= 1e-2, "{n}: fp16 relative error {rel:.3e} > 1e-2");
    }
}

/// The int8 decoder on this CPU's best kernels (bfloat16 linear layers where
/// AMX runs them) against the scalar kernels' f32 decoder: the same queries
/// selected, logits and boxes far closer than the int8 model's own error.
#[test]
fn int8_decoder_on_the_best_kernels_matches_f32_arithmetic() {
    if skip_requested("int8_decoder_on_the_best_kernels_matches_f32_arithmetic") {
        return;
    }
    let model = Model::from_bytes(int8_320()).unwrap();
    let run = |kernels: edgedetr::kernels::Kernels| {
        let mut arena = vec![0u8; model.arena_size()];
        let mut s = Session::with_kernels(&model, &mut arena, kernels).unwrap();
        s.set_input_f32(&golden("bus_320", "input").data).unwrap();
        s.run();
        let topk = model.buffer_id("dec_topk_index").expect("dec_topk_index");
        let idx = s.buffer_i32(topk).unwrap().to_vec();
        (idx, values(&s, "dec_logits"), values(&s, "dec_boxes"))
    };
    let best = edgedetr::kernels::Kernels::from_env();
    let (idx, logits, boxes) = run(best);
    let (idx_f32, logits_f32, boxes_f32) = run(edgedetr::kernels::Kernels::scalar());
    assert_eq!(idx, idx_f32, "{} selects other queries", best.name());
    let (l, b) = (sqnr(&logits, &logits_f32), sqnr(&boxes, &boxes_f32));
    eprintln!(
        "{} (bf16 linears: {}) vs scalar: logits {l:.1} dB, boxes {b:.1} dB",
        best.name(),
        best.linear_bf16_native()
    );
    assert!(l >= 60.0 && b >= 65.0, "logits {l:.1} dB, boxes {b:.1} dB");
}
