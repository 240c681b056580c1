//! Capture at spawn: unwinding the current poll, the caches that let the
//! default mode skip it, and the [`CaptureMode`] (`THESEUS_STACKS`) that
//! says how often it happens.

use super::context::{current_stack, poll_boundary};
use super::intern::{intern_task, FastMap, FrameKey, FrameKind, Leaf};
use super::signature::{walk_chain, Signature};
use super::unwind::{sampler_signals_blocked, sp_is_callee_cfa, walk_poll};
use super::StackId;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{LazyLock, Mutex, PoisonError};

/// How much of the machine stack is captured at each spawn (`THESEUS_STACKS`).
///
/// Unwinding costs about 0.1 µs per frame, more than a spawn itself, so the
/// default, [`CaptureMode::Cached`], avoids repeating it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// Capture in full once per (parent stack, spawn location, future
    /// type, chain of calls down to the spawn), then reuse
    /// (`THESEUS_STACKS=default`).
    ///
    /// The steady state is a lookup in a thread-local hash map, keyed also
    /// by the depth of the spawn below the poll boundary, and a check of the
    /// return addresses the chain of calls left on the stack (a load per
    /// frame): no unwinding, no lock. A miss there checks a global map (one
    /// lock), and only a chain never seen before is unwound.
    ///
    /// So two call paths that reach the same spawn line stay apart: a
    /// shared `spawn_worker()` helper called from `a()` and from `b()`
    /// gives two stacks, `handler → a → spawn_worker` and `handler → b →
    /// spawn_worker`, as [`CaptureMode::Full`] does. (A spawn outside any
    /// poll, from a thread theseus does not run, has no boundary to measure
    /// from: there the first path seen stands for all.)
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
}

impl fmt::Display for CaptureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The process-wide mode: 0 until set (the default), else `1 + ` the
/// mode's index.
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

/// The capture mode in force: [`CaptureMode::Cached`] until
/// [`set_capture_mode`] is called (a [`crate::Session`] calls it with
/// `THESEUS_STACKS`, read by [`crate::config`]).
pub fn capture_mode() -> CaptureMode {
    match MODE.load(Relaxed) {
        2 => CaptureMode::Full,
        3 => CaptureMode::Location,
        _ => CaptureMode::Cached,
    }
}

/// Most machine frames kept for one spawn. A deeper stack loses its
/// outermost frames: the unwinder walks from the spawn call outwards.
const MAX_FRAMES: usize = 128;

/// The leaf type of a task spawned with `tokio::spawn` and seen through
/// tokio's hooks, which say where it was spawned but not what future it
/// runs. No type is named so, and the leaf reads as the spawn site.
pub(crate) const TOKIO_SPAWN: &str = "tokio::spawn";

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
/// location, spawned type, the mode and leaf kind as bits, and the depth of
/// the spawn call below the poll boundary (0 where stacks are recognized by
/// the key alone). Pointers, not contents: this is a cache, and a second
/// copy of a string only costs a second entry.
type CacheKey = (StackId, usize, usize, usize, u8, usize);

/// A stack of the cache, with the signature of the chain of calls that
/// spawned it: a key holds one stack per distinct chain (a helper that
/// spawns, called from two functions, makes two). `None`: the key alone
/// tells (no poll boundary, or the location mode). The caches never let
/// go of one, so they hold it by a `'static` reference: a thread's slot
/// for it is plain data, read with no borrow flag or count.
struct Cached {
    signature: Option<Signature>,
    id: StackId,
}

/// Most stacks kept under one key: past this, spawns from new chains are
/// unwound each time (exact, only slower).
const MAX_CHAINS: usize = 16;

type Chains = Vec<&'static Cached>;

thread_local! {
    /// This thread's view of [`GLOBAL_CACHE`]: hits need no lock at all.
    static LOCAL_CACHE: RefCell<FastMap<CacheKey, Chains>> =
        RefCell::new(FastMap::default());
    /// The stacks this thread found last, by a hash of their keys: a spawn
    /// is mostly from a site seen a moment ago, and a slot is cheaper to
    /// check than a hash map (no hashing of the whole key, no probing).
    /// Plain data without a destructor, so reading a slot is a load from
    /// the thread's block, with no check that the thread is alive.
    static RECENT: [Cell<Option<Recent>>; RECENT_SLOTS] =
        const { [const { Cell::new(None) }; RECENT_SLOTS] };
}

/// A stack found lately, with its key.
type Recent = (CacheKey, &'static Cached);

/// Slots in [`RECENT`]: a power of two.
const RECENT_SLOTS: usize = 64;

/// The [`RECENT`] slot of `key`: from its location, parent and depth,
/// which tell most spawn sites apart; a collision only costs a lookup.
#[inline]
fn recent_slot(key: &CacheKey) -> usize {
    let h = ((key.1 as u64) ^ u64::from(key.0 .0).rotate_left(20) ^ (key.5 as u64).rotate_left(40))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> (64 - RECENT_SLOTS.trailing_zeros())) as usize
}

