//! Settings from the environment: `THESEUS`, `THESEUS_OUT`, `THESEUS_FORMAT`,
//! `THESEUS_EVENT`, `THESEUS_INTERVAL`, `THESEUS_REPORT`, `THESEUS_STACKS`,
//! `THESEUS_AWAITS`, `THESEUS_SAMPLE_HZ`, `THESEUS_HTTP`.
//!
//! An empty variable counts as unset. A bad value is an error that names the
//! variable, the value, and what is accepted, so a typo is caught at start
//! rather than after an hour of running with the wrong settings; a
//! misspelled name gets a warning naming the variables theseus reads.

use crate::capture::{AwaitMode, CaptureMode};
use crate::format::Format;
use crate::profile::Event;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The output file used when `THESEUS_OUT` is not set, relative to the
/// working directory at start.
pub const DEFAULT_OUT: &str = "callgrind.theseus";

/// What [`crate::Session`] is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `THESEUS`: `false` (`THESEUS=0`) turns profiling off entirely.
    pub enabled: bool,
    /// `THESEUS_OUT`: where the profile is written.
    pub out: PathBuf,
    /// `THESEUS_FORMAT`: the output format; `None` (unset) takes it from
    /// the extension of `out` (see [`Config::format`]).
    pub format: Option<Format>,
    /// `THESEUS_EVENT`: the event that folded stacks and flame graphs show
    /// and pprof opens on.
    pub event: Event,
    /// `THESEUS_INTERVAL`: write a profile of each interval of this length
    /// beside `out`, as well as the whole run at `out`; `None` (unset)
    /// writes only the whole run.
    pub interval: Option<Duration>,
    /// `THESEUS_REPORT`: print the top stacks to standard error when the
    /// profile is written.
    pub report: bool,
    /// `THESEUS_STACKS`: how much of the stack is captured at each spawn.
    pub stacks: CaptureMode,
    /// `THESEUS_AWAITS`: how await points are found, or not at all.
    pub awaits: AwaitMode,
    /// `THESEUS_SAMPLE_HZ`: run theseus's CPU sampler ([`crate::Sampler`])
    /// at this many samples per second of each thread's CPU time; `None`
    /// (unset, empty or `0`) leaves it off.
    pub sample_hz: Option<u32>,
    /// `THESEUS_HTTP`: serve profiles over HTTP on this address
    /// ([`crate::http`]); `None` (unset) serves nothing.
    pub http: Option<std::net::SocketAddr>,
    /// Whether to write the profile on SIGINT and SIGTERM (see
    /// [`crate::exit_signal`]). On by default; not an environment variable.
    pub signals: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            enabled: true,
            out: PathBuf::from(DEFAULT_OUT),
            format: None,
            event: Event::WallNs,
            interval: None,
            report: false,
            stacks: CaptureMode::Cached,
            awaits: AwaitMode::Cached,
            sample_hz: None,
            http: None,
            signals: true,
        }
    }
}

/// The shortest `THESEUS_INTERVAL`: each interval's profile resolves its
/// stacks and writes a file, which should stay a small part of the time.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

impl Config {
    /// The format the profile is written in: `THESEUS_FORMAT` if set, else
    /// by the extension of `out` ([`Format::for_path`]).
    pub fn format(&self) -> Format {
        self.format.unwrap_or_else(|| Format::for_path(&self.out))
    }

