//! Running a frame (backbone, neck, decoder and postprocess to detections)
//! after `Session::new` performs no heap allocation, on every kernel path
//! this CPU runs; nor does preprocessing a camera-sized frame after the
//! first one (the README's per-frame loop).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use edgedetr::kernels::table::ALL_PATH_NAMES;
use edgedetr::kernels::{Caps, Kernels};
use edgedetr::{Model, Session};
use edgedetr_tests::*;

/// Counts allocations made by the thread that armed it.
struct Counting;

// Both per thread: tests run in parallel, and each counts only its own
// allocations.
thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    if ARMED.with(Cell::get) {
        ALLOCS.with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCS.with(|a| a.set(0));
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    ALLOCS.with(Cell::get)
}

#[test]
fn the_counter_sees_allocations() {
    let n = allocations_during(|| {
        let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(10));
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}

#[test]
fn running_a_frame_allocates_nothing() {
    if skip_requested("running_a_frame_allocates_nothing") {
        return;
    }
    assert_frames_allocate_nothing(fp32_model(320));
}

#[test]
fn fp16_and_int8_frames_allocate_nothing() {
    if skip_requested("fp16_and_int8_frames_allocate_nothing") {
        return;
    }
    assert_frames_allocate_nothing(fp16_320());
    assert_frames_allocate_nothing(int8_320());
}

/// The kernel paths this CPU runs (the scalar one at least), by name.
fn runnable_paths() -> Vec<Kernels> {
    let paths: Vec<Kernels> = ALL_PATH_NAMES
        .iter()
        .filter_map(|name| Kernels::for_path(name, Caps::detect()))
        .collect();
    eprintln!(
        "zero allocation checked on kernel paths: {:?}",
        paths.iter().map(Kernels::name).collect::<Vec<_>>()
    );
    assert!(paths.iter().any(|k| k.name() == "scalar"));
    paths
}

fn assert_frames_allocate_nothing(bytes: &[u8]) {
    for kernels in runnable_paths() {
        assert_frames_allocate_nothing_with(bytes, kernels);
    }
}

fn assert_frames_allocate_nothing_with(bytes: &[u8], kernels: Kernels) {
    let input = golden("bus_320", "input").data;
    let pixels: Vec<u8> = input.iter().map(|&v| (v * 255.0).round() as u8).collect();
    let model = Model::from_bytes(bytes).expect("model loads");
    let mut arena = vec![0u8; model.arena_size()];
    let mut session = Session::with_kernels(&model, &mut arena, kernels).expect("session");
    let p3 = model.buffer_id("layer19_p3").unwrap();
    let mut dets = [edgedetr::Detection::default(); 300];
    let n = allocations_during(|| {
        for frame in 0..2 {
            if frame == 0 {
                session.set_input_f32(&input).unwrap();
            } else {
                session.set_input_u8(&pixels).unwrap();
            }
            session.run();
        }
        let mut ops = 0;
        session.run_each(0..model.op_count(), |_| ops += 1);
        assert_eq!(ops, model.op_count());
        let first = match session.buffer_i8(p3) {
            Ok(v) => v[0] as f32,
            Err(_) => session.buffer(p3).unwrap()[0],
        };
        std::hint::black_box(first);
        let found = session
            .detections(&edgedetr::PostProcess::default(), 810, 1080, &mut dets)
            .unwrap();
        std::hint::black_box(found);
    });
    assert_eq!(n, 0, "a frame allocated {n} times on {}", kernels.name());
}

#[test]
fn preprocessing_a_frame_after_the_first_allocates_nothing() {
    if skip_requested("preprocessing_a_frame_after_the_first_allocates_nothing") {
        return;
    }
    let img = edgedetr_vision::file::load(&fixture_dir().join("images/bus.jpg")).expect("decodes");
    for bytes in [fp32_model(320) as &[u8], int8_320()] {
        let model = Model::from_bytes(bytes).expect("model loads");
        let mut arena = vec![0u8; model.arena_size()];
        let mut session = Session::new(&model, &mut arena).expect("session");
        let mut pre = edgedetr_vision::Preprocessor::new();
        pre.to_session(&mut session, &img.rgb, img.width, img.height)
            .expect("first frame");
        let n = allocations_during(|| {
            pre.to_session(&mut session, &img.rgb, img.width, img.height)
                .expect("next frame");
        });
        assert_eq!(n, 0, "preprocessing a frame allocated {n} times");
    }
}
