//! Call history: one row per call for lists and details, its event timeline,
//! and per-organization totals for the dashboard.

use crate::runtime::ReadModel;
use application::calls::{
    CallDetail, CallFilter, CallHistory, CallOwners, CallSummary, DashboardStats, NumberOwner, TimelineEntry,
};
use application::AppError;
use async_trait::async_trait;
use domain::calls::{CallEvent, CallParties, CallStatus, EndedReason};
use domain::{DomainEvent, RecordedEvent};
use serde_json::{json, Value};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

pub struct CallsProjection;

fn call_id(event: &RecordedEvent) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(event.stream_id.trim_start_matches("call-")).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Creates the call's row on first sight (counting it once), then fills in what the event knows about its parties.
async fn touch(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    id: Uuid,
    parties: &CallParties,
) -> Result<(), sqlx::Error> {
    let created: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO calls (id, organization_id, status, status_rank, created_at, updated_at)
         VALUES ($1, $2, 'requested', -1, $3, $3) ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(id)
    .bind(event.organization_id)
    .bind(event.recorded_at)
    .fetch_optional(&mut *conn)
    .await?;
    if created.is_some() {
        sqlx::query(
            "INSERT INTO organization_call_stats (organization_id, total_calls, total_seconds) VALUES ($1, 1, 0)
             ON CONFLICT (organization_id) DO UPDATE SET total_calls = organization_call_stats.total_calls + 1",
        )
        .bind(event.organization_id)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "UPDATE calls SET vapi_call_id = COALESCE(vapi_call_id, $2), direction = COALESCE(direction, $3),
            agent_id = COALESCE(agent_id, $4), phone_number_id = COALESCE(phone_number_id, $5),
            customer_number = COALESCE(customer_number, $6), updated_at = $7
         WHERE id = $1",
    )
    .bind(id)
    .bind(&parties.vapi_call_id)
    .bind(&parties.direction)
    .bind(parties.agent_id)
    .bind(parties.phone_number_id)
    .bind(&parties.customer_number)
    .bind(event.recorded_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A status's rank in the lifecycle (-1 outside it), as the table stores it.
fn rank_of(status: &CallStatus) -> i32 {
    status.rank().map_or(-1, i32::from)
}

/// Moves the call forward to `status`, never backwards and never out of `ended`.
async fn advance(conn: &mut PgConnection, id: Uuid, status: &CallStatus) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE calls SET status = $2, status_rank = $3
         WHERE id = $1 AND status_rank < $3 AND status NOT IN ('ended', 'failed')",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(rank_of(status))
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
        1
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["call"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["calls", "call_timeline", "organization_call_stats"]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("calls.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        for event in events.iter().filter(|e| e.stream_type == "call") {
            let id = call_id(event)?;
            let decoded = CallEvent::decode(&event.event_type, event.event_version, &event.payload)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let (status, at, details) = match &decoded {
                CallEvent::CallRequested {
                    parties,
                    requested_by,
                    requested_at,
                    ..
                } => {
                    touch(conn, event, id, parties).await?;
                    (
                        Some(CallStatus::Requested),
                        *requested_at,
                        json!({ "requestedBy": requested_by, "agentId": parties.agent_id }),
                    )
                }
                // The placement reactor's own bookkeeping: nothing the user sees changes.
                CallEvent::CallPlacementStarted { .. } => continue,
                CallEvent::CallPlacedWithVapi { vapi_call_id, at } => {
                    let parties = CallParties {
                        vapi_call_id: Some(vapi_call_id.clone()),
                        ..CallParties::default()
                    };
                    touch(conn, event, id, &parties).await?;
                    advance(conn, id, &CallStatus::Queued).await?;
                    (Some(CallStatus::Queued), *at, json!({ "vapiCallId": vapi_call_id }))
                }
                CallEvent::CallPlacementFailed { reason, at } => {
                    touch(conn, event, id, &CallParties::default()).await?;
                    sqlx::query("UPDATE calls SET status = 'failed', ended_reason = COALESCE(ended_reason, 'placement-failed') WHERE id = $1 AND status <> 'ended'")
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    (Some(CallStatus::Failed), *at, json!({ "reason": reason }))
                }
                CallEvent::CallStatusUpdated {
                    parties,
                    status,
                    ended_reason,
                    at,
                } => {
                    touch(conn, event, id, parties).await?;
                    advance(conn, id, status).await?;
                    if ended_reason.is_some() {
                        sqlx::query("UPDATE calls SET ended_reason = COALESCE(ended_reason, $2) WHERE id = $1")
                            .bind(id)
                            .bind(ended_reason.as_ref().map(EndedReason::as_str))
                            .execute(&mut *conn)
                            .await?;
                    }
                    (
                        Some(status.clone()),
                        *at,
                        json!({ "endedReason": ended_reason, "agentId": parties.agent_id }),
                    )
                }
                CallEvent::CallEnded { parties, report, at } => {
                    touch(conn, event, id, parties).await?;
                    sqlx::query(
                        "UPDATE calls SET status = 'ended', status_rank = $2, ended_reason = COALESCE($3, ended_reason),
                            started_at = $4, ended_at = $5, duration_seconds = $6, cost = $7, transcript = $8,
                            messages = $9, recording_url = $10, stereo_recording_url = $11, summary = $12,
                            structured_data = $13, success_evaluation = $14
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(rank_of(&CallStatus::Ended))
                    .bind(report.ended_reason.as_ref().map(EndedReason::as_str))
                    .bind(report.started_at)
                    .bind(report.ended_at)
                    .bind(report.duration_seconds)
                    .bind(report.cost)
                    .bind(&report.transcript)
                    .bind(sqlx::types::Json(&report.messages))
                    .bind(&report.recording_url)
                    .bind(&report.stereo_recording_url)
                    .bind(&report.summary)
                    .bind(&report.structured_data)
                    .bind(&report.success_evaluation)
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query("UPDATE organization_call_stats SET total_seconds = total_seconds + $2 WHERE organization_id = $1")
                        .bind(event.organization_id)
                        .bind(report.duration_seconds.unwrap_or(0.0))
                        .execute(&mut *conn)
                        .await?;
                    (
                        Some(CallStatus::Ended),
                        *at,
                        json!({ "endedReason": report.ended_reason, "durationSeconds": report.duration_seconds, "cost": report.cost }),
                    )
                }
                CallEvent::CallOutcomeRecorded {
                    outcome,
                    notes,
                    source,
                    at,
                } => {
                    sqlx::query("UPDATE calls SET outcome = $2, updated_at = $3 WHERE id = $1")
                        .bind(id)
                        .bind(outcome.as_str())
                        .bind(at)
                        .execute(&mut *conn)
                        .await?;
                    (
                        None,
                        *at,
                        json!({ "outcome": outcome, "notes": notes, "source": source }),
                    )
                }
            };
            sqlx::query(
                "INSERT INTO call_timeline (call_id, organization_id, global_position, event_type, status, at, details)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(event.organization_id)
            .bind(event.global_position)
            .bind(&event.event_type)
            .bind(status.as_ref().map(CallStatus::as_str))
            .bind(at)
            .bind(details)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
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
        direction: row.get("direction"),
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
             ORDER BY c.created_at DESC, c.id DESC
             LIMIT $11"
        ))
        .bind(organization_id)
        .bind(filter.status.as_ref().map(CallStatus::as_str))
        .bind(filter.agent_id)
        .bind(&filter.direction)
        .bind(filter.outcome.map(domain::calls::Outcome::as_str))
        .bind(phone_digits)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.after.map(|(at, _)| at))
        .bind(filter.after.map(|(_, id)| id))
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        Ok(rows.iter().map(summary).collect())
    }

    async fn get(&self, organization_id: Uuid, call_id: Uuid) -> Result<Option<CallDetail>, AppError> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS}, c.transcript, c.messages, c.recording_url, c.stereo_recording_url, c.summary,
                    c.structured_data, c.success_evaluation
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
            "SELECT at, event_type, status, details FROM call_timeline
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
            status: t.get("status"),
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
    async fn assistant_owner(&self, vapi_assistant_id: &str) -> Result<Option<(Uuid, Uuid)>, AppError> {
        let row = sqlx::query("SELECT organization_id, id FROM agents WHERE vapi_assistant_id = $1")
            .bind(vapi_assistant_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed)?;
        Ok(row.map(|r| (r.get("organization_id"), r.get("id"))))
    }

    async fn call_of(&self, vapi_call_id: &str) -> Result<Option<(Uuid, Uuid)>, AppError> {
        let row = sqlx::query("SELECT organization_id, id FROM calls WHERE vapi_call_id = $1")
            .bind(vapi_call_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed)?;
        Ok(row.map(|r| (r.get("organization_id"), r.get("id"))))
    }

    async fn number_owner(&self, vapi_phone_number_id: &str) -> Result<Option<NumberOwner>, AppError> {
        let row =
            sqlx::query("SELECT organization_id, id, agent_id FROM phone_numbers WHERE vapi_phone_number_id = $1")
                .bind(vapi_phone_number_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(failed)?;
        Ok(row.map(|r| NumberOwner {
            organization_id: r.get("organization_id"),
            phone_number_id: r.get("id"),
            agent_id: r.get("agent_id"),
        }))
    }
}
