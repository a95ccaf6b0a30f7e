//! The analytics endpoints' figures, summed from the pre-aggregated rows: a
//! year is at most 366 daily rows (or 24 × 366 hourly rows) per grouping key.

use application::analytics::{
    Adherence, AdherenceDay, AgentAdherence, AgentStats, AnalyticsMetrics, AnalyticsQuery, AnalyticsReadModel, BestDay,
    BestHour, BestTimes, CallAdherence, CallAnalysis, CallSentiment, CallTalk, ConversionTarget, DayCount, FunnelStage,
    HeatCell, HourCount, MissedPoint, OutcomeShare, Sentiment, SentimentDay, TalkTime, WEEKDAY_NAMES,
};
use application::AppError;
use async_trait::async_trait;
use chrono::NaiveDate;
use domain::calls::Outcome;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use std::collections::HashMap;
use std::ops::AddAssign;
use uuid::Uuid;

#[derive(Clone)]
pub struct PgAnalytics {
    pool: PgPool,
}

impl PgAnalytics {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// The sums of one group of aggregate rows.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    calls: i64,
    contacts: i64,
    qualified: i64,
    appointments: i64,
    sales: i64,
    duration_sum: f64,
    duration_calls: i64,
    timed_calls: i64,
    talk_agent: f64,
    talk_prospect: f64,
    talk_monologue: f64,
    talk_interruptions: i64,
    talk_silence: f64,
    talk_call: f64,
    sentiment_sum: f64,
    sentiment_calls: i64,
    positive: i64,
    neutral: i64,
    negative: i64,
    adherence_sum: f64,
    adherence_calls: i64,
    outcomes: [i64; 8],
}

/// The funnel's sums: all the hourly rows hold.
const FUNNEL_COLUMNS: &str =
    "sum(calls)::int8, sum(contacts)::int8, sum(qualified)::int8, sum(appointments)::int8, sum(sales)::int8";

/// Every sum of the daily rows, the funnel's first.
const SUM_COLUMNS: &str = "sum(calls)::int8, sum(contacts)::int8, sum(qualified)::int8, sum(appointments)::int8, \
    sum(sales)::int8, sum(duration_micros)::float8 / 1e6, sum(duration_calls)::int8, sum(timed_calls)::int8, sum(talk_agent_micros)::float8 / 1e6, \
    sum(talk_prospect_micros)::float8 / 1e6, sum(talk_monologue_micros)::float8 / 1e6, sum(talk_interruptions_sum)::int8, sum(talk_silence_micros)::float8 / 1e6, \
    sum(talk_call_micros)::float8 / 1e6, sum(sentiment_micros)::float8 / 1e6, sum(sentiment_calls)::int8, sum(positive)::int8, sum(neutral)::int8, \
    sum(negative)::int8, sum(adherence_micros)::float8 / 1e6, sum(adherence_calls)::int8, sum(outcome_qualified)::int8, \
    sum(outcome_appointment)::int8, sum(outcome_sale)::int8, sum(outcome_not_interested)::int8, \
    sum(outcome_callback_requested)::int8, sum(outcome_voicemail)::int8, sum(outcome_no_answer)::int8, \
    sum(outcome_failed)::int8";

impl Sums {
    /// Reads the funnel sums that follow the row's `keys` leading key columns.
    fn read_funnel(row: &PgRow, keys: usize) -> Self {
        let int = |i: usize| row.get::<Option<i64>, _>(keys + i).unwrap_or(0);
        Sums {
            calls: int(0),
            contacts: int(1),
            qualified: int(2),
            appointments: int(3),
            sales: int(4),
            ..Sums::default()
        }
    }

