//! The decoder and the whole detection against the PyTorch goldens, with
//! SPEC.md §9's stage-fed and end-to-end bounds.

use std::collections::{HashMap, HashSet};

use edgedetr::{Detection, Model, PostProcess, Session};
use edgedetr_tests::*;

fn engine(s: &Session<'_, '_>, name: &str) -> Vec<f32> {
    engine_tensor(s, name).unwrap_or_else(|| panic!("no buffer {name}"))
}

/// `(anchor, class) -> row` of `output_topk`.
fn keyed_rows(rows: &[f32], query: &[i64], topk: &[i64]) -> HashMap<(i64, i64), [f32; 5]> {
    let mut m = HashMap::new();
    for (r, &q) in rows.chunks_exact(6).zip(query) {
        let key = (topk[q as usize], r[5] as i64);
        m.insert(key, [r[0], r[1], r[2], r[3], r[4]]);
    }
    m
}

struct Run {
    run: &'static str,
}

impl Run {
    fn session_parts(&self) -> (&'static edgedetr::std_io::AlignedBytes, usize) {
        let s = run_size(self.run);
        (fp32_model(s), s)
    }

    /// Encoder, anchors, top-k and decoder fed golden inputs (SPEC.md §9 stage table).
    fn stage_fed(&self) {
        let run = self.run;
        let (bytes, _) = self.session_parts();
        let model = Model::from_bytes(bytes).unwrap();
        let mut arena = vec![0u8; model.arena_size()];
        let mut s = Session::new(&model, &mut arena).unwrap();

        // Encoder from golden P3-P5.
        for n in ["layer19_p3", "layer22_p4", "layer25_p5"] {
            s.set_buffer(id(&model, n), &golden(run, n).data).unwrap();
        }
        let enc_end = producer(&model, "dec_enc_scores_all");
        s.run_ops(producer(&model, "layer25_p5") + 1..enc_end + 1)
            .unwrap();
        for n in ["dec_feats", "dec_enc_memory", "dec_enc_scores_all"] {
            if has_golden(run, n) {
                assert_close(run, n, &engine(&s, n), 1e-4, 1e-4);
            }
        }

        // Anchors and the valid mask, exactly.
        let f = model.file();
        let anchors = f
            .find_tensor("dec_topk_anchors.source")
            .expect("anchor constant");
        let a = tensor_f32(f.tensor_bytes(anchors));
        let ga = golden(run, "dec_anchors");
        let n = ga.shape[1];
        let ours: Vec<f32> = (0..n)
            .flat_map(|t| (0..4).map(move |k| (k, t)))
            .map(|(k, t)| a[k * n + t])
            .collect();
        assert!(
            ours.iter()
                .zip(&ga.data)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{run}: anchors differ"
        );
        let mask = f
            .find_tensor("dec_masked_feats.mask")
            .expect("mask constant");
        let m = tensor_f32(f.tensor_bytes(mask));
        let gm = golden(run, "dec_valid_mask");
        assert_eq!(
            m.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            gm.ints,
            "{run}: valid mask differs"
        );

        // Own top-k from the logits of golden P3-P5: the golden set.
        let topk_op = producer(&model, "dec_topk_index");
        s.run_ops(enc_end + 1..topk_op + 1).unwrap();
        let own: HashSet<i64> = engine(&s, "dec_topk_index")
            .iter()
            .map(|&v| v as i64)
            .collect();
        let gold_topk = golden(run, "dec_topk_index").ints;
        assert_eq!(
            own,
            gold_topk.iter().copied().collect::<HashSet<_>>(),
            "{run}: own top-k set differs"
        );

        // Top-k from the golden encoder logits: same indices, same order.
        let gs = golden(run, "dec_enc_scores_all");
        let (t, c) = (gs.shape[1], gs.shape[2]);
        s.set_buffer(
            id(&model, "dec_enc_scores_all"),
            &to_channel_major(&gs.data, t, c),
        )
        .unwrap();
        s.run_ops(topk_op..topk_op + 1).unwrap();
        let from_golden: Vec<i64> = engine(&s, "dec_topk_index")
            .iter()
            .map(|&v| v as i64)
            .collect();
        assert_eq!(
            from_golden, gold_topk,
            "{run}: top-k of the golden logits differs"
        );

        // Decoder from golden P3-P5 and the golden top-k, compared op by op.
        let idx: Vec<i32> = gold_topk.iter().map(|&v| v as i32).collect();
        s.set_buffer_i32(id(&model, "dec_topk_index"), &idx)
            .unwrap();
        let mut compared = 0;
        let last_ref = format!(
            "dec_l{}_ref_out",
            (0..)
                .take_while(|i| model.buffer_id(&format!("dec_l{i}_out")).is_some())
                .count()
                - 1
        );
        for op in topk_op + 1..model.op_count() {
            s.run_ops(op..op + 1).unwrap();
            let out = f.op(op as u32).outputs[0];
            let name = f.str(f.buffer(out).name);
            let mut names = vec![name.to_string()];
            // The goldens also name each layer's inputs: aliases of earlier outputs.
            let layer_of = |n: &str, suffix: &str| {
                n.strip_prefix("dec_l")?
                    .strip_suffix(suffix)?
                    .parse::<usize>()
                    .ok()
            };
            match name {
                "dec_boxes" => names.push(last_ref.clone()),
                "dec_ref_boxes_init" => names.push("dec_l0_ref_in".into()),
                "dec_query_init" => names.push("dec_l0_embed_in".into()),
                _ => {}
            }
            if let Some(i) = layer_of(name, "_ref_out") {
                names.push(format!("dec_l{}_ref_in", i + 1));
            }
            if let Some(i) = layer_of(name, "_out") {
                names.push(format!("dec_l{}_embed_in", i + 1));
            }
            for g in names {
                if g != "output_topk" && has_golden(run, &g) {
                    assert_close(run, &g, &engine(&s, name), 1e-4, 1e-4);
                    compared += 1;
                }
            }
        }
        let min = if run == "bus_320" { 45 } else { 8 };
        assert!(
            compared >= min,
            "{run}: only {compared} decoder tensors compared"
        );

        // Final rows keyed by (anchor, class).
        let ours = keyed_rows(
            &engine(&s, "output_topk"),
            &engine(&s, "output_topk_query")
                .iter()
                .map(|&v| v as i64)
                .collect::<Vec<_>>(),
            &gold_topk,
        );
        let gq = golden(run, "output_topk_query").ints;
        let gold = keyed_rows(&golden(run, "output_topk").data, &gq, &gold_topk);
        assert_eq!(
            ours.keys().collect::<HashSet<_>>(),
            gold.keys().collect::<HashSet<_>>(),
            "{run}: output_topk keys differ"
        );
        let mut worst = 0f32;
        for (k, g) in &gold {
            let e = ours[k];
            for j in 0..5 {
                let err = (e[j] - g[j]).abs();
                worst = worst.max(err);
                assert!(
                    err <= 1e-4 + 1e-4 * g[j].abs(),
                    "{run}: output_topk row {k:?} col {j}: {} vs {}",
                    e[j],
                    g[j]
                );
            }
        }
        eprintln!("{run}: stage-fed output_topk keyed rows: max err {worst:.2e}");
    }

