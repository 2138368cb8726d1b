//! [`ThreadPool`] (`std`): persistent worker threads that run one job on
//! every thread at once, for [`crate::Session::run_with`].
//!
//! The pool spawns its workers once, in [`ThreadPool::new`]; a frame then
//! only wakes them. A frame is a sequence of steps ([`Worker::steps`], one
//! per op): each thread runs its own share of a step's chunks first, then
//! the shares other threads have not started, so that a thread the system
//! does not schedule (a busy board, a stalled virtual CPU) leaves its work
//! to the others instead of stopping every op. Waiting threads poll for up
//! to a millisecond (longer than a frame's serial stretches, shorter than
//! the time between frames), then sleep. Nothing here allocates after
//! [`ThreadPool::new`], [`ThreadPool::reserve_scratch`] and
//! [`ThreadPool::reserve_steps`]. Each worker besides the calling thread
//! owns a scratch buffer (what an op's kernels use for packed tiles), so
//! that two threads running parts of the same op never share one.
//!
//! The work split itself is the session's: every op's independent work units
//! (output-channel blocks, pixel tiles, heads, element chunks, channels) are
//! cut into one contiguous run per thread, so no reduction is ever split and
//! the results are the same bytes for every thread count and whichever
//! thread runs a run.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;

use crate::view::Block;

/// `pause` spins before a waiting thread starts to yield (some 10–50 µs, as
/// fast as a `pause` is: an op's share of work usually ends within that of
/// the other threads').
const SPINS: u32 = 1000;

/// How long a waiting thread keeps polling (spinning, and yielding its core
/// between spins) before it goes to sleep: longer than the serial stretches
/// of a frame (ops that run on the calling thread alone, such as the
/// decoder's layer norms and top-k), so that the workers are awake at the
/// next barrier. Waking a sleeping thread costs a futex call and, in a
/// virtual machine, an inter-processor interrupt: tens of microseconds, up
/// to a scheduler tick on a busy machine, which is what made the small ops
/// of the decoder slower on 2 threads than on 1. Between frames (longer than
/// this) the workers sleep.
const POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// `pause` spins between two yields while polling.
const SPINS_PER_YIELD: u32 = 64;

/// A persistent pool of worker threads (`std` only).
///
/// `ThreadPool::new(n)` gives `n` threads in all: the thread that calls
/// [`ThreadPool::broadcast`] (or [`crate::Session::run_with`]) is thread 0
/// and `n − 1` workers are spawned once. A pool may serve any number of
/// sessions, one run at a time (`&mut self`).
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let bytes = std::fs::read("model.edr")?;
/// use edgedetr::{Model, Session, ThreadPool};
/// let model = Model::from_bytes(&bytes)?;
/// let mut arena = edgedetr::std_io::alloc_arena(&model)?;
/// let mut session = Session::new(&model, &mut arena)?;
/// let mut pool = ThreadPool::for_session(&session, ThreadPool::available())?;
/// session.run_with(&mut pool); // allocates nothing
/// # Ok(()) }
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// What the pool's threads share.
struct Shared {
    threads: usize,
    /// The job of the current broadcast (`None` between broadcasts).
    job: Mutex<Option<JobRef>>,
    /// Bumped (under `lock`) to start a broadcast, or to stop.
    epoch: AtomicUsize,
    stop: AtomicBool,
    /// Workers still running the current job.
    running: AtomicUsize,
    /// Workers that took the current job.
    taken: AtomicUsize,
    /// A thread's job panicked during the current broadcast.
    panicked: AtomicBool,
    /// Guards sleeping on `started` and `finished`.
    lock: Mutex<()>,
    started: Condvar,
    finished: Condvar,
    /// Per worker `1..threads`, its scratch (index `w − 1`).
    scratch: Vec<Mutex<Vec<Block>>>,
    barrier: Barrier,
    /// [`Worker::steps`]: per step and thread, the chunks of the thread's
    /// share claimed so far (grown by
    /// [`ThreadPool::reserve_steps`] between broadcasts only; zeroed at the
    /// start of every broadcast).
    claims: RwLock<Vec<AtomicUsize>>,
    /// [`Worker::steps`]: the steps every chunk of which has finished.
    steps_done: AtomicUsize,
    /// [`Worker::steps`]: the chunks of the current step that have finished.
    chunks_done: AtomicUsize,
}

