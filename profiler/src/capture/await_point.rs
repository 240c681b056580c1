//! Await points: where inside its poll a task is suspended.
//!
//! An await point is the chain of frames inside a task's poll, from the
//! task's future down to the future that took the task's waker: a timer, a
//! socket, a channel or a lock clones the waker (or calls `wake_by_ref`, to
//! yield) from exactly there, with every async fn that led to it still on
//! the machine stack below the poll boundary. The executor hands each poll
//! a waker of its own and calls [`await_point`] from that waker's `clone`;
//! this module turns the machine stack at that moment into a [`StackId`]:
//! the task's stack, the frames of the poll, and a last key saying what was
//! awaited ([`Awaited`]), all resolved to names only when a profile is
//! written.
//!
//! # Cost
//!
//! Unwinding costs a microsecond or more, and a busy task registers a waker
//! on nearly every poll, so the default mode ([`AwaitMode::Cached`])
//! unwinds once per distinct await point and then recognizes it without
//! unwinding:
//!
//! - The **key** is what is known for free: the task's stack, what the code
//!   being polled says it awaits (a child task, `yield_now`), and the depth
//!   of the machine stack, from the poll boundary down to a local of the
//!   capturing function.
//! - A key can hold several await points (two async fns that await a timer
//!   the same way may sit at the same depth), so each one comes with its
//!   **signature**: where on the stack, relative to that local, the return
//!   address of each of its frames lies, and what it is. A later capture
//!   with the same key reads those few slots; when every one holds the
//!   recorded address, the chain of calls is the same one, frame for frame,
//!   and so is the await point. That costs one load per frame.
//! - Only when no signature matches is the stack unwound, and the new
//!   signature kept, in a thread-local map (no lock on a hit) backed by a
//!   global one (a point seen on one worker is not unwound again on each).
//!   In front of the thread-local map, a small direct-mapped table holds
//!   the points the thread found last: a capture is mostly of a point seen
//!   a moment ago, by this task or one like it. In front of that, each
//!   task keeps the point it registered last ([`LastAwait`]): a task that
//!   waits at the same await point poll after poll checks that one point's
//!   key and signature, and nothing else.
//!
//! [`AwaitMode::Full`] unwinds at every capture (to check the default
//! against), and [`AwaitMode::Off`] captures nothing: idle time then stays
//! on the task's leaf, as before await points existed.

use super::context::{current_stack, poll_boundary};
use super::intern::{intern, Awaited, FastMap, FrameKey};
use super::signature::{walk_chain, Signature};
use super::StackId;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering::Relaxed};
use std::sync::{LazyLock, Mutex, PoisonError};

thread_local! {
    /// What the code being polled on this thread says it awaits.
    static AWAITING: Cell<Awaited> = const { Cell::new(Awaited::Frames) };
}

/// Puts back what was awaited before, when dropped; see [`awaiting_task`].
#[must_use = "the await is named only while the scope lives"]
pub struct AwaitScope {
    previous: Awaited,
    _not_send: PhantomData<*const ()>,
}

impl Drop for AwaitScope {
    #[inline]
    fn drop(&mut self) {
        AWAITING.with(|a| a.set(self.previous));
    }
}

fn awaiting_scope(awaited: Awaited) -> AwaitScope {
    AwaitScope {
        previous: AWAITING.with(|a| a.replace(awaited)),
        _not_send: PhantomData,
    }
}

/// Says that waker clones made on this thread while the scope lives are
/// made by a join handle awaiting the task whose logical stack is `task`:
/// the await point is then named after that task, which the frames of the
/// join handle's poll cannot tell. One thread-local write, and one to put
/// it back.
#[inline]
pub fn awaiting_task(task: StackId) -> AwaitScope {
    awaiting_scope(Awaited::Task(task))
}

/// Says that waker clones (and `wake_by_ref` calls) made on this thread
/// while the scope lives await `name`, such as `"theseus::task::yield_now"`:
/// for the executor's own futures, whose frames resolution removes.
#[inline]
pub fn awaiting(name: &'static str) -> AwaitScope {
    awaiting_scope(Awaited::Named(name))
}

