//! The [`Tracer`]: collects task records while installed and hands them out
//! as a [`Profile`](crate::Profile) (built in `profile::from_tracer`), for
//! the whole run, ([`Tracer::take_interval`]) for the time since the last
//! interval, or ([`Window`]) for the time a window was open.
//!
//! Installed tracers form a stack: the last one installed and not yet
//! uninstalled is the active one, and uninstalling it makes the one installed
//! before it active again, so a library can trace a part of a program and
//! give the program's own tracer back.
//!
//! Each thread that records gets a ledger of its own (`ThreadLedger`)
//! registered with the active tracer, so recording takes only that thread's
//! lock. When a thread exits, or starts recording into another tracer, its
//! ledger is merged into the tracer's pending records: nothing recorded is
//! lost and memory stays proportional to live threads times distinct stacks.
//!
//! Intervals: each thread's ledger holds the finished tasks since the last
//! cut. A cut ([`Tracer::take_interval`]) takes them from every ledger, adds
//! them to the whole run's aggregate, and works out each task's cost within
//! the interval ([`crate::interval`]). Windows are cut the same way, when
//! they open and when they close; each reader (the intervals, every open
//! window) has a cursor of its own, and a cut made for one leaves the
//! others their share of what it took, so that none moves another's cuts.
//!
//! CPU samples: the active tracer is where a sampler puts them
//! (`record_cpu`). A sampler that buffers samples says how to flush its
//! buffers (`connect_cpu_source`), and the tracer flushes them before it
//! reads its own, so that a profile holds every sample taken before it. The
//! tracer never calls into a sampler by name: the sampler feeds the tracer,
//! not the other way round.

use crate::aggregate::Aggregate;
use crate::capture::StackId;
use crate::interval::{Cursor, Finished, Reported, Routing, Stretch};
use crate::task_record::TaskRecord;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Instant, SystemTime};

/// Collects the records of tasks while installed, and writes them as a
/// callgrind profile.
///
/// A `Tracer` keeps what it collected after it is uninstalled, so it can be
/// written at any time. Dropping a `Tracer` uninstalls it.
///
/// # Example
///
/// ```
/// use theseus_profiler::{
///     record, AwaitCosts, Outcome, RecordKind, StackId, TaskId, TaskRecord, Tracer,
/// };
///
/// let tracer = Tracer::new();
/// tracer.install();
/// // An executor calls `record` as each task ends.
/// record(&TaskRecord {
///     id: TaskId::next(),
///     stack: StackId::ROOT,
///     wall_ns: 1_000,
///     busy_ns: 200,
///     sched_ns: 100,
///     polls: 3,
///     wakes: 2,
///     outcome: Outcome::Completed,
///     awaits: AwaitCosts::NONE,
///     kind: RecordKind::Task,
/// });
/// tracer.uninstall();
///
/// let mut out = Vec::new();
/// tracer.write_data(&mut out).unwrap();
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.starts_with("# callgrind format\n"));
/// assert!(text.contains("\ntotals: 1000 200 100 700 3 2 1 0\n"));
/// ```
pub struct Tracer {
    collector: Arc<Collector>,
}

/// What a tracer shares with the threads recording into it.
struct Collector {
    ledger: Mutex<Ledger>,
    /// When the tracer was made: the start of the whole run's profile.
    created: (SystemTime, Instant),
}

/// Everything a tracer has recorded.
#[derive(Default)]
struct Ledger {
    /// The ledgers of threads currently recording into this tracer.
    threads: Vec<Arc<ThreadLedger>>,
    /// Finished tasks since the last cut from threads that have exited or
    /// moved to another tracer. Its routing is the one new thread ledgers
    /// start with.
    pending: Finished,
    /// Finished tasks taken by cuts, at full cost: with `pending` and the
    /// thread ledgers, the whole run.
    cut: Aggregate,
    /// Sampled CPU nanoseconds by sample stack (the running task's stack
    /// followed by the sampled frames), from [`crate::Sampler`]. Written
    /// by its drain only, a few times a second, so one map under the
    /// ledger's lock is enough.
    cpu: HashMap<StackId, u64>,
    /// Where the interval snapshots are; `None` before the first.
    intervals: Option<Cursor>,
    /// The open windows, by number.
    windows: Vec<(u64, Cursor)>,
    /// The number of the next window opened.
    next_window: u64,
}

