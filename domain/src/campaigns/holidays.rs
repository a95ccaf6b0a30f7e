//! US federal holidays (5 U.S.C. § 6103) as observed: a holiday on a Saturday
//! is observed the Friday before, one on a Sunday the Monday after.

use chrono::{Datelike, Duration, NaiveDate, Weekday};

/// The `n`th (1-based) `weekday` of a month.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u32) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n as u8).expect("every month has four of each weekday")
}

/// The last `weekday` of a month.
fn last_weekday(year: i32, month: u32, weekday: Weekday) -> NaiveDate {
    let first_of_next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .expect("valid date");
    let mut day = first_of_next - Duration::days(1);
    while day.weekday() != weekday {
        day -= Duration::days(1);
    }
    day
}

/// Where a fixed-date holiday is observed.
fn observed(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date - Duration::days(1),
        Weekday::Sun => date + Duration::days(1),
        _ => date,
    }
}

/// The observed dates of the holidays of `year`, in order. New Year's Day of
/// the following year is included when it is observed on 31 December.
pub fn observed_us_federal_holidays(year: i32) -> Vec<NaiveDate> {
    let fixed = |month, day| observed(NaiveDate::from_ymd_opt(year, month, day).expect("valid date"));
    let mut days = vec![
        fixed(1, 1),                            // New Year's Day
        nth_weekday(year, 1, Weekday::Mon, 3),  // Birthday of Martin Luther King, Jr.
        nth_weekday(year, 2, Weekday::Mon, 3),  // Washington's Birthday
        last_weekday(year, 5, Weekday::Mon),    // Memorial Day
        fixed(7, 4),                            // Independence Day
        nth_weekday(year, 9, Weekday::Mon, 1),  // Labor Day
        nth_weekday(year, 10, Weekday::Mon, 2), // Columbus Day
        fixed(11, 11),                          // Veterans Day
        nth_weekday(year, 11, Weekday::Thu, 4), // Thanksgiving Day
        fixed(12, 25),                          // Christmas Day
    ];
    if year >= 2021 {
        days.push(fixed(6, 19)); // Juneteenth National Independence Day, since 2021
    }
    let next_new_year = observed(NaiveDate::from_ymd_opt(year + 1, 1, 1).expect("valid date"));
    if next_new_year.year() == year {
        days.push(next_new_year);
    }
    days.retain(|d| d.year() == year);
    days.sort();
    days
}

/// Whether `date` is a day off for a US federal holiday (observed).
pub fn is_us_federal_holiday(date: NaiveDate) -> bool {
    observed_us_federal_holidays(date.year()).contains(&date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_2026_holidays_as_opm_lists_them() {
        let expected = [
            "2026-01-01",
            "2026-01-19",
            "2026-02-16",
            "2026-05-25",
            "2026-06-19",
            "2026-07-03", // 4 July is a Saturday
            "2026-09-07",
            "2026-10-12",
            "2026-11-11",
            "2026-11-26",
            "2026-12-25",
        ]
        .map(d);
        assert_eq!(observed_us_federal_holidays(2026), expected);
    }

    #[test]
    fn weekend_holidays_move_to_the_nearest_weekday() {
        // Sunday → Monday.
        assert!(is_us_federal_holiday(d("2023-01-02")));
        assert!(!is_us_federal_holiday(d("2023-01-01")));
        assert!(is_us_federal_holiday(d("2022-12-26")));
        // Saturday New Year's Day 2022 → Friday 31 December 2021.
        assert!(is_us_federal_holiday(d("2021-12-31")));
        assert!(!is_us_federal_holiday(d("2022-01-01")));
        // Juneteenth 2027 is a Saturday → Friday 18 June.
        assert!(is_us_federal_holiday(d("2027-06-18")));
        // Thanksgiving is the fourth Thursday, not the last (November 2018 had five).
        assert!(is_us_federal_holiday(d("2018-11-22")));
        assert!(!is_us_federal_holiday(d("2018-11-29")));
        // Memorial Day is the last Monday of May.
        assert!(is_us_federal_holiday(d("2027-05-31")));
        assert!(
            !is_us_federal_holiday(d("2026-11-27")),
            "the day after Thanksgiving is a working day"
        );
    }
}
