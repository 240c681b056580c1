//! Stress tests for lost wake-ups: many tasks waking each other across
//! threads, profiled (`common::profiled`: theseus's timed wrapper and waker
//! in every task), and the counts of a wake storm checked exactly. Each runs
//! under a deadline, so a lost wake-up fails instead of hanging. Run them
//! repeatedly with `cargo test --release -q stress`.

mod common;

use common::ground::profile;
use common::profiled::multi_thread;
use common::with_deadline;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::mpsc;

/// A ring of tasks passing tokens: each wake crosses to whichever worker
/// runs the next task, and workers park and unpark constantly.
#[test]
fn stress_token_ring() {
    token_ring(2);
}

/// More workers than cores: workers are descheduled mid-handoff, which
/// widens every race between parking and waking.
#[test]
fn stress_token_ring_oversubscribed() {
    token_ring(4);
}

fn token_ring(workers: usize) {
    const TASKS: usize = 2_000;
    const TOKENS: usize = 16;
    const ROUNDS: usize = 50;
    let passes = with_deadline(Duration::from_secs(60), move || {
        multi_thread(workers).block_on(async {
            let (first_tx, mut first_rx) = mpsc::unbounded_channel::<usize>();
            let mut next_tx = first_tx.clone();
            let mut handles = Vec::new();
            for _ in 1..TASKS {
                let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
                let forward = std::mem::replace(&mut next_tx, tx);
                handles.push(theseus::spawn(async move {
                    let mut passes = 0;
                    while let Some(hops) = rx.recv().await {
                        passes += 1;
                        if forward.send(hops + 1).is_err() {
                            break;
                        }
                    }
                    passes
                }));
            }
            // `next_tx` now feeds the last task; `first_rx` closes the ring.
            for _ in 0..TOKENS {
                next_tx.send(0).unwrap();
            }
            let mut finished = 0;
            let mut hops_total = 0;
            while finished < TOKENS {
                let hops = first_rx.recv().await.unwrap();
                if hops >= (TASKS - 1) * ROUNDS {
                    finished += 1;
                    hops_total += hops;
                } else {
                    next_tx.send(hops).unwrap();
                }
            }
            drop(next_tx);
            drop(first_tx);
            drop(first_rx);
            let mut passes = 0;
            for handle in handles {
                passes += handle.await.unwrap();
            }
            assert_eq!(passes, hops_total);
            passes
        })
    });
    assert_eq!(passes, TOKENS * (TASKS - 1) * ROUNDS);
}

/// Pairs of tasks ping-ponging over oneshot channels, with wakes from
/// workers, from the block_on thread and from plain threads all at once.
#[test]
fn stress_ping_pong_from_every_kind_of_thread() {
    with_deadline(Duration::from_secs(60), || {
        let runtime = multi_thread(2);
        runtime.block_on(async {
            let mut handles = Vec::new();
            for pair in 0..1_000 {
                let (ping_tx, mut ping_rx) = mpsc::channel::<u32>(1);
                let (pong_tx, mut pong_rx) = mpsc::channel::<u32>(1);
                handles.push(theseus::spawn(async move {
                    while let Some(n) = ping_rx.recv().await {
                        if pong_tx.send(n + 1).await.is_err() {
                            break;
                        }
                    }
                }));
                let pinger = async move {
                    let mut n = 0;
                    for _ in 0..100 {
                        ping_tx.send(n).await.unwrap();
                        n = pong_rx.recv().await.unwrap();
                    }
                    n
                };
                if pair % 10 == 0 {
                    // Driven by a plain thread: its wakes come from outside.
                    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
                    std::thread::spawn(move || {
                        done_tx.send(futures_lite::future::block_on(pinger))
                    });
                    handles.push(theseus::spawn(async move {
                        assert_eq!(done_rx.await.unwrap(), 100);
                    }));
                } else {
                    handles.push(theseus::spawn(async move {
                        assert_eq!(pinger.await, 100);
                    }));
                }
            }
            for handle in handles {
                handle.await.unwrap();
            }
        });
    });
}

/// Bursts of spawns and wakes separated by idle gaps, so workers repeatedly
/// go to sleep and must be woken by the next burst.
#[test]
fn stress_bursts_after_idle() {
    with_deadline(Duration::from_secs(60), || {
        let runtime = multi_thread(2);
        for _ in 0..200 {
            runtime.block_on(async {
                let (senders, waiters): (Vec<_>, Vec<_>) = (0..50)
                    .map(|i| {
                        let (tx, rx) = tokio::sync::oneshot::channel::<usize>();
                        (tx, theseus::spawn(async move { rx.await.unwrap() == i }))
                    })
                    .unzip();
                theseus::task::yield_now().await;
                // Every wake comes from a thread the runtime does not own.
                let waker_thread = std::thread::spawn(move || {
                    for (i, sender) in senders.into_iter().enumerate() {
                        sender.send(i).unwrap();
                    }
                });
                for waiter in waiters {
                    assert!(waiter.await.unwrap());
                }
                waker_thread.join().unwrap();
            });
            std::thread::sleep(Duration::from_micros(300));
        }
    });
}

