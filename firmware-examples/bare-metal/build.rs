//! Build script of the bare-metal example. It does three things:
//!
//! 1. Puts `memory.x` on the linker search path. cortex-m-rt's `link.x`
//!    (passed with `-Tlink.x` in `.cargo/config.toml`) does `INCLUDE memory.x`;
//!    copying it into `OUT_DIR` and adding that folder to the search path makes
//!    the build independent of the directory cargo runs from.
//! 2. Chooses the model to embed in flash: the file named by the `EDGEDETR_MODEL`
//!    environment variable, or the committed `placeholder.bin` (which the engine
//!    rejects at run time with a clear message) so the example always builds.
//!    `src/main.rs` includes it with `include_bytes!(env!("EDGEDETR_MODEL_FILE"))`.
//!    The static arena's size comes from `EDGEDETR_ARENA_BYTES` (default
//!    64 KiB); `edgedetr inspect model.edr` prints the size a model needs.
//! 3. With the `defmt` feature, adds defmt's linker script (`-Tdefmt.x`), which
//!    would be an unknown file without the defmt crate.

use std::env;
use std::fs;
use std::path::PathBuf;

/// Arena bytes when `EDGEDETR_ARENA_BYTES` is unset: enough for the example to
/// link on any Cortex-M7 part; a real model needs far more (see README.md).
const DEFAULT_ARENA_BYTES: usize = 64 * 1024;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));

    // 1. memory.x on the link path.
    fs::copy(manifest.join("memory.x"), out.join("memory.x")).expect("copy memory.x to OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    // 2. The model file and the arena size.
    println!("cargo:rerun-if-env-changed=EDGEDETR_MODEL");
    println!("cargo:rerun-if-env-changed=EDGEDETR_ARENA_BYTES");
    let (model, placeholder) = match env::var_os("EDGEDETR_MODEL") {
        Some(p) if !p.is_empty() => {
            // Relative paths are taken from this crate's folder.
            let p = manifest.join(PathBuf::from(p));
            assert!(p.is_file(), "EDGEDETR_MODEL={} is not a file", p.display());
            (p, false)
        }
        _ => (manifest.join("placeholder.bin"), true),
    };
    println!("cargo:rerun-if-changed={}", model.display());
    let model = model.to_str().expect("the model path must be valid UTF-8");
    println!("cargo:rustc-env=EDGEDETR_MODEL_FILE={model}");
    let arena_bytes = match env::var("EDGEDETR_ARENA_BYTES") {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .unwrap_or_else(|e| panic!("EDGEDETR_ARENA_BYTES={v:?} is not a byte count: {e}")),
        Err(_) => DEFAULT_ARENA_BYTES,
    };
    fs::write(
        out.join("config.rs"),
        format!(
            "/// Bytes of the static arena (`EDGEDETR_ARENA_BYTES` at build time).\n\
             const ARENA_BYTES: usize = {arena_bytes};\n\
             /// Whether `EDGEDETR_MODEL` was unset and the placeholder was embedded.\n\
             const MODEL_IS_PLACEHOLDER: bool = {placeholder};\n"
        ),
    )
    .expect("write config.rs");

    // 3. defmt's linker script, only when defmt is linked in.
    if env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
}
