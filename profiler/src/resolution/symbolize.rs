//! Symbolization: the source frames of a return address, looked up once
//! per distinct address at write time and cached for the process.
//!
//! Capture keeps bare addresses (`intern`); this is the only place that
//! asks the debug info about them. A machine frame can stand for several
//! source frames (inlined calls), so an address gives a list.

use crate::capture::intern::FastMap;
use std::ffi::c_void;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

/// One source-level frame of a machine frame (inlined calls give several).
#[derive(Clone, Debug)]
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