/// How await points are found (`THESEUS_AWAITS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AwaitMode {
    /// Unwind once per distinct await point, then recognize it by reading
    /// the return addresses it left on the stack (a load per frame). Exact:
    /// see the module docs. The default (`THESEUS_AWAITS=default`).
    #[default]
    Cached,
    /// Unwind at every waker registration: the reference the default is
    /// checked against, and slow (a microsecond or more per pending poll).
    Full,
    /// No await points: a task's idle time stays on its leaf.
    Off,
}

impl AwaitMode {
    /// The name `THESEUS_AWAITS` accepts for this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            AwaitMode::Cached => "default",
            AwaitMode::Full => "full",
            AwaitMode::Off => "off",
        }
    }
}

impl fmt::Display for AwaitMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// 0 until set (the default), else `1 +` the mode's index.
static MODE: AtomicU8 = AtomicU8::new(0);

const fn mode_code(mode: AwaitMode) -> u8 {
    match mode {
        AwaitMode::Cached => 1,
        AwaitMode::Full => 2,
        AwaitMode::Off => 3,
    }
}

/// Sets how await points are found, in the whole process, from now on.
pub fn set_await_mode(mode: AwaitMode) {
    MODE.store(mode_code(mode), Relaxed);
}

/// The await mode in force: [`AwaitMode::Cached`] until [`set_await_mode`]
/// is called (a [`crate::Session`] calls it with `THESEUS_AWAITS`, read by
/// [`crate::config`]).
#[inline]
pub fn await_mode() -> AwaitMode {
    match MODE.load(Relaxed) {
        2 => AwaitMode::Full,
        3 => AwaitMode::Off,
        _ => AwaitMode::Cached,
    }
}

/// The await point being registered now, by the poll running on this
/// thread: the task's stack ([`current_stack`]), the machine frames from the
/// poll boundary down to the caller, and what is awaited. `None` when no
/// poll runs here or the mode is [`AwaitMode::Off`].
///
/// Meant for a task's waker, called from its `clone` (and `wake_by_ref`)
/// while the task's own poll runs. Never looks up a symbol; in the default
/// mode, a point seen before costs a hash lookup and a load per frame.
#[inline]
pub fn await_point() -> Option<StackId> {
    await_point_after(&LastAwait::new())
}

/// [`await_point`], for a task that keeps the await point it registered
/// last in `last`: when the stack holds that point again, it is recognized
/// by its key and signature alone, without a lookup. `last` holds the point
/// found now, afterwards.
///
/// ```
/// use theseus_profiler::{await_point_after, LastAwait};
///
/// let last = LastAwait::new();
/// // No poll runs on this thread: no await point, and nothing kept.
/// assert_eq!(await_point_after(&last), None);
/// ```
#[inline]
pub fn await_point_after(last: &LastAwait) -> Option<StackId> {
    let mode = MODE.load(Relaxed);
    let boundary = poll_boundary();
    if mode == mode_code(AwaitMode::Off) || boundary == 0 {
        return None;
    }
    Some(locate(boundary, mode == mode_code(AwaitMode::Full), last))
}

/// The await point a task registered last, kept with the task (see
/// [`await_point_after`]). Any thread may hold and pass it: what it holds
/// is checked in full against the stack before it is used, so a stale or
/// another task's point is only a miss.
///
/// ```
/// use theseus_profiler::LastAwait;
///
/// // One per task, beside its header: a pointer, null until the task's
/// // waker is first cloned at an await point.
/// let last = LastAwait::default();
/// # let _ = last;
/// ```
pub struct LastAwait {
    point: AtomicPtr<Candidate>,
    /// The holder's note on `point` (see [`LastAwait::note`]).
    note: AtomicU8,
}

impl LastAwait {
    /// Holding no point yet.
    pub const fn new() -> LastAwait {
        LastAwait {
            point: AtomicPtr::new(ptr::null_mut()),
            note: AtomicU8::new(0),
        }
    }

    /// The note the holder kept with the point held now (0: none), which
    /// [`await_point_after`] clears whenever the point it finds is not the
    /// one held before (and lets that one go): a note set after a capture
    /// then stays true of every later capture that finds the same point,
    /// until one finds another.
    /// The executor notes the tag its task gave the point, and does not
    /// look it up again while the task waits there.
    ///
    /// ```
    /// use theseus_profiler::LastAwait;
    ///
    /// let last = LastAwait::new();
    /// assert_eq!(last.note(), 0);
    /// last.set_note(3);
    /// assert_eq!(last.note(), 3);
    /// ```
    #[inline]
    pub fn note(&self) -> u8 {
        self.note.load(Relaxed)
    }

