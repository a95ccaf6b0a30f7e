//! Agents: configuration use cases, and their sync to the voice platform.

use crate::aggregates::{execute, load_in, metadata, session_metadata, stream_of, Loaded};
use crate::auth::{Page, Session};
use crate::calendar::CalendarDirectory;
use crate::clock::Clock;
use crate::error::{AppError, ErrorKind};
use crate::event_store::EventStore;
use crate::providers::{ProviderError, RetryPolicy};
use crate::voice::{AssistantDefinition, VoiceProvider};
use crate::work::{ReadModelProgress, WorkHandler, WorkItem, WorkOutcome};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::agents::{Agent, AgentCommand, AgentError, AgentSpec, RefreshReason};
use domain::analytics::{AdherenceChecklist, ChecklistPoint};
use domain::sync::FailedPush;
use domain::Aggregate;
use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

/// Name of the reactor that mirrors agents to Vapi assistants.
pub const AGENT_SYNC: &str = "vapi-agent-sync";

/// Name of the reactor that marks an organization's assistants for a new push
/// when its calendars change.
pub const ASSISTANT_REFRESH: &str = "agent-assistant-refresh";

/// The read models these reactors read, by their consumer names.
const AGENTS_READ_MODEL: &str = "agents";
const CALENDARS_READ_MODEL: &str = "calendar_integrations";

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: AgentSpec,
    pub active: bool,
    /// `pending` until Vapi holds the current configuration, then `synced`; `failed` while a push keeps failing.
    pub sync_status: domain::sync::SyncStatus,
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
    /// Every agent of the organization that is not deleted.
    async fn ids(&self, organization_id: Uuid) -> Result<Vec<Uuid>, AppError>;
    async fn get(&self, organization_id: Uuid, agent_id: Uuid) -> Result<Option<AgentView>, AppError>;
}

impl From<AgentError> for AppError {
    fn from(error: AgentError) -> Self {
        agent_error(error)
    }
}

pub fn agent_error(error: AgentError) -> AppError {
    match error {
        AgentError::Invalid { field, reason } => AppError::validation(field, format!("{field} is invalid: {reason}")),
        AgentError::NotFound => AppError::not_found("agent"),
        AgentError::Exists => AppError::new(ErrorKind::Conflict, "agent_exists", "agent already exists"),
        AgentError::CreationInProgress => AppError::new(
            ErrorKind::Conflict,
            "assistant_creation_in_progress",
            "another worker is creating this agent's assistant",
        ),
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
        command: impl Fn(&Agent) -> Result<AgentCommand, AppError> + Send + Sync,
    ) -> Result<Loaded<Agent>, AppError> {
        execute::<Agent>(
            self.store.as_ref(),
            caller.organization_id,
            stream_of::<Agent>(agent_id),
            &session_metadata(caller),
            |loaded| Agent::decide(&command(&loaded.state)?, &loaded.state).map_err(agent_error),
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn create(&self, caller: &Session, spec: AgentSpec) -> Result<AgentView, AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::EditAgents)?;
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

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %agent_id))]
    pub async fn update(&self, caller: &Session, agent_id: Uuid, changes: AgentChanges) -> Result<AgentView, AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::EditAgents)?;
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

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %agent_id))]
    pub async fn set_active(&self, caller: &Session, agent_id: Uuid, active: bool) -> Result<AgentView, AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::EditAgents)?;
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

    /// Replaces the agent's script-adherence checklist (analytics scores its calls against it).
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %agent_id))]
    pub async fn set_adherence_checklist(
        &self,
        caller: &Session,
        agent_id: Uuid,
        points: Vec<ChecklistPoint>,
    ) -> Result<Vec<ChecklistPoint>, AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::EditAgents)?;
        let checklist =
            AdherenceChecklist::parse(points).map_err(|error| AppError::validation(&error.field, error.to_string()))?;
        let now = self.clock.now();
        let loaded = self
            .execute(caller, agent_id, |_| {
                Ok(AgentCommand::SetAdherenceChecklist {
                    checklist: checklist.clone(),
                    now,
                })
            })
            .await?;
        Ok(loaded.state.adherence_checklist.points().to_vec())
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %agent_id))]
    pub async fn adherence_checklist(&self, caller: &Session, agent_id: Uuid) -> Result<Vec<ChecklistPoint>, AppError> {
        let loaded = load_in::<Agent>(
            self.store.as_ref(),
            caller.organization_id,
            stream_of::<Agent>(agent_id),
        )
        .await?;
        if !loaded.state.exists() {
            return Err(agent_error(AgentError::NotFound));
        }
        Ok(loaded.state.adherence_checklist.points().to_vec())
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %agent_id))]
    pub async fn delete(&self, caller: &Session, agent_id: Uuid) -> Result<(), AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::DeleteAgents)?;
        let now = self.clock.now();
        self.execute(caller, agent_id, |_| Ok(AgentCommand::Delete { now }))
            .await
            .map(|_| ())
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn list(&self, caller: &Session, active: Option<bool>, page: Page) -> Result<Vec<AgentView>, AppError> {
        self.directory.list(caller.organization_id, active, page).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %agent_id))]
    pub async fn get(&self, caller: &Session, agent_id: Uuid) -> Result<AgentView, AppError> {
        self.directory
            .get(caller.organization_id, agent_id)
            .await?
            .ok_or_else(|| AppError::not_found("agent"))
    }
}

