//! Ground truth for `theseus::Executor`: a program of the smol family
//! (easy-parallel runner threads, async-io timers, TCP echo over async-net,
//! tasks spawned from inside tasks), moved over by its `use` line alone,
//! writes its profile when the process exits (from `main`, by `exit`, or on
//! SIGTERM), and the profile, read by the
//! real readers, matches what the program did. Times within 5%.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::callgrind::{parse, Profile};
use common::child;
use common::ground::{assert_lengthened, assert_within};
use common::readers::{annotate_inclusive, check_with_real_readers};
use std::path::Path;

const MS: u64 = 1_000_000;

#[test]
fn child() {
    match child::program().as_deref() {
        None => {}
        Some("echo") => program::main(false),
        Some("echo-exits") => {
            program::main(false);
            std::process::exit(0)
        }
        // Serves on after its work, until a signal ends it.
        Some("echo-stays") => program::main(true),
        Some("spawn-first") => program::spawn_first(),
        Some(other) => panic!("unknown program {other}"),
    }
}

/// The program, as it would be written for async-executor but for the
/// `use` line.
mod program {
    use async_io::Timer;
    use async_net::{TcpListener, TcpStream};
    use easy_parallel::Parallel;
    use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
    use std::time::{Duration, Instant};
    use theseus::Executor;

    pub const CONNECTIONS: usize = 3;

    static EX: Executor<'static> = Executor::new();

    pub fn main(stay: bool) {
        let (signal, shutdown) = async_channel::unbounded::<()>();
        Parallel::new()
            .each(0..2, |_| async_io::block_on(EX.run(shutdown.recv())))
            .finish(|| {
                async_io::block_on(EX.run(async {
                    work().await;
                    println!("work done");
                    if stay {
                        future::pending::<()>().await;
                    }
                    drop(signal);
                }))
            });
    }

    pub const SPAWNED_FIRST: u64 = 5;

    /// Spawns before anything else uses the executor, from a thread that
    /// runs no task, then runs the tasks.
    pub fn spawn_first() {
        let tasks: Vec<_> = (0..SPAWNED_FIRST)
            .map(|i| EX.spawn(spawned_first(i)))
            .collect();
        // An async block handed to a helper that spawns it.
        let block = spawn_on_ex(async { 7 });
        println!("block_line={}", line!() - 1);
        let sum = future::block_on(EX.run(async {
            let mut sum = block.await;
            for task in tasks {
                sum += task.await;
            }
            sum
        }));
        assert_eq!(sum, 7 + SPAWNED_FIRST * (SPAWNED_FIRST - 1) / 2);
    }

    /// A helper that spawns what it is given, as programs wrap `spawn`.
    #[inline(never)]
    fn spawn_on_ex<T: Send + 'static>(
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> theseus::Task<T> {
        EX.spawn(future)
    }

    async fn spawned_first(i: u64) -> u64 {
        future::yield_now().await;
        i
    }

    async fn work() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = EX.spawn(accept_loop(listener));
        let napped = EX.spawn(napper());
        let spun = EX.spawn(burner());
        let client = EX.spawn(client(address));
        client.await;
        server.await;
        // What the program measured itself, for the test to hold the
        // profile against.
        println!("napped_ns={}", napped.await.as_nanos());
        println!("spun_ns={}", spun.await.as_nanos());
    }

    async fn accept_loop(listener: TcpListener) {
        let mut handlers = Vec::new();
        for _ in 0..CONNECTIONS {
            let (stream, _) = listener.accept().await.unwrap();
            handlers.push(EX.spawn(handler(stream)));
        }
        for handler in handlers {
            handler.await;
        }
    }

    async fn handler(mut stream: TcpStream) {
        let mut buffer = [0u8; 64];
        loop {
            let read = stream.read(&mut buffer).await.unwrap();
            if read == 0 {
                return;
            }
            stream.write_all(&buffer[..read]).await.unwrap();
        }
    }

    async fn client(address: std::net::SocketAddr) {
        for round in 0..CONNECTIONS {
            let mut stream = TcpStream::connect(address).await.unwrap();
            let message = format!("ping {round}");
            stream.write_all(message.as_bytes()).await.unwrap();
            let mut echoed = vec![0u8; message.len()];
            stream.read_exact(&mut echoed).await.unwrap();
            assert_eq!(echoed, message.as_bytes());
        }
    }

    async fn napper() -> Duration {
        let start = Instant::now();
        Timer::after(Duration::from_millis(100)).await;
        start.elapsed()
    }

    /// Burns 100 ms of CPU in one poll; returns how long it burned.
    async fn burner() -> Duration {
        future::yield_now().await;
        let start = Instant::now();
        let mut x = 1u64;
        while start.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        start.elapsed()
    }
}

