//! `edgedetr detect`.

use std::path::{Path, PathBuf};

use clap::Parser;
use edgedetr::format::{BUF_TOKENS, DType};
use edgedetr::std_io::{read_npy, write_npy_f32, write_npy_i64};
use edgedetr::{Model, Session};

/// Arguments of `detect`.
#[derive(Parser, Debug)]
pub struct Args {
    /// Model file.
    pub model: PathBuf,
    /// Inputs: preprocessed `[1, 3, S, S]` float32 `.npy` tensors.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Write every named intermediate as `<DIR>/<stem>/<name>.npy`.
    #[arg(long)]
    pub dump: Option<PathBuf>,
}

fn load_input(path: &Path, s: usize) -> Result<Vec<f32>, String> {
    if path.extension().and_then(|e| e.to_str()) != Some("npy") {
        return Err(format!(
            "{}: this build reads preprocessed .npy inputs only ([1, 3, {s}, {s}] float32)",
            path.display()
        ));
    }
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
    Ok(a.data)
}

pub fn run(a: Args) -> Result<(), String> {
    let bytes = crate::load_model(&a.model)?;
    let model = Model::from_bytes(&bytes).map_err(|e| e.to_string())?;
    let s = model.input_size();
    let mut arena = vec![0u8; model.arena_size()];
    let mut session = Session::new(&model, &mut arena).map_err(|e| e.to_string())?;
    for input in &a.inputs {
        let data = load_input(input, s)?;
        session.input_mut().copy_from_slice(&data);
        let t = std::time::Instant::now();
        session.run();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let stem = input
            .file_stem()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "input".into());
        crate::out!("{}: ran in {ms:.1} ms", input.display());
        if let Some(dir) = &a.dump {
            let out = dir.join(&stem);
            std::fs::create_dir_all(&out)
                .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            for id in model.exported_buffers() {
                dump_buffer(&session, id, &out)?;
            }
            crate::out!("dumped intermediates to {}", out.display());
        }
    }
    Ok(())
}

/// Writes buffer `id` as `<dir>/<name>.npy`, shaped like the goldens: feature
/// maps `[1, C, H, W]`, token matrices token-major `[1, T, C]`, index vectors
/// `[K]` as int64, other tensors with a leading batch dimension.
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
    let data = session.buffer(id).map_err(|e| e.to_string())?;
    if desc.flags & BUF_TOKENS != 0 && dims.len() == 2 {
        let (c, t) = (dims[0], dims[1]);
        let mut tr = vec![0f32; c * t];
        for ch in 0..c {
            for tok in 0..t {
                tr[tok * c + ch] = data[ch * t + tok];
            }
        }
        return write_npy_f32(&p, &[1, t, c], &tr).map_err(wr);
    }
    let mut shape = vec![1usize];
    shape.extend(dims);
    write_npy_f32(&p, &shape, data).map_err(wr)
}
