//! Analytics (SPEC §2.7): one fact row per call (its start in the
//! organization's time zone, funnel stage, talk timings, sentiment, adherence),
//! and the figures pre-aggregated per organization × local day × hour × agent ×
//! campaign, which every analytics endpoint reads.
//!
//! A batch folds its events into the facts of the calls it touches (one load),
//! then writes the facts that changed and adds the change to the aggregates in
//! one statement: each changed call's old facts subtracted, its new ones added,
//! so a batch costs what it changes however busy its days are. Local days and
//! hours are computed by PostgreSQL from the organization's zone; a zone change
//! re-buckets that organization's facts and recomputes its days whole. A
//! rebuild copies the facts and aggregates them once, at the end.

mod queries;

pub use queries::PgAnalytics;

use crate::copy::{copy_in, CopyRows};
use crate::rows::{self, stream_uuid};
use crate::runtime::{run_script, ReadModel, Rebuild};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use domain::analytics::{CallAnalysis, SentimentLabel};
use domain::auth::OrganizationEvent;
use domain::calendar::BookingEvent;
use domain::calls::{CallEvent, CallParties, CallStatus, EndedReason, Outcome};
use domain::crm::{CrmEvent, CrmProvider, CrmSettings, CrmSyncEvent};
use domain::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::PgConnection;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

pub struct AnalyticsProjection;

/// What analytics knows of one call; the columns of `analytics_calls` but its
/// local day and hour, which PostgreSQL computes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct CallFacts {
    id: Uuid,
    organization_id: Uuid,
    agent_id: Option<Uuid>,
    campaign_id: Option<Uuid>,
    started_at: DateTime<Utc>,
    start_from_report: bool,
    duration_seconds: Option<f64>,
    outcome: Option<Outcome>,
    /// A human or machine picked up (the call reached in-progress, or the prospect spoke).
    connected: bool,
    /// Vapi's ended reason says nobody answered: busy, no answer, voicemail, a technical failure.
    no_contact: bool,
    appointment_booked: bool,
    deal_won: bool,
    level: i16,
    talk_agent: Option<f64>,
    talk_prospect: Option<f64>,
    talk_monologue: Option<f64>,
    talk_interruptions: Option<i32>,
    talk_silence: Option<f64>,
    talk_call: Option<f64>,
    sentiment: Option<f64>,
    sentiment_label: Option<SentimentLabel>,
    adherence: Option<f64>,
    missed_points: Vec<String>,
}

impl CallFacts {
    fn new(id: Uuid, organization_id: Uuid, at: DateTime<Utc>) -> Self {
        Self {
            id,
            organization_id,
            started_at: at,
            ..Self::default()
        }
    }

    /// The call counts from its first sign of life until the report tells when it started.
    fn seen_at(&mut self, at: DateTime<Utc>) {
        if !self.start_from_report && at < self.started_at {
            self.started_at = at;
        }
    }

    fn learn(&mut self, parties: &CallParties) {
        self.agent_id = self.agent_id.or(parties.agent_id);
    }

    fn ended_because(&mut self, reason: &EndedReason) {
        if matches!(
            reason,
            EndedReason::CustomerBusy
                | EndedReason::CustomerDidNotAnswer
                | EndedReason::Voicemail
                | EndedReason::PlacementFailed
        ) || reason.is_technical_failure()
        {
            self.no_contact = true;
        }
    }

    fn analysis(&mut self, analysis: &CallAnalysis) {
        if let Some(started) = analysis.started_at {
            self.started_at = started;
            self.start_from_report = true;
        }
        self.duration_seconds = analysis
            .duration_seconds
            .and_then(plausible_seconds)
            .or(self.duration_seconds);
        if let Some(reason) = &analysis.ended_reason {
            self.ended_because(reason);
        }
        self.connected |= analysis.prospect_spoke;
        let talk = analysis.talk.as_ref().filter(|t| {
            [
                t.agent_seconds,
                t.prospect_seconds,
                t.longest_monologue_seconds,
                t.silence_seconds,
                t.call_seconds,
            ]
            .into_iter()
            .all(|seconds| plausible_seconds(seconds).is_some())
        });
        self.talk_agent = talk.map(|t| t.agent_seconds);
        self.talk_prospect = talk.map(|t| t.prospect_seconds);
        self.talk_monologue = talk.map(|t| t.longest_monologue_seconds);
        self.talk_interruptions = talk.map(|t| t.interruptions as i32);
        self.talk_silence = talk.map(|t| t.silence_seconds);
        self.talk_call = talk.map(|t| t.call_seconds);
        self.sentiment = analysis.sentiment.map(|s| s.score);
        self.sentiment_label = analysis.sentiment.map(|s| s.label);
        self.adherence = analysis.adherence.as_ref().map(|a| a.score);
        self.missed_points = analysis
            .adherence
            .as_ref()
            .map(|a| a.missed.clone())
            .unwrap_or_default();
    }

