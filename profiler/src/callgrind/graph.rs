//! The call graph of a [`ProfileTree`], as the callgrind file writes it:
//! functions by name, each with its self cost by line and its calls.
//!
//! It is built in four steps, each below in its own function:
//!
//! 1. **Frames** ([`WrittenFrames`]): each distinct frame of the tree
//!    cleaned once, and the last frame of every entry named with its
//!    outcome; the functions, sorted, each with the one file it is written
//!    with ([`function_files`]).
//! 2. **Folding** ([`Folder`]): every stack with its recursion collapsed,
//!    as a node of a trie ([`FoldedTrie`]), each prefix folded once for
//!    all the stacks that share it.
//! 3. **Costs** ([`FoldedCosts`]): each folded node's self cost and its
//!    inclusive cost and call count, summed from the deepest nodes up.
//! 4. **Functions** ([`functions`]): each folded node's costs booked to its
//!    function, and to the edge from its caller.
//!
//! The rules these steps follow are the module docs of [`crate::callgrind`].

use super::{add_into, Graph, WIDTH};
use crate::profile::{cpu_values, task_values, Frame};
use crate::source_file;
use crate::task_record::Outcome;
use crate::tree::{NodeId, ProfileTree};
use std::collections::{BTreeMap, HashMap};

/// One function of the output.
#[derive(Default)]
pub(super) struct Function {
    /// Self cost by line.
    pub(super) own: BTreeMap<u32, [u64; WIDTH]>,
    /// Calls by (callee, call-site line, target line): count and inclusive cost.
    pub(super) calls: BTreeMap<(usize, u32, u32), (u64, [u64; WIDTH])>,
}

impl Graph {
    /// The call graph of `tree`'s stacks: each node of the tree is cleaned
    /// and folded once, whatever the number of stacks through it.
    pub(super) fn build(tree: &ProfileTree, events: usize) -> Graph {
        let frames = WrittenFrames::of(tree);
        let mut names = function_files(frames.all());
        let index: HashMap<&str, u32> = names
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i as u32))
            .collect();
        let mut leaves = vec![false; names.len()];
        for frame in frames.task_leaves() {
            leaves[index[frame.name.as_str()] as usize] = true;
        }
        let mut folder = Folder::new(&frames, &index, leaves);
        let (ends, waits) = folder.entries();
        let folded = folder.trie;
        let costs = FoldedCosts::sum(&folded, &ends, &waits);
        let mut functions = functions(&folded, &costs, names.len());
        give_every_file_a_line(&mut functions, &mut names);
        Graph {
            names,
            functions,
            total: costs.total,
            events,
        }
    }
}

/// The frames of a tree's stacks as the file writes them.
struct WrittenFrames<'t> {
    tree: &'t ProfileTree,
    /// Each distinct frame of the tree, cleaned, by
    /// [`ProfileTree::frame_index`].
    cleaned: Vec<Frame>,
    /// By node: whether the node's own frame is part of some written stack.
    inner: Vec<bool>,
    /// The last frame of each task entry, as written.
    task_ends: Vec<Frame>,
    /// For each task entry that is the waits of a task that did not
    /// complete: that task's leaf as its own costs show it, suffixed. The
    /// waits hang from it.
    suffixed_leaves: Vec<Option<Frame>>,
    /// The last frame of each CPU sample.
    cpu_leaves: Vec<Frame>,
    /// Inner nodes that are the leaves of tasks which all ended one way
    /// other than completion, as their own costs show them: suffixed, so
    /// what those tasks spawned hangs below the leaf that holds their costs.
    unsettled: HashMap<NodeId, Frame>,
}

