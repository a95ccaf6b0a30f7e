//! Calls: intake of Vapi's server messages, the tools agents call mid-call,
//! outcomes, and the call history read side.

use crate::aggregates::{
    append_failed, execute, execute_decision, fold_recorded, load_any, load_in, metadata, session_metadata, stream_of,
    Decided, Loaded, DECISION_ATTEMPTS,
};
use crate::auth::Session;
use crate::clock::Clock;
use crate::error::{AppError, ErrorKind};
use crate::event_store::{AppendRequest, EventStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::calls::{
    Call, CallCommand, CallDirection, CallError, CallEvent, CallParties, CallReport, CallStatus, EndedReason, Outcome,
};
use domain::{Aggregate, DomainEvent, EventMetadata, ExpectedVersion, StreamId};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// Namespace of call ids derived from Vapi call ids, for calls we did not place.
const VAPI_CALL_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b7e_4a55_4c1d_9a0e_57d2_c0ff_ee01);

/// What a server message says about its call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallRef {
    pub vapi_call_id: String,
    /// Our ids, from the metadata we give Vapi on calls and assistants.
    pub call_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub vapi_assistant_id: Option<String>,
    pub vapi_phone_number_id: Option<String>,
    pub direction: Option<CallDirection>,
    pub customer_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

/// A Vapi server message, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    StatusUpdate {
        call: CallRef,
        status: CallStatus,
        ended_reason: Option<EndedReason>,
        at: DateTime<Utc>,
    },
    EndOfCallReport {
        call: CallRef,
        report: Box<CallReport>,
        at: DateTime<Utc>,
    },
    ToolCalls {
        call: CallRef,
        calls: Vec<ToolCall>,
    },
    /// An inbound call on a number without a fixed assistant: we choose.
    AssistantRequest {
        call: CallRef,
    },
    /// Acknowledged without effect (transcripts, speech updates, hangs…).
    Other {
        kind: String,
    },
}

/// Our reply to Vapi.
/// Our answer to a server message; `infrastructure` writes it in Vapi's format.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerReply {
    Ack,
    ToolResults(Vec<ToolResult>),
    /// The assistant that takes an inbound call, and how this call differs from it.
    Assistant {
        assistant_id: String,
        setup: Option<crate::voice::CallSetup>,
    },
    /// Vapi speaks this to the caller and hangs up.
    Refusal(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub tool_call_id: String,
    pub name: String,
    pub outcome: Result<String, String>,
}

/// Our phone number behind a Vapi number id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberOwner {
    pub organization_id: Uuid,
    pub phone_number_id: Uuid,
    pub agent_id: Option<Uuid>,
}

/// What the Vapi ids of a message point to.
#[derive(Debug, Clone, Default)]
pub struct VapiIdOwners {
    /// Our call (organization, id) that Vapi knows by the call id.
    pub placed: Option<(Uuid, Uuid)>,
    /// The organization and agent behind the assistant.
    pub assistant: Option<(Uuid, Uuid)>,
    pub number: Option<NumberOwner>,
}

/// Finds which organization a call belongs to from the Vapi ids it carries.
#[async_trait]
pub trait CallOwners: Send + Sync {
    /// Every id's owner in one look-up (the webhook's hot path); an absent id finds nothing.
    async fn owners(
        &self,
        vapi_call_id: Option<&str>,
        vapi_assistant_id: Option<&str>,
        vapi_phone_number_id: Option<&str>,
    ) -> Result<VapiIdOwners, AppError>;
}

/// Context a tool runs in.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub organization_id: Uuid,
    pub call_id: Uuid,
    pub tool_call_id: String,
}

/// A function agents may call during a call.
#[async_trait]
pub trait Tool: Send + Sync {
    fn name(&self) -> &'static str;
    /// Returns the text the agent hears back, or an error it can recover from.
    async fn run(&self, context: &ToolContext, arguments: &Value) -> Result<String, String>;
}

impl From<CallError> for AppError {
    fn from(error: CallError) -> Self {
        call_error(error)
    }
}

pub fn call_error(error: CallError) -> AppError {
    match error {
        CallError::Invalid { field, reason } => AppError::validation(field, format!("{field} is invalid: {reason}")),
        CallError::NotFound => AppError::not_found("call"),
        CallError::Exists => AppError::new(ErrorKind::Conflict, "call_exists", "call already exists"),
        CallError::PlacementInProgress => AppError::new(
            ErrorKind::Conflict,
            "call_placement_in_progress",
            "another worker is placing this call",
        ),
    }
}

fn webhook_metadata(kind: &str) -> EventMetadata {
    metadata("webhook:vapi", format!("vapi:{kind}"))
}

