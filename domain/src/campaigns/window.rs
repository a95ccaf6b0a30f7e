//! Calling windows in the *recipient's* local time: which zones a contact may
//! be in, the stricter rules of some states, and when the window is (or next
//! will be) open. DST-correct: every check converts the instant to each zone's
//! local time with the IANA rules (Arizona and Hawaii keep no DST).

use super::area_codes;
use super::holidays::is_us_federal_holiday;
use super::CampaignError;
use crate::phone::PhoneNumber;
use crate::time_zone::TimeZone;
pub use crate::time_zone::{local_instant, DayOfWeek, LocalTime};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The TCPA default: no calls before 08:00 or from 21:00 on, local time.
pub const EARLIEST_START: NaiveTime = NaiveTime::from_hms_opt(8, 0, 0).unwrap();
pub const LATEST_END: NaiveTime = NaiveTime::from_hms_opt(21, 0, 0).unwrap();

/// At most this many attempts on one contact in any 24 hours.
pub const MAX_ATTEMPTS_PER_24H: u32 = 3;

/// How far ahead `next_callable_at` looks for an opening.
const LOOKAHEAD_DAYS: i64 = 21;

/// The zones a North American number of an unknown area code may be in.
const MAINLAND_ZONES: [chrono_tz::Tz; 4] = [
    chrono_tz::America::New_York,
    chrono_tz::America::Chicago,
    chrono_tz::America::Denver,
    chrono_tz::America::Los_Angeles,
];

/// When contacts may be called, in each recipient's local time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
            start: LocalTime::new(EARLIEST_START),
            end: LocalTime::new(LATEST_END),
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
        if self.start.time() < EARLIEST_START {
            return Err(invalid("callingWindow.start", "must not be before 08:00"));
        }
        if self.end.time() > LATEST_END {
            return Err(invalid("callingWindow.end", "must not be after 21:00"));
        }
        if self.end.time() <= self.start.time() {
            return Err(invalid("callingWindow.end", "must be after callingWindow.start"));
        }
        if self.days.is_empty() {
            return Err(invalid("callingWindow.days", "must name at least one day"));
        }
        if crate::has_repeats(&self.days) {
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
            // A North American number whose area code the table does not know could be anywhere
            // on the continent: the campaign's zone counts only where it is the narrower window.
            (None, None) if phone.as_str().starts_with("+1") => {
                std::iter::once(campaign_zone.tz()).chain(MAINLAND_ZONES).collect()
            }
            (None, None) => vec![campaign_zone.tz()],
        };
        let region = area.map(|info| info.region);
        let rule = region.and_then(state_rule);
        let mut days = [false; 7];
        for day in &window.days {
            days[*day as usize] = true;
        }
        let (mut start, mut end) = (window.start.time(), window.end.time());
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

#[cfg(test)]
mod tests {
    #[test]
    fn an_unknown_north_american_area_code_is_called_only_when_the_whole_mainland_may_be() {
        let toll_free = PhoneNumber::parse("+18005550100").unwrap();
        assert!(area_codes::of_number(&toll_free).is_none());
        let window = RecipientWindow::for_contact(
            &CallingWindow::default(),
            TimeZone::new(chrono_tz::America::New_York),
            &toll_free,
            None,
        );
        let at = |t: &str| t.parse::<DateTime<Utc>>().unwrap();
        // 09:00 in New York is 06:00 in California.
        assert!(!window.is_callable_at(at("2026-11-10T14:00:00Z")));
        // 11:30 in New York, 08:30 in California.
        assert!(window.is_callable_at(at("2026-11-10T16:30:00Z")));
        assert_eq!(
            window.next_callable_at(at("2026-11-10T14:00:00Z")),
            Some(at("2026-11-10T16:00:00Z"))
        );
        // Outside North America, the campaign's zone is all there is.
        let london = PhoneNumber::parse("+442079460958").unwrap();
        let abroad = RecipientWindow::for_contact(
            &CallingWindow::default(),
            TimeZone::new(chrono_tz::Europe::London),
            &london,
            None,
        );
        assert!(abroad.is_callable_at(at("2026-11-10T08:30:00Z")));
    }

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn zone(name: &str) -> TimeZone {
        name.parse().unwrap()
    }

    fn phone(e164: &str) -> PhoneNumber {
        PhoneNumber::parse(e164).unwrap()
    }

