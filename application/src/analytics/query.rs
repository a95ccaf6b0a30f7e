//! The parameters every analytics endpoint takes, checked once.

use crate::error::AppError;
use chrono::NaiveDate;
use domain::calls::Outcome;
use domain::time_zone::TimeZone;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Longest range one request may cover, in days (a leap year).
pub const MAX_RANGE_DAYS: i64 = 366;

/// Fewest calls a heatmap cell, hour or weekday needs to be ranked, unless the request says otherwise.
const DEFAULT_MIN_SAMPLE: i64 = 5;

/// The outcome a call must reach to count as converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversionTarget {
    Qualified,
    Appointment,
    Sale,
}

impl ConversionTarget {
    pub fn as_str(self) -> &'static str {
        self.outcome().as_str()
    }

    pub fn outcome(self) -> Outcome {
        match self {
            ConversionTarget::Qualified => Outcome::Qualified,
            ConversionTarget::Appointment => Outcome::Appointment,
            ConversionTarget::Sale => Outcome::Sale,
        }
    }
}

/// The request's parameters as they came (strings, so each bad one gets its own 400).
#[derive(Debug, Clone, Default)]
pub struct AnalyticsQueryInput {
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub agent_ids: Vec<String>,
    pub campaign_ids: Vec<String>,
    pub outcome: Option<String>,
    pub min_sample: Option<String>,
}

/// A checked analytics request: an inclusive range of local dates in the organization's zone.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsQuery {
    pub organization_id: Uuid,
    pub timezone: TimeZone,
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// Empty: every agent.
    pub agent_ids: Vec<Uuid>,
    /// Empty: every campaign (and calls outside campaigns).
    pub campaign_ids: Vec<Uuid>,
    pub target: ConversionTarget,
    pub min_sample: i64,
}

fn date(field: &'static str, raw: &str) -> Result<NaiveDate, AppError> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| AppError::validation(field, format!("{field} must be a date as YYYY-MM-DD, not {raw:?}")))
}

fn ids(field: &'static str, raw: &[String]) -> Result<Vec<Uuid>, AppError> {
    let mut ids = raw
        .iter()
        .flat_map(|value| value.split(','))
        .map(|value| {
            Uuid::parse_str(value.trim())
                .map_err(|_| AppError::validation(field, format!("{field} must be ids, not {value:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

impl AnalyticsQueryInput {
    /// Checks the parameters; without dates, the last 30 local days up to `today`.
    pub fn check(
        self,
        organization_id: Uuid,
        timezone: TimeZone,
        today: NaiveDate,
    ) -> Result<AnalyticsQuery, AppError> {
        let end = self.end_date.as_deref().map(|raw| date("endDate", raw)).transpose()?;
        let start = self
            .start_date
            .as_deref()
            .map(|raw| date("startDate", raw))
            .transpose()?;
        let end = end.unwrap_or(today);
        let start = start.unwrap_or(end - chrono::Duration::days(29));
        if end < start {
            return Err(AppError::validation("endDate", "endDate must not be before startDate"));
        }
        if (end - start).num_days() + 1 > MAX_RANGE_DAYS {
            return Err(AppError::validation(
                "endDate",
                format!("a range covers at most {MAX_RANGE_DAYS} days"),
            ));
        }
        let target = match self.outcome.as_deref().map(str::trim) {
            None | Some("") | Some("qualified") => ConversionTarget::Qualified,
            Some("appointment") => ConversionTarget::Appointment,
            Some("sale") => ConversionTarget::Sale,
            Some(_) => {
                return Err(AppError::validation(
                    "outcome",
                    "outcome must be qualified, appointment or sale",
                ))
            }
        };
        let min_sample = match self.min_sample.as_deref() {
            None => DEFAULT_MIN_SAMPLE,
            Some(raw) => raw
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| {
                    AppError::validation("minSample", "minSample must be a whole number from 1 to 100000")
                })?,
        };
        Ok(AnalyticsQuery {
            organization_id,
            timezone,
            start,
            end,
            agent_ids: ids("agentId", &self.agent_ids)?,
            campaign_ids: ids("campaignId", &self.campaign_ids)?,
            target,
            min_sample,
        })
    }
}

impl AnalyticsQuery {
    /// Every local date of the range, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.start.iter_days().take_while(move |day| *day <= self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(start: &str, end: &str) -> AnalyticsQueryInput {
        AnalyticsQueryInput {
            start_date: Some(start.into()),
            end_date: Some(end.into()),
            ..AnalyticsQueryInput::default()
        }
    }

    fn check(input: AnalyticsQueryInput) -> Result<AnalyticsQuery, AppError> {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        input.check(Uuid::nil(), TimeZone::new(chrono_tz::UTC), today)
    }

    fn field(error: AppError) -> String {
        format!("{error:?}")
    }

    #[test]
    fn each_bad_parameter_is_named() {
        assert!(field(check(input("2026-13-01", "2026-12-01")).unwrap_err()).contains("startDate"));
        assert!(field(check(input("2026-01-01", "tomorrow")).unwrap_err()).contains("endDate"));
        assert!(field(check(input("2026-02-01", "2026-01-01")).unwrap_err()).contains("endDate"));
        assert!(field(check(input("2025-01-01", "2026-01-02")).unwrap_err()).contains("endDate"));
        let mut bad_agent = input("2026-01-01", "2026-01-31");
        bad_agent.agent_ids = vec!["not-an-id".into()];
        assert!(field(check(bad_agent).unwrap_err()).contains("agentId"));
        let mut bad_target = input("2026-01-01", "2026-01-31");
        bad_target.outcome = Some("won".into());
        assert!(field(check(bad_target).unwrap_err()).contains("outcome"));
        let mut bad_sample = input("2026-01-01", "2026-01-31");
        bad_sample.min_sample = Some("0".into());
        assert!(field(check(bad_sample).unwrap_err()).contains("minSample"));
    }

    #[test]
    fn a_leap_year_fits_and_days_are_inclusive() {
        let query = check(input("2024-01-01", "2024-12-31")).unwrap();
        assert_eq!(query.days().count(), 366);
        let default = check(AnalyticsQueryInput::default()).unwrap();
        assert_eq!(default.days().count(), 30);
        assert_eq!(default.end, NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
    }

    #[test]
    fn repeated_and_comma_separated_ids_are_one_set() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut with_agents = input("2026-01-01", "2026-01-31");
        with_agents.agent_ids = vec![format!("{a},{b}"), a.to_string()];
        let mut expected = vec![a, b];
        expected.sort_unstable();
        assert_eq!(check(with_agents).unwrap().agent_ids, expected);
    }
}
