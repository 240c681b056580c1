//! loom models of a first-poll place (`brief`): its owner taking and
//! leaving it with tasks that go as soon as they leave, and readers
//! looking in meanwhile, in every interleaving loom finds.
//!
//! ```text
//! RUSTFLAGS="--cfg theseus_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p theseus-executor --release --lib loom_models
//! ```
//!
//! A task is a cell that its owner writes when it makes the task and when
//! the task goes (standing for its memory being reused): loom reports any
//! read of it by a reader that is not ordered between the two, which is
//! what `leave` returning too early, or `take` not publishing what came
//! before it, would allow.

use super::brief::BriefPlace;
use loom::cell::UnsafeCell;
use loom::sync::{Arc, Mutex};
use loom::thread;

/// A task in a place: its number while alive, 0 once gone.
struct Task(UnsafeCell<u32>);

impl Task {
    fn new(number: u32) -> Task {
        Task(UnsafeCell::new(number))
    }

    /// The task goes: its memory is written as if reused.
    fn end(&self) {
        self.0.with_mut(|n| {
            // SAFETY: loom checks that no reader's access overlaps this.
            unsafe { *n = 0 }
        });
    }

    fn read(&self) -> u32 {
        // SAFETY: loom checks that no write overlaps this read.
        self.0.with(|n| unsafe { *n })
    }
}

/// One reader's turn: the place under the lock the registry reads with.
fn read_once(place: &BriefPlace<Task>, turns: &Mutex<()>) -> Option<u32> {
    let _turn = turns.lock().unwrap();
    place.read(Task::read)
}

#[test]
fn loom_models_a_reader_never_sees_a_task_that_has_left() {
    loom::model(|| {
        let place = Arc::new(BriefPlace::<Task>::new());
        let turns = Arc::new(Mutex::new(()));
        let reader = {
            let (place, turns) = (place.clone(), turns.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    if let Some(number) = read_once(&place, &turns) {
                        assert!(number == 1 || number == 2, "a live task, whole");
                    }
                }
            })
        };
        for number in 1..=2 {
            let task = Task::new(number);
            // SAFETY: `task` stays where it is until `leave` returns.
            assert!(unsafe { place.take(&task) }, "the place was left free");
            place.leave();
            task.end();
        }
        reader.join().unwrap();
    });
}

#[test]
fn loom_models_a_task_moved_out_under_the_lock_is_read_once() {
    loom::model(|| {
        let place = Arc::new(BriefPlace::<Task>::new());
        let turns = Arc::new(Mutex::new(()));
        let task = Task::new(7);
        // SAFETY: `task` stays where it is until the place is emptied
        // below, readers kept out.
        assert!(unsafe { place.take(&task) });
        let reader = {
            let (place, turns) = (place.clone(), turns.clone());
            thread::spawn(move || read_once(&place, &turns))
        };
        {
            // As `LiveRegistry::replace`: out of the place under the lock.
            let _turn = turns.lock().unwrap();
            place.leave_unread();
        }
        task.end();
        let seen = reader.join().unwrap();
        assert!(seen.is_none() || seen == Some(7));
        // A place left is free for the next task.
        let next = Task::new(8);
        // SAFETY: `next` stays where it is until `leave` returns.
        assert!(unsafe { place.take(&next) });
        place.leave();
    });
}
