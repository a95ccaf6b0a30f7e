//! Pipedrive's API (`Authorization: Bearer <access token>`) at the address
//! each grant names (`api_domain`): persons found by phone or created, calls
//! and meetings logged as activities, notes, deals created and moved between
//! stages (or won and lost), the person fields and deal stages settings can
//! name; the token's company (`/users/me`) and revoking the grant.
//!
//! Persons, organizations, deals, stages and activities are served by API
//! v2 (the v1 activity endpoints are out of support since August 2026);
//! notes, person fields and the current user exist in v1 only.
//!
//! Pipedrive counts requests per access token, so pacing is per token, in
//! this process: the search endpoints' budget, the same on every plan, is
//! kept before sending; the general burst budget depends on the company's
//! plan, so it is read from each answer (`x-ratelimit-remaining`,
//! `x-ratelimit-reset`) and a spent window holds the token's next request
//! until it resets. A 429 that still comes back is
//! [`ProviderError::RateLimited`], or [`ProviderError::DailyLimitReached`]
//! when the company's daily budget is gone.

use crate::http::{error_body, logged, refused, retry_after, with_segments, ApiHosts};
use crate::markup::{escape, plain_text, text_as_html};
use crate::oauth::{AppCredentials, ClientAuthentication, OAuthSettings};
use crate::sign_in::app_sign_in;
use application::clock::{Clock, SystemClock};
use application::crm::{
    CallLog, CallResult, ContactUpdate, CrmAccess, CrmAccount, CrmApi, CrmContact, DealMove, MeetingLog, NewContact,
    NewDeal, NewNote,
};
use application::oauth::Tokens;
use application::providers::ProviderError;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use domain::phone::PhoneNumber;
use governor::{DefaultKeyedRateLimiter, Quota};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

pub const DEFAULT_AUTH_URL: &str = "https://oauth.pipedrive.com/oauth/authorize";
pub const DEFAULT_TOKEN_URL: &str = "https://oauth.pipedrive.com/oauth/token";
pub const DEFAULT_REVOKE_URL: &str = "https://oauth.pipedrive.com/oauth/revoke";
/// Every company's API is served under this domain (`https://{company}.pipedrive.com`).
pub const DEFAULT_API_HOSTS: &str = "pipedrive.com";

/// Search requests Pipedrive allows one token per [`SEARCH_WINDOW`], on every plan.
const SEARCHES_PER_WINDOW: u32 = 10;
const SEARCH_WINDOW: Duration = Duration::from_secs(2);

/// Pipedrive's burst window: the wait for a spent one that names no reset.
const DEFAULT_BURST_WAIT: Duration = Duration::from_secs(2);
/// The longest a spent burst window holds a token's requests here, whatever
/// an answer says (the window is two seconds long).
const MAX_BURST_HOLD: Duration = Duration::from_secs(10);

/// The company's daily budget left: `x-daily-ratelimit-token-remaining` as
/// token-based rate limiting answers it (seen in the wild, not in the docs),
/// and the documented `x-daily-requests-left`.
const DAILY_BUDGET_HEADERS: &[&str] = &["x-daily-ratelimit-token-remaining", "x-daily-requests-left"];

/// Every this many requests, search budgets of tokens no longer used are dropped.
const HOUSEKEEPING_EVERY: u64 = 1024;

/// The most of a note an agent's briefing carries (as HubSpot's).
const BRIEFING_NOTE_CHARS: usize = 500;

/// Page sizes, and how many pages a listing reads at most.
const FIELDS_PAGE: &str = "500";
const STAGES_PAGE: &str = "500";
const MAX_PAGES: usize = 10;
/// A logged call is looked for among the person's latest activities only.
const ACTIVITIES_PAGE: &str = "100";
const MAX_ACTIVITY_PAGES: usize = 3;

/// Pipedrive's closing deal statuses, which settings name like stages.
const WON: &str = "won";
const LOST: &str = "lost";

/// The person's label (the default lead-status property), written as `label_ids`.
const LABEL: &str = "label";

/// The sign-in settings for Pipedrive: client credentials as HTTP Basic at
/// the token endpoint; no scopes (Pipedrive grants those of the app's settings).
pub fn oauth_settings(app: AppCredentials, auth_url: &str, token_url: &str) -> OAuthSettings {
    OAuthSettings {
        client_authentication: ClientAuthentication::BasicHeader,
        ..app_sign_in(app, (auth_url, token_url), &[])
    }
}

/// What the client needs besides each grant's token and address.
#[derive(Clone)]
pub struct PipedriveApiSettings {
    /// The hosts a grant's `api_domain` may name ([`DEFAULT_API_HOSTS`]).
    pub api_hosts: ApiHosts,
    /// [`DEFAULT_REVOKE_URL`], or a fake's.
    pub revoke_url: String,
    /// The app's credentials, which revoking a grant takes.
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for PipedriveApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipedriveApiSettings")
            .field("api_hosts", &self.api_hosts)
            .field("revoke_url", &self.revoke_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Search budgets by the SHA-256 of the access token (the token itself is not kept).
type SearchBudgets = DefaultKeyedRateLimiter<[u8; 32]>;

fn token_key(access_token: &str) -> [u8; 32] {
    Sha256::digest(access_token.as_bytes()).into()
}

/// Whether a request is a search (searches have a budget of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Search,
}

/// [`CrmApi`] for Pipedrive.
#[derive(Clone)]
pub struct PipedriveClient {
    http: reqwest::Client,
    api_hosts: ApiHosts,
    revoke_url: Url,
    client_id: String,
    client_secret: String,
    searches: Arc<SearchBudgets>,
    /// When each token's spent burst window resets, by [`token_key`]; only spent windows are kept.
    spent_windows: Arc<Mutex<HashMap<[u8; 32], Instant>>>,
    sent: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
}

impl PipedriveClient {
    pub fn new(settings: PipedriveApiSettings) -> Result<Self, url::ParseError> {
        Self::with_search_window(settings, SEARCH_WINDOW)
    }

    /// A client whose search budget is counted over `window` (tests count over a shorter one).
    fn with_search_window(settings: PipedriveApiSettings, window: Duration) -> Result<Self, url::ParseError> {
        // One at a time, spread evenly: never more than the budget in any window.
        let period = (window / (SEARCHES_PER_WINDOW - 1)).max(Duration::from_micros(1));
        let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
        Ok(Self {
            http: crate::http::client(Duration::from_secs(20)),
            api_hosts: settings.api_hosts,
            revoke_url: Url::parse(&settings.revoke_url)?,
            client_id: settings.client_id,
            client_secret: settings.client_secret,
            searches: Arc::new(SearchBudgets::keyed(quota)),
            spent_windows: Arc::new(Mutex::new(HashMap::new())),
            sent: Arc::new(AtomicU64::new(0)),
            clock: Arc::new(SystemClock),
        })
    }

    /// Reads time (daily limits, dates sent to the CRM) from `clock`, the service's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// `{api_domain}/{segments…}` for the grant, when its `api_domain` is one
    /// of ours to call (our bearer token goes there).
    fn url(&self, access: &CrmAccess, segments: &[&str]) -> Result<Url, ProviderError> {
        let granted = access
            .api_base
            .as_deref()
            .ok_or_else(|| ProviderError::Unavailable("the Pipedrive grant names no api_domain".into()))?;
        let mut url = self.api_hosts.admit(granted).ok_or_else(|| {
            tracing::warn!(
                api_domain = granted,
                "Pipedrive granted an API address outside the allowed hosts"
            );
            ProviderError::Unavailable("the Pipedrive api_domain is not an allowed host".into())
        })?;
        url.set_query(None);
        url.set_fragment(None);
        with_segments(url, "Pipedrive api_domain", segments.iter().copied())
    }

    fn request(
        &self,
        access: &CrmAccess,
        method: Method,
        segments: &[&str],
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        Ok(self
            .http
            .request(method, self.url(access, segments)?)
            .bearer_auth(&access.token))
    }

    /// Waits until the token may send (its burst window, and its search budget for a search).
    async fn pace(&self, key: &[u8; 32], kind: Kind) {
        if self.sent.fetch_add(1, Ordering::Relaxed) % HOUSEKEEPING_EVERY == HOUSEKEEPING_EVERY - 1 {
            self.searches.retain_recent();
        }
        let resets_at = self
            .spent_windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied();
        if let Some(resets_at) = resets_at {
            tokio::time::sleep_until(resets_at).await;
        }
        if kind == Kind::Search {
            self.searches.until_key_ready(key).await;
        }
    }

    /// Keeps what an answer says of the token's burst window.
    fn note_window(&self, key: &[u8; 32], status: StatusCode, rate: &RateHeaders) {
        let now = Instant::now();
        let mut spent = self.spent_windows.lock().unwrap_or_else(PoisonError::into_inner);
        spent.retain(|_, resets_at| *resets_at > now);
        if let Some(hold) = rate.hold(status) {
            spent.insert(*key, now + hold);
        }
    }

