//! The callgrind writer.
//!
//! It takes resolved stacks ([`ProfileStack`]: frames, outcome, summed costs)
//! and writes a file that `callgrind_annotate`, `gprof2dot` and KCachegrind
//! read. The rules, checked against those readers:
//!
//! - Header in this order: `# callgrind format`, `version: 1`, `creator:`,
//!   `pid:`, `cmd:`, `positions: line`, one `event:` line per event,
//!   `events:` (the last header line), then `summary:`. Body, then `totals:`.
//! - Events are `WallNs BusyNs SchedNs IdleNs Polls Wakes Tasks`, integer
//!   nanoseconds or counts; `WallNs` first because gprof2dot reads only the
//!   first event. Profiles with CPU samples ([`write_callgrind_with_cpu`])
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
//! kept, so `main, a, b, a, c` is attributed as `main, a, c`. Without this a
//! recursive function would get the same task's cost twice and its
//! inclusive cost could exceed the total; with it, no function's inclusive
//! cost (summed over outgoing calls, as callgrind_annotate does, or over
//! incoming calls, as gprof2dot does) can exceed the program total.
//!
//! **Outcomes** other than completion are shown as separate leaves, so the
//! interesting tasks stand out: the leaf's name gets a suffix,
//! ` (cancelled)`, ` (panicked)` or ` (unfinished)` (still running when the
//! profile was written, with its costs so far). A completed task's leaf has
//! no suffix.
//!
//! **CPU samples** ([`CpuStack`]) are attributed the same way, with their
//! `CpuNs` as self cost at the innermost sampled frame and as inclusive cost
//! on every edge above it, so one tree shows where tasks waited and where
//! they burned CPU. A sample is not a call: its edges add 0 to `calls=`,
//! which keeps counting tasks.
//!
//! **Function identity** is the name: readers disagree on whether the file
//! is part of a function's identity (gprof2dot ignores it), so each name is
//! written with one file, the first of its known files in sort order
//! (`"???"` only when no frame of that name has a file, or none of its
//! frames has a line number). A function that only calls others gets a
//! zero self cost at its first call line, so callgrind_annotate can
//! annotate its source file.

use crate::{Costs, Outcome, ResolvedFrame};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

/// The events of every cost line, in order, with their long names.
pub const EVENTS: [(&str, &str); 7] = [
    ("WallNs", "Wall time, spawn to completion (ns)"),
    ("BusyNs", "Busy time, inside poll (ns)"),
    ("SchedNs", "Scheduling delay, woken to polled (ns)"),
    ("IdleNs", "Idle time, awaiting something (ns)"),
    ("Polls", "Polls"),
    ("Wakes", "Wakes"),
    ("Tasks", "Tasks"),
];

/// The event of sampled CPU time, written after [`EVENTS`] by
/// [`write_callgrind_with_cpu`].
pub const CPU_EVENT: (&str, &str) = ("CpuNs", "CPU time sampled while the task ran (ns)");

/// Cost slots: the task events, then the CPU event.
const WIDTH: usize = EVENTS.len() + 1;

/// Longest function or file name written, in bytes. gprof2dot warns about
/// (and dot cannot parse) names of 4096 characters or more; longer names are
/// cut at a character boundary and end in `...`.
pub const MAX_NAME_LEN: usize = 2000;

/// The name shown for a task whose stack resolved to no frames at all.
pub const UNKNOWN_TASK: &str = "[task] (unknown spawn site)";

/// The costs of all tasks that share one resolved stack and outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileStack {
    /// Outermost first, the task's leaf last.
    pub frames: Vec<ResolvedFrame>,
    /// How these tasks ended.
    pub outcome: Outcome,
    /// Their summed costs.
    pub costs: Costs,
}

/// The CPU time sampled on one resolved stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuStack {
    /// Outermost first: the running task's logical stack, then the frames
    /// that were running below its poll boundary, innermost last.
    pub frames: Vec<ResolvedFrame>,
    /// Sampled CPU time in nanoseconds.
    pub cpu_ns: u64,
}

