//! Resolution at write time: symbols for each distinct instruction pointer
//! (looked up once, then cached), the filters that take the runtime and
//! std's plumbing out, and the name cleanup.

use super::intern::{self, FastMap, FrameKey, Leaf};
use super::{ResolvedFrame, StackId};
use std::ffi::c_void;
use std::panic::Location;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

/// One source-level frame of a machine frame (inlined calls give several).
#[derive(Debug)]
pub(super) struct Symbol {
    /// Demangled, without hash; `None` when the address has no symbol.
    pub(super) name: Option<String>,
    pub(super) file: Option<String>,
    pub(super) line: u32,
}

/// Symbols of every instruction pointer resolved so far, outermost first.
static SYMBOLS: LazyLock<Mutex<FastMap<usize, Arc<[Symbol]>>>> =
    LazyLock::new(|| Mutex::new(FastMap::default()));

/// The source frames at return address `ip`, outermost (the machine frame's
/// own function) first, inlined callees after it.
pub(super) fn symbolize(ip: usize) -> Arc<[Symbol]> {
    if let Some(s) = SYMBOLS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&ip)
    {
        return s.clone();
    }
    let mut frames = Vec::new();
    // `backtrace::resolve` looks up `ip - 1`: a return address points after
    // the call, and the call's line is the one wanted. It reports inlined
    // frames innermost first.
    backtrace::resolve(ip as *mut c_void, |sym| {
        frames.push(Symbol {
            name: sym.name().map(|n| demangle(n.as_bytes())),
            file: sym.filename().map(|p| p.to_string_lossy().into_owned()),
            line: sym.lineno().unwrap_or(0),
        });
    });
    frames.reverse();
    let frames: Arc<[Symbol]> = frames.into();
    SYMBOLS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(ip, frames.clone());
    frames
}

/// A symbol name demangled without its hash (`{:#}`), or as it is when it
/// is not a Rust symbol.
fn demangle(raw: &[u8]) -> String {
    let raw = String::from_utf8_lossy(raw);
    match rustc_demangle::try_demangle(&raw) {
        Ok(d) => format!("{d:#}"),
        Err(_) => raw.into_owned(),
    }
}

/// See [`crate::resolve`].
pub(crate) fn resolve(id: StackId) -> Vec<ResolvedFrame> {
    // Segment by segment from the innermost, without recursion: a chain of
    // tasks may be many thousands deep.
    let mut segments = Vec::new();
    let mut cur = id;
    while let Some(segment) = intern::segment(cur) {
        cur = segment.parent;
        segments.push(segment);
    }
    let cwd = std::env::current_dir().ok();
    let mut out = Vec::new();
    for segment in segments.iter().rev() {
        out.extend(resolve_segment(&segment.keys, cwd.as_deref()));
    }
    out
}

/// The frames of one segment of a logical stack (see [`intern::segment`]):
/// the user frames of one poll, down to the spawn call, and the spawned
/// task's leaf; or, for an await point, the frames of the poll that
/// registered the waker and the `[await]` leaf (see `awaited`). What a segment resolves to depends on its keys only, so a
/// profile resolves each distinct segment once, however many stacks share
/// it. Files under `cwd` are written relative to it.
pub(crate) fn resolve_segment(keys: &[FrameKey], cwd: Option<&Path>) -> Vec<ResolvedFrame> {
    let mut out = Vec::new();
    let mut ips = Vec::new();
    let mut site: Option<SpawnSite> = None;
    for key in keys {
        match *key {
            FrameKey::Ip(ip) => ips.push(ip),
            FrameKey::Location(loc) => {
                site = Some(poll_frames(&ips, Some(loc), cwd, &mut out));
                ips.clear();
            }
            FrameKey::Leaf(leaf) => {
                if !ips.is_empty() {
                    poll_frames(&ips, None, cwd, &mut out);
                    ips.clear();
                }
                out.push(leaf_frame(leaf, site.take(), cwd));
            }
            FrameKey::Await(awaited) => {
                super::awaited::append(&ips, awaited, &mut out);
                ips.clear();
            }
        }
    }
    if !ips.is_empty() {
        poll_frames(&ips, None, cwd, &mut out);
    }
    if let Some(cwd) = cwd {
        for frame in &mut out {
            relative_to(cwd, &mut frame.file);
        }
    }
    out
}

/// Writes `file` relative to `dir` when it lies inside it.
///
/// Debug info spells a file absolute, `#[track_caller]` relative to the
/// build directory, and `callgrind_annotate` strips its working directory
/// from a function's file but not from a call's target file: an absolute
/// path under the directory it runs in would split one function into two.
/// The profile is written by a program that usually runs where it was built,
/// so relative paths are the ones every reader agrees on.
fn relative_to(dir: &Path, file: &mut String) {
    let Some(dir) = dir.to_str() else { return };
    if let Some(rest) = file.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) {
        *file = rest.to_string();
    }
}

/// `file` as [`relative_to`] writes it.
fn shown_file(file: &str, cwd: Option<&Path>) -> String {
    let mut file = file.to_string();
    if let Some(cwd) = cwd {
        relative_to(cwd, &mut file);
    }
    file
}

/// Where a task was spawned, as found in the spawning poll's frames.
struct SpawnSite {
    /// The spawn call's file, spelled as its frame spells it, and line.
    file: String,
    line: u32,
    /// The function that called `spawn`: its name as debug info gives it
    /// (bare names qualified), and as shown. `None` when no frame of the
    /// spawning poll was resolved.
    spawner: Option<(String, String)>,
}

/// Set once a profile had to name a frame without full debug info: bare
/// names (`line-tables-only`) or no names and lines at all (no debug info).
static DEGRADED: AtomicBool = AtomicBool::new(false);