    /// Sends a request when the token may; any answer is returned.
    async fn send(
        &self,
        access: &CrmAccess,
        kind: Kind,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let key = token_key(&access.token);
        self.pace(&key, kind).await;
        let response = crate::http::send(request).await?;
        self.note_window(&key, response.status(), &RateHeaders::of(response.headers()));
        Ok(response)
    }

    /// Sends a request when the token may; a failed answer is our error.
    async fn exchange(
        &self,
        access: &CrmAccess,
        kind: Kind,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let response = self.send(access, kind, request).await?;
        self.succeeded(response).await
    }

    /// The answer when it is a success, else its failure as our error.
    async fn succeeded(&self, response: reqwest::Response) -> Result<reqwest::Response, ProviderError> {
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(Refusal::read(response).await.into_error(self.clock.now()))
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        access: &CrmAccess,
        kind: Kind,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Answer<T>, ProviderError> {
        let request = self.request(access, Method::GET, segments)?.query(query);
        read(self.exchange(access, kind, request).await?).await
    }

    /// Sends `body`; the id of what it created or changed.
    async fn write(
        &self,
        access: &CrmAccess,
        method: Method,
        segments: &[&str],
        body: &Value,
    ) -> Result<i64, ProviderError> {
        let request = self.request(access, method, segments)?.json(body);
        let answer: Answer<Identified> = read(self.exchange(access, Kind::Plain, request).await?).await?;
        answer.data.map(|written| written.id).ok_or_else(|| missing("an id"))
    }

    /// Shows the call's activity on the deal too. The deal's own write has
    /// succeeded, so a failure here is logged rather than failing the step.
    async fn file_call_under(&self, access: &CrmAccess, logged_call: Option<&str>, deal_id: i64) {
        let Some(activity) = logged_call.and_then(|id| pipedrive_id(id).ok()) else {
            return;
        };
        let path = ["api", "v2", "activities", &activity.to_string()];
        let filed = self
            .write(access, Method::PATCH, &path, &json!({ "deal_id": deal_id }))
            .await;
        if let Err(error) = filed {
            tracing::warn!(%error, activity, deal_id, "the call could not be filed under its Pipedrive deal");
        }
    }

    /// The first exact match of `term` in `field` of `entity` (`persons`, `organizations`).
    async fn search<T: DeserializeOwned>(
        &self,
        access: &CrmAccess,
        entity: &str,
        field: &str,
        term: &str,
    ) -> Result<Option<T>, ProviderError> {
        let query = [
            ("term", term),
            ("fields", field),
            ("exact_match", "true"),
            ("limit", "1"),
        ];
        let answer: Answer<SearchResults<T>> = self
            .get(access, Kind::Search, &["api", "v2", entity, "search"], &query)
            .await?;
        Ok(answer
            .data
            .and_then(|results| results.items.into_iter().next())
            .map(|hit| hit.item))
    }

    /// The company's organization of this name, created when it has none.
    async fn organization(&self, access: &CrmAccess, name: &str) -> Result<i64, ProviderError> {
        if let Some(found) = self.search::<Identified>(access, "organizations", "name", name).await? {
            return Ok(found.id);
        }
        let organization = json!({ "name": name });
        self.write(access, Method::POST, &["api", "v2", "organizations"], &organization)
            .await
    }

    async fn person_fields(&self, access: &CrmAccess) -> Result<Vec<PersonField>, ProviderError> {
        let mut fields = Vec::new();
        let mut start = 0;
        for _ in 0..MAX_PAGES {
            let from = start.to_string();
            let query = [("start", from.as_str()), ("limit", FIELDS_PAGE)];
            let page: Answer<Vec<PersonField>> = self
                .get(access, Kind::Plain, &["api", "v1", "personFields"], &query)
                .await?;
            let next = page.next_start(start, page.data.as_ref().map_or(0, Vec::len));
            fields.extend(page.data.unwrap_or_default());
            match next {
                Some(next) => start = next,
                None => break,
            }
        }
        Ok(fields)
    }

    /// A v2 person body with these properties, reading the person fields
    /// only when a property needs them.
    async fn person_body(
        &self,
        access: &CrmAccess,
        properties: &BTreeMap<String, String>,
    ) -> Result<Map<String, Value>, ProviderError> {
        let fields = if fields_needed(properties)? {
            self.person_fields(access).await?
        } else {
            Vec::new()
        };
        person_fields_body(properties, &fields)
    }

    /// The deal fields that put a deal in `stage`: the stage with its
    /// pipeline, or a closing status.
    async fn stage_fields(&self, access: &CrmAccess, stage: &str) -> Result<Map<String, Value>, ProviderError> {
        let mut fields = Map::new();
        match deal_stage(stage)? {
            DealStage::Closed(status) => {
                fields.insert("status".into(), json!(status));
            }
            DealStage::Open(stage_id) => {
                let answer: Answer<Stage> = self
                    .get(
                        access,
                        Kind::Plain,
                        &["api", "v2", "stages", &stage_id.to_string()],
                        &[],
                    )
                    .await?;
                let pipeline_id = answer
                    .data
                    .map(|stage| stage.pipeline_id)
                    .ok_or_else(|| missing("the stage"))?;
                fields.insert("stage_id".into(), json!(stage_id));
                fields.insert("pipeline_id".into(), json!(pipeline_id));
            }
        }
        Ok(fields)
    }
}

/// Where settings put a deal: a stage (by id), or won or lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DealStage {
    Open(i64),
    Closed(&'static str),
}

/// A stage as settings name it; anything else is refused before any request.
fn deal_stage(stage: &str) -> Result<DealStage, ProviderError> {
    let stage = stage.trim();
    if let Some(status) = [WON, LOST]
        .into_iter()
        .find(|status| stage.eq_ignore_ascii_case(status))
    {
        return Ok(DealStage::Closed(status));
    }
    match stage.parse::<i64>() {
        Ok(id) if id > 0 => Ok(DealStage::Open(id)),
        _ => {
            tracing::warn!(stage, "not a Pipedrive stage id, won nor lost");
            Err(ProviderError::Rejected { status: 400 })
        }
    }
}

/// Our copy of a Pipedrive id (persons, deals), refused before any request when it is not one.
fn pipedrive_id(id: &str) -> Result<i64, ProviderError> {
    match id.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => {
            tracing::warn!(id, "not a Pipedrive id");
            Err(ProviderError::Rejected { status: 400 })
        }
    }
}

/// How a person property is written in a v2 person body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PersonProperty {
    /// A custom field (its key is a 40-hex-digit hash): in `custom_fields`,
    /// as its type wants the value.
    Custom,
    /// The person's label, by name or id: `label_ids`.
    Label,
    /// A standard field taking text as it is (`name`, `marketing_status`).
    Text,
    /// A standard field taking an id (`owner_id`, `org_id`, `visible_to`).
    Id,
}

/// How `key` is written; `None` for what a v2 person body cannot take
/// (composite fields like `email` and `phone`, read-only ones like `add_time`).
fn person_property(key: &str) -> Option<PersonProperty> {
    match key {
        LABEL => Some(PersonProperty::Label),
        "name" | "marketing_status" => Some(PersonProperty::Text),
        "owner_id" | "org_id" | "visible_to" => Some(PersonProperty::Id),
        key if key.len() == 40 && key.bytes().all(|b| b.is_ascii_hexdigit()) => Some(PersonProperty::Custom),
        _ => None,
    }
}

fn unwritable(key: &str) -> ProviderError {
    tracing::warn!(
        property = key,
        "a Pipedrive person property that cannot be written (as given)"
    );
    ProviderError::Rejected { status: 400 }
}

/// Whether writing these properties needs the person fields (custom field
/// types, label options); refused when one of them cannot be written.
fn fields_needed(properties: &BTreeMap<String, String>) -> Result<bool, ProviderError> {
    let mut needed = false;
    for key in properties.keys() {
        match person_property(key) {
            Some(PersonProperty::Custom | PersonProperty::Label) => needed = true,
            Some(_) => {}
            None => return Err(unwritable(key)),
        }
    }
    Ok(needed)
}

/// Properties, by Pipedrive field key, as a v2 person body: custom fields
/// under `custom_fields`, an option (of an enum or set field, or a label)
/// named by its label sent as its id.
fn person_fields_body(
    properties: &BTreeMap<String, String>,
    fields: &[PersonField],
) -> Result<Map<String, Value>, ProviderError> {
    let field = |key: &str| fields.iter().find(|field| field.key == key);
    let mut body = Map::new();
    let mut custom = Map::new();
    for (key, value) in properties {
        match person_property(key).ok_or_else(|| unwritable(key))? {
            PersonProperty::Custom => {
                custom.insert(key.clone(), custom_field_value(field(key), value));
            }
            PersonProperty::Label => {
                let label = field(LABEL)
                    .or_else(|| field("label_ids"))
                    .and_then(|labels| labels.option_id(value))
                    .ok_or_else(|| {
                        tracing::warn!(label = value, "Pipedrive has no such person label");
                        ProviderError::Rejected { status: 400 }
                    })?;
                body.insert("label_ids".into(), json!([label]));
            }
            PersonProperty::Text => {
                body.insert(key.clone(), json!(value));
            }
            PersonProperty::Id => {
                let id = value.trim().parse::<i64>().ok().filter(|id| *id > 0);
                body.insert(key.clone(), json!(id.ok_or_else(|| unwritable(key))?));
            }
        }
    }
    if !custom.is_empty() {
        body.insert("custom_fields".into(), Value::Object(custom));
    }
    Ok(body)
}

