//! One profile, many writers: the resolved stacks with their costs that
//! every output format is written from.
//!
//! A [`Profile`] is what a [`crate::Tracer`] hands out when a profile is to
//! be written: its task stacks ([`ProfileStack`]), already resolved to
//! frames, each with an outcome and summed costs; the CPU samples of
//! theseus's sampler ([`CpuStack`]); the process details; and the span of
//! time it covers. Writers do not see aggregates, stack ids or symbols.
//!
//! The stacks are kept in a [`ProfileTree`], which shares their prefixes:
//! a chain of tasks each spawned by the one before, `n` deep, is `n` stacks
//! of average depth `n / 2`, and kept one by one they would take time and
//! memory quadratic in `n`. The callgrind writer reads the tree directly;
//! formats that print every stack in full ([`Profile::samples`]) pay for
//! the repetition themselves.
//!
//! [`Profile::samples`] is the step every writer shares: it turns each
//! stack into a [`Sample`] of printable frames (names on one line, at most
//! [`MAX_NAME_LEN`] bytes, an empty stack shown as [`UNKNOWN_TASK`]) whose
//! task leaf carries the outcome suffix (` (cancelled)`, ` (panicked)`,
//! ` (unfinished)`), and one value per [`Event`]. A task's leaf is the last
//! frame of its stack; the stack of one of its await points goes on past
//! it, through the chain of frames that awaited, to an `[await]` leaf, and
//! holds the time the tasks waited there ([`ProfileStack::task_leaf`]). So the callgrind file,
//! the pprof profile, the folded stacks, the flame graph and the terminal
//! report all show the same logical stacks under the same names, and their
//! numbers agree.

mod from_tracer;

use crate::aggregate::Costs;
use crate::resolution::ResolvedFrame;
use crate::task_record::Outcome;
use crate::tree::{NodeId, ProfileTree};
use std::fmt;

pub use crate::tree::{CpuStack, ProfileStack};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// What is measured, one value per event in every [`Sample`].
///
/// The order is the callgrind `events:` order: [`Event::WallNs`] first
/// (gprof2dot reads only the first event), [`Event::CpuNs`] last and only
/// in profiles of programs that ran theseus's CPU sampler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// Spawn to completion, or to the moment of writing for a live task.
    WallNs,
    /// Inside the task's polls.
    BusyNs,
    /// From each schedule (the spawn, every wake) to the poll it caused:
    /// waiting for a worker.
    SchedNs,
    /// `WallNs - BusyNs - SchedNs`: waiting for something to wake the task.
    IdleNs,
    /// Polls.
    Polls,
    /// Wakes (schedules after the spawn).
    Wakes,
    /// How many tasks the cost belongs to.
    Tasks,
    /// How many frames (marked futures, requests) the cost belongs to.
    Frames,
    /// CPU time sampled while the task ran (`THESEUS_SAMPLE_HZ`).
    CpuNs,
}

/// How many events there are, [`Event::CpuNs`] included.
pub const EVENT_COUNT: usize = 9;

impl Event {
    /// Every event, in order.
    pub const ALL: [Event; EVENT_COUNT] = [
        Event::WallNs,
        Event::BusyNs,
        Event::SchedNs,
        Event::IdleNs,
        Event::Polls,
        Event::Wakes,
        Event::Tasks,
        Event::Frames,
        Event::CpuNs,
    ];

    /// The events of task records, without [`Event::CpuNs`].
    pub const TASK: [Event; 8] = [
        Event::WallNs,
        Event::BusyNs,
        Event::SchedNs,
        Event::IdleNs,
        Event::Polls,
        Event::Wakes,
        Event::Tasks,
        Event::Frames,
    ];