/// Whether a frame resolved so far was named without full debug info, so
/// that some names are qualified by file and line, or stand for a spawn
/// location only. See [`crate::Session`], which then says how to fix it.
pub(crate) fn names_degraded() -> bool {
    DEGRADED.load(Relaxed)
}

#[cfg(test)]
pub(crate) fn mark_names_degraded() {
    DEGRADED.store(true, Relaxed);
}

/// Appends the user frames of one poll, from the poll boundary (or the
/// thread's entry) down to the spawn call, captured as `ips` (outermost
/// first), with the spawn call's line from `location`. Returns where the
/// spawn call is.
fn poll_frames(
    ips: &[usize],
    location: Option<&Location<'static>>,
    cwd: Option<&Path>,
    out: &mut Vec<ResolvedFrame>,
) -> SpawnSite {
    let symbols: Vec<Arc<[Symbol]>> = ips.iter().map(|&ip| symbolize(ip)).collect();
    let frames: Vec<&Symbol> = symbols.iter().flat_map(|s| s.iter()).collect();
    let location = location.map(|l| (l.file(), l.line()));
    user_frames(frames, location, cwd, out)
}

/// [`poll_frames`] once the addresses are symbolized: `frames` is every
/// source frame of the poll, outermost first, and `location` the spawn
/// call's file and line.
fn user_frames(
    mut frames: Vec<&Symbol>,
    location: Option<(&str, u32)>,
    cwd: Option<&Path>,
    out: &mut Vec<ResolvedFrame>,
) -> SpawnSite {
    let polled = !frames.is_empty();

    // Outer cut: a thread's entry (std's short-backtrace marker, which both
    // `main` and spawned threads go through) and everything above it.
    if let Some(i) = frames
        .iter()
        .rposition(|f| f.name.as_deref().is_some_and(is_entry))
    {
        frames.drain(..=i);
    }
    // Inner cut: everything deeper than the innermost user frame is the
    // spawn call itself (facade, executor, profiler, unwinder) and std's
    // glue between them. The user frame is found by the spawn location's
    // file (and line, when it agrees), which works with unqualified names
    // too; failing that, by name and file.
    let user = |f: &Symbol| !is_internal(f.name.as_deref().unwrap_or(""), f.file.as_deref());
    let in_loc_file = |f: &Symbol| {
        location.is_some_and(|(loc_file, _)| {
            f.file
                .as_deref()
                .is_some_and(|file| same_file(file, loc_file))
        })
    };
    let innermost = frames
        .iter()
        .rposition(|f| user(f) && in_loc_file(f) && location.is_some_and(|(_, l)| l == f.line))
        .or_else(|| frames.iter().rposition(|f| user(f) && in_loc_file(f)))
        .or_else(|| {
            frames.iter().rposition(|f| {
                f.name
                    .as_deref()
                    .is_some_and(|name| !is_spawn_machinery(name, f.file.as_deref()))
            })
        });
    frames.truncate(innermost.map_or(0, |i| i + 1));

    // Each kept frame, with its name as debug info gives it (bare names
    // qualified), before closures are folded into their function.
    let mut kept: Vec<(ResolvedFrame, String)> = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let Some(name) = f.name.as_deref() else {
            continue;
        };
        let file = f.file.as_deref();
        if is_internal(name, file) || is_plumbing(name, file) || is_startup(name, file) {
            continue;
        }
        let raw = if is_bare(name) {
            DEGRADED.store(true, Relaxed);
            let caller = i.checked_sub(1).and_then(|p| {
                let frame = frames[p];
                Some((frame.name.as_deref()?, frame.file.as_deref()))
            });
            qualify_bare(name, caller).unwrap_or_else(|| {
                let file = shown_file(file.unwrap_or("???"), cwd);
                if is_generated(base_name(name)) {
                    format!("{} ({file}:{})", base_name(name), f.line)
                } else {
                    format!("{name} ({file})")
                }
            })
        } else {
            name.to_string()
        };
        let frame = ResolvedFrame {
            function: function_name(&raw),
            file: f.file.clone().unwrap_or_else(|| "???".to_string()),
            line: f.line,
        };
        // `handler::{{closure}}` and `handler` both read `handler`: keep one,
        // with the deeper position (the call made from it).
        match kept.last_mut() {
            Some((prev, prev_raw)) if prev.function == frame.function => {
                if frame.line != 0 {
                    *prev = frame;
                    *prev_raw = raw;
                }
            }
            _ => kept.push((frame, raw)),
        }
    }
    if polled && kept.iter().all(|(f, _)| f.file == "???") {
        // No debug info: the spawn location below stands for the frames.
        DEGRADED.store(true, Relaxed);
    }

    let mut site = SpawnSite {
        file: "???".to_string(),
        line: 0,
        spawner: None,
    };
    if let Some((loc_file, loc_line)) = location {
        // The `#[track_caller]` location is exact where a return address is
        // only near the call: put it on the innermost frame of its file.
        let own = kept
            .iter_mut()
            .rev()
            .find(|(f, _)| same_file(&f.file, loc_file));
        match own {
            Some((f, raw)) => {
                f.line = loc_line;
                site = SpawnSite {
                    file: f.file.clone(),
                    line: f.line,
                    spawner: Some((raw.clone(), f.function.clone())),
                };
            }
            None => match kept.last_mut() {
                // No debug info for files: the innermost frame is the caller.
                Some((f, raw)) if f.file == "???" => {
                    f.file = loc_file.to_string();
                    f.line = loc_line;
                    site = SpawnSite {
                        file: f.file.clone(),
                        line: f.line,
                        spawner: Some((raw.clone(), f.function.clone())),
                    };
                }
                _ => {
                    site.file = loc_file.to_string();
                    site.line = loc_line;
                    kept.push((
                        ResolvedFrame {
                            function: format!("{loc_file}:{loc_line}"),
                            file: loc_file.to_string(),
                            line: loc_line,
                        },
                        String::new(),
                    ));
                }
            },
        }
    }
    out.extend(kept.into_iter().map(|(f, _)| f));
    site
}