/// A custom field's value as API v2 takes it for the field's type (text when unknown).
fn custom_field_value(field: Option<&PersonField>, value: &str) -> Value {
    let Some(field) = field else {
        return json!(value);
    };
    let trimmed = value.trim();
    let typed = match field.field_type.as_str() {
        "enum" => field.option_id(value).map(|id| json!(id)),
        "set" => field.option_id(value).map(|id| json!([id])),
        "int" | "user" | "org" | "people" => trimmed.parse::<i64>().ok().map(|n| json!(n)),
        "double" => trimmed.parse::<f64>().ok().filter(|n| n.is_finite()).map(|n| json!(n)),
        _ => None,
    };
    typed.unwrap_or_else(|| json!(value))
}

/// Whole minutes, rounded up, as Pipedrive's `HH:MM` duration.
fn hours_minutes(seconds: f64) -> Option<String> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    let minutes = (seconds / 60.0).ceil() as u64;
    Some(format!("{:02}:{:02}", minutes / 60, minutes % 60))
}

/// A URL to link to, if it is HTTPS.
fn https_url(url: Option<&str>) -> Option<Url> {
    url.and_then(|url| Url::parse(url).ok())
        .filter(|url| url.scheme() == "https")
}

/// How long until Pipedrive's daily budget is back: it resets at midnight UTC.
fn until_utc_midnight(now: DateTime<Utc>) -> Duration {
    let tomorrow = now.date_naive().succ_opt().unwrap_or(NaiveDate::MAX);
    (tomorrow.and_time(NaiveTime::MIN).and_utc() - now)
        .to_std()
        .unwrap_or_default()
}

/// An activity of `kind` due at `due` (UTC), with the person as its primary
/// participant (API v2 derives the activity's `person_id` from it).
fn activity(
    kind: &str,
    subject: &str,
    done: bool,
    due: DateTime<Utc>,
    duration: Option<String>,
    person_id: i64,
    note: String,
) -> Value {
    let mut activity = json!({
        "subject": subject,
        "type": kind,
        "done": done,
        "due_date": due.format("%Y-%m-%d").to_string(),
        "due_time": due.format("%H:%M").to_string(),
        "participants": [{ "person_id": person_id, "primary": true }],
        "note": note,
    });
    if let Some(duration) = duration {
        activity["duration"] = json!(duration);
    }
    activity
}

/// The call's subject, carrying our call id so `find_logged_call` finds it again.
fn call_subject(call: &CallLog) -> String {
    let call_id = call.call_id.to_string();
    if call.title.contains(&call_id) {
        call.title.clone()
    } else {
        format!("{} ({call_id})", call.title)
    }
}

/// The call's note: how it went (activities have no field for it), its
/// summary, and a link to its recording.
fn call_note(call: &CallLog) -> String {
    let direction = if call.is_inbound() { "Inbound" } else { "Outbound" };
    let result = match call.result {
        CallResult::Connected => "connected",
        CallResult::NoAnswer => "no answer",
        CallResult::Busy => "busy",
        CallResult::Voicemail => "voicemail",
        CallResult::Failed => "failed",
    };
    let mut note = format!("<p>{direction} call: {result}</p>");
    if !call.body.trim().is_empty() {
        note.push_str(&format!("<p>{}</p>", text_as_html(call.body.trim())));
    }
    if let Some(recording) = https_url(call.recording_url.as_deref()) {
        note.push_str(&format!(
            "<p><a href=\"{}\">Recording</a></p>",
            escape(recording.as_str())
        ));
    }
    note
}

/// Pipedrive's answer: `{success, data, additional_data}`.
#[derive(Debug, Deserialize)]
struct Answer<T> {
    data: Option<T>,
    #[serde(default)]
    additional_data: Value,
}

impl<T> Answer<T> {
    /// API v2's next page.
    fn next_cursor(&self) -> Option<String> {
        self.additional_data["next_cursor"]
            .as_str()
            .filter(|cursor| !cursor.is_empty())
            .map(str::to_owned)
    }

    /// API v1's next page after one that started at `start` and held
    /// `returned` items. The paging is `additional_data.pagination` in the
    /// docs' examples, `additional_data` itself in Pipedrive's SDK: both are read.
    fn next_start(&self, start: u64, returned: usize) -> Option<u64> {
        let data = &self.additional_data;
        let pagination = if data["pagination"].is_object() {
            &data["pagination"]
        } else {
            data
        };
        if pagination["more_items_in_collection"].as_bool() != Some(true) {
            return None;
        }
        pagination["next_start"]
            .as_u64()
            .or_else(|| (returned > 0).then(|| start + returned as u64))
    }
}

#[derive(Debug, Deserialize)]
struct Identified {
    id: i64,
}

#[derive(Debug, Deserialize)]
struct SearchResults<T> {
    #[serde(default = "Vec::new")]
    items: Vec<SearchHit<T>>,
}

#[derive(Debug, Deserialize)]
struct SearchHit<T> {
    item: T,
}

/// A person as the search answers it.
#[derive(Debug, Deserialize)]
struct FoundPerson {
    id: i64,
    name: Option<String>,
    emails: Option<Vec<Value>>,
    organization: Option<NamedRef>,
    owner: Option<IdRef>,
}

#[derive(Debug, Deserialize)]
struct NamedRef {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IdRef {
    id: Option<i64>,
}

fn non_empty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|text| !text.is_empty())
}

/// The primary email, else the first: the search lists emails as strings,
/// person records as `{value, primary, label}`.
fn email_of(emails: &[Value]) -> Option<String> {
    fn address(email: &Value) -> Option<&str> {
        let value = match email {
            Value::String(value) => Some(value.as_str()),
            Value::Object(email) => email.get("value").and_then(Value::as_str),
            _ => None,
        };
        non_empty(value)
    }
    emails
        .iter()
        .find(|email| email["primary"].as_bool() == Some(true))
        .and_then(address)
        .or_else(|| emails.iter().find_map(address))
        .map(str::to_owned)
}

