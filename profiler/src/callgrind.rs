//! The callgrind writer.
//!
//! It takes a [`Profile`]'s stacks (resolved, with their costs, the leaf
//! named with its outcome and names cleaned as for the other writers: see
//! [`crate::profile`]) and writes a file that `callgrind_annotate`,
//! `gprof2dot` and KCachegrind read. It works on the profile's tree of
//! stacks, each shared prefix once, so a chain of tasks 100,000 deep is
//! written as fast as 100,000 sibling tasks (the call graph is built in
//! `graph`, this module writes it). The rules, checked against those
//! readers:
//!
//! - Header in this order: `# callgrind format`, `version: 1`, `creator:`,
//!   `pid:`, `cmd:`, `positions: line`, one `event:` line per event,
//!   `events:` (the last header line), then `summary:`. Body, then `totals:`.
//! - Events are `WallNs BusyNs SchedNs IdleNs Polls Wakes Tasks Frames`, integer
//!   nanoseconds or counts; `WallNs` first because gprof2dot reads only the
//!   first event. Profiles with CPU samples ([`Profile::sampled`])
//!   add `CpuNs` last.
//! - Files and functions use name compression, `(id) name` at first use and
//!   `(id)` after. Every `fn=` follows a `fl=`, every `cfn=` a `cfi=`.
//! - `calls=COUNT TARGET_LINE` is always followed by exactly one cost line:
//!   the call-site line and the inclusive cost of those calls.
//!
//! # How a task's cost is attributed
//!
//! A task's cost is self cost at the leaf of its logical stack (the frame
//! naming the task). Every caller-to-callee edge along the stack gets
//! `calls += tasks` and the cost as inclusive cost.
//!
//! **Recursion** is collapsed: within one stack each function appears once.
//! When a function appears again deeper in the stack, the frames between its
//! two appearances are dropped and the deeper appearance (with its line) is
//! kept, so `main, a, b, a, c` is attributed as `main, a, c`; unless a
//! task's leaf lies between the two, which is never dropped for a frame
//! that names no task: then the deeper appearance is left out instead. A
//! task spawned as an async block in `serve` runs frames named `serve`, so
//! `serve, [task] async block in serve, serve, work` is attributed as
//! `serve, [task] async block in serve, work`: the task's waits stay below
//! its leaf. Without this a recursive function would get the same task's
//! cost twice and its inclusive cost could exceed the total; with it, no
//! function's inclusive cost (summed over outgoing calls, as
//! callgrind_annotate does, or over incoming calls, as gprof2dot does) can
//! exceed the program total.
//!
//! **Outcomes** other than completion are shown as separate leaves, so the
//! interesting tasks stand out: the leaf's name gets a suffix,
//! ` (cancelled)`, ` (panicked)` or ` (unfinished)` (still running when the
//! profile was written, with its costs so far). A completed task's leaf has
//! no suffix.
//!
//! **Await points** are stacks that run on past a task's leaf
//! ([`ProfileStack::task_leaf`](crate::ProfileStack::task_leaf)): their chain of frames is a callee of the
//! leaf, which carries the outcome suffix, so a cancelled task's waits hang
//! under its `(cancelled)` leaf. Their costs are waits the task's own costs
//! no longer hold, so the leaf's inclusive cost is still the whole task's.
//! They count no tasks: an edge that tasks go through counts the tasks,
//! and an edge that only waits go through (the chain below a task's leaf)
//! counts the waits, each ended by a wake or, for a wait no wake has ended
//! yet, one.
//!
//! **CPU samples** ([`CpuStack`](crate::CpuStack)) are attributed the same way, with their
//! `CpuNs` as self cost at the innermost sampled frame and as inclusive cost
//! on every edge above it, so one tree shows where tasks waited and where
//! they burned CPU. A sample is not a call: its edges add nothing to
//! `calls=`, which keeps counting tasks.
//!
//! **No `calls=0`**: callgrind_annotate books the cost line after `calls=`
//! as a call only when the count is above zero, and otherwise as the
//! caller's own cost at that line, which would count it twice. An edge that
//! only CPU samples reach is written with `calls=1`.
//!
//! **Function identity** is the name: readers disagree on whether the file
//! is part of a function's identity (gprof2dot ignores it), so each name is
//! written with one file: the first in sort order of its known files that
//! are the program's own (relative to its crate root), else of its
//! libraries' or absolute ones (a macro from a dependency, such as tokio's
//! `select!`, puts lines of the function that uses it in the macro's file),
//! and `"???"` only when no frame of that name has a file, or none of its
//! frames has a line number. A function that only calls others gets a
//! zero self cost at its first call line, so callgrind_annotate can
//! annotate its source file.

mod graph;

use crate::profile::{clean_name, Event, Profile, ProfileHeader, EVENT_COUNT};
use graph::Function;
use std::collections::HashMap;
use std::io::{self, Write};

/// Cost slots: the task events, then the CPU event.
const WIDTH: usize = EVENT_COUNT;

