//! CRM sync: connecting a CRM (OAuth), its settings, and the reactor that
//! writes each call to it. One port serves HubSpot, Salesforce and Pipedrive.

pub mod backfill;
mod briefing;
mod sync;
pub mod webhooks;

pub use backfill::CrmBackfill;
pub use briefing::CrmBriefing;
pub use sync::CrmSync;

use crate::aggregates::{execute_command, fold_recorded, load_in, metadata, session_metadata, stream_of, Loaded};
use crate::auth::Session;
use crate::clock::Clock;
use crate::error::{AppError, ErrorKind};
use crate::event_store::EventStore;
use crate::oauth::{
    provider_not_configured, FinishedSignIn, OAuthClient, SignInFeature, SignInFlow, TokenFailure, Tokens,
};
use crate::permissions::{authorize, Action};
use crate::providers::RetryPolicy;
use crate::work::{WorkHandler, WorkItem, WorkOutcome};
use domain::calls::{CallEvent, CallReport, Outcome};
use domain::crm::{
    CallField, CallSync, CallToSync, CrmCommand, CrmError, CrmIntegration, CrmProvider, CrmSettings, CrmStatus,
    CrmSyncEvent, StageMapping, SyncStep,
};
use domain::crm::{CustomRecordMapping, NewContactKind};
use domain::Aggregate;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::providers::ProviderError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::phone::PhoneNumber;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Who the token belongs to at the CRM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmAccount {
    /// HubSpot's portal (hub) id, Salesforce's org id, Pipedrive's company id.
    pub account_id: String,
    pub scopes: Vec<String>,
}

/// A contact (person, lead) as the CRM holds it: what an agent is told before a call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CrmContact {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    /// The contact's owner at the CRM (a user id or name).
    pub owner: Option<String>,
}

/// A contact to create for a caller the CRM does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    pub phone: PhoneNumber,
    pub name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    /// Further CRM properties (the settings' field mappings), by property name.
    pub properties: BTreeMap<String, String>,
    /// Where the CRM has a choice (Salesforce), the record to create.
    pub kind: NewContactKind,
}

pub use domain::calls::CallDirection;

/// How the call went, in the CRM's common terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    Connected,
    NoAnswer,
    Busy,
    Voicemail,
    Failed,
}

/// A call to log on a contact.
#[derive(Debug, Clone, PartialEq)]
pub struct CallLog {
    /// Ours: the CRM copy carries it, so an unconfirmed write can be found again.
    pub call_id: Uuid,
    pub contact_id: String,
    pub direction: CallDirection,
    pub started_at: DateTime<Utc>,
    pub duration_seconds: Option<f64>,
    /// Our number and the customer's, E.164.
    pub our_number: Option<String>,
    pub customer_number: String,
    pub title: String,
    /// The call's summary.
    pub body: String,
    /// The transcript, when the settings log it: CRMs whose call record holds
    /// it (Salesforce's Task description) put it there, the others in a note.
    pub transcript: Option<String>,
    pub recording_url: Option<String>,
    pub result: CallResult,
}

impl CallLog {
    /// CRMs know calls in and out only: any other call (from a browser) is logged as outbound.
    pub fn is_inbound(&self) -> bool {
        self.direction == CallDirection::Inbound
    }
}

/// A meeting a call booked, to log on its contact.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingLog {
    pub call_id: Uuid,
    pub contact_id: String,
    pub title: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub body: String,
}

/// What a call to a CRM's API carries: the access token and, for CRMs that
/// serve each account at its own address, that address (no `Debug` of the token).
#[derive(Clone, PartialEq, Eq)]
pub struct CrmAccess {
    pub token: String,
    /// Salesforce's `instance_url`, Pipedrive's `api_domain`; HubSpot has one address for all.
    pub api_base: Option<String>,
}

impl CrmAccess {
    /// A token for a CRM with one address for every account.
    pub fn bearer(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            api_base: None,
        }
    }
}

impl From<Tokens> for CrmAccess {
    fn from(tokens: Tokens) -> Self {
        Self {
            token: tokens.access_token,
            api_base: tokens.api_base,
        }
    }
}

impl std::fmt::Debug for CrmAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmAccess")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// A call to log together with changes to its contact's properties.
#[derive(Debug, Clone, Copy)]
pub struct CallUpdatingContact<'a> {
    pub call: &'a CallLog,
    pub properties: &'a BTreeMap<String, String>,
}

