//! Outbound campaigns (SPEC §2.3): creating and steering campaigns, and the
//! organization's do-not-call list. The rules live in `domain::campaigns`;
//! these use cases check what lies outside one stream (the agent and the
//! numbers belong to the caller's organization) and the role matrix.

use crate::aggregates::{execute, execute_command, load_in, session_metadata, stream_of, Loaded};
use crate::auth::{Page, Session};
use crate::clock::Clock;
use crate::error::{AppError, ErrorKind};
use crate::event_store::EventStore;
use crate::permissions::{authorize, Action};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::campaigns::dnc::dnc_entry_id;
use domain::campaigns::{
    AttemptResult, Campaign, CampaignCommand, CampaignError, CampaignSettings, CampaignStatus, ContactStatus,
    DncCommand, DncEntry, DncError, DncListing, DncReason, DncSource,
};
use domain::phone::PhoneNumber;
use domain::phone_numbers::PhoneNumberState;
use domain::Aggregate;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

pub mod runner;
pub mod upload;

/// A campaign as the API shows it: its settings, status and progress.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignView {
    pub id: Uuid,
    #[serde(flatten)]
    pub settings: CampaignSettings,
    pub status: CampaignStatus,
    pub total_contacts: i64,
    pub calls_made: i64,
    pub calls_connected: i64,
    pub calls_successful: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The campaigns read model.
#[async_trait]
pub trait CampaignDirectory: Send + Sync {
    /// Campaigns not archived, newest first, optionally of one status.
    async fn list(
        &self,
        organization_id: Uuid,
        status: Option<CampaignStatus>,
        page: Page,
    ) -> Result<Vec<CampaignView>, AppError>;
    /// A campaign not archived.
    async fn get(&self, organization_id: Uuid, campaign_id: Uuid) -> Result<Option<CampaignView>, AppError>;
}

pub fn campaign_error(error: CampaignError) -> AppError {
    let message = error.to_string();
    match error {
        CampaignError::Invalid { field, .. } => AppError::validation(field, message),
        CampaignError::NotFound | CampaignError::Archived => AppError::not_found("campaign"),
        CampaignError::Exists => AppError::new(ErrorKind::Conflict, "campaign_exists", message),
        CampaignError::InvalidTransition { from, to } => {
            AppError::new(ErrorKind::Conflict, "campaign_invalid_transition", message)
                .with_details(serde_json::json!({ "from": from, "to": to }))
        }
        CampaignError::NotEditable { status, fields } => {
            AppError::new(ErrorKind::Conflict, "campaign_not_editable", message)
                .with_details(serde_json::json!({ "status": status, "fields": fields }))
        }
        CampaignError::ArchiveWhileRunning => AppError::new(ErrorKind::Conflict, "campaign_running", message),
        CampaignError::StartTimeNotReached { .. } => {
            AppError::new(ErrorKind::Conflict, "campaign_not_started", message)
        }
    }
}

impl From<CampaignError> for AppError {
    fn from(error: CampaignError) -> Self {
        campaign_error(error)
    }
}

/// A user's command that changes a campaign's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steer {
    Start,
    Pause,
    Resume,
    Cancel,
}

pub struct CampaignService {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub directory: Arc<dyn CampaignDirectory>,
    pub contacts: Arc<dyn ContactDirectory>,
    pub progress: Arc<dyn CampaignProgress>,
}

impl CampaignService {
    async fn execute(
        &self,
        caller: &Session,
        campaign_id: Uuid,
        command: impl Fn(&Campaign) -> Result<CampaignCommand, AppError> + Send + Sync,
    ) -> Result<Loaded<Campaign>, AppError> {
        execute::<Campaign>(
            self.store.as_ref(),
            caller.organization_id,
            stream_of::<Campaign>(campaign_id),
            &session_metadata(caller),
            |loaded| Ok(Campaign::decide(&command(&loaded.state)?, &loaded.state)?),
        )
        .await
    }