impl ThreadPool {
    /// `std::thread::available_parallelism()`, or 1 when it is unknown: the
    /// default thread count of the CLI.
    pub fn available() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }

    /// A pool of `threads` threads in all (the caller's and `threads − 1`
    /// spawned workers; 0 counts as 1), with no scratch yet.
    ///
    /// # Errors
    /// When the operating system refuses to spawn a thread.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            threads,
            job: Mutex::new(None),
            epoch: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            lock: Mutex::new(()),
            started: Condvar::new(),
            finished: Condvar::new(),
            scratch: (1..threads).map(|_| Mutex::new(Vec::new())).collect(),
            barrier: Barrier::new(threads),
            claims: RwLock::new(Vec::new()),
            steps_done: AtomicUsize::new(0),
            chunks_done: AtomicUsize::new(0),
        });
        let mut pool = ThreadPool {
            shared,
            workers: Vec::with_capacity(threads - 1),
        };
        for w in 1..threads {
            let shared = Arc::clone(&pool.shared);
            let handle = std::thread::Builder::new()
                .name(format!("edgedetr-{w}"))
                .spawn(move || worker(&shared, w))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// A pool of `threads` threads whose workers have the scratch `session`
    /// needs ([`crate::Session::worker_scratch_bytes`]) and room for a step
    /// per op of its model, so that even its
    /// first [`crate::Session::run_with`] allocates nothing.
    ///
    /// # Errors
    /// When the operating system refuses to spawn a thread.
    pub fn for_session(session: &crate::Session<'_, '_>, threads: usize) -> std::io::Result<Self> {
        let mut pool = ThreadPool::new(threads)?;
        pool.reserve_scratch(session.worker_scratch_bytes());
        pool.reserve_steps(session.model().op_count());
        Ok(pool)
    }

    /// Threads in all, the caller's included.
    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Gives every worker at least `bytes` of 64-byte aligned scratch
    /// (allocates when it grows; [`crate::Session::run_with`] calls it).
    pub fn reserve_scratch(&mut self, bytes: usize) {
        let blocks = bytes.div_ceil(64);
        for s in &self.shared.scratch {
            let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
            if s.len() < blocks {
                s.resize(blocks, Block([0; 64]));
            }
        }
    }

    /// Lets a job run up to `steps` [`Worker::steps`] (allocates when it
    /// grows; [`crate::Session::run_with`] calls it).
    pub fn reserve_steps(&mut self, steps: usize) {
        let steps = steps.saturating_mul(self.shared.threads);
        let mut c = self
            .shared
            .claims
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if c.len() < steps {
            c.resize_with(steps, || AtomicUsize::new(0));
        }
    }

    /// Bytes of scratch every worker has.
    pub fn scratch_bytes(&self) -> usize {
        let one = |s: &Mutex<Vec<Block>>| s.lock().map_or(0, |v| v.len() * 64);
        self.shared
            .scratch
            .iter()
            .map(one)
            .min()
            .unwrap_or(usize::MAX)
    }

    /// Runs `job` once on every thread of the pool at once, the calling
    /// thread as [`Worker::index`] 0, and returns when every thread has
    /// finished it. Allocates nothing.
    ///
    /// # Panics
    /// When `job` panics on any thread (after every thread has left it).
    pub fn broadcast<F: Fn(&mut Worker<'_>) + Sync>(&mut self, job: &F) {
        self.run_job(job, true);
    }

    /// Runs `job` on the calling thread (as [`Worker::index`] 0) and on
    /// every worker that starts it before the calling thread has finished
    /// its own run, and returns when those have finished it: a worker the
    /// system schedules late does not hold the caller up. For jobs built on
    /// [`Worker::steps`], which need no particular thread but 0; a job that
    /// waits at [`Worker::wait`] gets every thread anyway. Allocates nothing.
    ///
    /// # Panics
    /// When `job` panics on any thread (after every thread has left it).
    pub fn run_on_ready<F: Fn(&mut Worker<'_>) + Sync>(&mut self, job: &F) {
        self.run_job(job, false);
    }

    fn run_job<F: Fn(&mut Worker<'_>) + Sync>(&mut self, job: &F, every_thread: bool) {
        let sh = &*self.shared;
        if sh.threads == 1 {
            job(&mut Worker {
                index: 0,
                shared: sh,
                scratch: &mut [],
            });
            return;
        }
        *lock(&sh.job) = Some(JobRef::new(job));
        sh.taken.store(0, Ordering::Relaxed);
        sh.barrier.reset();
        for c in sh
            .claims
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            c.store(0, Ordering::Relaxed);
        }
        sh.steps_done.store(0, Ordering::Relaxed);
        sh.chunks_done.store(0, Ordering::Relaxed);
        {
            let _g = lock(&sh.lock);
            sh.epoch.fetch_add(1, Ordering::Release);
        }
        sh.started.notify_all();
        let mine = catch_unwind(AssertUnwindSafe(|| {
            job(&mut Worker {
                index: 0,
                shared: sh,
                scratch: &mut [],
            });
        }));
        if mine.is_err() {
            sh.panicked.store(true, Ordering::Relaxed);
            sh.barrier.poison();
        }
        // The job borrows the caller's data: (with `every_thread`, once every
        // worker has taken it) let no other worker take it, and wait until
        // none runs it.
        if every_thread {
            wait_until(&sh.lock, &sh.finished, || {
                sh.taken.load(Ordering::Acquire) == sh.threads - 1
            });
        }
        *lock(&sh.job) = None;
        wait_until(&sh.lock, &sh.finished, || {
            sh.running.load(Ordering::Acquire) == 0
        });
        let a_worker_panicked = sh.panicked.swap(false, Ordering::Relaxed);
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if a_worker_panicked {
            panic!("an edgedetr worker thread panicked");
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let sh = &*self.shared;
        sh.stop.store(true, Ordering::Relaxed);
        {
            let _g = lock(&sh.lock);
            sh.epoch.fetch_add(1, Ordering::Release);
        }
        sh.started.notify_all();
        for h in self.workers.drain(..) {
            // A worker only ends by seeing `stop`; a panic was caught in it.
            let _ = h.join();
        }
    }
}

