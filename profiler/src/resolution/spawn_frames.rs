//! Resolution of spawns: the frames of the poll that spawned a task, cut
//! to the program's own, with the spawn call's exact line, and a leaf
//! naming the spawned task.
//!
//! A poll's frames run from the poll boundary (or the thread's entry) down
//! to the `spawn` call: the program's async fns, then theseus's spawn and
//! std's glue. The outer cut drops the thread's start-up, the inner cut
//! everything deeper than the program's innermost frame, which is found by
//! the `#[track_caller]` location of the spawn; the frames between are
//! filtered ([`super::filters`]), named ([`super::names`]), and closures
//! merged into their function. The location's line, exact where a return
//! address is only near the call, goes on the innermost frame of its file.

use super::filters::{
    is_entry, is_internal, is_plumbing, is_spawn_machinery, is_startup, is_tokio_task_run,
    same_file,
};
use super::names::{
    base_name, function_name, is_bare, is_closure_segment, is_generated, leaf_name,
    mark_names_degraded, qualify_bare,
};
use super::symbolize::{symbolize, Symbol};
use super::ResolvedFrame;
use crate::capture::intern::{FrameKind, Leaf};
use crate::capture::TOKIO_SPAWN;
use crate::source_file;
use std::panic::Location;
use std::path::Path;
use std::sync::Arc;

/// Where a task was spawned, as found in the spawning poll's frames.
pub(super) struct SpawnSite {
    /// The spawn call's file, spelled as its frame spells it, and line.
    file: String,
    line: u32,
    /// The function that called `spawn`: its name as debug info gives it
    /// (bare names qualified), and as shown. `None` when no frame of the
    /// spawning poll was resolved.
    spawner: Option<(String, String)>,
    /// The functions the spawning poll was in, outermost first: each one's
    /// raw name (as `spawner`'s) and its frame's file and line. A plain fn
    /// among them wrote any async block of its name
    /// (`app::main::{{closure}}`) that the spawn was given.
    callers: Vec<(String, String, u32)>,
}

impl SpawnSite {
    /// No spawn, or one whose location is unknown.
    fn unknown() -> SpawnSite {
        SpawnSite {
            file: "???".to_string(),
            line: 0,
            spawner: None,
            callers: Vec::new(),
        }
    }

    /// The spawn made from the kept frame `frame`.
    fn in_frame((frame, raw): &Kept, callers: Vec<(String, String, u32)>) -> SpawnSite {
        SpawnSite {
            file: frame.file.clone(),
            line: frame.line,
            spawner: Some((raw.clone(), frame.function.clone())),
            callers,
        }
    }
}

/// A frame a logical stack keeps, with its function's name as debug info
/// gives it (bare names qualified), before closures were folded into their
/// function: the name a spawned task's leaf is told apart by.
type Kept = (ResolvedFrame, String);

/// Appends the user frames of one poll, from the poll boundary (or the
/// thread's entry) down to the spawn call, captured as `ips` (outermost
/// first), with the spawn call's line from `location`. Returns where the
/// spawn call is.
pub(super) fn append_poll_frames(
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

/// [`append_poll_frames`] once the addresses are symbolized: `frames` is
/// every source frame of the poll, outermost first, and `location` the
/// spawn call's file and line.
fn user_frames(
    frames: Vec<&Symbol>,
    location: Option<(&str, u32)>,
    cwd: Option<&Path>,
    out: &mut Vec<ResolvedFrame>,
) -> SpawnSite {
    // A poll whose frames all have files (as `main`'s first, with none of
    // the program's yet) is no sign.
    let unfiled = frames.iter().any(|f| f.file.is_none());
    let frames = cut_to_the_program(frames, location);
    let mut kept = kept_frames(&frames, cwd);
    if unfiled && kept.iter().all(|(f, _)| f.file == "???") {
        // No debug info: the spawn location below stands for the frames.
        mark_names_degraded();
    }
    let site = match location {
        Some(location) => place_spawn_line(&mut kept, location),
        None => SpawnSite::unknown(),
    };
    out.extend(kept.into_iter().map(|(f, _)| f));
    site
}

/// The frames of a poll from the thread's entry (exclusive) down to the
/// program's innermost frame (inclusive).
fn cut_to_the_program<'a>(
    mut frames: Vec<&'a Symbol>,
    location: Option<(&str, u32)>,
) -> Vec<&'a Symbol> {
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
    // glue between them.
    let innermost = innermost_user_frame(&frames, location);
    frames.truncate(innermost.map_or(0, |i| i + 1));
    // A poll theseus did not start (in a `tokio::spawn` task it does not
    // see) begins below tokio's poll of that task: what is above it is
    // tokio running its workers. Looked for only above the program's
    // innermost frame, where tokio's own spawn path cannot be.
    if let Some(i) = frames
        .iter()
        .rposition(|f| is_tokio_task_run(f.name.as_deref().unwrap_or(""), f.file.as_deref()))
    {
        frames.drain(..=i);
    }
    frames
}