/// The name without generic arguments: `{closure#0}<u64>` is `{closure#0}`.
fn base_name(name: &str) -> &str {
    name.split('<').next().unwrap_or(name)
}

/// A name without a path, as debug info with line tables only gives them:
/// `{async_fn#0}`, `run`. Such names are not unique in a program.
fn is_bare(name: &str) -> bool {
    !name.starts_with('<') && !base_name(name).contains("::")
}

/// A name the compiler made up for a closure, an async fn's or block's body
/// or a coroutine: `{closure#0}`, `{async_fn#0}`, `{async_block#1}`.
fn is_generated(name: &str) -> bool {
    name.strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|inner| inner.split_once('#'))
        .is_some_and(|(kind, n)| {
            !kind.is_empty()
                && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        })
}

/// The full path of a bare compiler-made name, from the frame that called
/// it: a generic caller names the closure or future it runs among its type
/// arguments (`poll_below_boundary<app::serve::{async_fn_env#0}>` runs
/// `app::serve`'s body, `{async_fn#0}`). `None` unless exactly one path
/// matches.
///
/// A caller's type arguments name its callee only when the caller is code
/// that runs what it is given (the executor, std, a library): a closure or
/// async body written in the same crate as the path, or in the program's
/// own code, carries the type parameters of the function it is written in
/// (tokio's `select!` expands a closure into `server::run<F>`, whose `F` is
/// `tokio::signal::ctrl_c`'s future, not what the closure calls).
fn qualify_bare(name: &str, caller: Option<(&str, Option<&str>)>) -> Option<String> {
    let base = base_name(name);
    if !is_generated(base) {
        return None;
    }
    let (kind, n) = base[1..base.len() - 1].split_once('#')?;
    let env = format!("::{{{kind}_env#{n}}}");
    let (caller, caller_file) = caller?;
    let caller_crate = caller_file.and_then(crate_of_file);
    if caller_crate.is_none() && is_generated(base_name(caller)) {
        return None;
    }
    let mut found: Option<&str> = None;
    let mut from = 0;
    while let Some(at) = caller[from..].find(&env) {
        let end = from + at;
        let start = caller[..end]
            .rfind(|c: char| !(c.is_alphanumeric() || "_:{}#".contains(c)))
            .map_or(0, |i| i + 1);
        let path = &caller[start..end];
        from = end + env.len();
        let path_crate = path.split("::").next().unwrap_or(path);
        if path.is_empty()
            || starts_with_any(path, STD_PATHS)
            || caller_crate.as_deref() == Some(path_crate)
        {
            continue;
        }
        match found {
            Some(other) if other != path => return None,
            _ => found = Some(path),
        }
    }
    found.map(|path| format!("{path}::{base}"))
}

/// The crate a source file belongs to, as a path's first segment spells
/// it, for files of std, of theseus and of registry crates; `None` for the
/// program's own files.
fn crate_of_file(file: &str) -> Option<String> {
    for (dir, krate) in [
        ("/library/core/src/", "core"),
        ("/library/std/src/", "std"),
        ("/library/alloc/src/", "alloc"),
    ] {
        if file.contains(dir) {
            return Some(krate.to_string());
        }
    }
    if own_dirs().iter().any(|d| file.starts_with(d.as_str())) {
        return Some("theseus".to_string());
    }
    // `.../registry/src/<index>/<crate>-<version>/...`
    let rest = &file[file.find("/registry/src/")? + "/registry/src/".len()..];
    let dir = rest.split('/').nth(1)?;
    let cut = dir.rfind('-')?;
    dir[cut + 1..]
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| dir[..cut].replace('-', "_"))
}

/// The frame of a spawned task: named after what was spawned (see
/// [`task_name`]), at the spawn call.
fn leaf_frame(leaf: Leaf, site: Option<SpawnSite>, cwd: Option<&Path>) -> ResolvedFrame {
    let (file, line, spawner) = match site {
        Some(site) => (site.file, site.line, site.spawner),
        None => ("???".to_string(), 0, None),
    };
    let at = (line != 0).then(|| format!("{}:{line}", shown_file(&file, cwd)));
    ResolvedFrame {
        function: task_name(leaf, at.as_deref(), spawner.as_ref()),
        file,
        line,
    }
}

/// A task's leaf: `[task] ` or `[blocking] ` and what it runs, so that
/// distinct tasks never share a name.
///
/// - An async fn's future reads as the function: `[task] app::serve`.
/// - An async block or closure reads as where it was written, which its
///   type alone does not tell apart from its siblings: `[task] async block
///   in app::serve (src/server.rs:40)`, `[blocking] closure in app::main
///   (src/main.rs:12)`.
/// - A type-erased future (`Pin<Box<dyn Future>>`) reads as its spawn site:
///   `[task] boxed future spawned in app::chain (src/chain.rs:9)`.
/// - Any other type reads as the type, closures inside it shown as their
///   function: `[task] tokio::time::Timeout<app::serve>`.
///
/// `at` is the spawn site (`file:line`), `spawner` the spawning function's
/// name as debug info gives it and as shown.
fn task_name(leaf: Leaf, at: Option<&str>, spawner: Option<&(String, String)>) -> String {
    let kind = if leaf.blocking {
        "[blocking]"
    } else {
        "[task]"
    };
    let at = at.map(|at| format!(" ({at})")).unwrap_or_default();
    let shown = leaf_name(leaf.type_name);
    let (path, closures) = strip_closures(leaf.type_name);
    let path = leaf_name(path);
    if leaf.blocking {
        return if closures > 0 {
            format!("{kind} closure in {path}{at}")
        } else {
            format!("{kind} {shown}")
        };
    }
    if is_type_erased(&shown) {
        return match spawner {
            Some((_, function)) => format!("{kind} boxed future spawned in {function}{at}"),
            None => format!("{kind} boxed future{at}"),
        };
    }
    // Two closure levels are a block inside an async fn or block. One is an
    // async fn's body, unless the function that spawned it is the plain
    // (not async) function of that name: then it is a block written there.
    let in_plain_fn = spawner.is_some_and(|(raw, _)| *raw == path);
    if closures >= 2 || (closures == 1 && in_plain_fn) {
        format!("{kind} async block in {path}{at}")
    } else {
        format!("{kind} {shown}")
    }
}