impl FoundPerson {
    fn into_contact(self) -> CrmContact {
        CrmContact {
            id: self.id.to_string(),
            name: non_empty(self.name.as_deref()).map(str::to_owned),
            email: email_of(self.emails.as_deref().unwrap_or_default()),
            company: self
                .organization
                .and_then(|organization| organization.name)
                .filter(|name| !name.trim().is_empty()),
            owner: self.owner.and_then(|owner| owner.id).map(|id| id.to_string()),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Me {
    company_id: i64,
}

#[derive(Debug, Deserialize)]
struct Activity {
    id: i64,
    #[serde(rename = "type")]
    kind: Option<String>,
    subject: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Note {
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Stage {
    id: i64,
    pipeline_id: i64,
    #[serde(default)]
    is_deleted: bool,
}

#[derive(Debug, Deserialize)]
struct PersonField {
    key: String,
    #[serde(default)]
    field_type: String,
    options: Option<Vec<FieldOption>>,
}

#[derive(Debug, Deserialize)]
struct FieldOption {
    id: i64,
    label: String,
}

impl PersonField {
    /// The option `value` names, by its label (any case) or its id.
    fn option_id(&self, value: &str) -> Option<i64> {
        let options = self.options.as_deref().unwrap_or_default();
        let value = value.trim();
        options
            .iter()
            .find(|option| option.label.trim().eq_ignore_ascii_case(value))
            .or_else(|| options.iter().find(|option| value.parse() == Ok(option.id)))
            .map(|option| option.id)
    }
}

fn missing(what: &str) -> ProviderError {
    ProviderError::Unavailable(format!("Pipedrive's answer lacks {what}").into())
}

/// An answer's JSON; an unreadable one is this provider being unavailable.
async fn read<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ProviderError> {
    crate::http::read_answer(response, "unreadable Pipedrive answer").await
}

/// What an answer says of the token's budgets.
#[derive(Debug)]
struct RateHeaders {
    /// Requests left in the burst window, and how long until it resets.
    remaining: Option<u64>,
    reset: Option<Duration>,
    retry_after: Option<Duration>,
    /// The least of the daily budgets named.
    daily_left: Option<f64>,
}

impl RateHeaders {
    fn of(headers: &HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim);
        Self {
            remaining: text("x-ratelimit-remaining").and_then(|value| value.parse().ok()),
            reset: text("x-ratelimit-reset")
                .and_then(|value| value.parse::<f64>().ok())
                .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
                .map(|seconds| Duration::from_secs_f64(seconds.min(86_400.0))),
            retry_after: retry_after(headers),
            daily_left: DAILY_BUDGET_HEADERS
                .iter()
                .filter_map(|name| text(name)?.parse::<f64>().ok())
                .reduce(f64::min),
        }
    }

    fn daily_spent(&self) -> bool {
        self.daily_left.is_some_and(|left| left <= 0.0)
    }

    /// The wait a burst 429 asks for.
    fn burst_wait(&self) -> Duration {
        self.retry_after.or(self.reset).unwrap_or(DEFAULT_BURST_WAIT)
    }

    /// How long the token's next request must wait, when its burst window is spent.
    fn hold(&self, status: StatusCode) -> Option<Duration> {
        let hold = if status == StatusCode::TOO_MANY_REQUESTS {
            if self.daily_spent() {
                // Nothing is sent until the day is over: the caller stops.
                return None;
            }
            self.burst_wait()
        } else if self.remaining == Some(0) {
            self.reset.unwrap_or(DEFAULT_BURST_WAIT)
        } else {
            return None;
        };
        Some(hold.min(MAX_BURST_HOLD))
    }
}

/// A failed answer: its status and what it says of the budgets.
struct Refusal {
    status: StatusCode,
    rate: RateHeaders,
}

impl Refusal {
    /// Reads the answer (at most [`crate::http::ERROR_BODY_BYTES`]), logging Pipedrive's
    /// own words (`{"success":false,"error","error_info"}`), which are never
    /// passed on to users.
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let rate = RateHeaders::of(response.headers());
        let (body, parsed) = error_body(response).await;
        let message = match parsed["error"].as_str() {
            Some(message) => message.to_owned(),
            None => String::from_utf8_lossy(&body).into_owned(),
        };
        tracing::warn!(
            status = status.as_u16(),
            code = parsed["code"].as_str().unwrap_or_default(),
            message = %logged(&message),
            info = %logged(parsed["error_info"].as_str().unwrap_or_default()),
            "Pipedrive answered with an error"
        );
        Self { status, rate }
    }

    fn into_error(self, now: DateTime<Utc>) -> ProviderError {
        let limit = (self.status == StatusCode::TOO_MANY_REQUESTS).then(|| {
            if self.rate.daily_spent() {
                ProviderError::DailyLimitReached {
                    resets_in: Some(until_utc_midnight(now)),
                }
            } else {
                ProviderError::RateLimited {
                    retry_after: Some(self.rate.burst_wait()),
                }
            }
        });
        refused(self.status.as_u16(), limit, || {
            format!("Pipedrive answered {}", self.status)
        })
    }
}

#[async_trait]
impl CrmApi for PipedriveClient {
    /// The company the token is for; the grant's scopes are the app's, not told here.
    async fn account(&self, access: &CrmAccess) -> Result<CrmAccount, ProviderError> {
        let answer: Answer<Me> = self
            .get(access, Kind::Plain, &["api", "v1", "users", "me"], &[])
            .await?;
        let company = answer.data.ok_or_else(|| missing("the token's company"))?;
        Ok(CrmAccount {
            account_id: company.company_id.to_string(),
            scopes: Vec::new(),
        })
    }

    /// An exact phone match, in E.164 and then in national form.
    async fn find_contact(&self, access: &CrmAccess, phone: &PhoneNumber) -> Result<Option<CrmContact>, ProviderError> {
        let national = phone.national_number();
        for term in [phone.as_str(), national.as_str()]
            .into_iter()
            .filter(|t| !t.is_empty())
        {
            if let Some(person) = self.search::<FoundPerson>(access, "persons", "phone", term).await? {
                return Ok(Some(person.into_contact()));
            }
        }
        Ok(None)
    }

    /// A person with the caller's number, name (Pipedrive requires one: the
    /// number when we know none), email and organization (found by name or
    /// created); mapped properties as [`person_fields_body`] writes them, what we
    /// know of the caller winning over a mapping of the same field.
    async fn create_contact(&self, access: &CrmAccess, contact: &NewContact) -> Result<String, ProviderError> {
        let mut person = self.person_body(access, &contact.properties).await?;
        let phone = contact.phone.as_str();
        match non_empty(contact.name.as_deref()) {
            Some(name) => {
                person.insert("name".into(), json!(name));
            }
            None => {
                person.entry("name").or_insert_with(|| json!(phone));
            }
        }
        person.insert(
            "phones".into(),
            json!([{ "value": phone, "primary": true, "label": "work" }]),
        );
        if let Some(email) = non_empty(contact.email.as_deref()) {
            person.insert(
                "emails".into(),
                json!([{ "value": email, "primary": true, "label": "work" }]),
            );
        }
        if let Some(company) = non_empty(contact.company.as_deref()) {
            person.insert("org_id".into(), json!(self.organization(access, company).await?));
        }
        let id = self
            .write(access, Method::POST, &["api", "v2", "persons"], &Value::Object(person))
            .await?;
        Ok(id.to_string())
    }

    /// A done call activity on the person; its subject carries our call id.
    async fn log_call(&self, access: &CrmAccess, call: &CallLog) -> Result<String, ProviderError> {
        let person_id = pipedrive_id(&call.contact_id)?;
        let body = activity(
            "call",
            &call_subject(call),
            true,
            call.started_at,
            call.duration_seconds.and_then(hours_minutes),
            person_id,
            call_note(call),
        );
        let id = self
            .write(access, Method::POST, &["api", "v2", "activities"], &body)
            .await?;
        Ok(id.to_string())
    }

    /// The person's call activity whose subject carries our call id, among
    /// their latest activities.
    async fn find_logged_call(&self, access: &CrmAccess, call: &CallLog) -> Result<Option<String>, ProviderError> {
        let person_id = pipedrive_id(&call.contact_id)?.to_string();
        let call_id = call.call_id.to_string();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_ACTIVITY_PAGES {
            let mut query = vec![
                ("person_id", person_id.as_str()),
                ("sort_by", "add_time"),
                ("sort_direction", "desc"),
                ("limit", ACTIVITIES_PAGE),
            ];
            if let Some(cursor) = cursor.as_deref() {
                query.push(("cursor", cursor));
            }
            let page: Answer<Vec<Activity>> = self
                .get(access, Kind::Plain, &["api", "v2", "activities"], &query)
                .await?;
            let found = page.data.iter().flatten().find(|activity| {
                activity.kind.as_deref() == Some("call")
                    && activity
                        .subject
                        .as_deref()
                        .is_some_and(|subject| subject.contains(&call_id))
            });
            if let Some(found) = found {
                return Ok(Some(found.id.to_string()));
            }
            match page.next_cursor() {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(None)
    }

    async fn add_note(&self, access: &CrmAccess, note: &NewNote<'_>) -> Result<String, ProviderError> {
        let NewNote { contact_id, body, at } = *note;
        let note = json!({
            "content": text_as_html(body),
            "person_id": pipedrive_id(contact_id)?,
            "add_time": at.format("%Y-%m-%d %H:%M:%S").to_string(),
        });
        let id = self.write(access, Method::POST, &["api", "v1", "notes"], &note).await?;
        Ok(id.to_string())
    }

    async fn last_note(&self, access: &CrmAccess, contact_id: &str) -> Result<Option<String>, ProviderError> {
        let person_id = pipedrive_id(contact_id)?.to_string();
        let query = [
            ("person_id", person_id.as_str()),
            ("sort", "add_time DESC"),
            ("start", "0"),
            ("limit", "1"),
        ];
        let page: Answer<Vec<Note>> = self.get(access, Kind::Plain, &["api", "v1", "notes"], &query).await?;
        Ok(page
            .data
            .unwrap_or_default()
            .into_iter()
            .next()
            .and_then(|note| note.content)
            .map(|content| plain_text(&content, BRIEFING_NOTE_CHARS))
            .filter(|text| !text.is_empty()))
    }

    /// A meeting activity, not done yet, on the person.
    async fn log_meeting(&self, access: &CrmAccess, meeting: &MeetingLog) -> Result<String, ProviderError> {
        let person_id = pipedrive_id(&meeting.contact_id)?;
        let seconds = (meeting.end - meeting.start).num_seconds();
        let duration = (seconds > 0).then(|| hours_minutes(seconds as f64)).flatten();
        let body = activity(
            "meeting",
            &meeting.title,
            false,
            meeting.start,
            duration,
            person_id,
            text_as_html(&meeting.body),
        );
        let id = self
            .write(access, Method::POST, &["api", "v2", "activities"], &body)
            .await?;
        Ok(id.to_string())
    }

    /// The person's most recently changed open deal.
    async fn open_deal(&self, access: &CrmAccess, contact_id: &str) -> Result<Option<String>, ProviderError> {
        let person_id = pipedrive_id(contact_id)?.to_string();
        let query = [
            ("person_id", person_id.as_str()),
            ("status", "open"),
            ("sort_by", "update_time"),
            ("sort_direction", "desc"),
            ("limit", "1"),
        ];
        let page: Answer<Vec<Identified>> = self.get(access, Kind::Plain, &["api", "v2", "deals"], &query).await?;
        Ok(page.data.unwrap_or_default().first().map(|deal| deal.id.to_string()))
    }

    /// A deal for the person in `stage` (a stage id, in that stage's
    /// pipeline) or closed (`won`, `lost`). Calls are activities of the
    /// person, not filed under deals: `logged_call` is not needed.
    async fn create_deal(&self, access: &CrmAccess, deal: &NewDeal<'_>) -> Result<String, ProviderError> {
        let person_id = pipedrive_id(deal.contact_id)?;
        let mut fields = self.stage_fields(access, deal.stage).await?;
        fields.insert("title".into(), json!(deal.name));
        fields.insert("person_id".into(), json!(person_id));
        let id = self
            .write(access, Method::POST, &["api", "v2", "deals"], &Value::Object(fields))
            .await?;
        self.file_call_under(access, deal.logged_call, id).await;
        Ok(id.to_string())
    }

    async fn move_deal(&self, access: &CrmAccess, change: &DealMove<'_>) -> Result<(), ProviderError> {
        let deal = pipedrive_id(change.deal_id)?;
        let fields = self.stage_fields(access, change.stage).await?;
        self.write(
            access,
            Method::PATCH,
            &["api", "v2", "deals", &deal.to_string()],
            &Value::Object(fields),
        )
        .await?;
        self.file_call_under(access, change.logged_call, deal).await;
        Ok(())
    }

    /// Changes the person's fields as [`person_fields_body`] writes them.
    async fn update_contact(&self, access: &CrmAccess, update: &ContactUpdate<'_>) -> Result<(), ProviderError> {
        let ContactUpdate { contact_id, properties } = *update;
        if properties.is_empty() {
            return Ok(());
        }
        let person_id = pipedrive_id(contact_id)?.to_string();
        let change = self.person_body(access, properties).await?;
        self.write(
            access,
            Method::PATCH,
            &["api", "v2", "persons", &person_id],
            &Value::Object(change),
        )
        .await?;
        Ok(())
    }

    fn contact_of(&self, contact_id: &str, properties: &BTreeMap<String, String>) -> CrmContact {
        let text = |name: &str| non_empty(properties.get(name).map(String::as_str)).map(str::to_owned);
        CrmContact {
            id: contact_id.to_owned(),
            name: text("name"),
            email: text("email"),
            company: text("org_name"),
            owner: text("owner_id"),
        }
    }

    /// The person fields `update_contact` can write (so settings name no
    /// other), and the label.
    async fn contact_properties(&self, access: &CrmAccess) -> Result<Vec<String>, ProviderError> {
        let mut keys: Vec<String> = self
            .person_fields(access)
            .await?
            .into_iter()
            .map(|field| field.key)
            .filter(|key| person_property(key).is_some())
            .collect();
        if !keys.iter().any(|key| key == LABEL) {
            keys.push(LABEL.to_owned());
        }
        Ok(keys)
    }

    /// Every stage of every pipeline (stage ids are unique across them), then won and lost.
    async fn deal_stages(&self, access: &CrmAccess) -> Result<Vec<String>, ProviderError> {
        let mut stages = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("limit", STAGES_PAGE)];
            if let Some(cursor) = cursor.as_deref() {
                query.push(("cursor", cursor));
            }
            let page: Answer<Vec<Stage>> = self.get(access, Kind::Plain, &["api", "v2", "stages"], &query).await?;
            let next = page.next_cursor();
            stages.extend(
                page.data
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|stage| !stage.is_deleted)
                    .map(|stage| stage.id.to_string()),
            );
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        stages.extend([WON, LOST].map(str::to_owned));
        Ok(stages)
    }

    /// Revokes the refresh token (RFC 7009, with the app's credentials as
    /// HTTP Basic), which ends the grant. Without one there is nothing to revoke.
    async fn revoke(&self, tokens: &Tokens) -> Result<bool, ProviderError> {
        let Some(refresh_token) = tokens.refresh_token.as_deref() else {
            return Ok(false);
        };
        let request = self
            .http
            .post(self.revoke_url.clone())
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("token", refresh_token), ("token_type_hint", "refresh_token")]);
        self.succeeded(crate::http::send(request).await?).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_test_support::{
        assert_failures_map, at, contact_update, deal_move, new_deal, note, phone, sent_bodies, tokens,
    };
    use application::crm::CallDirection;
    use base64::Engine;
    use domain::crm::NewContactKind;
    use uuid::Uuid;
    use wiremock::matchers::{body_string, header, method, path, query_param, query_param_is_missing};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const TOKEN: &str = "v1u:AQIBAHj-pipedrive-access";
    const BEARER: &str = "Bearer v1u:AQIBAHj-pipedrive-access";
    const CALL_ID: &str = "0f8b6c2e-3a4d-4e5f-9a1b-2c3d4e5f6a7b";
    /// A custom field's key, as Pipedrive generates them.
    const SCORE_FIELD: &str = "d4de1c1518b4531717c676029a45911c340390a6";

    /// A client against the fake whose search budget never holds a test up.
    fn pipedrive(server: &MockServer) -> PipedriveClient {
        let settings = PipedriveApiSettings {
            api_hosts: ApiHosts::new(&["127.0.0.1"]),
            revoke_url: format!("{}/oauth/revoke", server.uri()),
            client_id: "client-id".into(),
            client_secret: "client-secret".into(),
        };
        PipedriveClient::with_search_window(settings, Duration::from_millis(10)).unwrap()
    }

    fn access_as(server: &MockServer, token: &str) -> CrmAccess {
        CrmAccess {
            token: token.into(),
            api_base: Some(server.uri()),
        }
    }

    fn access(server: &MockServer) -> CrmAccess {
        access_as(server, TOKEN)
    }

    /// A success as Pipedrive answers it.
    fn ok(data: Value) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(json!({ "success": true, "data": data }))
    }

    fn ok_with(data: Value, additional_data: Value) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(json!({
            "success": true, "data": data, "additional_data": additional_data
        }))
    }

