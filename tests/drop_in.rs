//! tokio's task API beyond `spawn`, on theseus: `JoinSet`, `AbortHandle`,
//! `block_in_place`, `spawn_local` and `LocalSet`, `Handle::try_current`;
//! their tasks are theseus tasks, in the profile on any build.

mod common;

use common::ground::profile;
use common::{multi_thread, with_deadline};
use std::rc::Rc;
use std::time::Duration;
use theseus::task::{JoinSet, LocalSet};

const MS: u64 = 1_000_000;

async fn sleeper(duration: Duration) -> u64 {
    tokio::time::sleep(duration).await;
    1
}

async fn forever() -> u64 {
    std::future::pending().await
}

fn checksum() -> u64 {
    (1..=1000u64).sum()
}

#[test]
fn a_join_sets_tasks_are_in_the_profile() {
    let profile = profile("join-set", 2, async {
        let mut set = JoinSet::new();
        for _ in 0..6 {
            set.spawn(sleeper(Duration::from_millis(50)));
        }
        set.spawn_blocking(checksum);
        let outputs = set.join_all().await;
        assert_eq!(outputs.iter().sum::<u64>(), 6 + 500_500);

        let mut doomed = JoinSet::new();
        let first = doomed.spawn(forever());
        doomed.spawn(forever());
        doomed.spawn(forever());
        first.abort();
        let cancelled = doomed.join_next().await.unwrap().unwrap_err();
        assert!(cancelled.is_cancelled());
        doomed.shutdown().await;
        assert!(doomed.is_empty());
    });
    let sleepers = "[task] drop_in::sleeper";
    assert_eq!(profile.self_of(sleepers, "Tasks"), 6);
    let wall = profile.inclusive_of(sleepers, "WallNs");
    assert!(
        wall >= 6 * 50 * MS,
        "6 tasks sleeping 50 ms lived {wall} ns"
    );
    assert_eq!(profile.self_of("[blocking] drop_in::checksum", "Tasks"), 1);
    assert_eq!(
        profile.self_of("[task] drop_in::forever (cancelled)", "Tasks"),
        3
    );
}

async fn local_sleeper(shared: Rc<u64>) -> u64 {
    tokio::time::sleep(Duration::from_millis(20)).await;
    *shared
}

#[test]
fn local_tasks_are_in_the_profile() {
    let profile = profile("local-set", 2, async {
        let local = LocalSet::new();
        let shared = Rc::new(7);
        let queued = local.spawn_local(local_sleeper(shared.clone()));
        let total = local
            .run_until(async {
                let here = theseus::task::spawn_local(local_sleeper(shared.clone()));
                let mut set = JoinSet::new();
                set.spawn_local(local_sleeper(shared.clone()));
                here.await.unwrap() + set.join_next().await.unwrap().unwrap()
            })
            .await;
        assert_eq!(total + queued.await.unwrap(), 21);
    });
    let leaf = "[task] drop_in::local_sleeper";
    assert_eq!(profile.self_of(leaf, "Tasks"), 3);
    let wall = profile.inclusive_of(leaf, "WallNs");
    assert!(
        wall >= 3 * 20 * MS,
        "3 tasks sleeping 20 ms lived {wall} ns"
    );
}

#[test]
fn a_join_set_behaves_as_tokios() {
    with_deadline(Duration::from_secs(30), || {
        multi_thread(2).block_on(async {
            let mut set: JoinSet<u64> = (1..=4u64).map(|i| async move { i }).collect();
            assert_eq!(set.len(), 4);
            let mut total = 0;
            while let Some(done) = set.join_next().await {
                total += done.unwrap();
            }
            assert_eq!(total, 10);
            assert!(set.try_join_next().is_none());

            set.spawn_on(async { 5 }, &theseus::runtime::Handle::current());
            set.spawn_blocking_on(|| 6, &theseus::runtime::Handle::current());
            let mut outputs = set.join_all().await;
            outputs.sort();
            assert_eq!(outputs, [5, 6]);

            let mut set = JoinSet::new();
            set.spawn(async { panic!("a task gives up") });
            let joined = theseus::spawn(set.join_all()).await.unwrap_err();
            let payload = joined.into_panic();
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"a task gives up"));

            // Detached tasks run on; dropped sets abort theirs.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let mut set = JoinSet::new();
            set.spawn(async move { tx.send(8u64).unwrap() });
            set.detach_all();
            assert!(set.is_empty());
            drop(set);
            assert_eq!(rx.await.unwrap(), 8);
        })
    });
}

#[test]
fn abort_handles_block_in_place_and_try_current_are_tokios() {
    let error = theseus::runtime::Handle::try_current().unwrap_err();
    assert!(
        error.to_string().contains("no theseus runtime here"),
        "{error}"
    );
    with_deadline(Duration::from_secs(30), || {
        multi_thread(2).block_on(async {
            let handle = theseus::spawn(forever());
            let abort = handle.abort_handle();
            assert!(!abort.is_finished());
            abort.clone().abort();
            assert!(handle.await.unwrap_err().is_cancelled());
            assert!(abort.is_finished());

            let sum = theseus::spawn(async { theseus::task::block_in_place(checksum) });
            assert_eq!(sum.await.unwrap(), 500_500);
            assert!(theseus::runtime::Handle::try_current().is_ok());
        })
    });
}