/// `type_name` without its trailing closure segments, and how many there
/// were: `app::main::{{closure}}::{{closure}}` is `("app::main", 2)`.
fn strip_closures(type_name: &str) -> (&str, usize) {
    let mut path = type_name;
    let mut closures = 0;
    while let Some(last) = path.rfind("::") {
        if path.ends_with('>') || !is_closure_segment(&path[last + 2..]) {
            break;
        }
        path = &path[..last];
        closures += 1;
    }
    (path, closures)
}

/// A future whose type names no function: `Pin<Box<dyn Future<..>>>`.
fn is_type_erased(shown: &str) -> bool {
    [
        "Pin<Box<dyn ",
        "Box<dyn ",
        "Pin<&mut dyn ",
        "Pin<&mut (dyn ",
    ]
    .iter()
    .any(|p| shown.starts_with(p))
}

/// Whether debug info's `a` and `#[track_caller]`'s `b` name the same file:
/// one may be absolute and the other relative to the build directory.
fn same_file(a: &str, b: &str) -> bool {
    fn ends_with_path(long: &str, short: &str) -> bool {
        long.strip_suffix(short)
            .is_some_and(|rest| rest.is_empty() || rest.ends_with('/') || rest.ends_with('\\'))
    }
    a == b || ends_with_path(a, b) || ends_with_path(b, a)
}

/// The type an impl method belongs to: `Self` of `<Self as Trait>::f` or of
/// `<Self>::f`, else the path itself. References and `dyn` are looked
/// through.
fn owner(name: &str) -> &str {
    let (self_ty, _) = impl_parts(name);
    self_ty
        .trim_start_matches('&')
        .trim_start_matches("mut ")
        .trim_start_matches("dyn ")
}

/// `(Self, Some(Trait))` of `<Self as Trait>::f`, `(Self, None)` of
/// `<Self>::f`, `(name, None)` otherwise.
pub(super) fn impl_parts(name: &str) -> (&str, Option<&str>) {
    let Some(inner) = name.strip_prefix('<') else {
        return (name, None);
    };
    let mut depth = 0usize;
    let mut as_at = None;
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' if depth == 0 => {
                return match as_at {
                    Some(a) => (&inner[..a], Some(&inner[a + 4..i])),
                    None => (&inner[..i], None),
                };
            }
            '>' => depth -= 1,
            ' ' if depth == 0 && as_at.is_none() && inner[i..].starts_with(" as ") => {
                as_at = Some(i);
            }
            _ => {}
        }
    }
    (name, None)
}

/// Release builds often carry line tables only: names are then unqualified
/// (`poll`, `{closure#0}`), and the source file is what tells whose code a
/// frame is. These work on the paths debug info gives: std's as
/// `/rustc/<hash>/library/...`, registry crates as `.../<crate>-<version>/...`.
///
/// The path inside crate `krate` (given as `"name-"`) that `file` is in.
pub(super) fn crate_file<'a>(file: &'a str, krate: &str) -> Option<&'a str> {
    let mut rest = file;
    while let Some(i) = rest.find(krate) {
        let after = &rest[i + krate.len()..];
        let at_component = i == 0 || rest[..i].ends_with(['/', '\\']);
        if at_component && after.starts_with(|c: char| c.is_ascii_digit()) {
            return after.find(['/', '\\']).map(|j| &after[j + 1..]);
        }
        rest = after;
    }
    None
}

/// Source files of theseus itself, `async-task` and `backtrace`.
fn is_internal_file(file: &str) -> bool {
    const CRATES: &[&str] = &[
        "theseus-",
        "theseus-executor-",
        "theseus-profiler-",
        "theseus-macros-",
        "async-task-",
        "backtrace-",
    ];
    CRATES.iter().any(|c| crate_file(file, c).is_some())
        || own_dirs().iter().any(|d| file.starts_with(d.as_str()))
}

/// The source directories of the theseus crates when they are built from a
/// checkout (path or git dependency), found from where this very file is:
/// the workspace holds `profiler/src/`, `executor/src/`, `macros/src/` and
/// the facade's `src/`.
fn own_dirs() -> &'static [String] {
    static DIRS: LazyLock<Vec<String>> = LazyLock::new(|| {
        let mut file = None;
        // An address inside this function (`resolve` looks up `addr - 1`).
        let here = own_dirs as fn() -> &'static [String] as usize + 1;
        backtrace::resolve(here as *mut c_void, |sym| {
            if let Some(p) = sym.filename() {
                file = Some(p.to_string_lossy().replace('\\', "/"));
            }
        });
        let Some(file) = file else { return Vec::new() };
        let Some(i) = file.rfind("/src/stack/") else {
            return Vec::new();
        };
        // Sources only (`src/`): the crates' own tests are user code here.
        let Some(j) = file[..i].rfind('/') else {
            return Vec::new();
        };
        let workspace = &file[..=j];
        vec![
            file[..i + 5].to_string(),
            format!("{workspace}executor/src/"),
            format!("{workspace}macros/src/"),
            format!("{workspace}src/"),
        ]
    });
    &DIRS
}