    /// Keeps `note` with the point held now: see [`LastAwait::note`].
    #[inline]
    pub fn set_note(&self, note: u8) {
        self.note.store(note, Relaxed);
    }

    #[inline]
    fn get(&self) -> Option<&'static Candidate> {
        // SAFETY: only `set` stores here, and only `'static` candidates
        // (or the null it starts with).
        unsafe { self.point.load(Relaxed).as_ref() }
    }

    /// Holds no point, and no note.
    #[inline]
    fn forget(&self) {
        self.point.store(ptr::null_mut(), Relaxed);
        self.note.store(0, Relaxed);
    }

    #[inline]
    fn set(&self, candidate: &'static Candidate) {
        self.point
            .store(ptr::from_ref(candidate).cast_mut(), Relaxed);
    }
}

impl Default for LastAwait {
    fn default() -> LastAwait {
        LastAwait::new()
    }
}

/// Most signatures kept under one key. More than a few means a key that
/// tells await points apart badly; past this, new points are unwound each
/// time (exact, only slower).
const MAX_CANDIDATES: usize = 16;

/// What the cache is keyed on: task stack, stack depth, what is awaited.
type Key = (StackId, usize, Awaited);

/// One await point as it lies on the stack: each frame's return address
/// and its slot, as an offset from the capturing function's local. Kept
/// for the life of the process, as the interned stacks are: there are as
/// many as distinct await points, each made once.
struct Candidate {
    key: Key,
    signature: Signature,
    id: StackId,
}

impl Candidate {
    /// Whether this candidate is under `key`: compared field by field, a
    /// named await by its address first (the name is nearly always the
    /// same `&'static str`), then its text.
    #[inline]
    fn is_under(&self, key: &Key) -> bool {
        let (task, depth, awaited) = key;
        self.key.0 == *task
            && self.key.1 == *depth
            && match (self.key.2, *awaited) {
                (Awaited::Named(a), Awaited::Named(b)) => ptr::eq(a, b) || a == b,
                (a, b) => a == b,
            }
    }

    /// Whether the stack above `base` holds this candidate's chain now.
    #[inline]
    fn matches(&self, base: usize) -> bool {
        // SAFETY: `base` is a local of `locate`, whose frame runs this (or
        // `search`, called from it through `locate_again`), and every
        // candidate was made by `unwind_point` called from there with
        // `locate`'s local as its base, at the depth below the poll boundary that is
        // part of its key; callers check that the key is this capture's
        // (by the map they look in, or `is_under`).
        unsafe { self.signature.matches(base) }
    }
}

type Candidates = Vec<&'static Candidate>;

thread_local! {
    /// This thread's view of [`GLOBAL`]: hits need no lock.
    static LOCAL: RefCell<FastMap<Key, Candidates>> = RefCell::new(FastMap::default());
    /// The points this thread found last, by a hash of their keys: most
    /// captures are of a point seen a moment ago, and a slot is cheaper
    /// to check than a hash map.
    static RECENT: RefCell<[Option<Recent>; RECENT_SLOTS]> =
        const { RefCell::new([const { None }; RECENT_SLOTS]) };
}

/// A point found lately (its key is in it).
type Recent = &'static Candidate;

/// Slots in [`RECENT`]: a power of two.
const RECENT_SLOTS: usize = 64;

/// The [`RECENT`] slot of `key`.
#[inline]
fn recent_slot(key: &Key) -> usize {
    let awaited = match key.2 {
        Awaited::Frames => 0,
        Awaited::Task(task) => u64::from(task.0) + 1,
        Awaited::Named(name) => name.as_ptr() as u64,
    };
    let h = (u64::from(key.0 .0) ^ (key.1 as u64).rotate_left(20) ^ awaited.rotate_left(40))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> (64 - RECENT_SLOTS.trailing_zeros())) as usize
}

/// Every signature found so far, shared between threads.
static GLOBAL: LazyLock<Mutex<FastMap<Key, Candidates>>> =
    LazyLock::new(|| Mutex::new(FastMap::default()));

