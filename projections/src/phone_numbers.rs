//! Credentials (masked) and phone numbers with their sync and line status
//! (the `number_sync_queue` subscription feeds their sync to Vapi).

use crate::runtime::ReadModel;
use application::auth::Page;
use application::phone_numbers::{CredentialView, NumberDirectory, PhoneNumberView};
use application::AppError;
use async_trait::async_trait;
use domain::phone_numbers::{CredentialEvent, PhoneNumberEvent};
use domain::sync::SyncStatus;
use domain::{DomainEvent, RecordedEvent};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

fn id_of(event: &RecordedEvent) -> Result<Uuid, sqlx::Error> {
    let prefix = format!("{}-", event.stream_type);
    Uuid::parse_str(event.stream_id.trim_start_matches(&prefix)).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn decode_error(e: domain::events::DecodeError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

pub struct PhoneNumbersProjection;

#[async_trait]
impl ReadModel for PhoneNumbersProjection {
    fn name(&self) -> &'static str {
        "phone_numbers"
    }

    fn schema_version(&self) -> i32 {
        1
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
        for event in events {
            match event.stream_type.as_str() {
                "credential" => apply_credential(conn, event).await?,
                "phone-number" => apply_number(conn, event).await?,
                _ => {}
            }
        }
        Ok(())
    }
}

async fn apply_credential(conn: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
    let id = id_of(event)?;
    let query = match CredentialEvent::decode(&event.event_type, event.event_version, &event.payload).map_err(decode_error)? {
        CredentialEvent::CredentialAdded { organization_id, provider, name, hint, at, .. } => sqlx::query(
            "INSERT INTO credentials (id, organization_id, provider, name, hint, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(organization_id)
        .bind(provider)
        .bind(name)
        .bind(hint)
        .bind(at),
        CredentialEvent::CredentialRegisteredWithVapi { .. } => {
            sqlx::query("UPDATE credentials SET registered_with_vapi = true WHERE id = $1").bind(id)
        }
        CredentialEvent::CredentialRemoved { .. } => sqlx::query("UPDATE credentials SET removed = true WHERE id = $1").bind(id),
    };
    query.execute(conn).await.map(|_| ())
}

async fn apply_number(conn: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
    let id = id_of(event)?;
    let query = match PhoneNumberEvent::decode(&event.event_type, event.event_version, &event.payload)
        .map_err(decode_error)?
    {
        PhoneNumberEvent::PhoneNumberAdded {
            organization_id,
            name,
            source,
            agent_id,
            at,
        } => {
            let area_code = match &source {
                domain::phone_numbers::NumberSource::Vapi { area_code } => Some(area_code.clone()),
                other => other.number().and_then(|n| n.area_code()).map(str::to_owned),
            };
            sqlx::query(
                "INSERT INTO phone_numbers (id, organization_id, provider, name, number, area_code, agent_id, credential_id, revision, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9)",
            )
            .bind(id)
            .bind(organization_id)
            .bind(source.provider())
            .bind(name)
            .bind(source.number().map(|n| n.as_str().to_owned()))
            .bind(area_code)
            .bind(agent_id)
            .bind(source.credential_id())
            .bind(at)
        }
        PhoneNumberEvent::PhoneNumberAssigned { agent_id, .. } => sqlx::query(
            "UPDATE phone_numbers SET agent_id = $2, revision = revision + 1, sync_failed = false WHERE id = $1",
        )
        .bind(id)
        .bind(agent_id),
        PhoneNumberEvent::PhoneNumberRemoved { .. } => sqlx::query(
            "UPDATE phone_numbers SET removed = true, revision = revision + 1, sync_failed = false WHERE id = $1",
        )
        .bind(id),
        PhoneNumberEvent::PhoneNumberSyncedToVapi {
            vapi_phone_number_id,
            number,
            revision,
            ..
        } => sqlx::query(
            // A push of an older revision only tells the number's id.
            "UPDATE phone_numbers SET synced_revision = GREATEST(synced_revision, $2), vapi_phone_number_id = $3,
                number = COALESCE($4, number), area_code = COALESCE(area_code, $5),
                sync_failed = sync_failed AND revision <> $2,
                last_sync_error = CASE WHEN revision = $2 THEN NULL ELSE last_sync_error END
             WHERE id = $1",
        )
        .bind(id)
        .bind(revision as i32)
        .bind(vapi_phone_number_id)
        .bind(number.as_ref().map(|n| n.as_str().to_owned()))
        .bind(number.as_ref().and_then(|n| n.area_code()).map(str::to_owned)),
        PhoneNumberEvent::PhoneNumberSyncFailed { revision, reason, .. } => sqlx::query(
            "UPDATE phone_numbers SET sync_failed = true, last_sync_error = $3 WHERE id = $1 AND revision = $2",
        )
        .bind(id)
        .bind(revision as i32)
        .bind(reason),
        PhoneNumberEvent::PhoneNumberStatusChanged { status, .. } => {
            sqlx::query("UPDATE phone_numbers SET status = $2 WHERE id = $1")
                .bind(id)
                .bind(status)
        }
        // The sync reactor's own bookkeeping: nothing the user sees changes.
        PhoneNumberEvent::PhoneNumberProvisioningStarted { .. } => return Ok(()),
    };
    query.execute(conn).await.map(|_| ())
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
        provider: row.get("provider"),
        name: row.get("name"),
        number: row.get("number"),
        area_code: row.get("area_code"),
        agent_id: row.get("agent_id"),
        credential_id: row.get("credential_id"),
        status: row.get("status"),
        sync_status,
        vapi_phone_number_id: row.get("vapi_phone_number_id"),
        last_sync_error: row.get("last_sync_error"),
        created_at: row.get("created_at"),
    }
}

#[async_trait]
impl NumberDirectory for PgNumberDirectory {
    async fn credentials(&self, organization_id: Uuid, page: Page) -> Result<Vec<CredentialView>, AppError> {
        let rows = sqlx::query(
            "SELECT id, provider, name, hint, registered_with_vapi, created_at FROM credentials
             WHERE organization_id = $1 AND NOT removed ORDER BY created_at, id LIMIT $2 OFFSET $3",
        )
        .bind(organization_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        Ok(rows
            .iter()
            .map(|r| CredentialView {
                id: r.get("id"),
                provider: r.get("provider"),
                name: r.get("name"),
                hint: r.get("hint"),
                registered_with_vapi: r.get("registered_with_vapi"),
                created_at: r.get("created_at"),
            })
            .collect())
    }

    async fn numbers(&self, organization_id: Uuid, page: Page) -> Result<Vec<PhoneNumberView>, AppError> {
        let rows = sqlx::query(&format!(
            "SELECT {NUMBER_COLUMNS} FROM phone_numbers WHERE organization_id = $1 AND NOT removed
             ORDER BY created_at, id LIMIT $2 OFFSET $3"
        ))
        .bind(organization_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        Ok(rows.iter().map(number_view).collect())
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