    /// The agent and every number the settings name belong to the caller's organization.
    async fn check_references(&self, caller: &Session, settings: &CampaignSettings) -> Result<(), AppError> {
        crate::agents::existing_agent(self.store.as_ref(), caller.organization_id, settings.agent_id)
            .await?
            .ok_or_else(|| AppError::validation("agentId", "agentId is not an agent of this organization"))?;
        let numbers = std::iter::once(("defaultPhoneNumberId", settings.default_phone_number_id))
            .chain(settings.phone_number_ids.iter().map(|id| ("phoneNumberIds", *id)));
        for (field, id) in numbers {
            let number = load_in::<PhoneNumberState>(
                self.store.as_ref(),
                caller.organization_id,
                stream_of::<PhoneNumberState>(id),
            )
            .await?;
            if !number.state.exists() {
                return Err(AppError::validation(
                    field,
                    format!("{id} is not a phone number of this organization"),
                ));
            }
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn create(&self, caller: &Session, settings: CampaignSettings) -> Result<CampaignView, AppError> {
        authorize(caller, Action::RunCampaigns)?;
        settings.validate()?;
        self.check_references(caller, &settings).await?;
        let id = Uuid::now_v7();
        let now = self.clock.now();
        let organization_id = caller.organization_id;
        let loaded = self
            .execute(caller, id, |_| {
                Ok(CampaignCommand::Create {
                    organization_id,
                    settings: settings.clone(),
                    now,
                })
            })
            .await?;
        self.answer(caller, id, &loaded.state).await
    }

    /// Applies `changes` (a JSON merge patch, RFC 7396, over the settings as
    /// the API shows them: absent keeps, `null` clears) and checks the result.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, campaign_id = %id))]
    pub async fn update(&self, caller: &Session, id: Uuid, changes: &Value) -> Result<CampaignView, AppError> {
        authorize(caller, Action::RunCampaigns)?;
        let current =
            load_in::<Campaign>(self.store.as_ref(), caller.organization_id, stream_of::<Campaign>(id)).await?;
        let Some(settings) = current.state.settings.clone().filter(|_| !current.state.archived) else {
            return Err(AppError::not_found("campaign"));
        };
        let changed = merged(&settings, changes)?;
        if changed.agent_id != settings.agent_id
            || changed.default_phone_number_id != settings.default_phone_number_id
            || changed.phone_number_ids != settings.phone_number_ids
        {
            self.check_references(caller, &changed).await?;
        }
        let now = self.clock.now();
        let loaded = self
            .execute(caller, id, |_| {
                Ok(CampaignCommand::ChangeSettings {
                    settings: changed.clone(),
                    now,
                })
            })
            .await?;
        self.answer(caller, id, &loaded.state).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, campaign_id = %id))]
    pub async fn steer(&self, caller: &Session, id: Uuid, steer: Steer) -> Result<CampaignView, AppError> {
        authorize(caller, Action::RunCampaigns)?;
        let now = self.clock.now();
        let loaded = self
            .execute(caller, id, |_| {
                Ok(match steer {
                    Steer::Start => CampaignCommand::Start { now },
                    Steer::Pause => CampaignCommand::Pause { now },
                    Steer::Resume => CampaignCommand::Resume { now },
                    Steer::Cancel => CampaignCommand::Cancel { now },
                })
            })
            .await?;
        self.answer(caller, id, &loaded.state).await
    }

    /// The campaign after a change: settings and status from the write side, the
    /// progress figures the read model has counted so far.
    async fn answer(&self, caller: &Session, id: Uuid, campaign: &Campaign) -> Result<CampaignView, AppError> {
        let mut view = view_of(id, campaign)?;
        if let Some(counted) = self.directory.get(caller.organization_id, id).await? {
            view.calls_made = counted.calls_made;
            view.calls_connected = counted.calls_connected;
            view.calls_successful = counted.calls_successful;
        }
        Ok(view)
    }

