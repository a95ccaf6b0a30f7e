//! Outbound campaigns as the API lists them, with their progress figures, and
//! the organization's do-not-call list.

use crate::rows::{self, stream_uuid};
use crate::runtime::ReadModel;
use application::auth::Page;
use application::campaigns::runner::{CampaignBoard, CampaignLookup, ReadyContact, RunningCampaign, UnfinishedAttempt};
use application::campaigns::{
    AttemptView, CampaignDirectory, CampaignProgress, CampaignView, ContactDirectory, ContactView, DncDirectory,
    DncStatus, ListPage, Progress,
};
use application::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::calls::Outcome;
use domain::campaigns::{
    Attempt, AttemptEnd, AttemptResult, CallerId, CampaignContactEvent, CampaignEvent, CampaignSettings,
    CampaignStatus, ContactStatus, ImportedContact,
};
use domain::campaigns::{DncEntry, DncEvent, DncReason, DncSource, Listing};
use domain::phone::PhoneNumber;
use domain::time_zone::TimeZone;
use domain::Aggregate;
use domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A row of the `campaigns` table.
#[derive(Serialize, Deserialize)]
struct CampaignRow {
    id: Uuid,
    organization_id: Uuid,
    settings: CampaignSettings,
    status: CampaignStatus,
    archived: bool,
    total_contacts: i64,
    calls_made: i64,
    calls_connected: i64,
    calls_successful: i64,
    /// Contacts waiting for an attempt, and in one now: the runner's concurrency and completion.
    pending_contacts: i64,
    calling_contacts: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Either stream a campaign's figures come from.
enum Change {
    Campaign(CampaignEvent),
    Contact(CampaignContactEvent),
}

fn evolve(row: &mut Option<CampaignRow>, id: Uuid, change: Change) {
    if let Change::Campaign(CampaignEvent::CampaignCreated {
        organization_id,
        settings,
        at,
    }) = change
    {
        *row = Some(CampaignRow {
            id,
            organization_id,
            settings,
            status: CampaignStatus::Draft,
            archived: false,
            total_contacts: 0,
            calls_made: 0,
            calls_connected: 0,
            calls_successful: 0,
            pending_contacts: 0,
            calling_contacts: 0,
            created_at: at,
            updated_at: at,
        });
        return;
    }
    let Some(campaign) = row else { return };
    match change {
        Change::Campaign(event) => {
            let at = match event {
                CampaignEvent::CampaignCreated { at, .. } => at,
                CampaignEvent::CampaignSettingsChanged { settings, at, .. } => {
                    campaign.settings = settings;
                    at
                }
                CampaignEvent::CampaignScheduled { at, .. } => {
                    campaign.status = CampaignStatus::Scheduled;
                    at
                }
                CampaignEvent::CampaignStarted { at, .. } | CampaignEvent::CampaignResumed { at } => {
                    campaign.status = CampaignStatus::Running;
                    at
                }
                CampaignEvent::CampaignPaused { at } => {
                    campaign.status = CampaignStatus::Paused;
                    at
                }
                CampaignEvent::CampaignCompleted { at, .. } => {
                    campaign.status = CampaignStatus::Completed;
                    at
                }
                CampaignEvent::CampaignCancelled { at, .. } => {
                    campaign.status = CampaignStatus::Cancelled;
                    at
                }
                CampaignEvent::CampaignArchived { at, .. } => {
                    campaign.archived = true;
                    at
                }
                CampaignEvent::CampaignContactsImported { contacts, at } => {
                    campaign.total_contacts += contacts.len() as i64;
                    campaign.pending_contacts +=
                        contacts.iter().filter(|c| c.status == ContactStatus::Pending).count() as i64;
                    at
                }
            };
            campaign.updated_at = at;
        }
        Change::Contact(CampaignContactEvent::CampaignContactDialed { .. }) => {
            campaign.calls_made += 1;
            campaign.pending_contacts -= 1;
            campaign.calling_contacts += 1;
        }
        Change::Contact(CampaignContactEvent::CampaignAttemptFinished {
            result,
            successful,
            status,
            ..
        }) => {
            campaign.calling_contacts -= 1;
            if status == ContactStatus::Pending {
                campaign.pending_contacts += 1;
            }
            // Voicemail is not a conversation: it does not count as connected.
            if result == AttemptResult::Connected {
                campaign.calls_connected += 1;
            }
            if successful {
                campaign.calls_successful += 1;
            }
        }
        Change::Contact(CampaignContactEvent::CampaignAttemptOutcomeChanged {
            successful,
            was_successful,
            ..
        }) => campaign.calls_successful += i64::from(successful) - i64::from(was_successful),
        Change::Contact(CampaignContactEvent::CampaignDialWithdrawn { status, .. }) => {
            campaign.calls_made -= 1;
            campaign.calling_contacts -= 1;
            if status == ContactStatus::Pending {
                campaign.pending_contacts += 1;
            }
        }
        Change::Contact(CampaignContactEvent::CampaignContactClosed { .. }) => campaign.pending_contacts -= 1,
        Change::Contact(CampaignContactEvent::CampaignContactDeferred { .. }) => {}
    }
}

/// The campaign an event counts for, and what it says.
fn change_of(event: &RecordedEvent) -> Result<(Uuid, Change), sqlx::Error> {
    if event.stream_type == "campaign" {
        let decoded = rows::decode::<CampaignEvent>(event)?;
        return Ok((stream_uuid(event)?, Change::Campaign(decoded)));
    }
    let decoded = rows::decode::<CampaignContactEvent>(event)?;
    Ok((decoded.campaign_id(), Change::Contact(decoded)))
}

pub struct CampaignsProjection;

#[async_trait]
impl ReadModel for CampaignsProjection {
    fn name(&self) -> &'static str {
        "campaigns"
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["campaign", "campaign-contact"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["campaigns"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("campaigns.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let changes = events.iter().map(change_of).collect::<Result<Vec<_>, _>>()?;
        rows::evolve_batch(conn, "campaigns", changes, evolve).await
    }
}

/// A row of the `campaign_contacts` table.
#[derive(Serialize, Deserialize)]
struct ContactRow {
    id: Uuid,
    organization_id: Uuid,
    campaign_id: Uuid,
    phone: PhoneNumber,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    company: Option<String>,
    notes: Option<String>,
    timezone: Option<TimeZone>,
    custom_data: BTreeMap<String, String>,
    status: ContactStatus,
    priority: i32,
    attempt_count: i32,
    last_attempt_at: Option<DateTime<Utc>>,
    next_attempt_at: Option<DateTime<Utc>>,
    last_result: Option<AttemptResult>,
    outcome: Option<Outcome>,
    created_at: DateTime<Utc>,
    /// When a pending contact may be called next: its import, else its retry or deferral time.
    ready_at: DateTime<Utc>,
}

/// Contacts come into being on the campaign's stream and progress on their own.
enum ContactChange {
    Imported(Uuid, ImportedContact, DateTime<Utc>),
    Attempt(CampaignContactEvent),
}

fn evolve_contact(row: &mut Option<ContactRow>, change: ContactChange) {
    let contact = match change {
        ContactChange::Imported(campaign_id, c, at) => {
            *row = Some(ContactRow {
                id: c.contact_id,
                organization_id: Uuid::nil(),
                campaign_id,
                phone: c.phone,
                first_name: c.first_name,
                last_name: c.last_name,
                email: c.email,
                company: c.company,
                notes: c.notes,
                timezone: c.timezone,
                custom_data: c.custom_data,
                status: c.status,
                priority: c.priority,
                attempt_count: 0,
                last_attempt_at: None,
                next_attempt_at: None,
                last_result: None,
                outcome: None,
                created_at: at,
                ready_at: at,
            });
            return;
        }
        ContactChange::Attempt(event) => event,
    };
    let Some(row) = row else { return };
    match contact {
        CampaignContactEvent::CampaignContactDialed { dial, at } => {
            row.status = ContactStatus::Calling;
            row.attempt_count = dial.attempt_number as i32;
            row.last_attempt_at = Some(at);
            row.next_attempt_at = None;
        }
        CampaignContactEvent::CampaignAttemptFinished {
            result,
            outcome,
            status,
            next_attempt_at,
            at,
            ..
        } => {
            row.status = status;
            row.last_result = Some(result);
            row.next_attempt_at = next_attempt_at;
            row.ready_at = next_attempt_at.unwrap_or(at);
            if outcome.is_some() {
                row.outcome = outcome;
            }
        }
        CampaignContactEvent::CampaignContactDeferred { until, .. } => {
            row.next_attempt_at = Some(until);
            row.ready_at = until;
        }
        CampaignContactEvent::CampaignAttemptOutcomeChanged { outcome, .. } => row.outcome = Some(outcome),
        CampaignContactEvent::CampaignDialWithdrawn {
            attempt_number,
            status,
            last_attempt_at,
            at,
            ..
        } => {
            row.status = status;
            row.attempt_count = attempt_number as i32 - 1;
            row.last_attempt_at = last_attempt_at;
            row.next_attempt_at = (status == ContactStatus::Pending).then_some(at);
            row.ready_at = at;
        }
        CampaignContactEvent::CampaignContactClosed { status, .. } => {
            row.status = status;
            row.next_attempt_at = None;
        }
    }
}

pub struct ContactsProjection;

#[async_trait]
impl ReadModel for ContactsProjection {
    fn name(&self) -> &'static str {
        "campaign_contacts"
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["campaign", "campaign-contact"])
    }