    /// The furthest funnel stage: each stage counts the calls that reached it or a later one.
    fn funnel_level(&self) -> i16 {
        let outcome = self.outcome;
        if outcome == Some(Outcome::Sale) || self.deal_won {
            4
        } else if outcome == Some(Outcome::Appointment) || self.appointment_booked {
            3
        } else if outcome == Some(Outcome::Qualified) {
            2
        } else if self.connected
            && !self.no_contact
            && !matches!(outcome, Some(Outcome::Voicemail | Outcome::NoAnswer | Outcome::Failed))
        {
            1
        } else {
            0
        }
    }
}

/// The longest a call's figure in seconds may be to count (about 115 days): Vapi's numbers are
/// taken as sent, and one absurd figure must not overflow the sums (whole millionths, bigint)
/// and stop this read model for every organization.
const MOST_SECONDS: f64 = 1e7;

fn plausible_seconds(seconds: f64) -> Option<f64> {
    (seconds.is_finite() && seconds.abs() <= MOST_SECONDS).then_some(seconds)
}

/// An event this read model reads, decoded.
enum Input {
    Organization(OrganizationEvent),
    Call(Uuid, CallEvent),
    Crm(Uuid, CrmEvent),
    CrmSync(CrmSyncEvent),
    Booking(BookingEvent),
}

fn decode(event: &RecordedEvent) -> Result<Option<Input>, sqlx::Error> {
    Ok(Some(match event.stream_type.as_str() {
        "organization" => Input::Organization(rows::decode(event)?),
        "call" => Input::Call(stream_uuid(event)?, rows::decode(event)?),
        "crm-integration" => Input::Crm(stream_uuid(event)?, rows::decode(event)?),
        "crm-call-sync" => Input::CrmSync(rows::decode(event)?),
        "calendar-bookings" => Input::Booking(rows::decode(event)?),
        _ => return Ok(None),
    }))
}

/// What one batch changes.
#[derive(Default)]
struct AnalyticsBatch {
    /// Organizations' zones as the batch leaves them, and those whose zone changed.
    zones: HashMap<Uuid, String>,
    rezoned: HashSet<Uuid>,
    sale_stages: HashMap<(Uuid, CrmProvider), String>,
    changed_sale_stages: HashSet<(Uuid, CrmProvider)>,
    facts: HashMap<Uuid, CallFacts>,
    touched: HashSet<Uuid>,
}

impl AnalyticsBatch {
    fn fold(&mut self, inputs: Vec<(&RecordedEvent, Input)>) {
        for (event, input) in inputs {
            match input {
                Input::Organization(decoded) => self.organization(event, decoded),
                Input::Call(id, decoded) => self.call(event, id, decoded),
                Input::Crm(id, decoded) => self.crm(event, id, decoded),
                Input::CrmSync(decoded) => self.crm_sync(event, decoded),
                Input::Booking(decoded) => self.booking(event, decoded),
            }
        }
    }

    fn organization(&mut self, event: &RecordedEvent, decoded: OrganizationEvent) {
        let zone = match decoded {
            OrganizationEvent::OrganizationCreated { .. } => domain::auth::OrganizationSettings::DEFAULT_TIMEZONE,
            OrganizationEvent::OrganizationSettingsChanged { timezone, .. } => timezone,
        };
        let zone = zone.name().to_owned();
        if self.zones.get(&event.organization_id) != Some(&zone) {
            self.zones.insert(event.organization_id, zone);
            self.rezoned.insert(event.organization_id);
        }
    }

    fn crm(&mut self, event: &RecordedEvent, integration_id: Uuid, decoded: CrmEvent) {
        let (provider, settings): (CrmProvider, CrmSettings) = match decoded {
            CrmEvent::CrmConnected { sign_in, settings, .. } => (sign_in.provider, settings),
            CrmEvent::CrmSettingsChanged { settings, .. } => {
                let Some(provider) = CrmProvider::ALL
                    .into_iter()
                    .find(|p| p.integration_id(event.organization_id) == integration_id)
                else {
                    return;
                };
                (provider, settings)
            }
            _ => return,
        };
        if let Some(stage) = settings.stage_mapping.stage_for(Outcome::Sale) {
            let key = (event.organization_id, provider);
            self.sale_stages.insert(key, stage.to_owned());
            self.changed_sale_stages.insert(key);
        }
    }

    /// The call's facts, created on first sight; `None` when the event names
    /// another organization than the call's.
    fn call_facts(&mut self, id: Uuid, event: &RecordedEvent, at: DateTime<Utc>) -> Option<&mut CallFacts> {
        let facts = self
            .facts
            .entry(id)
            .or_insert_with(|| CallFacts::new(id, event.organization_id, at));
        if facts.organization_id != event.organization_id {
            return None;
        }
        self.touched.insert(id);
        facts.seen_at(at);
        Some(facts)
    }