/// A note (the transcript) for a contact, written at `at`.
#[derive(Debug, Clone, Copy)]
pub struct NewNote<'a> {
    pub contact_id: &'a str,
    pub body: &'a str,
    pub at: DateTime<Utc>,
}

/// A deal for the contact in `stage`; CRMs that file calls under deals
/// (Salesforce's Task `WhatId`) file the call logged as `logged_call` under it.
#[derive(Debug, Clone, Copy)]
pub struct NewDeal<'a> {
    pub contact_id: &'a str,
    pub name: &'a str,
    pub stage: &'a str,
    pub logged_call: Option<&'a str>,
}

/// A deal moved to `stage` (filing `logged_call` under it, as for a [`NewDeal`]).
#[derive(Debug, Clone, Copy)]
pub struct DealMove<'a> {
    pub deal_id: &'a str,
    pub stage: &'a str,
    pub logged_call: Option<&'a str>,
}

/// Changes to a contact's properties, by the CRM's property names.
#[derive(Debug, Clone, Copy)]
pub struct ContactUpdate<'a> {
    pub contact_id: &'a str,
    pub properties: &'a BTreeMap<String, String>,
}

/// The CRM API of one provider, called with an access token.
#[async_trait]
pub trait CrmApi: Send + Sync {
    /// The account and granted scopes of a fresh token.
    async fn account(&self, access: &CrmAccess) -> Result<CrmAccount, ProviderError>;
    /// The contact with this phone number (matched in E.164 and national forms), if any.
    async fn find_contact(&self, access: &CrmAccess, phone: &PhoneNumber) -> Result<Option<CrmContact>, ProviderError>;
    /// Creates a contact; one that already exists (HubSpot's 409 naming it) is answered with its id.
    async fn create_contact(&self, access: &CrmAccess, contact: &NewContact) -> Result<String, ProviderError>;
    /// Logs a call on its contact; returns the CRM's id for it.
    async fn log_call(&self, access: &CrmAccess, call: &CallLog) -> Result<String, ProviderError>;
    /// The CRM's id for `call` logged earlier on its contact (found by our
    /// `call_id`), if the CRM has it (after an unconfirmed write).
    async fn find_logged_call(&self, access: &CrmAccess, call: &CallLog) -> Result<Option<String>, ProviderError>;
    /// Logs a call and changes its contact's properties in one round trip,
    /// where the CRM can (Salesforce's composite request): the call's id and
    /// the update's own result, as each succeeds or fails alone. `None` when
    /// the CRM cannot; the two are then written one after the other.
    async fn log_call_updating_contact(
        &self,
        _access: &CrmAccess,
        _logged: &CallUpdatingContact<'_>,
    ) -> Option<Result<(String, Result<(), ProviderError>), ProviderError>> {
        None
    }
    /// Attaches a note (the transcript) to a contact.
    async fn add_note(&self, access: &CrmAccess, note: &NewNote<'_>) -> Result<String, ProviderError>;
    /// The text of the contact's latest note, if it has one (for the agent's briefing).
    async fn last_note(&self, access: &CrmAccess, contact_id: &str) -> Result<Option<String>, ProviderError>;
    /// Logs a booked meeting on the contact; returns the CRM's id for it.
    async fn log_meeting(&self, access: &CrmAccess, meeting: &MeetingLog) -> Result<String, ProviderError>;
    /// The contact's open deal, if it has one.
    async fn open_deal(&self, access: &CrmAccess, contact_id: &str) -> Result<Option<String>, ProviderError>;
    /// Creates a deal; its id.
    async fn create_deal(&self, access: &CrmAccess, deal: &NewDeal<'_>) -> Result<String, ProviderError>;
    /// Moves a deal to another stage.
    async fn move_deal(&self, access: &CrmAccess, change: &DealMove<'_>) -> Result<(), ProviderError>;
    async fn update_contact(&self, access: &CrmAccess, update: &ContactUpdate<'_>) -> Result<(), ProviderError>;
    /// A contact read from properties the CRM sent us (a webhook's), in its own property names.
    fn contact_of(&self, contact_id: &str, properties: &BTreeMap<String, String>) -> CrmContact;
    /// The names of the contact properties the CRM has (to check field mappings against).
    async fn contact_properties(&self, access: &CrmAccess) -> Result<Vec<String>, ProviderError>;
    /// The deal stages the CRM has (to check stage mappings against).
    async fn deal_stages(&self, access: &CrmAccess) -> Result<Vec<String>, ProviderError>;
    /// Whether the CRM writes a record per call to an object named in settings (Salesforce).
    fn writes_custom_records(&self) -> bool {
        false
    }
    /// The fields `object` has that a record can be written with; `NotFound` for no such object.
    async fn object_fields(&self, _access: &CrmAccess, _object: &str) -> Result<Vec<String>, ProviderError> {
        Err(ProviderError::NotFound)
    }
    /// Writes a record of `object` with these fields; its id.
    async fn create_record(
        &self,
        _access: &CrmAccess,
        _object: &str,
        _fields: &BTreeMap<String, String>,
    ) -> Result<String, ProviderError> {
        Err(ProviderError::Rejected { status: 400 })
    }
    /// Revokes the grant at the CRM; `false` when it has no way to.
    async fn revoke(&self, tokens: &Tokens) -> Result<bool, ProviderError>;
}

/// How many calls due at once make a bulk job worth its overhead.
pub const BULK_THRESHOLD: usize = 200;

/// Where a bulk import of calls stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkImport {
    Running,
    /// Each call's record at the CRM, or the CRM's error code for the call's row.
    Complete {
        logged: Vec<(Uuid, String)>,
        refused: Vec<(Uuid, String)>,
    },
    /// The job failed as a whole (our words for why).
    Failed {
        reason: String,
    },
}

/// A CRM's interface for large volumes (Salesforce's Bulk API 2.0): many
/// calls logged by one job instead of a request each.
#[async_trait]
pub trait CrmBulkApi: Send + Sync {
    /// Starts a job logging `calls`, each on its contact; the job's id.
    async fn start_call_import(&self, access: &CrmAccess, calls: &[CallLog]) -> Result<String, ProviderError>;
    /// Where the job stands; once complete, what became of each call.
    async fn call_import(&self, access: &CrmAccess, job_id: &str) -> Result<BulkImport, ProviderError>;
}

// ---------------------------------------------------------------------------
// Connections, settings and the manual sync test.

/// Name of the reactor that writes calls to CRMs.
pub const CRM_SYNC: &str = "crm-sync";

impl From<CrmError> for AppError {
    fn from(error: CrmError) -> Self {
        match error {
            CrmError::Invalid { field, reason } => {
                AppError::validation(&field, format!("{field} is invalid: {reason}"))
            }
            CrmError::NotFound => AppError::not_found("CRM integration"),
            CrmError::BackfillRunning => AppError::new(
                ErrorKind::Conflict,
                "backfill_running",
                "a backfill of earlier calls is already under way",
            ),
            CrmError::Disconnected => AppError::new(
                ErrorKind::Conflict,
                "crm_disconnected",
                "the CRM integration is disconnected; connect it again",
            ),
        }
    }
}

/// A configured CRM: its sign-in, its API, and the app secret its webhooks
/// are signed with (no `Debug`: it must not reach a log).
#[derive(Clone)]
pub struct CrmConnector {
    pub oauth: Arc<dyn OAuthClient>,
    pub api: Arc<dyn CrmApi>,
    /// For CRMs with a bulk interface.
    pub bulk: Option<Arc<dyn CrmBulkApi>>,
    /// The secret its webhooks are signed with, for CRMs whose webhooks we take (HubSpot).
    pub webhook_secret: Option<String>,
}

/// The CRMs this deployment is configured for.
#[derive(Clone, Default)]
pub struct CrmProviders {
    pub hubspot: Option<CrmConnector>,
    pub salesforce: Option<CrmConnector>,
    pub pipedrive: Option<CrmConnector>,
}

impl CrmProviders {
    pub fn get(&self, provider: CrmProvider) -> Option<&CrmConnector> {
        match provider {
            CrmProvider::Hubspot => self.hubspot.as_ref(),
            CrmProvider::Salesforce => self.salesforce.as_ref(),
            CrmProvider::Pipedrive => self.pipedrive.as_ref(),
        }
    }

    fn configured(&self, provider: CrmProvider) -> Result<&CrmConnector, AppError> {
        self.get(provider).ok_or_else(|| provider_not_configured(provider))
    }
}

crate::oauth::oauth_integration!(
    CrmIntegration,
    CrmCommand,
    CrmError,
    CrmProvider,
    "crm",
    &CrmProvider::ALL
);

/// A connected CRM as the API shows it: never tokens.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrmIntegrationView {
    pub provider: CrmProvider,
    pub status: CrmStatus,
    pub status_reason: Option<String>,
    /// HubSpot's portal id (Salesforce's org, Pipedrive's company).
    pub account_id: String,
    pub scopes: Vec<String>,
    pub settings: Option<CrmSettings>,
    pub throttled_until: Option<DateTime<Utc>>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub connected_at: DateTime<Utc>,
}

/// What a line of the sync log did at the CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncAction {
    Search,
    CreateContact,
    LogCall,
    AddNote,
    LogMeeting,
    CreateDeal,
    UpdateStage,
    UpdateContact,
    CreateRecord,
    Skip,
}

impl SyncAction {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncAction::Search => "search",
            SyncAction::CreateContact => "create_contact",
            SyncAction::LogCall => "log_call",
            SyncAction::AddNote => "add_note",
            SyncAction::LogMeeting => "log_meeting",
            SyncAction::CreateDeal => "create_deal",
            SyncAction::UpdateStage => "update_stage",
            SyncAction::UpdateContact => "update_contact",
            SyncAction::CreateRecord => "create_record",
            SyncAction::Skip => "skip",
        }
    }
}

