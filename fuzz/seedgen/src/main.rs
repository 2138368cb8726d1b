//! Writes `seeds/pickle_vm/*` (the pickles of the quantizer's `.pt` samples)
//! and `seeds/model_file/*` (a small valid model file using most op kinds the
//! public graph builder offers). Run from `fuzz/`:
//! `CARGO_TARGET_DIR=… cargo run --manifest-path seedgen/Cargo.toml`.

use std::fs;
use std::path::Path;

use edgedetr::format::{Meta, PREPROCESS_RGB, PREPROCESS_SCALE_255};
use edgedetr::kernels::Act;
use edgedetr_quantizer::builder::GraphBuilder;
use edgedetr_quantizer::fold::FoldedConv;
use edgedetr_quantizer::pt;

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
    let m = model_seed();
    // The seed must be a valid model.
    let aligned = edgedetr::std_io::AlignedBytes::from_slice(&m);
    let model = edgedetr::Model::from_bytes(aligned.as_slice()).expect("seed model is valid");
    let mut arena = vec![0u8; model.arena_size()];
    edgedetr::Session::new(&model, &mut arena).unwrap().run();
    let out = mf.join("small_graph.edgedetr");
    fs::write(&out, &m).unwrap();
    println!("{} ({} bytes)", out.display(), m.len());
}