    /// Reads every sum that follows the row's `keys` leading key columns.
    fn read(row: &PgRow, keys: usize) -> Self {
        let int = |i: usize| row.get::<Option<i64>, _>(keys + i).unwrap_or(0);
        let float = |i: usize| row.get::<Option<f64>, _>(keys + i).unwrap_or(0.0);
        Sums {
            duration_sum: float(5),
            duration_calls: int(6),
            timed_calls: int(7),
            talk_agent: float(8),
            talk_prospect: float(9),
            talk_monologue: float(10),
            talk_interruptions: int(11),
            talk_silence: float(12),
            talk_call: float(13),
            sentiment_sum: float(14),
            sentiment_calls: int(15),
            positive: int(16),
            neutral: int(17),
            negative: int(18),
            adherence_sum: float(19),
            adherence_calls: int(20),
            outcomes: std::array::from_fn(|i| int(21 + i)),
            ..Sums::read_funnel(row, keys)
        }
    }

    fn converted(&self, target: ConversionTarget) -> i64 {
        match target {
            ConversionTarget::Qualified => self.qualified,
            ConversionTarget::Appointment => self.appointments,
            ConversionTarget::Sale => self.sales,
        }
    }

    fn conversion_rate(&self, target: ConversionTarget) -> f64 {
        percent(self.converted(target), self.calls)
    }

    fn avg_sentiment(&self) -> Option<f64> {
        average(self.sentiment_sum, self.sentiment_calls)
    }

    fn avg_adherence(&self) -> Option<f64> {
        average(self.adherence_sum, self.adherence_calls)
    }

    fn talk_ratio(&self) -> f64 {
        if self.talk_prospect > 0.0 {
            round(self.talk_agent / self.talk_prospect)
        } else {
            0.0
        }
    }
}

impl AddAssign for Sums {
    fn add_assign(&mut self, other: Sums) {
        self.calls += other.calls;
        self.contacts += other.contacts;
        self.qualified += other.qualified;
        self.appointments += other.appointments;
        self.sales += other.sales;
        self.duration_sum += other.duration_sum;
        self.duration_calls += other.duration_calls;
        self.timed_calls += other.timed_calls;
        self.talk_agent += other.talk_agent;
        self.talk_prospect += other.talk_prospect;
        self.talk_monologue += other.talk_monologue;
        self.talk_interruptions += other.talk_interruptions;
        self.talk_silence += other.talk_silence;
        self.talk_call += other.talk_call;
        self.sentiment_sum += other.sentiment_sum;
        self.sentiment_calls += other.sentiment_calls;
        self.positive += other.positive;
        self.neutral += other.neutral;
        self.negative += other.negative;
        self.adherence_sum += other.adherence_sum;
        self.adherence_calls += other.adherence_calls;
        for (sum, count) in self.outcomes.iter_mut().zip(other.outcomes) {
            *sum += count;
        }
    }
}

/// Figures are shown to two decimals.
fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round(part as f64 * 100.0 / whole as f64)
    }
}

fn average(sum: f64, count: i64) -> Option<f64> {
    (count > 0).then(|| round(sum / count as f64))
}

fn failed(error: sqlx::Error) -> AppError {
    AppError::internal("reading analytics", error)
}

/// Whether a request reads the rows of days or of hours.
#[derive(Clone, Copy)]
enum Grain {
    Day,
    Hour,
}

/// The grouping whose rows answer `query`, split by agent when `by_agent`.
fn dims(query: &AnalyticsQuery, by_agent: bool) -> i16 {
    i16::from(by_agent || !query.agent_ids.is_empty()) + 2 * i16::from(!query.campaign_ids.is_empty())
}

