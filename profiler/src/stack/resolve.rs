//! Resolution at write time: a logical stack's keys to the frames a
//! profile shows, a segment at a time.
//!
//! A stack is read segment by segment (see `intern::segment`): the return
//! addresses of one poll, then either a spawn (its location and the spawned
//! task's leaf, resolved by `spawned`) or an await point (resolved by
//! `awaited`). Files are written relative to the working directory, as
//! every reader of a profile agrees on them.

use super::awaited;
use super::intern::{self, FrameKey};
use super::spawned::{append_poll_frames, leaf_frame, SpawnSite};
use super::{ResolvedFrame, StackId};
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
/// distinct segment once, however many stacks share it. Files under `cwd`
/// are written relative to it.
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
                awaited::append(&ips, what, &mut out);
                ips.clear();
            }
        }
    }
    if !ips.is_empty() {
        append_poll_frames(&ips, None, cwd, &mut out);
    }
    if let Some(cwd) = cwd {
        for frame in &mut out {
            relative_to(cwd, &mut frame.file);
        }
    }
    out
}

/// The function a `#[theseus::profiled]` frame's leaf marks.
fn marked_function(leaf: &ResolvedFrame) -> Option<&str> {
    leaf.function.strip_prefix(super::spawned::FRAME_PREFIX)
}

/// Writes `file` relative to `dir` when it lies inside it.
///
/// Debug info spells a file absolute, `#[track_caller]` relative to the
/// build directory, and `callgrind_annotate` strips its working directory
/// from a function's file but not from a call's target file: an absolute
/// path under the directory it runs in would split one function into two.
/// The profile is written by a program that usually runs where it was built,
/// so relative paths are the ones every reader agrees on.
fn relative_to(dir: &Path, file: &mut String) {
    let Some(dir) = dir.to_str() else { return };
    if let Some(rest) = file.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) {
        *file = rest.to_string();
    }
}

/// `file` as [`relative_to`] writes it.
pub(super) fn shown_file(file: &str, cwd: Option<&Path>) -> String {
    let mut file = file.to_string();
    if let Some(cwd) = cwd {
        relative_to(cwd, &mut file);
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_under_the_working_directory_are_written_relative() {
        let dir = std::path::Path::new("/work/app");
        let mut inside = "/work/app/src/main.rs".to_string();
        relative_to(dir, &mut inside);
        assert_eq!(inside, "src/main.rs");
        for outside in [
            "/work/application/src/main.rs",
            "/rustc/abc/library/std/src/rt.rs",
            "src/lib.rs",
        ] {
            let mut file = outside.to_string();
            relative_to(dir, &mut file);
            assert_eq!(file, outside);
        }
    }
}
