//! Outbound campaigns (SPEC §2.3): the campaign aggregate and its status
//! machine, and the pure rules the runner applies — calling windows in the
//! recipient's local time, retries and caps, caller-id choice, the dial
//! decision, the DNC list.
//!
//! ```text
//! draft ──start──▶ scheduled ──(start time arrives)──▶ running ⇄ paused ──▶ completed
//!   └──start (no future start)──────────────────────────▲
//! cancelled: from any non-final state.   archived: a flag, refused while running.
//! ```

/// Area codes are a fact of phone numbers; campaigns read them for calling windows.
pub use crate::phone::area_codes;
pub mod caller_id;
pub mod contacts;
pub mod dial;
pub mod dnc;
pub mod holidays;
pub mod settings;
pub mod window;

pub use caller_id::{choose_caller_id, CallerId};
pub use contacts::{
    next_after_attempt, opted_out, Attempt, AttemptEnd, AttemptPolicy, AttemptResult, CampaignContact,
    CampaignContactEvent, CloseReason, ContactCommand, ContactDial, ContactError, ContactStatus, ImportedContact,
    NextStep, WithdrawReason,
};
pub use dial::{decide_dial, CallerIds, ContactAtDial, DialDecision, SkipReason};
pub use dnc::{
    parse_national_registry, DncCommand, DncEntry, DncError, DncEvent, DncListing, DncReason, DncSource, Listing,
};
pub use settings::{CallerIdStrategy, CampaignSettings, RetryRules};
pub use window::{CallingWindow, DayOfWeek, LocalTime, RecipientWindow};

use crate::aggregate::Aggregate;
use crate::domain_events;
use crate::phone::PhoneNumber;
use crate::time_zone::TimeZone;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use uuid::Uuid;

/// Most contacts one `CampaignContactsImported` event carries; larger imports are split.
pub const CONTACTS_PER_IMPORT_EVENT: usize = 1_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    #[default]
    Draft,
    Scheduled,
    Running,
    Paused,
    Completed,
    Cancelled,
}

impl CampaignStatus {
    pub const ALL: [CampaignStatus; 6] = [
        CampaignStatus::Draft,
        CampaignStatus::Scheduled,
        CampaignStatus::Running,
        CampaignStatus::Paused,
        CampaignStatus::Completed,
        CampaignStatus::Cancelled,
    ];

