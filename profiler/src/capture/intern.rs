//! The global trie of logical stacks.
//!
//! A stack is a path from the root: each node is `(parent, frame key)` and
//! its index is the [`StackId`]. A frame key is an unresolved instruction
//! pointer, a spawn location, a task leaf or the end of an await point, so
//! interning never needs symbols. Identical paths get the same id, and
//! memory grows with the number of distinct stacks, never with the number
//! of spawns.

use super::StackId;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::panic::Location;
use std::sync::{LazyLock, PoisonError, RwLock};

/// One step of a logical stack, unresolved.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FrameKey {
    /// A return address inside the poll that spawned (resolved at write time).
    Ip(usize),
    /// The `#[track_caller]` location of a spawn call.
    Location(&'static Location<'static>),
    /// The spawned task.
    Leaf(Leaf),
    /// The end of an await point: the `Ip` keys before it, back to the
    /// task's leaf, are the frames of the poll that registered the waker.
    Await(Awaited),
}

/// What a task awaits, as far as the code being polled says: the last key
/// of an await point's stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Awaited {
    /// Nothing said: the frames tell (the awaited future's own frame).
    Frames,
    /// Another task, through its join handle: the task's logical stack
    /// (in an interned await point, only its last segment: see
    /// `unwind_point`).
    Task(StackId),
    /// Something the executor names, whose frames would not (its own
    /// `yield_now` is theseus's code, which resolution removes).
    Named(&'static str),
}

/// What a task leaf is made of: the type of what was spawned, and whether it
/// is a `spawn_blocking` closure rather than a future; or, for a frame (a
/// marked future, see [`crate::frame_stack`]), what kind it is and where
/// it was marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Leaf {
    /// As `std::any::type_name` gives it; a request's name for a request.
    pub(crate) type_name: &'static str,
    pub(crate) blocking: bool,
    /// `None` for a task.
    pub(crate) frame: Option<FrameKind>,
    /// Where a frame was marked: its leaf's file and line.
    pub(crate) at: Option<&'static Location<'static>>,
}

/// What a frame marks, which says how its leaf is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A future given to `theseus::profiled`: named by its type, as a
    /// spawned task is (`[frame] app::fetch`, `[frame] async block in
    /// app::run (src/run.rs:12)`).
    Future,
    /// The body of an async fn marked `#[theseus::profiled]`: the name is
    /// the `std::any::type_name` of an item declared inside the function,
    /// and the leaf reads as the function (`[frame] app::db_query`).
    Function,
    /// A request: the name is shown as it is (`[request] GET /users/{id}`).
    Request,
    /// The future given to `block_on` (what `#[theseus::main]` runs): named
    /// by the function that wrote it (`[main] app::main`).
    Main,
}

impl Leaf {
    /// The leaf of a spawned task.
    pub(crate) const fn task(type_name: &'static str, blocking: bool) -> Leaf {
        Leaf {
            type_name,
            blocking,
            frame: None,
            at: None,
        }
    }
}

