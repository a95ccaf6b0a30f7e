//! Google Calendar API v3: the account of a token, busy times (freeBusy),
//! events with a Google Meet link, and revoking the grant.

use crate::http::{error_body, logged, refused, retry_after, send, with_segments};
use crate::oauth::{AppCredentials, OAuthSettings};
use crate::sign_in::app_sign_in;
use application::calendar::{CalendarApi, CalendarRef, CreatedEvent, NewCalendarEvent};
use application::oauth::Tokens;
use application::providers::ProviderError;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::calendar::Slot;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use url::Url;

pub const DEFAULT_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
pub const DEFAULT_API_BASE: &str = "https://www.googleapis.com";
pub const DEFAULT_REVOKE_URL: &str = "https://oauth2.googleapis.com/revoke";

/// Events to create, busy times to read, and the primary calendar's id (the
/// account's address): `calendars.get` is authorized by neither of the first two.
pub const SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.freebusy",
    "https://www.googleapis.com/auth/calendar.calendars.readonly",
];

/// A refresh token (offline), issued again on every consent.
pub const AUTHORIZE_PARAMS: &[(&str, &str)] = &[("access_type", "offline"), ("prompt", "consent")];

/// How often a Meet link still being created is looked up again.
const CONFERENCE_POLLS: u32 = 3;

/// Google's reasons for a 403 or 429 that mean "slow down".
const RATE_LIMIT_REASONS: &[&str] = &["rateLimitExceeded", "userRateLimitExceeded"];

/// The sign-in settings for Google at its real endpoints.
pub fn oauth_settings(app: AppCredentials) -> OAuthSettings {
    OAuthSettings {
        extra_authorize_params: AUTHORIZE_PARAMS
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
        ..app_sign_in(app, (DEFAULT_AUTH_URL, DEFAULT_TOKEN_URL), SCOPES)
    }
}

/// [`CalendarApi`] for Google Calendar.
#[derive(Clone)]
pub struct GoogleCalendar {
    http: reqwest::Client,
    api_base: Url,
    revoke_url: Url,
    conference_poll_delay: Duration,
}

impl GoogleCalendar {
    pub fn new(api_base: &str, revoke_url: &str) -> Result<Self, url::ParseError> {
        Ok(Self {
            http: crate::http::client(Duration::from_secs(20)),
            api_base: Url::parse(api_base)?,
            revoke_url: Url::parse(revoke_url)?,
            conference_poll_delay: Duration::from_secs(1),
        })
    }

    /// How long to wait before looking up a Meet link again (tests wait less).
    pub fn with_conference_poll_delay(mut self, delay: Duration) -> Self {
        self.conference_poll_delay = delay;
        self
    }

    /// `{api_base}/calendar/v3/{segments…}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        let path = ["calendar", "v3"].into_iter().chain(segments.iter().copied());
        with_segments(self.api_base.clone(), "Google API base URL", path)
    }

    async fn event(&self, access_token: &str, calendar_id: &str, event_id: &str) -> Result<GoogleEvent, ProviderError> {
        let url = self.url(&["calendars", calendar_id, "events", event_id])?;
        let response = send(self.http.get(url).bearer_auth(access_token)).await?;
        read(succeeded(response).await?).await
    }

    /// The event once its Meet link is no longer pending, or as it stands after a few looks.
    async fn with_conference_settled(
        &self,
        access_token: &str,
        calendar_id: &str,
        mut event: GoogleEvent,
    ) -> GoogleEvent {
        for _ in 0..CONFERENCE_POLLS {
            if !event.conference_pending() {
                break;
            }
            tokio::time::sleep(self.conference_poll_delay).await;
            match self.event(access_token, calendar_id, &event.id).await {
                Ok(latest) => event = latest,
                Err(error) => {
                    // The event exists: a failed look-up costs the link, not the booking.
                    tracing::warn!(%error, "looking up a pending Meet link failed");
                    break;
                }
            }
        }
        event
    }
}

