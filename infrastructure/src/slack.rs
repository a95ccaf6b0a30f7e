//! Slack incoming webhooks: `POST` a Block Kit body; Slack answers `ok` or a plain-text error code.

use crate::http::parse_retry_after;
use application::slack::{SlackDeliveryError, SlackWebhook};
use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

/// Codes after which the webhook itself no longer works.
const REVOKED: &[&str] = &[
    "invalid_token",
    "no_service",
    "no_service_id",
    "no_team",
    "team_disabled",
    "channel_not_found",
    "channel_is_archived",
    "action_prohibited",
    "posting_to_general_channel_denied",
    "user_not_found",
];

#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
}

impl Default for SlackClient {
    fn default() -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client with default TLS builds"),
        }
    }
}

#[async_trait]
impl SlackWebhook for SlackClient {
    async fn post(&self, webhook_url: &str, body: &Value) -> Result<(), SlackDeliveryError> {
        // The URL is a secret: errors must not carry it.
        let response = self
            .http
            .post(webhook_url)
            .json(body)
            .send()
            .await
            .map_err(|e| SlackDeliveryError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response.text().await.unwrap_or_default();
        let code = text.trim().to_owned();
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::TOO_MANY_REQUESTS => Err(SlackDeliveryError::RateLimited { retry_after }),
            s if s.is_server_error() => Err(SlackDeliveryError::Unavailable(format!("{s}: {code}"))),
            _ if REVOKED.contains(&code.as_str()) => Err(SlackDeliveryError::Revoked(code)),
            s if s == StatusCode::NOT_FOUND || s == StatusCode::GONE || s == StatusCode::FORBIDDEN => {
                Err(SlackDeliveryError::Revoked(if code.is_empty() {
                    s.to_string()
                } else {
                    code
                }))
            }
            s => Err(SlackDeliveryError::Rejected(if code.is_empty() {
                s.to_string()
            } else {
                code
            })),
        }
    }
}
