//! The runtime as users meet it: spawn, join, abort, detach, blocking work,
//! panics, flavors, and the errors for misuse.

mod common;

use common::profiled::multi_thread;
use common::with_deadline;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn one_million_tasks_spawned_and_joined() {
    let total = with_deadline(Duration::from_secs(120), || {
        multi_thread(2).block_on(async {
            let handles: Vec<_> = (0..1_000_000u64)
                .map(|i| theseus::spawn(async move { i % 7 }))
                .collect();
            let mut total = 0;
            for handle in handles {
                total += handle.await.unwrap();
            }
            total
        })
    });
    assert_eq!(total, (0..1_000_000u64).map(|i| i % 7).sum::<u64>());
}

#[test]
fn nested_spawns_form_a_tree() {
    fn tree(depth: u32) -> theseus::JoinHandle<u64> {
        theseus::spawn(async move {
            if depth == 0 {
                return 1;
            }
            let left = tree(depth - 1);
            let right = tree(depth - 1);
            left.await.unwrap() + right.await.unwrap()
        })
    }
    let leaves = multi_thread(2).block_on(async { tree(12).await.unwrap() });
    assert_eq!(leaves, 4096);
}

#[test]
fn abort_cancels_a_waiting_task_and_drops_its_future() {
    struct SetOnDrop(Arc<AtomicUsize>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let flag = dropped.clone();
    multi_thread(2).block_on(async move {
        let guard = SetOnDrop(flag);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let handle = theseus::spawn(async move {
            let _guard = guard;
            started_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        });
        started_rx.await.unwrap();
        handle.abort();
        let error = handle.await.unwrap_err();
        assert!(error.is_cancelled());
        assert!(!error.is_panic());
        assert_eq!(error.to_string(), "task was cancelled");
    });
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn abort_of_a_running_task_takes_effect_at_its_next_await() {
    let runtime = multi_thread(2);
    runtime.block_on(async {
        let polls = Arc::new(AtomicUsize::new(0));
        let counter = polls.clone();
        let handle = theseus::spawn(async move {
            loop {
                counter.fetch_add(1, Ordering::SeqCst);
                theseus::task::yield_now().await;
            }
        });
        while polls.load(Ordering::SeqCst) < 10 {
            theseus::task::yield_now().await;
        }
        handle.abort();
        assert!(handle.await.unwrap_err().is_cancelled());
        let after = polls.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            polls.load(Ordering::SeqCst),
            after,
            "the task kept running after abort"
        );
    });
}

#[test]
fn abort_after_completion_keeps_the_output() {
    multi_thread(2).block_on(async {
        let handle = theseus::spawn(async { 3 });
        while !handle.is_finished() {
            theseus::task::yield_now().await;
        }
        handle.abort();
        assert_eq!(handle.await.unwrap(), 3);
    });
}

#[test]
fn dropping_the_handle_detaches_the_task() {
    multi_thread(2).block_on(async {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let handle = theseus::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send("still ran").unwrap();
        });
        drop(handle);
        assert_eq!(rx.await.unwrap(), "still ran");
    });
}

#[test]
fn spawn_blocking_runs_off_the_workers() {
    let runtime = multi_thread(1);
    runtime.block_on(async {
        // With one worker, a blocking sleep on it would stall this ticker.
        let blocking = theseus::spawn_blocking(|| {
            std::thread::sleep(Duration::from_millis(200));
            std::thread::current().name().map(str::to_string)
        });
        let ticks = theseus::spawn(async {
            let mut ticks = 0;
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(150) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ticks += 1;
            }
            ticks
        });
        assert!(ticks.await.unwrap() >= 5);
        let name = blocking.await.unwrap().unwrap();
        assert!(name.starts_with("theseus-"), "{name}");
        // Handle::current works inside blocking closures, as in tokio.
        let nested =
            theseus::spawn_blocking(|| theseus::runtime::Handle::current().spawn(async { 9 }));
        assert_eq!(nested.await.unwrap().await.unwrap(), 9);
    });
}

#[test]
fn spawn_blocking_panics_are_reported() {
    multi_thread(1).block_on(async {
        let error = theseus::spawn_blocking(|| panic!("blocking boom"))
            .await
            .unwrap_err();
        assert!(error.is_panic());
        assert_eq!(
            *error.into_panic().downcast::<&str>().unwrap(),
            "blocking boom"
        );
    });
}

