//! The voice platform port (Vapi): assistants mirror our agents.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::agents::AgentSpec;
use std::time::Duration;
use uuid::Uuid;

/// What the platform needs to run one of our agents.
#[derive(Debug, Clone, PartialEq)]
pub struct AssistantDefinition {
    pub organization_id: Uuid,
    pub agent_id: Uuid,
    pub spec: AgentSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("rate limited by the provider")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the provider rejected our credentials")]
    Unauthorized,
    #[error("the provider does not know this resource")]
    NotFound,
    #[error("the provider rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
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

/// A number to create at the platform, with its credentials opened.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberDefinition {
    pub organization_id: Uuid,
    pub phone_number_id: Uuid,
    pub source: domain::phone_numbers::NumberSource,
    /// The platform's credential id (vonage, telnyx, byo-sip).
    pub vapi_credential_id: Option<String>,
    /// Twilio's account SID and auth token, imported inline.
    pub twilio: Option<(String, String)>,
    pub vapi_assistant_id: Option<String>,
}

/// What the platform answered for a number.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderNumber {
    pub id: String,
    pub number: Option<String>,
    pub status: Option<String>,
}

/// An outbound call to place.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundCall {
    pub organization_id: Uuid,
    pub call_id: Uuid,
    pub agent_id: Uuid,
    pub vapi_assistant_id: String,
    pub vapi_phone_number_id: String,
    pub customer_number: String,
    pub customer_name: Option<String>,
    /// Per-call changes to the assistant (variable values, prompt overrides).
    pub assistant_overrides: Option<serde_json::Value>,
}

#[async_trait]
pub trait VoiceProvider: Send + Sync {
    /// Creates an assistant; returns the provider's id.
    async fn create_assistant(&self, assistant: &AssistantDefinition) -> Result<String, ProviderError>;
    async fn update_assistant(&self, id: &str, assistant: &AssistantDefinition) -> Result<(), ProviderError>;
    async fn delete_assistant(&self, id: &str) -> Result<(), ProviderError>;
    /// The assistant an earlier, unconfirmed creation for this agent made, if
    /// any: looked up by our metadata among assistants created since `since`.
    async fn find_assistant(
        &self,
        organization_id: Uuid,
        agent_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Option<String>, ProviderError>;
    /// Registers provider credentials (`secret` as the provider expects them); returns the platform's id.
    async fn create_credential(&self, provider: &str, secret: &serde_json::Value) -> Result<String, ProviderError>;
    async fn create_phone_number(&self, number: &NumberDefinition) -> Result<ProviderNumber, ProviderError>;
    async fn assign_phone_number(&self, id: &str, vapi_assistant_id: Option<&str>) -> Result<(), ProviderError>;
    async fn delete_phone_number(&self, id: &str) -> Result<(), ProviderError>;
    async fn get_phone_number(&self, id: &str) -> Result<ProviderNumber, ProviderError>;
    /// The number an earlier, unconfirmed provisioning of our number
    /// `phone_number_id` (with its E.164 `number`, when known) made, if any,
    /// among numbers created since `since`.
    async fn find_phone_number(
        &self,
        phone_number_id: Uuid,
        number: Option<&domain::phone::PhoneNumber>,
        since: DateTime<Utc>,
    ) -> Result<Option<ProviderNumber>, ProviderError>;
    /// Places an outbound call; returns the platform's call id.
    async fn create_call(&self, call: &OutboundCall) -> Result<String, ProviderError>;
    /// The call an earlier, unconfirmed placement of `call` made, if any,
    /// among calls of its assistant and number created since `since`.
    async fn find_call(&self, call: &OutboundCall, since: DateTime<Utc>) -> Result<Option<String>, ProviderError>;
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
            policy.next_attempt(
                1,
                &ProviderError::Rejected {
                    status: 400,
                    message: "bad".into()
                },
                now
            ),
            None
        );
    }
}
