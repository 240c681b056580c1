//! Frames: any future, timed from its creation to its completion wherever
//! it is polled.
//!
//! A [`Profiled`] future is a task's timer without the spawn: it wraps a
//! future, and the first time it is polled it gets a logical stack of its
//! own below whatever polls it (a `theseus::spawn` task, a `tokio::spawn`
//! task, `block_on`, another frame), a `[frame]` or `[request]` leaf, and a
//! cell like a task's. Each poll is then timed as a task's is, with the
//! frame's own waker (`waker`), which notes the wake, finds the await points
//! inside the frame, and passes the wake on to the waker the poll was
//! given. When the frame ends, its record goes to the profiler, and its
//! costs leave those of the task (or frame) it was first polled in
//! (`TaskHeader::hold`), so that task's leaf still holds the task's whole
//! cost, inclusively.
//!
//! The future given to `block_on` is a frame too, of its own kind: a
//! `[main]` leaf with no owner, in the live-task registry while it runs,
//! so that `main`'s waits are in the profile as a task's are.
//!
//! A frame's `SchedNs` runs from its own wakes to its own polls: the delay
//! until a worker polled its task, and the time that task's poll took to
//! reach it. With no tracer installed when it is made, a frame is its
//! future and nothing more.

use crate::boundary::poll_as_task;
use crate::cell::{live_tasks, TaskCell};
use crate::clock;
use crate::waker::with_task_waker;
use std::future::{Future, IntoFuture};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use theseus_profiler::{FrameKind, Outcome, RecordKind};

/// A future timed as a frame: see [`profiled`].
#[must_use = "futures do nothing unless awaited or polled"]
pub struct Profiled<F> {
    inner: F,
    state: State,
}

/// Where a frame is in its life.
enum State {
    /// Made with no tracer installed: not timed.
    Off,
    /// Made at `created_at`, not polled yet.
    Created { created_at: u64, mark: Mark },
    /// Polled at least once; its cell holds its times.
    Running(Arc<TaskCell>),
    /// Completed or panicked, and recorded.
    Ended,
}

/// What names a frame.
#[derive(Clone, Copy)]
struct Mark {
    kind: FrameKind,
    name: &'static str,
    at: &'static Location<'static>,
}

/// Makes `future` a frame: timed like a task from now to its completion,
/// wherever it is polled, its time split by the await points inside it,
/// under a leaf named after its type (`[frame] app::fetch`) hung below the
/// stack it is first polled in.
///
/// ```
/// let rt = theseus_executor::Runtime::new().unwrap();
/// let answer = rt.block_on(async {
///     theseus_executor::profiled(async { 40 + 2 }).await
/// });
/// assert_eq!(answer, 42);
/// ```
#[track_caller]
pub fn profiled<F: IntoFuture>(future: F) -> Profiled<F::IntoFuture> {
    Profiled::marked(
        future.into_future(),
        FrameKind::Future,
        std::any::type_name::<F::IntoFuture>(),
        Location::caller(),
    )
}

impl<F: Future> Profiled<F> {
    /// A frame of `inner` of the given kind and name (see
    /// [`FrameKind`]), marked at `at`; `name` lives as long as the program
    /// (see [`theseus_profiler::intern_name`] for names made at run time).
    /// What `#[theseus::profiled]` and the request layer build on.
    ///
    /// ```
    /// use theseus_executor::Profiled;
    /// use theseus_profiler::FrameKind;
    ///
    /// let rt = theseus_executor::Runtime::new().unwrap();
    /// let request = Profiled::marked(async { 200 }, FrameKind::Request, "GET /", std::panic::Location::caller());
    /// assert_eq!(rt.block_on(request), 200);
    /// ```
    pub fn marked(
        inner: F,
        kind: FrameKind,
        name: &'static str,
        at: &'static Location<'static>,
    ) -> Profiled<F> {
        let state = if theseus_profiler::is_active() {
            State::Created {
                created_at: clock::now(),
                mark: Mark { kind, name, at },
            }
        } else {
            State::Off
        };
        Profiled { inner, state }
    }
}

impl<F: Future> Future for Profiled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of
        // `self`, only dropped with it. `state` is not pinned, and nothing
        // else projects `self`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        if let State::Created { created_at, mark } = this.state {
            this.state = State::Running(first_poll(created_at, mark));
        }
        let State::Running(cell) = &this.state else {
            return inner.poll(cx);
        };
        let (polled, end) = poll_frame(cell, inner, cx);
        let outcome = match &polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(_)) => Outcome::Completed,
            Err(_) => Outcome::Panicked,
        };
        finish(cell, outcome, end);
        this.state = State::Ended;
        polled.unwrap_or_else(|payload| resume_unwind(payload))
    }
}

/// The cell of a frame made at `created_at`, polled for the first time
/// now: its stack hangs below the stack polled on this thread, and its
/// costs will leave those of the task or frame polled here.
fn first_poll(created_at: u64, mark: Mark) -> Arc<TaskCell> {
    let stack = theseus_profiler::frame_stack(mark.at, mark.kind, mark.name);
    if mark.kind == FrameKind::Main {
        let cell = TaskCell::frame(stack, created_at, None, RecordKind::Main);
        // Live, as a task is: `main` runs as long as the program, and a
        // profile written meanwhile shows it so far.
        cell.ensure_registered();
        return cell;
    }
    TaskCell::frame(stack, created_at, TaskCell::polled_now(), RecordKind::Frame)
}

/// One timed poll of a frame, with its own waker, as its own poll context;
/// returns what the poll gave (or its panic) and when it ended.
fn poll_frame<F: Future>(
    cell: &Arc<TaskCell>,
    inner: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> (std::thread::Result<Poll<F::Output>>, u64) {
    cell.polling(|| {
        cell.set_outer_waker(cx.waker());
        with_task_waker(cell, |waker| {
            let header = &cell.header;
            let start = header.on_poll_start();
            let polled = catch_unwind(AssertUnwindSafe(|| {
                poll_as_task(header.stack, || inner.poll(&mut Context::from_waker(waker)))
            }));
            (polled, header.on_poll_end(start))
        })
    })
}

/// Records the frame's end: its costs leave its owner's, then its record
/// goes to the profiler.
fn finish(cell: &TaskCell, outcome: Outcome, now: u64) {
    // Out of the registry first (main's frame is in it), as a task leaves.
    live_tasks().remove(cell);
    let mut record = cell.header.to_record(outcome, now);
    record.kind = cell.record_kind();
    if let Some(owner) = cell.owner() {
        owner.header.hold(&mut record, now);
    }
    theseus_profiler::record(&record);
}

impl<F> Drop for Profiled<F> {
    fn drop(&mut self) {
        // Dropped before it ended: cancelled, with its task or on its own.
        if let State::Running(cell) = &self.state {
            finish(cell, Outcome::Cancelled, clock::now());
        }
    }
}

impl<F: std::fmt::Debug> std::fmt::Debug for Profiled<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiled")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