// Locations and leaves compare by content: the same source position or type
// name may sit at different addresses (one copy per codegen unit), and must
// still make the same stack.
impl PartialEq for FrameKey {
    fn eq(&self, other: &FrameKey) -> bool {
        match (self, other) {
            (FrameKey::Ip(a), FrameKey::Ip(b)) => a == b,
            (FrameKey::Location(a), FrameKey::Location(b)) => {
                std::ptr::eq(*a, *b)
                    || (a.line() == b.line() && a.column() == b.column() && a.file() == b.file())
            }
            (FrameKey::Leaf(a), FrameKey::Leaf(b)) => a == b,
            (FrameKey::Await(a), FrameKey::Await(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for FrameKey {}

impl Hash for FrameKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            FrameKey::Ip(ip) => state.write_usize(*ip),
            FrameKey::Location(l) => {
                state.write_u32(l.line());
                state.write_u32(l.column());
                state.write(l.file().as_bytes());
            }
            FrameKey::Leaf(leaf) => {
                state.write(leaf.type_name.as_bytes());
                state.write_u32(u32::from(leaf.blocking));
                leaf.frame.hash(state);
            }
            FrameKey::Await(a) => a.hash(state),
        }
    }
}

/// A small multiply-rotate hasher: keys here are a few machine words, and
/// SipHash's DoS resistance buys nothing for addresses.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail) ^ ((rest.len() as u64) << 56));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// One trie node: the stack of `parent` extended by `key`.
#[derive(Clone, Copy, Debug)]
struct TrieNode {
    parent: StackId,
    key: FrameKey,
}

struct Trie {
    /// Indexed by `StackId`; index 0 is the root and its entry is unused.
    nodes: Vec<TrieNode>,
    children: FastMap<(StackId, FrameKey), StackId>,
}

static TRIE: LazyLock<RwLock<Trie>> = LazyLock::new(|| {
    RwLock::new(Trie {
        nodes: vec![TrieNode {
            parent: StackId::ROOT,
            key: FrameKey::Ip(0),
        }],
        children: FastMap::default(),
    })
});

/// The stack `parent` extended by `keys` (outermost first).
///
/// Walks under the read lock while every step exists (the common case once
/// a program has warmed up), and takes the write lock only to add nodes.
pub(crate) fn intern(parent: StackId, keys: &[FrameKey]) -> StackId {
    let mut id = parent;
    let mut done = 0;
    {
        let trie = TRIE.read().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            match trie.children.get(&(id, *key)) {
                Some(&child) => {
                    id = child;
                    done += 1;
                }
                None => break,
            }
        }
    }
    if done == keys.len() {
        return id;
    }
    let mut trie = TRIE.write().unwrap_or_else(PoisonError::into_inner);
    for key in &keys[done..] {
        // Another thread may have added this step since the read lock.
        if let Some(&child) = trie.children.get(&(id, *key)) {
            id = child;
            continue;
        }
        let child =
            StackId(u32::try_from(trie.nodes.len()).expect("more than 2^32 distinct stack frames"));
        trie.nodes.push(TrieNode {
            parent: id,
            key: *key,
        });
        trie.children.insert((id, *key), child);
        id = child;
    }
    id
}

/// How many tasks above a spawn [`intern_task`] looks through for one
/// spawned alike.
const FOLD_DEPTH: usize = 16;

/// The stack of a task spawned in the task `parent`, whose own segment is
/// `keys` (the spawning poll's frames, the spawn location, the leaf).
///
/// If `parent`, or one of the [`FOLD_DEPTH`] tasks above it, was spawned
/// alike (its segment is `keys` too), that task's stack: a task that spawns
/// its successor, generation after generation, runs in one recursive stack,
/// as its profile shows it (recursion folded), and the trie, the capture
/// and await caches and the aggregate keyed on it stay as large as the
/// distinct stacks, never growing with the generations. Otherwise `parent`
/// extended by `keys`.
pub(crate) fn intern_task(parent: StackId, keys: &[FrameKey]) -> StackId {
    let repeated = {
        let trie = TRIE.read().unwrap_or_else(PoisonError::into_inner);
        trie.spawned_alike(parent, keys)
    };
    repeated.unwrap_or_else(|| intern(parent, keys))
}

impl Trie {
    /// `task`, or the nearest of the [`FOLD_DEPTH`] tasks above it, whose
    /// segment is `keys`.
    fn spawned_alike(&self, mut task: StackId, keys: &[FrameKey]) -> Option<StackId> {
        for _ in 0..FOLD_DEPTH {
            if task == StackId::ROOT {
                return None;
            }
            if self.segment_is(task, keys) {
                return Some(task);
            }
            task = self.task_above(task)?;
        }
        None
    }

    /// Whether the last segment of `id` (back to the task leaf above it, or
    /// the root) is `keys`.
    fn segment_is(&self, id: StackId, keys: &[FrameKey]) -> bool {
        let mut cur = id;
        for key in keys.iter().rev() {
            match self.nodes.get(cur.0 as usize) {
                Some(node) if cur != StackId::ROOT && node.key == *key => cur = node.parent,
                _ => return false,
            }
        }
        cur == StackId::ROOT || matches!(self.nodes[cur.0 as usize].key, FrameKey::Leaf(_))
    }

