//! The `edgedetr` binary: the happy path of every command, and one clear error
//! line (never a panic) for each kind of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn reference() -> Option<PathBuf> {
    if std::env::var("EDGEDETR_SKIP_REFERENCE").is_ok_and(|v| v == "1") {
        eprintln!("skipped because EDGEDETR_SKIP_REFERENCE=1");
        return None;
    }
    let dir = std::env::var_os("EDGEDETR_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference"));
    assert!(
        dir.join("fixtures/main/model.safetensors").is_file(),
        "reference fixtures not found at {}: put the reference folder at ../shared/reference or set \
         EDGEDETR_REFERENCE (EDGEDETR_SKIP_REFERENCE=1 skips these tests)",
        dir.display()
    );
    Some(dir.join("fixtures/main"))
}

fn edgedetr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgedetr"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgedetr-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A 320 px model quantized once per test binary through the CLI itself.
fn model(fix: &Path) -> &'static PathBuf {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| {
        let out = tmp("model").join("m320.edr");
        let o = edgedetr(&[
            "quantize",
            fix.join("model.safetensors").to_str().unwrap(),
            "--imgsz",
            "320",
            "--precision",
            "fp32",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "quantize failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    })
}

/// Asserts a failed run with one `edgedetr: error:` line mentioning `needle`.
/// The one JSON value a successful command printed on stdout (its stderr
/// in the message otherwise).
fn json_of(o: Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(String::from_utf8(o.stdout).unwrap().trim()).unwrap()
}

fn assert_error(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "panic: {err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(lines[0].starts_with("edgedetr: error:"), "{err}");
    assert!(lines[0].contains(needle), "`{needle}` not in: {err}");
}

#[test]
fn happy_path_detect_json_save_dump_inspect_bench() {
    let Some(fix) = reference() else { return };
    let m = model(&fix);
    let bus = fix.join("images/bus.jpg");
    let save = tmp("save");
    let dump = tmp("dump");
    let o = edgedetr(&[
        "detect",
        m.to_str().unwrap(),
        bus.to_str().unwrap(),
        "--json",
        "--conf",
        "0.05",
        "--save",
        save.to_str().unwrap(),
        "--dump",
        dump.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line = String::from_utf8(o.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON object");
    assert_eq!(v["width"], 810);
    assert_eq!(v["height"], 1080);
    let dets = v["detections"].as_array().unwrap();
    assert!(!dets.is_empty());
    for d in dets {
        assert!(d["score"].as_f64().unwrap() > 0.05);
        assert_eq!(d["box"].as_array().unwrap().len(), 4);
        assert!(d["class"].is_string() && d["class_id"].is_u64());
        // Names come from the checkpoint's metadata (COCO names in the fixture).
        assert!(!d["class"].as_str().unwrap().starts_with("class"), "{d}");
    }
    let jpg = std::fs::read(save.join("bus.jpg")).expect("annotated image");
    assert_eq!(&jpg[..2], &[0xFF, 0xD8]);
    for n in [
        "input",
        "backbone_out1",
        "layer19_p3",
        "dec_enc_scores_all",
        "dec_topk_index",
        "dec_boxes",
        "output_topk",
    ] {
        assert!(
            dump.join("bus").join(format!("{n}.npy")).is_file(),
            "dump lacks {n}"
        );
    }

    // The preprocessed tensor path, and --max-det.
    let npy = fix.join("golden/bus_320/input.npy");
    let o = edgedetr(&[
        "detect",
        m.to_str().unwrap(),
        npy.to_str().unwrap(),
        "--conf",
        "0",
        "--max-det",
        "3",
    ]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("3 detections"), "{text}");

    let o = edgedetr(&["inspect", m.to_str().unwrap()]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("arena")
            && text.contains("deform_sample")
            && text.contains("classes      80"),
        "{text}"
    );

    let o = edgedetr(&[
        "bench",
        m.to_str().unwrap(),
        "--iters",
        "1",
        "--warmup",
        "0",
        "--json",
    ]);
    let v = json_of(o);
    for k in ["backbone_ms", "neck_ms", "decoder_ms", "ms", "arena_bytes"] {
        assert!(v[k].as_f64().is_some(), "bench JSON lacks {k}");
    }
}

/// `--threads 2` on `detect` and `bench`: the same detections as one
/// thread, the thread count in the bench JSON, and `--threads 0` refused.
#[test]
fn detect_and_bench_on_two_threads() {
    let Some(fix) = reference() else { return };
    let m = model(&fix);
    let bus = fix.join("images/bus.jpg");
    let detect = |threads: &str| {
        let o = edgedetr(&[
            "detect",
            m.to_str().unwrap(),
            bus.to_str().unwrap(),
            "--json",
            "--conf",
            "0.05",
            "--threads",
            threads,
        ]);
        let v = json_of(o);
        v["detections"].clone()
    };
    let two = detect("2");
    assert!(!two.as_array().unwrap().is_empty());
    assert_eq!(two, detect("1"));
    let o = edgedetr(&[
        "bench",
        m.to_str().unwrap(),
        "--iters",
        "1",
        "--warmup",
        "0",
        "--threads",
        "2",
        "--json",
    ]);
    let v = json_of(o);
    assert_eq!(v["threads"], 2);
    assert!(v["ms"].as_f64().unwrap() > 0.0);
    let o = edgedetr(&[
        "bench",
        m.to_str().unwrap(),
        "--iters",
        "1",
        "--threads",
        "2",
    ]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains(", 2 threads,"), "{text}");
    for cmd in ["detect", "bench"] {
        let mut args = vec![cmd, m.to_str().unwrap()];
        if cmd == "detect" {
            args.push(bus.to_str().unwrap());
        }
        args.extend(["--threads", "0"]);
        assert_error(&edgedetr(&args), "--threads must be at least 1");
    }
}

#[test]
fn quantize_pt_fp16_and_int8_with_a_report() {
    let Some(fix) = reference() else { return };
    let dir = tmp("quant");
    let pt = fix.join("model.pt");
    let out = dir.join("pt16.edr");
    let o = edgedetr(&[
        "quantize",
        pt.to_str().unwrap(),
        "--imgsz",
        "320",
        "--precision",
        "fp16",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("80 classes"));
    let calib = fix.join("../../calib");
    let out8 = dir.join("pt8.edr");
    let report = dir.join("report.json");
    let o = edgedetr(&[
        "quantize",
        pt.to_str().unwrap(),
        "--imgsz",
        "320",
        "--precision",
        "int8",
        "--calib",
        calib.to_str().unwrap(),
        "--calib-count",
        "2",
        "--report-images",
        "1",
        "--report",
        report.to_str().unwrap(),
        "--verbose",
        "-o",
        out8.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let layers = v["layers"].as_array().unwrap();
    let int8: Vec<&serde_json::Value> = layers
        .iter()
        .filter(|l| l["precision"] == "int8" || l["precision"] == "int8 gptq")
        .collect();
    assert!(int8.len() > 50);
    let gptq = layers
        .iter()
        .filter(|l| l["precision"] == "int8 gptq")
        .count();
    assert!(gptq >= 40, "only {gptq} convolutions rounded with GPTQ");
    assert!(
        int8.iter().filter(|l| l["sqnr_db"].is_f64()).count() > 50,
        "local SQNR missing"
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("SQNR dB") && text.contains("int8 weights") && text.contains("f16 weights"),
        "{text}"
    );
    // The calibration folder's images beyond --calib-count are held out for
    // the end-to-end check against fp32.
    assert!(
        text.contains("end-to-end check against fp32 on 8 held-out images")
            && text.contains("top-10 agreement"),
        "{text}"
    );
    // The stem reads the u8 image directly; the report still measures it.
    let stem = layers
        .iter()
        .find(|l| l["layer"] == "model.0.conv0.convbn_0")
        .expect("the stem convolution in the report");
    assert!(
        stem["precision"].as_str().unwrap().starts_with("int8"),
        "{stem}"
    );
    assert!(stem["sqnr_db"].is_f64(), "stem SQNR missing: {stem}");

    // detect on the int8 model: an image (u8 path) and the golden tensor of
    // the same image (f32 path) see the same pixels, so the same detections.
    let dump = dir.join("dump8");
    let o = edgedetr(&[
        "detect",
        out8.to_str().unwrap(),
        fix.join("images/bus.jpg").to_str().unwrap(),
        "--json",
        "--conf",
        "0",
        "--max-det",
        "20",
        "--dump",
        dump.to_str().unwrap(),
    ]);
    let image = json_of(o);
    let o = edgedetr(&[
        "detect",
        out8.to_str().unwrap(),
        fix.join("golden/bus_320/input.npy").to_str().unwrap(),
        "--json",
        "--conf",
        "0",
        "--max-det",
        "20",
    ]);
    let tensor = json_of(o);
    let (a, b) = (
        image["detections"].as_array().unwrap(),
        tensor["detections"].as_array().unwrap(),
    );
    assert_eq!((a.len(), b.len()), (20, 20));
    assert!(a.iter().all(|d| d["score"].as_f64().unwrap().is_finite()));
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x["class_id"], y["class_id"]);
        assert_eq!(x["score"], y["score"]);
    }
    // The dumped input is the image, dequantised: pixel / 255.
    let dumped = edgedetr::std_io::read_npy(dump.join("bus/input.npy")).unwrap();
    let golden = edgedetr::std_io::read_npy(fix.join("golden/bus_320/input.npy")).unwrap();
    assert_eq!(dumped.shape, golden.shape);
    assert!(
        dumped
            .data
            .iter()
            .zip(&golden.data)
            .all(|(a, b)| (a - b).abs() <= 1e-6)
    );
    let o = edgedetr(&[
        "bench",
        out8.to_str().unwrap(),
        "--iters",
        "1",
        "--warmup",
        "0",
        "--layers",
        "--json",
    ]);
    // The per-layer profile: every op, shares adding up to at most the
    // frame, the stem's 22.1 M MACs.
    let v = json_of(o);
    let layers = v["layers"]
        .as_array()
        .expect("bench --layers --json has layers");
    assert!(layers.len() > 150, "{} layers", layers.len());
    let share: f64 = layers.iter().map(|l| l["share"].as_f64().unwrap()).sum();
    assert!(
        share > 0.5 && share <= 1.0 + 1e-9,
        "shares add up to {share}"
    );
    assert_eq!(layers[0]["macs"], 22_118_400, "{}", layers[0]);
    assert!(layers[0]["gmac_per_s"].as_f64().unwrap() > 0.0);

    // inspect states the input type and, per layer, the stored weight type,
    // the compute type and the MACs.
    let (text, cols) = inspect_stem(&out8);
    assert!(text.contains("u8 pixels"), "{text}");
    // #, stage, op, weights, compute, name, output, weight B, MMAC
    assert_eq!(cols[2..5], ["conv2d_i8", "i8", "int8"], "{cols:?}");
    // 32 × 160 × 160 outputs × 3 × 3 × 3 = 22.1 M.
    assert_eq!(cols[8], "22.1", "{cols:?}");
    let (text, cols) = inspect_stem(&out);
    assert!(text.contains("f32 (pixel / 255)"), "{text}");
    assert_eq!(cols[2..5], ["conv2d", "f16", "f32"], "{cols:?}");
}

/// `inspect`'s output for `model`, and the columns of its stem convolution's row.
fn inspect_stem(model: &Path) -> (String, Vec<String>) {
    let o = edgedetr(&["inspect", model.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let cols = text
        .lines()
        .find(|l| l.contains("model.0.conv0.convbn_0"))
        .expect("the stem in inspect")
        .split_whitespace()
        .map(String::from)
        .collect();
    (text, cols)
}

#[test]
fn bad_inputs_give_one_clear_error_line() {
    let Some(fix) = reference() else { return };
    let m = model(&fix);
    let ms = m.to_str().unwrap();
    let dir = tmp("bad");
    let bus = fix.join("images/bus.jpg");

    // Missing files.
    assert_error(
        &edgedetr(&["detect", "/no/such/model.edr", bus.to_str().unwrap()]),
        "/no/such/model.edr",
    );
    assert_error(
        &edgedetr(&["detect", ms, "/no/such/image.jpg"]),
        "/no/such/image.jpg",
    );
    assert_error(
        &edgedetr(&["inspect", "/no/such/model.edr"]),
        "cannot read model",
    );

    // Not a model, a corrupted model, a model of another version.
    assert_error(
        &edgedetr(&["inspect", bus.to_str().unwrap()]),
        "not an edgedetr model file",
    );
    let bytes = std::fs::read(m).unwrap();
    let mut corrupt = bytes.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x40;
    let p = dir.join("corrupt.edr");
    std::fs::write(&p, &corrupt).unwrap();
    assert_error(
        &edgedetr(&["detect", p.to_str().unwrap(), bus.to_str().unwrap()]),
        "corrupt",
    );
    let mut v2 = bytes.clone();
    v2[8] = 2;
    let p = dir.join("v2.edr");
    std::fs::write(&p, &v2).unwrap();
    assert_error(
        &edgedetr(&["detect", p.to_str().unwrap(), bus.to_str().unwrap()]),
        "version 2",
    );
    let p = dir.join("short.edr");
    std::fs::write(&p, &bytes[..1000]).unwrap();
    assert_error(&edgedetr(&["bench", p.to_str().unwrap()]), "truncated");

    // Not images.
    let p = dir.join("notes.jpg");
    std::fs::write(&p, b"this is text, not a JPEG").unwrap();
    assert_error(&edgedetr(&["detect", ms, p.to_str().unwrap()]), "notes.jpg");
    let jpeg = std::fs::read(&bus).unwrap();
    let p = dir.join("cut.jpg");
    std::fs::write(&p, &jpeg[..jpeg.len() / 3]).unwrap();
    assert_error(&edgedetr(&["detect", ms, p.to_str().unwrap()]), "cut.jpg");

    // A tensor of a size the model cannot take.
    let p = fix.join("golden/bus_640/input.npy");
    assert_error(
        &edgedetr(&["detect", ms, p.to_str().unwrap()]),
        "[1, 3, 320, 320]",
    );

    // Bad options.
    assert_error(
        &edgedetr(&["detect", ms, bus.to_str().unwrap(), "--conf", "2"]),
        "--conf",
    );
    let ck = fix.join("model.safetensors");
    let out = dir.join("x.edr");
    assert_error(
        &edgedetr(&[
            "quantize",
            ck.to_str().unwrap(),
            "--imgsz",
            "100",
            "-o",
            out.to_str().unwrap(),
        ]),
        "multiple of 32",
    );
    assert_error(
        &edgedetr(&[
            "quantize",
            "/no/such.safetensors",
            "-o",
            out.to_str().unwrap(),
        ]),
        "/no/such.safetensors",
    );
    assert_error(
        &edgedetr(&[
            "quantize",
            bus.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]),
        "unsupported checkpoint",
    );
    let calib = fix.parent().unwrap().parent().unwrap().join("calib");
    for (flag, value, needle) in [
        ("--weight-rounding", "adaround", "use gptq or nearest"),
        ("--range-method", "entropy", "use mse, minmax or percentile"),
    ] {
        assert_error(
            &edgedetr(&[
                "quantize",
                ck.to_str().unwrap(),
                "--precision",
                "int8",
                "--calib",
                calib.to_str().unwrap(),
                flag,
                value,
                "-o",
                out.to_str().unwrap(),
            ]),
            needle,
        );
    }
}

/// Issue 13: hostile images, out-of-range sizes and calibration problems end
/// in one line naming the culprit (or a warning and a model), never an abort.
#[test]
fn hostile_inputs_and_calibration_problems() {
    let Some(fix) = reference() else { return };
    let m = model(&fix);
    let ms = m.to_str().unwrap();
    let dir = tmp("hostile");
    let ck = fix.join("model.pt");
    let cks = ck.to_str().unwrap();
    let out = dir.join("x.edr");
    let outs = out.to_str().unwrap();

    // A 68-byte PNG declaring 100000×100000 pixels aborted the process.
    let png = dir.join("huge.png");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../vision/tests/data/fuzz/png/100000x100000_rgb"),
        &png,
    )
    .unwrap();
    let o = edgedetr(&["detect", ms, png.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_error(&o, "100000");

    // An input size whose arena would be 7.9 GB.
    let o = edgedetr(&["quantize", cks, "--imgsz", "6400", "-o", outs]);
    assert_eq!(o.status.code(), Some(1));
    assert_error(&o, "--imgsz 6400: use a multiple of 32 from 64 to 2048");
    assert_error(
        &edgedetr(&["quantize", cks, "--imgsz", "32", "-o", outs]),
        "--imgsz 32",
    );

    // A missing checkpoint is named once.
    let o = edgedetr(&["quantize", "nonexist.pt", "-o", outs]);
    assert_error(&o, "cannot read nonexist.pt: ");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr)
            .matches("nonexist.pt")
            .count(),
        1
    );

    // A text file given as a model.
    let notes = dir.join("notes.edr");
    std::fs::write(&notes, b"a text file, 26 bytes long").unwrap();
    assert_error(
        &edgedetr(&["inspect", notes.to_str().unwrap()]),
        "not an edgedetr model file",
    );

    // Calibration options.
    let calib = fix.join("../../calib");
    let int8 = |extra: &[&str]| {
        let mut args = vec![
            "quantize",
            cks,
            "--imgsz",
            "320",
            "--precision",
            "int8",
            "-o",
            outs,
        ];
        args.extend_from_slice(extra);
        edgedetr(&args)
    };
    let cs = calib.to_str().unwrap();
    assert_error(
        &int8(&["--calib", cs, "--calib-count", "0"]),
        "--calib-count 0",
    );
    let o = int8(&["--calib", cs, "--keep-float", "model.9x"]);
    assert_error(
        &o,
        "--keep-float model.9x: no layer name starts with it; closest: model.9",
    );

    // An unreadable calibration image is named, skipped, and calibration goes on.
    let mixed = dir.join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    std::fs::write(mixed.join("a_garbage.jpg"), b"not a JPEG at all").unwrap();
    let good: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&calib)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .collect();
        v.sort();
        v.truncate(2);
        v
    };
    for g in &good {
        std::fs::copy(g, mixed.join(g.file_name().unwrap())).unwrap();
    }
    let ms_ = mixed.to_str().unwrap();
    let o = int8(&[
        "--calib",
        ms_,
        "--weight-rounding",
        "nearest",
        "--report-images",
        "1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let warning = err.lines().find(|l| l.contains("warning")).expect(&err);
    assert!(
        warning.starts_with("edgedetr: warning: skipping ")
            && warning.contains("a_garbage.jpg: not a JPEG or PNG image")
            && warning.matches("a_garbage.jpg").count() == 1,
        "{warning}"
    );
    assert!(
        !err.contains('\r'),
        "a progress bar written to a pipe: {err:?}"
    );
    for phase in ["calibration 1/2", "calibration 2/2", "local SQNR"] {
        assert!(err.contains(phase), "phase `{phase}` not shown: {err}");
    }
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("precision mix") && text.contains("lowest local SQNR"),
        "{text}"
    );
    assert!(
        !text.contains("SQNR dB"),
        "the full table without --verbose: {text}"
    );
    // Too few readable images: one line saying how many.
    for g in &good[1..] {
        std::fs::remove_file(mixed.join(g.file_name().unwrap())).unwrap();
    }
    std::fs::write(mixed.join("b_garbage.png"), b"\x89PNG but not really").unwrap();
    let o = int8(&["--calib", ms_]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "edgedetr: error: calibration: only 1 of 3 calibration images could be read"
        ),
        "{err}"
    );
    assert!(!err.contains("model.pt"), "blames the checkpoint: {err}");
}
