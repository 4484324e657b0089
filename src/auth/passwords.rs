//! Argon2id hashing off the async runtime, with bounded concurrency.
//!
//! Each hash takes tens of milliseconds of CPU and ~19 MiB of memory, so
//! hashes run on the blocking pool, at most `concurrency` at a time; a burst
//! of logins waits its turn instead of stalling other requests or using
//! unbounded memory.

use std::sync::Arc;
use std::time::Instant;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
};
use tokio::sync::Semaphore;

use crate::telemetry;

/// OWASP's recommended Argon2id parameters: m = 19 MiB, t = 2, p = 1.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// Hashing failed for a reason other than a wrong password.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes and verifies passwords on the blocking pool.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the account does
    /// not exist so that unknown users take as long as wrong passwords.
    dummy_hash: Arc<str>,
}

fn argon2() -> Argon2<'static> {
    // The constants are valid parameters; `Params::new` only fails on
    // out-of-range values.
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> Result<String, HashError> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

fn verify_blocking(password: &str, phc: &str) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(phc).map_err(|e| HashError(e.to_string()))?;
    match argon2().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(HashError(e.to_string())),
    }
}

impl PasswordHasher {
    /// A hasher running at most `concurrency` hashes at once (0 = CPUs).
    pub fn new(concurrency: usize) -> Result<Self, HashError> {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            concurrency
        };
        let random: [u8; 24] = rand::random();
        let dummy = hash_blocking(&format!("{random:x?}"))?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            dummy_hash: dummy.into(),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let started = Instant::now();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError("hasher shut down".to_owned()))?;
        let result = tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| HashError(format!("hash task failed: {e}")))?;
        metrics::histogram!(telemetry::PASSWORD_HASH_DURATION)
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.run(move || hash_blocking(&password)).await
    }

    /// Checks a password against a stored PHC string; `None` for the hash
    /// means "no such account" and still spends the same time.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, HashError> {
        let exists = phc.is_some();
        let password = password.to_owned();
        let phc = phc.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let matched = self.run(move || verify_blocking(&password, &phc)).await?;
        Ok(exists && matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_accounts_never_match() {
        let hasher = PasswordHasher::new(2).expect("hasher");
        let phc = hasher.hash("Correct7Horse").await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hasher
                .verify("Correct7Horse", Some(&phc))
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify("Wrong7Horse", Some(&phc))
                .await
                .expect("verify")
        );
        assert!(!hasher.verify("Correct7Horse", None).await.expect("verify"));
    }
}
