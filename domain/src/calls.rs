//! Phone calls handled by agents, as Vapi reports them.

use crate::aggregate::Aggregate;
use crate::domain_events;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("{field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("call not found")]
    NotFound,
    #[error("call already exists")]
    Exists,
    /// Another placement attempt was recorded first: its worker owns the call.
    #[error("another attempt is placing this call")]
    PlacementInProgress,
}

/// Longest note that goes with an outcome.
pub const NOTES_LIMIT_CHARS: usize = 2_000;

/// How a call went: set by the agent's analysis rule, a tool, or a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Qualified,
    Appointment,
    Sale,
    NotInterested,
    CallbackRequested,
    Voicemail,
    NoAnswer,
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Qualified,
        Outcome::Appointment,
        Outcome::Sale,
        Outcome::NotInterested,
        Outcome::CallbackRequested,
        Outcome::Voicemail,
        Outcome::NoAnswer,
        Outcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Qualified => "qualified",
            Outcome::Appointment => "appointment",
            Outcome::Sale => "sale",
            Outcome::NotInterested => "not_interested",
            Outcome::CallbackRequested => "callback_requested",
            Outcome::Voicemail => "voicemail",
            Outcome::NoAnswer => "no_answer",
            Outcome::Failed => "failed",
        }
    }

    /// "qualified, appointment, …": for error messages.
    pub fn listed() -> String {
        Outcome::ALL.map(Outcome::as_str).join(", ")
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Outcome {
    type Err = CallError;

    fn from_str(raw: &str) -> Result<Self, CallError> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == raw)
            .ok_or_else(|| CallError::Invalid {
                field: "outcome",
                reason: format!("must be one of {}", Outcome::listed()),
            })
    }
}

/// Where a call is: ours before Vapi has it (`requested`, `failed` to place),
/// then Vapi's statuses. A status Vapi adds later is kept as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    Requested,
    Scheduled,
    Queued,
    Ringing,
    InProgress,
    Forwarding,
    Ended,
    Failed,
    #[serde(untagged)]
    Other(String),
}

impl CallStatus {
    pub fn parse(raw: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(raw.to_owned())).unwrap_or(CallStatus::Other(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            CallStatus::Requested => "requested",
            CallStatus::Scheduled => "scheduled",
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Forwarding => "forwarding",
            CallStatus::Ended => "ended",
            CallStatus::Failed => "failed",
            CallStatus::Other(raw) => raw,
        }
    }

    /// Position in Vapi's lifecycle, the only order a call moves through;
    /// statuses outside it (ours, unknown ones) never move a call.
    pub fn rank(&self) -> Option<u8> {
        match self {
            CallStatus::Scheduled => Some(0),
            CallStatus::Queued => Some(1),
            CallStatus::Ringing => Some(2),
            CallStatus::InProgress => Some(3),
            CallStatus::Forwarding => Some(4),
            CallStatus::Ended => Some(5),
            CallStatus::Requested | CallStatus::Failed | CallStatus::Other(_) => None,
        }
    }

    /// Every status we know, ours and Vapi's.
    pub const KNOWN: [CallStatus; 8] = [
        CallStatus::Requested,
        CallStatus::Scheduled,
        CallStatus::Queued,
        CallStatus::Ringing,
        CallStatus::InProgress,
        CallStatus::Forwarding,
        CallStatus::Ended,
        CallStatus::Failed,
    ];
}

impl std::fmt::Display for CallStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why Vapi ended a call. Values Vapi adds later, and the families of
/// technical errors (`pipeline-error-*`, `call.start.error-*`), are kept as they came.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndedReason {
    CustomerEndedCall,
    AssistantEndedCall,
    AssistantSaidEndCallPhrase,
    AssistantForwardedCall,
    CustomerBusy,
    CustomerDidNotAnswer,
    Voicemail,
    SilenceTimedOut,
    ExceededMaxDuration,
    ManuallyCanceled,
    TwilioFailedToConnectCall,
    AssistantRequestFailed,
    /// Ours: Vapi never took the call.
    PlacementFailed,
    #[serde(untagged)]
    Other(String),
}