    /// The name written in every format: `WallNs`, `BusyNs`, ...
    pub fn name(self) -> &'static str {
        match self {
            Event::WallNs => "WallNs",
            Event::BusyNs => "BusyNs",
            Event::SchedNs => "SchedNs",
            Event::IdleNs => "IdleNs",
            Event::Polls => "Polls",
            Event::Wakes => "Wakes",
            Event::Tasks => "Tasks",
            Event::Frames => "Frames",
            Event::CpuNs => "CpuNs",
        }
    }

    /// A description with the unit, as callgrind's `event:` long name.
    pub fn description(self) -> &'static str {
        match self {
            Event::WallNs => "Wall time, spawn to completion (ns)",
            Event::BusyNs => "Busy time, inside poll (ns)",
            Event::SchedNs => "Scheduling delay, woken to polled (ns)",
            Event::IdleNs => "Idle time, awaiting something (ns)",
            Event::Polls => "Polls",
            Event::Wakes => "Wakes",
            Event::Tasks => "Tasks",
            Event::Frames => "Frames",
            Event::CpuNs => "CPU time sampled while the task ran (ns)",
        }
    }

    /// The unit as pprof names it: `nanoseconds` or `count`.
    pub fn unit(self) -> &'static str {
        match self {
            Event::WallNs | Event::BusyNs | Event::SchedNs | Event::IdleNs | Event::CpuNs => {
                "nanoseconds"
            }
            Event::Polls | Event::Wakes | Event::Tasks | Event::Frames => "count",
        }
    }

    /// The position of this event's value in [`Sample::values`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the [`Event`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseEventError {
    value: String,
}

impl fmt::Display for ParseEventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no event is named {:?}; the events are ", self.value)?;
        let names: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
        f.write_str(&names.join(", "))
    }
}

impl std::error::Error for ParseEventError {}

impl FromStr for Event {
    type Err = ParseEventError;

    /// An event's name, ignoring case and surrounding blanks: `wallns`
    /// and ` WallNs ` are both [`Event::WallNs`].
    fn from_str(s: &str) -> Result<Event, ParseEventError> {
        let wanted = s.trim();
        Event::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| ParseEventError {
                value: s.to_string(),
            })
    }
}

/// Longest function or file name written, in bytes. gprof2dot warns about
/// (and dot cannot parse) names of 4096 characters or more; longer names are
/// cut at a character boundary and end in `...`.
pub const MAX_NAME_LEN: usize = 2000;

/// The name shown for a task whose stack resolved to no frames at all.
pub const UNKNOWN_TASK: &str = "[task] (unknown spawn site)";

/// The process a profile is of, as every format writes it in its header:
/// callgrind's `pid:` and `cmd:` lines, pprof's comments, the flame graph's
/// subtitle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileHeader {
    /// Process id.
    pub pid: u32,
    /// Command line.
    pub cmd: String,
}

impl ProfileHeader {
    /// The pid and command line of this process.
    pub fn current() -> ProfileHeader {
        let cmd: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        ProfileHeader {
            pid: std::process::id(),
            cmd: cmd.join(" "),
        }
    }
}

/// The suffix added to the leaf's name for tasks with this outcome.
pub fn outcome_suffix(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Completed => "",
        Outcome::Panicked => " (panicked)",
        Outcome::Cancelled => " (cancelled)",
        Outcome::Unfinished => " (unfinished)",
    }
}

/// A name as it can appear on one line of any format: control characters
/// become spaces, blanks around it go, an empty name reads `???`, and a name
/// longer than [`MAX_NAME_LEN`] bytes is cut and ends in `...`.
pub fn clean_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return "???".to_string();
    }
    if trimmed.len() != s.len() {
        s = trimmed.to_string();
    }
    if s.len() > MAX_NAME_LEN {
        let mut cut = MAX_NAME_LEN - 3;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// One frame as every writer prints it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    /// The function, cleaned ([`clean_name`]); a task's leaf carries its
    /// outcome suffix.
    pub name: String,
    /// The source file, cleaned; `???` when unknown.
    pub file: String,
    /// The source line, 0 when unknown.
    pub line: u32,
}

impl Frame {
    /// `frame` as printed: its function and file cleaned ([`clean_name`]).
    pub(crate) fn cleaned(frame: &ResolvedFrame) -> Frame {
        Frame {
            name: clean_name(&frame.function),
            file: clean_name(&frame.file),
            line: frame.line,
        }
    }

