//! What a pull asks for, from its query string (`seconds`, `format`,
//! `event`), checked: a bad or unknown parameter is refused with a reason
//! that names it and what is accepted.

use crate::format::Format;
use crate::profile::Event;

/// The longest window a pull may ask for, in seconds.
pub(crate) const MAX_SECONDS: u64 = 3600;

/// A pull's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pull {
    /// The window's length; `None` for the whole run so far.
    pub(crate) seconds: Option<u64>,
    pub(crate) format: Format,
    pub(crate) event: Event,
}

/// Reads `query` (the part of the path after `?`, if any), starting from
/// `defaults`; the names accepted are `names`, a subset of `seconds`,
/// `format` and `event`. The error is the one-line reason for a 400.
pub(crate) fn parse(query: Option<&str>, defaults: Pull, names: &[&str]) -> Result<Pull, String> {
    let mut pull = defaults;
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !names.contains(&name.as_ref()) {
            return Err(format!(
                "unknown parameter {name:?}; the parameters are {}",
                names.join(", ")
            ));
        }
        if seen.iter().any(|s| *s == name) {
            return Err(format!("parameter {name:?} given twice"));
        }
        seen.push(name.to_string());
        match name.as_ref() {
            "seconds" => pull.seconds = Some(seconds(&value)?),
            "format" => pull.format = value.parse().map_err(|e| format!("format: {e}"))?,
            _ => pull.event = value.parse().map_err(|e| format!("event: {e}"))?,
        }
    }
    Ok(pull)
}

/// A window's length: a whole number of seconds from 1 to [`MAX_SECONDS`].
fn seconds(value: &str) -> Result<u64, String> {
    match value.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_SECONDS).contains(&n) => Ok(n),
        _ => Err(format!(
            "seconds={value:?} is not a whole number of seconds from 1 to {MAX_SECONDS}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &["seconds", "format", "event"];
    const DEFAULTS: Pull = Pull {
        seconds: None,
        format: Format::Pprof,
        event: Event::WallNs,
    };

    #[test]
    fn parameters_are_read_and_checked() {
        assert_eq!(parse(None, DEFAULTS, ALL), Ok(DEFAULTS));
        let pull = parse(Some("seconds=30&format=svg&event=busyns"), DEFAULTS, ALL).unwrap();
        assert_eq!(
            pull,
            Pull {
                seconds: Some(30),
                format: Format::FlameGraph,
                event: Event::BusyNs
            }
        );
        assert_eq!(
            parse(Some("format=%63allgrind"), DEFAULTS, ALL)
                .unwrap()
                .format,
            Format::Callgrind
        );
        for (query, says) in [
            ("seconds=0", "from 1 to 3600"),
            ("seconds=3601", "from 1 to 3600"),
            ("seconds=-1", "from 1 to 3600"),
            ("seconds=1.5", "from 1 to 3600"),
            ("seconds=", "from 1 to 3600"),
            ("format=png", "callgrind, pprof, folded and svg"),
            ("event=Cycles", "WallNs"),
            ("second=5", "unknown parameter \"second\""),
            ("seconds=1&seconds=2", "given twice"),
        ] {
            let error = parse(Some(query), DEFAULTS, ALL).unwrap_err();
            assert!(error.contains(says), "{query}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
        let error = parse(Some("format=svg"), DEFAULTS, &["seconds", "event"]).unwrap_err();
        assert!(
            error.contains("the parameters are seconds, event"),
            "{error}"
        );
    }
}
