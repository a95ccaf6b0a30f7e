//! IANA time zones, parsed when they enter (organization settings, campaigns,
//! contacts' explicit zones).

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// An IANA time zone (`America/New_York`), parsed when it enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(Tz);

impl TimeZone {
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