pub struct CallService {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub ab_slots: Arc<dyn crate::ab_testing::AssignmentSlots>,
    pub owners: Arc<dyn CallOwners>,
    pub tools: Vec<Arc<dyn Tool>>,
    /// Unmatched messages are kept encrypted: transcripts are personal data.
    pub sealer: Arc<dyn crate::secrets::SecretSealer>,
    /// Whether an agent's calendar tools are on, for a variant's overrides.
    pub calendars: Arc<dyn crate::calendar::CalendarDirectory>,
}

/// The context an unmatched message is sealed under.
fn unmatched_context(vapi_call_id: &str) -> String {
    format!("unmatched-vapi-call:{vapi_call_id}")
}

impl ServerMessage {
    /// The call the message is about, if it names one.
    pub fn call_mut(&mut self) -> Option<&mut CallRef> {
        match self {
            ServerMessage::StatusUpdate { call, .. }
            | ServerMessage::EndOfCallReport { call, .. }
            | ServerMessage::ToolCalls { call, .. }
            | ServerMessage::AssistantRequest { call } => Some(call),
            ServerMessage::Other { .. } => None,
        }
    }
}

/// A call's state and its agent's, read together.
struct LoadedCall {
    call: Loaded<Call>,
    agent: Option<Loaded<domain::agents::Agent>>,
}

impl LoadedCall {
    /// The outcome the agent's rule reads from the analysis, unless the call
    /// already has one (set by a tool or a person, which take precedence).
    fn outcome_from_analysis(&self, report: &CallReport) -> Option<Outcome> {
        if self.call.state.outcome.is_some() {
            return None;
        }
        let rule = self
            .agent
            .as_ref()
            .and_then(|agent| agent.state.spec.as_ref())
            .and_then(|spec| spec.outcome_rule.clone());
        rule.unwrap_or_default().outcome_of(report)
    }

    /// The analysis of the report `recorded` holds, scored against the agent's checklist as it
    /// stands: recorded with the report, it leaves the analysis reactor nothing to do.
    fn analysis_of(&self, recorded: &[CallEvent], now: DateTime<Utc>) -> Result<Vec<CallEvent>, CallError> {
        let Some(CallEvent::CallEnded { report, at, .. }) =
            recorded.iter().find(|e| matches!(e, CallEvent::CallEnded { .. }))
        else {
            return Ok(vec![]);
        };
        let ended = recorded.iter().fold(self.call.state.clone(), Call::evolve);
        let agent = self.agent.as_ref().map(|agent| &agent.state);
        Call::decide(
            &CallCommand::analyze(ended.reports, *at, report.clone(), agent, now),
            &ended,
        )
    }
}

/// A call resolved to its organization.
struct Resolved {
    organization_id: Uuid,
    call_id: Uuid,
    parties: CallParties,
}

impl Resolved {
    /// A call belongs to the organization of its first event (`owner`, absent for a new call):
    /// a message naming another never touches it.
    fn owned_by(self, owner: Option<Uuid>, call: &CallRef) -> Option<Self> {
        if owner.is_some_and(|owner| owner != self.organization_id) {
            tracing::warn!(call_id = %self.call_id, vapi_call_id = %call.vapi_call_id, "a Vapi message names another organization than its call's; kept as unmatched");
            return None;
        }
        Some(self)
    }
}

impl CallService {
    /// The call a message is about, checked against the organization of its first event.
    async fn resolve(&self, call: &CallRef) -> Result<Option<Resolved>, AppError> {
        let Some(resolved) = self.resolve_parties(call).await? else {
            return Ok(None);
        };
        let owner = self
            .store
            .first_event(&stream_of::<Call>(resolved.call_id))
            .await
            .map_err(|e| AppError::internal("reading a call's organization", e))?
            .map(|first| first.organization_id);
        Ok(resolved.owned_by(owner, call))
    }

    /// [`Self::resolve`] for a message that needs the call's state too, and its
    /// agent's when `with_agent`: one read of both streams gives the states and the
    /// call's organization.
    async fn resolve_loaded(
        &self,
        call: &CallRef,
        with_agent: bool,
    ) -> Result<Option<(Resolved, LoadedCall)>, AppError> {
        use domain::agents::Agent;
        let Some(resolved) = self.resolve_parties(call).await? else {
            return Ok(None);
        };
        let call_stream = stream_of::<Call>(resolved.call_id);
        let agent_stream = resolved.parties.agent_id.filter(|_| with_agent).map(stream_of::<Agent>);
        let streams: Vec<StreamId> = std::iter::once(call_stream.clone())
            .chain(agent_stream.clone())
            .collect();
        let mut read = self
            .store
            .read_streams(&streams)
            .await
            .map_err(|e| AppError::internal("reading a call and its agent", e))?
            .into_iter();
        let loaded = LoadedCall {
            call: fold_recorded(call_stream, &read.next().unwrap_or_default())?,
            agent: match agent_stream {
                Some(stream) => {
                    Some(fold_recorded(stream, &read.next().unwrap_or_default())?.within(resolved.organization_id))
                }
                None => None,
            },
        };
        Ok(resolved
            .owned_by(loaded.call.organization_id, call)
            .map(|resolved| (resolved, loaded)))
    }

