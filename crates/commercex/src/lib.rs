//! The `commercex` binary's library half: CLI, settings and wiring. `main.rs` only parses
//! arguments and hands over, so tests build the app exactly as production does.

pub mod app;
pub mod cli;
pub mod commands;
pub mod config_file;
pub mod secrets;
pub mod settings;
pub mod telemetry;
pub mod tls;
