//! AI voice agents: what they say, how they sound, and their copy at Vapi.

use crate::aggregate::Aggregate;
use crate::analytics::AdherenceChecklist;
use crate::domain_events;
use crate::phone::PhoneNumber;
use crate::sync::{FailedPush, VapiSync};
use crate::voices::{self, VoiceProvider};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentError {
    #[error("{field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("agent not found")]
    NotFound,
    #[error("agent already exists")]
    Exists,
    /// Another creation attempt was recorded first: its worker owns it.
    #[error("another attempt is creating this agent's assistant")]
    CreationInProgress,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> AgentError {
    AgentError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Longest agent name.
pub const NAME_CHARS: usize = 200;
/// Longest system prompt.
pub const SYSTEM_PROMPT_CHARS: usize = 20_000;
/// Longest first message.
pub const FIRST_MESSAGE_CHARS: usize = 1_000;
/// Longest voice id or model name.
pub const SETTING_NAME_CHARS: usize = 100;
/// Most tokens a model may be asked for.
pub const MAX_TOKENS: u32 = 8192;

/// A catalogue voice and its tuning (documented per provider in `crate::openapi`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VoiceSettings {
    pub provider: VoiceProvider,
    pub voice_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitch: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stability: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModelSettings {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::model_provider))]
    pub provider: ModelProvider,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::name::<SETTING_NAME_CHARS>))]
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_range::<0, 200>))]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 8192))]
    pub max_tokens: Option<u32>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            provider: ModelProvider::OpenAi,
            model: "gpt-4o".into(),
            temperature: Some(0.7),
            max_tokens: None,
        }
    }
}

/// Everything a user configures on an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    pub name: String,
    pub system_prompt: String,
    pub first_message: Option<String>,
    pub voice: VoiceSettings,
    pub language: String,
    pub transfer_number: Option<PhoneNumber>,
    pub model: ModelSettings,
    /// How Vapi's call analysis becomes a call outcome; absent in agents
    /// created before rules existed, which then use the default rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_rule: Option<crate::calls::OutcomeRule>,
}

crate::open_enum! {
    /// A model provider Vapi supports, spelled as Vapi's id (and as stored
    /// in agents' specs). A request may name any; validation refuses `Other`.
    pub enum ModelProvider {
        OpenAi = "openai",
        Anthropic = "anthropic",
        Google = "google",
        Groq = "groq",
        TogetherAi = "together-ai",
        DeepInfra = "deepinfra",
        CustomLlm = "custom-llm",
    }
}

fn bounded_text(field: &'static str, value: &str, max: usize) -> Result<(), AgentError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    Ok(())
}

fn in_range(field: &'static str, value: Option<f64>, low: f64, high: f64) -> Result<(), AgentError> {
    match value {
        Some(v) if !(low..=high).contains(&v) => Err(invalid(field, format!("must be between {low} and {high}"))),
        _ => Ok(()),
    }
}

impl AgentSpec {
    /// Checks every field; the error names the first one that is wrong.
    pub fn validate(&self) -> Result<(), AgentError> {
        bounded_text("name", &self.name, NAME_CHARS)?;
        bounded_text("systemPrompt", &self.system_prompt, SYSTEM_PROMPT_CHARS)?;
        if let Some(first) = &self.first_message {
            bounded_text("firstMessage", first, FIRST_MESSAGE_CHARS)?;
        }
        if voices::find(&self.voice.provider, &self.voice.voice_id).is_none() {
            return Err(invalid(
                "voice",
                format!(
                    "{}/{} is not in the voice catalogue (GET /api/voices)",
                    self.voice.provider, self.voice.voice_id
                ),
            ));
        }
        let tuning = voices::tuning(&self.voice.provider);
        for (field, value, supported, low, high) in [
            ("voice.speed", self.voice.speed, tuning.speed, 0.5, 2.0),
            ("voice.pitch", self.voice.pitch, tuning.pitch, 0.5, 2.0),
            ("voice.stability", self.voice.stability, tuning.stability, 0.0, 1.0),
        ] {
            if value.is_some() && !supported {
                return Err(invalid(field, format!("is not supported by {}", self.voice.provider)));
            }
            in_range(field, value, low, high)?;
        }
        let language_ok = {
            let mut parts = self.language.split('-');
            let primary = parts.next().unwrap_or_default();
            (2..=3).contains(&primary.len())
                && primary.chars().all(|c| c.is_ascii_lowercase())
                && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
        };
        if !language_ok {
            return Err(invalid("language", "must be a language tag like en or en-US"));
        }
        if let ModelProvider::Other(_) = self.model.provider {
            return Err(invalid(
                "model.provider",
                format!("must be one of {}", ModelProvider::listed()),
            ));
        }
        bounded_text("model.model", &self.model.model, SETTING_NAME_CHARS)?;
        in_range("model.temperature", self.model.temperature, 0.0, 2.0)?;
        if self.model.max_tokens.is_some_and(|t| !(1..=MAX_TOKENS).contains(&t)) {
            return Err(invalid(
                "model.maxTokens",
                format!("must be between 1 and {MAX_TOKENS}"),
            ));
        }
        Ok(())
    }
}

