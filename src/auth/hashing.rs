//! argon2id hashing of key secrets and SCIM passwords.
//!
//! One hash costs ~20 ms of CPU, so it always runs on the blocking pool, and
//! at most one per core at a time so that a flood of bad secrets cannot
//! starve the executor (see `verifier.rs` for how the hot path avoids it).

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("hashing failed: {0}")]
    Failed(String),
    #[error("hashing worker stopped")]
    Worker,
}

impl Default for Hasher {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Hasher {
            permits: Arc::new(Semaphore::new(cores)),
        }
    }
}

impl Hasher {
    /// Hashes a secret into a PHC string (`$argon2id$…`).
    pub async fn hash(&self, secret: String) -> Result<String, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Worker)?;
        tokio::task::spawn_blocking(move || hash_blocking(&secret))
            .await
            .map_err(|_| HashError::Worker)?
    }

    /// Verifies a secret against a PHC string. A malformed hash never verifies.
    pub async fn verify(&self, secret: String, phc: String) -> Result<bool, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Worker)?;
        tokio::task::spawn_blocking(move || verify_blocking(&secret, &phc))
            .await
            .map_err(|_| HashError::Worker)
    }
}

pub fn hash_blocking(secret: &str) -> Result<String, HashError> {
    // The salt is drawn from the OS RNG by argon2 itself.
    let hash: PasswordHash = Argon2::default()
        .hash_password(secret.as_bytes())
        .map_err(|e| HashError::Failed(e.to_string()))?;
    Ok(hash.to_string())
}

pub fn verify_blocking(secret: &str, phc: &str) -> bool {
    // A malformed PHC string is an error here, so it never verifies.
    Argon2::default().verify_password(secret.as_bytes(), phc).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_argon2id_and_verifies_only_the_right_secret() {
        let phc = hash_blocking("s3cret").expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_blocking("s3cret", &phc));
        assert!(!verify_blocking("s3cret!", &phc));
        assert!(!verify_blocking("s3cret", "not a hash"));
    }
}
