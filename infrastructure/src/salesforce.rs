//! Salesforce's REST API (`/services/data/v62.0`) at each org's own
//! `instance_url`, with the bearer token of the org's grant: Contacts and
//! Leads found by phone (SOSL) or created, a call as a Task (with a
//! contact's update in the same `composite` round trip), transcripts as
//! Notes, meetings as Events, Opportunities created and moved, the fields
//! and stages settings may name (`describe`), and Bulk API 2.0 ingest jobs
//! for large volumes.
//!
//! Every answer reports the org's API usage (`Sforce-Limit-Info:
//! api-usage=used/max`, a rolling 24 hours). Once an org has used its
//! configured share of the budget, no request is sent until the next day
//! (UTC): the sync waits rather than spend the org's own integrations' quota.

use crate::http::{clipped, error_body, logged, read_answer, read_capped, refused, send, ApiHosts};
use crate::oauth::{AppCredentials, OAuthSettings};
use crate::sign_in::app_sign_in;
use application::clock::{Clock, SystemClock};
use application::crm::{
    BulkImport, CallLog, CallResult, CallUpdatingContact, ContactUpdate, CrmAccess, CrmAccount, CrmApi, CrmBulkApi,
    CrmContact, DealMove, MeetingLog, NewContact, NewDeal, NewNote,
};
use application::oauth::Tokens;
use application::providers::{Cause, ProviderError};
use async_trait::async_trait;
use chrono::{DateTime, Duration as Span, SecondsFormat, Utc};
use domain::crm::NewContactKind;
use domain::phone::PhoneNumber;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;
use uuid::Uuid;

pub const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";
/// Every org's `instance_url` is under this domain (`acme.my.salesforce.com`).
pub const DEFAULT_API_HOSTS: &str = "salesforce.com";
pub const API_VERSION: &str = "v62.0";
/// The REST API, and a refresh token to keep using it.
pub const SCOPES: &[&str] = &["api", "refresh_token"];
/// The share of an org's daily API budget we use at most.
pub const DEFAULT_BUDGET_SHARE: f64 = 0.8;

/// Salesforce's long text fields (Task `Description`, Note `Body`) hold at most this many characters.
const LONG_TEXT_CHARS: usize = 32_000;
/// The most of a note an agent's briefing carries.
const BRIEFING_NOTE_CHARS: usize = 500;
/// The most of a bulk job's result files we read.
const BULK_RESULTS_BYTES: usize = 64 * 1024 * 1024;
/// The Task columns a bulk import writes, in the order of [`task_of`]'s fields.
const TASK_COLUMNS: &[&str] = &[
    "Subject",
    "Status",
    "ActivityDate",
    "WhoId",
    "Description",
    "TaskSubtype",
    "CallType",
    "CallDisposition",
    "CallObject",
    "CallDurationInSeconds",
];
/// Days until a new Opportunity's (required) close date.
const CLOSE_IN_DAYS: i64 = 30;
/// A Lead needs a company; Salesforce's own placeholder when there is none.
const NO_COMPANY: &str = "[not provided]";
/// Key prefixes of the standard objects a contact id can be.
const LEAD_PREFIX: &str = "00Q";
const CONTACT_PREFIX: &str = "003";

/// The sign-in settings for Salesforce under `login_url` (production or
/// `https://test.salesforce.com` for sandboxes); client credentials in the body.
pub fn oauth_settings(app: AppCredentials, login_url: &str) -> OAuthSettings {
    let login = login_url.trim_end_matches('/');
    let auth_url = format!("{login}/services/oauth2/authorize");
    let token_url = format!("{login}/services/oauth2/token");
    app_sign_in(app, (&auth_url, &token_url), SCOPES)
}

/// How the client reaches Salesforce.
#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// Where grants are revoked (`{login_url}/services/oauth2/revoke`).
    pub login_url: String,
    /// The hosts an org's `instance_url` may name.
    pub api_hosts: ApiHosts,
    /// The share of each org's daily API budget we stop at (0 < share ≤ 1).
    pub budget_share: f64,
}

/// An org's API usage as its last answer reported it.
#[derive(Debug, Clone, Copy)]
struct Usage {
    used: u64,
    max: u64,
    seen_at: DateTime<Utc>,
}

/// The fields of one sObject that settings may name.
#[derive(Debug, Clone, Default)]
struct Described {
    updateable: BTreeSet<String>,
    /// Active values of the `StageName` picklist (Opportunity).
    stages: Vec<String>,
}

/// [`CrmApi`] for Salesforce.
#[derive(Clone)]
pub struct SalesforceClient {
    http: reqwest::Client,
    settings: SalesforceSettings,
    /// By instance host.
    usage: Arc<Mutex<HashMap<String, Usage>>>,
    /// `describe` answers by (instance host, sObject), for ten minutes.
    described: moka::future::Cache<(String, String), Arc<Described>>,
    clock: Arc<dyn Clock>,
}

/// What a composite request's subrequest answered.
#[derive(Debug, Deserialize)]
struct SubResponse {
    #[serde(default)]
    body: Value,
    #[serde(rename = "httpStatusCode")]
    status: u16,
    #[serde(rename = "referenceId")]
    reference_id: String,
}

#[derive(Debug, Deserialize)]
struct CompositeAnswer {
    #[serde(rename = "compositeResponse")]
    responses: Vec<SubResponse>,
}

#[derive(Debug, Deserialize)]
struct Created {
    id: String,
}

#[derive(Debug, Deserialize)]
struct QueryAnswer {
    #[serde(default)]
    records: Vec<Value>,
}

/// One subrequest of a composite request.
struct Subrequest {
    method: Method,
    /// Under the versioned API path (`sobjects/Task`).
    path: String,
    reference_id: &'static str,
    body: Value,
}

impl Subrequest {
    /// Creates a record of `object`, named `reference_id` in the answer (and in later subrequests).
    fn create(reference_id: &'static str, object: &str, body: Value) -> Self {
        Self {
            method: Method::POST,
            path: format!("sobjects/{object}"),
            reference_id,
            body,
        }
    }

    /// Changes the record `id` of `object`.
    fn update(reference_id: &'static str, object: &str, id: &str, body: Value) -> Self {
        Self {
            method: Method::PATCH,
            path: format!("sobjects/{object}/{id}"),
            reference_id,
            body,
        }
    }

    /// Files the call logged as Task `task` under the deal `deal_id`.
    fn filing_call(task: &str, deal_id: &str) -> Result<Self, ProviderError> {
        Ok(Self::update(
            "filedCall",
            "Task",
            record_id(task)?,
            json!({ "WhatId": deal_id }),
        ))
    }
}