    /// Reads the settings from this process's environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads the settings from `lookup`, which returns a variable's value
    /// (`None` when unset). This is [`Config::from_env`] without the process
    /// environment, for tests and embedders.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let mut config = Config::default();
        config.read_output(&get)?;
        config.read_measurement(&get)?;
        config.http = setting(
            &get,
            "THESEUS_HTTP",
            crate::http::ACCEPTS,
            crate::http::parse_address,
        )?;
        if config.event == Event::CpuNs && config.sample_hz.is_none() {
            return Err(ConfigError::unusable(
                "THESEUS_EVENT",
                "CpuNs".to_string(),
                "needs the CPU sampler: set THESEUS_SAMPLE_HZ too (e.g. 997), \
                 or pick a task event such as WallNs"
                    .to_string(),
            ));
        }
        Ok(config)
    }

    /// Whether to profile, and what is written where: `THESEUS`,
    /// `THESEUS_OUT`, `THESEUS_FORMAT`, `THESEUS_EVENT`, `THESEUS_INTERVAL`,
    /// `THESEUS_REPORT`.
    fn read_output(&mut self, get: &Lookup<'_>) -> Result<(), ConfigError> {
        let on_off = "0 (profiling off) or 1 (profiling on)";
        if let Some(enabled) = setting(get, "THESEUS", on_off, one_or_zero)? {
            self.enabled = enabled;
        }
        if let Some(value) = get("THESEUS_OUT") {
            self.out = PathBuf::from(value);
        }
        let formats = "callgrind, pprof (gzipped profile.proto), folded (folded stacks) or \
                       svg (flame graph); unset, the extension of THESEUS_OUT decides \
                       (.pb.gz, .folded, .svg, anything else callgrind)";
        if let Some(format) = setting(get, "THESEUS_FORMAT", formats, |v| v.parse().ok())? {
            self.format = Some(format);
        }
        let events = "WallNs, BusyNs, SchedNs, IdleNs, Polls, Wakes, Tasks, Frames, or CpuNs \
                      with THESEUS_SAMPLE_HZ (the event shown by .folded and .svg \
                      profiles, and opened first by pprof)";
        if let Some(event) = setting(get, "THESEUS_EVENT", events, |v| v.parse().ok())? {
            self.event = event;
        }
        let intervals = "a whole number of ms, s or m of at least 100ms, such as 500ms, \
                         60s or 5m (a profile of each interval is written beside \
                         THESEUS_OUT)";
        let interval = |v: &str| parse_duration(v).filter(|&i| i >= MIN_INTERVAL);
        if let Some(interval) = setting(get, "THESEUS_INTERVAL", intervals, interval)? {
            self.interval = Some(interval);
        }
        let report = "1 (print the top stacks to standard error when the profile \
                      is written) or 0 (do not)";
        if let Some(report) = setting(get, "THESEUS_REPORT", report, one_or_zero)? {
            self.report = report;
        }
        Ok(())
    }

    /// How much is measured: `THESEUS_STACKS`, `THESEUS_AWAITS`,
    /// `THESEUS_SAMPLE_HZ`.
    fn read_measurement(&mut self, get: &Lookup<'_>) -> Result<(), ConfigError> {
        let stacks = "default (capture once per spawn site and reuse), \
                      full (capture every spawn) or location (spawn call's file and line only)";
        if let Some(mode) = setting(get, CaptureMode::VARIABLE, stacks, |v| v.parse().ok())? {
            self.stacks = mode;
        }
        let awaits = "default (split idle time by await point, unwinding once per await \
                      point), full (unwind at every await) or off (no await points)";
        if let Some(mode) = setting(get, AwaitMode::VARIABLE, awaits, |v| v.parse().ok())? {
            self.awaits = mode;
        }
        let rates = format!(
            "an integer from 1 to {} (CPU samples per second of each thread's \
             CPU time, e.g. 99 or 997), or 0 to leave the sampler off",
            crate::sampler::Sampler::MAX_HZ
        );
        let rate = |v: &str| match v.trim().parse::<u32>().ok()? {
            0 => Some(None),
            hz if hz <= crate::sampler::Sampler::MAX_HZ => Some(Some(hz)),
            _ => None,
        };
        if let Some(hz) = setting(get, "THESEUS_SAMPLE_HZ", &rates, rate)? {
            self.sample_hz = hz;
        }
        Ok(())
    }
}

/// A setting that picks one of a few modes by name: `THESEUS_STACKS`
/// ([`CaptureMode`]) and `THESEUS_AWAITS` ([`AwaitMode`]). Each parses with
/// [`parse_mode`], and a value naming none of its modes is the one
/// [`ParseModeError`].
///
/// ```
/// use theseus_profiler::config::{parse_mode, Mode};
/// use theseus_profiler::AwaitMode;
/// assert_eq!(parse_mode::<AwaitMode>(" Full "), Ok(AwaitMode::Full));
/// assert_eq!(AwaitMode::VARIABLE, "THESEUS_AWAITS");
/// ```
pub trait Mode: Copy + Sized + 'static {
    /// The environment variable that selects it.
    const VARIABLE: &'static str;
    /// Every mode, the default first.
    const ALL: &'static [Self];
    /// The name the variable accepts for this mode.
    fn name(self) -> &'static str;
}

