//! A/B read models: variants, tests with per-variant counts and a daily
//! series, and which call got which variant. Feeds the winner-rule reactor.

use crate::runtime::{ReadModel, Subscription, WorkOrder};
use application::ab_testing::{AbDirectory, DailyPoint, TestRecord, VariantCounts, VariantView, AB_DECISIONS};
use application::auth::Page;
use application::AppError;
use async_trait::async_trait;
use domain::ab_testing::{AbTestEvent, SuccessOutcome, TestSettings, TestStatus, TestVariant, VariantEvent};
use domain::calls::{CallEvent, Outcome};
use domain::events::DecodeError;
use domain::{DomainEvent, RecordedEvent};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

fn id_of(event: &RecordedEvent) -> Result<Uuid, sqlx::Error> {
    let prefix = format!("{}-", event.stream_type);
    Uuid::parse_str(event.stream_id.trim_start_matches(&prefix)).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn decode_error(e: domain::events::DecodeError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

/// Funnel stages an outcome reached: (qualified, appointment, sale) as 0/1.
fn stages(outcome: Option<Outcome>) -> (i64, i64, i64) {
    let reached = |s: SuccessOutcome| i64::from(outcome.is_some_and(|o| s.is_met_by(o)));
    (
        reached(SuccessOutcome::Qualified),
        reached(SuccessOutcome::Appointment),
        reached(SuccessOutcome::Sale),
    )
}

pub struct AbTestingProjection;

#[async_trait]
impl ReadModel for AbTestingProjection {
    fn name(&self) -> &'static str {
        "ab_testing"
    }

    fn schema_version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> Option<&[&'static str]> {
        Some(&["script-variant", "ab-test", "call"])
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "ab_variants",
            "ab_tests",
            "ab_test_variants",
            "ab_assignments",
            "ab_daily",
        ]
    }

    fn create_sql(&self) -> &'static str {
        include_str!("ab_testing.sql")
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error> {
        for event in events {
            match event.stream_type.as_str() {
                "script-variant" => apply_variant(conn, event).await?,
                "ab-test" => apply_test(conn, event).await?,
                "call" if matches!(event.event_type.as_str(), "CallEnded" | "CallOutcomeRecorded") => {
                    apply_call(conn, event).await?
                }
                _ => {}
            }
        }
        Ok(())
    }
}