/// The program's innermost frame: found by the spawn location's file (and
/// line, when it agrees), which works with unqualified names too; failing
/// that, by name and file.
fn innermost_user_frame(frames: &[&Symbol], location: Option<(&str, u32)>) -> Option<usize> {
    let user = |f: &Symbol| !is_internal(f.name.as_deref().unwrap_or(""), f.file.as_deref());
    let in_loc_file = |f: &Symbol| {
        location.is_some_and(|(loc_file, _)| {
            f.file
                .as_deref()
                .is_some_and(|file| same_file(file, loc_file))
        })
    };
    frames
        .iter()
        .rposition(|f| user(f) && in_loc_file(f) && location.is_some_and(|(_, l)| l == f.line))
        .or_else(|| frames.iter().rposition(|f| user(f) && in_loc_file(f)))
        .or_else(|| {
            frames.iter().rposition(|f| {
                f.name
                    .as_deref()
                    .is_some_and(|name| !is_spawn_machinery(name, f.file.as_deref()))
            })
        })
}

/// The frames a logical stack shows of `frames`: no theseus, no glue, no
/// start-up, each named, closures folded into their function.
fn kept_frames(frames: &[&Symbol], cwd: Option<&Path>) -> Vec<Kept> {
    let mut kept: Vec<Kept> = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let Some(name) = f.name.as_deref() else {
            continue;
        };
        let file = f.file.as_deref();
        if is_internal(name, file) || is_plumbing(name, file) || is_startup(name, file) {
            continue;
        }
        let (frame, raw) = named_frame(frames, i, cwd);
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
    kept
}

/// `frames[i]` as a stack shows it, with the name it was read by (a bare
/// name qualified, see [`qualified_name`]): what a spawn stack and an
/// await-point chain both keep of a symbol.
pub(super) fn named_frame(
    frames: &[&Symbol],
    i: usize,
    cwd: Option<&Path>,
) -> (ResolvedFrame, String) {
    let f = frames[i];
    let name = f.name.as_deref().unwrap_or("");
    let raw = if is_bare(name) {
        mark_names_degraded();
        qualified_name(frames, i, cwd)
    } else {
        name.to_string()
    };
    let frame = ResolvedFrame {
        function: function_name(&raw),
        file: f.file.clone().unwrap_or_else(|| "???".to_string()),
        line: f.line,
    };
    (frame, raw)
}

/// The name of `frames[i]`, whose debug info gives a bare name: qualified
/// by its caller's generic arguments where they tell, else by its file (and
/// line, for a compiler-made name), so distinct bare names stay distinct.
fn qualified_name(frames: &[&Symbol], i: usize, cwd: Option<&Path>) -> String {
    let f = frames[i];
    let name = f.name.as_deref().unwrap_or("");
    let caller = i.checked_sub(1).and_then(|p| {
        let frame = frames[p];
        Some((frame.name.as_deref()?, frame.file.as_deref()))
    });
    qualify_bare(name, caller).unwrap_or_else(|| {
        let file = shown_file(f.file.as_deref().unwrap_or("???"), cwd);
        if is_generated(base_name(name)) {
            format!("{} ({file}:{})", base_name(name), f.line)
        } else {
            format!("{name} ({file})")
        }
    })
}

/// Puts the spawn call's line on the innermost kept frame of its file: the
/// `#[track_caller]` location is exact where a return address is only near
/// the call. Without such a frame, the location stands for the caller.
fn place_spawn_line(kept: &mut Vec<Kept>, (loc_file, loc_line): (&str, u32)) -> SpawnSite {
    let callers: Vec<_> = kept
        .iter()
        .map(|(f, raw)| (raw.clone(), f.file.clone(), f.line))
        .collect();
    if let Some(own) = kept
        .iter_mut()
        .rev()
        .find(|(f, _)| same_file(&f.file, loc_file))
    {
        own.0.line = loc_line;
        return SpawnSite::in_frame(own, callers);
    }
    // No debug info for files: the innermost frame is the machine frame
    // the spawn call ran in, which need not be the function that wrote it
    // (inlined there from another file). It keeps its unknown file, and
    // the spawn call stands below it in its own; its name still tells the
    // task apart.
    let spawner = kept
        .last()
        .filter(|(f, _)| f.file == "???")
        .map(|(f, raw)| (raw.clone(), f.function.clone()));
    kept.push((
        ResolvedFrame {
            function: format!("{loc_file}:{loc_line}"),
            file: loc_file.to_string(),
            line: loc_line,
        },
        String::new(),
    ));
    SpawnSite {
        file: loc_file.to_string(),
        line: loc_line,
        spawner,
        callers,
    }
}