impl core::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads())
            .finish_non_exhaustive()
    }
}

/// One thread's view of a [`ThreadPool::broadcast`]: its index, its scratch
/// and the barrier all threads of the broadcast share.
pub struct Worker<'p> {
    index: usize,
    shared: &'p Shared,
    scratch: &'p mut [u8],
}

impl Worker<'_> {
    /// This thread's index: 0 for the calling thread, `1..threads()` for
    /// the workers.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Threads running the broadcast.
    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// This worker's scratch (64-byte aligned, [`ThreadPool::scratch_bytes`]
    /// long); empty for thread 0, which has its own.
    pub fn scratch(&mut self) -> &mut [u8] {
        self.scratch
    }

    /// Waits until every thread of the broadcast has called `wait` as many
    /// times as this one (every thread must call it equally often), and
    /// returns `true`. Once a thread of the broadcast has panicked it returns
    /// `false` at once: the job should then stop, since the others no longer
    /// keep step.
    pub fn wait(&self) -> bool {
        self.shared.threads == 1 || self.shared.barrier.wait()
    }

    /// Runs steps `0..steps` in order on the threads of the broadcast: step
    /// `s` has `chunks(s)` independent chunks, each run once, as
    /// `run(s, chunk, scratch)`; a step starts once every chunk of the
    /// previous one has finished. Thread `t` of `n` owns chunks
    /// `chunks·t/n .. chunks·(t+1)/n` and runs them first (so that
    /// consecutive steps find their data in its cache), then takes chunks
    /// its owners have not started: a thread the operating system has not
    /// scheduled (a busy machine, a stalled virtual CPU) leaves its share to
    /// the others instead of holding every step up. A step of one chunk is
    /// thread 0's alone. Returns `false` once a thread of the broadcast has
    /// panicked (the steps are then unfinished).
    ///
    /// Every thread that runs the broadcast's job must call it with the same
    /// `steps` and `chunks`, and call nothing else that waits for the
    /// others; the pool needs [`ThreadPool::reserve_steps`]`(steps)`.
    /// Allocates nothing.
    ///
    /// # Panics
    /// When the pool has fewer steps reserved (with more than one thread).
    pub fn steps(
        &mut self,
        steps: usize,
        chunks: impl Fn(usize) -> usize,
        mut run: impl FnMut(usize, usize, &mut [u8]),
    ) -> bool {
        let sh = self.shared;
        let (me, n) = (self.index, sh.threads);
        if n == 1 {
            for s in 0..steps {
                for c in 0..chunks(s) {
                    run(s, c, self.scratch);
                }
            }
            return true;
        }
        let claims = sh.claims.read().unwrap_or_else(PoisonError::into_inner);
        assert!(
            claims.len() >= steps * n,
            "ThreadPool::reserve_steps was not called"
        );
        for (s, claimed) in claims.chunks_exact(n).enumerate().take(steps) {
            if !sh.step_open(s) {
                return false;
            }
            let total = chunks(s);
            if total <= 1 {
                if me == 0 {
                    run(s, 0, self.scratch);
                    sh.open_step(s + 1);
                }
                continue;
            }
            // This thread's chunks, then the others' (the next thread's first).
            for owner in (0..n).map(|k| (me + k) % n) {
                let mine = total * owner / n..total * (owner + 1) / n;
                loop {
                    // The previous step's writes are visible (`step_open`
                    // acquired them); claiming only needs atomicity.
                    let c = mine.start + claimed[owner].fetch_add(1, Ordering::Relaxed);
                    if c >= mine.end {
                        break;
                    }
                    run(s, c, self.scratch);
                    // The last chunk to finish opens the next step: its
                    // acquire-release add saw every other chunk's writes.
                    if sh.chunks_done.fetch_add(1, Ordering::AcqRel) + 1 == total {
                        sh.chunks_done.store(0, Ordering::Relaxed);
                        sh.open_step(s + 1);
                    }
                }
            }
        }
        // The caller's results are complete only when the last step is.
        sh.step_open(steps)
    }
}