    /// The default window (08:00–21:00 every day) for `number`, campaign zone New York.
    fn window_of(number: &str) -> RecipientWindow {
        RecipientWindow::for_contact(
            &CallingWindow::default(),
            zone("America/New_York"),
            &phone(number),
            None,
        )
    }

    const NEW_YORK: &str = "+12125550101";
    const HONOLULU: &str = "+18085550101";
    const PHOENIX: &str = "+16025550101";
    const DENVER: &str = "+13035550101";
    const MIAMI: &str = "+13055550101";
    const NORTH_DAKOTA: &str = "+17015550101";

    #[test]
    fn a_hawaii_number_is_not_callable_at_eight_eastern() {
        // Tuesday 24 November 2026, 08:00 EST = 13:00 UTC = 03:00 in Honolulu.
        let eight_eastern = at("2026-11-24T13:00:00Z");
        assert!(window_of(NEW_YORK).is_callable_at(eight_eastern));
        assert!(!window_of(NEW_YORK).is_callable_at(eight_eastern - Duration::seconds(1)));
        let hawaii = window_of(HONOLULU);
        assert_eq!(hawaii.zones(), [chrono_tz::Pacific::Honolulu]);
        assert!(!hawaii.is_callable_at(eight_eastern));
        // 08:00 in Honolulu (UTC-10, no DST) is 18:00 UTC.
        assert!(!hawaii.is_callable_at(at("2026-11-24T17:59:59Z")));
        assert!(hawaii.is_callable_at(at("2026-11-24T18:00:00Z")));
        assert_eq!(hawaii.next_callable_at(eight_eastern), Some(at("2026-11-24T18:00:00Z")));
        // In July too (Hawaii keeps no DST, New York does): 08:00 EDT = 12:00 UTC = 02:00 HST.
        assert!(!hawaii.is_callable_at(at("2026-07-14T12:00:00Z")));
        assert!(hawaii.is_callable_at(at("2026-07-14T18:00:00Z")));
    }

    #[test]
    fn arizona_keeps_utc_minus_seven_after_the_march_dst_change() {
        let (phoenix, denver) = (window_of(PHOENIX), window_of(DENVER));
        // Before the change (2 March): both at UTC-7, both open at 15:00 UTC.
        assert!(!phoenix.is_callable_at(at("2026-03-02T14:30:00Z")));
        assert!(!denver.is_callable_at(at("2026-03-02T14:30:00Z")));
        assert!(phoenix.is_callable_at(at("2026-03-02T15:00:00Z")));
        // After the change (8 March): Denver is UTC-6 and opens at 14:00 UTC; Phoenix still at 15:00.
        let monday = at("2026-03-09T14:30:00Z");
        assert!(denver.is_callable_at(monday), "08:30 MDT");
        assert!(!phoenix.is_callable_at(monday), "07:30 MST");
        assert_eq!(phoenix.next_callable_at(monday), Some(at("2026-03-09T15:00:00Z")));
        // And closes an hour after Denver: 21:00 MDT = 03:00 UTC, 21:00 MST = 04:00 UTC.
        assert!(!denver.is_callable_at(at("2026-03-10T03:00:00Z")));
        assert!(phoenix.is_callable_at(at("2026-03-10T03:00:00Z")));
        assert!(!phoenix.is_callable_at(at("2026-03-10T04:00:00Z")));
    }

    #[test]
    fn a_split_area_code_allows_only_the_intersection() {
        // 701 (North Dakota): Central and Mountain. In November, 08:00 MST = 15:00 UTC opens
        // both; 21:00 CST = 03:00 UTC closes the Central side.
        let dakota = window_of(NORTH_DAKOTA);
        assert_eq!(dakota.zones().len(), 2);
        assert!(
            !dakota.is_callable_at(at("2026-11-24T14:30:00Z")),
            "08:30 CST but 07:30 MST"
        );
        assert!(dakota.is_callable_at(at("2026-11-24T15:00:00Z")));
        assert!(dakota.is_callable_at(at("2026-11-25T02:59:00Z")));
        assert!(!dakota.is_callable_at(at("2026-11-25T03:00:00Z")), "21:00 CST");
        assert_eq!(
            dakota.next_callable_at(at("2026-11-24T14:30:00Z")),
            Some(at("2026-11-24T15:00:00Z"))
        );
        assert_eq!(
            dakota.next_callable_at(at("2026-11-25T03:00:00Z")),
            Some(at("2026-11-25T15:00:00Z"))
        );
        // 850 (Florida panhandle) spans Eastern and Central, and Florida stops at 20:00:
        // 08:00 CST = 14:00 UTC to 20:00 EST = 01:00 UTC.
        let panhandle = window_of("+18505550101");
        assert!(!panhandle.is_callable_at(at("2026-11-24T13:30:00Z")));
        assert!(panhandle.is_callable_at(at("2026-11-24T14:00:00Z")));
        assert!(panhandle.is_callable_at(at("2026-11-25T00:59:00Z")));
        assert!(!panhandle.is_callable_at(at("2026-11-25T01:00:00Z")));
    }

