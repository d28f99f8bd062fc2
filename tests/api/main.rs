//! Integration tests: one binary, a module per area. Every test starts a real
//! server on port 0 with a fresh database and talks HTTP to it.

mod admin;
mod audit;
mod auth;
mod bootstrap;
mod bulk;
mod cli;
mod discovery;
mod groups;
mod helpers;
mod input;
mod ops;
mod patch;
mod properties;
mod query;
mod users;