/// How a line of the sync log ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncLogStatus {
    Succeeded,
    Failed,
    Skipped,
}

impl SyncLogStatus {
    pub const ALL: [SyncLogStatus; 3] = [SyncLogStatus::Succeeded, SyncLogStatus::Failed, SyncLogStatus::Skipped];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncLogStatus::Succeeded => "succeeded",
            SyncLogStatus::Failed => "failed",
            SyncLogStatus::Skipped => "skipped",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        SyncLogStatus::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// One sync attempt as the sync log shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncLogEntry {
    pub id: Uuid,
    pub provider: CrmProvider,
    pub call_id: Uuid,
    pub action: SyncAction,
    pub status: SyncLogStatus,
    /// The CRM's id of what was found or written.
    pub external_id: Option<String>,
    pub error: Option<String>,
    pub retry_at: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

/// Filters of the sync log; newest first.
#[derive(Debug, Clone, Default)]
pub struct SyncLogFilter {
    pub provider: Option<CrmProvider>,
    pub call_id: Option<Uuid>,
    pub status: Option<SyncLogStatus>,
    pub limit: i64,
    /// Entries older than this one (the previous page's `nextCursor`).
    pub before: Option<(DateTime<Utc>, Uuid)>,
}

/// The CRM read models.
#[async_trait]
pub trait CrmDirectory: Send + Sync {
    async fn integrations(&self, organization_id: Uuid) -> Result<Vec<CrmIntegrationView>, AppError>;
    async fn sync_log(&self, organization_id: Uuid, filter: &SyncLogFilter) -> Result<Vec<SyncLogEntry>, AppError>;
    /// The organizations connected (now) to this CRM account (HubSpot portal).
    async fn organizations_of(&self, provider: CrmProvider, account_id: &str) -> Result<Vec<Uuid>, AppError>;
    /// Our copy of a contact, kept from the CRM's webhooks (deleted ones too).
    async fn cached_contact(
        &self,
        organization_id: Uuid,
        provider: CrmProvider,
        contact_id: &str,
    ) -> Result<Option<webhooks::CachedContact>, AppError>;
    /// The live cached contact whose `phone` or `mobilephone` is this number (the latest changed).
    async fn cached_contact_by_phone(
        &self,
        organization_id: Uuid,
        provider: CrmProvider,
        phone: &PhoneNumber,
    ) -> Result<Option<webhooks::CachedContact>, AppError>;
}

/// A change to some settings; absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrmSettingsPatch {
    pub sync_enabled: Option<bool>,
    pub auto_create_contacts: Option<bool>,
    pub default_deal_stage: Option<String>,
    pub stage_mapping: Option<StageMapping>,
    pub lead_status_property: Option<String>,
    pub not_interested_value: Option<String>,
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    pub field_mappings: Option<BTreeMap<CallField, String>>,
    pub log_transcript: Option<bool>,
    pub log_recording: Option<bool>,
    pub new_contact_kind: Option<NewContactKind>,
    /// A record per call in an object of the CRM's; `null` stops writing them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<CustomRecordMapping>)]
    pub custom_record: Option<Option<CustomRecordMapping>>,
}

