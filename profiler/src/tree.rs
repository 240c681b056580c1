//! The resolved profile as a tree: every distinct stack prefix is one node,
//! with the costs of the tasks (and CPU samples) whose stack ends there.
//!
//! A list of stacks repeats every shared prefix: a chain of tasks each
//! spawned by the one before, `n` deep, is `n` stacks of average depth
//! `n / 2`. The tree holds that chain in `n` nodes, so resolving it and
//! writing it take time and memory linear in the chain. Writers that need
//! each stack in full ([`ProfileTree::stacks`], as [`ProfileStack`]s and
//! [`CpuStack`]s) pay for the repetition themselves.
//!
//! How a tracer's stack ids become the nodes of a tree, each distinct
//! segment of a stack resolved once, is in `build`.

mod build;

pub(crate) use build::resolve_tree;
pub use build::NO_TASK;

use crate::aggregate::Costs;
use crate::resolution::ResolvedFrame;
use crate::task_record::Outcome;
use std::collections::HashMap;

/// The costs of all tasks that share one resolved stack and outcome, or of
/// their waits at one await point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileStack {
    /// Outermost first: the task's leaf last, or, for an await point, the
    /// task's leaf followed by the await point's chain and its leaf.
    pub frames: Vec<ResolvedFrame>,
    /// Which frame is the task's leaf, the one named with the outcome
    /// suffix: `frames.len() - 1` for a task's own costs.
    pub task_leaf: usize,
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

#[cfg(test)]
impl ProfileStack {
    /// For tests: the costs of tasks whose stack is the frames named
    /// `names` (all at `src/lib.rs:1`), the last one the task's leaf.
    pub(crate) fn named(names: &[&str], outcome: Outcome, costs: Costs) -> ProfileStack {
        ProfileStack {
            frames: names
                .iter()
                .map(|name| ResolvedFrame {
                    function: name.to_string(),
                    file: "src/lib.rs".to_string(),
                    line: 1,
                })
                .collect(),
            task_leaf: names.len().saturating_sub(1),
            outcome,
            costs,
        }
    }
}

/// A node of a [`ProfileTree`]: the stack from the root down to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// The empty stack.
    pub const ROOT: NodeId = NodeId(0);

    /// Its position in per-node tables.
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Clone, Copy, Debug)]
struct Node {
    /// The root's parent is itself.
    parent: NodeId,
    /// Index into `frames`; unused for the root.
    frame: u32,
}

/// Resolved stacks sharing their prefixes, with the costs ending at each.
///
/// ```
/// use theseus_profiler::{Costs, Outcome, ProfileTree, ResolvedFrame};
///
/// let frame = |function: &str| ResolvedFrame {
///     function: function.to_string(),
///     file: "src/main.rs".to_string(),
///     line: 1,
/// };
/// let mut tree = ProfileTree::new();
/// let main = tree.child(ProfileTree::root(), &frame("app::main"));
/// let task = tree.child(main, &frame("[task] app::work"));
/// tree.add_tasks(task, Outcome::Completed, Costs { tasks: 1, ..Costs::default() });
/// assert_eq!(tree.child(ProfileTree::root(), &frame("app::main")), main);
/// assert_eq!(tree.stacks()[0].frames, [frame("app::main"), frame("[task] app::work")]);
/// ```
#[derive(Clone, Debug)]
pub struct ProfileTree {
    frames: Vec<ResolvedFrame>,
    frame_ids: HashMap<ResolvedFrame, u32>,
    nodes: Vec<Node>,
    children: HashMap<(NodeId, u32), NodeId>,
    tasks: Vec<(NodeId, Outcome, Costs)>,
    /// For each entry of `tasks`, the node of its task's leaf: the entry's
    /// own node for a task's costs, an ancestor for its waits at an await
    /// point.
    task_leaves: Vec<NodeId>,
    cpu: Vec<(NodeId, u64)>,
}

/// Trees are equal when they hold the same stacks with the same costs, in
/// the same order, however their nodes are numbered. Compares every stack
/// in full.
impl PartialEq for ProfileTree {
    fn eq(&self, other: &ProfileTree) -> bool {
        self.stacks() == other.stacks() && self.cpu_stacks() == other.cpu_stacks()
    }
}

impl Eq for ProfileTree {}

impl Default for ProfileTree {
    fn default() -> ProfileTree {
        ProfileTree::new()
    }
}

