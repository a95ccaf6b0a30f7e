//! Campaign contacts: their statuses, what one attempt's result means, the
//! retry rules and caps, and the contact aggregate (one stream per contact,
//! so two schedulers can never record two dials of one contact).

use super::caller_id::CallerId;
use super::settings::RetryRules;
use super::window::MAX_ATTEMPTS_PER_24H;
use crate::ab_testing::SuccessOutcome;
use crate::aggregate::Aggregate;
use crate::calls::{CallReport, EndedReason, Outcome};
use crate::domain_events;
use crate::phone::PhoneNumber;
use crate::time_zone::TimeZone;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ContactStatus {
    /// Waiting for its first or next attempt.
    Pending,
    /// An attempt is in flight.
    Calling,
    Completed,
    Failed,
    /// On the do-not-call list: never dialled.
    Dnc,
}

impl ContactStatus {
    pub const ALL: [ContactStatus; 5] = [
        ContactStatus::Pending,
        ContactStatus::Calling,
        ContactStatus::Completed,
        ContactStatus::Failed,
        ContactStatus::Dnc,
    ];

    /// Completed, failed and dnc contacts take no more calls.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ContactStatus::Completed | ContactStatus::Failed | ContactStatus::Dnc
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContactStatus::Pending => "pending",
            ContactStatus::Calling => "calling",
            ContactStatus::Completed => "completed",
            ContactStatus::Failed => "failed",
            ContactStatus::Dnc => "dnc",
        }
    }
}

/// How one attempt went (SPEC's CampaignCall `result`). Voicemail is not a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    Connected,
    Busy,
    NoAnswer,
    Voicemail,
    Failed,
}

impl AttemptResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Connected => "connected",
            AttemptResult::Busy => "busy",
            AttemptResult::NoAnswer => "no_answer",
            AttemptResult::Voicemail => "voicemail",
            AttemptResult::Failed => "failed",
        }
    }

    /// The result Vapi's `endedReason` means. A conversation that ended
    /// (either side hung up, an end-call phrase, a forward, silence or the
    /// duration limit) is connected; technical errors and values we do not
    /// know are failures.
    pub fn from_ended_reason(reason: &EndedReason) -> Self {
        match reason {
            EndedReason::CustomerBusy => AttemptResult::Busy,
            EndedReason::CustomerDidNotAnswer => AttemptResult::NoAnswer,
            EndedReason::Voicemail => AttemptResult::Voicemail,
            EndedReason::CustomerEndedCall
            | EndedReason::AssistantEndedCall
            | EndedReason::AssistantSaidEndCallPhrase
            | EndedReason::AssistantForwardedCall
            | EndedReason::SilenceTimedOut
            | EndedReason::ExceededMaxDuration => AttemptResult::Connected,
            EndedReason::ManuallyCanceled
            | EndedReason::TwilioFailedToConnectCall
            | EndedReason::AssistantRequestFailed
            | EndedReason::PlacementFailed
            | EndedReason::Other(_) => AttemptResult::Failed,
        }
    }
}

/// Whether the person asked not to be called again during the call: the
/// analysis' `structuredData.optOut` is true, or its outcome is `do_not_call`.
/// (The `add_to_dnc` tool lists the number directly.)
pub fn opted_out(report: &CallReport) -> bool {
    let Some(data) = report.structured_data.as_ref() else {
        return false;
    };
    let flag = match data.get("optOut") {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let outcome = data
        .get("outcome")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|o| o.eq_ignore_ascii_case("do_not_call"));
    flag || outcome
}

/// One contact as a CSV row became it: what a read model and the runner need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportedContact {
    pub contact_id: Uuid,
    pub phone: PhoneNumber,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    /// An explicit IANA zone from the file: wins over the area code.
    #[serde(default)]
    pub timezone: Option<TimeZone>,
    #[serde(default)]
    pub custom_data: BTreeMap<String, String>,
    #[serde(default)]
    pub priority: i32,
    /// `pending`, or `dnc` when the DNC scrub at import found the number.
    pub status: ContactStatus,
}

