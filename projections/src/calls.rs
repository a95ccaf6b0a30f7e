//! Call history: one row per call for lists and details, its event timeline,
//! and per-organization totals for the dashboard.

use crate::copy::copy_in;
use crate::rows::{self, stream_uuid};
use crate::runtime::{ReadModel, Rebuild};
use application::calls::{
    CallDetail, CallFilter, CallHistory, CallOwners, CallSummary, DashboardStats, NumberOwner, TimelineEntry,
    VapiIdOwners,
};
use application::AppError;
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use domain::calls::{CallDirection, CallEvent, CallParties, CallReport, CallStatus, EndedReason};
use domain::RecordedEvent;
use serde_json::{json, Value};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

pub struct CallsProjection;

/// What a batch knows of one call: the stored row's small columns, folded
/// forward, and the newest end-of-call report of the batch.
struct CallRow {
    organization_id: Uuid,
    existed: bool,
    parties: CallParties,
    status: CallStatus,
    status_rank: i32,
    ended_reason: Option<String>,
    outcome: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The position of the report the row shows; the report's columns are
    /// rewritten only when it changes, so a batch never reads transcripts back.
    report_position: Option<i64>,
    report: Option<Box<CallReport>>,
}

/// A status's rank in the lifecycle (-1 outside it), as the table stores it.
fn rank_of(status: &CallStatus) -> i32 {
    status.rank().map_or(-1, i32::from)
}

fn is_final(status: &CallStatus) -> bool {
    matches!(status, CallStatus::Ended | CallStatus::Failed)
}

impl CallRow {
    /// Fills in what an event knows about the call's parties; the first value known wins.
    fn learn(&mut self, parties: &CallParties, at: DateTime<Utc>) {
        let known = &mut self.parties;
        known.vapi_call_id = known.vapi_call_id.take().or_else(|| parties.vapi_call_id.clone());
        known.direction = known.direction.take().or_else(|| parties.direction.clone());
        known.agent_id = known.agent_id.or(parties.agent_id);
        known.phone_number_id = known.phone_number_id.or(parties.phone_number_id);
        known.customer_number = known.customer_number.take().or_else(|| parties.customer_number.clone());
        self.updated_at = at;
    }

    /// Moves the call forward to `status`, never backwards and never out of a final status.
    fn advance(&mut self, status: &CallStatus) {
        if !is_final(&self.status) && self.status_rank < rank_of(status) {
            self.status = status.clone();
            self.status_rank = rank_of(status);
        }
    }
}

/// The call's row, created on first sight; `None` when the event names
/// another organization than the call's (it must not touch the call).
fn touch<'a>(
    rows: &'a mut HashMap<Uuid, CallRow>,
    id: Uuid,
    event: &RecordedEvent,
    parties: &CallParties,
) -> Option<&'a mut CallRow> {
    let row = rows.entry(id).or_insert_with(|| CallRow {
        organization_id: event.organization_id,
        existed: false,
        parties: CallParties::default(),
        status: CallStatus::Requested,
        status_rank: -1,
        ended_reason: None,
        outcome: None,
        created_at: event.recorded_at,
        updated_at: event.recorded_at,
        report_position: None,
        report: None,
    });
    if row.organization_id != event.organization_id {
        return None;
    }
    row.learn(parties, event.recorded_at);
    Some(row)
}

/// One timeline entry per event the user sees.
struct TimelineRow {
    call_id: Uuid,
    organization_id: Uuid,
    global_position: i64,
    event_type: String,
    status: Option<CallStatus>,
    at: DateTime<Utc>,
    details: Value,
}

/// What one batch changes, folded per call and per organization.
#[derive(Default)]
struct CallsBatch {
    calls: HashMap<Uuid, CallRow>,
    timeline: Vec<TimelineRow>,
    /// New calls and reported seconds per organization.
    stats: HashMap<Uuid, (i64, f64)>,
}