    /// The organization, call and parties the Vapi ids and our metadata point to.
    async fn resolve_parties(&self, call: &CallRef) -> Result<Option<Resolved>, AppError> {
        // A call we placed is ours by its Vapi id, whatever else the message carries.
        let owners = self
            .owners
            .owners(
                call.call_id.is_none().then_some(call.vapi_call_id.as_str()),
                call.vapi_assistant_id.as_deref(),
                call.vapi_phone_number_id.as_deref(),
            )
            .await?;
        let placed = owners.placed;
        let mut organization_id = call.organization_id.or(placed.map(|(org, _)| org));
        let mut agent_id = call.agent_id;
        if let Some((org, agent)) = owners.assistant {
            organization_id = organization_id.or(Some(org));
            agent_id = agent_id.or(Some(agent));
        }
        let number = owners.number;
        // A number only vouches for calls of its own organization.
        let number = number.filter(|n| organization_id.is_none_or(|org| org == n.organization_id));
        if let Some(number) = number {
            organization_id = Some(number.organization_id);
            agent_id = agent_id.or(number.agent_id);
        }
        let Some(organization_id) = organization_id else {
            return Ok(None);
        };
        let call_id = call
            .call_id
            .or(placed.map(|(_, id)| id))
            .unwrap_or_else(|| Uuid::new_v5(&VAPI_CALL_NAMESPACE, call.vapi_call_id.as_bytes()));
        Ok(Some(Resolved {
            organization_id,
            call_id,
            parties: CallParties {
                vapi_call_id: Some(call.vapi_call_id.clone()),
                direction: call.direction.clone(),
                agent_id,
                phone_number_id: number.map(|n| n.phone_number_id),
                customer_number: call.customer_number.clone(),
            },
        }))
    }

    /// Appends `events` to the call's stream unless `key` was seen before.
    /// Vapi's reports are facts no state of the call can refuse, so they skip
    /// the expected-version check of the command path; the key makes them once-only.
    async fn record(&self, resolved: &Resolved, events: &[CallEvent], key: String, kind: &str) -> Result<(), AppError> {
        let request = AppendRequest::single(
            resolved.organization_id,
            stream_of::<Call>(resolved.call_id),
            ExpectedVersion::Any,
            events.iter().map(|e| e.to_new_event(&webhook_metadata(kind))).collect(),
        )
        .with_idempotency_key(key);
        self.store.append(request).await.map(|_| ()).map_err(append_failed)
    }

    /// Keeps a message no organization could be found for.
    async fn record_unmatched(&self, kind: &str, call: &CallRef, raw: &[u8], key: String) -> Result<(), AppError> {
        tracing::warn!(vapi_call_id = %call.vapi_call_id, kind, "Vapi message for an unknown call; kept as unmatched");
        let message = String::from_utf8_lossy(raw);
        let event = domain::calls::UnmatchedVapiMessageEvent::VapiMessageUnmatched {
            message_type: kind.to_owned(),
            vapi_call_id: call.vapi_call_id.clone(),
            assistant_id: call.vapi_assistant_id.clone(),
            phone_number_id: call.vapi_phone_number_id.clone(),
            sealed_message: Some(self.sealer.seal(&message, &unmatched_context(&call.vapi_call_id))),
        }
        .to_new_event(&webhook_metadata(kind));
        let request = AppendRequest::single(
            Uuid::nil(),
            StreamId::new("unmatched-vapi-call", &call.vapi_call_id),
            ExpectedVersion::Any,
            vec![event],
        )
        .with_idempotency_key(key);
        self.store.append(request).await.map(|_| ()).map_err(append_failed)
    }