    /// End to end from `input.npy` with the engine's own top-k.
    fn chained(&self) {
        let run = self.run;
        let (bytes, _) = self.session_parts();
        let model = Model::from_bytes(bytes).unwrap();
        let mut arena = vec![0u8; model.arena_size()];
        let mut s = Session::new(&model, &mut arena).unwrap();
        s.input_mut().copy_from_slice(&golden(run, "input").data);
        s.run();

        assert_close(
            run,
            "dec_enc_scores_all",
            &engine(&s, "dec_enc_scores_all"),
            2e-3,
            1e-3,
        );

        // Top-k set: may differ only by candidates within 2e-3 of the 300th golden score.
        let gs = golden(run, "dec_enc_scores_all");
        let (t, c) = (gs.shape[1], gs.shape[2]);
        let gmax: Vec<f32> = (0..t)
            .map(|tok| {
                gs.data[tok * c..(tok + 1) * c]
                    .iter()
                    .copied()
                    .fold(f32::MIN, f32::max)
            })
            .collect();
        let gold_topk = golden(run, "dec_topk_index").ints;
        let kth = gmax[*gold_topk.last().unwrap() as usize];
        let own: Vec<i64> = engine(&s, "dec_topk_index")
            .iter()
            .map(|&v| v as i64)
            .collect();
        let (os, gset): (HashSet<i64>, HashSet<i64>) = (
            own.iter().copied().collect(),
            gold_topk.iter().copied().collect(),
        );
        for a in os.symmetric_difference(&gset) {
            assert!(
                (gmax[*a as usize] - kth).abs() <= 2e-3,
                "{run}: top-k differs by anchor {a} far from the cut"
            );
        }
        let same_order = own.iter().zip(&gold_topk).filter(|(a, b)| a == b).count();
        eprintln!(
            "{run}: chained top-k: {} of {} shared, {same_order} in the same position",
            os.intersection(&gset).count(),
            gset.len()
        );

        // Anchor-aligned logits and boxes.
        let pos: HashMap<i64, usize> = own.iter().enumerate().map(|(i, &a)| (a, i)).collect();
        for (name, atol, rtol, width) in [
            ("dec_logits", 2e-3f32, 1e-3f32, c),
            ("dec_boxes", 1e-4, 0.0, 4),
        ] {
            let e = engine(&s, name);
            let g = golden(run, name).data;
            let mut worst = 0f32;
            for (gi, a) in gold_topk.iter().enumerate() {
                let Some(&ei) = pos.get(a) else { continue };
                for j in 0..width {
                    let (x, y) = (e[ei * width + j], g[gi * width + j]);
                    worst = worst.max((x - y).abs());
                    assert!(
                        (x - y).abs() <= atol + rtol * y.abs(),
                        "{run}: {name} anchor {a} col {j}: {x} vs {y}"
                    );
                }
            }
            eprintln!("{run}: chained {name} (anchor-aligned): max err {worst:.2e}");
        }

        // output_topk keyed by (anchor, class).
        let oq: Vec<i64> = engine(&s, "output_topk_query")
            .iter()
            .map(|&v| v as i64)
            .collect();
        let ours = keyed_rows(&engine(&s, "output_topk"), &oq, &own);
        let gout = golden(run, "output_topk").data;
        let gold = keyed_rows(&gout, &golden(run, "output_topk_query").ints, &gold_topk);
        let cut = gout[299 * 6 + 4];
        let mut worst = 0f32;
        for (k, g) in &gold {
            match ours.get(k) {
                Some(e) => {
                    for j in 0..5 {
                        worst = worst.max((e[j] - g[j]).abs());
                        assert!(
                            (e[j] - g[j]).abs() <= 1e-4,
                            "{run}: output_topk {k:?} col {j}: {} vs {}",
                            e[j],
                            g[j]
                        );
                    }
                }
                None => assert!(
                    (g[4] - cut).abs() <= 1e-4,
                    "{run}: golden row {k:?} (score {}) missing",
                    g[4]
                ),
            }
        }
        for (k, e) in &ours {
            if !gold.contains_key(k) {
                assert!(
                    (e[4] - cut).abs() <= 1e-4,
                    "{run}: extra row {k:?} with score {}",
                    e[4]
                );
            }
        }
        eprintln!("{run}: chained output_topk keyed: max err {worst:.2e}");

        // The predictor's detections.
        let (w, h) = original_size(run);
        let (thr, stem) = predict_conf_golden(run);
        for (conf, max_det, file) in [
            (thr, 300, stem.as_str()),
            (0.0, 100, "predict_conf0_top100"),
        ] {
            let g = golden(run, file);
            let mut dets = vec![Detection::default(); 300];
            let n = s
                .detections(&PostProcess { conf, max_det }, w, h, &mut dets)
                .unwrap();
            let cutoff = g
                .data
                .chunks_exact(6)
                .map(|r| r[4])
                .fold(f32::MAX, f32::min);
            match_detections(
                run,
                file,
                &dets[..n],
                &g.data,
                w.max(h) as f32,
                if max_det == 100 { Some(cutoff) } else { None },
            );
            if max_det == 300 {
                assert_eq!(
                    n, g.shape[0],
                    "{run}: {file}: {n} detections, golden has {}",
                    g.shape[0]
                );
            }
        }
    }
}

