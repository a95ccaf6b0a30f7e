//! Agents: configuration use cases, and their sync to the voice platform.

use crate::aggregates::{append_failed, load_any, load_in, stream_of, Loaded};
use crate::auth::{Page, Session};
use crate::clock::Clock;
use crate::error::{AppError, ErrorKind};
use crate::event_store::{AppendRequest, EventStore};
use crate::voice::{AssistantDefinition, ProviderError, RetryPolicy, VoiceProvider};
use crate::work::{WorkHandler, WorkItem, WorkOutcome};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::agents::{Agent, AgentCommand, AgentError, AgentSpec};
use domain::{Aggregate, EventMetadata};
use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

/// Name of the reactor that mirrors agents to Vapi assistants.
pub const AGENT_SYNC: &str = "vapi-agent-sync";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: AgentSpec,
    pub active: bool,
    /// `pending` until Vapi holds the current configuration, then `synced`; `failed` while a push keeps failing.
    pub sync_status: String,
    pub vapi_assistant_id: Option<String>,
    pub last_sync_error: Option<String>,
    pub next_sync_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The agents read model.
#[async_trait]
pub trait AgentDirectory: Send + Sync {
    async fn list(&self, organization_id: Uuid, active: Option<bool>, page: Page) -> Result<Vec<AgentView>, AppError>;
    async fn get(&self, organization_id: Uuid, agent_id: Uuid) -> Result<Option<AgentView>, AppError>;
}

pub fn agent_error(error: AgentError) -> AppError {
    match error {
        AgentError::Invalid { field, reason } => AppError::validation(field, format!("{field} is invalid: {reason}")),
        AgentError::NotFound => AppError::not_found("agent"),
        AgentError::Exists => AppError::new(ErrorKind::Conflict, "agent_exists", "agent already exists"),
    }
}

fn metadata(actor: &str) -> EventMetadata {
    EventMetadata {
        correlation_id: Some(Uuid::now_v7()),
        actor: Some(actor.to_owned()),
        source: Some("api".into()),
        ..EventMetadata::default()
    }
}

pub struct AgentService {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub directory: Arc<dyn AgentDirectory>,
}

/// The changes a PATCH may carry; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AgentChanges {
    pub name: Option<String>,
    pub system_prompt: Option<String>,
    pub first_message: Option<Option<String>>,
    pub voice: Option<domain::agents::VoiceSettings>,
    pub language: Option<String>,
    pub transfer_number: Option<Option<domain::phone::PhoneNumber>>,
    pub model: Option<domain::agents::ModelSettings>,
    pub outcome_rule: Option<Option<domain::calls::OutcomeRule>>,
}

impl AgentChanges {
    fn apply(self, mut spec: AgentSpec) -> AgentSpec {
        if let Some(v) = self.name {
            spec.name = v;
        }
        if let Some(v) = self.system_prompt {
            spec.system_prompt = v;
        }
        if let Some(v) = self.first_message {
            spec.first_message = v;
        }
        if let Some(v) = self.voice {
            spec.voice = v;
        }
        if let Some(v) = self.language {
            spec.language = v;
        }
        if let Some(v) = self.transfer_number {
            spec.transfer_number = v;
        }
        if let Some(v) = self.model {
            spec.model = v;
        }
        if let Some(v) = self.outcome_rule {
            spec.outcome_rule = v;
        }
        spec
    }
}

impl AgentService {
    async fn execute(
        &self,
        caller: &Session,
        agent_id: Uuid,
        command: impl Fn(&Agent) -> Result<AgentCommand, AppError>,
    ) -> Result<Loaded<Agent>, AppError> {
        // One retry covers a concurrent change between load and append.
        for _ in 0..3 {
            let loaded = load_in::<Agent>(
                self.store.as_ref(),
                caller.organization_id,
                stream_of::<Agent>(agent_id),
            )
            .await?;
            let events = Agent::decide(&command(&loaded.state)?, &loaded.state).map_err(agent_error)?;
            if events.is_empty() {
                return Ok(loaded);
            }
            let append = loaded.append_of(&events, &metadata(&format!("user:{}", caller.user_id)));
            match self
                .store
                .append(AppendRequest {
                    organization_id: caller.organization_id,
                    streams: vec![append],
                    idempotency_key: None,
                })
                .await
            {
                Ok(_) => {
                    let state = events.iter().fold(loaded.state, Agent::evolve);
                    return Ok(Loaded {
                        state,
                        version: loaded.version + events.len() as i64,
                        ..loaded
                    });
                }
                Err(crate::event_store::AppendError::VersionConflict { .. }) => continue,
                Err(other) => return Err(append_failed(other)),
            }
        }
        Err(AppError::new(
            ErrorKind::Conflict,
            "concurrent_modification",
            "the agent changed concurrently; retry",
        ))
    }

    pub async fn create(&self, caller: &Session, spec: AgentSpec) -> Result<AgentView, AppError> {
        let agent_id = Uuid::now_v7();
        let now = self.clock.now();
        let organization_id = caller.organization_id;
        let loaded = self
            .execute(caller, agent_id, |_| {
                Ok(AgentCommand::Create {
                    organization_id,
                    spec: spec.clone(),
                    now,
                })
            })
            .await?;
        view_of(agent_id, &loaded.state)
    }

    pub async fn update(&self, caller: &Session, agent_id: Uuid, changes: AgentChanges) -> Result<AgentView, AppError> {
        let now = self.clock.now();
        let loaded = self
            .execute(caller, agent_id, |state| match &state.spec {
                Some(spec) if state.exists() => Ok(AgentCommand::Update {
                    spec: changes.clone().apply(spec.clone()),
                    now,
                }),
                _ => Err(agent_error(AgentError::NotFound)),
            })
            .await?;
        view_of(agent_id, &loaded.state)
    }

