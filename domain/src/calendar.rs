//! Calendars: integrations (Google, Outlook, Calendly), the booking rules each
//! one carries (working hours, buffers, notice, horizon), the availability
//! engine that applies them in the calendar's local time, and the bookings of
//! each calendar, serialized through one stream so a slot is never sold twice.

use crate::aggregate::Aggregate;
use crate::connections::{Connection, ConnectionStatus, SignIn};
use crate::domain_events;
use crate::phone::PhoneNumber;
use crate::time_zone::{local_instant, DayOfWeek, LocalTime, TimeZone};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Longest meeting an agent may book.
pub const MAX_DURATION_MINUTES: u32 = 8 * 60;
/// Longest booking horizon.
pub const MAX_HORIZON_DAYS: u32 = 365;
/// Largest buffer around busy time.
pub const MAX_BUFFER_MINUTES: u32 = 240;
/// Longest minimum notice (a week).
pub const MAX_NOTICE_MINUTES: u32 = 7 * 24 * 60;
/// How many free slots are offered when the asked one is taken.
pub const ALTERNATIVES: usize = 3;
/// Slots start on this grid of local minutes (:00, :15, :30, :45).
const GRID_MINUTES: i64 = 15;
/// How far past the asked time alternatives are looked for.
pub const ALTERNATIVES_LOOKAHEAD_DAYS: i64 = 14;
/// Longest meeting title.
pub const TITLE_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalendarError {
    #[error("{field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("calendar integration not found")]
    NotFound,
    #[error("the calendar integration is disconnected")]
    Disconnected,
    /// Another booking holds the slot (or its buffer).
    #[error("the slot is no longer free")]
    SlotTaken,
    #[error("booking not found")]
    BookingNotFound,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CalendarError {
    CalendarError::Invalid {
        field,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CalendarProvider {
    Google,
    /// Microsoft Outlook / Office 365, through Microsoft Graph.
    Outlook,
    Calendly,
}

impl CalendarProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            CalendarProvider::Google => "google",
            CalendarProvider::Outlook => "outlook",
            CalendarProvider::Calendly => "calendly",
        }
    }

    /// Whether agents can check and book this calendar directly (Calendly
    /// only reports what invitees book on its own pages).
    pub fn books_directly(self) -> bool {
        !matches!(self, CalendarProvider::Calendly)
    }
}

impl std::fmt::Display for CalendarProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an integration works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CalendarStatus {
    #[default]
    Active,
    /// The provider no longer accepts our tokens: the user must connect again.
    NeedsReauth,
    /// The provider keeps failing for another reason (`statusReason` says which).
    Error,
}

fn default_buffer() -> u32 {
    15
}
fn default_start() -> LocalTime {
    LocalTime::new(NaiveTime::from_hms_opt(9, 0, 0).expect("valid time"))
}
fn default_end() -> LocalTime {
    LocalTime::new(NaiveTime::from_hms_opt(17, 0, 0).expect("valid time"))
}
fn default_days() -> Vec<DayOfWeek> {
    DayOfWeek::ALL[..5].to_vec()
}
fn default_zone() -> TimeZone {
    TimeZone::DEFAULT
}
fn default_notice() -> u32 {
    120
}
fn default_horizon() -> u32 {
    30
}
fn default_duration() -> u32 {
    30
}

/// How one calendar may be booked (SPEC's CalendarIntegration settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalendarSettings {
    /// The provider's calendar id (`primary` when not set).
    #[serde(default)]
    pub calendar_id: Option<String>,
    /// Minutes kept free before and after every busy period and booking.
    #[serde(default = "default_buffer")]
    pub buffer_minutes: u32,
    #[serde(default = "default_start")]
    pub working_hours_start: LocalTime,
    #[serde(default = "default_end")]
    pub working_hours_end: LocalTime,
    #[serde(default = "default_days")]
    pub working_days: Vec<DayOfWeek>,
    /// The zone working hours are read in.
    #[serde(default = "default_zone")]
    pub timezone: TimeZone,
    /// No booking starts sooner than this after now.
    #[serde(default = "default_notice")]
    pub minimum_notice_minutes: u32,
    /// No booking starts later than this many days after now.
    #[serde(default = "default_horizon")]
    pub booking_horizon_days: u32,
    #[serde(default = "default_duration")]
    pub default_duration_minutes: u32,
    /// Agents that book into this calendar.
    #[serde(default)]
    pub agent_ids: Vec<Uuid>,
    /// The organization's default calendar: agents no calendar names book here.
    #[serde(default)]
    pub is_default: bool,
}

