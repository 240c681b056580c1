//! The callgrind writer.
//!
//! It takes a [`Profile`]'s stacks (resolved, with their costs, the leaf
//! named with its outcome and names cleaned as for the other writers: see
//! [`crate::profile`]) and writes a file that `callgrind_annotate`,
//! `gprof2dot` and KCachegrind read. It works on the profile's tree of
//! stacks, each shared prefix once, so a chain of tasks 100,000 deep is
//! written as fast as 100,000 sibling tasks. The rules, checked against those
//! readers:
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
//! **Await points** are stacks that run on past a task's leaf
//! ([`ProfileStack::task_leaf`]): their chain of frames is a callee of the
//! leaf, which carries the outcome suffix, so a cancelled task's waits hang
//! under its `(cancelled)` leaf. Their costs are waits the task's own costs
//! no longer hold, so the leaf's inclusive cost is still the whole task's.
//! They count no tasks: an edge that tasks go through counts the tasks,
//! and an edge that only waits go through (the chain below a task's leaf)
//! counts the waits, each ended by a wake or, for a wait no wake has ended
//! yet, one.
//!
//! **CPU samples** ([`CpuStack`]) are attributed the same way, with their
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
//! are relative (the program's own sources, under the directory it ran in),
//! else of its absolute ones (a macro from a dependency, such as tokio's
//! `select!`, puts lines of the function that uses it in the macro's file),
//! and `"???"` only when no frame of that name has a file, or none of its
//! frames has a line number. A function that only calls others gets a
//! zero self cost at its first call line, so callgrind_annotate can
//! annotate its source file.

use crate::profile::{
    clean_name, outcome_suffix, task_values, CpuStack, Event, Header, Profile, ProfileStack,
    EVENT_COUNT, UNKNOWN_TASK,
};
use crate::{NodeId, Outcome, ProfileTree};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

/// Cost slots: the task events, then the CPU event.
const WIDTH: usize = EVENT_COUNT;

/// Writes `profile` in callgrind format, with [`Event::CpuNs`] as the last
/// event when [`Profile::sampled`]. The output is deterministic: the same
/// stacks in any order give the same bytes.
pub fn write<W: Write + ?Sized>(out: &mut W, profile: &Profile) -> io::Result<()> {
    let graph = Graph::build(&profile.tree, profile.events().len());
    let mut out = io::BufWriter::new(out);
    graph.write(&mut out, &profile.header)?;
    out.flush()
}

/// Writes `stacks` as a callgrind profile (see the module docs for the rules
/// and the attribution of costs). The output is deterministic: the same
/// stacks in any order give the same bytes.
pub fn write_callgrind<W: Write + ?Sized>(
    out: &mut W,
    header: &Header,
    stacks: &[ProfileStack],
) -> io::Result<()> {
    write(out, &profile_of(header, stacks, &[], false))
}

/// A frame as written: name, file, line, names cleaned.
type Frame = (String, String, u32);

/// Writes `stacks` and the CPU samples `cpu` as one callgrind profile, with
/// [`Event::CpuNs`] after the task events (written even when `cpu` is empty,
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
    write(out, &profile_of(header, stacks, cpu, true))
}

fn profile_of(
    header: &Header,
    stacks: &[ProfileStack],
    cpu: &[CpuStack],
    sampled: bool,
) -> Profile {
    Profile {
        header: header.clone(),
        ..Profile::from_stacks(stacks, cpu, sampled)
    }
}

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

/// A stack with recursion folded (see the module docs), as a node of a
/// trie: each function at most once on the path from the root.
#[derive(Clone, Copy)]
struct Folded {
    parent: u32,
    function: u32,
    line: u32,
    /// One bit per function on the path (function index mod 64): when a
    /// function's bit is clear it is certainly not on the path, and the
    /// path need not be walked to find it.
    on_path: u64,
}

