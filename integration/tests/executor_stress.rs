//! Stress tests of `theseus::Executor`'s scheduling, run with profiling on
//! (a tracer installed for the process, `common::profiled`): token rings,
//! wake storms from plain threads, a single runner, runners that join and
//! leave while tasks run, and what dropping the executor does. A lost
//! wake-up shows as a test that does not finish in its time.
//!
//! With `THESEUS_TEST_PROFILING=off` they run unprofiled; `THESEUS=0` must
//! then be set too, or the first executor would start a session writing a
//! profile at exit.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::with_deadline;
use easy_parallel::Parallel;
use futures_lite::future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use theseus::Executor;

const LIMIT: Duration = Duration::from_secs(60);

fn profiling_on() {
    common::profiled::on();
    if !theseus_profiler::is_active() {
        assert_eq!(
            std::env::var("THESEUS").as_deref(),
            Ok("0"),
            "run these with THESEUS=0 when profiling is off"
        );
    }
}

/// Runs `main` on `ex` with `runners` more threads running it meanwhile.
fn run_with_runners<T: Send>(
    ex: &Executor<'_>,
    runners: usize,
    main: impl std::future::Future<Output = T> + Send,
) -> T {
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let (_, output) = Parallel::new()
        .each(0..runners, |_| future::block_on(ex.run(stopped.recv())))
        .finish(|| {
            let output = future::block_on(ex.run(main));
            drop(stop);
            output
        });
    output
}

#[test]
fn a_token_goes_round_a_ring_of_tasks() {
    profiling_on();
    with_deadline(LIMIT, || {
        const TASKS: usize = 64;
        const LAPS: usize = 200;
        let ex = Executor::new();
        let channels: Vec<_> = (0..TASKS).map(|_| async_channel::bounded(1)).collect();
        // Task i passes the token from channel i to channel i + 1, adding
        // one; channel 0 is the caller's.
        for i in 1..TASKS {
            let receiver = channels[i].1.clone();
            let next = channels[(i + 1) % TASKS].0.clone();
            ex.spawn(async move {
                while let Ok(token) = receiver.recv().await {
                    if next.send(token + 1).await.is_err() {
                        return;
                    }
                }
            })
            .detach();
        }
        let (first, back) = (channels[1].0.clone(), channels[0].1.clone());
        drop(channels);
        let token = run_with_runners(&ex, 2, async {
            let mut token = 0usize;
            for _ in 0..LAPS {
                first.send(token).await.unwrap();
                token = back.recv().await.unwrap();
            }
            token
        });
        assert_eq!(token, LAPS * (TASKS - 1));
    });
}