fn calendar_id(calendar: &CalendarRef) -> &str {
    calendar.calendar_id.as_deref().unwrap_or("primary")
}

fn rfc3339<Tz: chrono::TimeZone>(at: DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Deserialize)]
struct Calendar {
    id: String,
}

#[derive(Debug, Deserialize)]
struct FreeBusy {
    #[serde(default)]
    calendars: HashMap<String, FreeBusyCalendar>,
}

#[derive(Debug, Deserialize)]
struct FreeBusyCalendar {
    #[serde(default)]
    busy: Vec<Period>,
    #[serde(default)]
    errors: Vec<FreeBusyError>,
}

#[derive(Debug, Deserialize)]
struct Period {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct FreeBusyError {
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GoogleEvent {
    id: String,
    status: Option<String>,
    hangout_link: Option<String>,
    conference_data: Option<ConferenceData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConferenceData {
    #[serde(default)]
    entry_points: Vec<EntryPoint>,
    create_request: Option<CreateRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryPoint {
    entry_point_type: Option<String>,
    uri: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CreateRequest {
    status: Option<CreateStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateStatus {
    status_code: String,
}

impl GoogleEvent {
    fn conference_pending(&self) -> bool {
        self.conference_data
            .as_ref()
            .and_then(|data| data.create_request.as_ref())
            .and_then(|request| request.status.as_ref())
            .is_some_and(|status| status.status_code == "pending")
    }

    fn meeting_link(&self) -> Option<String> {
        self.hangout_link.clone().or_else(|| {
            self.conference_data.as_ref().and_then(|data| {
                data.entry_points
                    .iter()
                    .find(|entry| entry.entry_point_type.as_deref() == Some("video"))
                    .and_then(|entry| entry.uri.clone())
            })
        })
    }
}

/// The answer when it is a success, else its failure as our error.
async fn succeeded(response: reqwest::Response) -> Result<reqwest::Response, ProviderError> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(Refusal::read(response).await.into_error())
    }
}

/// An answer's JSON; an unreadable one is this provider being unavailable.
async fn read<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, ProviderError> {
    crate::http::read_answer(response, "unreadable response").await
}

/// A failed answer: its status, `Retry-After` and Google's reasons
/// (`{"error":{"errors":[{"reason"}],"code","message"}}`).
struct Refusal {
    status: StatusCode,
    retry_after: Option<Duration>,
    reasons: Vec<String>,
}

impl Refusal {
    /// Reads the answer, logging Google's own message (never passed on to users).
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let (_, body) = error_body(response).await;
        let reasons: Vec<String> = body["error"]["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|error| error["reason"].as_str().map(str::to_owned))
            .collect();
        // API errors carry `error.message`; the revoke endpoint answers OAuth-style.
        let message = logged(
            body["error"]["message"]
                .as_str()
                .or_else(|| body["error_description"].as_str())
                .unwrap_or_default(),
        );
        tracing::warn!(status = status.as_u16(), ?reasons, %message, "Google Calendar answered with an error");
        Self {
            status,
            retry_after,
            reasons,
        }
    }

    fn has_reason(&self, reason: &str) -> bool {
        self.reasons.iter().any(|r| r == reason)
    }

    fn into_error(self) -> ProviderError {
        let rate_limited = match self.status {
            StatusCode::TOO_MANY_REQUESTS => true,
            StatusCode::FORBIDDEN => RATE_LIMIT_REASONS.iter().any(|reason| self.has_reason(reason)),
            _ => false,
        };
        let limit = rate_limited.then_some(ProviderError::RateLimited {
            retry_after: self.retry_after,
        });
        refused(self.status.as_u16(), limit, || self.status.to_string())
    }
}

#[async_trait]
impl CalendarApi for GoogleCalendar {
    async fn account(&self, access_token: &str) -> Result<String, ProviderError> {
        let url = self.url(&["calendars", "primary"])?;
        let response = send(self.http.get(url).bearer_auth(access_token)).await?;
        // The primary calendar's id is the account's address.
        Ok(read::<Calendar>(succeeded(response).await?).await?.id)
    }

    async fn busy(&self, access_token: &str, calendar: &CalendarRef, range: Slot) -> Result<Vec<Slot>, ProviderError> {
        let id = calendar_id(calendar);
        let query = json!({
            "timeMin": rfc3339(range.start),
            "timeMax": rfc3339(range.end),
            "timeZone": "UTC",
            "items": [{ "id": id }],
        });
        let url = self.url(&["freeBusy"])?;
        let response = send(self.http.post(url).bearer_auth(access_token).json(&query)).await?;
        let mut answer: FreeBusy = read(succeeded(response).await?).await?;
        // One calendar was asked for: its entry is keyed by the id sent, but
        // the only entry is it whatever its key.
        let entry = match answer.calendars.remove(id) {
            Some(entry) => Some(entry),
            None if answer.calendars.len() == 1 => answer.calendars.into_values().next(),
            None => None,
        }
        .ok_or_else(|| ProviderError::Unavailable("the busy times did not name the calendar".into()))?;
        if let Some(error) = entry.errors.first() {
            tracing::warn!(reason = %error.reason, "Google could not compute the calendar's busy times");
            return Err(if error.reason == "notFound" {
                ProviderError::NotFound
            } else {
                ProviderError::Unavailable("the calendar's busy times could not be computed".into())
            });
        }
        Ok(entry
            .busy
            .into_iter()
            .map(|period| Slot {
                start: period.start,
                end: period.end,
            })
            .collect())
    }

    async fn create_event(&self, access_token: &str, event: &NewCalendarEvent) -> Result<CreatedEvent, ProviderError> {
        let calendar_id = calendar_id(&event.calendar);
        // Lowercase hex is valid base32hex; the same booking always gets the
        // same id, so a retried insert is refused as a duplicate.
        let event_id = event.booking_id.simple().to_string();
        let zone = event.calendar.zone;
        let mut body = json!({
            "id": event_id,
            "summary": event.title,
            "description": event.description,
            "start": { "dateTime": rfc3339(event.slot.start.with_timezone(&zone.tz())), "timeZone": zone.name() },
            "end": { "dateTime": rfc3339(event.slot.end.with_timezone(&zone.tz())), "timeZone": zone.name() },
        });
        if let Some(email) = &event.attendee.email {
            body["attendees"] = json!([{ "email": email.as_str(), "displayName": event.attendee.name }]);
        }
        if event.add_video_link {
            body["conferenceData"] = json!({
                "createRequest": {
                    "requestId": event.booking_id.to_string(),
                    "conferenceSolutionKey": { "type": "hangoutsMeet" },
                }
            });
        }
        let url = self.url(&["calendars", calendar_id, "events"])?;
        let request = self
            .http
            .post(url)
            .query(&[("conferenceDataVersion", "1"), ("sendUpdates", "all")])
            .bearer_auth(access_token)
            .json(&body);
        let response = send(request).await?;
        let inserted = if response.status() == StatusCode::CONFLICT {
            let refusal = Refusal::read(response).await;
            if !refusal.has_reason("duplicate") {
                return Err(refusal.into_error());
            }
            // An earlier attempt created it (its answer was lost): that event is ours.
            let existing = self.event(access_token, calendar_id, &event_id).await?;
            if existing.status.as_deref() == Some("cancelled") {
                tracing::warn!(
                    event_id,
                    "the booking's event was deleted at Google and its id cannot be reused"
                );
                return Err(ProviderError::Rejected {
                    status: StatusCode::CONFLICT.as_u16(),
                });
            }
            existing
        } else {
            read(succeeded(response).await?).await?
        };
        let settled = self.with_conference_settled(access_token, calendar_id, inserted).await;
        Ok(CreatedEvent {
            meeting_link: settled.meeting_link(),
            provider_event_id: settled.id,
        })
    }

    async fn revoke(&self, tokens: &Tokens) -> Result<bool, ProviderError> {
        // Revoking the refresh token revokes the whole grant.
        let token = tokens.refresh_token.as_deref().unwrap_or(&tokens.access_token);
        let response = send(self.http.post(self.revoke_url.clone()).form(&[("token", token)])).await?;
        succeeded(response).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_test_support::{
        assert_failures_map, assert_first_body_lacks, at, authorized, booking, common_failures, sent_bodies, slot,
        tokens, BOOKING_ID,
    };
    use serde_json::Value;
    use wiremock::matchers::{body_json, body_partial_json, body_string, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const TOKEN: &str = "ya29.token";

    async fn google(server: &MockServer) -> GoogleCalendar {
        GoogleCalendar::new(&server.uri(), &format!("{}/revoke", server.uri()))
            .unwrap()
            .with_conference_poll_delay(Duration::from_millis(10))
    }

    fn calendar(calendar_id: Option<&str>) -> CalendarRef {
        crate::provider_test_support::calendar("ann@example.com", "America/New_York", calendar_id)
    }

    /// Books `event` at the fake.
    async fn book(server: &MockServer, event: &NewCalendarEvent) -> Result<CreatedEvent, ProviderError> {
        google(server).await.create_event(TOKEN, event).await
    }

    const EVENT_ID: &str = "0f8b6c2e3a4d4e5f9a1b2c3d4e5f6a7b";

    fn event_answer(status_code: &str, link: Option<&str>) -> Value {
        let mut event = json!({
            "kind": "calendar#event",
            "id": EVENT_ID,
            "status": "confirmed",
            "htmlLink": "https://www.google.com/calendar/event?eid=abc",
            "conferenceData": {
                "createRequest": {
                    "requestId": BOOKING_ID,
                    "conferenceSolutionKey": { "type": "hangoutsMeet" },
                    "status": { "statusCode": status_code }
                }
            }
        });
        if let Some(link) = link {
            event["conferenceData"]["entryPoints"] = json!([
                { "entryPointType": "phone", "uri": "tel:+1-555-0100" },
                { "entryPointType": "video", "uri": link, "label": "meet.google.com/abc-defg-hij" }
            ]);
        }
        event
    }

    fn google_error(code: u16, reason: &str, message: &str) -> ResponseTemplate {
        ResponseTemplate::new(code).set_body_json(json!({
            "error": {
                "errors": [{ "domain": "usageLimits", "reason": reason, "message": message }],
                "code": code,
                "message": message
            }
        }))
    }

    #[tokio::test]
    async fn the_account_is_the_primary_calendars_id() {
        let server = MockServer::start().await;
        authorized("GET", "/calendar/v3/calendars/primary", TOKEN)
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "kind": "calendar#calendar",
                "id": "ann@example.com",
                "summary": "ann@example.com",
                "timeZone": "America/New_York"
            })))
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(google(&server).await.account(TOKEN).await.unwrap(), "ann@example.com");
    }

    #[tokio::test]
    async fn busy_times_come_from_free_busy() {
        let server = MockServer::start().await;
        authorized("POST", "/calendar/v3/freeBusy", TOKEN)
            .and(body_json(json!({
                "timeMin": "2026-03-04T00:00:00Z",
                "timeMax": "2026-03-05T00:00:00Z",
                "timeZone": "UTC",
                "items": [{ "id": "primary" }]
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "kind": "calendar#freeBusy",
                "timeMin": "2026-03-04T00:00:00.000Z",
                "timeMax": "2026-03-05T00:00:00.000Z",
                "calendars": {
                    "primary": {
                        "busy": [
                            { "start": "2026-03-04T15:00:00Z", "end": "2026-03-04T16:00:00Z" },
                            { "start": "2026-03-04T18:30:00Z", "end": "2026-03-04T19:00:00Z" }
                        ]
                    }
                }
            })))
            .expect(1)
            .mount(&server)
            .await;
        let range = slot("2026-03-04T00:00:00Z", "2026-03-05T00:00:00Z");
        let busy = google(&server).await.busy(TOKEN, &calendar(None), range).await.unwrap();
        assert_eq!(
            busy,
            vec![
                slot("2026-03-04T15:00:00Z", "2026-03-04T16:00:00Z"),
                slot("2026-03-04T18:30:00Z", "2026-03-04T19:00:00Z"),
            ]
        );
    }

    #[tokio::test]
    async fn a_calendar_free_busy_could_not_read_is_an_error() {
        let server = MockServer::start().await;
        for (id, reason) in [
            ("gone@group.calendar.google.com", "notFound"),
            ("big@group.calendar.google.com", "internalError"),
        ] {
            Mock::given(path("/calendar/v3/freeBusy"))
                .and(body_partial_json(json!({ "items": [{ "id": id }] })))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "calendars": { id: { "errors": [{ "domain": "global", "reason": reason }], "busy": [] } }
                })))
                .mount(&server)
                .await;
        }
        let google = google(&server).await;
        let range = Slot::new(at("2026-03-04T00:00:00Z"), 60);
        assert_eq!(
            google
                .busy(TOKEN, &calendar(Some("gone@group.calendar.google.com")), range)
                .await,
            Err(ProviderError::NotFound)
        );
        assert!(matches!(
            google
                .busy(TOKEN, &calendar(Some("big@group.calendar.google.com")), range)
                .await,
            Err(ProviderError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn an_event_is_inserted_with_our_id_the_attendee_and_a_meet_request() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/calendar/v3/calendars/team%231@group.calendar.google.com/events"))
            .and(query_param("conferenceDataVersion", "1"))
            .and(query_param("sendUpdates", "all"))
            .and(header("authorization", "Bearer ya29.token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": EVENT_ID,
                "status": "confirmed",
                "hangoutLink": "https://meet.google.com/abc-defg-hij",
                "conferenceData": {
                    "createRequest": { "status": { "statusCode": "success" } },
                    "entryPoints": [{ "entryPointType": "video", "uri": "https://meet.google.com/abc-defg-hij" }]
                }
            })))
            .expect(1)
            .mount(&server)
            .await;
        let event = booking(calendar(Some("team#1@group.calendar.google.com")), true);
        let created = book(&server, &event).await.unwrap();
        assert_eq!(
            created,
            CreatedEvent {
                provider_event_id: EVENT_ID.into(),
                meeting_link: Some("https://meet.google.com/abc-defg-hij".into()),
            }
        );
        assert_eq!(
            sent_bodies(&server).await[0],
            json!({
                "id": EVENT_ID,
                "summary": "Demo with Acme",
                "description": "Booked by VoxReach",
                "start": { "dateTime": "2026-03-04T10:00:00-05:00", "timeZone": "America/New_York" },
                "end": { "dateTime": "2026-03-04T10:30:00-05:00", "timeZone": "America/New_York" },
                "attendees": [{ "email": "john@acme.example", "displayName": "John Doe" }],
                "conferenceData": { "createRequest": {
                    "requestId": BOOKING_ID,
                    "conferenceSolutionKey": { "type": "hangoutsMeet" }
                } }
            })
        );
    }

    #[tokio::test]
    async fn without_a_video_link_or_an_email_neither_is_sent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/calendar/v3/calendars/primary/events"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": EVENT_ID, "status": "confirmed" })))
            .expect(1)
            .mount(&server)
            .await;
        let mut event = booking(calendar(None), false);
        event.attendee.email = None;
        let created = book(&server, &event).await.unwrap();
        assert_eq!(created.meeting_link, None);
        assert_first_body_lacks(&server, &["attendees", "conferenceData"]).await;
    }

    #[tokio::test]
    async fn a_retried_insert_answered_duplicate_returns_the_existing_event() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/calendar/v3/calendars/primary/events"))
            .respond_with(google_error(
                409,
                "duplicate",
                "The requested identifier already exists.",
            ))
            .expect(1)
            .mount(&server)
            .await;
        authorized(
            "GET",
            format!("/calendar/v3/calendars/primary/events/{EVENT_ID}"),
            TOKEN,
        )
        .respond_with(
            ResponseTemplate::new(200).set_body_json(event_answer("success", Some("https://meet.google.com/xyz"))),
        )
        .expect(1)
        .mount(&server)
        .await;
        let created = book(&server, &booking(calendar(None), true)).await.unwrap();
        assert_eq!(created.provider_event_id, EVENT_ID);
        assert_eq!(created.meeting_link.as_deref(), Some("https://meet.google.com/xyz"));
    }

    #[tokio::test]
    async fn a_duplicate_of_a_deleted_event_is_refused() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(google_error(
                409,
                "duplicate",
                "The requested identifier already exists.",
            ))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": EVENT_ID, "status": "cancelled" })))
            .mount(&server)
            .await;
        let result = book(&server, &booking(calendar(None), false)).await;
        assert_eq!(result, Err(ProviderError::Rejected { status: 409 }));
    }

    #[tokio::test]
    async fn a_pending_meet_is_looked_up_until_it_has_a_link() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(event_answer("pending", None)))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/calendar/v3/calendars/primary/events/{EVENT_ID}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(event_answer("pending", None)))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/calendar/v3/calendars/primary/events/{EVENT_ID}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(event_answer("success", Some("https://meet.google.com/abc-defg-hij"))),
            )
            .expect(1)
            .mount(&server)
            .await;
        let created = book(&server, &booking(calendar(None), true)).await.unwrap();
        assert_eq!(
            created.meeting_link.as_deref(),
            Some("https://meet.google.com/abc-defg-hij")
        );
    }

    #[tokio::test]
    async fn a_meet_still_pending_after_three_looks_gives_no_link() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(event_answer("pending", None)))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(event_answer("pending", None)))
            .expect(3)
            .mount(&server)
            .await;
        let created = book(&server, &booking(calendar(None), true)).await.unwrap();
        assert_eq!(
            created,
            CreatedEvent {
                provider_event_id: EVENT_ID.into(),
                meeting_link: None
            }
        );
    }

    #[tokio::test]
    async fn failures_map_to_provider_errors_without_googles_words() {
        let server = &MockServer::start().await;
        let mut cases = common_failures(|status| google_error(status, "backendError", "Secret detail"));
        cases.extend([
            (
                "rate-403",
                google_error(403, "rateLimitExceeded", "Rate Limit Exceeded").insert_header("retry-after", "7"),
                ProviderError::RateLimited {
                    retry_after: Some(Duration::from_secs(7)),
                },
            ),
            (
                "user-rate-403",
                google_error(403, "userRateLimitExceeded", "User Rate Limit Exceeded"),
                ProviderError::RateLimited { retry_after: None },
            ),
            (
                "invalid",
                google_error(400, "invalid", "Invalid start time."),
                ProviderError::Rejected { status: 400 },
            ),
            (
                "down-unreadable",
                ResponseTemplate::new(500).set_body_string("Backend Error: stack trace here"),
                ProviderError::Unavailable("500 Internal Server Error".into()),
            ),
        ]);
        let events_in = |calendar_id: &str| Mock::given(path(format!("/calendar/v3/calendars/{calendar_id}/events")));
        let book_in = |calendar_id| async move { book(server, &booking(calendar(Some(calendar_id)), false)).await };
        assert_failures_map(server, cases, events_in, book_in, &["Secret", "stack"]).await;
    }

    #[tokio::test]
    async fn revoking_posts_the_refresh_token_as_a_form() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/revoke"))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(body_string("token=1%2F%2Frefresh"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/revoke"))
            .and(body_string("token=ya29.only"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "error": "invalid_token",
                "error_description": "Token expired or revoked"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let google = google(&server).await;
        let granted = tokens("ya29.access", Some("1//refresh"), None);
        assert_eq!(google.revoke(&granted).await, Ok(true));
        let access_only = tokens("ya29.only", None, None);
        assert_eq!(
            google.revoke(&access_only).await,
            Err(ProviderError::Rejected { status: 400 })
        );
    }
}
