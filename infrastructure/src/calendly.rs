//! Calendly's API v2 (`Authorization: Bearer <personal access token>`):
//! the token's user, webhook subscriptions, and the deliveries they bring —
//! verified by `Calendly-Webhook-Signature` and read into our terms.

use application::calendar::{CalendlyAccount, CalendlyApi, CalendlyDelivery, NewSubscription};
use application::providers::ProviderError;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use domain::calendar::Slot;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

pub const DEFAULT_API_BASE: &str = "https://api.calendly.com";

/// How far a delivery's signed timestamp may be from our clock.
pub const SIGNATURE_TOLERANCE: chrono::Duration = chrono::Duration::minutes(3);

#[derive(Clone)]
pub struct CalendlyClient {
    http: reqwest::Client,
    api_base: String,
}

impl CalendlyClient {
    pub fn new(api_base: &str) -> Result<Self, url::ParseError> {
        url::Url::parse(api_base)?;
        Ok(Self {
            http: crate::http::client(Duration::from_secs(15)),
            api_base: api_base.trim_end_matches('/').to_owned(),
        })
    }

    /// A request to an API path, or to a URI Calendly gave us (only when it is under our API base).
    fn request(
        &self,
        method: Method,
        path_or_uri: &str,
        token: &str,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let url = if path_or_uri.starts_with('/') {
            format!("{}{path_or_uri}", self.api_base)
        } else if path_or_uri.starts_with(&format!("{}/", self.api_base)) {
            path_or_uri.to_owned()
        } else {
            // Never send the token to a host Calendly's answer named.
            return Err(ProviderError::Rejected { status: 400 });
        };
        Ok(self.http.request(method, url).bearer_auth(token))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
        let response = request.send().await.map_err(crate::http::no_answer)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // Calendly's 429 carries X-RateLimit-Reset (seconds until the window resets), no Retry-After.
        let reset = response
            .headers()
            .get("x-ratelimit-reset")
            .or_else(|| response.headers().get(reqwest::header::RETRY_AFTER))
            .and_then(|v| v.to_str().ok())
            .and_then(crate::http::parse_retry_after);
        let (body, _) = crate::http::error_body(response).await;
        let said = crate::http::logged(&String::from_utf8_lossy(&body));
        tracing::warn!(%status, answer = %said, "Calendly refused a request");
        Err(match status {
            StatusCode::UNAUTHORIZED => ProviderError::Unauthorized,
            StatusCode::NOT_FOUND => ProviderError::NotFound,
            StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited { retry_after: reset },
            s if s.is_server_error() => ProviderError::Unavailable(format!("Calendly answered {s}").into()),
            s => ProviderError::Rejected { status: s.as_u16() },
        })
    }
}

#[derive(Deserialize)]
struct Resource<T> {
    resource: T,
}

#[derive(Deserialize)]
struct User {
    uri: String,
    current_organization: String,
    #[serde(default)]
    email: String,
}

#[derive(Deserialize)]
struct Subscription {
    uri: String,
}

/// An answer's JSON; an unreadable one is this provider being unavailable.
async fn read<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, ProviderError> {
    crate::http::read_answer(response, "unreadable Calendly answer").await
}

#[async_trait]
impl CalendlyApi for CalendlyClient {
    async fn current_user(&self, token: &str) -> Result<CalendlyAccount, ProviderError> {
        let response = self.send(self.request(Method::GET, "/users/me", token)?).await?;
        let user: Resource<User> = read(response).await?;
        Ok(CalendlyAccount {
            email: if user.resource.email.is_empty() {
                user.resource.uri.clone()
            } else {
                user.resource.email
            },
            user_uri: user.resource.uri,
            organization_uri: user.resource.current_organization,
        })
    }

    async fn subscribe(&self, token: &str, subscription: &NewSubscription<'_>) -> Result<String, ProviderError> {
        let body = json!({
            "url": subscription.callback_url,
            "events": ["invitee.created", "invitee.canceled"],
            "organization": subscription.account.organization_uri,
            "user": subscription.account.user_uri,
            "scope": "user",
            "signing_key": subscription.signing_key,
        });
        let request = self.request(Method::POST, "/webhook_subscriptions", token)?.json(&body);
        let created: Resource<Subscription> = read(self.send(request).await?).await?;
        Ok(created.resource.uri)
    }