impl CallsBatch {
    /// Counts these calls that have no stored row yet in their organizations' totals.
    fn count_new_calls<'a>(&mut self, rows: impl IntoIterator<Item = &'a CallRow>) {
        for row in rows.into_iter().filter(|row| !row.existed) {
            self.stats.entry(row.organization_id).or_default().0 += 1;
        }
    }

    fn evolve(&mut self, event: &RecordedEvent, id: Uuid, decoded: CallEvent) {
        let unknown = CallParties::default();
        let (status, at, details) = match decoded {
            CallEvent::CallRequested {
                parties,
                requested_by,
                requested_at,
                ..
            } => {
                if touch(&mut self.calls, id, event, &parties).is_none() {
                    return;
                }
                (
                    Some(CallStatus::Requested),
                    requested_at,
                    json!({ "requestedBy": requested_by, "agentId": parties.agent_id }),
                )
            }
            // The placement reactor's own bookkeeping, and analytics' reading of the
            // report: nothing the call list or timeline shows changes.
            CallEvent::CallPlacementStarted { .. } | CallEvent::CallAnalyzed { .. } => return,
            CallEvent::CallPlacedWithVapi { vapi_call_id, at } => {
                let parties = CallParties {
                    vapi_call_id: Some(vapi_call_id.clone()),
                    ..CallParties::default()
                };
                let Some(row) = touch(&mut self.calls, id, event, &parties) else {
                    return;
                };
                row.advance(&CallStatus::Queued);
                (Some(CallStatus::Queued), at, json!({ "vapiCallId": vapi_call_id }))
            }
            CallEvent::CallPlacementFailed { reason, at } => {
                let Some(row) = touch(&mut self.calls, id, event, &unknown) else {
                    return;
                };
                if row.status != CallStatus::Ended {
                    row.status = CallStatus::Failed;
                    row.ended_reason.get_or_insert_with(|| "placement-failed".to_owned());
                }
                (Some(CallStatus::Failed), at, json!({ "reason": reason }))
            }
            CallEvent::CallStatusUpdated {
                parties,
                status,
                ended_reason,
                at,
            } => {
                let Some(row) = touch(&mut self.calls, id, event, &parties) else {
                    return;
                };
                row.advance(&status);
                if row.ended_reason.is_none() {
                    row.ended_reason = ended_reason.as_ref().map(EndedReason::as_str);
                }
                (
                    Some(status),
                    at,
                    json!({ "endedReason": ended_reason, "agentId": parties.agent_id }),
                )
            }
            CallEvent::CallEnded { parties, report, at } => {
                let Some(row) = touch(&mut self.calls, id, event, &parties) else {
                    return;
                };
                row.status = CallStatus::Ended;
                row.status_rank = rank_of(&CallStatus::Ended);
                if let Some(reason) = &report.ended_reason {
                    row.ended_reason = Some(reason.as_str());
                }
                row.report_position = Some(event.global_position);
                self.stats.entry(event.organization_id).or_default().1 += report.duration_seconds.unwrap_or(0.0);
                let details = json!({ "endedReason": report.ended_reason, "durationSeconds": report.duration_seconds, "cost": report.cost });
                row.report = Some(report);
                (Some(CallStatus::Ended), at, details)
            }
            CallEvent::CallOutcomeRecorded {
                outcome,
                notes,
                source,
                at,
            } => {
                match self.calls.get_mut(&id) {
                    Some(row) if row.organization_id != event.organization_id => return,
                    Some(row) => {
                        row.outcome = Some(outcome.as_str().to_owned());
                        row.updated_at = at;
                    }
                    None => {}
                }
                (
                    None,
                    at,
                    json!({ "outcome": outcome, "notes": notes, "source": source }),
                )
            }
        };
        self.timeline.push(TimelineRow {
            call_id: id,
            organization_id: event.organization_id,
            global_position: event.global_position,
            event_type: event.event_type.clone(),
            status,
            at,
            details,
        });
    }
}