    #[test]
    fn an_explicit_time_zone_always_wins() {
        let window = CallingWindow::default();
        let eight_eastern = at("2026-11-24T13:00:00Z");
        let hawaii_in_new_york = RecipientWindow::for_contact(
            &window,
            zone("America/Los_Angeles"),
            &phone(HONOLULU),
            Some(zone("America/New_York")),
        );
        assert_eq!(hawaii_in_new_york.zones(), [chrono_tz::America::New_York]);
        assert!(hawaii_in_new_york.is_callable_at(eight_eastern));
        let new_yorker_in_hawaii = RecipientWindow::for_contact(
            &window,
            zone("America/New_York"),
            &phone(NEW_YORK),
            Some(zone("Pacific/Honolulu")),
        );
        assert!(!new_yorker_in_hawaii.is_callable_at(eight_eastern));
        // No explicit zone and no known area code: the campaign's zone.
        let london = RecipientWindow::for_contact(&window, zone("America/Los_Angeles"), &phone("+442079460958"), None);
        assert_eq!(london.zones(), [chrono_tz::America::Los_Angeles]);
        assert!(!london.is_callable_at(at("2026-11-24T15:59:00Z")));
        assert!(london.is_callable_at(at("2026-11-24T16:00:00Z")));
    }

    #[test]
    fn florida_stops_at_twenty_hundred() {
        let (miami, new_york) = (window_of(MIAMI), window_of(NEW_YORK));
        assert_eq!(miami.region(), Some("FL"));
        assert_eq!(miami.max_attempts_per_24h(), 3);
        // 19:59 and 20:00 EST on Tuesday 24 November.
        assert!(miami.is_callable_at(at("2026-11-25T00:59:00Z")));
        assert!(!miami.is_callable_at(at("2026-11-25T01:00:00Z")));
        assert!(
            new_york.is_callable_at(at("2026-11-25T01:00:00Z")),
            "New York calls until 21:00"
        );
        assert_eq!(
            miami.next_callable_at(at("2026-11-25T01:00:00Z")),
            Some(at("2026-11-25T13:00:00Z"))
        );
        // A narrower campaign window still applies inside the state's.
        let narrow = CallingWindow {
            start: "10:00".to_owned().try_into().unwrap(),
            end: "19:00".to_owned().try_into().unwrap(),
            ..CallingWindow::default()
        };
        let miami_narrow = RecipientWindow::for_contact(&narrow, zone("America/New_York"), &phone(MIAMI), None);
        assert_eq!(
            miami_narrow.hours(),
            (
                NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
                NaiveTime::from_hms_opt(19, 0, 0).unwrap()
            )
        );
        // Connecticut starts at 09:00; Louisiana takes no Sunday calls.
        let hartford = window_of("+18605550101");
        assert!(!hartford.is_callable_at(at("2026-11-24T13:30:00Z")));
        assert!(hartford.is_callable_at(at("2026-11-24T14:00:00Z")));
        let new_orleans = window_of("+15045550101");
        assert!(
            !new_orleans.is_callable_at(at("2026-11-29T17:00:00Z")),
            "Sunday 11:00 CST"
        );
        assert_eq!(
            new_orleans.next_callable_at(at("2026-11-29T17:00:00Z")),
            Some(at("2026-11-30T14:00:00Z"))
        );
        assert!(STATE_RULES.iter().all(|rule| !rule.verified && !rule.law.is_empty()));
    }

