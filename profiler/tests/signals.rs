//! SIGINT/SIGTERM: the profile is written, then the process dies of the
//! signal as it would have, or goes on if it handles the signal itself.
//!
//! Each case runs this test binary again as a child process (the
//! `child_process` test, which does nothing unless `THESEUS_SIGNAL_CHILD` is
//! set) and signals it.

#![cfg(unix)]

mod common;

use common::{check_with_readers, Scratch};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use theseus_profiler::{Config, Session};

/// What the child prints once its handlers are in place.
const READY: &str = "THESEUS-CHILD-READY";

/// How long a child may take before the test kills it and fails.
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

fn ready() {
    let mut out = std::io::stdout();
    // On a line of its own: libtest has already printed `test child_process ... `.
    writeln!(out, "\n{READY}").unwrap();
    out.flush().unwrap();
}

fn wait_for(path: &Path, deadline: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// The child side. Modes: `plain` (no handler of its own), `tokio` (the
/// program awaits the signal with tokio::signal) and `ignoring` (started
/// with SIGINT ignored, as a background job of a script is).
#[test]
fn child_process() {
    let Ok(mode) = std::env::var("THESEUS_SIGNAL_CHILD") else {
        return;
    };
    let out = PathBuf::from(std::env::var_os("THESEUS_TEST_OUT").unwrap());
    let config = Config {
        out: out.clone(),
        ..Config::default()
    };
    let session = Session::start(&config).unwrap().unwrap();
    common::some_records();
    match mode.as_str() {
        "plain" => {
            ready();
            std::thread::sleep(Duration::from_secs(30));
            println!("still alive");
            std::process::exit(3);
        }
        "ignoring" => {
            ready();
            // The parent sends SIGINT as soon as it reads the line above.
            std::thread::sleep(Duration::from_secs(1));
            assert!(!out.exists(), "an ignored SIGINT wrote a profile");
            println!("still alive, no profile");
            session.finish();
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let mut term = signal(SignalKind::terminate()).unwrap();
                ready();
                term.recv().await;
            });
            assert!(
                wait_for(&out, Duration::from_secs(10)),
                "no snapshot on SIGTERM"
            );
            println!("snapshot seen");
            common::some_records();
            session.finish();
            println!("finished normally");
        }
        other => panic!("unknown mode {other}"),
    }
}

/// Runs the child in `mode`, sends `sig` once it is ready, and returns its
/// exit status, its standard output, the profile path and the directory it
/// is in (removed when dropped).
fn run_child(mode: &str, sig: libc::c_int) -> (std::process::ExitStatus, String, PathBuf, Scratch) {
    let dir = Scratch::new(&format!("signal-{mode}-{sig}"));
    let out = dir.join("profile.callgrind");
    let mut command = Command::new(std::env::current_exe().unwrap());
    // The child's SIGINT is ignored in `ignoring` mode, and otherwise at its
    // default, as from a terminal, whatever this test inherited: run as a
    // background job of a script, it inherits SIGINT ignored, and theseus
    // rightly keeps an inherited ignored SIGINT ignored.
    let sigint = if mode == "ignoring" {
        libc::SIG_IGN
    } else {
        libc::SIG_DFL
    };
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec only async-signal-safe calls are
        // allowed, and `signal` is one; it sets what the child inherits.
        unsafe {
            command.pre_exec(move || {
                libc::signal(libc::SIGINT, sigint);
                Ok(())
            });
        }
    }
    let mut child = command
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("THESEUS_SIGNAL_CHILD", mode)
        .env("THESEUS_TEST_OUT", &out)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // A child that hangs is killed, so the test fails instead of hanging.
    let pid = child.id() as libc::pid_t;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(CHILD_DEADLINE).is_err() {
            // SAFETY: the child has not been reaped (the test waits for this
            // thread before `wait`), so the pid is still ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let mut ready = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line == READY {
            ready = true;
            break;
        }
    }
    if ready {
        // SAFETY: signalling our own child process, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        for line in lines {
            seen.push_str(&line.unwrap());
            seen.push('\n');
        }
    }
    // Stdout closed: the child has exited (or closed it); stop the watchdog.
    let _ = done_tx.send(());
    watchdog.join().unwrap();
    assert!(ready, "child never got ready: {seen}");
    let status = child.wait().unwrap();
    (status, seen, out, dir)
}

#[test]
fn sigterm_without_a_handler_writes_the_profile_then_dies_of_it() {
    let (status, stdout, out, _dir) = run_child("plain", libc::SIGTERM);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?} {stdout}");
    assert!(!stdout.contains("still alive"));
    assert_eq!(check_with_readers(&out).totals[6], 2);
}

#[test]
fn sigint_without_a_handler_writes_the_profile_then_dies_of_it() {
    let (status, stdout, out, _dir) = run_child("plain", libc::SIGINT);
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?} {stdout}");
    assert_eq!(check_with_readers(&out).totals[6], 2);
}

#[test]
fn a_program_handling_sigterm_gets_a_snapshot_and_goes_on() {
    let (status, stdout, out, _dir) = run_child("tokio", libc::SIGTERM);
    assert!(status.success(), "{status:?} {stdout}");
    assert!(stdout.contains("snapshot seen"), "{stdout}");
    assert!(stdout.contains("finished normally"), "{stdout}");
    // The final profile replaced the snapshot.
    assert_eq!(check_with_readers(&out).totals[6], 4);
}

/// A process that inherited SIGINT as ignored (a background job of a
/// non-interactive shell) keeps it ignored: neither killed nor profiled by
/// it. Its profile is still written when it ends.
#[test]
fn an_inherited_ignored_sigint_stays_ignored() {
    let (status, stdout, out, _dir) = run_child("ignoring", libc::SIGINT);
    assert!(status.success(), "{status:?} {stdout}");
    assert!(stdout.contains("still alive, no profile"), "{stdout}");
    assert_eq!(check_with_readers(&out).totals[6], 2);
}