    /// Facts of a call that must already exist (a booking or deal names it).
    fn existing_facts(&mut self, id: Uuid, event: &RecordedEvent) -> Option<&mut CallFacts> {
        let facts = self
            .facts
            .get_mut(&id)
            .filter(|f| f.organization_id == event.organization_id)?;
        self.touched.insert(id);
        Some(facts)
    }

    fn call(&mut self, event: &RecordedEvent, id: Uuid, decoded: CallEvent) {
        match decoded {
            CallEvent::CallRequested {
                parties,
                requested_at,
                campaign,
                ..
            } => {
                if let Some(facts) = self.call_facts(id, event, requested_at) {
                    facts.learn(&parties);
                    facts.campaign_id = facts.campaign_id.or(campaign.map(|c| c.campaign_id));
                }
            }
            CallEvent::CallPlacementStarted { .. } | CallEvent::CallPlacedWithVapi { .. } => {}
            CallEvent::CallPlacementFailed { at, .. } => {
                if let Some(facts) = self.call_facts(id, event, at) {
                    facts.no_contact = true;
                }
            }
            CallEvent::CallStatusUpdated {
                parties,
                status,
                ended_reason,
                at,
            } => {
                if let Some(facts) = self.call_facts(id, event, at) {
                    facts.learn(&parties);
                    if matches!(status, CallStatus::InProgress | CallStatus::Forwarding) {
                        facts.connected = true;
                    }
                    if let Some(reason) = &ended_reason {
                        facts.ended_because(reason);
                    }
                }
            }
            // The report itself is read through its analysis: numbers, not transcripts.
            CallEvent::CallEnded { .. } => {}
            CallEvent::CallAnalyzed {
                parties,
                ended_at,
                analysis,
                ..
            } => {
                if let Some(facts) = self.call_facts(id, event, analysis.started_at.unwrap_or(ended_at)) {
                    facts.learn(&parties);
                    facts.analysis(&analysis);
                }
            }
            // Recorded with the report, so often before the report's analysis.
            CallEvent::CallOutcomeRecorded { outcome, at, .. } => {
                if let Some(facts) = self.call_facts(id, event, at) {
                    facts.outcome = Some(outcome);
                }
            }
        }
    }

    fn crm_sync(&mut self, event: &RecordedEvent, decoded: CrmSyncEvent) {
        if let CrmSyncEvent::CrmDealUpdated {
            provider,
            call_id,
            stage,
            ..
        } = decoded
        {
            let won = self.sale_stages.get(&(event.organization_id, provider)) == Some(&stage);
            if let Some(facts) = self.existing_facts(call_id, event) {
                facts.deal_won |= won;
            }
        }
    }

    fn booking(&mut self, event: &RecordedEvent, decoded: BookingEvent) {
        if let BookingEvent::AppointmentBooked {
            call_id: Some(call_id), ..
        } = decoded
        {
            if let Some(facts) = self.existing_facts(call_id, event) {
                facts.appointment_booked = true;
            }
        }
    }
}

/// The ids a batch must load before folding.
#[derive(Default)]
struct Wanted {
    organizations: HashSet<Uuid>,
    calls: HashSet<Uuid>,
    sale_stage_organizations: HashSet<Uuid>,
}

fn wanted(inputs: &[(&RecordedEvent, Input)]) -> Wanted {
    let mut wanted = Wanted::default();
    for (event, input) in inputs {
        match input {
            Input::Organization(_) => {
                wanted.organizations.insert(event.organization_id);
            }
            Input::Call(id, _) => {
                wanted.calls.insert(*id);
            }
            Input::Crm(..) => {}
            Input::CrmSync(CrmSyncEvent::CrmDealUpdated { call_id, .. }) => {
                wanted.calls.insert(*call_id);
                wanted.sale_stage_organizations.insert(event.organization_id);
            }
            Input::CrmSync(_) => {}
            Input::Booking(BookingEvent::AppointmentBooked {
                call_id: Some(call_id), ..
            }) => {
                wanted.calls.insert(*call_id);
            }
            Input::Booking(_) => {}
        }
    }
    wanted
}

fn as_vec(ids: &HashSet<Uuid>) -> Vec<Uuid> {
    ids.iter().copied().collect()
}

/// The rows `sql` selects for `ids` (its `$1`); no round trip when there are none.
async fn rows_for<T>(conn: &mut PgConnection, sql: &str, ids: &HashSet<Uuid>) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    if ids.is_empty() {
        return Ok(vec![]);
    }
    sqlx::query_as(sql).bind(as_vec(ids)).fetch_all(conn).await
}

