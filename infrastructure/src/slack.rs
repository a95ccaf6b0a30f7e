//! Slack incoming webhooks: a notice rendered as Block Kit is `POST`ed; Slack
//! answers `ok` or a plain-text error code.

use crate::http::retry_after;
use application::slack::{SlackDeliveryError, SlackWebhook};
use async_trait::async_trait;
use domain::slack::{escape, Mention, Notice};
use reqwest::StatusCode;
use serde_json::{json, Value};
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

/// Other codes Slack answers with; an answer that is none of these is reported
/// as `unexpected_answer`, never echoed.
const KNOWN: &[&str] = &[
    "invalid_payload",
    "invalid_blocks",
    "invalid_blocks_format",
    "no_text",
    "missing_text_or_fallback_or_attachments",
    "too_many_attachments",
    "rollup_error",
    "internal_error",
    "service_unavailable",
];

impl Default for SlackClient {
    fn default() -> Self {
        Self {
            http: crate::http::client(Duration::from_secs(10)),
        }
    }
}

/// Slack's answer as one of its known codes (Slack answers a bare code).
fn known_code(body: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    REVOKED.iter().chain(KNOWN).find(|code| **code == text).copied()
}

/// A mention in Slack's markup: user groups (`S…`) and users (`U…`, `W…`).
fn mention(who: &Mention) -> String {
    if who.is_group() {
        format!("<!subteam^{}> ", who.as_str())
    } else {
        format!("<@{}> ", who.as_str())
    }
}

/// The Block Kit message of a notice: header, mentions and headline, facts,
/// note, buttons; `text` is the fallback shown in notifications.
pub fn block_kit(notice: &Notice) -> Value {
    let mentions: String = notice.mentions.iter().map(mention).collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": notice.title, "emoji": true}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("{mentions}{}", notice.headline)}}),
    ];
    if !notice.fields.is_empty() {
        let fields: Vec<Value> = notice
            .fields
            .iter()
            .map(|(label, value)| json!({"type": "mrkdwn", "text": format!("*{label}:*\n{}", escape(value))}))
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if let Some(note) = &notice.note {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(note)}]}));
    }
    if !notice.links.is_empty() {
        let buttons: Vec<Value> = notice
            .links
            .iter()
            .map(|(label, url)| json!({"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}))
            .collect();
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    json!({ "text": notice.title, "blocks": blocks })
}

#[async_trait]
impl SlackWebhook for SlackClient {
    async fn post(&self, webhook_url: &str, notice: &Notice) -> Result<(), SlackDeliveryError> {
        // The URL is a secret: errors must not carry it.
        let response = self
            .http
            .post(webhook_url)
            .json(&block_kit(notice))
            .send()
            .await
            .map_err(|e| SlackDeliveryError::Unavailable(crate::http::transport_cause(e)))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = crate::http::read_capped(response, 4096).await.unwrap_or_default();
        let code = known_code(&body).unwrap_or("").to_owned();
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::TOO_MANY_REQUESTS => Err(SlackDeliveryError::RateLimited { retry_after }),
            s if s.is_server_error() && code.is_empty() => Err(SlackDeliveryError::Unavailable(s.to_string().into())),
            s if s.is_server_error() => Err(SlackDeliveryError::Unavailable(format!("{s}: {code}").into())),
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

#[cfg(test)]
mod tests {
    use super::*;
    use domain::calls::Outcome;
    use domain::slack::{message, CallFacts, NotificationKind};
    use uuid::Uuid;

    #[test]
    fn the_hot_lead_message_is_block_kit() {
        let facts = CallFacts {
            call_id: Uuid::nil(),
            contact_name: Some("John Doe".into()),
            company: Some("Acme Corp".into()),
            phone: Some("+15551234567".into()),
            agent_name: Some("Sales Agent 1".into()),
            duration_seconds: Some(272.0),
            sentiment: Some("Very Positive".into()),
            outcome: Some(Outcome::Qualified),
            ..CallFacts::default()
        };
        let body = block_kit(&message(
            NotificationKind::HotLead,
            &facts,
            &[Mention::try_from("U123".to_owned()).unwrap()],
            None,
            "https://app.voxreach.io/",
        ));
        assert_eq!(body["text"], "🎯 Hot Lead Alert!");
        assert_eq!(
            body["blocks"][1]["text"]["text"],
            "<@U123> *John Doe* from *Acme Corp* just qualified on a call with *Sales Agent 1*"
        );
        assert_eq!(body["blocks"][2]["fields"][2]["text"], "*Call Duration:*\n4:32");
        assert_eq!(
            body["blocks"][3]["elements"][0]["url"],
            "https://app.voxreach.io/calls/00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(body["blocks"][3]["elements"][1]["url"], "tel:+15551234567");
    }
}