/// The stored rows of the calls a batch touches, without their reports.
async fn load_calls(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, CallRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, organization_id, vapi_call_id, direction, agent_id, phone_number_id, customer_number, status,
                status_rank, ended_reason, outcome, created_at, updated_at, report_position
         FROM calls WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let row = CallRow {
                organization_id: r.get("organization_id"),
                existed: true,
                parties: CallParties {
                    vapi_call_id: r.get("vapi_call_id"),
                    direction: r.get::<Option<&str>, _>("direction").map(CallDirection::parse),
                    agent_id: r.get("agent_id"),
                    phone_number_id: r.get("phone_number_id"),
                    customer_number: r.get("customer_number"),
                },
                status: CallStatus::parse(r.get("status")),
                status_rank: r.get("status_rank"),
                ended_reason: r.get("ended_reason"),
                outcome: r.get("outcome"),
                created_at: r.get("created_at"),
                updated_at: r.get("updated_at"),
                report_position: r.get("report_position"),
                report: None,
            };
            (r.get("id"), row)
        })
        .collect())
}

/// The report columns, rewritten only when the row's report changes.
const REPORT_COLUMNS: [&str; 11] = [
    "started_at",
    "ended_at",
    "duration_seconds",
    "cost",
    "transcript",
    "messages",
    "recording_url",
    "stereo_recording_url",
    "summary",
    "structured_data",
    "success_evaluation",
];

/// Writes every touched call in one statement.
async fn save_calls(conn: &mut PgConnection, calls: &HashMap<Uuid, CallRow>) -> Result<(), sqlx::Error> {
    let n = calls.len();
    let mut ids = Vec::with_capacity(n);
    let mut organizations = Vec::with_capacity(n);
    let mut vapi_ids = Vec::with_capacity(n);
    let mut agents = Vec::with_capacity(n);
    let mut numbers = Vec::with_capacity(n);
    let mut directions = Vec::with_capacity(n);
    let mut customers = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut ranks = Vec::with_capacity(n);
    let mut reasons = Vec::with_capacity(n);
    let mut outcomes = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut updated = Vec::with_capacity(n);
    let mut report_positions = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut ended = Vec::with_capacity(n);
    let mut durations = Vec::with_capacity(n);
    let mut costs = Vec::with_capacity(n);
    let mut transcripts = Vec::with_capacity(n);
    let mut messages = Vec::with_capacity(n);
    let mut recordings = Vec::with_capacity(n);
    let mut stereo_recordings = Vec::with_capacity(n);
    let mut summaries = Vec::with_capacity(n);
    let mut structured = Vec::with_capacity(n);
    let mut evaluations = Vec::with_capacity(n);
    let no_messages = Vec::new();
    for (id, row) in calls {
        ids.push(*id);
        organizations.push(row.organization_id);
        vapi_ids.push(row.parties.vapi_call_id.as_deref());
        agents.push(row.parties.agent_id);
        numbers.push(row.parties.phone_number_id);
        directions.push(row.parties.direction.as_ref().map(CallDirection::as_str));
        customers.push(row.parties.customer_number.as_deref());
        statuses.push(row.status.as_str());
        ranks.push(row.status_rank);
        reasons.push(row.ended_reason.as_deref());
        outcomes.push(row.outcome.as_deref());
        created.push(row.created_at);
        updated.push(row.updated_at);
        report_positions.push(row.report_position);
        let report = row.report.as_ref();
        started.push(report.and_then(|r| r.started_at));
        ended.push(report.and_then(|r| r.ended_at));
        durations.push(report.and_then(|r| r.duration_seconds));
        costs.push(report.and_then(|r| r.cost));
        transcripts.push(report.and_then(|r| r.transcript.as_deref()));
        messages.push(json_text(report.map_or(&no_messages, |r| &r.messages))?);
        recordings.push(report.and_then(|r| r.recording_url.as_deref()));
        stereo_recordings.push(report.and_then(|r| r.stereo_recording_url.as_deref()));
        summaries.push(report.and_then(|r| r.summary.as_deref()));
        structured.push(
            report
                .and_then(|r| r.structured_data.as_ref())
                .map(json_text)
                .transpose()?,
        );
        evaluations.push(report.and_then(|r| r.success_evaluation.as_deref()));
    }
    let report_updates = REPORT_COLUMNS
        .map(|column| {
            format!(
                "{column} = CASE WHEN EXCLUDED.report_position IS DISTINCT FROM c.report_position
                                 THEN EXCLUDED.{column} ELSE c.{column} END"
            )
        })
        .join(", ");
    sqlx::query(&format!(
        "INSERT INTO calls AS c (id, organization_id, vapi_call_id, agent_id, phone_number_id, direction, customer_number,
            status, status_rank, ended_reason, outcome, created_at, updated_at, report_position, {})
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::text[], $7::text[],
            $8::text[], $9::int[], $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[], $14::bigint[],
            $15::timestamptz[], $16::timestamptz[], $17::float8[], $18::float8[], $19::text[], $20::text[], $21::text[],
            $22::text[], $23::text[], $24::text[], $25::text[])
         ON CONFLICT (id) DO UPDATE SET vapi_call_id = EXCLUDED.vapi_call_id, agent_id = EXCLUDED.agent_id,
            phone_number_id = EXCLUDED.phone_number_id, direction = EXCLUDED.direction,
            customer_number = EXCLUDED.customer_number, status = EXCLUDED.status, status_rank = EXCLUDED.status_rank,
            ended_reason = EXCLUDED.ended_reason, outcome = EXCLUDED.outcome, updated_at = EXCLUDED.updated_at,
            {report_updates}, report_position = EXCLUDED.report_position",
        REPORT_COLUMNS.join(", ")
    ))
    .bind(ids)
    .bind(organizations)
    .bind(vapi_ids)
    .bind(agents)
    .bind(numbers)
    .bind(directions)
    .bind(customers)
    .bind(statuses)
    .bind(ranks)
    .bind(reasons)
    .bind(outcomes)
    .bind(created)
    .bind(updated)
    .bind(report_positions)
    .bind(started)
    .bind(ended)
    .bind(durations)
    .bind(costs)
    .bind(transcripts)
    .bind(messages)
    .bind(recordings)
    .bind(stereo_recordings)
    .bind(summaries)
    .bind(structured)
    .bind(evaluations)
    .execute(conn)
    .await
    .map(|_| ())
}