/// Loads into `batch` what its events need: facts, zones, sale stages.
async fn load(conn: &mut PgConnection, wanted: &Wanted, batch: &mut AnalyticsBatch) -> Result<(), sqlx::Error> {
    let facts: Vec<(Json<CallFacts>,)> = rows_for(
        conn,
        "SELECT to_jsonb(f) - 'local_date' - 'local_hour' FROM analytics_calls f WHERE id = ANY($1)",
        &wanted.calls,
    )
    .await?;
    for (Json(facts),) in facts {
        batch.facts.insert(facts.id, facts);
    }
    let zones: Vec<(Uuid, String)> = rows_for(
        conn,
        "SELECT organization_id, timezone FROM analytics_organizations WHERE organization_id = ANY($1)",
        &wanted.organizations,
    )
    .await?;
    batch.zones.extend(zones);
    let stages: Vec<(Uuid, String, String)> = rows_for(
        conn,
        "SELECT organization_id, provider, stage FROM analytics_sale_stages WHERE organization_id = ANY($1)",
        &wanted.sale_stage_organizations,
    )
    .await?;
    for (organization, provider, stage) in stages {
        if let Ok(provider) = crate::rows::text_enum::<CrmProvider>(provider) {
            batch.sale_stages.insert((organization, provider), stage);
        }
    }
    Ok(())
}