    /// The frame that stands for a stack that resolved to no frames at all:
    /// [`UNKNOWN_TASK`].
    pub(crate) fn unknown_task() -> Frame {
        Frame {
            name: UNKNOWN_TASK.to_string(),
            file: "???".to_string(),
            line: 0,
        }
    }

    /// Names this frame, a task's leaf, with the suffix of `outcome`
    /// ([`outcome_suffix`]).
    pub(crate) fn add_outcome(&mut self, outcome: Outcome) {
        let suffix = outcome_suffix(outcome);
        if !suffix.is_empty() {
            self.name = clean_name(&format!("{}{suffix}", self.name));
        }
    }
}

/// One stack of a [`Profile`], ready to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Outermost first, never empty.
    pub frames: Vec<Frame>,
    /// How the tasks of this stack ended; `None` for CPU samples.
    pub outcome: Option<Outcome>,
    /// Which frame is the task's leaf (see [`ProfileStack::task_leaf`]);
    /// `None` for CPU samples.
    pub task_leaf: Option<usize>,
    /// One value per event, indexed by [`Event::index`]. Task stacks have
    /// 0 for [`Event::CpuNs`]; CPU samples have only [`Event::CpuNs`].
    pub values: [u64; EVENT_COUNT],
}

impl Sample {
    /// The value of `event`.
    pub fn value(&self, event: Event) -> u64 {
        self.values[event.index()]
    }
}

/// Everything a writer needs: resolved stacks with their costs, CPU
/// samples, the process, and the time covered.
///
/// # Example
///
/// ```
/// use theseus_profiler::{Costs, Event, Format, Outcome, Profile, ProfileStack, ResolvedFrame};
///
/// let frame = |function: &str, line| ResolvedFrame {
///     function: function.to_string(),
///     file: "src/main.rs".to_string(),
///     line,
/// };
/// let mut profile = Profile::empty();
/// profile.push_stack(ProfileStack {
///     frames: vec![frame("app::main", 3), frame("[task] app::work", 4)],
///     task_leaf: 1,
///     outcome: Outcome::Cancelled,
///     costs: Costs { wall_ns: 900, busy_ns: 100, sched_ns: 50, idle_ns: 750, polls: 2, wakes: 1, waits: 0, tasks: 1, frames: 0 },
/// });
/// let mut folded = Vec::new();
/// profile.write(Format::Folded, Event::WallNs, &mut folded).unwrap();
/// assert_eq!(String::from_utf8(folded).unwrap(), "app::main;[task] app::work (cancelled) 900\n");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The process the profile is of.
    pub header: ProfileHeader,
    /// The tasks, by stack and outcome, and the CPU samples of theseus's
    /// sampler, by stack.
    pub tree: ProfileTree,
    /// Whether the sampler ran: then [`Event::CpuNs`] is one of the
    /// profile's events, even with no sample in it.
    pub sampled: bool,
    /// When the time the profile covers began.
    pub start: SystemTime,
    /// How long it covers.
    pub duration: Duration,
}

impl Profile {
    /// A profile of this process with nothing in it, starting now.
    pub fn empty() -> Profile {
        Profile {
            header: ProfileHeader::current(),
            tree: ProfileTree::new(),
            sampled: false,
            start: SystemTime::now(),
            duration: Duration::ZERO,
        }
    }

    /// A profile of `stacks` and `cpu`, of this process, starting now;
    /// [`Profile::sampled`] when `sampled`.
    pub fn from_stacks(stacks: &[ProfileStack], cpu: &[CpuStack], sampled: bool) -> Profile {
        Profile {
            tree: ProfileTree::from_stacks(stacks, cpu),
            sampled,
            ..Profile::empty()
        }
    }

    /// Adds the costs of tasks that share a stack and outcome (or their
    /// waits at one await point).
    pub fn push_stack(&mut self, stack: ProfileStack) {
        self.tree.add_stack(&stack);
    }

