//! Resolution at write time: symbols for each distinct instruction pointer
//! (looked up once, then cached), the filters that take the runtime and
//! std's plumbing out, and the name cleanup.

use super::intern::{path, FastMap, FrameKey};
use super::{ResolvedFrame, StackId};
use std::ffi::c_void;
use std::panic::Location;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

/// One source-level frame of a machine frame (inlined calls give several).
#[derive(Debug)]
struct Symbol {
    /// Demangled, without hash; `None` when the address has no symbol.
    name: Option<String>,
    file: Option<String>,
    line: u32,
}

/// Symbols of every instruction pointer resolved so far, outermost first.
static SYMBOLS: LazyLock<Mutex<FastMap<usize, Arc<[Symbol]>>>> =
    LazyLock::new(|| Mutex::new(FastMap::default()));

/// The source frames at return address `ip`, outermost (the machine frame's
/// own function) first, inlined callees after it.
fn symbolize(ip: usize) -> Arc<[Symbol]> {
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
    let mut out = Vec::new();
    let mut ips = Vec::new();
    // Where the last poll's spawn call is, as its frame spells the file.
    let mut spawned_at: Option<(String, u32)> = None;
    for key in path(id) {
        match key {
            FrameKey::Ip(ip) => ips.push(ip),
            FrameKey::Location(loc) => {
                spawned_at = Some(poll_frames(&ips, Some(loc), &mut out));
                ips.clear();
            }
            FrameKey::Leaf(type_name) => {
                if !ips.is_empty() {
                    poll_frames(&ips, None, &mut out);
                    ips.clear();
                }
                out.push(ResolvedFrame {
                    function: format!("[task] {}", leaf_name(type_name)),
                    file: spawned_at
                        .as_ref()
                        .map_or_else(|| "???".to_string(), |(f, _)| f.clone()),
                    line: spawned_at.take().map_or(0, |(_, l)| l),
                });
            }
        }
    }
    if !ips.is_empty() {
        poll_frames(&ips, None, &mut out);
    }
    if let Ok(cwd) = std::env::current_dir() {
        for frame in &mut out {
            relative_to(&cwd, &mut frame.file);
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
fn relative_to(dir: &std::path::Path, file: &mut String) {
    let Some(dir) = dir.to_str() else { return };
    if let Some(rest) = file.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) {
        *file = rest.to_string();
    }
}

/// Appends the user frames of one poll, from the poll boundary (or the
/// thread's entry) down to the spawn call, captured as `ips` (outermost
/// first), with the spawn call's line from `location`. Returns the spawn
/// call's file (spelled as the frame that holds it spells it) and line.
fn poll_frames(
    ips: &[usize],
    location: Option<&Location<'static>>,
    out: &mut Vec<ResolvedFrame>,
) -> (String, u32) {
    let symbols: Vec<Arc<[Symbol]>> = ips.iter().map(|&ip| symbolize(ip)).collect();
    let mut frames: Vec<&Symbol> = symbols.iter().flat_map(|s| s.iter()).collect();

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
        location.is_some_and(|l| {
            f.file
                .as_deref()
                .is_some_and(|file| same_file(file, l.file()))
        })
    };
    let innermost = frames
        .iter()
        .rposition(|f| user(f) && in_loc_file(f) && location.is_some_and(|l| l.line() == f.line))
        .or_else(|| frames.iter().rposition(|f| user(f) && in_loc_file(f)))
        .or_else(|| {
            frames.iter().rposition(|f| {
                f.name
                    .as_deref()
                    .is_some_and(|name| !is_spawn_machinery(name, f.file.as_deref()))
            })
        });
    frames.truncate(innermost.map_or(0, |i| i + 1));

    let mut kept: Vec<ResolvedFrame> = Vec::new();
    let mut spawned_at = ("???".to_string(), 0);
    for f in frames {
        let Some(name) = f.name.as_deref() else {
            continue;
        };
        let file = f.file.as_deref();
        if is_internal(name, file) || is_plumbing(name, file) || is_startup(name, file) {
            continue;
        }
        let frame = ResolvedFrame {
            function: function_name(name),
            file: f.file.clone().unwrap_or_else(|| "???".to_string()),
            line: f.line,
        };
        // `handler::{{closure}}` and `handler` both read `handler`: keep one,
        // with the deeper position (the call made from it).
        match kept.last_mut() {
            Some(prev) if prev.function == frame.function => {
                if frame.line != 0 {
                    *prev = frame;
                }
            }
            _ => kept.push(frame),
        }
    }

    if let Some(loc) = location {
        // The `#[track_caller]` location is exact where a return address is
        // only near the call: put it on the innermost frame of its file.
        let own = kept
            .iter_mut()
            .rev()
            .find(|f| same_file(&f.file, loc.file()));
        match own {
            Some(f) => {
                f.line = loc.line();
                spawned_at = (f.file.clone(), f.line);
            }
            None => match kept.last_mut() {
                // No debug info for files: the innermost frame is the caller.
                Some(f) if f.file == "???" => {
                    f.file = loc.file().to_string();
                    f.line = loc.line();
                    spawned_at = (f.file.clone(), f.line);
                }
                _ => {
                    spawned_at = (loc.file().to_string(), loc.line());
                    kept.push(ResolvedFrame {
                        function: format!("{}:{}", loc.file(), loc.line()),
                        file: loc.file().to_string(),
                        line: loc.line(),
                    });
                }
            },
        }
    }
    out.extend(kept);
    spawned_at
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
fn impl_parts(name: &str) -> (&str, Option<&str>) {
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
fn crate_file<'a>(file: &'a str, krate: &str) -> Option<&'a str> {
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
fn is_internal(name: &str, file: Option<&str>) -> bool {
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
fn is_plumbing(name: &str, file: Option<&str>) -> bool {
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
fn is_startup(name: &str, file: Option<&str>) -> bool {
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
fn function_name(name: &str) -> String {
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
            ["closure#", "async_block#", "async_fn_body#", "coroutine#"]
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

    #[test]
    fn files_match_across_absolute_and_relative_spellings() {
        assert!(same_file("/home/u/app/src/main.rs", "src/main.rs"));
        assert!(same_file("src/main.rs", "src/main.rs"));
        assert!(!same_file("/home/u/app/src/xmain.rs", "main.rs"));
        assert!(!same_file("src/a.rs", "src/b.rs"));
    }
}