/// The await point of the stack above this frame; see the module docs.
///
/// Never inlined: `marker`, a local of this frame, is what the stack depth
/// and the signatures' slots are measured from, so this frame must be laid
/// out the same way at every call. Only the point `last` holds is checked
/// here; the rest is in [`locate_again`], out of line, so that this frame
/// stays small (it saves no registers).
#[inline(never)]
fn locate(boundary: usize, full: bool, last: &LastAwait) -> StackId {
    let marker = 0u8;
    let base = std::hint::black_box(&marker) as *const u8 as usize;
    if !full {
        if let Some(candidate) = last.get() {
            if candidate.is_under(&key_here(boundary, base)) && candidate.matches(base) {
                return candidate.id;
            }
        }
    }
    locate_again(boundary, full, last, base)
}

/// The key of a capture whose [`locate`] frame's local is at `base`: the
/// thread's task, the depth, what it awaits. The depth wraps when `base`
/// is not below the boundary (a capture that is never cached), and then is
/// under no candidate's key: theirs are all below it.
#[inline(always)]
fn key_here(boundary: usize, base: usize) -> Key {
    (
        current_stack(),
        boundary.wrapping_sub(base),
        AWAITING.with(Cell::get),
    )
}

/// [`locate`], when the point `last` holds is not the one on the stack
/// above `base` (a local of `locate`, which calls this): `last` lets it go
/// (and its note, which was on it), and holds the point found, if cached.
#[cold]
#[inline(never)]
fn locate_again(boundary: usize, full: bool, last: &LastAwait, base: usize) -> StackId {
    last.forget();
    let key = key_here(boundary, base);
    if full || base >= boundary {
        return unwind_point(key.0, key.2, boundary, base).0;
    }
    match search(key, boundary, base) {
        Ok(candidate) => {
            last.set(candidate);
            candidate.id
        }
        Err(uncached) => uncached,
    }
}

/// The await point under `key` that the stack above `base` holds: from
/// this thread's [`RECENT`] points, its [`LOCAL`] map, [`GLOBAL`], or else
/// unwound to `boundary`. `Err` with the point's stack when it is not to be
/// cached (see [`shared_or_unwound`]). `base` is a local of [`locate`],
/// whose [`locate_again`] calls this.
#[inline(never)]
fn search(key: Key, boundary: usize, base: usize) -> Result<&'static Candidate, StackId> {
    let slot = recent_slot(&key);
    let recent = RECENT
        .try_with(|r| r.borrow()[slot].filter(|c| c.is_under(&key) && c.matches(base)))
        .ok()
        .flatten();
    if let Some(candidate) = recent {
        return Ok(candidate);
    }
    let local = LOCAL
        .try_with(|l| {
            let l = l.borrow();
            l.get(&key)?.iter().find(|c| c.matches(base)).copied()
        })
        .ok()
        .flatten();
    if let Some(candidate) = local {
        remember_recent(slot, candidate);
        return Ok(candidate);
    }
    let (task, _, awaited) = key;
    let unwind = || unwind_point(task, awaited, boundary, base);
    let candidate = shared_or_unwound(key, base, unwind)?;
    let _ = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        let all = l.entry(key).or_default();
        if all.len() < MAX_CANDIDATES {
            all.push(candidate);
        }
    });
    remember_recent(slot, candidate);
    Ok(candidate)
}

/// Keeps `candidate` in this thread's [`RECENT`] slot `slot`.
#[inline(always)]
fn remember_recent(slot: usize, candidate: &'static Candidate) {
    let _ = RECENT.try_with(|r| r.borrow_mut()[slot] = Some(candidate));
}

/// The await point under `key` that the stack above `base` holds, from
/// [`GLOBAL`], or else from `unwind`, kept in [`GLOBAL`] then (and for the
/// life of the process). `Err` with the point's stack when it is not to be
/// cached: no signature, or too many under this key.
#[inline(always)]
fn shared_or_unwound(
    key: Key,
    base: usize,
    unwind: impl FnOnce() -> (StackId, Option<Signature>),
) -> Result<&'static Candidate, StackId> {
    let shared: Option<&'static Candidate> = GLOBAL
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .and_then(|all| all.iter().find(|c| c.matches(base)).copied());
    if let Some(candidate) = shared {
        return Ok(candidate);
    }
    let (id, signature) = unwind();
    let signature = signature.ok_or(id)?;
    let mut global = GLOBAL.lock().unwrap_or_else(PoisonError::into_inner);
    let all = global.entry(key).or_default();
    if all.len() >= MAX_CANDIDATES {
        return Err(id);
    }
    let candidate: &'static Candidate = Box::leak(Box::new(Candidate { key, signature, id }));
    all.push(candidate);
    Ok(candidate)
}