impl PgAnalytics {
    /// Runs `select` over the rows of the grouping and range `query` asks for, then `tail` (grouping, order).
    async fn select(
        &self,
        query: &AnalyticsQuery,
        by_agent: bool,
        select: &str,
        tail: &str,
    ) -> Result<Vec<PgRow>, AppError> {
        // Filters are written only when given: a key bound as an index condition, not an `OR` the planner must scan past.
        let mut filters = String::new();
        let mut keys: Vec<&[Uuid]> = vec![];
        for (column, ids) in [("agent_key", &query.agent_ids), ("campaign_key", &query.campaign_ids)] {
            if !ids.is_empty() {
                keys.push(ids);
                filters.push_str(&format!(" AND {column} = ANY(${})", 4 + keys.len()));
            }
        }
        let sql = format!(
            "{select}
             WHERE organization_id = $1 AND dims = $2 AND local_date BETWEEN $3 AND $4{filters}
             {tail}"
        );
        let mut statement = sqlx::query(&sql)
            .bind(query.organization_id)
            .bind(dims(query, by_agent))
            .bind(query.start)
            .bind(query.end);
        for ids in keys {
            statement = statement.bind(ids);
        }
        statement.fetch_all(&self.pool).await.map_err(failed)
    }

    /// Sums of the rows `query` selects, grouped by `keys` (SQL over the cube's columns).
    async fn sums_by(
        &self,
        query: &AnalyticsQuery,
        grain: Grain,
        by_agent: bool,
        keys: &[&str],
    ) -> Result<Vec<(PgRow, Sums)>, AppError> {
        let (table, sums) = match grain {
            Grain::Day => ("analytics_daily", SUM_COLUMNS),
            Grain::Hour => ("analytics_hourly", FUNNEL_COLUMNS),
        };
        let select_keys = keys.iter().map(|k| format!("{k}, ")).collect::<String>();
        let group = if keys.is_empty() {
            String::new()
        } else {
            format!("GROUP BY {}", keys.join(", "))
        };
        let rows = self
            .select(
                query,
                by_agent,
                &format!("SELECT {select_keys}{sums} FROM {table}"),
                &group,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let sums = match grain {
                    Grain::Day => Sums::read(&row, keys.len()),
                    Grain::Hour => Sums::read_funnel(&row, keys.len()),
                };
                (row, sums)
            })
            .collect())
    }

    async fn by_day(&self, query: &AnalyticsQuery) -> Result<HashMap<NaiveDate, Sums>, AppError> {
        Ok(self
            .sums_by(query, Grain::Day, false, &["local_date"])
            .await?
            .into_iter()
            .map(|(row, sums)| (row.get(0), sums))
            .collect())
    }

    /// Sums per (ISO weekday, hour).
    async fn by_weekday_hour(&self, query: &AnalyticsQuery) -> Result<HashMap<(u32, u32), Sums>, AppError> {
        Ok(self
            .sums_by(
                query,
                Grain::Hour,
                false,
                &["extract(isodow FROM local_date)::int4", "local_hour::int4"],
            )
            .await?
            .into_iter()
            .map(|(row, sums)| ((row.get::<i32, _>(0) as u32, row.get::<i32, _>(1) as u32), sums))
            .collect())
    }

    async fn by_agent(&self, query: &AnalyticsQuery) -> Result<Vec<(Uuid, Sums)>, AppError> {
        Ok(self
            .sums_by(query, Grain::Day, true, &["agent_key"])
            .await?
            .into_iter()
            .map(|(row, sums)| (row.get::<Uuid, _>(0), sums))
            .filter(|(agent, _)| !agent.is_nil())
            .collect())
    }

    async fn agent_names(&self, organization_id: Uuid, ids: &[Uuid]) -> Result<HashMap<Uuid, String>, AppError> {
        let rows: Vec<(Uuid, Option<String>)> =
            sqlx::query_as("SELECT id, spec->>'name' FROM agents WHERE organization_id = $1 AND id = ANY($2)")
                .bind(organization_id)
                .bind(ids)
                .fetch_all(&self.pool)
                .await
                .map_err(failed)?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| (id, name.unwrap_or_default()))
            .collect())
    }

    async fn agent_stats(&self, query: &AnalyticsQuery) -> Result<(Vec<AgentStats>, Vec<(Uuid, Sums)>), AppError> {
        let per_agent = self.by_agent(query).await?;
        let ids: Vec<Uuid> = per_agent.iter().map(|(id, _)| *id).collect();
        let names = self.agent_names(query.organization_id, &ids).await?;
        let mut stats: Vec<AgentStats> = per_agent
            .iter()
            .map(|(id, sums)| AgentStats {
                rank: 0,
                agent_id: *id,
                agent_name: names.get(id).cloned().unwrap_or_default(),
                calls: sums.calls,
                conversion_rate: sums.conversion_rate(query.target),
                avg_call_duration: average(sums.duration_sum, sums.duration_calls).unwrap_or(0.0),
                talk_ratio: (sums.timed_calls > 0).then(|| sums.talk_ratio()),
                avg_sentiment: sums.avg_sentiment(),
                adherence: sums.avg_adherence(),
            })
            .collect();
        stats.sort_by(|a, b| {
            b.conversion_rate
                .total_cmp(&a.conversion_rate)
                .then(b.calls.cmp(&a.calls))
                .then(a.agent_name.cmp(&b.agent_name))
        });
        for (i, agent) in stats.iter_mut().enumerate() {
            agent.rank = i as u32 + 1;
        }
        Ok((stats, per_agent))
    }
}

