//! Replays the recorded hostile inputs of the decoders (`tests/data/fuzz/`,
//! see its README) through what the fuzz targets run: none may panic. Each
//! must also come back from the public decoder, under the default limits,
//! as a typed error (they all declare images they do not contain).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use edgedetr_vision::fuzzing::{jpeg, png};

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("regression inputs") {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "md") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        let name = path.display().to_string();
        assert!(
            catch_unwind(AssertUnwindSafe(|| run(&data))).is_ok(),
            "{name} panics"
        );
        let t = std::time::Instant::now();
        let r = edgedetr_vision::decode(&data);
        assert!(r.is_err(), "{name} decodes");
        assert!(t.elapsed().as_secs_f64() < 1.0, "{name}: {:?}", t.elapsed());
        n += 1;
    }
    n
}

#[test]
fn jpeg_regressions() {
    assert!(replay("jpeg", jpeg) >= 2);
}

#[test]
fn png_regressions() {
    assert!(replay("png", png) >= 3);
}