#[test]
fn a_panicking_task_is_reported_and_no_worker_dies() {
    let runtime = multi_thread(2);
    runtime.block_on(async {
        for round in 0..20 {
            let error = theseus::spawn(async move {
                if round >= 0 {
                    panic!("boom {round}");
                }
            })
            .await
            .unwrap_err();
            assert!(error.is_panic());
            assert_eq!(
                error.to_string(),
                format!("task panicked with message \"boom {round}\"")
            );
            let payload = error.into_panic();
            assert_eq!(
                payload.downcast_ref::<String>().unwrap(),
                &format!("boom {round}")
            );
        }
        // Both workers still run tasks.
        let handles: Vec<_> = (0..200)
            .map(|_| {
                theseus::spawn(async {
                    std::thread::sleep(Duration::from_micros(200));
                    std::thread::current().name().unwrap().to_string()
                })
            })
            .collect();
        let mut names = std::collections::HashSet::new();
        for handle in handles {
            names.insert(handle.await.unwrap());
        }
        assert!(names.iter().all(|n| n.starts_with("theseus-")), "{names:?}");
    });
}

#[test]
fn a_panic_in_block_on_propagates() {
    let runtime = multi_thread(1);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async { panic!("main boom") })
    }));
    assert_eq!(
        *caught.unwrap_err().downcast::<&str>().unwrap(),
        "main boom"
    );
    // The runtime is still usable.
    assert_eq!(
        runtime.block_on(async { theseus::spawn(async { 1 }).await.unwrap() }),
        1
    );
}

#[test]
fn spawn_outside_a_runtime_panics_with_advice() {
    let panic = std::panic::catch_unwind(|| theseus::spawn(async {})).unwrap_err();
    let message = panic.downcast::<String>().unwrap();
    assert!(message.contains("no theseus runtime"), "{message}");
    assert!(message.contains("#[theseus::main]"), "{message}");
    assert!(theseus::runtime::Handle::try_current().is_err());
}

#[test]
fn block_on_inside_a_task_is_refused() {
    let runtime = Arc::new(multi_thread(1));
    let inner = runtime.clone();
    let error = runtime.block_on(async move {
        theseus::spawn(async move { inner.block_on(async {}) })
            .await
            .unwrap_err()
    });
    let panic = error.into_panic();
    let message = match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => panic.downcast::<&str>().unwrap().to_string(),
    };
    assert!(message.contains("from within a runtime"), "{message}");
}

/// tokio allows `block_on` on a thread that drives no tasks: a blocking
/// closure's, or a worker's inside `block_in_place`. So does theseus, with
/// the blocking closure itself profiled.
#[test]
fn block_on_inside_spawn_blocking_and_block_in_place_returns() {
    let _tracer = common::ground::SERIAL
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let tracer = theseus::Tracer::new();
    tracer.install();
    let runtime = Arc::new(multi_thread(2));
    let (blocking, in_place) = (runtime.clone(), runtime.clone());
    let (from_blocking, from_in_place) = with_deadline(Duration::from_secs(30), move || {
        runtime.block_on(async move {
            let from_blocking = theseus::spawn_blocking(move || {
                blocking.block_on(async { theseus::spawn(async { 20 }).await.unwrap() })
            })
            .await
            .unwrap();
            let from_in_place = theseus::spawn(async move {
                tokio::task::block_in_place(|| in_place.block_on(async { 22 }))
            })
            .await
            .unwrap();
            (from_blocking, from_in_place)
        })
    });
    tracer.uninstall();
    assert_eq!((from_blocking, from_in_place), (20, 22));
}

#[test]
fn current_thread_flavor_runs_tasks_on_the_calling_thread() {
    common::profiled::on();
    let runtime = theseus::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let caller = std::thread::current().id();
    let ids = runtime.block_on(async {
        let handles: Vec<_> = (0..100)
            .map(|_| {
                theseus::spawn(async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    std::thread::current().id()
                })
            })
            .collect();
        let mut ids = Vec::new();
        for handle in handles {
            ids.push(handle.await.unwrap());
        }
        ids
    });
    assert!(ids.iter().all(|&id| id == caller));
    // Tasks spawned from another thread run at the next block_on.
    let handle = runtime.handle().clone();
    let task = std::thread::spawn(move || handle.spawn(async { 11 }))
        .join()
        .unwrap();
    assert_eq!(runtime.block_on(task).unwrap(), 11);
}