    /// Adds CPU time sampled on a stack.
    pub fn push_cpu(&mut self, sample: CpuStack) {
        let node = self.tree.node_of(&sample.frames);
        self.tree.add_cpu(node, sample.cpu_ns);
    }

    /// The tasks, by stack and outcome, each stack in full, in the order
    /// they were added.
    pub fn stacks(&self) -> Vec<ProfileStack> {
        self.tree.stacks()
    }

    /// The CPU samples, by stack, each in full, in the order they were
    /// added.
    pub fn cpu(&self) -> Vec<CpuStack> {
        self.tree.cpu_stacks()
    }

    /// The events this profile has: the task events, and [`Event::CpuNs`]
    /// when [`Profile::sampled`].
    pub fn events(&self) -> &'static [Event] {
        if self.sampled {
            &Event::ALL
        } else {
            &Event::TASK
        }
    }

    /// Every stack as a [`Sample`]: the task stacks in order, then the CPU
    /// samples. Stacks are not merged: two stacks may print alike (the same
    /// names from different spawn sites), and each writer merges as its
    /// format needs.
    pub fn samples(&self) -> Vec<Sample> {
        let tree = &self.tree;
        let unsettled = tree.unsettled_leaves();
        let mut samples = Vec::with_capacity(tree.tasks().len() + tree.cpu().len());
        for (&(node, outcome, costs), &leaf) in tree.tasks().iter().zip(tree.task_leaves()) {
            let mut frames = clean_frames(&tree.frames(node));
            let task_leaf = tree.depth(leaf).saturating_sub(1).min(frames.len() - 1);
            suffix_parents(tree, leaf, &unsettled, &mut frames[..task_leaf]);
            frames[task_leaf].add_outcome(outcome);
            samples.push(Sample {
                frames,
                outcome: Some(outcome),
                task_leaf: Some(task_leaf),
                values: task_values(&costs),
            });
        }
        for &(node, cpu_ns) in tree.cpu() {
            let mut frames = clean_frames(&tree.frames(node));
            let above = tree.depth(node).saturating_sub(1).min(frames.len());
            suffix_parents(tree, node, &unsettled, &mut frames[..above]);
            samples.push(Sample {
                frames,
                outcome: None,
                task_leaf: None,
                values: cpu_values(cpu_ns),
            });
        }
        samples
    }

    /// Whether the profile holds nothing: no task, no frame and no CPU
    /// sample. `main`'s own record alone (a run that spawned nothing, or
    /// one that printed its usage and exited) is nothing to show.
    pub fn is_empty(&self) -> bool {
        let units = |(_, _, costs): &(NodeId, Outcome, Costs)| costs.tasks + costs.frames;
        self.tree.tasks().iter().map(units).sum::<u64>() == 0 && self.tree.cpu().is_empty()
    }

    /// The sum of every stack's values.
    pub fn totals(&self) -> [u64; EVENT_COUNT] {
        let mut totals = [0u64; EVENT_COUNT];
        for (_, _, costs) in self.tree.tasks() {
            for (total, v) in totals.iter_mut().zip(task_values(costs)) {
                *total = total.saturating_add(v);
            }
        }
        let cpu = &mut totals[Event::CpuNs.index()];
        for &(_, cpu_ns) in self.tree.cpu() {
            *cpu = cpu.saturating_add(cpu_ns);
        }
        totals
    }
}

/// Suffixes the leaves among `frames`, the frames above `node` (outermost
/// first), of tasks that all ended one way other than completion (see
/// [`ProfileTree::unsettled_leaves`]), so what they spawned hangs below
/// their leaf as it is shown.
fn suffix_parents(
    tree: &ProfileTree,
    node: NodeId,
    unsettled: &[Option<Outcome>],
    frames: &mut [Frame],
) {
    let mut cur = tree.parent(node);
    for frame in frames.iter_mut().rev() {
        let Some(at) = cur else { break };
        if let Some(outcome) = unsettled[at.index()] {
            frame.add_outcome(outcome);
        }
        cur = tree.parent(at);
    }
}