    fn event_types(&self) -> Option<&[&'static str]> {
        Some(&[
            "CampaignContactsImported",
            "CampaignContactDialed",
            "CampaignAttemptFinished",
            "CampaignAttemptOutcomeChanged",
            "CampaignContactDeferred",
            "CampaignDialWithdrawn",
            "CampaignContactClosed",
        ])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["campaign_contacts"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("campaign_contacts.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let mut changes: Vec<(Uuid, (Uuid, ContactChange))> = Vec::new();
        for event in events {
            if event.stream_type == "campaign" {
                let CampaignEvent::CampaignContactsImported { contacts, at } = rows::decode::<CampaignEvent>(event)?
                else {
                    continue;
                };
                let campaign_id = stream_uuid(event)?;
                for contact in contacts {
                    changes.push((
                        contact.contact_id,
                        (event.organization_id, ContactChange::Imported(campaign_id, contact, at)),
                    ));
                }
            } else {
                changes.push((
                    stream_uuid(event)?,
                    (event.organization_id, ContactChange::Attempt(rows::decode(event)?)),
                ));
            }
        }
        rows::evolve_batch(
            conn,
            "campaign_contacts",
            changes,
            |row, _, (organization_id, change)| {
                evolve_contact(row, change);
                if let Some(row) = row {
                    row.organization_id = organization_id;
                }
            },
        )
        .await
    }
}

/// A row of the `campaign_attempts` table: one call to one contact.
#[derive(Serialize, Deserialize)]
struct AttemptRow {
    id: Uuid,
    organization_id: Uuid,
    campaign_id: Uuid,
    contact_id: Uuid,
    phone: PhoneNumber,
    attempt_number: i32,
    caller_number: PhoneNumber,
    dialed_at: DateTime<Utc>,
    /// The `result`, `outcome` and `finished_at` columns.
    #[serde(flatten)]
    end: AttemptEnd,
}

/// Every attempt of every campaign: who was called, from where, and how it went.
pub struct AttemptsProjection;

#[async_trait]
impl ReadModel for AttemptsProjection {
    fn name(&self) -> &'static str {
        "campaign_attempts"
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["campaign-contact"])
    }