/// A field that may be given as `null`: `Some(None)`, told apart from absent (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl CrmSettingsPatch {
    fn apply(self, current: &CrmSettings) -> CrmSettings {
        CrmSettings {
            sync_enabled: self.sync_enabled.unwrap_or(current.sync_enabled),
            auto_create_contacts: self.auto_create_contacts.unwrap_or(current.auto_create_contacts),
            default_deal_stage: self
                .default_deal_stage
                .unwrap_or_else(|| current.default_deal_stage.clone()),
            stage_mapping: self.stage_mapping.unwrap_or_else(|| current.stage_mapping.clone()),
            lead_status_property: self
                .lead_status_property
                .unwrap_or_else(|| current.lead_status_property.clone()),
            not_interested_value: self
                .not_interested_value
                .unwrap_or_else(|| current.not_interested_value.clone()),
            field_mappings: self.field_mappings.unwrap_or_else(|| current.field_mappings.clone()),
            log_transcript: self.log_transcript.unwrap_or(current.log_transcript),
            log_recording: self.log_recording.unwrap_or(current.log_recording),
            new_contact_kind: self.new_contact_kind.unwrap_or(current.new_contact_kind),
            custom_record: self.custom_record.unwrap_or_else(|| current.custom_record.clone()),
        }
    }
}