/// What the retry rules need to know about a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptPolicy {
    pub max_retries: u32,
    pub retry_rules: RetryRules,
    /// The general cap (3) or a stricter state's.
    pub max_attempts_per_24h: u32,
    pub success_outcome: SuccessOutcome,
}

impl AttemptPolicy {
    pub fn max_attempts(&self) -> u32 {
        self.max_retries + 1
    }
}

/// What happens to a contact after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextStep {
    pub status: ContactStatus,
    /// When the next attempt is due (pending contacts only).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The earliest instant from which one more attempt keeps within `cap`
/// attempts in any 24 hours, given the earlier attempts' times.
pub fn earliest_within_daily_cap(attempt_times: &[DateTime<Utc>], cap: u32, from: DateTime<Utc>) -> DateTime<Utc> {
    let cap = cap.max(1) as usize;
    let mut times = attempt_times.to_vec();
    times.sort();
    if times.len() < cap {
        return from;
    }
    // The cap-th most recent attempt must have left the 24 hours.
    let blocking = times[times.len() - cap];
    from.max(blocking + Duration::hours(24))
}

/// The retry rules: after an attempt with `result` (and the person's opt-out),
/// given every attempt's time including this one and the failures so far
/// including this one, the contact's next status and attempt time.
pub fn next_after_attempt(
    result: AttemptResult,
    opted_out: bool,
    attempt_times: &[DateTime<Utc>],
    failures: u32,
    policy: &AttemptPolicy,
    now: DateTime<Utc>,
) -> NextStep {
    let done = |status| NextStep {
        status,
        next_attempt_at: None,
    };
    if opted_out {
        return done(ContactStatus::Dnc);
    }
    let delay = match result {
        AttemptResult::Connected | AttemptResult::Voicemail => return done(ContactStatus::Completed),
        AttemptResult::Busy => Duration::minutes(policy.retry_rules.busy_minutes.into()),
        AttemptResult::NoAnswer => Duration::minutes(policy.retry_rules.no_answer_minutes.into()),
        AttemptResult::Failed => policy.retry_rules.failed_delay(failures),
    };
    if attempt_times.len() as u64 >= u64::from(policy.max_attempts()) {
        return done(ContactStatus::Failed);
    }
    let cap = policy.max_attempts_per_24h.min(MAX_ATTEMPTS_PER_24H);
    NextStep {
        status: ContactStatus::Pending,
        next_attempt_at: Some(earliest_within_daily_cap(attempt_times, cap, now + delay)),
    }
}

/// Why a recorded dial was withdrawn before its call was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawReason {
    /// The campaign was paused, cancelled or completed after the dial was recorded.
    CampaignNotRunning,
    /// The number was put on the DNC list after the dial was recorded.
    Dnc,
}

/// Why a contact was closed without a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The number is on the organization's DNC list.
    Dnc,
    /// It had all the attempts it may have.
    AttemptsExhausted,
    /// The campaign's schedule ended before its window opened again.
    ScheduleEnded,
    /// Its zones' windows never overlap (e.g. a contradictory explicit zone).
    NoCallingWindow,
}

