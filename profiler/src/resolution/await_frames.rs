//! Resolution of await points: the frames of the poll that registered the
//! task's waker, cleaned as a spawn's are, and a leaf naming what was
//! awaited.
//!
//! The frames of an await point run from the task's future down to the
//! waker's `clone`: the user's async fns, then the awaited library's code,
//! then the runtime's and std's. They are read in two ways:
//!
//! - **The chain** keeps what a spawn stack keeps (no theseus, no std
//!   plumbing, no thread start-up) and also drops tokio, whose frames are
//!   the awaited thing's insides, not the program's; it ends at the
//!   program's own innermost frame (a frame in a file no library's), so
//!   what is left is the program's own path to the await. Without debug
//!   info to tell the program's files, it ends at the innermost frame
//!   kept, another library's perhaps.
//! - **The name** of the awaited thing is the awaited code's entry point:
//!   the first frame inside the innermost frame of the chain that is not
//!   std's or theseus's glue, the API the program called,
//!   `<tokio::time::sleep::Sleep as Future>::poll`,
//!   `tokio::sync::mutex::Mutex<T>::lock::{{closure}}` or
//!   `<futures_util::stream::stream::next::Next<St> as Future>::poll` (not
//!   where that library registered the waker, three crates further in). It is read from
//!   the frames before they are filtered, and shortened: the type of a
//!   `poll` method (`tokio::time::sleep::Sleep`), generic arguments and
//!   closures dropped, and a module named after the item in it left out
//!   (`tokio::time::Sleep`, `tokio::sync::Mutex::lock`). A join handle's
//!   await is named after the task it awaits, and the executor's own
//!   futures by the name the executor gives them ([`Awaited`]).
//!
//! With none of the program's code on the stack (an extractor reading a
//! request's body, a library's task), the innermost frame kept stands in
//! for the program's; if nothing further in can name the awaited thing
//! (that frame kept the waker itself), the leaf is the API by which the
//! chain entered that frame's crate: `hyper::body::Incoming`, not
//! `hyper::body::chan::Receiver::poll_next`.
//!
//! The leaf is placed at the entry point's source line (`sleep.rs` in
//! tokio's sources, for a timer), so one awaited thing is one function in
//! one file wherever it is awaited; the line of each await is the line of
//! the call to it from the program's innermost frame.

use super::filters::{
    crate_file, crate_of_file, impl_parts, is_internal, is_plumbing, is_startup, is_waker_cell,
};
use super::names::function_name;
use super::spawn_frames::named_frame;
use super::symbolize::{symbolize, Symbol};
use super::ResolvedFrame;
use crate::capture::intern::Awaited;
use crate::capture::StackId;

/// What an await point's leaf is called: `[await] ` and what was awaited.
pub(crate) const AWAIT_PREFIX: &str = "[await] ";

/// Appends the chain of the await point whose poll frames are `ips`
/// (outermost first) and its leaf; an await on a task is named by
/// `task_name`, which resolves that task's stack.
pub(super) fn append(
    ips: &[usize],
    awaited: Awaited,
    task_name: fn(StackId) -> String,
    out: &mut Vec<ResolvedFrame>,
) {
    let symbols: Vec<_> = ips.iter().map(|&ip| symbolize(ip)).collect();
    let frames: Vec<&Symbol> = symbols.iter().flat_map(|s| s.iter()).collect();
    append_frames(&frames, awaited, task_name, out);
}

