//! The `.pt` reader: the reference `model.pt` against `model.safetensors`,
//! small torch-layout samples (`data/pt/make_samples.py`), and hostile inputs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use edgedetr_quantizer::pt::{self, Value, read_pt, read_pt_file, zip};
use edgedetr_quantizer::{QuantizeError, StateDict};

const TINY: &[u8] = include_bytes!("data/pt/tiny.pt");
const CYCLE: &[u8] = include_bytes!("data/pt/cycle.pt");
const SHORT_STORAGE: &[u8] = include_bytes!("data/pt/short_storage.pt");
const EMA_ONLY: &[u8] = include_bytes!("data/pt/ema_only.pt");

/// The reference folder, or `None` when `EDGEDETR_SKIP_REFERENCE=1`; panics
/// with instructions when it is missing.
fn fixture_dir(test: &str) -> Option<PathBuf> {
    if std::env::var("EDGEDETR_SKIP_REFERENCE").is_ok_and(|v| v == "1") {
        eprintln!("{test}: skipped because EDGEDETR_SKIP_REFERENCE=1");
        return None;
    }
    let dir = std::env::var_os("EDGEDETR_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference"))
        .join("fixtures/main");
    let probe = dir.join("model.pt");
    assert!(
        probe.is_file(),
        "reference checkpoint not found at {}.\n\
         Put the edgedetr reference folder (fixtures/main with model.pt and model.safetensors) at \
         ../shared/reference beside the repository, or set EDGEDETR_REFERENCE=/path/to/reference. \
         The fixtures are regenerated with `python make_reference.py --preset main` in reference/seed. \
         To skip these tests deliberately, set EDGEDETR_SKIP_REFERENCE=1.",
        probe.display()
    );
    Some(dir)
}

