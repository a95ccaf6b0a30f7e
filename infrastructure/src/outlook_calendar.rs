//! Outlook / Office 365 calendars through Microsoft Graph v1.0: the account of
//! a token, busy times (getSchedule) and events with a Teams link.

use crate::http::{error_body, logged, refused, retry_after, send, with_segments};
use crate::oauth::{AppCredentials, OAuthSettings};
use crate::sign_in::app_sign_in;
use application::calendar::{CalendarApi, CalendarRef, CreatedEvent, NewCalendarEvent};
use application::oauth::Tokens;
use application::providers::ProviderError;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use domain::calendar::Slot;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use url::Url;

pub const DEFAULT_AUTH_URL: &str = "https://login.microsoftonline.com/common/oauth2/v2.0/authorize";
pub const DEFAULT_TOKEN_URL: &str = "https://login.microsoftonline.com/common/oauth2/v2.0/token";
pub const DEFAULT_API_BASE: &str = "https://graph.microsoft.com/v1.0";

/// A refresh token (`offline_access`), the account's address, and its calendars.
pub const SCOPES: &[&str] = &["offline_access", "User.Read", "Calendars.ReadWrite"];

/// Graph's wall-clock date-times: no offset, the zone given beside them.
const GRAPH_DATE_TIME: &str = "%Y-%m-%dT%H:%M:%S";

/// The granularity of getSchedule's availability view, in minutes.
const AVAILABILITY_VIEW_MINUTES: u32 = 15;

/// The sign-in settings for Microsoft at its real endpoints (any tenant).
pub fn oauth_settings(app: AppCredentials) -> OAuthSettings {
    app_sign_in(app, (DEFAULT_AUTH_URL, DEFAULT_TOKEN_URL), SCOPES)
}

/// [`CalendarApi`] for Outlook calendars.
#[derive(Clone)]
pub struct OutlookCalendar {
    http: reqwest::Client,
    api_base: Url,
}

impl OutlookCalendar {
    pub fn new(api_base: &str) -> Result<Self, url::ParseError> {
        Ok(Self {
            http: crate::http::client(Duration::from_secs(20)),
            api_base: Url::parse(api_base)?,
        })
    }

    /// `{api_base}/{segments…}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        with_segments(self.api_base.clone(), "Graph API base URL", segments.iter().copied())
    }
}

