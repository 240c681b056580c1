//! theseus beside CPU samplers, as whole programs: pprof-rs (`SIGPROF`,
//! libgcc unwinding in its handler) running during a spawn-heavy,
//! CPU-heavy workload with every spawn unwound (`THESEUS_STACKS=full`);
//! theseus's own sampler (`THESEUS_SAMPLE_HZ`) putting a spinning task's CPU
//! time under its spawn stack; and both samplers at once. Every child runs
//! under a deadline, so a deadlock fails the test instead of hanging it.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::callgrind::{parse, Profile};
use common::child;
use common::readers::check_with_real_readers;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

/// The child side.
#[test]
fn child() {
    match child::program().as_deref() {
        None => {}
        Some("churn") => programs::churn::main(),
        Some("spin") => {
            programs::contend_if_asked();
            programs::spin::main()
        }
        Some("overhead") => programs::overhead::main(),
        Some(other) => panic!("unknown program {other}"),
    }
}

mod programs {
    use std::hint::black_box;
    use std::time::Duration;

    /// CPU time in nanoseconds on `clock`: `CLOCK_THREAD_CPUTIME_ID` for
    /// this thread, `CLOCK_PROCESS_CPUTIME_ID` for the whole process.
    pub fn cpu_ns(clock: libc::clockid_t) -> u64 {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec to fill; both clock ids are
        // constants every Linux kernel knows.
        let rc = unsafe { libc::clock_gettime(clock, &mut now) };
        assert_eq!(rc, 0, "clock_gettime({clock}) failed");
        now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
    }