/// An agent of `organization_id` that exists (not deleted), from its stream.
pub async fn existing_agent(
    store: &dyn EventStore,
    organization_id: Uuid,
    agent_id: Uuid,
) -> Result<Option<Loaded<Agent>>, AppError> {
    let agent = load_in::<Agent>(store, organization_id, stream_of::<Agent>(agent_id)).await?;
    Ok(agent.state.exists().then_some(agent))
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
        sync_status: agent.sync_status(),
        vapi_assistant_id: agent.sync.vapi_id.clone(),
        last_sync_error: None,
        next_sync_attempt_at: None,
        created_at,
        updated_at: agent.updated_at.unwrap_or(created_at),
    })
}

/// Whether `read_model` has not yet applied the event that made `item` due:
/// the reactor then looks again shortly rather than act on an older picture.
async fn lags_behind(progress: &dyn ReadModelProgress, read_model: &str, item: &WorkItem) -> Result<bool, AppError> {
    match item.trigger {
        Some(trigger) => Ok(!progress.has_applied(read_model, trigger).await?),
        None => Ok(false),
    }
}

fn wait_for(clock: &dyn Clock, read_model: &str) -> WorkOutcome {
    WorkOutcome::RetryAt {
        due: clock.now() + chrono::Duration::seconds(1),
        reason: format!("waiting for the {read_model} read model"),
    }
}

/// Mirrors one agent to its Vapi assistant; the outcome is recorded on the agent's stream.
/// Creating an assistant is not idempotent at Vapi, so the intent is recorded
/// first and an unconfirmed earlier attempt is looked up before creating again.
pub struct AgentSync {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub voice: Arc<dyn VoiceProvider>,
    pub retry: RetryPolicy,
    /// The organization's calendars: whether the assistant gets the calendar tools.
    pub calendars: Arc<dyn CalendarDirectory>,
    pub progress: Arc<dyn ReadModelProgress>,
}

/// Why a push did not go through.
enum PushFailure {
    Provider(ProviderError),
    /// Another worker recorded its creation attempt first: the work is theirs.
    Superseded,
    Ours(AppError),
}

impl From<ProviderError> for PushFailure {
    fn from(e: ProviderError) -> Self {
        PushFailure::Provider(e)
    }
}