/// A constant tensor's f32 values.
fn tensor_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Matches golden rows `[x1, y1, x2, y2, score, class]` to detections by class
/// and nearest box; boxes within 1e-4·max(W, H) px, scores within 1e-4. With
/// `cutoff`, golden rows within 1e-4 of it may be unmatched (top-N boundary).
fn match_detections(
    run: &str,
    file: &str,
    dets: &[Detection],
    golden: &[f32],
    size: f32,
    cutoff: Option<f32>,
) {
    let mut used = vec![false; dets.len()];
    let (mut worst_box, mut worst_score) = (0f32, 0f32);
    for g in golden.chunks_exact(6) {
        let best = dets
            .iter()
            .enumerate()
            .filter(|(i, d)| !used[*i] && d.class_id as f32 == g[5])
            .map(|(i, d)| {
                let e = [
                    (d.x1 - g[0]).abs(),
                    (d.y1 - g[1]).abs(),
                    (d.x2 - g[2]).abs(),
                    (d.y2 - g[3]).abs(),
                ];
                (
                    i,
                    e.into_iter().fold(0f32, f32::max),
                    (d.score - g[4]).abs(),
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, db, ds)) if db <= 1e-4 * size && ds <= 1e-4 => {
                used[i] = true;
                worst_box = worst_box.max(db);
                worst_score = worst_score.max(ds);
            }
            _ => assert!(
                cutoff.is_some_and(|c| (g[4] - c).abs() <= 1e-4),
                "{run}: {file}: golden row {g:?} has no matching detection (best {best:?})"
            ),
        }
    }
    eprintln!(
        "{run}: {file}: {} golden rows matched, max box err {worst_box:.3e} px, max score err {worst_score:.2e}",
        used.iter().filter(|&&u| u).count()
    );
}

