//! Calling windows in the *recipient's* local time: which zones a contact may
//! be in, the stricter rules of some states, and when the window is (or next
//! will be) open. DST-correct: every check converts the instant to each zone's
//! local time with the IANA rules (Arizona and Hawaii keep no DST).

use super::area_codes;
use super::holidays::is_us_federal_holiday;
use super::CampaignError;
use crate::phone::PhoneNumber;
use crate::time_zone::TimeZone;
use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone as _, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The TCPA default: no calls before 08:00 or from 21:00 on, local time.
pub const EARLIEST_START: NaiveTime = NaiveTime::from_hms_opt(8, 0, 0).unwrap();
pub const LATEST_END: NaiveTime = NaiveTime::from_hms_opt(21, 0, 0).unwrap();

/// At most this many attempts on one contact in any 24 hours.
pub const MAX_ATTEMPTS_PER_24H: u32 = 3;

/// How far ahead `next_callable_at` looks for an opening.
const LOOKAHEAD_DAYS: i64 = 21;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DayOfWeek {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl DayOfWeek {
    pub const ALL: [DayOfWeek; 7] = [
        DayOfWeek::Mon,
        DayOfWeek::Tue,
        DayOfWeek::Wed,
        DayOfWeek::Thu,
        DayOfWeek::Fri,
        DayOfWeek::Sat,
        DayOfWeek::Sun,
    ];

    pub fn of(weekday: Weekday) -> Self {
        Self::ALL[weekday.num_days_from_monday() as usize]
    }
}

/// A local wall-clock time, "HH:MM" in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalTime(NaiveTime);

impl LocalTime {
    pub const fn new(time: NaiveTime) -> Self {
        Self(time)
    }

    pub fn time(self) -> NaiveTime {
        self.0
    }
}

impl TryFrom<String> for LocalTime {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        NaiveTime::parse_from_str(&raw, "%H:%M")
            .map(LocalTime)
            .map_err(|_| format!("{raw:?} is not a local time like 08:00"))
    }
}

impl From<LocalTime> for String {
    fn from(time: LocalTime) -> String {
        time.0.format("%H:%M").to_string()
    }
}

/// When contacts may be called, in each recipient's local time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallingWindow {
    pub start: LocalTime,
    pub end: LocalTime,
    pub days: Vec<DayOfWeek>,
    #[serde(default)]
    pub skip_us_federal_holidays: bool,
}

impl Default for CallingWindow {
    /// 08:00–21:00 every day, holidays included.
    fn default() -> Self {
        Self {
            start: LocalTime(EARLIEST_START),
            end: LocalTime(LATEST_END),
            days: DayOfWeek::ALL.to_vec(),
            skip_us_federal_holidays: false,
        }
    }
}

impl CallingWindow {
    /// Narrower than 08:00–21:00 is allowed, wider never.
    pub fn validate(&self) -> Result<(), CampaignError> {
        let invalid = |field: &'static str, reason: &str| CampaignError::Invalid {
            field,
            reason: reason.to_owned(),
        };
        if self.start.0 < EARLIEST_START {
            return Err(invalid("callingWindow.start", "must not be before 08:00"));
        }
        if self.end.0 > LATEST_END {
            return Err(invalid("callingWindow.end", "must not be after 21:00"));
        }
        if self.end.0 <= self.start.0 {
            return Err(invalid("callingWindow.end", "must be after callingWindow.start"));
        }
        if self.days.is_empty() {
            return Err(invalid("callingWindow.days", "must name at least one day"));
        }
        let mut days = self.days.clone();
        days.sort();
        days.dedup();
        if days.len() != self.days.len() {
            return Err(invalid("callingWindow.days", "names a day twice"));
        }
        Ok(())
    }
}