    fn event_types(&self) -> Option<&[&'static str]> {
        Some(&[
            "CampaignContactDialed",
            "CampaignAttemptFinished",
            "CampaignAttemptOutcomeChanged",
            "CampaignDialWithdrawn",
        ])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["campaign_attempts"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("campaign_attempts.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let decoded = events
            .iter()
            .map(|e| rows::decode::<CampaignContactEvent>(e).map(|d| (e.organization_id, d)))
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<Uuid> = decoded.iter().filter_map(|(_, event)| event.call_id()).collect();
        rows::fold_batch(conn, "campaign_attempts", ids, |rows| {
            for (organization_id, event) in decoded {
                let Some(row) = event.call_id().and_then(|call_id| rows.get_mut(&call_id)) else {
                    continue;
                };
                match (&event, Attempt::dialed(&event)) {
                    (CampaignContactEvent::CampaignContactDialed { dial, .. }, Some(attempt)) => {
                        *row = Some(AttemptRow {
                            id: attempt.call_id,
                            organization_id,
                            campaign_id: dial.campaign_id,
                            contact_id: dial.contact_id,
                            phone: attempt.phone,
                            attempt_number: attempt.number as i32,
                            caller_number: attempt.caller_id.number,
                            dialed_at: attempt.at,
                            end: attempt.end,
                        });
                    }
                    // Never placed: not an attempt.
                    (CampaignContactEvent::CampaignDialWithdrawn { .. }, _) => *row = None,
                    _ => {
                        if let Some(row) = row {
                            row.end.evolve(&event);
                        }
                    }
                }
            }
            Ok(())
        })
        .await
    }
}

/// A row of the `dnc_numbers` table: one number of one organization, as its
/// [`DncEntry`] stands (the domain's fold of the entry's events).
#[derive(Serialize, Deserialize)]
struct DncRow {
    id: Uuid,
    organization_id: Uuid,
    phone: PhoneNumber,
    listed: bool,
    reason: Option<DncReason>,
    source: Option<DncSource>,
    added_at: Option<DateTime<Utc>>,
}

impl DncRow {
    /// The row of an entry; none before the number was ever listed.
    fn of(id: Uuid, entry: DncEntry) -> Option<Self> {
        let (Some(organization_id), Some(phone)) = (entry.organization_id, entry.phone) else {
            return None;
        };
        let listing = entry.listed;
        Some(Self {
            id,
            organization_id,
            phone,
            listed: listing.is_some(),
            reason: listing.as_ref().map(|l| l.reason),
            source: listing.as_ref().map(|l| l.source),
            added_at: listing.map(|l| l.added_at),
        })
    }

    fn entry(self) -> DncEntry {
        let listed = match (self.listed, self.reason, self.source, self.added_at) {
            (true, Some(reason), Some(source), Some(added_at)) => Some(Listing {
                reason,
                source,
                added_at,
            }),
            _ => None,
        };
        DncEntry {
            organization_id: Some(self.organization_id),
            phone: Some(self.phone),
            listed,
        }
    }
}

fn evolve_dnc(row: &mut Option<DncRow>, id: Uuid, event: DncEvent) {
    let entry = row.take().map(DncRow::entry).unwrap_or_default();
    *row = DncRow::of(id, entry.evolve(&event));
}

pub struct DncProjection;

#[async_trait]
impl ReadModel for DncProjection {
    fn name(&self) -> &'static str {
        "dnc"
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["dnc-number"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["dnc_numbers"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("dnc.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let changes = rows::of_stream_type::<DncEvent>(events, "dnc-number")?;
        rows::evolve_batch(conn, "dnc_numbers", changes, evolve_dnc).await
    }
}

/// Both campaign read models, for the API.
#[derive(Clone)]
pub struct PgCampaigns {
    pool: PgPool,
}

impl PgCampaigns {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// A `campaigns` row as the directory reads it (`CAMPAIGN_COLUMNS`).
#[derive(sqlx::FromRow)]
struct CampaignRecord {
    id: Uuid,
    settings: Json<CampaignSettings>,
    status: String,
    total_contacts: i64,
    calls_made: i64,
    calls_connected: i64,
    calls_successful: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const CAMPAIGN_COLUMNS: &str = "id, settings, status, total_contacts, calls_made, calls_connected, \
     calls_successful, created_at, updated_at";

fn read_failed(what: &'static str) -> impl Fn(sqlx::Error) -> AppError {
    move |e| AppError::internal(what, e)
}

/// A status column back as its type.
fn status_of(status: String) -> Result<CampaignStatus, AppError> {
    crate::rows::text_enum(status)
}

fn campaign_view(record: CampaignRecord) -> Result<CampaignView, AppError> {
    Ok(CampaignView {
        id: record.id,
        settings: record.settings.0,
        status: status_of(record.status)?,
        total_contacts: record.total_contacts,
        calls_made: record.calls_made,
        calls_connected: record.calls_connected,
        calls_successful: record.calls_successful,
        created_at: record.created_at,
        updated_at: record.updated_at,
    })
}

#[async_trait]
impl CampaignDirectory for PgCampaigns {
    async fn list(
        &self,
        organization_id: Uuid,
        status: Option<CampaignStatus>,
        page: Page,
    ) -> Result<Vec<CampaignView>, AppError> {
        let records: Vec<CampaignRecord> = sqlx::query_as(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns
             WHERE organization_id = $1 AND NOT archived AND ($2::text IS NULL OR status = $2)
             ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
        ))
        .bind(organization_id)
        .bind(status.map(CampaignStatus::as_str))
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await
        .map_err(read_failed("listing campaigns"))?;
        records.into_iter().map(campaign_view).collect()
    }

    async fn get(&self, organization_id: Uuid, campaign_id: Uuid) -> Result<Option<CampaignView>, AppError> {
        let record: Option<CampaignRecord> = sqlx::query_as(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE organization_id = $1 AND id = $2 AND NOT archived"
        ))
        .bind(organization_id)
        .bind(campaign_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(read_failed("reading a campaign"))?;
        record.map(campaign_view).transpose()
    }
}

type DncRecord = (
    Json<PhoneNumber>,
    bool,
    Option<Json<DncReason>>,
    Option<Json<DncSource>>,
    Option<DateTime<Utc>>,
);

fn dnc_status(record: DncRecord) -> DncStatus {
    let (Json(phone), listed, reason, source, added_at) = record;
    DncStatus {
        phone,
        listed,
        reason: reason.map(|Json(r)| r),
        source: source.map(|Json(s)| s),
        added_at,
    }
}

const DNC_COLUMNS: &str = "to_jsonb(phone), listed, to_jsonb(reason), to_jsonb(source), added_at";

#[async_trait]
impl DncDirectory for PgCampaigns {
    async fn status(&self, organization_id: Uuid, phone: &PhoneNumber) -> Result<DncStatus, AppError> {
        let record: Option<DncRecord> = sqlx::query_as(&format!(
            "SELECT {DNC_COLUMNS} FROM dnc_numbers WHERE organization_id = $1 AND phone = $2"
        ))
        .bind(organization_id)
        .bind(phone.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(read_failed("reading the DNC list"))?;
        Ok(record.map(dnc_status).unwrap_or_else(|| DncStatus {
            phone: phone.clone(),
            listed: false,
            reason: None,
            source: None,
            added_at: None,
        }))
    }

    async fn listed_among(
        &self,
        organization_id: Uuid,
        phones: &[PhoneNumber],
    ) -> Result<std::collections::HashSet<PhoneNumber>, AppError> {
        let texts: Vec<&str> = phones.iter().map(PhoneNumber::as_str).collect();
        let listed: Vec<Json<PhoneNumber>> = sqlx::query_scalar(
            "SELECT to_jsonb(phone) FROM dnc_numbers WHERE organization_id = $1 AND listed AND phone = ANY($2)",
        )
        .bind(organization_id)
        .bind(&texts)
        .fetch_all(&self.pool)
        .await
        .map_err(read_failed("scrubbing against the DNC list"))?;
        Ok(listed.into_iter().map(|Json(phone)| phone).collect())
    }

    async fn list(&self, organization_id: Uuid, page: Page) -> Result<Vec<DncStatus>, AppError> {
        let records: Vec<DncRecord> = sqlx::query_as(&format!(
            "SELECT {DNC_COLUMNS} FROM dnc_numbers WHERE organization_id = $1 AND listed
             ORDER BY added_at DESC, phone LIMIT $2 OFFSET $3"
        ))
        .bind(organization_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await
        .map_err(read_failed("listing the DNC list"))?;
        Ok(records.into_iter().map(dnc_status).collect())
    }
}

#[async_trait]
impl ContactDirectory for PgCampaigns {
    async fn contacts(
        &self,
        organization_id: Uuid,
        page: ListPage<ContactStatus>,
    ) -> Result<Vec<ContactView>, AppError> {
        // UUID v7 ids sort in import order.
        let rows: Vec<(Json<ContactRow>,)> = sqlx::query_as(
            "SELECT to_jsonb(c) FROM campaign_contacts c
             WHERE organization_id = $1 AND campaign_id = $2 AND ($3::text IS NULL OR status = $3)
               AND ($4::uuid IS NULL OR id > $4)
             ORDER BY id LIMIT $5",
        )
        .bind(organization_id)
        .bind(page.campaign_id)
        .bind(page.only.map(ContactStatus::as_str))
        .bind(page.after)
        .bind(page.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(read_failed("listing contacts"))?;
        Ok(rows.into_iter().map(|(Json(row),)| contact_view(row)).collect())
    }
}

/// What the API shows of a contact's row.
fn contact_view(row: ContactRow) -> ContactView {
    ContactView {
        id: row.id,
        phone: row.phone,
        first_name: row.first_name,
        last_name: row.last_name,
        email: row.email,
        company: row.company,
        notes: row.notes,
        timezone: row.timezone,
        custom_data: row.custom_data,
        status: row.status,
        priority: row.priority,
        attempt_count: row.attempt_count,
        last_attempt_at: row.last_attempt_at,
        next_attempt_at: row.next_attempt_at,
        last_result: row.last_result,
        outcome: row.outcome,
        created_at: row.created_at,
    }
}

type RunningRecord = (Uuid, Uuid, String, Json<CampaignSettings>, i64, i64, i64, i64, i64);

#[async_trait]
impl CampaignBoard for PgCampaigns {
    fn read_models(&self) -> &'static [&'static str] {
        &["campaigns", "campaign_contacts", "campaign_attempts", "phone_numbers"]
    }

    async fn due_to_start(&self, now: DateTime<Utc>) -> Result<Vec<(Uuid, Uuid)>, AppError> {
        sqlx::query_as(
            "SELECT organization_id, id FROM campaigns
             WHERE status = 'scheduled' AND NOT archived AND (settings->>'scheduledStart')::timestamptz <= $1",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(read_failed("finding campaigns to start"))
    }

    async fn running(&self, now: DateTime<Utc>) -> Result<Vec<RunningCampaign>, AppError> {
        // Counted per campaign from the contacts' index; campaigns served least recently come first.
        let records: Vec<RunningRecord> = sqlx::query_as(
            "SELECT c.organization_id, c.id, c.status, c.settings, c.total_contacts, c.calls_made,
                    c.pending_contacts + c.calling_contacts, c.calling_contacts,
                    (SELECT count(*) FROM campaign_contacts k
                     WHERE k.campaign_id = c.id AND k.last_attempt_at > $1 - interval '1 minute')
             FROM campaigns c
             WHERE NOT c.archived AND (c.status = 'running'
                OR c.status = 'paused' AND (c.settings->>'scheduledEnd')::timestamptz <= $1)
             ORDER BY c.calls_made, c.id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(read_failed("reading running campaigns"))?;
        records
            .into_iter()
            .map(
                |(organization_id, id, status, Json(settings), total_contacts, calls_made, open, calling, recent)| {
                    let status = status_of(status)?;
                    Ok(RunningCampaign {
                        organization_id,
                        id,
                        status,
                        settings,
                        total_contacts,
                        open_contacts: open,
                        in_flight: calling,
                        dialed_last_minute: recent,
                        calls_made,
                    })
                },
            )
            .collect()
    }

    async fn unfinished_attempts(&self, before: DateTime<Utc>) -> Result<Vec<UnfinishedAttempt>, AppError> {
        let rows: Vec<(Uuid, Uuid, Uuid, Uuid)> = sqlx::query_as(
            "SELECT organization_id, campaign_id, contact_id, id FROM campaign_attempts
             WHERE result IS NULL AND dialed_at < $1 ORDER BY dialed_at LIMIT 1000",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await
        .map_err(read_failed("finding unfinished attempts"))?;
        Ok(rows
            .into_iter()
            .map(
                |(organization_id, campaign_id, contact_id, call_id)| UnfinishedAttempt {
                    organization_id,
                    campaign_id,
                    contact_id,
                    call_id,
                },
            )
            .collect())
    }

    async fn ready(&self, shares: &[(Uuid, i64)], now: DateTime<Utc>) -> Result<Vec<(Uuid, ReadyContact)>, AppError> {
        let campaigns: Vec<Uuid> = shares.iter().map(|(id, _)| *id).collect();
        let limits: Vec<i64> = shares.iter().map(|(_, n)| *n).collect();
        // Each campaign's range of the "next ready" index, all in one statement.
        let rows: Vec<(Uuid, Json<PhoneNumber>, Option<Json<TimeZone>>, Uuid)> = sqlx::query_as(
            "SELECT s.campaign_id, to_jsonb(r.phone), to_jsonb(r.timezone), r.id
             FROM UNNEST($1::uuid[], $2::bigint[]) AS s(campaign_id, wanted)
             CROSS JOIN LATERAL (
                 SELECT phone, timezone, id, ready_at FROM campaign_contacts
                 WHERE campaign_id = s.campaign_id AND status = 'pending' AND ready_at <= $3
                 ORDER BY ready_at, id LIMIT s.wanted
             ) r
             ORDER BY s.campaign_id, r.ready_at, r.id",
        )
        .bind(&campaigns)
        .bind(&limits)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(read_failed("picking ready contacts"))?;
        Ok(rows
            .into_iter()
            .map(|(campaign_id, Json(phone), timezone, contact_id)| {
                (
                    campaign_id,
                    ReadyContact {
                        contact_id,
                        phone,
                        timezone: timezone.map(|Json(z)| z),
                    },
                )
            })
            .collect())
    }

    async fn caller_ids(&self, organization_id: Uuid, ids: &[Uuid]) -> Result<Vec<CallerId>, AppError> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, number FROM phone_numbers
             WHERE organization_id = $1 AND id = ANY($2) AND number IS NOT NULL AND NOT removed",
        )
        .bind(organization_id)
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(read_failed("reading caller ids"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, number)| {
                PhoneNumber::parse(&number).ok().map(|number| CallerId {
                    phone_number_id: id,
                    number,
                })
            })
            .collect())
    }
}

#[async_trait]
impl CampaignLookup for PgCampaigns {
    async fn settings(&self, organization_id: Uuid, campaign_id: Uuid) -> Result<Option<CampaignSettings>, AppError> {
        Ok(self
            .settings_and_status(organization_id, campaign_id)
            .await?
            .map(|(settings, _)| settings))
    }

    async fn status(&self, organization_id: Uuid, campaign_id: Uuid) -> Result<Option<CampaignStatus>, AppError> {
        Ok(self
            .settings_and_status(organization_id, campaign_id)
            .await?
            .map(|(_, status)| status))
    }
}

impl PgCampaigns {
    /// One campaign's settings and status, for the runner's reactors.
    async fn settings_and_status(
        &self,
        organization_id: Uuid,
        campaign_id: Uuid,
    ) -> Result<Option<(CampaignSettings, CampaignStatus)>, AppError> {
        let row: Option<(Json<CampaignSettings>, String)> =
            sqlx::query_as("SELECT settings, status FROM campaigns WHERE organization_id = $1 AND id = $2")
                .bind(organization_id)
                .bind(campaign_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(read_failed("reading a campaign"))?;
        row.map(|(Json(settings), status)| Ok((settings, status_of(status)?)))
            .transpose()
    }
}

#[async_trait]
impl CampaignProgress for PgCampaigns {
    async fn attempts(
        &self,
        organization_id: Uuid,
        page: ListPage<AttemptResult>,
    ) -> Result<Vec<AttemptView>, AppError> {
        // UUID v7 call ids sort in dialling order.
        let rows: Vec<(Json<AttemptRow>,)> = sqlx::query_as(
            "SELECT to_jsonb(a) FROM campaign_attempts a
             WHERE organization_id = $1 AND campaign_id = $2 AND ($3::uuid IS NULL OR id > $3)
               AND ($5::text IS NULL OR result = $5)
             ORDER BY id LIMIT $4",
        )
        .bind(organization_id)
        .bind(page.campaign_id)
        .bind(page.after)
        .bind(page.limit)
        .bind(page.only.map(AttemptResult::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(read_failed("listing attempts"))?;
        Ok(rows
            .into_iter()
            .map(|(Json(a),)| AttemptView {
                call_id: a.id,
                contact_id: a.contact_id,
                phone: a.phone,
                attempt_number: a.attempt_number,
                result: a.end.result,
                outcome: a.end.outcome,
                caller_number: a.caller_number,
                dialed_at: a.dialed_at,
                finished_at: a.end.finished_at,
            })
            .collect())
    }

    async fn progress(
        &self,
        organization_id: Uuid,
        campaign_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Progress, AppError> {
        let by_status: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM campaign_contacts WHERE campaign_id = $1 AND organization_id = $2
             GROUP BY status",
        )
        .bind(campaign_id)
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await
        .map_err(read_failed("counting contacts"))?;
        let (attempted, reached, recent): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(DISTINCT contact_id), count(DISTINCT contact_id) FILTER (WHERE result = 'connected'),
                    count(*) FILTER (WHERE dialed_at > $2)
             FROM campaign_attempts WHERE campaign_id = $1 AND organization_id = $3",
        )
        .bind(campaign_id)
        .bind(since)
        .bind(organization_id)
        .fetch_one(&self.pool)
        .await
        .map_err(read_failed("counting attempts"))?;
        Ok(Progress {
            contacts_by_status: by_status.into_iter().collect(),
            contacts_attempted: attempted,
            contacts_reached: reached,
            dials_since: recent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_row_is_the_tables_columns_and_reads_back() {
        let row = AttemptRow {
            id: Uuid::from_u128(1),
            organization_id: Uuid::from_u128(2),
            campaign_id: Uuid::from_u128(3),
            contact_id: Uuid::from_u128(4),
            phone: PhoneNumber::parse("+14155552671").unwrap(),
            attempt_number: 1,
            caller_number: PhoneNumber::parse("+16175550109").unwrap(),
            dialed_at: "2026-11-24T12:00:00Z".parse().unwrap(),
            end: AttemptEnd::default(),
        };
        let json = serde_json::to_value(&row).unwrap();
        let columns: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = [
            "id",
            "organization_id",
            "campaign_id",
            "contact_id",
            "phone",
            "attempt_number",
            "result",
            "outcome",
            "caller_number",
            "dialed_at",
            "finished_at",
        ];
        expected.sort_unstable();
        assert_eq!(columns, expected, "a null column is written too: an upsert clears it");
        let finished =
            serde_json::json!({"result": "connected", "outcome": "qualified", "finished_at": "2026-11-24T12:05:00Z"});
        let mut stored = json.clone();
        stored
            .as_object_mut()
            .unwrap()
            .extend(finished.as_object().unwrap().clone());
        let read: AttemptRow = serde_json::from_value(stored).unwrap();
        assert_eq!(read.end.result, Some(AttemptResult::Connected));
        assert_eq!(read.end.outcome, Some(Outcome::Qualified));
        assert_eq!(read.attempt_number, 1);
    }
}