/// Every stack captured in the cached mode, shared so that a spawn site
/// seen on one worker is not unwound again on each of the others.
static GLOBAL_CACHE: LazyLock<Mutex<FastMap<CacheKey, Chains>>> =
    LazyLock::new(|| Mutex::new(FastMap::default()));

/// The cached mode: unwind once per (parent stack, spawn location, future
/// type, chain of calls down to the spawn), then recognize the chain by the
/// return addresses it left on the stack. See [`CaptureMode::Cached`]. The
/// location mode goes through here too, without the unwinding.
///
/// Never inlined: `marker`, a local of this frame, is what the depth and
/// the signatures' slots are measured from. Only the hit in this thread's
/// [`RECENT`] slot is here; everything else is in [`missed`], so that the
/// common spawn pays for a small frame.
#[inline(never)]
fn cached(
    mode: CaptureMode,
    parent: StackId,
    location: &'static Location<'static>,
    leaf: Leaf,
) -> StackId {
    let marker = 0u8;
    let base = std::hint::black_box(&marker) as *const u8 as usize;
    let boundary = poll_boundary();
    let signed = mode == CaptureMode::Cached && boundary > base;
    let key: CacheKey = (
        parent,
        location as *const Location<'static> as usize,
        leaf.type_name.as_ptr() as usize,
        leaf.type_name.len(),
        u8::from(mode == CaptureMode::Location)
            | (u8::from(leaf.blocking) << 1)
            | (frame_code(leaf) << 2),
        if signed { boundary - base } else { 0 },
    );
    let slot = recent_slot(&key);
    // `try_with`: a thread whose locals are gone has no recent slots.
    let recent = RECENT.try_with(|r| r[slot].get()).ok().flatten();
    if let Some((k, hit)) = recent {
        if k == key && holds(hit, base) {
            return hit.id;
        }
    }
    missed(mode, location, leaf, key, slot, base, boundary)
}

/// [`cached`] when this thread's [`RECENT`] slot `slot` does not hold the
/// stack of `key`: this thread's map, then the global one (one lock), and
/// only a chain never seen before is unwound (`boundary`: the poll's). Runs
/// in `cached`'s frame's stead: `base` is that frame's local.
#[cold]
#[inline(never)]
fn missed(
    mode: CaptureMode,
    location: &'static Location<'static>,
    leaf: Leaf,
    key: CacheKey,
    slot: usize,
    base: usize,
    boundary: usize,
) -> StackId {
    let (parent, signed) = (key.0, key.5 != 0);
    // `try_with`: during thread teardown the local caches may be gone; the
    // global one still works.
    let local = LOCAL_CACHE
        .try_with(|c| find(c.borrow().get(&key)?, base))
        .ok()
        .flatten();
    if let Some(hit) = local {
        let _ = RECENT.try_with(|r| r[slot].set(Some((key, hit))));
        return hit.id;
    }
    let global = GLOBAL_CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .and_then(|all| find(all, base));
    let hit = match global {
        Some(hit) => hit,
        None => {
            let capture = || match mode {
                CaptureMode::Location if leaf.frame.is_some() => {
                    (intern_task(parent, &[FrameKey::Leaf(leaf)]), None)
                }
                CaptureMode::Location => (
                    intern_task(
                        parent,
                        &[FrameKey::Location(location), FrameKey::Leaf(leaf)],
                    ),
                    None,
                ),
                _ if signed => capture_signed(parent, location, leaf, boundary, base),
                _ => (capture(parent, location, leaf), None),
            };
            match captured(key, signed, capture) {
                Ok(hit) => hit,
                Err(uncached) => return uncached,
            }
        }
    };
    let _ = LOCAL_CACHE.try_with(|c| {
        let mut c = c.borrow_mut();
        let chains = c.entry(key).or_default();
        if chains.len() < MAX_CHAINS {
            chains.push(hit);
        }
    });
    let _ = RECENT.try_with(|r| r[slot].set(Some((key, hit))));
    hit.id
}

/// The stack of `chains` whose chain of calls the stack above `base` holds.
/// `base` must be the local of [`cached`] that the key's depth was measured
/// from, in a frame running now.
#[inline(always)]
fn find(chains: &Chains, base: usize) -> Option<&'static Cached> {
    chains.iter().copied().find(|c| holds(c, base))
}

/// Whether the stack above `base` holds the chain of calls of `cached`, a
/// stack of the cache under this spawn's key; `base` as for [`find`].
#[inline(always)]
fn holds(cached: &Cached, base: usize) -> bool {
    cached.signature.as_ref().is_none_or(|signature| {
        // SAFETY: `base` is a local of `cached`, whose frame runs this (or
        // the `missed` it called), and every signature under the key was
        // made by `capture_signed` called from there, with its base at the
        // depth below the boundary that is part of the key, which is this
        // spawn's.
        unsafe { signature.matches(base) }
    })
}