impl Shared {
    /// Waits until step `s` of [`Worker::steps`] may start (polling, then
    /// sleeping); `false` once a thread has panicked.
    fn step_open(&self, s: usize) -> bool {
        self.barrier
            .sleep_until(|| self.steps_done.load(Ordering::Acquire) >= s)
    }

    /// Lets step `s` of [`Worker::steps`] start, waking the sleepers.
    fn open_step(&self, s: usize) {
        let b = &self.barrier;
        let _g = lock(&b.lock);
        self.steps_done.store(s, Ordering::Release);
        if b.sleepers.load(Ordering::Relaxed) > 0 {
            b.cv.notify_all();
        }
    }
}

/// A worker thread: waits for each broadcast and runs its job.
fn worker(sh: &Shared, index: usize) {
    let mut seen = 0;
    loop {
        wait_until(&sh.lock, &sh.started, || {
            sh.epoch.load(Ordering::Acquire) != seen
        });
        seen = sh.epoch.load(Ordering::Acquire);
        if sh.stop.load(Ordering::Relaxed) {
            return;
        }
        // Take the job, if the caller has not finished it already; `running`
        // counts the workers that took it.
        let job = {
            let g = lock(&sh.job);
            if g.is_some() {
                sh.running.fetch_add(1, Ordering::AcqRel);
                sh.taken.fetch_add(1, Ordering::AcqRel);
            }
            *g
        };
        if let Some(job) = job {
            let mut scratch = lock(&sh.scratch[index - 1]);
            let ran = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: `broadcast` stored this job borrowed for the whole
                // broadcast and does not return (nor drop what the job
                // borrows) before `running` reaches 0, which happens only
                // after this call, below.
                unsafe {
                    job.call(&mut Worker {
                        index,
                        shared: sh,
                        scratch: bytemuck::cast_slice_mut(&mut scratch[..]),
                    });
                }
            }));
            drop(scratch);
            if ran.is_err() {
                sh.panicked.store(true, Ordering::Relaxed);
                sh.barrier.poison();
            }
            if sh.running.fetch_sub(1, Ordering::AcqRel) == 1 {
                let _g = lock(&sh.lock);
                sh.finished.notify_all();
            }
        }
    }
}

