//! Running a frame (backbone, neck, decoder and postprocess to detections)
//! after `Session::new` performs no heap allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

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

fn assert_frames_allocate_nothing(bytes: &[u8]) {
    let input = golden("bus_320", "input").data;
    let pixels: Vec<u8> = input.iter().map(|&v| (v * 255.0).round() as u8).collect();
    let model = Model::from_bytes(bytes).expect("model loads");
    let mut arena = vec![0u8; model.arena_size()];
    let mut session = Session::new(&model, &mut arena).expect("session");
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
    assert_eq!(n, 0, "a frame allocated {n} times");
}