/// [`append`], for the poll's frames symbolized.
fn append_frames(
    frames: &[&Symbol],
    awaited: Awaited,
    task_name: fn(StackId) -> String,
    out: &mut Vec<ResolvedFrame>,
) {
    // The program's own code ends the chain, and what it called is what
    // it awaited. Without the program's code on the stack (a request's
    // extractor, in a library's task) or debug info to tell it, the chain
    // ends at its innermost frame; if that frame registered the waker
    // itself, the awaited thing is the API of its crate that was entered
    // there: the chain ends above it.
    let own = innermost_own(frames);
    let innermost_kept = own.or_else(|| frames.iter().rposition(|f| in_chain(f)));
    let mut inside = innermost_kept.map_or(0, |i| i + 1);
    let mut entry = frames[inside..].iter().find(|f| is_entry_point(f));
    if let (Some(_), None) = (own, entry) {
        // Only glue inside the program's code: a library future that keeps
        // or wakes the waker itself, as futures-lite's `yield_now` does,
        // is still what was awaited.
        entry = frames[inside..].iter().find(|f| is_library_future(f));
    }
    if let (None, None, Some(innermost)) = (own, entry, innermost_kept) {
        let first = crate_entered_at(frames, innermost);
        entry = Some(&frames[first]);
        inside = first;
    }
    // With nothing inside the chain to name it, the chain's innermost
    // frame kept the waker itself: it is what was awaited.
    let awaited_code = entry.or_else(|| innermost_kept.map(|i| &frames[i]));
    let name = match awaited {
        Awaited::Task(task) => task_name(task),
        Awaited::Named(name) => name.to_string(),
        Awaited::Frames => awaited_code
            .and_then(|f| f.name.as_deref())
            .map_or_else(|| "(unknown)".to_string(), awaited_name),
    };

    let mut chain: Vec<ResolvedFrame> = Vec::new();
    for (i, f) in frames[..inside].iter().enumerate() {
        if !in_chain(f) {
            continue;
        }
        // As a spawn stack names them: `{async_fn#0}` (debug info without
        // paths) qualified, so that chains read as the leaves do.
        let (frame, _) = named_frame(frames, i, None);
        // An async fn's body and the fn read the same: keep one, at the
        // deeper position, which is the call made from it; unless that is
        // in another file, as the body of a `select!` is in tokio's macro
        // file, when the line in the program's own source says more.
        match chain.last_mut() {
            Some(prev) if prev.function == frame.function => {
                if frame.line != 0 && (prev.line == 0 || prev.file == frame.file) {
                    *prev = frame;
                }
            }
            _ => chain.push(frame),
        }
    }
    // The leaf is the awaited code, so it sits in that code's source, at
    // its entry point, as any function sits in its own. (On the line of
    // the await, a source annotation would count the wait twice there: as
    // the leaf's own cost and as the cost of the call to it.)
    let (file, line) = awaited_code
        .and_then(|f| Some((f.file.clone()?, f.line)))
        .unwrap_or_else(|| ("???".to_string(), 0));
    out.extend(chain);
    out.push(ResolvedFrame {
        function: format!("{AWAIT_PREFIX}{name}"),
        file,
        line,
    });
}

/// Whether a frame belongs to the program's path to the await.
fn in_chain(f: &Symbol) -> bool {
    let Some(name) = f.name.as_deref() else {
        return false;
    };
    let file = f.file.as_deref();
    !(is_internal(name, file)
        || is_plumbing(name, file)
        || is_startup(name, file)
        || is_tokio(name, file))
}

/// The innermost frame of the program's own code among `frames`: a frame
/// of the chain in a file that is no library's (std's, theseus's, a
/// registry crate's), or of a crate such a frame is of (the body of a
/// `select!` is the program's closure, placed in tokio's macro file).
fn innermost_own(frames: &[&Symbol]) -> Option<usize> {
    let mut own_crates: Vec<&str> = Vec::new();
    let mut innermost = None;
    for (i, f) in frames.iter().enumerate() {
        let Some(name) = f.name.as_deref().filter(|_| in_chain(f)) else {
            continue;
        };
        let krate = crate_of_name(name);
        let own_file = f
            .file
            .as_deref()
            .is_some_and(|file| crate_of_file(file).is_none());
        if own_file || own_crates.contains(&krate) {
            own_crates.push(krate);
            innermost = Some(i);
        }
    }
    innermost
}

/// Where the chain entered the crate of its frame `innermost`: the
/// outermost frame of the run of chain frames of that crate that ends there.
fn crate_entered_at(frames: &[&Symbol], innermost: usize) -> usize {
    fn crate_of(f: &Symbol) -> Option<&str> {
        f.name.as_deref().map(crate_of_name)
    }
    let krate = crate_of(frames[innermost]);
    let mut first = innermost;
    for (i, f) in frames[..innermost].iter().enumerate().rev() {
        if !in_chain(f) {
            continue;
        }
        if crate_of(f) != krate {
            break;
        }
        first = i;
    }
    first
}

/// The crate a function's name starts with: `app` of
/// `<app::Gate as core::future::Future>::poll`.
fn crate_of_name(name: &str) -> &str {
    let path = name
        .trim_start_matches(['<', '&'])
        .trim_start_matches("mut ");
    path.split("::").next().unwrap_or(path)
}

/// Whether a frame can name the awaited thing: any code but theseus's and
/// std's glue.
fn is_entry_point(f: &Symbol) -> bool {
    let Some(name) = f.name.as_deref() else {
        return false;
    };
    let file = f.file.as_deref();
    !(is_internal(name, file) || is_plumbing(name, file))
}

/// Whether a frame is a registry crate's code that can be awaited: not
/// std's, theseus's, or a cell that keeps a waker for another library.
fn is_library_future(f: &Symbol) -> bool {
    let (Some(name), Some(file)) = (f.name.as_deref(), f.file.as_deref()) else {
        return false;
    };
    let library = crate_of_file(file)
        .is_some_and(|krate| !["core", "std", "alloc", "theseus"].contains(&krate.as_str()));
    library && !is_internal(name, Some(file)) && !is_waker_cell(name)
}

