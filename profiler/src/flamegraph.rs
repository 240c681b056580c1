//! The flame graph writer: an SVG drawn by inferno from the folded stacks
//! of one event ([`crate::folded::lines`]).
//!
//! inferno is the Rust port of flamegraph.pl that cargo-flamegraph uses; its
//! SVG carries its own script, so the file opened in a browser is
//! searchable (Ctrl-F, or the Search button) and zoomable (click a frame),
//! with each frame's value and share in its tooltip. Frame colours come from
//! a hash of the name, so a function keeps its colour from one profile to
//! the next.
//!
//! A profile with nothing to draw (no task had any of the event) is written
//! as a small SVG that says so, where inferno would write an error.

use crate::profile::{Event, Profile};
use inferno::flamegraph::{self, Options};
use std::io::{self, Write};

/// Writes `profile` as a flame graph of `event`.
pub fn write<W: Write + ?Sized>(out: &mut W, profile: &Profile, event: Event) -> io::Result<()> {
    draw(out, profile, event, true)
}

/// [`write`] without inferno's script: a picture to put in a page, which
/// stays still (no search, no zoom) and runs nothing there.
pub(crate) fn write_without_script<W: Write + ?Sized>(
    out: &mut W,
    profile: &Profile,
    event: Event,
) -> io::Result<()> {
    draw(out, profile, event, false)
}

fn draw<W: Write + ?Sized>(
    out: &mut W,
    profile: &Profile,
    event: Event,
    script: bool,
) -> io::Result<()> {
    let lines: Vec<String> = crate::folded::lines(profile, event)
        .into_iter()
        .map(|(stack, n)| format!("{stack} {n}"))
        .collect();
    let mut out = io::BufWriter::new(out);
    if lines.is_empty() {
        write_empty(&mut out, event)?;
        return out.flush();
    }
    let mut options = Options::default();
    options.title = format!("theseus: {} ({})", event.description(), event.name());
    options.subtitle = Some(escape_for_svg(&profile.header.cmd));
    options.count_name = match event.unit() {
        "nanoseconds" => "ns".to_string(),
        _ => event.name().to_ascii_lowercase(),
    };
    options.hash = true;
    options.no_javascript = !script;
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut out)?;
    out.flush()
}

/// inferno writes the subtitle as XML text; the command line is the user's
/// and may hold anything, so keep it printable.
fn escape_for_svg(text: &str) -> String {
    crate::profile::clean_name(text)
}

/// An SVG that says there is nothing to draw.
fn write_empty(out: &mut impl Write, event: Event) -> io::Result<()> {
    writeln!(out, r#"<?xml version="1.0" standalone="no"?>"#)?;
    writeln!(
        out,
        r#"<svg version="1.1" width="1200" height="60" xmlns="http://www.w3.org/2000/svg">"#
    )?;
    writeln!(
        out,
        r#"<text x="600" y="34" text-anchor="middle" font-family="Verdana" font-size="14">theseus: no task has any {} in this profile</text>"#,
        event.name()
    )?;
    writeln!(out, "</svg>")
}
