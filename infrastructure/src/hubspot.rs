//! HubSpot's CRM API v3 (`Authorization: Bearer <access token>`): contacts
//! found by phone or created, calls and notes logged on them, deals opened
//! and moved, the portal's contact properties and deal stages; the token's
//! portal (`/oauth/v1/access-tokens`) and revoking the grant.
//!
//! Requests are paced before they are sent ([`HubSpotLimits`]), one budget
//! per access token: the port hands us only the token, and learning its
//! portal would cost a look-up at an endpoint HubSpot retires in 2027. A
//! portal has one live token at a time (the vault refreshes it under a lock),
//! so per token is per portal but for the token's first seconds after a
//! refresh. The budgets live in this process; a 429 that still comes back is
//! answered as [`ProviderError::RateLimited`] with HubSpot's wait.

use crate::http::{error_body, logged, refused, retry_after, with_segments};
use crate::markup::plain_text;
use crate::oauth::{AppCredentials, OAuthSettings};
use crate::sign_in::app_sign_in;
use application::clock::{Clock, SystemClock};
use application::crm::webhooks::{ContactChange, ContactChangeKind};
use application::crm::{
    CallLog, CallResult, ContactUpdate, CrmAccess, CrmAccount, CrmApi, CrmContact, DealMove, MeetingLog, NewContact,
    NewDeal, NewNote,
};
use application::oauth::Tokens;
use application::providers::ProviderError;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::phone::PhoneNumber;
use governor::{DefaultKeyedRateLimiter, Quota};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

pub const DEFAULT_API_BASE: &str = "https://api.hubapi.com";
pub const DEFAULT_AUTH_URL: &str = "https://app.hubspot.com/oauth/authorize";
pub const DEFAULT_TOKEN_URL: &str = "https://api.hubapi.com/oauth/v1/token";

/// Contacts to find, create and update, with their calls and notes (HubSpot
/// authorizes both engagements by the contacts scopes); deals to find,
/// create and move (and their pipelines); the contact property list.
pub const SCOPES: &[&str] = &[
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.schemas.contacts.read",
    "oauth",
];

/// HubSpot-defined association types used here (`associationCategory: HUBSPOT_DEFINED`).
const CALL_TO_CONTACT: u32 = 194;
const NOTE_TO_CONTACT: u32 = 202;
const DEAL_TO_CONTACT: u32 = 3;
const MEETING_TO_CONTACT: u32 = 200;

/// HubSpot's default call outcomes (`hs_call_disposition`), the same in every portal.
const DISPOSITION_CONNECTED: &str = "f240bbac-87c9-4f6e-bf70-924b57d47db7";
const DISPOSITION_BUSY: &str = "9d9162e7-6cf3-4944-bf63-4dff82258764";
const DISPOSITION_NO_ANSWER: &str = "73a0d17f-1163-4015-bdd5-ec830791da20";
const DISPOSITION_LEFT_VOICEMAIL: &str = "b2cf5968-551e-4856-9783-52b3da59a7d0";

/// The pipeline every portal has, and its closed stages.
const DEFAULT_PIPELINE: &str = "default";
const CLOSED_STAGES: &[&str] = &["closedwon", "closedlost"];

/// How many open deals are looked at to skip ones closed in a custom pipeline.
const OPEN_DEAL_CANDIDATES: u32 = 10;

/// HubSpot's rich-text properties (`hs_note_body`, `hs_call_body`) hold at most this many characters.
const RICH_TEXT_CHARS: usize = 65_536;

/// The wait for a 429 that names none.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

/// Every this many requests, budgets of tokens no longer used are dropped.
const HOUSEKEEPING_EVERY: u64 = 1024;

/// The contact properties read into a [`CrmContact`].
const CONTACT_PROPERTIES: &[&str] = &[
    "firstname",
    "lastname",
    "email",
    "company",
    "hubspot_owner_id",
    "phone",
    "mobilephone",
];

/// The sign-in settings for HubSpot at its real endpoints (client credentials
/// in the token request's body, as HubSpot requires).
pub fn oauth_settings(app: AppCredentials) -> OAuthSettings {
    app_sign_in(app, (DEFAULT_AUTH_URL, DEFAULT_TOKEN_URL), SCOPES)
}

/// How fast one access token may call HubSpot. Requests over budget wait
/// their turn; they do not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubSpotLimits {
    /// Requests per rolling ten seconds: 100 on Free and Starter, up to
    /// [`Self::MAX_PER_TEN_SECONDS`] (values are kept within 1..=190).
    pub per_ten_seconds: u32,
    /// Search requests per second, on top of the above (1..=[`Self::MAX_SEARCHES_PER_SECOND`]).
    pub searches_per_second: u32,
}

impl HubSpotLimits {
    /// The most requests per rolling ten seconds any HubSpot plan allows one app in a portal.
    pub const MAX_PER_TEN_SECONDS: u32 = 190;
    /// HubSpot's search endpoints allow a few requests per second per token.
    pub const MAX_SEARCHES_PER_SECOND: u32 = 5;
}

impl Default for HubSpotLimits {
    fn default() -> Self {
        Self {
            per_ten_seconds: 100,
            searches_per_second: 4,
        }
    }
}

