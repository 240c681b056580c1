//! Settings from the environment: `THESEUS`, `THESEUS_OUT`, `THESEUS_STACKS`.
//!
//! An empty variable counts as unset. A bad value is an error that names the
//! variable, the value, and what is accepted, so a typo is caught at start
//! rather than after an hour of running with the wrong settings.

use crate::CaptureMode;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

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
    /// `THESEUS_STACKS`: how much of the stack is captured at each spawn.
    pub stacks: CaptureMode,
    /// Whether to write the profile on SIGINT and SIGTERM (see
    /// [`crate::signal`]). On by default; not an environment variable.
    pub signals: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            enabled: true,
            out: PathBuf::from(DEFAULT_OUT),
            stacks: CaptureMode::Default,
            signals: true,
        }
    }
}

impl Config {
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

        if let Some(value) = get("THESEUS") {
            config.enabled = match value.to_str().map(str::trim) {
                Some("1") => true,
                Some("0") => false,
                _ => {
                    return Err(ConfigError::invalid(
                        "THESEUS",
                        &value,
                        "0 (profiling off) or 1 (profiling on)",
                    ))
                }
            };
        }

        if let Some(value) = get("THESEUS_OUT") {
            config.out = PathBuf::from(value);
        }

        if let Some(value) = get("THESEUS_STACKS") {
            let parsed = value.to_str().map(str::parse::<CaptureMode>);
            config.stacks = match parsed {
                Some(Ok(mode)) => mode,
                _ => {
                    return Err(ConfigError::invalid(
                        "THESEUS_STACKS",
                        &value,
                        "default (capture once per spawn site and reuse), \
                         full (capture every spawn) or location (spawn call's file and line only)",
                    ))
                }
            };
        }

        Ok(config)
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
        write!(
            f,
            "theseus: {}={:?} {}",
            self.variable, self.value, self.problem
        )
    }
}

impl std::error::Error for ConfigError {}
