//! Detects objects in an image with an edgedetr model file of any precision
//! (fp32, fp16, int8): the README's "Using the engine from Rust", compiled
//! here and run on every precision by `tests/tests/readme_example.rs`.
//!
//! ```sh
//! cargo run --release -p edgedetr-vision --example detect -- model.edr bus.jpg
//! ```

// README:start
use std::error::Error;
use std::path::Path;

use edgedetr::std_io::{AlignedBytes, alloc_arena};
use edgedetr::{Detection, Model, PostProcess, Session};
use edgedetr_vision::Preprocessor;

/// Runs the model file at `model_path` on the JPEG or PNG at `image_path`:
/// each detection scoring above `conf` (ultralytics' default: 0.25) with its
/// class name, boxes in the image's pixels, best first.
pub fn detect(
    model_path: &Path,
    image_path: &Path,
    conf: f32,
) -> Result<Vec<(String, Detection)>, Box<dyn Error>> {
    let bytes = AlignedBytes::read(model_path)?; // 64-byte aligned
    let model = Model::from_bytes(&bytes)?; // validated once
    let mut arena = alloc_arena(&model)?; // or a static buffer of model.arena_size()
    let mut session = Session::new(&model, &mut arena)?; // prepares every op
    let img = edgedetr_vision::file::load(image_path)?; // JPEG or PNG → RGB8
    let mut pre = Preprocessor::new(); // keep it: buffers are reused frame to frame
    pre.to_session(&mut session, &img.rgb, img.width, img.height)?; // resize, f32 or u8 input
    session.run(); // allocation-free
    let mut dets = [Detection::default(); 300];
    let post = PostProcess { conf, max_det: 300 };
    let n = session.detections(&post, img.width, img.height, &mut dets)?;
    let name = |d: &Detection| {
        model
            .class_name(d.class_id as usize)
            .unwrap_or("?")
            .to_string()
    };
    Ok(dets[..n].iter().map(|d| (name(d), *d)).collect())
}
// README:end

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, image] = &args[..] else {
        return Err("usage: detect MODEL.edr IMAGE".into());
    };
    for (name, d) in detect(Path::new(model), Path::new(image), 0.25)? {
        println!(
            "{name:<16} {:.3}  [{:.1}, {:.1}, {:.1}, {:.1}]",
            d.score, d.x1, d.y1, d.x2, d.y2
        );
    }
    Ok(())
}
