//! The page at `/debug/theseus/`: the top stacks of the run so far (the
//! `THESEUS_REPORT` table), a flame graph of the last few seconds drawn in
//! the page itself, a form to pick those seconds and the event, and links
//! to every format. Plain HTML and inline SVG, no script: it reads the same
//! in any browser, and refreshing is submitting the form again.

use super::query::MAX_SECONDS;
use super::PROFILE_PATH;
use crate::format::Format;
use crate::profile::{Event, Profile};
use std::fmt::Write as _;
use std::io;

/// The page for the run `so_far` and the flame graph of `window`, the last
/// `seconds`, drawn for `event`.
pub(crate) fn render(
    so_far: &Profile,
    window: &Profile,
    seconds: u64,
    event: Event,
) -> io::Result<String> {
    let mut report = Vec::new();
    crate::report::write(&mut report, so_far)?;
    let mut svg = Vec::new();
    crate::flamegraph::write_without_script(&mut svg, window, event)?;
    let svg = String::from_utf8_lossy(&svg);
    // The XML declaration and doctype belong to a file, not to a page.
    let svg = svg.find("<svg").map_or(&*svg, |start| &svg[start..]);

    let mut html = String::new();
    html.push_str(HEAD);
    let _ = write!(
        html,
        "<h1>theseus</h1>\n{}\n<h2>Top stacks of the run so far</h2>\n<pre id=\"top-stacks\">{}</pre>\n",
        form(seconds, event),
        escape(&String::from_utf8_lossy(&report))
    );
    let _ = write!(
        html,
        "<h2>Flame graph of the last {seconds} s ({})</h2>\n<div id=\"flame-graph\">{svg}</div>\n",
        escape(event.name())
    );
    html.push_str(&downloads(seconds, event));
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

const HEAD: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<title>theseus</title>
<style>
body { font-family: sans-serif; margin: 1em 2em; }
pre { background: #f4f4f4; padding: 0.5em; overflow-x: auto; }
#flame-graph svg { max-width: 100%; height: auto; }
</style>
</head>
<body>
";

/// The form that asks for the page again with other seconds or event.
fn form(seconds: u64, event: Event) -> String {
    let mut options = String::new();
    for e in Event::ALL {
        let selected = if e == event { " selected" } else { "" };
        let _ = write!(
            options,
            "<option value=\"{0}\"{selected}>{0}: {1}</option>",
            e.name(),
            escape(e.description())
        );
    }
    format!(
        "<form method=\"get\" action=\"/debug/theseus/\">\n\
         <label>Seconds <input type=\"number\" name=\"seconds\" min=\"1\" max=\"{MAX_SECONDS}\" value=\"{seconds}\"></label>\n\
         <label>Event <select name=\"event\">{options}</select></label>\n\
         <button type=\"submit\">Refresh</button>\n\
         </form>"
    )
}

/// Links to every format, of the next `seconds` and of the run so far.
fn downloads(seconds: u64, event: Event) -> String {
    let mut list = String::from("<h2>Download</h2>\n<ul>\n");
    for format in Format::ALL {
        let name = format.name();
        let event = event.name();
        let _ = writeln!(
            list,
            "<li>{name}: <a href=\"{PROFILE_PATH}?format={name}&amp;event={event}\">the run so far</a>, \
             <a href=\"{PROFILE_PATH}?seconds={seconds}&amp;format={name}&amp;event={event}\">the next {seconds} s</a></li>"
        );
    }
    list.push_str("</ul>\n");
    list
}

/// `text` with the characters HTML gives a meaning escaped.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            escape("<F as Future>::poll & 'x' \"y\""),
            "&lt;F as Future&gt;::poll &amp; &#39;x&#39; &quot;y&quot;"
        );
    }
}
