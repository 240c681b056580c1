//! Whole-program tests: a test binary re-runs itself as a child process whose
//! `main` is one of its `#[theseus::main]` programs, chosen by an
//! environment variable, and checks what the process did.

use std::process::{Child, Command, Output, Stdio};

// Not `THESEUS_*`: theseus warns about names it does not read.
const PROGRAM_VAR: &str = "TEST_CHILD_PROGRAM";

/// In the child: the program this process is to run, if any.
pub fn program() -> Option<String> {
    std::env::var(PROGRAM_VAR).ok()
}

/// A command that runs `program` in a child copy of this test binary. The
/// binary must have a test named `child` that dispatches on [`program`].
pub fn command(program: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(PROGRAM_VAR, program)
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    // SIGINT at its default, as from a terminal, whatever the tests
    // inherited: run as a background job of a script they inherit it
    // ignored, which theseus rightly keeps ignored, and a Ctrl-C test would
    // wait for a death that never comes.
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec only async-signal-safe calls are
        // allowed, and signal(2) is one; it sets what the child inherits.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
    }
    command
}

pub fn run(program: &str, env: &[(&str, &str)]) -> Output {
    command(program, env).output().unwrap()
}

pub fn spawn(program: &str, env: &[(&str, &str)]) -> Child {
    command(program, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A fresh, empty directory for one test's files, removed when dropped.
pub fn scratch_dir(test: &str) -> super::Scratch {
    super::Scratch::new(test)
}