/// Many tasks contending on an async mutex and a semaphore.
#[test]
fn stress_mutex_and_semaphore() {
    let count = with_deadline(Duration::from_secs(60), || {
        multi_thread(2).block_on(async {
            let counter = std::sync::Arc::new(tokio::sync::Mutex::new(0u64));
            let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
            let handles: Vec<_> = (0..2_000)
                .map(|_| {
                    let counter = counter.clone();
                    let permits = permits.clone();
                    theseus::spawn(async move {
                        for _ in 0..20 {
                            let _permit = permits.acquire().await.unwrap();
                            *counter.lock().await += 1;
                            theseus::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
            let total = *counter.lock().await;
            total
        })
    });
    assert_eq!(count, 40_000);
}

/// A lone worker (one worker thread, and `current_thread`) woken from plain
/// threads and by tokio timers: a wake landing while the worker goes to
/// sleep must never be lost.
#[test]
fn stress_a_lone_worker_woken_from_outside() {
    for flavor in ["multi_thread(1)", "current_thread"] {
        with_deadline(Duration::from_secs(60), move || {
            let runtime = if flavor == "current_thread" {
                theseus::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap()
            } else {
                multi_thread(1)
            };
            runtime.block_on(async {
                for round in 0..3_000u32 {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let waiter = theseus::spawn(async move { rx.await.unwrap() });
                    if round % 3 == 0 {
                        let timer = theseus::spawn(async move {
                            tokio::time::sleep(Duration::from_micros(50)).await;
                            tx.send(round).unwrap();
                        });
                        timer.await.unwrap();
                    } else {
                        std::thread::spawn(move || tx.send(round).unwrap());
                    }
                    assert_eq!(waiter.await.unwrap(), round);
                }
            });
        });
    }
}

/// How many times each task of the wake storm is polled.
const STORM_POLLS: u64 = 20_000;

/// One task of the wake storm: parks its waker in `slot` and waits for any
/// thread to wake it, `STORM_POLLS - 1` times.
async fn storm_task(slot: Arc<Mutex<Option<Waker>>>) {
    for _ in 1..STORM_POLLS {
        Parked {
            slot: &slot,
            parked: false,
        }
        .await;
    }
}

/// Pending on its first poll, with the task's waker left in `slot`; ready
/// on the next.
struct Parked<'a> {
    slot: &'a Mutex<Option<Waker>>,
    parked: bool,
}

impl Future for Parked<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.parked {
            return Poll::Ready(());
        }
        *self.slot.lock().unwrap() = Some(cx.waker().clone());
        self.parked = true;
        Poll::Pending
    }
}

/// A wake storm: 8 threads wake 16 tasks as fast as they can, so that
/// several wakes of one task race each other and the task's polls. Every
/// poll after a task's first was caused by a wake, so the profile must
/// count at least that many wakes: none may be lost from the counts, and
/// none counted twice (at most one more per task, a wake that came during
/// its last poll).
#[test]
fn stress_wake_storm_counts_every_wake_that_caused_a_poll() {
    const TASKS: u64 = 16;
    const WAKERS: usize = 8;
    let profile = with_deadline(Duration::from_secs(120), || {
        profile("wake-storm", 2, async {
            let slots: Vec<_> = (0..TASKS)
                .map(|_| Arc::new(Mutex::new(None::<Waker>)))
                .collect();
            let done = Arc::new(AtomicBool::new(false));
            let wakers: Vec<_> = (0..WAKERS)
                .map(|_| {
                    let (slots, done) = (slots.clone(), done.clone());
                    std::thread::spawn(move || {
                        while !done.load(Relaxed) {
                            for slot in &slots {
                                let waker = slot.lock().unwrap().clone();
                                if let Some(waker) = waker {
                                    waker.wake();
                                }
                            }
                            std::thread::yield_now();
                        }
                    })
                })
                .collect();
            let tasks: Vec<_> = slots
                .iter()
                .map(|slot| theseus::spawn(storm_task(slot.clone())))
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            done.store(true, Relaxed);
            for waker in wakers {
                waker.join().unwrap();
            }
        })
    });
    let leaf = "[task] stress::storm_task";
    let polls = profile.self_of(leaf, "Polls");
    let wakes = profile.inclusive_of(leaf, "Wakes");
    println!("wake storm: {polls} polls, {wakes} wakes, {TASKS} tasks");
    assert_eq!(profile.self_of(leaf, "Tasks"), TASKS);
    assert_eq!(polls, TASKS * STORM_POLLS);
    assert!(
        wakes >= polls - TASKS,
        "{polls} polls of {TASKS} tasks, but only {wakes} wakes: {} polls had no wake",
        polls - TASKS - wakes
    );
    assert!(wakes <= polls, "{wakes} wakes counted for {polls} polls");
}