/// From the JPEG through preprocessing: the predictor's detections.
fn from_jpeg(run: &str) {
    let s = run_size(run);
    let model = Model::from_bytes(fp32_model(s)).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut session = Session::new(&model, &mut arena).unwrap();
    let image = if run.starts_with("bus") {
        "bus.jpg"
    } else {
        "zidane.jpg"
    };
    let img =
        edgedetr_vision::file::load(&fixture_dir().join("images").join(image)).expect("decodes");
    let (w, h) = (img.width, img.height);
    assert_eq!((w, h), original_size(run));
    let k = *session.kernels();
    edgedetr_vision::preprocess_to_input(&k, &img.rgb, w, h, s, session.input_mut())
        .expect("preprocesses");
    session.run();
    let (thr, stem) = predict_conf_golden(run);
    let g = golden(run, &stem);
    let mut dets = vec![Detection::default(); 300];
    let n = session
        .detections(
            &PostProcess {
                conf: thr,
                max_det: 300,
            },
            w,
            h,
            &mut dets,
        )
        .unwrap();
    assert_eq!(
        n, g.shape[0],
        "{run}: {n} detections from the JPEG, golden has {}",
        g.shape[0]
    );
    match_detections(
        run,
        &format!("{stem} (from {image})"),
        &dets[..n],
        &g.data,
        w.max(h) as f32,
        None,
    );
}

#[test]
fn bus_320_from_jpeg() {
    if !skip_requested("bus_320_from_jpeg") {
        from_jpeg("bus_320");
    }
}

#[test]
fn bus_640_from_jpeg() {
    if !skip_requested("bus_640_from_jpeg") {
        from_jpeg("bus_640");
    }
}

#[test]
fn zidane_640_from_jpeg() {
    if !skip_requested("zidane_640_from_jpeg") {
        from_jpeg("zidane_640");
    }
}

edgedetr_tests::golden_runs! {
    Run;
    bus_320_decoder_stage_fed, bus_320_end_to_end, "bus_320";
    bus_640_decoder_stage_fed, bus_640_end_to_end, "bus_640";
    zidane_640_decoder_stage_fed, zidane_640_end_to_end, "zidane_640";
}