/// Source files of std's and the runtimes' future, closure and panic glue.
fn is_plumbing_file(file: &str) -> bool {
    const STD: &[&str] = &[
        "/library/core/src/future/",
        "/library/core/src/pin.rs",
        "/library/core/src/ops/function.rs",
        "/library/core/src/panic/unwind_safe.rs",
        "/library/std/src/panicking.rs",
        "/library/std/src/panic.rs",
        "/library/alloc/src/boxed.rs",
    ];
    if STD.iter().any(|s| file.contains(s)) {
        return true;
    }
    if let Some(rest) = crate_file(file, "futures-lite-") {
        return rest.starts_with("src/future.rs");
    }
    if crate_file(file, "futures-core-").is_some() {
        return true;
    }
    if let Some(rest) = crate_file(file, "tokio-") {
        return [
            "src/future/",
            "src/macros/support.rs",
            "src/task/coop/",
            "src/runtime/coop.rs",
        ]
        .iter()
        .any(|p| rest.starts_with(p));
    }
    false
}

fn starts_with_any(s: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| s.starts_with(p))
}

/// theseus itself, the task library and the unwinder.
pub(super) fn is_internal(name: &str, file: Option<&str>) -> bool {
    if file.is_some_and(is_internal_file) {
        return true;
    }
    const INTERNAL: &[&str] = &[
        "theseus::",
        "theseus_executor::",
        "theseus_profiler::",
        "theseus_macros::",
        "async_task::",
        "backtrace::",
    ];
    starts_with_any(name, INTERNAL) || starts_with_any(owner(name), INTERNAL)
}

/// Glue a reader never thinks of as a call: future and closure forwarding,
/// panic catching, combinator plumbing, and the standard library in general
/// (`.map(|x| spawn(x)).collect()` should read as the function that wrote
/// it, not as `Vec::from_iter` and `Map::fold`).
pub(super) fn is_plumbing(name: &str, file: Option<&str>) -> bool {
    if file.is_some_and(|f| is_plumbing_file(f) || is_std_file(f)) {
        return true;
    }
    if starts_with_any(name, STD_PATHS) || starts_with_any(owner(name), STD_PATHS) {
        return true;
    }
    const PLUMBING: &[&str] = &[
        "core::future::",
        "std::future::",
        "core::pin::",
        "core::ops::function::",
        "core::panic::unwind_safe::",
        "std::panicking::",
        "std::panic::catch_unwind",
        "__rust_try",
        "alloc::boxed::Box",
        "futures_lite::future::",
        "futures_core::",
        "tokio::future::",
        "tokio::macros::support::",
        "tokio::runtime::coop::",
        "tokio::task::coop::",
    ];
    if name.contains("{{vtable.shim}}") || name.contains("{{vtable-shim}}") {
        return true;
    }
    if starts_with_any(name, PLUMBING) || starts_with_any(owner(name), PLUMBING) {
        return true;
    }
    // `<&mut F as Future>::poll`, `<F as IntoFuture>::into_future`: a
    // forwarding impl on a reference or a bare type parameter.
    if let (self_ty, Some(tr)) = impl_parts(name) {
        let forwarding_trait = starts_with_any(tr, &["core::future::", "core::ops::function::"]);
        let generic_self = self_ty.starts_with('&') || !self_ty.contains("::");
        if forwarding_trait && generic_self {
            return true;
        }
    }
    false
}

/// A thread's entry: std's marker frame, C `main`, the runtime start.
fn is_entry(name: &str) -> bool {
    name.ends_with("__rust_begin_short_backtrace")
        || name == "main"
        || name.starts_with("std::rt::lang_start")
}

/// Frames of process and thread start-up.
pub(super) fn is_startup(name: &str, file: Option<&str>) -> bool {
    const STARTUP_FILES: &[&str] = &[
        "/library/std/src/rt.rs",
        "/library/std/src/sys/",
        "/library/std/src/thread/lifecycle.rs",
    ];
    if file.is_some_and(|f| STARTUP_FILES.iter().any(|s| f.contains(s))) {
        return true;
    }
    const STARTUP: &[&str] = &[
        "std::rt::",
        "std::sys::",
        "std::thread::lifecycle::",
        "std::thread::Builder::spawn_unchecked",
        "_start",
        "__libc_start",
        "start_thread",
        "clone",
        "__clone",
    ];
    is_entry(name) || starts_with_any(name, STARTUP) || name.contains("spawn_unchecked_")
}

/// The standard library's crates, by path.
const STD_PATHS: &[&str] = &["std::", "core::", "alloc::"];

/// A source file of the standard library, as debug info spells it.
fn is_std_file(file: &str) -> bool {
    [
        "/library/std/src/",
        "/library/core/src/",
        "/library/alloc/src/",
    ]
    .iter()
    .any(|s| file.contains(s))
}

/// Frames to skip at the inner end of a poll: the spawn call itself, and
/// std code that only leads into it.
fn is_spawn_machinery(name: &str, file: Option<&str>) -> bool {
    is_internal(name, file) || is_plumbing(name, file)
}

/// A function's name as shown: async-fn bodies and closures read as the
/// function that contains them.
pub(super) fn function_name(name: &str) -> String {
    let mut s = name;
    while let Some(last) = s.rfind("::") {
        if !is_closure_segment(&s[last + 2..]) {
            break;
        }
        s = &s[..last];
    }
    s.to_string()
}

