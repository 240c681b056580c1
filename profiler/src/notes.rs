//! Notes said on standard error when a session writes its profile: what the
//! profile could not see, told by the code that knows it (the executor
//! knows when `tokio::spawn` tasks ran unseen; the profiler does not).

use std::sync::{Mutex, PoisonError};

/// Something to say when a profile is written; `None` while there is
/// nothing to say.
pub type Note = fn() -> Option<String>;

/// The notes added, and whether each has been said.
static NOTES: Mutex<Vec<(Note, bool)>> = Mutex::new(Vec::new());

/// Adds `note`: whenever a session writes its profile (when `main`
/// returns, on SIGINT or SIGTERM, at `exit`), the note is asked, and the
/// first time it has something to say, that goes to standard error. Adding
/// the same function again changes nothing.
///
/// ```
/// fn unseen() -> Option<String> {
///     Some("theseus: some tasks ran unseen".to_string())
/// }
/// theseus_profiler::add_note(unseen);
/// theseus_profiler::add_note(unseen);
/// ```
pub fn add_note(note: Note) {
    let mut notes = NOTES.lock().unwrap_or_else(PoisonError::into_inner);
    if !notes.iter().any(|(n, _)| std::ptr::fn_addr_eq(*n, note)) {
        notes.push((note, false));
    }
}

/// Says, on standard error, what the notes not said yet have to say.
pub(crate) fn say_notes() {
    let mut notes = NOTES.lock().unwrap_or_else(PoisonError::into_inner);
    for (note, said) in notes.iter_mut().filter(|(_, said)| !*said) {
        if let Some(text) = note() {
            eprintln!("{text}");
            *said = true;
        }
    }
}