/// A GCRA quota that lets at most `limit` requests into any `window`: a
/// burst of a tenth of the limit, the rest spread evenly over the window.
/// (A burst of the whole limit would let nearly twice the limit into one
/// rolling window: the burst, then the window's worth of replenishment.)
fn pacing(limit: u32, max: u32, window: Duration) -> Quota {
    let limit = limit.clamp(1, max);
    let burst = (limit / 10).max(1);
    let spread = (limit - burst).max(1);
    let period = (window / spread).max(Duration::from_micros(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

/// Budgets by the SHA-256 of the access token (the token itself is not kept).
type Budgets = DefaultKeyedRateLimiter<[u8; 32]>;

fn budget_key(access_token: &str) -> [u8; 32] {
    Sha256::digest(access_token.as_bytes()).into()
}

/// [`CrmApi`] for HubSpot.
#[derive(Clone)]
pub struct HubSpotClient {
    http: reqwest::Client,
    api_base: Url,
    requests: Arc<Budgets>,
    searches: Arc<Budgets>,
    sent: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
}

/// Whether a request is a search (searches have a budget of their own as well).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Search,
}

impl HubSpotClient {
    pub fn new(api_base: &str, limits: HubSpotLimits) -> Result<Self, url::ParseError> {
        Self::with_windows(api_base, limits, Duration::from_secs(10), Duration::from_secs(1))
    }

    /// A client whose budgets are counted over these windows (tests count over shorter ones).
    fn with_windows(
        api_base: &str,
        limits: HubSpotLimits,
        requests_window: Duration,
        searches_window: Duration,
    ) -> Result<Self, url::ParseError> {
        Ok(Self {
            http: crate::http::client(Duration::from_secs(20)),
            api_base: Url::parse(api_base)?,
            requests: Arc::new(Budgets::keyed(pacing(
                limits.per_ten_seconds,
                HubSpotLimits::MAX_PER_TEN_SECONDS,
                requests_window,
            ))),
            searches: Arc::new(Budgets::keyed(pacing(
                limits.searches_per_second,
                HubSpotLimits::MAX_SEARCHES_PER_SECOND,
                searches_window,
            ))),
            sent: Arc::new(AtomicU64::new(0)),
            clock: Arc::new(SystemClock),
        })
    }

    /// Reads time (daily limits, dates sent to the CRM) from `clock`, the service's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// `{api_base}/{segments…}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        with_segments(self.api_base.clone(), "HubSpot API base URL", segments.iter().copied())
    }

    /// A CRM request with the token as bearer.
    fn crm(
        &self,
        method: Method,
        segments: &[&str],
        access_token: &str,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        Ok(self.http.request(method, self.url(segments)?).bearer_auth(access_token))
    }

    /// Waits until the token's budgets allow one more request (of `kind`).
    async fn pace(&self, access_token: &str, kind: Kind) {
        if self.sent.fetch_add(1, Ordering::Relaxed) % HOUSEKEEPING_EVERY == HOUSEKEEPING_EVERY - 1 {
            self.requests.retain_recent();
            self.searches.retain_recent();
        }
        let key = budget_key(access_token);
        if kind == Kind::Search {
            self.searches.until_key_ready(&key).await;
        }
        self.requests.until_key_ready(&key).await;
    }

    /// Sends a request within the token's budget; any answer is returned.
    async fn send(
        &self,
        access_token: &str,
        kind: Kind,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        self.pace(access_token, kind).await;
        crate::http::send(request).await
    }

    /// Sends a request within the token's budget; a failed answer is our error.
    async fn exchange(
        &self,
        access_token: &str,
        kind: Kind,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        self.succeeded(self.send(access_token, kind, request).await?).await
    }

    /// Creates a CRM object (`POST /crm/v3/objects/{object}`) and returns its id.
    async fn create(&self, access_token: &str, object: &str, body: &Value) -> Result<String, ProviderError> {
        let request = self
            .crm(Method::POST, &["crm", "v3", "objects", object], access_token)?
            .json(body);
        let created: Created = read(self.exchange(access_token, Kind::Plain, request).await?).await?;
        Ok(created.id)
    }

    /// Changes a CRM object's properties (`PATCH /crm/v3/objects/{object}/{id}`).
    async fn update(
        &self,
        access_token: &str,
        object: &str,
        id: &str,
        properties: Map<String, Value>,
    ) -> Result<(), ProviderError> {
        let request = self
            .crm(Method::PATCH, &["crm", "v3", "objects", object, id], access_token)?
            .json(&json!({ "properties": properties }));
        self.exchange(access_token, Kind::Plain, request).await?;
        Ok(())
    }

    /// The first page of a search (`POST /crm/v3/objects/{object}/search`).
    async fn search(&self, access_token: &str, object: &str, query: &Value) -> Result<Vec<Record>, ProviderError> {
        let request = self
            .crm(Method::POST, &["crm", "v3", "objects", object, "search"], access_token)?
            .json(query);
        let page: SearchPage = read(self.exchange(access_token, Kind::Search, request).await?).await?;
        Ok(page.results)
    }
}

/// The most of a note an agent's briefing carries.
const BRIEFING_NOTE_CHARS: usize = 500;

fn eq(property: &str, value: &str) -> Value {
    json!({ "propertyName": property, "operator": "EQ", "value": value })
}

fn association(to: &str, type_id: u32) -> Value {
    json!([{
        "to": { "id": to },
        "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id }],
    }])
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Plain text as HubSpot's rich text (its notes and call bodies are HTML):
/// markup escaped, line breaks kept, within [`RICH_TEXT_CHARS`].
fn rich_text(text: &str) -> String {
    let mut html = String::with_capacity(text.len());
    let mut chars = 0;
    for c in text.chars() {
        let piece = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '\n' => "<br>",
            '\r' => "",
            _ => {
                if chars + 1 > RICH_TEXT_CHARS {
                    break;
                }
                html.push(c);
                chars += 1;
                continue;
            }
        };
        if chars + piece.len() > RICH_TEXT_CHARS {
            break;
        }
        html.push_str(piece);
        chars += piece.len();
    }
    html
}

/// `Contact already exists. Existing ID: 12345` → `12345`.
fn existing_id(message: &str) -> Option<String> {
    let (_, after) = message.split_once("Existing ID:")?;
    let id: String = after.trim_start().chars().take_while(char::is_ascii_digit).collect();
    (!id.is_empty()).then_some(id)
}

/// How long until HubSpot's daily budget may be back. It resets at midnight
/// in the portal's time zone, which the API does not tell us; local midnight
/// falls on a whole UTC hour in nearly every zone, so the next whole hour is
/// the earliest the budget can be back and at most an hour after it is.
fn daily_reset_wait(now: DateTime<Utc>) -> Duration {
    let into_hour = Duration::from_millis(now.timestamp_millis().rem_euclid(3_600_000) as u64);
    let wait = Duration::from_secs(3600) - into_hour;
    if wait < Duration::from_secs(60) {
        wait + Duration::from_secs(3600)
    } else {
        wait
    }
}

#[derive(Debug, Deserialize)]
struct Created {
    id: String,
}

#[derive(Debug, Deserialize)]
struct SearchPage {
    #[serde(default)]
    results: Vec<Record>,
}

#[derive(Debug, Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    properties: Map<String, Value>,
}