impl EndedReason {
    pub fn parse(raw: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(raw.to_owned())).unwrap_or(EndedReason::Other(raw.to_owned()))
    }

    pub fn as_str(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(raw)) => raw,
            _ => String::new(),
        }
    }

    /// A technical failure rather than a conversation ending.
    pub fn is_technical_failure(&self) -> bool {
        let raw = self.as_str();
        raw.starts_with("pipeline-error")
            || raw.starts_with("call.start.error")
            || raw.contains("failed-to-connect")
            || raw == "assistant-request-failed"
            || raw.starts_with("assistant-error")
    }
}

/// How an agent's end-of-call analysis maps to an outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OutcomeRule {
    /// A `structuredData` field holding one of the outcomes (e.g. `outcome`).
    #[serde(default)]
    pub structured_data_field: Option<String>,
    /// Outcome when `successEvaluation` passes (true/pass/yes, or a score at or above the threshold).
    #[serde(default)]
    pub on_success: Option<Outcome>,
    /// Outcome when it fails.
    #[serde(default)]
    pub on_failure: Option<Outcome>,
    /// Pass mark for numeric evaluations (e.g. 7 on a 1–10 scale).
    #[serde(default)]
    pub success_threshold: Option<f64>,
}

impl Default for OutcomeRule {
    /// Without a rule, a `structuredData.outcome` naming an outcome is taken.
    fn default() -> Self {
        Self {
            structured_data_field: Some("outcome".into()),
            on_success: None,
            on_failure: None,
            success_threshold: None,
        }
    }
}

impl OutcomeRule {
    /// The outcome the analysis of `report` implies, if any.
    pub fn outcome_of(&self, report: &CallReport) -> Option<Outcome> {
        let from_data = self.structured_data_field.as_ref().and_then(|field| {
            report
                .structured_data
                .as_ref()?
                .get(field)?
                .as_str()?
                .to_lowercase()
                .parse()
                .ok()
        });
        if from_data.is_some() {
            return from_data;
        }
        let evaluation = report.success_evaluation.as_deref()?.trim().to_lowercase();
        let passed = match evaluation.as_str() {
            "true" | "pass" | "passed" | "yes" | "success" => Some(true),
            "false" | "fail" | "failed" | "no" | "failure" => Some(false),
            number => number
                .parse::<f64>()
                .ok()
                .map(|score| score >= self.success_threshold.unwrap_or(7.0)),
        }?;
        if passed {
            self.on_success
        } else {
            self.on_failure
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptMessage {
    pub role: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    /// Epoch milliseconds at which the message ended (absent from reports stored before 2026-11-26).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    /// Milliseconds spoken, as Vapi sends it (absent from reports stored before 2026-11-26).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_from_start: Option<f64>,
}

/// What Vapi reports when a call is over.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallReport {
    pub ended_reason: Option<EndedReason>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub cost: Option<f64>,
    pub transcript: Option<String>,
    #[serde(default)]
    pub messages: Vec<TranscriptMessage>,
    pub recording_url: Option<String>,
    pub stereo_recording_url: Option<String>,
    pub summary: Option<String>,
    pub structured_data: Option<serde_json::Value>,
    pub success_evaluation: Option<String>,
}

crate::open_enum! {
    /// Who called whom, from Vapi's call type.
    pub enum CallDirection {
        Inbound = "inbound",
        Outbound = "outbound",
        /// A call from a browser.
        Web = "web",
    }
}

/// Who a call is with and through what, as far as known.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallParties {
    pub vapi_call_id: Option<String>,
    pub direction: Option<CallDirection>,
    pub agent_id: Option<Uuid>,
    pub phone_number_id: Option<Uuid>,
    pub customer_number: Option<String>,
}

/// The campaign attempt a call is (when the campaign runner dialled it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignAttempt {
    pub campaign_id: Uuid,
    pub contact_id: Uuid,
    pub attempt_number: u32,
}

