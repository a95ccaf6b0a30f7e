//! What every outside service's client shares: how its failures are
//! classified and when a failed request is tried again.

use chrono::{DateTime, Utc};
use std::time::Duration;

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
    Unavailable(String),
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
        let down = ProviderError::Unavailable("502".into());
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
