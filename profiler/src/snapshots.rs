//! Interval snapshots of a long-running program (`THESEUS_INTERVAL`): a
//! thread that, every interval, has the session write a profile of that
//! interval beside `THESEUS_OUT`, and the names those files get.
//!
//! The snapshot of interval N of a run with `THESEUS_OUT=dir/app.pb.gz` is
//! `dir/app.NNNN.pb.gz`: the sequence number, from 1, at least four digits
//! wide, goes before the format's extension (`.pb.gz`, `.folded`, `.svg`),
//! or for callgrind before the last extension (`callgrind.theseus` gives
//! `callgrind.0001.theseus`, `app.callgrind` gives `app.0001.callgrind`),
//! or at the end of a name without one. So the snapshots of one run sort in
//! order, next to its whole-run profile, and open with the same tools. A
//! new run with the same `THESEUS_OUT` numbers from 1 again and replaces
//! them.
//!
//! Deadlines are counted from the start, so the intervals do not drift by
//! the time each write takes; a write that outlasts its interval moves the
//! next cut to the next deadline still to come. The thread holds the
//! session weakly and stops at once when the session ends; the session then
//! writes the last (partial) interval itself, so the snapshots cover the
//! whole run.

use crate::forked::Starter;
use crate::format::Format;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where the snapshot numbered `seq` of a profile written at `out` in
/// `format` goes.
///
/// ```
/// use std::path::Path;
/// use theseus_profiler::{snapshots::snapshot_path, Format};
///
/// let path = |out: &str, format| snapshot_path(Path::new(out), format, 7);
/// assert_eq!(path("run/app.pb.gz", Format::Pprof), Path::new("run/app.0007.pb.gz"));
/// assert_eq!(path("callgrind.theseus", Format::Callgrind), Path::new("callgrind.0007.theseus"));
/// assert_eq!(path("profile", Format::Callgrind), Path::new("profile.0007"));
/// ```
pub fn snapshot_path(out: &Path, format: Format, seq: u64) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "profile".to_string());
    let lower = name.to_ascii_lowercase();
    // Where the extension starts: the format's own, if the name ends with
    // it (any case), else the last dot that is not the first character.
    let split = format
        .extension()
        .filter(|ext| lower.len() > ext.len() && lower.ends_with(ext))
        .map(|ext| name.len() - ext.len())
        .or_else(|| name.rfind('.').filter(|&dot| dot > 0))
        .unwrap_or(name.len());
    let (stem, extension) = name.split_at(split);
    out.with_file_name(format!("{stem}.{seq:04}{extension}"))
}

/// The number of the next tick after tick `done`, `elapsed` from the start:
/// the next deadline still to come. A write that outlasts its interval
/// delays the next cut to the next deadline instead of having the cuts it
/// overran follow one another at once, each a snapshot of a few
/// milliseconds; the delayed cut covers the time since the last one, so
/// nothing is lost.
fn next_tick(done: u32, elapsed: Duration, interval: Duration) -> u32 {
    let passed = elapsed.as_nanos() / interval.as_nanos().max(1);
    let passed = u32::try_from(passed).unwrap_or(u32::MAX - 1);
    done.saturating_add(1).max(passed + 1)
}

/// The thread that asks for a snapshot every interval.
pub(crate) struct Ticker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    /// The thread is this process's only: a forked child has none to stop.
    started: Starter,
}

impl Ticker {
    /// Calls `tick` every `interval` from now, on a thread of its own,
    /// until `tick` returns `false` or the ticker is stopped.
    pub(crate) fn start(
        interval: Duration,
        tick: impl Fn() -> bool + Send + 'static,
    ) -> std::io::Result<Ticker> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("theseus-snap".to_string())
            .spawn(move || {
                let start = Instant::now();
                let (lock, condvar) = &*stopped;
                let mut n = 1u32;
                loop {
                    let deadline = start + interval * n;
                    let mut stop = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    loop {
                        if *stop {
                            return;
                        }
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        stop = condvar
                            .wait_timeout(stop, deadline - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    drop(stop);
                    if !tick() {
                        return;
                    }
                    n = next_tick(n, start.elapsed(), interval);
                }
            })?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
            started: Starter::this_process(),
        })
    }

    /// Stops the thread and waits for it (and a snapshot it is writing).
    /// In a forked child, which has no such thread (nor a consistent lock
    /// to tell it by), only forgets it.
    pub(crate) fn stop(&mut self) {
        if !self.started.is_this_process() {
            std::mem::forget(self.thread.take());
            return;
        }
        let (lock, condvar) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        condvar.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn names_keep_the_format_extension_last() {
        let cases = [
            ("a.pb.gz", Format::Pprof, "a.0012.pb.gz"),
            ("A.PB.GZ", Format::Pprof, "A.0012.PB.GZ"),
            ("a.b.folded", Format::Folded, "a.b.0012.folded"),
            ("d/a.svg", Format::FlameGraph, "d/a.0012.svg"),
            ("a.svg", Format::Callgrind, "a.0012.svg"),
            ("a.callgrind", Format::Callgrind, "a.0012.callgrind"),
            (".hidden", Format::Callgrind, ".hidden.0012"),
            ("noext", Format::Folded, "noext.0012"),
        ];
        for (out, format, want) in cases {
            assert_eq!(snapshot_path(Path::new(out), format, 12), Path::new(want));
        }
        assert_eq!(
            snapshot_path(Path::new("a.folded"), Format::Folded, 123456),
            Path::new("a.123456.folded")
        );
    }

    #[test]
    fn a_tick_late_by_a_slow_write_waits_for_the_next_deadline() {
        let ms = Duration::from_millis;
        assert_eq!(next_tick(1, ms(310), ms(300)), 2);
        assert_eq!(next_tick(1, ms(1067), ms(300)), 4);
        assert_eq!(next_tick(3, ms(1200), ms(300)), 5);
        assert_eq!(next_tick(7, ms(10), ms(300)), 8);

        // The first write takes 4.5 intervals: the second tick comes at the
        // sixth deadline, not at once.
        let interval = ms(40);
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        let start = Instant::now();
        let mut ticker = Ticker::start(interval, move || {
            let mut seen = seen.lock().unwrap();
            seen.push(Instant::now());
            if seen.len() == 1 {
                std::thread::sleep(interval * 9 / 2);
            }
            seen.len() < 2
        })
        .unwrap();
        while calls.lock().unwrap().len() < 2 {
            assert!(start.elapsed() < Duration::from_secs(10), "no second tick");
            std::thread::sleep(ms(5));
        }
        ticker.stop();
        let second = calls.lock().unwrap()[1];
        assert!(second >= start + interval * 6, "{:?}", second - start);
    }

    #[test]
    fn the_ticker_ticks_on_time_and_stops_at_once() {
        let ticks = Arc::new(AtomicU32::new(0));
        let counted = ticks.clone();
        let start = Instant::now();
        let mut ticker = Ticker::start(Duration::from_millis(20), move || {
            counted.fetch_add(1, Ordering::SeqCst) < 2
        })
        .unwrap();
        while ticks.load(Ordering::SeqCst) < 3 {
            assert!(start.elapsed() < Duration::from_secs(10), "no ticks");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(start.elapsed() >= Duration::from_millis(60));
        ticker.stop();
        assert_eq!(ticks.load(Ordering::SeqCst), 3);

        let mut idle = Ticker::start(Duration::from_secs(3600), || true).unwrap();
        let stopping = Instant::now();
        idle.stop();
        assert!(stopping.elapsed() < Duration::from_secs(5));
    }
}