/// The trie of folded stacks. Folding a stack frame by frame, each prefix
/// is folded once for all the stacks that share it.
struct FoldedTrie {
    nodes: Vec<Folded>,
    index: HashMap<(u32, u32, u32), u32>,
}

impl FoldedTrie {
    const ROOT: u32 = 0;

    fn new() -> FoldedTrie {
        FoldedTrie {
            nodes: vec![Folded {
                parent: FoldedTrie::ROOT,
                function: u32::MAX,
                line: 0,
                on_path: 0,
            }],
            index: HashMap::new(),
        }
    }

    /// The folded stack `parent` followed by `function` at `line`: if the
    /// function is on the path already, the frames from its earlier
    /// appearance on are dropped, and it appears at the end instead.
    fn push(&mut self, parent: u32, function: u32, line: u32) -> u32 {
        let bit = 1u64 << (function % 64);
        let mut base = parent;
        if self.nodes[parent as usize].on_path & bit != 0 {
            // Walks at most one node per distinct function on the path.
            let mut cur = parent;
            while cur != FoldedTrie::ROOT {
                let node = self.nodes[cur as usize];
                if node.function == function {
                    base = node.parent;
                    break;
                }
                cur = node.parent;
            }
        }
        if let Some(&node) = self.index.get(&(base, function, line)) {
            return node;
        }
        let node = self.nodes.len() as u32;
        self.nodes.push(Folded {
            parent: base,
            function,
            line,
            on_path: self.nodes[base as usize].on_path | bit,
        });
        self.index.insert((base, function, line), node);
        node
    }
}

