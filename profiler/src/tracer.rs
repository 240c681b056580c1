//! The [`Tracer`]: collects task records while installed and hands them out
//! as a [`Profile`], for the whole run or ([`Tracer::take_interval`]) for
//! the time since the last interval.
//!
//! Installed tracers form a stack: the last one installed and not yet
//! uninstalled is the active one, and uninstalling it makes the one installed
//! before it active again (the seed's rule, which let a tracer be installed
//! over cProfile and give it back).
//!
//! Each thread that records gets its own aggregate (a "slot") registered
//! with the active tracer, so recording takes only that thread's lock. When a
//! thread exits, or starts recording into another tracer, its slot is merged
//! into the tracer's pending records: nothing recorded is lost and memory
//! stays proportional to live threads times distinct stacks.
//!
//! Intervals: each slot holds the finished tasks since the last cut. A cut
//! ([`Tracer::take_interval`]) takes them from every slot, adds them to the
//! whole run's aggregate, and works out each task's cost within the
//! interval ([`crate::interval`]).

use crate::interval::{Carry, Finished, Reported, Routing};
use crate::profile::{CpuStack, Profile, ProfileStack};
use crate::stack::TreeResolver;
use crate::{Aggregate, Costs, Format, Outcome, ProfileTree, StackId, TaskRecord};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
/// use theseus_profiler::{record, AwaitCosts, Outcome, StackId, TaskId, TaskRecord, Tracer};
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
/// });
/// tracer.uninstall();
///
/// let mut out = Vec::new();
/// tracer.write_data(&mut out).unwrap();
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.starts_with("# callgrind format\n"));
/// assert!(text.contains("\ntotals: 1000 200 100 700 3 2 1\n"));
/// ```
pub struct Tracer {
    shared: Arc<Shared>,
}

/// What a tracer shares with the threads recording into it.
struct Shared {
    registry: Mutex<Registry>,
    /// When the tracer was made: the start of the whole run's profile.
    created: (SystemTime, Instant),
}

#[derive(Default)]
struct Registry {
    /// The records of threads currently recording into this tracer.
    slots: Vec<Arc<Slot>>,
    /// Finished tasks since the last cut from threads that have exited or
    /// moved to another tracer. Its routing is the one new slots start with.
    pending: Finished,
    /// Finished tasks taken by cuts, at full cost: with `pending` and the
    /// slots, the whole run.
    cut: Aggregate,
    /// Sampled CPU nanoseconds by sample stack (the running task's stack
    /// followed by the sampled frames), from [`crate::Sampler`]. Written
    /// by its drain only, a few times a second, so one map under the
    /// registry lock is enough.
    cpu: HashMap<StackId, u64>,
    /// What the cuts keep between them; `None` before the first.
    intervals: Option<Intervals>,
}

/// The state of a tracer that is cut into intervals.
struct Intervals {
    /// What was reported of the tasks running at the last cut.
    carry: Carry,
    /// `cpu` at the last cut.
    cpu_at_cut: HashMap<StackId, u64>,
    /// When the current interval began.
    started: (SystemTime, Instant),
}

impl Registry {
    /// Sets the routing of every slot, and of records filed here.
    fn set_routing(&mut self, cutting: bool, reported: Option<Arc<Reported>>) {
        for slot in &self.slots {
            let mut finished = lock(&slot.finished);
            finished.routing.cutting = cutting;
            finished.routing.reported = reported.clone();
        }
        self.pending.routing = Routing { cutting, reported };
    }
}

/// One thread's records for one tracer.
#[derive(Default)]
struct Slot {
    finished: Mutex<Finished>,
}

/// Installed tracers, the active one last.
static INSTALLED: Mutex<Vec<Arc<Shared>>> = Mutex::new(Vec::new());
/// Whether `INSTALLED` is non-empty; read on the executor's hot path.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Bumped on every change of `INSTALLED`, so a thread notices with one load
/// that its slot may belong to a tracer that is no longer active.
static EPOCH: AtomicU64 = AtomicU64::new(1);

/// A poisoned lock only means another thread panicked while holding it; the
/// aggregates are still consistent sums (each update is a single add), so
/// keep going rather than lose the profile.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's binding to the slot it records into.
struct Binding {
    epoch: u64,
    bound: Option<(Arc<Shared>, Arc<Slot>)>,
}

