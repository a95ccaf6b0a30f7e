//! Per-organization limits on costly actions: outbound calls per minute and
//! numbers bought per day (configurable). Over a limit is a 429, not a bill.

use crate::error::{AppError, ErrorKind};
use async_trait::async_trait;
use chrono::{DateTime, Duration, DurationRound, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Costly {
    OutboundCall,
    NumberPurchase,
}

impl Costly {
    pub fn name(self) -> &'static str {
        match self {
            Costly::OutboundCall => "outbound_call",
            Costly::NumberPurchase => "number_purchase",
        }
    }

    fn window(self) -> Duration {
        match self {
            Costly::OutboundCall => Duration::minutes(1),
            Costly::NumberPurchase => Duration::days(1),
        }
    }
}

/// How much of each costly action an organization may take per window.
#[derive(Debug, Clone, Copy)]
pub struct QuotaPolicy {
    pub calls_per_minute: i32,
    pub numbers_per_day: i32,
}

impl Default for QuotaPolicy {
    fn default() -> Self {
        Self {
            calls_per_minute: 60,
            numbers_per_day: 10,
        }
    }
}

impl QuotaPolicy {
    fn limit(&self, action: Costly) -> i32 {
        match action {
            Costly::OutboundCall => self.calls_per_minute,
            Costly::NumberPurchase => self.numbers_per_day,
        }
    }
}

/// Counts uses in fixed windows, atomically across processes.
#[async_trait]
pub trait UsageCounter: Send + Sync {
    /// Adds one use in the window starting at `window_start`; returns the uses so far, this one included.
    async fn add(&self, organization_id: Uuid, kind: &str, window_start: DateTime<Utc>) -> Result<i32, AppError>;
}

/// Spends one `action` of the organization's quota, or answers 429 until the window ends.
pub async fn spend(
    counter: &dyn UsageCounter,
    policy: &QuotaPolicy,
    organization_id: Uuid,
    action: Costly,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let window_start = now.duration_trunc(action.window()).unwrap_or(now);
    let used = counter.add(organization_id, action.name(), window_start).await?;
    let limit = policy.limit(action);
    if used <= limit {
        return Ok(());
    }
    let retry_after = (window_start + action.window() - now).to_std().unwrap_or_default();
    Err(AppError::new(
        ErrorKind::TooManyRequests { retry_after },
        "quota_exceeded",
        format!("the organization's limit of {limit} per window for this action is reached"),
    )
    .with_details(serde_json::json!({ "action": action.name(), "limit": limit })))
}
