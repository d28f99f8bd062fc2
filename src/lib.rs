//! scimd: a SCIM 2.0 provisioning server whose callers authenticate with
//! service-account API keys.
//!
//! Layers, with dependencies pointing one way (`http` → `provisioning` →
//! `auth`/`store` → `scim`):
//! - [`scim`]: the protocol (schemas, validation, projection, errors), no I/O;
//! - [`store`]: the only module that touches the database;
//! - [`auth`]: key format, hashing, verification cache, scopes, bootstrap;
//! - [`provisioning`]: SCIM operations (validate → store → render);
//! - [`bulk`]: SCIM Bulk, each operation run through [`provisioning`];
//! - [`http`]: actix-web routes, extractors and error mapping;
//! - [`startup`], [`config`], [`cli`], [`telemetry`]: wiring.

pub mod admin;
pub mod auth;
pub mod bulk;
pub mod cli;
pub mod config;
pub mod http;
pub mod provisioning;
pub mod scim;
pub mod startup;
pub mod store;
pub mod telemetry;
