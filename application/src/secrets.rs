//! Secrets at rest (provider credentials, webhook URLs, tokens): the port every
//! feature seals them with.

use crate::error::AppError;

/// Encryption at rest, bound to a context (the owning record).
pub trait SecretSealer: Send + Sync {
    fn seal(&self, plaintext: &str, context: &str) -> String;
    fn open(&self, sealed: &str, context: &str) -> Result<String, AppError>;
}