impl Record {
    /// A property's value, when it has a non-empty one.
    fn text(&self, name: &str) -> Option<String> {
        match self.properties.get(name)? {
            Value::String(text) => Some(text.trim()).filter(|t| !t.is_empty()).map(str::to_owned),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    fn into_contact(self) -> CrmContact {
        let name = [self.text("firstname"), self.text("lastname")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        CrmContact {
            name: Some(name).filter(|n| !n.is_empty()),
            email: self.text("email"),
            company: self.text("company"),
            owner: self.text("hubspot_owner_id"),
            id: self.id,
        }
    }
}

#[derive(Debug, Deserialize)]
struct TokenInfo {
    hub_id: Value,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Listing<T> {
    #[serde(default = "Vec::new")]
    results: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct Property {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Pipeline {
    id: String,
    #[serde(default)]
    stages: Vec<Stage>,
}

#[derive(Debug, Deserialize)]
struct Stage {
    id: String,
}

impl HubSpotClient {
    /// The answer when it is a success, else its failure as our error.
    async fn succeeded(&self, response: reqwest::Response) -> Result<reqwest::Response, ProviderError> {
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(Refusal::read(response).await.into_error(self.clock.now()))
        }
    }
}

/// An answer's JSON; an unreadable one is this provider being unavailable.
async fn read<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, ProviderError> {
    crate::http::read_answer(response, "unreadable HubSpot answer").await
}

/// A failed answer: its status, its waits and HubSpot's words
/// (`{"status":"error","message","correlationId","category","policyName"}`).
struct Refusal {
    status: StatusCode,
    retry_after: Option<Duration>,
    /// `X-HubSpot-RateLimit-Interval-Milliseconds`: the window of the limit hit.
    interval: Option<Duration>,
    policy: Option<String>,
    message: String,
}

impl Refusal {
    /// Reads the answer (at most [`crate::http::ERROR_BODY_BYTES`]), logging HubSpot's own
    /// message, which is never passed on to users.
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let interval = response
            .headers()
            .get("x-hubspot-ratelimit-interval-milliseconds")
            .and_then(|value| value.to_str().ok())
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        let (body, parsed) = error_body(response).await;
        let message = match parsed["message"].as_str() {
            Some(message) => message.to_owned(),
            None => String::from_utf8_lossy(&body).into_owned(),
        };
        let policy = parsed["policyName"].as_str().map(str::to_owned);
        tracing::warn!(
            status = status.as_u16(),
            category = parsed["category"].as_str().unwrap_or_default(),
            correlation_id = parsed["correlationId"].as_str().unwrap_or_default(),
            policy = policy.as_deref().unwrap_or_default(),
            message = %logged(&message),
            "HubSpot answered with an error"
        );
        Self {
            status,
            retry_after,
            interval,
            policy,
            message,
        }
    }

    fn into_error(self, now: DateTime<Utc>) -> ProviderError {
        let daily = self.policy.as_deref().is_some_and(|p| p.eq_ignore_ascii_case("DAILY"));
        let limit = (self.status == StatusCode::TOO_MANY_REQUESTS).then(|| {
            if daily {
                ProviderError::DailyLimitReached {
                    resets_in: Some(daily_reset_wait(now)),
                }
            } else {
                // TEN_SECONDLY_ROLLING, SECONDLY (searches), or none named.
                ProviderError::RateLimited {
                    retry_after: Some(self.retry_after.or(self.interval).unwrap_or(DEFAULT_RATE_LIMIT_WAIT)),
                }
            }
        });
        refused(self.status.as_u16(), limit, || {
            format!("HubSpot answered {}", self.status)
        })
    }
}

/// The call's properties as HubSpot's calls object has them.
fn call_properties(call: &CallLog) -> Map<String, Value> {
    let mut properties = Map::new();
    let mut set = |name: &str, value: String| {
        properties.insert(name.to_owned(), Value::String(value));
    };
    set("hs_timestamp", timestamp(call.started_at));
    set("hs_call_title", call.title.clone());
    set("hs_call_body", rich_text(&call.body));
    // Our id, found again by `find_logged_call` (exact match, out of the user's sight).
    set("hs_call_external_id", call.call_id.to_string());
    let (direction, from, to) = if call.is_inbound() {
        ("INBOUND", Some(&call.customer_number), call.our_number.as_ref())
    } else {
        ("OUTBOUND", call.our_number.as_ref(), Some(&call.customer_number))
    };
    set("hs_call_direction", direction.to_owned());
    if let Some(from) = from {
        set("hs_call_from_number", from.clone());
    }
    if let Some(to) = to {
        set("hs_call_to_number", to.clone());
    }
    let (status, disposition) = match call.result {
        CallResult::Connected => ("COMPLETED", Some(DISPOSITION_CONNECTED)),
        CallResult::Voicemail => ("COMPLETED", Some(DISPOSITION_LEFT_VOICEMAIL)),
        CallResult::NoAnswer => ("NO_ANSWER", Some(DISPOSITION_NO_ANSWER)),
        CallResult::Busy => ("BUSY", Some(DISPOSITION_BUSY)),
        // HubSpot has no default outcome for a failed call.
        CallResult::Failed => ("FAILED", None),
    };
    set("hs_call_status", status.to_owned());
    if let Some(disposition) = disposition {
        set("hs_call_disposition", disposition.to_owned());
    }
    if let Some(seconds) = call.duration_seconds.filter(|s| s.is_finite() && *s >= 0.0) {
        set("hs_call_duration", ((seconds * 1000.0).round() as u64).to_string());
    }
    // HubSpot plays recordings from HTTPS URLs only.
    if let Some(recording) = call
        .recording_url
        .as_deref()
        .and_then(|url| Url::parse(url).ok())
        .filter(|url| url.scheme() == "https")
    {
        set("hs_call_recording_url", recording.to_string());
    }
    properties
}

/// A new contact's properties: the settings' field mappings, then what we
/// know of the caller (which wins over a mapping of the same property).
fn new_contact_properties(contact: &NewContact) -> Map<String, Value> {
    let mut properties: Map<String, Value> = contact
        .properties
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    properties.insert("phone".into(), Value::String(contact.phone.as_str().to_owned()));
    if let Some(name) = contact.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        // HubSpot keeps first and last names apart: the first word, then the rest.
        let (first, last) = name.split_once(char::is_whitespace).unwrap_or((name, ""));
        properties.insert("firstname".into(), Value::String(first.to_owned()));
        if !last.trim().is_empty() {
            properties.insert("lastname".into(), Value::String(last.trim().to_owned()));
        }
    }
    for (property, value) in [("email", &contact.email), ("company", &contact.company)] {
        if let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            properties.insert(property.into(), Value::String(value.to_owned()));
        }
    }
    properties
}

#[async_trait]
impl CrmApi for HubSpotClient {
    fn contact_of(&self, contact_id: &str, properties: &BTreeMap<String, String>) -> CrmContact {
        Record {
            id: contact_id.to_owned(),
            properties: properties
                .iter()
                .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                .collect(),
        }
        .into_contact()
    }

    async fn account(&self, access: &CrmAccess) -> Result<CrmAccount, ProviderError> {
        // The token is the path: no bearer.
        let request = self
            .http
            .get(self.url(&["oauth", "v1", "access-tokens", &access.token])?);
        let info: TokenInfo = read(self.exchange(&access.token, Kind::Plain, request).await?).await?;
        let account_id = match info.hub_id {
            Value::Number(id) => id.to_string(),
            Value::String(id) if !id.is_empty() => id,
            _ => return Err(ProviderError::Unavailable("the token's portal is missing".into())),
        };
        Ok(CrmAccount {
            account_id,
            scopes: info.scopes,
        })
    }

    async fn find_contact(&self, access: &CrmAccess, phone: &PhoneNumber) -> Result<Option<CrmContact>, ProviderError> {
        // Filter groups are ORed: the number as entered (E.164) in either
        // phone property, or the national number HubSpot calculates from
        // whatever format the number was entered in.
        let mut groups = vec![
            json!({ "filters": [eq("phone", phone.as_str())] }),
            json!({ "filters": [eq("mobilephone", phone.as_str())] }),
        ];
        let national = phone.national_number();
        if !national.is_empty() {
            groups.push(json!({ "filters": [eq("hs_searchable_calculated_phone_number", &national)] }));
            groups.push(json!({ "filters": [eq("hs_searchable_calculated_mobile_number", &national)] }));
        }
        let query = json!({
            "filterGroups": groups,
            "properties": CONTACT_PROPERTIES,
            // The oldest of duplicates is the one people have been working with.
            "sorts": [{ "propertyName": "createdate", "direction": "ASCENDING" }],
            "limit": 1,
        });
        let results = self.search(&access.token, "contacts", &query).await?;
        Ok(results.into_iter().next().map(Record::into_contact))
    }

    async fn create_contact(&self, access: &CrmAccess, contact: &NewContact) -> Result<String, ProviderError> {
        let body = json!({ "properties": new_contact_properties(contact) });
        let request = self
            .crm(Method::POST, &["crm", "v3", "objects", "contacts"], &access.token)?
            .json(&body);
        let response = self.send(&access.token, Kind::Plain, request).await?;
        if response.status() == StatusCode::CONFLICT {
            // A contact with this email exists: HubSpot names it.
            let refusal = Refusal::read(response).await;
            return match existing_id(&refusal.message) {
                Some(id) => Ok(id),
                None => Err(refusal.into_error(self.clock.now())),
            };
        }
        let created: Created = read(self.succeeded(response).await?).await?;
        Ok(created.id)
    }

    async fn log_call(&self, access: &CrmAccess, call: &CallLog) -> Result<String, ProviderError> {
        let body = json!({
            "properties": call_properties(call),
            "associations": association(&call.contact_id, CALL_TO_CONTACT),
        });
        self.create(&access.token, "calls", &body).await
    }

    /// Searches for the call carrying our id in `hs_call_external_id`. HubSpot's
    /// search may lag a write by a few seconds: a call logged just now may not
    /// be found yet.
    async fn find_logged_call(&self, access: &CrmAccess, call: &CallLog) -> Result<Option<String>, ProviderError> {
        let query = json!({
            "filterGroups": [{ "filters": [eq("hs_call_external_id", &call.call_id.to_string())] }],
            "properties": ["hs_call_external_id"],
            "limit": 1,
        });
        let results = self.search(&access.token, "calls", &query).await?;
        Ok(results.into_iter().next().map(|call| call.id))
    }

    async fn add_note(&self, access: &CrmAccess, note: &NewNote<'_>) -> Result<String, ProviderError> {
        let NewNote { contact_id, body, at } = *note;
        let note = json!({
            "properties": { "hs_timestamp": timestamp(at), "hs_note_body": rich_text(body) },
            "associations": association(contact_id, NOTE_TO_CONTACT),
        });
        self.create(&access.token, "notes", &note).await
    }

    async fn log_meeting(&self, access: &CrmAccess, meeting: &MeetingLog) -> Result<String, ProviderError> {
        let body = json!({
            "properties": {
                "hs_timestamp": timestamp(meeting.start),
                "hs_meeting_title": meeting.title,
                "hs_meeting_body": rich_text(&meeting.body),
                "hs_meeting_start_time": timestamp(meeting.start),
                "hs_meeting_end_time": timestamp(meeting.end),
                "hs_meeting_outcome": "SCHEDULED",
            },
            "associations": association(&meeting.contact_id, MEETING_TO_CONTACT),
        });
        self.create(&access.token, "meetings", &body).await
    }

    /// The most recently changed deal of the contact not in a closed stage:
    /// the default pipeline's closed stages are filtered out by the search,
    /// closed stages of other pipelines by HubSpot's `hs_is_closed`.
    async fn last_note(&self, access: &CrmAccess, contact_id: &str) -> Result<Option<String>, ProviderError> {
        let query = json!({
            "filterGroups": [{ "filters": [eq("associations.contact", contact_id)] }],
            "properties": ["hs_note_body", "hs_timestamp"],
            "sorts": [{ "propertyName": "hs_timestamp", "direction": "DESCENDING" }],
            "limit": 1,
        });
        let notes = self.search(&access.token, "notes", &query).await?;
        Ok(notes
            .first()
            .and_then(|note| note.text("hs_note_body"))
            .map(|body| plain_text(&body, BRIEFING_NOTE_CHARS))
            .filter(|text| !text.is_empty()))
    }

    async fn open_deal(&self, access: &CrmAccess, contact_id: &str) -> Result<Option<String>, ProviderError> {
        let query = json!({
            "filterGroups": [{ "filters": [
                eq("associations.contact", contact_id),
                { "propertyName": "dealstage", "operator": "NOT_IN", "values": CLOSED_STAGES },
            ] }],
            "properties": ["dealname", "dealstage", "pipeline", "hs_is_closed"],
            "sorts": [{ "propertyName": "hs_lastmodifieddate", "direction": "DESCENDING" }],
            "limit": OPEN_DEAL_CANDIDATES,
        });
        let results = self.search(&access.token, "deals", &query).await?;
        Ok(results
            .into_iter()
            .find(|deal| {
                deal.text("hs_is_closed").as_deref() != Some("true")
                    && !deal
                        .text("dealstage")
                        .is_some_and(|stage| CLOSED_STAGES.contains(&stage.as_str()))
            })
            .map(|deal| deal.id))
    }

    async fn create_deal(&self, access: &CrmAccess, deal: &NewDeal<'_>) -> Result<String, ProviderError> {
        let body = json!({
            "properties": { "dealname": deal.name, "pipeline": DEFAULT_PIPELINE, "dealstage": deal.stage },
            "associations": association(deal.contact_id, DEAL_TO_CONTACT),
        });
        self.create(&access.token, "deals", &body).await
    }

    async fn move_deal(&self, access: &CrmAccess, change: &DealMove<'_>) -> Result<(), ProviderError> {
        let mut properties = Map::new();
        properties.insert("dealstage".into(), Value::String(change.stage.to_owned()));
        self.update(&access.token, "deals", change.deal_id, properties).await
    }

    async fn update_contact(&self, access: &CrmAccess, update: &ContactUpdate<'_>) -> Result<(), ProviderError> {
        let ContactUpdate { contact_id, properties } = *update;
        if properties.is_empty() {
            return Ok(());
        }
        let properties = properties
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        self.update(&access.token, "contacts", contact_id, properties).await
    }

    async fn contact_properties(&self, access: &CrmAccess) -> Result<Vec<String>, ProviderError> {
        let request = self.crm(Method::GET, &["crm", "v3", "properties", "contacts"], &access.token)?;
        let listing: Listing<Property> = read(self.exchange(&access.token, Kind::Plain, request).await?).await?;
        Ok(listing.results.into_iter().map(|property| property.name).collect())
    }

    /// Every stage of every deal pipeline (stage ids are unique across pipelines).
    async fn deal_stages(&self, access: &CrmAccess) -> Result<Vec<String>, ProviderError> {
        let request = self.crm(Method::GET, &["crm", "v3", "pipelines", "deals"], &access.token)?;
        let listing: Listing<Pipeline> = read(self.exchange(&access.token, Kind::Plain, request).await?).await?;
        // Deals are created in the default pipeline: only its stages can be mapped.
        Ok(listing
            .results
            .into_iter()
            .filter(|pipeline| pipeline.id == DEFAULT_PIPELINE)
            .flat_map(|pipeline| pipeline.stages)
            .map(|stage| stage.id)
            .collect())
    }

    /// Deletes the refresh token (HubSpot's revocation): the grant ends with
    /// it. Without a refresh token there is nothing HubSpot can revoke.
    async fn revoke(&self, tokens: &Tokens) -> Result<bool, ProviderError> {
        let Some(refresh_token) = tokens.refresh_token.as_deref() else {
            return Ok(false);
        };
        let request = self
            .http
            .delete(self.url(&["oauth", "v1", "refresh-tokens", refresh_token])?);
        let response = crate::http::send(request).await?;
        self.succeeded(response).await?;
        Ok(true)
    }
}

// ---------------------------------------------------------------------------
// Webhooks: HubSpot's notifications of contact changes (signature v3).

/// How far `X-HubSpot-Request-Timestamp` may be from our clock.
pub const WEBHOOK_TOLERANCE: chrono::Duration = chrono::Duration::minutes(5);

/// The characters HubSpot decodes in the request URI before signing it (its
/// request-validation guide, v3): every other escape stays as sent.
const SIGNED_URI_DECODES: &[(&str, char)] = &[
    ("%3A", ':'),
    ("%2F", '/'),
    ("%3F", '?'),
    ("%40", '@'),
    ("%21", '!'),
    ("%24", '$'),
    ("%27", '\''),
    ("%28", '('),
    ("%29", ')'),
    ("%2A", '*'),
    ("%2C", ','),
    ("%3B", ';'),
];

fn signed_uri(uri: &str) -> String {
    let mut decoded = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(at) = rest.find('%') {
        decoded.push_str(&rest[..at]);
        rest = &rest[at..];
        let escape = rest.get(..3).unwrap_or(rest);
        match SIGNED_URI_DECODES
            .iter()
            .find(|(code, _)| code.eq_ignore_ascii_case(escape))
        {
            Some((_, plain)) => {
                decoded.push(*plain);
                rest = &rest[3..];
            }
            None => {
                decoded.push('%');
                rest = &rest[1..];
            }
        }
    }
    decoded.push_str(rest);
    decoded
}

/// Whether a request carries HubSpot's v3 signature with the app's client
/// secret: `X-HubSpot-Signature-v3` = base64(HMAC-SHA256(secret, method +
/// uri + body + timestamp)), `uri` being the full URL HubSpot called (scheme,
/// host, path, query), and `X-HubSpot-Request-Timestamp` (ms) within
/// [`WEBHOOK_TOLERANCE`] of `now`. Compared in constant time.
pub fn is_authentic_v3(
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    client_secret: &str,
    now: DateTime<Utc>,
) -> bool {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let (Some(timestamp), Some(signature)) = (timestamp_header.map(str::trim), signature_header) else {
        return false;
    };
    let Some(sent_at) = timestamp
        .parse::<i64>()
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
    else {
        return false;
    };
    if (now - sent_at).abs() > WEBHOOK_TOLERANCE || client_secret.is_empty() {
        return false;
    }
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(method.as_bytes());
    mac.update(signed_uri(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// The contact changes in a HubSpot webhook delivery (a JSON array of
/// notifications): `contact.propertyChange`, and `contact.deletion`,
/// `contact.privacyDeletion` and the losers of a `contact.merge` as
/// deletions. Notifications of other subscription types are left out.
pub fn parse_webhook(body: &[u8]) -> Result<Vec<ContactChange>, String> {
    let notifications: Vec<Value> =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON array of notifications: {e}"))?;
    let mut changes = Vec::new();
    for notification in notifications {
        let kind = notification["subscriptionType"].as_str().unwrap_or_default().to_owned();
        if !matches!(
            kind.as_str(),
            "contact.propertyChange" | "contact.deletion" | "contact.privacyDeletion" | "contact.merge"
        ) {
            continue;
        }
        let n: ContactNotification =
            serde_json::from_value(notification).map_err(|e| format!("a {kind} notification is malformed: {e}"))?;
        let occurred_at = DateTime::<Utc>::from_timestamp_millis(n.occurred_at)
            .ok_or_else(|| format!("occurredAt {} is out of range", n.occurred_at))?;
        let change = |contact_id: i64, change: ContactChangeKind| ContactChange {
            portal_id: n.portal_id.to_string(),
            contact_id: contact_id.to_string(),
            change,
            occurred_at,
            event_id: n.event_id,
        };
        let object_id = || {
            n.object_id
                .ok_or_else(|| format!("a {kind} notification has no objectId"))
        };
        match kind.as_str() {
            "contact.propertyChange" => {
                let name = n
                    .property_name
                    .clone()
                    .ok_or("a contact.propertyChange notification has no propertyName")?;
                let value = match &n.property_value {
                    Value::Null => String::new(),
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                changes.push(change(object_id()?, ContactChangeKind::Property { name, value }));
            }
            "contact.merge" => {
                // The merged contacts are gone; the merge's result lives on (under a new id, if HubSpot gave one).
                let survivor = n.new_object_id.or(n.primary_object_id).or(n.object_id);
                let losers = n.merged_object_ids.iter().copied().chain(n.primary_object_id);
                for id in losers.filter(|id| Some(*id) != survivor) {
                    changes.push(change(id, ContactChangeKind::Deleted));
                }
            }
            _ => changes.push(change(object_id()?, ContactChangeKind::Deleted)),
        }
    }
    Ok(changes)
}

/// The fields of HubSpot's contact notifications we read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContactNotification {
    event_id: i64,
    portal_id: i64,
    occurred_at: i64,
    object_id: Option<i64>,
    property_name: Option<String>,
    #[serde(default)]
    property_value: Value,
    primary_object_id: Option<i64>,
    #[serde(default)]
    merged_object_ids: Vec<i64>,
    new_object_id: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_test_support::{
        assert_failures_map, at, contact_update, deal_move, new_deal, note, phone, sent_bodies, tokens,
    };
    use application::crm::CallDirection;
    use domain::crm::NewContactKind;
    use std::time::Instant;
    use uuid::Uuid;
    use wiremock::matchers::{body_partial_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const TOKEN: &str = "CJSP5qf1KhICAQEYs-gDIIGOBii1hQ";

    fn access() -> CrmAccess {
        CrmAccess::bearer(TOKEN)
    }
    const BEARER: &str = "Bearer CJSP5qf1KhICAQEYs-gDIIGOBii1hQ";
    const CALL_ID: &str = "0f8b6c2e-3a4d-4e5f-9a1b-2c3d4e5f6a7b";

    /// A client against the fake whose budgets never hold a test up.
    fn hubspot(server: &MockServer) -> HubSpotClient {
        HubSpotClient::with_windows(
            &server.uri(),
            HubSpotLimits::default(),
            Duration::from_millis(10),
            Duration::from_millis(10),
        )
        .unwrap()
    }

    /// An error as HubSpot's CRM API answers it.
    fn hubspot_error(status: u16, category: &str, message: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(json!({
            "status": "error",
            "message": message,
            "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
            "category": category
        }))
    }

    /// A 429 as HubSpot answers it.
    fn rate_limited(policy: &str) -> ResponseTemplate {
        ResponseTemplate::new(429).set_body_json(json!({
            "status": "error",
            "message": "You have reached your secret limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": "c033cdaa-2c40-4a64-ae48-b4cec88dad24",
            "policyName": policy,
            "requestId": "3d3e35b7-0dae-4b9f-a6e3-9c230cbcf8dd"
        }))
    }

    fn call(direction: CallDirection, result: CallResult) -> CallLog {
        CallLog {
            call_id: CALL_ID.parse().unwrap(),
            contact_id: "512".into(),
            direction,
            started_at: at("2026-03-04T15:00:00Z"),
            duration_seconds: Some(93.4567),
            our_number: Some("+14155550100".into()),
            customer_number: "+14155550123".into(),
            title: "Call with John Doe".into(),
            body: "Booked a demo for Tuesday.".into(),
            transcript: None,
            recording_url: Some("https://storage.vapi.ai/recordings/abc.wav".into()),
            result,
        }
    }

    /// HubSpot creating one record of `object` (once), answering with its `id` and `properties`.
    async fn creates(server: &MockServer, object: &str, id: &str, properties: Value) {
        Mock::given(method("POST"))
            .and(path(format!("/crm/v3/objects/{object}")))
            .and(header("authorization", BEARER))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "id": id,
                "properties": properties,
                "createdAt": "2026-03-04T15:01:00.000Z",
                "updatedAt": "2026-03-04T15:01:00.000Z",
                "archived": false
            })))
            .expect(1)
            .mount(server)
            .await;
    }

    /// A search of `object` that finds nothing.
    fn finds_nothing(object: &str) -> Mock {
        Mock::given(method("POST"))
            .and(path(format!("/crm/v3/objects/{object}/search")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "total": 0, "results": [] })))
    }

