//! The workloads, written once against [`Spawner`] so every runtime runs the
//! same code. The first four are the shapes of tokio's own scheduler
//! benchmarks.

use crate::runtimes::Spawner;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// From inside a task, spawn 10,000 empty tasks and wait for all of them.
pub async fn spawn_many<S: Spawner>(spawner: S) {
    const TASKS: usize = 10_000;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let inner = spawner.clone();
    spawner
        .spawn(async move {
            let remaining = Arc::new(AtomicUsize::new(TASKS));
            let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
            for _ in 0..TASKS {
                let remaining = remaining.clone();
                let tx = tx.clone();
                drop(inner.spawn(async move {
                    if remaining.fetch_sub(1, Ordering::Relaxed) == 1 {
                        tx.lock().unwrap().take().unwrap().send(()).unwrap();
                    }
                }));
            }
        })
        .await;
    rx.await.unwrap();
}

/// 200 tasks that each yield 1,000 times.
pub async fn yield_many<S: Spawner>(spawner: S) {
    const TASKS: usize = 200;
    const YIELDS: usize = 1_000;
    let handles: Vec<_> = (0..TASKS)
        .map(|_| {
            spawner.spawn(async {
                for _ in 0..YIELDS {
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await;
    }
}

/// 1,000 pairs of tasks, each pair passing one message there and back.
pub async fn ping_pong<S: Spawner>(spawner: S) {
    const PAIRS: usize = 1_000;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let remaining = Arc::new(AtomicUsize::new(PAIRS));
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let inner = spawner.clone();
    spawner
        .spawn(async move {
            for _ in 0..PAIRS {
                let remaining = remaining.clone();
                let done_tx = done_tx.clone();
                let spawner = inner.clone();
                drop(inner.spawn(async move {
                    let (ping_tx, ping_rx) = tokio::sync::oneshot::channel::<()>();
                    let (pong_tx, pong_rx) = tokio::sync::oneshot::channel::<()>();
                    drop(spawner.spawn(async move {
                        ping_rx.await.unwrap();
                        pong_tx.send(()).unwrap();
                    }));
                    ping_tx.send(()).unwrap();
                    pong_rx.await.unwrap();
                    if remaining.fetch_sub(1, Ordering::Relaxed) == 1 {
                        done_tx.lock().unwrap().take().unwrap().send(()).unwrap();
                    }
                }));
            }
        })
        .await;
    done_rx.await.unwrap();
}

/// A chain of 1,000 tasks, each spawning the next.
pub async fn chained_spawn<S: Spawner>(spawner: S) {
    const DEPTH: usize = 1_000;
    fn link<S: Spawner>(spawner: S, left: usize, done: tokio::sync::oneshot::Sender<()>) {
        if left == 0 {
            done.send(()).unwrap();
            return;
        }
        let next = spawner.clone();
        drop(spawner.spawn(async move { link(next, left - 1, done) }));
    }
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let inner = spawner.clone();
    spawner
        .spawn(async move { link(inner, DEPTH, done_tx) })
        .await;
    done_rx.await.unwrap();
}

/// From the main future, spawn 100,000 empty tasks and await every handle.
pub async fn spawn_join_100k<S: Spawner>(spawner: S) {
    const TASKS: usize = 100_000;
    let handles: Vec<_> = (0..TASKS).map(|_| spawner.spawn(async {})).collect();
    for handle in handles {
        handle.await;
    }
}