    pub async fn set_active(&self, caller: &Session, agent_id: Uuid, active: bool) -> Result<AgentView, AppError> {
        let now = self.clock.now();
        let loaded = self
            .execute(caller, agent_id, |_| {
                Ok(if active {
                    AgentCommand::Activate { now }
                } else {
                    AgentCommand::Deactivate { now }
                })
            })
            .await?;
        view_of(agent_id, &loaded.state)
    }

    pub async fn delete(&self, caller: &Session, agent_id: Uuid) -> Result<(), AppError> {
        let now = self.clock.now();
        self.execute(caller, agent_id, |_| Ok(AgentCommand::Delete { now }))
            .await
            .map(|_| ())
    }

    pub async fn list(&self, caller: &Session, active: Option<bool>, page: Page) -> Result<Vec<AgentView>, AppError> {
        self.directory.list(caller.organization_id, active, page).await
    }

    pub async fn get(&self, caller: &Session, agent_id: Uuid) -> Result<AgentView, AppError> {
        self.directory
            .get(caller.organization_id, agent_id)
            .await?
            .ok_or_else(|| AppError::not_found("agent"))
    }
}

/// The agent as the write side knows it, for responses to changes.
fn view_of(id: Uuid, agent: &Agent) -> Result<AgentView, AppError> {
    let (Some(spec), Some(created_at)) = (agent.spec.clone(), agent.created_at) else {
        return Err(AppError::not_found("agent"));
    };
    Ok(AgentView {
        id,
        spec,
        active: agent.active,
        sync_status: agent.sync_status().into(),
        vapi_assistant_id: agent.vapi_assistant_id.clone(),
        last_sync_error: None,
        next_sync_attempt_at: None,
        created_at,
        updated_at: agent.updated_at.unwrap_or(created_at),
    })
}

/// Mirrors one agent to its Vapi assistant; the outcome is recorded on the agent's stream.
pub struct AgentSync {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub voice: Arc<dyn VoiceProvider>,
    pub retry: RetryPolicy,
}

impl AgentSync {
    async fn push(
        &self,
        organization_id: Uuid,
        agent_id: Uuid,
        agent: &Agent,
    ) -> Result<Option<String>, ProviderError> {
        let definition = |spec: &AgentSpec| AssistantDefinition {
            organization_id,
            agent_id,
            spec: spec.clone(),
        };
        match (&agent.spec, agent.deleted, &agent.vapi_assistant_id) {
            (_, true, Some(id)) => match self.voice.delete_assistant(id).await {
                Ok(()) | Err(ProviderError::NotFound) => Ok(None),
                Err(e) => Err(e),
            },
            (_, true, None) | (None, _, _) => Ok(None),
            (Some(spec), false, Some(id)) => match self.voice.update_assistant(id, &definition(spec)).await {
                Ok(()) => Ok(Some(id.clone())),
                // Deleted at Vapi behind our back: recreate it.
                Err(ProviderError::NotFound) => self.voice.create_assistant(&definition(spec)).await.map(Some),
                Err(e) => Err(e),
            },
            (Some(spec), false, None) => self.voice.create_assistant(&definition(spec)).await.map(Some),
        }
    }

    async fn record(
        &self,
        loaded: &Loaded<Agent>,
        organization_id: Uuid,
        command: AgentCommand,
    ) -> Result<(), AppError> {
        let events = Agent::decide(&command, &loaded.state).map_err(agent_error)?;
        let meta = crate::aggregates::metadata("system:vapi-sync", format!("reactor:{AGENT_SYNC}"));
        crate::aggregates::record_observation(self.store.as_ref(), organization_id, loaded, &events, &meta).await
    }
}

#[async_trait]
impl WorkHandler for AgentSync {
    fn reactor(&self) -> &'static str {
        AGENT_SYNC
    }

    async fn handle(&self, item: &WorkItem) -> Result<WorkOutcome, AppError> {
        let agent_id = Uuid::parse_str(&item.key).map_err(|e| AppError::internal("reading a work key", e))?;
        let loaded = load_any::<Agent>(self.store.as_ref(), stream_of::<Agent>(agent_id)).await?;
        let organization_id = loaded.organization_id.unwrap_or(item.organization_id);
        if !loaded.state.needs_sync() {
            return Ok(WorkOutcome::Done);
        }
        let revision = loaded.state.revision;
        match self.push(organization_id, agent_id, &loaded.state).await {
            Ok(vapi_assistant_id) => {
                let now = self.clock.now();
                self.record(
                    &loaded,
                    organization_id,
                    AgentCommand::RecordSynced {
                        vapi_assistant_id,
                        revision,
                        now,
                    },
                )
                .await?;
                Ok(WorkOutcome::Done)
            }
            Err(error) => {
                let attempt = item.attempts + 1;
                let now = self.clock.now();
                let retry_at = self.retry.next_attempt(attempt, &error, now);
                let reason = error.to_string();
                tracing::warn!(%agent_id, attempt, %reason, "agent sync to Vapi failed");
                self.record(
                    &loaded,
                    organization_id,
                    AgentCommand::RecordSyncFailed {
                        revision,
                        reason: reason.clone(),
                        attempt,
                        retry_at,
                        now,
                    },
                )
                .await?;
                Ok(match retry_at {
                    Some(due) => WorkOutcome::RetryAt { due, reason },
                    None => WorkOutcome::GiveUp { reason },
                })
            }
        }
    }
}