impl AgentSync {
    /// Brings Vapi to the agent's state; returns the assistant id Vapi now holds.
    async fn push(&self, organization_id: Uuid, agent_id: Uuid, agent: &Agent) -> Result<Option<String>, PushFailure> {
        let known = match (&agent.sync.vapi_id, agent.sync.creation_attempt) {
            (Some(id), _) => Some(id.clone()),
            // An earlier attempt may have created it before we learnt the id.
            (None, Some((_, since))) => self.voice.find_assistant(organization_id, agent_id, since).await?,
            (None, None) => None,
        };
        let spec = match (&agent.spec, agent.deleted) {
            (Some(spec), false) => spec,
            _ => {
                if let Some(id) = &known {
                    match self.voice.delete_assistant(id).await {
                        Ok(()) | Err(ProviderError::NotFound) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                return Ok(None);
            }
        };
        let calendar_tools = crate::calendar::calendar_tools_on(self.calendars.as_ref(), organization_id, agent_id)
            .await
            .map_err(PushFailure::Ours)?;
        let definition = AssistantDefinition {
            organization_id,
            agent_id,
            spec: spec.clone(),
            calendar_tools,
        };
        if let Some(id) = known {
            match self.voice.update_assistant(&id, &definition).await {
                Ok(()) => return Ok(Some(id)),
                // Deleted at Vapi behind our back: create it again below.
                Err(ProviderError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let attempt = Uuid::now_v7();
        let previous = agent.sync.creation_attempt.map(|(a, _)| a);
        let now = self.clock.now();
        let claimed = self
            .record(organization_id, agent_id, |_| AgentCommand::StartAssistantCreation {
                attempt,
                previous,
                now,
            })
            .await;
        match claimed {
            Ok(_) => {}
            Err(e) if e.code == "assistant_creation_in_progress" => return Err(PushFailure::Superseded),
            Err(e) => return Err(PushFailure::Ours(e)),
        }
        Ok(Some(self.voice.create_assistant(&definition).await?))
    }

    async fn record(
        &self,
        organization_id: Uuid,
        agent_id: Uuid,
        command: impl Fn(&Agent) -> AgentCommand + Send + Sync,
    ) -> Result<Loaded<Agent>, AppError> {
        execute::<Agent>(
            self.store.as_ref(),
            organization_id,
            stream_of::<Agent>(agent_id),
            &metadata("system:vapi-sync", format!("reactor:{AGENT_SYNC}")),
            |loaded| Agent::decide(&command(&loaded.state), &loaded.state).map_err(agent_error),
        )
        .await
    }
}

#[async_trait]
impl WorkHandler for AgentSync {
    fn reactor(&self) -> &'static str {
        AGENT_SYNC
    }

    fn provider(&self) -> &'static str {
        "vapi"
    }

    async fn handle(&self, item: &WorkItem) -> Result<WorkOutcome, AppError> {
        let agent_id = Uuid::parse_str(&item.key).map_err(|e| AppError::internal("reading a work key", e))?;
        let organization_id = item.organization_id;
        let loaded = load_in::<Agent>(self.store.as_ref(), organization_id, stream_of::<Agent>(agent_id)).await?;
        if !loaded.state.needs_sync() {
            return Ok(WorkOutcome::Done);
        }
        // The calendars read model must hold every calendar change older than this work.
        if lags_behind(self.progress.as_ref(), CALENDARS_READ_MODEL, item).await? {
            return Ok(wait_for(self.clock.as_ref(), CALENDARS_READ_MODEL));
        }
        let revision = loaded.state.sync.revision;
        match self.push(organization_id, agent_id, &loaded.state).await {
            Ok(vapi_assistant_id) => {
                let now = self.clock.now();
                self.record(organization_id, agent_id, |_| AgentCommand::RecordSynced {
                    vapi_assistant_id: vapi_assistant_id.clone(),
                    revision,
                    now,
                })
                .await?;
                Ok(WorkOutcome::Done)
            }
            // Another worker is creating the assistant: look again once it has had time to record it.
            Err(PushFailure::Superseded) => Ok(WorkOutcome::RetryAt {
                due: self.clock.now() + chrono::Duration::seconds(60),
                reason: "another worker is creating the assistant".into(),
            }),
            Err(PushFailure::Ours(error)) => Err(error),
            Err(PushFailure::Provider(error)) => {
                let attempt = item.attempts + 1;
                let now = self.clock.now();
                let retry_at = self.retry.next_attempt(attempt, &error, now);
                let reason = error.to_string();
                tracing::warn!(%agent_id, attempt, %reason, "agent sync to Vapi failed");
                self.record(organization_id, agent_id, |_| AgentCommand::RecordSyncFailed {
                    failed: FailedPush {
                        revision,
                        reason: reason.clone(),
                        attempt,
                        retry_at,
                    },
                    now,
                })
                .await?;
                Ok(match retry_at {
                    Some(due) => WorkOutcome::RetryAt { due, reason },
                    None => WorkOutcome::GiveUp { reason },
                })
            }
        }
    }
}

/// Marks every assistant of an organization for a new push when its calendars
/// change (work keyed by the calendar integration), so that assistants gain or
/// lose the calendar tools: the sync reactor reads the calendars when it pushes.
pub struct AssistantRefresh {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub agents: Arc<dyn AgentDirectory>,
    pub progress: Arc<dyn ReadModelProgress>,
}

#[async_trait]
impl WorkHandler for AssistantRefresh {
    fn reactor(&self) -> &'static str {
        ASSISTANT_REFRESH
    }

    fn provider(&self) -> &'static str {
        "vapi"
    }

    async fn handle(&self, item: &WorkItem) -> Result<WorkOutcome, AppError> {
        // An agent created before the calendar change must be listed; a later one is pushed with it anyway.
        if lags_behind(self.progress.as_ref(), AGENTS_READ_MODEL, item).await? {
            return Ok(wait_for(self.clock.as_ref(), AGENTS_READ_MODEL));
        }
        let organization_id = item.organization_id;
        let command = AgentCommand::RequestAssistantRefresh {
            reason: RefreshReason::CalendarsChanged,
            now: self.clock.now(),
        };
        let meta = metadata("system:calendar", format!("reactor:{ASSISTANT_REFRESH}"));
        for agent_id in self.agents.ids(organization_id).await? {
            execute::<Agent>(
                self.store.as_ref(),
                organization_id,
                stream_of::<Agent>(agent_id),
                &meta,
                |loaded| {
                    // Deleted meanwhile: its assistant goes anyway.
                    if !loaded.state.exists() {
                        return Ok(vec![]);
                    }
                    Agent::decide(&command, &loaded.state).map_err(agent_error)
                },
            )
            .await?;
        }
        Ok(WorkOutcome::Done)
    }
}