impl SalesforceClient {
    pub fn new(settings: SalesforceSettings) -> Self {
        Self {
            http: crate::http::client(Duration::from_secs(30)),
            settings,
            usage: Arc::new(Mutex::new(HashMap::new())),
            described: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(600))
                .build(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads time (daily limits, dates sent to the CRM) from `clock`, the service's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The org's instance, if the grant named one we may call.
    fn instance(&self, access: &CrmAccess) -> Result<Url, ProviderError> {
        let granted = access
            .api_base
            .as_deref()
            .ok_or_else(|| ProviderError::Unavailable("the Salesforce grant names no instance".into()))?;
        self.settings
            .api_hosts
            .admit(granted)
            .ok_or_else(|| ProviderError::Unavailable("the Salesforce instance is not an allowed API host".into()))
    }

    /// `{instance}/services/data/v62.0/{path}`.
    fn url(&self, access: &CrmAccess, path: &str) -> Result<Url, ProviderError> {
        let instance = self.instance(access)?;
        instance
            .join(&format!("/services/data/{API_VERSION}/{path}"))
            .map_err(|_| ProviderError::Unavailable("the Salesforce instance URL cannot take a path".into()))
    }

    /// Refuses to spend more of the org's budget than its share.
    fn check_budget(&self, host: &str, now: DateTime<Utc>) -> Result<(), ProviderError> {
        let usage = self.usage.lock().expect("usage lock").get(host).copied();
        let Some(usage) = usage else { return Ok(()) };
        let over = usage.max > 0 && usage.used as f64 >= self.settings.budget_share * usage.max as f64;
        let resumes = next_utc_midnight(usage.seen_at);
        if over && now < resumes {
            return Err(ProviderError::DailyLimitReached {
                resets_in: (resumes - now).to_std().ok(),
            });
        }
        Ok(())
    }

    fn note_usage(&self, host: &str, response: &reqwest::Response, now: DateTime<Utc>) {
        let reported = response
            .headers()
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_limit_info);
        if let Some((used, max)) = reported {
            self.usage.lock().expect("usage lock").insert(
                host.to_owned(),
                Usage {
                    used,
                    max,
                    seen_at: now,
                },
            );
        }
    }

    /// Sends a request to the org within its budget; a failed answer is our error.
    async fn send(
        &self,
        access: &CrmAccess,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let host = self.instance(access)?.host_str().unwrap_or_default().to_owned();
        let now = self.clock.now();
        self.check_budget(&host, now)?;
        let response = send(request.bearer_auth(&access.token)).await?;
        self.note_usage(&host, &response, now);
        succeeded(response, now).await
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        access: &CrmAccess,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ProviderError> {
        let response = self.send(access, request).await?;
        read_answer(response, "unreadable Salesforce answer").await
    }

    async fn query(&self, access: &CrmAccess, soql: &str) -> Result<Vec<Value>, ProviderError> {
        let request = self.http.get(self.url(access, "query")?).query(&[("q", soql)]);
        let answer: QueryAnswer = self.json(access, request).await?;
        Ok(answer.records)
    }

    async fn create(&self, access: &CrmAccess, object: &str, body: &Value) -> Result<String, ProviderError> {
        let request = self
            .http
            .post(self.url(access, &format!("sobjects/{object}"))?)
            .json(body);
        let created: Created = self.json(access, request).await?;
        Ok(created.id)
    }

    async fn update(&self, access: &CrmAccess, object: &str, id: &str, body: &Value) -> Result<(), ProviderError> {
        let request = self
            .http
            .patch(self.url(access, &format!("sobjects/{object}/{}", record_id(id)?))?)
            .json(body);
        self.send(access, request).await.map(|_| ())
    }

    /// One `composite` round trip; each subrequest's answer by reference id.
    async fn composite(
        &self,
        access: &CrmAccess,
        all_or_none: bool,
        subrequests: Vec<Subrequest>,
    ) -> Result<HashMap<String, SubResponse>, ProviderError> {
        let requests: Vec<Value> = subrequests
            .into_iter()
            .map(|sub| {
                json!({
                    "method": sub.method.as_str(),
                    "url": format!("/services/data/{API_VERSION}/{}", sub.path),
                    "referenceId": sub.reference_id,
                    "body": sub.body,
                })
            })
            .collect();
        let request = self
            .http
            .post(self.url(access, "composite")?)
            .json(&json!({ "allOrNone": all_or_none, "compositeRequest": requests }));
        let answer: CompositeAnswer = self.json(access, request).await?;
        Ok(answer
            .responses
            .into_iter()
            .map(|sub| (sub.reference_id.clone(), sub))
            .collect())
    }

    /// An sObject's updateable fields and stage picklist, cached per org.
    async fn describe(&self, access: &CrmAccess, object: &str) -> Result<Arc<Described>, ProviderError> {
        let host = self.instance(access)?.host_str().unwrap_or_default().to_owned();
        let key = (host, object.to_owned());
        if let Some(found) = self.described.get(&key).await {
            return Ok(found);
        }
        #[derive(Deserialize)]
        struct Picklist {
            value: String,
            #[serde(default)]
            active: bool,
        }
        #[derive(Deserialize)]
        struct Field {
            name: String,
            #[serde(default)]
            updateable: bool,
            #[serde(default, rename = "picklistValues")]
            picklist: Vec<Picklist>,
        }
        #[derive(Deserialize)]
        struct Description {
            fields: Vec<Field>,
        }
        let request = self.http.get(self.url(access, &format!("sobjects/{object}/describe"))?);
        let description: Description = self.json(access, request).await?;
        let mut described = Described::default();
        for field in description.fields {
            if field.name == "StageName" {
                described.stages = field
                    .picklist
                    .iter()
                    .filter(|p| p.active)
                    .map(|p| p.value.clone())
                    .collect();
            }
            if field.updateable {
                described.updateable.insert(field.name);
            }
        }
        let described = Arc::new(described);
        self.described.insert(key, described.clone()).await;
        Ok(described)
    }

    /// The properties the object has, of those given (mappings may name the
    /// other kind's fields: a Lead and a Contact differ).
    async fn fields_of(
        &self,
        access: &CrmAccess,
        object: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Map<String, Value>, ProviderError> {
        if properties.is_empty() {
            return Ok(Map::new());
        }
        let described = self.describe(access, object).await?;
        Ok(properties
            .iter()
            .filter(|(name, _)| described.updateable.contains(*name))
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect())
    }

    async fn account_named(&self, access: &CrmAccess, name: &str) -> Result<Option<String>, ProviderError> {
        let soql = format!("SELECT Id FROM Account WHERE Name = {} LIMIT 1", quoted(name));
        Ok(self.query(access, &soql).await?.first().and_then(|r| text(r, "Id")))
    }
}

/// The sObject a contact id belongs to.
fn contact_object(contact_id: &str) -> Result<&'static str, ProviderError> {
    if contact_id.starts_with(LEAD_PREFIX) {
        Ok("Lead")
    } else if contact_id.starts_with(CONTACT_PREFIX) {
        Ok("Contact")
    } else {
        Err(ProviderError::Rejected { status: 400 })
    }
}

/// An sObject's API name (`Account`, `Call_Summary__c`) as it may appear in a path.
fn object_name(object: &str) -> Result<&str, ProviderError> {
    let well_formed = object.len() <= 80
        && object.starts_with(|c: char| c.is_ascii_alphabetic())
        && object.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if well_formed {
        Ok(object)
    } else {
        Err(ProviderError::Rejected { status: 400 })
    }
}

/// A Salesforce id as it may appear in a path or a query: 15 or 18 letters and digits.
fn record_id(id: &str) -> Result<&str, ProviderError> {
    let well_formed = matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if well_formed {
        Ok(id)
    } else {
        Err(ProviderError::Rejected { status: 400 })
    }
}

/// A SOQL string literal.
fn quoted(value: &str) -> String {
    let mut literal = String::with_capacity(value.len() + 2);
    literal.push('\'');
    for c in value.chars() {
        match c {
            '\\' => literal.push_str("\\\\"),
            '\'' => literal.push_str("\\'"),
            '\n' => literal.push_str("\\n"),
            '\r' => literal.push_str("\\r"),
            '\t' => literal.push_str("\\t"),
            c => literal.push(c),
        }
    }
    literal.push('\'');
    literal
}

fn text(record: &Value, field: &str) -> Option<String> {
    record[field].as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// `api-usage=10018/100000` → (10018, 100000).
fn parse_limit_info(header: &str) -> Option<(u64, u64)> {
    header.split(',').find_map(|part| {
        let (name, value) = part.trim().split_once('=')?;
        if name.trim() != "api-usage" {
            return None;
        }
        let (used, max) = value.trim().split_once('/')?;
        Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
    })
}

fn next_utc_midnight(at: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = at.date_naive() + Span::days(1);
    tomorrow.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

/// The answer when it is a success, else its failure as our error.
async fn succeeded(response: reqwest::Response, now: DateTime<Utc>) -> Result<reqwest::Response, ProviderError> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(Refusal::read(response).await.into_error(now))
    }
}

/// A Salesforce error answer, read for the log (never passed on).
struct Refusal {
    status: StatusCode,
    code: String,
}

impl Refusal {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let (body, parsed) = error_body(response).await;
        // REST errors are a list of {errorCode, message}; OAuth-style ones an object.
        let first = parsed.get(0).unwrap_or(&parsed);
        let code = first["errorCode"]
            .as_str()
            .or_else(|| first["error"].as_str())
            .unwrap_or_default()
            .to_owned();
        let message = logged(
            &first["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()),
        );
        tracing::warn!(status = status.as_u16(), code = %code, message = %message, "Salesforce answered with an error");
        Self { status, code }
    }

    fn into_error(self, now: DateTime<Utc>) -> ProviderError {
        let daily = self.status == StatusCode::FORBIDDEN && self.code == "REQUEST_LIMIT_EXCEEDED";
        let limit = daily.then(|| ProviderError::DailyLimitReached {
            resets_in: (next_utc_midnight(now) - now).to_std().ok(),
        });
        refused(self.status.as_u16(), limit, || {
            format!("Salesforce answered {}", self.status)
        })
    }
}

/// A composite subrequest's own failure, as our error.
fn sub_error(sub: &SubResponse) -> ProviderError {
    let code = sub
        .body
        .get(0)
        .and_then(|e| e["errorCode"].as_str())
        .unwrap_or_default();
    tracing::warn!(reference = %sub.reference_id, status = sub.status, code, "a Salesforce subrequest failed");
    refused(sub.status, None, || format!("Salesforce answered {}", sub.status))
}

fn sub_result<'a>(
    answers: &'a HashMap<String, SubResponse>,
    reference: &str,
) -> Result<&'a SubResponse, ProviderError> {
    let sub = answers
        .get(reference)
        .ok_or_else(|| ProviderError::Unavailable(format!("Salesforce did not answer {reference}").into()))?;
    if (200..300).contains(&sub.status) {
        Ok(sub)
    } else {
        Err(sub_error(sub))
    }
}

