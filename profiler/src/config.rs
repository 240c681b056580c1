//! Settings from the environment: `THESEUS`, `THESEUS_OUT`, `THESEUS_STACKS`,
//! `THESEUS_SAMPLE_HZ`.
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
    /// `THESEUS_SAMPLE_HZ`: run theseus's CPU sampler ([`crate::Sampler`])
    /// at this many samples per second of each thread's CPU time; `None`
    /// (unset, empty or `0`) leaves it off.
    pub sample_hz: Option<u32>,
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
            sample_hz: None,
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

        if let Some(value) = get("THESEUS_SAMPLE_HZ") {
            let parsed = value.to_str().and_then(|v| v.trim().parse::<u32>().ok());
            config.sample_hz = match parsed {
                Some(0) => None,
                Some(hz) if hz <= crate::Sampler::MAX_HZ => Some(hz),
                _ => {
                    return Err(ConfigError::invalid(
                        "THESEUS_SAMPLE_HZ",
                        &value,
                        &format!(
                            "an integer from 1 to {} (CPU samples per second of each thread's \
                             CPU time, e.g. 99 or 997), or 0 to leave the sampler off",
                            crate::Sampler::MAX_HZ
                        ),
                    ))
                }
            };
        }

        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        write!(
            f,
            "theseus: {}={:?} {}",
            self.variable, self.value, self.problem
        )
    }
}

impl std::error::Error for ConfigError {}
