//! Where the profile goes, as a program run by a user sees it: the file at
//! `THESEUS_OUT` after a normal exit, a panic in `main` and Ctrl-C; clear
//! errors before the program runs for bad settings; nothing with `THESEUS=0`.

mod common;

use common::callgrind::parse;
use common::child;
use common::readers::{check_with_real_readers, check_with_real_readers_in};
use std::collections::BTreeSet;
use std::io::{BufRead, Read};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// The child side.
#[test]
fn child() {
    match child::program().as_deref() {
        None => {}
        Some("work") => programs::work::main(),
        Some("panics") => programs::panics::main(),
        Some("serve") => programs::serve::main(),
        Some("exits") => programs::exits::main(),
        Some("blocks") => programs::blocks::main(),
        Some("help") => programs::help::main(),
        Some("idle") => programs::idle::main(),
        Some("plain") => programs::plain::main(),
        Some(other) => panic!("unknown program {other}"),
    }
}

mod programs {
    use std::time::Duration;

    pub async fn nap() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    pub async fn wait_forever() {
        std::future::pending::<()>().await;
    }

    pub async fn wait_forever_started(started: tokio::sync::mpsc::Sender<()>) {
        let _ = started.send(()).await;
        std::future::pending::<()>().await;
    }

    pub async fn wait_forever_once_started(started: tokio::sync::oneshot::Sender<()>) {
        let _ = started.send(());
        std::future::pending::<()>().await;
    }

    pub mod work {
        #[theseus::main(worker_threads = 2)]
        pub async fn main() {
            for _ in 0..3 {
                theseus::spawn(super::nap()).await.unwrap();
            }
            println!("work done");
        }
    }

    pub mod panics {
        #[theseus::main(worker_threads = 2)]
        pub async fn main() {
            theseus::spawn(super::nap()).await.unwrap();
            theseus::spawn(super::wait_forever());
            panic!("main gives up");
        }
    }

    pub mod exits {
        /// A command-line tool's way out: `std::process::exit` with a
        /// status, from inside `main`, tasks still running.
        #[theseus::main(worker_threads = 2)]
        pub async fn main() {
            theseus::spawn(super::nap()).await.unwrap();
            // A task is live from its first poll: wait for that.
            let (started, running) = tokio::sync::oneshot::channel();
            theseus::spawn(super::wait_forever_once_started(started));
            running.await.unwrap();
            println!("exiting");
            std::process::exit(3);
        }
    }

    pub mod blocks {
        /// A task spawned as an async block: its name embeds the block's
        /// file and line.
        #[theseus::main(worker_threads = 2)]
        pub async fn main() {
            let block = theseus::spawn(async { super::nap().await });
            block.await.unwrap();
        }
    }

    /// A command-line tool asked for `--help`: its parser prints and exits
    /// before anything runs, as clap does.
    pub mod help {
        #[theseus::main]
        pub async fn main() {
            println!("usage: help [OPTIONS]");
            std::process::exit(0);
        }
    }

    /// A run that spawns nothing and returns.
    pub mod idle {
        #[theseus::main]
        pub async fn main() {
            super::nap().await;
            println!("idle done");
        }
    }

    /// `work` with the runtime's own worker count (`THESEUS_WORKERS`).
    pub mod plain {
        #[theseus::main]
        pub async fn main() {
            theseus::spawn(super::nap()).await.unwrap();
            println!("plain done");
        }
    }

    pub mod serve {
        #[theseus::main(worker_threads = 2)]
        pub async fn main() {
            theseus::spawn(super::nap()).await.unwrap();
            // A task is live from its first poll, which a loaded machine
            // may delay: "ready" once all four have begun to wait.
            let (started, mut running) = tokio::sync::mpsc::channel(4);
            for _ in 0..4 {
                theseus::spawn(super::wait_forever_started(started.clone()));
            }
            for _ in 0..4 {
                running.recv().await.unwrap();
            }
            println!("ready");
            super::wait_forever().await;
        }
    }
}

fn read_profile(path: &std::path::Path) -> common::callgrind::Profile {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no profile at {}: {e}", path.display()));
    let profile = parse(&text);
    assert_eq!(check_with_real_readers(path), profile.totals);
    profile
}