    #[tracing::instrument(skip_all)]
    /// Re-attaches the kept messages of an unmatched Vapi call to our call
    /// `call_id`: each is handled again as if it had named that call (its
    /// organization included). `parse` reads a message as Vapi sent it.
    /// Returns how many were attached.
    pub async fn attach_unmatched(
        &self,
        vapi_call_id: &str,
        call_id: Uuid,
        parse: &(dyn Fn(&[u8]) -> Result<ServerMessage, String> + Sync),
    ) -> Result<usize, AppError> {
        let owner = load_any::<Call>(self.store.as_ref(), stream_of::<Call>(call_id))
            .await?
            .organization_id
            .ok_or_else(|| AppError::not_found("call"))?;
        let kept = self
            .store
            .read_stream(&StreamId::new("unmatched-vapi-call", vapi_call_id))
            .await
            .map_err(|e| AppError::internal("reading unmatched messages", e))?;
        let mut attached = 0;
        for event in kept {
            let domain::calls::UnmatchedVapiMessageEvent::VapiMessageUnmatched { sealed_message, .. } = event
                .decode::<domain::calls::UnmatchedVapiMessageEvent>()
                .map_err(|e| AppError::internal("reading an unmatched message", e))?;
            // Version 1 kept only the ids: nothing to replay.
            let Some(sealed) = sealed_message else { continue };
            let raw = self.sealer.open(&sealed, &unmatched_context(vapi_call_id))?;
            let mut message = parse(raw.as_bytes()).map_err(|e| AppError::internal("parsing a kept message", e))?;
            if let Some(call) = message.call_mut() {
                call.call_id = Some(call_id);
                call.organization_id = Some(owner);
            }
            self.handle_vapi_message(message, raw.as_bytes()).await?;
            attached += 1;
        }
        Ok(attached)
    }

    /// Handles one server message; `raw` is its body as received, kept
    /// (encrypted) if no organization can be found for it.
    #[tracing::instrument(skip_all)]
    pub async fn handle_vapi_message(&self, message: ServerMessage, raw: &[u8]) -> Result<ServerReply, AppError> {
        match message {
            ServerMessage::StatusUpdate {
                call,
                status,
                ended_reason,
                at,
            } => {
                let key = format!("vapi:{}:status-update:{status}", call.vapi_call_id);
                let Some(resolved) = self.resolve(&call).await? else {
                    self.record_unmatched("status-update", &call, raw, key).await?;
                    return Ok(ServerReply::Ack);
                };
                let events = Call::decide(
                    &CallCommand::RecordStatus {
                        parties: resolved.parties.clone(),
                        status,
                        ended_reason,
                        at,
                    },
                    &Call::default(),
                )
                .map_err(call_error)?;
                self.record(&resolved, &events, key, "status-update").await?;
                Ok(ServerReply::Ack)
            }
            ServerMessage::EndOfCallReport { call, report, at } => {
                let key = format!("vapi:{}:end-of-call-report", call.vapi_call_id);
                // The agent's outcome rule and checklist score the report.
                let Some((resolved, loaded)) = self.resolve_loaded(&call, true).await? else {
                    self.record_unmatched("end-of-call-report", &call, raw, key).await?;
                    return Ok(ServerReply::Ack);
                };
                let analysed = loaded.outcome_from_analysis(&report);
                let mut events = Call::decide(
                    &CallCommand::RecordEnd {
                        parties: resolved.parties.clone(),
                        report,
                        at,
                    },
                    &Call::default(),
                )
                .map_err(call_error)?;
                if let Some(outcome) = analysed {
                    events.push(CallEvent::CallOutcomeRecorded {
                        outcome,
                        notes: None,
                        source: "analysis".into(),
                        at,
                    });
                }
                let analysis = loaded.analysis_of(&events, self.clock.now()).map_err(call_error)?;
                events.extend(analysis);
                self.record(&resolved, &events, key, "end-of-call-report").await?;
                Ok(ServerReply::Ack)
            }
            ServerMessage::ToolCalls { call, calls } => {
                // Tools load what they need themselves: only the call's state is read here.
                let resolved = match self.resolve_loaded(&call, false).await? {
                    Some((resolved, loaded)) => {
                        self.ensure_known(&resolved, &loaded.call.state, &call).await?;
                        Some(resolved)
                    }
                    None => None,
                };
                let mut results = Vec::with_capacity(calls.len());
                for tool_call in calls {
                    let outcome = match &resolved {
                        None => Err("this call is not known to VoxReach".to_owned()),
                        Some(resolved) => self.run_tool(resolved, &tool_call).await,
                    };
                    results.push(ToolResult {
                        tool_call_id: tool_call.id,
                        name: tool_call.name,
                        outcome,
                    });
                }
                Ok(ServerReply::ToolResults(results))
            }
            ServerMessage::AssistantRequest { call } => self.choose_assistant(&call, raw).await,
            ServerMessage::Other { .. } => Ok(ServerReply::Ack),
        }
    }