impl<'t> WrittenFrames<'t> {
    fn of(tree: &'t ProfileTree) -> WrittenFrames<'t> {
        let cleaned = tree.distinct_frames().iter().map(Frame::cleaned).collect();
        let mut frames = WrittenFrames {
            tree,
            cleaned,
            inner: inner_nodes(tree),
            task_ends: Vec::new(),
            suffixed_leaves: Vec::new(),
            cpu_leaves: Vec::new(),
            unsettled: HashMap::new(),
        };
        for (node, outcome) in tree.nodes().zip(tree.unsettled_leaves()) {
            if let (Some(outcome), true) = (outcome, frames.inner[node.index()]) {
                let leaf = frames.leaf(node, outcome);
                frames.unsettled.insert(node, leaf);
            }
        }
        let entries = tree.tasks().iter().zip(tree.task_leaves());
        let (task_ends, suffixed_leaves) = entries
            .map(|(&(node, outcome, _), &task_leaf)| {
                if task_leaf == node {
                    (frames.leaf(node, outcome), None)
                } else {
                    // (An await point's own leaf is never suffixed: its
                    // task's is.)
                    let suffixed =
                        (outcome != Outcome::Completed).then(|| frames.leaf(task_leaf, outcome));
                    (frames.leaf(node, Outcome::Completed), suffixed)
                }
            })
            .unzip();
        frames.task_ends = task_ends;
        frames.suffixed_leaves = suffixed_leaves;
        frames.cpu_leaves = tree
            .cpu()
            .iter()
            .map(|&(node, _)| frames.leaf(node, Outcome::Completed))
            .collect();
        frames
    }

    /// The frame of `node`, which is not the root, as stacks through it
    /// show it: cleaned, and suffixed for an unsettled leaf.
    fn frame(&self, node: NodeId) -> &Frame {
        self.unsettled
            .get(&node)
            .unwrap_or_else(|| self.cleaned_frame(node))
    }

    /// The cleaned frame of `node`, which is not the root.
    fn cleaned_frame(&self, node: NodeId) -> &Frame {
        &self.cleaned[self.tree.frame_index(node).expect("not the root")]
    }

    /// The last frame of an entry that ends at `node`, named with the suffix
    /// of `outcome`; the root, a stack that resolved to nothing, reads as
    /// [`crate::profile::UNKNOWN_TASK`].
    fn leaf(&self, node: NodeId, outcome: Outcome) -> Frame {
        let mut frame = if node == NodeId::ROOT {
            Frame::unknown_task()
        } else {
            self.cleaned_frame(node).clone()
        };
        frame.add_outcome(outcome);
        frame
    }

    /// Every frame that names a task as written: the leaves of its own
    /// costs, plain or suffixed with its outcome.
    fn task_leaves(&self) -> impl Iterator<Item = &Frame> {
        let tree = self.tree;
        let entries = tree.tasks().iter().zip(tree.task_leaves());
        let plain = entries
            .zip(&self.task_ends)
            .filter_map(move |((entry, leaf), end)| {
                if entry.0 == *leaf {
                    Some(end)
                } else {
                    (*leaf != NodeId::ROOT).then(|| self.frame(*leaf))
                }
            });
        plain.chain(self.suffixed_leaves.iter().flatten())
    }

    /// Every frame written, in some order.
    fn all(&self) -> impl Iterator<Item = &Frame> {
        self.tree
            .nodes()
            .filter(|&n| self.inner[n.index()])
            .map(|n| self.frame(n))
            .chain(&self.task_ends)
            .chain(self.suffixed_leaves.iter().flatten())
            .chain(&self.cpu_leaves)
    }
}

/// By node: whether the node's own frame is part of some written stack,
/// which it is when a deeper stack goes through it, or a task completed or
/// a sample was taken right there. Tasks with other outcomes end in a leaf
/// of their own (suffixed), which replaces the node's frame.
fn inner_nodes(tree: &ProfileTree) -> Vec<bool> {
    let mut inner = vec![false; tree.len()];
    for node in tree.nodes().skip(1) {
        if let Some(parent) = tree.parent(node) {
            inner[parent.index()] = true;
        }
    }
    for (&(node, outcome, _), &task_leaf) in tree.tasks().iter().zip(tree.task_leaves()) {
        if outcome == Outcome::Completed || task_leaf != node {
            inner[node.index()] = true;
        }
    }
    for &(node, _) in tree.cpu() {
        inner[node.index()] = true;
    }
    inner[NodeId::ROOT.index()] = false;
    inner
}

/// Every function name of `frames`, sorted, with the one file it is
/// written with: the program's own files first, then libraries' and
/// absolute ones, `???` only as a last resort; the first in sort order
/// among equals.
fn function_files<'a>(frames: impl Iterator<Item = &'a Frame>) -> Vec<(String, String)> {
    let rank = |file: &str| match file {
        "???" => 2,
        _ if file.starts_with('/') || file.contains(":\\") || source_file::is_library(file) => 1,
        _ => 0,
    };
    let mut files: BTreeMap<&str, &str> = BTreeMap::new();
    for frame in frames {
        let (name, file) = (frame.name.as_str(), frame.file.as_str());
        let entry = files.entry(name).or_insert(file);
        if (rank(file), file) < (rank(entry), *entry) {
            *entry = file;
        }
    }
    files
        .iter()
        .map(|(n, f)| (n.to_string(), f.to_string()))
        .collect()
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
    /// By function: whether it names a task (a leaf of a task's own costs).
    leaves: Vec<bool>,
}

impl FoldedTrie {
    const ROOT: u32 = 0;

