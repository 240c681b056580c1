//! Naming: how a frame's function and a task's future read in a profile.
//!
//! Async fn bodies and closures read as the function they are written in
//! (`app::handler::{{closure}}` is `app::handler`); the bare names of
//! debug info with line tables only (`{async_fn#0}`) are qualified from
//! their caller's generic arguments where exactly one path fits; and
//! `std::any::type_name` of a spawned future is shortened for its leaf.
//! Whether some name had to do without full debug info is remembered
//! ([`names_degraded`]), so a session can say how to get full names.

use super::filters::{crate_of_file, starts_with_any, STD_PATHS};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Set once a profile had to name a frame without full debug info: bare
/// names (`line-tables-only`) or no names and lines at all (no debug info).
static DEGRADED: AtomicBool = AtomicBool::new(false);

/// Whether a frame resolved so far was named without full debug info, so
/// that some names are qualified by file and line, or stand for a spawn
/// location only. See [`crate::Session`], which then says how to fix it.
pub(crate) fn names_degraded() -> bool {
    DEGRADED.load(Relaxed)
}

/// Remembers that a frame was named without full debug info.
pub(crate) fn mark_names_degraded() {
    DEGRADED.store(true, Relaxed);
}

/// The name without generic arguments: `{closure#0}<u64>` is `{closure#0}`.
pub(super) fn base_name(name: &str) -> &str {
    name.split('<').next().unwrap_or(name)
}

/// A name without a path, as debug info with line tables only gives them:
/// `{async_fn#0}`, `run`. Such names are not unique in a program.
pub(super) fn is_bare(name: &str) -> bool {
    !name.starts_with('<') && !base_name(name).contains("::")
}

/// A name the compiler made up for a closure, an async fn's or block's body
/// or a coroutine: `{closure#0}`, `{async_fn#0}`, `{async_block#1}`.
pub(super) fn is_generated(name: &str) -> bool {
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
pub(super) fn qualify_bare(name: &str, caller: Option<(&str, Option<&str>)>) -> Option<String> {
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
pub(super) fn is_closure_segment(seg: &str) -> bool {
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
pub(super) fn leaf_name(type_name: &str) -> String {
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
}