/// Locks `m`, ignoring poisoning (the pool's own locks guard no invariant a
/// panic could break: a job's panic is caught outside them).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spins a while for `done`, then sleeps on `cv` until it holds; whoever
/// makes `done` true must then take `lock` and notify `cv`.
fn wait_until(lock_: &Mutex<()>, cv: &Condvar, done: impl Fn() -> bool) {
    if poll(&done) {
        return;
    }
    let mut g = lock(lock_);
    while !done() {
        g = cv.wait(g).unwrap_or_else(PoisonError::into_inner);
    }
}

/// Polls `done` for up to [`POLL`]: [`SPINS`] `pause` spins, then spins
/// with a yield of the core every [`SPINS_PER_YIELD`] (so that a thread of
/// this pool that waits for a core gets it). `true` once `done` holds,
/// `false` when the time ran out (the caller then sleeps).
fn poll(done: &impl Fn() -> bool) -> bool {
    for _ in 0..SPINS {
        if done() {
            return true;
        }
        core::hint::spin_loop();
    }
    let start = std::time::Instant::now();
    loop {
        for _ in 0..SPINS_PER_YIELD {
            if done() {
                return true;
            }
            core::hint::spin_loop();
        }
        std::thread::yield_now();
        if start.elapsed() >= POLL {
            return done();
        }
    }
}

