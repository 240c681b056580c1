//! The future of `Executor::run`: the caller's future, and a runner that
//! runs the executor's tasks between its polls.

use super::runner::Runner;
use super::state::State;
use crate::boundary::poll_as_task;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use theseus_profiler::StackId;

/// Polls `future` and, while it is pending, runs tasks. The runner joins
/// the executor at the first poll and leaves when this is dropped.
pub(crate) struct Run<F> {
    state: Arc<State>,
    runner: Option<Runner>,
    future: F,
}

impl<F: Future> Run<F> {
    pub(crate) fn new(state: Arc<State>, future: F) -> Run<F> {
        Run {
            state,
            runner: None,
            future,
        }
    }
}

impl<F: Future> Future for Run<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // `self` nor given out unpinned; `state` and `runner` are not
        // pinned, and nothing else projects `self`.
        let Run {
            state,
            runner,
            future,
        } = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `future` stays where it is until `self` drops.
        let future = unsafe { Pin::new_unchecked(future) };
        if let Poll::Ready(output) = poll_caller(future, cx) {
            return Poll::Ready(output);
        }
        let runner = runner.get_or_insert_with(|| Runner::new(state.clone()));
        match runner.run_tasks(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(never) => match never {},
        }
    }
}

/// The future given to `run`, polled as `block_on` polls `main`'s: with no
/// task running, so the tasks it spawns start their logical stacks at its
/// frames.
fn poll_caller<F: Future>(future: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<F::Output> {
    if theseus_profiler::is_active() {
        poll_as_task(StackId::ROOT, || future.poll(cx))
    } else {
        future.poll(cx)
    }
}