    #[test]
    fn next_callable_skips_the_weekend_and_an_observed_federal_holiday() {
        let weekdays = CallingWindow {
            days: vec![
                DayOfWeek::Mon,
                DayOfWeek::Tue,
                DayOfWeek::Wed,
                DayOfWeek::Thu,
                DayOfWeek::Fri,
            ],
            skip_us_federal_holidays: true,
            ..CallingWindow::default()
        };
        let new_york = RecipientWindow::for_contact(&weekdays, zone("America/New_York"), &phone(NEW_YORK), None);
        // Thursday 2 July 2026, 21:30 EDT. Independence Day (Saturday 4 July) is observed on
        // Friday 3 July; then the weekend: the next opening is Monday 6 July, 08:00 EDT.
        let thursday_night = at("2026-07-03T01:30:00Z");
        assert_eq!(
            new_york.next_callable_at(thursday_night),
            Some(at("2026-07-06T12:00:00Z"))
        );
        assert!(!new_york.is_callable_at(at("2026-07-03T14:00:00Z")), "observed holiday");
        // Without the holiday rule, Friday morning.
        let no_holidays = CallingWindow {
            skip_us_federal_holidays: false,
            ..weekdays.clone()
        };
        let plain = RecipientWindow::for_contact(&no_holidays, zone("America/New_York"), &phone(NEW_YORK), None);
        assert_eq!(plain.next_callable_at(thursday_night), Some(at("2026-07-03T12:00:00Z")));
        // Friday evening before Thanksgiving week is not affected; the Thursday is.
        assert!(!new_york.is_callable_at(at("2026-11-26T15:00:00Z")), "Thanksgiving");
        assert_eq!(
            new_york.next_callable_at(at("2026-11-26T15:00:00Z")),
            Some(at("2026-11-27T13:00:00Z"))
        );
        // The holiday is judged by the recipient's local date: Honolulu is still on Thursday 2 July
        // at 03:00 UTC on the 3rd, and Friday the 3rd is a holiday there too.
        let honolulu = RecipientWindow::for_contact(&weekdays, zone("America/New_York"), &phone(HONOLULU), None);
        assert!(
            honolulu.is_callable_at(at("2026-07-03T03:00:00Z")),
            "Thursday 17:00 HST"
        );
        assert_eq!(
            honolulu.next_callable_at(at("2026-07-03T08:00:00Z")),
            Some(at("2026-07-06T18:00:00Z"))
        );
    }

    #[test]
    fn the_campaign_schedule_bounds_the_window() {
        let window =
            window_of(NEW_YORK).within_schedule(Some(at("2026-11-25T16:00:00Z")), Some(at("2026-11-26T18:00:00Z")));
        assert!(!window.is_callable_at(at("2026-11-24T16:00:00Z")), "before the start");
        assert_eq!(
            window.next_callable_at(at("2026-11-24T16:00:00Z")),
            Some(at("2026-11-25T16:00:00Z"))
        );
        assert!(window.is_callable_at(at("2026-11-26T17:59:00Z")));
        assert!(!window.is_callable_at(at("2026-11-26T18:00:00Z")), "after the end");
        assert_eq!(window.next_callable_at(at("2026-11-26T18:00:00Z")), None);
        assert_eq!(
            window.next_callable_at(at("2026-11-26T02:30:00Z")),
            Some(at("2026-11-26T13:00:00Z"))
        );
    }