/// The values of tasks' costs, by [`Event::index`]; 0 for [`Event::CpuNs`].
pub(crate) fn task_values(c: &Costs) -> [u64; EVENT_COUNT] {
    [
        c.wall_ns, c.busy_ns, c.sched_ns, c.idle_ns, c.polls, c.wakes, c.tasks, c.frames, 0,
    ]
}

/// The values of CPU time sampled on a stack, by [`Event::index`]: only
/// [`Event::CpuNs`].
pub(crate) fn cpu_values(cpu_ns: u64) -> [u64; EVENT_COUNT] {
    let mut values = [0; EVENT_COUNT];
    values[Event::CpuNs.index()] = cpu_ns;
    values
}

/// Printable frames of a resolved stack; an empty stack becomes the one
/// frame [`UNKNOWN_TASK`].
fn clean_frames(frames: &[ResolvedFrame]) -> Vec<Frame> {
    if frames.is_empty() {
        return vec![Frame::unknown_task()];
    }
    frames.iter().map(Frame::cleaned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str) -> ResolvedFrame {
        ResolvedFrame {
            function: function.to_string(),
            file: "src/lib.rs".to_string(),
            line: 1,
        }
    }

    #[test]
    fn events_parse_by_name_ignoring_case() {
        for event in Event::ALL {
            assert_eq!(event.name().parse(), Ok(event));
            assert_eq!(event.name().to_lowercase().parse(), Ok(event));
            assert_eq!(Event::ALL[event.index()], event);
        }
        let err = "wall".parse::<Event>().unwrap_err().to_string();
        assert!(
            err.contains("\"wall\"") && err.contains("WallNs, BusyNs"),
            "{err}"
        );
    }

    #[test]
    fn samples_carry_outcome_suffixes_and_cpu_values() {
        let task = ProfileStack::named(
            &["main", "[task] a"],
            Outcome::Unfinished,
            Costs {
                wall_ns: 10,
                tasks: 1,
                ..Costs::default()
            },
        );
        let mut waits = ProfileStack::named(
            &["main", "[task] a", "a", "[await] b"],
            Outcome::Cancelled,
            Costs {
                wall_ns: 4,
                idle_ns: 4,
                wakes: 1,
                ..Costs::default()
            },
        );
        waits.task_leaf = 1;
        let unknown = ProfileStack::named(
            &[],
            Outcome::Completed,
            Costs {
                wall_ns: 5,
                tasks: 2,
                ..Costs::default()
            },
        );
        let profile = Profile::from_stacks(
            &[task, waits, unknown],
            &[CpuStack {
                frames: vec![frame("[task] a"), frame("\tspin\n")],
                cpu_ns: 7,
            }],
            true,
        );

        let samples = profile.samples();
        let names = |s: &Sample| s.frames.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&samples[0]), ["main", "[task] a (unfinished)"]);
        // An await point's suffix is on its task's leaf, not on its own.
        assert_eq!(
            names(&samples[1]),
            ["main", "[task] a (cancelled)", "a", "[await] b"]
        );
        assert_eq!(samples[1].task_leaf, Some(1));
        assert_eq!(names(&samples[2]), [UNKNOWN_TASK]);
        assert_eq!(names(&samples[3]), ["[task] a", "spin"]);
        assert_eq!(samples[3].outcome, None);
        assert_eq!(samples[3].value(Event::CpuNs), 7);
        let totals = profile.totals();
        assert_eq!(
            (
                totals[0],
                totals[Event::Tasks.index()],
                totals[Event::CpuNs.index()]
            ),
            (19, 3, 7)
        );
        assert_eq!(profile.events().len(), 9);
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_NAME_LEN);
        let cleaned = clean_name(&long);
        assert!(cleaned.len() <= MAX_NAME_LEN && cleaned.ends_with("..."));
        assert_eq!(clean_name(" \n "), "???");
    }
}