impl Default for CalendarSettings {
    fn default() -> Self {
        Self {
            calendar_id: None,
            buffer_minutes: default_buffer(),
            working_hours_start: default_start(),
            working_hours_end: default_end(),
            working_days: default_days(),
            timezone: default_zone(),
            minimum_notice_minutes: default_notice(),
            booking_horizon_days: default_horizon(),
            default_duration_minutes: default_duration(),
            agent_ids: vec![],
            is_default: false,
        }
    }
}

/// A change to some settings; absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsPatch {
    pub calendar_id: Option<String>,
    pub buffer_minutes: Option<u32>,
    pub working_hours_start: Option<LocalTime>,
    pub working_hours_end: Option<LocalTime>,
    pub working_days: Option<Vec<DayOfWeek>>,
    pub timezone: Option<TimeZone>,
    pub minimum_notice_minutes: Option<u32>,
    pub booking_horizon_days: Option<u32>,
    pub default_duration_minutes: Option<u32>,
    pub agent_ids: Option<Vec<Uuid>>,
    pub is_default: Option<bool>,
}

impl SettingsPatch {
    /// The settings after this change, validated.
    pub fn apply(&self, current: &CalendarSettings) -> Result<CalendarSettings, CalendarError> {
        let settings = CalendarSettings {
            calendar_id: self.calendar_id.clone().or_else(|| current.calendar_id.clone()),
            buffer_minutes: self.buffer_minutes.unwrap_or(current.buffer_minutes),
            working_hours_start: self.working_hours_start.unwrap_or(current.working_hours_start),
            working_hours_end: self.working_hours_end.unwrap_or(current.working_hours_end),
            working_days: self
                .working_days
                .clone()
                .unwrap_or_else(|| current.working_days.clone()),
            timezone: self.timezone.unwrap_or(current.timezone),
            minimum_notice_minutes: self.minimum_notice_minutes.unwrap_or(current.minimum_notice_minutes),
            booking_horizon_days: self.booking_horizon_days.unwrap_or(current.booking_horizon_days),
            default_duration_minutes: self
                .default_duration_minutes
                .unwrap_or(current.default_duration_minutes),
            agent_ids: self.agent_ids.clone().unwrap_or_else(|| current.agent_ids.clone()),
            is_default: self.is_default.unwrap_or(current.is_default),
        };
        settings.validate()?;
        Ok(settings)
    }
}

/// A span of time, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Slot {
    pub fn new(start: DateTime<Utc>, minutes: u32) -> Self {
        Self {
            start,
            end: start + Duration::minutes(i64::from(minutes)),
        }
    }

    pub fn overlaps(&self, other: &Slot) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// This slot widened by `minutes` on both sides.
    pub fn padded(&self, minutes: u32) -> Slot {
        let pad = Duration::minutes(i64::from(minutes));
        Slot {
            start: self.start - pad,
            end: self.end + pad,
        }
    }
}

/// Why a slot cannot be booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    /// Starts before now plus the minimum notice.
    TooSoon,
    /// Starts after the booking horizon.
    BeyondHorizon,
    NotAWorkingDay,
    OutsideWorkingHours,
    /// Overlaps busy time (with its buffer) at the provider or another booking.
    Busy,
}

/// The answer to "is this slot free?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    pub slot: Slot,
    /// `None` when the slot is free.
    pub unavailable: Option<Unavailable>,
    /// The next free slots of the same length, when the slot is not free.
    pub alternatives: Vec<Slot>,
}

impl Availability {
    pub fn is_available(&self) -> bool {
        self.unavailable.is_none()
    }
}