impl Ledger {
    /// Sets the routing of every thread's ledger, and of records filed here.
    fn set_routing(&mut self, cutting: bool, reported: Option<Arc<Reported>>) {
        for thread in &self.threads {
            let mut finished = lock(&thread.finished);
            finished.routing.cutting = cutting;
            finished.routing.reported = reported.clone();
        }
        self.pending.routing = Routing { cutting, reported };
    }
}

/// One thread's records for one tracer.
#[derive(Default)]
struct ThreadLedger {
    finished: Mutex<Finished>,
}

/// Installed tracers, the active one last.
static INSTALLED: Mutex<Vec<Arc<Collector>>> = Mutex::new(Vec::new());
/// Whether `INSTALLED` is non-empty; read on the executor's hot path.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Bumped on every change of `INSTALLED`, so a thread notices with one load
/// that its ledger may belong to a tracer that is no longer active.
static EPOCH: AtomicU64 = AtomicU64::new(1);

/// A poisoned lock only means another thread panicked while holding it; the
/// aggregates are still consistent sums (each update is a single add), so
/// keep going rather than lose the profile.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's binding to the ledger it records into.
struct Binding {
    epoch: u64,
    bound: Option<(Arc<Collector>, Arc<ThreadLedger>)>,
}

impl Binding {
    fn unbind(&mut self) {
        // First: `LEDGER` must not point at a ledger this binding lets go.
        let _ = LEDGER.try_with(|fast| fast.set((0, ptr::null())));
        if let Some((collector, thread)) = self.bound.take() {
            collector.retire(&thread);
        }
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        self.unbind();
    }
}

thread_local! {
    static BINDING: RefCell<Binding> = const {
        RefCell::new(Binding { epoch: 0, bound: None })
    };
    /// The ledger `BINDING` holds, and the epoch it was bound in: what
    /// every record needs of the binding, as plain data without a
    /// destructor, so that reading it is a load from the thread's block
    /// (no borrow flag, no check that the thread is alive). Null while
    /// unbound; cleared before the binding lets go of the ledger.
    static LEDGER: Cell<(u64, *const ThreadLedger)> = const { Cell::new((0, ptr::null())) };
}

/// Whether a tracer is installed: the executor skips all timing when not.
///
/// One relaxed atomic load, so it can be asked on every poll.
#[inline]
pub fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// The active tracer, if any.
fn active() -> Option<Arc<Collector>> {
    lock(&INSTALLED).last().cloned()
}

/// Adds a finished task's costs to this thread's aggregate for the installed
/// tracer. Does nothing when no tracer is installed.
///
/// Costs a thread-local lookup, an uncontended lock and a hash update; the
/// aggregate has one entry per distinct `(stack, outcome)`, whatever the
/// number of tasks.
#[inline]
pub fn record(rec: &TaskRecord) {
    if !is_active() {
        return;
    }
    let (epoch, thread) = LEDGER.with(Cell::get);
    if !thread.is_null() && epoch == EPOCH.load(Ordering::Acquire) {
        // SAFETY: `LEDGER` points at the ledger `BINDING` holds, which
        // clears it before it lets go of that ledger (`Binding::unbind`),
        // and only this thread reads it.
        return lock(unsafe { &(*thread).finished }).add(rec);
    }
    record_binding(rec);
}

/// [`record`] when this thread's ledger is not bound, or bound to a tracer
/// that may no longer be active: binds it to the active tracer's first.
#[cold]
#[inline(never)]
fn record_binding(rec: &TaskRecord) {
    let recorded = BINDING
        .try_with(|cell| {
            let Ok(mut binding) = cell.try_borrow_mut() else {
                return false;
            };
            if binding.epoch != EPOCH.load(Ordering::Acquire) {
                rebind(&mut binding);
            }
            if let Some((_, thread)) = &binding.bound {
                lock(&thread.finished).add(rec);
            }
            true
        })
        .unwrap_or(false);
    if !recorded {
        // This thread's storage is being torn down: record straight into the
        // active tracer's pending records instead.
        if let Some(collector) = active() {
            lock(&collector.ledger).pending.add(rec);
        }
    }
}

