//! Agents as the API lists them, with their Vapi sync status (the
//! `agent_sync_queue` subscription feeds their sync to Vapi).

use crate::runtime::ReadModel;
use application::agents::{AgentDirectory, AgentView};
use application::auth::Page;
use application::AppError;
use async_trait::async_trait;
use domain::agents::AgentEvent;
use domain::sync::SyncStatus;
use domain::{DomainEvent, RecordedEvent};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

fn decode(event: &RecordedEvent) -> Result<AgentEvent, sqlx::Error> {
    AgentEvent::decode(&event.event_type, event.event_version, &event.payload)
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn agent_id(event: &RecordedEvent) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(event.stream_id.trim_start_matches("agent-")).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub struct AgentsProjection;

#[async_trait]
impl ReadModel for AgentsProjection {
    fn name(&self) -> &'static str {
        "agents"
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["agents"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("agents.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        for event in events.iter().filter(|e| e.stream_type == "agent") {
            let id = agent_id(event)?;
            let query = match decode(event)? {
                AgentEvent::AgentCreated { organization_id, spec, created_at } => sqlx::query(
                    "INSERT INTO agents (id, organization_id, spec, active, revision, created_at, updated_at)
                     VALUES ($1, $2, $3, true, 1, $4, $4)",
                )
                .bind(id)
                .bind(organization_id)
                .bind(sqlx::types::Json(spec))
                .bind(created_at),
                AgentEvent::AgentUpdated { spec, updated_at } => sqlx::query(
                    "UPDATE agents SET spec = $2, revision = revision + 1, sync_failed = false, updated_at = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(sqlx::types::Json(spec))
                .bind(updated_at),
                AgentEvent::AgentActivated { at } => {
                    sqlx::query("UPDATE agents SET active = true, updated_at = $2 WHERE id = $1").bind(id).bind(at)
                }
                AgentEvent::AgentDeactivated { at } => {
                    sqlx::query("UPDATE agents SET active = false, updated_at = $2 WHERE id = $1").bind(id).bind(at)
                }
                AgentEvent::AgentDeleted { at } => sqlx::query(
                    "UPDATE agents SET deleted = true, active = false, revision = revision + 1, sync_failed = false, updated_at = $2
                     WHERE id = $1",
                )
                .bind(id)
                .bind(at),
                AgentEvent::AgentSyncedToVapi { vapi_assistant_id, revision, .. } => sqlx::query(
                    // A push of an older revision only tells the assistant id.
                    "UPDATE agents SET synced_revision = GREATEST(synced_revision, $2), vapi_assistant_id = $3,
                        sync_failed = sync_failed AND revision <> $2,
                        last_sync_error = CASE WHEN revision = $2 THEN NULL ELSE last_sync_error END,
                        next_sync_attempt_at = CASE WHEN revision = $2 THEN NULL ELSE next_sync_attempt_at END
                     WHERE id = $1",
                )
                .bind(id)
                .bind(revision as i32)
                .bind(vapi_assistant_id),
                AgentEvent::AgentAssistantCreationStarted { .. } => continue,
                AgentEvent::AgentSyncFailed { revision, reason, retry_at, .. } => sqlx::query(
                    "UPDATE agents SET sync_failed = true, last_sync_error = $3, next_sync_attempt_at = $4
                     WHERE id = $1 AND revision = $2",
                )
                .bind(id)
                .bind(revision as i32)
                .bind(reason)
                .bind(retry_at),
            };
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct PgAgentDirectory {
    pool: PgPool,
}

impl PgAgentDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

const AGENT_COLUMNS: &str = "id, spec, active, revision, synced_revision, sync_failed, vapi_assistant_id, \
     last_sync_error, next_sync_attempt_at, created_at, updated_at";

fn agent_view(row: &PgRow) -> Result<AgentView, AppError> {
    let revision: i32 = row.get("revision");
    let synced: i32 = row.get("synced_revision");
    let sync_status = SyncStatus::of(revision.into(), synced.into(), row.get("sync_failed"));
    let spec: sqlx::types::Json<domain::agents::AgentSpec> = row
        .try_get("spec")
        .map_err(|e| AppError::internal("reading an agent", e))?;
    Ok(AgentView {
        id: row.get("id"),
        spec: spec.0,
        active: row.get("active"),
        sync_status,
        vapi_assistant_id: row.get("vapi_assistant_id"),
        last_sync_error: row.get("last_sync_error"),
        next_sync_attempt_at: row.get("next_sync_attempt_at"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

#[async_trait]
impl AgentDirectory for PgAgentDirectory {
    async fn list(&self, organization_id: Uuid, active: Option<bool>, page: Page) -> Result<Vec<AgentView>, AppError> {
        let rows = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents
             WHERE organization_id = $1 AND NOT deleted AND ($2::boolean IS NULL OR active = $2)
             ORDER BY created_at, id LIMIT $3 OFFSET $4"
        ))
        .bind(organization_id)
        .bind(active)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| AppError::internal("listing agents", e))?;
        rows.iter().map(agent_view).collect()
    }

    async fn get(&self, organization_id: Uuid, agent_id: Uuid) -> Result<Option<AgentView>, AppError> {
        let row = sqlx::query(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE organization_id = $1 AND id = $2 AND NOT deleted"
        ))
        .bind(organization_id)
        .bind(agent_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| AppError::internal("reading an agent", e))?;
        row.as_ref().map(agent_view).transpose()
    }
}