/// JSON kept as text: stored as given, never validated or converted by PostgreSQL on write
/// (nothing queries inside these documents; converting them was most of a batch's cost).
fn json_text(value: &impl serde::Serialize) -> Result<String, sqlx::Error> {
    serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Appends the timeline entries (they are only ever added) by `COPY`.
async fn save_timeline(conn: &mut PgConnection, timeline: Vec<TimelineRow>) -> Result<(), sqlx::Error> {
    copy_in(
        conn,
        "call_timeline (call_id, organization_id, global_position, event_type, status, at, details)",
        timeline,
        |row, entry| {
            row.value(Some(entry.call_id))
                .value(Some(entry.organization_id))
                .value(Some(entry.global_position))
                .value(Some(&entry.event_type))
                .value(entry.status.as_ref().map(CallStatus::as_str))
                .value(Some(as_bound(entry.at)))
                .value(Some(&json_text(&entry.details)?));
            Ok(())
        },
    )
    .await
}

async fn save_stats(conn: &mut PgConnection, stats: HashMap<Uuid, (i64, f64)>) -> Result<(), sqlx::Error> {
    let (mut organizations, mut calls, mut seconds) = (vec![], vec![], vec![]);
    for (organization, (new_calls, reported_seconds)) in stats {
        organizations.push(organization);
        calls.push(new_calls);
        seconds.push(reported_seconds);
    }
    sqlx::query(
        "INSERT INTO organization_call_stats AS s (organization_id, total_calls, total_seconds)
         SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::float8[])
         ON CONFLICT (organization_id) DO UPDATE
         SET total_calls = s.total_calls + EXCLUDED.total_calls, total_seconds = s.total_seconds + EXCLUDED.total_seconds",
    )
    .bind(organizations)
    .bind(calls)
    .bind(seconds)
    .execute(conn)
    .await
    .map(|_| ())
}