fn total(sums: impl IntoIterator<Item = Sums>) -> Sums {
    let mut total = Sums::default();
    for s in sums {
        total += s;
    }
    total
}

fn funnel(total: &Sums) -> Vec<FunnelStage> {
    let stages = [
        ("Calls", total.calls),
        ("Contacts", total.contacts),
        ("Qualified", total.qualified),
        ("Appointments", total.appointments),
        ("Sales", total.sales),
    ];
    let mut previous = None;
    stages
        .into_iter()
        .map(|(stage, count)| {
            let conversion_rate = previous.map_or(100.0, |previous| percent(count, previous));
            previous = Some(count);
            FunnelStage {
                stage: stage.to_owned(),
                count,
                conversion_rate,
            }
        })
        .collect()
}

fn outcomes(total: &Sums) -> Vec<OutcomeShare> {
    Outcome::ALL
        .into_iter()
        .zip(total.outcomes)
        .map(|(outcome, count)| OutcomeShare {
            outcome: outcome.as_str().to_owned(),
            count,
            percentage: percent(count, total.calls),
        })
        .collect()
}

fn talk(total: &Sums, calls: i64) -> TalkTime {
    let per_call = |sum: f64| average(sum, total.timed_calls).unwrap_or(0.0);
    TalkTime {
        avg_talk_time: per_call(total.talk_agent),
        avg_listen_time: per_call(total.talk_prospect),
        talk_ratio: total.talk_ratio(),
        avg_longest_monologue: per_call(total.talk_monologue),
        avg_interruptions: per_call(total.talk_interruptions as f64),
        silence_share: if total.talk_call > 0.0 {
            round(total.talk_silence / total.talk_call)
        } else {
            0.0
        },
        calls_analyzed: total.timed_calls,
        calls_without_timings: calls - total.timed_calls,
    }
}

fn weekday_name(iso: u32) -> String {
    WEEKDAY_NAMES[(iso as usize).clamp(1, 7) - 1].to_owned()
}

/// The key with the best conversion among those with at least `min_sample` calls
/// (ties: more calls, then the earlier key).
fn best<K: Copy + Ord>(groups: &[(K, Sums)], query: &AnalyticsQuery) -> Option<(K, f64)> {
    groups
        .iter()
        .filter(|(_, sums)| sums.calls >= query.min_sample)
        .map(|(key, sums)| (*key, sums.conversion_rate(query.target), sums.calls))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(a.2.cmp(&b.2)).then(b.0.cmp(&a.0)))
        .map(|(key, rate, _)| (key, rate))
}

struct TimeFigures {
    calls_by_hour: Vec<HourCount>,
    best_time_to_call: Option<BestHour>,
    best_day_to_call: Option<BestDay>,
    heatmap: Vec<HeatCell>,
}

