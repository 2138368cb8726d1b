//! Writes `seeds/pickle_vm/*` (the pickles of the quantizer's `.pt` samples)
//! and `seeds/model_file/*` (small valid model files that together use every
//! op kind the public graph builder offers: float, int8 and decoder ops). Run from `fuzz/`:
//! `CARGO_TARGET_DIR=… cargo run --manifest-path seedgen/Cargo.toml`.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use edgedetr::format::{Meta, PREPROCESS_RGB, PREPROCESS_SCALE_255};
use edgedetr::kernels::Act;
use edgedetr_quantizer::builder::GraphBuilder;
use edgedetr_quantizer::fold::FoldedConv;
use edgedetr_quantizer::pt;
use edgedetr_quantizer::recipe::Recipe;

fn ramp(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * scale)
        .collect()
}

fn model_seed() -> Vec<u8> {
    let mut g = GraphBuilder::new();
    let x = g.input("input", 3, 32, 32);
    let c1 = g.conv(
        "c1",
        x,
        &FoldedConv {
            cout: 4,
            cin_per_group: 3,
            k: 3,
            weight: ramp(4 * 3 * 9, 0.05),
            bias: ramp(4, 0.1),
        },
        2,
        Act::Silu,
    );
    let dw = g.conv(
        "dw",
        c1,
        &FoldedConv {
            cout: 4,
            cin_per_group: 1,
            k: 3,
            weight: ramp(4 * 9, 0.1),
            bias: ramp(4, 0.1),
        },
        1,
        Act::Relu6,
    );
    let up = g.upsample2x("up", dw);
    let pw = g.linear("pw", x, &ramp(12, 0.2), &ramp(4, 0.1), Act::None);
    let sum = g.add("sum", up, pw, Act::Relu);
    let t = g.concat_tokens("tokens", &[dw]);
    let ln = g.layer_norm("ln", t, None, &[1.0; 4], &[0.0; 4], 1e-5);
    let att = g.attention("att", ln, ln, ln, 2);
    let act = g.activation("gelu", att, Act::Gelu);
    g.export(sum, "sum");
    g.export(act, "att");
    let meta = Meta {
        input_size: 32,
        in_channels: 3,
        num_classes: 2,
        preprocess: PREPROCESS_RGB | PREPROCESS_SCALE_255,
        input_buffer: x.id,
        ..Meta::default()
    };
    g.finish(meta, "fuzz seed", &["a", "b"])
}

fn conv(cout: usize, cin_per_group: usize, k: usize, seed: usize) -> FoldedConv {
    let n = cout * cin_per_group * k * k;
    FoldedConv {
        cout,
        cin_per_group,
        k,
        weight: ramp(n + seed, 0.04)[seed..].to_vec(),
        bias: ramp(cout, 0.05),
    }
}

fn meta(size: usize, input: u32) -> Meta {
    Meta {
        input_size: size as u32,
        in_channels: 3,
        num_classes: 2,
        preprocess: PREPROCESS_RGB | PREPROCESS_SCALE_255,
        input_buffer: input,
        ..Meta::default()
    }
}

