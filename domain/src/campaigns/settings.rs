//! What a user configures on a campaign, as typed values (camelCase JSON, as
//! SPEC's Campaign model), and the rules on them.

use super::contacts::AttemptPolicy;
use super::window::{CallingWindow, RecipientWindow};
use super::CampaignError;
use crate::ab_testing::SuccessOutcome;
use crate::phone::PhoneNumber;
use crate::time_zone::TimeZone;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const NAME_LIMIT_CHARS: usize = 200;
pub const DESCRIPTION_LIMIT_CHARS: usize = 2_000;
pub const MAX_RETRIES_LIMIT: u32 = 10;
pub const MAX_CONCURRENT_CALLS_LIMIT: u32 = 100;
pub const DIALS_PER_MINUTE_LIMIT: u32 = 120;
/// Longest retry delay a rule may set: one week, in minutes.
pub const RETRY_DELAY_LIMIT_MINUTES: u32 = 7 * 24 * 60;

fn invalid(field: &'static str, reason: impl Into<String>) -> CampaignError {
    CampaignError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Which of the organization's numbers a campaign calls from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CallerIdStrategy {
    /// Always the default number.
    #[default]
    Fixed,
    /// A pool number with the contact's area code, else one in the contact's state, else the default.
    LocalPresence,
    /// The pool's numbers in turn.
    Rotating,
}

/// When an unanswered attempt is retried. Voicemail is not retried: the
/// contact is completed with the outcome `voicemail` ("left message").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RetryRules {
    pub busy_minutes: u32,
    pub no_answer_minutes: u32,
    /// Technical failures: this delay, doubled with each failed attempt of the contact…
    pub failed_base_minutes: u32,
    /// …up to this ceiling.
    pub failed_max_minutes: u32,
}

impl Default for RetryRules {
    /// Busy → 30 min, no answer → 2 h, failed → 5 min, 10, 20… up to 4 h.
    fn default() -> Self {
        Self {
            busy_minutes: 30,
            no_answer_minutes: 120,
            failed_base_minutes: 5,
            failed_max_minutes: 240,
        }
    }
}

impl RetryRules {
    pub fn validate(&self) -> Result<(), CampaignError> {
        for (field, minutes) in [
            ("retryRules.busyMinutes", self.busy_minutes),
            ("retryRules.noAnswerMinutes", self.no_answer_minutes),
            ("retryRules.failedBaseMinutes", self.failed_base_minutes),
            ("retryRules.failedMaxMinutes", self.failed_max_minutes),
        ] {
            if !(1..=RETRY_DELAY_LIMIT_MINUTES).contains(&minutes) {
                return Err(invalid(
                    field,
                    format!("must be between 1 and {RETRY_DELAY_LIMIT_MINUTES} minutes"),
                ));
            }
        }
        if self.failed_max_minutes < self.failed_base_minutes {
            return Err(invalid(
                "retryRules.failedMaxMinutes",
                "must not be below retryRules.failedBaseMinutes",
            ));
        }
        Ok(())
    }

    /// The delay after the `failures`th technical failure (1-based) of a contact.
    pub fn failed_delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        let minutes = u64::from(self.failed_base_minutes).saturating_mul(1 << doublings);
        Duration::minutes(minutes.min(u64::from(self.failed_max_minutes)) as i64)
    }
}

fn default_timezone() -> TimeZone {
    TimeZone::DEFAULT
}

fn default_max_retries() -> u32 {
    3
}

fn default_max_concurrent_calls() -> u32 {
    5
}

fn default_dials_per_minute() -> u32 {
    10
}

/// Everything a user configures on a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CampaignSettings {
    pub agent_id: Uuid,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::name::<NAME_LIMIT_CHARS>))]
    pub name: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_text::<DESCRIPTION_LIMIT_CHARS>))]
    pub description: Option<String>,
    #[serde(default)]
    pub scheduled_start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub scheduled_end: Option<DateTime<Utc>>,
    /// The campaign's zone: for its schedule as shown, and for contacts whose zone is unknown.
    #[serde(default = "default_timezone")]
    pub timezone: TimeZone,
    #[serde(default)]
    pub calling_window: CallingWindow,
    /// Attempts after the first; a contact gets at most `maxRetries + 1` calls.
    #[serde(default = "default_max_retries")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::integer::<0, { MAX_RETRIES_LIMIT as i64 }>))]
    pub max_retries: u32,
    #[serde(default)]
    pub retry_rules: RetryRules,
    #[serde(default)]
    pub caller_id_strategy: CallerIdStrategy,
    /// The number calls come from when no better one is found (and always, for `fixed`).
    pub default_phone_number_id: Uuid,
    /// The pool `local_presence` and `rotating` choose from.
    #[serde(default)]
    pub phone_number_ids: Vec<Uuid>,
    #[serde(default = "default_max_concurrent_calls")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::integer::<1, { MAX_CONCURRENT_CALLS_LIMIT as i64 }>))]
    pub max_concurrent_calls: u32,
    #[serde(default = "default_dials_per_minute")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::integer::<1, { DIALS_PER_MINUTE_LIMIT as i64 }>))]
    pub dials_per_minute: u32,
    /// What counts as a successful call (`callsSuccessful`, conversion rate).
    #[serde(default = "default_success_outcome")]
    pub success_outcome: SuccessOutcome,
}

fn default_success_outcome() -> SuccessOutcome {
    SuccessOutcome::Qualified
}