/// A state's stricter telemarketing rule. All entries are *(unverified)*, as
/// in PROVIDERS.md: check them against the statutes before relying on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateRule {
    pub region: &'static str,
    /// Local hours, (hour, minute).
    pub start: (u32, u32),
    pub end: (u32, u32),
    /// Calls to one person on one subject in 24 hours.
    pub max_attempts_per_24h: Option<u32>,
    pub sundays_allowed: bool,
    /// The law the rule comes from.
    pub law: &'static str,
    pub verified: bool,
}

/// Stricter state rules (all *unverified*, see [`StateRule`]).
pub const STATE_RULES: &[StateRule] = &[
    StateRule {
        region: "FL",
        start: (8, 0),
        end: (20, 0),
        max_attempts_per_24h: Some(3),
        sundays_allowed: true,
        law: "Florida Telephone Solicitation Act, Fla. Stat. § 501.616 (as amended 2021)",
        verified: false,
    },
    StateRule {
        region: "OK",
        start: (8, 0),
        end: (20, 0),
        max_attempts_per_24h: Some(3),
        sundays_allowed: true,
        law: "Oklahoma Telephone Solicitation Act of 2022, 15 O.S. § 775C.4",
        verified: false,
    },
    StateRule {
        region: "MD",
        start: (8, 0),
        end: (20, 0),
        max_attempts_per_24h: Some(3),
        sundays_allowed: true,
        law: "Maryland Stop the Spam Calls Act of 2023, Md. Code, Com. Law § 14-4503",
        verified: false,
    },
    StateRule {
        region: "WA",
        start: (8, 0),
        end: (20, 0),
        max_attempts_per_24h: None,
        sundays_allowed: true,
        law: "RCW 80.36.390",
        verified: false,
    },
    StateRule {
        region: "CT",
        start: (9, 0),
        end: (20, 0),
        max_attempts_per_24h: None,
        sundays_allowed: true,
        law: "Conn. Gen. Stat. § 42-288a (as amended 2023)",
        verified: false,
    },
    StateRule {
        region: "MA",
        start: (8, 0),
        end: (20, 0),
        max_attempts_per_24h: None,
        sundays_allowed: true,
        law: "940 CMR 19.00, M.G.L. c. 159C",
        verified: false,
    },
    StateRule {
        region: "LA",
        start: (8, 0),
        end: (20, 0),
        max_attempts_per_24h: None,
        sundays_allowed: false,
        law: "Louisiana Telephone Solicitation Relief Act, La. R.S. 45:844.11 et seq.",
        verified: false,
    },
];

/// The stricter rule of a state or province, if the table has one.
pub fn state_rule(region: &str) -> Option<&'static StateRule> {
    STATE_RULES.iter().find(|rule| rule.region == region)
}

fn hm((hour, minute): (u32, u32)) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).expect("table times are valid")
}

/// The window one contact may be called in: the campaign's window, narrowed by
/// the contact's state rule, in every zone the contact may be in, and within
/// the campaign's schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipientWindow {
    zones: Vec<Tz>,
    region: Option<&'static str>,
    start: NaiveTime,
    end: NaiveTime,
    /// Allowed days, Monday first.
    days: [bool; 7],
    skip_holidays: bool,
    not_before: Option<DateTime<Utc>>,
    not_after: Option<DateTime<Utc>>,
    max_attempts_per_24h: u32,
}