impl ProfileTree {
    /// A tree with the root only and no costs.
    pub fn new() -> ProfileTree {
        ProfileTree {
            frames: Vec::new(),
            frame_ids: HashMap::new(),
            nodes: vec![Node {
                parent: NodeId::ROOT,
                frame: u32::MAX,
            }],
            children: HashMap::new(),
            tasks: Vec::new(),
            task_leaves: Vec::new(),
            cpu: Vec::new(),
        }
    }

    /// The empty stack.
    pub fn root() -> NodeId {
        NodeId::ROOT
    }

    /// The stack `parent` extended by `frame`, added if new.
    pub fn child(&mut self, parent: NodeId, frame: &ResolvedFrame) -> NodeId {
        let frame_id = match self.frame_ids.get(frame) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.frames.len()).expect("fewer than 2^32 distinct frames");
                self.frames.push(frame.clone());
                self.frame_ids.insert(frame.clone(), id);
                id
            }
        };
        if let Some(&node) = self.children.get(&(parent, frame_id)) {
            return node;
        }
        let node = NodeId(u32::try_from(self.nodes.len()).expect("fewer than 2^32 stack nodes"));
        self.nodes.push(Node {
            parent,
            frame: frame_id,
        });
        self.children.insert((parent, frame_id), node);
        node
    }

    /// The node of `frames` (outermost first), added if new.
    pub fn node_of(&mut self, frames: &[ResolvedFrame]) -> NodeId {
        frames
            .iter()
            .fold(NodeId::ROOT, |node, frame| self.child(node, frame))
    }

    /// Adds the costs of tasks with `outcome` whose stack is `node`.
    pub fn add_tasks(&mut self, node: NodeId, outcome: Outcome, costs: Costs) {
        self.tasks.push((node, outcome, costs));
        self.task_leaves.push(node);
    }

    /// Adds the waits, at the await point whose stack is `node`, of tasks
    /// with `outcome` whose leaf is `task_leaf` (an ancestor of `node`).
    pub fn add_waits(&mut self, node: NodeId, task_leaf: NodeId, outcome: Outcome, costs: Costs) {
        self.tasks.push((node, outcome, costs));
        self.task_leaves.push(task_leaf);
    }

    /// Adds `stack` as [`ProfileTree::add_tasks`] or, when its task's leaf
    /// is not its last frame, as [`ProfileTree::add_waits`].
    pub fn add_stack(&mut self, stack: &ProfileStack) {
        let leaf_len = (stack.task_leaf + 1).min(stack.frames.len());
        let leaf = self.node_of(&stack.frames[..leaf_len]);
        let node = stack.frames[leaf_len..]
            .iter()
            .fold(leaf, |node, frame| self.child(node, frame));
        if node == leaf {
            self.add_tasks(node, stack.outcome, stack.costs);
        } else {
            self.add_waits(node, leaf, stack.outcome, stack.costs);
        }
    }

    /// Adds `cpu_ns` of sampled CPU time on the stack `node`.
    pub fn add_cpu(&mut self, node: NodeId, cpu_ns: u64) {
        self.cpu.push((node, cpu_ns));
    }

    /// The tree of `stacks` and `cpu`.
    pub fn from_stacks(stacks: &[ProfileStack], cpu: &[CpuStack]) -> ProfileTree {
        let mut tree = ProfileTree::new();
        for stack in stacks {
            tree.add_stack(stack);
        }
        for sample in cpu {
            let node = tree.node_of(&sample.frames);
            tree.add_cpu(node, sample.cpu_ns);
        }
        tree
    }

    /// How many nodes, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree has no node but the root.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() == 1
    }

    /// Every node, each after its parent: the root first.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> {
        (0..self.nodes.len() as u32).map(NodeId)
    }

    /// The node's parent; `None` for the root.
    pub fn parent(&self, node: NodeId) -> Option<NodeId> {
        (node != NodeId::ROOT).then(|| self.nodes[node.index()].parent)
    }

    /// The node's own (innermost) frame; `None` for the root.
    pub fn frame(&self, node: NodeId) -> Option<&ResolvedFrame> {
        (node != NodeId::ROOT).then(|| &self.frames[self.nodes[node.index()].frame as usize])
    }

    /// Which distinct frame the node's own frame is, as an index into
    /// [`ProfileTree::distinct_frames`]; `None` for the root.
    pub fn frame_index(&self, node: NodeId) -> Option<usize> {
        (node != NodeId::ROOT).then(|| self.nodes[node.index()].frame as usize)
    }

    /// Every distinct frame, each once.
    pub fn distinct_frames(&self) -> &[ResolvedFrame] {
        &self.frames
    }

    /// The frames of `node`, outermost first. Costs its depth.
    pub fn frames(&self, node: NodeId) -> Vec<ResolvedFrame> {
        let mut out = Vec::new();
        let mut cur = node;
        while let Some(frame) = self.frame(cur) {
            out.push(frame.clone());
            cur = self.nodes[cur.index()].parent;
        }
        out.reverse();
        out
    }

    /// The task costs added, in order: stack, outcome, costs.
    pub fn tasks(&self) -> &[(NodeId, Outcome, Costs)] {
        &self.tasks
    }

    /// For each entry of [`ProfileTree::tasks`], the node of its task's
    /// leaf: the entry's own node, or for waits at an await point, the
    /// ancestor whose frame names the task.
    pub fn task_leaves(&self) -> &[NodeId] {
        &self.task_leaves
    }

    /// By node: the outcome every task whose own costs end there had, when
    /// they all had the same one and it is not completion; `None` elsewhere.
    /// Tasks spawned by such a task hang below its leaf as it is shown,
    /// suffixed: below `[task] serve (unfinished)`, where its costs are.
    pub fn unsettled_leaves(&self) -> Vec<Option<Outcome>> {
        let mut seen: Vec<Option<Option<Outcome>>> = vec![None; self.nodes.len()];
        for (&(node, outcome, _), &leaf) in self.tasks.iter().zip(&self.task_leaves) {
            if node != leaf || node == NodeId::ROOT {
                continue;
            }
            let slot = &mut seen[node.index()];
            *slot = match *slot {
                None => Some(Some(outcome)),
                Some(Some(earlier)) if earlier == outcome => Some(Some(outcome)),
                Some(_) => Some(None),
            };
        }
        seen.into_iter()
            .map(|s| s.flatten().filter(|&o| o != Outcome::Completed))
            .collect()
    }

    /// How many frames the stack of `node` has.
    pub fn depth(&self, node: NodeId) -> usize {
        let mut depth = 0;
        let mut cur = node;
        while cur != NodeId::ROOT {
            depth += 1;
            cur = self.nodes[cur.index()].parent;
        }
        depth
    }

    /// The CPU samples added, in order: stack, nanoseconds.
    pub fn cpu(&self) -> &[(NodeId, u64)] {
        &self.cpu
    }

    /// The task costs as one [`ProfileStack`] each, frames in full: time and
    /// memory grow with the sum of the stacks' depths.
    pub fn stacks(&self) -> Vec<ProfileStack> {
        self.tasks
            .iter()
            .zip(&self.task_leaves)
            .map(|(&(node, outcome, costs), &leaf)| ProfileStack {
                frames: self.frames(node),
                task_leaf: self.depth(leaf).saturating_sub(1),
                outcome,
                costs,
            })
            .collect()
    }

    /// The CPU samples as one [`CpuStack`] each, frames in full.
    pub fn cpu_stacks(&self) -> Vec<CpuStack> {
        self.cpu
            .iter()
            .map(|&(node, cpu_ns)| CpuStack {
                frames: self.frames(node),
                cpu_ns,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, line: u32) -> ResolvedFrame {
        ResolvedFrame {
            function: function.to_string(),
            file: "src/lib.rs".to_string(),
            line,
        }
    }

    #[test]
    fn shared_prefixes_are_one_node_and_stacks_come_back_whole() {
        let a = [frame("main", 1), frame("[task] a", 2)];
        let b = [frame("main", 1), frame("[task] a", 2), frame("[task] b", 3)];
        let costs = Costs {
            tasks: 1,
            ..Costs::default()
        };
        let stacks = [
            ProfileStack {
                frames: a.to_vec(),
                task_leaf: 1,
                outcome: Outcome::Completed,
                costs,
            },
            ProfileStack {
                frames: b.to_vec(),
                task_leaf: 2,
                outcome: Outcome::Cancelled,
                costs,
            },
            ProfileStack {
                frames: Vec::new(),
                task_leaf: 0,
                outcome: Outcome::Completed,
                costs,
            },
        ];
        let tree = ProfileTree::from_stacks(&stacks, &[]);
        assert_eq!(tree.len(), 4);
        assert_eq!(tree.stacks(), stacks);
        let leaf = tree.tasks()[1].0;
        assert_eq!(tree.frame(leaf), Some(&b[2]));
        assert_eq!(tree.frame(tree.parent(leaf).unwrap()), Some(&a[1]));
        assert_eq!(tree.parent(NodeId::ROOT), None);
        assert!(tree.nodes().skip(1).all(|n| tree.parent(n).unwrap() < n));
    }
}