/// The process details written in the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Process id (`pid:`).
    pub pid: u32,
    /// Command line (`cmd:`).
    pub cmd: String,
}

impl Header {
    /// The pid and command line of this process.
    pub fn current() -> Header {
        let cmd: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Header {
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

/// Writes `stacks` as a callgrind profile (see the module docs for the rules
/// and the attribution of costs). The output is deterministic: the same
/// stacks in any order give the same bytes.
pub fn write_callgrind<W: Write + ?Sized>(
    out: &mut W,
    header: &Header,
    stacks: &[ProfileStack],
) -> io::Result<()> {
    let graph = Graph::build(stacks, &[], EVENTS.len());
    let mut out = io::BufWriter::new(out);
    graph.write(&mut out, header)?;
    out.flush()
}

/// Writes `stacks` and the CPU samples `cpu` as one callgrind profile, with
/// [`CPU_EVENT`] after the task events (written even when `cpu` is empty,
/// so every profile of a sampled program has the same events).
///
/// ```
/// use theseus_profiler::{write_callgrind_with_cpu, CpuStack, Header, ResolvedFrame};
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
/// let header = Header { pid: 1, cmd: "app".to_string() };
/// let mut out = Vec::new();
/// write_callgrind_with_cpu(&mut out, &header, &[], &cpu).unwrap();
/// let text = String::from_utf8(out).unwrap();
/// assert!(text.contains("events: WallNs BusyNs SchedNs IdleNs Polls Wakes Tasks CpuNs\n"));
/// assert!(text.contains("\ntotals: 0 0 0 0 0 0 0 3000000\n"));
/// ```
pub fn write_callgrind_with_cpu<W: Write + ?Sized>(
    out: &mut W,
    header: &Header,
    stacks: &[ProfileStack],
    cpu: &[CpuStack],
) -> io::Result<()> {
    let graph = Graph::build(stacks, cpu, WIDTH);
    let mut out = io::BufWriter::new(out);
    graph.write(&mut out, header)?;
    out.flush()
}

/// A frame as written: name, file, line.
type Frame = (String, String, u32);

/// One function of the output.
#[derive(Default)]
struct Function {
    /// Self cost by line.
    own: BTreeMap<u32, [u64; WIDTH]>,
    /// Calls by (callee, call-site line, target line): count and inclusive cost.
    calls: BTreeMap<(usize, u32, u32), (u64, [u64; WIDTH])>,
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

fn add_into(into: &mut [u64; WIDTH], costs: &[u64; WIDTH]) {
    for (a, b) in into.iter_mut().zip(costs) {
        *a = a.saturating_add(*b);
    }
}

/// A name as it can appear on one line of the file.
fn clean_name(raw: &str) -> String {
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

impl Graph {
    fn build(stacks: &[ProfileStack], cpu: &[CpuStack], events: usize) -> Graph {
        let clean_frames = |frames: &[ResolvedFrame]| -> Vec<Frame> {
            let mut frames: Vec<Frame> = frames
                .iter()
                .map(|f| (clean_name(&f.function), clean_name(&f.file), f.line))
                .collect();
            if frames.is_empty() {
                frames.push((UNKNOWN_TASK.to_string(), "???".to_string(), 0));
            }
            frames
        };
        // Clean every frame once: (name, file, line), leaf suffixed. Every
        // stack comes with its costs and the number of calls it adds to each
        // edge (its tasks; none for CPU samples).
        let mut cleaned: Vec<(Vec<Frame>, [u64; WIDTH], u64)> = stacks
            .iter()
            .map(|stack| {
                let mut frames = clean_frames(&stack.frames);
                let suffix = outcome_suffix(stack.outcome);
                if !suffix.is_empty() {
                    if let Some(leaf) = frames.last_mut() {
                        leaf.0 = clean_name(&format!("{}{}", leaf.0, suffix));
                    }
                }
                let mut costs = [0u64; WIDTH];
                costs[..EVENTS.len()].copy_from_slice(&stack.costs.to_array());
                (frames, costs, stack.costs.tasks)
            })
            .collect();
        cleaned.extend(cpu.iter().map(|sample| {
            let mut costs = [0u64; WIDTH];
            costs[EVENTS.len()] = sample.cpu_ns;
            (clean_frames(&sample.frames), costs, 0)
        }));

        // One file per name: the smallest known file, "???" only as a last resort.
        let mut files: BTreeMap<&str, &str> = BTreeMap::new();
        for (frames, _, _) in &cleaned {
            for (name, file, _) in frames {
                let entry = files.entry(name.as_str()).or_insert(file.as_str());
                let better = match (*entry == "???", file == "???") {
                    (true, false) => true,
                    (false, true) => false,
                    _ => file.as_str() < *entry,
                };
                if better {
                    *entry = file.as_str();
                }
            }
        }
        let names: Vec<(String, String)> = files
            .iter()
            .map(|(n, f)| (n.to_string(), f.to_string()))
            .collect();
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i))
            .collect();

        let mut functions: Vec<Function> = names.iter().map(|_| Function::default()).collect();
        let mut total = [0u64; WIDTH];
        let mut path: Vec<(usize, u32)> = Vec::new();
        for (frames, costs, calls) in &cleaned {
            add_into(&mut total, costs);

            // Collapse recursion: each function once, at its deepest appearance.
            path.clear();
            for (name, _, line) in frames {
                let f = index[name.as_str()];
                if let Some(pos) = path.iter().position(|&(g, _)| g == f) {
                    path.truncate(pos);
                }
                path.push((f, *line));
            }

            let &(leaf, leaf_line) = path.last().expect("a stack has at least one frame");
            add_into(functions[leaf].own.entry(leaf_line).or_default(), costs);
            for pair in path.windows(2) {
                let (caller, call_line) = pair[0];
                let (callee, target_line) = pair[1];
                let edge = functions[caller]
                    .calls
                    .entry((callee, call_line, target_line))
                    .or_default();
                edge.0 = edge.0.saturating_add(*calls);
                add_into(&mut edge.1, costs);
            }
        }
        // callgrind_annotate annotates the source file of every function
        // with costs, by the lines of its self-cost lines, and prints Perl
        // warnings for a file that exists but has none with a line number.
        // So a function with only calls gets a zero self cost at its first
        // call line, and a function with no line number at all is written
        // in the unknown file `???`, which readers do not open.
        let mut names = names;
        for (function, (_, file)) in functions.iter_mut().zip(names.iter_mut()) {
            if function.own.keys().any(|&line| line != 0) {
                continue;
            }
            let first_call = function
                .calls
                .keys()
                .map(|&(_, call_line, _)| call_line)
                .filter(|&line| line != 0)
                .min();
            match first_call {
                Some(line) => {
                    function.own.entry(line).or_default();
                }
                None => *file = "???".to_string(),
            }
        }
        Graph {
            names,
            functions,
            total,
            events,
        }
    }

    fn write(&self, out: &mut impl Write, header: &Header) -> io::Result<()> {
        writeln!(out, "# callgrind format")?;
        writeln!(out, "version: 1")?;
        writeln!(out, "creator: theseus {}", env!("CARGO_PKG_VERSION"))?;
        writeln!(out, "pid: {}", header.pid)?;
        writeln!(out, "cmd: {}", clean_name(&header.cmd))?;
        writeln!(out, "positions: line")?;
        let events: Vec<(&str, &str)> = EVENTS
            .iter()
            .copied()
            .chain([CPU_EVENT])
            .take(self.events)
            .collect();
        for (name, long) in &events {
            writeln!(out, "event: {name} : {long}")?;
        }
        let event_names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
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
                writeln!(out, "calls={count} {target_line}")?;
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