impl CalendarSettings {
    pub fn validate(&self) -> Result<(), CalendarError> {
        if self.buffer_minutes > MAX_BUFFER_MINUTES {
            return Err(invalid(
                "bufferMinutes",
                format!("must be at most {MAX_BUFFER_MINUTES}"),
            ));
        }
        if self.working_hours_end.time() <= self.working_hours_start.time() {
            return Err(invalid("workingHoursEnd", "must be after workingHoursStart"));
        }
        if self.working_days.is_empty() {
            return Err(invalid("workingDays", "must name at least one day"));
        }
        if crate::has_repeats(&self.working_days) {
            return Err(invalid("workingDays", "names a day twice"));
        }
        if self.minimum_notice_minutes > MAX_NOTICE_MINUTES {
            return Err(invalid(
                "minimumNoticeMinutes",
                format!("must be at most {MAX_NOTICE_MINUTES}"),
            ));
        }
        if !(1..=MAX_HORIZON_DAYS).contains(&self.booking_horizon_days) {
            return Err(invalid(
                "bookingHorizonDays",
                format!("must be between 1 and {MAX_HORIZON_DAYS}"),
            ));
        }
        validate_duration("defaultDurationMinutes", self.default_duration_minutes)?;
        if let Some(id) = &self.calendar_id {
            if id.trim().is_empty() || id.len() > 1024 || id.chars().any(char::is_control) {
                return Err(invalid("calendarId", "must be a provider calendar id"));
            }
        }
        if crate::has_repeats(&self.agent_ids) {
            return Err(invalid("agentIds", "names an agent twice"));
        }
        Ok(())
    }

    /// The instant a local date and time happen, read in `zone` (the
    /// calendar's own when `None`).
    pub fn instant(&self, date: NaiveDate, time: NaiveTime, zone: Option<TimeZone>) -> DateTime<Utc> {
        local_instant(zone.unwrap_or(self.timezone).tz(), date, time)
    }

    /// Whether `slot` lies inside working hours of one working day, in the calendar's local time.
    fn working_hours_verdict(&self, slot: &Slot) -> Option<Unavailable> {
        let zone = self.timezone.tz();
        let start = slot.start.with_timezone(&zone);
        let day = start.date_naive();
        if !self.working_days.contains(&DayOfWeek::of(day.weekday())) {
            return Some(Unavailable::NotAWorkingDay);
        }
        let opens = local_instant(zone, day, self.working_hours_start.time());
        let closes = local_instant(zone, day, self.working_hours_end.time());
        (slot.start < opens || slot.end > closes).then_some(Unavailable::OutsideWorkingHours)
    }

    /// The earliest and latest start a booking may have at `now`.
    pub fn bookable_starts(&self, now: DateTime<Utc>) -> Slot {
        Slot {
            start: now + Duration::minutes(i64::from(self.minimum_notice_minutes)),
            end: now + Duration::days(i64::from(self.booking_horizon_days)),
        }
    }

    /// Why `slot` cannot be booked at `now` given `busy` time, or `None` when it can.
    pub fn verdict(&self, slot: &Slot, busy: &[Slot], now: DateTime<Utc>) -> Option<Unavailable> {
        let bookable = self.bookable_starts(now);
        if slot.start < bookable.start {
            return Some(Unavailable::TooSoon);
        }
        if slot.start > bookable.end {
            return Some(Unavailable::BeyondHorizon);
        }
        if let Some(outside) = self.working_hours_verdict(slot) {
            return Some(outside);
        }
        let padded = slot.padded(self.buffer_minutes);
        busy.iter().any(|b| b.overlaps(&padded)).then_some(Unavailable::Busy)
    }

    /// The span of time free/busy must cover to check `slot` and find its alternatives.
    pub fn search_range(&self, slot: &Slot, now: DateTime<Utc>) -> Slot {
        let bookable = self.bookable_starts(now);
        let from = slot.start.max(bookable.start).min(bookable.end);
        let to = (from + Duration::days(ALTERNATIVES_LOOKAHEAD_DAYS)).min(bookable.end);
        let pad = i64::from(self.buffer_minutes) + i64::from(MAX_DURATION_MINUTES);
        Slot {
            start: from.min(slot.start) - Duration::minutes(i64::from(self.buffer_minutes)),
            end: to.max(slot.end) + Duration::minutes(pad),
        }
    }

    /// Checks `slot` against the rules and `busy`; when it is not free, finds
    /// the next free slots of the same length (not overlapping each other), on
    /// the calendar's local quarter-hour grid, from the asked time on (or the
    /// earliest bookable time, if later).
    pub fn availability(&self, slot: Slot, busy: &[Slot], now: DateTime<Utc>) -> Availability {
        let unavailable = self.verdict(&slot, busy, now);
        let alternatives = match unavailable {
            None => vec![],
            Some(_) => self.alternatives(&slot, busy, now),
        };
        Availability {
            slot,
            unavailable,
            alternatives,
        }
    }

