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

/// Vapi's call statuses, in the only order a call moves through them.
pub const STATUSES: &[&str] = &["scheduled", "queued", "ringing", "in-progress", "forwarding", "ended"];

/// Position of a status in the lifecycle; unknown statuses never move a call.
pub fn status_rank(status: &str) -> i32 {
    STATUSES.iter().position(|s| *s == status).map_or(-1, |p| p as i32)
}

/// Outcomes a call can be marked with (by analysis, a tool, or a person).
pub const OUTCOMES: &[&str] = &[
    "qualified",
    "appointment",
    "sale",
    "not_interested",
    "callback_requested",
    "voicemail",
    "no_answer",
    "failed",
];

/// `endedReason` values that mean a technical failure rather than a conversation ending.
pub fn is_technical_failure(ended_reason: &str) -> bool {
    ended_reason.starts_with("pipeline-error")
        || ended_reason.starts_with("call.start.error")
        || ended_reason.contains("failed-to-connect")
        || ended_reason == "assistant-request-failed"
        || ended_reason.starts_with("assistant-error")
}

/// How an agent's end-of-call analysis maps to an outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeRule {
    /// A `structuredData` field holding one of the outcomes (e.g. `outcome`).
    #[serde(default)]
    pub structured_data_field: Option<String>,
    /// Outcome when `successEvaluation` passes (true/pass/yes, or a score at or above the threshold).
    #[serde(default)]
    pub on_success: Option<String>,
    /// Outcome when it fails.
    #[serde(default)]
    pub on_failure: Option<String>,
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
    pub fn validate(&self) -> Result<(), String> {
        for outcome in [&self.on_success, &self.on_failure].into_iter().flatten() {
            if !OUTCOMES.contains(&outcome.as_str()) {
                return Err(format!("{outcome:?} is not one of {}", OUTCOMES.join(", ")));
            }
        }
        Ok(())
    }

    /// The outcome the analysis of `report` implies, if any.
    pub fn outcome_of(&self, report: &CallReport) -> Option<String> {
        let from_data = self
            .structured_data_field
            .as_ref()
            .and_then(|field| {
                report
                    .structured_data
                    .as_ref()?
                    .get(field)?
                    .as_str()
                    .map(str::to_lowercase)
            })
            .filter(|o| OUTCOMES.contains(&o.as_str()));
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
            self.on_success.clone()
        } else {
            self.on_failure.clone()
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_from_start: Option<f64>,
}

/// What Vapi reports when a call is over.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallReport {
    pub ended_reason: Option<String>,
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

/// Who a call is with and through what, as far as known.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallParties {
    pub vapi_call_id: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    pub agent_id: Option<Uuid>,
    pub phone_number_id: Option<Uuid>,
    pub customer_number: Option<String>,
}

domain_events! {
    pub enum CallEvent in "call" {
        /// A user asked for an outbound call. Payload: organizationId, parties {vapiCallId, direction, agentId,
        /// phoneNumberId, customerNumber}, requestedBy, requestedAt.
        #[version(1)]
        CallRequested {
            organization_id: Uuid,
            parties: CallParties,
            requested_by: Uuid,
            requested_at: DateTime<Utc>,
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
            status: String,
            ended_reason: Option<String>,
            at: DateTime<Utc>,
        },
        /// Vapi's end-of-call report. Payload: parties, report {endedReason, startedAt, endedAt,
        /// durationSeconds, cost, transcript, messages[{role, message, time, secondsFromStart}], recordingUrl,
        /// stereoRecordingUrl, summary, structuredData, successEvaluation}, at.
        #[version(1)]
        CallEnded {
            parties: CallParties,
            report: Box<CallReport>,
            at: DateTime<Utc>,
        },
        /// The call's outcome was set (qualified, appointment, sale, not_interested, callback_requested,
        /// voicemail, no_answer, failed). Payload: outcome, notes, source (api, tool, analysis), at.
        #[version(1)]
        CallOutcomeRecorded {
            outcome: String,
            notes: Option<String>,
            source: String,
            at: DateTime<Utc>,
        },
    }
}

