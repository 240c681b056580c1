//! Resolution at write time: a logical stack's keys, as
//! [`crate::capture`] interned them, to the frames a profile shows, a
//! segment at a time. Never on the executor's hot path.
//!
//! A stack is read segment by segment (see `capture::intern::segment`): the
//! return addresses of one poll, then either a spawn (its location and the
//! spawned task's leaf, resolved by `spawn_frames`) or an await point
//! (resolved by `await_frames`). Files are written as `crate::source_file`
//! shows them: the same wherever the program ran.
//!
//! The pieces, each in its own module:
//!
//! - **Symbolization** (`symbolize`): each distinct return address looked up
//!   once in the debug info, inlined calls included.
//! - **Frame cleaning** (`filters`): which frames are theseus's, the
//!   runtimes', std's glue or thread start-up, and so are not shown.
//! - **Naming** (`names`): closures and async bodies read as their
//!   function, bare names of line-tables-only builds qualified.
//! - **Spawns and awaits** (`spawn_frames`, `await_frames`): a spawning
//!   poll's frames cut to the program's own, with the spawn call's line,
//!   and the task's leaf (`[task] app::serve`); an await point's chain and
//!   its leaf (`[await] tokio::time::Sleep`).

mod await_frames;
mod filters;
mod names;
mod spawn_frames;
mod symbolize;

#[cfg(test)]
pub(crate) use names::mark_names_degraded;
pub(crate) use names::names_degraded;

use crate::capture::intern::{self, FrameKey};
use crate::capture::StackId;
use crate::source_file;
use spawn_frames::{append_poll_frames, leaf_frame, SpawnSite};
use std::path::Path;

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
    // Segment by segment from the innermost, without recursion: a chain of
    // tasks may be many thousands deep.
    let mut segments = Vec::new();
    let mut cur = id;
    while let Some(segment) = intern::segment(cur) {
        cur = segment.parent;
        segments.push(segment);
    }
    let cwd = std::env::current_dir().ok();
    let mut out = Vec::new();
    for segment in segments.iter().rev() {
        out.extend(resolve_segment(&segment.keys, cwd.as_deref()));
    }
    out
}

/// The frames of one segment of a logical stack (see [`intern::segment`]):
/// the user frames of one poll, down to the spawn call, and the spawned
/// task's leaf; or, for an await point, the frames of the poll that
/// registered the waker and the `[await]` leaf (see `await_frames`). What a
/// segment resolves to depends on its keys only, so a profile resolves each
/// distinct segment once, however many stacks share it. Files under no
/// crate root are written relative to `cwd` when inside it.
pub(crate) fn resolve_segment(keys: &[FrameKey], cwd: Option<&Path>) -> Vec<ResolvedFrame> {
    let mut out = Vec::new();
    let mut ips = Vec::new();
    let mut site: Option<SpawnSite> = None;
    for key in keys {
        match *key {
            FrameKey::Ip(ip) => ips.push(ip),
            FrameKey::Location(loc) => {
                site = Some(append_poll_frames(&ips, Some(loc), cwd, &mut out));
                ips.clear();
            }
            FrameKey::Leaf(leaf) => {
                if !ips.is_empty() {
                    append_poll_frames(&ips, None, cwd, &mut out);
                    ips.clear();
                }
                let leaf = leaf_frame(leaf, site.take(), cwd);
                if let Some(function) = marked_function(&leaf) {
                    // The marked fn's own frame, which awaits its frame, is
                    // the frame: the fn's body shows below the leaf.
                    if out.last().is_some_and(|f| f.function == function) {
                        out.pop();
                    }
                }
                out.push(leaf);
            }
            FrameKey::Await(what) => {
                await_frames::append(&ips, what, awaited_task_name, &mut out);
                ips.clear();
            }
        }
    }
    if !ips.is_empty() {
        append_poll_frames(&ips, None, cwd, &mut out);
    }
    for frame in &mut out {
        frame.file = source_file::shown(&frame.file, cwd);
    }
    out
}

/// The function a `#[theseus::profiled]` frame's leaf marks.
fn marked_function(leaf: &ResolvedFrame) -> Option<&str> {
    leaf.function.strip_prefix(spawn_frames::FRAME_PREFIX)
}

/// The leaf name of an await on the task whose last segment is `task` (see
/// `intern::last_segment`): that task's own leaf, as it resolves.
fn awaited_task_name(task: StackId) -> String {
    resolve(task)
        .pop()
        .map_or_else(|| "[task] (unknown)".to_string(), |leaf| leaf.function)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_root_ids_resolve_to_nothing() {
        assert!(resolve(StackId::ROOT).is_empty());
        assert!(resolve(StackId(u32::MAX)).is_empty());
    }
}