    /// Picks the agent behind the called number and, when it runs an A/B
    /// test, the variant: assigned before the call starts.
    async fn choose_assistant(&self, call: &CallRef, raw: &[u8]) -> Result<ServerReply, AppError> {
        use domain::agents::Agent;
        let unavailable = || ServerReply::Refusal("Sorry, this number cannot take calls right now.".into());
        let Some(resolved) = self.resolve(call).await? else {
            self.record_unmatched(
                "assistant-request",
                call,
                raw,
                format!("vapi:{}:assistant-request", call.vapi_call_id),
            )
            .await?;
            return Ok(unavailable());
        };
        let Some(agent_id) = resolved.parties.agent_id else {
            return Ok(unavailable());
        };
        let agent = load_in::<Agent>(
            self.store.as_ref(),
            resolved.organization_id,
            stream_of::<Agent>(agent_id),
        )
        .await?;
        let (Some(spec), Some(assistant_id), true) = (
            &agent.state.spec,
            &agent.state.sync.vapi_id,
            agent.state.exists() && agent.state.active,
        ) else {
            return Ok(unavailable());
        };
        let variant = crate::ab_testing::assign_variant(
            self.store.as_ref(),
            self.clock.as_ref(),
            self.ab_slots.as_ref(),
            resolved.organization_id,
            agent_id,
            resolved.call_id,
            call.customer_number.clone(),
        )
        .await?;
        Ok(ServerReply::Assistant {
            assistant_id: assistant_id.clone(),
            setup: match variant {
                Some(variant) => {
                    let calendar_tools =
                        crate::calendar::calendar_tools_on(self.calendars.as_ref(), resolved.organization_id, agent_id)
                            .await?;
                    Some(crate::ab_testing::variant_setup(spec, &variant, calendar_tools))
                }
                None => None,
            },
        })
    }

    /// A tool call means the call is in progress, even if Vapi's status update has not arrived yet.
    async fn ensure_known(&self, resolved: &Resolved, state: &Call, call: &CallRef) -> Result<(), AppError> {
        if state.known {
            return Ok(());
        }
        let events = Call::decide(
            &CallCommand::RecordStatus {
                parties: resolved.parties.clone(),
                status: CallStatus::InProgress,
                ended_reason: None,
                at: self.clock.now(),
            },
            state,
        )
        .map_err(call_error)?;
        let key = format!("vapi:{}:status-update:in-progress", call.vapi_call_id);
        self.record(resolved, &events, key, "tool-calls").await
    }

    async fn run_tool(&self, resolved: &Resolved, call: &ToolCall) -> Result<String, String> {
        let Some(tool) = self.tools.iter().find(|t| t.name() == call.name) else {
            return Err(format!("unknown tool {:?}", call.name));
        };
        let context = ToolContext {
            organization_id: resolved.organization_id,
            call_id: resolved.call_id,
            tool_call_id: call.id.clone(),
        };
        tool.run(&context, &call.arguments).await
    }

    /// Sets a call's outcome by hand.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %call_id))]
    pub async fn set_outcome(
        &self,
        caller: &Session,
        call_id: Uuid,
        outcome: Outcome,
        notes: Option<String>,
    ) -> Result<(), AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::RecordOutcomes)?;
        record_outcome(
            self.store.as_ref(),
            self.clock.as_ref(),
            caller.organization_id,
            call_id,
            outcome,
            notes,
            "api",
            None,
        )
        .await
    }
}

/// Records an outcome on a call, from the API or from a tool.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(skip_all, fields(%organization_id, %call_id))]
pub async fn record_outcome(
    store: &dyn EventStore,
    clock: &dyn Clock,
    organization_id: Uuid,
    call_id: Uuid,
    outcome: Outcome,
    notes: Option<String>,
    source: &str,
    idempotency_key: Option<String>,
) -> Result<(), AppError> {
    let command = CallCommand::RecordOutcome {
        outcome,
        notes,
        source: source.to_owned(),
        now: clock.now(),
    };
    let metadata = crate::aggregates::metadata(source, source);
    let decide = || -> BoxFuture<'_, Result<Decided<()>, AppError>> {
        Box::pin(async {
            let call = load_in::<Call>(store, organization_id, stream_of::<Call>(call_id)).await?;
            let events = Call::decide(&command, &call.state).map_err(call_error)?;
            if events.is_empty() {
                return Ok(Decided::nothing(()));
            }
            let mut decided = Decided::new(vec![call.append_of(&events, &metadata)], ());
            decided.idempotency_key = idempotency_key.clone();
            Ok(decided)
        })
    };
    execute_decision(store, organization_id, DECISION_ATTEMPTS, decide).await
}

/// The `set_call_outcome` tool: the agent marks how the conversation went.
pub struct SetCallOutcomeTool {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
}