/// Adds `ns` of sampled CPU time under `stack` to the active tracer.
/// Does nothing when no tracer is installed.
pub(crate) fn record_cpu(stack: StackId, ns: u64) {
    if let Some(collector) = active() {
        let mut ledger = lock(&collector.ledger);
        let total = ledger.cpu.entry(stack).or_default();
        *total = total.saturating_add(ns);
    }
}

/// How to move the samples a CPU sampler still buffers into the active
/// tracer ([`record_cpu`]): set when theseus's sampler first starts.
static CPU_SOURCE: OnceLock<fn()> = OnceLock::new();

/// Says that a CPU sampler runs in this process, and how to flush the
/// samples it buffers. From then on every profile has the `CpuNs` event,
/// even where it is zero, so the files of one program agree.
pub(crate) fn connect_cpu_source(flush: fn()) {
    CPU_SOURCE.get_or_init(|| flush);
}

/// Moves the samples still buffered by the CPU sampler (if one ever ran)
/// into the active tracer.
fn flush_cpu_source() {
    if let Some(flush) = CPU_SOURCE.get() {
        flush();
    }
}

/// Whether a CPU sampler has run in this process.
pub(crate) fn cpu_sampled() -> bool {
    CPU_SOURCE.get().is_some()
}

/// Points this thread's binding at a ledger of its own in the active tracer.
fn rebind(binding: &mut Binding) {
    let (epoch, top) = {
        let installed = lock(&INSTALLED);
        (EPOCH.load(Ordering::Acquire), installed.last().cloned())
    };
    let same = match (&binding.bound, &top) {
        (Some((collector, _)), Some(top)) => Arc::ptr_eq(collector, top),
        (None, None) => true,
        _ => false,
    };
    if !same {
        binding.unbind();
        if let Some(top) = top {
            let thread = Arc::new(ThreadLedger::default());
            {
                let mut ledger = lock(&top.ledger);
                let routing = &ledger.pending.routing;
                lock(&thread.finished).routing = Routing {
                    cutting: routing.cutting,
                    reported: routing.reported.clone(),
                };
                ledger.threads.push(thread.clone());
            }
            binding.bound = Some((top, thread));
        }
    }
    binding.epoch = epoch;
    let thread = binding
        .bound
        .as_ref()
        .map_or(ptr::null(), |(_, t)| Arc::as_ptr(t));
    LEDGER.with(|fast| fast.set((epoch, thread)));
}

impl Collector {
    /// Moves a thread's ledger into the pending records and forgets it, in
    /// one step under the tracer's lock so a concurrent snapshot sees the
    /// costs exactly once.
    fn retire(&self, thread: &Arc<ThreadLedger>) {
        let mut ledger = lock(&self.ledger);
        ledger.threads.retain(|t| !Arc::ptr_eq(t, thread));
        let finished = lock(&thread.finished).take();
        ledger.pending.absorb(finished);
    }

    fn aggregate(&self) -> Aggregate {
        let ledger = lock(&self.ledger);
        let mut all = ledger.cut.clone();
        ledger.pending.add_to(&mut all);
        for thread in &ledger.threads {
            lock(&thread.finished).add_to(&mut all);
        }
        all
    }

    /// Ends the current interval: its costs by stack and outcome, its CPU
    /// samples by stack, and when it began.
    fn cut(&self) -> Stretch {
        // Buffered CPU samples first; flushing them takes the ledger's lock.
        flush_cpu_source();
        let mut ledger = lock(&self.ledger);
        // Taken out while cut; the first interval starts with the run.
        let mut intervals = match ledger.intervals.take() {
            Some(cursor) => cursor,
            None => Cursor::new(self.created, ledger.cut.clone(), HashMap::new()),
        };
        let (finished, live) = ledger.gather();
        ledger.keep_everywhere(&finished);
        let stretch = intervals.cut(finished, live, &ledger.cpu);
        ledger.intervals = Some(intervals);
        ledger.reroute();
        stretch
    }

