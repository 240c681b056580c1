//! tokio's paused time in theseus tests, as under `#[tokio::test]`: a
//! current-thread runtime whose clock moves only when every task waits,
//! or when the test advances it.

use std::time::Duration;
use tokio::time::Instant;

#[theseus::test(start_paused = true)]
async fn start_paused_skips_sleeps_when_every_task_waits() {
    let wall = std::time::Instant::now();
    let start = Instant::now();
    let napper = theseus::spawn(async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Instant::now()
    });
    let woke = napper.await.unwrap();
    assert_eq!(woke - start, Duration::from_secs(3600));
    assert!(
        wall.elapsed() < Duration::from_secs(5),
        "{:?}",
        wall.elapsed()
    );
}

/// The shape of mini-redis's `key_value_timeout` test: pause, then advance.
#[theseus::test]
async fn pause_and_advance_move_timers() {
    tokio::time::pause();
    let (tx, rx) = tokio::sync::oneshot::channel();
    theseus::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(()).unwrap();
    });
    let mut rx = rx;
    tokio::time::advance(Duration::from_millis(500)).await;
    assert!(rx.try_recv().is_err(), "fired after half its time");
    tokio::time::advance(Duration::from_millis(600)).await;
    rx.await.unwrap();
}

#[test]
fn start_paused_on_a_multi_thread_runtime_is_refused_with_a_reason() {
    let error = theseus::runtime::Builder::new_multi_thread()
        .start_paused(true)
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("current-thread"), "{error}");
}
