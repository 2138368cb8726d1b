//! edgedetr on a Cortex-M7 class microcontroller: `no_std`, no allocator.
//!
//! - The model file is embedded in flash with `include_bytes!` (the file named by
//!   `EDGEDETR_MODEL` at build time, else a placeholder the engine rejects) and
//!   used in place: weights are never copied to RAM.
//! - The arena is one static buffer in `.bss`, handed out once as a
//!   `&'static mut` by a [`ConstStaticCell`] (no `static mut`, no `unsafe`).
//! - The kernels are chosen from the compile-time target features
//!   ([`Caps::compile_time`]): there is no run-time CPU detection on bare metal.
//! - Logging goes through the shim in `fmt.rs`: defmt over RTT with the `defmt`
//!   feature, nothing otherwise.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

#[macro_use]
mod fmt;

use core::panic::PanicInfo;

use cortex_m_rt::entry;
// With defmt: cortex-m provides the critical section defmt-rtt takes around each
// log frame (single core: interrupts masked), and defmt-rtt is the global logger.
#[cfg(feature = "defmt")]
use cortex_m as _;
#[cfg(feature = "defmt")]
use defmt_rtt as _;
use edgedetr::kernels::{Caps, Kernels};
use edgedetr::{Aligned64, Error, Model, Session};
use static_cell::ConstStaticCell;

use crate::fmt::Disp;

// `ARENA_BYTES` and `MODEL_IS_PLACEHOLDER`, written by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// The model file, in flash. `Aligned64` gives it the 64-byte alignment the
/// engine requires; the bytes stay in `.rodata` and are read in place.
static MODEL: &Aligned64<[u8]> = &Aligned64(*include_bytes!(env!("EDGEDETR_MODEL_FILE")));

/// The arena: all activations and scratch of a run, at offsets planned when the
/// model file was made. Zero-initialised, so it lands in `.bss` and costs no
/// flash; [`ConstStaticCell::take`] hands out its only `&'static mut` once.
static ARENA: ConstStaticCell<Aligned64<[u8; ARENA_BYTES]>> =
    ConstStaticCell::new(Aligned64([0; ARENA_BYTES]));

#[entry]
fn main() -> ! {
    // The one and only borrow of the arena (a second `take` would panic).
    let arena = &mut ARENA.take().0;
    match detect(arena) {
        Ok(()) => info!("edgedetr: done"),
        // `detect` has logged what went wrong.
        Err(_) => error!("edgedetr: stopped"),
    }
    loop {
        core::hint::spin_loop();
    }
}

/// Loads the model, runs one frame over `arena` and logs the exported buffers.
fn detect(arena: &mut [u8]) -> Result<(), Error> {
    let model = Model::from_bytes(&MODEL.0).inspect_err(|e| {
        error!("the model in flash was rejected: {}", Disp(e));
        if MODEL_IS_PLACEHOLDER {
            error!(
                "it is the placeholder: this firmware was built without EDGEDETR_MODEL. \
                 Rebuild with EDGEDETR_MODEL=/path/to/model.edr (see README.md)."
            );
        }
    })?;
    let s = model.input_size();
    info!(
        "model: {}x{} input, {} ops, {} classes; arena: {} bytes needed, {} static",
        s,
        s,
        model.op_count(),
        model.num_classes(),
        model.arena_size(),
        ARENA_BYTES
    );

    // No run-time feature detection on bare metal: the target's features decide
    // (on thumbv7em that is the portable scalar path).
    let kernels = Kernels::for_caps(Caps::compile_time());
    let mut session = Session::with_kernels(&model, arena, kernels).inspect_err(|e| {
        error!("cannot start a session: {}", Disp(e));
        if let Error::ArenaTooSmall { needed, .. } = *e {
            error!("rebuild with EDGEDETR_ARENA_BYTES={}", needed);
        }
    })?;
    info!("kernels: {}", session.kernels().name());

    // A real application writes the resized camera frame here, [3, S, S] u8
    // RGB pixels (see SPEC.md, preprocessing), a line at a time: the session
    // stores them as the model wants (pixel / 255 in f32, or the u8 pixels of
    // an int8 model). A gradient stands in.
    let mut line = [0u8; 256];
    for (i, p) in line.iter_mut().enumerate() {
        *p = i as u8;
    }
    let total = 3 * s * s;
    let mut at = 0;
    while at < total {
        let n = line.len().min(total - at);
        session.write_input_u8(at, &line[..n])?;
        at += n;
    }
    session.run();

    // Exported buffers keep their contents after the run.
    for id in model.exported_buffers() {
        let name = model.buffer_name(id).unwrap_or("?");
        let Ok(data) = session.buffer(id) else {
            continue; // not f32
        };
        let (mut lo, mut hi, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0.0f32);
        for &x in data {
            lo = lo.min(x);
            hi = hi.max(x);
            sum += x;
        }
        let mean = if data.is_empty() {
            0.0
        } else {
            sum / data.len() as f32
        };
        info!(
            "{}: {} values, min {}, max {}, mean {}",
            name,
            data.len(),
            lo,
            hi,
            mean
        );
    }
    Ok(())
}

/// Logs the panic (with defmt) and stops.
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    error!("panic: {}", Disp(info));
    loop {
        core::hint::spin_loop();
    }
}
