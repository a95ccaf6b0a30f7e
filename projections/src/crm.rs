//! CRM integrations as `GET /api/integrations/crm` shows them, the sync log
//! of `GET /api/integrations/crm/sync-log`, and the contact cache the CRM's
//! webhooks keep (read before outbound calls).

use crate::rows::{self, stream_uuid, text_enum};
use crate::runtime::ReadModel;
use application::crm::webhooks::CachedContact;
use application::crm::{CrmDirectory, CrmIntegrationView, SyncAction, SyncLogEntry, SyncLogFilter, SyncLogStatus};
use application::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::crm::{CrmContactEvent, CrmEvent, CrmProvider, CrmSettings, CrmStatus, CrmSyncEvent, SyncStep};
use domain::phone::PhoneNumber;
use domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, Row};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A row of the `crm_integrations` table.
#[derive(Serialize, Deserialize)]
struct IntegrationRow {
    id: Uuid,
    organization_id: Uuid,
    provider: CrmProvider,
    status: CrmStatus,
    status_reason: Option<String>,
    account_id: String,
    scopes: Vec<String>,
    settings: Option<CrmSettings>,
    throttled_until: Option<DateTime<Utc>>,
    connected_at: DateTime<Utc>,
    disconnected: bool,
    last_sync_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

/// What changes an integration's row.
enum Change {
    Integration(Box<CrmEvent>),
    /// A sync step of a call: its time, and its error if it failed.
    Sync(DateTime<Utc>, Option<String>),
}

fn evolve(row: &mut Option<IntegrationRow>, id: Uuid, change: Change) {
    match change {
        Change::Integration(event) => evolve_integration(row, id, *event),
        Change::Sync(at, error) => {
            if let Some(row) = row {
                row.last_sync_at = Some(at);
                row.last_error = error;
            }
        }
    }
}

fn evolve_integration(row: &mut Option<IntegrationRow>, id: Uuid, event: CrmEvent) {
    match event {
        CrmEvent::CrmConnected {
            sign_in,
            account_id,
            scopes,
            settings,
            at,
            ..
        } => {
            let (last_sync_at, last_error) = row.take().map(|r| (r.last_sync_at, r.last_error)).unwrap_or_default();
            *row = Some(IntegrationRow {
                id,
                organization_id: sign_in.organization_id,
                provider: sign_in.provider,
                status: CrmStatus::Active,
                status_reason: None,
                account_id,
                scopes,
                settings: Some(settings),
                throttled_until: None,
                connected_at: at,
                disconnected: false,
                last_sync_at,
                last_error,
            })
        }
        CrmEvent::CrmSignInFailed { sign_in, reason, at } => {
            if row.as_ref().is_none_or(|r| r.disconnected) {
                *row = Some(IntegrationRow {
                    id,
                    organization_id: sign_in.organization_id,
                    provider: sign_in.provider,
                    status: CrmStatus::Error,
                    status_reason: Some(reason),
                    account_id: String::new(),
                    scopes: vec![],
                    settings: None,
                    throttled_until: None,
                    connected_at: at,
                    disconnected: false,
                    last_sync_at: None,
                    last_error: None,
                });
            }
        }
        event => {
            let Some(row) = row else { return };
            match event {
                CrmEvent::CrmSettingsChanged { settings, .. } => row.settings = Some(settings),
                CrmEvent::CrmNeedsReauth { reason, .. } => {
                    row.status = CrmStatus::NeedsReauth;
                    row.status_reason = Some(reason);
                }
                CrmEvent::CrmThrottled { until, .. } => {
                    row.status = CrmStatus::Throttled;
                    row.throttled_until = Some(until);
                }
                CrmEvent::CrmDisconnected { .. } => row.disconnected = true,
                // A backfill's progress shows in the sync log, call by call.
                CrmEvent::CrmConnected { .. }
                | CrmEvent::CrmSignInFailed { .. }
                | CrmEvent::CrmBackfillRequested { .. }
                | CrmEvent::CrmBackfillResolving { .. }
                | CrmEvent::CrmCatchUpRequested { .. }
                | CrmEvent::CrmBackfillJobStarted { .. }
                | CrmEvent::CrmBackfillFinished { .. } => {}
            }
        }
    }
}

/// The provider, call, time and (for a failure) reason of a sync event; `None` for intents.
fn sync_facts(event: &CrmSyncEvent) -> Option<(CrmProvider, Uuid, DateTime<Utc>, Option<String>)> {
    match event {
        CrmSyncEvent::CrmWriteStarted { .. } => None,
        CrmSyncEvent::CrmContactResolved {
            provider, call_id, at, ..
        }
        | CrmSyncEvent::CrmCallLogged {
            provider, call_id, at, ..
        }
        | CrmSyncEvent::CrmNoteAdded {
            provider, call_id, at, ..
        }
        | CrmSyncEvent::CrmMeetingLogged {
            provider, call_id, at, ..
        }
        | CrmSyncEvent::CrmDealUpdated {
            provider, call_id, at, ..
        }
        | CrmSyncEvent::CrmContactUpdated {
            provider, call_id, at, ..
        }
        | CrmSyncEvent::CrmCustomRecordCreated {
            provider, call_id, at, ..
        }
        | CrmSyncEvent::CrmSyncSkipped {
            provider, call_id, at, ..
        } => Some((*provider, *call_id, *at, None)),
        CrmSyncEvent::CrmSyncFailed {
            provider,
            call_id,
            reason,
            at,
            ..
        } => Some((*provider, *call_id, *at, Some(reason.clone()))),
    }
}

pub struct CrmIntegrationsProjection;

#[async_trait]
impl ReadModel for CrmIntegrationsProjection {
    fn name(&self) -> &'static str {
        "crm_integrations"
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["crm-integration", "crm-call-sync"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["crm_integrations"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("crm_integrations.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let mut changes = Vec::with_capacity(events.len());
        for event in events {
            match event.stream_type.as_str() {
                "crm-integration" => {
                    let decoded = rows::decode::<CrmEvent>(event)?;
                    changes.push((stream_uuid(event)?, Change::Integration(Box::new(decoded))));
                }
                "crm-call-sync" => {
                    let decoded = rows::decode::<CrmSyncEvent>(event)?;
                    if let Some((provider, _, at, error)) = sync_facts(&decoded) {
                        changes.push((provider.integration_id(event.organization_id), Change::Sync(at, error)));
                    }
                }
                _ => {}
            }
        }
        rows::evolve_batch(conn, "crm_integrations", changes, evolve).await
    }
}

/// A row of the `crm_sync_log` table: one per sync event.
#[derive(Serialize, Deserialize)]
struct LogRow {
    id: Uuid,
    organization_id: Uuid,
    provider: CrmProvider,
    call_id: Uuid,
    action: SyncAction,
    status: SyncLogStatus,
    external_id: Option<String>,
    error: Option<String>,
    retry_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
}

fn step_action(step: SyncStep) -> SyncAction {
    match step {
        SyncStep::ResolveContact => SyncAction::CreateContact,
        SyncStep::LogCall => SyncAction::LogCall,
        SyncStep::AddNote => SyncAction::AddNote,
        SyncStep::LogMeeting => SyncAction::LogMeeting,
        SyncStep::UpdateDeal => SyncAction::UpdateStage,
        SyncStep::UpdateContact => SyncAction::UpdateContact,
        SyncStep::WriteCustomRecord => SyncAction::CreateRecord,
    }
}

/// The log's line for one sync event, if it makes one.
fn log_line(event: &RecordedEvent, decoded: CrmSyncEvent) -> Option<LogRow> {
    let (provider, call_id, at, _) = sync_facts(&decoded)?;
    let (action, status, external_id, error, retry_at) = match decoded {
        CrmSyncEvent::CrmContactResolved {
            contact_id, created, ..
        } => (
            if created {
                SyncAction::CreateContact
            } else {
                SyncAction::Search
            },
            SyncLogStatus::Succeeded,
            Some(contact_id),
            None,
            None,
        ),
        CrmSyncEvent::CrmCallLogged { engagement_id, .. } => (
            SyncAction::LogCall,
            SyncLogStatus::Succeeded,
            Some(engagement_id),
            None,
            None,
        ),
        CrmSyncEvent::CrmNoteAdded { note_id, .. } => {
            (SyncAction::AddNote, SyncLogStatus::Succeeded, Some(note_id), None, None)
        }
        CrmSyncEvent::CrmMeetingLogged { meeting_id, .. } => (
            SyncAction::LogMeeting,
            SyncLogStatus::Succeeded,
            Some(meeting_id),
            None,
            None,
        ),
        CrmSyncEvent::CrmDealUpdated { deal_id, created, .. } => (
            if created {
                SyncAction::CreateDeal
            } else {
                SyncAction::UpdateStage
            },
            SyncLogStatus::Succeeded,
            Some(deal_id),
            None,
            None,
        ),
        CrmSyncEvent::CrmContactUpdated { .. } => {
            (SyncAction::UpdateContact, SyncLogStatus::Succeeded, None, None, None)
        }
        CrmSyncEvent::CrmCustomRecordCreated { record_id, .. } => (
            SyncAction::CreateRecord,
            SyncLogStatus::Succeeded,
            Some(record_id),
            None,
            None,
        ),
        CrmSyncEvent::CrmSyncSkipped { reason, .. } => {
            (SyncAction::Skip, SyncLogStatus::Skipped, None, Some(reason), None)
        }
        CrmSyncEvent::CrmSyncFailed {
            step, reason, retry_at, ..
        } => (step_action(step), SyncLogStatus::Failed, None, Some(reason), retry_at),
        CrmSyncEvent::CrmWriteStarted { .. } => return None,
    };
    Some(LogRow {
        id: event.event_id,
        organization_id: event.organization_id,
        provider,
        call_id,
        action,
        status,
        external_id,
        error,
        retry_at,
        at,
    })
}

pub struct CrmSyncLogProjection;

#[async_trait]
impl ReadModel for CrmSyncLogProjection {
    fn name(&self) -> &'static str {
        "crm_sync_log"
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["crm-call-sync"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["crm_sync_log"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("crm_sync_log.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let mut lines = Vec::new();
        for event in events.iter().filter(|e| e.stream_type == "crm-call-sync") {
            let decoded = rows::decode::<CrmSyncEvent>(event)?;
            lines.extend(log_line(event, decoded));
        }
        let lines = lines.into_iter().map(|line| (line.id, line)).collect();
        rows::evolve_batch(conn, "crm_sync_log", lines, |row, _, line| *row = Some(line)).await
    }
}

/// A row of the `crm_contacts` table: our copy of one contact.
#[derive(Serialize, Deserialize)]
struct ContactRow {
    id: Uuid,
    organization_id: Uuid,
    provider: CrmProvider,
    contact_id: String,
    /// Every property the CRM told us of.
    properties: BTreeMap<String, String>,
    /// `phone` and `mobilephone` in E.164, for the look-up by number.
    phone_e164: Option<String>,
    mobilephone_e164: Option<String>,
    deleted: bool,
    updated_at: DateTime<Utc>,
}

fn e164(properties: &BTreeMap<String, String>, name: &str) -> Option<String> {
    properties
        .get(name)
        .and_then(|raw| PhoneNumber::parse(raw).ok())
        .map(String::from)
}

fn evolve_contact(row: &mut Option<ContactRow>, id: Uuid, organization_id: Uuid, event: CrmContactEvent) {
    let (provider, contact_id, at) = match &event {
        CrmContactEvent::CrmContactChanged {
            provider,
            contact_id,
            occurred_at,
            ..
        }
        | CrmContactEvent::CrmContactDeleted {
            provider,
            contact_id,
            occurred_at,
        } => (*provider, contact_id.clone(), *occurred_at),
    };
    let row = row.get_or_insert_with(|| ContactRow {
        id,
        organization_id,
        provider,
        contact_id,
        properties: BTreeMap::new(),
        phone_e164: None,
        mobilephone_e164: None,
        deleted: false,
        updated_at: at,
    });
    match event {
        CrmContactEvent::CrmContactChanged { properties, .. } => {
            row.properties.extend(properties);
            row.phone_e164 = e164(&row.properties, "phone");
            row.mobilephone_e164 = e164(&row.properties, "mobilephone");
        }
        CrmContactEvent::CrmContactDeleted { .. } => row.deleted = true,
    }
    row.updated_at = row.updated_at.max(at);
}

pub struct CrmContactsProjection;

#[async_trait]
impl ReadModel for CrmContactsProjection {
    fn name(&self) -> &'static str {
        "crm_contacts"
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["crm-contact"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["crm_contacts"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("crm_contacts.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let mut changes = Vec::with_capacity(events.len());
        for event in events.iter().filter(|e| e.stream_type == "crm-contact") {
            changes.push((
                stream_uuid(event)?,
                (event.organization_id, rows::decode::<CrmContactEvent>(event)?),
            ));
        }
        rows::evolve_batch(conn, "crm_contacts", changes, |row, id, (organization_id, event)| {
            evolve_contact(row, id, organization_id, event)
        })
        .await
    }
}

#[derive(Clone)]
pub struct PgCrmDirectory {
    pool: PgPool,
}

impl PgCrmDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The cached contact `query` finds, if any (it selects `CACHED_CONTACT_COLUMNS`).
    async fn cached_contact_found(
        &self,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<Option<CachedContact>, AppError> {
        query
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| AppError::internal("reading the CRM contact cache", e))?
            .as_ref()
            .map(cached_contact)
            .transpose()
    }
}

const CACHED_CONTACT_COLUMNS: &str = "provider, contact_id, properties, deleted, updated_at";

fn cached_contact(row: &PgRow) -> Result<CachedContact, AppError> {
    Ok(CachedContact {
        provider: text_enum(row.get("provider"))?,
        contact_id: row.get("contact_id"),
        properties: row.get::<Json<BTreeMap<String, String>>, _>("properties").0,
        deleted: row.get("deleted"),
        updated_at: row.get("updated_at"),
    })
}

#[async_trait]
impl CrmDirectory for PgCrmDirectory {
    async fn integrations(&self, organization_id: Uuid) -> Result<Vec<CrmIntegrationView>, AppError> {
        let rows = sqlx::query(
            "SELECT provider, status, status_reason, account_id, scopes, settings, throttled_until, connected_at,
                    last_sync_at, last_error
             FROM crm_integrations WHERE organization_id = $1 AND NOT disconnected ORDER BY provider",
        )
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| AppError::internal("reading CRM integrations", e))?;
        rows.iter()
            .map(|r| {
                Ok(CrmIntegrationView {
                    provider: text_enum(r.get("provider"))?,
                    status: text_enum(r.get("status"))?,
                    status_reason: r.get("status_reason"),
                    account_id: r.get("account_id"),
                    scopes: r.get::<Json<Vec<String>>, _>("scopes").0,
                    settings: r.get::<Option<Json<CrmSettings>>, _>("settings").map(|s| s.0),
                    throttled_until: r.get("throttled_until"),
                    last_sync_at: r.get("last_sync_at"),
                    last_error: r.get("last_error"),
                    connected_at: r.get("connected_at"),
                })
            })
            .collect()
    }

    async fn sync_log(&self, organization_id: Uuid, filter: &SyncLogFilter) -> Result<Vec<SyncLogEntry>, AppError> {
        let (before_at, before_id) = filter.before.unzip();
        let rows = sqlx::query(
            "SELECT id, provider, call_id, action, status, external_id, error, retry_at, at FROM crm_sync_log
             WHERE organization_id = $1
               AND ($2::text IS NULL OR provider = $2)
               AND ($3::uuid IS NULL OR call_id = $3)
               AND ($4::text IS NULL OR status = $4)
               AND ($5::timestamptz IS NULL OR (at, id) < ($5, $6))
             ORDER BY at DESC, id DESC LIMIT $7",
        )
        .bind(organization_id)
        .bind(filter.provider.map(|p| p.as_str()))
        .bind(filter.call_id)
        .bind(filter.status.map(SyncLogStatus::as_str))
        .bind(before_at)
        .bind(before_id)
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| AppError::internal("reading the CRM sync log", e))?;
        rows.iter()
            .map(|r| {
                Ok(SyncLogEntry {
                    id: r.get("id"),
                    provider: text_enum(r.get("provider"))?,
                    call_id: r.get("call_id"),
                    action: text_enum(r.get("action"))?,
                    status: text_enum(r.get("status"))?,
                    external_id: r.get("external_id"),
                    error: r.get("error"),
                    retry_at: r.get("retry_at"),
                    at: r.get("at"),
                })
            })
            .collect()
    }

    async fn organizations_of(&self, provider: CrmProvider, account_id: &str) -> Result<Vec<Uuid>, AppError> {
        sqlx::query_scalar(
            "SELECT organization_id FROM crm_integrations
             WHERE provider = $1 AND account_id = $2 AND NOT disconnected ORDER BY connected_at",
        )
        .bind(provider.as_str())
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| AppError::internal("reading CRM integrations", e))
    }

    async fn cached_contact(
        &self,
        organization_id: Uuid,
        provider: CrmProvider,
        contact_id: &str,
    ) -> Result<Option<CachedContact>, AppError> {
        let sql = format!("SELECT {CACHED_CONTACT_COLUMNS} FROM crm_contacts WHERE id = $1 AND organization_id = $2");
        let query = sqlx::query(&sql)
            .bind(provider.contact_record_id(organization_id, contact_id))
            .bind(organization_id);
        self.cached_contact_found(query).await
    }

    async fn cached_contact_by_phone(
        &self,
        organization_id: Uuid,
        provider: CrmProvider,
        phone: &PhoneNumber,
    ) -> Result<Option<CachedContact>, AppError> {
        let sql = format!(
            "SELECT {CACHED_CONTACT_COLUMNS} FROM crm_contacts
             WHERE organization_id = $1 AND provider = $2 AND NOT deleted
               AND (phone_e164 = $3 OR mobilephone_e164 = $3)
             ORDER BY updated_at DESC LIMIT 1"
        );
        let query = sqlx::query(&sql)
            .bind(organization_id)
            .bind(provider.as_str())
            .bind(phone.as_str());
        self.cached_contact_found(query).await
    }
}
