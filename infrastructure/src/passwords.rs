//! argon2id password hashing, off the async executor and bounded: each hash
//! takes 19 MiB and a core for a while, so at most one per core runs at once;
//! a request that cannot get a slot soon is told to come back (503).

use application::auth::PasswordHasher;
use application::AppError;
use application::ErrorKind;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::Argon2;
use async_trait::async_trait;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Argon2Passwords {
    slots: Arc<Semaphore>,
    /// How long a request waits for a slot before it is told to come back.
    wait: Duration,
}

impl Argon2Passwords {
    pub fn new(slots: usize, wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            wait,
        }
    }

    /// One slot per core, waiting up to two seconds.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::new(cores, Duration::from_secs(2))
    }

    /// Runs `work` on the blocking pool once a slot is free.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
        let slot = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| {
                AppError::new(
                    ErrorKind::Busy {
                        retry_after: Duration::from_secs(1),
                    },
                    "busy",
                    "the server is busy checking passwords; try again in a moment",
                )
            })?
            .map_err(|e| AppError::internal("waiting for a hashing slot", e))?;
        let done = tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AppError::internal("hashing a password", e));
        drop(slot);
        done
    }
}

fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// A real hash of nothing anyone knows, to spend verification effort on.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_blocking("decoy password nobody has").expect("argon2 hashes a constant"))
}

#[async_trait]
impl PasswordHasher for Argon2Passwords {
    async fn hash(&self, password: &str) -> Result<String, AppError> {
        let password = password.to_owned();
        self.run(move || hash_blocking(&password))
            .await?
            .map_err(|e| AppError::internal("hashing a password", e))
    }

    async fn verify(&self, password: &str, hash: &str) -> Result<bool, AppError> {
        let (password, hash) = (password.to_owned(), hash.to_owned());
        self.run(move || verify_blocking(&password, &hash)).await
    }

    async fn verify_nothing(&self, password: &str) -> Result<(), AppError> {
        self.verify(password, decoy_hash()).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_saturated_hasher_answers_busy_instead_of_queueing_forever() {
        let hasher = Argon2Passwords::new(1, Duration::from_millis(1));
        let hash = hasher.hash("correct horse battery").await.unwrap();
        let attempts = (0..8).map(|_| hasher.verify("correct horse battery", &hash));
        let results = futures::future::join_all(attempts).await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(e) if matches!(e.kind, ErrorKind::Busy { .. })))
            .count();
        assert!(busy > 0, "some attempts find every slot taken");
        assert!(
            results.iter().any(|r| matches!(r, Ok(true))),
            "and the ones that run verify"
        );
    }

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let hasher = Argon2Passwords::for_this_machine();
        let hash = hasher.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher.verify("correct horse battery", &hash).await.unwrap());
        assert!(!hasher.verify("wrong horse battery", &hash).await.unwrap());
        assert!(!hasher.verify("anything", "not a hash").await.unwrap());
    }
}