/// The result of a sign-in, shown to the user after the CRM's redirect.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrmConnectResult {
    pub connected: bool,
    pub provider: CrmProvider,
    pub account_id: Option<String>,
    /// The CRM's OAuth error code when the user or CRM refused (`access_denied`…).
    pub error: Option<String>,
}

/// What the manual sync test found.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactSyncResult {
    /// `found` or `created`.
    pub result: String,
    pub contact_id: String,
    pub provider: CrmProvider,
}

/// The stream of the organization's integration with `provider`.
fn integration_stream(organization_id: Uuid, provider: CrmProvider) -> domain::StreamId {
    stream_of::<CrmIntegration>(provider.integration_id(organization_id))
}

/// The organization's integration with `provider` as its stream stands now.
async fn load_integration(
    store: &dyn EventStore,
    organization_id: Uuid,
    provider: CrmProvider,
) -> Result<Loaded<CrmIntegration>, AppError> {
    load_in::<CrmIntegration>(store, organization_id, integration_stream(organization_id, provider)).await
}

/// The organization's integrations with `providers`, read together in one statement.
async fn load_integrations(
    store: &dyn EventStore,
    organization_id: Uuid,
    providers: &[CrmProvider],
) -> Result<Vec<Loaded<CrmIntegration>>, AppError> {
    let streams: Vec<_> = providers
        .iter()
        .map(|provider| integration_stream(organization_id, *provider))
        .collect();
    let read = store
        .read_streams(&streams)
        .await
        .map_err(|e| AppError::internal("reading the CRM integrations", e))?;
    streams
        .into_iter()
        .zip(read)
        .map(|(stream, events)| Ok(fold_recorded::<CrmIntegration>(stream, &events)?.within(organization_id)))
        .collect()
}

fn vault_owner(provider: CrmProvider) -> String {
    format!("crm:{provider}")
}

fn crm_failure(error: ProviderError) -> AppError {
    let failure = match error {
        ProviderError::RateLimited { retry_after } => AppError::new(
            ErrorKind::TooManyRequests {
                retry_after: retry_after.unwrap_or(std::time::Duration::from_secs(10)),
            },
            "crm_rate_limited",
            "the CRM is rate limiting us; try again shortly",
        ),
        ProviderError::DailyLimitReached { .. } => AppError::new(
            ErrorKind::TooManyRequests {
                retry_after: std::time::Duration::from_secs(3600),
            },
            "crm_daily_limit",
            "the CRM's daily request limit is reached",
        ),
        ProviderError::Unauthorized => crm_needs_reauth(),
        _ => AppError::new(
            ErrorKind::Unavailable,
            "crm_unavailable",
            "the CRM did not answer as expected; try again shortly",
        ),
    };
    failure.caused_by(error)
}

fn crm_needs_reauth() -> AppError {
    AppError::new(
        ErrorKind::Conflict,
        "crm_needs_reauth",
        "the CRM no longer accepts our access; connect it again",
    )
}