    async fn unsubscribe(&self, token: &str, subscription_uri: &str) -> Result<(), ProviderError> {
        match self.send(self.request(Method::DELETE, subscription_uri, token)?).await {
            Ok(_) | Err(ProviderError::NotFound) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

/// Whether `signature` (`t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>." + body)>`)
/// signs `body` with `key`, at a time within [`SIGNATURE_TOLERANCE`] of `now`.
pub fn is_authentic(signature: Option<&str>, body: &[u8], key: &str, now: DateTime<Utc>) -> bool {
    let Some(signature) = signature else { return false };
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in signature.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = Some(value.trim()),
            Some(("v1", value)) => signatures.push(value.trim()),
            _ => {}
        }
    }
    let Some(at) = timestamp
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|t| Utc.timestamp_opt(t, 0).single())
    else {
        return false;
    };
    if (now - at).abs() > SIGNATURE_TOLERANCE || key.is_empty() {
        return false;
    }
    let signed = [timestamp.unwrap_or_default().as_bytes(), b".", body].concat();
    signatures.into_iter().any(|given| {
        let Ok(given) = hex::decode(given) else { return false };
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
        mac.update(&signed);
        mac.verify_slice(&given).is_ok()
    })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the body is not a Calendly delivery: {0}")]
pub struct DeliveryError(String);

fn text(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

fn instant(value: &Value, field: &str) -> Result<DateTime<Utc>, DeliveryError> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| DeliveryError(format!("payload.scheduled_event.{field} is not an RFC 3339 time")))
}