domain_events! {
    /// Attempts on one campaign contact. Stream `campaign-contact-<contact id>`.
    pub enum CampaignContactEvent for CampaignContact in "campaign-contact" {
        /// The runner dialled the contact (recorded before the call is placed, so a second scheduler cannot dial
        /// it too). Payload: campaignId, contactId, agentId (who talks), phone (E.164), attemptNumber (1-based),
        /// callId (our call), callerId {phoneNumberId, number}, at.
        #[version(1)]
        CampaignContactDialed {
            #[serde(flatten)]
            dial: ContactDial,
            at: DateTime<Utc>,
        },
        /// An attempt ended. Payload: campaignId, contactId, attemptNumber, callId, result (connected, busy,
        /// no_answer, voicemail, failed), outcome (the call's, if any; voicemail for voicemail), optedOut,
        /// successful (the outcome met the campaign's success outcome), status (the contact's status after it:
        /// pending, completed, failed, dnc), nextAttemptAt (pending only), at.
        #[version(1)]
        CampaignAttemptFinished {
            campaign_id: Uuid,
            contact_id: Uuid,
            attempt_number: u32,
            call_id: Uuid,
            result: AttemptResult,
            outcome: Option<Outcome>,
            opted_out: bool,
            successful: bool,
            status: ContactStatus,
            next_attempt_at: Option<DateTime<Utc>>,
            at: DateTime<Utc>,
        },
        /// A connected attempt's outcome was set after the call ended (through the API). Payload: campaignId,
        /// contactId, callId, outcome, successful (it meets the campaign's success outcome), wasSuccessful
        /// (the attempt counted as successful before), at.
        #[version(1)]
        CampaignAttemptOutcomeChanged {
            campaign_id: Uuid,
            contact_id: Uuid,
            call_id: Uuid,
            outcome: Outcome,
            successful: bool,
            was_successful: bool,
            at: DateTime<Utc>,
        },
        /// The contact may not be called before `until` (its window is closed now, or its daily cap is
        /// reached), so the runner does not pick it again meanwhile. Payload: campaignId, contactId, until, at.
        #[version(1)]
        CampaignContactDeferred {
            campaign_id: Uuid,
            contact_id: Uuid,
            until: DateTime<Utc>,
            at: DateTime<Utc>,
        },
        /// A recorded dial was withdrawn before its call was requested: the campaign stopped running or the
        /// number was listed meanwhile. The attempt does not count. Payload: campaignId, contactId, callId,
        /// attemptNumber (the withdrawn one), reason (campaign_not_running, dnc), status (pending, or dnc),
        /// lastAttemptAt (the attempt before it, if any), at.
        #[version(1)]
        CampaignDialWithdrawn {
            campaign_id: Uuid,
            contact_id: Uuid,
            call_id: Uuid,
            attempt_number: u32,
            reason: WithdrawReason,
            status: ContactStatus,
            last_attempt_at: Option<DateTime<Utc>>,
            at: DateTime<Utc>,
        },
        /// The contact was closed without a call at dial time. Payload: campaignId, contactId, status (dnc or
        /// failed), reason (dnc, attempts_exhausted, schedule_ended), at.
        #[version(1)]
        CampaignContactClosed {
            campaign_id: Uuid,
            contact_id: Uuid,
            status: ContactStatus,
            reason: CloseReason,
            at: DateTime<Utc>,
        },
    }
}

