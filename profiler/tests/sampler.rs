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
    let cpu = tracer.cpu_stacks();
    tracer.uninstall();

    let leaf = "[task] sampler_test::Burner";
    let on_task: u64 = cpu
        .iter()
        .filter(|s| s.frames.iter().any(|f| f.function == leaf))
        .map(|s| s.cpu_ns)
        .sum();
    let error = (on_task as f64 - spent as f64).abs() / spent as f64;
    assert!(
        error <= 0.05,
        "burned {spent} ns, sampled {on_task} ns on {leaf}: {cpu:#?}"
    );
    // Of the samples with machine frames (a thread switched out when the
    // sampler caught up with it has none: its time is the task's), most
    // below the task node, in the burning function, called from the poll's
    // body.
    let framed: u64 = cpu
        .iter()
        .filter(|s| s.frames.last().is_some_and(|f| f.function != leaf))
        .filter(|s| s.frames.iter().any(|f| f.function == leaf))
        .map(|s| s.cpu_ns)
        .sum();
    assert!(framed > 0, "no sample of {leaf} has frames: {cpu:#?}");
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
        in_burn >= framed * 8 / 10,
        "only {in_burn} of {framed} ns with frames in burn_cpu below the task: {cpu:#?}"
    );
    // And the profile carries it as the `CpuNs` event.
    let mut text = Vec::new();
    tracer.write_data(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("events: WallNs BusyNs SchedNs IdleNs Polls Wakes Tasks Frames CpuNs\n"));
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

/// A hot function of its own for each `N`: a body long enough that the
/// sampler interrupts many distinct instructions in it.
#[inline(never)]
fn hot<const N: u64>(x: u64) -> u64 {
    let mut h = x ^ N;
    for i in 0..64u64 {
        h = h.rotate_left((N % 61 + 1) as u32) ^ i.wrapping_mul(N | 1);
        h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (h >> 29);
        h = h.wrapping_add(i << (N % 13)) ^ h.rotate_right(17);
        h = h.wrapping_mul(h | 1) ^ (N << 7);
    }
    h
}

macro_rules! hot_table {
    ($($n:literal)*) => {
        [$(hot::<$n> as fn(u64) -> u64),*]
    };
}

/// How the sampler's stacks grow over a long run of many hot functions:
/// the trie's node count every 5 s, at 10 kHz. Past the first 16,384
/// distinct interrupted instructions, samples are keyed by function, so it
/// levels off.
///
/// ```text
/// cargo test --release -p theseus-profiler --test sampler -- --ignored --nocapture long_run
/// ```
#[test]
#[ignore = "a measurement, not a check: run it in release by hand"]
fn sampled_stacks_over_a_long_run() {
    let _serial = serial();
    let tracer = Tracer::new();
    tracer.install();
    let stack = spawn_stack(Location::caller(), "sampler_test::Hot");
    let sampler = Sampler::start(Sampler::MAX_HZ).unwrap();
    let table = hot_table!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95 96 97 98 99 100 101 102 103 104 105 106 107 108 109 110 111 112 113 114 115 116 117 118 119 120 121 122 123 124 125 126 127 128 129 130 131 132 133 134 135 136 137 138 139 140 141 142 143 144 145 146 147 148 149 150 151 152 153 154 155 156 157 158 159 160 161 162 163 164 165 166 167 168 169 170 171 172 173 174 175 176 177 178 179 180 181 182 183 184 185 186 187 188 189 190 191 192 193 194 195 196 197 198 199 200 201 202 203 204 205 206 207 208 209 210 211 212 213 214 215 216 217 218 219 220 221 222 223 224 225 226 227 228 229 230 231 232 233 234 235 236 237 238 239 240 241 242 243 244 245 246 247 248 249 250 251 252 253 254 255);
    std::thread::spawn(move || {
        let marker = 0u8;
        let boundary = black_box(&marker) as *const u8 as usize;
        // SAFETY: `marker` is a local of this frame, which outlives the scope.
        let _poll = unsafe { enter_poll(stack, boundary) };
        let start = std::time::Instant::now();
        let mut h = 1u64;
        for period in 1..=12u32 {
            while start.elapsed() < std::time::Duration::from_secs(5) * period {
                for f in &table {
                    h = f(h);
                }
            }
            // The drain runs every few ms; the count is as of then.
            println!(
                "after {:3} s: {} trie nodes",
                5 * period,
                theseus_profiler::interned_nodes()
            );
        }
        black_box(h)
    })
    .join()
    .unwrap();
    sampler.stop();
    tracer.uninstall();
}