/// The CRMs' sign-ins and tokens: kept in the vault, refreshed when due, and
/// a grant the CRM refuses for good recorded on its integration.
pub type CrmTokens = SignInFlow<CrmIntegration>;

impl SignInFlow<CrmIntegration> {
    /// Access to `provider` in the organization (refreshed first when
    /// `force`d, after a 401), or what to do instead.
    pub(crate) async fn access(
        &self,
        connector: &CrmConnector,
        organization_id: Uuid,
        provider: CrmProvider,
        force: bool,
    ) -> Result<Result<CrmAccess, TokenFailure>, AppError> {
        let integration_id = provider.integration_id(organization_id);
        let owner = vault_owner(provider);
        let fresh = self
            .tokens(connector.oauth.as_ref(), organization_id, integration_id, &owner, force)
            .await?;
        Ok(fresh.map(CrmAccess::from))
    }
}

/// The CRMs every CRM use case reaches: those this deployment is configured
/// for, and the sign-ins and tokens of the organizations' connected accounts.
#[derive(Clone)]
pub struct CrmConnections {
    pub providers: CrmProviders,
    pub tokens: CrmTokens,
}

#[async_trait]
impl SignInFeature for CrmService {
    type Integration = CrmIntegration;
    type Answer = CrmConnectResult;

    fn sign_ins(&self) -> &SignInFlow<CrmIntegration> {
        &self.connections.tokens
    }

    fn client(&self, provider: CrmProvider) -> Option<&dyn OAuthClient> {
        self.connections.providers.get(provider).map(|c| c.oauth.as_ref())
    }

    /// Stores the tokens (replacing a previous connection's) and records the
    /// connection with the CRM account they belong to.
    async fn connect(
        &self,
        signed: &FinishedSignIn<CrmProvider>,
        tokens: Tokens,
    ) -> Result<CrmConnectResult, AppError> {
        let (pending, provider) = (&signed.pending, signed.provider);
        let organization_id = pending.organization_id;
        let connector = self.connections.providers.configured(provider)?;
        let account = connector
            .api
            .account(&CrmAccess::from(tokens.clone()))
            .await
            .map_err(crm_failure)?;
        let command = CrmCommand::Connect {
            sign_in: signed.sign_in(),
            account_id: account.account_id.clone(),
            scopes: account.scopes,
            now: signed.now,
        };
        self.connections
            .tokens
            .connect(pending, &vault_owner(provider), &tokens, &command)
            .await?;
        self.schema_cache.invalidate(&(organization_id, provider)).await;
        Ok(CrmConnectResult {
            connected: true,
            provider,
            account_id: Some(account.account_id),
            error: None,
        })
    }

    fn refused(signed: &FinishedSignIn<CrmProvider>, code: String) -> CrmConnectResult {
        CrmConnectResult {
            connected: false,
            provider: signed.provider,
            account_id: None,
            error: Some(code),
        }
    }
}

pub struct CrmService {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub connections: CrmConnections,
    pub directory: Arc<dyn CrmDirectory>,
    /// Each portal's contact properties and deal stages, for checking settings.
    pub schema_cache: SchemaCache,
}

/// What a CRM account has that settings can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmSchema {
    pub contact_properties: Vec<String>,
    pub deal_stages: Vec<String>,
}

/// CRM schemas by (organization, provider).
pub type SchemaCache = moka::future::Cache<(Uuid, CrmProvider), Arc<CrmSchema>>;

/// A schema cache whose entries live ten minutes.
pub fn schema_cache() -> SchemaCache {
    moka::future::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(std::time::Duration::from_secs(600))
        .build()
}

