//! IANA time zones, parsed when they enter (organization settings, campaigns,
//! contacts' explicit zones, calendars), and the local wall-clock values read
//! in them: days of the week, "HH:MM" times, and the instant a local time happens.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone as _, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// An IANA time zone (`America/New_York`), parsed when it enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(Tz);

impl TimeZone {
    /// SPEC's default zone: where organizations, calendars, campaigns and Slack integrations start.
    pub const DEFAULT: TimeZone = TimeZone(chrono_tz::America::New_York);

    pub const fn new(tz: Tz) -> Self {
        Self(tz)
    }

    pub fn tz(self) -> Tz {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Every IANA name accepted, for documenting the API.
    pub fn names() -> impl Iterator<Item = &'static str> {
        chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
    }
}

impl From<Tz> for TimeZone {
    fn from(tz: Tz) -> Self {
        Self(tz)
    }
}

impl TryFrom<String> for TimeZone {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        raw.parse::<Tz>()
            .map(TimeZone)
            .map_err(|_| format!("{raw:?} is not an IANA time zone like America/New_York"))
    }
}

impl std::str::FromStr for TimeZone {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        Self::try_from(raw.to_owned())
    }
}

impl From<TimeZone> for String {
    fn from(zone: TimeZone) -> String {
        zone.0.name().to_owned()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iana_names_only() {
        let zone: TimeZone = "America/Phoenix".parse().unwrap();
        assert_eq!(zone.tz(), chrono_tz::America::Phoenix);
        assert_eq!(serde_json::to_value(zone).unwrap(), "America/Phoenix");
        assert!("Mars/Olympus".parse::<TimeZone>().is_err());
        assert!(serde_json::from_value::<TimeZone>(serde_json::json!("EST5EDT-ish")).is_err());
        // The slack module keeps its name for it.
        let _: crate::slack::TimeZone = zone;
    }
}
