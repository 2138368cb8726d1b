//! Layers 1–25 (backbone, AIFI, BiFPN neck) against the PyTorch goldens, with
//! SPEC.md §9's stage-fed and chained bounds, at 320 and 640.

use edgedetr::{Model, Session};
use edgedetr_tests::*;

struct Ctx {
    run: &'static str,
}

fn feed(session: &mut Session<'_, '_>, run: &str, name: &str) {
    let m = session.model();
    let b = id(m, name);
    session
        .set_buffer(b, &golden(run, name).data)
        .expect("golden fits the buffer");
}

fn read<'s>(session: &'s Session<'_, '_>, name: &str) -> &'s [f32] {
    session
        .buffer(id(session.model(), name))
        .expect("f32 buffer")
}

impl Ctx {
    /// Each stage fed the golden input of that stage.
    fn stage_fed(&self) {
        let bytes = fp32_model(run_size(self.run));
        let model = Model::from_bytes(bytes).expect("model loads");
        let mut arena = vec![0u8; model.arena_size()];
        let mut s = Session::new(&model, &mut arena).expect("session");
        let run = self.run;

        // Backbone from the input.
        feed(&mut s, run, "input");
        s.run_ops(0..producer(&model, "backbone_out4") + 1).unwrap();
        for n in ["backbone_out1", "backbone_out2", "backbone_out3"] {
            assert_close(run, n, read(&s, n), 5e-4, 1e-3);
        }
        assert_close(run, "backbone_out4", read(&s, "backbone_out4"), 3e-3, 1e-3);

        // AIFI (L5 then L6) from the golden backbone_out4.
        feed(&mut s, run, "backbone_out4");
        s.run_ops(producer(&model, "backbone_out4") + 1..producer(&model, "layer06_aifi") + 1)
            .unwrap();
        assert_close(run, "layer06_aifi", read(&s, "layer06_aifi"), 3e-5, 1e-5);

        // P3-P5 from the golden backbone outputs 1-3 and AIFI.
        for n in [
            "backbone_out1",
            "backbone_out2",
            "backbone_out3",
            "layer06_aifi",
        ] {
            feed(&mut s, run, n);
        }
        s.run_ops(producer(&model, "layer06_aifi") + 1..producer(&model, "layer25_p5") + 1)
            .unwrap();
        for n in ["layer19_p3", "layer22_p4", "layer25_p5"] {
            assert_close(run, n, read(&s, n), 1e-3, 1e-3);
        }
    }

    /// Chained end to end from `input`.
    fn chained(&self) {
        let bytes = fp32_model(run_size(self.run));
        let model = Model::from_bytes(bytes).expect("model loads");
        let mut arena = vec![0u8; model.arena_size()];
        let mut s = Session::new(&model, &mut arena).expect("session");
        let run = self.run;
        s.input_mut().copy_from_slice(&golden(run, "input").data);
        s.run();
        for n in ["backbone_out1", "backbone_out2", "backbone_out3"] {
            assert_close(run, n, read(&s, n), 5e-4, 1e-3);
        }
        assert_close(run, "backbone_out4", read(&s, "backbone_out4"), 3e-3, 1e-3);
        assert_close(run, "layer06_aifi", read(&s, "layer06_aifi"), 3e-3, 1e-3);
        for n in ["layer19_p3", "layer22_p4", "layer25_p5"] {
            assert_close(run, n, read(&s, n), 2e-2, 1e-2);
        }
    }
}

edgedetr_tests::golden_runs! {
    Ctx;
    bus_320_stage_fed, bus_320_chained, "bus_320";
    bus_640_stage_fed, bus_640_chained, "bus_640";
    zidane_640_stage_fed, zidane_640_chained, "zidane_640";
}
