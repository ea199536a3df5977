//! CommerceX through its public HTTP API and its command line, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)] // Tests fail loudly on the first surprise.

mod auth;
mod catalog;
mod checkout;
mod cli;
mod helpers;
mod http_conventions;
mod inventory;
mod tokens;