#[test]
fn wake_storms_from_plain_threads_lose_no_wake() {
    profiling_on();
    with_deadline(LIMIT, || {
        const THREADS: usize = 4;
        const MESSAGES: usize = 5_000;
        let received = AtomicUsize::new(0);
        let ex = Executor::new();
        let (sender, receiver) = async_channel::bounded::<usize>(8);
        let consumers: Vec<_> = (0..8)
            .map(|_| {
                let receiver = receiver.clone();
                let received = &received;
                ex.spawn(async move {
                    while receiver.recv().await.is_ok() {
                        received.fetch_add(1, Relaxed);
                    }
                })
            })
            .collect();
        let (_, _) = Parallel::new()
            .each(0..THREADS, |thread| {
                for n in 0..MESSAGES {
                    sender.send_blocking(n).unwrap();
                    if n % 1000 == thread {
                        // Now and then a pause, so runners go idle and
                        // must be woken.
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
            .finish(|| {
                run_with_runners(&ex, 1, async {
                    while received.load(Relaxed) < THREADS * MESSAGES {
                        async_io::Timer::after(Duration::from_millis(1)).await;
                    }
                })
            });
        drop(sender);
        future::block_on(ex.run(async {
            for consumer in consumers {
                consumer.await;
            }
        }));
        assert_eq!(received.load(Relaxed), THREADS * MESSAGES);
    });
}

#[test]
fn one_runner_runs_chained_spawns_and_yields() {
    profiling_on();
    with_deadline(LIMIT, || {
        let ex = Arc::new(Executor::<'static>::new());
        fn chain(ex: Arc<Executor<'static>>, left: usize) -> theseus::Task<usize> {
            let inner = ex.clone();
            ex.spawn(async move {
                if left == 0 {
                    0
                } else {
                    chain(inner, left - 1).await + 1
                }
            })
        }
        let depth = future::block_on(ex.run(chain(ex.clone(), 2_000)));
        assert_eq!(depth, 2_000);
        let yields: usize = future::block_on(ex.run(async {
            let tasks: Vec<_> = (0..100)
                .map(|_| {
                    ex.spawn(async {
                        for _ in 0..100 {
                            future::yield_now().await;
                        }
                        100
                    })
                })
                .collect();
            let mut total = 0;
            for task in tasks {
                total += task.await;
            }
            total
        }));
        assert_eq!(yields, 10_000);
        assert!(ex.is_empty());
    });
}

#[test]
fn runners_join_and_leave_while_tasks_run() {
    profiling_on();
    with_deadline(LIMIT, || {
        const TASKS: usize = 200;
        let finished = AtomicUsize::new(0);
        let ex = Executor::new();
        for _ in 0..TASKS {
            let finished = &finished;
            ex.spawn(async move {
                for _ in 0..50 {
                    future::yield_now().await;
                }
                async_io::Timer::after(Duration::from_millis(2)).await;
                finished.fetch_add(1, Relaxed);
            })
            .detach();
        }
        // Runners that each stay a little, then leave with whatever they
        // held; no thread stays for the whole run.
        Parallel::new()
            .each(0..4, |thread| {
                while finished.load(Relaxed) < TASKS {
                    let stay = Duration::from_micros(300 * (thread as u64 + 1));
                    async_io::block_on(ex.run(async_io::Timer::after(stay)));
                }
            })
            .run();
        assert_eq!(finished.load(Relaxed), TASKS);
        assert!(ex.is_empty());
    });
}

#[test]
fn tick_and_try_tick_run_tasks_from_outside_the_runners() {
    profiling_on();
    with_deadline(LIMIT, || {
        let ex = Executor::new();
        assert!(!ex.try_tick());
        let task = ex.spawn(async { 42 });
        assert!(ex.try_tick());
        assert!(task.is_finished());
        assert_eq!(future::block_on(task), 42);
        // `tick` waits for a task woken from another thread.
        let (sender, receiver) = async_channel::bounded::<u32>(1);
        let task = ex.spawn(async move { receiver.recv().await.unwrap() });
        future::block_on(ex.tick());
        Parallel::new()
            .add(|| {
                std::thread::sleep(Duration::from_millis(20));
                sender.send_blocking(7).unwrap();
            })
            .finish(|| future::block_on(ex.tick()));
        assert!(task.is_finished());
        assert_eq!(future::block_on(task), 7);
    });
}

#[test]
fn dropping_the_executor_drops_every_unfinished_future() {
    profiling_on();
    with_deadline(LIMIT, || {
        struct CountsDrops<'a>(&'a AtomicUsize);
        impl Drop for CountsDrops<'_> {
            fn drop(&mut self) {
                self.0.fetch_add(1, Relaxed);
            }
        }
        let dropped = AtomicUsize::new(0);
        let ex = Executor::new();
        let (_sender, receiver) = async_channel::bounded::<()>(1);
        for _ in 0..10 {
            let guard = CountsDrops(&dropped);
            let receiver = receiver.clone();
            ex.spawn(async move {
                let _guard = guard;
                let _ = receiver.recv().await;
            })
            .detach();
        }
        // Half of them have waited once; half were never polled.
        for _ in 0..5 {
            assert!(ex.try_tick());
        }
        assert!(!ex.is_empty());
        drop(ex);
        assert_eq!(dropped.load(Relaxed), 10);
    });
}

#[test]
fn the_executor_and_its_run_future_can_cross_threads() {
    fn send_and_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    profiling_on();
    let ex = Executor::new();
    send_and_sync(&ex);
    let run = ex.run(future::pending::<()>());
    // `run` can itself be spawned, as async-executor's can.
    send(&run);
    let local = theseus::LocalExecutor::new();
    assert!(local.is_empty());
}

#[test]
fn a_panicking_task_panics_its_awaiter_and_the_runner_goes_on() {
    profiling_on();
    with_deadline(LIMIT, || {
        let ex = Executor::new();
        let bad = ex.spawn(async { panic!("task failed on purpose") });
        let good = ex.spawn(async { 5 });
        let caught = future::block_on(ex.run(async {
            let caught = futures_lite::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(bad));
            (caught.await.is_err(), good.await)
        }));
        assert_eq!(caught, (true, 5));
    });
}
