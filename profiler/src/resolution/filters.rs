//! Whose code a frame is: theseus's own, the task library's and the
//! unwinder's (`is_internal`), std's and the runtimes' glue between futures
//! and closures (`is_plumbing`), or process and thread start-up
//! (`is_startup`). A logical stack shows none of them: what is left is the
//! program's own path to a spawn or an await.
//!
//! Release builds often carry line tables only: names are then unqualified
//! (`poll`, `{closure#0}`), and the source file is what tells whose code a
//! frame is. These work on the paths debug info gives: std's as
//! `/rustc/<hash>/library/...`, registry crates as `.../<crate>-<version>/...`.

use std::ffi::c_void;
use std::sync::LazyLock;

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

/// A cell that keeps a waker for another library, which is what was
/// awaited (hyper's request body keeps its waker in one): never named as
/// the awaited thing.
pub(super) fn is_waker_cell(name: &str) -> bool {
    const CELLS: &[&str] = &["atomic_waker::", "diatomic_waker::"];
    starts_with_any(name, CELLS) || starts_with_any(owner(name), CELLS)
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
    if is_waker_cell(name) {
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

/// A thread's entry: std's marker frame, C `main`, the runtime start.
pub(super) fn is_entry(name: &str) -> bool {
    name.ends_with("__rust_begin_short_backtrace")
        || name == "main"
        || name.starts_with("std::rt::lang_start")
}

/// Frames to skip at the inner end of a poll: the spawn call itself, and
/// std code that only leads into it. A `tokio::spawn` task is seen from
/// tokio's spawn hook, at the end of tokio's own path down from the spawn
/// call (`spawn_inner`, the scheduler's `bind_new_task`, the hooks).
pub(super) fn is_spawn_machinery(name: &str, file: Option<&str>) -> bool {
    const TOKIO_SPAWN_PATH: &[&str] = &[
        "tokio::task::spawn::",
        "tokio::task::join_set::",
        "tokio::runtime::handle::Handle::spawn",
        "tokio::runtime::context::",
        "tokio::runtime::scheduler::",
        "tokio::runtime::task::",
        "tokio::runtime::task_hooks::",
    ];
    is_internal(name, file)
        || is_plumbing(name, file)
        || starts_with_any(name, TOKIO_SPAWN_PATH)
        || starts_with_any(owner(name), TOKIO_SPAWN_PATH)
}

/// tokio's own running of a task: its worker loop, blocking pool and task
/// harness, down to its poll of the task's future. A poll that theseus did
/// not start (a `tokio::spawn` task it does not see) has no poll boundary,
/// and its walk reaches up through these to the thread's start.
pub(super) fn is_tokio_task_run(name: &str, file: Option<&str>) -> bool {
    const RUNNING: &[&str] = &[
        "tokio::runtime::task::",
        "tokio::runtime::scheduler::",
        "tokio::runtime::blocking::",
        "tokio::runtime::context::",
        "tokio::loom::",
    ];
    if let Some(rest) = file.and_then(|f| crate_file(f, "tokio-")) {
        const FILES: &[&str] = &[
            "src/runtime/task/",
            "src/runtime/scheduler/",
            "src/runtime/blocking/",
            "src/runtime/context",
            "src/loom/",
        ];
        if FILES.iter().any(|f| rest.starts_with(f)) {
            return true;
        }
    }
    starts_with_any(name, RUNNING) || starts_with_any(owner(name), RUNNING)
}

/// The standard library's crates, by path.
pub(super) const STD_PATHS: &[&str] = &["std::", "core::", "alloc::"];

pub(super) fn starts_with_any(s: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| s.starts_with(p))
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

/// The crate a source file belongs to, as a path's first segment spells
/// it, for files of std, of theseus and of registry crates; `None` for the
/// program's own files.
pub(super) fn crate_of_file(file: &str) -> Option<String> {
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
pub(super) fn own_dirs() -> &'static [String] {
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
        // This file's own directory: moving the file means changing it here.
        let Some(i) = file.rfind("/src/resolution/") else {
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

/// Whether debug info's `a` and `#[track_caller]`'s `b` name the same file:
/// one may be absolute and the other relative to the build directory.
pub(super) fn same_file(a: &str, b: &str) -> bool {
    fn ends_with_path(long: &str, short: &str) -> bool {
        long.strip_suffix(short)
            .is_some_and(|rest| rest.is_empty() || rest.ends_with('/') || rest.ends_with('\\'))
    }
    a == b || ends_with_path(a, b) || ends_with_path(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

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
