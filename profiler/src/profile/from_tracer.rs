//! The profiles a [`Tracer`] hands out: its records, and the CPU samples
//! put into it, resolved into a [`Profile`] for the whole run
//! ([`Tracer::to_profile`]), an interval ([`Tracer::take_interval`]) or a
//! [`Window`]. The tracer only collects; building the profile from what it
//! collected is this layer's, so the tracer knows no tree and no profile.

use crate::aggregate::Aggregate;
use crate::capture::StackId;
use crate::tracer::{cpu_sampled, Tracer, Window};
use crate::tree::{resolve_tree, CpuStack, ProfileStack};
use std::time::{Instant, SystemTime};

use super::Profile;

impl Tracer {
    /// The profile as resolved stacks: finished tasks, plus the tasks still
    /// running (as [`crate::Outcome::Unfinished`]) from every source registered with
    /// [`crate::register_live_tasks`]. Stacks are resolved with
    /// [`crate::resolve`], once per distinct stack. Each stack is given in
    /// full, so this costs the sum of their depths; [`Tracer::to_profile`]
    /// shares their prefixes instead.
    pub fn stacks(&self) -> Vec<ProfileStack> {
        resolve_tree(&self.whole_run(), Vec::new()).stacks()
    }

    /// The CPU samples of [`crate::Sampler`] recorded into this tracer, by
    /// resolved stack: the running task's logical stack followed by the
    /// frames that were running below its poll boundary. Samples taken
    /// while no task ran are one stack of a single frame,
    /// [`crate::sampler::NO_TASK`]. Samples still buffered are collected
    /// first.
    pub fn cpu_stacks(&self) -> Vec<CpuStack> {
        resolve_tree(&Aggregate::new(), self.cpu_entries()).cpu_stacks()
    }

    /// The whole run as a [`Profile`]: [`Tracer::stacks`] and
    /// [`Tracer::cpu_stacks`], from when the tracer was made until now.
    /// Resolving a stack costs only what it adds to its parent task's
    /// stack, so a chain of tasks thousands deep costs time and memory
    /// linear in it.
    pub fn to_profile(&self) -> Profile {
        let cpu = self.cpu_entries();
        profile_since(&self.whole_run(), cpu, self.created())
    }

    /// Ends the current interval and returns its [`Profile`]; the next
    /// interval starts now. The first interval starts when the tracer was
    /// made.
    ///
    /// The profile holds each task's cost *within* the interval: tasks that
    /// ended in it, and tasks still running (as [`crate::Outcome::Unfinished`],
    /// with what they cost since the last interval), so that the intervals'
    /// costs add up to the whole run's ([`crate::interval`] has the
    /// details). Memory stays flat however many intervals are taken.
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
        let (aggregate, cpu, started) = self.cut();
        profile_since(&aggregate, cpu, started)
    }
}

/// The profile of `aggregate` and the CPU samples `cpu`, over the time from
/// `started` until now.
fn profile_since(
    aggregate: &Aggregate,
    cpu: Vec<(StackId, u64)>,
    (start, began): (SystemTime, Instant),
) -> Profile {
    Profile {
        sampled: !cpu.is_empty() || cpu_sampled(),
        tree: resolve_tree(aggregate, cpu),
        start,
        duration: began.elapsed(),
        ..Profile::empty()
    }
}

impl Window {
    /// Ends the window now and returns its profile: the tasks that ended
    /// in it and those still running (as [`crate::Outcome::Unfinished`]),
    /// each with its costs within the window, and the CPU samples taken in it.
    pub fn close(self) -> Profile {
        match self.end() {
            Some((aggregate, cpu, started)) => profile_since(&aggregate, cpu, started),
            None => Profile::empty(),
        }
    }
}