domain_events! {
    pub enum AgentEvent for Agent in "agent" {
        /// An AI voice agent was created, active. Payload: organizationId, spec {name, systemPrompt,
        /// firstMessage, voice {provider, voiceId, speed, pitch, stability}, language, transferNumber (E.164),
        /// model {provider, model, temperature, maxTokens}}, createdAt.
        #[version(1)]
        AgentCreated {
            organization_id: Uuid,
            spec: AgentSpec,
            created_at: DateTime<Utc>,
        },
        /// The agent's configuration changed; carries the complete new spec. Payload: spec, updatedAt.
        #[version(1)]
        AgentUpdated { spec: AgentSpec, updated_at: DateTime<Utc> },
        /// The agent takes calls again. Payload: at.
        #[version(1)]
        AgentActivated { at: DateTime<Utc> },
        /// The agent stops taking calls; its configuration is kept. Payload: at.
        #[version(1)]
        AgentDeactivated { at: DateTime<Utc> },
        /// The agent was removed; its Vapi assistant is to be deleted. Payload: at.
        #[version(1)]
        AgentDeleted { at: DateTime<Utc> },
        /// Vapi holds the agent as of `revision` (the count of changes Vapi must learn about: configuration
        /// changes, and refreshes since AgentAssistantRefreshRequested exists). Also recorded for an
        /// older revision when a push finished after a newer change: the assistant id is a fact whatever the
        /// revision. Payload: vapiAssistantId (null once deleted at Vapi), revision, syncedAt.
        #[version(1)]
        AgentSyncedToVapi {
            vapi_assistant_id: Option<String>,
            revision: u32,
            synced_at: DateTime<Utc>,
        },
        /// The sync reactor is about to create the agent's Vapi assistant (the intent, recorded before the
        /// request): a retry or another worker finding it looks the assistant up at Vapi by our metadata
        /// instead of creating a second one. Payload: attempt, at.
        #[version(1)]
        AgentAssistantCreationStarted { attempt: Uuid, at: DateTime<Utc> },
        /// Pushing `revision` to Vapi failed. Payload: revision, reason, attempt, retryAt (null when retries
        /// are exhausted or the error is permanent), failedAt.
        #[version(1)]
        AgentSyncFailed {
            #[serde(flatten)]
            failed: FailedPush,
            failed_at: DateTime<Utc>,
        },
        /// The agent's assistant is to be pushed to Vapi again although its configuration did not change,
        /// because something it is built from did (the organization's calendars decide whether it has the
        /// calendar tools). Counts as a revision. Payload: reason (calendars_changed), at.
        #[version(1)]
        AgentAssistantRefreshRequested { reason: RefreshReason, at: DateTime<Utc> },
        /// The points the agent's turns are scored against for script adherence (analytics); replaces the
        /// previous checklist, an empty one stops the scoring. Calls already scored keep their scores.
        /// Payload: checklist [{point, phrases[]}], at.
        #[version(1)]
        AgentAdherenceChecklistSet { checklist: AdherenceChecklist, at: DateTime<Utc> },
    }
}