fn time_figures(cells: &HashMap<(u32, u32), Sums>, query: &AnalyticsQuery) -> TimeFigures {
    let cell = |weekday: u32, hour: u32| cells.get(&(weekday, hour)).copied().unwrap_or_default();
    let hours: Vec<(u32, Sums)> = (0..24).map(|h| (h, total((1..=7).map(|d| cell(d, h))))).collect();
    let weekdays: Vec<(u32, Sums)> = (1..=7).map(|d| (d, total((0..24).map(|h| cell(d, h))))).collect();
    TimeFigures {
        calls_by_hour: hours
            .iter()
            .map(|(hour, sums)| HourCount {
                hour: *hour,
                count: sums.calls,
            })
            .collect(),
        best_time_to_call: best(&hours, query).map(|(hour, conversion_rate)| BestHour { hour, conversion_rate }),
        best_day_to_call: best(&weekdays, query).map(|(day, conversion_rate)| BestDay {
            day: weekday_name(day),
            conversion_rate,
        }),
        heatmap: (1..=7)
            .flat_map(|weekday| (0..24).map(move |hour| (weekday, hour)))
            .map(|(weekday, hour)| {
                let sums = cell(weekday, hour);
                HeatCell {
                    weekday,
                    hour,
                    calls: sums.calls,
                    contact_rate: percent(sums.contacts, sums.calls),
                    conversion_rate: sums.conversion_rate(query.target),
                    low_sample: sums.calls < query.min_sample,
                }
            })
            .collect(),
    }
}

const FUNNEL_STAGES: [&str; 5] = ["called", "contact", "qualified", "appointment", "sale"];

fn call_analysis(row: &PgRow) -> CallAnalysis {
    let talk_agent: Option<f64> = row.get("talk_agent");
    let prospect: f64 = row.get::<Option<f64>, _>("talk_prospect").unwrap_or(0.0);
    let level: i16 = row.get("level");
    let missed_points: Vec<String> = row.get("missed_points");
    CallAnalysis {
        call_id: row.get("id"),
        agent_id: row.get("agent_id"),
        campaign_id: row.get("campaign_id"),
        started_at: row.get("started_at"),
        local_date: row.get("local_date"),
        local_hour: row.get("local_hour"),
        funnel_stage: FUNNEL_STAGES[level.clamp(0, 4) as usize].to_owned(),
        outcome: row.get("outcome"),
        talk: talk_agent.map(|agent_seconds| CallTalk {
            agent_seconds,
            prospect_seconds: prospect,
            talk_ratio: (prospect > 0.0).then(|| round(agent_seconds / prospect)),
            longest_monologue_seconds: row.get::<Option<f64>, _>("talk_monologue").unwrap_or(0.0),
            interruptions: row.get::<Option<i32>, _>("talk_interruptions").unwrap_or(0),
            silence_seconds: row.get::<Option<f64>, _>("talk_silence").unwrap_or(0.0),
        }),
        sentiment: row.get::<Option<f64>, _>("sentiment").map(|score| CallSentiment {
            score: round(score),
            label: row.get::<Option<String>, _>("sentiment_label").unwrap_or_default(),
        }),
        adherence: row.get::<Option<f64>, _>("adherence").map(|score| CallAdherence {
            score: round(score),
            missed_points,
        }),
    }
}

#[async_trait]
impl AnalyticsReadModel for PgAnalytics {
    async fn call(&self, organization_id: Uuid, call_id: Uuid) -> Result<Option<CallAnalysis>, AppError> {
        let row = sqlx::query("SELECT * FROM analytics_calls WHERE id = $1 AND organization_id = $2")
            .bind(call_id)
            .bind(organization_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed)?;
        Ok(row.as_ref().map(call_analysis))
    }

