//! Running a frame (backbone, neck, decoder and postprocess to detections)
//! after `Session::new` performs no heap allocation, on every kernel path
//! this CPU runs, on one thread and on a pool of 2 and 4 (every thread of the
//! pool counted); nor does preprocessing a camera-sized frame after the
//! first one (the README's per-frame loop).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use edgedetr::kernels::table::ALL_PATH_NAMES;
use edgedetr::kernels::{Caps, Kernels};
use edgedetr::{Model, Session, ThreadPool};
use edgedetr_tests::*;

/// Counts allocations made by the threads a test armed.
struct Counting;

// Per thread: tests run in parallel, and each counts only the allocations of
// its own thread and of its pool's workers, into its own counter.
thread_local! {
    static ARMED: Cell<Option<&'static AtomicUsize>> = const { Cell::new(None) };
}

fn note() {
    if let Some(c) = ARMED.with(Cell::get) {
        c.fetch_add(1, Ordering::Relaxed);
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

/// Arms (or disarms) this thread's counting into `on`.
fn arm(on: Option<&'static AtomicUsize>) {
    ARMED.with(|a| a.set(on));
}

fn allocations_during(f: impl FnOnce()) -> usize {
    let counter: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    arm(Some(counter));
    f();
    arm(None);
    counter.load(Ordering::Relaxed)
}

/// Allocations while `f` runs, by this thread and by every worker of `pool`
/// (armed and disarmed on each worker through the pool itself).
fn allocations_on(pool: &mut ThreadPool, f: impl FnOnce(&mut ThreadPool)) -> usize {
    let counter: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    pool.broadcast(&|_: &mut edgedetr::pool::Worker<'_>| arm(Some(counter)));
    f(pool);
    pool.broadcast(&|_: &mut edgedetr::pool::Worker<'_>| arm(None));
    counter.load(Ordering::Relaxed)
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
fn the_counter_sees_allocations_on_pool_workers() {
    let mut pool = ThreadPool::new(3).expect("threads");
    let n = allocations_on(&mut pool, |pool| {
        pool.broadcast(&|w: &mut edgedetr::pool::Worker<'_>| {
            if w.index() > 0 {
                let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(10));
                std::hint::black_box(v);
            }
        });
    });
    assert_eq!(n, 2);
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

#[test]
fn frames_on_2_and_4_threads_allocate_nothing() {
    if skip_requested("frames_on_2_and_4_threads_allocate_nothing") {
        return;
    }
    for bytes in [fp32_model(320) as &[u8], fp16_320(), int8_320()] {
        for kernels in runnable_paths() {
            for threads in [2, 4] {
                assert_threaded_frames_allocate_nothing(bytes, kernels, threads);
            }
        }
    }
}

fn assert_threaded_frames_allocate_nothing(bytes: &[u8], kernels: Kernels, threads: usize) {
    let input = golden("bus_320", "input").data;
    let model = Model::from_bytes(bytes).expect("model loads");
    let mut arena = vec![0u8; model.arena_size()];
    let mut session = Session::with_kernels(&model, &mut arena, kernels).expect("session");
    let mut pool = ThreadPool::for_session(&session, threads).expect("threads");
    let mut dets = [edgedetr::Detection::default(); 300];
    let n = allocations_on(&mut pool, |pool| {
        for _ in 0..2 {
            session.set_input_f32(&input).unwrap();
            session.run_with(pool);
        }
        session.run_ops_with(0..model.op_count(), pool).unwrap();
        let found = session
            .detections(&edgedetr::PostProcess::default(), 810, 1080, &mut dets)
            .unwrap();
        std::hint::black_box(found);
    });
    assert_eq!(
        n,
        0,
        "a frame on {threads} threads allocated {n} times on {}",
        kernels.name()
    );
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