#[test]
fn worker_threads_are_named_and_counted() {
    let runtime = theseus::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .thread_name("pool")
        .build()
        .unwrap();
    let names = runtime.block_on(async {
        let handles: Vec<_> = (0..300)
            .map(|_| {
                theseus::spawn(async {
                    std::thread::sleep(Duration::from_micros(300));
                    std::thread::current().name().unwrap().to_string()
                })
            })
            .collect();
        let mut names = std::collections::BTreeSet::new();
        for handle in handles {
            names.insert(handle.await.unwrap());
        }
        names
    });
    assert!(
        names
            .iter()
            .all(|n| ["pool-0", "pool-1", "pool-2"].contains(&n.as_str())),
        "{names:?}"
    );
    assert!(names.len() >= 2, "work was not spread: {names:?}");
}

#[test]
fn dropping_the_runtime_cancels_remaining_tasks() {
    struct CountDrop(Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let runtime = multi_thread(2);
    runtime.block_on(async {
        for _ in 0..100 {
            let guard = CountDrop(dropped.clone());
            // Detached, waiting forever on a channel nobody sends to.
            let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
            std::mem::forget(_tx);
            theseus::spawn(async move {
                let _guard = guard;
                let _ = rx.await;
            });
        }
        theseus::task::yield_now().await;
    });
    drop(runtime);
    assert_eq!(dropped.load(Ordering::SeqCst), 100);
}

#[test]
fn an_idle_runtime_uses_next_to_no_cpu() {
    // Other tests run in this process at the same time: count only the CPU
    // time of this runtime's own threads, found by name in /proc.
    let runtime = theseus::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("idlecheck")
        .build()
        .unwrap();
    runtime.block_on(async {
        theseus::spawn(async { tokio::time::sleep(Duration::from_millis(5)).await })
            .await
            .unwrap()
    });
    let before = threads_cpu_time("idlecheck");
    std::thread::sleep(Duration::from_millis(500));
    let used = threads_cpu_time("idlecheck") - before;
    assert!(
        used <= Duration::from_millis(20),
        "idle runtime used {used:?} of CPU in 500 ms"
    );
    drop(runtime);
}

/// utime + stime of this process's threads whose name starts with `prefix`.
fn threads_cpu_time(prefix: &str) -> Duration {
    let mut ticks = 0;
    let mut threads = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = entry.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !comm.starts_with(prefix) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        threads += 1;
    }
    assert!(threads >= 2, "found {threads} threads named {prefix}*");
    // Clock ticks are 1/100 s on Linux.
    Duration::from_millis(ticks * 10)
}

#[test]
fn a_wake_from_a_foreign_thread_unparks_a_worker_promptly() {
    let runtime = multi_thread(2);
    runtime.block_on(async {
        for _ in 0..50 {
            let (tx, rx) = tokio::sync::oneshot::channel::<Instant>();
            let task = theseus::spawn(async move {
                let sent = rx.await.unwrap();
                sent.elapsed()
            });
            // Let every worker park.
            tokio::time::sleep(Duration::from_millis(2)).await;
            std::thread::spawn(move || tx.send(Instant::now()).unwrap());
            let latency = task.await.unwrap();
            assert!(
                latency < Duration::from_millis(50),
                "woken after {latency:?}"
            );
        }
    });
}

#[theseus::test]
async fn test_attribute_defaults_to_current_thread() {
    common::profiled::on();
    let here = std::thread::current().id();
    let there = theseus::spawn(async { std::thread::current().id() })
        .await
        .unwrap();
    assert_eq!(here, there);
}

#[theseus::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_attribute_takes_tokio_options() -> Result<(), theseus::JoinError> {
    common::profiled::on();
    let name = theseus::spawn(async { std::thread::current().name().map(str::to_string) }).await?;
    assert!(name.unwrap().starts_with("theseus-"));
    Ok(())
}

/// Bug fixed: after a panic in the main future of a current-thread runtime,
/// the next `block_on` panicked (and the worker pointer dangled).
#[test]
fn a_current_thread_runtime_is_reusable_after_its_main_future_panicked() {
    common::profiled::on();
    let runtime = theseus::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for _ in 0..3 {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async {
                theseus::spawn(async {}).await.unwrap();
                panic!("main boom")
            })
        }));
        assert!(caught.is_err());
        let value = runtime.block_on(async {
            let slept = theseus::spawn(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                2
            });
            slept.await.unwrap() + theseus::spawn(async { 1 }).await.unwrap()
        });
        assert_eq!(value, 3);
    }
}