/// tokio's code, by name or, for unqualified names, by source file. A
/// qualified name wins over the file: the body of a `select!` is the
/// program's own closure, which debug info places in tokio's macro file.
/// An impl of a tokio trait for a reference or a type parameter
/// (`<&mut T as tokio::io::AsyncRead>::poll_read`) is tokio's forwarding,
/// while one for a named type is that type's own code.
fn is_tokio(name: &str, file: Option<&str>) -> bool {
    let tokio = |path: &str| path.starts_with("tokio::");
    if name.contains("::") {
        let (self_ty, trait_) = impl_parts(name);
        let self_ty = self_ty.trim_start_matches('&').trim_start_matches("mut ");
        let generic_self = name.starts_with("<&") || !self_ty.contains("::");
        return tokio(name) || tokio(self_ty) || (generic_self && trait_.is_some_and(tokio));
    }
    file.is_some_and(|f| crate_file(f, "tokio-").is_some())
}

/// What a frame's function says was awaited; see the module docs.
pub(crate) fn awaited_name(raw: &str) -> String {
    let f = function_name(raw);
    let unqualified = unwrap_qualified_self(&f);
    let f = unqualified.as_deref().unwrap_or(&f);
    let item = match impl_parts(f) {
        // `<Sleep as Future>::poll`, `<TcpStream as AsyncRead>::poll_read`:
        // the type whose trait impl was called.
        (self_ty, Some(_)) => self_ty.trim_start_matches('&').to_string(),
        // `Sleep::poll_elapsed`: a type's poll method is its future.
        _ => match f.rsplit_once("::") {
            Some((owner, method)) if method.starts_with("poll") => owner.to_string(),
            _ => f.to_string(),
        },
    };
    shorten(&strip_generics(&item))
}

/// `<Type>::method` (v0 names of inherent methods) as `Type::method`.
fn unwrap_qualified_self(f: &str) -> Option<String> {
    let inner = f.strip_prefix('<')?;
    let mut depth = 0usize;
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' if depth == 0 => {
                let self_ty = &inner[..i];
                if self_ty.contains(" as ") {
                    return None;
                }
                return Some(format!("{self_ty}{}", &inner[i + 1..]));
            }
            '>' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The path without its generic arguments: `Receiver<T>::recv` is