impl Graph {
    /// The call graph of `tree`'s stacks: each node of the tree is cleaned
    /// and folded once, whatever the number of stacks through it.
    fn build(tree: &ProfileTree, events: usize) -> Graph {
        let cleaned: Vec<Frame> = tree
            .distinct_frames()
            .iter()
            .map(|f| (clean_name(&f.function), clean_name(&f.file), f.line))
            .collect();
        let frame_of = |node: NodeId| &cleaned[tree.frame_index(node).expect("not the root")];
        // A node's own frame is part of some written stack when a deeper
        // stack goes through it, or a task completed or a sample was taken
        // right there. Tasks with other outcomes end in a leaf of their own
        // (suffixed), which replaces the node's frame.
        let mut inner = vec![false; tree.len()];
        for node in tree.nodes().skip(1) {
            if let Some(parent) = tree.parent(node) {
                inner[parent.index()] = true;
            }
        }
        // (An await point's own leaf is never suffixed: its task's is.)
        for (&(node, outcome, _), &task_leaf) in tree.tasks().iter().zip(tree.task_leaves()) {
            if outcome == Outcome::Completed || task_leaf != node {
                inner[node.index()] = true;
            }
        }
        for &(node, _) in tree.cpu() {
            inner[node.index()] = true;
        }
        inner[NodeId::ROOT.index()] = false;
        let unknown: Frame = (UNKNOWN_TASK.to_string(), "???".to_string(), 0);
        // The last frame of each task entry and CPU sample, as written.
        let leaf = |node: NodeId, outcome: Outcome| -> Frame {
            let frame = if node == NodeId::ROOT {
                &unknown
            } else {
                frame_of(node)
            };
            let suffix = outcome_suffix(outcome);
            if suffix.is_empty() {
                frame.clone()
            } else {
                (
                    clean_name(&format!("{}{}", frame.0, suffix)),
                    frame.1.clone(),
                    frame.2,
                )
            }
        };
        let task_ends: Vec<Frame> = tree
            .tasks()
            .iter()
            .zip(tree.task_leaves())
            .map(|(&(node, outcome, _), &task_leaf)| {
                leaf(
                    node,
                    if task_leaf == node {
                        outcome
                    } else {
                        Outcome::Completed
                    },
                )
            })
            .collect();
        // The waits of a task that did not complete hang from its leaf as
        // its own costs show it, suffixed.
        let suffixed_leaves: Vec<Option<Frame>> = tree
            .tasks()
            .iter()
            .zip(tree.task_leaves())
            .map(|(&(node, outcome, _), &task_leaf)| {
                (task_leaf != node && outcome != Outcome::Completed)
                    .then(|| leaf(task_leaf, outcome))
            })
            .collect();
        let cpu_leaves: Vec<Frame> = tree
            .cpu()
            .iter()
            .map(|&(node, _)| leaf(node, Outcome::Completed))
            .collect();

        let written = tree
            .nodes()
            .filter(|&n| inner[n.index()])
            .map(&frame_of)
            .chain(&task_ends)
            .chain(suffixed_leaves.iter().flatten())
            .chain(&cpu_leaves);
        let names = function_files(written);
        let index: HashMap<&str, u32> = names
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i as u32))
            .collect();

        // Fold every inner node's stack once, parents first (a node comes
        // after its parent), then each entry's leaf onto its parent's.
        let mut folded = FoldedTrie::new();
        let mut folded_of = vec![FoldedTrie::ROOT; tree.len()];
        for node in tree.nodes().skip(1) {
            if inner[node.index()] {
                let parent = tree.parent(node).expect("not the root");
                let (name, _, line) = frame_of(node);
                folded_of[node.index()] =
                    folded.push(folded_of[parent.index()], index[name.as_str()], *line);
            }
        }
        let mut ends: Vec<(u32, [u64; WIDTH], u64)> = Vec::new();
        // Waits at await points: (their end, their task leaf's folded node,
        // how many waits), to count as calls on the edges of the chain.
        let mut waits: Vec<(u32, u32, u64)> = Vec::new();
        let entries = tree.tasks().iter().zip(tree.task_leaves());
        for (((&(node, _, costs), &task_leaf), end_frame), suffixed) in
            entries.zip(&task_ends).zip(&suffixed_leaves)
        {
            let parent = tree.parent(node).unwrap_or(NodeId::ROOT);
            let mut leaf_folded = folded_of[task_leaf.index()];
            let start = match suffixed {
                // Waits of a task that did not complete: the chain again,
                // under the suffixed leaf.
                Some((name, _, line)) => {
                    let above = tree.parent(task_leaf).unwrap_or(NodeId::ROOT);
                    let mut chain = Vec::new();
                    let mut cur = parent;
                    while cur != task_leaf {
                        chain.push(cur);
                        cur = tree.parent(cur).expect("the task's leaf is an ancestor");
                    }
                    leaf_folded =
                        folded.push(folded_of[above.index()], index[name.as_str()], *line);
                    chain.iter().rev().fold(leaf_folded, |at, &n| {
                        let (name, _, line) = frame_of(n);
                        folded.push(at, index[name.as_str()], *line)
                    })
                }
                None => folded_of[parent.index()],
            };
            let (name, _, line) = end_frame;
            let end = folded.push(start, index[name.as_str()], *line);
            ends.push((end, task_values(&costs), costs.tasks));
            if task_leaf != node {
                // A wait never ended by a wake still counts as one.
                waits.push((end, leaf_folded, costs.wakes.max(1)));
            }
        }
        // A CPU sample is not a call: it adds nothing to `calls=`.
        for (&(node, ns), (name, _, line)) in tree.cpu().iter().zip(&cpu_leaves) {
            let parent = tree.parent(node).unwrap_or(NodeId::ROOT);
            let end = folded.push(folded_of[parent.index()], index[name.as_str()], *line);
            let mut values = [0u64; WIDTH];
            values[Event::CpuNs.index()] = ns;
            ends.push((end, values, 0));
        }

        // Each folded node's inclusive cost is that of the entries ending
        // at or below it: summed from the deepest nodes up, since a node
        // comes after its parent. Only nodes with an entry at or below them
        // are written: folding can leave an inner node's path with no stack
        // ending under it.
        let mut own = vec![None::<[u64; WIDTH]>; folded.nodes.len()];
        let mut inclusive = vec![None::<([u64; WIDTH], u64)>; folded.nodes.len()];
        let mut total = [0u64; WIDTH];
        for (end, costs, calls) in &ends {
            add_into(&mut total, costs);
            add_into(own[*end as usize].get_or_insert([0; WIDTH]), costs);
            let (cost, count) = inclusive[*end as usize].get_or_insert(([0; WIDTH], 0));
            add_into(cost, costs);
            *count = count.saturating_add(*calls);
        }
        for node in (1..folded.nodes.len()).rev() {
            let Some((cost, count)) = inclusive[node] else {
                continue;
            };
            let parent = folded.nodes[node].parent as usize;
            let (parent_cost, parent_count) = inclusive[parent].get_or_insert(([0; WIDTH], 0));
            add_into(parent_cost, &cost);
            *parent_count = parent_count.saturating_add(count);
        }
        // Waits are no tasks: an edge that tasks go through counts those,
        // and one that only waits go through (the chain below a task's
        // leaf) counts the waits. Folded recursion can take the leaf off
        // the path; the walk then stops at the root.
        let mut waited = vec![0u64; folded.nodes.len()];
        for &(end, leaf, count) in &waits {
            let mut cur = end;
            while cur != leaf && cur != FoldedTrie::ROOT {
                waited[cur as usize] = waited[cur as usize].saturating_add(count);
                cur = folded.nodes[cur as usize].parent;
            }
        }
        for (node, waits) in waited.into_iter().enumerate() {
            if let Some((_, calls)) = &mut inclusive[node] {
                if *calls == 0 {
                    *calls = waits;
                }
            }
        }

        let mut functions: Vec<Function> = names.iter().map(|_| Function::default()).collect();
        for (node, folded_node) in folded.nodes.iter().enumerate().skip(1) {
            let callee = folded_node.function as usize;
            if let Some(costs) = &own[node] {
                add_into(
                    functions[callee].own.entry(folded_node.line).or_default(),
                    costs,
                );
            }
            let Some((costs, count)) = &inclusive[node] else {
                continue;
            };
            if folded_node.parent != FoldedTrie::ROOT {
                let caller = folded.nodes[folded_node.parent as usize];
                let edge = functions[caller.function as usize]
                    .calls
                    .entry((callee, caller.line, folded_node.line))
                    .or_default();
                edge.0 = edge.0.saturating_add(*count);
                add_into(&mut edge.1, costs);
            }
        }
        let mut names = names;
        give_every_file_a_line(&mut functions, &mut names);
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

/// Every function name of `frames`, sorted, with the one file it is
/// written with: the program's own (relative) files first, then absolute
/// ones, `???` only as a last resort; the first in sort order among equals.
fn function_files<'a>(frames: impl Iterator<Item = &'a Frame>) -> Vec<(String, String)> {
    let rank = |file: &str| match file {
        "???" => 2,
        _ if file.starts_with('/') || file.contains(":\\") => 1,
        _ => 0,
    };
    let mut files: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, file, _) in frames {
        let entry = files.entry(name.as_str()).or_insert(file.as_str());
        if (rank(file), file.as_str()) < (rank(entry), *entry) {
            *entry = file.as_str();
        }
    }
    files
        .iter()
        .map(|(n, f)| (n.to_string(), f.to_string()))
        .collect()
}

/// callgrind_annotate annotates the source file of every function with
/// costs, by the lines of its self-cost lines, and prints Perl warnings for
/// a file that exists but has none with a line number. So a function with
/// only calls gets a zero self cost at its first call line, and a function
/// with no line number at all is written in the unknown file `???`, which
/// readers do not open.
fn give_every_file_a_line(functions: &mut [Function], names: &mut [(String, String)]) {
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
