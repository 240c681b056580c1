//! Logical stacks: capture at spawn, interning, and resolution to frames.
//!
//! A task's logical stack is its parent task's logical stack, then the frames
//! of the parent's current poll from the poll boundary down to the `spawn`
//! call, then a leaf naming the spawned future:
//!
//! ```text
//! main                               (frames above main: gone)
//! accept_loop        src/server.rs:40   <- parent's spawn site
//! [task] accept_loop                     <- the parent task
//! handle_conn        src/server.rs:77   <- frames inside the parent's poll
//! [task] handle_conn                     <- this task
//! ```
//!
//! The pieces, each in its own module:
//!
//! - **Poll context** (`context`): a const-initialized thread-local holding
//!   the running task's [`StackId`] and the poll boundary. [`enter_poll`]
//!   writes it on every poll; [`current_stack`] reads it, also from a signal
//!   handler.
//! - **Capture** (`capture`): at [`spawn_stack`], unwind the machine stack
//!   from the spawn call out to the poll boundary, keeping unresolved return
//!   addresses only. How often that happens is the [`CaptureMode`].
//! - **Interning** (`intern`): a global trie of `(parent, frame key)` nodes.
//!   A frame key is a return address, a spawn location or a leaf name, so
//!   identical stacks share one id and memory grows with the number of
//!   distinct stacks, not of spawns.
//! - **Resolution** (`symbols`): [`resolve`], at write time only, symbolizes
//!   each distinct address once and removes the runtime, `async-task`,
//!   `backtrace`, std's future and panic plumbing and thread start-up.
//! - **Await points** (`awaits`, resolved by `awaited`): where inside its
//!   poll a task is suspended, captured from its waker's `clone` as a stack
//!   that extends the task's own: the task's stack, the frames of the poll
//!   down to the awaited future, and a leaf naming what was awaited
//!   (`[await] tokio::time::Sleep`).

mod awaited;
mod awaits;
mod capture;
mod context;
mod intern;
mod symbols;

pub use awaits::{
    await_mode, await_point, awaiting, awaiting_task, set_await_mode, AwaitMode, AwaitScope,
    ParseAwaitModeError, AWAITS_ENV,
};
pub use context::{current_stack, enter_poll, poll_boundary, PollScope};

use std::fmt;
use std::panic::Location;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// Identifies one interned logical stack. `StackId::ROOT` is the empty stack
/// (a task spawned from outside any task, e.g. by the main future).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StackId(pub u32);

impl StackId {
    /// The empty stack: no parent task.
    pub const ROOT: StackId = StackId(0);
}

/// How much of the machine stack is captured at each spawn (`THESEUS_STACKS`).
///
/// Unwinding costs about 0.1 µs per frame, more than a spawn itself, so the
/// default avoids repeating it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// Capture in full once per (parent stack, spawn location, future type), then reuse.
    ///
    /// The steady state is a lookup in a thread-local hash map: no
    /// unwinding, no lock. A miss there checks a global map (one lock), and
    /// only a spawn site never seen before is unwound.
    ///
    /// What it can merge: two different call paths that reach the same
    /// spawn line, spawning the same future type, within the same parent
    /// task. For example, `handler` calling both `a()` and `b()`, each of
    /// which calls a shared `spawn_worker()` helper: both spawns report
    /// whichever path was seen first (`handler → a → spawn_worker`), and
    /// their costs are added together under it. Paths in different parent
    /// tasks, different spawn lines or different future types are never
    /// merged. A `#[track_caller]` helper moves the location to its caller,
    /// which separates such paths again; [`CaptureMode::Full`] always does.
    #[default]
    Default,
    /// Capture every spawn in full: exact stacks, at the cost of one unwind
    /// (unresolved addresses only, never symbols) per spawn.
    Full,
    /// Record only the spawn call's file and line: no unwinding at all. The
    /// stack is the parent's stack, a `file:line` frame and the leaf.
    Location,
}

impl CaptureMode {
    /// The name `THESEUS_STACKS` accepts for this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMode::Default => "default",
            CaptureMode::Full => "full",
            CaptureMode::Location => "location",
        }
    }

    /// The mode `THESEUS_STACKS` asks for: [`CaptureMode::Default`] when it
    /// is unset or empty, an error naming the variable and the accepted
    /// values when it holds anything else.
    pub fn from_env() -> Result<CaptureMode, ParseCaptureModeError> {
        match std::env::var_os(ENV_VAR) {
            None => Ok(CaptureMode::Default),
            Some(v) => {
                let v = v.to_string_lossy();
                if v.trim().is_empty() {
                    Ok(CaptureMode::Default)
                } else {
                    v.parse()
                }
            }
        }
    }
}

