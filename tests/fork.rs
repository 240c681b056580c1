//! fork() without exec in a profiled program: the child shares nothing of
//! the parent's signal handling, sampler or interval ticker, and writes no
//! profile; the parent carries on and writes its own.

mod common;

use common::child;
use std::time::{Duration, Instant};

/// The child side.
#[test]
fn child() {
    match child::program().as_deref() {
        None => {}
        Some("forks") => forks(),
        Some(other) => panic!("unknown program {other}"),
    }
}

/// A profiled program (signals, sampler and ticker all on) that forks
/// twice: a child that sleeps until a signal ends it, and one that ends
/// the session it inherited, as a child returning from `main` does. Prints
/// how each ended, then carries on and writes its profile.
fn forks() {
    let mut session = theseus::profiler::Session::from_env().unwrap();
    assert!(session.is_some(), "profiling is on");
    let out = session.as_ref().unwrap().path().to_path_buf();
    let runtime = common::multi_thread(2);
    let work = || {
        runtime.block_on(async {
            for _ in 0..100 {
                theseus::spawn(tokio::task::yield_now()).await.unwrap();
            }
        })
    };
    work();

    // SAFETY: the child only sleeps and exits, both async-signal-safe.
    let sleeper = unsafe { libc::fork() };
    if sleeper == 0 {
        // SAFETY: as above. A signal that does not end the process ends the
        // sleep early, and the child reports it with its exit status.
        unsafe {
            libc::sleep(5);
            libc::_exit(42);
        }
    }
    // SAFETY: a signal to the child just made.
    unsafe { libc::kill(sleeper, libc::SIGTERM) };
    println!("sleeper: {}", ended(sleeper));

    // SAFETY: the child runs the session's finish, which in a child only
    // lets go of what it inherited, and exits without running the parent's
    // exit handlers.
    let finisher = unsafe { libc::fork() };
    if finisher == 0 {
        let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(session.take());
        }));
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(if finished.is_ok() { 0 } else { 1 }) };
    }
    println!("finisher: {}", ended(finisher));
    println!("written by the children: {}", out.exists());

    work();
    drop(runtime);
    session.take().unwrap().finish();
}

/// How the child `pid` ended: `exit N`, `signal N`, or `hung` (killed
/// after 20 s).
fn ended(pid: libc::pid_t) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child, status into a local.
        let waited = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if waited == pid {
            return if libc::WIFSIGNALED(status) {
                format!("signal {}", libc::WTERMSIG(status))
            } else {
                format!("exit {}", libc::WEXITSTATUS(status))
            };
        }
        if Instant::now() > deadline {
            // SAFETY: our own child, then reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return "hung".to_string();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_forked_child_shares_nothing_and_the_parent_writes_its_profile() {
    let dir = child::scratch_dir("fork");
    let out = dir.join("forks.callgrind");
    let output = child::run(
        "forks",
        &[
            ("THESEUS_OUT", out.to_str().unwrap()),
            ("THESEUS_SAMPLE_HZ", "997"),
            ("THESEUS_INTERVAL", "60m"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = |what: &str| stdout.lines().any(|line| line.ends_with(what));
    // The child's SIGTERM was its own: it died of it.
    assert!(
        said(&format!("sleeper: signal {}", libc::SIGTERM)),
        "{stdout}\n{stderr}"
    );
    // Ending the inherited session joins no thread the child lacks.
    assert!(said("finisher: exit 0"), "{stdout}\n{stderr}");
    assert!(said("written by the children: false"), "{stdout}\n{stderr}");
    // The parent carried on, ended normally and wrote its profile.
    assert!(
        output.status.success(),
        "{:?}\n{stdout}\n{stderr}",
        output.status
    );
    let profile = common::callgrind::parse(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(profile.totals[profile.event("Tasks")], 200, "{stderr}");
}