domain_events! {
    pub enum CallEvent for Call in "call" {
        /// A user (or the campaign runner) asked for an outbound call. Payload: organizationId, parties
        /// {vapiCallId, direction, agentId, phoneNumberId, customerNumber}, requestedBy (the user; nil for the
        /// campaign runner), requestedAt, campaign {campaignId, contactId, attemptNumber} (null unless a campaign
        /// attempt). Version 1 had no `campaign`.
        #[version(2)]
        CallRequested {
            organization_id: Uuid,
            parties: CallParties,
            requested_by: Uuid,
            requested_at: DateTime<Utc>,
            campaign: Option<CampaignAttempt>,
        },
        /// The placement reactor is about to ask Vapi for the call (the intent, recorded before dialling): a
        /// retry or another worker finding it looks the call up at Vapi instead of dialling again. Payload:
        /// attempt (id of this attempt), at.
        #[version(1)]
        CallPlacementStarted { attempt: Uuid, at: DateTime<Utc> },
        /// Vapi accepted the outbound call. Payload: vapiCallId, at.
        #[version(1)]
        CallPlacedWithVapi { vapi_call_id: String, at: DateTime<Utc> },
        /// Vapi refused or could not be reached to place the call. Payload: reason, at.
        #[version(1)]
        CallPlacementFailed { reason: String, at: DateTime<Utc> },
        /// Vapi reported a status (scheduled, queued, ringing, in-progress, forwarding, ended); late reports
        /// are kept for the timeline but never move a call backwards. Payload: parties, status, endedReason, at
        /// (Vapi's timestamp).
        #[version(1)]
        CallStatusUpdated {
            parties: CallParties,
            status: CallStatus,
            ended_reason: Option<EndedReason>,
            at: DateTime<Utc>,
        },
        /// Vapi's end-of-call report. Payload: parties, report {endedReason, startedAt, endedAt,
        /// durationSeconds, cost, transcript, messages[{role, message, time, endTime, duration, secondsFromStart}], recordingUrl,
        /// stereoRecordingUrl, summary, structuredData, successEvaluation}, at.
        #[version(1)]
        CallEnded {
            parties: CallParties,
            report: Box<CallReport>,
            at: DateTime<Utc>,
        },
        /// End-of-call report number `report` (1 for the first) was scored once, as it arrived or later
        /// by the call-analysis reactor:
        /// what analytics needs of it, so read models never re-read transcripts. Payload: parties,
        /// report, endedAt (the report's `at`), analysis {startedAt, durationSeconds, endedReason,
        /// prospectSpoke, talk {agentSeconds, prospectSeconds, longestMonologueSeconds, interruptions,
        /// silenceSeconds, callSeconds}, sentiment {score, label}, adherence {score, missed}}, at.
        #[version(1)]
        CallAnalyzed {
            parties: CallParties,
            report: u32,
            ended_at: DateTime<Utc>,
            analysis: Box<crate::analytics::CallAnalysis>,
            at: DateTime<Utc>,
        },
        /// The call's outcome was set (qualified, appointment, sale, not_interested, callback_requested,
        /// voicemail, no_answer, failed). Payload: outcome, notes, source (api, tool, analysis), at.
        #[version(1)]
        CallOutcomeRecorded {
            outcome: Outcome,
            notes: Option<String>,
            source: String,
            at: DateTime<Utc>,
        },
    }
}