    /// DELETE: hidden from lists, history kept; refused while running.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, campaign_id = %id))]
    pub async fn archive(&self, caller: &Session, id: Uuid) -> Result<(), AppError> {
        authorize(caller, Action::ArchiveCampaigns)?;
        let now = self.clock.now();
        self.execute(caller, id, |state| {
            if !state.exists() || state.archived {
                return Err(AppError::not_found("campaign"));
            }
            Ok(CampaignCommand::Archive { now })
        })
        .await
        .map(|_| ())
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn list(
        &self,
        caller: &Session,
        status: Option<CampaignStatus>,
        page: Page,
    ) -> Result<Vec<CampaignView>, AppError> {
        self.directory.list(caller.organization_id, status, page).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, campaign_id = %id))]
    pub async fn get(&self, caller: &Session, id: Uuid) -> Result<CampaignView, AppError> {
        self.directory
            .get(caller.organization_id, id)
            .await?
            .ok_or_else(|| AppError::not_found("campaign"))
    }
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// The settings after a PATCH, parsed as strictly as at creation.
fn merged(settings: &CampaignSettings, changes: &Value) -> Result<CampaignSettings, AppError> {
    if !changes.is_object() {
        return Err(AppError::validation("body", "a campaign's changes are a JSON object"));
    }
    let mut value = serde_json::to_value(settings).map_err(|e| AppError::internal("writing settings", e))?;
    merge_patch(&mut value, changes);
    serde_path_to_error::deserialize::<_, CampaignSettings>(value).map_err(|e| {
        let field = e.path().to_string();
        AppError::validation(&field, format!("{field} is invalid: {}", e.inner()))
    })
}

/// Which page of one of a campaign's lists (its contacts, its attempts): the
/// items after `after` (the last id of the previous page; UUID v7 ids sort in
/// the list's order), only those matching `only` when given, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListPage<F> {
    pub campaign_id: Uuid,
    pub only: Option<F>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

impl CampaignService {
    /// A page of one of the campaign's lists, once the caller may see the
    /// campaign, with the cursor of the next page when this one is full: its
    /// last item's id.
    async fn page<T, F>(
        &self,
        caller: &Session,
        page: &ListPage<F>,
        id: impl Fn(&T) -> Uuid,
        listed: impl std::future::Future<Output = Result<Vec<T>, AppError>>,
    ) -> Result<(Vec<T>, Option<String>), AppError> {
        self.get(caller, page.campaign_id).await?;
        let items = listed.await?;
        let next_cursor = (items.len() as i64 == page.limit)
            .then(|| items.last().map(|item| id(item).to_string()))
            .flatten();
        Ok((items, next_cursor))
    }
}

/// The campaign as the write side knows it, for answers to changes (progress
/// figures come from the read model).
fn view_of(id: Uuid, campaign: &Campaign) -> Result<CampaignView, AppError> {
    let (Some(settings), Some(created_at)) = (campaign.settings.clone(), campaign.created_at) else {
        return Err(AppError::not_found("campaign"));
    };
    Ok(CampaignView {
        id,
        settings,
        status: campaign.status,
        total_contacts: campaign.total_contacts as i64,
        calls_made: 0,
        calls_connected: 0,
        calls_successful: 0,
        created_at,
        updated_at: campaign.updated_at.unwrap_or(created_at),
    })
}

/// A campaign's contact with its progress (SPEC's CampaignContact).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactView {
    pub id: Uuid,
    pub phone: PhoneNumber,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub notes: Option<String>,
    pub timezone: Option<domain::time_zone::TimeZone>,
    pub custom_data: std::collections::BTreeMap<String, String>,
    pub status: ContactStatus,
    pub priority: i32,
    pub attempt_count: i32,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt's result.
    pub last_result: Option<AttemptResult>,
    pub outcome: Option<domain::calls::Outcome>,
    pub created_at: DateTime<Utc>,
}

/// A page of contacts and where the next one starts.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactPage {
    pub contacts: Vec<ContactView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// The campaign contacts read model.
#[async_trait]
pub trait ContactDirectory: Send + Sync {
    /// Contacts in import order (a contact id is the cursor), optionally of one status.
    async fn contacts(
        &self,
        organization_id: Uuid,
        page: ListPage<ContactStatus>,
    ) -> Result<Vec<ContactView>, AppError>;
}