#[test]
fn the_profile_is_written_where_theseus_out_says() {
    let dir = child::scratch_dir("out");
    let out = dir.join("app.callgrind");
    let output = child::run("work", &[("THESEUS_OUT", out.to_str().unwrap())]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("work done"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Where it went, and the one command that opens it, on one line.
    let written = stderr
        .lines()
        .find(|line| line.starts_with("theseus: profile written to "))
        .unwrap_or_else(|| panic!("nothing says where the profile went: {stderr}"));
    assert!(written.contains(&out.display().to_string()), "{written}");
    let open = format!(
        "callgrind_annotate --inclusive=yes --threshold=100 {}",
        out.display()
    );
    assert!(written.ends_with(&open), "{written}");
    // Nothing but the profile is left in the directory: no temporary files.
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let profile = read_profile(&out);
    assert_eq!(
        profile.self_of("[task] profile_output::programs::nap", "Tasks"),
        3
    );
}

#[test]
fn the_default_output_is_callgrind_theseus_in_the_working_directory() {
    let dir = child::scratch_dir("default-out");
    let output = child::command("work", &[])
        .env_remove("THESEUS_OUT")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let out = dir.join("callgrind.theseus");
    let profile = parse(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(check_with_real_readers_in(&out, &dir), profile.totals);
    assert_eq!(
        profile.self_of("[task] profile_output::programs::nap", "Tasks"),
        3
    );
}

/// The files a callgrind profile names (`fl=`, `cfi=`), and its functions.
fn files_and_functions(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let named = |prefixes: &[&str]| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| prefixes.iter().find_map(|p| l.strip_prefix(p)))
            .filter_map(|v| v.split_once(") ").map(|(_, name)| name.to_string()))
            .collect()
    };
    (named(&["fl=", "cfi="]), named(&["fn=", "cfn="]))
}

#[test]
fn the_profile_names_the_same_files_in_any_working_directory() {
    let crate_root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let elsewhere = child::scratch_dir("elsewhere");
    let mut seen = Vec::new();
    for cwd in [crate_root.as_path(), elsewhere.as_ref()] {
        let dir = child::scratch_dir("any-cwd");
        let out = dir.join("app.callgrind");
        let output = child::command("blocks", &[("THESEUS_OUT", out.to_str().unwrap())])
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(check_with_real_readers_in(&out, cwd), parse(&text).totals);
        let (files, functions) = files_and_functions(&text);
        for file in &files {
            assert!(
                !file.starts_with('/') && !file.contains("registry"),
                "{file} depends on the machine or the working directory"
            );
        }
        assert!(
            files
                .iter()
                .any(|f| f.starts_with("tokio-") && f.ends_with("/src/time/sleep.rs")),
            "{files:?}"
        );
        assert!(files.contains("tests/profile_output.rs"), "{files:?}");
        assert!(
            functions
                .iter()
                .any(|f| f.starts_with("[task] async block in ")
                    && f.contains(" (tests/profile_output.rs:")),
            "{functions:?}"
        );
        seen.push((files, functions));
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn a_panic_in_main_still_writes_the_profile() {
    let dir = child::scratch_dir("panic");
    let out = dir.join("panic.callgrind");
    let output = child::run("panics", &[("THESEUS_OUT", out.to_str().unwrap())]);
    assert_eq!(output.status.code(), Some(101), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("main gives up"));
    let profile = read_profile(&out);
    assert_eq!(
        profile.self_of("[task] profile_output::programs::nap", "Tasks"),
        1
    );
    // The task left waiting was cancelled when main ended.
    assert_eq!(
        profile.self_of(
            "[task] profile_output::programs::wait_forever (cancelled)",
            "Tasks"
        ),
        1
    );
}

#[test]
fn std_process_exit_still_writes_the_profile() {
    let dir = child::scratch_dir("exit");
    let out = dir.join("exit.callgrind");
    let output = child::run("exits", &[("THESEUS_OUT", out.to_str().unwrap())]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("exiting"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("theseus: profile written to {}", out.display())),
        "{stderr}"
    );
    let profile = read_profile(&out);
    assert_eq!(
        profile.self_of("[task] profile_output::programs::nap", "Tasks"),
        1
    );
    // Still running when the process exited: counted up to that moment.
    assert_eq!(
        profile.self_of(
            "[task] profile_output::programs::wait_forever_once_started (unfinished)",
            "Tasks"
        ),
        1
    );
}

#[test]
fn ctrl_c_writes_a_complete_profile_and_ends_the_program() {
    let dir = child::scratch_dir("sigint");
    let out = dir.join("server.callgrind");
    let mut server = child::spawn("serve", &[("THESEUS_OUT", out.to_str().unwrap())]);
    let mut stdout = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the server exited before it was ready"
        );
    }
    std::thread::sleep(Duration::from_millis(50));
    let kill = std::process::Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            server.kill().unwrap();
            panic!("the server did not end after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // It ends as it would have without theseus: killed by SIGINT.
    assert_eq!(status.signal(), Some(libc_sigint()), "{status:?}");
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains(&format!("theseus: profile written to {}", out.display())),
        "nothing says where the profile went after SIGINT: {stderr}"
    );
    let profile = read_profile(&out);
    assert_eq!(
        profile.self_of("[task] profile_output::programs::nap", "Tasks"),
        1
    );
    let waiting = profile.self_of(
        "[task] profile_output::programs::wait_forever_started (unfinished)",
        "Tasks",
    );
    assert_eq!(waiting, 4);
    let wall = profile.self_of(
        "[task] profile_output::programs::wait_forever_started (unfinished)",
        "WallNs",
    );
    assert!(
        wall >= 4 * 50_000_000,
        "4 tasks alive at least 50 ms each: {wall}"
    );
    // main, still waiting (at a future that registers no waker, so on its
    // leaf), is there as it was so far.
    let main = "[main] profile_output::programs::serve::main (unfinished)";
    assert_eq!(profile.self_of(main, "Tasks"), 0);
    let waited = profile.self_of(main, "IdleNs");
    assert!(waited >= 50_000_000, "main waited at least 50 ms: {waited}");
}

fn libc_sigint() -> i32 {
    2
}

#[test]
fn an_unwritable_output_path_is_reported_before_the_program_runs() {
    let output = child::run(
        "work",
        &[("THESEUS_OUT", "/nonexistent-theseus-dir/profile.callgrind")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("theseus: THESEUS_OUT=") && !stderr.contains("theseus: theseus:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("/nonexistent-theseus-dir/profile.callgrind"),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("work done"),
        "the program ran anyway"
    );
}

#[test]
fn bad_settings_name_the_variable_and_what_is_accepted() {
    let cases = [
        (
            "THESEUS_STACKS",
            "everything",
            ["default", "full", "location"],
        ),
        ("THESEUS", "yes", ["0", "1", "profiling"]),
        ("THESEUS_AWAITS", "sometimes", ["default", "full", "off"]),
    ];
    for (variable, value, accepted) in cases {
        let output = child::run("work", &[(variable, value)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(variable) && stderr.contains(value),
            "{stderr}"
        );
        for word in accepted {
            assert!(
                stderr.contains(word),
                "{variable}: {word} missing from {stderr}"
            );
        }
        assert!(!String::from_utf8_lossy(&output.stdout).contains("work done"));
    }
}

#[test]
fn theseus_0_turns_profiling_off() {
    let dir = child::scratch_dir("off");
    let out = dir.join("off.callgrind");
    let output = child::run(
        "work",
        &[("THESEUS", "0"), ("THESEUS_OUT", out.to_str().unwrap())],
    );
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("work done"));
    assert!(!out.exists(), "a profile was written with THESEUS=0");
}

#[test]
fn every_awaits_mode_writes_a_readable_profile() {
    for mode in ["default", "full", "off"] {
        let dir = child::scratch_dir(&format!("awaits-{mode}"));
        let out = dir.join("p.callgrind");
        let output = child::run(
            "work",
            &[
                ("THESEUS_AWAITS", mode),
                ("THESEUS_OUT", out.to_str().unwrap()),
            ],
        );
        assert!(output.status.success(), "{mode}: {output:?}");
        let profile = read_profile(&out);
        let leaf = "[task] profile_output::programs::nap";
        assert_eq!(profile.self_of(leaf, "Tasks"), 3, "{mode}");
        let awaits = profile.functions("[await]");
        assert_eq!(awaits.is_empty(), mode == "off", "{mode}: {awaits:?}");
    }
}

#[test]
fn every_stacks_mode_writes_a_readable_profile() {
    for mode in ["default", "full", "location"] {
        let dir = child::scratch_dir(&format!("stacks-{mode}"));
        let out = dir.join("p.callgrind");
        let output = child::run(
            "work",
            &[
                ("THESEUS_STACKS", mode),
                ("THESEUS_OUT", out.to_str().unwrap()),
            ],
        );
        assert!(output.status.success(), "{mode}: {output:?}");
        let profile = read_profile(&out);
        assert_eq!(
            profile.self_of("[task] profile_output::programs::nap", "Tasks"),
            3,
            "{mode}"
        );
    }
}

const OLDER_PROFILE: &str = "an older profile, to be kept\n";

#[test]
fn a_run_that_spawned_nothing_writes_nothing_and_keeps_what_was_there() {
    for program in ["help", "idle"] {
        let dir = child::scratch_dir(&format!("nothing-{program}"));
        let out = dir.join("app.callgrind");
        let output = child::run(program, &[("THESEUS_OUT", out.to_str().unwrap())]);
        assert!(output.status.success(), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("profile written"), "{program}: {stderr}");
        assert!(
            stderr.contains("no profile was written"),
            "{program}: {stderr}"
        );
        assert!(!out.exists(), "{program} left a profile of nothing");

        std::fs::write(&out, OLDER_PROFILE).unwrap();
        let output = child::run(program, &[("THESEUS_OUT", out.to_str().unwrap())]);
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            OLDER_PROFILE,
            "{program}"
        );
        let entries = std::fs::read_dir(&*dir).unwrap().count();
        assert_eq!(entries, 1, "{program} left files beside the profile");
    }
}

#[test]
fn zero_workers_stop_the_program_and_keep_the_profile_there() {
    let dir = child::scratch_dir("zero-workers");
    let out = dir.join("app.callgrind");
    std::fs::write(&out, OLDER_PROFILE).unwrap();
    let output = child::run(
        "plain",
        &[
            ("THESEUS_OUT", out.to_str().unwrap()),
            ("THESEUS_WORKERS", "0"),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("THESEUS_WORKERS=\"0\""), "{stderr}");
    assert!(stderr.contains("1 to 1024"), "{stderr}");
    assert!(!stderr.contains("profile written"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("plain done"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), OLDER_PROFILE);
}

#[test]
fn an_output_path_ending_in_a_slash_is_refused_at_start_up() {
    let dir = child::scratch_dir("slash");
    for bad in [
        dir.join("missing/"),
        dir.join("missing/."),
        dir.to_path_buf().join(""),
    ] {
        let bad = format!("{}/", bad.display().to_string().trim_end_matches('/'));
        let output = child::run("work", &[("THESEUS_OUT", &bad)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.starts_with("theseus: THESEUS_OUT="), "{stderr}");
        assert!(stderr.contains("names a directory"), "{stderr}");
        assert!(stderr.contains("callgrind.theseus"), "{stderr}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains("work done"));
    }
    let dot = format!("{}/.", dir.display());
    let output = child::run("work", &[("THESEUS_OUT", &dot)]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(
        std::fs::read_dir(&*dir).unwrap().count(),
        0,
        "nothing written there"
    );
}

#[test]
fn a_misspelled_variable_gets_a_warning_naming_the_known_ones() {
    let dir = child::scratch_dir("misspelled");
    let out = dir.join("app.callgrind");
    let output = child::run(
        "work",
        &[
            ("THESEUS_OUT", out.to_str().unwrap()),
            ("THESEUS_OUTPUT", "elsewhere.callgrind"),
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let warning = stderr
        .lines()
        .find(|line| line.contains("THESEUS_OUTPUT"))
        .unwrap_or_else(|| panic!("no warning: {stderr}"));
    assert!(warning.starts_with("theseus: "), "{warning}");
    assert!(warning.contains("did you mean THESEUS_OUT?"), "{warning}");
    for known in ["THESEUS_FORMAT", "THESEUS_STACKS", "THESEUS_WORKERS"] {
        assert!(warning.contains(known), "{warning} lacks {known}");
    }
    assert!(out.exists(), "the warning stopped the program");
}

/// A SIGTERM that arrives while the final profile is being written (here:
/// while the write waits for a reader of the FIFO it goes to, which never
/// comes) still ends the program by SIGTERM once the write is given up,
/// and the profile is written once, not again for the signal.
#[test]
fn sigterm_during_the_final_write_ends_the_program_by_sigterm() {
    let dir = child::scratch_dir("sigterm-mid-write");
    let fifo = dir.join("profile.fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path, a plain mode.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    // The abandoned write goes to the fallback in the temporary directory.
    let mut program = child::spawn(
        "work",
        &[
            ("THESEUS_OUT", fifo.to_str().unwrap()),
            ("TMPDIR", dir.to_str().unwrap()),
        ],
    );
    let mut stdout = std::io::BufReader::new(program.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("work done") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "ended early");
    }
    // `main` has returned: the final write is waiting for a reader.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: a signal to our own child.
    assert_eq!(
        unsafe { libc::kill(program.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = program.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            program.kill().unwrap();
            panic!("the program did not end after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    program
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "{status:?}: the SIGTERM was swallowed\n{stderr}"
    );
    let writes = stderr.matches("theseus: profile written to").count();
    assert_eq!(writes, 1, "{stderr}");
}