/// One dial of a contact: the attempt, who talks, to whom and from which
/// number (what `RecordDial` asks for, flattened into `CampaignContactDialed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactDial {
    pub campaign_id: Uuid,
    pub contact_id: Uuid,
    pub agent_id: Uuid,
    /// E.164.
    pub phone: PhoneNumber,
    /// 1-based.
    pub attempt_number: u32,
    /// Our call.
    pub call_id: Uuid,
    pub caller_id: CallerId,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ContactError {
    /// The contact is calling or terminal: 409 `campaign_contact_not_dialable`.
    #[error("the contact is {status:?} and cannot be dialled")]
    NotDialable { status: ContactStatus },
    /// Another scheduler recorded this attempt first.
    #[error("attempt {expected} is the next one, not {requested}")]
    StaleAttempt { expected: u32, requested: u32 },
    #[error("call {0} is not this contact's attempt in flight")]
    UnknownCall(Uuid),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContactCommand {
    /// Records a dial decided by [`super::dial::decide_dial`].
    RecordDial { dial: ContactDial, now: DateTime<Utc> },
    /// Records how the attempt `call_id` ended.
    FinishAttempt {
        call_id: Uuid,
        result: AttemptResult,
        outcome: Option<Outcome>,
        opted_out: bool,
        policy: AttemptPolicy,
        now: DateTime<Utc>,
    },
    /// A finished, connected attempt's call got its outcome later (a person set it).
    RecordOutcome {
        call_id: Uuid,
        outcome: Outcome,
        success_outcome: SuccessOutcome,
        now: DateTime<Utc>,
    },
    /// Withdraws the dial `call_id`, whose call was not requested yet.
    WithdrawDial {
        call_id: Uuid,
        reason: WithdrawReason,
        now: DateTime<Utc>,
    },
    /// Puts off a pending contact the dial decision found outside its window or caps.
    Defer {
        campaign_id: Uuid,
        contact_id: Uuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// Closes a pending contact the dial decision skipped for good.
    Close {
        campaign_id: Uuid,
        contact_id: Uuid,
        reason: CloseReason,
        now: DateTime<Utc>,
    },
}

/// One attempt on a contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub number: u32,
    pub call_id: Uuid,
    /// Who talked, to whom, from which number.
    pub agent_id: Uuid,
    pub phone: PhoneNumber,
    pub caller_id: CallerId,
    pub at: DateTime<Utc>,
    pub end: AttemptEnd,
}

impl Attempt {
    /// The attempt a dial starts (`None` for any other event).
    pub fn dialed(event: &CampaignContactEvent) -> Option<Self> {
        let CampaignContactEvent::CampaignContactDialed { dial, at } = event else {
            return None;
        };
        Some(Self {
            number: dial.attempt_number,
            call_id: dial.call_id,
            agent_id: dial.agent_id,
            phone: dial.phone.clone(),
            caller_id: dial.caller_id.clone(),
            at: *at,
            end: AttemptEnd::default(),
        })
    }
}

/// How an attempt went, as its call's events tell: empty while the call is in
/// flight. The contact aggregate and the attempts read model both keep it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptEnd {
    pub result: Option<AttemptResult>,
    pub outcome: Option<Outcome>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl AttemptEnd {
    /// Records an event of the attempt's call: its end, or an outcome set afterwards.
    pub fn evolve(&mut self, event: &CampaignContactEvent) {
        match event {
            CampaignContactEvent::CampaignAttemptFinished {
                result, outcome, at, ..
            } => {
                self.result = Some(*result);
                self.outcome = *outcome;
                self.finished_at = Some(*at);
            }
            CampaignContactEvent::CampaignAttemptOutcomeChanged { outcome, .. } => self.outcome = Some(*outcome),
            _ => {}
        }
    }
}

impl CampaignContactEvent {
    /// The campaign the contact is called for.
    pub fn campaign_id(&self) -> Uuid {
        match self {
            CampaignContactEvent::CampaignContactDialed { dial, .. } => dial.campaign_id,
            CampaignContactEvent::CampaignAttemptFinished { campaign_id, .. }
            | CampaignContactEvent::CampaignAttemptOutcomeChanged { campaign_id, .. }
            | CampaignContactEvent::CampaignContactDeferred { campaign_id, .. }
            | CampaignContactEvent::CampaignDialWithdrawn { campaign_id, .. }
            | CampaignContactEvent::CampaignContactClosed { campaign_id, .. } => *campaign_id,
        }
    }

    /// The call of the attempt the event is about, if it is about one.
    pub fn call_id(&self) -> Option<Uuid> {
        match self {
            CampaignContactEvent::CampaignContactDialed { dial, .. } => Some(dial.call_id),
            CampaignContactEvent::CampaignAttemptFinished { call_id, .. }
            | CampaignContactEvent::CampaignAttemptOutcomeChanged { call_id, .. }
            | CampaignContactEvent::CampaignDialWithdrawn { call_id, .. } => Some(*call_id),
            CampaignContactEvent::CampaignContactDeferred { .. }
            | CampaignContactEvent::CampaignContactClosed { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CampaignContact {
    pub campaign_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub status: ContactStatus,
    pub attempts: Vec<Attempt>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
}

impl Default for CampaignContact {
    /// A contact no attempt was recorded for: pending.
    fn default() -> Self {
        Self {
            campaign_id: None,
            contact_id: None,
            status: ContactStatus::Pending,
            attempts: vec![],
            next_attempt_at: None,
            outcome: None,
        }
    }
}

impl CampaignContact {
    pub fn attempt_count(&self) -> u32 {
        self.attempts.len() as u32
    }

    pub fn attempt_times(&self) -> Vec<DateTime<Utc>> {
        self.attempts.iter().map(|a| a.at).collect()
    }

    pub fn in_flight(&self) -> Option<&Attempt> {
        self.attempts.last().filter(|a| a.end.result.is_none())
    }

    fn failures(&self) -> u32 {
        self.attempts
            .iter()
            .filter(|a| a.end.result == Some(AttemptResult::Failed))
            .count() as u32
    }
}

impl Aggregate for CampaignContact {
    type Command = ContactCommand;
    type Error = ContactError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        Ok(match command {
            ContactCommand::RecordDial { dial, now } => {
                // The same dial recorded again (a retried append): nothing new.
                if state.attempts.iter().any(|a| a.call_id == dial.call_id) {
                    return Ok(vec![]);
                }
                if state.status != ContactStatus::Pending {
                    return Err(ContactError::NotDialable { status: state.status });
                }
                let expected = state.attempt_count() + 1;
                if dial.attempt_number != expected {
                    return Err(ContactError::StaleAttempt {
                        expected,
                        requested: dial.attempt_number,
                    });
                }
                vec![CampaignContactEvent::CampaignContactDialed {
                    dial: dial.clone(),
                    at: *now,
                }]
            }
            ContactCommand::FinishAttempt {
                call_id,
                result,
                outcome,
                opted_out,
                policy,
                now,
            } => {
                let Some(attempt) = state.attempts.iter().find(|a| a.call_id == *call_id) else {
                    return Err(ContactError::UnknownCall(*call_id));
                };
                if attempt.end.result.is_some() {
                    return Ok(vec![]); // reported twice
                }
                let failures = state.failures() + u32::from(*result == AttemptResult::Failed);
                let next = next_after_attempt(*result, *opted_out, &state.attempt_times(), failures, policy, *now);
                let outcome = match result {
                    AttemptResult::Voicemail => Some(Outcome::Voicemail),
                    _ => *outcome,
                };
                vec![CampaignContactEvent::CampaignAttemptFinished {
                    campaign_id: state.campaign_id.unwrap_or_default(),
                    contact_id: state.contact_id.unwrap_or_default(),
                    attempt_number: attempt.number,
                    call_id: *call_id,
                    result: *result,
                    outcome,
                    opted_out: *opted_out,
                    successful: *result == AttemptResult::Connected
                        && outcome.is_some_and(|o| policy.success_outcome.is_met_by(o)),
                    status: next.status,
                    next_attempt_at: next.next_attempt_at,
                    at: *now,
                }]
            }
            ContactCommand::RecordOutcome {
                call_id,
                outcome,
                success_outcome,
                now,
            } => {
                let Some(attempt) = state.attempts.iter().find(|a| a.call_id == *call_id) else {
                    return Err(ContactError::UnknownCall(*call_id));
                };
                // Only a conversation has an outcome to change, and only a new one is news.
                if attempt.end.result != Some(AttemptResult::Connected) || attempt.end.outcome == Some(*outcome) {
                    return Ok(vec![]);
                }
                vec![CampaignContactEvent::CampaignAttemptOutcomeChanged {
                    campaign_id: state.campaign_id.unwrap_or_default(),
                    contact_id: state.contact_id.unwrap_or_default(),
                    call_id: *call_id,
                    outcome: *outcome,
                    successful: success_outcome.is_met_by(*outcome),
                    was_successful: attempt.end.outcome.is_some_and(|o| success_outcome.is_met_by(o)),
                    at: *now,
                }]
            }
            ContactCommand::WithdrawDial { call_id, reason, now } => {
                let Some(attempt) = state.attempts.iter().find(|a| a.call_id == *call_id) else {
                    // Withdrawn already (a retry).
                    return Ok(vec![]);
                };
                if attempt.end.result.is_some() {
                    return Err(ContactError::UnknownCall(*call_id));
                }
                let status = match reason {
                    WithdrawReason::CampaignNotRunning => ContactStatus::Pending,
                    WithdrawReason::Dnc => ContactStatus::Dnc,
                };
                let before = state.attempts.len().saturating_sub(2);
                vec![CampaignContactEvent::CampaignDialWithdrawn {
                    campaign_id: state.campaign_id.unwrap_or_default(),
                    contact_id: state.contact_id.unwrap_or_default(),
                    call_id: *call_id,
                    attempt_number: attempt.number,
                    reason: *reason,
                    status,
                    last_attempt_at: (state.attempts.len() > 1).then(|| state.attempts[before].at),
                    at: *now,
                }]
            }
            ContactCommand::Defer {
                campaign_id,
                contact_id,
                until,
                now,
            } => {
                if state.status != ContactStatus::Pending || state.next_attempt_at == Some(*until) {
                    return Ok(vec![]);
                }
                vec![CampaignContactEvent::CampaignContactDeferred {
                    campaign_id: *campaign_id,
                    contact_id: *contact_id,
                    until: *until,
                    at: *now,
                }]
            }
            ContactCommand::Close {
                campaign_id,
                contact_id,
                reason,
                now,
            } => {
                if state.status.is_terminal() {
                    return Ok(vec![]);
                }
                if state.status == ContactStatus::Calling {
                    return Err(ContactError::NotDialable { status: state.status });
                }
                let status = match reason {
                    CloseReason::Dnc => ContactStatus::Dnc,
                    CloseReason::AttemptsExhausted | CloseReason::ScheduleEnded | CloseReason::NoCallingWindow => {
                        ContactStatus::Failed
                    }
                };
                vec![CampaignContactEvent::CampaignContactClosed {
                    campaign_id: *campaign_id,
                    contact_id: *contact_id,
                    status,
                    reason: *reason,
                    at: *now,
                }]
            }
        })
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        if let Some(attempt) = Attempt::dialed(event) {
            self.attempts.push(attempt);
        } else if let Some(attempt) = event
            .call_id()
            .and_then(|call_id| self.attempts.iter_mut().find(|a| a.call_id == call_id))
        {
            attempt.end.evolve(event);
        }
        match event {
            CampaignContactEvent::CampaignContactDialed { dial, .. } => {
                self.campaign_id = Some(dial.campaign_id);
                self.contact_id = Some(dial.contact_id);
                self.status = ContactStatus::Calling;
                self.next_attempt_at = None;
            }
            CampaignContactEvent::CampaignAttemptFinished {
                outcome,
                status,
                next_attempt_at,
                ..
            } => {
                self.status = *status;
                self.next_attempt_at = *next_attempt_at;
                if outcome.is_some() {
                    self.outcome = *outcome;
                }
            }
            CampaignContactEvent::CampaignAttemptOutcomeChanged { outcome, .. } => self.outcome = Some(*outcome),
            CampaignContactEvent::CampaignContactDeferred {
                campaign_id,
                contact_id,
                until,
                ..
            } => {
                self.campaign_id = Some(*campaign_id);
                self.contact_id = Some(*contact_id);
                self.next_attempt_at = Some(*until);
            }
            CampaignContactEvent::CampaignDialWithdrawn {
                call_id, status, at, ..
            } => {
                self.attempts.retain(|a| a.call_id != *call_id);
                self.status = *status;
                self.next_attempt_at = (*status == ContactStatus::Pending).then_some(*at);
            }
            CampaignContactEvent::CampaignContactClosed {
                campaign_id,
                contact_id,
                status,
                ..
            } => {
                self.campaign_id = Some(*campaign_id);
                self.contact_id = Some(*contact_id);
                self.status = *status;
                self.next_attempt_at = None;
            }
        }
        self
    }
}
