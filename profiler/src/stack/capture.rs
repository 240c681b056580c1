//! Capture at spawn: unwinding the current poll, the caches that let the
//! default mode skip it, and the [`CaptureMode`] (`THESEUS_STACKS`) that
//! says how often it happens.

use super::context::{current_stack, poll_boundary};
use super::intern::{intern_task, FastMap, FrameKey, Leaf};
use super::unwind::{sampler_signals_blocked, sp_is_callee_cfa, walk_poll};
use super::StackId;
use std::cell::RefCell;
use std::fmt;
use std::panic::Location;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{LazyLock, Mutex, PoisonError};

/// How much of the machine stack is captured at each spawn (`THESEUS_STACKS`).
///
/// Unwinding costs about 0.1 µs per frame, more than a spawn itself, so the
/// default, [`CaptureMode::Cached`], avoids repeating it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// Capture in full once per (parent stack, spawn location, future type), then reuse
    /// (`THESEUS_STACKS=default`).
    ///
    /// The steady state is a lookup in a thread-local hash map: no
    /// unwinding, no lock. A miss there checks a global map (one lock), and
    /// only a spawn site never seen before is unwound.
    ///
    /// What it can merge: two different call paths that reach the same
    /// spawn line, spawning the same future type, within the same parent
    /// task. For example, `handler` calling both `a()` and `b()`, each of
    /// which calls a shared `spawn_worker()` helper: both spawns report
    /// whichever path was seen first (`handler → a → spawn_worker`), and
    /// their costs are added together under it. Paths in different parent
    /// tasks, different spawn lines or different future types are never
    /// merged. A `#[track_caller]` helper moves the location to its caller,
    /// which separates such paths again; [`CaptureMode::Full`] always does.
    #[default]
    Cached,
    /// Capture every spawn in full: exact stacks, at the cost of one unwind
    /// (unresolved addresses only, never symbols) per spawn.
    Full,
    /// Record only the spawn call's file and line: no unwinding at all. The
    /// stack is the parent's stack, a `file:line` frame and the leaf.
    Location,
}

impl CaptureMode {
    /// The name `THESEUS_STACKS` accepts for this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMode::Cached => "default",
            CaptureMode::Full => "full",
            CaptureMode::Location => "location",
        }
    }

    /// The mode `THESEUS_STACKS` asks for: [`CaptureMode::Cached`] when it
    /// is unset or empty, an error naming the variable and the accepted
    /// values when it holds anything else.
    pub fn from_env() -> Result<CaptureMode, ParseCaptureModeError> {
        match std::env::var_os(ENV_VAR) {
            None => Ok(CaptureMode::Cached),
            Some(v) => {
                let v = v.to_string_lossy();
                if v.trim().is_empty() {
                    Ok(CaptureMode::Cached)
                } else {
                    v.parse()
                }
            }
        }
    }
}

impl fmt::Display for CaptureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The environment variable that selects the [`CaptureMode`].
const ENV_VAR: &str = "THESEUS_STACKS";

/// A `THESEUS_STACKS` value that names no [`CaptureMode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseCaptureModeError {
    value: String,
}

impl fmt::Display for ParseCaptureModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {ENV_VAR} value {:?}: expected one of `default`, `full`, `location`",
            self.value
        )
    }
}

impl std::error::Error for ParseCaptureModeError {}

impl FromStr for CaptureMode {
    type Err = ParseCaptureModeError;

    /// `default`, `full` or `location`, ignoring case and surrounding blanks.
    fn from_str(s: &str) -> Result<CaptureMode, ParseCaptureModeError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "default" => Ok(CaptureMode::Cached),
            "full" => Ok(CaptureMode::Full),
            "location" => Ok(CaptureMode::Location),
            _ => Err(ParseCaptureModeError {
                value: s.to_string(),
            }),
        }
    }
}

/// The process-wide mode: 0 until set or read from the environment, else
/// `1 + ` the mode's index.
static MODE: AtomicU8 = AtomicU8::new(0);

fn mode_code(mode: CaptureMode) -> u8 {
    match mode {
        CaptureMode::Cached => 1,
        CaptureMode::Full => 2,
        CaptureMode::Location => 3,
    }
}

/// Sets the capture mode for every later spawn, in the whole process.
/// Stacks already captured keep their ids.
pub fn set_capture_mode(mode: CaptureMode) {
    MODE.store(mode_code(mode), Relaxed);
}

/// The capture mode in force. Until [`set_capture_mode`] is called it is
/// read once from `THESEUS_STACKS`; a bad value there is reported on stderr
/// and the default used (call [`CaptureMode::from_env`] at start-up to
/// report it as an error instead).
pub fn capture_mode() -> CaptureMode {
    match MODE.load(Relaxed) {
        1 => CaptureMode::Cached,
        2 => CaptureMode::Full,
        3 => CaptureMode::Location,
        _ => {
            let mode = CaptureMode::from_env().unwrap_or_else(|e| {
                eprintln!("theseus: {e}; using `default`");
                CaptureMode::Cached
            });
            // A concurrent `set_capture_mode` wins over the environment.
            match MODE.compare_exchange(0, mode_code(mode), Relaxed, Relaxed) {
                Ok(_) => mode,
                Err(_) => capture_mode(),
            }
        }
    }
}

