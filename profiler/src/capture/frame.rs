//! Frames: the stacks of marked futures (`#[theseus::profiled]`,
//! `theseus::profiled(fut)`, a request through theseus's tower layer).
//!
//! A frame is timed like a task, but it is not spawned: it hangs below the
//! stack it was first polled in, the enclosing task's (or frame's) logical
//! stack, then the frames of that poll down to the marked future, then a
//! leaf naming it (`[frame] app::db_query`, `[request] GET /users/{id}`).
//! That is a spawn's stack with the marked future's first poll standing
//! for the spawn call, so it is captured the same way ([`super::spawn`])
//! and ends in the same kind of leaf: its await points, and the tasks and
//! frames it starts, hang below it as they do below a task.

pub use super::intern::FrameKind;

use super::intern::Leaf;
use super::StackId;
use std::collections::HashSet;
use std::panic::Location;
use std::sync::{LazyLock, PoisonError, RwLock};

/// The logical stack of a frame first polled here: the stack of the task
/// or frame being polled on this thread ([`crate::current_stack`]), the
/// frames of the current poll down to the caller, and a leaf naming the
/// frame. `at` is where the frame was marked (the leaf's file and line).
///
/// Costs what a spawn's stack costs in the [`crate::CaptureMode`] in force:
/// in the default mode, one unwind per (enclosing stack, mark, name), then a
/// hash lookup.
pub fn frame_stack(at: &'static Location<'static>, kind: FrameKind, name: &'static str) -> StackId {
    let leaf = Leaf {
        type_name: name,
        blocking: false,
        frame: Some(kind),
        at: Some(at),
    };
    super::spawn::spawn_stack(at, leaf)
}

/// `name` as a string that lives as long as the program, the same one for
/// equal names: a frame's name is part of its stack, which is kept for the
/// program's life. Each distinct name is kept once, so names must come from
/// a bounded set (a route template, never a raw path).
pub fn intern_name(name: &str) -> &'static str {
    static NAMES: LazyLock<RwLock<HashSet<&'static str>>> =
        LazyLock::new(|| RwLock::new(HashSet::new()));
    if let Some(&kept) = NAMES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(name)
    {
        return kept;
    }
    let mut names = NAMES.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(&kept) = names.get(name) {
        return kept;
    }
    let kept: &'static str = Box::leak(name.into());
    names.insert(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_names_are_kept_once() {
        let a = intern_name(&String::from("GET /users/{id}"));
        let b = intern_name(&String::from("GET /users/{id}"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(a, "GET /users/{id}");
        assert!(!std::ptr::eq(a, intern_name("GET /slow")));
    }
}