/// One attempt on a contact (SPEC's CampaignCall).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub call_id: Uuid,
    pub contact_id: Uuid,
    pub phone: PhoneNumber,
    pub attempt_number: i32,
    /// connected, busy, no_answer, voicemail or failed; null while the call is in flight.
    pub result: Option<AttemptResult>,
    pub outcome: Option<domain::calls::Outcome>,
    /// The number the call came from.
    pub caller_number: PhoneNumber,
    pub dialed_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A page of attempts and where the next one starts.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptPage {
    pub calls: Vec<AttemptView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// How a campaign is going, from its read models.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignStats {
    pub campaign_id: Uuid,
    pub status: CampaignStatus,
    pub total_contacts: i64,
    pub calls_made: i64,
    pub calls_connected: i64,
    pub calls_successful: i64,
    /// Contacts by status (pending, calling, completed, failed, dnc), zeros included.
    pub contacts_by_status: std::collections::BTreeMap<String, i64>,
    /// Contacts reached (an attempt connected) ÷ contacts attempted; null before any attempt.
    pub contact_rate: Option<f64>,
    /// Successful calls (the campaign's success outcome) ÷ connected calls; null before a connection.
    pub conversion_rate: Option<f64>,
    pub calls_in_flight: i64,
    /// Dials in the last hour.
    pub attempts_per_hour: i64,
    /// When the contacts still open would all have had an attempt at the last hour's pace; null when idle.
    pub estimated_completion_at: Option<DateTime<Utc>>,
}

/// The figures behind [`CampaignStats`] (read models).
#[async_trait]
pub trait CampaignProgress: Send + Sync {
    /// Attempts in dialling order (a call id is the cursor), optionally of one result.
    async fn attempts(
        &self,
        organization_id: Uuid,
        page: ListPage<AttemptResult>,
    ) -> Result<Vec<AttemptView>, AppError>;
    /// Contacts by status, contacts attempted and reached, and dials since `since`.
    async fn progress(
        &self,
        organization_id: Uuid,
        campaign_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Progress, AppError>;
}

/// Counts a campaign's statistics are made of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub contacts_by_status: std::collections::BTreeMap<String, i64>,
    pub contacts_attempted: i64,
    pub contacts_reached: i64,
    pub dials_since: i64,
}

impl CampaignService {
    /// A page of the campaign's contacts.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, campaign_id = %page.campaign_id))]
    pub async fn contacts(&self, caller: &Session, page: ListPage<ContactStatus>) -> Result<ContactPage, AppError> {
        let listed = self.contacts.contacts(caller.organization_id, page);
        let (contacts, next_cursor) = self.page(caller, &page, |c| c.id, listed).await?;
        Ok(ContactPage { contacts, next_cursor })
    }

    /// A page of the campaign's attempts, newest last.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, campaign_id = %page.campaign_id))]
    pub async fn attempts(&self, caller: &Session, page: ListPage<AttemptResult>) -> Result<AttemptPage, AppError> {
        let listed = self.progress.attempts(caller.organization_id, page);
        let (calls, next_cursor) = self.page(caller, &page, |c| c.call_id, listed).await?;
        Ok(AttemptPage { calls, next_cursor })
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %campaign_id))]
    pub async fn stats(&self, caller: &Session, campaign_id: Uuid) -> Result<CampaignStats, AppError> {
        let campaign = self.get(caller, campaign_id).await?;
        let now = self.clock.now();
        let progress = self
            .progress
            .progress(caller.organization_id, campaign_id, now - chrono::Duration::hours(1))
            .await?;
        let mut by_status: std::collections::BTreeMap<String, i64> =
            ContactStatus::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
        by_status.extend(progress.contacts_by_status);
        let ratio = |part: i64, whole: i64| (whole > 0).then(|| part as f64 / whole as f64);
        let open = by_status["pending"] + by_status["calling"];
        let estimated_completion_at = (progress.dials_since > 0 && open > 0)
            .then(|| now + chrono::Duration::seconds(open * 3600 / progress.dials_since));
        Ok(CampaignStats {
            campaign_id,
            status: campaign.status,
            total_contacts: campaign.total_contacts,
            calls_made: campaign.calls_made,
            calls_connected: campaign.calls_connected,
            calls_successful: campaign.calls_successful,
            calls_in_flight: by_status["calling"],
            contacts_by_status: by_status,
            contact_rate: ratio(progress.contacts_reached, progress.contacts_attempted),
            conversion_rate: ratio(campaign.calls_successful, campaign.calls_connected),
            attempts_per_hour: progress.dials_since,
            estimated_completion_at,
        })
    }
}