#[async_trait]
impl ReadModel for CallsProjection {
    fn name(&self) -> &'static str {
        "calls"
    }

    fn schema_version(&self) -> i32 {
        4
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["call"])
    }

    fn event_types(&self) -> Option<&[&'static str]> {
        Some(&[
            "CallRequested",
            "CallPlacedWithVapi",
            "CallPlacementFailed",
            "CallStatusUpdated",
            "CallEnded",
            "CallOutcomeRecorded",
        ])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["calls", "call_timeline", "organization_call_stats"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("calls.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let ids = events.iter().map(stream_uuid).collect::<Result<Vec<_>, _>>()?;
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let mut batch = CallsBatch {
            calls: load_calls(conn, &distinct).await?,
            ..CallsBatch::default()
        };
        for (event, id) in events.iter().zip(ids) {
            let decoded = rows::decode::<CallEvent>(event)?;
            batch.evolve(event, id, decoded);
        }
        let calls = std::mem::take(&mut batch.calls);
        batch.count_new_calls(calls.values());
        save_calls(conn, &calls).await?;
        save_timeline(conn, batch.timeline).await?;
        save_stats(conn, batch.stats).await
    }

    fn rebuild(&self, held_rows: usize) -> Box<dyn Rebuild + '_> {
        Box::new(CallsRebuild {
            held_rows: held_rows.max(1),
            state: CallsBatch::default(),
            held_report_bytes: 0,
            written: HashSet::new(),
        })
    }
}

/// The report text a rebuild may hold in memory before it writes its held calls.
const HELD_REPORT_BYTES: usize = 64 << 20;

/// A rebuild keeps the calls seen since its last write in memory, so a call's
/// later events fold into its row without reading it back or rewriting it.
/// When the held calls reach `held_rows` rows or [`HELD_REPORT_BYTES`] of
/// reports, those the current batch did not touch are written (a call's
/// events come close together, so they are most likely complete), and all of
/// them at the end: new ones by `COPY`, those written before (read back since)
/// by the live path's upsert. The organizations' totals are written once, at the end.
struct CallsRebuild {
    held_rows: usize,
    state: CallsBatch,
    held_report_bytes: usize,
    /// Calls already written: an event of one reads its row back first.
    written: HashSet<Uuid>,
}

impl CallsRebuild {
    /// Writes the held calls but those in `keep` (all of them when only those are held).
    async fn write_held(&mut self, conn: &mut PgConnection, keep: &HashSet<Uuid>) -> Result<(), sqlx::Error> {
        let held = std::mem::take(&mut self.state.calls);
        let (kept, to_write): (HashMap<Uuid, CallRow>, HashMap<Uuid, CallRow>) = if held.len() > keep.len() {
            held.into_iter().partition(|(id, _)| keep.contains(id))
        } else {
            (HashMap::new(), held)
        };
        self.state.count_new_calls(to_write.values());
        let (rewritten, new): (HashMap<Uuid, CallRow>, HashMap<Uuid, CallRow>) =
            to_write.into_iter().partition(|(_, row)| row.existed);
        save_calls(conn, &rewritten).await?;
        copy_calls(conn, &new).await?;
        self.written.extend(new.into_keys());
        self.held_report_bytes = kept
            .values()
            .filter_map(|row| row.report.as_deref())
            .map(report_text_bytes)
            .sum();
        self.state.calls = kept;
        Ok(())
    }
}

#[async_trait]
impl Rebuild for CallsRebuild {
    async fn apply(&mut self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        let ids = events.iter().map(stream_uuid).collect::<Result<Vec<_>, _>>()?;
        let touched: HashSet<Uuid> = ids.iter().copied().collect();
        let unheld: Vec<Uuid> = touched
            .iter()
            .filter(|id| self.written.contains(id) && !self.state.calls.contains_key(id))
            .copied()
            .collect();
        self.state.calls.extend(load_calls(conn, &unheld).await?);
        for (event, id) in events.iter().zip(ids) {
            let decoded = rows::decode::<CallEvent>(event)?;
            if let CallEvent::CallEnded { report, .. } = &decoded {
                self.held_report_bytes += report_text_bytes(report);
            }
            self.state.evolve(event, id, decoded);
        }
        save_timeline(conn, std::mem::take(&mut self.state.timeline)).await?;
        if self.state.calls.len() >= self.held_rows || self.held_report_bytes >= HELD_REPORT_BYTES {
            self.write_held(conn, &touched).await?;
        }
        Ok(())
    }

    async fn finish(&mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        self.write_held(conn, &HashSet::new()).await?;
        save_stats(conn, std::mem::take(&mut self.state.stats)).await
    }
}

