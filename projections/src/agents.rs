//! Agents as the API lists them, with their Vapi sync status (the
//! `agent_sync_queue` subscription feeds their sync to Vapi).

use crate::rows::{self};
use crate::runtime::ReadModel;
use application::agents::{AgentDirectory, AgentView};
use application::auth::Page;
use application::AppError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::agents::{AgentEvent, AgentSpec};
use domain::sync::{FailedPush, SyncStatus};
use domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

/// A row of the `agents` table.
#[derive(Serialize, Deserialize)]
struct AgentRow {
    id: Uuid,
    organization_id: Uuid,
    spec: AgentSpec,
    active: bool,
    deleted: bool,
    revision: i32,
    synced_revision: i32,
    sync_failed: bool,
    vapi_assistant_id: Option<String>,
    last_sync_error: Option<String>,
    next_sync_attempt_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// One event's change to an agent's row (`None`: not created yet).
fn evolve(row: &mut Option<AgentRow>, id: Uuid, event: AgentEvent) {
    if let AgentEvent::AgentCreated {
        organization_id,
        spec,
        created_at,
    } = event
    {
        *row = Some(AgentRow {
            id,
            organization_id,
            spec,
            active: true,
            deleted: false,
            revision: 1,
            synced_revision: 0,
            sync_failed: false,
            vapi_assistant_id: None,
            last_sync_error: None,
            next_sync_attempt_at: None,
            created_at,
            updated_at: created_at,
        });
        return;
    }
    let Some(agent) = row else { return };
    match event {
        // Analytics reads the checklist; the agent list does not show it.
        AgentEvent::AgentCreated { .. }
        | AgentEvent::AgentAssistantCreationStarted { .. }
        | AgentEvent::AgentAdherenceChecklistSet { .. } => {}
        AgentEvent::AgentUpdated { spec, updated_at } => {
            agent.spec = spec;
            agent.revision += 1;
            agent.sync_failed = false;
            agent.updated_at = updated_at;
        }
        AgentEvent::AgentActivated { at } => {
            agent.active = true;
            agent.updated_at = at;
        }
        AgentEvent::AgentDeactivated { at } => {
            agent.active = false;
            agent.updated_at = at;
        }
        AgentEvent::AgentAssistantRefreshRequested { .. } => {
            agent.revision += 1;
            agent.sync_failed = false;
        }
        AgentEvent::AgentDeleted { at } => {
            agent.deleted = true;
            agent.active = false;
            agent.revision += 1;
            agent.sync_failed = false;
            agent.updated_at = at;
        }
        AgentEvent::AgentSyncedToVapi {
            vapi_assistant_id,
            revision,
            ..
        } => {
            // A push of an older revision only tells the assistant id.
            let revision = revision as i32;
            agent.synced_revision = agent.synced_revision.max(revision);
            agent.vapi_assistant_id = vapi_assistant_id;
            if agent.revision == revision {
                agent.sync_failed = false;
                agent.last_sync_error = None;
                agent.next_sync_attempt_at = None;
            }
        }
        AgentEvent::AgentSyncFailed {
            failed:
                FailedPush {
                    revision,
                    reason,
                    retry_at,
                    ..
                },
            ..
        } => {
            if agent.revision == revision as i32 {
                agent.sync_failed = true;
                agent.last_sync_error = Some(reason);
                agent.next_sync_attempt_at = retry_at;
            }
        }
    }
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

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["agent"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["agents"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("agents.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let changes = rows::of_stream_type::<AgentEvent>(events, "agent")?;
        rows::evolve_batch(conn, "agents", changes, evolve).await
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

    async fn ids(&self, organization_id: Uuid) -> Result<Vec<Uuid>, AppError> {
        sqlx::query_scalar("SELECT id FROM agents WHERE organization_id = $1 AND NOT deleted")
            .bind(organization_id)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| AppError::internal("listing agent ids", e))
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
