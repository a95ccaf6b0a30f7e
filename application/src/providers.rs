//! What every outside service's client shares: how its failures are
//! classified and when a failed request is tried again.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// Why a service could not be reached or understood: a short description,
/// safe to show, and the underlying error (transport, decoding) as its
/// source for operators, when there is one. Causes compare by description.
#[derive(Clone)]
pub struct Cause {
    description: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Cause {
    /// A cause with only a description (a status, a missing field).
    pub fn new(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            source: None,
        }
    }

    /// A cause described by `description`, kept with the error behind it.
    pub fn with_source(description: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            description: description.into(),
            source: Some(Arc::new(source)),
        }
    }

    pub fn description(&self) -> &str {
        &self.description
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{:?} ({source:?})", self.description),
            None => write!(f, "{:?}", self.description),
        }
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.description == other.description
    }
}

impl Eq for Cause {}

impl From<&str> for Cause {
    fn from(description: &str) -> Self {
        Self::new(description)
    }
}

impl From<String> for Cause {
    fn from(description: String) -> Self {
        Self::new(description)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("rate limited by the provider")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the provider rejected our credentials")]
    Unauthorized,
    #[error("the provider does not know this resource")]
    NotFound,
    /// Only the status: a provider's own words are logged, never shown to users.
    #[error("the provider rejected the request ({status})")]
    Rejected { status: u16 },
    #[error("the provider is unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// A budget for the day (HubSpot's DAILY policy) is spent: nothing more until it resets.
    #[error("the provider's daily request limit is reached")]
    DailyLimitReached { resets_in: Option<Duration> },
}

impl ProviderError {
    /// Whether trying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. } | ProviderError::Unavailable(_) | ProviderError::Unauthorized
        )
    }
}

/// Exponential backoff with a ceiling on delay and on attempts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(15 * 60),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// When attempt number `attempt` (1-based) that failed with `error` may be
    /// retried, or `None` when it must not be.
    pub fn next_attempt(&self, attempt: u32, error: &ProviderError, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !error.is_transient() || attempt >= self.max_attempts {
            return None;
        }
        let exponential = self
            .first_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay);
        let delay = match error {
            ProviderError::RateLimited {
                retry_after: Some(wait),
            } => exponential.max(*wait),
            _ => exponential,
        };
        Some(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_honours_retry_after_and_stops() {
        let policy = RetryPolicy {
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(60),
            max_attempts: 5,
        };
        let now: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
        let down = ProviderError::Unavailable(Cause::new("502"));
        let delays: Vec<i64> = (1..5)
            .map(|a| (policy.next_attempt(a, &down, now).unwrap() - now).num_seconds())
            .collect();
        assert_eq!(delays, vec![5, 10, 20, 40]);
        assert_eq!(policy.next_attempt(5, &down, now), None);
        let limited = ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!((policy.next_attempt(1, &limited, now).unwrap() - now).num_seconds(), 30);
        assert_eq!(
            policy.next_attempt(1, &ProviderError::Rejected { status: 400 }, now),
            None
        );
    }
}