async fn apply_variant(conn: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
    let id = id_of(event)?;
    let query =
        match VariantEvent::decode(&event.event_type, event.event_version, &event.payload).map_err(decode_error)? {
            VariantEvent::VariantCreated {
                organization_id,
                agent_id,
                spec,
                at,
            } => sqlx::query(
                "INSERT INTO ab_variants (id, organization_id, agent_id, spec, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(organization_id)
            .bind(agent_id)
            .bind(Json(spec))
            .bind(at),
            VariantEvent::VariantUpdated { spec, .. } => sqlx::query("UPDATE ab_variants SET spec = $2 WHERE id = $1")
                .bind(id)
                .bind(Json(spec)),
            VariantEvent::VariantDeleted { .. } => {
                sqlx::query("UPDATE ab_variants SET deleted = true WHERE id = $1").bind(id)
            }
            VariantEvent::VariantEnrolled { test_id, .. } => {
                sqlx::query("UPDATE ab_variants SET running_test_id = $2 WHERE id = $1")
                    .bind(id)
                    .bind(test_id)
            }
            VariantEvent::VariantReleased { .. } => {
                sqlx::query("UPDATE ab_variants SET running_test_id = NULL WHERE id = $1").bind(id)
            }
        };
    query.execute(conn).await.map(|_| ())
}

async fn apply_test(conn: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
    let id = id_of(event)?;
    match AbTestEvent::decode(&event.event_type, event.event_version, &event.payload).map_err(decode_error)? {
        AbTestEvent::AbTestStarted {
            organization_id,
            agent_id,
            settings,
            variants,
            at,
        } => {
            sqlx::query(
                "INSERT INTO ab_tests (id, organization_id, agent_id, settings, status, started_at) VALUES ($1, $2, $3, $4, 'running', $5)",
            )
            .bind(id)
            .bind(organization_id)
            .bind(agent_id)
            .bind(Json(settings))
            .bind(at)
            .execute(&mut *conn)
            .await?;
            for (position, variant) in variants.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO ab_test_variants (test_id, variant_id, position, variant) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(variant.variant_id)
                .bind(position as i32)
                .bind(Json(variant))
                .execute(&mut *conn)
                .await?;
            }
        }
        AbTestEvent::AbTestPaused { .. } => set_status(conn, id, "paused").await?,
        AbTestEvent::AbTestResumed { .. } => set_status(conn, id, "running").await?,
        AbTestEvent::AbTestCompleted { at } => {
            sqlx::query("UPDATE ab_tests SET status = 'completed', completed_at = $2 WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(&mut *conn)
                .await?;
        }
        AbTestEvent::AbTestLookTaken { look, .. } => {
            sqlx::query("UPDATE ab_tests SET looks_taken = $2 WHERE id = $1")
                .bind(id)
                .bind(look as i32 + 1)
                .execute(&mut *conn)
                .await?;
        }
        AbTestEvent::AbTestWinnerDeclared {
            variant_id, decided_by, ..
        } => {
            sqlx::query("UPDATE ab_tests SET winner_id = $2, decided_by = $3 WHERE id = $1")
                .bind(id)
                .bind(variant_id)
                .bind(decided_by)
                .execute(&mut *conn)
                .await?;
        }
        AbTestEvent::VariantAssigned {
            call_id,
            variant_id,
            at,
            ..
        } => {
            sqlx::query(
                "INSERT INTO ab_assignments (call_id, organization_id, test_id, variant_id, day) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (call_id) DO NOTHING",
            )
            .bind(call_id)
            .bind(event.organization_id)
            .bind(id)
            .bind(variant_id)
            .bind(at.date_naive())
            .execute(&mut *conn)
            .await?;
            sqlx::query("UPDATE ab_test_variants SET calls = calls + 1 WHERE test_id = $1 AND variant_id = $2")
                .bind(id)
                .bind(variant_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO ab_daily (test_id, variant_id, day, calls) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (test_id, variant_id, day) DO UPDATE SET calls = ab_daily.calls + 1",
            )
            .bind(id)
            .bind(variant_id)
            .bind(at.date_naive())
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn set_status(conn: &mut PgConnection, id: Uuid, status: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE ab_tests SET status = $2 WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Counts only finished calls, so a variant never shows more conversions than calls.
async fn apply_call(conn: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
    let call_id = id_of(event)?;
    let Some(row) = sqlx::query(
        "SELECT a.test_id, a.variant_id, a.finished, a.outcome, a.day, t.settings FROM ab_assignments a
         JOIN ab_tests t ON t.id = a.test_id WHERE a.call_id = $1",
    )
    .bind(call_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(());
    };
    let (test_id, variant_id): (Uuid, Uuid) = (row.get("test_id"), row.get("variant_id"));
    let was_finished: bool = row.get("finished");
    // Stored from a typed outcome, so it parses.
    let old_outcome: Option<Outcome> = row.get::<Option<String>, _>("outcome").and_then(|o| o.parse().ok());
    let settings: Json<TestSettings> = row.get("settings");
    let day: chrono::NaiveDate = row.get("day");
    let (finished, outcome) =
        match CallEvent::decode(&event.event_type, event.event_version, &event.payload).map_err(decode_error)? {
            CallEvent::CallEnded { .. } => (true, old_outcome),
            CallEvent::CallOutcomeRecorded { outcome, .. } => (was_finished, Some(outcome)),
            _ => return Ok(()),
        };
    let before = if was_finished { stages(old_outcome) } else { (0, 0, 0) };
    let after = if finished { stages(outcome) } else { (0, 0, 0) };
    let converted =
        |o: Option<Outcome>, f: bool| i64::from(f && o.is_some_and(|o| settings.success_outcome.is_met_by(o)));
    sqlx::query("UPDATE ab_assignments SET finished = $2, outcome = $3 WHERE call_id = $1")
        .bind(call_id)
        .bind(finished)
        .bind(outcome.map(Outcome::as_str))
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE ab_test_variants SET finished = finished + $3, qualified = qualified + $4, appointments = appointments + $5, sales = sales + $6
         WHERE test_id = $1 AND variant_id = $2",
    )
    .bind(test_id)
    .bind(variant_id)
    .bind(i64::from(finished) - i64::from(was_finished))
    .bind(after.0 - before.0)
    .bind(after.1 - before.1)
    .bind(after.2 - before.2)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE ab_daily SET conversions = conversions + $4 WHERE test_id = $1 AND variant_id = $2 AND day = $3",
    )
    .bind(test_id)
    .bind(variant_id)
    .bind(day)
    .bind(converted(outcome, finished) - converted(old_outcome, was_finished))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Makes a winner-rule look due whenever a call finishes or gets its outcome;
/// the reactor finds the call's test in the `ab_testing` read model, once that
/// has applied the trigger.
pub struct AbDecisionTrigger;

impl Subscription for AbDecisionTrigger {
    fn name(&self) -> &'static str {
        "ab_test_decisions"
    }

    fn version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> &[&'static str] {
        &["call"]
    }

    fn route(&self, event: &RecordedEvent) -> Result<Option<WorkOrder>, DecodeError> {
        let finishes_call =
            event.stream_type == "call" && matches!(event.event_type.as_str(), "CallEnded" | "CallOutcomeRecorded");
        Ok(finishes_call.then(|| WorkOrder {
            reactor: AB_DECISIONS,
            key: crate::work::stream_key(event).to_owned(),
            organization_id: event.organization_id,
        }))
    }
}

#[derive(Clone)]
pub struct PgAbDirectory {
    pool: PgPool,
}

impl PgAbDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn record(&self, row: &PgRow) -> Result<TestRecord, AppError> {
        let id: Uuid = row.get("id");
        let variants = sqlx::query(
            "SELECT variant, calls, finished, qualified, appointments, sales FROM ab_test_variants WHERE test_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        let daily =
            sqlx::query("SELECT variant_id, day, calls, conversions FROM ab_daily WHERE test_id = $1 ORDER BY day")
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(failed)?;
        let settings: Json<TestSettings> = row.get("settings");
        Ok(TestRecord {
            id,
            agent_id: row.get("agent_id"),
            // Written from TestStatus only.
            status: TestStatus::parse(row.get("status")).unwrap_or(TestStatus::Running),
            settings: settings.0,
            winner_id: row.get("winner_id"),
            decided_by: row.get("decided_by"),
            looks_taken: row.get::<i32, _>("looks_taken").max(0) as u32,
            started_at: row.get("started_at"),
            completed_at: row.get("completed_at"),
            variants: variants
                .iter()
                .map(|v| {
                    let variant: Json<TestVariant> = v.get("variant");
                    let count = |c: &str| v.get::<i64, _>(c).max(0) as u64;
                    VariantCounts {
                        daily: daily
                            .iter()
                            .filter(|d| d.get::<Uuid, _>("variant_id") == variant.variant_id)
                            .map(|d| DailyPoint {
                                day: d.get("day"),
                                calls: d.get::<i64, _>("calls").max(0) as u64,
                                conversions: d.get::<i64, _>("conversions").max(0) as u64,
                            })
                            .collect(),
                        variant: variant.0,
                        calls: count("calls"),
                        finished: count("finished"),
                        qualified: count("qualified"),
                        appointments: count("appointments"),
                        sales: count("sales"),
                    }
                })
                .collect(),
        })
    }
}

fn failed(error: sqlx::Error) -> AppError {
    AppError::internal("reading A/B tests", error)
}

const TEST_COLUMNS: &str =
    "id, agent_id, settings, status, winner_id, decided_by, looks_taken, started_at, completed_at";

#[async_trait]
impl AbDirectory for PgAbDirectory {
    async fn variants(&self, organization_id: Uuid, agent_id: Uuid, page: Page) -> Result<Vec<VariantView>, AppError> {
        let rows = sqlx::query(
            "SELECT id, agent_id, spec, running_test_id, created_at FROM ab_variants
             WHERE organization_id = $1 AND agent_id = $2 AND NOT deleted ORDER BY created_at, id LIMIT $3 OFFSET $4",
        )
        .bind(organization_id)
        .bind(agent_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        Ok(rows
            .iter()
            .map(|r| VariantView {
                id: r.get("id"),
                agent_id: r.get("agent_id"),
                spec: r.get::<Json<domain::ab_testing::VariantSpec>, _>("spec").0,
                running_test_id: r.get("running_test_id"),
                created_at: r.get("created_at"),
            })
            .collect())
    }

    async fn test(&self, organization_id: Uuid, test_id: Uuid) -> Result<Option<TestRecord>, AppError> {
        let row = sqlx::query(&format!(
            "SELECT {TEST_COLUMNS} FROM ab_tests WHERE organization_id = $1 AND id = $2"
        ))
        .bind(organization_id)
        .bind(test_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)?;
        match row {
            Some(row) => self.record(&row).await.map(Some),
            None => Ok(None),
        }
    }

    async fn test_of_call(&self, organization_id: Uuid, call_id: Uuid) -> Result<Option<Uuid>, AppError> {
        sqlx::query_scalar(
            "SELECT a.test_id FROM ab_assignments a JOIN ab_tests t ON t.id = a.test_id
             WHERE a.call_id = $1 AND a.organization_id = $2",
        )
        .bind(call_id)
        .bind(organization_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)
    }

    async fn tests_of_agent(
        &self,
        organization_id: Uuid,
        agent_id: Uuid,
        page: Page,
    ) -> Result<Vec<TestRecord>, AppError> {
        let rows = sqlx::query(&format!(
            "SELECT {TEST_COLUMNS} FROM ab_tests WHERE organization_id = $1 AND agent_id = $2
             ORDER BY started_at DESC, id LIMIT $3 OFFSET $4"
        ))
        .bind(organization_id)
        .bind(agent_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        let mut records = vec![];
        for row in &rows {
            records.push(self.record(row).await?);
        }
        Ok(records)
    }
}
