//! Credentials (masked) and phone numbers with their sync and line status
//! (the `number_sync_queue` subscription feeds their sync to Vapi).

use crate::rows::{self};
use crate::runtime::ReadModel;
use application::auth::Page;
use application::phone_numbers::{CredentialView, NumberDirectory, PhoneNumberView};
use application::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::phone_numbers::{
    CredentialEvent, CredentialProvider, NumberProvider, NumberSource, PhoneNumberEvent, PhoneNumberStatus,
};
use domain::sync::{FailedPush, SyncStatus};
use domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

/// A row of the `credentials` table.
#[derive(Serialize, Deserialize)]
struct CredentialRow {
    id: Uuid,
    organization_id: Uuid,
    provider: CredentialProvider,
    name: String,
    hint: String,
    registered_with_vapi: bool,
    removed: bool,
    created_at: DateTime<Utc>,
}

/// One event's change to a credential's row (`None`: not added yet).
fn evolve_credential(row: &mut Option<CredentialRow>, id: Uuid, event: CredentialEvent) {
    if let CredentialEvent::CredentialAdded {
        organization_id,
        provider,
        name,
        hint,
        at,
        ..
    } = event
    {
        *row = Some(CredentialRow {
            id,
            organization_id,
            provider,
            name,
            hint,
            registered_with_vapi: false,
            removed: false,
            created_at: at,
        });
        return;
    }
    let Some(credential) = row else { return };
    match event {
        CredentialEvent::CredentialAdded { .. } => {}
        CredentialEvent::CredentialRegisteredWithVapi { .. } => credential.registered_with_vapi = true,
        CredentialEvent::CredentialRemoved { .. } => credential.removed = true,
    }
}

/// A row of the `phone_numbers` table.
#[derive(Serialize, Deserialize)]
struct NumberRow {
    id: Uuid,
    organization_id: Uuid,
    provider: String,
    name: Option<String>,
    number: Option<String>,
    area_code: Option<String>,
    agent_id: Option<Uuid>,
    credential_id: Option<Uuid>,
    status: Option<String>,
    revision: i32,
    synced_revision: i32,
    sync_failed: bool,
    vapi_phone_number_id: Option<String>,
    last_sync_error: Option<String>,
    removed: bool,
    created_at: DateTime<Utc>,
}

/// One event's change to a number's row (`None`: not added yet).
fn evolve_number(row: &mut Option<NumberRow>, id: Uuid, event: PhoneNumberEvent) {
    if let PhoneNumberEvent::PhoneNumberAdded {
        organization_id,
        name,
        source,
        agent_id,
        at,
    } = event
    {
        let area_code = match &source {
            NumberSource::Vapi { area_code } => Some(area_code.clone()),
            other => other.number().and_then(|n| n.area_code()).map(str::to_owned),
        };
        *row = Some(NumberRow {
            id,
            organization_id,
            provider: source.provider().as_str().to_owned(),
            name,
            number: source.number().map(|n| n.as_str().to_owned()),
            area_code,
            agent_id,
            credential_id: source.credential_id(),
            status: None,
            revision: 1,
            synced_revision: 0,
            sync_failed: false,
            vapi_phone_number_id: None,
            last_sync_error: None,
            removed: false,
            created_at: at,
        });
        return;
    }
    let Some(phone) = row else { return };
    match event {
        PhoneNumberEvent::PhoneNumberAdded { .. } => {}
        // The sync reactor's own bookkeeping: nothing the user sees changes.
        PhoneNumberEvent::PhoneNumberProvisioningStarted { .. } => {}
        PhoneNumberEvent::PhoneNumberAssigned { agent_id, .. } => {
            phone.agent_id = agent_id;
            phone.revision += 1;
            phone.sync_failed = false;
        }
        PhoneNumberEvent::PhoneNumberRemoved { .. } => {
            phone.removed = true;
            phone.revision += 1;
            phone.sync_failed = false;
        }
        PhoneNumberEvent::PhoneNumberSyncedToVapi {
            vapi_phone_number_id,
            number,
            revision,
            ..
        } => {
            // A push of an older revision only tells the number's id.
            let revision = revision as i32;
            phone.synced_revision = phone.synced_revision.max(revision);
            phone.vapi_phone_number_id = vapi_phone_number_id;
            if let Some(number) = number {
                if phone.area_code.is_none() {
                    phone.area_code = number.area_code().map(str::to_owned);
                }
                phone.number = Some(number.as_str().to_owned());
            }
            if phone.revision == revision {
                phone.sync_failed = false;
                phone.last_sync_error = None;
            }
        }
        PhoneNumberEvent::PhoneNumberSyncFailed {
            failed: FailedPush { revision, reason, .. },
            ..
        } => {
            if phone.revision == revision as i32 {
                phone.sync_failed = true;
                phone.last_sync_error = Some(reason);
            }
        }
        PhoneNumberEvent::PhoneNumberStatusChanged { status, .. } => phone.status = Some(status.as_str().to_owned()),
    }
}