/// The frame of a spawned task: named after what was spawned (see
/// [`task_name`]), at the spawn call.
pub(super) fn leaf_frame(leaf: Leaf, site: Option<SpawnSite>, cwd: Option<&Path>) -> ResolvedFrame {
    let (file, line, spawner, callers) = match (site, leaf.at) {
        (Some(site), _) => (site.file, site.line, site.spawner, site.callers),
        // A frame: where it was marked.
        (None, Some(at)) => (at.file().to_string(), at.line(), None, Vec::new()),
        (None, None) => ("???".to_string(), 0, None, Vec::new()),
    };
    if let Some(kind) = leaf.frame {
        if kind != FrameKind::Future {
            return ResolvedFrame {
                function: frame_name(kind, leaf.type_name),
                file,
                line,
            };
        }
    }
    let at = (line != 0).then(|| format!("{}:{line}", shown_file(&file, cwd)));
    let callers: Vec<(String, String)> = callers
        .into_iter()
        .map(|(raw, file, line)| (raw, format!("{}:{line}", shown_file(&file, cwd))))
        .collect();
    ResolvedFrame {
        function: task_name(leaf, at.as_deref(), spawner.as_ref(), &callers),
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
/// - A `tokio::spawn` task seen through tokio's hooks, whose type is not
///   known, reads as its spawn site: `[task] tokio::spawn in app::serve
///   (src/server.rs:40)`.
/// - Any other type reads as the type, closures inside it shown as their
///   function: `[task] tokio::time::Timeout<app::serve>`.
///
/// `at` is the spawn site (`file:line`), `spawner` the spawning function's
/// name as debug info gives it and as shown, `callers` the functions the
/// spawning poll was in (debug info's names) with where each made its call.
fn task_name(
    leaf: Leaf,
    at: Option<&str>,
    spawner: Option<&(String, String)>,
    callers: &[(String, String)],
) -> String {
    let kind = if leaf.frame.is_some() {
        "[frame]"
    } else if leaf.blocking {
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
    if leaf.type_name == TOKIO_SPAWN {
        return match spawner {
            Some((_, function)) => format!("{kind} {TOKIO_SPAWN} in {function}{at}"),
            None => format!("{kind} {TOKIO_SPAWN}{at}"),
        };
    }
    if is_type_erased(&shown) {
        return match spawner {
            Some((_, function)) => format!("{kind} boxed future spawned in {function}{at}"),
            None => format!("{kind} boxed future{at}"),
        };
    }
    // Two closure levels are a block inside an async fn or block. One is an
    // async fn's body, unless the plain (not async) function of that name
    // is on the spawning stack: then it is a block written there (an async
    // fn's call returns its future before anything can spawn it). Written
    // in a caller of a helper that spawns, it is placed at that caller's
    // call, where the block is, not at the helper's spawn line.
    let in_plain_fn = spawner.is_some_and(|(raw, _)| *raw == path);
    if closures >= 2 || (closures == 1 && in_plain_fn) {
        return format!("{kind} async block in {path}{at}");
    }
    match callers
        .iter()
        .find(|(raw, _)| closures == 1 && *raw == path)
    {
        Some((_, called_at)) => format!("{kind} async block in {path} ({called_at})"),
        None => format!("{kind} {shown}"),
    }
}

/// The leaf of a marked async fn or of a request (a marked future is
/// named as a task is, by [`task_name`]): `[frame] app::db_query`, from the
/// type name of an item declared in the function, or `[request] GET
/// /users/{id}`.
fn frame_name(kind: FrameKind, name: &str) -> String {
    match kind {
        FrameKind::Request => format!("[request] {name}"),
        FrameKind::Main => format!("[main] {}", leaf_name(strip_closures(name).0)),
        _ => {
            let function = name.rsplit_once("::").map_or(name, |(path, _)| path);
            format!("{FRAME_PREFIX}{}", leaf_name(function))
        }
    }
}

/// How the leaf of a `#[theseus::profiled]` fn begins; the fn's name
/// follows.
pub(super) const FRAME_PREFIX: &str = "[frame] ";

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

/// `file` as a profile shows it.
fn shown_file(file: &str, cwd: Option<&Path>) -> String {
    source_file::shown(file, cwd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolution::filters::own_dirs;
    use crate::resolution::names::names_degraded;

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

    /// Without debug info for files, the spawn call is found by name: for
    /// a `tokio::spawn` task, above tokio's path down to its spawn hook.
    #[test]
    fn a_tokio_spawn_without_files_is_made_by_the_program_not_by_tokio() {
        let named = |name: &str| Symbol {
            name: Some(name.to_string()),
            file: None,
            line: 0,
        };
        let poll = [
            named("bore_cli::server::Server::listen::{{closure}}"),
            named("tokio::task::spawn::spawn"),
            named("tokio::task::spawn::spawn_inner"),
            named("tokio::runtime::context::current::with_current"),
            named("tokio::runtime::scheduler::Handle::spawn"),
            named("tokio::runtime::scheduler::multi_thread::handle::Handle::bind_new_task"),
            named("tokio::runtime::task_hooks::TaskHooks::spawn"),
            named("theseus_executor::tokio_tasks::hooks::on_spawn"),
        ];
        let (frames, site) = user_of(&poll, ("src/server.rs", 49));
        assert_eq!(
            functions(&frames),
            ["bore_cli::server::Server::listen", "src/server.rs:49"]
        );
        assert_eq!(
            site.spawner.map(|(_, shown)| shown).as_deref(),
            Some("bore_cli::server::Server::listen")
        );
    }

    /// A frame first polled in a `tokio::spawn` task that theseus does not
    /// see (a plain build) has no poll boundary: its walk goes up through
    /// tokio's worker loop to the thread's start. The frames above tokio's
    /// poll of the task are the runtime's, not the program's.
    #[test]
    fn a_poll_theseus_did_not_start_begins_below_tokios_poll_of_the_task() {
        let tokio = "/home/u/.cargo/registry/src/index.crates.io-x/tokio-1.54.1/src";
        let axum = "/home/u/.cargo/registry/src/index.crates.io-x/axum-0.8.9/src";
        let hyper = "/home/u/.cargo/registry/src/index.crates.io-x/hyper-1.13.0/src";
        let poll = [
            sym(
                "tokio::runtime::blocking::pool::Spawner::spawn_thread::{{closure}}",
                &format!("{tokio}/runtime/blocking/pool.rs"),
                475,
            ),
            sym(
                "<tokio::runtime::blocking::task::BlockingTask<T> as core::future::future::Future>::poll",
                &format!("{tokio}/runtime/blocking/task.rs"),
                42,
            ),
            sym(
                "tokio::runtime::scheduler::multi_thread::worker::Context::run_task",
                &format!("{tokio}/runtime/scheduler/multi_thread/worker.rs"),
                661,
            ),
            sym(
                "tokio::runtime::task::harness::poll_future",
                &format!("{tokio}/runtime/task/harness.rs"),
                535,
            ),
            sym(
                "tokio::loom::std::unsafe_cell::UnsafeCell<T>::with_mut",
                &format!("{tokio}/loom/std/unsafe_cell.rs"),
                16,
            ),
            sym(
                "tokio::runtime::task::core::Core<T,S>::poll::{{closure}}",
                &format!("{tokio}/runtime/task/core.rs"),
                374,
            ),
            sym(
                "axum::serve::handle_connection::{{closure}}",
                &format!("{axum}/serve/mod.rs"),
                420,
            ),
            sym(
                "<hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T> as core::future::future::Future>::poll",
                &format!("{hyper}/proto/h1/dispatch.rs"),
                120,
            ),
        ];
        let mut out = Vec::new();
        user_frames(poll.iter().collect(), None, None, &mut out);
        assert_eq!(
            functions(&out),
            [
                "axum::serve::handle_connection",
                "<hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T> as core::future::future::Future>::poll"
            ]
        );
    }

    /// Without debug info the machine frame a spawn ran in may hold a
    /// function inlined from another file: the frame's file stays unknown
    /// rather than taking the spawn call's, which stands below it.
    #[test]
    fn without_files_no_frame_takes_the_spawn_calls_file() {
        let poll = [Symbol {
            name: Some("app::main::{{closure}}".to_string()),
            file: None,
            line: 0,
        }];
        let (frames, site) = user_of(&poll, ("src/helper.rs", 12));
        let placed: Vec<(&str, &str, u32)> = frames
            .iter()
            .map(|f| (f.function.as_str(), f.file.as_str(), f.line))
            .collect();
        assert_eq!(
            placed,
            [
                ("app::main", "???", 0),
                ("src/helper.rs:12", "src/helper.rs", 12)
            ]
        );
        assert_eq!((site.file.as_str(), site.line), ("src/helper.rs", 12));
    }

    fn future(type_name: &'static str) -> Leaf {
        Leaf::task(type_name, false)
    }

    fn spawner(raw: &str, shown: &str) -> (String, String) {
        (raw.to_string(), shown.to_string())
    }

    #[test]
    fn task_leaves_tell_async_fns_blocks_and_other_futures_apart() {
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
                Some(&run),
                &[]
            ),
            "[task] mini_redis::server::Listener::run"
        );
        // An async block inside it: where it was written.
        assert_eq!(
            task_name(
                future("mini_redis::server::Listener::run::{{closure}}::{{closure}}"),
                at,
                Some(&run),
                &[]
            ),
            "[task] async block in mini_redis::server::Listener::run (src/server.rs:259)"
        );
        // An async block in a plain function.
        assert_eq!(
            task_name(
                future("app::start::{{closure}}"),
                Some("src/lib.rs:9"),
                Some(&spawner("app::start", "app::start")),
                &[]
            ),
            "[task] async block in app::start (src/lib.rs:9)"
        );
        // Other types read as the type.
        assert_eq!(
            task_name(
                future("tokio::time::timeout::Timeout<app::handler::{{closure}}>"),
                at,
                Some(&run),
                &[]
            ),
            "[task] tokio::time::timeout::Timeout<app::handler>"
        );
    }

    #[test]
    fn an_async_block_handed_to_a_helper_that_spawns_reads_as_where_it_was_written() {
        // An async block in a plain function that gave it to a helper
        // which spawns: where it was written, the call of the helper.
        let callers = [
            ("app::main".to_string(), "src/main.rs:30".to_string()),
            ("app::Pool::spawn".to_string(), "src/pool.rs:12".to_string()),
        ];
        assert_eq!(
            task_name(
                future("app::main::{{closure}}"),
                Some("src/pool.rs:12"),
                Some(&spawner("app::Pool::spawn", "app::Pool::spawn")),
                &callers
            ),
            "[task] async block in app::main (src/main.rs:30)"
        );
        // An async fn's future given to that helper is the function.
        assert_eq!(
            task_name(
                future("app::handle::{{closure}}"),
                Some("src/pool.rs:12"),
                Some(&spawner("app::Pool::spawn", "app::Pool::spawn")),
                &callers
            ),
            "[task] app::handle"
        );
    }

    #[test]
    fn tokio_spawn_tasks_read_as_their_spawn_site() {
        let listen = spawner(
            "bore_cli::server::Server::listen::{{closure}}",
            "bore_cli::server::Server::listen",
        );
        assert_eq!(
            task_name(
                future(TOKIO_SPAWN),
                Some("src/server.rs:64"),
                Some(&listen),
                &[]
            ),
            "[task] tokio::spawn in bore_cli::server::Server::listen (src/server.rs:64)"
        );
        assert_ne!(
            task_name(
                future(TOKIO_SPAWN),
                Some("src/server.rs:80"),
                Some(&listen),
                &[]
            ),
            task_name(
                future(TOKIO_SPAWN),
                Some("src/server.rs:64"),
                Some(&listen),
                &[]
            ),
        );
        // No frame resolved (no debug info, or `THESEUS_STACKS=location`).
        assert_eq!(
            task_name(future(TOKIO_SPAWN), Some("src/server.rs:64"), None, &[]),
            "[task] tokio::spawn (src/server.rs:64)"
        );
    }

    #[test]
    fn blocking_closures_and_boxed_futures_read_as_their_spawn_site() {
        let at = Some("src/server.rs:259");
        // A `spawn_blocking` closure, and a function given to it.
        let main = spawner("service::main::{{closure}}", "service::main");
        let closure = Leaf::task("service::main::{{closure}}::{{closure}}", true);
        assert_eq!(
            task_name(closure, Some("examples/service.rs:36"), Some(&main), &[]),
            "[blocking] closure in service::main (examples/service.rs:36)"
        );
        let function = Leaf::task("service::burn", true);
        assert_eq!(
            task_name(function, at, Some(&main), &[]),
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
                Some(&spawner("app::chain::{{closure}}", "app::chain")),
                &[]
            ),
            "[task] boxed future spawned in app::chain (src/chain.rs:9)"
        );
        assert_eq!(
            task_name(boxed, Some("src/chain.rs:9"), None, &[]),
            "[task] boxed future (src/chain.rs:9)"
        );
    }
}
