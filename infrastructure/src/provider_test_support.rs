//! What the provider clients' tests share: parsed values, the requests a
//! `wiremock` fake received, tokens, a booking to put in a calendar, and the
//! check that failed answers become our errors without the provider's words.

use application::calendar::{CalendarRef, NewCalendarEvent};
use application::crm::{CallLog, CallUpdatingContact, ContactUpdate, DealMove, NewDeal, NewNote};
use application::oauth::Tokens;
use application::providers::ProviderError;
use chrono::{DateTime, Utc};
use domain::auth::Email;
use domain::calendar::{Attendee, Slot};
use domain::phone::PhoneNumber;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

pub fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

pub fn phone(text: &str) -> PhoneNumber {
    PhoneNumber::parse(text).unwrap()
}

/// A `verb` request to `route` carrying `token` as its bearer token.
pub fn authorized(verb: &str, route: impl Into<String>, token: &str) -> MockBuilder {
    Mock::given(method(verb))
        .and(path(route))
        .and(header("authorization", format!("Bearer {token}").as_str()))
}

/// The JSON bodies of the requests the fake received, in order (`Null` for
/// one without a JSON body).
pub async fn sent_bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| serde_json::from_slice(&request.body).unwrap_or(Value::Null))
        .collect()
}

/// A note on `contact_id`.
pub fn note<'a>(contact_id: &'a str, body: &'a str, at: DateTime<Utc>) -> NewNote<'a> {
    NewNote { contact_id, body, at }
}

/// A deal for `contact_id` in `stage`, filing `logged_call` under it.
pub fn new_deal<'a>(contact_id: &'a str, name: &'a str, stage: &'a str, logged_call: Option<&'a str>) -> NewDeal<'a> {
    NewDeal {
        contact_id,
        name,
        stage,
        logged_call,
    }
}

/// `deal_id` moved to `stage`, filing `logged_call` under it.
pub fn deal_move<'a>(deal_id: &'a str, stage: &'a str, logged_call: Option<&'a str>) -> DealMove<'a> {
    DealMove {
        deal_id,
        stage,
        logged_call,
    }
}

/// `properties` of `contact_id` changed.
pub fn contact_update<'a>(contact_id: &'a str, properties: &'a BTreeMap<String, String>) -> ContactUpdate<'a> {
    ContactUpdate { contact_id, properties }
}

/// `call` logged with `properties` of its contact changed.
pub fn call_updating_contact<'a>(
    call: &'a CallLog,
    properties: &'a BTreeMap<String, String>,
) -> CallUpdatingContact<'a> {
    CallUpdatingContact { call, properties }
}

/// A grant's tokens, without an expiry.
pub fn tokens(access_token: &str, refresh_token: Option<&str>, api_base: Option<String>) -> Tokens {
    Tokens {
        access_token: access_token.into(),
        api_base,
        refresh_token: refresh_token.map(str::to_owned),
        expires_at: None,
    }
}

/// A calendar of `account`'s, in `zone`: the account's default one without `calendar_id`.
pub fn calendar(account: &str, zone: &str, calendar_id: Option<&str>) -> CalendarRef {
    CalendarRef {
        account: account.into(),
        calendar_id: calendar_id.map(str::to_owned),
        zone: zone.parse().unwrap(),
    }
}

/// The booking id every calendar test books under.
pub const BOOKING_ID: &str = "0f8b6c2e-3a4d-4e5f-9a1b-2c3d4e5f6a7b";

/// The slot from `start` to `end` (RFC 3339).
pub fn slot(start: &str, end: &str) -> Slot {
    Slot {
        start: at(start),
        end: at(end),
    }
}

/// Half an hour with John Doe of Acme at 15:00 UTC on 4 March 2026, in `calendar`.
pub fn booking(calendar: CalendarRef, add_video_link: bool) -> NewCalendarEvent {
    NewCalendarEvent {
        calendar,
        booking_id: Uuid::parse_str(BOOKING_ID).unwrap(),
        title: "Demo with Acme".into(),
        description: "Booked by VoxReach".into(),
        slot: Slot::new(at("2026-03-04T15:00:00Z"), 30),
        attendee: Attendee {
            name: "John Doe".into(),
            email: Some(Email::parse("john@acme.example").unwrap()),
            phone: None,
        },
        add_video_link,
    }
}

/// Checks that the first request the fake received left out each of `fields` of its JSON body.
pub async fn assert_first_body_lacks(server: &MockServer, fields: &[&str]) {
    let sent = &sent_bodies(server).await[0];
    for field in fields {
        assert!(sent.get(field).is_none(), "{field} was sent: {sent}");
    }
}

/// A failure case: its name, the provider's answer, and the error it must become.
pub type FailureCase = (&'static str, ResponseTemplate, ProviderError);

/// The failed answers every provider maps alike, as `answer(status)` gives
/// them (with "Secret" in the provider's words, which must not be shown):
/// 401, 429 with a `Retry-After`, 403 (no rate limit), 404 and 500.
pub fn common_failures(answer: impl Fn(u16) -> ResponseTemplate) -> Vec<FailureCase> {
    vec![
        ("unauthorized", answer(401), ProviderError::Unauthorized),
        (
            "throttled",
            answer(429).insert_header("Retry-After", "12"),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(12)),
            },
        ),
        ("forbidden", answer(403), ProviderError::Rejected { status: 403 }),
        ("missing", answer(404), ProviderError::NotFound),
        (
            "down",
            answer(500),
            ProviderError::Unavailable("500 Internal Server Error".into()),
        ),
    ]
}

/// Mounts each case's answer on the mock `mock_for` gives for its name, then
/// makes `request` for each name: it must fail with the case's error, whose
/// text holds none of the provider's words that are `hidden`.
pub async fn assert_failures_map<T, R>(
    server: &MockServer,
    cases: Vec<FailureCase>,
    mock_for: impl Fn(&str) -> MockBuilder,
    request: impl Fn(&'static str) -> R,
    hidden: &[&str],
) where
    T: std::fmt::Debug,
    R: Future<Output = Result<T, ProviderError>>,
{
    for (name, answer, _) in &cases {
        mock_for(name).respond_with(answer.clone()).mount(server).await;
    }
    for (name, _, expected) in cases {
        let error = request(name).await.unwrap_err();
        assert_eq!(error, expected, "{name}");
        let shown = error.to_string();
        assert!(hidden.iter().all(|word| !shown.contains(word)), "{shown}");
    }
}