impl Binding {
    fn unbind(&mut self) {
        if let Some((shared, slot)) = self.bound.take() {
            shared.retire(&slot);
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
}

pub(crate) fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// The active tracer, if any.
fn active() -> Option<Arc<Shared>> {
    lock(&INSTALLED).last().cloned()
}

pub(crate) fn record(rec: &TaskRecord) {
    if !is_active() {
        return;
    }
    let recorded = BINDING
        .try_with(|cell| {
            let Ok(mut binding) = cell.try_borrow_mut() else {
                return false;
            };
            if binding.epoch != EPOCH.load(Ordering::Acquire) {
                rebind(&mut binding);
            }
            if let Some((_, slot)) = &binding.bound {
                lock(&slot.finished).add(rec);
            }
            true
        })
        .unwrap_or(false);
    if !recorded {
        // This thread's storage is being torn down: record straight into the
        // active tracer's pending records instead.
        if let Some(shared) = active() {
            lock(&shared.registry).pending.add(rec);
        }
    }
}

/// Adds `ns` of sampled CPU time under `stack` to the active tracer.
/// Does nothing when no tracer is installed.
pub(crate) fn record_cpu(stack: StackId, ns: u64) {
    if let Some(shared) = active() {
        let mut registry = lock(&shared.registry);
        let total = registry.cpu.entry(stack).or_default();
        *total = total.saturating_add(ns);
    }
}

/// Points this thread's binding at a slot of the active tracer.
fn rebind(binding: &mut Binding) {
    let (epoch, top) = {
        let installed = lock(&INSTALLED);
        (EPOCH.load(Ordering::Acquire), installed.last().cloned())
    };
    let same = match (&binding.bound, &top) {
        (Some((shared, _)), Some(top)) => Arc::ptr_eq(shared, top),
        (None, None) => true,
        _ => false,
    };
    if !same {
        binding.unbind();
        if let Some(top) = top {
            let slot = Arc::new(Slot::default());
            {
                let mut registry = lock(&top.registry);
                let routing = &registry.pending.routing;
                lock(&slot.finished).routing = Routing {
                    cutting: routing.cutting,
                    reported: routing.reported.clone(),
                };
                registry.slots.push(slot.clone());
            }
            binding.bound = Some((top, slot));
        }
    }
    binding.epoch = epoch;
}

impl Shared {
    /// Moves a slot's contents into the pending records and forgets the
    /// slot, in one step under the registry lock so a concurrent snapshot
    /// sees the costs exactly once.
    fn retire(&self, slot: &Arc<Slot>) {
        let mut registry = lock(&self.registry);
        registry.slots.retain(|s| !Arc::ptr_eq(s, slot));
        let finished = lock(&slot.finished).take();
        registry.pending.absorb(finished);
    }

    fn snapshot(&self) -> Aggregate {
        let registry = lock(&self.registry);
        let mut all = registry.cut.clone();
        registry.pending.add_to(&mut all);
        for slot in &registry.slots {
            lock(&slot.finished).add_to(&mut all);
        }
        all
    }

    /// Ends the current interval: its costs by stack and outcome, its CPU
    /// samples by stack, and when it began.
    fn cut(&self) -> (Aggregate, Vec<(StackId, u64)>, (SystemTime, Instant)) {
        // Buffered CPU samples first; the drain takes the registry lock.
        crate::sampler::drain();
        let mut registry = lock(&self.registry);
        // Keep every record whole from here until the new routing is set:
        // the live tasks are seen now, the finished ones taken below.
        let routing = registry.pending.routing.reported.clone();
        registry.set_routing(true, routing);
        let live = crate::record::live_records();
        let mut finished = registry.pending.take();
        for slot in &registry.slots {
            finished.absorb(lock(&slot.finished).take());
        }
        let mut full = Aggregate::new();
        finished.add_to(&mut full);
        registry.cut.merge(&full);

        let created = self.created;
        let Registry { cpu, intervals, .. } = &mut *registry;
        let intervals = intervals.get_or_insert_with(|| Intervals {
            carry: Carry::default(),
            cpu_at_cut: HashMap::new(),
            started: created,
        });
        let aggregate = intervals.carry.cut(finished, live);
        let reported = intervals.carry.reported();
        let cpu_in_interval: Vec<(StackId, u64)> = cpu
            .iter()
            .map(|(&stack, &ns)| {
                let before = intervals.cpu_at_cut.get(&stack).copied().unwrap_or(0);
                (stack, ns.saturating_sub(before))
            })
            .filter(|&(_, ns)| ns > 0)
            .collect();
        intervals.cpu_at_cut = cpu.clone();
        let started =
            std::mem::replace(&mut intervals.started, (SystemTime::now(), Instant::now()));
        registry.set_routing(false, reported);
        (aggregate, cpu_in_interval, started)
    }
}

impl Tracer {
    /// A tracer that is not installed yet and has recorded nothing.
    pub fn new() -> Tracer {
        Tracer {
            shared: Arc::new(Shared {
                registry: Mutex::new(Registry::default()),
                created: (SystemTime::now(), Instant::now()),
            }),
        }
    }

    /// Makes this tracer the active one: records of tasks that end from now
    /// on are added to it. Installing an installed tracer moves it back on
    /// top.
    pub fn install(&self) {
        let mut installed = lock(&INSTALLED);
        installed.retain(|s| !Arc::ptr_eq(s, &self.shared));
        installed.push(self.shared.clone());
        ACTIVE.store(true, Ordering::Relaxed);
        EPOCH.fetch_add(1, Ordering::AcqRel);
    }

    /// Stops this tracer collecting. If it was the active one, the tracer
    /// installed before it (if any, and not uninstalled since) becomes active
    /// again. Uninstalling a tracer that is not installed does nothing.
    pub fn uninstall(&self) {
        let mut installed = lock(&INSTALLED);
        let before = installed.len();
        installed.retain(|s| !Arc::ptr_eq(s, &self.shared));
        if installed.len() != before {
            ACTIVE.store(!installed.is_empty(), Ordering::Relaxed);
            EPOCH.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Whether this tracer is installed (active, or waiting under another).
    pub fn is_installed(&self) -> bool {
        lock(&INSTALLED)
            .iter()
            .any(|s| Arc::ptr_eq(s, &self.shared))
    }

    /// Whether this tracer is the one that records go to now.
    pub fn is_active(&self) -> bool {
        lock(&INSTALLED)
            .last()
            .is_some_and(|s| Arc::ptr_eq(s, &self.shared))
    }

    /// The costs of the finished tasks recorded so far, merged over all
    /// threads (live tasks not included).
    pub fn snapshot(&self) -> Aggregate {
        self.shared.snapshot()
    }

    /// The profile as resolved stacks: finished tasks, plus the tasks still
    /// running (as [`Outcome::Unfinished`]) from every source registered with
    /// [`crate::register_live_tasks`]. Stacks are resolved with
    /// [`crate::resolve`], once per distinct stack. Each stack is given in
    /// full, so this costs the sum of their depths; [`Tracer::to_profile`]
    /// shares their prefixes instead.
    pub fn profile(&self) -> Vec<ProfileStack> {
        let mut tree = ProfileTree::new();
        add_tasks(&mut tree, &mut TreeResolver::new(), &self.whole_run());
        tree.stacks()
    }

    /// Finished tasks and, as unfinished, live ones.
    fn whole_run(&self) -> Aggregate {
        let mut aggregate = self.snapshot();
        for rec in crate::record::live_records() {
            aggregate.add_record(&rec);
        }
        aggregate
    }

    /// The CPU samples of [`crate::Sampler`] recorded into this tracer, by
    /// resolved stack: the running task's logical stack followed by the
    /// frames that were running below its poll boundary. Samples taken
    /// while no task ran are one stack of a single frame,
    /// [`crate::sampler::NO_TASK`]. Samples still buffered are collected
    /// first.
    pub fn cpu_profile(&self) -> Vec<CpuStack> {
        let mut tree = ProfileTree::new();
        add_cpu(&mut tree, &mut TreeResolver::new(), self.cpu_entries());
        tree.cpu_stacks()
    }

    /// The CPU samples so far, those still buffered collected first.
    fn cpu_entries(&self) -> Vec<(StackId, u64)> {
        crate::sampler::drain();
        lock(&self.shared.registry)
            .cpu
            .iter()
            .map(|(&stack, &ns)| (stack, ns))
            .collect()
    }

    /// The whole run as a [`Profile`]: [`Tracer::profile`] and
    /// [`Tracer::cpu_profile`], from when the tracer was made until now.
    /// Resolving a stack costs only what it adds to its parent task's
    /// stack, so a chain of tasks thousands deep costs time and memory
    /// linear in it.
    pub fn to_profile(&self) -> Profile {
        let cpu = self.cpu_entries();
        let (start, began) = self.shared.created;
        Profile {
            sampled: !cpu.is_empty() || crate::sampler::has_run(),
            tree: resolve_tree(&self.whole_run(), cpu),
            start,
            duration: began.elapsed(),
            ..Profile::empty()
        }
    }

    /// Ends the current interval and returns its [`Profile`]; the next
    /// interval starts now. The first interval starts when the tracer was
    /// made.
    ///
    /// The profile holds each task's cost *within* the interval: tasks that
    /// ended in it, and tasks still running (as [`Outcome::Unfinished`],
    /// with what they cost since the last interval), so that the intervals'
    /// costs add up to the whole run's ([`crate::interval`] has the
    /// details). Memory stays flat however many intervals are taken.
    ///
    /// ```
    /// use theseus_profiler::{record, AwaitCosts, Outcome, StackId, TaskId, TaskRecord, Tracer};
    ///
    /// let tracer = Tracer::new();
    /// tracer.install();
    /// let task = |wall_ns| TaskRecord {
    ///     id: TaskId::next(), stack: StackId::ROOT, wall_ns, busy_ns: 0, sched_ns: 0,
    ///     polls: 1, wakes: 0, outcome: Outcome::Completed, awaits: AwaitCosts::NONE,
    /// };
    /// record(&task(100));
    /// let first = tracer.take_interval();
    /// record(&task(40));
    /// record(&task(2));
    /// let second = tracer.take_interval();
    /// tracer.uninstall();
    /// assert_eq!(first.totals()[0], 100);
    /// assert_eq!(second.totals()[0], 42);
    /// assert_eq!(tracer.to_profile().totals()[0], 142);
    /// ```
    pub fn take_interval(&self) -> Profile {
        let (aggregate, cpu, (start, began)) = self.shared.cut();
        Profile {
            sampled: !cpu.is_empty() || crate::sampler::has_run(),
            tree: resolve_tree(&aggregate, cpu),
            start,
            duration: began.elapsed(),
            ..Profile::empty()
        }
    }

    /// Writes the profile ([`Tracer::profile`]) in callgrind format, with
    /// the sampled CPU time ([`Tracer::cpu_profile`]) as the `CpuNs` event
    /// when a [`crate::Sampler`] has run in this process.
    pub fn write_data<W: Write + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        self.to_profile()
            .write(Format::Callgrind, crate::Event::WallNs, out)
    }
}

/// The stacks of `aggregate` and the CPU samples `cpu`, resolved into one
/// tree: each distinct segment once.
fn resolve_tree(aggregate: &Aggregate, cpu: Vec<(StackId, u64)>) -> ProfileTree {
    let mut tree = ProfileTree::new();
    let mut resolver = TreeResolver::new();
    add_tasks(&mut tree, &mut resolver, aggregate);
    add_cpu(&mut tree, &mut resolver, cpu);
    tree
}

/// Adds the stacks of `aggregate`, in order of stack and outcome.
fn add_tasks(tree: &mut ProfileTree, resolver: &mut TreeResolver, aggregate: &Aggregate) {
    let mut entries: Vec<(StackId, Outcome, Costs)> = aggregate.iter().collect();
    // Parents before children (ids grow as stacks are interned), so each
    // stack extends one already resolved.
    entries.sort_by_key(|&(stack, outcome, _)| (stack, outcome as u8));
    for (stack, outcome, costs) in entries {
        let node = resolver.node(tree, stack);
        match crate::stack::task_of_await(stack) {
            Some(task) => {
                let leaf = resolver.node(tree, task);
                tree.add_waits(node, leaf, outcome, costs);
            }
            None => tree.add_tasks(node, outcome, costs),
        }
    }
}

/// Adds CPU samples, in order of stack; a stack that resolves to nothing is
/// [`crate::sampler::NO_TASK`].
fn add_cpu(tree: &mut ProfileTree, resolver: &mut TreeResolver, mut entries: Vec<(StackId, u64)>) {
    entries.sort_unstable();
    for (stack, cpu_ns) in entries {
        let mut node = resolver.node(tree, stack);
        if node == ProfileTree::root() {
            let no_task = crate::ResolvedFrame {
                function: crate::sampler::NO_TASK.to_string(),
                file: "???".to_string(),
                line: 0,
            };
            node = tree.child(node, &no_task);
        }
        tree.add_cpu(node, cpu_ns);
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