impl fmt::Display for CaptureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The environment variable that selects the [`CaptureMode`].
const ENV_VAR: &str = "THESEUS_STACKS";

/// A `THESEUS_STACKS` value that names no [`CaptureMode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseCaptureModeError {
    value: String,
}

impl fmt::Display for ParseCaptureModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {ENV_VAR} value {:?}: expected one of `default`, `full`, `location`",
            self.value
        )
    }
}

impl std::error::Error for ParseCaptureModeError {}

impl FromStr for CaptureMode {
    type Err = ParseCaptureModeError;

    /// `default`, `full` or `location`, ignoring case and surrounding blanks.
    fn from_str(s: &str) -> Result<CaptureMode, ParseCaptureModeError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "default" => Ok(CaptureMode::Default),
            "full" => Ok(CaptureMode::Full),
            "location" => Ok(CaptureMode::Location),
            _ => Err(ParseCaptureModeError {
                value: s.to_string(),
            }),
        }
    }
}

/// The process-wide mode: 0 until set or read from the environment, else
/// `1 + ` the mode's index.
static MODE: AtomicU8 = AtomicU8::new(0);

fn mode_code(mode: CaptureMode) -> u8 {
    match mode {
        CaptureMode::Default => 1,
        CaptureMode::Full => 2,
        CaptureMode::Location => 3,
    }
}

/// Sets the capture mode for every later spawn, in the whole process.
/// Stacks already captured keep their ids.
pub fn set_capture_mode(mode: CaptureMode) {
    MODE.store(mode_code(mode), Relaxed);
}

