//! Authentication and authorization: the API key format, argon2id hashing,
//! request verification with its cache, scopes and roles, and the first-start
//! bootstrap of the admin key.

pub mod bootstrap;
pub mod hashing;
pub mod key;
pub mod scopes;
pub mod verifier;

pub use scopes::{Role, Scope, ScopeSet};
pub use verifier::{AuthError, KeyVerifier, Principal};
