//! theseus's CPU sampler on its own: samples of a thread inside a poll land
//! on the running stack with the frames below the boundary, threads get
//! their timers on their first poll and lose them when they exit, and
//! stopping gives every signal back the disposition it had.
#![cfg(target_os = "linux")]

use std::hint::black_box;
use std::io;
use std::panic::Location;
use std::sync::{Mutex, MutexGuard};
use theseus_profiler::{enter_poll, spawn_stack, Sampler, Tracer};

/// One sampler per process: tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0);
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Burns `ns` of this thread's CPU time; returns how much it burned.
#[inline(never)]
fn burn_cpu(ns: u64) -> u64 {
    let start = thread_cpu_ns();
    let mut x = 1u64;
    loop {
        for _ in 0..10_000 {
            x = black_box(x.rotate_left(5) ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(3);
        }
        let spent = thread_cpu_ns() - start;
        if spent >= ns {
            black_box(x);
            return spent;
        }
    }
}

/// What a task's poll would call.
#[inline(never)]
fn task_body(ns: u64) -> u64 {
    black_box(burn_cpu(ns))
}

/// The handler of every real-time signal, as `sigaction` reports it.
fn real_time_dispositions() -> Vec<libc::sighandler_t> {
    (libc::SIGRTMIN()..=libc::SIGRTMAX())
        .map(|signal| {
            // SAFETY: a zeroed sigaction is valid to overwrite; null `act`
            // only queries.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut old), 0);
                old.sa_sigaction
            }
        })
        .collect()
}

/// The number of POSIX timers of this process, where the kernel lists them.
fn posix_timers() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/timers").ok()?;
    Some(text.lines().filter(|l| l.starts_with("ID:")).count())
}

#[test]
fn a_polling_threads_cpu_time_lands_on_the_running_stack_with_its_frames() {
    let _serial = serial();
    let tracer = Tracer::new();
    tracer.install();
    let stack = spawn_stack(Location::caller(), "sampler_test::Burner");
    let timers_before = posix_timers();
    let sampler = Sampler::start(997).unwrap();

    // A thread that burns CPU outside any poll gets no timer at all.
    std::thread::spawn(|| burn_cpu(20_000_000)).join().unwrap();
    assert_eq!(
        posix_timers(),
        timers_before,
        "a thread that never polled got a timer"
    );

    let (spent, timers_during) = std::thread::spawn(move || {
        let marker = 0u8;
        let boundary = black_box(&marker) as *const u8 as usize;
        // SAFETY: `marker` is a local of this frame, which outlives the scope.
        let _poll = unsafe { enter_poll(stack, boundary) };
        (task_body(200_000_000), posix_timers())
    })
    .join()
    .unwrap();
    if let (Some(before), Some(during)) = (timers_before, timers_during) {
        assert_eq!(during, before + 1, "the polling thread has one timer");
        // The thread exited: its timer is gone with it.
        assert_eq!(posix_timers(), Some(before));
    }
    sampler.stop();
    let cpu = tracer.cpu_profile();
    tracer.uninstall();

    let leaf = "[task] sampler_test::Burner";
    let on_task: u64 = cpu
        .iter()
        .filter(|s| s.frames.iter().any(|f| f.function == leaf))
        .map(|s| s.cpu_ns)
        .sum();
    let error = (on_task as f64 - spent as f64).abs() / spent as f64;
    assert!(
        error <= 0.2,
        "burned {spent} ns, sampled {on_task} ns on {leaf}: {cpu:#?}"
    );
    // Most of it below the task node, in the burning function, called from
    // the poll's body.
    let in_burn: u64 = cpu
        .iter()
        .filter(|s| {
            let names: Vec<&str> = s.frames.iter().map(|f| f.function.as_str()).collect();
            let at = |needle: &str| names.iter().position(|n| n.ends_with(needle));
            match (at(leaf), at("task_body"), at("burn_cpu")) {
                (Some(l), Some(b), Some(c)) => l < b && b < c && c == names.len() - 1,
                _ => false,
            }
        })
        .map(|s| s.cpu_ns)
        .sum();
    assert!(
        in_burn >= on_task * 8 / 10,
        "only {in_burn} of {on_task} ns in burn_cpu below the task: {cpu:#?}"
    );
    // And the profile carries it as the `CpuNs` event.
    let mut text = Vec::new();
    tracer.write_data(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("events: WallNs BusyNs SchedNs IdleNs Polls Wakes Tasks CpuNs\n"));
}

#[test]
fn stopping_gives_every_signal_back_and_one_sampler_runs_at_a_time() {
    let _serial = serial();
    // A handler someone else set on the highest real-time signal stays.
    extern "C" fn theirs(_: libc::c_int) {}
    // SAFETY: a zeroed sigaction with a valid one-argument handler and an
    // empty mask is valid.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = theirs as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGRTMAX(), &action, std::ptr::null_mut()),
            0
        );
    }
    let before = real_time_dispositions();
    let sampler = Sampler::start(99).unwrap();
    assert_eq!(sampler.hz(), 99);
    assert_eq!(sampler.period().as_nanos(), 1_000_000_000 / 99);
    let during = real_time_dispositions();
    let changed: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != during[i])
        .collect();
    assert_eq!(changed.len(), 1, "exactly one signal is taken");
    assert_ne!(changed[0], before.len() - 1, "a signal in use was taken");

    let again = Sampler::start(99).unwrap_err();
    assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
    assert!(again.to_string().contains("already running"), "{again}");

    drop(sampler);
    assert_eq!(real_time_dispositions(), before);
    // And it starts again after stopping.
    Sampler::start(99).unwrap().stop();
    assert_eq!(real_time_dispositions(), before);
}

#[test]
fn rates_out_of_range_say_what_is_accepted() {
    for hz in [0, Sampler::MAX_HZ + 1] {
        let e = Sampler::start(hz).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let msg = e.to_string();
        assert!(
            msg.contains(&hz.to_string()) && msg.contains("1 to 10000"),
            "{msg}"
        );
    }
}