    async fn metrics(&self, query: &AnalyticsQuery) -> Result<AnalyticsMetrics, AppError> {
        // Independent reads, run side by side.
        let (days, cells, (agent_stats, _)) =
            tokio::try_join!(self.by_day(query), self.by_weekday_hour(query), self.agent_stats(query))?;
        let total = total(days.values().copied());
        let times = time_figures(&cells, query);
        let talk = talk(&total, total.calls);
        Ok(AnalyticsMetrics {
            total_calls: total.calls,
            calls_by_day: query
                .days()
                .map(|date| DayCount {
                    date,
                    count: days.get(&date).map_or(0, |s| s.calls),
                })
                .collect(),
            calls_by_hour: times.calls_by_hour,
            conversion_rate: total.conversion_rate(query.target),
            funnel_stages: funnel(&total),
            avg_talk_time: talk.avg_talk_time,
            avg_listen_time: talk.avg_listen_time,
            talk_ratio: talk.talk_ratio,
            outcomes: outcomes(&total),
            agent_stats,
            best_time_to_call: times.best_time_to_call,
            best_day_to_call: times.best_day_to_call,
        })
    }

    async fn talk_time(&self, query: &AnalyticsQuery) -> Result<TalkTime, AppError> {
        let total = total(self.by_day(query).await?.into_values());
        Ok(talk(&total, total.calls))
    }

    async fn best_times(&self, query: &AnalyticsQuery) -> Result<BestTimes, AppError> {
        let times = time_figures(&self.by_weekday_hour(query).await?, query);
        Ok(BestTimes {
            best_time_to_call: times.best_time_to_call,
            best_day_to_call: times.best_day_to_call,
            min_sample: query.min_sample,
            heatmap: times.heatmap,
        })
    }

    async fn agents(&self, query: &AnalyticsQuery) -> Result<Vec<AgentStats>, AppError> {
        Ok(self.agent_stats(query).await?.0)
    }

    async fn sentiment(&self, query: &AnalyticsQuery) -> Result<Sentiment, AppError> {
        let days = self.by_day(query).await?;
        let total = total(days.values().copied());
        Ok(Sentiment {
            average: total.avg_sentiment(),
            positive: total.positive,
            neutral: total.neutral,
            negative: total.negative,
            trend: query
                .days()
                .map(|date| {
                    let day = days.get(&date).copied().unwrap_or_default();
                    SentimentDay {
                        date,
                        average: day.avg_sentiment(),
                        calls: day.sentiment_calls,
                    }
                })
                .collect(),
        })
    }

    async fn adherence(&self, query: &AnalyticsQuery) -> Result<Adherence, AppError> {
        let (days, (agents, per_agent), missed) = tokio::try_join!(
            self.by_day(query),
            self.agent_stats(query),
            self.select(
                query,
                false,
                "SELECT point, sum(calls)::int8 FROM analytics_missed_points",
                "GROUP BY point ORDER BY 2 DESC, point",
            )
        )?;
        let total = total(days.values().copied());
        Ok(Adherence {
            average: total.avg_adherence(),
            calls_scored: total.adherence_calls,
            by_agent: agents
                .into_iter()
                .filter_map(|agent| {
                    let sums = per_agent.iter().find(|(id, _)| *id == agent.agent_id)?.1;
                    Some(AgentAdherence {
                        agent_id: agent.agent_id,
                        agent_name: agent.agent_name,
                        average: sums.avg_adherence()?,
                        calls: sums.adherence_calls,
                    })
                })
                .collect(),
            trend: query
                .days()
                .map(|date| {
                    let day = days.get(&date).copied().unwrap_or_default();
                    AdherenceDay {
                        date,
                        average: day.avg_adherence(),
                        calls: day.adherence_calls,
                    }
                })
                .collect(),
            missed_points: missed
                .iter()
                .map(|row| MissedPoint {
                    point: row.get(0),
                    calls: row.get(1),
                })
                .collect(),
        })
    }
}