fn created_id(sub: &SubResponse) -> Result<String, ProviderError> {
    text(&sub.body, "id").ok_or_else(|| ProviderError::Unavailable("Salesforce created a record without an id".into()))
}

/// The Task that records a call (`TaskSubtype: Call`); `CallObject` holds
/// our call id, so a write whose answer was lost is found again.
fn task_of(call: &CallLog) -> Value {
    let mut description = call.body.clone();
    if let Some(recording) = &call.recording_url {
        description.push_str(&format!("\n\nRecording: {recording}"));
    }
    if let Some(transcript) = &call.transcript {
        description.push_str(&format!("\n\nTranscript:\n{transcript}"));
    }
    let disposition = match call.result {
        CallResult::Connected => "Connected",
        CallResult::NoAnswer => "No answer",
        CallResult::Busy => "Busy",
        CallResult::Voicemail => "Left voicemail",
        CallResult::Failed => "Failed",
    };
    let mut task = json!({
        "Subject": clipped(&call.title, 255),
        "Status": "Completed",
        "ActivityDate": call.started_at.date_naive().to_string(),
        "WhoId": call.contact_id,
        "Description": clipped(description.trim(), LONG_TEXT_CHARS),
        "TaskSubtype": "Call",
        "CallType": if call.is_inbound() { "Inbound" } else { "Outbound" },
        "CallDisposition": disposition,
        "CallObject": call.call_id.to_string(),
    });
    if let Some(seconds) = call.duration_seconds.filter(|s| s.is_finite() && *s >= 0.0) {
        task["CallDurationInSeconds"] = json!(seconds.round() as u64);
    }
    task
}

/// `Mary Ann Smith` → (`Mary Ann`, `Smith`): Salesforce requires the last name.
fn name_parts(contact: &NewContact) -> (Option<String>, String) {
    match contact.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => match name.rsplit_once(char::is_whitespace) {
            Some((first, last)) => (Some(first.trim().to_owned()), last.to_owned()),
            None => (None, name.to_owned()),
        },
        None => (None, contact.phone.as_str().to_owned()),
    }
}

fn contact_from(record: &Value) -> Option<CrmContact> {
    Some(CrmContact {
        id: text(record, "Id")?,
        name: text(record, "Name"),
        email: text(record, "Email"),
        company: text(record, "Company").or_else(|| text(&record["Account"], "Name")),
        owner: text(record, "OwnerId"),
    })
}