    #[test]
    fn dst_change_days_open_at_local_eight() {
        let new_york = window_of(NEW_YORK);
        // Spring forward (Sunday 8 March 2026): 08:00 EDT = 12:00 UTC.
        assert_eq!(
            new_york.next_callable_at(at("2026-03-08T05:00:00Z")),
            Some(at("2026-03-08T12:00:00Z"))
        );
        // Fall back (Sunday 1 November 2026): 08:00 EST = 13:00 UTC.
        assert_eq!(
            new_york.next_callable_at(at("2026-11-01T04:30:00Z")),
            Some(at("2026-11-01T13:00:00Z"))
        );
        assert!(!new_york.is_callable_at(at("2026-11-01T12:30:00Z")), "07:30 EST");
        // Local times that do not exist start when the gap ends; repeated ones at their first occurrence.
        let ny = chrono_tz::America::New_York;
        let date = |s: &str| s.parse::<NaiveDate>().unwrap();
        let time = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert_eq!(
            local_instant(ny, date("2026-03-08"), time(2, 30)),
            at("2026-03-08T07:00:00Z")
        );
        assert_eq!(
            local_instant(ny, date("2026-11-01"), time(1, 30)),
            at("2026-11-01T05:30:00Z")
        );
        assert_eq!(
            local_instant(ny, date("2026-11-02"), time(8, 0)),
            at("2026-11-02T13:00:00Z")
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn area_codes() -> Vec<&'static str> {
            let mut codes: Vec<_> = area_codes::all().map(|info| info.area_code).collect();
            codes.sort_unstable();
            codes
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            /// `next_callable_at` finds a callable instant, never before `now`, with no callable
            /// instant before it (sampled every five minutes), for any area code, window and day.
            #[test]
            fn the_next_opening_is_callable_and_nothing_earlier_is(
                code in 0usize..1000,
                seconds in 0i64..(2 * 365 * 24 * 3600),
                start_quarter in 0u32..20,
                length_quarters in 1u32..=52,
                day_mask in 1u8..128,
                skip_holidays in any::<bool>(),
            ) {
                let codes = area_codes();
                let code = codes[code % codes.len()];
                let start = EARLIEST_START + Duration::minutes(15 * i64::from(start_quarter));
                let end = (start + Duration::minutes(15 * i64::from(length_quarters))).min(LATEST_END);
                prop_assume!(end > start);
                let window = CallingWindow {
                    start: LocalTime::new(start),
                    end: LocalTime::new(end),
                    days: DayOfWeek::ALL.into_iter().filter(|d| day_mask & (1 << *d as u8) != 0).collect(),
                    skip_us_federal_holidays: skip_holidays,
                };
                prop_assert!(window.validate().is_ok());
                let number = PhoneNumber::parse(&format!("+1{code}5550101"));
                prop_assume!(number.is_ok());
                let recipient = RecipientWindow::for_contact(&window, zone("America/New_York"), &number.unwrap(), None);
                let now = at("2026-01-01T00:00:00Z") + Duration::seconds(seconds);
                let next = recipient.next_callable_at(now);
                if recipient.is_callable_at(now) {
                    prop_assert_eq!(next, Some(now));
                }
                if let Some(next) = next {
                    prop_assert!(next >= now);
                    prop_assert!(recipient.is_callable_at(next), "{code}: {next} is not callable");
                    let mut probe = now;
                    while probe < next {
                        prop_assert!(!recipient.is_callable_at(probe), "{code}: {probe} is callable before {next}");
                        probe += Duration::minutes(5);
                    }
                } else {
                    // Only zones whose windows never overlap, or a state rule that leaves no
                    // hours (a 08:00–08:15 window where calls start at 09:00) or no days (Sundays
                    // only, where Sunday calls are banned) of the window, may have no opening.
                    let never_opens = recipient.start >= recipient.end || !recipient.days.contains(&true);
                    prop_assert!(recipient.zones().len() > 1 || never_opens, "{code}: no opening from {now}");
                }
            }
        }
    }

    #[test]
    fn windows_never_wider_than_the_tcpa_hours() {
        let window = |start: &str, end: &str| CallingWindow {
            start: start.to_owned().try_into().unwrap(),
            end: end.to_owned().try_into().unwrap(),
            ..CallingWindow::default()
        };
        assert!(window("08:00", "21:00").validate().is_ok());
        assert!(window("09:15", "17:45").validate().is_ok());
        assert!(window("07:59", "21:00").validate().is_err());
        assert!(window("08:00", "21:01").validate().is_err());
        assert!(LocalTime::try_from("8am".to_owned()).is_err());
        let parsed: CallingWindow =
            serde_json::from_value(serde_json::json!({"start": "09:00", "end": "17:00", "days": ["mon", "fri"]}))
                .unwrap();
        assert_eq!(parsed.days, [DayOfWeek::Mon, DayOfWeek::Fri]);
        assert!(!parsed.skip_us_federal_holidays);
        // Days not in the window are closed.
        let fridays = RecipientWindow::for_contact(&parsed, zone("America/New_York"), &phone(NEW_YORK), None);
        assert!(!fridays.is_callable_at(at("2026-11-24T15:00:00Z")), "a Tuesday");
        assert_eq!(
            fridays.next_callable_at(at("2026-11-24T15:00:00Z")),
            Some(at("2026-11-27T14:00:00Z"))
        );
    }
}