/// A reusable barrier for the pool's threads: polls ([`poll`]), then sleeps; poisoned
/// (never waits again in this broadcast) once a thread panicked.
struct Barrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Barrier {
    fn new(threads: usize) -> Self {
        Barrier {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    /// Before a broadcast (no thread is at the barrier).
    fn reset(&self) {
        self.arrived.store(0, Ordering::Relaxed);
        self.poisoned.store(false, Ordering::Relaxed);
    }

    fn poison(&self) {
        let _g = lock(&self.lock);
        self.poisoned.store(true, Ordering::Release);
        self.cv.notify_all();
    }

    /// `false` when poisoned.
    fn wait(&self) -> bool {
        let seen = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            let _g = lock(&self.lock);
            self.generation.fetch_add(1, Ordering::Release);
            if self.sleepers.load(Ordering::Relaxed) > 0 {
                self.cv.notify_all();
            }
            return !self.poisoned.load(Ordering::Acquire);
        }
        self.sleep_until(|| self.generation.load(Ordering::Acquire) != seen)
    }

    /// Polls, then sleeps on `cv`, until `done` holds or the barrier is
    /// poisoned (whoever makes `done` true wakes the sleepers under `lock`);
    /// `false` when poisoned.
    fn sleep_until(&self, done: impl Fn() -> bool) -> bool {
        let passed = || done() || self.poisoned.load(Ordering::Acquire);
        if !poll(&passed) {
            let mut g = lock(&self.lock);
            self.sleepers.fetch_add(1, Ordering::Relaxed);
            while !passed() {
                g = self.cv.wait(g).unwrap_or_else(PoisonError::into_inner);
            }
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
        }
        !self.poisoned.load(Ordering::Acquire)
    }
}

/// A job borrowed by [`ThreadPool::broadcast`], its lifetime erased so that
/// the persistent workers can hold it: the closure's address and the
/// function that calls it.
#[derive(Clone, Copy)]
struct JobRef {
    data: *const (),
    call: unsafe fn(*const (), &mut Worker<'_>),
}

// SAFETY: a `JobRef` points to an `F: Sync` closure (see `JobRef::new`), so
// calling it from other threads through a shared reference is allowed.
unsafe impl Send for JobRef {}

impl JobRef {
    fn new<F: Fn(&mut Worker<'_>) + Sync>(f: &F) -> JobRef {
        /// Calls the `F` at `data`.
        ///
        /// # Safety
        /// `data` must point to a live `F`.
        unsafe fn call<F: Fn(&mut Worker<'_>) + Sync>(data: *const (), w: &mut Worker<'_>) {
            // SAFETY: the caller promises that `data` is a live `F`.
            let f = unsafe { &*data.cast::<F>() };
            f(w);
        }
        JobRef {
            data: (f as *const F).cast(),
            call: call::<F>,
        }
    }

    /// Runs the job.
    ///
    /// # Safety
    /// The closure `new` was given must still be alive.
    unsafe fn call(self, w: &mut Worker<'_>) {
        // SAFETY: `data` and `call` were made together for one `F`, alive as
        // the caller promises.
        unsafe { (self.call)(self.data, w) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every thread runs the job once with its own index; `wait` keeps the
    /// threads in step (no thread sees a later step before all finished the
    /// earlier one).
    #[test]
    fn broadcast_runs_every_thread_in_step() {
        for threads in [1, 2, 3, 5] {
            let mut pool = ThreadPool::new(threads).unwrap();
            pool.reserve_scratch(100);
            assert!(pool.scratch_bytes() >= 100);
            let seen = AtomicUsize::new(0);
            let steps = AtomicUsize::new(0);
            for _ in 0..3 {
                steps.store(0, Ordering::Relaxed);
                pool.broadcast(&|w: &mut Worker<'_>| {
                    assert_eq!(w.threads(), threads);
                    assert_eq!(w.scratch().len(), if w.index() == 0 { 0 } else { 128 });
                    seen.fetch_or(1 << w.index(), Ordering::Relaxed);
                    for step in 0..50 {
                        steps.fetch_add(1, Ordering::AcqRel);
                        assert!(w.wait());
                        assert!(steps.load(Ordering::Acquire) >= (step + 1) * threads);
                        assert!(w.wait());
                    }
                });
                assert_eq!(seen.load(Ordering::Relaxed), (1 << threads) - 1);
                assert_eq!(steps.load(Ordering::Relaxed), 50 * threads);
            }
        }
    }

    /// `steps` runs every chunk exactly once, a step only after every chunk
    /// of the previous one, steps of one chunk on thread 0, on any number of
    /// threads and over several broadcasts of one pool.
    #[test]
    fn steps_run_every_chunk_once_in_order() {
        const STEPS: usize = 40;
        let chunks = |s: usize| s % 7 + 1;
        for threads in [1, 2, 3, 5] {
            let mut pool = ThreadPool::new(threads).unwrap();
            pool.reserve_steps(STEPS);
            for _ in 0..3 {
                let runs: Vec<AtomicUsize> = (0..STEPS * 8).map(|_| AtomicUsize::new(0)).collect();
                let done: Vec<AtomicUsize> = (0..STEPS).map(|_| AtomicUsize::new(0)).collect();
                let misplaced = AtomicUsize::new(0);
                pool.broadcast(&|w: &mut Worker<'_>| {
                    let me = w.index();
                    assert!(w.steps(STEPS, chunks, |s, c, _| {
                        if s > 0 && done[s - 1].load(Ordering::Acquire) != chunks(s - 1) {
                            misplaced.fetch_add(1, Ordering::Relaxed);
                        }
                        if chunks(s) == 1 && me != 0 {
                            misplaced.fetch_add(1, Ordering::Relaxed);
                        }
                        runs[s * 8 + c].fetch_add(1, Ordering::Relaxed);
                        done[s].fetch_add(1, Ordering::AcqRel);
                    }));
                });
                assert_eq!(misplaced.load(Ordering::Relaxed), 0, "{threads} threads");
                for s in 0..STEPS {
                    for c in 0..8 {
                        let want = usize::from(c < chunks(s));
                        assert_eq!(runs[s * 8 + c].load(Ordering::Relaxed), want, "{s} {c}");
                    }
                }
            }
        }
    }