    /// This thread's CPU time, in nanoseconds.
    pub fn thread_cpu_ns() -> u64 {
        cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID)
    }

    /// Burns this thread's CPU for `ns` of its own CPU time (not wall time:
    /// the machine may be busy) and returns how much it burned.
    #[inline(never)]
    pub fn burn_cpu(ns: u64) -> u64 {
        let start = thread_cpu_ns();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        loop {
            // Few clock reads: each is a system call, CPU time the samples
            // rightly put below this function but not in it, and a thread
            // that shares its CPU is mostly switched out at one.
            for _ in 0..100_000 {
                x = black_box(x.rotate_left(5) ^ 0x51_7c_c1_b7_27_22_0a_95).wrapping_mul(3);
            }
            let spent = thread_cpu_ns() - start;
            if spent >= ns {
                black_box(x);
                return spent;
            }
        }
    }

    /// With `TEST_CONTEND=N`: pins this process to one CPU and starts `N`
    /// threads that spin there until it exits, so the program's own threads
    /// share that CPU with them (threads started later inherit the pin).
    pub fn contend_if_asked() {
        let Some(n) = std::env::var("TEST_CONTEND").ok() else {
            return;
        };
        let n: usize = n.parse().expect("TEST_CONTEND is a number of threads");
        // SAFETY: `set` is a plain bit set, filled by the kernel or zeroed.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            assert_eq!(libc::sched_getaffinity(0, size, &mut set), 0);
            let cpu = (0..libc::CPU_SETSIZE as usize)
                .find(|&c| libc::CPU_ISSET(c, &set))
                .expect("this thread may run on some CPU");
            libc::CPU_ZERO(&mut set);
            libc::CPU_SET(cpu, &mut set);
            assert_eq!(libc::sched_setaffinity(0, size, &set), 0);
        }
        for _ in 0..n {
            std::thread::spawn(|| loop {
                black_box(hash_work(1_000));
            });
        }
    }

    /// A little CPU work, hashing in a loop.
    #[inline(never)]
    pub fn hash_work(rounds: u64) -> u64 {
        let mut x = rounds;
        for i in 0..rounds {
            x = black_box(x.rotate_left(7) ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        x
    }

    /// Spins for 300 ms of CPU time in one poll.
    pub async fn spinner() -> u64 {
        burn_cpu(300_000_000)
    }

    /// Only sleeps: no CPU to speak of.
    pub async fn sleeper() {
        tokio::time::sleep(Duration::from_millis(150)).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    /// A leaf of the churn: some CPU, then done.
    pub async fn churn_leaf(seed: u64) -> u64 {
        hash_work(2_000 + seed % 1_000)
    }

    /// A node of the churn: spawns leaves (each spawn unwound in full) and
    /// hashes while they run.
    pub async fn churn_node(seed: u64) -> u64 {
        let leaves: Vec<_> = (0..LEAVES)
            .map(|i| theseus::spawn(churn_leaf(seed * 31 + i)))
            .collect();
        let mut sum = hash_work(5_000);
        for leaf in leaves {
            sum = sum.wrapping_add(leaf.await.unwrap());
        }
        sum
    }

    pub const NODES: u64 = 400;
    pub const LEAVES: u64 = 25;

    /// pprof-rs at 1 kHz, when the parent asks for it.
    fn pprof_guard() -> Option<pprof::ProfilerGuard<'static>> {
        std::env::var_os("TEST_PPROF").map(|_| pprof::ProfilerGuard::new(1000).unwrap())
    }

    /// Reports what pprof-rs sampled, for the parent to check.
    fn report_pprof(guard: Option<pprof::ProfilerGuard<'static>>) {
        if let Some(guard) = guard {
            let report = guard.report().build().unwrap();
            let samples: isize = report.data.values().sum();
            println!("pprof samples={samples} stacks={}", report.data.len());
        }
    }

    pub mod churn {
        #[theseus::main(worker_threads = 2)]
        pub async fn main() {
            let guard = super::pprof_guard();
            let nodes: Vec<_> = (0..super::NODES)
                .map(|i| theseus::spawn(super::churn_node(i)))
                .collect();
            let mut sum = 0u64;
            for node in nodes {
                sum = sum.wrapping_add(node.await.unwrap());
            }
            // More CPU on the workers, for the samplers to find.
            let burners: Vec<_> = (0..2)
                .map(|_| theseus::spawn(async { super::burn_cpu(150_000_000) }))
                .collect();
            for burner in burners {
                burner.await.unwrap();
            }
            std::hint::black_box(sum);
            super::report_pprof(guard);
            println!("churn done");
        }
    }

    pub mod spin {
        #[theseus::main(worker_threads = 2)]
        pub async fn main() {
            let guard = super::pprof_guard();
            let sleepers: Vec<_> = (0..3).map(|_| theseus::spawn(super::sleeper())).collect();
            let spun = theseus::spawn(super::spinner()).await.unwrap();
            for sleeper in sleepers {
                sleeper.await.unwrap();
            }
            super::report_pprof(guard);
            println!("spinner cpu_ns={spun}");
        }
    }

    pub mod overhead {
        /// This process's CPU time, all threads, in nanoseconds.
        fn process_cpu_ns() -> u64 {
            super::cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
        }

        /// A CPU-bound workload: many tasks, each hashing, on two workers.
        #[theseus::main(worker_threads = 2)]
        pub async fn main() {
            let cpu = process_cpu_ns();
            let start = std::time::Instant::now();
            let tasks: Vec<_> = (0..2_000)
                .map(|i| theseus::spawn(async move { super::hash_work(200_000 + i) }))
                .collect();
            let mut sum = 0u64;
            for task in tasks {
                sum = sum.wrapping_add(task.await.unwrap());
            }
            std::hint::black_box(sum);
            println!(
                "elapsed_ns={} cpu_ns={}",
                start.elapsed().as_nanos(),
                process_cpu_ns() - cpu
            );
        }
    }
}

/// Runs `program` in a child with `env`, failing if it is not done within
/// `limit` (a deadlock between the samplers must fail, not hang).
fn run_with_deadline(program: &str, env: &[(&str, &str)], limit: Duration) -> Output {
    let mut process = child::spawn(program, env);
    let deadline = Instant::now() + limit;
    loop {
        if process.try_wait().unwrap().is_some() {
            return process.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            process.kill().unwrap();
            let output = process.wait_with_output().unwrap();
            panic!(
                "{program} did not finish within {limit:?} (a deadlock?)\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stdout_value(output: &Output, key: &str) -> u64 {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in the child's output:\n{stdout}"))
}

fn read_profile(path: &Path) -> Profile {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no profile at {}: {e}", path.display()));
    let profile = parse(&text);
    assert_eq!(check_with_real_readers(path), profile.totals);
    profile
}

/// Self cost plus the cost of every call `function` makes: its inclusive
/// cost, as callgrind_annotate computes it.
fn inclusive(profile: &Profile, function: &str, event: &str) -> u64 {
    let index = profile.event(event);
    let own = profile.self_cost.get(function).map_or(0, |c| c[index]);
    let calls: u64 = profile
        .calls
        .iter()
        .filter(|((caller, _, _), _)| caller == function)
        .map(|(_, (_, cost))| cost[index])
        .sum();
    own + calls
}

const SPINNER: &str = "[task] sampler::programs::spinner";
const SLEEPER: &str = "[task] sampler::programs::sleeper";
const MS: u64 = 1_000_000;

fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "the child failed: {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn pprof_beside_full_stack_capture_never_hangs_or_crashes() {
    let dir = child::scratch_dir("sampler-pprof");
    for run in 0..3 {
        let out = dir.join(format!("churn-{run}.callgrind"));
        let output = run_with_deadline(
            "churn",
            &[
                ("THESEUS_STACKS", "full"),
                ("THESEUS_OUT", out.to_str().unwrap()),
                ("TEST_PPROF", "1"),
                // pprof-rs keeps a named temporary file it never removes.
                ("TMPDIR", dir.to_str().unwrap()),
            ],
            Duration::from_secs(120),
        );
        assert_ok(&output);
        assert!(
            stdout_value(&output, "samples") > 0,
            "run {run}: pprof-rs got no samples"
        );
        // theseus's profile is valid (the real readers accept it) and
        // complete: every task spawned is in it.
        let profile = read_profile(&out);
        assert_eq!(
            profile.self_of("[task] sampler::programs::churn_node", "Tasks"),
            programs::NODES,
            "run {run}"
        );
        assert_eq!(
            profile.self_of("[task] sampler::programs::churn_leaf", "Tasks"),
            programs::NODES * programs::LEAVES,
            "run {run}"
        );
        // Full capture: the leaves sit under the node that spawned them.
        assert!(
            !profile
                .edges(
                    "sampler::programs::churn_node",
                    "[task] sampler::programs::churn_leaf"
                )
                .is_empty(),
            "run {run}: no edge from churn_node to its leaves"
        );
    }
}

/// Checks a spin run's profile: the spinner's CPU samples within 5% of the
/// CPU time it burned, the burning function below its task node, and for
/// the sleepers no samples, or at most `sleeper_share` of the spinner's.
fn check_spin_profile(profile: &Profile, spun_ns: u64, sleeper_share: f64) {
    let (sampled, framed) = check_spinner_cpu(profile, spun_ns);
    // The burning function holds most of it itself.
    assert!(
        profile.self_of("sampler::programs::burn_cpu", "CpuNs") >= framed * 8 / 10,
        "burn_cpu's own samples are not most of the spinner's {:.1} ms with frames",
        framed as f64 / 1e6
    );
    check_sleepers(profile, sampled, sleeper_share);
}

/// The spinner's CPU samples within 5% of the CPU time it burned, and of
/// those with machine frames, most below the spinning function. Returns
/// what the samples say, all of them and those with frames.
///
/// A sample has no frames when the sampler caught up with a thread that was
/// switched out (see `catch_up` in the sampler): its time is the task's,
/// at the task's node.
fn check_spinner_cpu(profile: &Profile, spun_ns: u64) -> (u64, u64) {
    assert!(
        profile.events.iter().any(|e| e == "CpuNs"),
        "no CpuNs event: {:?}",
        profile.events
    );
    assert_eq!(profile.events[0], "WallNs", "WallNs must stay first");
    let sampled = inclusive(profile, SPINNER, "CpuNs");
    let error = (sampled as f64 - spun_ns as f64).abs() / spun_ns as f64;
    assert!(
        error <= 0.05,
        "the spinner burned {:.1} ms of CPU; its samples say {:.1} ms (off by {:.0}%)",
        spun_ns as f64 / 1e6,
        sampled as f64 / 1e6,
        error * 100.0
    );
    // The spinning function is in the frames below the task's node: the
    // task's async body calls it, and it holds most of the samples.
    let cpu = profile.event("CpuNs");
    let body = profile.edges(SPINNER, "sampler::programs::spinner");
    assert!(!body.is_empty(), "no edge from {SPINNER} to its body");
    let framed: u64 = body.iter().map(|(_, (_, cost))| cost[cpu]).sum();
    let burn = profile.edges("sampler::programs::spinner", "sampler::programs::burn_cpu");
    let below: u64 = burn.iter().map(|(_, (_, cost))| cost[cpu]).sum();
    assert!(
        below >= framed * 8 / 10,
        "burn_cpu holds {:.1} ms of the spinner's {:.1} ms with frames",
        below as f64 / 1e6,
        framed as f64 / 1e6
    );
    (sampled, framed)
}

/// Three tasks that only sleep: no CPU samples, or at most `share` of the
/// spinner's `sampled` (but see the callers).
fn check_sleepers(profile: &Profile, sampled: u64, share: f64) {
    assert_eq!(profile.self_of(SLEEPER, "Tasks"), 3);
    let slept = inclusive(profile, SLEEPER, "CpuNs");
    assert!(
        slept as f64 <= sampled as f64 * share,
        "tasks that only sleep got {:.1} ms of CPU samples",
        slept as f64 / 1e6
    );
}

#[test]
fn theseus_sample_hz_puts_a_spinning_tasks_cpu_time_under_its_spawn_stack() {
    let dir = child::scratch_dir("sampler-own");
    let out = dir.join("spin.callgrind");
    let output = run_with_deadline(
        "spin",
        &[
            ("THESEUS_SAMPLE_HZ", "997"),
            ("THESEUS_OUT", out.to_str().unwrap()),
        ],
        Duration::from_secs(60),
    );
    assert_ok(&output);
    let spun = stdout_value(&output, "cpu_ns");
    assert!(spun >= 300 * MS, "the spinner burned only {spun} ns");
    check_spin_profile(&read_profile(&out), spun, 0.0);
}

/// A thread sharing its CPU with others may run between the scheduler's
/// ticks, where the kernel checks CPU timers, for much of its CPU time:
/// its timer then fires seldom or not at all. Its samples must still add up
/// to the CPU time it used, under the task that used it.
#[test]
fn a_spinning_task_sharing_its_cpu_with_busy_threads_gets_all_its_cpu_time() {
    let dir = child::scratch_dir("sampler-contended");
    for run in 0..4 {
        let out = dir.join(format!("spin-{run}.callgrind"));
        let output = run_with_deadline(
            "spin",
            &[
                ("THESEUS_SAMPLE_HZ", "997"),
                ("THESEUS_OUT", out.to_str().unwrap()),
                ("TEST_CONTEND", "5"),
            ],
            Duration::from_secs(60),
        );
        assert_ok(&output);
        let spun = stdout_value(&output, "cpu_ns");
        // Not `check_spin_profile`: here most of the time comes from
        // catching up, without frames, and the few framed samples each
        // weigh milliseconds. A signal sent to a thread that is switched
        // out is handled where it comes back, often at the return from
        // burn_cpu's clock read, so one such sample can hold a fifth of
        // them below burn_cpu rather than in it. What is checked is what
        // the samples say of the task: all its CPU time, framed samples
        // below burn_cpu.
        let profile = read_profile(&out);
        let (sampled, _) = check_spinner_cpu(&profile, spun);
        check_sleepers(&profile, sampled, 0.0);
    }
}

#[test]
fn both_samplers_at_once_both_get_their_samples() {
    let dir = child::scratch_dir("sampler-both");
    for run in 0..2 {
        let out = dir.join(format!("both-{run}.callgrind"));
        let output = run_with_deadline(
            "spin",
            &[
                ("THESEUS_SAMPLE_HZ", "997"),
                ("THESEUS_STACKS", "full"),
                ("THESEUS_OUT", out.to_str().unwrap()),
                ("TEST_PPROF", "1"),
                // pprof-rs keeps a named temporary file it never removes.
                ("TMPDIR", dir.to_str().unwrap()),
            ],
            Duration::from_secs(60),
        );
        assert_ok(&output);
        // pprof-rs's interval timer is checked at scheduler ticks and drops
        // the periods it missed, so on a busy machine it sees far fewer
        // than 300 samples; it must see some.
        let pprof = stdout_value(&output, "samples");
        assert!(pprof > 0, "run {run}: pprof-rs got no samples");
        // pprof-rs's handler runs on whichever thread its signal picks, on
        // top of whatever poll it interrupts, and that CPU time is rightly
        // the interrupted task's: a sleeper's poll may get a sample of it.
        let spun = stdout_value(&output, "cpu_ns");
        check_spin_profile(&read_profile(&out), spun, 0.05);
    }
}

#[test]
fn a_bad_theseus_sample_hz_is_reported_before_the_program_runs() {
    for bad in ["fast", "10001", "-1"] {
        let output = child::run("spin", &[("THESEUS_SAMPLE_HZ", bad)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        for needle in ["THESEUS_SAMPLE_HZ", bad, "1 to 10000"] {
            assert!(stderr.contains(needle), "{needle} missing from {stderr}");
        }
        assert!(!String::from_utf8_lossy(&output.stdout).contains("cpu_ns"));
    }
}

/// The sampler's cost on a CPU-bound workload: runs the `overhead` program
/// without the sampler and at 99 Hz and 997 Hz, interleaved, and prints the
/// median wall time and process CPU time of each and their ratios (CPU time
/// is the steadier figure on a machine shared with other work). Measure in
/// release:
///
/// ```text
/// cargo test --release --test sampler -- --ignored --nocapture sampler_overhead
/// ```
#[test]
#[ignore = "a measurement, not a check: run it in release by hand"]
fn sampler_overhead() {
    let dir = child::scratch_dir("sampler-overhead");
    let out = dir.join("overhead.callgrind");
    let settings = [("off", ""), ("99 Hz", "99"), ("997 Hz", "997")];
    let mut times: Vec<Vec<u64>> = vec![Vec::new(); settings.len()];
    let mut cpu: Vec<Vec<u64>> = vec![Vec::new(); settings.len()];
    for _ in 0..15 {
        for (i, (_, hz)) in settings.iter().enumerate() {
            let output = run_with_deadline(
                "overhead",
                &[
                    ("THESEUS_SAMPLE_HZ", hz),
                    ("THESEUS_OUT", out.to_str().unwrap()),
                ],
                Duration::from_secs(120),
            );
            assert_ok(&output);
            times[i].push(stdout_value(&output, "elapsed_ns"));
            cpu[i].push(stdout_value(&output, "cpu_ns"));
        }
    }
    let median = |runs: &mut Vec<u64>| {
        runs.sort_unstable();
        runs[runs.len() / 2]
    };
    let wall: Vec<u64> = times.iter_mut().map(median).collect();
    let cpu: Vec<u64> = cpu.iter_mut().map(median).collect();
    for (i, (name, _)) in settings.iter().enumerate() {
        println!(
            "sampler {name:>6}: wall {:8.2} ms (x{:.3}), CPU {:8.2} ms (x{:.3})",
            wall[i] as f64 / 1e6,
            wall[i] as f64 / wall[0] as f64,
            cpu[i] as f64 / 1e6,
            cpu[i] as f64 / cpu[0] as f64
        );
    }
}