/// Runs `program` in a child with its profile going to a scratch file;
/// returns the profile, what the child printed, and the file's directory.
fn run_child(program: &str, scratch: &str) -> (Profile, String, common::Scratch) {
    let dir = child::scratch_dir(scratch);
    let out = dir.join("echo.callgrind");
    let output = child::run(program, &[("THESEUS_OUT", out.to_str().unwrap())]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the program failed: {stderr}");
    assert!(
        stderr.contains(&format!("profile written to {}", out.display())),
        "no word of the profile at exit: {stderr}"
    );
    let profile = parse(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(
        check_with_real_readers(&out),
        profile.totals,
        "callgrind_annotate disagrees on totals"
    );
    (profile, stdout, dir)
}

/// A number the child printed as `name=value`.
fn printed(stdout: &str, name: &str) -> u64 {
    stdout
        .lines()
        // The test harness may print its own words before it on the line.
        .find_map(|line| Some(line.split_once(&format!("{name}="))?.1))
        .unwrap_or_else(|| panic!("the program printed no {name}: {stdout}"))
        .parse()
        .unwrap()
}

const ACCEPT: &str = "smol_program::program::accept_loop";
const HANDLER: &str = "[task] smol_program::program::handler";
const NAPPER: &str = "smol_program::program::napper";
const BURNER: &str = "[task] smol_program::program::burner";
const TIMER: &str = "[await] async_io::Timer";

fn assert_tasks(profile: &Profile) {
    let tasks = [
        ("[task] smol_program::program::accept_loop", 1),
        (HANDLER, program::CONNECTIONS as u64),
        ("[task] smol_program::program::client", 1),
        ("[task] smol_program::program::napper", 1),
        (BURNER, 1),
    ];
    for (leaf, count) in tasks {
        assert_eq!(profile.self_of(leaf, "Tasks"), count, "tasks of {leaf}");
    }
    // A handler's logical stack goes through the accept loop that spawned it.
    assert!(
        !profile.edges(ACCEPT, HANDLER).is_empty(),
        "no {ACCEPT} -> {HANDLER}: {:#?}",
        profile.calls.keys()
    );
}

fn assert_times(profile: &Profile, stdout: &str, path: &Path) {
    let spun = printed(stdout, "spun_ns");
    let busy = profile.self_of(BURNER, "BusyNs");
    assert!(busy >= 100 * MS, "BusyNs of a 100 ms burn: {busy}");
    assert_within("BusyNs of the burner", busy, spun, 0.05);
    // The timer fires no earlier than asked, and as late as a loaded
    // machine makes it; the task's own measure also holds the time from
    // the wake to its next poll, so the wait is at most that.
    // The wait starts as the poll that set the timer ends: a loaded machine
    // that preempts that poll (the first one also starts async-io's
    // reactor) moves time from the wait to the poll (94.5 ms at the timer
    // was seen in CI), but the two never hold less than the timer's 100 ms.
    let napped = printed(stdout, "napped_ns");
    let waited = profile.call_cost(NAPPER, TIMER, "IdleNs");
    let polled = profile.self_of("[task] smol_program::program::napper", "BusyNs");
    assert_lengthened(
        "IdleNs at the async-io timer and the napper's own BusyNs",
        waited + polled,
        100 * MS,
        0.05,
    );
    assert!(
        waited <= napped + napped / 100,
        "waited {waited} ns at the timer, longer than the {napped} ns the task measured"
    );
    // callgrind_annotate books the same wait under the timer.
    let inclusive = annotate_inclusive(path);
    let timer = inclusive
        .iter()
        .find(|(function, _)| function.starts_with(TIMER))
        .unwrap_or_else(|| panic!("callgrind_annotate has no {TIMER}: {inclusive:#?}"));
    assert!(*timer.1 >= waited, "{timer:?} below {waited}");
}

#[test]
fn a_smol_program_writes_its_profile_when_it_returns_from_main() {
    let (profile, stdout, dir) = run_child("echo", "smol-echo");
    assert_tasks(&profile);
    assert_times(&profile, &stdout, &dir.join("echo.callgrind"));
}

#[test]
fn a_smol_program_writes_its_profile_when_it_exits() {
    let (profile, stdout, dir) = run_child("echo-exits", "smol-echo-exit");
    assert_tasks(&profile);
    assert_times(&profile, &stdout, &dir.join("echo.callgrind"));
}

#[test]
fn a_smol_program_writes_its_profile_on_sigterm() {
    use std::io::{BufRead, Read};
    use std::os::unix::process::ExitStatusExt;
    let dir = child::scratch_dir("smol-echo-sigterm");
    let out = dir.join("echo.callgrind");
    let mut program = child::spawn("echo-stays", &[("THESEUS_OUT", out.to_str().unwrap())]);
    let mut stdout = std::io::BufReader::new(program.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("work done") {
        assert!(stdout.read_line(&mut printed).unwrap() > 0, "ended early");
    }
    // SAFETY: a signal to our own child.
    assert_eq!(
        unsafe { libc::kill(program.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = program.wait().unwrap();
    let mut stderr = String::new();
    program
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}: {stderr}");
    assert!(stderr.contains("profile written to"), "{stderr}");
    let profile = parse(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(check_with_real_readers(&out), profile.totals);
    assert_tasks(&profile);
    assert_times(&profile, &printed, &out);
}

/// The executor starts the session at its first use, which may be a spawn
/// from a thread that runs nothing: that task is timed like the others.
/// Its yield is an await point named after futures-lite's `yield_now`.
#[test]
fn tasks_spawned_before_the_executor_first_runs_are_in_the_profile() {
    let (profile, stdout, _) = run_child("spawn-first", "smol-spawn-first");
    // The block is named where it was written, not at the helper's spawn.
    let block = format!(
        "[task] async block in smol_program::program::spawn_first (integration/tests/smol_program.rs:{})",
        printed(&stdout, "block_line")
    );
    assert_eq!(
        profile.self_of(&block, "Tasks"),
        1,
        "{:#?}",
        profile.calls.keys()
    );
    let leaf = "[task] smol_program::program::spawned_first";
    assert_eq!(profile.self_of(leaf, "Tasks"), program::SPAWNED_FIRST);
    assert_eq!(profile.self_of(leaf, "Polls"), 2 * program::SPAWNED_FIRST);
    // Each yielded once, at futures-lite's `yield_now`: the awaited thing,
    // not the task's own fn, though it wakes the task itself.
    let yielded = profile.call_cost(
        "smol_program::program::spawned_first",
        "[await] futures_lite::future::YieldNow",
        "Wakes",
    );
    assert_eq!(yielded, program::SPAWNED_FIRST);
}

#[test]
fn theseus_0_makes_it_a_plain_executor() {
    let dir = child::scratch_dir("smol-echo-plain");
    let out = dir.join("echo.callgrind");
    let output = child::run(
        "echo",
        &[("THESEUS", "0"), ("THESEUS_OUT", out.to_str().unwrap())],
    );
    assert!(output.status.success());
    assert!(!out.exists(), "a profile was written with THESEUS=0");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("theseus:"), "{stderr}");
}
