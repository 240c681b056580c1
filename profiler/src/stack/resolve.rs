//! Resolution at write time: a logical stack's keys to the frames a
//! profile shows, a segment at a time.
//!
//! A stack is read segment by segment (see `intern::segment`): the return
//! addresses of one poll, then either a spawn (its location and the spawned
//! task's leaf, resolved by `spawned`) or an await point (resolved by
//! `awaited`). Files are written as `crate::source_file` shows them: the
//! same wherever the program ran.

use super::awaited;
use super::intern::{self, FrameKey};
use super::spawned::{append_poll_frames, leaf_frame, SpawnSite};
use super::{ResolvedFrame, StackId};
use crate::source_file;
use std::path::Path;

/// See [`crate::resolve`].
pub(super) fn resolve(id: StackId) -> Vec<ResolvedFrame> {
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
/// registered the waker and the `[await]` leaf (see `awaited`). What a
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
                awaited::append(&ips, what, awaited_task_name, &mut out);
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
    leaf.function.strip_prefix(super::spawned::FRAME_PREFIX)
}

/// The leaf name of an await on the task whose last segment is `task` (see
/// `intern::last_segment`): that task's own leaf, as it resolves.
fn awaited_task_name(task: StackId) -> String {
    resolve(task)
        .pop()
        .map_or_else(|| "[task] (unknown)".to_string(), |leaf| leaf.function)
}