/// About how much memory a held report takes: its texts.
fn report_text_bytes(report: &CallReport) -> usize {
    let texts = [&report.transcript, &report.summary].map(|text| text.as_ref().map_or(0, String::len));
    texts.iter().sum::<usize>()
        + report
            .messages
            .iter()
            .map(|m| m.message.len() + m.role.len())
            .sum::<usize>()
}

/// A time as the live path's bound parameters store it: cut to the microsecond.
fn as_bound(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// Writes calls that have no stored row by `COPY`, every column.
async fn copy_calls(conn: &mut PgConnection, calls: &HashMap<Uuid, CallRow>) -> Result<(), sqlx::Error> {
    let no_messages = Vec::new();
    copy_in(
        conn,
        &format!(
            "calls (id, organization_id, vapi_call_id, agent_id, phone_number_id, direction, customer_number, status,
                    status_rank, ended_reason, outcome, created_at, updated_at, report_position, {})",
            REPORT_COLUMNS.join(", ")
        ),
        calls,
        |copied, (id, row)| {
            let report = row.report.as_deref();
            copied
                .value(Some(id))
                .value(Some(row.organization_id))
                .value(row.parties.vapi_call_id.as_deref())
                .value(row.parties.agent_id)
                .value(row.parties.phone_number_id)
                .value(row.parties.direction.as_ref().map(CallDirection::as_str))
                .value(row.parties.customer_number.as_deref())
                .value(Some(row.status.as_str()))
                .value(Some(row.status_rank))
                .value(row.ended_reason.as_deref())
                .value(row.outcome.as_deref())
                .value(Some(as_bound(row.created_at)))
                .value(Some(as_bound(row.updated_at)))
                .value(row.report_position)
                .value(report.and_then(|r| r.started_at).map(as_bound))
                .value(report.and_then(|r| r.ended_at).map(as_bound))
                .value(report.and_then(|r| r.duration_seconds))
                .value(report.and_then(|r| r.cost))
                .value(report.and_then(|r| r.transcript.as_deref()))
                .value(Some(&json_text(report.map_or(&no_messages, |r| &r.messages))?))
                .value(report.and_then(|r| r.recording_url.as_deref()))
                .value(report.and_then(|r| r.stereo_recording_url.as_deref()))
                .value(report.and_then(|r| r.summary.as_deref()))
                .value(
                    report
                        .and_then(|r| r.structured_data.as_ref())
                        .map(json_text)
                        .transpose()?
                        .as_deref(),
                )
                .value(report.and_then(|r| r.success_evaluation.as_deref()));
            Ok(())
        },
    )
    .await
}

#[derive(Clone)]
pub struct PgCallHistory {
    pool: PgPool,
}

impl PgCallHistory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

const SUMMARY_COLUMNS: &str = "c.id, c.vapi_call_id, c.agent_id, a.spec->>'name' AS agent_name, c.direction, \
     c.customer_number, c.status, c.ended_reason, c.outcome, c.duration_seconds, c.cost, c.started_at, c.ended_at, c.created_at";

fn summary(row: &PgRow) -> CallSummary {
    CallSummary {
        id: row.get("id"),
        vapi_call_id: row.get("vapi_call_id"),
        agent_id: row.get("agent_id"),
        agent_name: row.get("agent_name"),
        direction: row.get::<Option<&str>, _>("direction").map(CallDirection::parse),
        customer_number: row.get("customer_number"),
        status: CallStatus::parse(row.get("status")),
        ended_reason: row.get::<Option<&str>, _>("ended_reason").map(EndedReason::parse),
        // Written from typed outcomes only.
        outcome: row.get::<Option<&str>, _>("outcome").and_then(|o| o.parse().ok()),
        duration_seconds: row.get("duration_seconds"),
        cost: row.get("cost"),
        started_at: row.get("started_at"),
        ended_at: row.get("ended_at"),
        created_at: row.get("created_at"),
    }
}

fn failed(error: sqlx::Error) -> AppError {
    AppError::internal("reading call history", error)
}