    /// Opens a window now; returns its number.
    fn open_window(&self) -> u64 {
        flush_cpu_source();
        let mut ledger = lock(&self.ledger);
        let (finished, live) = ledger.gather();
        ledger.keep_everywhere(&finished);
        let now = (SystemTime::now(), Instant::now());
        let mut window = Cursor::new(now, Aggregate::new(), ledger.cpu.clone());
        window.start_with(live);
        let number = ledger.next_window;
        ledger.next_window += 1;
        ledger.windows.push((number, window));
        ledger.reroute();
        number
    }

    /// Closes window `number`: what it saw, `None` if it is not open.
    fn close_window(&self, number: u64) -> Option<Stretch> {
        flush_cpu_source();
        let mut ledger = lock(&self.ledger);
        let at = ledger.windows.iter().position(|(n, _)| *n == number)?;
        let (_, mut window) = ledger.windows.swap_remove(at);
        let (finished, live) = ledger.gather();
        ledger.keep_everywhere(&finished);
        let stretch = window.cut(finished, live, &ledger.cpu);
        ledger.reroute();
        Some(stretch)
    }

    /// Forgets window `number` unread.
    fn drop_window(&self, number: u64) {
        let mut ledger = lock(&self.ledger);
        ledger.windows.retain(|(n, _)| *n != number);
        ledger.reroute();
    }
}

impl Ledger {
    /// Starts a cut: keeps every record whole from here until
    /// [`Ledger::reroute`] (the live tasks are seen now, the finished ones
    /// taken after), and takes the live tasks and the finished ones from
    /// every thread, adding the finished ones to the whole run.
    fn gather(&mut self) -> (Finished, Vec<TaskRecord>) {
        let routing = self.pending.routing.reported.clone();
        self.set_routing(true, routing);
        let live = crate::task_record::live_records();
        let mut finished = self.pending.take();
        for thread in &self.threads {
            finished.absorb(lock(&thread.finished).take());
        }
        let mut full = Aggregate::new();
        finished.add_to(&mut full);
        self.cut.merge(&full);
        (finished, live)
    }

    /// Has every cursor keep its share of `finished`: all of them but
    /// the one being cut, which its caller has taken out.
    fn keep_everywhere(&mut self, finished: &Finished) {
        if let Some(intervals) = &mut self.intervals {
            intervals.keep(finished);
        }
        for (_, window) in &mut self.windows {
            window.keep(finished);
        }
    }

    /// Ends a cut: records are kept whole from now on only for the tasks
    /// some cursor reported running at its last cut.
    fn reroute(&mut self) {
        let mut ids = Reported::default();
        if let Some(intervals) = &self.intervals {
            intervals.add_reported(&mut ids);
        }
        for (_, window) in &self.windows {
            window.add_reported(&mut ids);
        }
        let reported = (!ids.is_empty()).then(|| Arc::new(ids));
        self.set_routing(false, reported);
    }
}

impl Tracer {
    /// A tracer that is not installed yet and has recorded nothing.
    pub fn new() -> Tracer {
        Tracer {
            collector: Arc::new(Collector {
                ledger: Mutex::new(Ledger::default()),
                created: (SystemTime::now(), Instant::now()),
            }),
        }
    }

    /// Makes this tracer the active one: records of tasks that end from now
    /// on are added to it. Installing an installed tracer moves it back on
    /// top.
    pub fn install(&self) {
        let mut installed = lock(&INSTALLED);
        installed.retain(|c| !Arc::ptr_eq(c, &self.collector));
        installed.push(self.collector.clone());
        ACTIVE.store(true, Ordering::Relaxed);
        EPOCH.fetch_add(1, Ordering::AcqRel);
    }

