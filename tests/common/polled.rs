//! A future whose polls are timed from outside it: the time the task that
//! polls it can have been busy in it, however a loaded machine preempted
//! those polls.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Instant;

/// `future`, its polls' wall time added to a counter (if any).
pub struct Polled<F> {
    future: Pin<Box<F>>,
    into: Option<&'static AtomicU64>,
}

impl<F> Polled<F> {
    /// `future`, its polls timed into `into`.
    pub fn timed(future: F, into: &'static AtomicU64) -> Polled<F> {
        Polled {
            future: Box::pin(future),
            into: Some(into),
        }
    }

    /// `future`, its polls not counted.
    pub fn untimed(future: F) -> Polled<F> {
        Polled {
            future: Box::pin(future),
            into: None,
        }
    }
}

impl<F: Future> Future for Polled<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = Instant::now();
        let poll = self.future.as_mut().poll(cx);
        if let Some(into) = self.into {
            into.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
        }
        poll
    }
}