/// `Receiver::recv`.
fn strip_generics(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Leaves out the innermost module named after the item in it, where
/// crates re-export the item: `time::sleep::Sleep` is `time::Sleep`,
/// `task::yield_now::yield_now` is `task::yield_now`. One module only: a
/// path made shorter still would name no item at all.
fn shorten(path: &str) -> String {
    let segments: Vec<&str> = path.split("::").collect();
    let named_after_next = |i: usize| {
        let (seg, next) = (segments[i], segments.get(i + 1));
        i > 0 && next.is_some_and(|n| *n == seg || snake_case(n) == seg)
    };
    match (0..segments.len()).rfind(|&i| named_after_next(i)) {
        Some(module) => {
            let mut kept = segments.clone();
            kept.remove(module);
            kept.join("::")
        }
        None => path.to_string(),
    }
}

/// `TcpStream` as `tcp_stream`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awaited_things_are_named_by_their_entry_point() {
        for (frame, name) in [
            (
                "<tokio::time::sleep::Sleep as core::future::future::Future>::poll",
                "tokio::time::Sleep",
            ),
            ("tokio::time::sleep::Sleep::poll_elapsed", "tokio::time::Sleep"),
            (
                "<tokio::sync::oneshot::Receiver<T> as core::future::future::Future>::poll",
                "tokio::sync::oneshot::Receiver",
            ),
            (
                "tokio::sync::mutex::Mutex<T>::lock::{{closure}}",
                "tokio::sync::Mutex::lock",
            ),
            (
                "<tokio::sync::semaphore::Semaphore>::acquire::{closure#0}",
                "tokio::sync::Semaphore::acquire",
            ),
            (
                "tokio::sync::mpsc::bounded::Receiver<T>::recv::{{closure}}",
                "tokio::sync::mpsc::bounded::Receiver::recv",
            ),
            (
                "tokio::task::yield_now::yield_now::{{closure}}",
                "tokio::task::yield_now",
            ),
            (
                "<tokio::net::tcp::stream::TcpStream as tokio::io::async_read::AsyncRead>::poll_read",
                "tokio::net::tcp::stream::TcpStream",
            ),
            ("<app::Gate as core::future::future::Future>::poll", "app::Gate"),
            ("app::wait_for_it::{{closure}}", "app::wait_for_it"),
            (
                "<tokio::io::util::read_exact::ReadExact<A> as core::future::future::Future>::poll",
                "tokio::io::util::ReadExact",
            ),
            (
                "h2::proto::streams::streams::Streams<B,P>::poll_complete",
                "h2::proto::streams::Streams",
            ),
        ] {
            assert_eq!(awaited_name(frame), name, "{frame}");
        }
    }

    fn sym(name: &str, file: &str, line: u32) -> Symbol {
        Symbol {
            name: Some(name.to_string()),
            file: Some(file.to_string()),
            line,
        }
    }

    /// With `debug = "line-tables-only"` debug info names functions without
    /// their paths: the chain's frames are qualified as a spawn stack's are.
    #[test]
    fn bare_names_in_a_chain_are_qualified() {
        let join = format!("{}join.rs", crate::resolution::filters::own_dirs()[1]);
        let app = "/home/u/app/src/server.rs";
        let sleep = "/home/u/.cargo/registry/src/i/tokio-1.54.1/src/time/sleep.rs";
        let poll = [
            sym(
                "poll_below_boundary<app::serve::{async_fn_env#0}>",
                &join,
                111,
            ),
            sym("{async_fn#0}", app, 62),
            sym("poll", sleep, 450),
        ];
        let out = resolved(&poll);
        let names: Vec<&str> = out.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(names[0], "app::serve", "{names:?}");
        assert_eq!(names.len(), 2, "{names:?}");
    }

    /// The chain and leaf of the poll frames `poll` (outermost first).
    fn resolved(poll: &[Symbol]) -> Vec<ResolvedFrame> {
        let mut out = Vec::new();
        append_frames(
            &poll.iter().collect::<Vec<_>>(),
            Awaited::Frames,
            |_| unreachable!("no task awaited"),
            &mut out,
        );
        out
    }

    /// The leaf of the poll frames `poll`, as `(function, file)`.
    fn leaf_of(poll: &[Symbol]) -> (String, String) {
        let leaf = resolved(poll).pop().expect("a leaf");
        (leaf.function, leaf.file)
    }

    /// A future that wakes or keeps the waker itself, with nothing but
    /// std's glue and theseus's waker inside it, is what was awaited, in
    /// its own file: futures-lite's `yield_now`, whose module is otherwise
    /// combinator glue, and a program's own future.
    #[test]
    fn a_future_that_keeps_the_waker_itself_is_what_was_awaited() {
        let join = format!("{}join.rs", crate::resolution::filters::own_dirs()[1]);
        let waker = format!("{}waker.rs", crate::resolution::filters::own_dirs()[1]);
        let app = "/home/u/app/src/server.rs";
        let lite = "/home/u/.cargo/registry/src/i/futures-lite-2.6.0/src/future.rs";
        let wake = "/rustc/0123/library/core/src/task/wake.rs";
        let boundary = sym(
            "theseus_executor::boundary::poll_below_boundary",
            &join,
            111,
        );
        let yielded = [
            boundary.clone(),
            sym("app::yielder::{{closure}}", app, 12),
            sym(
                "<futures_lite::future::YieldNow as core::future::future::Future>::poll",
                lite,
                248,
            ),
            sym("core::task::wake::Waker::wake_by_ref", wake, 450),
            sym("theseus_executor::waker::wake_by_ref", &waker, 154),
        ];
        assert_eq!(
            leaf_of(&yielded),
            (
                "[await] futures_lite::future::YieldNow".to_string(),
                lite.to_string()
            )
        );
        let gated = [
            boundary,
            sym("app::serve::{{closure}}", app, 30),
            sym("<app::Gate as core::future::future::Future>::poll", app, 80),
            sym(
                "<core::task::wake::Waker as core::clone::Clone>::clone",
                wake,
                500,
            ),
            sym("theseus_executor::waker::clone_waker", &waker, 120),
        ];
        assert_eq!(
            leaf_of(&gated),
            ("[await] app::Gate".to_string(), app.to_string())
        );
    }

    #[test]
    fn tokio_is_known_by_name_or_file() {
        assert!(is_tokio("tokio::time::sleep::Sleep::poll_elapsed", None));
        assert!(is_tokio(
            "<tokio::time::sleep::Sleep as core::future::future::Future>::poll",
            None
        ));
        assert!(is_tokio(
            "poll",
            Some("/home/u/.cargo/registry/src/index.crates.io-1/tokio-1.54.1/src/time/sleep.rs")
        ));
        assert!(is_tokio(
            "<&mut T as tokio::io::async_read::AsyncRead>::poll_read",
            None
        ));
        assert!(!is_tokio(
            "<app::Framed as tokio::io::async_read::AsyncRead>::poll_read",
            None
        ));
        assert!(!is_tokio("app::tokio_helper", None));
        assert!(!is_tokio("poll", Some("/home/u/app/src/main.rs")));
        // `select!`'s body: the program's closure, in tokio's macro file.
        assert!(!is_tokio(
            "app::handler::{{closure}}::{{closure}}",
            Some("/home/u/.cargo/registry/src/index.crates.io-1/tokio-1.54.1/src/macros/select.rs")
        ));
    }
}
