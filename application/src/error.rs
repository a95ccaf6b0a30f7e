//! The one error type use cases return; the API maps `kind` to a status and
//! `code` to the stable machine-readable string of the error body.

use serde_json::Value;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Validation,
    /// Well-formed, but it cannot be acted on as it stands (e.g. a contact mapping without a phone column).
    Unprocessable,
    /// Larger than this server accepts.
    TooLarge,
    /// A body in a format this endpoint does not take.
    Unsupported,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    TooManyRequests {
        retry_after: Duration,
    },
    Unavailable,
    /// We are saturated (e.g. every password-hashing slot is taken): try again shortly.
    Busy {
        retry_after: Duration,
    },
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub code: &'static str,
    /// What the client is told.
    pub message: String,
    pub details: Option<Value>,
    /// What went wrong underneath (internal errors): kept for the one log line
    /// written where the error is finally handled, never shown to clients.
    #[source]
    pub source: Option<Arc<dyn Error + Send + Sync>>,
}

/// An internal failure in words of ours, with its cause.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
struct Failure {
    context: String,
    #[source]
    cause: Box<dyn Error + Send + Sync>,
}

impl AppError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            details: None,
            source: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, "validation_failed", message)
            .with_details(serde_json::json!({ "field": field }))
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorKind::NotFound, "not_found", format!("{what} not found"))
    }

    /// An infrastructure failure: its cause is kept (see [`AppError::report`]);
    /// clients are told nothing more than that it happened.
    pub fn internal(context: &str, cause: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        let mut error = Self::new(ErrorKind::Internal, "internal_error", "an internal error occurred");
        error.source = Some(Arc::new(Failure {
            context: context.to_owned(),
            cause: cause.into(),
        }));
        error
    }

    /// Keeps what went wrong underneath for the log (a provider's failure
    /// behind our words for it); clients still see only this error.
    pub fn caused_by(mut self, cause: impl Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(cause));
        self
    }

    /// The whole story for a log line: the error and every cause below it.
    pub fn report(&self) -> String {
        report(self)
    }
}

/// An error and every cause below it, for a log line; a cause that the
/// error above it already spelled out (as its last words) is not repeated.
pub fn report(error: &(dyn Error + 'static)) -> String {
    let mut report = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let said = error.to_string();
        if !report.ends_with(&said) {
            report.push_str(": ");
            report.push_str(&said);
        }
        cause = error.source();
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_providers_failure_reaches_the_log_line_under_our_words_not_the_client() {
        use crate::providers::{Cause, ProviderError};
        let refused = std::io::Error::other("connection reset by peer");
        let failure = ProviderError::Unavailable(Cause::with_source("no answer from the provider", refused));
        let error =
            AppError::new(ErrorKind::Unavailable, "crm_unavailable", "the CRM did not answer").caused_by(failure);
        assert_eq!(error.message, "the CRM did not answer");
        assert_eq!(
            error.report(),
            "crm_unavailable: the CRM did not answer: the provider is unavailable: no answer from the provider: \
             connection reset by peer"
        );
    }

    #[test]
    fn internal_errors_keep_their_cause_for_the_log_not_the_client() {
        let io = std::io::Error::other("disk on fire");
        let error = AppError::internal("saving a call", io);
        assert_eq!(error.message, "an internal error occurred");
        assert!(error.source().is_some());
        assert_eq!(
            error.report(),
            "internal_error: an internal error occurred: saving a call: disk on fire"
        );
    }
}