    /// Completed and cancelled campaigns change no more.
    pub fn is_final(self) -> bool {
        matches!(self, CampaignStatus::Completed | CampaignStatus::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Scheduled => "scheduled",
            CampaignStatus::Running => "running",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Completed => "completed",
            CampaignStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CampaignError {
    /// 400 validation error naming the field.
    #[error("{field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("campaign not found")]
    NotFound,
    #[error("campaign already exists")]
    Exists,
    /// 409 `campaign_invalid_transition`.
    #[error("a {from} campaign cannot become {to}")]
    InvalidTransition { from: CampaignStatus, to: CampaignStatus },
    /// 409: these fields cannot change while the campaign is in this status.
    #[error("{} cannot change while the campaign is {status}", fields.join(", "))]
    NotEditable {
        status: CampaignStatus,
        fields: Vec<&'static str>,
    },
    /// 409: DELETE of a running campaign (pause or cancel it first).
    #[error("a running campaign cannot be archived; pause or cancel it first")]
    ArchiveWhileRunning,
    /// 404 for users: archived campaigns take no more commands.
    #[error("the campaign is archived")]
    Archived,
    /// 409: the scheduler asked too early.
    #[error("the campaign starts at {starts_at}")]
    StartTimeNotReached { starts_at: DateTime<Utc> },
}

/// Why a campaign completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionReason {
    /// Every contact is completed, failed or dnc.
    AllContactsTerminal,
    /// `scheduledEnd` passed.
    ScheduleEnded,
}

domain_events! {
    /// An outbound campaign. Stream `campaign-<uuid>`.
    pub enum CampaignEvent for Campaign in "campaign" {
        /// A campaign was created, in draft. Payload: organizationId, settings {agentId, name, description,
        /// scheduledStart, scheduledEnd, timezone, callingWindow {start, end, days, skipUsFederalHolidays},
        /// maxRetries, retryRules {busyMinutes, noAnswerMinutes, failedBaseMinutes, failedMaxMinutes},
        /// callerIdStrategy, defaultPhoneNumberId, phoneNumberIds, maxConcurrentCalls, dialsPerMinute,
        /// successOutcome}, at.
        #[version(1)]
        CampaignCreated {
            organization_id: Uuid,
            settings: CampaignSettings,
            at: DateTime<Utc>,
        },
        /// The settings changed; carries the complete new settings and the names of the changed fields.
        /// Payload: settings, changed, at.
        #[version(1)]
        CampaignSettingsChanged {
            settings: CampaignSettings,
            changed: Vec<String>,
            at: DateTime<Utc>,
        },
        /// Started with a start time in the future: the scheduler runs it then. Payload: startsAt, at.
        #[version(1)]
        CampaignScheduled {
            starts_at: DateTime<Utc>,
            at: DateTime<Utc>,
        },
        /// The campaign is running: contacts are dialled. Payload: from (draft: started now; scheduled: its
        /// start time arrived), at.
        #[version(1)]
        CampaignStarted { from: CampaignStatus, at: DateTime<Utc> },
        /// No new dials; calls in flight finish and are recorded. Payload: at.
        #[version(1)]
        CampaignPaused { at: DateTime<Utc> },
        /// Dialling continues. Payload: at.
        #[version(1)]
        CampaignResumed { at: DateTime<Utc> },
        /// The campaign is over. Payload: reason (all_contacts_terminal, schedule_ended), at.
        #[version(1)]
        CampaignCompleted {
            reason: CompletionReason,
            at: DateTime<Utc>,
        },
        /// The campaign was cancelled; no more dials. Payload: from (the status it was in), at.
        #[version(1)]
        CampaignCancelled { from: CampaignStatus, at: DateTime<Utc> },
        /// Hidden from lists, history kept (DELETE). Payload: status (at archiving), at.
        #[version(1)]
        CampaignArchived { status: CampaignStatus, at: DateTime<Utc> },
        /// A batch of contacts was added (deduplicated by phone within the campaign, DNC-scrubbed). Payload:
        /// contacts [{contactId, phone (E.164), firstName, lastName, email, company, notes, timezone,
        /// customData {column: value}, priority, status (pending or dnc)}], at.
        #[version(1)]
        CampaignContactsImported {
            contacts: Vec<ImportedContact>,
            at: DateTime<Utc>,
        },
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CampaignCommand {
    Create {
        organization_id: Uuid,
        settings: CampaignSettings,
        now: DateTime<Utc>,
    },
    /// The complete new settings (the API merges a PATCH onto the current ones).
    ChangeSettings {
        settings: CampaignSettings,
        now: DateTime<Utc>,
    },
    /// A user starts a draft: scheduled if its start is in the future, else running.
    Start {
        now: DateTime<Utc>,
    },
    /// The scheduler: a scheduled campaign's start time arrived.
    RunScheduled {
        now: DateTime<Utc>,
    },
    Pause {
        now: DateTime<Utc>,
    },
    Resume {
        now: DateTime<Utc>,
    },
    /// The runner: every contact is terminal, or `scheduledEnd` passed.
    Complete {
        reason: CompletionReason,
        /// How many contacts the runner saw terminal: an import it had not seen yet keeps the campaign open.
        contacts_seen: u64,
        now: DateTime<Utc>,
    },
    Cancel {
        now: DateTime<Utc>,
    },
    /// DELETE.
    Archive {
        now: DateTime<Utc>,
    },
    /// Adds contacts; those whose number is already in the campaign (or twice in the batch) are left out.
    ImportContacts {
        contacts: Vec<ImportedContact>,
        now: DateTime<Utc>,
    },
}

impl CampaignCommand {
    /// The status a status-changing command leads to (for errors).
    fn target(&self, state: &Campaign) -> Option<CampaignStatus> {
        Some(match self {
            CampaignCommand::Start { now } => match state.settings.as_ref().and_then(|s| s.scheduled_start) {
                Some(start) if start > *now => CampaignStatus::Scheduled,
                _ => CampaignStatus::Running,
            },
            CampaignCommand::RunScheduled { .. } | CampaignCommand::Resume { .. } => CampaignStatus::Running,
            CampaignCommand::Pause { .. } => CampaignStatus::Paused,
            CampaignCommand::Complete { .. } => CampaignStatus::Completed,
            CampaignCommand::Cancel { .. } => CampaignStatus::Cancelled,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Campaign {
    pub organization_id: Option<Uuid>,
    pub settings: Option<CampaignSettings>,
    pub status: CampaignStatus,
    pub archived: bool,
    /// Every number in the campaign, to deduplicate imports.
    pub phones: HashSet<PhoneNumber>,
    pub total_contacts: u64,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Campaign {
    pub fn exists(&self) -> bool {
        self.settings.is_some()
    }

    /// The window a contact may be called in (see [`CampaignSettings::window_for`]).
    pub fn window_for(&self, phone: &PhoneNumber, explicit_zone: Option<TimeZone>) -> Option<RecipientWindow> {
        self.settings.as_ref().map(|s| s.window_for(phone, explicit_zone))
    }
}

fn refuse(from: CampaignStatus, to: CampaignStatus) -> CampaignError {
    CampaignError::InvalidTransition { from, to }
}

impl Aggregate for Campaign {
    type Command = CampaignCommand;
    type Error = CampaignError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        use CampaignCommand as C;
        use CampaignStatus as S;
        let Some(current) = state.settings.as_ref() else {
            let C::Create {
                organization_id,
                settings,
                now,
            } = command
            else {
                return Err(CampaignError::NotFound);
            };
            settings.validate()?;
            if settings.scheduled_end.is_some_and(|end| end <= *now) {
                return Err(CampaignError::Invalid {
                    field: "scheduledEnd",
                    reason: "must be in the future".into(),
                });
            }
            return Ok(vec![CampaignEvent::CampaignCreated {
                organization_id: *organization_id,
                settings: settings.clone(),
                at: *now,
            }]);
        };
        if state.archived {
            return match command {
                C::Archive { .. } => Ok(vec![]),
                _ => Err(CampaignError::Archived),
            };
        }
        let status = state.status;
        let to = command.target(state);
        let wrong = || refuse(status, to.unwrap_or(status));
        Ok(match command {
            C::Create { .. } => return Err(CampaignError::Exists),
            C::ChangeSettings { settings, now } => {
                let changed = current.changed_fields(settings);
                if changed.is_empty() {
                    return Ok(vec![]);
                }
                let locked: Vec<&'static str> = match status {
                    S::Draft | S::Paused => vec![],
                    // Scheduled: the start is set and the runner acts on it; pause first to change more.
                    S::Scheduled | S::Running => changed
                        .iter()
                        .copied()
                        .filter(|f| !settings::EDITABLE_WHILE_RUNNING.contains(f))
                        .collect(),
                    S::Completed | S::Cancelled => changed.clone(),
                };
                if !locked.is_empty() {
                    return Err(CampaignError::NotEditable { status, fields: locked });
                }
                settings.validate()?;
                if settings.scheduled_end != current.scheduled_end && settings.scheduled_end.is_some_and(|e| e <= *now)
                {
                    return Err(CampaignError::Invalid {
                        field: "scheduledEnd",
                        reason: "must be in the future".into(),
                    });
                }
                vec![CampaignEvent::CampaignSettingsChanged {
                    settings: settings.clone(),
                    changed: changed.into_iter().map(String::from).collect(),
                    at: *now,
                }]
            }
            C::Start { now } => {
                if status != S::Draft {
                    return Err(wrong());
                }
                if current.scheduled_end.is_some_and(|end| end <= *now) {
                    return Err(CampaignError::Invalid {
                        field: "scheduledEnd",
                        reason: "has passed: move it before starting".into(),
                    });
                }
                match current.scheduled_start {
                    Some(starts_at) if starts_at > *now => {
                        vec![CampaignEvent::CampaignScheduled { starts_at, at: *now }]
                    }
                    _ => vec![CampaignEvent::CampaignStarted {
                        from: S::Draft,
                        at: *now,
                    }],
                }
            }
            C::RunScheduled { now } => match status {
                S::Scheduled => {
                    if let Some(starts_at) = current.scheduled_start.filter(|start| start > now) {
                        return Err(CampaignError::StartTimeNotReached { starts_at });
                    }
                    vec![CampaignEvent::CampaignStarted {
                        from: S::Scheduled,
                        at: *now,
                    }]
                }
                // The scheduler repeating itself.
                S::Running => vec![],
                _ => return Err(wrong()),
            },
            C::Pause { now } => match status {
                S::Running => vec![CampaignEvent::CampaignPaused { at: *now }],
                _ => return Err(wrong()),
            },
            C::Resume { now } => match status {
                S::Paused => vec![CampaignEvent::CampaignResumed { at: *now }],
                _ => return Err(wrong()),
            },
            C::Complete {
                reason,
                contacts_seen,
                now,
            } => match status {
                S::Running | S::Paused => {
                    if *reason == CompletionReason::AllContactsTerminal && *contacts_seen != state.total_contacts {
                        return Ok(vec![]);
                    }
                    if *reason == CompletionReason::ScheduleEnded && current.scheduled_end.is_none_or(|end| end > *now)
                    {
                        return Err(CampaignError::Invalid {
                            field: "scheduledEnd",
                            reason: "has not passed".into(),
                        });
                    }
                    vec![CampaignEvent::CampaignCompleted {
                        reason: *reason,
                        at: *now,
                    }]
                }
                // The runner repeating itself.
                S::Completed => vec![],
                _ => return Err(wrong()),
            },
            C::Cancel { now } => {
                if status.is_final() {
                    return Err(wrong());
                }
                vec![CampaignEvent::CampaignCancelled { from: status, at: *now }]
            }
            C::Archive { now } => {
                if status == S::Running {
                    return Err(CampaignError::ArchiveWhileRunning);
                }
                vec![CampaignEvent::CampaignArchived { status, at: *now }]
            }
            C::ImportContacts { contacts, now } => {
                if status.is_final() {
                    return Err(CampaignError::NotEditable {
                        status,
                        fields: vec!["contacts"],
                    });
                }
                if let Some(bad) = contacts
                    .iter()
                    .find(|c| !matches!(c.status, ContactStatus::Pending | ContactStatus::Dnc))
                {
                    return Err(CampaignError::Invalid {
                        field: "contacts.status",
                        reason: format!("imported contacts are pending or dnc, not {}", bad.status.as_str()),
                    });
                }
                let mut seen = HashSet::new();
                let fresh: Vec<ImportedContact> = contacts
                    .iter()
                    .filter(|c| !state.phones.contains(&c.phone) && seen.insert(c.phone.clone()))
                    .cloned()
                    .collect();
                // Bounded events: a 100,000-row file becomes 100 events, appended together.
                fresh
                    .chunks(CONTACTS_PER_IMPORT_EVENT)
                    .map(|chunk| CampaignEvent::CampaignContactsImported {
                        contacts: chunk.to_vec(),
                        at: *now,
                    })
                    .collect()
            }
        })
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        use CampaignStatus as S;
        match event {
            CampaignEvent::CampaignCreated {
                organization_id,
                settings,
                at,
            } => {
                self.organization_id = Some(*organization_id);
                self.settings = Some(settings.clone());
                self.status = S::Draft;
                self.created_at = Some(*at);
            }
            CampaignEvent::CampaignSettingsChanged { settings, .. } => self.settings = Some(settings.clone()),
            CampaignEvent::CampaignScheduled { .. } => self.status = S::Scheduled,
            CampaignEvent::CampaignStarted { .. } | CampaignEvent::CampaignResumed { .. } => self.status = S::Running,
            CampaignEvent::CampaignPaused { .. } => self.status = S::Paused,
            CampaignEvent::CampaignCompleted { .. } => self.status = S::Completed,
            CampaignEvent::CampaignCancelled { .. } => self.status = S::Cancelled,
            CampaignEvent::CampaignArchived { .. } => self.archived = true,
            CampaignEvent::CampaignContactsImported { contacts, .. } => {
                self.total_contacts += contacts.len() as u64;
                self.phones.extend(contacts.iter().map(|c| c.phone.clone()));
            }
        }
        self.updated_at = Some(event_time(event));
        self
    }
}

fn event_time(event: &CampaignEvent) -> DateTime<Utc> {
    match event {
        CampaignEvent::CampaignCreated { at, .. }
        | CampaignEvent::CampaignSettingsChanged { at, .. }
        | CampaignEvent::CampaignScheduled { at, .. }
        | CampaignEvent::CampaignStarted { at, .. }
        | CampaignEvent::CampaignPaused { at }
        | CampaignEvent::CampaignResumed { at }
        | CampaignEvent::CampaignCompleted { at, .. }
        | CampaignEvent::CampaignCancelled { at, .. }
        | CampaignEvent::CampaignArchived { at, .. }
        | CampaignEvent::CampaignContactsImported { at, .. } => *at,
    }
}

#[cfg(test)]
mod tests;