/// Reads a delivery: `Ok(None)` for events we do not subscribe to.
pub fn parse_delivery(body: &[u8]) -> Result<Option<CalendlyDelivery>, DeliveryError> {
    let delivery: Value = serde_json::from_slice(body).map_err(|e| DeliveryError(e.to_string()))?;
    let payload = &delivery["payload"];
    let invitee_uri = || text(&payload["uri"]).ok_or_else(|| DeliveryError("payload.uri is missing".into()));
    match delivery["event"].as_str() {
        Some("invitee.created") => {
            let event = &payload["scheduled_event"];
            let start = instant(&event["start_time"], "start_time")?;
            let end = instant(&event["end_time"], "end_time")?;
            if end <= start {
                return Err(DeliveryError("the scheduled event ends before it starts".into()));
            }
            Ok(Some(CalendlyDelivery::InviteeCreated {
                invitee_uri: invitee_uri()?,
                event_uri: text(&event["uri"])
                    .or_else(|| text(&payload["event"]))
                    .unwrap_or_default(),
                name: text(&payload["name"]).unwrap_or_default(),
                email: text(&payload["email"]),
                slot: Slot { start, end },
                rescheduled_from: text(&payload["old_invitee"]),
            }))
        }
        Some("invitee.canceled") => Ok(Some(CalendlyDelivery::InviteeCanceled {
            invitee_uri: invitee_uri()?,
            rescheduled: payload["rescheduled"].as_bool().unwrap_or(false),
            reason: text(&payload["cancellation"]["reason"]),
        })),
        Some(_) => Ok(None),
        None => Err(DeliveryError("event is missing".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn sign(key: &str, at: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(&[at.to_string().as_bytes(), b".", body].concat());
        format!("t={at},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked_with_the_key_and_a_three_minute_window() {
        let now: DateTime<Utc> = "2026-03-02T13:00:00Z".parse().unwrap();
        let body = br#"{"event":"invitee.created"}"#;
        let at = now.timestamp();
        assert!(is_authentic(Some(&sign("k1", at, body)), body, "k1", now));
        assert!(is_authentic(Some(&sign("k1", at - 170, body)), body, "k1", now));
        assert!(
            !is_authentic(Some(&sign("k1", at - 181, body)), body, "k1", now),
            "stale"
        );
        assert!(!is_authentic(Some(&sign("k2", at, body)), body, "k1", now), "other key");
        assert!(
            !is_authentic(Some(&sign("k1", at, b"{}")), body, "k1", now),
            "other body"
        );
        assert!(!is_authentic(Some("v1=abcd"), body, "k1", now), "no timestamp");
        assert!(!is_authentic(None, body, "k1", now));
        assert!(!is_authentic(Some(&sign("", at, body)), body, "", now), "no key");
    }

    #[test]
    fn deliveries_read_as_created_or_canceled_and_others_are_ignored() {
        let created = json!({"event": "invitee.created", "created_at": "2026-03-02T13:00:00Z", "payload": {
            "uri": "https://api.calendly.com/scheduled_events/E2/invitees/I2", "email": "ann@example.com", "name": "Ann",
            "status": "active", "rescheduled": false, "old_invitee": "https://api.calendly.com/scheduled_events/E1/invitees/I1",
            "scheduled_event": {"uri": "https://api.calendly.com/scheduled_events/E2", "name": "Demo",
                "start_time": "2026-03-04T15:00:00.000000Z", "end_time": "2026-03-04T15:30:00.000000Z", "status": "active"}}});
        let Some(CalendlyDelivery::InviteeCreated {
            slot, rescheduled_from, ..
        }) = parse_delivery(created.to_string().as_bytes()).unwrap()
        else {
            panic!("a created invitee");
        };
        assert_eq!(slot.start, "2026-03-04T15:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(
            rescheduled_from.as_deref(),
            Some("https://api.calendly.com/scheduled_events/E1/invitees/I1")
        );
        let canceled = json!({"event": "invitee.canceled", "payload": {"uri": "https://api.calendly.com/scheduled_events/E1/invitees/I1",
            "rescheduled": true, "cancellation": {"reason": "Moved", "canceler_type": "invitee"}}});
        assert_eq!(
            parse_delivery(canceled.to_string().as_bytes()).unwrap(),
            Some(CalendlyDelivery::InviteeCanceled {
                invitee_uri: "https://api.calendly.com/scheduled_events/E1/invitees/I1".into(),
                rescheduled: true,
                reason: Some("Moved".into()),
            })
        );
        assert_eq!(
            parse_delivery(br#"{"event": "routing_form_submission.created", "payload": {}}"#).unwrap(),
            None
        );
        assert!(parse_delivery(b"not json").is_err());
        assert!(parse_delivery(br#"{"event": "invitee.created", "payload": {"uri": "x"}}"#).is_err());
    }

    #[tokio::test]
    async fn the_user_is_read_and_a_signed_subscription_created_and_removed() {
        let server = MockServer::start().await;
        let base = server.uri();
        Mock::given(method("GET"))
            .and(path("/users/me"))
            .and(header("authorization", "Bearer pat-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resource": {
                "uri": format!("{base}/users/U1"), "name": "Owner", "email": "owner@calendly.test",
                "current_organization": format!("{base}/organizations/O1")}})))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/webhook_subscriptions"))
            .and(body_json(
                json!({"url": "https://app.test/api/webhooks/calendly?integration=1",
                "events": ["invitee.created", "invitee.canceled"], "organization": format!("{base}/organizations/O1"),
                "user": format!("{base}/users/U1"), "scope": "user", "signing_key": "key-1"}),
            ))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"resource": {
                "uri": format!("{base}/webhook_subscriptions/W1"), "state": "active"}})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path("/webhook_subscriptions/W1"))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let client = CalendlyClient::new(&base).unwrap();
        let account = client.current_user("pat-1").await.unwrap();
        assert_eq!(account.email, "owner@calendly.test");
        let uri = client
            .subscribe(
                "pat-1",
                &NewSubscription {
                    account: &account,
                    callback_url: "https://app.test/api/webhooks/calendly?integration=1",
                    signing_key: "key-1",
                },
            )
            .await
            .unwrap();
        assert_eq!(uri, format!("{base}/webhook_subscriptions/W1"));
        client.unsubscribe("pat-1", &uri).await.unwrap();
        // A URI on another host is never called with our token.
        assert!(client
            .unsubscribe("pat-1", "https://evil.test/webhook_subscriptions/W1")
            .await
            .is_err());
    }

    #[tokio::test]
    async fn refusals_and_limits_map_to_provider_errors() {
        let server = MockServer::start().await;
        Mock::given(path("/users/me"))
            .and(header("authorization", "Bearer bad"))
            .respond_with(
                ResponseTemplate::new(401)
                    .set_body_json(json!({"title": "Unauthenticated", "message": "The access token is invalid"})),
            )
            .mount(&server)
            .await;
        Mock::given(path("/users/me"))
            .and(header("authorization", "Bearer busy"))
            .respond_with(ResponseTemplate::new(429).insert_header("X-RateLimit-Reset", "42"))
            .mount(&server)
            .await;
        let client = CalendlyClient::new(&server.uri()).unwrap();
        assert_eq!(client.current_user("bad").await, Err(ProviderError::Unauthorized));
        assert_eq!(
            client.current_user("busy").await,
            Err(ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(42))
            })
        );
    }
}