/// Most machine frames kept for one spawn. A deeper stack loses its
/// outermost frames: the unwinder walks from the spawn call outwards.
const MAX_FRAMES: usize = 128;

/// See [`crate::spawn_stack`].
pub(crate) fn spawn_stack(location: &'static Location<'static>, leaf: Leaf) -> StackId {
    let parent = current_stack();
    match capture_mode() {
        CaptureMode::Full => capture(parent, location, leaf),
        // The location mode needs no unwinding, but its stack is as fixed by
        // the key as the cached mode's: the same cache spares it hashing
        // the file and type names into the trie on every spawn.
        mode => cached(mode, parent, location, leaf),
    }
}

/// What the default and location modes key their reuse on: parent,
/// location, spawned type, and the mode and leaf kind as bits. Pointers,
/// not contents: this is a cache, and a second copy of a string only costs
/// a second entry.
type CacheKey = (StackId, usize, usize, usize, u8);

thread_local! {
    /// This thread's view of [`GLOBAL_CACHE`]: hits need no lock at all.
    static LOCAL_CACHE: RefCell<FastMap<CacheKey, StackId>> =
        RefCell::new(FastMap::default());
}

/// Every stack captured in the cached mode, shared so that a spawn site
/// seen on one worker is not unwound again on each of the others.
static GLOBAL_CACHE: LazyLock<Mutex<FastMap<CacheKey, StackId>>> =
    LazyLock::new(|| Mutex::new(FastMap::default()));

/// The cached mode: unwind once per (parent stack, spawn location, future
/// type), then reuse. See [`CaptureMode::Cached`] for what this merges.
/// The location mode goes through here too, without the unwinding.
fn cached(
    mode: CaptureMode,
    parent: StackId,
    location: &'static Location<'static>,
    leaf: Leaf,
) -> StackId {
    let key: CacheKey = (
        parent,
        location as *const Location<'static> as usize,
        leaf.type_name.as_ptr() as usize,
        leaf.type_name.len(),
        u8::from(mode == CaptureMode::Location) | (u8::from(leaf.blocking) << 1),
    );
    // `try_with`: during thread teardown the local cache may be gone; the
    // global one still works.
    let local = LOCAL_CACHE
        .try_with(|c| c.borrow().get(&key).copied())
        .ok()
        .flatten();
    if let Some(id) = local {
        return id;
    }
    let global = GLOBAL_CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .copied();
    let id = match global {
        Some(id) => id,
        None => {
            // Unwind without holding the lock; if two threads race on the
            // same key, both stacks are valid and the first one is kept.
            let captured = match mode {
                CaptureMode::Location => intern_task(
                    parent,
                    &[FrameKey::Location(location), FrameKey::Leaf(leaf)],
                ),
                _ => capture(parent, location, leaf),
            };
            *GLOBAL_CACHE
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_insert(captured)
        }
    };
    let _ = LOCAL_CACHE.try_with(|c| c.borrow_mut().insert(key, id));
    id
}

/// Unwinds the current poll and interns parent + frames + location + leaf.
fn capture(parent: StackId, location: &'static Location<'static>, leaf: Leaf) -> StackId {
    let mut ips = [0usize; MAX_FRAMES];
    let n = unwind_this_poll(poll_boundary(), &mut ips);
    let mut keys = [FrameKey::Ip(0); MAX_FRAMES + 2];
    // The walk gives innermost first; the trie wants outermost first.
    for (slot, ip) in keys.iter_mut().zip(ips[..n].iter().rev()) {
        *slot = FrameKey::Ip(*ip);
    }
    keys[n] = FrameKey::Location(location);
    keys[n + 1] = FrameKey::Leaf(leaf);
    intern_task(parent, &keys[..n + 2])
}

/// Fills `out` with the return addresses of this thread's stack, innermost
/// first, stopping at the frame that holds `boundary` (0: no boundary).
/// Returns how many were written. No symbols are looked up.
///
/// The samplers' signals are blocked while it walks: see
/// [`super::unwind::SignalBlock`].
#[inline(never)]
fn unwind_this_poll(boundary: usize, out: &mut [usize; MAX_FRAMES]) -> usize {
    let callee_cfa = sp_is_callee_cfa();
    let _blocked = sampler_signals_blocked();
    // SAFETY: `walk_poll` needs this thread not to be inside the unwinder
    // already. This is normal context (a spawn call), not a signal handler,
    // and the handlers that unwind (a CPU sampler's `SIGPROF`, theseus's own
    // sampler's signal) are blocked for as long as the walk lasts.
    unsafe { walk_poll(None, boundary, callee_cfa, out) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_errors_name_the_variable_and_choices() {
        assert_eq!("default".parse(), Ok(CaptureMode::Cached));
        assert_eq!(" Full ".parse(), Ok(CaptureMode::Full));
        assert_eq!("location".parse(), Ok(CaptureMode::Location));
        let err = "fast".parse::<CaptureMode>().unwrap_err().to_string();
        for needle in ["THESEUS_STACKS", "\"fast\"", "default", "full", "location"] {
            assert!(err.contains(needle), "{err:?} lacks {needle}");
        }
        for mode in [
            CaptureMode::Cached,
            CaptureMode::Full,
            CaptureMode::Location,
        ] {
            assert_eq!(mode.to_string().parse(), Ok(mode));
        }
    }
}