    fn alternatives(&self, asked: &Slot, busy: &[Slot], now: DateTime<Utc>) -> Vec<Slot> {
        let minutes = (asked.end - asked.start).num_minutes().max(1) as u32;
        let bookable = self.bookable_starts(now);
        let zone = self.timezone.tz();
        let mut from = asked.start.max(bookable.start);
        let until = (from + Duration::days(ALTERNATIVES_LOOKAHEAD_DAYS)).min(bookable.end);
        let mut found = Vec::with_capacity(ALTERNATIVES);
        while found.len() < ALTERNATIVES && from <= until {
            let local = from.with_timezone(&zone);
            let day = local.date_naive();
            let opens = local_instant(zone, day, self.working_hours_start.time());
            let closes = local_instant(zone, day, self.working_hours_end.time());
            let working_day = self.working_days.contains(&DayOfWeek::of(day.weekday()));
            if !working_day || from >= closes {
                from = local_instant(zone, day + Duration::days(1), self.working_hours_start.time());
                continue;
            }
            let candidate_start = on_grid(from.max(opens), zone);
            let candidate = Slot::new(candidate_start, minutes);
            if candidate.start > until {
                break;
            }
            match self.verdict(&candidate, busy, now) {
                None => {
                    found.push(candidate);
                    from = candidate.end;
                }
                Some(Unavailable::OutsideWorkingHours | Unavailable::NotAWorkingDay) => {
                    from = local_instant(zone, day + Duration::days(1), self.working_hours_start.time());
                }
                Some(_) => {
                    // Jump past the busy period that blocks the candidate, when that is later.
                    let padded = candidate.padded(self.buffer_minutes);
                    let blocker_end = busy
                        .iter()
                        .filter(|b| b.overlaps(&padded))
                        .map(|b| b.end + Duration::minutes(i64::from(self.buffer_minutes)))
                        .max();
                    let step = candidate.start + Duration::minutes(GRID_MINUTES);
                    from = blocker_end.map_or(step, |end| end.max(step));
                }
            }
        }
        found
    }
}

/// `at`, moved up to the next local quarter hour (or kept when on one).
fn on_grid(at: DateTime<Utc>, zone: chrono_tz::Tz) -> DateTime<Utc> {
    let local = at.with_timezone(&zone);
    let past = i64::from(local.minute()) % GRID_MINUTES;
    let exact = past == 0 && local.second() == 0 && local.nanosecond() == 0;
    if exact {
        return at;
    }
    let trimmed =
        at - Duration::seconds(i64::from(local.second())) - Duration::nanoseconds(i64::from(local.nanosecond()));
    trimmed + Duration::minutes(GRID_MINUTES - past)
}

/// A meeting length in minutes: 1 to 8 hours' worth.
pub fn validate_duration(field: &'static str, minutes: u32) -> Result<(), CalendarError> {
    if minutes == 0 || minutes > MAX_DURATION_MINUTES {
        return Err(invalid(
            field,
            format!("must be between 1 and {MAX_DURATION_MINUTES} minutes"),
        ));
    }
    Ok(())
}

/// Parses a local date "YYYY-MM-DD".
pub fn parse_date(field: &'static str, raw: &str) -> Result<NaiveDate, CalendarError> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| invalid(field, format!("{raw:?} is not a date like 2026-02-20")))
}

/// Parses a local time "HH:MM" (24-hour).
pub fn parse_time(field: &'static str, raw: &str) -> Result<NaiveTime, CalendarError> {
    let trimmed = raw.trim();
    let well_formed = trimmed.len() == 5 && trimmed.as_bytes()[2] == b':';
    NaiveTime::parse_from_str(trimmed, "%H:%M")
        .ok()
        .filter(|_| well_formed)
        .ok_or_else(|| invalid(field, format!("{raw:?} is not a time like 14:00")))
}

/// The person a meeting is booked with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attendee {
    pub name: String,
    pub email: Option<crate::auth::Email>,
    pub phone: Option<PhoneNumber>,
}

/// Why a held slot was let go without a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The provider showed the slot busy when checked again just before booking.
    BusyAtProvider,
    /// The provider refused or failed to create the event.
    ProviderFailed,
}

// ---------------------------------------------------------------------------
// The integration aggregate.

