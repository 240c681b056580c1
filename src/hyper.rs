//! hyper's executor: the tasks hyper's connection builders spawn, spawned
//! with [`crate::spawn`], so that they are theseus tasks on any build.
//!
//! hyper spawns through the executor it is given: an HTTP/2 server
//! connection one task per stream (each request and its response body), an
//! HTTP/2 client connection the task that drives it, and upgraded streams.
//! With hyper-util's `TokioExecutor` those are `tokio::spawn` tasks, which
//! theseus sees only when built with `--cfg tokio_unstable`, and then
//! without their await points; with [`Executor`] they are full theseus
//! tasks, timed and split by the await points inside them.

use std::future::Future;

/// An executor for hyper's connection builders (`hyper::rt::Executor`)
/// that spawns with [`crate::spawn`], on the runtime it is called in.
///
/// Each task's logical stack runs from the task that polled the
/// connection (the parent), through hyper's frames down to the line in
/// hyper that asked for the spawn, to a leaf named by the spawned future's
/// type (`[task] hyper::proto::h2::server::H2Stream<..>`): the spawn is
/// hyper's, so the stack says where in hyper it was made, not this
/// executor's one line.
///
/// Give it to a builder where hyper-util's `TokioExecutor` would go:
/// `hyper::server::conn::http2::Builder::new(theseus::hyper::Executor)`,
/// `hyper_util::server::conn::auto::Builder::new(theseus::hyper::Executor)`.
///
/// ```
/// use hyper::rt::Executor as _;
///
/// let runtime = theseus::runtime::Runtime::new().unwrap();
/// runtime.block_on(async {
///     let (done, answer) = tokio::sync::oneshot::channel();
///     theseus::hyper::Executor.execute(async move { done.send(42).unwrap() });
///     assert_eq!(answer.await.unwrap(), 42);
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Executor;

impl<F> ::hyper::rt::Executor<F> for Executor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// Spawns `future` as a theseus task, detached, as hyper expects.
    ///
    /// # Panics
    ///
    /// Outside a runtime, as [`crate::spawn`] does.
    #[track_caller]
    fn execute(&self, future: F) {
        // `track_caller`: the spawn's location is hyper's call, which
        // tells a stream's task from a client connection's.
        drop(crate::spawn(future));
    }
}