/// `{{closure}}` (legacy names, `type_name`) or `{closure#0}`-style segments
/// (v0 names), which async fns and blocks are made of.
fn is_closure_segment(seg: &str) -> bool {
    seg == "{{closure}}"
        || seg.strip_prefix('{').is_some_and(|rest| {
            [
                "closure#",
                "async_block#",
                "async_fn#",
                "async_fn_body#",
                "async_closure#",
                "coroutine#",
            ]
            .iter()
            .any(|p| rest.starts_with(p))
                && rest.ends_with('}')
        })
}

/// The leaf's name, from `std::any::type_name` of the spawned future:
/// closure segments removed (an async fn's future reads as the fn), and the
/// most common std paths shortened.
pub(crate) fn leaf_name(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len());
    let mut rest = type_name;
    while let Some(i) = rest.find("::{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        // The segment ends at its matching brace (`{{closure}}` nests one).
        let mut depth = 0usize;
        let mut end = after.len();
        for (j, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let seg = &after[..end];
        if !is_closure_segment(seg) {
            out.push_str("::");
            out.push_str(seg);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    const SHORT: &[(&str, &str)] = &[
        ("alloc::boxed::Box<", "Box<"),
        ("core::pin::Pin<", "Pin<"),
        ("core::future::future::Future", "Future"),
        ("core::marker::Send", "Send"),
        ("core::marker::Sync", "Sync"),
        ("alloc::string::String", "String"),
        ("alloc::vec::Vec<", "Vec<"),
        ("alloc::sync::Arc<", "Arc<"),
        ("core::option::Option<", "Option<"),
        ("core::result::Result<", "Result<"),
    ];
    for (long, short) in SHORT {
        if out.contains(long) {
            out = out.replace(long, short);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn async_fn_bodies_read_as_the_function() {
        assert_eq!(function_name("app::handler::{{closure}}"), "app::handler");
        assert_eq!(
            function_name("app::handler::{{closure}}::{{closure}}"),
            "app::handler"
        );
        assert_eq!(function_name("app::handler::{closure#0}"), "app::handler");
        assert_eq!(function_name("app::handler"), "app::handler");
    }

    #[test]
    fn files_under_the_working_directory_are_written_relative() {
        let dir = std::path::Path::new("/work/app");
        let mut inside = "/work/app/src/main.rs".to_string();
        relative_to(dir, &mut inside);
        assert_eq!(inside, "src/main.rs");
        for outside in [
            "/work/application/src/main.rs",
            "/rustc/abc/library/std/src/rt.rs",
            "src/lib.rs",
        ] {
            let mut file = outside.to_string();
            relative_to(dir, &mut file);
            assert_eq!(file, outside);
        }
    }

    #[test]
    fn leaf_names_drop_closures_and_shorten_std() {
        assert_eq!(leaf_name("app::handler::{{closure}}"), "app::handler");
        assert_eq!(
            leaf_name("app::main::{{closure}}::{{closure}}"),
            "app::main"
        );
        assert_eq!(
            leaf_name("tokio::time::Timeout<app::handler::{{closure}}>"),
            "tokio::time::Timeout<app::handler>"
        );
        assert_eq!(
            leaf_name(
                "core::pin::Pin<alloc::boxed::Box<dyn core::future::future::Future<Output = ()> + core::marker::Send>>"
            ),
            "Pin<Box<dyn Future<Output = ()> + Send>>"
        );
        assert_eq!(
            leaf_name("app::Server::{impl#0}::run"),
            "app::Server::{impl#0}::run"
        );
    }

    #[test]
    fn impl_parts_finds_self_and_trait() {
        assert_eq!(
            impl_parts("<core::pin::Pin<P> as core::future::future::Future>::poll"),
            ("core::pin::Pin<P>", Some("core::future::future::Future"))
        );
        assert_eq!(impl_parts("<[T]>::iter"), ("[T]", None));
        assert_eq!(impl_parts("app::f"), ("app::f", None));
    }

    #[test]
    fn plumbing_is_recognized_and_user_impls_are_not() {
        for name in [
            "<core::pin::Pin<P> as core::future::future::Future>::poll",
            "<&mut F as core::future::future::Future>::poll",
            "<F as core::future::into_future::IntoFuture>::into_future",
            "<core::panic::unwind_safe::AssertUnwindSafe<F> as core::ops::function::FnOnce<()>>::call_once",
            "std::panicking::try::do_call",
            "std::panic::catch_unwind",
            "core::ops::function::FnOnce::call_once",
            "<alloc::boxed::Box<F,A> as core::ops::function::FnOnce<Args>>::call_once",
            "<futures_lite::future::Or<F1,F2> as core::future::future::Future>::poll",
            "<tokio::future::poll_fn::PollFn<F> as core::future::future::Future>::poll",
            "core::ops::function::FnOnce::call_once{{vtable.shim}}",
            "core::iter::traits::iterator::Iterator::for_each",
            "<alloc::vec::Vec<T> as alloc::vec::spec_from_iter::SpecFromIter<T,I>>::from_iter",
        ] {
            assert!(is_plumbing(name, None), "{name}");
        }
        assert!(is_plumbing(
            "{closure#0}",
            Some("/rustc/abc/library/core/src/iter/adapters/map.rs")
        ));
        for name in [
            "<app::MyFuture as core::future::future::Future>::poll",
            "<app::Lines as core::iter::traits::iterator::Iterator>::next",
            "app::handler::{{closure}}",
        ] {
            assert!(!is_plumbing(name, None), "{name}");
        }
        assert!(is_internal(
            "<theseus_executor::join::TaskFuture<F> as core::future::future::Future>::poll",
            None
        ));
        assert!(is_internal("theseus::spawn", None));
        assert!(!is_internal("theseus_app::spawn", None));
    }

    #[test]
    fn files_tell_whose_code_an_unqualified_frame_is() {
        let reg = "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        assert!(is_internal(
            "poll",
            Some(&format!("{reg}/async-task-4.7.1/src/raw.rs"))
        ));
        assert!(is_internal(
            "trace",
            Some(&format!("{reg}/backtrace-0.3.77/src/lib.rs"))
        ));
        assert!(!is_internal(
            "run",
            Some(&format!("{reg}/theseus-app-2/src/lib.rs"))
        ));
        assert!(!is_internal("run", Some("/home/u/app/src/main.rs")));
        assert!(is_plumbing(
            "poll<F>",
            Some(&format!("{reg}/tokio-1.54.1/src/future/poll_fn.rs"))
        ));
        assert!(!is_plumbing(
            "poll<F>",
            Some(&format!("{reg}/tokio-1.54.1/src/time/timeout.rs"))
        ));
        assert!(is_plumbing(
            "call_once<F>",
            Some("/rustc/0123abcd/library/core/src/ops/function.rs")
        ));
        // This crate's own sources, found at run time from debug info.
        let own = own_dirs();
        assert!(!own.is_empty(), "no source directory found for this crate");
        assert!(own[0].ends_with("profiler/src/"), "{own:?}");
        assert!(is_internal(
            "{closure#0}",
            Some(&format!("{}poll.rs", own[1]))
        ));
    }

    fn sym(name: &str, file: &str, line: u32) -> Symbol {
        Symbol {
            name: Some(name.to_string()),
            file: Some(file.to_string()),
            line,
        }
    }

    /// The user frames of one poll of `symbols`, spawning at `at`.
    fn user_of(symbols: &[Symbol], at: (&str, u32)) -> (Vec<ResolvedFrame>, SpawnSite) {
        let mut out = Vec::new();
        let site = user_frames(symbols.iter().collect(), Some(at), None, &mut out);
        (out, site)
    }

    fn functions(frames: &[ResolvedFrame]) -> Vec<&str> {
        frames.iter().map(|f| f.function.as_str()).collect()
    }

    /// With `debug = "line-tables-only"` debug info names functions without
    /// their paths, as these frames of the service example show. The
    /// executor's generic poll names the future it polls; that qualifies
    /// the bare body inlined into it.
    #[test]
    fn bare_names_are_qualified_by_the_generic_caller() {
        let executor = own_dirs()[1].clone();
        let join = format!("{executor}join.rs");
        let runtime = format!("{executor}runtime.rs");
        let app = "/home/u/app/examples/service.rs";
        let poll = [
            sym(
                "poll_below_boundary<service::accept_loop::{async_fn_env#0}>",
                &join,
                111,
            ),
            sym("{async_fn#0}", app, 62),
            sym(
                "spawn<service::handle_connection::{async_fn_env#0}>",
                &runtime,
                643,
            ),
        ];
        let (frames, site) = user_of(&poll, ("examples/service.rs", 62));
        assert_eq!(functions(&frames), ["service::accept_loop"]);
        assert_eq!((frames[0].file.as_str(), frames[0].line), (app, 62));
        let (raw, shown) = site.spawner.unwrap();
        assert_eq!(raw, "service::accept_loop::{async_fn#0}");
        assert_eq!(shown, "service::accept_loop");

        // A closure run by std's `map`: its generic arguments name the
        // user's closure and std's own; the user's one is meant.
        let map = [
            sym(
                "poll_below_boundary<service::main::{async_block_env#0}>",
                &join,
                111,
            ),
            sym("{async_block#0}", app, 31),
            sym(
                "{closure#0}<u64, theseus_executor::join::JoinHandle<u64>, (), service::main::{async_block#0}::{closure_env#0}, core::iter::traits::iterator::Iterator::for_each::call::{closure_env#0}<u64>>",
                "/rustc/abc/library/core/src/iter/adapters/map.rs",
                88,
            ),
            sym("{closure#0}", app, 30),
        ];
        let (frames, _) = user_of(&map, ("examples/service.rs", 30));
        // Both are `service::main` once closures are folded into their
        // function, and one frame then.
        assert_eq!(functions(&frames), ["service::main"]);
        assert_eq!(frames[0].line, 30);
    }

    /// Without a generic caller to name them, distinct bare bodies stay
    /// distinct: each is qualified by its file and line, never merged.
    #[test]
    fn unqualified_bare_names_are_never_merged() {
        let (a, _) = user_of(
            &[sym("{async_fn#0}", "/app/src/a.rs", 10)],
            ("src/a.rs", 10),
        );
        let (b, _) = user_of(
            &[sym("{async_fn#0}", "/app/src/a.rs", 20)],
            ("src/a.rs", 20),
        );
        assert_eq!(functions(&a), ["{async_fn#0} (/app/src/a.rs:10)"]);
        assert_eq!(functions(&b), ["{async_fn#0} (/app/src/a.rs:20)"]);
        let (run, _) = user_of(&[sym("run", "/app/src/server.rs", 5)], ("src/server.rs", 5));
        assert_eq!(functions(&run), ["run (/app/src/server.rs)"]);
        assert!(names_degraded());
        // Qualified names are left as they are.
        assert_eq!(qualify_bare("app::run", None), None);
        assert!(!is_bare(
            "<app::Conn as core::future::future::Future>::poll"
        ));
        assert!(!is_bare("app::handler::{{closure}}"));
        assert!(is_bare("{closure#3}<u64>"));
        assert!(is_generated("{async_block#12}"));
        assert!(!is_generated("{impl#0}x") && !is_generated("{closure#}"));
    }

    /// A closure expanded from a dependency's macro into a generic function
    /// carries that function's type parameters, not its callee: tokio's
    /// `select!` closure in `mini_redis::server::run<F>`, with `F` the
    /// future of `tokio::signal::ctrl_c`, calls `Listener::run`'s body.
    /// Such a caller names nothing; the body is qualified by file and line.
    #[test]
    fn a_callers_own_type_parameters_do_not_name_its_callee() {
        let registry = "/home/u/.cargo/registry/src/index.crates.io-x";
        let poll = [
            sym(
                "poll<mini_redis::server::Out, mini_redis::server::run::{async_fn#0}::{closure_env#0}<tokio::signal::ctrl_c::ctrl_c::{async_fn_env#0}>>",
                "/rustc/abc/library/core/src/future/poll_fn.rs",
                151,
            ),
            sym(
                "{closure#0}<tokio::signal::ctrl_c::ctrl_c::{async_fn_env#0}>",
                &format!("{registry}/tokio-1.54.1/src/macros/select.rs"),
                710,
            ),
            sym("{async_fn#0}", "/home/u/mini-redis/src/server.rs", 259),
        ];
        let (frames, _) = user_of(&poll, ("src/server.rs", 259));
        assert_eq!(
            functions(&frames),
            [
                "mini_redis::server::run",
                "{async_fn#0} (/home/u/mini-redis/src/server.rs:259)"
            ]
        );
        // A closure in the program's own generic code: the same.
        let own = [
            sym(
                "{closure#0}<app::handler::{async_fn_env#0}>",
                "/home/u/app/src/lib.rs",
                10,
            ),
            sym("{async_fn#0}", "/home/u/app/src/lib.rs", 30),
        ];
        let (frames, _) = user_of(&own, ("src/lib.rs", 30));
        assert_eq!(
            functions(&frames).last(),
            Some(&"{async_fn#0} (/home/u/app/src/lib.rs:30)")
        );
    }

    /// Two paths in the caller's name: which one is meant cannot be told.
    #[test]
    fn an_ambiguous_caller_qualifies_nothing() {
        let lib = Some("/home/u/.cargo/registry/src/i/futures-util-0.3.31/src/lib.rs");
        let caller = "join<app::a::{closure_env#0}, app::b::{closure_env#0}>";
        assert_eq!(qualify_bare("{closure#0}", Some((caller, lib))), None);
        let same = "select<app::a::{closure_env#0}, app::a::{closure_env#0}>";
        assert_eq!(
            qualify_bare("{closure#0}", Some((same, lib))).as_deref(),
            Some("app::a::{closure#0}")
        );
        assert_eq!(
            qualify_bare("{closure#1}", Some((same, lib))),
            None,
            "another closure of the same function"
        );
    }

    fn future(type_name: &'static str) -> Leaf {
        Leaf {
            type_name,
            blocking: false,
        }
    }

    fn spawner(raw: &str, shown: &str) -> (String, String) {
        (raw.to_string(), shown.to_string())
    }

    #[test]
    fn task_leaves_tell_blocks_closures_and_boxed_futures_apart() {
        let at = Some("src/server.rs:259");
        let run = spawner(
            "mini_redis::server::Listener::run::{{closure}}",
            "mini_redis::server::Listener::run",
        );
        // An async fn: the function.
        assert_eq!(
            task_name(
                future("mini_redis::server::Listener::run::{{closure}}"),
                at,
                Some(&run)
            ),
            "[task] mini_redis::server::Listener::run"
        );
        // An async block inside it: where it was written.
        assert_eq!(
            task_name(
                future("mini_redis::server::Listener::run::{{closure}}::{{closure}}"),
                at,
                Some(&run)
            ),
            "[task] async block in mini_redis::server::Listener::run (src/server.rs:259)"
        );
        // An async block in a plain function.
        assert_eq!(
            task_name(
                future("app::start::{{closure}}"),
                Some("src/lib.rs:9"),
                Some(&spawner("app::start", "app::start"))
            ),
            "[task] async block in app::start (src/lib.rs:9)"
        );
        // A `spawn_blocking` closure, and a function given to it.
        let main = spawner("service::main::{{closure}}", "service::main");
        let closure = Leaf {
            type_name: "service::main::{{closure}}::{{closure}}",
            blocking: true,
        };
        assert_eq!(
            task_name(closure, Some("examples/service.rs:36"), Some(&main)),
            "[blocking] closure in service::main (examples/service.rs:36)"
        );
        let function = Leaf {
            type_name: "service::burn",
            blocking: true,
        };
        assert_eq!(
            task_name(function, at, Some(&main)),
            "[blocking] service::burn"
        );
        // A boxed future: its spawn site.
        let boxed = future(
            "core::pin::Pin<alloc::boxed::Box<dyn core::future::future::Future<Output = u32> + core::marker::Send>>",
        );
        assert_eq!(
            task_name(
                boxed,
                Some("src/chain.rs:9"),
                Some(&spawner("app::chain::{{closure}}", "app::chain"))
            ),
            "[task] boxed future spawned in app::chain (src/chain.rs:9)"
        );
        assert_eq!(
            task_name(boxed, Some("src/chain.rs:9"), None),
            "[task] boxed future (src/chain.rs:9)"
        );
        // Other types read as the type.
        assert_eq!(
            task_name(
                future("tokio::time::timeout::Timeout<app::handler::{{closure}}>"),
                at,
                Some(&run)
            ),
            "[task] tokio::time::timeout::Timeout<app::handler>"
        );
    }

    #[test]
    fn files_match_across_absolute_and_relative_spellings() {
        assert!(same_file("/home/u/app/src/main.rs", "src/main.rs"));
        assert!(same_file("src/main.rs", "src/main.rs"));
        assert!(!same_file("/home/u/app/src/xmain.rs", "main.rs"));
        assert!(!same_file("src/a.rs", "src/b.rs"));
    }
}