    /// A worker that starts late finds its chunks done by the others: the
    /// steps do not wait for it.
    #[test]
    fn a_late_worker_leaves_its_chunks_to_the_others() {
        let mut pool = ThreadPool::new(2).unwrap();
        pool.reserve_steps(10);
        let by_worker = AtomicUsize::new(0);
        let finished_early = AtomicBool::new(false);
        pool.broadcast(&|w: &mut Worker<'_>| {
            if w.index() == 1 {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            let me = w.index();
            assert!(w.steps(
                10,
                |_| 4,
                |_, _, _| {
                    if me == 1 {
                        by_worker.fetch_add(1, Ordering::Relaxed);
                    }
                }
            ));
            if me == 0 {
                finished_early.store(true, Ordering::Relaxed);
            }
        });
        assert!(finished_early.load(Ordering::Relaxed));
        assert_eq!(by_worker.load(Ordering::Relaxed), 0);
    }

    /// A panic in a chunk (on whichever thread runs it) reaches the caller;
    /// the other threads stop at the next step instead of waiting for the
    /// chunk forever, and the pool keeps working.
    #[test]
    fn a_panic_in_a_step_reaches_the_caller() {
        let mut pool = ThreadPool::new(3).unwrap();
        pool.reserve_steps(5);
        for culprit in [0, 2] {
            let r = catch_unwind(AssertUnwindSafe(|| {
                pool.broadcast(&|w: &mut Worker<'_>| {
                    w.steps(
                        5,
                        |_| 3,
                        |s, c, _| assert!(s != 2 || c != culprit, "planned panic"),
                    );
                });
            }));
            assert!(r.is_err());
        }
        let ran = AtomicUsize::new(0);
        pool.broadcast(&|w: &mut Worker<'_>| {
            assert!(w.steps(
                5,
                |_| 3,
                |_, _, _| {
                    ran.fetch_add(1, Ordering::Relaxed);
                }
            ));
        });
        assert_eq!(ran.load(Ordering::Relaxed), 15);
    }

    /// A panic on a worker or on the calling thread reaches the caller once
    /// every thread has left the job; the others stop at their next `wait`,
    /// and the pool keeps working.
    #[test]
    fn a_panic_reaches_the_caller_and_the_pool_survives() {
        let mut pool = ThreadPool::new(3).unwrap();
        for culprit in [0, 2] {
            let r = catch_unwind(AssertUnwindSafe(|| {
                pool.broadcast(&|w: &mut Worker<'_>| {
                    for _ in 0..10 {
                        assert!(w.index() != culprit, "planned panic");
                        if !w.wait() {
                            return;
                        }
                    }
                });
            }));
            assert!(r.is_err());
            let ran = AtomicUsize::new(0);
            pool.broadcast(&|w: &mut Worker<'_>| {
                assert!(w.wait());
                ran.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(ran.load(Ordering::Relaxed), 3);
        }
    }
}