domain_events! {
    pub enum CalendarEvent for CalendarIntegration in "calendar-integration" {
        /// A calendar was connected (OAuth for Google and Outlook, a personal access token for Calendly); its
        /// tokens are kept encrypted outside the log so disconnecting can forget them. Payload:
        /// organizationId, connectedBy (user id), provider, account (the provider's e-mail or user URI),
        /// webhookSubscription (Calendly's subscription URI, else null), settings, at.
        #[version(1)]
        CalendarConnected {
            #[serde(flatten)]
            sign_in: SignIn<CalendarProvider>,
            account: String,
            webhook_subscription: Option<String>,
            settings: CalendarSettings,
            at: DateTime<Utc>,
        },
        /// A sign-in to connect a calendar ended without a connection: the user refused at the provider
        /// (`access_denied`…) or the code exchange failed. Shown as an integration in error. Payload:
        /// organizationId, connectedBy, provider, reason (the provider's OAuth error code), at.
        #[version(1)]
        CalendarSignInFailed {
            #[serde(flatten)]
            sign_in: SignIn<CalendarProvider>,
            reason: String,
            at: DateTime<Utc>,
        },
        /// The booking rules changed. Payload: settings, at.
        #[version(1)]
        CalendarSettingsChanged { settings: CalendarSettings, at: DateTime<Utc> },
        /// The provider refused our tokens for good (a refresh answered `invalid_grant`, or access was
        /// revoked): nothing is checked or booked until the user connects again. Payload: reason, at.
        #[version(1)]
        CalendarNeedsReauth { reason: String, at: DateTime<Utc> },
        /// The integration was disconnected; its tokens were forgotten (and revoked at the provider when
        /// it has a revoke endpoint: revokedAtProvider). Payload: revokedAtProvider, at.
        #[version(1)]
        CalendarDisconnected { revoked_at_provider: bool, at: DateTime<Utc> },
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CalendarCommand {
    Connect {
        sign_in: SignIn<CalendarProvider>,
        account: String,
        webhook_subscription: Option<String>,
        settings: CalendarSettings,
        now: DateTime<Utc>,
    },
    RecordFailedSignIn {
        sign_in: SignIn<CalendarProvider>,
        reason: String,
        now: DateTime<Utc>,
    },
    ChangeSettings {
        patch: SettingsPatch,
        now: DateTime<Utc>,
    },
    MarkNeedsReauth {
        reason: String,
        now: DateTime<Utc>,
    },
    Disconnect {
        revoked_at_provider: bool,
        now: DateTime<Utc>,
    },
}

impl ConnectionStatus for CalendarStatus {
    const ACTIVE: Self = CalendarStatus::Active;
    const NEEDS_REAUTH: Self = CalendarStatus::NeedsReauth;
    const SIGN_IN_FAILED: Self = CalendarStatus::Error;
}

/// A connected calendar, as its stream tells. Its stream is one sign-in:
/// once connected, or once failed, connecting again opens another.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CalendarIntegration {
    pub connection: Connection<CalendarProvider, CalendarStatus>,
    pub account: String,
    pub webhook_subscription: Option<String>,
    pub settings: CalendarSettings,
}

impl CalendarIntegration {
    pub fn exists(&self) -> bool {
        self.connection.exists()
    }

    /// Connected, not disconnected since.
    pub fn is_live(&self) -> bool {
        self.connection.is_live()
    }
}

impl Aggregate for CalendarIntegration {
    type Command = CalendarCommand;
    type Error = CalendarError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        match command {
            // A connection or a failed sign-in opens the stream once.
            CalendarCommand::Connect { .. } | CalendarCommand::RecordFailedSignIn { .. } if state.exists() => {
                Ok(vec![])
            }
            CalendarCommand::Connect {
                sign_in,
                account,
                webhook_subscription,
                settings,
                now,
            } => {
                settings.validate()?;
                Ok(vec![CalendarEvent::CalendarConnected {
                    sign_in: *sign_in,
                    account: account.clone(),
                    webhook_subscription: webhook_subscription.clone(),
                    settings: settings.clone(),
                    at: *now,
                }])
            }
            CalendarCommand::RecordFailedSignIn { sign_in, reason, now } => {
                Ok(vec![CalendarEvent::CalendarSignInFailed {
                    sign_in: *sign_in,
                    reason: reason.clone(),
                    at: *now,
                }])
            }
            _ if !state.exists() => Err(CalendarError::NotFound),
            CalendarCommand::Disconnect { .. } if state.connection.is_disconnected() => Ok(vec![]),
            CalendarCommand::Disconnect {
                revoked_at_provider,
                now,
            } => Ok(vec![CalendarEvent::CalendarDisconnected {
                revoked_at_provider: *revoked_at_provider,
                at: *now,
            }]),
            _ if !state.is_live() => Err(CalendarError::Disconnected),
            CalendarCommand::ChangeSettings { patch, now } => {
                let settings = patch.apply(&state.settings)?;
                if settings == state.settings {
                    return Ok(vec![]);
                }
                Ok(vec![CalendarEvent::CalendarSettingsChanged { settings, at: *now }])
            }
            CalendarCommand::MarkNeedsReauth { .. } if state.connection.needs_reauth() => Ok(vec![]),
            CalendarCommand::MarkNeedsReauth { reason, now } => Ok(vec![CalendarEvent::CalendarNeedsReauth {
                reason: reason.clone(),
                at: *now,
            }]),
        }
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        match event {
            CalendarEvent::CalendarConnected {
                sign_in,
                account,
                webhook_subscription,
                settings,
                ..
            } => {
                self.connection.connect(sign_in);
                self.account = account.clone();
                self.webhook_subscription = webhook_subscription.clone();
                self.settings = settings.clone();
            }
            CalendarEvent::CalendarSignInFailed { sign_in, reason, .. } => {
                self.connection.fail_sign_in(sign_in, reason)
            }
            CalendarEvent::CalendarSettingsChanged { settings, .. } => self.settings = settings.clone(),
            CalendarEvent::CalendarNeedsReauth { reason, .. } => self.connection.require_reauth(reason),
            CalendarEvent::CalendarDisconnected { .. } => self.connection.disconnect(),
        }
        self
    }
}