async fn save_settings(conn: &mut PgConnection, batch: &AnalyticsBatch) -> Result<(), sqlx::Error> {
    let (organizations, zones): (Vec<Uuid>, Vec<&str>) =
        batch.rezoned.iter().map(|id| (*id, batch.zones[id].as_str())).unzip();
    if !organizations.is_empty() {
        sqlx::query(
            "INSERT INTO analytics_organizations AS o (organization_id, timezone) SELECT * FROM UNNEST($1::uuid[], $2::text[])
             ON CONFLICT (organization_id) DO UPDATE SET timezone = EXCLUDED.timezone",
        )
        .bind(&organizations)
        .bind(&zones)
        .execute(&mut *conn)
        .await?;
    }
    if !batch.changed_sale_stages.is_empty() {
        let (mut organizations, mut providers, mut stages) = (vec![], vec![], vec![]);
        for key in &batch.changed_sale_stages {
            organizations.push(key.0);
            providers.push(key.1.as_str());
            stages.push(batch.sale_stages[key].as_str());
        }
        sqlx::query(
            "INSERT INTO analytics_sale_stages (organization_id, provider, stage)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[])
             ON CONFLICT (organization_id, provider) DO UPDATE SET stage = EXCLUDED.stage",
        )
        .bind(organizations)
        .bind(providers)
        .bind(stages)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Re-buckets every call of organizations whose zone changed (their facts only).
async fn rezone(conn: &mut PgConnection, organizations: &[Uuid]) -> Result<(), sqlx::Error> {
    if organizations.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE analytics_calls f
         SET local_date = (f.started_at AT TIME ZONE o.timezone)::date,
             local_hour = extract(hour FROM f.started_at AT TIME ZONE o.timezone)::smallint
         FROM analytics_organizations o
         WHERE o.organization_id = f.organization_id AND f.organization_id = ANY($1)",
    )
    .bind(organizations)
    .execute(conn)
    .await
    .map(|_| ())
}

const FACT_COLUMNS: &str = "id, organization_id, agent_id, campaign_id, started_at, start_from_report, local_date, \
    local_hour, duration_seconds, outcome, connected, no_contact, appointment_booked, deal_won, level, talk_agent, \
    talk_prospect, talk_monologue, talk_interruptions, talk_silence, talk_call, sentiment, sentiment_label, \
    adherence, missed_points";

/// [`FACT_COLUMNS`] selected from facts `r` in zone `z`: the local day and hour computed.
fn bucketed_columns() -> String {
    FACT_COLUMNS
        .split(", ")
        .map(|column| match column {
            "local_date" => "(r.started_at AT TIME ZONE z.zone)::date".to_owned(),
            "local_hour" => "extract(hour FROM r.started_at AT TIME ZONE z.zone)::smallint".to_owned(),
            other => format!("r.{other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Facts written by one statement.
const FACTS_PER_STATEMENT: usize = 10_000;

/// Writes changed facts, bucketed in their organization's zone, and adds the
/// change to the aggregates in the same statement: each call's stored facts
/// are subtracted (read before the write, in the statement's snapshot) and its
/// new ones added, so a batch costs what it changes, not what its days hold.
/// Returns the days on which the change left a row counting no call.
async fn save_facts(conn: &mut PgConnection, facts: Vec<&CallFacts>) -> Result<Vec<(Uuid, NaiveDate)>, sqlx::Error> {
    static STATEMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let statement = STATEMENT.get_or_init(save_facts_statement);
    let mut days = Vec::new();
    for slice in facts.chunks(FACTS_PER_STATEMENT) {
        let ids: Vec<Uuid> = slice.iter().map(|f| f.id).collect();
        let rows: Vec<(Uuid, NaiveDate)> = sqlx::query_as(statement)
            .bind(Json(slice))
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
        days.extend(rows);
    }
    Ok(days)
}

/// The statement of [`save_facts`]: `$1` the facts, `$2` their ids.
fn save_facts_statement() -> String {
    let values = bucketed_columns();
    let updates = FACT_COLUMNS
        .split(", ")
        .filter(|c| *c != "id")
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let aggregates: Vec<String> = Aggregate::all()
        .iter()
        .map(|aggregate| {
            let insert = aggregate.insert("FROM signed f", Facts::Signed);
            format!(
                "{}_change AS ({insert} RETURNING organization_id, local_date, calls)",
                aggregate.table
            )
        })
        .collect();
    let emptied: Vec<String> = Aggregate::all()
        .iter()
        .map(|a| {
            format!(
                "SELECT organization_id, local_date FROM {}_change WHERE calls = 0",
                a.table
            )
        })
        .collect();
    format!(
        "WITH stored AS (SELECT * FROM analytics_calls WHERE id = ANY($2)),
         saved AS (
             INSERT INTO analytics_calls ({FACT_COLUMNS})
             SELECT {values} FROM jsonb_populate_recordset(NULL::analytics_calls, $1) r
             CROSS JOIN LATERAL (SELECT COALESCE((SELECT timezone FROM analytics_organizations o
                                                  WHERE o.organization_id = r.organization_id), 'UTC') AS zone) z
             ON CONFLICT (id) DO UPDATE SET {updates}
             RETURNING *),
         signed AS (SELECT -1 AS sign, * FROM stored UNION ALL SELECT 1, * FROM saved),
         {}
         SELECT DISTINCT organization_id, local_date FROM ({}) emptied",
        aggregates.join(",\n"),
        emptied.join(" UNION ALL ")
    )
}

/// Which grouping a row of the aggregates belongs to, and its keys.
const GROUPING_COLUMNS: &str = "f.organization_id,
    (GROUPING(f.agent_id) = 0)::int + 2 * (GROUPING(f.campaign_id) = 0)::int,
    CASE WHEN GROUPING(f.agent_id) = 0 THEN COALESCE(f.agent_id, '00000000-0000-0000-0000-000000000000'::uuid) ELSE '00000000-0000-0000-0000-000000000000'::uuid END,
    CASE WHEN GROUPING(f.campaign_id) = 0 THEN COALESCE(f.campaign_id, '00000000-0000-0000-0000-000000000000'::uuid) ELSE '00000000-0000-0000-0000-000000000000'::uuid END,
    f.local_date";

/// The names of [`GROUPING_COLUMNS`] in every aggregate table.
const GROUPING_KEYS: &str = "organization_id, dims, agent_key, campaign_key, local_date";

/// What the facts an aggregate statement reads stand for.
#[derive(Clone, Copy, PartialEq)]
enum Facts {
    /// Each row is a call: the statement inserts the groups' figures where there are no rows
    /// (a rebuild's new tables, or an organization's rows just deleted).
    Whole,
    /// Each row is a call's facts as they were (`sign` -1) or as they are now
    /// (`sign` +1): the statement adds the difference to the existing rows.
    Signed,
}

/// What one aggregate column measures of a group of facts `f`.
enum Measure {
    /// The calls, or those meeting a condition.
    Calls(Option<String>),
    /// The sum of a per-call whole number.
    Integer(&'static str),
    /// The sum of a per-call figure with decimals, in millionths: each call's
    /// figure rounded to a whole number of millionths, so that sums are exact
    /// and adding and subtracting calls in any order ends where a rebuild does
    /// (as `bigint` they cost a rebuild's aggregation no more than floats did;
    /// as `numeric` every value was converted through text).
    Micros(&'static str),
}

impl Measure {
    fn calls_where(condition: &str) -> Self {
        Measure::Calls(Some(condition.to_owned()))
    }

    fn select(&self, facts: Facts) -> String {
        let signed = |value: &str| match facts {
            Facts::Whole => value.to_owned(),
            Facts::Signed => format!("f.sign * {value}"),
        };
        match (self, facts) {
            (Measure::Calls(None), Facts::Whole) => "count(*)".to_owned(),
            (Measure::Calls(Some(condition)), Facts::Whole) => format!("count(*) FILTER (WHERE {condition})"),
            (Measure::Calls(None), Facts::Signed) => "sum(f.sign)".to_owned(),
            (Measure::Calls(Some(condition)), Facts::Signed) => {
                format!("COALESCE(sum(f.sign) FILTER (WHERE {condition}), 0)")
            }
            (Measure::Integer(value), _) => format!("COALESCE(sum({}), 0)", signed(value)),
            (Measure::Micros(value), _) => {
                format!("COALESCE(sum({}), 0)", signed(&format!("({value} * 1000000)::int8")))
            }
        }
    }
}

/// The funnel's columns: calls by the furthest stage they reached.
fn funnel_measures() -> Vec<(String, Measure)> {
    let mut measures = vec![("calls".to_owned(), Measure::Calls(None))];
    for (level, column) in ["contacts", "qualified", "appointments", "sales"]
        .into_iter()
        .enumerate()
    {
        measures.push((
            column.to_owned(),
            Measure::calls_where(&format!("f.level >= {}", level + 1)),
        ));
    }
    measures
}

/// The columns of `analytics_daily`.
fn daily_measures() -> Vec<(String, Measure)> {
    let mut measures = funnel_measures();
    let mut add = |column: &str, measure: Measure| measures.push((column.to_owned(), measure));
    add("duration_micros", Measure::Micros("f.duration_seconds"));
    add("duration_calls", Measure::calls_where("f.duration_seconds IS NOT NULL"));
    add("timed_calls", Measure::calls_where("f.talk_call IS NOT NULL"));
    add("talk_agent_micros", Measure::Micros("f.talk_agent"));
    add("talk_prospect_micros", Measure::Micros("f.talk_prospect"));
    add("talk_monologue_micros", Measure::Micros("f.talk_monologue"));
    add("talk_interruptions_sum", Measure::Integer("f.talk_interruptions"));
    add("talk_silence_micros", Measure::Micros("f.talk_silence"));
    add("talk_call_micros", Measure::Micros("f.talk_call"));
    add("sentiment_micros", Measure::Micros("f.sentiment"));
    add("sentiment_calls", Measure::calls_where("f.sentiment IS NOT NULL"));
    for label in ["positive", "neutral", "negative"] {
        add(label, Measure::calls_where(&format!("f.sentiment_label = '{label}'")));
    }
    add("adherence_micros", Measure::Micros("f.adherence"));
    add("adherence_calls", Measure::calls_where("f.adherence IS NOT NULL"));
    for outcome in Outcome::ALL {
        add(
            &format!("outcome_{outcome}"),
            Measure::calls_where(&format!("f.outcome = '{outcome}'")),
        );
    }
    measures
}

/// One table of aggregates: the groupings' keys, its own further keys, and its measures.
struct Aggregate {
    table: &'static str,
    /// Key columns after the grouping's, each with the value it is grouped by.
    keys: &'static [(&'static str, &'static str)],
    /// What each call's facts are joined with before grouping.
    join: &'static str,
    measures: Vec<(String, Measure)>,
}

impl Aggregate {
    fn all() -> [Aggregate; 3] {
        [
            Aggregate {
                table: "analytics_daily",
                keys: &[],
                join: "",
                measures: daily_measures(),
            },
            Aggregate {
                table: "analytics_hourly",
                keys: &[("local_hour", "f.local_hour")],
                join: "",
                measures: funnel_measures(),
            },
            Aggregate {
                table: "analytics_missed_points",
                keys: &[("point", "p.point")],
                join: "CROSS JOIN LATERAL unnest(f.missed_points) AS p(point)",
                measures: vec![("calls".to_owned(), Measure::Calls(None))],
            },
        ]
    }

    /// The statement that aggregates the facts `from` selects (as `f`) into this table.
    fn insert(&self, from: &str, facts: Facts) -> String {
        let (table, join) = (self.table, self.join);
        let key_names: String = self.keys.iter().map(|(name, _)| format!(", {name}")).collect();
        let key_values: String = self.keys.iter().map(|(_, value)| format!(", {value}")).collect();
        let names = self
            .measures
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let values: Vec<String> = self.measures.iter().map(|(_, m)| m.select(facts)).collect();
        let groupings = "GROUPING SETS ((f.agent_id, f.campaign_id), (f.agent_id), (f.campaign_id), ())";
        let mut statement = format!(
            "INSERT INTO {table} ({GROUPING_KEYS}{key_names}, {names})
             SELECT {GROUPING_COLUMNS}{key_values}, {}
             {from} {join} GROUP BY f.organization_id, f.local_date{key_values}, {groupings}",
            values.join(", ")
        );
        if facts == Facts::Signed {
            // Groups the change leaves as they were are not written.
            let changed: Vec<String> = values.iter().map(|value| format!("{value} <> 0")).collect();
            let additions: Vec<String> = self
                .measures
                .iter()
                .map(|(name, _)| format!("{name} = {table}.{name} + EXCLUDED.{name}"))
                .collect();
            statement.push_str(&format!(
                " HAVING {} ON CONFLICT ({GROUPING_KEYS}{key_names}) DO UPDATE SET {}",
                changed.join(" OR "),
                additions.join(", ")
            ));
        }
        statement
    }
}

/// Replaces every aggregate row of these organizations with those of their facts (after [`rezone`]).
async fn reaggregate(conn: &mut PgConnection, organizations: &[Uuid]) -> Result<(), sqlx::Error> {
    if organizations.is_empty() {
        return Ok(());
    }
    let aggregates = Aggregate::all();
    let deletes = aggregates
        .iter()
        .map(|a| format!("DELETE FROM {} WHERE organization_id = ANY($1)", a.table));
    let inserts = aggregates.iter().map(|a| {
        a.insert(
            "FROM (SELECT * FROM analytics_calls WHERE organization_id = ANY($1)) f",
            Facts::Whole,
        )
    });
    for statement in deletes.chain(inserts) {
        sqlx::query(&statement).bind(organizations).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes the aggregate rows of these organization-days that no call counts in any more.
async fn remove_emptied_rows(conn: &mut PgConnection, days: Vec<(Uuid, NaiveDate)>) -> Result<(), sqlx::Error> {
    if days.is_empty() {
        return Ok(());
    }
    let (organizations, dates): (Vec<Uuid>, Vec<NaiveDate>) = days.into_iter().unzip();
    let [daily, hourly, missed] = Aggregate::all().map(|aggregate| {
        format!(
            "DELETE FROM {} t USING UNNEST($1::uuid[], $2::date[]) AS d(organization_id, local_date)
             WHERE t.organization_id = d.organization_id AND t.local_date = d.local_date AND t.calls = 0",
            aggregate.table
        )
    });
    sqlx::query(&format!("WITH daily AS ({daily}), hourly AS ({hourly}) {missed}"))
        .bind(organizations)
        .bind(dates)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The event types this read model reads; the store skips the rest undecoded.
const EVENT_TYPES: &[&str] = &[
    "OrganizationCreated",
    "OrganizationSettingsChanged",
    "CallRequested",
    "CallPlacementFailed",
    "CallStatusUpdated",
    "CallAnalyzed",
    "CallOutcomeRecorded",
    "CrmConnected",
    "CrmSettingsChanged",
    "CrmDealUpdated",
    "AppointmentBooked",
];

#[async_trait]
impl ReadModel for AnalyticsProjection {
    fn name(&self) -> &'static str {
        "analytics"
    }

    fn schema_version(&self) -> i32 {
        6
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&[
            "organization",
            "call",
            "crm-integration",
            "crm-call-sync",
            "calendar-bookings",
        ])
    }

    fn event_types(&self) -> Option<&[&'static str]> {
        Some(EVENT_TYPES)
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "analytics_organizations",
            "analytics_sale_stages",
            "analytics_calls",
            "analytics_daily",
            "analytics_hourly",
            "analytics_missed_points",
        ]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("../analytics.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let inputs = decode_all(events)?;
        let mut batch = AnalyticsBatch::default();
        load(conn, &wanted(&inputs), &mut batch).await?;
        let stored = batch.facts.clone();
        batch.fold(inputs);
        save_settings(conn, &batch).await?;
        for facts in batch.facts.values_mut() {
            facts.level = facts.funnel_level();
        }
        let changed = batch
            .facts
            .values()
            .filter(|f| batch.touched.contains(&f.id) && stored.get(&f.id) != Some(*f))
            .collect();
        let emptied_days = save_facts(conn, changed).await?;
        remove_emptied_rows(conn, emptied_days).await?;
        // A new zone moves every call of the organization: its figures are aggregated anew.
        let rezoned = as_vec(&batch.rezoned);
        rezone(conn, &rezoned).await?;
        reaggregate(conn, &rezoned).await
    }

    fn rebuild(&self, held_rows: usize) -> Box<dyn Rebuild + '_> {
        Box::new(AnalyticsRebuild {
            held_facts: held_rows.max(1),
            ..AnalyticsRebuild::default()
        })
    }
}

fn decode_all(events: &[RecordedEvent]) -> Result<Vec<(&RecordedEvent, Input)>, sqlx::Error> {
    let mut inputs = Vec::with_capacity(events.len());
    for event in events {
        if let Some(input) = decode(event)? {
            inputs.push((event, input));
        }
    }
    Ok(inputs)
}

/// A rebuild keeps what the batches share in memory from the log's start:
/// zones, sale stages, and the facts of the calls seen since the last write.
/// A call's later events fold into its held facts without reading them back;
/// the facts are written in bulk when the holding reaches `held_facts` and at
/// the end, and the aggregates are computed once, over all facts.
#[derive(Default)]
struct AnalyticsRebuild {
    held_facts: usize,
    state: AnalyticsBatch,
    /// Calls whose facts are already written: an event of one reads them back first.
    written: HashSet<Uuid>,
}

impl AnalyticsRebuild {
    /// Writes the held facts: those written before (read back since) are replaced.
    async fn write_held(&mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let mut held: Vec<CallFacts> = self.state.facts.drain().map(|(_, facts)| facts).collect();
        for facts in &mut held {
            facts.level = facts.funnel_level();
        }
        let rewritten: Vec<Uuid> = held
            .iter()
            .map(|f| f.id)
            .filter(|id| self.written.contains(id))
            .collect();
        if !rewritten.is_empty() {
            sqlx::query("DELETE FROM analytics_calls WHERE id = ANY($1)")
                .bind(&rewritten)
                .execute(&mut *conn)
                .await?;
        }
        copy_facts(conn, &held).await?;
        self.written.extend(held.iter().map(|f| f.id));
        Ok(())
    }
}

#[async_trait]
impl Rebuild for AnalyticsRebuild {
    async fn apply(&mut self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let inputs = decode_all(events)?;
        // Zones and sale stages are all in memory since the log's start; facts only while held.
        let mut wanted = wanted(&inputs);
        wanted.organizations.clear();
        wanted.sale_stage_organizations.clear();
        let state = &self.state;
        wanted
            .calls
            .retain(|id| self.written.contains(id) && !state.facts.contains_key(id));
        load(conn, &wanted, &mut self.state).await?;
        self.state.fold(inputs);
        save_settings(conn, &self.state).await?;
        rezone(conn, &as_vec(&self.state.rezoned)).await?;
        self.state.rezoned.clear();
        self.state.changed_sale_stages.clear();
        self.state.touched.clear();
        if self.state.facts.len() >= self.held_facts {
            self.write_held(conn).await?;
        }
        Ok(())
    }

    async fn finish(&mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        self.write_held(conn).await
    }

    /// The aggregates of every fact, computed once into the empty tables.
    fn completing_statements(&self) -> Vec<String> {
        Aggregate::all()
            .map(|aggregate| aggregate.insert("FROM analytics_calls f", Facts::Whole))
            .to_vec()
    }
}

/// The columns a rebuild copies; PostgreSQL adds the local day and hour.
const COPIED_COLUMNS: &str = "id, organization_id, agent_id, campaign_id, started_at, start_from_report, \
    duration_seconds, outcome, connected, no_contact, appointment_booked, deal_won, level, talk_agent, \
    talk_prospect, talk_monologue, talk_interruptions, talk_silence, talk_call, sentiment, sentiment_label, \
    adherence, missed_points";

/// Writes new facts in bulk: `COPY` into a scratch table, then one insert
/// that buckets them in their organization's zone, as [`save_facts`] does.
async fn copy_facts(conn: &mut PgConnection, facts: &[CallFacts]) -> Result<(), sqlx::Error> {
    if facts.is_empty() {
        return Ok(());
    }
    run_script(
        conn,
        format!(
            "CREATE TEMP TABLE analytics_calls_copied ON COMMIT DROP AS
             SELECT {COPIED_COLUMNS} FROM analytics_calls WITH NO DATA"
        ),
    )
    .await?;
    copy_in(
        conn,
        &format!("analytics_calls_copied ({COPIED_COLUMNS})"),
        facts,
        |row, facts| {
            copy_row(row, facts);
            Ok(())
        },
    )
    .await?;
    let values = bucketed_columns();
    run_script(
        conn,
        format!(
            "INSERT INTO analytics_calls ({FACT_COLUMNS})
             SELECT {values} FROM analytics_calls_copied r
             LEFT JOIN (SELECT organization_id, timezone AS zone FROM analytics_organizations) o
                    ON o.organization_id = r.organization_id
             CROSS JOIN LATERAL (SELECT COALESCE(o.zone, 'UTC') AS zone) z;
             DROP TABLE analytics_calls_copied"
        ),
    )
    .await
}

/// One row of [`COPIED_COLUMNS`].
fn copy_row(row: &mut CopyRows, facts: &CallFacts) {
    row.value(Some(facts.id))
        .value(Some(facts.organization_id))
        .value(facts.agent_id)
        .value(facts.campaign_id)
        .value(Some(facts.started_at))
        .value(Some(facts.start_from_report))
        .value(facts.duration_seconds)
        .value(facts.outcome.map(Outcome::as_str))
        .value(Some(facts.connected))
        .value(Some(facts.no_contact))
        .value(Some(facts.appointment_booked))
        .value(Some(facts.deal_won))
        .value(Some(facts.level))
        .value(facts.talk_agent)
        .value(facts.talk_prospect)
        .value(facts.talk_monologue)
        .value(facts.talk_interruptions)
        .value(facts.talk_silence)
        .value(facts.talk_call)
        .value(facts.sentiment)
        .value(facts.sentiment_label.map(|l| l.as_str()))
        .value(facts.adherence)
        .text_array(&facts.missed_points);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysed(duration_seconds: f64) -> CallFacts {
        let report = domain::calls::CallReport {
            duration_seconds: Some(duration_seconds),
            ..Default::default()
        };
        let mut facts = CallFacts::default();
        facts.analysis(&CallAnalysis::of(&report, None));
        facts
    }

    #[test]
    fn absurd_durations_do_not_count() {
        assert_eq!(analysed(95.5).duration_seconds, Some(95.5));
        // In millionths this would overflow a bigint sum and stop the read model.
        assert_eq!(analysed(1e13).duration_seconds, None);
        assert_eq!(analysed(-1e13).duration_seconds, None);
    }
}