#[async_trait]
impl CrmApi for SalesforceClient {
    async fn account(&self, access: &CrmAccess) -> Result<CrmAccount, ProviderError> {
        let records = self.query(access, "SELECT Id FROM Organization LIMIT 1").await?;
        let account_id = records
            .first()
            .and_then(|r| text(r, "Id"))
            .ok_or_else(|| ProviderError::Unavailable("Salesforce named no organization".into()))?;
        Ok(CrmAccount {
            account_id,
            scopes: SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    async fn find_contact(&self, access: &CrmAccess, phone: &PhoneNumber) -> Result<Option<CrmContact>, ProviderError> {
        // Phone fields are searched by their digits, however they were typed:
        // the national number finds local formats, the full one international.
        let full = phone.as_str().trim_start_matches('+');
        let national = phone.national_number();
        let terms = if national.is_empty() {
            format!("\"{full}\"")
        } else {
            format!("\"{national}\" OR \"{full}\"")
        };
        let sosl = format!(
            "FIND {{{terms}}} IN PHONE FIELDS RETURNING \
             Contact(Id, Name, Email, Account.Name, OwnerId ORDER BY LastModifiedDate DESC LIMIT 5), \
             Lead(Id, Name, Email, Company, OwnerId WHERE IsConverted = false ORDER BY LastModifiedDate DESC LIMIT 5)"
        );
        #[derive(Deserialize)]
        struct Found {
            #[serde(default, rename = "searchRecords")]
            records: Vec<Value>,
        }
        let request = self.http.get(self.url(access, "search")?).query(&[("q", sosl)]);
        let found: Found = self.json(access, request).await?;
        // A Contact (a customer) is the better match than a Lead of the same number.
        let kind = |record: &&Value| record["attributes"]["type"].as_str() == Some("Contact");
        let best = found.records.iter().find(kind).or_else(|| found.records.first());
        Ok(best.and_then(contact_from))
    }

    async fn create_contact(&self, access: &CrmAccess, contact: &NewContact) -> Result<String, ProviderError> {
        let (first, last) = name_parts(contact);
        let object = match contact.kind {
            NewContactKind::Lead => "Lead",
            NewContactKind::Contact => "Contact",
        };
        let mut record = self.fields_of(access, object, &contact.properties).await?;
        record.insert("LastName".into(), json!(last));
        if let Some(first) = first {
            record.insert("FirstName".into(), json!(first));
        }
        record.insert("Phone".into(), json!(contact.phone.as_str()));
        if let Some(email) = contact.email.as_deref().filter(|e| !e.trim().is_empty()) {
            record.insert("Email".into(), json!(email.trim()));
        }
        let company = contact.company.as_deref().map(str::trim).filter(|c| !c.is_empty());
        match contact.kind {
            NewContactKind::Lead => {
                record.insert("Company".into(), json!(company.unwrap_or(NO_COMPANY)));
                self.create(access, "Lead", &Value::Object(record)).await
            }
            NewContactKind::Contact => {
                // Under the company's Account, or a new one named for the company (or the person).
                let account_name = company.map(str::to_owned).unwrap_or_else(|| last.clone());
                if let Some(account_id) = self.account_named(access, &account_name).await? {
                    record.insert("AccountId".into(), json!(account_id));
                    return self.create(access, "Contact", &Value::Object(record)).await;
                }
                record.insert("AccountId".into(), json!("@{newAccount.id}"));
                let subrequests = vec![
                    Subrequest::create("newAccount", "Account", json!({ "Name": account_name })),
                    Subrequest::create("newContact", "Contact", Value::Object(record)),
                ];
                let answers = self.composite(access, true, subrequests).await?;
                created_id(sub_result(&answers, "newContact")?)
            }
        }
    }

    async fn log_call(&self, access: &CrmAccess, call: &CallLog) -> Result<String, ProviderError> {
        record_id(&call.contact_id)?;
        self.create(access, "Task", &task_of(call)).await
    }

    async fn log_call_updating_contact(
        &self,
        access: &CrmAccess,
        logged: &CallUpdatingContact<'_>,
    ) -> Option<Result<(String, Result<(), ProviderError>), ProviderError>> {
        let CallUpdatingContact { call, properties } = *logged;
        let combined = async {
            let object = contact_object(record_id(&call.contact_id)?)?;
            let fields = self.fields_of(access, object, properties).await?;
            let mut subrequests = vec![Subrequest::create("callTask", "Task", task_of(call))];
            if !fields.is_empty() {
                let update = Subrequest::update("contactUpdate", object, &call.contact_id, Value::Object(fields));
                subrequests.push(update);
            }
            // Each stands alone: a refused field must not lose the call's Task.
            let answers = self.composite(access, false, subrequests).await?;
            let task = created_id(sub_result(&answers, "callTask")?)?;
            let updated = match answers.get("contactUpdate") {
                None => Ok(()),
                Some(_) => sub_result(&answers, "contactUpdate").map(|_| ()),
            };
            Ok((task, updated))
        };
        Some(combined.await)
    }

    async fn find_logged_call(&self, access: &CrmAccess, call: &CallLog) -> Result<Option<String>, ProviderError> {
        let soql = format!(
            "SELECT Id FROM Task WHERE CallObject = {} AND WhoId = {} LIMIT 1",
            quoted(&call.call_id.to_string()),
            quoted(record_id(&call.contact_id)?)
        );
        Ok(self.query(access, &soql).await?.first().and_then(|r| text(r, "Id")))
    }

    async fn add_note(&self, access: &CrmAccess, note: &NewNote<'_>) -> Result<String, ProviderError> {
        let NewNote { contact_id, body, .. } = *note;
        let title = body.lines().next().unwrap_or("VoxReach call");
        let note = json!({
            "ParentId": record_id(contact_id)?,
            "Title": clipped(title, 80),
            "Body": clipped(body, LONG_TEXT_CHARS),
        });
        self.create(access, "Note", &note).await
    }

    async fn last_note(&self, access: &CrmAccess, contact_id: &str) -> Result<Option<String>, ProviderError> {
        let soql = format!(
            "SELECT Body FROM Note WHERE ParentId = {} ORDER BY CreatedDate DESC LIMIT 1",
            quoted(record_id(contact_id)?)
        );
        let records = self.query(access, &soql).await?;
        Ok(records
            .first()
            .and_then(|r| text(r, "Body"))
            // Note bodies are plain text.
            .map(|body| {
                clipped(
                    &body.split_whitespace().collect::<Vec<_>>().join(" "),
                    BRIEFING_NOTE_CHARS,
                )
            })
            .filter(|body| !body.is_empty()))
    }

    async fn log_meeting(&self, access: &CrmAccess, meeting: &MeetingLog) -> Result<String, ProviderError> {
        let event = json!({
            "Subject": clipped(&meeting.title, 255),
            "StartDateTime": meeting.start.to_rfc3339_opts(SecondsFormat::Secs, true),
            "EndDateTime": meeting.end.to_rfc3339_opts(SecondsFormat::Secs, true),
            "WhoId": record_id(&meeting.contact_id)?,
            "Description": clipped(&meeting.body, LONG_TEXT_CHARS),
        });
        self.create(access, "Event", &event).await
    }

    async fn open_deal(&self, access: &CrmAccess, contact_id: &str) -> Result<Option<String>, ProviderError> {
        let contact_id = record_id(contact_id)?;
        if contact_object(contact_id)? == "Contact" {
            let soql = format!(
                "SELECT OpportunityId FROM OpportunityContactRole WHERE ContactId = {} \
                 AND Opportunity.IsClosed = false ORDER BY CreatedDate DESC LIMIT 1",
                quoted(contact_id)
            );
            return Ok(self
                .query(access, &soql)
                .await?
                .first()
                .and_then(|r| text(r, "OpportunityId")));
        }
        // A Lead has no Opportunities of its own: ours are the ones its calls are filed under.
        let soql = format!(
            "SELECT WhatId FROM Task WHERE WhoId = {} AND What.Type = 'Opportunity' \
             ORDER BY CreatedDate DESC LIMIT 20",
            quoted(contact_id)
        );
        let filed: Vec<String> = self
            .query(access, &soql)
            .await?
            .iter()
            .filter_map(|r| text(r, "WhatId"))
            .filter(|id| record_id(id).is_ok())
            .collect();
        if filed.is_empty() {
            return Ok(None);
        }
        let ids: Vec<String> = filed.iter().map(|id| quoted(id)).collect();
        let soql = format!(
            "SELECT Id FROM Opportunity WHERE Id IN ({}) AND IsClosed = false ORDER BY CreatedDate DESC LIMIT 1",
            ids.join(", ")
        );
        Ok(self.query(access, &soql).await?.first().and_then(|r| text(r, "Id")))
    }

    async fn create_deal(&self, access: &CrmAccess, deal: &NewDeal<'_>) -> Result<String, ProviderError> {
        let contact_id = record_id(deal.contact_id)?;
        let close = (self.clock.now() + Span::days(CLOSE_IN_DAYS)).date_naive().to_string();
        let opportunity = json!({ "Name": clipped(deal.name, 120), "StageName": deal.stage, "CloseDate": close });
        let mut subrequests = vec![Subrequest::create("deal", "Opportunity", opportunity)];
        if contact_object(contact_id)? == "Contact" {
            let role = json!({ "OpportunityId": "@{deal.id}", "ContactId": contact_id, "IsPrimary": true });
            subrequests.push(Subrequest::create("role", "OpportunityContactRole", role));
        }
        if let Some(task) = deal.logged_call {
            subrequests.push(Subrequest::filing_call(task, "@{deal.id}")?);
        }
        let answers = self.composite(access, true, subrequests).await?;
        for reference in ["role", "filedCall"] {
            if answers.contains_key(reference) {
                sub_result(&answers, reference)?;
            }
        }
        created_id(sub_result(&answers, "deal")?)
    }

    async fn move_deal(&self, access: &CrmAccess, change: &DealMove<'_>) -> Result<(), ProviderError> {
        let (deal_id, stage) = (record_id(change.deal_id)?, change.stage);
        let Some(task) = change.logged_call else {
            return self
                .update(access, "Opportunity", deal_id, &json!({ "StageName": stage }))
                .await;
        };
        let subrequests = vec![
            Subrequest::update("deal", "Opportunity", deal_id, json!({ "StageName": stage })),
            Subrequest::filing_call(task, deal_id)?,
        ];
        let answers = self.composite(access, true, subrequests).await?;
        sub_result(&answers, "deal")?;
        sub_result(&answers, "filedCall").map(|_| ())
    }

    async fn update_contact(&self, access: &CrmAccess, update: &ContactUpdate<'_>) -> Result<(), ProviderError> {
        let ContactUpdate { contact_id, properties } = *update;
        let object = contact_object(record_id(contact_id)?)?;
        let fields = self.fields_of(access, object, properties).await?;
        if fields.is_empty() {
            return Ok(());
        }
        self.update(access, object, contact_id, &Value::Object(fields)).await
    }

    fn contact_of(&self, contact_id: &str, properties: &BTreeMap<String, String>) -> CrmContact {
        let field = |name: &str| properties.get(name).filter(|v| !v.is_empty()).cloned();
        let name = field("Name").or_else(|| {
            let joined = [field("FirstName"), field("LastName")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            (!joined.is_empty()).then_some(joined)
        });
        CrmContact {
            id: contact_id.to_owned(),
            name,
            email: field("Email"),
            company: field("Company"),
            owner: field("OwnerId"),
        }
    }

    async fn contact_properties(&self, access: &CrmAccess) -> Result<Vec<String>, ProviderError> {
        // Mappings apply to whichever a caller is; each write keeps the fields its object has.
        let lead = self.describe(access, "Lead").await?;
        let contact = self.describe(access, "Contact").await?;
        Ok(lead.updateable.union(&contact.updateable).cloned().collect())
    }

    async fn deal_stages(&self, access: &CrmAccess) -> Result<Vec<String>, ProviderError> {
        Ok(self.describe(access, "Opportunity").await?.stages.clone())
    }

    fn writes_custom_records(&self) -> bool {
        true
    }

    async fn object_fields(&self, access: &CrmAccess, object: &str) -> Result<Vec<String>, ProviderError> {
        let described = self.describe(access, object_name(object)?).await?;
        Ok(described.updateable.iter().cloned().collect())
    }

    async fn create_record(
        &self,
        access: &CrmAccess,
        object: &str,
        fields: &BTreeMap<String, String>,
    ) -> Result<String, ProviderError> {
        let object = object_name(object)?;
        let record = self.fields_of(access, object, fields).await?;
        self.create(access, object, &Value::Object(record)).await
    }

    async fn revoke(&self, tokens: &Tokens) -> Result<bool, ProviderError> {
        // Revoking the refresh token ends the grant's sessions too.
        let token = tokens.refresh_token.as_deref().unwrap_or(&tokens.access_token);
        let url = format!(
            "{}/services/oauth2/revoke",
            self.settings.login_url.trim_end_matches('/')
        );
        let response = send(self.http.post(url).form(&[("token", token)])).await?;
        succeeded(response, self.clock.now()).await?;
        Ok(true)
    }
}

// ---------------------------------------------------------------------------
// Bulk API 2.0: one ingest job logs many calls as Tasks.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobInfo {
    id: String,
    state: String,
    #[serde(default)]
    error_message: Option<String>,
}

impl SalesforceClient {
    /// `jobs/ingest/{id}/…` as a URL under the versioned API.
    fn job_url(&self, access: &CrmAccess, id: &str, tail: &str) -> Result<Url, ProviderError> {
        let id_ok = !id.is_empty() && id.len() <= 18 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !id_ok {
            return Err(ProviderError::Rejected { status: 400 });
        }
        self.url(access, &format!("jobs/ingest/{id}{tail}"))
    }

    /// A result file of a finished job, as rows by column name.
    async fn job_results(
        &self,
        access: &CrmAccess,
        id: &str,
        which: &str,
    ) -> Result<Vec<HashMap<String, String>>, ProviderError> {
        let request = self
            .http
            .get(self.job_url(access, id, &format!("/{which}/"))?)
            .header("accept", "text/csv");
        let response = self.send(access, request).await?;
        let body = read_capped(response, BULK_RESULTS_BYTES)
            .await
            .map_err(crate::http::no_answer)?;
        let mut reader = csv::Reader::from_reader(body.as_slice());
        let headers = reader.headers().map_err(unreadable_bulk_results)?.clone();
        reader
            .records()
            .map(|record| {
                let record = record.map_err(unreadable_bulk_results)?;
                Ok(headers
                    .iter()
                    .zip(record.iter())
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .collect())
            })
            .collect()
    }
}

/// The calls' Tasks as the CSV an ingest job takes.
fn tasks_csv(calls: &[CallLog]) -> Result<Vec<u8>, ProviderError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let broken =
        |e: csv::Error| ProviderError::Unavailable(Cause::with_source(format!("writing the bulk file: {e}"), e));
    writer.write_record(TASK_COLUMNS).map_err(broken)?;
    for call in calls {
        record_id(&call.contact_id)?;
        let task = task_of(call);
        let cell = |column: &str| match &task[column] {
            Value::Null => String::new(),
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        writer
            .write_record(TASK_COLUMNS.iter().map(|column| cell(column)))
            .map_err(broken)?;
    }
    writer.into_inner().map_err(|e| {
        let e = e.into_error();
        ProviderError::Unavailable(Cause::with_source(format!("writing the bulk file: {e}"), e))
    })
}

fn unreadable_bulk_results(error: csv::Error) -> ProviderError {
    ProviderError::Unavailable(Cause::with_source(format!("unreadable bulk results: {error}"), error))
}

/// The error code of a failed row (`REQUIRED_FIELD_MISSING:Required fields are missing: [WhoId]:WhoId--`).
fn row_error_code(error: &str) -> String {
    let code = error.split(':').next().unwrap_or_default().trim();
    let well_formed = !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    if well_formed {
        code.to_owned()
    } else {
        "ROW_REFUSED".to_owned()
    }
}

#[async_trait]
impl CrmBulkApi for SalesforceClient {
    async fn start_call_import(&self, access: &CrmAccess, calls: &[CallLog]) -> Result<String, ProviderError> {
        let csv = tasks_csv(calls)?;
        let request = self.http.post(self.url(access, "jobs/ingest")?).json(&json!({
            "object": "Task",
            "operation": "insert",
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }));
        let job: JobInfo = self.json(access, request).await?;
        let upload = self
            .http
            .put(self.job_url(access, &job.id, "/batches")?)
            .header("content-type", "text/csv")
            .body(csv);
        self.send(access, upload).await?;
        let close = self
            .http
            .patch(self.job_url(access, &job.id, "")?)
            .json(&json!({ "state": "UploadComplete" }));
        self.send(access, close).await?;
        Ok(job.id)
    }

    async fn call_import(&self, access: &CrmAccess, job_id: &str) -> Result<BulkImport, ProviderError> {
        let request = self.http.get(self.job_url(access, job_id, "")?);
        let job: JobInfo = self.json(access, request).await?;
        match job.state.as_str() {
            "Open" | "UploadComplete" | "InProgress" => return Ok(BulkImport::Running),
            "JobComplete" => {}
            state => {
                let message = logged(&job.error_message.unwrap_or_default());
                tracing::warn!(job = %job.id, state, message = %message, "a Salesforce bulk job failed");
                return Ok(BulkImport::Failed {
                    reason: format!("bulk job {}", state.to_ascii_lowercase()),
                });
            }
        }
        let call_of = |row: &HashMap<String, String>| row.get("CallObject").and_then(|id| id.parse::<Uuid>().ok());
        let logged = self
            .job_results(access, job_id, "successfulResults")
            .await?
            .iter()
            .filter_map(|row| Some((call_of(row)?, row.get("sf__Id").filter(|id| !id.is_empty())?.clone())))
            .collect();
        let refused = self
            .job_results(access, job_id, "failedResults")
            .await?
            .iter()
            .filter_map(|row| Some((call_of(row)?, row_error_code(row.get("sf__Error")?))))
            .collect();
        Ok(BulkImport::Complete { logged, refused })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_test_support::{call_updating_contact, deal_move, new_deal};
    use application::crm::CallDirection;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockBuilder, MockServer, Request, ResponseTemplate};

    const TOKEN: &str = "00D5e000000abcd!AQ4AQF";
    const CONTACT: &str = "0035e00000AbCdEAAV";
    const LEAD: &str = "00Q5e00000AbCdEEA1";
    const TASK: &str = "00T5e00000AbCdEEA1";
    const DEAL: &str = "0065e00000AbCdEAAV";
    const CALL_ID: &str = "6f1c2a4e-8d3b-4c1a-9e2f-1a2b3c4d5e6f";
    const DATA: &str = "/services/data/v62.0";

    fn client(server: &MockServer, share: f64) -> SalesforceClient {
        SalesforceClient::new(SalesforceSettings {
            login_url: server.uri(),
            api_hosts: ApiHosts::new(&["127.0.0.1"]),
            budget_share: share,
        })
    }

    fn access(server: &MockServer) -> CrmAccess {
        CrmAccess {
            token: TOKEN.into(),
            api_base: Some(server.uri()),
        }
    }

    fn call() -> CallLog {
        CallLog {
            call_id: CALL_ID.parse().unwrap(),
            contact_id: LEAD.into(),
            direction: CallDirection::Outbound,
            started_at: "2026-03-04T15:00:00Z".parse().unwrap(),
            duration_seconds: Some(184.4),
            our_number: Some("+14155550100".into()),
            customer_number: "+14155550123".into(),
            title: format!("VoxReach call {CALL_ID}"),
            body: "Booked a demo.".into(),
            transcript: Some("AI: Hello\nUser: Hi".into()),
            recording_url: Some("https://storage.vapi.ai/r.wav".into()),
            result: CallResult::Connected,
        }
    }

    /// A call on [`LEAD`] Salesforce has no Task for.
    fn unknown_call() -> CallLog {
        CallLog {
            call_id: Uuid::nil(),
            ..call()
        }
    }

    /// A fake that gives `answer` to every `method` request.
    async fn answering(method_name: &str, answer: ResponseTemplate) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method(method_name))
            .respond_with(answer)
            .mount(&server)
            .await;
        server
    }

    /// An error as Salesforce's REST API answers it.
    fn salesforce_error(status: u16, message: &str, code: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(json!([{ "message": message, "errorCode": code }]))
    }

    /// A SOQL query as the client sends it.
    fn query(soql: &str) -> MockBuilder {
        Mock::given(method("GET"))
            .and(path(format!("{DATA}/query")))
            .and(query_param("q", soql))
    }

    async fn describe(server: &MockServer, object: &str, fields: Value) {
        Mock::given(method("GET"))
            .and(path(format!("{DATA}/sobjects/{object}/describe")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "name": object, "fields": fields })))
            .mount(server)
            .await;
    }

    fn field(name: &str) -> Value {
        json!({ "name": name, "updateable": true, "type": "string" })
    }

    async fn bodies(server: &MockServer) -> Vec<(String, Value)> {
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r: &Request| {
                (
                    format!("{} {}", r.method, r.url.path()),
                    serde_json::from_slice(&r.body).unwrap_or(Value::Null),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn requests_go_to_the_grants_instance_and_only_an_allowed_one() {
        let server = MockServer::start().await;
        query("SELECT Id FROM Organization LIMIT 1")
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "totalSize": 1, "done": true,
                "records": [{ "attributes": { "type": "Organization" }, "Id": "00D5e000000abcdEAA" }]
            })))
            .expect(1)
            .mount(&server)
            .await;
        let salesforce = client(&server, DEFAULT_BUDGET_SHARE);
        let account = salesforce.account(&access(&server)).await.unwrap();
        assert_eq!(account.account_id, "00D5e000000abcdEAA");
        let elsewhere = CrmAccess {
            token: TOKEN.into(),
            api_base: Some("https://attacker.example.com".into()),
        };
        assert!(matches!(
            salesforce.account(&elsewhere).await,
            Err(ProviderError::Unavailable(_))
        ));
        assert!(matches!(
            salesforce.account(&CrmAccess::bearer(TOKEN)).await,
            Err(ProviderError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn an_expired_session_is_unauthorized_and_its_message_stays_in_the_log() {
        let server = answering(
            "GET",
            salesforce_error(401, "Session expired or invalid", "INVALID_SESSION_ID"),
        )
        .await;
        let error = client(&server, DEFAULT_BUDGET_SHARE)
            .find_contact(&access(&server), &PhoneNumber::parse("+14155550123").unwrap())
            .await
            .unwrap_err();
        assert_eq!(error, ProviderError::Unauthorized);
        assert!(!error.to_string().contains("Session expired"));
    }

    #[tokio::test]
    async fn callers_are_searched_in_phone_fields_preferring_a_contact_to_a_lead() {
        let server = MockServer::start().await;
        let sosl = "FIND {\"4155550123\" OR \"14155550123\"} IN PHONE FIELDS RETURNING \
                    Contact(Id, Name, Email, Account.Name, OwnerId ORDER BY LastModifiedDate DESC LIMIT 5), \
                    Lead(Id, Name, Email, Company, OwnerId WHERE IsConverted = false ORDER BY LastModifiedDate DESC LIMIT 5)";
        Mock::given(method("GET"))
            .and(path(format!("{DATA}/search")))
            .and(query_param("q", sosl))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "searchRecords": [
                { "attributes": { "type": "Lead" }, "Id": LEAD, "Name": "Old Lead", "Company": "Acme" },
                { "attributes": { "type": "Contact" }, "Id": CONTACT, "Name": "Mary Smith",
                  "Email": "mary@acme.example", "Account": { "Name": "Acme Inc" }, "OwnerId": "0055e000001" }
            ]})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("{DATA}/search")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "searchRecords": [] })))
            .mount(&server)
            .await;
        let salesforce = client(&server, DEFAULT_BUDGET_SHARE);
        let found = salesforce
            .find_contact(&access(&server), &PhoneNumber::parse("+14155550123").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, CONTACT);
        assert_eq!(found.company.as_deref(), Some("Acme Inc"));
        assert_eq!(found.owner.as_deref(), Some("0055e000001"));
        let missing = salesforce
            .find_contact(&access(&server), &PhoneNumber::parse("+442079460958").unwrap())
            .await
            .unwrap();
        assert_eq!(missing, None);
    }

    #[tokio::test]
    async fn an_unknown_caller_becomes_a_lead_with_mapped_fields_the_lead_has() {
        let server = MockServer::start().await;
        describe(
            &server,
            "Lead",
            json!([field("LastName"), field("Call_Sentiment__c"), field("Company")]),
        )
        .await;
        Mock::given(method("POST"))
            .and(path(format!("{DATA}/sobjects/Lead")))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(json!({ "id": LEAD, "success": true, "errors": [] })),
            )
            .expect(1)
            .mount(&server)
            .await;
        let contact = NewContact {
            phone: PhoneNumber::parse("+14155550123").unwrap(),
            name: Some("Mary Ann Smith".into()),
            email: None,
            company: None,
            properties: BTreeMap::from([
                ("Call_Sentiment__c".to_owned(), "positive".to_owned()),
                ("Contact_Only__c".to_owned(), "x".to_owned()),
            ]),
            kind: NewContactKind::Lead,
        };
        let id = client(&server, DEFAULT_BUDGET_SHARE)
            .create_contact(&access(&server), &contact)
            .await
            .unwrap();
        assert_eq!(id, LEAD);
        let sent = bodies(&server).await;
        assert_eq!(
            sent.last().unwrap().1,
            json!({ "FirstName": "Mary Ann", "LastName": "Smith", "Phone": "+14155550123",
                    "Company": "[not provided]", "Call_Sentiment__c": "positive" })
        );
    }

    #[tokio::test]
    async fn a_contact_is_created_under_a_new_account_in_one_composite_request() {
        let server = MockServer::start().await;
        query("SELECT Id FROM Account WHERE Name = 'O\\'Brien & Co' LIMIT 1")
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "records": [] })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(format!("{DATA}/composite")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "compositeResponse": [
                { "body": { "id": "0015e00000XyZaBAAV", "success": true, "errors": [] }, "httpHeaders": {}, "httpStatusCode": 201, "referenceId": "newAccount" },
                { "body": { "id": CONTACT, "success": true, "errors": [] }, "httpHeaders": {}, "httpStatusCode": 201, "referenceId": "newContact" }
            ]})))
            .expect(1)
            .mount(&server)
            .await;
        let contact = NewContact {
            phone: PhoneNumber::parse("+14155550123").unwrap(),
            name: Some("Pat".into()),
            email: Some("pat@obrien.example".into()),
            company: Some("O'Brien & Co".into()),
            properties: BTreeMap::new(),
            kind: NewContactKind::Contact,
        };
        let id = client(&server, DEFAULT_BUDGET_SHARE)
            .create_contact(&access(&server), &contact)
            .await
            .unwrap();
        assert_eq!(id, CONTACT);
        let composite = bodies(&server).await.pop().unwrap().1;
        assert_eq!(composite["allOrNone"], true);
        let requests = composite["compositeRequest"].as_array().unwrap();
        assert_eq!(requests[0]["url"], "/services/data/v62.0/sobjects/Account");
        assert_eq!(requests[0]["body"], json!({ "Name": "O'Brien & Co" }));
        assert_eq!(requests[1]["body"]["AccountId"], "@{newAccount.id}");
        assert_eq!(requests[1]["body"]["LastName"], "Pat");
    }

    #[tokio::test]
    async fn a_call_is_a_completed_call_task_carrying_our_call_id() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("{DATA}/sobjects/Task")))
            .and(body_json(json!({
                "Subject": format!("VoxReach call {CALL_ID}"),
                "Status": "Completed",
                "ActivityDate": "2026-03-04",
                "WhoId": LEAD,
                "Description": "Booked a demo.\n\nRecording: https://storage.vapi.ai/r.wav\n\nTranscript:\nAI: Hello\nUser: Hi",
                "TaskSubtype": "Call",
                "CallType": "Outbound",
                "CallDisposition": "Connected",
                "CallObject": CALL_ID,
                "CallDurationInSeconds": 184
            })))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "id": TASK, "success": true, "errors": [] })))
            .expect(1)
            .mount(&server)
            .await;
        query(format!("SELECT Id FROM Task WHERE CallObject = '{CALL_ID}' AND WhoId = '{LEAD}' LIMIT 1").as_str())
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "records": [{ "Id": TASK }] })))
            .expect(1)
            .mount(&server)
            .await;
        let salesforce = client(&server, DEFAULT_BUDGET_SHARE);
        assert_eq!(salesforce.log_call(&access(&server), &call()).await, Ok(TASK.into()));
        assert_eq!(
            salesforce.find_logged_call(&access(&server), &call()).await,
            Ok(Some(TASK.into()))
        );
    }

    #[tokio::test]
    async fn the_task_and_the_leads_update_go_in_one_composite_and_fail_apart() {
        let server = MockServer::start().await;
        describe(&server, "Lead", json!([field("Status"), field("Call_Sentiment__c")])).await;
        Mock::given(method("POST"))
            .and(path(format!("{DATA}/composite")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "compositeResponse": [
                { "body": { "id": TASK, "success": true, "errors": [] }, "httpHeaders": {}, "httpStatusCode": 201, "referenceId": "callTask" },
                { "body": [{ "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "message": "Status: bad value for restricted picklist field: Nope" }],
                  "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "contactUpdate" }
            ]})))
            .expect(2)
            .mount(&server)
            .await;
        let salesforce = client(&server, DEFAULT_BUDGET_SHARE);
        let properties = BTreeMap::from([("Status".to_owned(), "Nope".to_owned())]);
        let (task, updated) = salesforce
            .log_call_updating_contact(&access(&server), &call_updating_contact(&call(), &properties))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(task, TASK);
        assert_eq!(updated, Err(ProviderError::Rejected { status: 400 }));
        let composite = bodies(&server).await.pop().unwrap().1;
        assert_eq!(
            composite["allOrNone"], false,
            "a refused field must not cost the call's Task"
        );
        let requests = composite["compositeRequest"].as_array().unwrap();
        assert_eq!(requests[0]["url"], "/services/data/v62.0/sobjects/Task");
        assert_eq!(requests[1]["method"], "PATCH");
        assert_eq!(requests[1]["url"], format!("/services/data/v62.0/sobjects/Lead/{LEAD}"));
        assert_eq!(requests[1]["body"], json!({ "Status": "Nope" }));

        // Both succeeding: the same round trip.
        server.reset().await;
        describe(&server, "Lead", json!([field("Status")])).await;
        Mock::given(method("POST"))
            .and(path(format!("{DATA}/composite")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "compositeResponse": [
                { "body": { "id": TASK, "success": true, "errors": [] }, "httpHeaders": {}, "httpStatusCode": 201, "referenceId": "callTask" },
                { "body": null, "httpHeaders": {}, "httpStatusCode": 204, "referenceId": "contactUpdate" }
            ]})))
            .expect(1)
            .mount(&server)
            .await;
        let (task, updated) = salesforce
            .log_call_updating_contact(&access(&server), &call_updating_contact(&call(), &properties))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((task.as_str(), updated), (TASK, Ok(())));
    }

    #[tokio::test]
    async fn a_deal_is_an_opportunity_with_the_call_filed_under_it() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("{DATA}/composite")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "compositeResponse": [
                { "body": { "id": DEAL, "success": true, "errors": [] }, "httpHeaders": {}, "httpStatusCode": 201, "referenceId": "deal" },
                { "body": { "id": "00K5e00000AbCdEEA1", "success": true, "errors": [] }, "httpHeaders": {}, "httpStatusCode": 201, "referenceId": "role" },
                { "body": null, "httpHeaders": {}, "httpStatusCode": 204, "referenceId": "filedCall" }
            ]})))
            .expect(1)
            .mount(&server)
            .await;
        let salesforce = client(&server, DEFAULT_BUDGET_SHARE);
        let deal = salesforce
            .create_deal(
                &access(&server),
                &new_deal(CONTACT, "Mary Smith (VoxReach)", "Needs Analysis", Some(TASK)),
            )
            .await
            .unwrap();
        assert_eq!(deal, DEAL);
        let composite = bodies(&server).await.pop().unwrap().1;
        let requests = composite["compositeRequest"].as_array().unwrap();
        assert_eq!(requests[0]["body"]["StageName"], "Needs Analysis");
        assert!(
            requests[0]["body"]["CloseDate"].as_str().is_some(),
            "CloseDate is required"
        );
        assert_eq!(requests[1]["body"]["OpportunityId"], "@{deal.id}");
        assert_eq!(requests[1]["body"]["ContactId"], CONTACT);
        assert_eq!(requests[2]["url"], format!("/services/data/v62.0/sobjects/Task/{TASK}"));
        assert_eq!(requests[2]["body"], json!({ "WhatId": "@{deal.id}" }));

        // Moving without a call to file is one PATCH.
        Mock::given(method("PATCH"))
            .and(path(format!("{DATA}/sobjects/Opportunity/{DEAL}")))
            .and(body_json(json!({ "StageName": "Closed Won" })))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            salesforce
                .move_deal(&access(&server), &deal_move(DEAL, "Closed Won", None))
                .await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_leads_open_deal_is_found_through_the_calls_filed_under_it() {
        let server = MockServer::start().await;
        query(
            format!(
                "SELECT WhatId FROM Task WHERE WhoId = '{LEAD}' AND What.Type = 'Opportunity' \
                     ORDER BY CreatedDate DESC LIMIT 20"
            )
            .as_str(),
        )
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "records": [{ "WhatId": DEAL }] })))
        .mount(&server)
        .await;
        query(
            format!(
                "SELECT Id FROM Opportunity WHERE Id IN ('{DEAL}') AND IsClosed = false \
                     ORDER BY CreatedDate DESC LIMIT 1"
            )
            .as_str(),
        )
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "records": [{ "Id": DEAL }] })))
        .mount(&server)
        .await;
        let salesforce = client(&server, DEFAULT_BUDGET_SHARE);
        assert_eq!(
            salesforce.open_deal(&access(&server), LEAD).await,
            Ok(Some(DEAL.into()))
        );
        assert_eq!(
            salesforce.open_deal(&access(&server), "not-an-id").await,
            Err(ProviderError::Rejected { status: 400 }),
            "ids are checked before they go into a query"
        );
    }

    #[tokio::test]
    async fn stages_and_fields_come_from_describe_once() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("{DATA}/sobjects/Opportunity/describe")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "fields": [
                { "name": "StageName", "updateable": true, "picklistValues": [
                    { "value": "Prospecting", "active": true },
                    { "value": "Needs Analysis", "active": true },
                    { "value": "Retired Stage", "active": false },
                    { "value": "Closed Won", "active": true }
                ]}
            ]})))
            .expect(1)
            .mount(&server)
            .await;
        describe(
            &server,
            "Lead",
            json!([field("Status"), { "name": "IsConverted", "updateable": false }]),
        )
        .await;
        describe(&server, "Contact", json!([field("Title"), field("Call_Sentiment__c")])).await;
        let salesforce = client(&server, DEFAULT_BUDGET_SHARE);
        let stages = salesforce.deal_stages(&access(&server)).await.unwrap();
        assert_eq!(stages, ["Prospecting", "Needs Analysis", "Closed Won"]);
        salesforce.deal_stages(&access(&server)).await.unwrap();
        let properties = salesforce.contact_properties(&access(&server)).await.unwrap();
        assert_eq!(properties, ["Call_Sentiment__c", "Status", "Title"]);
    }

    #[tokio::test]
    async fn near_the_budget_share_requests_stop_until_the_next_day() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("{DATA}/query")))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("Sforce-Limit-Info", "api-usage=79999/100000")
                    .set_body_json(json!({ "records": [{ "Id": TASK }] })),
            )
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("{DATA}/query")))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("Sforce-Limit-Info", "api-usage=80000/100000")
                    .set_body_json(json!({ "records": [] })),
            )
            .mount(&server)
            .await;
        let salesforce = client(&server, 0.8);
        let found = |s: &SalesforceClient| {
            let s = s.clone();
            let access = access(&server);
            async move { s.find_logged_call(&access, &unknown_call()).await }
        };
        assert_eq!(
            found(&salesforce).await,
            Ok(Some(TASK.into())),
            "79.999% used: still below the share"
        );
        assert_eq!(found(&salesforce).await, Ok(None), "this answer reports 80% used");
        let paused = found(&salesforce).await.unwrap_err();
        let ProviderError::DailyLimitReached { resets_in: Some(wait) } = paused else {
            panic!("expected the daily limit, got {paused:?}");
        };
        assert!(wait <= Duration::from_secs(24 * 3600));
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            2,
            "nothing is sent once paused"
        );
        // A client with a higher share still goes on.
        assert!(client(&server, 0.9)
            .find_logged_call(&access(&server), &unknown_call())
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn the_limit_exceeded_answer_is_the_daily_limit() {
        let refusal = salesforce_error(403, "TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED");
        let server = answering("POST", refusal).await;
        let error = client(&server, DEFAULT_BUDGET_SHARE)
            .log_call(&access(&server), &call())
            .await
            .unwrap_err();
        assert!(matches!(error, ProviderError::DailyLimitReached { resets_in: Some(_) }));
    }

    #[tokio::test]
    async fn a_custom_record_is_written_with_the_fields_its_object_has() {
        let server = MockServer::start().await;
        describe(
            &server,
            "VoxReach_Call__c",
            json!([field("Sentiment__c"), field("Summary__c")]),
        )
        .await;
        Mock::given(method("POST"))
            .and(path(format!("{DATA}/sobjects/VoxReach_Call__c")))
            .and(body_json(
                json!({ "Sentiment__c": "positive", "Summary__c": "Wants a demo" }),
            ))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(json!({ "id": "a005e00000CallAAA", "success": true })),
            )
            .expect(1)
            .mount(&server)
            .await;
        let salesforce = client(&server, DEFAULT_BUDGET_SHARE);
        let fields = BTreeMap::from([
            ("Sentiment__c".to_owned(), "positive".to_owned()),
            ("Summary__c".to_owned(), "Wants a demo".to_owned()),
            ("Gone__c".to_owned(), "dropped: the object has no such field".to_owned()),
        ]);
        assert_eq!(
            salesforce
                .create_record(&access(&server), "VoxReach_Call__c", &fields)
                .await,
            Ok("a005e00000CallAAA".into())
        );
        assert_eq!(
            salesforce.object_fields(&access(&server), "VoxReach_Call__c").await,
            Ok(vec!["Sentiment__c".to_owned(), "Summary__c".to_owned()])
        );
        assert_eq!(
            salesforce.create_record(&access(&server), "../Account", &fields).await,
            Err(ProviderError::Rejected { status: 400 }),
            "object names are checked before they go into a path"
        );
    }

    #[test]
    fn soql_literals_are_escaped_and_limit_info_parsed() {
        assert_eq!(quoted("O'Brien \\ Co"), "'O\\'Brien \\\\ Co'");
        assert_eq!(parse_limit_info("api-usage=18/15000"), Some((18, 15000)));
        assert_eq!(
            parse_limit_info("per-app-api-usage=1/5(appName=x), api-usage=7/9"),
            Some((7, 9))
        );
        assert_eq!(parse_limit_info("nonsense"), None);
        assert_eq!(
            next_utc_midnight("2026-03-04T23:59:00Z".parse().unwrap()),
            "2026-03-05T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[tokio::test]
    async fn revoking_posts_the_refresh_token_to_the_login_host() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/services/oauth2/revoke"))
            .and(wiremock::matchers::body_string("token=5Aep861"))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
        let tokens = Tokens {
            access_token: TOKEN.into(),
            refresh_token: Some("5Aep861".into()),
            expires_at: None,
            api_base: Some(server.uri()),
        };
        assert_eq!(client(&server, DEFAULT_BUDGET_SHARE).revoke(&tokens).await, Ok(true));
    }

    #[tokio::test]
    async fn a_bulk_job_is_created_uploaded_closed_polled_and_read_row_by_row() {
        let server = MockServer::start().await;
        const JOB: &str = "7505e00000BulkAAA";
        Mock::given(method("POST"))
            .and(path(format!("{DATA}/jobs/ingest")))
            .and(body_json(
                json!({ "object": "Task", "operation": "insert", "contentType": "CSV",
                "columnDelimiter": "COMMA", "lineEnding": "LF" }),
            ))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "id": JOB, "operation": "insert",
                "object": "Task", "state": "Open", "contentType": "CSV", "apiVersion": 62.0 })),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path(format!("{DATA}/jobs/ingest/{JOB}/batches")))
            .and(header("content-type", "text/csv"))
            .respond_with(ResponseTemplate::new(201))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .and(path(format!("{DATA}/jobs/ingest/{JOB}")))
            .and(body_json(json!({ "state": "UploadComplete" })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": JOB, "state": "UploadComplete" })))
            .expect(1)
            .mount(&server)
            .await;
        let salesforce = client(&server, DEFAULT_BUDGET_SHARE);
        let first = call();
        let second = CallLog {
            call_id: "0b8e3c1d-2f4a-4b6c-8d9e-0f1a2b3c4d5e".parse().unwrap(),
            contact_id: CONTACT.into(),
            body: "Said \"no\", twice,\nthen hung up.".into(),
            transcript: None,
            recording_url: None,
            duration_seconds: None,
            result: CallResult::Busy,
            ..call()
        };
        let job = salesforce
            .start_call_import(&access(&server), &[first.clone(), second.clone()])
            .await
            .unwrap();
        assert_eq!(job, JOB);
        let requests = server.received_requests().await.unwrap();
        let upload = requests.iter().find(|r| r.method.as_str() == "PUT").unwrap();
        let mut rows = csv::Reader::from_reader(upload.body.as_slice());
        assert_eq!(rows.headers().unwrap().iter().collect::<Vec<_>>(), TASK_COLUMNS);
        let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[1][3], CONTACT);
        assert_eq!(
            &rows[1][4], "Said \"no\", twice,\nthen hung up.",
            "quoted, commas and newlines kept"
        );
        assert_eq!(&rows[1][7], "Busy");
        assert_eq!(&rows[0][8], CALL_ID);
        assert_eq!(&rows[0][9], "184");
        assert_eq!(&rows[1][9], "", "no duration, no value");

        // Polled: still working, then complete with one row refused.
        for state in ["UploadComplete", "InProgress"] {
            Mock::given(method("GET"))
                .and(path(format!("{DATA}/jobs/ingest/{JOB}")))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": JOB, "state": state })))
                .up_to_n_times(1)
                .mount(&server)
                .await;
            assert_eq!(
                salesforce.call_import(&access(&server), JOB).await,
                Ok(BulkImport::Running)
            );
        }
        Mock::given(method("GET"))
            .and(path(format!("{DATA}/jobs/ingest/{JOB}")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "id": JOB, "state": "JobComplete",
                "numberRecordsProcessed": 2, "numberRecordsFailed": 1 })),
            )
            .mount(&server)
            .await;
        let columns = TASK_COLUMNS
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(",");
        Mock::given(method("GET"))
            .and(path(format!("{DATA}/jobs/ingest/{JOB}/successfulResults/")))
            .respond_with(ResponseTemplate::new(200).set_body_string(format!(
                "\"sf__Id\",\"sf__Created\",{columns}\n\"00T5e00000BulkAAA\",\"true\",\"VoxReach call\",\"Completed\",\"2026-03-04\",\"{LEAD}\",\"x\",\"Call\",\"Outbound\",\"Connected\",\"{CALL_ID}\",\"184\"\n"
            )))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("{DATA}/jobs/ingest/{JOB}/failedResults/")))
            .respond_with(ResponseTemplate::new(200).set_body_string(format!(
                "\"sf__Id\",\"sf__Error\",{columns}\n\"\",\"INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--\",\"VoxReach call\",\"Completed\",\"2026-03-04\",\"{CONTACT}\",\"x\",\"Call\",\"Outbound\",\"Busy\",\"{}\",\"\"\n",
                second.call_id
            )))
            .mount(&server)
            .await;
        assert_eq!(
            salesforce.call_import(&access(&server), JOB).await,
            Ok(BulkImport::Complete {
                logged: vec![(first.call_id, "00T5e00000BulkAAA".into())],
                refused: vec![(second.call_id, "INVALID_CROSS_REFERENCE_KEY".into())],
            })
        );
    }

    #[tokio::test]
    async fn a_failed_bulk_job_is_reported_in_our_words() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({ "id": "7505e00000BulkAAB", "state": "Failed",
                "errorMessage": "InvalidBatch : Field name not found : Secret_Internal__c" })),
            )
            .mount(&server)
            .await;
        let answer = client(&server, DEFAULT_BUDGET_SHARE)
            .call_import(&access(&server), "7505e00000BulkAAB")
            .await;
        assert_eq!(
            answer,
            Ok(BulkImport::Failed {
                reason: "bulk job failed".into()
            })
        );
    }
}
