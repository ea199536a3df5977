//! CommerceX through its public HTTP API and its command line, on SQLite and PostgreSQL.

mod auth;
mod cli;
mod helpers;
mod http_conventions;
mod tokens;