pub struct PhoneNumbersProjection;

#[async_trait]
impl ReadModel for PhoneNumbersProjection {
    fn name(&self) -> &'static str {
        "phone_numbers"
    }

    fn schema_version(&self) -> i32 {
        2
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["credential", "phone-number"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["credentials", "phone_numbers"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("phone_numbers.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let credentials = rows::of_stream_type(events, "credential")?;
        rows::evolve_batch(conn, "credentials", credentials, evolve_credential).await?;
        let numbers = rows::of_stream_type(events, "phone-number")?;
        rows::evolve_batch(conn, "phone_numbers", numbers, evolve_number).await
    }
}

#[derive(Clone)]
pub struct PgNumberDirectory {
    pool: PgPool,
}

impl PgNumberDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn failed(error: sqlx::Error) -> AppError {
    AppError::internal("reading phone numbers", error)
}

const NUMBER_COLUMNS: &str = "id, provider, name, number, area_code, agent_id, credential_id, status, revision, \
     synced_revision, sync_failed, vapi_phone_number_id, last_sync_error, created_at";

fn number_view(row: &PgRow) -> PhoneNumberView {
    let (revision, synced): (i32, i32) = (row.get("revision"), row.get("synced_revision"));
    let sync_status = SyncStatus::of(revision.into(), synced.into(), row.get("sync_failed"));
    PhoneNumberView {
        id: row.get("id"),
        provider: NumberProvider::parse(row.get("provider")),
        name: row.get("name"),
        number: row.get("number"),
        area_code: row.get("area_code"),
        agent_id: row.get("agent_id"),
        credential_id: row.get("credential_id"),
        status: row.get::<Option<&str>, _>("status").map(PhoneNumberStatus::parse),
        sync_status,
        vapi_phone_number_id: row.get("vapi_phone_number_id"),
        last_sync_error: row.get("last_sync_error"),
        created_at: row.get("created_at"),
    }
}

#[async_trait]
impl NumberDirectory for PgNumberDirectory {
    async fn credentials(&self, organization_id: Uuid, page: Page) -> Result<Vec<CredentialView>, AppError> {
        let query = sqlx::query(
            "SELECT id, provider, name, hint, registered_with_vapi, created_at FROM credentials
             WHERE organization_id = $1 AND NOT removed ORDER BY created_at, id LIMIT $2 OFFSET $3",
        );
        let rows = rows::fetch_page(&self.pool, query.bind(organization_id), page)
            .await
            .map_err(failed)?;
        Ok(rows
            .iter()
            .map(|r| CredentialView {
                id: r.get("id"),
                provider: CredentialProvider::parse(r.get("provider")),
                name: r.get("name"),
                hint: r.get("hint"),
                registered_with_vapi: r.get("registered_with_vapi"),
                created_at: r.get("created_at"),
            })
            .collect())
    }

    async fn numbers(&self, organization_id: Uuid, page: Page) -> Result<Vec<PhoneNumberView>, AppError> {
        let sql = format!(
            "SELECT {NUMBER_COLUMNS} FROM phone_numbers WHERE organization_id = $1 AND NOT removed
             ORDER BY created_at, id LIMIT $2 OFFSET $3"
        );
        let numbers = rows::fetch_page(&self.pool, sqlx::query(&sql).bind(organization_id), page)
            .await
            .map_err(failed)?;
        Ok(numbers.iter().map(number_view).collect())
    }

    async fn number(&self, organization_id: Uuid, id: Uuid) -> Result<Option<PhoneNumberView>, AppError> {
        let row = sqlx::query(&format!(
            "SELECT {NUMBER_COLUMNS} FROM phone_numbers WHERE organization_id = $1 AND id = $2 AND NOT removed"
        ))
        .bind(organization_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)?;
        Ok(row.as_ref().map(number_view))
    }

    async fn synced_numbers(&self) -> Result<Vec<(Uuid, Uuid, String)>, AppError> {
        let rows = sqlx::query(
            "SELECT organization_id, id, vapi_phone_number_id FROM phone_numbers
             WHERE NOT removed AND vapi_phone_number_id IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        Ok(rows
            .iter()
            .map(|r| (r.get("organization_id"), r.get("id"), r.get("vapi_phone_number_id")))
            .collect())
    }
}
