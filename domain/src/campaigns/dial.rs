//! The one decision the runner takes at dial time: dial now (from which
//! number, which attempt), not yet (until when), or not at all (why). It
//! re-checks everything the scheduler checked when it picked the contact —
//! campaign status, the DNC list, the attempt caps and the recipient's window —
//! because any of them may have changed since.

use super::caller_id::{choose_caller_id, CallerId};
use super::contacts::{earliest_within_daily_cap, CloseReason, ContactStatus};
use super::{Campaign, CampaignStatus};
use crate::phone::PhoneNumber;
use crate::time_zone::TimeZone;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the runner knows of the contact at dial time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContactAtDial<'a> {
    pub phone: &'a PhoneNumber,
    /// The contact's explicit IANA zone, if its row had one.
    pub timezone: Option<TimeZone>,
    pub status: ContactStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When each earlier attempt was dialled.
    pub attempt_times: &'a [DateTime<Utc>],
}

/// Where the calls of the campaign may come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallerIds<'a> {
    pub default: &'a CallerId,
    pub pool: &'a [CallerId],
    /// A counter the runner advances per dial (round robin).
    pub rotation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// On the organization's DNC list (or imported as dnc).
    Dnc,
    /// It had `maxRetries + 1` attempts.
    AttemptsExhausted,
    /// The campaign is not running (paused, completed, cancelled, archived…): the contact waits.
    CampaignNotRunning,
    /// Calling already, or terminal.
    NotPending,
    /// Its window does not open again before the campaign's end.
    ScheduleEnded,
    /// Its zones' windows never overlap (e.g. a contradictory explicit zone).
    NoCallingWindow,
}

impl SkipReason {
    /// How the contact is closed for this reason; `None`: it is left as it is.
    pub fn closes_contact(self) -> Option<CloseReason> {
        match self {
            SkipReason::Dnc => Some(CloseReason::Dnc),
            SkipReason::AttemptsExhausted => Some(CloseReason::AttemptsExhausted),
            SkipReason::ScheduleEnded => Some(CloseReason::ScheduleEnded),
            SkipReason::NoCallingWindow => Some(CloseReason::NoCallingWindow),
            SkipReason::CampaignNotRunning | SkipReason::NotPending => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialDecision {
    Dial { caller_id: CallerId, attempt_number: u32 },
    NotNow { retry_at: DateTime<Utc> },
    Skip { reason: SkipReason },
}

/// Decides whether to dial `contact` of `campaign` at `now`.
pub fn decide_dial(
    campaign: &Campaign,
    contact: ContactAtDial<'_>,
    on_dnc_list: bool,
    caller_ids: CallerIds<'_>,
    now: DateTime<Utc>,
) -> DialDecision {
    let skip = |reason| DialDecision::Skip { reason };
    let Some(settings) = campaign.settings.as_ref() else {
        return skip(SkipReason::CampaignNotRunning);
    };
    if campaign.status != CampaignStatus::Running || campaign.archived {
        return skip(SkipReason::CampaignNotRunning);
    }
    if on_dnc_list || contact.status == ContactStatus::Dnc {
        return skip(SkipReason::Dnc);
    }
    if contact.status != ContactStatus::Pending {
        return skip(SkipReason::NotPending);
    }
    let attempts = contact.attempt_times.len() as u32;
    if attempts > settings.max_retries {
        return skip(SkipReason::AttemptsExhausted);
    }
    let window = settings.window_for(contact.phone, contact.timezone);
    let earliest = earliest_within_daily_cap(contact.attempt_times, window.max_attempts_per_24h(), now)
        .max(contact.next_attempt_at.unwrap_or(now));
    if earliest == now && window.is_callable_at(now) {
        return DialDecision::Dial {
            caller_id: choose_caller_id(
                settings.caller_id_strategy,
                caller_ids.default,
                caller_ids.pool,
                contact.phone,
                caller_ids.rotation,
            ),
            attempt_number: attempts + 1,
        };
    }
    match window.next_callable_at(earliest) {
        Some(retry_at) => DialDecision::NotNow { retry_at },
        None if settings.scheduled_end.is_some() => skip(SkipReason::ScheduleEnded),
        None => skip(SkipReason::NoCallingWindow),
    }
}