impl CrmService {
    /// Starts connecting a CRM: its authorization URL.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %provider))]
    pub async fn start_connect(&self, caller: &Session, provider: CrmProvider) -> Result<String, AppError> {
        authorize(caller, Action::ManageIntegrations)?;
        let connector = self.connections.providers.configured(provider)?;
        let integration_id = provider.integration_id(caller.organization_id);
        self.connections
            .tokens
            .start(
                caller,
                connector.oauth.as_ref(),
                provider,
                integration_id,
                serde_json::Value::Null,
            )
            .await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn list(&self, caller: &Session) -> Result<Vec<CrmIntegrationView>, AppError> {
        let now = self.clock.now();
        let mut integrations = self.directory.integrations(caller.organization_id).await?;
        for view in &mut integrations {
            // A throttle is over once its time has passed; no event marks that moment.
            if view.status == CrmStatus::Throttled && view.throttled_until.is_none_or(|until| until <= now) {
                view.status = CrmStatus::Active;
                view.throttled_until = None;
            }
        }
        Ok(integrations)
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn sync_log(&self, caller: &Session, filter: &SyncLogFilter) -> Result<Vec<SyncLogEntry>, AppError> {
        self.directory.sync_log(caller.organization_id, filter).await
    }

    async fn live(&self, organization_id: Uuid, provider: CrmProvider) -> Result<CrmIntegration, AppError> {
        let loaded = load_integration(self.store.as_ref(), organization_id, provider).await?;
        if !loaded.state.exists() {
            return Err(CrmError::NotFound.into());
        }
        if !loaded.state.is_live() {
            return Err(CrmError::Disconnected.into());
        }
        Ok(loaded.state)
    }

    async fn token(&self, organization_id: Uuid, provider: CrmProvider) -> Result<CrmAccess, AppError> {
        let connector = self.connections.providers.configured(provider)?;
        match self
            .connections
            .tokens
            .access(connector, organization_id, provider, false)
            .await?
        {
            Ok(token) => Ok(token),
            Err(TokenFailure::Unavailable(reason)) => Err(crm_failure(ProviderError::Unavailable(reason))),
            Err(_) => Err(crm_needs_reauth()),
        }
    }

    /// Changes the sync settings; every property and stage they name must
    /// exist at the CRM (400 naming the setting otherwise).
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %provider))]
    pub async fn change_settings(
        &self,
        caller: &Session,
        provider: CrmProvider,
        patch: CrmSettingsPatch,
    ) -> Result<CrmSettings, AppError> {
        authorize(caller, Action::ManageIntegrations)?;
        let organization_id = caller.organization_id;
        let current = self.live(organization_id, provider).await?;
        let settings = patch.apply(&current.settings.unwrap_or_else(|| CrmSettings::defaults_for(provider)));
        settings.validate()?;
        let writes_custom_records = self
            .connections
            .providers
            .configured(provider)?
            .api
            .writes_custom_records();
        if settings.custom_record.is_some() && !writes_custom_records {
            return Err(AppError::validation(
                "customRecord",
                format!("customRecord is invalid: {provider} has no custom records here"),
            ));
        }
        let schema = self.schema(organization_id, provider).await?;
        let (properties, stages) = (&schema.contact_properties, &schema.deal_stages);
        for (field, property) in settings.properties_written() {
            if !properties.iter().any(|p| p == property) {
                return Err(AppError::validation(
                    &field,
                    format!("{field} is invalid: the CRM has no contact property {property:?}"),
                ));
            }
        }
        let mapping = &settings.stage_mapping;
        for (field, stage) in [
            ("defaultDealStage", &settings.default_deal_stage),
            ("stageMapping.qualified", &mapping.qualified),
            ("stageMapping.appointment", &mapping.appointment),
            ("stageMapping.sale", &mapping.sale),
        ] {
            if !stages.iter().any(|s| s == stage) {
                return Err(AppError::validation(
                    field,
                    format!("{field} is invalid: the CRM has no deal stage {stage:?}"),
                ));
            }
        }
        if let Some(custom) = &settings.custom_record {
            self.check_custom_record(organization_id, provider, custom).await?;
        }
        let command = CrmCommand::ChangeSettings {
            settings: settings.clone(),
            now: self.clock.now(),
        };
        execute_command::<CrmIntegration>(
            self.store.as_ref(),
            organization_id,
            integration_stream(organization_id, provider),
            &session_metadata(caller),
            &command,
        )
        .await?;
        Ok(settings)
    }

    /// A custom record's object and fields must exist at the CRM (400 naming the setting otherwise).
    async fn check_custom_record(
        &self,
        organization_id: Uuid,
        provider: CrmProvider,
        custom: &CustomRecordMapping,
    ) -> Result<(), AppError> {
        let api = &self.connections.providers.configured(provider)?.api;
        let token = self.token(organization_id, provider).await?;
        let fields = match api.object_fields(&token, &custom.object).await {
            Err(ProviderError::NotFound | ProviderError::Rejected { .. }) => {
                return Err(AppError::validation(
                    "customRecord.object",
                    format!(
                        "customRecord.object is invalid: the CRM has no object {:?}",
                        custom.object
                    ),
                ))
            }
            other => other.map_err(crm_failure)?,
        };
        for (field, target) in &custom.fields {
            if !fields.iter().any(|f| f == target) {
                let setting = format!("customRecord.fields.{}", field.key());
                return Err(AppError::validation(
                    &setting,
                    format!(
                        "{setting} is invalid: {} has no writable field {target:?}",
                        custom.object
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The portal's contact properties and deal stages, cached for ten minutes.
    async fn schema(&self, organization_id: Uuid, provider: CrmProvider) -> Result<Arc<CrmSchema>, AppError> {
        if let Some(cached) = self.schema_cache.get(&(organization_id, provider)).await {
            return Ok(cached);
        }
        let token = self.token(organization_id, provider).await?;
        let api = &self.connections.providers.configured(provider)?.api;
        let properties = api.contact_properties(&token).await.map_err(crm_failure)?;
        let stages = api.deal_stages(&token).await.map_err(crm_failure)?;
        let schema = Arc::new(CrmSchema {
            contact_properties: properties,
            deal_stages: stages,
        });
        self.schema_cache
            .insert((organization_id, provider), schema.clone())
            .await;
        Ok(schema)
    }

    /// Disconnects: revokes at the CRM where it can, forgets the tokens.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %provider))]
    pub async fn disconnect(&self, caller: &Session, provider: CrmProvider) -> Result<(), AppError> {
        let organization_id = caller.organization_id;
        let release = |_: CrmIntegration, tokens: Option<Tokens>| async move {
            let mut revoked = false;
            if let (Some(tokens), Some(connector)) = (tokens, self.connections.providers.get(provider)) {
                revoked = connector.api.revoke(&tokens).await.unwrap_or_else(|error| {
                    tracing::warn!(error = %crate::error::report(&error), "revoking CRM tokens failed");
                    false
                });
            }
            self.schema_cache.invalidate(&(organization_id, provider)).await;
            Ok(revoked)
        };
        let integration_id = provider.integration_id(organization_id);
        self.connections
            .tokens
            .disconnect(caller, integration_id, &vault_owner(provider), release)
            .await
    }

    /// Starts writing the last 90 days' calls, from before the connection, to
    /// the CRM (one backfill at a time); the earliest end of the calls it takes.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %provider))]
    pub async fn backfill(&self, caller: &Session, provider: CrmProvider) -> Result<DateTime<Utc>, AppError> {
        authorize(caller, Action::ManageIntegrations)?;
        self.connections.providers.configured(provider)?;
        self.live(caller.organization_id, provider).await?;
        let now = self.clock.now();
        let since = now - chrono::Duration::days(backfill::BACKFILL_DAYS);
        let command = CrmCommand::RequestBackfill {
            since,
            requested_by: caller.user_id,
            now,
        };
        execute_command::<CrmIntegration>(
            self.store.as_ref(),
            caller.organization_id,
            integration_stream(caller.organization_id, provider),
            &session_metadata(caller),
            &command,
        )
        .await?;
        Ok(since)
    }

    /// The manual sync test: finds the contact with this phone, or creates it.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %provider))]
    pub async fn sync_contact(
        &self,
        caller: &Session,
        provider: CrmProvider,
        phone: &str,
    ) -> Result<ContactSyncResult, AppError> {
        authorize(caller, Action::ManageIntegrations)?;
        let phone =
            PhoneNumber::parse(phone).map_err(|e| AppError::validation("phone", format!("phone is invalid: {e}")))?;
        let integration = self.live(caller.organization_id, provider).await?;
        let token = self.token(caller.organization_id, provider).await?;
        let api = &self.connections.providers.configured(provider)?.api;
        if let Some(found) = api.find_contact(&token, &phone).await.map_err(crm_failure)? {
            return Ok(ContactSyncResult {
                result: "found".into(),
                contact_id: found.id,
                provider,
            });
        }
        let created = api
            .create_contact(
                &token,
                &NewContact {
                    phone,
                    name: None,
                    email: None,
                    company: None,
                    properties: BTreeMap::new(),
                    kind: integration.settings.map(|s| s.new_contact_kind).unwrap_or_default(),
                },
            )
            .await
            .map_err(crm_failure)?;
        Ok(ContactSyncResult {
            result: "created".into(),
            contact_id: created,
            provider,
        })
    }
}