fn msg(r: Result<pt::Checkpoint, QuantizeError>) -> String {
    match r {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// A torch-layout zip holding `pickle` as `archive/data.pkl`.
fn wrap(pickle: &[u8]) -> Vec<u8> {
    zip::write_stored(&[
        ("archive/data.pkl", pickle),
        ("archive/byteorder", b"little"),
    ])
}

// ---------------------------------------------------------------------------
// The reference checkpoint.

#[test]
fn reference_model_pt_matches_safetensors() {
    let Some(dir) = fixture_dir("reference_model_pt_matches_safetensors") else {
        return;
    };
    let ckpt = read_pt_file(dir.join("model.pt")).unwrap();
    let st = StateDict::read_safetensors(dir.join("model.safetensors")).unwrap();
    assert_eq!(ckpt.from_key, "model");
    let a: BTreeSet<&str> = ckpt.state_dict.keys().collect();
    let b: BTreeSet<&str> = st.keys().collect();
    assert_eq!(
        a.symmetric_difference(&b).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "key sets differ"
    );
    assert_eq!(a.len(), 609);
    for k in st.keys() {
        let (x, y) = (ckpt.state_dict.get(k).unwrap(), st.get(k).unwrap());
        assert_eq!(x.shape, y.shape, "{k}");
        let same = x
            .data
            .iter()
            .zip(&y.data)
            .all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(same, "{k}: values differ");
    }
    // The integer buffers are exactly the safetensors' I64 tensors.
    let raw = std::fs::read(dir.join("model.safetensors")).unwrap();
    let sf = safetensors::SafeTensors::deserialize(&raw).unwrap();
    let ints: BTreeSet<String> = sf
        .tensors()
        .into_iter()
        .filter(|(_, v)| v.dtype() == safetensors::Dtype::I64)
        .map(|(k, _)| k)
        .collect();
    let got: BTreeSet<String> = ckpt.int_buffers.iter().cloned().collect();
    assert_eq!(got, ints);
    assert_eq!(got.len(), 97);
    assert!(got.iter().all(|k| k.ends_with(".num_batches_tracked")));
    // Tensors outside the state dict.
    let attrs: Vec<&str> = ckpt.attributes.keys().collect();
    assert_eq!(attrs, ["model.22.anchors", "model.22.valid_mask", "stride"]);
    assert_eq!(ckpt.attributes.get("stride").unwrap().data, [32.0]);
    let ac = ckpt.anchors_cache.as_ref().unwrap();
    assert_eq!(ac.module, "model.22");
    assert_eq!(ac.anchors.shape, [0]);
    assert_eq!(ac.valid_mask.shape, [0]);
    // The model object keeps its class and attributes.
    assert_eq!(
        ckpt.model.class().unwrap().to_string(),
        "ultralytics.nn.tasks.RTDETRDetectionModel"
    );
    assert_eq!(ckpt.model.get("nc").and_then(Value::as_int), Some(80));
    assert_eq!(
        ckpt.root.get("version").and_then(Value::as_str),
        Some("8.4.190")
    );
    assert_eq!(ckpt.root.get("epoch").and_then(Value::as_int), Some(-1));
}

/// The `"names": {"0": "person", …}` map of manifest.json's `info`, in order.
fn manifest_names(json: &str) -> Vec<String> {
    let start = json.find("\"names\"").expect("manifest has names") + 7;
    let open = start + json[start..].find('{').unwrap() + 1;
    let close = open + json[open..].find('}').unwrap();
    let mut out = Vec::new();
    let body = &json[open..close];
    // "0": "person", "1": "bicycle", ... (names contain no quotes).
    let parts: Vec<&str> = body.split('"').collect();
    for (i, chunk) in parts.chunks(4).enumerate() {
        if chunk.len() < 4 {
            break;
        }
        assert_eq!(chunk[1], i.to_string(), "manifest names out of order");
        out.push(chunk[3].to_owned());
    }
    out
}

#[test]
fn reference_model_pt_names_and_yaml() {
    let Some(dir) = fixture_dir("reference_model_pt_names_and_yaml") else {
        return;
    };
    let ckpt = read_pt_file(dir.join("model.pt")).unwrap();
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let want = manifest_names(&manifest);
    assert_eq!(want.len(), 80);
    assert_eq!(ckpt.names, want);
    assert_eq!(ckpt.names[0], "person");
    assert_eq!(ckpt.names[79], "toothbrush");
    let yaml = ckpt.yaml.as_ref().unwrap();
    assert_eq!(yaml.get("nc").and_then(Value::as_int), Some(80));
    let backbone = yaml.get("backbone").and_then(Value::as_seq).unwrap();
    assert_eq!(backbone.len(), 1);
    let row = backbone[0].as_seq().unwrap();
    assert_eq!(row[0].as_int(), Some(-1));
    assert_eq!(row[1].as_int(), Some(1));
    assert_eq!(row[2].as_str(), Some("MobileNetV4ConvSmall"));
    let head = yaml.get("head").and_then(Value::as_seq).unwrap();
    assert_eq!(head.len(), 22);
    let modules: Vec<&str> = head
        .iter()
        .map(|r| r.as_seq().unwrap()[2].as_str().unwrap())
        .collect();
    assert_eq!(modules[1], "AIFI");
    assert_eq!(modules[7], "BiFPN");
    assert_eq!(modules[8], "RepC3");
    assert_eq!(modules[21], "RTDETRDecoder");
    // [[19, 22, 25], 1, 'RTDETRDecoder', ['nc', 256, 300, 4, 8, 3]]
    let dec = head[21].as_seq().unwrap();
    let from: Vec<i64> = dec[0]
        .as_seq()
        .unwrap()
        .iter()
        .map(|v| v.as_int().unwrap())
        .collect();
    assert_eq!(from, [19, 22, 25]);
    let args = dec[3].as_seq().unwrap();
    assert_eq!(args[0].as_str(), Some("nc"));
    assert_eq!(args[2].as_int(), Some(300));
    // The first head row: [-1, 1, 'Conv', [256, 1, 1, 'None', 1, 1, False]].
    let conv = head[0].as_seq().unwrap()[3].as_seq().unwrap();
    assert_eq!(conv[0].as_int(), Some(256));
    assert_eq!(conv[6].as_bool(), Some(false));
    // train_args survives as a dict.
    let ta = ckpt.root.get("train_args").unwrap();
    assert_eq!(ta.get("imgsz").and_then(Value::as_int), Some(640));
}

#[test]
fn reference_model_pt_truncations() {
    let Some(dir) = fixture_dir("reference_model_pt_truncations") else {
        return;
    };
    let bytes = std::fs::read(dir.join("model.pt")).unwrap();
    let n = bytes.len();
    let mut cuts: Vec<usize> = (0..64).collect();
    cuts.extend((1..200).map(|i| n / 200 * i));
    cuts.extend((n - 200)..n);
    for c in cuts {
        let e = msg(read_pt(&bytes[..c]));
        assert!(e.contains("bad checkpoint"), "{c}: {e}");
    }
}

// ---------------------------------------------------------------------------
// The small samples.

#[test]
fn tiny_sample_state_dict() {
    let c = read_pt(TINY).unwrap();
    assert_eq!(c.from_key, "model");
    let keys: Vec<&str> = c.state_dict.keys().collect();
    assert_eq!(
        keys,
        [
            "model.0.conv0.bn.bias",
            "model.0.conv0.bn.running_mean",
            "model.0.conv0.bn.running_var",
            "model.0.conv0.bn.weight",
            "model.0.conv0.conv.weight",
            "model.1.bias",
            "model.1.weight",
            "model.2.b16",
            "model.2.f64",
            "model.3.bias",
        ]
    );
    assert_eq!(c.int_buffers, ["model.0.conv0.bn.num_batches_tracked"]);
    let sd = &c.state_dict;
    let w = sd
        .get_shaped("model.0.conv0.conv.weight", &[4, 3, 1, 1])
        .unwrap();
    let want: Vec<f32> = (0..12).map(|i| 0.5 + 0.25 * i as f32).collect();
    assert_eq!(w.data, want);
    assert_eq!(
        sd.get("model.0.conv0.bn.bias").unwrap().data,
        [-1.0, -0.5, 0.0, 0.5]
    );
    // A transposed view and an offset view of one shared fp32 storage.
    let lw = sd.get_shaped("model.1.weight", &[2, 3]).unwrap();
    assert_eq!(lw.data, [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
    assert_eq!(sd.get("model.1.bias").unwrap().data, [5.0, 6.0]);
    assert_eq!(sd.get("model.2.b16").unwrap().data, [1.5, 2.5, 3.5]);
    assert_eq!(sd.get("model.2.f64").unwrap().data, [0.25, 0.75]);
    // Non-persistent buffer and plain tensor attributes.
    let attrs: Vec<&str> = c.attributes.keys().collect();
    assert_eq!(
        attrs,
        [
            "model.3.anchors",
            "model.3.cache",
            "model.3.valid_mask",
            "stride"
        ]
    );
    assert_eq!(c.attributes.get("model.3.cache").unwrap().data, [9.0, 10.0]);
    assert_eq!(c.anchors_cache.as_ref().unwrap().module, "model.3");
    assert_eq!(c.names, ["cat", "dog"]);
    // The yaml dict is shared with train_args.cfg: both references see it whole.
    let yaml = c.yaml.as_ref().unwrap();
    assert_eq!(yaml.get("nc").and_then(Value::as_int), Some(2));
    let cfg = c.root.get("train_args").unwrap().get("cfg").unwrap();
    assert_eq!(
        cfg.get("head").and_then(Value::as_seq).map(<[_]>::len),
        Some(2)
    );
    match (yaml, cfg) {
        (Value::Dict(a), Value::Dict(b)) => assert!(std::sync::Arc::ptr_eq(a, b)),
        _ => panic!("yaml is not a dict"),
    }
    let dbg = format!("{c:?}");
    assert!(dbg.contains("RTDETRDetectionModel"), "{dbg}");
}

#[test]
fn ema_only_checkpoint_uses_ema() {
    let c = read_pt(EMA_ONLY).unwrap();
    assert_eq!(c.from_key, "ema");
    assert_eq!(c.state_dict.get("model.0.weight").unwrap().data, [2.0, 3.0]);
    assert_eq!(c.names, ["a"]);
    assert!(c.yaml.is_none());
}

#[test]
fn module_cycle_is_an_error() {
    let e = msg(read_pt(CYCLE));
    assert!(e.contains("recursive reference"), "{e}");
}

#[test]
fn short_storage_is_an_error() {
    let e = msg(read_pt(SHORT_STORAGE));
    assert!(e.contains("reaches past its storage"), "{e}");
}

#[test]
fn samples_survive_truncation_and_corruption() {
    for s in [TINY, CYCLE, SHORT_STORAGE, EMA_ONLY] {
        for n in 0..s.len() {
            assert!(read_pt(&s[..n]).is_err(), "prefix {n}");
        }
        for i in 0..s.len() {
            for x in [0u8, 0x7f, 0xff] {
                let mut m = s.to_vec();
                m[i] ^= x | 1;
                let _ = read_pt(&m);
            }
        }
    }
    // Every byte of the tiny sample's pickle to structural opcodes and edge
    // values (the fuzz target `pickle_vm` covers the rest).
    let a = zip::Archive::parse(TINY).unwrap();
    let pkl = a.read("tiny/data.pkl").unwrap();
    let mut m = pkl.to_vec();
    for i in 0..m.len() {
        let orig = m[i];
        for x in [
            0x00,
            0x01,
            orig ^ 1,
            b'(',
            b'.',
            b'0',
            b'2',
            b'R',
            b'b',
            b'h',
            0x7f,
            0x80,
            0xff,
        ] {
            m[i] = x;
            let _ = pt::unpickle(&m);
        }
        m[i] = orig;
    }
}

// ---------------------------------------------------------------------------
// Hostile and foreign files.

#[test]
fn forbidden_globals() {
    for (module, name) in [
        ("os", "system"),
        ("builtins", "eval"),
        ("subprocess", "Popen"),
        ("builtins", "exec"),
        ("nt", "system"),
        ("torch", "load"),
    ] {
        // {'model': os.system('echo pwned')}
        let mut p = b"\x80\x02}q\x00X\x05\x00\x00\x00modelq\x01c".to_vec();
        p.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        p.extend_from_slice(b"X\x0a\x00\x00\x00echo pwned\x85Rs.");
        let e = msg(read_pt(&wrap(&p)));
        assert!(
            e.contains(&format!("global `{module}.{name}` is not allowed")),
            "{e}"
        );
    }
}

#[test]
fn legacy_and_foreign_files() {
    // torch.save(..., _use_new_zipfile_serialization=False) starts with the
    // pickled magic number 0x1950a86a20f9469cfc6c.
    let legacy = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.";
    assert_eq!(
        msg(read_pt(legacy)),
        format!("bad checkpoint: {}", pt::LEGACY_MESSAGE)
    );
    let e = msg(read_pt(b"GIF89a...."));
    assert!(e.contains("not a torch zip checkpoint"), "{e}");
    let e = msg(read_pt(b""));
    assert!(e.contains("not a torch zip checkpoint"), "{e}");
    // A zip without data.pkl.
    let z = zip::write_stored(&[("archive/data/0", b"1234"), ("readme.txt", b"hi")]);
    let e = msg(read_pt(&z));
    assert!(e.contains("no `*/data.pkl`"), "{e}");
    // data.pkl nested too deep is not a checkpoint either.
    let z = zip::write_stored(&[("a/b/data.pkl", b"\x80\x02}.")]);
    assert!(msg(read_pt(&z)).contains("no `*/data.pkl`"));
    // A pickle that is not a dict, a dict without a model.
    assert!(msg(read_pt(&wrap(b"\x80\x02N."))).contains("not an ultralytics checkpoint dict"));
    let e = msg(read_pt(&wrap(b"\x80\x02}.")));
    assert!(e.contains("neither `ema` nor `model`"), "{e}");
    // A big-endian archive.
    let z = zip::write_stored(&[
        ("archive/data.pkl", b"\x80\x02}."),
        ("archive/byteorder", b"big"),
    ]);
    assert!(msg(read_pt(&z)).contains("byte order"));
}

#[test]
fn huge_declared_sizes() {
    let z = wrap(b"\x80\x02}.");
    let cd = z
        .windows(4)
        .position(|w| w == [0x50, 0x4b, 0x01, 0x02])
        .unwrap();
    let mut m = z.clone();
    m[cd + 20..cd + 28].copy_from_slice(&[0xfe, 0xff, 0xff, 0x7f, 0xfe, 0xff, 0xff, 0x7f]);
    assert!(msg(read_pt(&m)).contains("larger than the file"));
    // Pickle lengths beyond the input: BINBYTES8, BINUNICODE8, LONG4, FRAME.
    for p in [
        &b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f"[..],
        b"\x80\x04\x8d\x00\x00\x00\x00\x00\x01\x00\x00",
        b"\x80\x02\x8b\x00\x00\x00\x40",
        b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x10\x00",
        b"\x80\x02B\xff\xff\xff\xff",
    ] {
        let e = msg(read_pt(&wrap(p)));
        assert!(e.contains("exceeds"), "{e}");
    }
}

#[test]
fn deep_nesting_cycles_and_unknown_opcodes() {
    let mut p = b"\x80\x02".to_vec();
    for _ in 0..100_000 {
        p.extend_from_slice(b"(]");
    }
    assert!(msg(read_pt(&wrap(&p))).contains("nested deeper"));
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b']', 100_000));
    p.extend(std::iter::repeat_n(b'a', 99_999));
    p.push(b'.');
    assert!(msg(read_pt(&wrap(&p))).contains("nested deeper"));
    // {'model': l} with l = [l]: a cycle, then not a module.
    let p = b"\x80\x02}q\x00X\x05\x00\x00\x00model]q\x01h\x01as.";
    let e = msg(read_pt(&wrap(p)));
    assert!(e.contains("not an nn.Module"), "{e}");
    let e = msg(read_pt(&wrap(b"\x80\x02}\xf0.")));
    assert!(e.contains("opcode 0xf0") && e.contains("offset 3"), "{e}");
}

#[test]
fn tensor_with_short_storage_built_by_hand() {
    // {'model': Model(_parameters={'w': _rebuild_tensor_v2(
    //     pid('storage', HalfStorage, '0', 'cpu', 4), 2, (3,), (1,), False, {})},
    //     _modules={})} with a 4-element record: offset 2 + 3 elements > 4.
    let mut p = b"\x80\x02}(X\x05\x00\x00\x00modelcultralytics.nn.tasks\nM\n)\x81}(X\x0b\x00\x00\x00_parameters}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nHalfStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x02K\x03\x85K\x01\x85\x89}tRsX\x08\x00\x00\x00_modules}ubu.".to_vec();
    let ok = |p: &[u8]| {
        zip::write_stored(&[
            ("archive/data.pkl", p),
            ("archive/data/0", &[0, 60, 0, 60, 0, 60, 0, 60]),
        ])
    };
    let e = msg(read_pt(&ok(&p)));
    assert!(e.contains("reaches past its storage"), "{e}");
    // Offset 1 fits and reads fp16 1.0 three times.
    let at = p.windows(4).position(|w| w == b"QK\x02K").unwrap();
    p[at + 2] = 1;
    let c = read_pt(&ok(&p)).unwrap();
    assert_eq!(c.state_dict.get("w").unwrap().data, [1.0, 1.0, 1.0]);
    // Storage record missing.
    let z = zip::write_stored(&[("archive/data.pkl", &p)]);
    assert!(msg(read_pt(&z)).contains("storage record `archive/data/0` is missing"));
}
