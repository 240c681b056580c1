//! Logical stacks: capture at spawn, interning, and resolution to frames.
//! (being written)

use std::panic::Location;

/// Identifies one interned logical stack. `StackId::ROOT` is the empty stack
/// (a task spawned from outside any task, e.g. by the main future).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StackId(pub u32);

impl StackId {
    /// The empty stack: no parent task.
    pub const ROOT: StackId = StackId(0);
}

/// How much of the machine stack is captured at each spawn (`THESEUS_STACKS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// Capture in full once per (parent stack, spawn location, future type), then reuse.
    #[default]
    Default,
    /// Capture every spawn in full.
    Full,
    /// Record only the spawn call's file and line.
    Location,
}

/// One frame of a resolved logical stack.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResolvedFrame {
    /// Demangled function name without hash, async-fn closures shown as the function.
    pub function: String,
    /// Source file, or `"???"` when unknown.
    pub file: String,
    /// Source line, 0 when unknown.
    pub line: u32,
}

/// Restores the previous poll context when dropped.
pub struct PollScope {
    _private: (),
}

/// Marks the start of a poll of the task whose logical stack is `stack`.
/// `boundary` is an address inside the executor's frame that calls `poll`:
/// frames of the machine stack deeper than it belong to the task.
pub fn enter_poll(stack: StackId, boundary: usize) -> PollScope {
    let _ = (stack, boundary);
    PollScope { _private: () }
}

/// The logical stack of the task running on this thread (`ROOT` if none).
pub fn current_stack() -> StackId {
    StackId::ROOT
}

/// Returns the logical stack of a task being spawned here, from `location`
/// (the `#[track_caller]` location of the spawn call), with a leaf named
/// after `future_type` (`std::any::type_name` of the spawned future).
pub fn spawn_stack(location: &'static Location<'static>, future_type: &'static str) -> StackId {
    let _ = (location, future_type);
    StackId::ROOT
}

/// The frames of `id`, outermost first, the task's leaf last.
pub fn resolve(id: StackId) -> Vec<ResolvedFrame> {
    let _ = id;
    Vec::new()
}
