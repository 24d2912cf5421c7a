//! Log output shared by Groundwork's daemons (the controller, the edge daemon): plain text on
//! standard output, coloured only when that is a terminal, or one JSON object per line for log
//! shippers. `RUST_LOG` overrides each daemon's default filter.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colour only when standard output is a terminal.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, fields (with the message), spans.
    Json,
}

/// The `--log-format` flag, flattened into each daemon's command line.
#[derive(clap::Args, Clone, Debug)]
pub struct LogArgs {
    /// Log format: `text` (colour only on a terminal) or `json` (one object per line).
    #[arg(
        long,
        env = "GROUNDWORK_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

/// Whether lines carry ANSI colour escapes: text written to a terminal only, and never when
/// `NO_COLOR` (<https://no-color.org>) is set to a non-empty value.
pub fn colour(format: LogFormat, terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    format == LogFormat::Text && terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber writing to standard output; `default_filter` applies unless
/// `RUST_LOG` is set.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry.with(fmt::layer().json()).init(),
        LogFormat::Text => {
            let ansi = colour(
                format,
                std::io::stdout().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            );
            registry.with(fmt::layer().with_ansi(ansi)).init();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use clap::Parser;

    use super::*;

    #[test]
    fn colour_only_for_text_on_a_terminal() {
        assert!(colour(LogFormat::Text, true, None));
        assert!(
            !colour(LogFormat::Text, false, None),
            "a file gets no escapes"
        );
        assert!(!colour(LogFormat::Json, true, None));
        assert!(!colour(LogFormat::Json, false, None));
        assert!(!colour(LogFormat::Text, true, Some(OsStr::new("1"))));
        assert!(colour(LogFormat::Text, true, Some(OsStr::new(""))));
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs,
    }

    #[test]
    fn the_flag_picks_the_format() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.log.log_format);
        assert_eq!(parse(&["d"]).unwrap(), LogFormat::Text);
        assert_eq!(
            parse(&["d", "--log-format", "json"]).unwrap(),
            LogFormat::Json
        );
        assert_eq!(parse(&["d", "--log-format=text"]).unwrap(), LogFormat::Text);
        assert!(parse(&["d", "--log-format", "yaml"]).is_err());
    }
}
