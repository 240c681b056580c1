//! Waiting for one task on a thread that is not a runner: `Executor::tick`.

use super::state::State;
use async_task::Runnable;
use std::future::poll_fn;
use std::task::Poll;

/// The next scheduled task, taken from anywhere; waits, registered among
/// the idle, while there is none.
pub(crate) async fn wait_for_task(state: &State) -> Runnable {
    let waiting = Waiting {
        state,
        id: state.sleeper_id(),
        registered: false,
    };
    let mut waiting = waiting;
    poll_fn(|cx| {
        // Woken, or polled again: no longer idle while it looks.
        if std::mem::take(&mut waiting.registered) {
            waiting.state.sleepers.unregister(waiting.id);
        }
        if let Some(runnable) = waiting.state.take_one() {
            return Poll::Ready(runnable);
        }
        waiting.state.sleepers.register(waiting.id, cx.waker());
        waiting.registered = true;
        match waiting.take() {
            Some(runnable) => Poll::Ready(runnable),
            None => Poll::Pending,
        }
    })
    .await
}

/// A `tick` waiting: unregistered when it gets a task or is dropped.
struct Waiting<'s> {
    state: &'s State,
    id: usize,
    registered: bool,
}

impl Waiting<'_> {
    fn take(&mut self) -> Option<Runnable> {
        let runnable = self.state.take_one()?;
        if std::mem::take(&mut self.registered) {
            self.state.sleepers.unregister(self.id);
        }
        Some(runnable)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.registered {
            self.state.sleepers.unregister(self.id);
            // A notify may have picked this waiter, which goes without
            // looking: pass the wake on.
            self.state.sleepers.notify();
        }
    }
}
