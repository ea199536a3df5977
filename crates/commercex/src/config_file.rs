//! The optional TOML config file. Its values become the defaults of the matching options, so
//! a flag or an environment variable still wins over it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// Parses the command line (and environment), with the config file's values as defaults.
pub fn parse_cli() -> anyhow::Result<Cli> {
    parse_cli_from(std::env::args_os().collect())
}

/// As [`parse_cli`], from the given arguments (the program name first).
pub fn parse_cli_from(args: Vec<std::ffi::OsString>) -> anyhow::Result<Cli> {
    let mut command = Cli::command();
    if let Some(path) = config_path(&args) {
        command = with_file_defaults(command, &path)?;
    }
    let matches: ArgMatches = command
        .try_get_matches_from(args)
        .unwrap_or_else(|error| error.exit());
    Ok(Cli::from_arg_matches(&matches)?)
}

/// `--config FILE`, `--config=FILE` or `COMMERCEX_CONFIG`, looked up before clap runs.
fn config_path(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("COMMERCEX_CONFIG").map(PathBuf::from)
}

fn with_file_defaults(mut command: Command, path: &Path) -> anyhow::Result<Command> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing config file {}", path.display()))?;
    let known: Vec<String> = command
        .get_arguments()
        .map(|arg| arg.get_id().to_string())
        .collect();
    for (key, value) in table {
        let id = key.replace('-', "_");
        if !known.contains(&id) || id == "config" {
            bail!("config file {}: unknown option {key:?}", path.display());
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| item.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        command = command.mut_arg(id, |arg| arg.default_value(value));
    }
    Ok(command)
}