    fn new(leaves: Vec<bool>) -> FoldedTrie {
        FoldedTrie {
            leaves,
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
    /// appearance on are dropped, and it appears at the end instead; unless
    /// a task's leaf lies between, which is never dropped for a frame that
    /// names no task: then the frame is left out, and `parent` returned.
    fn push(&mut self, parent: u32, function: u32, line: u32) -> u32 {
        let bit = 1u64 << (function % 64);
        let mut base = parent;
        if self.nodes[parent as usize].on_path & bit != 0 {
            // Walks at most one node per distinct function on the path.
            let mut cur = parent;
            let mut past_a_leaf = false;
            while cur != FoldedTrie::ROOT {
                let node = self.nodes[cur as usize];
                if node.function == function {
                    if past_a_leaf && !self.leaves[function as usize] {
                        return parent;
                    }
                    base = node.parent;
                    break;
                }
                past_a_leaf |= self.leaves[node.function as usize];
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

/// Where an entry of the tree (a task entry or a CPU sample) ends in the
/// folded trie, with the costs it adds there and the calls it counts.
struct End {
    node: u32,
    costs: [u64; WIDTH],
    calls: u64,
}

/// Waits at an await point: where they end, their task leaf's folded node,
/// and how many waits, to count as calls on the edges of the chain.
struct Waits {
    end: u32,
    task_leaf: u32,
    count: u64,
}

/// Folds the stacks of a tree: every inner node's once, parents first (a
/// node comes after its parent), then each entry's last frame onto its
/// parent's.
struct Folder<'f, 't> {
    frames: &'f WrittenFrames<'t>,
    /// Function numbers by name.
    index: &'f HashMap<&'f str, u32>,
    trie: FoldedTrie,
    /// By node of the tree: the folded node of its stack (the root for
    /// nodes that are not inner).
    folded_of: Vec<u32>,
}

impl<'f, 't> Folder<'f, 't> {
    /// `leaves`: by function, whether it names a task.
    fn new(
        frames: &'f WrittenFrames<'t>,
        index: &'f HashMap<&'f str, u32>,
        leaves: Vec<bool>,
    ) -> Folder<'f, 't> {
        let tree = frames.tree;
        let mut folder = Folder {
            frames,
            index,
            trie: FoldedTrie::new(leaves),
            folded_of: vec![FoldedTrie::ROOT; tree.len()],
        };
        for node in tree.nodes().skip(1) {
            if frames.inner[node.index()] {
                let parent = tree.parent(node).expect("not the root");
                let at = folder.folded_of[parent.index()];
                folder.folded_of[node.index()] = folder.push(at, frames.frame(node));
            }
        }
        folder
    }

    /// The folded stack `at` followed by `frame`.
    fn push(&mut self, at: u32, frame: &Frame) -> u32 {
        self.trie
            .push(at, self.index[frame.name.as_str()], frame.line)
    }

    /// The folded node of the stack above `node` (the root's for the root).
    fn above(&self, node: NodeId) -> u32 {
        self.folded_of[self
            .frames
            .tree
            .parent(node)
            .unwrap_or(NodeId::ROOT)
            .index()]
    }

    /// Where every entry of the tree ends, and the waits among them.
    fn entries(&mut self) -> (Vec<End>, Vec<Waits>) {
        let frames = self.frames;
        let tree = frames.tree;
        let mut ends = Vec::new();
        let mut waits = Vec::new();
        let entries = tree.tasks().iter().zip(tree.task_leaves());
        for (((&(node, _, costs), &task_leaf), end_frame), suffixed) in
            entries.zip(&frames.task_ends).zip(&frames.suffixed_leaves)
        {
            let (start, leaf_folded) = match suffixed {
                Some(leaf) => self.chain_under(node, task_leaf, leaf),
                None => (self.above(node), self.folded_of[task_leaf.index()]),
            };
            let end = self.push(start, end_frame);
            ends.push(End {
                node: end,
                costs: task_values(&costs),
                calls: costs.tasks,
            });
            if task_leaf != node {
                // Each wait counts, those still going on included.
                let count = costs.waits.max(1);
                waits.push(Waits {
                    end,
                    task_leaf: leaf_folded,
                    count,
                });
            }
        }
        // A CPU sample is not a call: it adds nothing to `calls=`.
        for (&(node, ns), leaf) in tree.cpu().iter().zip(&frames.cpu_leaves) {
            let end = self.push(self.above(node), leaf);
            ends.push(End {
                node: end,
                costs: cpu_values(ns),
                calls: 0,
            });
        }
        (ends, waits)
    }

    /// For the waits at `node` of a task that did not complete: the chain
    /// from the task's leaf `task_leaf` down to the await point's parent
    /// folded again, under the task's `suffixed` leaf. Returns where the
    /// chain ends, and the suffixed leaf's folded node.
    fn chain_under(&mut self, node: NodeId, task_leaf: NodeId, suffixed: &Frame) -> (u32, u32) {
        let tree = self.frames.tree;
        let mut chain = Vec::new();
        let mut cur = tree.parent(node).unwrap_or(NodeId::ROOT);
        while cur != task_leaf {
            chain.push(cur);
            cur = tree.parent(cur).expect("the task's leaf is an ancestor");
        }
        let leaf_folded = self.push(self.above(task_leaf), suffixed);
        let end = chain.iter().rev().fold(leaf_folded, |at, &n| {
            let frame = self.frames.frame(n);
            self.push(at, frame)
        });
        (end, leaf_folded)
    }
}

/// The costs of each node of the folded trie.
struct FoldedCosts {
    /// Self cost: that of the entries ending right there.
    own: Vec<Option<[u64; WIDTH]>>,
    /// Inclusive cost and call count: those of the entries ending at or
    /// below the node. `None` where none does: folding can leave an inner
    /// node's path with no stack ending under it, and such a node is not
    /// written.
    inclusive: Vec<Option<([u64; WIDTH], u64)>>,
    total: [u64; WIDTH],
}

impl FoldedCosts {
    /// Each folded node's costs, summed from the deepest nodes up, since a
    /// node comes after its parent.
    fn sum(folded: &FoldedTrie, ends: &[End], waits: &[Waits]) -> FoldedCosts {
        let mut costs = FoldedCosts {
            own: vec![None; folded.nodes.len()],
            inclusive: vec![None; folded.nodes.len()],
            total: [0; WIDTH],
        };
        for end in ends {
            add_into(&mut costs.total, &end.costs);
            let at = end.node as usize;
            add_into(costs.own[at].get_or_insert([0; WIDTH]), &end.costs);
            let (cost, count) = costs.inclusive[at].get_or_insert(([0; WIDTH], 0));
            add_into(cost, &end.costs);
            *count = count.saturating_add(end.calls);
        }
        for node in (1..folded.nodes.len()).rev() {
            let Some((cost, count)) = costs.inclusive[node] else {
                continue;
            };
            let parent = folded.nodes[node].parent as usize;
            let (parent_cost, parent_count) =
                costs.inclusive[parent].get_or_insert(([0; WIDTH], 0));
            add_into(parent_cost, &cost);
            *parent_count = parent_count.saturating_add(count);
        }
        costs.count_waits(folded, waits);
        costs
    }

    /// Waits are no tasks: an edge that tasks go through counts those, and
    /// one that only waits go through (the chain below a task's leaf)
    /// counts the waits. Folded recursion can take the leaf off the path;
    /// the walk then stops at the root.
    fn count_waits(&mut self, folded: &FoldedTrie, waits: &[Waits]) {
        let mut waited = vec![0u64; folded.nodes.len()];
        for w in waits {
            let mut cur = w.end;
            while cur != w.task_leaf && cur != FoldedTrie::ROOT {
                waited[cur as usize] = waited[cur as usize].saturating_add(w.count);
                cur = folded.nodes[cur as usize].parent;
            }
        }
        for (node, waits) in waited.into_iter().enumerate() {
            if let Some((_, calls)) = &mut self.inclusive[node] {
                if *calls == 0 {
                    *calls = waits;
                }
            }
        }
    }
}

/// The `count` functions of the output, with each folded node's self cost
/// booked to its function and its inclusive cost to the edge from its
/// caller.
fn functions(folded: &FoldedTrie, costs: &FoldedCosts, count: usize) -> Vec<Function> {
    let mut functions: Vec<Function> = (0..count).map(|_| Function::default()).collect();
    for (node, folded_node) in folded.nodes.iter().enumerate().skip(1) {
        let callee = folded_node.function as usize;
        if let Some(own) = &costs.own[node] {
            add_into(
                functions[callee].own.entry(folded_node.line).or_default(),
                own,
            );
        }
        let Some((inclusive, calls)) = &costs.inclusive[node] else {
            continue;
        };
        if folded_node.parent != FoldedTrie::ROOT {
            let caller = folded.nodes[folded_node.parent as usize];
            let edge = functions[caller.function as usize]
                .calls
                .entry((callee, caller.line, folded_node.line))
                .or_default();
            edge.0 = edge.0.saturating_add(*calls);
            add_into(&mut edge.1, inclusive);
        }
    }
    functions
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