impl RecipientWindow {
    /// Zones: the contact's explicit IANA zone always wins; else every zone of
    /// its NANP area code (the window is the intersection of theirs); else the
    /// campaign's zone. The state rule follows the area code's state whatever
    /// the zone (a stricter rule never hurts).
    pub fn for_contact(
        window: &CallingWindow,
        campaign_zone: TimeZone,
        phone: &PhoneNumber,
        explicit_zone: Option<TimeZone>,
    ) -> Self {
        let area = area_codes::of_number(phone);
        let zones = match (explicit_zone, area) {
            (Some(zone), _) => vec![zone.tz()],
            (None, Some(info)) => info.zones.clone(),
            (None, None) => vec![campaign_zone.tz()],
        };
        let region = area.map(|info| info.region);
        let rule = region.and_then(state_rule);
        let mut days = [false; 7];
        for day in &window.days {
            days[*day as usize] = true;
        }
        let (mut start, mut end) = (window.start.0, window.end.0);
        let mut max_attempts_per_24h = MAX_ATTEMPTS_PER_24H;
        if let Some(rule) = rule {
            start = start.max(hm(rule.start));
            end = end.min(hm(rule.end));
            if !rule.sundays_allowed {
                days[DayOfWeek::Sun as usize] = false;
            }
            if let Some(cap) = rule.max_attempts_per_24h {
                max_attempts_per_24h = max_attempts_per_24h.min(cap);
            }
        }
        Self {
            zones,
            region,
            start,
            end,
            days,
            skip_holidays: window.skip_us_federal_holidays,
            not_before: None,
            not_after: None,
            max_attempts_per_24h,
        }
    }

    /// Limits the window to the campaign's schedule: from `start`, until (not including) `end`.
    pub fn within_schedule(mut self, start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Self {
        self.not_before = start;
        self.not_after = end;
        self
    }

    pub fn zones(&self) -> &[Tz] {
        &self.zones
    }

    /// The state or province of the contact's area code.
    pub fn region(&self) -> Option<&'static str> {
        self.region
    }

    /// The effective local hours, after the state rule.
    pub fn hours(&self) -> (NaiveTime, NaiveTime) {
        (self.start, self.end)
    }

    /// Attempts allowed in any 24 hours (the general cap or the state's, whichever is lower).
    pub fn max_attempts_per_24h(&self) -> u32 {
        self.max_attempts_per_24h
    }

    fn open_in(&self, zone: Tz, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&zone);
        let time = local.time();
        self.day_allowed(local.date_naive()) && time >= self.start && time < self.end
    }

    fn day_allowed(&self, date: NaiveDate) -> bool {
        self.days[date.weekday().num_days_from_monday() as usize]
            && !(self.skip_holidays && is_us_federal_holiday(date))
    }

    fn in_schedule(&self, at: DateTime<Utc>) -> bool {
        self.not_before.is_none_or(|start| at >= start) && self.not_after.is_none_or(|end| at < end)
    }

    /// Whether the contact may be called at `at`: inside the schedule, and
    /// inside the window in every zone the contact may be in.
    pub fn is_callable_at(&self, at: DateTime<Utc>) -> bool {
        self.start < self.end && self.in_schedule(at) && self.zones.iter().all(|zone| self.open_in(*zone, at))
    }

    /// The first instant at or after `now` when the contact may be called;
    /// `None` when the window never opens before the schedule ends (or within
    /// three weeks, e.g. zones whose windows never overlap).
    pub fn next_callable_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let from = self.not_before.map_or(now, |start| start.max(now));
        if self.is_callable_at(from) {
            return Some(from);
        }
        // The intersection opens when its last zone opens: at one of the
        // zones' local opening instants.
        let mut best: Option<DateTime<Utc>> = None;
        for zone in &self.zones {
            let today = from.with_timezone(zone).date_naive();
            for offset in -1..=LOOKAHEAD_DAYS {
                let date = today + Duration::days(offset);
                if !self.day_allowed(date) {
                    continue;
                }
                let opening = local_instant(*zone, date, self.start);
                if opening > from && best.is_none_or(|b| opening < b) && self.is_callable_at(opening) {
                    best = Some(opening);
                }
            }
        }
        best
    }
}

/// The instant a local wall-clock time happens in `zone`: the first of two
/// when clocks go back; when clocks go forward over it, the end of the gap.
pub fn local_instant(zone: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let wall = date.and_time(time);
    match zone.from_local_datetime(&wall) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => (1..=24 * 60)
            .find_map(|minutes| {
                zone.from_local_datetime(&(wall + Duration::minutes(minutes)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&wall)),
    }
}