    /// An error as Pipedrive answers it.
    fn pipedrive_error(status: u16, error: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(json!({
            "success": false,
            "error": error,
            "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API. secret detail",
            "data": null,
            "additional_data": null
        }))
    }

    async fn sent_count(server: &MockServer) -> usize {
        server.received_requests().await.unwrap().len()
    }

    fn call(title: &str) -> CallLog {
        CallLog {
            call_id: CALL_ID.parse().unwrap(),
            contact_id: "512".into(),
            direction: CallDirection::Outbound,
            started_at: at("2026-03-04T15:00:59Z"),
            duration_seconds: Some(93.4),
            our_number: Some("+14155550100".into()),
            customer_number: "+14155550123".into(),
            title: title.into(),
            body: "Booked a demo <Tuesday> & more.\nThanks".into(),
            transcript: None,
            recording_url: Some("https://storage.vapi.ai/recordings/abc.wav?x=1&y=2".into()),
            result: CallResult::Connected,
        }
    }

    /// The person fields across two pages: the label, and an enum custom field.
    async fn mount_person_fields(server: &MockServer) {
        Mock::given(method("GET"))
            .and(path("/api/v1/personFields"))
            .and(query_param("start", "0"))
            .and(query_param("limit", "500"))
            .respond_with(ok_with(
                json!([
                    { "id": 1, "key": "name", "name": "Name", "field_type": "varchar", "options": null },
                    { "id": 2, "key": "label", "name": "Label", "field_type": "enum", "options": [
                        { "id": 5, "label": "Customer", "color": "green" },
                        { "id": 7, "label": "Not interested", "color": "red" }
                    ] },
                    { "id": 3, "key": "add_time", "name": "Person created", "field_type": "date" }
                ]),
                json!({ "pagination": { "start": 0, "limit": 500, "more_items_in_collection": true, "next_start": 3 } }),
            ))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v1/personFields"))
            .and(query_param("start", "3"))
            .respond_with(ok_with(
                json!([
                    { "id": 4, "key": "email", "name": "Email", "field_type": "varchar" },
                    { "id": 9041, "key": SCORE_FIELD, "name": "Lead score", "field_type": "enum", "options": [
                        { "id": 41, "label": "Cold" },
                        { "id": 42, "label": "Hot" }
                    ] }
                ]),
                json!({ "pagination": { "start": 3, "limit": 500, "more_items_in_collection": false } }),
            ))
            .mount(server)
            .await;
    }

    #[test]
    fn v1_paging_is_read_nested_or_flat() {
        let page = |additional_data: Value| -> Answer<Vec<Value>> {
            serde_json::from_value(json!({ "success": true, "data": [{}, {}], "additional_data": additional_data }))
                .unwrap()
        };
        let nested = page(json!({ "pagination": { "start": 0, "more_items_in_collection": true, "next_start": 2 } }));
        assert_eq!(nested.next_start(0, 2), Some(2));
        let flat = page(json!({ "start": 4, "limit": 2, "more_items_in_collection": true }));
        assert_eq!(flat.next_start(4, 2), Some(6));
        let last = page(json!({ "pagination": { "start": 6, "more_items_in_collection": false } }));
        assert_eq!(last.next_start(6, 2), None);
    }