/// A number's standing on the organization's DNC list (`listed: false` when absent).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DncStatus {
    pub phone: PhoneNumber,
    pub listed: bool,
    pub reason: Option<DncReason>,
    pub source: Option<DncSource>,
    pub added_at: Option<DateTime<Utc>>,
}

/// The DNC read model.
#[async_trait]
pub trait DncDirectory: Send + Sync {
    async fn status(&self, organization_id: Uuid, phone: &PhoneNumber) -> Result<DncStatus, AppError>;
    /// Listed numbers, newest first.
    async fn list(&self, organization_id: Uuid, page: Page) -> Result<Vec<DncStatus>, AppError>;
    /// Which of `phones` are listed.
    async fn listed_among(
        &self,
        organization_id: Uuid,
        phones: &[PhoneNumber],
    ) -> Result<std::collections::HashSet<PhoneNumber>, AppError>;
}

pub fn dnc_error(error: DncError) -> AppError {
    match error {
        DncError::NotListed => AppError::new(ErrorKind::NotFound, "dnc_not_listed", error.to_string()),
    }
}

impl From<DncError> for AppError {
    fn from(error: DncError) -> Self {
        dnc_error(error)
    }
}

pub struct DncService {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub directory: Arc<dyn DncDirectory>,
}

impl DncService {
    /// The entry after the command, and whether the command changed it.
    async fn execute(
        &self,
        caller: &Session,
        phone: &PhoneNumber,
        command: DncCommand,
    ) -> Result<(DncEntry, bool), AppError> {
        let changed = std::sync::atomic::AtomicBool::new(false);
        let loaded = execute::<DncEntry>(
            self.store.as_ref(),
            caller.organization_id,
            stream_of::<DncEntry>(dnc_entry_id(caller.organization_id, phone)),
            &session_metadata(caller),
            |loaded| {
                let events = DncEntry::decide(&command, &loaded.state)?;
                changed.store(!events.is_empty(), std::sync::atomic::Ordering::Relaxed);
                Ok(events)
            },
        )
        .await?;
        Ok((loaded.state, changed.into_inner()))
    }

    /// Anyone may put a number on the list: an opt-out must never wait for an admin.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn add(&self, caller: &Session, phone: PhoneNumber, reason: DncReason) -> Result<DncStatus, AppError> {
        authorize(caller, Action::AddToDnc)?;
        let command = listed_by(caller, phone.clone(), reason, self.clock.now());
        let (entry, _) = self.execute(caller, &phone, command).await?;
        Ok(status_of(phone, &entry))
    }

    /// Taking a number off the list is audited (`DncNumberRemoved` names who).
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn remove(&self, caller: &Session, phone: PhoneNumber) -> Result<(), AppError> {
        authorize(caller, Action::RemoveFromDnc)?;
        let command = DncCommand::Remove {
            removed_by: caller.user_id,
            now: self.clock.now(),
        };
        self.execute(caller, &phone, command).await.map(|_| ())
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn status(&self, caller: &Session, phone: &PhoneNumber) -> Result<DncStatus, AppError> {
        self.directory.status(caller.organization_id, phone).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn list(&self, caller: &Session, page: Page) -> Result<Vec<DncStatus>, AppError> {
        self.directory.list(caller.organization_id, page).await
    }
}

/// What a bulk DNC upload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DncUploadResult {
    /// Numbers put on the list.
    pub listed: u64,
    /// Numbers on the list already (or twice in the file).
    pub already_listed: u64,
    pub invalid: u64,
    pub errors: Vec<upload::RowError>,
}

/// Numbers listed at once by a bulk upload.
const DNC_UPLOAD_CONCURRENCY: usize = 16;

