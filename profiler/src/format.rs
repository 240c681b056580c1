//! Output formats, chosen by the output path's extension or by
//! `THESEUS_FORMAT`, all written from one [`Profile`](crate::Profile) (by
//! its `write`, in `writers.rs`: this module names the formats and knows no
//! writer, so the settings that read a format depend on none).
//!
//! | extension | format | writer |
//! |---|---|---|
//! | `.pb.gz` | pprof, gzipped `profile.proto` | [`crate::pprof`] |
//! | `.folded` | folded stacks, `frame;frame;leaf N` | [`crate::folded`] |
//! | `.svg` | flame graph | [`crate::flamegraph`] |
//! | anything else | callgrind | [`crate::callgrind`] |
//!
//! Extensions are matched without regard to case. Callgrind stays the
//! default because its readers show every event at once and the call graph;
//! the others show one event at a time ([`Event`](crate::Event), `THESEUS_EVENT`), except
//! pprof, which carries every event and opens on the chosen one.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A profile file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// The callgrind format: KCachegrind, `callgrind_annotate`, gprof2dot.
    #[default]
    Callgrind,
    /// pprof's gzipped `profile.proto`: `go tool pprof`, Pyroscope, Parca.
    Pprof,
    /// Folded stacks: inferno, flamegraph.pl, speedscope.
    Folded,
    /// A flame graph in SVG, drawn by inferno.
    FlameGraph,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 4] = [
        Format::Callgrind,
        Format::Pprof,
        Format::Folded,
        Format::FlameGraph,
    ];

    /// The name `THESEUS_FORMAT` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Format::Callgrind => "callgrind",
            Format::Pprof => "pprof",
            Format::Folded => "folded",
            Format::FlameGraph => "svg",
        }
    }

    /// The extension that selects this format, with its dot; callgrind is
    /// what any other name gets, so it has none.
    pub fn extension(self) -> Option<&'static str> {
        match self {
            Format::Callgrind => None,
            Format::Pprof => Some(".pb.gz"),
            Format::Folded => Some(".folded"),
            Format::FlameGraph => Some(".svg"),
        }
    }

    /// The format a file at `path` is written in, by its extension.
    ///
    /// ```
    /// use theseus_profiler::Format;
    /// use std::path::Path;
    ///
    /// assert_eq!(Format::for_path(Path::new("app.pb.gz")), Format::Pprof);
    /// assert_eq!(Format::for_path(Path::new("out/app.SVG")), Format::FlameGraph);
    /// assert_eq!(Format::for_path(Path::new("callgrind.theseus")), Format::Callgrind);
    /// ```
    pub fn for_path(path: &Path) -> Format {
        let Some(name) = path.file_name() else {
            return Format::Callgrind;
        };
        let name = name.to_string_lossy().to_ascii_lowercase();
        Format::ALL
            .into_iter()
            .find(|f| {
                f.extension()
                    .is_some_and(|ext| name.len() > ext.len() && name.ends_with(ext))
            })
            .unwrap_or(Format::Callgrind)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the [`Format`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseFormatError {
    value: String,
}

impl fmt::Display for ParseFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no format is named {:?}; the formats are callgrind, pprof, folded and svg",
            self.value
        )
    }
}

impl std::error::Error for ParseFormatError {}

impl FromStr for Format {
    type Err = ParseFormatError;

    /// `callgrind`, `pprof`, `folded` or `svg`, ignoring case and
    /// surrounding blanks.
    fn from_str(s: &str) -> Result<Format, ParseFormatError> {
        let wanted = s.trim();
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| ParseFormatError {
                value: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_extensions_and_names() {
        let cases = [
            ("a.pb.gz", Format::Pprof),
            ("a.PB.GZ", Format::Pprof),
            ("a.folded", Format::Folded),
            ("dir.svg/a.svg", Format::FlameGraph),
            ("a.gz", Format::Callgrind),
            (".svg", Format::Callgrind),
            ("a.callgrind", Format::Callgrind),
            ("a", Format::Callgrind),
        ];
        for (path, format) in cases {
            assert_eq!(Format::for_path(Path::new(path)), format, "{path}");
        }
        for format in Format::ALL {
            assert_eq!(format.name().parse(), Ok(format));
            assert_eq!(format.name().to_uppercase().parse(), Ok(format));
        }
        let err = "flame".parse::<Format>().unwrap_err().to_string();
        assert!(err.contains("\"flame\"") && err.contains("pprof"), "{err}");
    }
}
