//! The runtimes under comparison, behind one small interface: block on a
//! future, and spawn from inside it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Spawns tasks onto one runtime; the join future yields the output.
pub trait Spawner: Clone + Send + Sync + 'static {
    type Join<T: Send + 'static>: Future<Output = T> + Send + 'static;
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}

/// A runtime that runs a benchmark's top-level future.
pub trait BenchRuntime {
    type Spawner: Spawner;
    fn spawner(&self) -> Self::Spawner;
    fn block_on<F: Future>(&self, future: F) -> F::Output;
}

/// A join handle whose `Result` is unwrapped: a failed task fails the run.
pub struct Unwrapped<H>(H);

impl<H, T, E> Future for Unwrapped<H>
where
    H: Future<Output = Result<T, E>> + Unpin,
    E: std::fmt::Debug,
{
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|result| result.expect("benchmark task failed"))
    }
}

pub struct Tokio(pub tokio::runtime::Runtime);

impl Tokio {
    pub fn new(workers: usize) -> Tokio {
        Tokio(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .unwrap(),
        )
    }
}

#[derive(Clone)]
pub struct TokioSpawner;

impl Spawner for TokioSpawner {
    type Join<T: Send + 'static> = Unwrapped<tokio::task::JoinHandle<T>>;
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Unwrapped(tokio::spawn(future))
    }
}

impl BenchRuntime for Tokio {
    type Spawner = TokioSpawner;
    fn spawner(&self) -> TokioSpawner {
        TokioSpawner
    }
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

pub struct Theseus(pub theseus::runtime::Runtime);

impl Theseus {
    pub fn new(workers: usize) -> Theseus {
        Theseus(
            theseus::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .unwrap(),
        )
    }
}

#[derive(Clone)]
pub struct TheseusSpawner;

impl Spawner for TheseusSpawner {
    type Join<T: Send + 'static> = Unwrapped<theseus::JoinHandle<T>>;
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Unwrapped(theseus::spawn(future))
    }
}

impl BenchRuntime for Theseus {
    type Spawner = TheseusSpawner;
    fn spawner(&self) -> TheseusSpawner {
        TheseusSpawner
    }
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

/// async-executor with `workers` threads running it; the benchmark's main
/// future is driven by the calling thread, as in the other runtimes.
pub struct AsyncExecutor {
    executor: Arc<async_executor::Executor<'static>>,
    stop: tokio::sync::watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl AsyncExecutor {
    pub fn new(workers: usize) -> AsyncExecutor {
        let executor = Arc::new(async_executor::Executor::new());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let threads = (0..workers)
            .map(|_| {
                let executor = executor.clone();
                let mut stopped = stopped.clone();
                std::thread::spawn(move || {
                    futures_lite::future::block_on(executor.run(async move {
                        let _ = stopped.wait_for(|&stop| stop).await;
                    }))
                })
            })
            .collect();
        AsyncExecutor {
            executor,
            stop,
            threads,
        }
    }
}

impl Drop for AsyncExecutor {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[derive(Clone)]
pub struct AsyncExecutorSpawner(Arc<async_executor::Executor<'static>>);

impl Spawner for AsyncExecutorSpawner {
    type Join<T: Send + 'static> = Detaching<T>;
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Detaching(Some(self.0.spawn(future)))
    }
}

/// An async-executor task that detaches when dropped, like tokio's and
/// theseus's join handles (async-executor would cancel it).
pub struct Detaching<T>(Option<async_executor::Task<T>>);

impl<T> Future for Detaching<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let task = self.0.as_mut().expect("polled after completion");
        let output = std::task::ready!(Pin::new(task).poll(cx));
        self.0 = None;
        Poll::Ready(output)
    }
}

impl<T> Drop for Detaching<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.detach();
        }
    }
}

impl BenchRuntime for AsyncExecutor {
    type Spawner = AsyncExecutorSpawner;
    fn spawner(&self) -> AsyncExecutorSpawner {
        AsyncExecutorSpawner(self.executor.clone())
    }
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        futures_lite::future::block_on(future)
    }
}