    /// Stops this tracer collecting. If it was the active one, the tracer
    /// installed before it (if any, and not uninstalled since) becomes active
    /// again. Uninstalling a tracer that is not installed does nothing.
    pub fn uninstall(&self) {
        let mut installed = lock(&INSTALLED);
        let before = installed.len();
        installed.retain(|c| !Arc::ptr_eq(c, &self.collector));
        if installed.len() != before {
            ACTIVE.store(!installed.is_empty(), Ordering::Relaxed);
            EPOCH.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Whether this tracer is installed (active, or waiting under another).
    pub fn is_installed(&self) -> bool {
        lock(&INSTALLED)
            .iter()
            .any(|c| Arc::ptr_eq(c, &self.collector))
    }

    /// Whether this tracer is the one that records go to now.
    pub fn is_active(&self) -> bool {
        lock(&INSTALLED)
            .last()
            .is_some_and(|c| Arc::ptr_eq(c, &self.collector))
    }

    /// The costs of the finished tasks recorded so far, merged over all
    /// threads (live tasks not included).
    pub fn aggregate(&self) -> Aggregate {
        self.collector.aggregate()
    }

    /// Finished tasks and, as unfinished, live ones.
    pub(crate) fn whole_run(&self) -> Aggregate {
        let mut aggregate = self.aggregate();
        for rec in crate::task_record::live_records() {
            aggregate.add_record(&rec);
        }
        aggregate
    }

    /// The CPU samples so far, those still buffered collected first.
    pub(crate) fn cpu_entries(&self) -> Vec<(StackId, u64)> {
        flush_cpu_source();
        lock(&self.collector.ledger)
            .cpu
            .iter()
            .map(|(&stack, &ns)| (stack, ns))
            .collect()
    }

    /// When this tracer was made: the start of the whole run.
    pub(crate) fn created(&self) -> (SystemTime, Instant) {
        self.collector.created
    }

    /// Ends the current interval and returns its costs
    /// ([`Tracer::take_interval`] makes them a profile).
    pub(crate) fn cut(&self) -> Stretch {
        self.collector.cut()
    }

    /// Opens a [`Window`] now: the profile of the time from now until it
    /// is closed, as an interval's ([`Tracer::take_interval`]) but on its
    /// own: any number of windows, overlapping each other and the
    /// intervals, each get exactly their own time's costs, and none moves
    /// the intervals' cuts.
    ///
    /// ```
    /// use theseus_profiler::{
    ///     record, AwaitCosts, Outcome, RecordKind, StackId, TaskId, TaskRecord, Tracer,
    /// };
    ///
    /// let tracer = Tracer::new();
    /// tracer.install();
    /// let task = |wall_ns| TaskRecord {
    ///     id: TaskId::next(), stack: StackId::ROOT, wall_ns, busy_ns: 0, sched_ns: 0,
    ///     polls: 1, wakes: 0, outcome: Outcome::Completed, awaits: AwaitCosts::NONE,
    ///     kind: RecordKind::Task,
    /// };
    /// record(&task(100));
    /// let outer = tracer.open_window();
    /// record(&task(40));
    /// let inner = tracer.open_window();
    /// record(&task(2));
    /// assert_eq!(inner.close().totals()[0], 2);
    /// assert_eq!(outer.close().totals()[0], 42);
    /// tracer.uninstall();
    /// ```
    pub fn open_window(&self) -> Window {
        Window {
            number: self.collector.open_window(),
            collector: self.collector.clone(),
            open: true,
        }
    }
}

/// A stretch of time being profiled, from [`Tracer::open_window`] until
/// [`Window::close`]. Dropping it unread forgets it.
pub struct Window {
    collector: Arc<Collector>,
    number: u64,
    open: bool,
}

impl Window {
    /// Ends the window now and returns its costs, or `None` when it was
    /// already ended ([`Window::close`] makes them a profile).
    pub(crate) fn end(mut self) -> Option<Stretch> {
        self.open = false;
        self.collector.close_window(self.number)
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        if self.open {
            self.collector.drop_window(self.number);
        }
    }
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

impl Default for Tracer {
    fn default() -> Tracer {
        Tracer::new()
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.uninstall();
    }
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("installed", &self.is_installed())
            .finish_non_exhaustive()
    }
}