/// Unwinds from here to `boundary` and interns the await point; also
/// returns its signature relative to `base`, unless some frame's return
/// address could not be found on the stack (then the point is exact but
/// not cached).
#[inline(never)]
fn unwind_point(
    task: StackId,
    awaited: Awaited,
    boundary: usize,
    base: usize,
) -> (StackId, Option<Signature>) {
    let (ips, signature) = walk_chain(base, boundary);
    let mut keys = Vec::with_capacity(ips.len() + 1);
    keys.extend(ips.into_iter().map(FrameKey::Ip));
    // A joined task is named by its own spawn and leaf: the tasks above it
    // name nothing here, and awaits alike at every depth of a chain of
    // tasks then end in one key, resolved once.
    let awaited = match awaited {
        Awaited::Task(task) => Awaited::Task(super::intern::last_segment(task)),
        other => other,
    };
    keys.push(FrameKey::Await(awaited));
    (intern(task, &keys), signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::enter_poll;

    /// Stands in for a task's poll: a boundary, then a call chain.
    #[inline(never)]
    fn poll_like(depth: usize, out: &mut Vec<StackId>) {
        let marker = 0u8;
        let boundary = std::hint::black_box(&marker) as *const u8 as usize;
        let task = crate::capture::spawn_stack(std::panic::Location::caller(), "app::a_or_b");
        // SAFETY: `marker` is a local of this frame, which outlives the scope.
        let _scope = unsafe { enter_poll(task, boundary) };
        // Two different chains, each registered twice: `a` and `b` may
        // sit at the same depth, and must still be told apart.
        for _ in 0..2 {
            out.push(std::hint::black_box(a(depth)));
            out.push(std::hint::black_box(b(depth)));
        }
    }

    #[inline(never)]
    fn a(depth: usize) -> StackId {
        if depth > 0 {
            return std::hint::black_box(a(depth - 1));
        }
        await_point().unwrap()
    }

    #[inline(never)]
    fn b(depth: usize) -> StackId {
        if depth > 0 {
            return std::hint::black_box(b(depth - 1));
        }
        await_point().unwrap()
    }

    /// Held by the tests that set the process's await mode, and by those
    /// whose results depend on it.
    static MODE_SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn the_same_chain_is_recognized_and_different_chains_are_told_apart() {
        let _serial = MODE_SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(await_point(), None, "no poll runs here");
        let mut ids = Vec::new();
        poll_like(3, &mut ids);
        let (a1, b1, a2, b2) = (ids[0], ids[1], ids[2], ids[3]);
        assert_eq!(a1, a2, "one chain, one await point");
        assert_eq!(b1, b2);
        assert_ne!(a1, b1, "two chains at one depth are two points");
        // The cached answer is the one unwinding gives.
        ids.clear();
        set_await_mode(AwaitMode::Full);
        poll_like(3, &mut ids);
        set_await_mode(AwaitMode::Cached);
        assert_eq!((ids[0], ids[1]), (a1, b1));
        // A deeper chain is another await point.
        ids.clear();
        poll_like(4, &mut ids);
        assert_ne!(ids[0], a1);
        assert_eq!(ids[0], ids[2]);
    }

    /// As [`poll_like`], the chains registered as one task does, keeping
    /// its last point: `a`, `a` again (found from the point kept), then
    /// `b` at the same depth (the point kept is `a`'s: checked, and passed
    /// over), `b` again, and `a`.
    #[inline(never)]
    fn task_like(depth: usize, out: &mut Vec<StackId>) {
        let marker = 0u8;
        let boundary = std::hint::black_box(&marker) as *const u8 as usize;
        let task = crate::capture::spawn_stack(std::panic::Location::caller(), "app::task_like");
        // SAFETY: `marker` is a local of this frame, which outlives the scope.
        let _scope = unsafe { enter_poll(task, boundary) };
        let last = LastAwait::new();
        for chain in [a_after, a_after, b_after, b_after, a_after] {
            out.push(std::hint::black_box(chain(depth, &last)));
        }
    }

    #[inline(never)]
    fn a_after(depth: usize, last: &LastAwait) -> StackId {
        if depth > 0 {
            return std::hint::black_box(a_after(depth - 1, last));
        }
        await_point_after(last).unwrap()
    }

    #[inline(never)]
    fn b_after(depth: usize, last: &LastAwait) -> StackId {
        if depth > 0 {
            return std::hint::black_box(b_after(depth - 1, last));
        }
        await_point_after(last).unwrap()
    }

    #[test]
    fn the_point_a_task_kept_names_only_its_own_chain() {
        let _serial = MODE_SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let mut kept = Vec::new();
        task_like(3, &mut kept);
        assert_eq!(kept[0], kept[1], "one chain, one await point");
        assert_ne!(kept[1], kept[2], "another chain at the same depth");
        assert_eq!((kept[2], kept[4]), (kept[3], kept[0]));
        // What unwinding gives, every time.
        let mut unwound = Vec::new();
        set_await_mode(AwaitMode::Full);
        task_like(3, &mut unwound);
        set_await_mode(AwaitMode::Cached);
        assert_eq!(kept, unwound);
    }

    /// As [`task_like`], with what the task noted after each capture: a
    /// note set whenever the point found came without one, then, with
    /// the point held, one capture in [`AwaitMode::Full`].
    #[inline(never)]
    fn noting_task_like(depth: usize, out: &mut Vec<(StackId, u8)>) {
        let marker = 0u8;
        let boundary = std::hint::black_box(&marker) as *const u8 as usize;
        let task = crate::capture::spawn_stack(std::panic::Location::caller(), "app::noting");
        // SAFETY: `marker` is a local of this frame, which outlives the scope.
        let _scope = unsafe { enter_poll(task, boundary) };
        let last = LastAwait::new();
        let chains = [a_after, a_after, b_after, b_after, a_after, a_after];
        for (note, chain) in (1u8..).zip(chains) {
            let id = std::hint::black_box(chain(depth, &last));
            out.push((id, last.note()));
            if last.note() == 0 {
                last.set_note(note);
            }
        }
        set_await_mode(AwaitMode::Full);
        let id = std::hint::black_box(a_after(depth, &last));
        set_await_mode(AwaitMode::Cached);
        out.push((id, last.note()));
    }

    #[test]
    fn a_note_stays_with_its_point_only() {
        let _serial = MODE_SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seen = Vec::new();
        noting_task_like(3, &mut seen);
        let notes: Vec<u8> = seen.iter().map(|&(_, note)| note).collect();
        // The note made after the first `a` stays with `a` while `a` is
        // found again, goes when `b` is found, and is not `b`'s: each
        // point comes back without a note the first time.
        assert_eq!(notes, [0, 1, 0, 3, 0, 5, 0], "{seen:?}");
        let (a, b) = (seen[0].0, seen[2].0);
        assert_ne!(a, b);
        assert!(seen
            .iter()
            .enumerate()
            .all(|(i, &(id, _))| id == if (2..4).contains(&i) { b } else { a }));
    }

    #[inline(never)]
    fn here() -> StackId {
        await_point().unwrap()
    }

    #[test]
    fn what_is_awaited_is_part_of_the_point() {
        let marker = 0u8;
        let boundary = std::hint::black_box(&marker) as *const u8 as usize;
        let task = crate::capture::spawn_stack(std::panic::Location::caller(), "app::named");
        // SAFETY: `marker` is a local of this frame, which outlives the scope.
        let _scope = unsafe { enter_poll(task, boundary) };
        let mut ids = Vec::new();
        for awaited in [
            None,
            Some(Awaited::Named("theseus::task::yield_now")),
            Some(Awaited::Task(StackId(5))),
            None,
        ] {
            let _awaiting = awaited.map(awaiting_scope);
            ids.push(here());
        }
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
        assert_ne!(ids[0], ids[2]);
        assert_eq!(ids[3], ids[0], "the scope was put back");
    }
}