/// A stack just captured by `capture` (unwinding without holding the
/// lock), kept in [`GLOBAL_CACHE`] under `key`, for the rest of the
/// process; `Err` with the stack when it is not to be kept: no signature
/// where one was sought, or too many chains under this key already. If two
/// threads race on the same chain, both keep a valid stack.
fn captured(
    key: CacheKey,
    signed: bool,
    capture: impl FnOnce() -> (StackId, Option<Signature>),
) -> Result<&'static Cached, StackId> {
    let (id, signature) = capture();
    if signed && signature.is_none() {
        return Err(id);
    }
    let mut global = GLOBAL_CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    let chains = global.entry(key).or_default();
    if chains.len() >= MAX_CHAINS {
        return Err(id);
    }
    // Never freed: the global cache keeps every entry for good, and
    // threads' caches hold it by reference.
    let hit: &'static Cached = Box::leak(Box::new(Cached { signature, id }));
    chains.push(hit);
    Ok(hit)
}

/// Unwinds the current poll from here to `boundary`, interns parent + the
/// frames above `base` + location + leaf, and returns the stack with the
/// signature of those frames.
#[inline(never)]
fn capture_signed(
    parent: StackId,
    location: &'static Location<'static>,
    leaf: Leaf,
    boundary: usize,
    base: usize,
) -> (StackId, Option<Signature>) {
    let (ips, signature) = walk_chain(base, boundary);
    let mut keys: Vec<FrameKey> = ips.into_iter().map(FrameKey::Ip).collect();
    // A frame's stack has no location key: see `capture`.
    if leaf.frame.is_none() {
        keys.push(FrameKey::Location(location));
    }
    keys.push(FrameKey::Leaf(leaf));
    (intern_task(parent, &keys), signature)
}

/// The cache key bits of a leaf's frame kind (0: a task).
fn frame_code(leaf: Leaf) -> u8 {
    match leaf.frame {
        None => 0,
        Some(FrameKind::Future) => 1,
        Some(FrameKind::Function) => 2,
        Some(FrameKind::Request) => 3,
        Some(FrameKind::Main) => 4,
    }
}

/// Unwinds the current poll and interns parent + frames + location + leaf.
/// A frame's stack has no location key: its first poll, not a call at a
/// known line, is what the frames lead to, and its leaf says where it was
/// marked.
fn capture(parent: StackId, location: &'static Location<'static>, leaf: Leaf) -> StackId {
    let mut ips = [0usize; MAX_FRAMES];
    let n = unwind_this_poll(poll_boundary(), &mut ips);
    let mut keys = [FrameKey::Ip(0); MAX_FRAMES + 2];
    // The walk gives innermost first; the trie wants outermost first.
    for (slot, ip) in keys.iter_mut().zip(ips[..n].iter().rev()) {
        *slot = FrameKey::Ip(*ip);
    }
    let mut len = n;
    if leaf.frame.is_none() {
        keys[len] = FrameKey::Location(location);
        len += 1;
    }
    keys[len] = FrameKey::Leaf(leaf);
    intern_task(parent, &keys[..len + 1])
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
    use crate::capture::enter_poll;
    use std::hint::black_box;

    /// A helper that spawns: one spawn line, whoever calls it.
    #[inline(never)]
    fn spawn_worker() -> StackId {
        crate::capture::spawn_stack(Location::caller(), "app::worker")
    }

    #[inline(never)]
    fn via_a() -> StackId {
        black_box(spawn_worker())
    }

    #[inline(never)]
    fn via_b() -> StackId {
        black_box(spawn_worker())
    }

    /// Stands in for a task's poll: a boundary, then the two paths to the
    /// helper, each taken twice.
    #[inline(never)]
    fn poll_like(out: &mut Vec<StackId>) {
        let marker = 0u8;
        let boundary = black_box(&marker) as *const u8 as usize;
        let task = crate::capture::spawn_stack(Location::caller(), "app::handler");
        // SAFETY: `marker` is a local of this frame, which outlives the
        // scope and every spawn made under it.
        let _scope = unsafe { enter_poll(task, boundary) };
        for _ in 0..2 {
            out.push(black_box(via_a()));
            out.push(black_box(via_b()));
        }
    }

    #[test]
    fn a_helper_that_spawns_is_told_apart_by_its_callers() {
        assert_eq!(capture_mode(), CaptureMode::Cached);
        let mut ids = Vec::new();
        poll_like(&mut ids);
        let (a1, b1, a2, b2) = (ids[0], ids[1], ids[2], ids[3]);
        assert_ne!(a1, b1, "two paths to one spawn line are two stacks");
        assert_eq!((a1, b1), (a2, b2), "a path seen before is recognized");
        ids.clear();
        poll_like(&mut ids);
        assert_eq!(ids, [a1, b1, a1, b1]);
    }
}