#[async_trait]
impl CallHistory for PgCallHistory {
    async fn list(&self, organization_id: Uuid, filter: &CallFilter) -> Result<Vec<CallSummary>, AppError> {
        let phone_digits = filter
            .phone
            .as_ref()
            .map(|p| p.chars().filter(char::is_ascii_digit).collect::<String>());
        let rows = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM calls c LEFT JOIN agents a ON a.id = c.agent_id AND a.organization_id = c.organization_id
             WHERE c.organization_id = $1
               AND ($2::text IS NULL OR c.status = $2)
               AND ($3::uuid IS NULL OR c.agent_id = $3)
               AND ($4::text IS NULL OR c.direction = $4)
               AND ($5::text IS NULL OR c.outcome = $5)
               AND ($6::text IS NULL OR c.customer_number LIKE '%' || $6 || '%')
               AND ($7::timestamptz IS NULL OR c.created_at >= $7)
               AND ($8::timestamptz IS NULL OR c.created_at < $8)
               AND ($9::timestamptz IS NULL OR (c.created_at, c.id) < ($9, $10))
               AND ($12::timestamptz IS NULL OR c.ended_at >= $12)
               AND ($13::timestamptz IS NULL OR c.ended_at < $13)
             ORDER BY c.created_at DESC, c.id DESC
             LIMIT $11"
        ))
        .bind(organization_id)
        .bind(filter.status.as_ref().map(CallStatus::as_str))
        .bind(filter.agent_id)
        .bind(filter.direction.as_ref().map(CallDirection::as_str))
        .bind(filter.outcome.map(domain::calls::Outcome::as_str))
        .bind(phone_digits)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.after.map(|(at, _)| at))
        .bind(filter.after.map(|(_, id)| id))
        .bind(filter.limit)
        .bind(filter.ended_from)
        .bind(filter.ended_before)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        Ok(rows.iter().map(summary).collect())
    }

    async fn get(&self, organization_id: Uuid, call_id: Uuid) -> Result<Option<CallDetail>, AppError> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS}, c.transcript, c.messages::json AS messages, c.recording_url, c.stereo_recording_url,
                    c.summary, c.structured_data::json AS structured_data, c.success_evaluation
             FROM calls c LEFT JOIN agents a ON a.id = c.agent_id AND a.organization_id = c.organization_id
             WHERE c.organization_id = $1 AND c.id = $2"
        ))
        .bind(organization_id)
        .bind(call_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)?
        else {
            return Ok(None);
        };
        let timeline = sqlx::query(
            "SELECT at, event_type, status, details::json AS details FROM call_timeline
             WHERE organization_id = $1 AND call_id = $2 ORDER BY global_position",
        )
        .bind(organization_id)
        .bind(call_id)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?
        .iter()
        .map(|t| TimelineEntry {
            at: t.get("at"),
            event_type: t.get("event_type"),
            status: t.get::<Option<&str>, _>("status").map(CallStatus::parse),
            details: t.get("details"),
        })
        .collect();
        Ok(Some(CallDetail {
            summary: summary(&row),
            transcript: row.get("transcript"),
            messages: row.get("messages"),
            recording_url: row.get("recording_url"),
            stereo_recording_url: row.get("stereo_recording_url"),
            analysis: json!({
                "summary": row.get::<Option<String>, _>("summary"),
                "structuredData": row.get::<Option<Value>, _>("structured_data"),
                "successEvaluation": row.get::<Option<String>, _>("success_evaluation"),
            }),
            timeline,
        }))
    }

    async fn qualified_before(
        &self,
        organization_id: Uuid,
        customer_number: &str,
        except: Uuid,
    ) -> Result<bool, AppError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM calls WHERE organization_id = $1 AND customer_number = $2 AND id <> $3
                            AND outcome IN ('qualified', 'appointment', 'sale'))",
        )
        .bind(organization_id)
        .bind(customer_number)
        .bind(except)
        .fetch_one(&self.pool)
        .await
        .map_err(failed)
    }

    async fn day_totals(
        &self,
        organization_id: Uuid,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<domain::slack::DayTotals, AppError> {
        let failure_reasons: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT ended_reason FROM calls WHERE organization_id = $1 AND created_at >= $2 AND created_at < $3 AND ended_reason IS NOT NULL",
        )
        .bind(organization_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?
        .into_iter()
        .filter(|r: &String| EndedReason::parse(r).is_technical_failure())
        .collect();
        let row = sqlx::query(
            "SELECT count(*) AS calls, COALESCE(sum(duration_seconds), 0) / 60.0 AS minutes,
                    count(*) FILTER (WHERE outcome IN ('qualified', 'appointment', 'sale')) AS qualified,
                    count(*) FILTER (WHERE outcome IN ('appointment', 'sale')) AS appointments,
                    count(*) FILTER (WHERE ended_reason = ANY($4)) AS failed
             FROM calls WHERE organization_id = $1 AND created_at >= $2 AND created_at < $3",
        )
        .bind(organization_id)
        .bind(from)
        .bind(to)
        .bind(failure_reasons)
        .fetch_one(&self.pool)
        .await
        .map_err(failed)?;
        Ok(domain::slack::DayTotals {
            calls: row.get("calls"),
            minutes: row.get("minutes"),
            qualified: row.get("qualified"),
            appointments: row.get("appointments"),
            failed: row.get("failed"),
        })
    }

    async fn dashboard(&self, organization_id: Uuid) -> Result<DashboardStats, AppError> {
        let totals = sqlx::query(
            "SELECT COALESCE((SELECT total_calls FROM organization_call_stats WHERE organization_id = $1), 0) AS calls,
                    COALESCE((SELECT total_seconds FROM organization_call_stats WHERE organization_id = $1), 0) AS seconds,
                    (SELECT count(*) FROM agents WHERE organization_id = $1 AND active AND NOT deleted) AS agents,
                    (SELECT count(*) FROM phone_numbers WHERE organization_id = $1 AND NOT removed) AS numbers",
        )
        .bind(organization_id)
        .fetch_one(&self.pool)
        .await
        .map_err(failed)?;
        let recent = self
            .list(
                organization_id,
                &CallFilter {
                    limit: 10,
                    ..CallFilter::default()
                },
            )
            .await?;
        Ok(DashboardStats {
            total_calls: totals.get("calls"),
            total_minutes: (totals.get::<f64, _>("seconds") / 60.0 * 100.0).round() / 100.0,
            active_agents: totals.get("agents"),
            phone_numbers: totals.get("numbers"),
            recent_calls: recent,
        })
    }
}

