//! `edgedetr detect`: images (JPEG, PNG) or preprocessed `.npy` tensors in,
//! detections out (text or JSON), optionally annotated images and `.npy` dumps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use edgedetr::format::DType;
use edgedetr::std_io::{read_npy, write_npy_f32, write_npy_i64};
use edgedetr::{Detection, Model, PostProcess, Session, ThreadPool};
use edgedetr_cli::golden_layout::golden_layout;

use edgedetr_vision::{Preprocessor, RgbCanvas, draw_detections};

/// Arguments of `detect`.
#[derive(Parser, Debug)]
pub struct Args {
    /// Model file.
    pub model: PathBuf,
    /// Images (JPEG, PNG), or preprocessed `[1, 3, S, S]` float32 `.npy` tensors.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Keep detections with a score above this.
    #[arg(long, default_value_t = 0.25)]
    pub conf: f32,
    /// Keep at most this many detections per image.
    #[arg(long, default_value_t = 300)]
    pub max_det: usize,
    /// Threads (default: every core the system offers).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object per image.
    #[arg(long)]
    pub json: bool,
    /// Write annotated images to this folder as `<stem>.jpg` (`<stem>_2.jpg`, …
    /// where inputs share a file stem).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Write every named intermediate as `<DIR>/<stem>/<name>.npy` (stems made
    /// unique as for `--save`).
    #[arg(long)]
    pub dump: Option<PathBuf>,
}

/// A decoded input: the original RGB pixels (if any) and its size.
struct Input {
    rgb: Vec<u8>,
    width: usize,
    height: usize,
}

/// Reads a preprocessed `.npy` tensor into the session's input
/// (`Session::set_input_f32`: copied for f32-input models, back to pixels for
/// u8-input ones, lossless for the values `k / 255` preprocessing gives).
fn load_npy_input(path: &Path, s: usize, session: &mut Session<'_, '_>) -> Result<Input, String> {
    let a = read_npy(path).map_err(|e| e.to_string())?;
    if a.shape != [1, 3, s, s] && a.shape != [3, s, s] {
        return Err(format!(
            "{}: input has shape {:?}, the model takes [1, 3, {s}, {s}]",
            path.display(),
            a.shape
        ));
    }
    if !a.descr.starts_with("<f") {
        return Err(format!(
            "{}: input must be float32, found {}",
            path.display(),
            a.descr
        ));
    }
    session
        .set_input_f32(&a.data)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // The picture behind the tensor, for --save.
    let plane = s * s;
    let rgb = (0..plane)
        .flat_map(|i| (0..3).map(move |c| (c, i)))
        .map(|(c, i)| (a.data[c * plane + i].clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    Ok(Input {
        rgb,
        width: s,
        height: s,
    })
}

/// Loads `path` into the session's input: an image through the u8
/// preprocessing (`Session::set_input_u8`, so an int8 model gets the resized
/// pixels with no float round trip, an f32 model `pixel / 255`), or a `.npy`
/// tensor. `pre` keeps its buffers between images.
fn load_input(
    path: &Path,
    s: usize,
    session: &mut Session<'_, '_>,
    pre: &mut Preprocessor,
) -> Result<Input, String> {
    if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        return load_npy_input(path, s, session);
    }
    let img = edgedetr_vision::file::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
    pre.to_session(session, &img.rgb, img.width, img.height)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Input {
        rgb: img.rgb,
        width: img.width,
        height: img.height,
    })
}

fn json_line(path: &Path, input: &Input, dets: &[Detection], model: &Model<'_>, ms: f64) -> String {
    let detections: Vec<serde_json::Value> = dets
        .iter()
        .map(|d| {
            serde_json::json!({
                "class_id": d.class_id,
                "class": model.class_name(d.class_id as usize).unwrap_or(""),
                "score": d.score,
                "box": [d.x1, d.y1, d.x2, d.y2],
            })
        })
        .collect();
    serde_json::json!({
        "image": path.display().to_string(),
        "width": input.width,
        "height": input.height,
        "detections": detections,
        "ms": (ms * 1000.0).round() / 1000.0,
    })
    .to_string()
}

