//! CommerceX through its public HTTP API and its command line: embedded on SQLite and
//! PostgreSQL, and distributed (a process per service on PostgreSQL, Kafka and Redis).

#![allow(clippy::unwrap_used)] // Tests fail loudly on the first surprise.

mod abuse;
mod admin_console;
mod auth;
mod catalog;
mod chaos;
mod checkout;
mod cli;
mod contract;
mod dead_letters;
mod deployment;
mod distributed;
mod helpers;
mod http_conventions;
mod inventory;
mod observability;
mod redis;
mod storefront;
mod tls;
mod tokens;
mod vault;
mod webhooks;