domain_events! {
    pub enum UnmatchedVapiMessageEvent in "unmatched-vapi-call" {
        /// A Vapi server message for a call no organization could be matched to; kept, not dropped. Stored
        /// under the nil organization. Payload: messageType, vapiCallId, assistantId, phoneNumberId.
        #[version(1)]
        VapiMessageUnmatched {
            message_type: String,
            vapi_call_id: String,
            assistant_id: Option<String>,
            phone_number_id: Option<String>,
        },
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallCommand {
    Request {
        organization_id: Uuid,
        parties: CallParties,
        requested_by: Uuid,
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
        status: String,
        ended_reason: Option<String>,
        at: DateTime<Utc>,
    },
    RecordEnd {
        parties: CallParties,
        report: Box<CallReport>,
        at: DateTime<Utc>,
    },
    RecordOutcome {
        outcome: String,
        notes: Option<String>,
        source: String,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Call {
    pub known: bool,
    pub status: Option<String>,
    pub ended: bool,
    pub outcome: Option<String>,
    pub parties: CallParties,
    /// The latest placement attempt and when it began: it may have reached
    /// Vapi, so a later attempt looks it up before dialling again.
    pub placement_attempt: Option<(Uuid, DateTime<Utc>)>,
}

impl Call {
    /// Still waiting to be dialled (requested, neither placed nor failed).
    pub fn awaits_placement(&self) -> bool {
        self.parties.vapi_call_id.is_none() && !self.ended && self.status.as_deref() == Some("requested")
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
    type Event = CallEvent;
    type Error = CallError;
    const STREAM_TYPE: &'static str = "call";

    fn decide(command: &CallCommand, state: &Self) -> Result<Vec<CallEvent>, CallError> {
        Ok(match command {
            CallCommand::Request {
                organization_id,
                parties,
                requested_by,
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
                if !OUTCOMES.contains(&outcome.as_str()) {
                    return Err(CallError::Invalid {
                        field: "outcome",
                        reason: format!("must be one of {}", OUTCOMES.join(", ")),
                    });
                }
                if state.outcome.as_deref() == Some(outcome.as_str()) {
                    return Ok(vec![]);
                }
                vec![CallEvent::CallOutcomeRecorded {
                    outcome: outcome.clone(),
                    notes: notes.clone(),
                    source: source.clone(),
                    at: *now,
                }]
            }
        })
    }

    fn evolve(mut self, event: &CallEvent) -> Self {
        self.known = true;
        match event {
            CallEvent::CallRequested { parties, .. } => {
                self.parties.merge(parties);
                self.status = Some("requested".into());
            }
            CallEvent::CallPlacementStarted { attempt, at } => {
                self.placement_attempt = Some((*attempt, *at));
            }
            CallEvent::CallPlacedWithVapi { vapi_call_id, .. } => {
                self.parties.vapi_call_id = Some(vapi_call_id.clone());
                if matches!(self.status.as_deref(), None | Some("requested")) {
                    self.status = Some("queued".into());
                }
            }
            CallEvent::CallPlacementFailed { .. } => {
                self.status = Some("failed".into());
                self.ended = true;
            }
            CallEvent::CallStatusUpdated { parties, status, .. } => {
                self.parties.merge(parties);
                let current = self.status.as_deref().map_or(-1, status_rank);
                if !self.ended && status_rank(status) > current {
                    self.status = Some(status.clone());
                    self.ended = status == "ended";
                }
            }
            CallEvent::CallEnded { parties, .. } => {
                self.parties.merge(parties);
                self.status = Some("ended".into());
                self.ended = true;
            }
            CallEvent::CallOutcomeRecorded { outcome, .. } => self.outcome = Some(outcome.clone()),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        format!("2026-11-24T12:00:{s}Z").parse().unwrap()
    }

    fn status(s: &str) -> CallEvent {
        CallEvent::CallStatusUpdated {
            parties: CallParties::default(),
            status: s.into(),
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
        };
        let call = Call::fold(&[requested]);
        assert!(call.awaits_placement());
        let start = |attempt, previous, call: &Call| {
            Call::decide(
                &CallCommand::StartPlacement {
                    attempt,
                    previous,
                    now: at("01"),
                },
                call,
            )
        };
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        let call = start(first, None, &call).unwrap().iter().fold(call, Call::evolve);
        // A worker that read the call before the first attempt was recorded loses.
        assert_eq!(start(second, None, &call), Err(CallError::PlacementInProgress));
        // One that found the first attempt and checked Vapi has no such call may try again.
        let call = start(second, Some(first), &call)
            .unwrap()
            .iter()
            .fold(call, Call::evolve);
        let placed = Call::decide(
            &CallCommand::RecordPlaced {
                vapi_call_id: "call_1".into(),
                now: at("02"),
            },
            &call,
        )
        .unwrap();
        let call = placed.iter().fold(call, Call::evolve);
        assert!(!call.awaits_placement());
        assert_eq!(
            start(Uuid::new_v4(), Some(second), &call),
            Err(CallError::PlacementInProgress)
        );
    }

    #[test]
    fn a_late_status_never_moves_a_call_backwards() {
        let ended = CallEvent::CallEnded {
            parties: CallParties::default(),
            report: Box::default(),
            at: at("30"),
        };
        let call = Call::fold(&[status("ringing"), ended, status("in-progress")]);
        assert_eq!(call.status.as_deref(), Some("ended"));
        let call = Call::fold(&[status("in-progress"), status("ringing")]);
        assert_eq!(call.status.as_deref(), Some("in-progress"));
    }

    #[test]
    fn outcomes_are_validated_and_not_repeated() {
        let call = Call::fold(&[status("ended")]);
        let record = |o: &str, c: &Call| {
            Call::decide(
                &CallCommand::RecordOutcome {
                    outcome: o.into(),
                    notes: None,
                    source: "api".into(),
                    now: at("01"),
                },
                c,
            )
        };
        assert!(matches!(
            record("won-the-lottery", &call),
            Err(CallError::Invalid { .. })
        ));
        let events = record("qualified", &call).unwrap();
        let call = events.iter().fold(call, Call::evolve);
        assert!(record("qualified", &call).unwrap().is_empty());
        assert_eq!(record("sale", &call).unwrap().len(), 1);
        assert_eq!(record("qualified", &Call::default()), Err(CallError::NotFound));
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
            default
                .outcome_of(&report(serde_json::json!({"outcome": "Appointment"}), "true"))
                .as_deref(),
            Some("appointment")
        );
        assert_eq!(
            default.outcome_of(&report(serde_json::json!({"outcome": "maybe"}), "true")),
            None
        );
        let rule = OutcomeRule {
            structured_data_field: None,
            on_success: Some("qualified".into()),
            on_failure: Some("not_interested".into()),
            success_threshold: Some(8.0),
        };
        assert_eq!(
            rule.outcome_of(&report(serde_json::json!({}), "pass")).as_deref(),
            Some("qualified")
        );
        assert_eq!(
            rule.outcome_of(&report(serde_json::json!({}), "9")).as_deref(),
            Some("qualified")
        );
        assert_eq!(
            rule.outcome_of(&report(serde_json::json!({}), "7")).as_deref(),
            Some("not_interested")
        );
        assert_eq!(rule.outcome_of(&report(serde_json::json!({}), "unclear")), None);
        assert!(OutcomeRule {
            on_success: Some("rich".into()),
            ..OutcomeRule::default()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn technical_failures_are_told_apart() {
        assert!(is_technical_failure("pipeline-error-openai-llm-failed"));
        assert!(is_technical_failure("call.start.error-get-assistant"));
        assert!(is_technical_failure("twilio-failed-to-connect-call"));
        assert!(!is_technical_failure("customer-ended-call"));
        assert!(!is_technical_failure("customer-busy"));
    }
}