fn graph_date_time(at: DateTime<Utc>) -> Value {
    json!({ "dateTime": at.naive_utc().format(GRAPH_DATE_TIME).to_string(), "timeZone": "UTC" })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    mail: Option<String>,
    user_principal_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Schedules {
    #[serde(default)]
    value: Vec<Schedule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Schedule {
    #[serde(default)]
    schedule_items: Vec<ScheduleItem>,
    error: Option<FreeBusyError>,
}

#[derive(Debug, Deserialize)]
struct ScheduleItem {
    status: String,
    start: GraphDateTime,
    end: GraphDateTime,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphDateTime {
    date_time: String,
    time_zone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FreeBusyError {
    response_code: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphEvent {
    id: String,
    online_meeting: Option<OnlineMeeting>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OnlineMeeting {
    join_url: Option<String>,
}

impl GraphDateTime {
    /// The instant, read in its zone: we ask for UTC, and accept only that.
    fn instant(&self) -> Result<DateTime<Utc>, ProviderError> {
        if !matches!(self.time_zone.as_deref(), None | Some("UTC")) {
            return Err(ProviderError::Unavailable(
                "getSchedule answered in an unexpected time zone".into(),
            ));
        }
        // Graph writes seven fractional digits (`2026-03-04T15:00:00.0000000`), or none.
        NaiveDateTime::parse_from_str(&self.date_time, "%Y-%m-%dT%H:%M:%S%.f")
            .map(|local| local.and_utc())
            .map_err(|_| ProviderError::Unavailable("getSchedule answered an unreadable time".into()))
    }
}

/// The answer's JSON when it is a success, else its failure as our error.
async fn read<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, ProviderError> {
    let status = response.status();
    if !status.is_success() {
        return Err(failure(response).await);
    }
    crate::http::read_answer(response, "unreadable response").await
}

/// A failed answer as a status-only error; Graph's own `{error:{code,message}}`
/// is logged for operators, never passed on to users.
async fn failure(response: reqwest::Response) -> ProviderError {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let (_, body) = error_body(response).await;
    let code = body["error"]["code"].as_str().unwrap_or_default();
    let message = logged(body["error"]["message"].as_str().unwrap_or_default());
    tracing::warn!(status = status.as_u16(), %code, %message, "Microsoft Graph answered with an error");
    let limit = (status == StatusCode::TOO_MANY_REQUESTS).then_some(ProviderError::RateLimited { retry_after });
    refused(status.as_u16(), limit, || status.to_string())
}

#[async_trait]
impl CalendarApi for OutlookCalendar {
    async fn account(&self, access_token: &str) -> Result<String, ProviderError> {
        let mut url = self.url(&["me"])?;
        url.set_query(Some("$select=mail,userPrincipalName"));
        let me: Me = read(send(self.http.get(url).bearer_auth(access_token)).await?).await?;
        // `mail` is empty for some accounts; the sign-in name is an address too.
        me.mail
            .filter(|mail| !mail.is_empty())
            .or(me.user_principal_name)
            .ok_or_else(|| ProviderError::Unavailable("the account has no address".into()))
    }

    async fn busy(&self, access_token: &str, calendar: &CalendarRef, range: Slot) -> Result<Vec<Slot>, ProviderError> {
        let query = json!({
            "schedules": [calendar.account],
            "startTime": graph_date_time(range.start),
            "endTime": graph_date_time(range.end),
            "availabilityViewInterval": AVAILABILITY_VIEW_MINUTES,
        });
        let url = self.url(&["me", "calendar", "getSchedule"])?;
        let request = self
            .http
            .post(url)
            .bearer_auth(access_token)
            .header("Prefer", "outlook.timezone=\"UTC\"")
            .json(&query);
        let answer: Schedules = read(send(request).await?).await?;
        let schedule = answer
            .value
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::Unavailable("getSchedule answered no schedule".into()))?;
        if let Some(error) = schedule.error {
            let code = error.response_code.unwrap_or_default();
            let message = logged(&error.message.unwrap_or_default());
            tracing::warn!(%code, %message, "Microsoft Graph could not read the schedule");
            return Err(if code.ends_with("NotFound") {
                ProviderError::NotFound
            } else {
                ProviderError::Unavailable("the schedule could not be read".into())
            });
        }
        schedule
            .schedule_items
            .iter()
            .filter(|item| item.status != "free")
            .map(|item| {
                Ok(Slot {
                    start: item.start.instant()?,
                    end: item.end.instant()?,
                })
            })
            .collect()
    }

    async fn create_event(&self, access_token: &str, event: &NewCalendarEvent) -> Result<CreatedEvent, ProviderError> {
        let url = match &event.calendar.calendar_id {
            Some(calendar_id) => self.url(&["me", "calendars", calendar_id, "events"])?,
            None => self.url(&["me", "events"])?,
        };
        let mut body = json!({
            "subject": event.title,
            "body": { "contentType": "text", "content": event.description },
            "start": graph_date_time(event.slot.start),
            "end": graph_date_time(event.slot.end),
            // Graph's idempotency key: a retried create returns the first event.
            "transactionId": event.booking_id.to_string(),
        });
        if let Some(email) = &event.attendee.email {
            body["attendees"] = json!([{
                "emailAddress": { "address": email.as_str(), "name": event.attendee.name },
                "type": "required",
            }]);
        }
        if event.add_video_link {
            body["isOnlineMeeting"] = json!(true);
            body["onlineMeetingProvider"] = json!("teamsForBusiness");
        }
        let created: GraphEvent = read(send(self.http.post(url).bearer_auth(access_token).json(&body)).await?).await?;
        Ok(CreatedEvent {
            provider_event_id: created.id,
            meeting_link: created.online_meeting.and_then(|meeting| meeting.join_url),
        })
    }

    /// Graph has no per-grant revocation (`revokeSignInSessions` signs the
    /// user out of every application); forgetting the tokens is what is left.
    async fn revoke(&self, _tokens: &Tokens) -> Result<bool, ProviderError> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_test_support::{
        assert_failures_map, assert_first_body_lacks, at, authorized, booking, common_failures, sent_bodies, slot,
        tokens, BOOKING_ID,
    };
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const TOKEN: &str = "eyJ0eXAi.token";

    async fn outlook(server: &MockServer) -> OutlookCalendar {
        OutlookCalendar::new(&format!("{}/v1.0", server.uri())).unwrap()
    }

    fn calendar(calendar_id: Option<&str>) -> CalendarRef {
        crate::provider_test_support::calendar("ann@contoso.example", "Europe/Berlin", calendar_id)
    }

    fn graph_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(json!({
            "error": {
                "code": code,
                "message": message,
                "innerError": { "date": "2026-03-04T12:00:00", "request-id": "r-1", "client-request-id": "c-1" }
            }
        }))
    }

    #[tokio::test]
    async fn the_account_is_the_mail_address_else_the_sign_in_name() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1.0/me"))
            .and(query_param("$select", "mail,userPrincipalName"))
            .and(header("authorization", "Bearer eyJ0eXAi.token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users(mail,userPrincipalName)/$entity",
                "mail": "Ann@contoso.example",
                "userPrincipalName": "ann_contoso.example#EXT#@contoso.onmicrosoft.com"
            })))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1.0/me"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "mail": null,
                "userPrincipalName": "ann@contoso.example"
            })))
            .mount(&server)
            .await;
        let outlook = outlook(&server).await;
        assert_eq!(outlook.account(TOKEN).await.unwrap(), "Ann@contoso.example");
        assert_eq!(outlook.account(TOKEN).await.unwrap(), "ann@contoso.example");
    }

    #[tokio::test]
    async fn busy_times_come_from_get_schedule_in_utc() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1.0/me/calendar/getSchedule"))
            .and(header("prefer", "outlook.timezone=\"UTC\""))
            .and(header("authorization", "Bearer eyJ0eXAi.token"))
            .and(body_json(json!({
                "schedules": ["ann@contoso.example"],
                "startTime": { "dateTime": "2026-03-04T00:00:00", "timeZone": "UTC" },
                "endTime": { "dateTime": "2026-03-05T00:00:00", "timeZone": "UTC" },
                "availabilityViewInterval": 15
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)",
                "value": [{
                    "scheduleId": "ann@contoso.example",
                    "availabilityView": "000000000000000000000000000000000000000000000000000000000000222200000000000000000000000000000000",
                    "scheduleItems": [
                        {
                            "isPrivate": false, "status": "busy", "subject": "Sync", "location": "",
                            "start": { "dateTime": "2026-03-04T15:00:00.0000000", "timeZone": "UTC" },
                            "end": { "dateTime": "2026-03-04T16:00:00.0000000", "timeZone": "UTC" }
                        },
                        {
                            "isPrivate": false, "status": "free", "subject": "Optional",
                            "start": { "dateTime": "2026-03-04T17:00:00.0000000", "timeZone": "UTC" },
                            "end": { "dateTime": "2026-03-04T17:30:00.0000000", "timeZone": "UTC" }
                        },
                        {
                            "isPrivate": true, "status": "tentative",
                            "start": { "dateTime": "2026-03-04T18:15:30.5000000", "timeZone": "UTC" },
                            "end": { "dateTime": "2026-03-04T19:00:00", "timeZone": "UTC" }
                        }
                    ],
                    "workingHours": { "daysOfWeek": ["monday"], "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000" }
                }]
            })))
            .expect(1)
            .mount(&server)
            .await;
        let range = slot("2026-03-04T00:00:00Z", "2026-03-05T00:00:00Z");
        let busy = outlook(&server)
            .await
            .busy(TOKEN, &calendar(None), range)
            .await
            .unwrap();
        assert_eq!(
            busy,
            vec![
                slot("2026-03-04T15:00:00Z", "2026-03-04T16:00:00Z"),
                slot("2026-03-04T18:15:30.5Z", "2026-03-04T19:00:00Z"),
            ]
        );
    }

    #[tokio::test]
    async fn a_schedule_graph_could_not_read_is_an_error() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "value": [{
                    "scheduleId": "ann@contoso.example",
                    "availabilityView": "",
                    "scheduleItems": [],
                    "error": { "message": "The mailbox was not found.", "responseCode": "ErrorMailNotFound" }
                }]
            })))
            .mount(&server)
            .await;
        let range = Slot::new(at("2026-03-04T00:00:00Z"), 60);
        let error = outlook(&server)
            .await
            .busy(TOKEN, &calendar(None), range)
            .await
            .unwrap_err();
        assert_eq!(error, ProviderError::NotFound);
    }

    #[tokio::test]
    async fn an_event_is_created_with_a_transaction_id_and_a_teams_meeting() {
        let server = MockServer::start().await;
        authorized("POST", "/v1.0/me/events", TOKEN)
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "id": "AAMkAGI2TGuLAAA=",
                "subject": "Demo with Acme",
                "transactionId": BOOKING_ID,
                "isOnlineMeeting": true,
                "onlineMeetingProvider": "teamsForBusiness",
                "onlineMeeting": { "joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc" }
            })))
            .expect(1)
            .mount(&server)
            .await;
        let created = outlook(&server)
            .await
            .create_event(TOKEN, &booking(calendar(None), true))
            .await
            .unwrap();
        assert_eq!(
            created,
            CreatedEvent {
                provider_event_id: "AAMkAGI2TGuLAAA=".into(),
                meeting_link: Some("https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc".into()),
            }
        );
        assert_eq!(
            sent_bodies(&server).await[0],
            json!({
                "subject": "Demo with Acme",
                "body": { "contentType": "text", "content": "Booked by VoxReach" },
                "start": { "dateTime": "2026-03-04T15:00:00", "timeZone": "UTC" },
                "end": { "dateTime": "2026-03-04T15:30:00", "timeZone": "UTC" },
                "attendees": [{
                    "emailAddress": { "address": "john@acme.example", "name": "John Doe" },
                    "type": "required"
                }],
                "transactionId": BOOKING_ID,
                "isOnlineMeeting": true,
                "onlineMeetingProvider": "teamsForBusiness"
            })
        );
    }

    #[tokio::test]
    async fn an_event_goes_to_the_chosen_calendar_without_a_meeting_when_none_is_asked() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1.0/me/calendars/AAMkAD%2FcalId=/events"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "id": "AAMkAGI2TGuMAAA=",
                "isOnlineMeeting": false,
                "onlineMeeting": null
            })))
            .expect(1)
            .mount(&server)
            .await;
        let created = outlook(&server)
            .await
            .create_event(TOKEN, &booking(calendar(Some("AAMkAD/calId=")), false))
            .await
            .unwrap();
        assert_eq!(created.meeting_link, None);
        assert_first_body_lacks(&server, &["isOnlineMeeting", "onlineMeetingProvider"]).await;
    }

    #[tokio::test]
    async fn failures_map_to_provider_errors_without_graphs_words() {
        let server = &MockServer::start().await;
        let cases = common_failures(|status| graph_error(status, "generalException", "Secret detail."));
        let events_in = |calendar_id: &str| Mock::given(path(format!("/v1.0/me/calendars/{calendar_id}/events")));
        let outlook = &outlook(server).await;
        let book_in = |calendar_id| async move {
            outlook
                .create_event(TOKEN, &booking(calendar(Some(calendar_id)), true))
                .await
        };
        assert_failures_map(server, cases, events_in, book_in, &["Secret"]).await;
    }

    #[tokio::test]
    async fn revoking_is_not_offered_and_sends_nothing() {
        let server = MockServer::start().await;
        let granted = tokens("a", Some("r"), None);
        assert_eq!(outlook(&server).await.revoke(&granted).await, Ok(false));
        assert!(server.received_requests().await.unwrap().is_empty());
    }
}