domain_events! {
    pub enum UnmatchedVapiMessageEvent in "unmatched-vapi-call" {
        /// A Vapi server message for a call no organization could be matched to; kept, not dropped, so an
        /// operator can re-attach it (`voxreach attach-unmatched`). Stored under the nil organization. Payload:
        /// messageType, vapiCallId, assistantId, phoneNumberId, sealedMessage (the whole message, encrypted:
        /// transcripts are personal data; null in version 1 events, which kept only the ids).
        #[version(2)]
        VapiMessageUnmatched {
            message_type: String,
            vapi_call_id: String,
            assistant_id: Option<String>,
            phone_number_id: Option<String>,
            sealed_message: Option<String>,
        },
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallCommand {
    Request {
        organization_id: Uuid,
        parties: CallParties,
        requested_by: Uuid,
        campaign: Option<CampaignAttempt>,
        now: DateTime<Utc>,
    },
    /// Claims the placement before dialling. `previous` is the attempt the
    /// caller found (and checked is not at Vapi); a different one means another worker got there first.
    StartPlacement {
        attempt: Uuid,
        previous: Option<Uuid>,
        now: DateTime<Utc>,
    },
    RecordPlaced {
        vapi_call_id: String,
        now: DateTime<Utc>,
    },
    RecordPlacementFailed {
        reason: String,
        now: DateTime<Utc>,
    },
    RecordStatus {
        parties: CallParties,
        status: CallStatus,
        ended_reason: Option<EndedReason>,
        at: DateTime<Utc>,
    },
    RecordEnd {
        parties: CallParties,
        report: Box<CallReport>,
        at: DateTime<Utc>,
    },
    RecordOutcome {
        outcome: Outcome,
        notes: Option<String>,
        source: String,
        now: DateTime<Utc>,
    },
    /// Scores end-of-call report number `report` (the stream's latest) against the agent's checklist.
    Analyze {
        report: u32,
        ended_at: DateTime<Utc>,
        content: Box<CallReport>,
        checklist: Option<crate::analytics::AdherenceChecklist>,
        now: DateTime<Utc>,
    },
}

impl CallCommand {
    /// Scores end-of-call report number `report` against `agent`'s checklist as it stands
    /// (no agent, or an empty checklist: no adherence score).
    pub fn analyze(
        report: u32,
        ended_at: DateTime<Utc>,
        content: Box<CallReport>,
        agent: Option<&crate::agents::Agent>,
        now: DateTime<Utc>,
    ) -> Self {
        let checklist = agent
            .map(|agent| agent.adherence_checklist.clone())
            .filter(|checklist| !checklist.is_empty());
        CallCommand::Analyze {
            report,
            ended_at,
            content,
            checklist,
            now,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Call {
    pub known: bool,
    pub status: Option<CallStatus>,
    pub ended: bool,
    pub outcome: Option<Outcome>,
    pub parties: CallParties,
    /// The latest placement attempt and when it began: it may have reached
    /// Vapi, so a later attempt looks it up before dialling again.
    pub placement_attempt: Option<(Uuid, DateTime<Utc>)>,
    /// The campaign attempt this call is, if any.
    pub campaign: Option<CampaignAttempt>,
    /// Why the call ended, once known.
    pub ended_reason: Option<EndedReason>,
    /// The person asked not to be called again (the end-of-call analysis says so).
    pub opted_out: bool,
    /// End-of-call reports recorded, and the number of the latest one analyzed.
    pub reports: u32,
    pub analyzed_report: u32,
}

impl Call {
    /// Still waiting to be dialled (requested, neither placed nor failed).
    pub fn awaits_placement(&self) -> bool {
        self.parties.vapi_call_id.is_none() && !self.ended && self.status == Some(CallStatus::Requested)
    }
}

impl CallParties {
    /// Fills what this side lacks from `other`.
    fn merge(&mut self, other: &CallParties) {
        self.vapi_call_id = self.vapi_call_id.take().or_else(|| other.vapi_call_id.clone());
        self.direction = self.direction.take().or_else(|| other.direction.clone());
        self.agent_id = self.agent_id.or(other.agent_id);
        self.phone_number_id = self.phone_number_id.or(other.phone_number_id);
        self.customer_number = self.customer_number.take().or_else(|| other.customer_number.clone());
    }
}

impl Aggregate for Call {
    type Command = CallCommand;
    type Error = CallError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        Ok(match command {
            CallCommand::Request {
                organization_id,
                parties,
                requested_by,
                campaign,
                now,
            } => {
                if state.known {
                    return Err(CallError::Exists);
                }
                vec![CallEvent::CallRequested {
                    organization_id: *organization_id,
                    parties: parties.clone(),
                    requested_by: *requested_by,
                    requested_at: *now,
                    campaign: *campaign,
                }]
            }
            CallCommand::StartPlacement { attempt, previous, now } => {
                if !state.known {
                    return Err(CallError::NotFound);
                }
                if !state.awaits_placement() || state.placement_attempt.map(|(a, _)| a) != *previous {
                    return Err(CallError::PlacementInProgress);
                }
                vec![CallEvent::CallPlacementStarted {
                    attempt: *attempt,
                    at: *now,
                }]
            }
            CallCommand::RecordPlaced { vapi_call_id, now } => {
                vec![CallEvent::CallPlacedWithVapi {
                    vapi_call_id: vapi_call_id.clone(),
                    at: *now,
                }]
            }
            CallCommand::RecordPlacementFailed { reason, now } => {
                vec![CallEvent::CallPlacementFailed {
                    reason: reason.clone(),
                    at: *now,
                }]
            }
            // Status updates are facts from Vapi: all are kept for the timeline,
            // even late ones; only the state ignores moves backwards.
            CallCommand::RecordStatus {
                parties,
                status,
                ended_reason,
                at,
            } => vec![CallEvent::CallStatusUpdated {
                parties: parties.clone(),
                status: status.clone(),
                ended_reason: ended_reason.clone(),
                at: *at,
            }],
            CallCommand::RecordEnd { parties, report, at } => {
                vec![CallEvent::CallEnded {
                    parties: parties.clone(),
                    report: report.clone(),
                    at: *at,
                }]
            }
            CallCommand::RecordOutcome {
                outcome,
                notes,
                source,
                now,
            } => {
                if !state.known {
                    return Err(CallError::NotFound);
                }
                if notes.as_ref().is_some_and(|n| n.chars().count() > NOTES_LIMIT_CHARS) {
                    return Err(CallError::Invalid {
                        field: "notes",
                        reason: format!("must be at most {NOTES_LIMIT_CHARS} characters"),
                    });
                }
                if state.outcome == Some(*outcome) {
                    return Ok(vec![]);
                }
                vec![CallEvent::CallOutcomeRecorded {
                    outcome: *outcome,
                    notes: notes.clone(),
                    source: source.clone(),
                    at: *now,
                }]
            }
            CallCommand::Analyze {
                report,
                ended_at,
                content,
                checklist,
                now,
            } => {
                // Analyzed already (a retry), or a newer report supersedes this one.
                if *report != state.reports || state.analyzed_report >= *report {
                    return Ok(vec![]);
                }
                vec![CallEvent::CallAnalyzed {
                    parties: state.parties.clone(),
                    report: *report,
                    ended_at: *ended_at,
                    analysis: Box::new(crate::analytics::CallAnalysis::of(content, checklist.as_ref())),
                    at: *now,
                }]
            }
        })
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        self.known = true;
        match event {
            CallEvent::CallRequested { parties, campaign, .. } => {
                self.parties.merge(parties);
                self.status = Some(CallStatus::Requested);
                self.campaign = *campaign;
            }
            CallEvent::CallPlacementStarted { attempt, at } => {
                self.placement_attempt = Some((*attempt, *at));
            }
            CallEvent::CallPlacedWithVapi { vapi_call_id, .. } => {
                self.parties.vapi_call_id = Some(vapi_call_id.clone());
                if matches!(self.status, None | Some(CallStatus::Requested)) {
                    self.status = Some(CallStatus::Queued);
                }
            }
            CallEvent::CallPlacementFailed { .. } => {
                self.status = Some(CallStatus::Failed);
                self.ended = true;
            }
            CallEvent::CallStatusUpdated {
                parties,
                status,
                ended_reason,
                ..
            } => {
                self.parties.merge(parties);
                if ended_reason.is_some() {
                    self.ended_reason.clone_from(ended_reason);
                }
                let current = self.status.as_ref().and_then(CallStatus::rank);
                if !self.ended && status.rank().is_some() && status.rank() > current {
                    self.status = Some(status.clone());
                    self.ended = *status == CallStatus::Ended;
                }
            }
            CallEvent::CallEnded { parties, report, .. } => {
                self.parties.merge(parties);
                self.status = Some(CallStatus::Ended);
                self.ended = true;
                if report.ended_reason.is_some() {
                    self.ended_reason.clone_from(&report.ended_reason);
                }
                self.opted_out = crate::campaigns::opted_out(report);
                self.reports += 1;
            }
            CallEvent::CallAnalyzed { report, .. } => self.analyzed_report = *report,
            CallEvent::CallOutcomeRecorded { outcome, .. } => self.outcome = Some(*outcome),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_call_requested_before_campaigns_existed_reads_as_no_campaign_attempt() {
        let v1 = serde_json::json!({"organizationId": Uuid::nil(), "parties": {}, "requestedBy": Uuid::nil(),
            "requestedAt": "2026-01-01T00:00:00Z"});
        let (version, payload) = crate::events::upcast("CallRequested", 1, v1);
        assert_eq!(version, 2);
        match <CallEvent as crate::DomainEvent>::decode("CallRequested", version, &payload).unwrap() {
            CallEvent::CallRequested { campaign, .. } => assert_eq!(campaign, None),
            other => panic!("{other:?}"),
        }
    }

    use super::*;
    use crate::aggregate::given_when_then::{given, given_state};

    fn at(s: &str) -> DateTime<Utc> {
        format!("2026-11-24T12:00:{s}Z").parse().unwrap()
    }

    fn status(s: &str) -> CallEvent {
        CallEvent::CallStatusUpdated {
            parties: CallParties::default(),
            status: CallStatus::parse(s),
            ended_reason: None,
            at: at("00"),
        }
    }

    #[test]
    fn one_placement_attempt_at_a_time_and_none_once_placed() {
        let requested = CallEvent::CallRequested {
            organization_id: Uuid::new_v4(),
            parties: CallParties::default(),
            requested_by: Uuid::new_v4(),
            requested_at: at("00"),
            campaign: None,
        };
        let call = Call::fold(&[requested]);
        assert!(call.awaits_placement());
        let start = |attempt, previous| CallCommand::StartPlacement {
            attempt,
            previous,
            now: at("01"),
        };
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        let call = given_state(call).when(start(first, None)).state_after();
        // A worker that read the call before the first attempt was recorded loses.
        let call = given_state(call)
            .when(start(second, None))
            .then_error(CallError::PlacementInProgress);
        // One that found the first attempt and checked Vapi has no such call may try again.
        let call = given_state(call).when(start(second, Some(first))).state_after();
        let call = given_state(call)
            .when(CallCommand::RecordPlaced {
                vapi_call_id: "call_1".into(),
                now: at("02"),
            })
            .state_after();
        assert!(!call.awaits_placement());
        given_state(call)
            .when(start(Uuid::new_v4(), Some(second)))
            .then_error(CallError::PlacementInProgress);
    }

    #[test]
    fn an_outcome_is_recorded_once_and_changed_only_to_another() {
        let recorded = |outcome| CallEvent::CallOutcomeRecorded {
            outcome,
            notes: None,
            source: "api".into(),
            at: at("01"),
        };
        let record = |outcome| CallCommand::RecordOutcome {
            outcome,
            notes: None,
            source: "api".into(),
            now: at("01"),
        };
        given::<Call>([status("ended")])
            .when(record(Outcome::Qualified))
            .then([recorded(Outcome::Qualified)]);
        given::<Call>([status("ended"), recorded(Outcome::Qualified)])
            .when(record(Outcome::Qualified))
            .then_nothing();
        given::<Call>([])
            .when(record(Outcome::Sale))
            .then_error(CallError::NotFound);
    }

    #[test]
    fn each_report_is_analyzed_once_and_only_while_it_is_the_latest() {
        use crate::analytics::CallAnalysis;
        let report = CallReport {
            duration_seconds: Some(42.0),
            messages: vec![TranscriptMessage {
                role: "user".into(),
                message: "Sounds great".into(),
                time: None,
                end_time: None,
                duration: None,
                seconds_from_start: None,
            }],
            ..CallReport::default()
        };
        let ended = CallEvent::CallEnded {
            parties: CallParties::default(),
            report: Box::new(report.clone()),
            at: at("30"),
        };
        let analyze = |number| CallCommand::Analyze {
            report: number,
            ended_at: at("30"),
            content: Box::new(report.clone()),
            checklist: None,
            now: at("31"),
        };
        let analyzed = CallEvent::CallAnalyzed {
            parties: CallParties::default(),
            report: 1,
            ended_at: at("30"),
            analysis: Box::new(CallAnalysis::of(&report, None)),
            at: at("31"),
        };
        let call = given::<Call>([ended.clone()]).when(analyze(1)).then([analyzed.clone()]);
        assert!(call.analyzed_report == 1 && call.reports == 1);
        match &analyzed {
            CallEvent::CallAnalyzed { analysis, .. } => {
                assert!(analysis.prospect_spoke);
                assert_eq!(analysis.duration_seconds, Some(42.0));
            }
            _ => unreachable!(),
        }
        given::<Call>([ended.clone(), analyzed]).when(analyze(1)).then_nothing();
        // A second report arrived before the first was scored: only the second is.
        given::<Call>([ended.clone(), ended]).when(analyze(1)).then_nothing();
    }

    #[test]
    fn a_late_status_never_moves_a_call_backwards() {
        let ended = CallEvent::CallEnded {
            parties: CallParties::default(),
            report: Box::default(),
            at: at("30"),
        };
        let call = Call::fold(&[status("ringing"), ended, status("in-progress")]);
        assert_eq!(call.status, Some(CallStatus::Ended));
        let call = Call::fold(&[status("in-progress"), status("ringing")]);
        assert_eq!(call.status, Some(CallStatus::InProgress));
    }

    #[test]
    fn outcomes_are_validated_and_not_repeated() {
        let record = |o: &str| -> Result<CallCommand, CallError> {
            Ok(CallCommand::RecordOutcome {
                outcome: o.parse()?,
                notes: None,
                source: "api".into(),
                now: at("01"),
            })
        };
        assert!(matches!(record("won-the-lottery"), Err(CallError::Invalid { .. })));
        let call = given::<Call>([status("ended")])
            .when(record("qualified").unwrap())
            .state_after();
        let call = given_state(call).when(record("qualified").unwrap()).then_nothing();
        assert_eq!(given_state(call).when(record("sale").unwrap()).events().len(), 1);
        given::<Call>([])
            .when(record("qualified").unwrap())
            .then_error(CallError::NotFound);
    }

    #[test]
    fn analysis_maps_to_outcomes_by_rule() {
        let report = |data: serde_json::Value, evaluation: &str| CallReport {
            structured_data: Some(data),
            success_evaluation: Some(evaluation.into()),
            ..CallReport::default()
        };
        let default = OutcomeRule::default();
        assert_eq!(
            default.outcome_of(&report(serde_json::json!({"outcome": "Appointment"}), "true")),
            Some(Outcome::Appointment)
        );
        assert_eq!(
            default.outcome_of(&report(serde_json::json!({"outcome": "maybe"}), "true")),
            None
        );
        let rule = OutcomeRule {
            structured_data_field: None,
            on_success: Some(Outcome::Qualified),
            on_failure: Some(Outcome::NotInterested),
            success_threshold: Some(8.0),
        };
        assert_eq!(
            rule.outcome_of(&report(serde_json::json!({}), "pass")),
            Some(Outcome::Qualified)
        );
        assert_eq!(
            rule.outcome_of(&report(serde_json::json!({}), "9")),
            Some(Outcome::Qualified)
        );
        assert_eq!(
            rule.outcome_of(&report(serde_json::json!({}), "7")),
            Some(Outcome::NotInterested)
        );
        assert_eq!(rule.outcome_of(&report(serde_json::json!({}), "unclear")), None);
        assert!(serde_json::from_value::<OutcomeRule>(serde_json::json!({"onSuccess": "rich"})).is_err());
    }

    #[test]
    fn technical_failures_are_told_apart() {
        let failed = |raw: &str| EndedReason::parse(raw).is_technical_failure();
        assert!(failed("pipeline-error-openai-llm-failed"));
        assert!(failed("call.start.error-get-assistant"));
        assert!(failed("twilio-failed-to-connect-call"));
        assert!(!failed("customer-ended-call"));
        assert!(!failed("customer-busy"));
    }

    #[test]
    fn provider_values_round_trip_known_or_not() {
        assert_eq!(EndedReason::parse("customer-busy"), EndedReason::CustomerBusy);
        let unknown = EndedReason::parse("pipeline-error-openai-llm-failed");
        assert_eq!(unknown, EndedReason::Other("pipeline-error-openai-llm-failed".into()));
        assert_eq!(
            serde_json::to_value(&unknown).unwrap(),
            "pipeline-error-openai-llm-failed"
        );
        assert_eq!(CallStatus::parse("in-progress"), CallStatus::InProgress);
        assert_eq!(serde_json::to_value(CallStatus::InProgress).unwrap(), "in-progress");
        assert_eq!(CallStatus::parse("teleporting").as_str(), "teleporting");
        assert_eq!("not_interested".parse::<Outcome>(), Ok(Outcome::NotInterested));
        assert_eq!(
            serde_json::to_value(Outcome::CallbackRequested).unwrap(),
            "callback_requested"
        );
    }
}