#[async_trait]
impl Tool for SetCallOutcomeTool {
    fn name(&self) -> &'static str {
        "set_call_outcome"
    }

    async fn run(&self, context: &ToolContext, arguments: &Value) -> Result<String, String> {
        let outcome: Outcome = arguments["outcome"]
            .as_str()
            .ok_or("missing argument: outcome")?
            .parse()
            .map_err(|e: domain::calls::CallError| e.to_string())?;
        let notes = arguments["notes"].as_str().map(str::to_owned);
        match record_outcome(
            self.store.as_ref(),
            self.clock.as_ref(),
            context.organization_id,
            context.call_id,
            outcome,
            notes,
            "tool",
            Some(format!("vapi-tool:{}", context.tool_call_id)),
        )
        .await
        {
            Ok(()) => Ok(format!("Outcome recorded: {outcome}.")),
            Err(error) if error.kind == ErrorKind::Internal => Err("the outcome could not be saved".into()),
            Err(error) => Err(error.message),
        }
    }
}

/// Filters of the call list; results are newest first.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub status: Option<CallStatus>,
    pub agent_id: Option<Uuid>,
    pub direction: Option<CallDirection>,
    pub outcome: Option<Outcome>,
    /// Matches the customer's number (E.164 or a fragment of digits).
    pub phone: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Calls that ended in [ended_from, ended_before), by their end-of-call report.
    pub ended_from: Option<DateTime<Utc>>,
    pub ended_before: Option<DateTime<Utc>>,
    /// Continue after this (created_at, id).
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallSummary {
    pub id: Uuid,
    pub vapi_call_id: Option<String>,
    pub agent_id: Option<Uuid>,
    pub agent_name: Option<String>,
    pub direction: Option<CallDirection>,
    pub customer_number: Option<String>,
    pub status: CallStatus,
    pub ended_reason: Option<EndedReason>,
    pub outcome: Option<Outcome>,
    pub duration_seconds: Option<f64>,
    pub cost: Option<f64>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub event_type: String,
    pub status: Option<CallStatus>,
    pub details: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallDetail {
    #[serde(flatten)]
    pub summary: CallSummary,
    pub transcript: Option<String>,
    pub messages: Value,
    pub recording_url: Option<String>,
    pub stereo_recording_url: Option<String>,
    pub analysis: Value,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardStats {
    pub total_calls: i64,
    pub total_minutes: f64,
    pub active_agents: i64,
    pub phone_numbers: i64,
    pub recent_calls: Vec<CallSummary>,
}

/// The call history read models.
#[async_trait]
pub trait CallHistory: Send + Sync {
    async fn list(&self, organization_id: Uuid, filter: &CallFilter) -> Result<Vec<CallSummary>, AppError>;
    async fn get(&self, organization_id: Uuid, call_id: Uuid) -> Result<Option<CallDetail>, AppError>;
    async fn dashboard(&self, organization_id: Uuid) -> Result<DashboardStats, AppError>;
    /// Whether this customer reached `qualified` or better on a call other than `except`.
    async fn qualified_before(
        &self,
        organization_id: Uuid,
        customer_number: &str,
        except: Uuid,
    ) -> Result<bool, AppError>;
    /// Totals of the calls started in [from, to).
    async fn day_totals(
        &self,
        organization_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<domain::slack::DayTotals, AppError>;
}

/// Name of the reactor that places requested outbound calls with Vapi.
pub const CALL_PLACEMENT: &str = "vapi-call-placement";

/// Requests an outbound call; the placement reactor dials it.
pub struct OutboundCalls {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub ab_slots: Arc<dyn crate::ab_testing::AssignmentSlots>,
    pub usage: Arc<dyn crate::quotas::UsageCounter>,
    pub quotas: crate::quotas::QuotaPolicy,
}

#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub agent_id: Uuid,
    pub phone_number_id: Uuid,
    pub customer_number: domain::phone::PhoneNumber,
}

impl OutboundCalls {
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn request(&self, caller: &Session, request: OutboundRequest) -> Result<Uuid, AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::PlaceCalls)?;
        use domain::phone_numbers::PhoneNumberState;
        let agent = crate::agents::existing_agent(self.store.as_ref(), caller.organization_id, request.agent_id)
            .await?
            .ok_or_else(|| AppError::validation("agentId", "agentId is not an agent of this organization"))?;
        if !agent.state.active {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "agent_inactive",
                "the agent is deactivated",
            ));
        }
        let number = load_in::<PhoneNumberState>(
            self.store.as_ref(),
            caller.organization_id,
            stream_of::<PhoneNumberState>(request.phone_number_id),
        )
        .await?;
        if !number.state.exists() {
            return Err(AppError::validation(
                "phoneNumberId",
                "phoneNumberId is not a number of this organization",
            ));
        }
        // Last, so that refused requests spend nothing.
        crate::quotas::spend(
            self.usage.as_ref(),
            &self.quotas,
            caller.organization_id,
            crate::quotas::Costly::OutboundCall,
            self.clock.now(),
        )
        .await?;
        let call_id = Uuid::now_v7();
        let requester = Requester {
            user_id: caller.user_id,
            campaign: None,
            metadata: session_metadata(caller),
        };
        request_call(
            self.store.as_ref(),
            self.clock.as_ref(),
            self.ab_slots.as_ref(),
            caller.organization_id,
            call_id,
            &request,
            &requester,
        )
        .await?;
        Ok(call_id)
    }
}