    /// The nearest task (a leaf node) above `id`, or the root.
    fn task_above(&self, id: StackId) -> Option<StackId> {
        let mut cur = self.nodes.get(id.0 as usize)?.parent;
        while cur != StackId::ROOT
            && !matches!(self.nodes.get(cur.0 as usize)?.key, FrameKey::Leaf(_))
        {
            cur = self.nodes[cur.0 as usize].parent;
        }
        Some(cur)
    }
}

/// One poll's worth of a logical stack, as [`segment`] returns it.
pub(crate) struct Segment {
    /// Outermost first: the return addresses of one poll, then (for a task
    /// stack) the spawn location and the spawned task's leaf.
    pub(crate) keys: Vec<FrameKey>,
    /// The stack this segment extends: a task's stack (ending in its leaf),
    /// or the root.
    pub(crate) parent: StackId,
}

/// The last segment of `id` (its task's spawn site and leaf), as a stack of
/// its own from the root: what names the task, without the stack of every
/// task above it. The same for every task spawned alike, at any depth.
pub(crate) fn last_segment(id: StackId) -> StackId {
    match segment(id) {
        Some(segment) if segment.parent != StackId::ROOT => intern(StackId::ROOT, &segment.keys),
        _ => id,
    }
}

/// For the stack of an await point, the stack of its task (whose leaf the
/// await point's frames hang from); `None` for any other stack.
pub(crate) fn task_of_await(id: StackId) -> Option<StackId> {
    let is_await = {
        let trie = TRIE.read().unwrap_or_else(PoisonError::into_inner);
        matches!(
            trie.nodes.get(id.0 as usize).map(|node| node.key),
            Some(FrameKey::Await(_))
        )
    };
    if id == StackId::ROOT || !is_await {
        return None;
    }
    segment(id).map(|segment| segment.parent)
}

/// The last segment of `id`: its keys back to (not including) the nearest
/// task leaf above it, or to the root. Walking segment by segment visits
/// each node once, where walking the whole path from every node of a deep
/// chain would visit the chain again for each of them. `None` for the root
/// or an unknown id.
pub(crate) fn segment(id: StackId) -> Option<Segment> {
    let trie = TRIE.read().unwrap_or_else(PoisonError::into_inner);
    let node_at = |id: StackId| trie.nodes.get(id.0 as usize).copied();
    if id == StackId::ROOT {
        return None;
    }
    let mut keys = Vec::new();
    let mut cur = id;
    loop {
        let node = node_at(cur)?;
        keys.push(node.key);
        cur = node.parent;
        if cur == StackId::ROOT {
            keys.reverse();
            return Some(Segment { keys, parent: cur });
        }
        if let FrameKey::Leaf(_) = node_at(cur)?.key {
            keys.reverse();
            return Some(Segment { keys, parent: cur });
        }
    }
}

/// How many nodes the trie holds (the root included).
pub(crate) fn node_count() -> usize {
    TRIE.read()
        .unwrap_or_else(PoisonError::into_inner)
        .nodes
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment_of(line: u32, type_name: &'static str) -> Vec<FrameKey> {
        // A distinct address per test, so no other test's stacks match.
        vec![
            FrameKey::Ip(0x7e57_0000 + line as usize),
            FrameKey::Ip(0x7e57_1000 + line as usize),
            FrameKey::Leaf(Leaf::task(type_name, false)),
        ]
    }

    #[test]
    fn tasks_spawned_alike_down_a_chain_share_one_stack() {
        let (a, b, c) = (
            segment_of(1, "fold::a"),
            segment_of(2, "fold::b"),
            segment_of(3, "fold::c"),
        );
        let first = intern_task(StackId::ROOT, &a);
        assert_ne!(first, StackId::ROOT);
        // A task that spawns its like: the same stack, generation after
        // generation, and no new node.
        let nodes = node_count();
        assert_eq!(intern_task(first, &a), first);
        assert_eq!(node_count(), nodes);
        // A cycle through another spawn site folds back too.
        let other = intern_task(first, &b);
        assert_ne!(other, first);
        assert_eq!(intern_task(other, &a), first);
        assert_eq!(intern_task(first, &b), other);
        // What was never spawned above is a new stack below.
        let third = intern_task(other, &c);
        assert_ne!(third, other);
        assert_eq!(segment(third).unwrap().parent, other);
        // Only whole segments match: a tail of a longer one does not.
        let tail = intern_task(other, &a[1..]);
        assert_ne!(tail, first);
        assert_eq!(segment(tail).unwrap().parent, other);
    }
}