impl Mode for CaptureMode {
    const VARIABLE: &'static str = "THESEUS_STACKS";
    const ALL: &'static [CaptureMode] = &[
        CaptureMode::Cached,
        CaptureMode::Full,
        CaptureMode::Location,
    ];
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Mode for AwaitMode {
    const VARIABLE: &'static str = "THESEUS_AWAITS";
    const ALL: &'static [AwaitMode] = &[AwaitMode::Cached, AwaitMode::Full, AwaitMode::Off];
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// The mode of `M` that `value` names, ignoring case and surrounding
/// blanks.
pub fn parse_mode<M: Mode>(value: &str) -> Result<M, ParseModeError> {
    let wanted = value.trim().to_ascii_lowercase();
    M::ALL
        .iter()
        .copied()
        .find(|mode| mode.name() == wanted)
        .ok_or_else(|| ParseModeError {
            variable: M::VARIABLE,
            value: value.to_string(),
            accepted: M::ALL.iter().map(|mode| mode.name()).collect(),
        })
}

impl FromStr for CaptureMode {
    type Err = ParseModeError;

    /// `default`, `full` or `location`: see [`parse_mode`].
    fn from_str(s: &str) -> Result<CaptureMode, ParseModeError> {
        parse_mode(s)
    }
}

impl FromStr for AwaitMode {
    type Err = ParseModeError;

    /// `default`, `full` or `off`: see [`parse_mode`].
    fn from_str(s: &str) -> Result<AwaitMode, ParseModeError> {
        parse_mode(s)
    }
}

/// A value that names no mode of its [`Mode`]: says the variable, the
/// value and the names it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseModeError {
    variable: &'static str,
    value: String,
    accepted: Vec<&'static str>,
}

impl fmt::Display for ParseModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let accepted: Vec<String> = self
            .accepted
            .iter()
            .map(|name| format!("`{name}`"))
            .collect();
        write!(
            f,
            "invalid {} value {:?}: expected one of {}",
            self.variable,
            self.value,
            accepted.join(", ")
        )
    }
}

impl std::error::Error for ParseModeError {}

/// Every variable theseus reads (`THESEUS_WORKERS` by the runtime, the
/// others here): another `THESEUS_*` name is most likely a misspelling of
/// one of them.
pub const VARIABLES: &[&str] = &[
    "THESEUS",
    "THESEUS_OUT",
    "THESEUS_FORMAT",
    "THESEUS_EVENT",
    "THESEUS_INTERVAL",
    "THESEUS_REPORT",
    "THESEUS_STACKS",
    "THESEUS_AWAITS",
    "THESEUS_SAMPLE_HZ",
    "THESEUS_WORKERS",
];

/// A warning for the `THESEUS_*` variables among `names` that theseus does
/// not read, naming the closest known one and all of them; `None` when
/// every such name is known. A warning, not an error: the variable may be
/// another program's.
///
/// ```
/// use theseus_profiler::config::unknown_variables_warning;
/// let names = ["PATH", "THESEUS_OUTPUT", "THESEUS_OUT"].map(std::ffi::OsString::from);
/// let warning = unknown_variables_warning(names).unwrap();
/// assert!(warning.contains("THESEUS_OUTPUT (did you mean THESEUS_OUT?)"));
/// assert_eq!(unknown_variables_warning([std::ffi::OsString::from("THESEUS_OUT")]), None);
/// ```
pub fn unknown_variables_warning(names: impl IntoIterator<Item = OsString>) -> Option<String> {
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter_map(|name| name.into_string().ok())
        .filter(|name| {
            (name == "THESEUS" || name.starts_with("THESEUS_"))
                && !VARIABLES.contains(&name.as_str())
        })
        .map(|name| match closest_variable(&name) {
            Some(known) => format!("{name} (did you mean {known}?)"),
            None => name,
        })
        .collect();
    if unknown.is_empty() {
        return None;
    }
    unknown.sort();
    Some(format!(
        "ignoring {}: not a theseus setting; theseus reads {}",
        unknown.join(", "),
        VARIABLES.join(", ")
    ))
}

/// The known variable `name` was most likely meant to be: one that it
/// starts with or that starts with it, else one at most two edits away.
fn closest_variable(name: &str) -> Option<&'static str> {
    let affix = VARIABLES
        .iter()
        .filter(|&&known| known != "THESEUS")
        .find(|&&known| name.starts_with(known) || known.starts_with(name));
    affix.copied().or_else(|| {
        VARIABLES
            .iter()
            .map(|&known| (edit_distance(name, known), known))
            .filter(|&(distance, _)| distance <= 2)
            .min()
            .map(|(_, known)| known)
    })
}