/// The int8 ops: a stem reading the u8 image, SiLU (lookup table), ReLU6 and
/// ReLU convs, a depthwise conv, the upsampling fused into the weighted sum,
/// and the (de)quantisations between int8 and float ops.
fn int8_seed() -> Vec<u8> {
    let ranges: HashMap<String, (f32, f32)> = [
        ("input", (0.0, 1.0)),
        ("model.0", (-3.0, 3.0)),
        ("model.0#act", (-0.3, 3.0)),
        ("model.1", (0.0, 6.0)),
        ("model.2", (-1.5, 2.0)),
        ("model.3", (-1.0, 1.0)),
        ("model.5", (-2.0, 2.5)),
        ("gelu", (-0.2, 2.5)),
        ("model.6", (-1.0, 1.0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut g = GraphBuilder::with_recipe(Recipe {
        int8: true,
        ranges,
        ..Recipe::default()
    });
    let x = g.input_for("input", 3, 32, 32, "model.0");
    let a = g.conv("model.0", x, &conv(4, 3, 3, 0), 1, Act::Silu);
    let b = g.conv("model.1", a, &conv(4, 1, 3, 3), 2, Act::Relu6);
    let c = g.conv("model.2", b, &conv(4, 4, 1, 5), 1, Act::None);
    let d = g.conv("model.3", a, &conv(4, 4, 1, 7), 1, Act::None);
    let y = g.upsample_weighted_sum("model.4", "model.5", &[c, d], 0, &[0.7, 0.45]);
    let z = g.activation("gelu", y, Act::Gelu);
    let w = g.conv("model.6", z, &conv(4, 4, 1, 9), 1, Act::Relu);
    let w = g.float_of(w);
    g.export(y, "sum");
    g.export(w, "out");
    g.finish(meta(32, x.id), "fuzz seed int8", &["a", "b"])
}

/// The decoder ops: token concat and mask, query selection (top-k, gather,
/// constant gather), deformable attention (softmax groups, locations,
/// sampling), box refinement and the final top-k.
fn decoder_seed() -> Vec<u8> {
    let mut g = GraphBuilder::new();
    let x = g.input("input", 3, 32, 32);
    let l0 = g.conv("l0", x, &conv(8, 3, 1, 0), 2, Act::Relu);
    let l1 = g.conv("l1", l0, &conv(8, 8, 3, 1), 2, Act::None);
    let feats = g.concat_tokens("feats", &[l0, l1]);
    let n = feats.w;
    let valid: Vec<f32> = (0..n).map(|i| (i % 5 != 0) as u8 as f32).collect();
    let masked = g.mask_tokens("masked", feats, &valid);
    let scores = g.linear(
        "scores",
        masked,
        &ramp(2 * 8, 0.2),
        &ramp(2, 0.1),
        Act::None,
    );
    let k = 4;
    let topk = g.topk_tokens("topk", scores, k);
    let q = g.gather("query", topk, k, masked);
    let anchors = g.gather_const("anchors", topk, k, 4, n, &ramp(4 * n, 0.1));
    let reference = g.activation("reference", anchors, Act::Sigmoid);
    let (heads, levels, points) = (2, 2, 2);
    let lp = levels * points;
    let off = g.linear(
        "off",
        q,
        &ramp(2 * heads * lp * 8, 0.05),
        &ramp(2 * heads * lp, 0.1),
        Act::None,
    );
    let awl = g.linear(
        "awl",
        q,
        &ramp(heads * lp * 8, 0.05),
        &ramp(heads * lp, 0.1),
        Act::None,
    );
    let aw = g.softmax_groups("aw", awl, lp);
    let loc = g.deform_locations("loc", reference, off, points);
    let sampled = g.deform_sample(
        "sampled",
        feats,
        loc,
        aw,
        heads,
        points,
        &[(16, 16), (8, 8)],
    );
    let delta = g.linear(
        "delta",
        sampled,
        &ramp(4 * 8, 0.1),
        &ramp(4, 0.1),
        Act::None,
    );
    let boxes = g.refine_boxes("boxes", delta, reference);
    let logits = g.linear(
        "logits",
        sampled,
        &ramp(2 * 8, 0.1),
        &ramp(2, 0.1),
        Act::None,
    );
    let (rows, query) = g.final_topk("output_topk", "output_topk_query", logits, boxes, 5);
    g.export_id(rows);
    g.export_id(query);
    g.finish(meta(32, x.id), "fuzz seed decoder", &["a", "b"])
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let pk = root.join("seeds/pickle_vm");
    let mf = root.join("seeds/model_file");
    fs::create_dir_all(&pk).unwrap();
    fs::create_dir_all(&mf).unwrap();
    let samples = root.join("../quantizer/tests/data/pt");
    for e in fs::read_dir(&samples).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "pt") {
            let bytes = fs::read(&p).unwrap();
            let a = pt::zip::Archive::parse(&bytes).unwrap();
            let pkl = a
                .entries()
                .iter()
                .find(|e| e.name.ends_with("/data.pkl"))
                .unwrap();
            let data = a.read(&pkl.name).unwrap();
            let out = pk.join(format!("{}.pkl", p.file_stem().unwrap().to_string_lossy()));
            fs::write(&out, data).unwrap();
            println!("{} ({} bytes)", out.display(), data.len());
        }
    }
    // Protocol 4/5 features the samples (protocol 2, like torch.save) lack.
    let extra: [(&str, &[u8]); 3] = [
        // {'a': [1, -2, 3.5, True, None], 'b': (b'xy', 'é'), 'c': {1: 'x'}}, protocol 5
        (
            "proto5_dict.pkl",
            b"\x80\x05\x95<\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00\x88Ne\x8c\x01b\x94C\x02xy\x94\x8c\x02\xc3\xa9\x94\x86\x94\x8c\x01c\x94}\x94K\x01\x8c\x01x\x94su.",
        ),
        // {1, 2}, protocol 4
        (
            "proto4_set.pkl",
            b"\x80\x04\x95\t\x00\x00\x00\x00\x00\x00\x00\x8f\x94(K\x01K\x02\x90.",
        ),
        // collections.OrderedDict([('w', 1), ('b', None)]), protocol 2
        (
            "ordered_dict.pkl",
            b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00wq\x02K\x01X\x01\x00\x00\x00bq\x03Nu.",
        ),
    ];
    for (name, data) in extra {
        fs::write(pk.join(name), data).unwrap();
    }
    for (name, m) in [
        ("small_graph.edgedetr", model_seed()),
        ("int8_graph.edgedetr", int8_seed()),
        ("decoder_graph.edgedetr", decoder_seed()),
    ] {
        // Every seed must be a valid model that runs within the fuzz
        // target's 1 MiB arena limit.
        let aligned = edgedetr::std_io::AlignedBytes::from_slice(&m);
        let model = edgedetr::Model::from_bytes(aligned.as_slice())
            .unwrap_or_else(|e| panic!("seed {name} is invalid: {e}"));
        assert!(model.arena_size() <= 1 << 20, "{name}: arena too large");
        let mut arena = vec![0u8; model.arena_size()];
        edgedetr::Session::new(&model, &mut arena).unwrap().run();
        let out = mf.join(name);
        fs::write(&out, &m).unwrap();
        println!("{} ({} bytes)", out.display(), m.len());
    }
}