/// The capture mode in force. Until [`set_capture_mode`] is called it is
/// read once from `THESEUS_STACKS`; a bad value there is reported on stderr
/// and the default used (call [`CaptureMode::from_env`] at start-up to
/// report it as an error instead).
pub fn capture_mode() -> CaptureMode {
    match MODE.load(Relaxed) {
        1 => CaptureMode::Default,
        2 => CaptureMode::Full,
        3 => CaptureMode::Location,
        _ => {
            let mode = CaptureMode::from_env().unwrap_or_else(|e| {
                eprintln!("theseus: {e}; using `default`");
                CaptureMode::Default
            });
            // A concurrent `set_capture_mode` wins over the environment.
            match MODE.compare_exchange(0, mode_code(mode), Relaxed, Relaxed) {
                Ok(_) => mode,
                Err(_) => capture_mode(),
            }
        }
    }
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

/// Returns the logical stack of a task being spawned here, from `location`
/// (the `#[track_caller]` location of the spawn call), with a leaf named
/// after `future_type` (`std::any::type_name` of the spawned future).
///
/// The parent is [`current_stack`]; the frames are those of the current
/// poll, below the boundary given to [`enter_poll`] (or the whole thread
/// when no poll runs here). Never looks up a symbol; what it costs depends
/// on the [`CaptureMode`].
pub fn spawn_stack(location: &'static Location<'static>, future_type: &'static str) -> StackId {
    capture::spawn_stack(
        location,
        intern::Leaf {
            type_name: future_type,
            blocking: false,
        },
    )
}

/// [`spawn_stack`] for a `spawn_blocking` closure of type `closure_type`
/// (`std::any::type_name` of the closure): the same stack, with a leaf that
/// reads `[blocking]` and names the closure after where it was written.
pub fn spawn_blocking_stack(
    location: &'static Location<'static>,
    closure_type: &'static str,
) -> StackId {
    capture::spawn_stack(
        location,
        intern::Leaf {
            type_name: closure_type,
            blocking: true,
        },
    )
}

/// The frames of `id`, outermost first, the task's leaf last.
///
/// Meant for write time: the first call for each distinct return address
/// looks up its symbols (inlined calls included, outermost first); later
/// calls reuse them. Frames of theseus itself, `async-task`, `backtrace`,
/// thread start-up and std's future, closure and panic plumbing are removed,
/// async-fn bodies are named after their function, and consecutive repeats
/// are merged. The innermost frame of each poll carries the spawn call's
/// exact line. The leaf is `[task] <future type>`, at the spawn location.
/// An unknown id resolves to no frames.
pub fn resolve(id: StackId) -> Vec<ResolvedFrame> {
    symbols::resolve(id)
}

/// Resolves logical stacks into a [`crate::ProfileTree`], each distinct
/// segment (one poll's frames and the task it spawned) once.
///
/// A stack is its parent task's stack and one more segment, so a stack
/// whose parent was already resolved costs one segment, and a chain of
/// tasks `n` deep costs `n` segments in all, where resolving each stack in
/// full would cost `n * n / 2`.
pub(crate) struct TreeResolver {
    /// Stacks resolved so far, each ending in a task leaf or a sample's
    /// innermost frame.
    nodes: intern::FastMap<StackId, crate::tree::NodeId>,
    /// Frames of each distinct segment. Segments repeat: every level of a
    /// recursive chain spawns from the same lines.
    segments: std::collections::HashMap<Vec<intern::FrameKey>, Vec<ResolvedFrame>>,
    cwd: Option<std::path::PathBuf>,
}

impl TreeResolver {
    pub(crate) fn new() -> TreeResolver {
        TreeResolver {
            nodes: intern::FastMap::default(),
            segments: std::collections::HashMap::new(),
            cwd: std::env::current_dir().ok(),
        }
    }

    /// The node of `tree` whose frames are those [`resolve`] gives `id`.
    pub(crate) fn node(
        &mut self,
        tree: &mut crate::ProfileTree,
        id: StackId,
    ) -> crate::tree::NodeId {
        // Up to the nearest stack already resolved, a segment at a time,
        // then down again adding each segment's frames: no recursion, as a
        // chain may be far deeper than a thread's stack allows.
        let mut pending = Vec::new();
        let mut cur = id;
        let mut node = loop {
            if let Some(&node) = self.nodes.get(&cur) {
                break node;
            }
            match intern::segment(cur) {
                Some(segment) => {
                    let parent = segment.parent;
                    pending.push((cur, segment));
                    cur = parent;
                }
                None => break crate::ProfileTree::root(),
            }
        };
        while let Some((end, segment)) = pending.pop() {
            let cwd = self.cwd.as_deref();
            let frames = self
                .segments
                .entry(segment.keys)
                .or_insert_with_key(|keys| symbols::resolve_segment(keys, cwd));
            for frame in frames.iter() {
                node = tree.child(node, frame);
            }
            self.nodes.insert(end, node);
        }
        node
    }
}

/// For the stack of an await point, the stack of its task; `None` for any
/// other stack.
pub(crate) fn task_of_await(id: StackId) -> Option<StackId> {
    intern::task_of_await(id)
}

/// Whether some frame resolved so far lacked full debug info: names then
/// fall back to bare names qualified by file and line, or to the spawn
/// location alone.
pub(crate) fn names_degraded() -> bool {
    symbols::names_degraded()
}

/// Marks names as degraded, as resolving a frame without debug info does.
#[cfg(test)]
pub(crate) fn mark_names_degraded() {
    symbols::mark_names_degraded();
}

/// How many distinct stack nodes have been interned: grows with distinct
/// stacks, never with the number of spawns.
pub fn interned_nodes() -> usize {
    intern::node_count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_errors_name_the_variable_and_choices() {
        assert_eq!("default".parse(), Ok(CaptureMode::Default));
        assert_eq!(" Full ".parse(), Ok(CaptureMode::Full));
        assert_eq!("location".parse(), Ok(CaptureMode::Location));
        let err = "fast".parse::<CaptureMode>().unwrap_err().to_string();
        for needle in ["THESEUS_STACKS", "\"fast\"", "default", "full", "location"] {
            assert!(err.contains(needle), "{err:?} lacks {needle}");
        }
        for mode in [
            CaptureMode::Default,
            CaptureMode::Full,
            CaptureMode::Location,
        ] {
            assert_eq!(mode.to_string().parse(), Ok(mode));
        }
    }

    #[test]
    fn poll_scopes_nest_and_restore() {
        assert_eq!(current_stack(), StackId::ROOT);
        assert_eq!(poll_boundary(), 0);
        {
            let _outer = enter_poll(StackId(7), 100);
            assert_eq!((current_stack(), poll_boundary()), (StackId(7), 100));
            {
                let _inner = enter_poll(StackId(9), 50);
                assert_eq!((current_stack(), poll_boundary()), (StackId(9), 50));
            }
            assert_eq!((current_stack(), poll_boundary()), (StackId(7), 100));
        }
        assert_eq!((current_stack(), poll_boundary()), (StackId::ROOT, 0));
    }

    #[test]
    fn unknown_and_root_ids_resolve_to_nothing() {
        assert!(resolve(StackId::ROOT).is_empty());
        assert!(resolve(StackId(u32::MAX)).is_empty());
    }
}