// ---------------------------------------------------------------------------
// The bookings of one calendar.

domain_events! {
    pub enum BookingEvent for CalendarBookings in "calendar-bookings" {
        /// A slot was held for a booking before the provider is asked to create the event: the hold is
        /// what keeps two bookings off one slot (one stream per calendar, appended with its expected
        /// version). Payload: bookingId, agentId, callId, title, attendee {name, email, phone}, start,
        /// end, addVideoLink, at.
        #[version(1)]
        AppointmentSlotHeld {
            booking_id: Uuid,
            agent_id: Option<Uuid>,
            call_id: Option<Uuid>,
            title: String,
            attendee: Attendee,
            start: DateTime<Utc>,
            end: DateTime<Utc>,
            add_video_link: bool,
            at: DateTime<Utc>,
        },
        /// The provider created the event for a held slot. Payload: bookingId, callId, contact (the
        /// attendee), start, end, providerEventId, meetingLink (null while the provider is still creating
        /// the conference, or when none was asked), at.
        #[version(1)]
        AppointmentBooked {
            booking_id: Uuid,
            call_id: Option<Uuid>,
            contact: Attendee,
            start: DateTime<Utc>,
            end: DateTime<Utc>,
            provider_event_id: String,
            meeting_link: Option<String>,
            at: DateTime<Utc>,
        },
        /// A held slot was let go without a meeting. Payload: bookingId, reason (busy_at_provider |
        /// provider_failed), at.
        #[version(1)]
        AppointmentSlotReleased { booking_id: Uuid, reason: ReleaseReason, at: DateTime<Utc> },
        /// An invitee booked on the calendar's Calendly page. Payload: bookingId (derived from the invitee
        /// URI), inviteeUri, eventUri, name, email, start, end, rescheduledFrom (the invitee URI this one
        /// replaces, for a reschedule), at.
        #[version(1)]
        CalendlyInviteeScheduled {
            booking_id: Uuid,
            invitee_uri: String,
            event_uri: String,
            name: String,
            email: Option<String>,
            start: DateTime<Utc>,
            end: DateTime<Utc>,
            rescheduled_from: Option<String>,
            at: DateTime<Utc>,
        },
        /// A Calendly invitee canceled, or rescheduled (rescheduled = true; the new time arrives as its own
        /// CalendlyInviteeScheduled naming this one). Payload: bookingId, inviteeUri, rescheduled, reason, at.
        #[version(1)]
        CalendlyInviteeCanceled {
            booking_id: Uuid,
            invitee_uri: String,
            rescheduled: bool,
            reason: Option<String>,
            at: DateTime<Utc>,
        },
    }
}

/// Where one booking stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    /// Held while the provider creates the event.
    Pending,
    Booked,
    Canceled,
    Rescheduled,
    /// Let go without a meeting.
    Released,
}

/// What a calendar's stream knows of one booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub slot: Slot,
    pub status: AppointmentStatus,
    pub call_id: Option<Uuid>,
    pub provider_event_id: Option<String>,
    pub meeting_link: Option<String>,
}