/// Why an assistant is pushed again without a configuration change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshReason {
    /// The organization's calendars changed: the calendar tools may come or go.
    CalendarsChanged,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgentCommand {
    Create {
        organization_id: Uuid,
        spec: AgentSpec,
        now: DateTime<Utc>,
    },
    Update {
        spec: AgentSpec,
        now: DateTime<Utc>,
    },
    Activate {
        now: DateTime<Utc>,
    },
    Deactivate {
        now: DateTime<Utc>,
    },
    Delete {
        now: DateTime<Utc>,
    },
    RecordSynced {
        vapi_assistant_id: Option<String>,
        revision: u32,
        now: DateTime<Utc>,
    },
    RecordSyncFailed {
        failed: FailedPush,
        now: DateTime<Utc>,
    },
    /// Asks for the assistant to be pushed again, as it is built from more than the spec.
    RequestAssistantRefresh {
        reason: RefreshReason,
        now: DateTime<Utc>,
    },
    SetAdherenceChecklist {
        checklist: AdherenceChecklist,
        now: DateTime<Utc>,
    },
    /// Claims the assistant's creation before asking Vapi. `previous` is the
    /// attempt the caller found (and checked created nothing at Vapi).
    StartAssistantCreation {
        attempt: Uuid,
        previous: Option<Uuid>,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Agent {
    pub spec: Option<AgentSpec>,
    pub active: bool,
    pub deleted: bool,
    /// Its assistant at Vapi (the assistant's id is `sync.vapi_id`).
    pub sync: VapiSync,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub adherence_checklist: AdherenceChecklist,
}

impl Agent {
    pub fn exists(&self) -> bool {
        self.spec.is_some() && !self.deleted
    }

    pub fn needs_sync(&self) -> bool {
        self.sync.needs_sync()
    }

    pub fn sync_status(&self) -> crate::sync::SyncStatus {
        self.sync.status()
    }
}

impl Aggregate for Agent {
    type Command = AgentCommand;
    type Error = AgentError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        use AgentCommand as C;
        if !matches!(
            command,
            C::Create { .. } | C::RecordSynced { .. } | C::RecordSyncFailed { .. } | C::StartAssistantCreation { .. }
        ) && !state.exists()
        {
            return Err(AgentError::NotFound);
        }
        Ok(match command {
            C::Create {
                organization_id,
                spec,
                now,
            } => {
                if state.spec.is_some() {
                    return Err(AgentError::Exists);
                }
                spec.validate()?;
                vec![AgentEvent::AgentCreated {
                    organization_id: *organization_id,
                    spec: spec.clone(),
                    created_at: *now,
                }]
            }
            C::Update { spec, now } => {
                spec.validate()?;
                if state.spec.as_ref() == Some(spec) {
                    vec![]
                } else {
                    vec![AgentEvent::AgentUpdated {
                        spec: spec.clone(),
                        updated_at: *now,
                    }]
                }
            }
            C::Activate { now } if !state.active => vec![AgentEvent::AgentActivated { at: *now }],
            C::Deactivate { now } if state.active => vec![AgentEvent::AgentDeactivated { at: *now }],
            C::Activate { .. } | C::Deactivate { .. } => vec![],
            C::Delete { now } => vec![AgentEvent::AgentDeleted { at: *now }],
            C::SetAdherenceChecklist { checklist, .. } if *checklist == state.adherence_checklist => vec![],
            C::SetAdherenceChecklist { checklist, now } => vec![AgentEvent::AgentAdherenceChecklistSet {
                checklist: checklist.clone(),
                at: *now,
            }],
            C::RequestAssistantRefresh { reason, now } => vec![AgentEvent::AgentAssistantRefreshRequested {
                reason: *reason,
                at: *now,
            }],
            C::RecordSynced {
                vapi_assistant_id,
                revision,
                ..
            } if !state.sync.answer_is_news(*revision, vapi_assistant_id.as_ref()) => vec![],
            C::RecordSyncFailed { failed, .. } if !state.sync.failure_is_news(failed) => vec![],
            C::StartAssistantCreation { attempt, previous, now } => {
                if !state.sync.may_start_creation(*previous) {
                    return Err(AgentError::CreationInProgress);
                }
                vec![AgentEvent::AgentAssistantCreationStarted {
                    attempt: *attempt,
                    at: *now,
                }]
            }
            C::RecordSynced {
                vapi_assistant_id,
                revision,
                now,
            } => vec![AgentEvent::AgentSyncedToVapi {
                vapi_assistant_id: vapi_assistant_id.clone(),
                revision: *revision,
                synced_at: *now,
            }],
            C::RecordSyncFailed { failed, now } => vec![AgentEvent::AgentSyncFailed {
                failed: failed.clone(),
                failed_at: *now,
            }],
        })
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        match event {
            AgentEvent::AgentCreated { spec, created_at, .. } => {
                self.spec = Some(spec.clone());
                self.active = true;
                self.sync.changed();
                self.created_at = Some(*created_at);
                self.updated_at = Some(*created_at);
            }
            AgentEvent::AgentUpdated { spec, updated_at } => {
                self.spec = Some(spec.clone());
                self.sync.changed();
                self.updated_at = Some(*updated_at);
            }
            AgentEvent::AgentActivated { at } => {
                self.active = true;
                self.updated_at = Some(*at);
            }
            AgentEvent::AgentDeactivated { at } => {
                self.active = false;
                self.updated_at = Some(*at);
            }
            AgentEvent::AgentDeleted { at } => {
                self.deleted = true;
                self.active = false;
                self.sync.changed();
                self.updated_at = Some(*at);
            }
            AgentEvent::AgentSyncedToVapi {
                vapi_assistant_id,
                revision,
                ..
            } => self.sync.synced(*revision, vapi_assistant_id),
            AgentEvent::AgentAssistantRefreshRequested { .. } => self.sync.changed(),
            AgentEvent::AgentAssistantCreationStarted { attempt, at } => self.sync.creation_started(*attempt, *at),
            AgentEvent::AgentSyncFailed { failed, .. } => self.sync.push_failed(failed),
            AgentEvent::AgentAdherenceChecklistSet { checklist, .. } => {
                self.adherence_checklist = checklist.clone();
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::given_when_then::{given, given_state};
    use crate::events::current_version;

    pub fn spec() -> AgentSpec {
        AgentSpec {
            name: "Sales Agent 1".into(),
            system_prompt: "You qualify leads.".into(),
            first_message: Some("Hi, this is Ava from Acme.".into()),
            voice: VoiceSettings {
                provider: VoiceProvider::ElevenLabs,
                voice_id: "21m00Tcm4TlvDq8ikWAM".into(),
                speed: Some(1.1),
                pitch: None,
                stability: Some(0.5),
            },
            language: "en-US".into(),
            transfer_number: Some(PhoneNumber::parse("+14155552671").unwrap()),
            model: ModelSettings::default(),
            outcome_rule: None,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    fn created() -> Agent {
        given::<Agent>([])
            .when(AgentCommand::Create {
                organization_id: Uuid::new_v4(),
                spec: spec(),
                now: now(),
            })
            .state_after()
    }

    #[test]
    fn validation_names_the_field() {
        type Breaker = Box<dyn Fn(&mut AgentSpec)>;
        let cases: Vec<(&str, Breaker)> = vec![
            ("name", Box::new(|s| s.name = " ".into())),
            ("systemPrompt", Box::new(|s| s.system_prompt = String::new())),
            ("voice", Box::new(|s| s.voice.voice_id = "nobody".into())),
            ("voice.speed", Box::new(|s| s.voice.speed = Some(3.0))),
            ("voice.pitch", Box::new(|s| s.voice.pitch = Some(1.0))),
            ("language", Box::new(|s| s.language = "English".into())),
            ("model.provider", Box::new(|s| s.model.provider = "skynet".into())),
            ("model.temperature", Box::new(|s| s.model.temperature = Some(5.0))),
        ];
        for (field, break_it) in cases {
            let mut s = spec();
            break_it(&mut s);
            match s.validate() {
                Err(AgentError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(spec().validate().is_ok());
    }

    fn with_prompt(prompt: &str) -> AgentCommand {
        let mut changed = spec();
        changed.system_prompt = prompt.into();
        AgentCommand::Update {
            spec: changed,
            now: now(),
        }
    }

    fn synced(id: &str, revision: u32) -> AgentCommand {
        AgentCommand::RecordSynced {
            vapi_assistant_id: Some(id.into()),
            revision,
            now: now(),
        }
    }

    #[test]
    fn sync_tracks_the_revision_it_pushed() {
        let agent = created();
        assert!(agent.needs_sync());
        let agent = given_state(agent).when(synced("asst_1", 1)).state_after();
        assert!(!agent.needs_sync());
        let agent = given_state(agent).when(with_prompt("New prompt")).state_after();
        assert!(agent.needs_sync());
        // A late outcome for revision 1, with the id already known, changes nothing.
        let agent = given_state(agent).when(synced("asst_1", 1)).then_nothing();
        // Re-saving the same spec is not a change.
        let spec = agent.spec.clone().unwrap();
        given_state(agent)
            .when(AgentCommand::Update { spec, now: now() })
            .then_nothing();
    }

    #[test]
    fn an_assistant_created_for_an_older_revision_is_kept_and_updated_next() {
        // Given a creation in flight when the agent changed,
        let agent = created();
        let attempt = Uuid::new_v4();
        let start = |previous| AgentCommand::StartAssistantCreation {
            attempt,
            previous,
            now: now(),
        };
        let agent = given_state(agent).when(start(None)).state_after();
        assert_eq!(agent.sync.creation_attempt.map(|(a, _)| a), Some(attempt));
        // a second worker that read the state before the first attempt loses,
        let agent = given_state(agent)
            .when(start(None))
            .then_error(AgentError::CreationInProgress);
        let agent = given_state(agent).when(with_prompt("Changed meanwhile")).state_after();
        // when the creation of revision 1 reports its assistant,
        let events = given_state(agent.clone()).when(synced("asst_1", 1)).events();
        // then the id is recorded, and revision 2 is still to be pushed to that assistant.
        assert_eq!(events.len(), 1);
        let agent = given_state(agent).when(synced("asst_1", 1)).then(events);
        assert_eq!(agent.sync.vapi_id.as_deref(), Some("asst_1"));
        assert!(agent.needs_sync());
        assert_eq!(agent.sync.creation_attempt, None);
        // it exists now
        given_state(agent)
            .when(start(None))
            .then_error(AgentError::CreationInProgress);
    }

    #[test]
    fn deactivating_twice_changes_nothing_the_second_time() {
        let created = AgentEvent::AgentCreated {
            organization_id: Uuid::nil(),
            spec: spec(),
            created_at: now(),
        };
        let deactivated = AgentEvent::AgentDeactivated { at: now() };
        given::<Agent>([created.clone()])
            .when(AgentCommand::Deactivate { now: now() })
            .then([deactivated.clone()]);
        given::<Agent>([created, deactivated])
            .when(AgentCommand::Deactivate { now: now() })
            .then_nothing();
        given::<Agent>([])
            .when(AgentCommand::Activate { now: now() })
            .then_error(AgentError::NotFound);
    }

    #[test]
    fn deleted_agents_accept_no_more_commands() {
        let agent = given_state(created())
            .when(AgentCommand::Delete { now: now() })
            .state_after();
        assert!(!agent.exists() && agent.needs_sync());
        given_state(agent)
            .when(AgentCommand::Activate { now: now() })
            .then_error(AgentError::NotFound);
    }

    #[test]
    fn a_refresh_makes_a_synced_assistant_due_again() {
        let refresh = || AgentCommand::RequestAssistantRefresh {
            reason: RefreshReason::CalendarsChanged,
            now: now(),
        };
        let agent = given_state(created()).when(synced("asst_1", 1)).state_after();
        let agent = given_state(agent).when(refresh()).state_after();
        assert!(agent.needs_sync());
        assert_eq!(agent.sync.revision, 2);
        // The push of the refreshed revision settles it; the assistant id is kept.
        let agent = given_state(agent).when(synced("asst_1", 2)).state_after();
        assert!(!agent.needs_sync());
        let deleted = given_state(agent)
            .when(AgentCommand::Delete { now: now() })
            .state_after();
        given_state(deleted).when(refresh()).then_error(AgentError::NotFound);
    }

    #[test]
    fn only_the_current_revisions_failure_counts() {
        let fail = |revision| AgentCommand::RecordSyncFailed {
            failed: FailedPush {
                revision,
                reason: "Vapi is unavailable".into(),
                attempt: 1,
                retry_at: None,
            },
            now: now(),
        };
        let agent = given_state(created()).when(with_prompt("Changed")).state_after();
        let agent = given_state(agent).when(fail(1)).then_nothing();
        let agent = given_state(agent).when(fail(2)).state_after();
        assert_eq!(agent.sync_status(), crate::sync::SyncStatus::Failed);
        // A new change is pending again.
        let agent = given_state(agent).when(with_prompt("Changed again")).state_after();
        assert_eq!(agent.sync_status(), crate::sync::SyncStatus::Pending);
        let agent = given_state(agent).when(synced("asst_1", 3)).state_after();
        assert_eq!(agent.sync_status(), crate::sync::SyncStatus::Synced);
    }

    #[test]
    fn agent_events_are_catalogued() {
        for name in [
            "AgentCreated",
            "AgentUpdated",
            "AgentActivated",
            "AgentDeactivated",
            "AgentDeleted",
            "AgentSyncedToVapi",
            "AgentAssistantCreationStarted",
            "AgentSyncFailed",
            "AgentAssistantRefreshRequested",
        ] {
            assert!(current_version(name).is_some(), "{name}");
        }
    }
}