impl CampaignSettings {
    /// Settings with every default, for `agent_id` calling from `default_phone_number_id`.
    pub fn new(agent_id: Uuid, name: impl Into<String>, default_phone_number_id: Uuid) -> Self {
        Self {
            agent_id,
            name: name.into(),
            description: None,
            scheduled_start: None,
            scheduled_end: None,
            timezone: default_timezone(),
            calling_window: CallingWindow::default(),
            max_retries: default_max_retries(),
            retry_rules: RetryRules::default(),
            caller_id_strategy: CallerIdStrategy::Fixed,
            default_phone_number_id,
            phone_number_ids: vec![],
            max_concurrent_calls: default_max_concurrent_calls(),
            dials_per_minute: default_dials_per_minute(),
            success_outcome: default_success_outcome(),
        }
    }

    /// Checks every field; the error names the first one that is wrong.
    pub fn validate(&self) -> Result<(), CampaignError> {
        if self.name.trim().is_empty() || self.name.chars().count() > NAME_LIMIT_CHARS {
            return Err(invalid("name", format!("must be 1 to {NAME_LIMIT_CHARS} characters")));
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > DESCRIPTION_LIMIT_CHARS)
        {
            return Err(invalid(
                "description",
                format!("must be at most {DESCRIPTION_LIMIT_CHARS} characters"),
            ));
        }
        if let (Some(start), Some(end)) = (self.scheduled_start, self.scheduled_end) {
            if end <= start {
                return Err(invalid("scheduledEnd", "must be after scheduledStart"));
            }
        }
        self.calling_window.validate()?;
        if self.max_retries > MAX_RETRIES_LIMIT {
            return Err(invalid(
                "maxRetries",
                format!("must be between 0 and {MAX_RETRIES_LIMIT}"),
            ));
        }
        self.retry_rules.validate()?;
        if crate::has_repeats(&self.phone_number_ids) {
            return Err(invalid("phoneNumberIds", "names a number twice"));
        }
        match self.caller_id_strategy {
            CallerIdStrategy::Fixed => {
                if self
                    .phone_number_ids
                    .iter()
                    .any(|id| *id != self.default_phone_number_id)
                {
                    return Err(invalid(
                        "phoneNumberIds",
                        "a fixed caller id uses exactly one number: defaultPhoneNumberId",
                    ));
                }
            }
            CallerIdStrategy::LocalPresence | CallerIdStrategy::Rotating => {
                if self.phone_number_ids.is_empty() {
                    return Err(invalid(
                        "phoneNumberIds",
                        "local_presence and rotating need a pool of numbers",
                    ));
                }
            }
        }
        if !(1..=MAX_CONCURRENT_CALLS_LIMIT).contains(&self.max_concurrent_calls) {
            return Err(invalid(
                "maxConcurrentCalls",
                format!("must be between 1 and {MAX_CONCURRENT_CALLS_LIMIT}"),
            ));
        }
        if !(1..=DIALS_PER_MINUTE_LIMIT).contains(&self.dials_per_minute) {
            return Err(invalid(
                "dialsPerMinute",
                format!("must be between 1 and {DIALS_PER_MINUTE_LIMIT}"),
            ));
        }
        Ok(())
    }

    /// The window a contact may be called in: the calling window in the
    /// contact's zones, narrowed by its state's rule, within the schedule.
    pub fn window_for(&self, phone: &PhoneNumber, explicit_zone: Option<TimeZone>) -> RecipientWindow {
        RecipientWindow::for_contact(&self.calling_window, self.timezone, phone, explicit_zone)
            .within_schedule(self.scheduled_start, self.scheduled_end)
    }

    /// The retry rules and caps for a contact calling in `window`.
    pub fn attempt_policy(&self, window: &RecipientWindow) -> AttemptPolicy {
        AttemptPolicy {
            max_retries: self.max_retries,
            retry_rules: self.retry_rules,
            max_attempts_per_24h: window.max_attempts_per_24h(),
            success_outcome: self.success_outcome,
        }
    }

    /// The camelCase names of the fields that differ between `self` and `other`.
    pub fn changed_fields(&self, other: &CampaignSettings) -> Vec<&'static str> {
        let mut changed = vec![];
        let mut check = |field: &'static str, differs: bool| {
            if differs {
                changed.push(field);
            }
        };
        check("agentId", self.agent_id != other.agent_id);
        check("name", self.name != other.name);
        check("description", self.description != other.description);
        check("scheduledStart", self.scheduled_start != other.scheduled_start);
        check("scheduledEnd", self.scheduled_end != other.scheduled_end);
        check("timezone", self.timezone != other.timezone);
        check("callingWindow", self.calling_window != other.calling_window);
        check("maxRetries", self.max_retries != other.max_retries);
        check("retryRules", self.retry_rules != other.retry_rules);
        check("callerIdStrategy", self.caller_id_strategy != other.caller_id_strategy);
        check(
            "defaultPhoneNumberId",
            self.default_phone_number_id != other.default_phone_number_id,
        );
        check("phoneNumberIds", self.phone_number_ids != other.phone_number_ids);
        check(
            "maxConcurrentCalls",
            self.max_concurrent_calls != other.max_concurrent_calls,
        );
        check("dialsPerMinute", self.dials_per_minute != other.dials_per_minute);
        check("successOutcome", self.success_outcome != other.success_outcome);
        changed
    }
}

/// Fields a running campaign lets users change.
pub const EDITABLE_WHILE_RUNNING: [&str; 2] = ["name", "description"];