impl Booking {
    /// Whether it keeps its slot from others.
    pub fn occupies(&self) -> bool {
        matches!(self.status, AppointmentStatus::Pending | AppointmentStatus::Booked)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum BookingCommand {
    /// Holds a slot unless another booking occupies it (with `buffer_minutes` around it).
    Hold {
        booking_id: Uuid,
        agent_id: Option<Uuid>,
        call_id: Option<Uuid>,
        title: String,
        attendee: Attendee,
        slot: Slot,
        add_video_link: bool,
        buffer_minutes: u32,
        now: DateTime<Utc>,
    },
    Confirm {
        booking_id: Uuid,
        provider_event_id: String,
        meeting_link: Option<String>,
        now: DateTime<Utc>,
    },
    Release {
        booking_id: Uuid,
        reason: ReleaseReason,
        now: DateTime<Utc>,
    },
    /// Records what a Calendly delivery says.
    RecordCalendly {
        delivery: CalendlyDelivery,
        now: DateTime<Utc>,
    },
}

/// What one Calendly delivery says.
#[derive(Debug, Clone, PartialEq)]
pub enum CalendlyDelivery {
    /// `invitee.created`.
    InviteeCreated {
        invitee_uri: String,
        event_uri: String,
        name: String,
        email: Option<String>,
        slot: Slot,
        /// For a reschedule: the invitee this one replaces.
        rescheduled_from: Option<String>,
    },
    /// `invitee.canceled`.
    InviteeCanceled {
        invitee_uri: String,
        /// Canceled because the invitee picked a new time (an `InviteeCreated` follows).
        rescheduled: bool,
        reason: Option<String>,
    },
}

/// Every booking of one calendar: the serialization point of its slots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CalendarBookings {
    pub bookings: BTreeMap<Uuid, Booking>,
    /// Calendly invitee URI → booking id.
    pub invitees: BTreeMap<String, Uuid>,
    /// The attendee of each booking still pending, for the confirmation.
    attendees: BTreeMap<Uuid, Attendee>,
}

impl CalendarBookings {
    /// Slots other bookings occupy, for availability.
    pub fn occupied(&self) -> Vec<Slot> {
        self.bookings
            .values()
            .filter(|b| b.occupies())
            .map(|b| b.slot)
            .collect()
    }