#[async_trait]
impl CallOwners for PgCallHistory {
    async fn owners(
        &self,
        vapi_call_id: Option<&str>,
        vapi_assistant_id: Option<&str>,
        vapi_phone_number_id: Option<&str>,
    ) -> Result<VapiIdOwners, AppError> {
        let row = sqlx::query(
            "SELECT c.organization_id AS call_organization, c.id AS call_id,
                    a.organization_id AS agent_organization, a.id AS agent_id,
                    n.organization_id AS number_organization, n.id AS number_id, n.agent_id AS number_agent
             FROM (SELECT) AS one
             LEFT JOIN LATERAL (SELECT organization_id, id FROM calls WHERE vapi_call_id = $1 LIMIT 1) c ON true
             LEFT JOIN LATERAL (SELECT organization_id, id FROM agents WHERE vapi_assistant_id = $2 LIMIT 1) a ON true
             LEFT JOIN LATERAL (SELECT organization_id, id, agent_id FROM phone_numbers
                                WHERE vapi_phone_number_id = $3 LIMIT 1) n ON true",
        )
        .bind(vapi_call_id)
        .bind(vapi_assistant_id)
        .bind(vapi_phone_number_id)
        .fetch_one(&self.pool)
        .await
        .map_err(failed)?;
        let pair = |organization: &str, id: &str| -> Option<(Uuid, Uuid)> {
            Some((
                row.get::<Option<Uuid>, _>(organization)?,
                row.get::<Option<Uuid>, _>(id)?,
            ))
        };
        Ok(VapiIdOwners {
            placed: pair("call_organization", "call_id"),
            assistant: pair("agent_organization", "agent_id"),
            number: pair("number_organization", "number_id").map(|(organization_id, phone_number_id)| NumberOwner {
                organization_id,
                phone_number_id,
                agent_id: row.get("number_agent"),
            }),
        })
    }
}