    #[test]
    fn sign_in_sends_basic_client_credentials_and_asks_no_scopes() {
        let app = AppCredentials::new(
            "client-id",
            "client-secret",
            "https://app.voxreach.test/api/crm/callback",
        );
        let settings = oauth_settings(app, DEFAULT_AUTH_URL, DEFAULT_TOKEN_URL);
        assert_eq!(settings.client_authentication, ClientAuthentication::BasicHeader);
        assert!(settings.scopes.is_empty() && settings.extra_authorize_params.is_empty());
        let api = PipedriveApiSettings {
            api_hosts: ApiHosts::parse_list(DEFAULT_API_HOSTS),
            revoke_url: DEFAULT_REVOKE_URL.into(),
            client_id: "client-id".into(),
            client_secret: "client-secret".into(),
        };
        assert!(!format!("{api:?}").contains("client-secret"));
    }

    #[tokio::test]
    async fn the_grants_api_domain_is_the_base_and_an_unlisted_one_is_refused() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/users/me"))
            .and(header("authorization", BEARER))
            .respond_with(ok(json!({
                "id": 12, "name": "Ann Owner", "email": "ann@acme.example",
                "company_id": 7744, "company_domain": "acme", "is_admin": 1
            })))
            .expect(1)
            .mount(&server)
            .await;
        let pipedrive = pipedrive(&server);
        assert_eq!(
            pipedrive.account(&access(&server)).await,
            Ok(CrmAccount {
                account_id: "7744".into(),
                scopes: Vec::new(),
            })
        );
        for api_base in [
            Some("https://acme.pipedrive.example".to_owned()),
            Some("http://localhost:9".to_owned()),
            None,
        ] {
            let elsewhere = CrmAccess {
                token: TOKEN.into(),
                api_base,
            };
            let refused = pipedrive.account(&elsewhere).await;
            assert!(matches!(refused, Err(ProviderError::Unavailable(_))), "{refused:?}");
        }
    }

    #[tokio::test]
    async fn a_person_is_found_by_an_exact_phone_match() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/persons/search"))
            .and(query_param("term", "+14155550123"))
            .and(query_param("fields", "phone"))
            .and(query_param("exact_match", "true"))
            .and(query_param("limit", "1"))
            .and(header("authorization", BEARER))
            .respond_with(ok(json!({ "items": [{
                "result_score": 1.0,
                "item": {
                    "id": 512, "type": "person", "name": "John Doe",
                    "phones": ["+14155550123"], "emails": ["john@acme.example"],
                    "visible_to": 3, "owner": { "id": 7712 },
                    "organization": { "id": 9, "name": "Acme", "address": null },
                    "custom_fields": [], "notes": []
                }
            }] })))
            .expect(1)
            .mount(&server)
            .await;
        let found = pipedrive(&server)
            .find_contact(&access(&server), &phone("+14155550123"))
            .await;
        assert_eq!(
            found,
            Ok(Some(CrmContact {
                id: "512".into(),
                name: Some("John Doe".into()),
                email: Some("john@acme.example".into()),
                company: Some("Acme".into()),
                owner: Some("7712".into()),
            }))
        );
    }

    #[tokio::test]
    async fn an_unknown_number_is_searched_in_national_form_too() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/persons/search"))
            .respond_with(ok(json!({ "items": [] })))
            .expect(2)
            .mount(&server)
            .await;
        let found = pipedrive(&server)
            .find_contact(&access(&server), &phone("+442079460958"))
            .await;
        assert_eq!(found, Ok(None));
        let terms: Vec<String> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|request| {
                let (_, term) = request.url.query_pairs().find(|(name, _)| name == "term").unwrap();
                term.into_owned()
            })
            .collect();
        assert_eq!(terms, ["+442079460958", "2079460958"]);
    }

    #[test]
    fn emails_are_read_as_strings_or_objects_primary_first() {
        let objects = [
            json!({ "value": "old@acme.example", "primary": false, "label": "home" }),
            json!({ "value": "mary@acme.example", "primary": true, "label": "work" }),
        ];
        assert_eq!(email_of(&objects).as_deref(), Some("mary@acme.example"));
        assert_eq!(
            email_of(&[json!(""), json!("john@acme.example")]).as_deref(),
            Some("john@acme.example")
        );
        assert_eq!(email_of(&[]), None);
    }

    #[tokio::test]
    async fn a_person_is_created_with_phone_email_organization_and_custom_fields() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/organizations/search"))
            .and(query_param("term", "Acme"))
            .and(query_param("fields", "name"))
            .and(query_param("exact_match", "true"))
            .respond_with(ok(json!({ "items": [] })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/organizations/search"))
            .and(query_param("term", "Globex"))
            .respond_with(ok(json!({ "items": [{
                "result_score": 1.0, "item": { "id": 77, "type": "organization", "name": "Globex" }
            }] })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v2/organizations"))
            .and(header("authorization", BEARER))
            .respond_with(ok(json!({ "id": 91, "name": "Acme", "owner_id": 12 })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v2/persons"))
            .and(header("authorization", BEARER))
            .respond_with(ok(json!({ "id": 601, "name": "Mary Ann Smith" })))
            .expect(2)
            .mount(&server)
            .await;
        mount_person_fields(&server).await;
        let pipedrive = pipedrive(&server);
        let mary = NewContact {
            phone: phone("+14155550123"),
            name: Some("Mary Ann Smith".into()),
            email: Some("mary@acme.example".into()),
            company: Some("Acme".into()),
            properties: BTreeMap::from([
                (SCORE_FIELD.to_owned(), "hot".to_owned()),
                ("name".to_owned(), "overridden".to_owned()),
            ]),
            kind: NewContactKind::Lead,
        };
        assert_eq!(
            pipedrive.create_contact(&access(&server), &mary).await,
            Ok("601".into())
        );
        let caller = NewContact {
            phone: phone("+14155550124"),
            name: None,
            email: None,
            company: Some("Globex".into()),
            properties: BTreeMap::new(),
            kind: NewContactKind::Lead,
        };
        assert_eq!(
            pipedrive.create_contact(&access(&server), &caller).await,
            Ok("601".into())
        );
        let persons: Vec<Value> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|request| request.url.path() == "/api/v2/persons")
            .map(|request| serde_json::from_slice(&request.body).unwrap())
            .collect();
        assert_eq!(
            persons,
            [
                json!({
                    "name": "Mary Ann Smith",
                    "phones": [{ "value": "+14155550123", "primary": true, "label": "work" }],
                    "emails": [{ "value": "mary@acme.example", "primary": true, "label": "work" }],
                    "org_id": 91,
                    "custom_fields": { SCORE_FIELD: 42 }
                }),
                json!({
                    "name": "+14155550124",
                    "phones": [{ "value": "+14155550124", "primary": true, "label": "work" }],
                    "org_id": 77
                }),
            ]
        );
        let organizations = sent_bodies(&server).await;
        assert!(organizations.contains(&json!({ "name": "Acme" })));
        let field_pages = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|request| request.url.path() == "/api/v1/personFields")
            .count();
        assert_eq!(field_pages, 2, "read once, for the custom field, across its two pages");
    }

    #[tokio::test]
    async fn a_call_is_a_done_call_activity_with_an_escaped_note() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v2/activities"))
            .and(header("authorization", BEARER))
            .respond_with(ok(json!({ "id": 9001, "type": "call", "done": true })))
            .expect(2)
            .mount(&server)
            .await;
        let pipedrive = pipedrive(&server);
        let logged = pipedrive
            .log_call(&access(&server), &call(&format!("VoxReach call {CALL_ID}")))
            .await;
        assert_eq!(logged, Ok("9001".into()));
        let mut plain = call("Call with John Doe");
        plain.duration_seconds = None;
        plain.recording_url = Some("http://storage.example/abc.wav".into());
        plain.result = CallResult::NoAnswer;
        plain.direction = CallDirection::Inbound;
        plain.body = String::new();
        pipedrive.log_call(&access(&server), &plain).await.unwrap();
        let sent = sent_bodies(&server).await;
        assert_eq!(
            sent[0],
            json!({
                "subject": format!("VoxReach call {CALL_ID}"),
                "type": "call",
                "done": true,
                "due_date": "2026-03-04",
                "due_time": "15:00",
                "duration": "00:02",
                "participants": [{ "person_id": 512, "primary": true }],
                "note": "<p>Outbound call: connected</p>\
                         <p>Booked a demo &lt;Tuesday&gt; &amp; more.<br>Thanks</p>\
                         <p><a href=\"https://storage.vapi.ai/recordings/abc.wav?x=1&amp;y=2\">Recording</a></p>"
            })
        );
        assert_eq!(sent[1]["subject"], format!("Call with John Doe ({CALL_ID})"));
        assert_eq!(sent[1]["note"], "<p>Inbound call: no answer</p>", "no HTTP link");
        assert_eq!(sent[1].get("duration"), None);
    }

    #[test]
    fn durations_round_up_to_whole_minutes() {
        assert_eq!(hours_minutes(93.4).as_deref(), Some("00:02"));
        assert_eq!(hours_minutes(0.0).as_deref(), Some("00:00"));
        assert_eq!(hours_minutes(3600.0).as_deref(), Some("01:00"));
        assert_eq!(hours_minutes(5999.0).as_deref(), Some("01:40"));
        assert_eq!(hours_minutes(-1.0), None);
        assert_eq!(hours_minutes(f64::NAN), None);
    }

    #[tokio::test]
    async fn a_logged_call_is_found_among_the_persons_activities_by_our_call_id() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/activities"))
            .and(query_param("person_id", "512"))
            .and(query_param("limit", "100"))
            .and(query_param_is_missing("cursor"))
            .respond_with(ok_with(
                json!([
                    { "id": 1, "type": "lunch", "subject": "Lunch" },
                    { "id": 2, "type": "meeting", "subject": format!("Demo booked by VoxReach call {CALL_ID}") }
                ]),
                json!({ "next_cursor": "eyJpZCI6Mn0" }),
            ))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/activities"))
            .and(query_param("cursor", "eyJpZCI6Mn0"))
            .respond_with(ok_with(
                json!([{ "id": 9001, "type": "call", "subject": format!("VoxReach call {CALL_ID}") }]),
                json!({ "next_cursor": null }),
            ))
            .mount(&server)
            .await;
        let pipedrive = pipedrive(&server);
        assert_eq!(
            pipedrive
                .find_logged_call(&access(&server), &call("VoxReach call"))
                .await,
            Ok(Some("9001".into()))
        );
        assert_eq!(
            pipedrive
                .find_logged_call(
                    &access(&server),
                    &CallLog {
                        call_id: Uuid::nil(),
                        ..call("VoxReach call")
                    }
                )
                .await,
            Ok(None)
        );
        assert_eq!(sent_count(&server).await, 4);
    }

    #[tokio::test]
    async fn a_note_is_escaped_html_and_the_latest_is_read_as_plain_text() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/notes"))
            .and(header("authorization", BEARER))
            .respond_with(ok(json!({ "id": 4401, "person_id": 512 })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v1/notes"))
            .and(query_param("person_id", "501"))
            .and(query_param("sort", "add_time DESC"))
            .and(query_param("limit", "1"))
            .respond_with(ok(json!([{
                "id": 7001,
                "content": "<div><p>Asked about <b>pricing</b> &amp; SSO.</p><p>Call back in May.</p></div>"
            }])))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v1/notes"))
            .and(query_param("person_id", "502"))
            .respond_with(ok_with(
                Value::Null,
                json!({ "pagination": { "more_items_in_collection": false } }),
            ))
            .mount(&server)
            .await;
        let pipedrive = pipedrive(&server);
        let added = pipedrive
            .add_note(
                &access(&server),
                &note(
                    "512",
                    "Transcript: <b>hi</b> & bye\nline two",
                    at("2026-03-04T15:03:07Z"),
                ),
            )
            .await;
        assert_eq!(added, Ok("4401".into()));
        assert_eq!(
            sent_bodies(&server).await[0],
            json!({
                "content": "Transcript: &lt;b&gt;hi&lt;/b&gt; &amp; bye<br>line two",
                "person_id": 512,
                "add_time": "2026-03-04 15:03:07"
            })
        );
        assert_eq!(
            pipedrive.last_note(&access(&server), "501").await,
            Ok(Some("Asked about pricing & SSO. Call back in May.".into()))
        );
        assert_eq!(pipedrive.last_note(&access(&server), "502").await, Ok(None));
    }

    #[tokio::test]
    async fn a_meeting_is_an_open_meeting_activity_for_its_time() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v2/activities"))
            .respond_with(ok(json!({ "id": 9101, "type": "meeting" })))
            .expect(1)
            .mount(&server)
            .await;
        let meeting = MeetingLog {
            call_id: CALL_ID.parse().unwrap(),
            contact_id: "512".into(),
            title: "Demo with John Doe".into(),
            start: at("2026-03-10T09:30:00Z"),
            end: at("2026-03-10T10:00:00Z"),
            body: "Booked by VoxReach <AI> & confirmed".into(),
        };
        assert_eq!(
            pipedrive(&server).log_meeting(&access(&server), &meeting).await,
            Ok("9101".into())
        );
        assert_eq!(
            sent_bodies(&server).await[0],
            json!({
                "subject": "Demo with John Doe",
                "type": "meeting",
                "done": false,
                "due_date": "2026-03-10",
                "due_time": "09:30",
                "duration": "00:30",
                "participants": [{ "person_id": 512, "primary": true }],
                "note": "Booked by VoxReach &lt;AI&gt; &amp; confirmed"
            })
        );
    }

    #[tokio::test]
    async fn deals_are_created_in_their_stages_pipeline_moved_and_closed() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/stages/3"))
            .respond_with(ok(
                json!({ "id": 3, "name": "Demo scheduled", "pipeline_id": 2, "is_deleted": false }),
            ))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v2/deals"))
            .respond_with(ok(json!({ "id": 301, "status": "open" })))
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .and(path("/api/v2/deals/301"))
            .respond_with(ok(json!({ "id": 301 })))
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .and(path("/api/v2/activities/9001"))
            .respond_with(ok(json!({ "id": 9001 })))
            .mount(&server)
            .await;
        let pipedrive = pipedrive(&server);
        let access = access(&server);
        assert_eq!(
            pipedrive
                .create_deal(&access, &new_deal("512", "VoxReach: John Doe", "3", None))
                .await,
            Ok("301".into())
        );
        assert_eq!(
            pipedrive
                .create_deal(&access, &new_deal("512", "VoxReach: John Doe", "won", None))
                .await,
            Ok("301".into())
        );
        pipedrive
            .move_deal(&access, &deal_move("301", "3", Some("9001")))
            .await
            .unwrap();
        pipedrive
            .move_deal(&access, &deal_move("301", "lost", None))
            .await
            .unwrap();
        let writes: Vec<(String, Value)> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|request| request.method.as_str() != "GET")
            .map(|request| {
                (
                    format!("{} {}", request.method, request.url.path()),
                    serde_json::from_slice(&request.body).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            writes,
            [
                (
                    "POST /api/v2/deals".to_owned(),
                    json!({ "title": "VoxReach: John Doe", "person_id": 512, "stage_id": 3, "pipeline_id": 2 })
                ),
                (
                    "POST /api/v2/deals".to_owned(),
                    json!({ "title": "VoxReach: John Doe", "person_id": 512, "status": "won" })
                ),
                (
                    "PATCH /api/v2/deals/301".to_owned(),
                    json!({ "stage_id": 3, "pipeline_id": 2 })
                ),
                // The call's activity is shown on the deal it moved.
                ("PATCH /api/v2/activities/9001".to_owned(), json!({ "deal_id": 301 })),
                ("PATCH /api/v2/deals/301".to_owned(), json!({ "status": "lost" })),
            ]
        );
    }

    #[tokio::test]
    async fn a_stage_that_is_no_id_nor_won_or_lost_is_rejected_unsent() {
        let server = MockServer::start().await;
        let pipedrive = pipedrive(&server);
        let access = access(&server);
        assert_eq!(
            pipedrive
                .create_deal(&access, &new_deal("512", "Deal", "closedwon", None))
                .await,
            Err(ProviderError::Rejected { status: 400 })
        );
        assert_eq!(
            pipedrive.move_deal(&access, &deal_move("301", "Qualified", None)).await,
            Err(ProviderError::Rejected { status: 400 })
        );
        assert_eq!(
            pipedrive
                .move_deal(&access, &deal_move("not-a-deal", "won", None))
                .await,
            Err(ProviderError::Rejected { status: 400 })
        );
        assert_eq!(sent_count(&server).await, 0);
    }

    #[tokio::test]
    async fn the_open_deal_is_the_persons_latest_open_deal() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/deals"))
            .and(query_param("person_id", "512"))
            .and(query_param("status", "open"))
            .and(query_param("limit", "1"))
            .respond_with(ok(
                json!([{ "id": 301, "title": "VoxReach: John Doe", "status": "open" }]),
            ))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/deals"))
            .and(query_param("person_id", "513"))
            .respond_with(ok_with(json!([]), json!({ "next_cursor": null })))
            .mount(&server)
            .await;
        let pipedrive = pipedrive(&server);
        assert_eq!(
            pipedrive.open_deal(&access(&server), "512").await,
            Ok(Some("301".into()))
        );
        assert_eq!(pipedrive.open_deal(&access(&server), "513").await, Ok(None));
    }

    #[tokio::test]
    async fn stages_are_listed_across_cursor_pages_then_won_and_lost() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/stages"))
            .and(query_param_is_missing("cursor"))
            .respond_with(ok_with(
                json!([
                    { "id": 1, "name": "Lead in", "pipeline_id": 1, "is_deleted": false },
                    { "id": 2, "name": "Contact made", "pipeline_id": 1, "is_deleted": false }
                ]),
                json!({ "next_cursor": "eyJpZCI6Mn0" }),
            ))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v2/stages"))
            .and(query_param("cursor", "eyJpZCI6Mn0"))
            .respond_with(ok_with(
                json!([
                    { "id": 5, "name": "Onboarding", "pipeline_id": 2, "is_deleted": false },
                    { "id": 6, "name": "Old", "pipeline_id": 2, "is_deleted": true }
                ]),
                json!({ "next_cursor": null }),
            ))
            .mount(&server)
            .await;
        assert_eq!(
            pipedrive(&server).deal_stages(&access(&server)).await,
            Ok(vec!["1".into(), "2".into(), "5".into(), "won".into(), "lost".into()])
        );
    }

    #[tokio::test]
    async fn person_fields_are_listed_across_pages_and_labels_sent_as_option_ids() {
        let server = MockServer::start().await;
        mount_person_fields(&server).await;
        Mock::given(method("PATCH"))
            .and(path("/api/v2/persons/512"))
            .respond_with(ok(json!({ "id": 512 })))
            .expect(1)
            .mount(&server)
            .await;
        let pipedrive = pipedrive(&server);
        let access = access(&server);
        assert_eq!(
            pipedrive.contact_properties(&access).await,
            Ok(vec!["name".into(), "label".into(), SCORE_FIELD.into()]),
            "email and add_time cannot be written"
        );
        let change = BTreeMap::from([
            ("label".to_owned(), "not interested".to_owned()),
            (SCORE_FIELD.to_owned(), "Hot".to_owned()),
            ("marketing_status".to_owned(), "unsubscribed".to_owned()),
        ]);
        pipedrive
            .update_contact(&access, &contact_update("512", &change))
            .await
            .unwrap();
        let patch = server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .find(|request| request.method.as_str() == "PATCH")
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&patch.body).unwrap(),
            json!({
                "label_ids": [7],
                "marketing_status": "unsubscribed",
                "custom_fields": { SCORE_FIELD: 42 }
            })
        );
        let unknown_label = BTreeMap::from([("label".to_owned(), "VIP".to_owned())]);
        assert_eq!(
            pipedrive
                .update_contact(&access, &contact_update("512", &unknown_label))
                .await,
            Err(ProviderError::Rejected { status: 400 })
        );
    }

    #[tokio::test]
    async fn an_empty_or_unwritable_update_sends_nothing() {
        let server = MockServer::start().await;
        let pipedrive = pipedrive(&server);
        let access = access(&server);
        assert_eq!(
            pipedrive
                .update_contact(&access, &contact_update("512", &BTreeMap::new()))
                .await,
            Ok(())
        );
        let read_only = BTreeMap::from([("add_time".to_owned(), "2026-01-01".to_owned())]);
        assert_eq!(
            pipedrive
                .update_contact(&access, &contact_update("512", &read_only))
                .await,
            Err(ProviderError::Rejected { status: 400 })
        );
        assert_eq!(sent_count(&server).await, 0);
    }

    #[test]
    fn webhook_properties_are_read_by_pipedrives_names() {
        let settings = PipedriveApiSettings {
            api_hosts: ApiHosts::new(&["127.0.0.1"]),
            revoke_url: DEFAULT_REVOKE_URL.into(),
            client_id: "client-id".into(),
            client_secret: "client-secret".into(),
        };
        let properties = BTreeMap::from([
            ("name".to_owned(), "John Doe".to_owned()),
            ("email".to_owned(), " ".to_owned()),
            ("org_name".to_owned(), "Acme".to_owned()),
            ("owner_id".to_owned(), "7712".to_owned()),
        ]);
        assert_eq!(
            PipedriveClient::new(settings).unwrap().contact_of("512", &properties),
            CrmContact {
                id: "512".into(),
                name: Some("John Doe".into()),
                email: None,
                company: Some("Acme".into()),
                owner: Some("7712".into()),
            }
        );
    }

    #[tokio::test]
    async fn a_burst_429_is_rate_limited_for_the_windows_reset() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/users/me"))
            .and(header("authorization", "Bearer token-a"))
            .respond_with(
                pipedrive_error(429, "Request over limit")
                    .insert_header("x-ratelimit-limit", "80")
                    .insert_header("x-ratelimit-remaining", "0")
                    .insert_header("x-ratelimit-reset", "2"),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v1/users/me"))
            .and(header("authorization", "Bearer token-b"))
            .respond_with(
                pipedrive_error(429, "Request over limit")
                    .insert_header("retry-after", "3")
                    .insert_header("x-ratelimit-reset", "2"),
            )
            .mount(&server)
            .await;
        let pipedrive = pipedrive(&server);
        let error = pipedrive.account(&access_as(&server, "token-a")).await.unwrap_err();
        assert_eq!(
            error,
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert!(error.is_transient());
        assert_eq!(
            pipedrive.account(&access_as(&server, "token-b")).await,
            Err(ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            })
        );
    }

    #[tokio::test]
    async fn a_429_with_the_daily_budget_spent_stops_until_utc_midnight() {
        let server = MockServer::start().await;
        for (token, budget_header) in [
            ("token-a", "x-daily-ratelimit-token-remaining"),
            ("token-b", "x-daily-requests-left"),
        ] {
            Mock::given(method("POST"))
                .and(path("/api/v1/notes"))
                .and(header("authorization", format!("Bearer {token}").as_str()))
                .respond_with(
                    pipedrive_error(429, "Daily limit reached")
                        .insert_header("x-ratelimit-remaining", "0")
                        .insert_header("x-ratelimit-reset", "2")
                        .insert_header(budget_header, "0"),
                )
                .mount(&server)
                .await;
        }
        let pipedrive = pipedrive(&server);
        for token in ["token-a", "token-b"] {
            let error = pipedrive
                .add_note(
                    &access_as(&server, token),
                    &note("512", "Transcript", at("2026-03-04T15:03:00Z")),
                )
                .await
                .unwrap_err();
            let ProviderError::DailyLimitReached { resets_in: Some(wait) } = error.clone() else {
                panic!("expected the daily limit, got {error:?}");
            };
            assert!(wait > Duration::ZERO && wait <= Duration::from_secs(86_400), "{wait:?}");
            assert!(!error.is_transient(), "a spent day is not retried like a blip");
        }
        assert_eq!(
            until_utc_midnight(at("2026-03-04T22:30:00Z")),
            Duration::from_secs(90 * 60)
        );
    }

    #[tokio::test]
    async fn a_spent_burst_window_holds_the_tokens_next_request_until_it_resets() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/users/me"))
            .respond_with(
                ok(json!({ "id": 12, "company_id": 7744 }))
                    .insert_header("x-ratelimit-limit", "80")
                    .insert_header("x-ratelimit-remaining", "0")
                    .insert_header("x-ratelimit-reset", "1"),
            )
            .expect(2)
            .mount(&server)
            .await;
        let pipedrive = pipedrive(&server);
        let started = Instant::now();
        pipedrive.account(&access(&server)).await.unwrap();
        assert!(
            pipedrive.spent_windows.lock().unwrap().contains_key(&token_key(TOKEN)),
            "the token's window is spent"
        );
        assert!(!pipedrive
            .spent_windows
            .lock()
            .unwrap()
            .contains_key(&token_key("token-b")));
        pipedrive.account(&access(&server)).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "the second request went after {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn revoking_posts_the_refresh_token_with_basic_client_credentials() {
        let server = MockServer::start().await;
        let basic = base64::engine::general_purpose::STANDARD.encode("client-id:client-secret");
        Mock::given(method("POST"))
            .and(path("/oauth/revoke"))
            .and(header("authorization", format!("Basic {basic}").as_str()))
            .and(body_string("token=8d1f0e.refresh&token_type_hint=refresh_token"))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
        let pipedrive = pipedrive(&server);
        let granted = tokens(TOKEN, Some("8d1f0e.refresh"), Some(server.uri()));
        assert_eq!(pipedrive.revoke(&granted).await, Ok(true));
        let access_only = tokens(TOKEN, None, Some(server.uri()));
        assert_eq!(pipedrive.revoke(&access_only).await, Ok(false));
    }

    #[tokio::test]
    async fn failures_map_to_provider_errors_without_pipedrives_words() {
        let server = MockServer::start().await;
        let cases = [
            (
                "401",
                pipedrive_error(401, "Unauthorized: secret detail"),
                ProviderError::Unauthorized,
            ),
            (
                "404",
                pipedrive_error(404, "Deal not found: secret detail"),
                ProviderError::NotFound,
            ),
            (
                "400",
                pipedrive_error(400, "Validation failed: secret detail"),
                ProviderError::Rejected { status: 400 },
            ),
            (
                "403",
                pipedrive_error(403, "Scope and URL mismatch: secret detail"),
                ProviderError::Rejected { status: 403 },
            ),
            (
                "500",
                ResponseTemplate::new(500).set_body_string("Internal error: stack trace here"),
                ProviderError::Unavailable("Pipedrive answered 500 Internal Server Error".into()),
            ),
        ];
        let pipedrive = &pipedrive(&server);
        let access = &access(&server);
        assert_failures_map(
            &server,
            cases.into(),
            |deal| Mock::given(method("PATCH")).and(path(format!("/api/v2/deals/{deal}"))),
            |deal| async move { pipedrive.move_deal(access, &deal_move(deal, "won", None)).await },
            &["secret", "stack"],
        )
        .await;
    }
}
