//! From a tracer's stack ids to a [`ProfileTree`]: the step between the
//! aggregates and the writers, taken once per profile written.
//!
//! A logical stack is its parent task's stack and one more segment (see
//! [`crate::capture`]), so the tree is built a segment at a time: a stack
//! whose parent is already in the tree costs one segment, and a chain of
//! tasks `n` deep costs `n` segments in all, where resolving each stack in
//! full would cost `n * n / 2`. Each distinct segment is resolved to frames
//! once, however many stacks share it.

use crate::aggregate::{Aggregate, Costs};
use crate::capture::{self, FastMap, FrameKey, StackId};
use crate::resolution::{self, ResolvedFrame};
use crate::task_record::Outcome;
use std::collections::HashMap;
use std::path::PathBuf;

use super::{NodeId, ProfileTree};

/// The name of the node that holds CPU samples taken on a profiled thread
/// while it ran no task.
pub const NO_TASK: &str = "[no task]";

/// The stacks of `aggregate` and the CPU samples `cpu`, resolved into one
/// tree: each distinct segment once.
pub(crate) fn resolve_tree(aggregate: &Aggregate, cpu: Vec<(StackId, u64)>) -> ProfileTree {
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
        match capture::task_of_await(stack) {
            Some(task) => {
                let leaf = resolver.node(tree, task);
                tree.add_waits(node, leaf, outcome, costs);
            }
            None => tree.add_tasks(node, outcome, costs),
        }
    }
}

/// Adds CPU samples, in order of stack; a stack that resolves to nothing is
/// [`NO_TASK`].
fn add_cpu(tree: &mut ProfileTree, resolver: &mut TreeResolver, mut entries: Vec<(StackId, u64)>) {
    entries.sort_unstable();
    for (stack, cpu_ns) in entries {
        let mut node = resolver.node(tree, stack);
        if node == ProfileTree::root() {
            let no_task = ResolvedFrame {
                function: NO_TASK.to_string(),
                file: "???".to_string(),
                line: 0,
            };
            node = tree.child(node, &no_task);
        }
        tree.add_cpu(node, cpu_ns);
    }
}

/// Resolves logical stacks into the nodes of a [`ProfileTree`], each
/// distinct segment (one poll's frames and the task it spawned) once.
struct TreeResolver {
    /// Stacks resolved so far, each ending in a task leaf or a sample's
    /// innermost frame.
    nodes: FastMap<StackId, NodeId>,
    /// Frames of each distinct segment. Segments repeat: every level of a
    /// recursive chain spawns from the same lines.
    segments: HashMap<Vec<FrameKey>, Vec<ResolvedFrame>>,
    cwd: Option<PathBuf>,
}

impl TreeResolver {
    fn new() -> TreeResolver {
        TreeResolver {
            nodes: FastMap::default(),
            segments: HashMap::new(),
            cwd: std::env::current_dir().ok(),
        }
    }

    /// The node of `tree` whose frames are those [`crate::resolve`] gives
    /// `id`.
    fn node(&mut self, tree: &mut ProfileTree, id: StackId) -> NodeId {
        // Up to the nearest stack already resolved, a segment at a time,
        // then down again adding each segment's frames: no recursion, as a
        // chain may be far deeper than a thread's stack allows.
        let mut pending = Vec::new();
        let mut cur = id;
        let mut node = loop {
            if let Some(&node) = self.nodes.get(&cur) {
                break node;
            }
            match capture::segment(cur) {
                Some(segment) => {
                    let parent = segment.parent;
                    pending.push((cur, segment));
                    cur = parent;
                }
                None => break ProfileTree::root(),
            }
        };
        while let Some((end, segment)) = pending.pop() {
            let cwd = self.cwd.as_deref();
            let frames = self
                .segments
                .entry(segment.keys)
                .or_insert_with_key(|keys| resolution::resolve_segment(keys, cwd));
            for frame in frames.iter() {
                node = tree.child(node, frame);
            }
            self.nodes.insert(end, node);
        }
        node
    }
}