pub fn run(a: Args) -> Result<(), String> {
    if !(a.conf.is_finite() && (0.0..=1.0).contains(&a.conf)) {
        return Err(format!("--conf {} must be between 0 and 1", a.conf));
    }
    let threads = crate::threads(a.threads)?;
    let bytes = crate::load_model(&a.model)?;
    let model = Model::from_bytes(&bytes).map_err(|e| e.to_string())?;
    if model.buffer_id(edgedetr::detect::OUTPUT_ROWS).is_none() {
        return Err(format!(
            "{}: the model has no detection output",
            a.model.display()
        ));
    }
    let s = model.input_size();
    let mut arena = edgedetr::std_io::alloc_arena(&model).map_err(|e| e.to_string())?;
    let mut session = Session::new(&model, &mut arena).map_err(|e| e.to_string())?;
    let mut pool = ThreadPool::for_session(&session, threads)
        .map_err(|e| format!("cannot start {threads} threads: {e}"))?;
    let mut dets = vec![Detection::default(); a.max_det.min(300)];
    for dir in [&a.save, &a.dump].into_iter().flatten() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut pre = Preprocessor::new();
    let stems = output_stems(&a.inputs);
    for (path, stem) in a.inputs.iter().zip(&stems) {
        let mut input = load_input(path, s, &mut session, &mut pre)?;
        let start = Instant::now();
        session.run_with(&mut pool);
        let post = PostProcess {
            conf: a.conf,
            max_det: a.max_det,
        };
        let n = session
            .detections(&post, input.width, input.height, &mut dets)
            .map_err(|e| e.to_string())?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let found = &dets[..n];
        if a.json {
            crate::out!("{}", json_line(path, &input, found, &model, ms));
        } else {
            crate::out!(
                "{}: {n} detections in {ms:.1} ms ({}x{})",
                path.display(),
                input.width,
                input.height
            );
            for d in found {
                crate::out!(
                    "  {:<16} {:.3}  [{:.1}, {:.1}, {:.1}, {:.1}]",
                    model.class_name(d.class_id as usize).unwrap_or("?"),
                    d.score,
                    d.x1,
                    d.y1,
                    d.x2,
                    d.y2
                );
            }
        }
        if let Some(dir) = &a.save {
            let (w, h) = (input.width as u32, input.height as u32);
            let mut canvas =
                RgbCanvas::new(&mut input.rgb, w, h).ok_or("internal error: image buffer size")?;
            draw_detections(&mut canvas, found, |c| {
                model.class_name(c as usize).unwrap_or("?")
            });
            let out = dir.join(format!("{stem}.jpg"));
            edgedetr_vision::file::save_jpeg(&out, &input.rgb, input.width, input.height)?;
            if !a.json {
                crate::out!("  saved {}", out.display());
            }
        }
        if let Some(dir) = &a.dump {
            let out = dir.join(stem);
            std::fs::create_dir_all(&out)
                .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            for id in model.exported_buffers() {
                dump_buffer(&session, id, &out)?;
            }
            if !a.json {
                crate::out!("  dumped intermediates to {}", out.display());
            }
        }
    }
    Ok(())
}

/// The name each input's outputs get under `--save` and `--dump`: its file
/// stem, with `_2`, `_3`, … added where an earlier input (e.g. `a/bus.jpg`
/// and `b/bus.png`) already took it, so that no output overwrites another.
fn output_stems(inputs: &[PathBuf]) -> Vec<String> {
    let mut taken = std::collections::HashSet::new();
    inputs
        .iter()
        .map(|p| {
            let stem = p
                .file_stem()
                .map_or_else(|| "input".into(), |f| f.to_string_lossy().into_owned());
            let mut name = stem.clone();
            let mut k = 2;
            while !taken.insert(name.clone()) {
                name = format!("{stem}_{k}");
                k += 1;
            }
            name
        })
        .collect()
}

/// Writes buffer `id` as `<dir>/<name>.npy`, shaped like the goldens: feature
/// maps `[1, C, H, W]`, token matrices token-major `[1, T, C]`, indices as
/// int64 in their stored shape, other tensors with a leading batch dimension.
pub fn dump_buffer(session: &Session<'_, '_>, id: u32, dir: &Path) -> Result<(), String> {
    let model = session.model();
    let (Some(desc), Some(name)) = (model.buffer(id), model.buffer_name(id)) else {
        return Ok(());
    };
    let dims: Vec<usize> = desc.shape[..desc.rank as usize]
        .iter()
        .map(|&d| d as usize)
        .collect();
    let p = dir.join(format!("{name}.npy"));
    let wr = |e: std::io::Error| format!("cannot write {}: {e}", p.display());
    if desc.dtype == DType::I32 as u8 {
        let v: Vec<i64> = session
            .buffer_i32(id)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|&x| x as i64)
            .collect();
        return write_npy_i64(&p, &dims, &v).map_err(wr);
    }
    let (shape, data) = golden_layout(session, id).map_err(|e| e.to_string())?;
    write_npy_f32(&p, &shape, &data).map_err(wr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_of_inputs_sharing_a_stem_do_not_collide() {
        let inputs: Vec<PathBuf> = [
            "a/bus.jpg",
            "b/bus.png",
            "bus_2.jpg",
            "c/bus.npy",
            "zidane.jpg",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(
            output_stems(&inputs),
            ["bus", "bus_2", "bus_2_2", "bus_3", "zidane"]
        );
    }
}