impl DncService {
    /// Lists every number of a file: the US National DNC Registry's download
    /// (one 10-digit number per line) or a CSV file with a phone column.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, bytes = content.len()))]
    pub async fn upload(
        &self,
        caller: &Session,
        content: &[u8],
        reason: DncReason,
    ) -> Result<DncUploadResult, AppError> {
        use futures::stream::{StreamExt, TryStreamExt};
        authorize(caller, Action::AddToDnc)?;
        let text = upload::decode(content);
        // The registry's files have no header: their first line is a number already.
        let registry_format = text
            .trim_start_matches('\u{feff}')
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .is_some_and(|l| l.len() == 10 && l.bytes().all(|b| b.is_ascii_digit()));
        let (numbers, errors) = if registry_format {
            let file = domain::campaigns::parse_national_registry(&text);
            let errors = file
                .errors
                .into_iter()
                .map(|e| upload::RowError {
                    line: e.line as u64,
                    reason: e.reason,
                })
                .collect();
            (file.numbers, errors)
        } else {
            let file = upload::read_csv(content)?;
            let mapping = upload::ColumnMapping {
                phone: upload::propose_mapping(&file.columns).phone,
                ..upload::ColumnMapping::default()
            };
            let (contacts, errors) = upload::map_rows(&file, &mapping)?;
            (contacts.into_iter().map(|(_, c)| c.phone).collect(), errors)
        };
        let total = numbers.len() as u64;
        let mut unique = std::collections::HashSet::new();
        let numbers: Vec<PhoneNumber> = numbers.into_iter().filter(|n| unique.insert(n.clone())).collect();
        let listed = self.directory.listed_among(caller.organization_id, &numbers).await?;
        let fresh: Vec<PhoneNumber> = numbers.iter().filter(|n| !listed.contains(*n)).cloned().collect();
        let now = self.clock.now();
        let added: Vec<bool> = futures::stream::iter(fresh)
            .map(|phone| async move {
                let command = listed_by(caller, phone.clone(), reason, now);
                let (_, listed_now) = self.execute(caller, &phone, command).await?;
                Ok::<_, AppError>(listed_now)
            })
            .buffer_unordered(DNC_UPLOAD_CONCURRENCY)
            .try_collect()
            .await?;
        let newly = added.iter().filter(|a| **a).count() as u64;
        Ok(DncUploadResult {
            listed: newly,
            already_listed: total - newly,
            invalid: errors.len() as u64,
            errors,
        })
    }
}

/// The caller puts `phone` on the list.
fn listed_by(caller: &Session, phone: PhoneNumber, reason: DncReason, now: DateTime<Utc>) -> DncCommand {
    DncCommand::List {
        listing: DncListing {
            organization_id: caller.organization_id,
            phone,
            reason,
            source: DncSource::UserAdded,
            added_by: Some(caller.user_id),
            call_id: None,
        },
        now,
    }
}

fn status_of(phone: PhoneNumber, entry: &DncEntry) -> DncStatus {
    DncStatus {
        phone,
        listed: entry.listed.is_some(),
        reason: entry.listed.as_ref().map(|l| l.reason),
        source: entry.listed.as_ref().map(|l| l.source),
        added_at: entry.listed.as_ref().map(|l| l.added_at),
    }
}

/// The `add_to_dnc` tool: the person asked, during the call, not to be called
/// again; their number goes on the organization's DNC list at once.
pub struct AddToDncTool {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
}

#[async_trait]
impl crate::calls::Tool for AddToDncTool {
    fn name(&self) -> &'static str {
        "add_to_dnc"
    }

    async fn run(&self, context: &crate::calls::ToolContext, _arguments: &Value) -> Result<String, String> {
        let organization_id = context.organization_id;
        let listed = async {
            let call = load_in::<domain::calls::Call>(
                self.store.as_ref(),
                organization_id,
                stream_of::<domain::calls::Call>(context.call_id),
            )
            .await?;
            let raw = call
                .state
                .parties
                .customer_number
                .ok_or_else(|| AppError::validation("customer", "the call has no customer number"))?;
            let phone = PhoneNumber::parse(&raw).map_err(|e| AppError::validation("customer", e.to_string()))?;
            let command = DncCommand::List {
                listing: DncListing::opted_out_in_call(organization_id, phone.clone(), context.call_id),
                now: self.clock.now(),
            };
            execute_command::<DncEntry>(
                self.store.as_ref(),
                organization_id,
                stream_of::<DncEntry>(dnc_entry_id(organization_id, &phone)),
                &crate::aggregates::metadata(format!("vapi-tool:{}", context.tool_call_id), "tool"),
                &command,
            )
            .await
        }
        .await;
        match listed {
            Ok(_) => Ok("The number is on the do-not-call list; it will not be called again.".into()),
            Err(error) if error.kind == ErrorKind::Internal => Err("the number could not be listed".into()),
            Err(error) => Err(error.message),
        }
    }
}