/// Levenshtein distance, for names of a few dozen characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// A variable's value, `None` when unset or empty.
type Lookup<'a> = dyn Fn(&str) -> Option<OsString> + 'a;

/// The variable `name` read by `parse`: `None` when it is unset, an error
/// naming it, its value and what it `accepts` when `parse` refuses it (or
/// it is not UTF-8).
fn setting<T>(
    get: &Lookup<'_>,
    name: &'static str,
    accepts: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, ConfigError> {
    let Some(value) = get(name) else {
        return Ok(None);
    };
    match value.to_str().and_then(parse) {
        Some(parsed) => Ok(Some(parsed)),
        None => Err(ConfigError::invalid(name, &value, accepts)),
    }
}

/// `1` or `0`, blanks allowed around.
fn one_or_zero(value: &str) -> Option<bool> {
    match value.trim() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// A whole number with a unit: `ms`, `s` or `m`, blanks allowed around.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(number)),
        "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number.checked_mul(60)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn await_modes_parse_and_errors_name_the_variable_and_choices() {
        assert_eq!("default".parse(), Ok(AwaitMode::Cached));
        assert_eq!(" Full ".parse(), Ok(AwaitMode::Full));
        assert_eq!("OFF".parse(), Ok(AwaitMode::Off));
        let err = "fast".parse::<AwaitMode>().unwrap_err().to_string();
        for needle in ["THESEUS_AWAITS", "\"fast\"", "default", "full", "off"] {
            assert!(err.contains(needle), "{err:?} lacks {needle}");
        }
        for mode in [AwaitMode::Cached, AwaitMode::Full, AwaitMode::Off] {
            assert_eq!(mode.to_string().parse(), Ok(mode));
        }
    }

    #[test]
    fn capture_modes_parse_and_errors_name_the_variable_and_choices() {
        assert_eq!("default".parse(), Ok(CaptureMode::Cached));
        assert_eq!(" Full ".parse(), Ok(CaptureMode::Full));
        assert_eq!("location".parse(), Ok(CaptureMode::Location));
        let err = "fast".parse::<CaptureMode>().unwrap_err().to_string();
        for needle in ["THESEUS_STACKS", "\"fast\"", "default", "full", "location"] {
            assert!(err.contains(needle), "{err:?} lacks {needle}");
        }
        for mode in [
            CaptureMode::Cached,
            CaptureMode::Full,
            CaptureMode::Location,
        ] {
            assert_eq!(mode.to_string().parse(), Ok(mode));
        }
    }

    fn with_hz(value: &str) -> Result<Config, ConfigError> {
        let value = OsString::from(value);
        Config::from_lookup(|name| (name == "THESEUS_SAMPLE_HZ").then(|| value.clone()))
    }

    #[test]
    fn the_sampler_is_off_unless_theseus_sample_hz_asks() {
        assert_eq!(Config::from_lookup(|_| None).unwrap().sample_hz, None);
        assert_eq!(with_hz("").unwrap().sample_hz, None);
        assert_eq!(with_hz("0").unwrap().sample_hz, None);
        assert_eq!(with_hz("997").unwrap().sample_hz, Some(997));
        assert_eq!(with_hz(" 99 ").unwrap().sample_hz, Some(99));
        assert_eq!(with_hz("10000").unwrap().sample_hz, Some(10_000));
    }

    fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn the_format_follows_the_extension_unless_theseus_format_says() {
        let format = |vars: &[(&str, &str)]| with(vars).unwrap().format();
        assert_eq!(format(&[]), Format::Callgrind);
        assert_eq!(format(&[("THESEUS_OUT", "a.pb.gz")]), Format::Pprof);
        assert_eq!(format(&[("THESEUS_OUT", "a.svg")]), Format::FlameGraph);
        assert_eq!(
            format(&[("THESEUS_OUT", "a.svg"), ("THESEUS_FORMAT", "folded")]),
            Format::Folded
        );
        assert_eq!(format(&[("THESEUS_FORMAT", "PPROF")]), Format::Pprof);
    }

    #[test]
    fn intervals_events_and_reports_parse() {
        let c = with(&[
            ("THESEUS_INTERVAL", "60s"),
            ("THESEUS_EVENT", "busyns"),
            ("THESEUS_REPORT", "1"),
        ])
        .unwrap();
        assert_eq!(c.interval, Some(Duration::from_secs(60)));
        assert_eq!(c.event, Event::BusyNs);
        assert!(c.report);
        let interval = |v| with(&[("THESEUS_INTERVAL", v)]).unwrap().interval;
        assert_eq!(interval("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(interval(" 5 m "), Some(Duration::from_secs(300)));
        assert_eq!(interval(""), None);
        let cpu = with(&[("THESEUS_EVENT", "CpuNs"), ("THESEUS_SAMPLE_HZ", "99")]).unwrap();
        assert_eq!(cpu.event, Event::CpuNs);
    }

    #[test]
    fn bad_formats_events_intervals_and_reports_say_what_is_accepted() {
        let cases: [(&str, &str, &[&str]); 9] = [
            (
                "THESEUS_FORMAT",
                "flame",
                &["callgrind", "pprof", "folded", "svg"],
            ),
            ("THESEUS_EVENT", "wall", &["WallNs", "BusyNs", "CpuNs"]),
            ("THESEUS_EVENT", "CpuNs", &["THESEUS_SAMPLE_HZ"]),
            ("THESEUS_INTERVAL", "60", &["ms", "60s", "100ms"]),
            ("THESEUS_INTERVAL", "50ms", &["at least 100ms"]),
            ("THESEUS_INTERVAL", "1.5s", &["whole number"]),
            ("THESEUS_INTERVAL", "2h", &["5m"]),
            ("THESEUS_INTERVAL", "99999999999999999999m", &["60s"]),
            ("THESEUS_REPORT", "yes", &["1", "0"]),
        ];
        for (variable, value, accepted) in cases {
            let e = with(&[(variable, value)]).unwrap_err();
            assert_eq!((e.variable(), e.value()), (variable, value));
            let msg = e.to_string();
            for needle in accepted.iter().chain([&variable, &value]) {
                assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
            }
        }
    }

    #[test]
    fn await_modes_come_from_theseus_awaits_and_a_bad_one_is_named() {
        let with = |value: &str| {
            let value = OsString::from(value);
            Config::from_lookup(|name| (name == "THESEUS_AWAITS").then(|| value.clone()))
        };
        assert_eq!(
            Config::from_lookup(|_| None).unwrap().awaits,
            AwaitMode::Cached
        );
        assert_eq!(with("").unwrap().awaits, AwaitMode::Cached);
        assert_eq!(with("full").unwrap().awaits, AwaitMode::Full);
        assert_eq!(with(" Off ").unwrap().awaits, AwaitMode::Off);
        let e = with("some").unwrap_err();
        assert_eq!((e.variable(), e.value()), ("THESEUS_AWAITS", "some"));
        let msg = e.to_string();
        for needle in ["THESEUS_AWAITS", "\"some\"", "default", "full", "off"] {
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        }
    }

    #[test]
    fn a_bad_rate_names_the_variable_the_value_and_the_range() {
        for bad in ["10001", "-5", "fast", "1.5", "99hz"] {
            let e = with_hz(bad).unwrap_err();
            assert_eq!(e.variable(), "THESEUS_SAMPLE_HZ");
            assert_eq!(e.value(), bad);
            let msg = e.to_string();
            for needle in [
                "THESEUS_SAMPLE_HZ",
                bad,
                "1 to 10000",
                "0 to leave the sampler off",
            ] {
                assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
            }
        }
    }
}

/// A setting that cannot be used: names the variable, its value, and what
/// is accepted or what went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    variable: &'static str,
    value: String,
    problem: String,
}

impl ConfigError {
    /// A value outside the accepted ones.
    fn invalid(variable: &'static str, value: &OsString, accepted: &str) -> ConfigError {
        ConfigError {
            variable,
            value: value.to_string_lossy().into_owned(),
            problem: format!("is not valid; accepted values: {accepted}"),
        }
    }

    /// A value that is well formed but cannot be used, for the reason given.
    pub(crate) fn unusable(variable: &'static str, value: String, problem: String) -> ConfigError {
        ConfigError {
            variable,
            value,
            problem,
        }
    }

    /// The environment variable at fault, e.g. `"THESEUS_OUT"`.
    pub fn variable(&self) -> &str {
        self.variable
    }

    /// Its value (the default, when the variable was not set).
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No "theseus: " here: whoever prints the error says who speaks.
        write!(f, "{}={:?} {}", self.variable, self.value, self.problem)
    }
}

impl std::error::Error for ConfigError {}
