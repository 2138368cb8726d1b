//! Times `edgedetr_vision::jpeg::decode_scaled` on one file, single thread:
//! `jpeg_time FILE REPS [OUT.rgb] [--scale N]` prints the median milliseconds
//! of `REPS` decodes (after one warm-up) at scale `1/N` (1, 2, 4 or 8) and,
//! with `OUT.rgb`, writes the decoded RGB so that a driver can check it
//! against `cv2.imdecode`.
//! `vision/benches/jpeg_vs_cv2.py` runs it side by side with OpenCV.

use std::time::Instant;

use edgedetr_vision::Limits;
use edgedetr_vision::jpeg::{Scale, decode_scaled};

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let mut scale = Scale::Full;
    if let Some(i) = args.iter().position(|a| a == "--scale") {
        scale = match args.get(i + 1).map(String::as_str) {
            Some("2") => Scale::Half,
            Some("4") => Scale::Quarter,
            Some("8") => Scale::Eighth,
            _ => Scale::Full,
        };
        args.drain(i..(i + 2).min(args.len()));
    }
    let (Some(path), Some(reps)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: jpeg_time FILE REPS [OUT.rgb] [--scale N]");
        std::process::exit(2);
    };
    let data = std::fs::read(path).expect("read the JPEG");
    let reps: usize = reps.parse().expect("REPS is a number");
    let limits = Limits::default();
    let img = decode_scaled(&data, &limits, scale).expect("decode");
    if let Some(out) = args.get(3) {
        std::fs::write(out, &img.rgb).expect("write the RGB");
    }
    let mut ms: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            let img = decode_scaled(&data, &limits, scale).expect("decode");
            std::hint::black_box(&img);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!("{:.3}", ms[ms.len() / 2]);
}