/// Who asks for a call, for its record.
pub struct Requester {
    /// The user; nil for the campaign runner.
    pub user_id: Uuid,
    pub campaign: Option<domain::calls::CampaignAttempt>,
    pub metadata: domain::EventMetadata,
}

/// The one way an outbound call is requested (by a user or a campaign): the
/// agent's A/B test (if one runs) assigns a variant first, then the call is
/// recorded as requested and the placement reactor dials it, once. Asking
/// again for the same `call_id` changes nothing.
#[tracing::instrument(skip_all, fields(%organization_id, %call_id))]
pub async fn request_call(
    store: &dyn EventStore,
    clock: &dyn Clock,
    ab_slots: &dyn crate::ab_testing::AssignmentSlots,
    organization_id: Uuid,
    call_id: Uuid,
    request: &OutboundRequest,
    requester: &Requester,
) -> Result<(), AppError> {
    // The variant is chosen (and recorded) before the call exists.
    crate::ab_testing::assign_variant(
        store,
        clock,
        ab_slots,
        organization_id,
        request.agent_id,
        call_id,
        Some(request.customer_number.to_string()),
    )
    .await?;
    let command = CallCommand::Request {
        organization_id,
        parties: CallParties {
            vapi_call_id: None,
            direction: Some(CallDirection::Outbound),
            agent_id: Some(request.agent_id),
            phone_number_id: Some(request.phone_number_id),
            customer_number: Some(request.customer_number.to_string()),
        },
        requested_by: requester.user_id,
        campaign: requester.campaign,
        now: clock.now(),
    };
    crate::aggregates::execute::<Call>(
        store,
        organization_id,
        stream_of::<Call>(call_id),
        &requester.metadata,
        |loaded| {
            if loaded.state.known {
                return Ok(vec![]);
            }
            Ok(Call::decide(&command, &loaded.state)?)
        },
    )
    .await?;
    Ok(())
}

/// Dials requested calls, once. Placing a call is not idempotent at Vapi, so
/// each attempt is recorded before dialling; a later attempt that finds an
/// unconfirmed one looks the call up at Vapi instead of dialling again, and a
/// request that may have reached Vapi (timeouts, 5xx) is retried only that way.
pub struct CallPlacement {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub ab_slots: Arc<dyn crate::ab_testing::AssignmentSlots>,
    pub voice: Arc<dyn crate::voice::VoiceProvider>,
    pub retry: crate::providers::RetryPolicy,
    pub briefing: Arc<dyn CustomerBriefing>,
    /// Whether an agent's calendar tools are on, for a variant's overrides.
    pub calendars: Arc<dyn crate::calendar::CalendarDirectory>,
}

/// Longest a dial waits for the customer's briefing; without it the call goes
/// out anyway, the agent told nothing more.
pub const BRIEFING_DEADLINE: std::time::Duration = std::time::Duration::from_millis(1500);

/// What is known about the person a call goes to (their CRM record), for the agent.
#[async_trait]
pub trait CustomerBriefing: Send + Sync {
    /// Variables for the assistant (`customerName`, `company`, `owner`, `openDeal`…); empty when nothing is known.
    async fn briefing(
        &self,
        organization_id: Uuid,
        customer_number: &str,
    ) -> std::collections::BTreeMap<String, String>;
}

impl CallPlacement {
    async fn record(&self, organization_id: Uuid, call_id: Uuid, command: CallCommand) -> Result<(), AppError> {
        execute::<Call>(
            self.store.as_ref(),
            organization_id,
            stream_of::<Call>(call_id),
            &metadata("system:vapi", format!("reactor:{CALL_PLACEMENT}")),
            |loaded| Call::decide(&command, &loaded.state).map_err(call_error),
        )
        .await
        .map(|_| ())
    }
}