    /// A call on contact 512 the CRM has no record of.
    fn unknown_call() -> CallLog {
        CallLog {
            call_id: Uuid::nil(),
            ..call(CallDirection::Outbound, CallResult::Connected)
        }
    }

    #[tokio::test]
    async fn a_contact_is_found_by_its_number_in_e164_and_national_forms() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/crm/v3/objects/contacts/search"))
            .and(header("authorization", BEARER))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "total": 1,
                "results": [{
                    "id": "512",
                    "properties": {
                        "company": "Acme",
                        "createdate": "2025-01-10T09:00:00.000Z",
                        "email": "john@acme.example",
                        "firstname": "John",
                        "hs_object_id": "512",
                        "hubspot_owner_id": "7712",
                        "lastmodifieddate": "2026-02-01T10:00:00.000Z",
                        "lastname": "Doe",
                        "mobilephone": null,
                        "phone": "(415) 555-0123"
                    },
                    "createdAt": "2025-01-10T09:00:00.000Z",
                    "updatedAt": "2026-02-01T10:00:00.000Z",
                    "archived": false
                }]
            })))
            .expect(1)
            .mount(&server)
            .await;
        let contact = hubspot(&server)
            .find_contact(&access(), &phone("+14155550123"))
            .await
            .unwrap();
        assert_eq!(
            contact,
            Some(CrmContact {
                id: "512".into(),
                name: Some("John Doe".into()),
                email: Some("john@acme.example".into()),
                company: Some("Acme".into()),
                owner: Some("7712".into()),
            })
        );
        assert_eq!(
            sent_bodies(&server).await[0],
            json!({
                "filterGroups": [
                    { "filters": [{ "propertyName": "phone", "operator": "EQ", "value": "+14155550123" }] },
                    { "filters": [{ "propertyName": "mobilephone", "operator": "EQ", "value": "+14155550123" }] },
                    { "filters": [{
                        "propertyName": "hs_searchable_calculated_phone_number", "operator": "EQ", "value": "4155550123"
                    }] },
                    { "filters": [{
                        "propertyName": "hs_searchable_calculated_mobile_number", "operator": "EQ", "value": "4155550123"
                    }] }
                ],
                "properties": ["firstname", "lastname", "email", "company", "hubspot_owner_id", "phone", "mobilephone"],
                "sorts": [{ "propertyName": "createdate", "direction": "ASCENDING" }],
                "limit": 1
            })
        );
    }

    #[tokio::test]
    async fn an_unknown_number_finds_no_contact() {
        let server = MockServer::start().await;
        finds_nothing("contacts").expect(1).mount(&server).await;
        let found = hubspot(&server)
            .find_contact(&access(), &phone("+442079460958"))
            .await
            .unwrap();
        assert_eq!(found, None);
        let sent = sent_bodies(&server).await;
        assert_eq!(
            sent[0]["filterGroups"][2]["filters"][0]["value"], "2079460958",
            "a UK number is searched without +44"
        );
    }

    #[test]
    fn national_numbers_drop_the_country_code() {
        for (e164, national) in [
            ("+14155550123", "4155550123"),
            ("+442079460958", "2079460958"),
            ("+79161234567", "9161234567"),
            ("+353861234567", "861234567"),
            ("+819012345678", "9012345678"),
            ("+4915112345678", "15112345678"),
        ] {
            assert_eq!(phone(e164).national_number(), national, "{e164}");
        }
    }

    #[tokio::test]
    async fn a_contact_is_created_with_its_name_split_and_the_mapped_properties() {
        let server = MockServer::start().await;
        creates(
            &server,
            "contacts",
            "601",
            json!({ "hs_object_id": "601", "phone": "+14155550123" }),
        )
        .await;
        let contact = NewContact {
            phone: phone("+14155550123"),
            name: Some("Mary Ann Smith".into()),
            email: Some("mary@acme.example".into()),
            company: None,
            properties: BTreeMap::from([
                ("lead_source_detail".to_owned(), "VoxReach".to_owned()),
                ("phone".to_owned(), "overridden".to_owned()),
            ]),
            kind: NewContactKind::Lead,
        };
        assert_eq!(
            hubspot(&server).create_contact(&access(), &contact).await,
            Ok("601".into())
        );
        assert_eq!(
            sent_bodies(&server).await[0],
            json!({ "properties": {
                "phone": "+14155550123",
                "firstname": "Mary",
                "lastname": "Ann Smith",
                "email": "mary@acme.example",
                "lead_source_detail": "VoxReach"
            } })
        );
    }

    #[tokio::test]
    async fn a_contact_that_exists_already_answers_with_its_id() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/crm/v3/objects/contacts"))
            .and(body_partial_json(
                json!({ "properties": { "email": "dup@acme.example" } }),
            ))
            .respond_with(hubspot_error(
                409,
                "CONFLICT",
                "Contact already exists. Existing ID: 777",
            ))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/crm/v3/objects/contacts"))
            .and(body_partial_json(
                json!({ "properties": { "email": "odd@acme.example" } }),
            ))
            .respond_with(hubspot_error(409, "CONFLICT", "Something else conflicts."))
            .mount(&server)
            .await;
        let hubspot = hubspot(&server);
        let mut contact = NewContact {
            phone: phone("+14155550123"),
            name: None,
            email: Some("dup@acme.example".into()),
            company: Some("Acme".into()),
            properties: BTreeMap::new(),
            kind: NewContactKind::Lead,
        };
        assert_eq!(hubspot.create_contact(&access(), &contact).await, Ok("777".into()));
        contact.email = Some("odd@acme.example".into());
        assert_eq!(
            hubspot.create_contact(&access(), &contact).await,
            Err(ProviderError::Rejected { status: 409 })
        );
    }

    #[tokio::test]
    async fn a_call_is_logged_with_its_outcome_duration_recording_and_contact() {
        let server = MockServer::start().await;
        creates(
            &server,
            "calls",
            "9001",
            json!({ "hs_object_id": "9001", "hs_timestamp": "2026-03-04T15:00:00Z" }),
        )
        .await;
        let logged = hubspot(&server)
            .log_call(&access(), &call(CallDirection::Outbound, CallResult::Connected))
            .await;
        assert_eq!(logged, Ok("9001".into()));
        assert_eq!(
            sent_bodies(&server).await[0],
            json!({
                "properties": {
                    "hs_timestamp": "2026-03-04T15:00:00.000Z",
                    "hs_call_title": "Call with John Doe",
                    "hs_call_body": "Booked a demo for Tuesday.",
                    "hs_call_external_id": CALL_ID,
                    "hs_call_direction": "OUTBOUND",
                    "hs_call_from_number": "+14155550100",
                    "hs_call_to_number": "+14155550123",
                    "hs_call_status": "COMPLETED",
                    "hs_call_disposition": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
                    "hs_call_duration": "93457",
                    "hs_call_recording_url": "https://storage.vapi.ai/recordings/abc.wav"
                },
                "associations": [{
                    "to": { "id": "512" },
                    "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194 }]
                }]
            })
        );
    }

    #[tokio::test]
    async fn each_outcome_has_its_status_and_disposition_and_only_https_recordings_go() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/crm/v3/objects/calls"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": "9002" })))
            .expect(4)
            .mount(&server)
            .await;
        let hubspot = hubspot(&server);
        let mut inbound = call(CallDirection::Inbound, CallResult::NoAnswer);
        inbound.our_number = None;
        inbound.duration_seconds = None;
        inbound.recording_url = Some("http://storage.example/abc.wav".into());
        hubspot.log_call(&access(), &inbound).await.unwrap();
        hubspot
            .log_call(&access(), &call(CallDirection::Outbound, CallResult::Busy))
            .await
            .unwrap();
        hubspot
            .log_call(&access(), &call(CallDirection::Outbound, CallResult::Voicemail))
            .await
            .unwrap();
        hubspot
            .log_call(&access(), &call(CallDirection::Outbound, CallResult::Failed))
            .await
            .unwrap();
        let sent: Vec<Value> = sent_bodies(&server)
            .await
            .into_iter()
            .map(|body| body["properties"].clone())
            .collect();
        assert_eq!(sent[0]["hs_call_direction"], "INBOUND");
        assert_eq!(sent[0]["hs_call_from_number"], "+14155550123");
        assert_eq!(sent[0].get("hs_call_to_number"), None);
        assert_eq!(sent[0]["hs_call_status"], "NO_ANSWER");
        assert_eq!(sent[0]["hs_call_disposition"], "73a0d17f-1163-4015-bdd5-ec830791da20");
        assert_eq!(sent[0].get("hs_call_duration"), None);
        assert_eq!(sent[0].get("hs_call_recording_url"), None, "http is not sent");
        assert_eq!(sent[1]["hs_call_status"], "BUSY");
        assert_eq!(sent[1]["hs_call_disposition"], "9d9162e7-6cf3-4944-bf63-4dff82258764");
        assert_eq!(sent[2]["hs_call_status"], "COMPLETED");
        assert_eq!(sent[2]["hs_call_disposition"], "b2cf5968-551e-4856-9783-52b3da59a7d0");
        assert_eq!(sent[3]["hs_call_status"], "FAILED");
        assert_eq!(sent[3].get("hs_call_disposition"), None);
    }

    #[tokio::test]
    async fn a_logged_call_is_found_by_our_call_id() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/crm/v3/objects/calls/search"))
            .and(header("authorization", BEARER))
            .and(body_partial_json(
                json!({ "filterGroups": [{ "filters": [{ "value": CALL_ID }] }] }),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "total": 1,
                "results": [{
                    "id": "9001",
                    "properties": { "hs_call_external_id": CALL_ID, "hs_object_id": "9001" },
                    "createdAt": "2026-03-04T15:02:00.000Z",
                    "updatedAt": "2026-03-04T15:02:00.000Z",
                    "archived": false
                }]
            })))
            .expect(1)
            .mount(&server)
            .await;
        finds_nothing("calls").mount(&server).await;
        let hubspot = hubspot(&server);
        assert_eq!(
            hubspot
                .find_logged_call(&access(), &call(CallDirection::Outbound, CallResult::Connected))
                .await,
            Ok(Some("9001".into()))
        );
        assert_eq!(
            sent_bodies(&server).await[0],
            json!({
                "filterGroups": [{ "filters": [{
                    "propertyName": "hs_call_external_id", "operator": "EQ", "value": CALL_ID
                }] }],
                "properties": ["hs_call_external_id"],
                "limit": 1
            })
        );
        assert_eq!(hubspot.find_logged_call(&access(), &unknown_call()).await, Ok(None));
    }

    #[tokio::test]
    async fn the_latest_note_is_read_as_plain_text() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/crm/v3/objects/notes/search"))
            .and(body_partial_json(json!({
                "filterGroups": [{ "filters": [{ "propertyName": "associations.contact", "operator": "EQ", "value": "501" }] }],
                "sorts": [{ "propertyName": "hs_timestamp", "direction": "DESCENDING" }],
                "limit": 1
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "total": 1, "results": [{
                "id": "7001",
                "properties": { "hs_note_body": "<div><p>Asked about <b>pricing</b> &amp; SSO.</p><p>Call back in May.</p></div>" }
            }] })))
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            hubspot(&server).last_note(&access(), "501").await,
            Ok(Some("Asked about pricing & SSO. Call back in May.".into()))
        );
        assert_eq!(
            plain_text(&"x".repeat(900), BRIEFING_NOTE_CHARS).len(),
            BRIEFING_NOTE_CHARS
        );
    }

    #[tokio::test]
    async fn a_note_is_attached_to_the_contact_as_escaped_rich_text() {
        let server = MockServer::start().await;
        creates(&server, "notes", "4401", json!({ "hs_object_id": "4401" })).await;
        let id = hubspot(&server)
            .add_note(
                &access(),
                &note(
                    "512",
                    "Agent: Hello <b>John</b>\r\nCaller: Q&A please",
                    at("2026-03-04T15:03:00Z"),
                ),
            )
            .await;
        assert_eq!(id, Ok("4401".into()));
        assert_eq!(
            sent_bodies(&server).await[0],
            json!({
                "properties": {
                    "hs_timestamp": "2026-03-04T15:03:00.000Z",
                    "hs_note_body": "Agent: Hello &lt;b&gt;John&lt;/b&gt;<br>Caller: Q&amp;A please"
                },
                "associations": [{
                    "to": { "id": "512" },
                    "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202 }]
                }]
            })
        );
    }

    #[test]
    fn rich_text_stays_within_hubspots_limit() {
        let long = rich_text(&"<".repeat(RICH_TEXT_CHARS));
        assert!(long.chars().count() <= RICH_TEXT_CHARS);
        assert!(long.ends_with("&lt;"), "an entity is never cut in half");
        assert_eq!(rich_text(&"a".repeat(RICH_TEXT_CHARS + 5)).len(), RICH_TEXT_CHARS);
    }

    #[tokio::test]
    async fn the_open_deal_is_the_contacts_deal_in_no_closed_stage() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/crm/v3/objects/deals/search"))
            .and(header("authorization", BEARER))
            .and(body_partial_json(json!({ "filterGroups": [{ "filters": [{ "value": "512" }] }] })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "total": 2,
                "results": [
                    {
                        "id": "3002",
                        "properties": {
                            "dealname": "Renewal", "dealstage": "1234567", "pipeline": "75e28846", "hs_is_closed": "true"
                        },
                        "archived": false
                    },
                    {
                        "id": "3001",
                        "properties": {
                            "dealname": "Acme demo", "dealstage": "qualifiedtobuy", "pipeline": "default",
                            "hs_is_closed": "false"
                        },
                        "archived": false
                    }
                ]
            })))
            .expect(1)
            .mount(&server)
            .await;
        finds_nothing("deals").mount(&server).await;
        let hubspot = hubspot(&server);
        assert_eq!(hubspot.open_deal(&access(), "512").await, Ok(Some("3001".into())));
        assert_eq!(
            sent_bodies(&server).await[0],
            json!({
                "filterGroups": [{ "filters": [
                    { "propertyName": "associations.contact", "operator": "EQ", "value": "512" },
                    { "propertyName": "dealstage", "operator": "NOT_IN", "values": ["closedwon", "closedlost"] }
                ] }],
                "properties": ["dealname", "dealstage", "pipeline", "hs_is_closed"],
                "sorts": [{ "propertyName": "hs_lastmodifieddate", "direction": "DESCENDING" }],
                "limit": 10
            })
        );
        assert_eq!(hubspot.open_deal(&access(), "513").await, Ok(None));
    }

    #[tokio::test]
    async fn a_deal_is_created_in_the_default_pipeline_with_the_contact_and_moved() {
        let server = MockServer::start().await;
        creates(
            &server,
            "deals",
            "3001",
            json!({ "dealname": "Acme demo", "dealstage": "appointmentscheduled", "pipeline": "default" }),
        )
        .await;
        Mock::given(method("PATCH"))
            .and(path("/crm/v3/objects/deals/3001"))
            .and(header("authorization", BEARER))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "3001", "properties": { "dealstage": "contractsent" }
            })))
            .expect(1)
            .mount(&server)
            .await;
        let hubspot = hubspot(&server);
        assert_eq!(
            hubspot
                .create_deal(&access(), &new_deal("512", "Acme demo", "appointmentscheduled", None))
                .await,
            Ok("3001".into())
        );
        assert_eq!(
            hubspot
                .move_deal(&access(), &deal_move("3001", "contractsent", None))
                .await,
            Ok(())
        );
        let sent = sent_bodies(&server).await;
        assert_eq!(
            sent[0],
            json!({
                "properties": { "dealname": "Acme demo", "pipeline": "default", "dealstage": "appointmentscheduled" },
                "associations": [{
                    "to": { "id": "512" },
                    "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3 }]
                }]
            })
        );
        assert_eq!(sent[1], json!({ "properties": { "dealstage": "contractsent" } }));
    }

    #[tokio::test]
    async fn a_contact_is_updated_and_an_empty_update_is_not_sent() {
        let server = MockServer::start().await;
        Mock::given(method("PATCH"))
            .and(path("/crm/v3/objects/contacts/512"))
            .and(header("authorization", BEARER))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "512", "properties": {} })))
            .expect(1)
            .mount(&server)
            .await;
        let hubspot = hubspot(&server);
        let properties = BTreeMap::from([
            ("hs_lead_status".to_owned(), "CONNECTED".to_owned()),
            ("voxreach_last_call".to_owned(), "Booked a demo".to_owned()),
        ]);
        assert_eq!(
            hubspot
                .update_contact(&access(), &contact_update("512", &properties))
                .await,
            Ok(())
        );
        assert_eq!(
            hubspot
                .update_contact(&access(), &contact_update("512", &BTreeMap::new()))
                .await,
            Ok(())
        );
        assert_eq!(
            sent_bodies(&server).await,
            vec![json!({ "properties": { "hs_lead_status": "CONNECTED", "voxreach_last_call": "Booked a demo" } })]
        );
    }

    #[tokio::test]
    async fn contact_properties_and_the_default_pipelines_deal_stages_are_listed() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/crm/v3/properties/contacts"))
            .and(header("authorization", BEARER))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "results": [
                {
                    "name": "firstname", "label": "First Name", "type": "string", "fieldType": "text",
                    "groupName": "contactinformation", "options": [], "hidden": false
                },
                {
                    "name": "voxreach_score", "label": "VoxReach score", "type": "number", "fieldType": "number",
                    "groupName": "contactinformation", "options": [], "hidden": false
                }
            ] })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/crm/v3/pipelines/deals"))
            .and(header("authorization", BEARER))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "results": [
                {
                    "id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": false,
                    "stages": [
                        {
                            "id": "appointmentscheduled", "label": "Appointment Scheduled", "displayOrder": 0,
                            "metadata": { "isClosed": "false", "probability": "0.2" }, "archived": false
                        },
                        {
                            "id": "closedwon", "label": "Closed Won", "displayOrder": 5,
                            "metadata": { "isClosed": "true", "probability": "1.0" }, "archived": false
                        }
                    ]
                },
                {
                    "id": "75e28846-ad0d-4be2-a027-5e1da6590b98", "label": "Renewals", "displayOrder": 1,
                    "stages": [{ "id": "1234567", "label": "Up for renewal", "displayOrder": 0, "metadata": {} }]
                }
            ] })))
            .expect(1)
            .mount(&server)
            .await;
        let hubspot = hubspot(&server);
        assert_eq!(
            hubspot.contact_properties(&access()).await,
            Ok(vec!["firstname".into(), "voxreach_score".into()])
        );
        // Only the default pipeline's: deals are created there.
        assert_eq!(
            hubspot.deal_stages(&access()).await,
            Ok(vec!["appointmentscheduled".into(), "closedwon".into()])
        );
    }

    #[tokio::test]
    async fn the_account_is_the_tokens_portal_and_scopes() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/oauth/v1/access-tokens/{TOKEN}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "token": TOKEN,
                "user": "owner@acme.example",
                "hub_domain": "acme.hubspot.com",
                "scopes": ["oauth", "crm.objects.contacts.read", "crm.objects.contacts.write"],
                "hub_id": 62515,
                "app_id": 456,
                "expires_in": 1754,
                "user_id": 123,
                "token_type": "access"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let account = hubspot(&server).account(&access()).await.unwrap();
        assert_eq!(
            account,
            CrmAccount {
                account_id: "62515".into(),
                scopes: vec![
                    "oauth".into(),
                    "crm.objects.contacts.read".into(),
                    "crm.objects.contacts.write".into()
                ],
            }
        );
        let requests = server.received_requests().await.unwrap();
        assert!(requests[0].headers.get("authorization").is_none());
    }

    #[tokio::test]
    async fn revoking_deletes_the_refresh_token() {
        let server = MockServer::start().await;
        Mock::given(method("DELETE"))
            .and(path("/oauth/v1/refresh-tokens/na1-ab12-cd34-ef56"))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let hubspot = hubspot(&server);
        assert_eq!(
            hubspot.revoke(&tokens(TOKEN, Some("na1-ab12-cd34-ef56"), None)).await,
            Ok(true)
        );
        let access_only = tokens(TOKEN, None, None);
        assert_eq!(hubspot.revoke(&access_only).await, Ok(false));
    }

    #[tokio::test]
    async fn failures_map_to_provider_errors_without_hubspots_words() {
        let server = MockServer::start().await;
        let cases = [
            (
                "unauthorized",
                hubspot_error(
                    401,
                    "INVALID_AUTHENTICATION",
                    "Authentication credentials not found. secret detail",
                ),
                ProviderError::Unauthorized,
            ),
            (
                "missing",
                hubspot_error(404, "OBJECT_NOT_FOUND", "Object not found. secret detail"),
                ProviderError::NotFound,
            ),
            (
                "invalid",
                hubspot_error(400, "VALIDATION_ERROR", "Property values were not valid: secret detail"),
                ProviderError::Rejected { status: 400 },
            ),
            (
                "scopes",
                hubspot_error(
                    403,
                    "MISSING_SCOPES",
                    "This app hasn't been granted all required scopes",
                ),
                ProviderError::Rejected { status: 403 },
            ),
            (
                "ten-secondly",
                rate_limited("TEN_SECONDLY_ROLLING").insert_header("retry-after", "3"),
                ProviderError::RateLimited {
                    retry_after: Some(Duration::from_secs(3)),
                },
            ),
            (
                "ten-secondly-window",
                rate_limited("TEN_SECONDLY_ROLLING")
                    .insert_header("x-hubspot-ratelimit-interval-milliseconds", "10000")
                    .insert_header("x-hubspot-ratelimit-max", "100")
                    .insert_header("x-hubspot-ratelimit-remaining", "0"),
                ProviderError::RateLimited {
                    retry_after: Some(Duration::from_secs(10)),
                },
            ),
            (
                "secondly",
                rate_limited("SECONDLY"),
                ProviderError::RateLimited {
                    retry_after: Some(Duration::from_secs(1)),
                },
            ),
            (
                "down",
                ResponseTemplate::new(500).set_body_string("Internal error: stack trace here"),
                ProviderError::Unavailable("HubSpot answered 500 Internal Server Error".into()),
            ),
        ];
        let hubspot = &hubspot(&server);
        let access = &access();
        let properties = &BTreeMap::from([("firstname".to_owned(), "John".to_owned())]);
        assert_failures_map(
            &server,
            cases.into(),
            |contact| Mock::given(path(format!("/crm/v3/objects/contacts/{contact}"))),
            |contact| async move {
                hubspot
                    .update_contact(access, &contact_update(contact, properties))
                    .await
            },
            &["secret", "stack"],
        )
        .await;
    }

    #[tokio::test]
    async fn the_daily_limit_stops_until_it_may_have_reset() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/crm/v3/objects/notes"))
            .respond_with(rate_limited("DAILY"))
            .mount(&server)
            .await;
        let error = hubspot(&server)
            .add_note(&access(), &note("512", "Transcript", at("2026-03-04T15:03:00Z")))
            .await
            .unwrap_err();
        let ProviderError::DailyLimitReached { resets_in: Some(wait) } = error.clone() else {
            panic!("expected the daily limit, got {error:?}");
        };
        assert!(
            wait >= Duration::from_secs(60) && wait <= Duration::from_secs(3660),
            "{wait:?}"
        );
        assert!(!error.is_transient(), "a spent day is not retried like a blip");
    }

    #[test]
    fn the_daily_wait_runs_to_the_next_whole_hour() {
        assert_eq!(
            daily_reset_wait(at("2026-03-04T10:15:00Z")),
            Duration::from_secs(45 * 60)
        );
        assert_eq!(daily_reset_wait(at("2026-03-04T23:00:00Z")), Duration::from_secs(3600));
        assert_eq!(
            daily_reset_wait(at("2026-03-04T10:59:30.500Z")),
            Duration::from_millis(3_629_500),
            "less than a minute away is too close to tell: the hour after"
        );
    }

    #[test]
    fn no_window_admits_more_than_the_limit() {
        let window = Duration::from_secs(10);
        for limit in [2, 4, 5, 100, 150, 190] {
            let quota = pacing(limit, HubSpotLimits::MAX_PER_TEN_SECONDS, window);
            let admitted = quota.burst_size().get() as u128 + window.as_nanos() / quota.replenish_interval().as_nanos();
            assert!(admitted <= limit as u128, "{limit}: {admitted}");
            assert!(admitted + 1 >= limit as u128, "{limit}: only {admitted}");
        }
        let capped = pacing(1000, HubSpotLimits::MAX_PER_TEN_SECONDS, window);
        assert_eq!(
            capped.burst_size().get(),
            19,
            "limits above HubSpot's largest are capped"
        );
    }

    #[tokio::test]
    async fn requests_over_the_budget_wait_their_turn() {
        let server = MockServer::start().await;
        Mock::given(method("PATCH"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "1" })))
            .expect(3)
            .mount(&server)
            .await;
        let window = Duration::from_millis(300);
        let limits = HubSpotLimits {
            per_ten_seconds: 2,
            searches_per_second: 4,
        };
        let hubspot = HubSpotClient::with_windows(&server.uri(), limits, window, Duration::from_millis(10)).unwrap();
        let started = Instant::now();
        for deal in ["1", "2", "3"] {
            hubspot
                .move_deal(&access(), &deal_move(deal, "contractsent", None))
                .await
                .unwrap();
        }
        assert!(
            started.elapsed() >= window,
            "three requests at two per {window:?} took {:?}",
            started.elapsed()
        );
        let paths: Vec<String> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|request| request.url.path().to_owned())
            .collect();
        assert_eq!(
            paths,
            [
                "/crm/v3/objects/deals/1",
                "/crm/v3/objects/deals/2",
                "/crm/v3/objects/deals/3"
            ]
        );
    }

    #[tokio::test]
    async fn each_token_has_a_budget_of_its_own() {
        let server = MockServer::start().await;
        Mock::given(method("PATCH"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "1" })))
            .mount(&server)
            .await;
        let limits = HubSpotLimits {
            per_ten_seconds: 2,
            searches_per_second: 4,
        };
        let hubspot =
            HubSpotClient::with_windows(&server.uri(), limits, Duration::from_secs(60), Duration::from_secs(1))
                .unwrap();
        hubspot
            .move_deal(&CrmAccess::bearer("token-a"), &deal_move("1", "contractsent", None))
            .await
            .unwrap();
        assert!(
            hubspot.requests.check_key(&budget_key("token-a")).is_err(),
            "token A's budget is spent"
        );
        assert!(
            hubspot.requests.check_key(&budget_key("token-b")).is_ok(),
            "token B's is whole"
        );
    }

    #[tokio::test]
    async fn searches_have_a_budget_of_their_own() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "total": 0, "results": [] })))
            .expect(2)
            .mount(&server)
            .await;
        let window = Duration::from_millis(300);
        let limits = HubSpotLimits {
            per_ten_seconds: 190,
            searches_per_second: 1,
        };
        let hubspot = HubSpotClient::with_windows(&server.uri(), limits, Duration::from_millis(10), window).unwrap();
        let started = Instant::now();
        hubspot.find_logged_call(&access(), &unknown_call()).await.unwrap();
        hubspot.find_logged_call(&access(), &unknown_call()).await.unwrap();
        assert!(started.elapsed() >= window, "two searches took {:?}", started.elapsed());
        assert!(hubspot.searches.check_key(&budget_key(TOKEN)).is_err());
    }

    const WEBHOOK_SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const WEBHOOK_BODY: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":123,"propertyName":"firstname","propertyValue":"Ann","changeSource":"CRM"}]"#;
    /// base64(HMAC-SHA256) of the request below, computed independently.
    const WEBHOOK_SIGNATURE: &str = "WPEecMEcijG5vk7J6Wz5F9mG3TKp1V8EwLWXHfwI714=";

    fn webhook_now() -> DateTime<Utc> {
        "2026-03-02T13:00:00Z".parse().unwrap()
    }

    fn authentic(uri: &str, body: &str, timestamp: Option<&str>, signature: Option<&str>, now: DateTime<Utc>) -> bool {
        is_authentic_v3("POST", uri, body.as_bytes(), timestamp, signature, WEBHOOK_SECRET, now)
    }

    #[test]
    fn a_v3_signature_is_checked_with_the_uri_as_hubspot_signs_it_and_a_fresh_timestamp() {
        let uri = "https://app.voxreach.test/api/webhooks/hubspot?a=b:c";
        let (ts, sig) = (Some("1772456400000"), Some(WEBHOOK_SIGNATURE));
        assert!(authentic(uri, WEBHOOK_BODY, ts, sig, webhook_now()));
        // HubSpot decodes `%3A` (and its other listed escapes) before signing.
        assert!(authentic(
            "https://app.voxreach.test/api/webhooks/hubspot?a=b%3ac",
            WEBHOOK_BODY,
            ts,
            sig,
            webhook_now()
        ));
        assert_eq!(signed_uri("/x?q=%2F%20%41%"), "/x?q=/%20%41%");
        assert!(!authentic(
            uri,
            &WEBHOOK_BODY.replace("Ann", "Bob"),
            ts,
            sig,
            webhook_now()
        ));
        assert!(!authentic(uri, WEBHOOK_BODY, Some("1772456400001"), sig, webhook_now()));
        assert!(!authentic(uri, WEBHOOK_BODY, None, sig, webhook_now()));
        assert!(!authentic(uri, WEBHOOK_BODY, ts, None, webhook_now()));
        assert!(!authentic(uri, WEBHOOK_BODY, ts, Some("not base64!"), webhook_now()));
        // Five minutes either way, not more.
        let minutes = |m| webhook_now() + chrono::Duration::minutes(m);
        assert!(authentic(uri, WEBHOOK_BODY, ts, sig, minutes(5)));
        assert!(!authentic(
            uri,
            WEBHOOK_BODY,
            ts,
            sig,
            minutes(5) + chrono::Duration::milliseconds(1)
        ));
        assert!(!authentic(uri, WEBHOOK_BODY, ts, sig, minutes(-6)));
        assert!(!is_authentic_v3(
            "POST",
            uri,
            WEBHOOK_BODY.as_bytes(),
            ts,
            sig,
            "",
            webhook_now()
        ));
    }

    #[test]
    fn a_delivery_yields_its_contact_changes_and_skips_other_subscriptions() {
        let body = json!([
            {"eventId": 1, "subscriptionId": 9, "portalId": 62515, "occurredAt": 1772456400000_i64,
             "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": 501,
             "propertyName": "company", "propertyValue": "Acme", "changeSource": "CRM"},
            {"eventId": 2, "portalId": 62515, "occurredAt": 1772456400001_i64, "subscriptionType": "contact.deletion",
             "objectId": 502},
            {"eventId": 3, "portalId": 62515, "occurredAt": 1772456400002_i64, "subscriptionType": "deal.creation",
             "objectId": 77},
            {"eventId": 4, "portalId": 62515, "occurredAt": 1772456400003_i64, "subscriptionType": "contact.merge",
             "objectId": 600, "primaryObjectId": 600, "mergedObjectIds": [601], "newObjectId": 600},
            {"eventId": 5, "portalId": 62515, "occurredAt": 1772456400004_i64,
             "subscriptionType": "contact.privacyDeletion", "objectId": 503}
        ]);
        let changes = parse_webhook(body.to_string().as_bytes()).unwrap();
        let summary: Vec<(&str, &ContactChangeKind, i64)> = changes
            .iter()
            .map(|c| (c.contact_id.as_str(), &c.change, c.event_id))
            .collect();
        let company = ContactChangeKind::Property {
            name: "company".into(),
            value: "Acme".into(),
        };
        assert_eq!(
            summary,
            [
                ("501", &company, 1),
                ("502", &ContactChangeKind::Deleted, 2),
                ("601", &ContactChangeKind::Deleted, 4),
                ("503", &ContactChangeKind::Deleted, 5),
            ]
        );
        assert_eq!(changes[0].portal_id, "62515");
        assert_eq!(changes[0].occurred_at, webhook_now());
        assert!(parse_webhook(b"{}").is_err());
        assert!(parse_webhook(br#"[{"subscriptionType": "contact.deletion", "portalId": 1}]"#).is_err());
        assert_eq!(parse_webhook(b"[]"), Ok(vec![]));
    }
}