/// Writes `profile` in callgrind format, with [`Event::CpuNs`] as the last
/// event when [`Profile::sampled`] (written even when no sample was taken,
/// so every profile of a sampled program has the same events). See the
/// module docs for the rules and the attribution of costs. The output is
/// deterministic: the same stacks in any order give the same bytes.
///
/// ```
/// use theseus_profiler::{callgrind, CpuStack, Profile, ProfileHeader, ResolvedFrame};
///
/// let frame = |function: &str, line| ResolvedFrame {
///     function: function.to_string(),
///     file: "src/main.rs".to_string(),
///     line,
/// };
/// let cpu = [CpuStack {
///     frames: vec![frame("[task] app::work", 10), frame("app::work", 12), frame("app::hash", 30)],
///     cpu_ns: 3_000_000,
/// }];
/// let profile = Profile {
///     header: ProfileHeader { pid: 1, cmd: "app".to_string() },
///     ..Profile::from_stacks(&[], &cpu, true)
/// };
/// let mut out = Vec::new();
/// callgrind::write(&mut out, &profile).unwrap();
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.contains("events: WallNs BusyNs SchedNs IdleNs Polls Wakes Tasks Frames CpuNs\n"));
/// assert!(text.contains("\ntotals: 0 0 0 0 0 0 0 0 3000000\n"));
/// ```
pub fn write<W: Write + ?Sized>(out: &mut W, profile: &Profile) -> io::Result<()> {
    let graph = Graph::build(&profile.tree, profile.events().len());
    let mut out = io::BufWriter::new(out);
    graph.write(&mut out, &profile.header)?;
    out.flush()
}

/// The call graph built from all stacks, functions indexed by name order.
struct Graph {
    /// Sorted names, and the file each is written with.
    names: Vec<(String, String)>,
    functions: Vec<Function>,
    total: [u64; WIDTH],
    /// How many events are written: the task events, or those and `CpuNs`.
    events: usize,
}

/// Adds `costs` to `into`, saturating.
fn add_into(into: &mut [u64; WIDTH], costs: &[u64; WIDTH]) {
    for (a, b) in into.iter_mut().zip(costs) {
        *a = a.saturating_add(*b);
    }
}

impl Graph {
    fn write(&self, out: &mut impl Write, header: &ProfileHeader) -> io::Result<()> {
        writeln!(out, "# callgrind format")?;
        writeln!(out, "version: 1")?;
        writeln!(out, "creator: theseus {}", env!("CARGO_PKG_VERSION"))?;
        writeln!(out, "pid: {}", header.pid)?;
        writeln!(out, "cmd: {}", clean_name(&header.cmd))?;
        writeln!(out, "positions: line")?;
        let events = &Event::ALL[..self.events];
        for event in events {
            writeln!(out, "event: {} : {}", event.name(), event.description())?;
        }
        let event_names: Vec<&str> = events.iter().map(|e| e.name()).collect();
        writeln!(out, "events: {}", event_names.join(" "))?;
        writeln!(out, "summary: {}", self.numbers(&self.total))?;

        let mut fl_ids = Compressor::default();
        let mut fn_ids = Compressor::default();
        for (i, function) in self.functions.iter().enumerate() {
            if function.own.is_empty() && function.calls.is_empty() {
                continue;
            }
            let (name, file) = &self.names[i];
            writeln!(out)?;
            writeln!(out, "fl={}", fl_ids.name(file))?;
            writeln!(out, "fn={}", fn_ids.name(name))?;
            for (line, costs) in &function.own {
                writeln!(out, "{} {}", line, self.numbers(costs))?;
            }
            for (&(callee, call_line, target_line), (count, costs)) in &function.calls {
                let (callee_name, callee_file) = &self.names[callee];
                writeln!(out, "cfi={}", fl_ids.name(callee_file))?;
                writeln!(out, "cfn={}", fn_ids.name(callee_name))?;
                // Never 0: see the module docs.
                writeln!(out, "calls={} {target_line}", (*count).max(1))?;
                writeln!(out, "{} {}", call_line, self.numbers(costs))?;
            }
        }
        writeln!(out)?;
        writeln!(out, "totals: {}", self.numbers(&self.total))?;
        Ok(())
    }

    /// The written events of `costs`.
    fn numbers<'a>(&self, costs: &'a [u64; WIDTH]) -> Numbers<'a> {
        Numbers(&costs[..self.events])
    }
}

/// Integers separated by single spaces.
struct Numbers<'a>(&'a [u64]);

impl std::fmt::Display for Numbers<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

/// Callgrind name compression: `(id) name` the first time, `(id)` after.
#[derive(Default)]
struct Compressor {
    ids: HashMap<String, usize>,
}

impl Compressor {
    fn name(&mut self, name: &str) -> String {
        if let Some(id) = self.ids.get(name) {
            return format!("({id})");
        }
        let id = self.ids.len() + 1;
        self.ids.insert(name.to_string(), id);
        format!("({id}) {name}")
    }
}