#[async_trait]
impl crate::work::WorkHandler for CallPlacement {
    fn reactor(&self) -> &'static str {
        CALL_PLACEMENT
    }

    fn provider(&self) -> &'static str {
        "vapi"
    }

    async fn handle(&self, item: &crate::work::WorkItem) -> Result<crate::work::WorkOutcome, AppError> {
        use crate::providers::ProviderError;
        use crate::voice::OutboundCall;
        use crate::work::WorkOutcome;
        use domain::agents::Agent;
        use domain::phone_numbers::PhoneNumberState;
        let call_id = Uuid::parse_str(&item.key).map_err(|e| AppError::internal("reading a work key", e))?;
        let organization_id = item.organization_id;
        let call = load_in::<Call>(self.store.as_ref(), organization_id, stream_of::<Call>(call_id)).await?;
        if !call.state.awaits_placement() {
            return Ok(WorkOutcome::Done);
        }
        let parties = &call.state.parties;
        let (Some(agent_id), Some(number_id), Some(customer)) =
            (parties.agent_id, parties.phone_number_id, &parties.customer_number)
        else {
            return Err(AppError::internal(
                "placing a call",
                "the call request lacks its parties",
            ));
        };
        let agent = load_in::<Agent>(self.store.as_ref(), organization_id, stream_of::<Agent>(agent_id)).await?;
        let number = load_in::<PhoneNumberState>(
            self.store.as_ref(),
            organization_id,
            stream_of::<PhoneNumberState>(number_id),
        )
        .await?;
        let now = self.clock.now();
        let attempt = item.attempts + 1;
        let (Some(assistant), Some(vapi_number)) = (&agent.state.sync.vapi_id, &number.state.sync.vapi_id) else {
            // Wait for the agent's or number's own sync, within the retry budget.
            let reason = if agent.state.sync.vapi_id.is_none() {
                "the agent is not synced to Vapi"
            } else {
                "the phone number is not synced to Vapi"
            };
            let waiting = ProviderError::RateLimited { retry_after: None };
            return match self.retry.next_attempt(attempt, &waiting, now) {
                Some(due) => Ok(WorkOutcome::RetryAt {
                    due,
                    reason: reason.into(),
                }),
                None => {
                    self.record(
                        organization_id,
                        call_id,
                        CallCommand::RecordPlacementFailed {
                            reason: reason.into(),
                            now,
                        },
                    )
                    .await?;
                    Ok(WorkOutcome::GiveUp { reason: reason.into() })
                }
            };
        };
        // Idempotent: returns the variant the request was given, if its test still runs.
        let variant = crate::ab_testing::assign_variant(
            self.store.as_ref(),
            self.clock.as_ref(),
            self.ab_slots.as_ref(),
            organization_id,
            agent_id,
            call_id,
            Some(customer.clone()),
        )
        .await?;
        let variables = tokio::time::timeout(BRIEFING_DEADLINE, self.briefing.briefing(organization_id, customer))
            .await
            .unwrap_or_else(|_| {
                tracing::warn!(%call_id, "the customer briefing missed its deadline; dialling without it");
                Default::default()
            });
        let outbound = OutboundCall {
            organization_id,
            call_id,
            agent_id,
            vapi_assistant_id: assistant.clone(),
            vapi_phone_number_id: vapi_number.clone(),
            customer_number: customer.clone(),
            customer_name: variables.get("customerName").cloned(),
            variables,
            setup: match (&agent.state.spec, variant) {
                (Some(spec), Some(variant)) => {
                    let calendar_tools =
                        crate::calendar::calendar_tools_on(self.calendars.as_ref(), organization_id, agent_id).await?;
                    Some(crate::ab_testing::variant_setup(spec, &variant, calendar_tools))
                }
                _ => None,
            },
        };
        let previous = call.state.placement_attempt;
        let placed = match previous {
            // An earlier attempt may have reached Vapi: look before dialling again.
            Some((_, since)) => self.voice.find_call(&outbound, since).await,
            None => Ok(None),
        };
        let placed = match placed {
            Ok(Some(vapi_call_id)) => Ok(vapi_call_id),
            Ok(None) => {
                let claimed = self
                    .record(
                        organization_id,
                        call_id,
                        CallCommand::StartPlacement {
                            attempt: Uuid::now_v7(),
                            previous: previous.map(|(a, _)| a),
                            now,
                        },
                    )
                    .await;
                match claimed {
                    Ok(()) => self.voice.create_call(&outbound).await,
                    // Another worker recorded its attempt first: the call is theirs to place.
                    Err(e) if e.code == "call_placement_in_progress" => {
                        return Ok(WorkOutcome::RetryAt {
                            due: now + chrono::Duration::seconds(60),
                            reason: "another worker is placing the call".into(),
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(lookup) => Err(lookup),
        };
        let (command, outcome) = match placed {
            Ok(vapi_call_id) => (CallCommand::RecordPlaced { vapi_call_id, now }, WorkOutcome::Done),
            Err(error) => {
                let reason = error.to_string();
                match self.retry.next_attempt(attempt, &error, now) {
                    // The next attempt looks the call up before dialling.
                    Some(due) => return Ok(WorkOutcome::RetryAt { due, reason }),
                    None => (
                        CallCommand::RecordPlacementFailed {
                            reason: reason.clone(),
                            now,
                        },
                        WorkOutcome::GiveUp { reason },
                    ),
                }
            }
        };
        self.record(organization_id, call_id, command).await?;
        Ok(outcome)
    }
}
