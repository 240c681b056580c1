//! The [`Tracer`]: collects task records while installed and writes them as
//! a callgrind profile.
//!
//! Installed tracers form a stack: the last one installed and not yet
//! uninstalled is the active one, and uninstalling it makes the one installed
//! before it active again (the seed's rule, which let a tracer be installed
//! over cProfile and give it back).
//!
//! Each thread that records gets its own aggregate (a "slot") registered
//! with the active tracer, so recording takes only that thread's lock. When a
//! thread exits, or starts recording into another tracer, its slot is merged
//! into the tracer's retired aggregate: nothing recorded is lost and memory
//! stays proportional to live threads times distinct stacks.

use crate::callgrind::{write_callgrind, write_callgrind_with_cpu, CpuStack, Header, ProfileStack};
use crate::{Aggregate, Costs, Outcome, StackId, TaskRecord};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Collects the records of tasks while installed, and writes them as a
/// callgrind profile.
///
/// A `Tracer` keeps what it collected after it is uninstalled, so it can be
/// written at any time. Dropping a `Tracer` uninstalls it.
///
/// # Example
///
/// ```
/// use theseus_profiler::{record, Outcome, StackId, TaskRecord, Tracer};
///
/// let tracer = Tracer::new();
/// tracer.install();
/// // An executor calls `record` as each task ends.
/// record(&TaskRecord {
///     stack: StackId::ROOT,
///     wall_ns: 1_000,
///     busy_ns: 200,
///     sched_ns: 100,
///     polls: 3,
///     wakes: 2,
///     outcome: Outcome::Completed,
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
}

#[derive(Default)]
struct Registry {
    /// The aggregates of threads currently recording into this tracer.
    slots: Vec<Arc<Slot>>,
    /// Everything from threads that have exited or moved to another tracer.
    retired: Aggregate,
    /// Sampled CPU nanoseconds by sample stack (the running task's stack
    /// followed by the sampled frames), from [`crate::Sampler`]. Written
    /// by its drain only, a few times a second, so one map under the
    /// registry lock is enough.
    cpu: HashMap<StackId, u64>,
}

/// One thread's aggregate for one tracer.
#[derive(Default)]
struct Slot {
    aggregate: Mutex<Aggregate>,
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
    let costs = Costs::from_record(rec);
    let recorded = BINDING
        .try_with(|cell| {
            let Ok(mut binding) = cell.try_borrow_mut() else {
                return false;
            };
            if binding.epoch != EPOCH.load(Ordering::Acquire) {
                rebind(&mut binding);
            }
            if let Some((_, slot)) = &binding.bound {
                lock(&slot.aggregate).add(rec.stack, rec.outcome, &costs);
            }
            true
        })
        .unwrap_or(false);
    if !recorded {
        // This thread's storage is being torn down: record straight into the
        // active tracer's retired aggregate instead.
        if let Some(shared) = active() {
            lock(&shared.registry)
                .retired
                .add(rec.stack, rec.outcome, &costs);
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
            lock(&top.registry).slots.push(slot.clone());
            binding.bound = Some((top, slot));
        }
    }
    binding.epoch = epoch;
}

impl Shared {
    /// Moves a slot's contents into the retired aggregate and forgets the
    /// slot, in one step under the registry lock so a concurrent snapshot
    /// sees the costs exactly once.
    fn retire(&self, slot: &Arc<Slot>) {
        let mut registry = lock(&self.registry);
        registry.slots.retain(|s| !Arc::ptr_eq(s, slot));
        let aggregate = std::mem::take(&mut *lock(&slot.aggregate));
        registry.retired.merge(&aggregate);
    }

    fn snapshot(&self) -> Aggregate {
        let registry = lock(&self.registry);
        let mut all = registry.retired.clone();
        for slot in &registry.slots {
            all.merge(&lock(&slot.aggregate));
        }
        all
    }
}

impl Tracer {
    /// A tracer that is not installed yet and has recorded nothing.
    pub fn new() -> Tracer {
        Tracer {
            shared: Arc::new(Shared {
                registry: Mutex::new(Registry::default()),
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
    /// [`crate::resolve`], once per distinct stack.
    pub fn profile(&self) -> Vec<ProfileStack> {
        let mut aggregate = self.snapshot();
        for rec in crate::record::live_records() {
            aggregate.add_record(&rec);
        }
        let mut resolved: HashMap<StackId, Vec<crate::ResolvedFrame>> = HashMap::new();
        let mut entries: Vec<(StackId, Outcome, Costs)> = aggregate.iter().collect();
        entries.sort_by_key(|&(stack, outcome, _)| (stack, outcome as u8));
        entries
            .into_iter()
            .map(|(stack, outcome, costs)| ProfileStack {
                frames: resolved
                    .entry(stack)
                    .or_insert_with(|| crate::resolve(stack))
                    .clone(),
                outcome,
                costs,
            })
            .collect()
    }

    /// The CPU samples of [`crate::Sampler`] recorded into this tracer, by
    /// resolved stack: the running task's logical stack followed by the
    /// frames that were running below its poll boundary. Samples taken
    /// while no task ran are one stack of a single frame,
    /// [`crate::sampler::NO_TASK`]. Samples still buffered are collected
    /// first.
    pub fn cpu_profile(&self) -> Vec<CpuStack> {
        crate::sampler::drain();
        let mut entries: Vec<(StackId, u64)> = lock(&self.shared.registry)
            .cpu
            .iter()
            .map(|(&stack, &ns)| (stack, ns))
            .collect();
        entries.sort_unstable();
        entries
            .into_iter()
            .map(|(stack, cpu_ns)| {
                let mut frames = crate::resolve(stack);
                if frames.is_empty() {
                    frames.push(crate::ResolvedFrame {
                        function: crate::sampler::NO_TASK.to_string(),
                        file: "???".to_string(),
                        line: 0,
                    });
                }
                CpuStack { frames, cpu_ns }
            })
            .collect()
    }

    /// Writes the profile ([`Tracer::profile`]) in callgrind format, with
    /// the sampled CPU time ([`Tracer::cpu_profile`]) as the `CpuNs` event
    /// when a [`crate::Sampler`] has run in this process.
    pub fn write_data<W: Write + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        let cpu = self.cpu_profile();
        if cpu.is_empty() && !crate::sampler::has_run() {
            write_callgrind(out, &Header::current(), &self.profile())
        } else {
            write_callgrind_with_cpu(out, &Header::current(), &self.profile(), &cpu)
        }
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