    /// The booking while it is still pending (None once confirmed or
    /// released: a repeat); refused when there is no such booking.
    fn pending(&self, booking_id: &Uuid) -> Result<Option<&Booking>, CalendarError> {
        let booking = self.bookings.get(booking_id).ok_or(CalendarError::BookingNotFound)?;
        Ok((booking.status == AppointmentStatus::Pending).then_some(booking))
    }
}

impl Aggregate for CalendarBookings {
    type Command = BookingCommand;
    type Error = CalendarError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        match command {
            BookingCommand::Hold {
                booking_id,
                agent_id,
                call_id,
                title,
                attendee,
                slot,
                add_video_link,
                buffer_minutes,
                now,
            } => {
                if state.bookings.contains_key(booking_id) {
                    return Ok(vec![]);
                }
                let padded = slot.padded(*buffer_minutes);
                if state.occupied().iter().any(|taken| taken.overlaps(&padded)) {
                    return Err(CalendarError::SlotTaken);
                }
                Ok(vec![BookingEvent::AppointmentSlotHeld {
                    booking_id: *booking_id,
                    agent_id: *agent_id,
                    call_id: *call_id,
                    title: title.clone(),
                    attendee: attendee.clone(),
                    start: slot.start,
                    end: slot.end,
                    add_video_link: *add_video_link,
                    at: *now,
                }])
            }
            BookingCommand::Confirm {
                booking_id,
                provider_event_id,
                meeting_link,
                now,
            } => {
                let Some(booking) = state.pending(booking_id)? else {
                    return Ok(vec![]);
                };
                Ok(vec![BookingEvent::AppointmentBooked {
                    booking_id: *booking_id,
                    call_id: booking.call_id,
                    contact: state.attendees.get(booking_id).cloned().unwrap_or(Attendee {
                        name: String::new(),
                        email: None,
                        phone: None,
                    }),
                    start: booking.slot.start,
                    end: booking.slot.end,
                    provider_event_id: provider_event_id.clone(),
                    meeting_link: meeting_link.clone(),
                    at: *now,
                }])
            }
            BookingCommand::Release {
                booking_id,
                reason,
                now,
            } => {
                if state.pending(booking_id)?.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![BookingEvent::AppointmentSlotReleased {
                    booking_id: *booking_id,
                    reason: *reason,
                    at: *now,
                }])
            }
            BookingCommand::RecordCalendly {
                delivery:
                    CalendlyDelivery::InviteeCreated {
                        invitee_uri,
                        event_uri,
                        name,
                        email,
                        slot,
                        rescheduled_from,
                    },
                now,
            } => {
                if state.invitees.contains_key(invitee_uri) {
                    return Ok(vec![]);
                }
                Ok(vec![BookingEvent::CalendlyInviteeScheduled {
                    booking_id: calendly_booking_id(invitee_uri),
                    invitee_uri: invitee_uri.clone(),
                    event_uri: event_uri.clone(),
                    name: name.clone(),
                    email: email.clone(),
                    start: slot.start,
                    end: slot.end,
                    rescheduled_from: rescheduled_from.clone(),
                    at: *now,
                }])
            }
            BookingCommand::RecordCalendly {
                delivery:
                    CalendlyDelivery::InviteeCanceled {
                        invitee_uri,
                        rescheduled,
                        reason,
                    },
                now,
            } => {
                let booking_id = calendly_booking_id(invitee_uri);
                let already = state
                    .bookings
                    .get(&booking_id)
                    .is_some_and(|b| matches!(b.status, AppointmentStatus::Canceled | AppointmentStatus::Rescheduled));
                if already {
                    return Ok(vec![]);
                }
                Ok(vec![BookingEvent::CalendlyInviteeCanceled {
                    booking_id,
                    invitee_uri: invitee_uri.clone(),
                    rescheduled: *rescheduled,
                    reason: reason.clone(),
                    at: *now,
                }])
            }
        }
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        match event {
            BookingEvent::AppointmentSlotHeld {
                booking_id,
                call_id,
                attendee,
                start,
                end,
                ..
            } => {
                self.bookings.insert(
                    *booking_id,
                    Booking {
                        slot: Slot {
                            start: *start,
                            end: *end,
                        },
                        status: AppointmentStatus::Pending,
                        call_id: *call_id,
                        provider_event_id: None,
                        meeting_link: None,
                    },
                );
                self.attendees.insert(*booking_id, attendee.clone());
            }
            BookingEvent::AppointmentBooked {
                booking_id,
                provider_event_id,
                meeting_link,
                ..
            } => {
                if let Some(booking) = self.bookings.get_mut(booking_id) {
                    booking.status = AppointmentStatus::Booked;
                    booking.provider_event_id = Some(provider_event_id.clone());
                    booking.meeting_link = meeting_link.clone();
                }
                self.attendees.remove(booking_id);
            }
            BookingEvent::AppointmentSlotReleased { booking_id, .. } => {
                if let Some(booking) = self.bookings.get_mut(booking_id) {
                    booking.status = AppointmentStatus::Released;
                }
                self.attendees.remove(booking_id);
            }
            BookingEvent::CalendlyInviteeScheduled {
                booking_id,
                invitee_uri,
                start,
                end,
                ..
            } => {
                // Calendly's own calendar already excludes these; they are kept for the appointment list.
                self.invitees.insert(invitee_uri.clone(), *booking_id);
                self.bookings.insert(
                    *booking_id,
                    Booking {
                        slot: Slot {
                            start: *start,
                            end: *end,
                        },
                        status: AppointmentStatus::Booked,
                        call_id: None,
                        provider_event_id: Some(invitee_uri.clone()),
                        meeting_link: None,
                    },
                );
            }
            BookingEvent::CalendlyInviteeCanceled {
                booking_id,
                rescheduled,
                ..
            } => {
                if let Some(booking) = self.bookings.get_mut(booking_id) {
                    booking.status = if *rescheduled {
                        AppointmentStatus::Rescheduled
                    } else {
                        AppointmentStatus::Canceled
                    };
                }
            }
        }
        self
    }
}

/// The booking id of a Calendly invitee: the same for every delivery about it.
pub fn calendly_booking_id(invitee_uri: &str) -> Uuid {
    const CALENDLY_NAMESPACE: Uuid = Uuid::from_u128(0x0ca1_e0d1_7b2a_4e61_9d3c_5a0b_c0ff_ee03);
    Uuid::new_v5(&CALENDLY_NAMESPACE, invitee_uri.as_bytes())
}

#[cfg(test)]
mod tests;
