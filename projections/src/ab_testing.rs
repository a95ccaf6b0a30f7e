//! A/B read models: variants, tests with per-variant counts and a daily
//! series, and which call got which variant. Feeds the winner-rule reactor.

use crate::rows::{self, stream_uuid};
use crate::runtime::{ReadModel, Subscription, WorkOrder};
use application::ab_testing::{AbDirectory, DailyPoint, TestRecord, VariantCounts, VariantView, AB_DECISIONS};
use application::auth::Page;
use application::AppError;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use domain::ab_testing::{
    AbTestEvent, AssignmentEvent, SuccessOutcome, TestSettings, TestStatus, TestVariant, VariantEvent, VariantSpec,
};
use domain::calls::{CallEvent, Outcome};
use domain::events::DecodeError;
use domain::{DomainEvent, RecordedEvent};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Row};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Funnel stages an outcome reached: (qualified, appointment, sale) as 0/1.
fn stages(outcome: Option<Outcome>) -> (i64, i64, i64) {
    let reached = |s: SuccessOutcome| i64::from(outcome.is_some_and(|o| s.is_met_by(o)));
    (
        reached(SuccessOutcome::Qualified),
        reached(SuccessOutcome::Appointment),
        reached(SuccessOutcome::Sale),
    )
}

/// A row of the `ab_variants` table.
#[derive(Serialize, Deserialize)]
struct VariantRow {
    id: Uuid,
    organization_id: Uuid,
    agent_id: Uuid,
    spec: VariantSpec,
    running_test_id: Option<Uuid>,
    deleted: bool,
    created_at: DateTime<Utc>,
}

/// One event's change to a variant's row (`None`: not created yet).
fn evolve_variant(row: &mut Option<VariantRow>, id: Uuid, event: VariantEvent) {
    if let VariantEvent::VariantCreated {
        organization_id,
        agent_id,
        spec,
        at,
    } = event
    {
        *row = Some(VariantRow {
            id,
            organization_id,
            agent_id,
            spec,
            running_test_id: None,
            deleted: false,
            created_at: at,
        });
        return;
    }
    let Some(variant) = row else { return };
    match event {
        VariantEvent::VariantCreated { .. } => {}
        VariantEvent::VariantUpdated { spec, .. } => variant.spec = spec,
        VariantEvent::VariantDeleted { .. } => variant.deleted = true,
        VariantEvent::VariantEnrolled { test_id, .. } => variant.running_test_id = Some(test_id),
        VariantEvent::VariantReleased { .. } => variant.running_test_id = None,
    }
}

/// A row of the `ab_tests` table.
#[derive(Serialize, Deserialize)]
struct TestRow {
    id: Uuid,
    organization_id: Uuid,
    agent_id: Uuid,
    settings: TestSettings,
    status: TestStatus,
    winner_id: Option<Uuid>,
    decided_by: Option<String>,
    looks_taken: i32,
    started_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

/// One event's change to a test's row (`None`: not started yet).
fn evolve_test(row: &mut Option<TestRow>, id: Uuid, event: &AbTestEvent) {
    if let AbTestEvent::AbTestStarted {
        organization_id,
        agent_id,
        settings,
        at,
        ..
    } = event
    {
        *row = Some(TestRow {
            id,
            organization_id: *organization_id,
            agent_id: *agent_id,
            settings: settings.clone(),
            status: TestStatus::Running,
            winner_id: None,
            decided_by: None,
            looks_taken: 0,
            started_at: *at,
            completed_at: None,
        });
        return;
    }
    let Some(test) = row else { return };
    match event {
        AbTestEvent::AbTestStarted { .. } | AbTestEvent::VariantAssigned { .. } => {}
        AbTestEvent::AbTestPaused { .. } => test.status = TestStatus::Paused,
        AbTestEvent::AbTestResumed { .. } => test.status = TestStatus::Running,
        AbTestEvent::AbTestCompleted { at } => {
            test.status = TestStatus::Completed;
            test.completed_at = Some(*at);
        }
        AbTestEvent::AbTestLookTaken { look, .. } => test.looks_taken = *look as i32 + 1,
        AbTestEvent::AbTestWinnerDeclared {
            variant_id, decided_by, ..
        } => {
            test.winner_id = Some(*variant_id);
            test.decided_by = Some(decided_by.clone());
        }
    }
}

/// A row of the `ab_assignments` table: which variant a call got.
struct Assignment {
    organization_id: Uuid,
    test_id: Uuid,
    variant_id: Uuid,
    finished: bool,
    outcome: Option<Outcome>,
    day: NaiveDate,
}

/// What a batch adds to a row of `ab_test_variants`.
#[derive(Default)]
struct VariantTally {
    /// Set when the batch starts the test: the row is inserted.
    started: Option<(i32, TestVariant)>,
    calls: i64,
    finished: i64,
    qualified: i64,
    appointments: i64,
    sales: i64,
}

/// What a batch adds to rows of `ab_daily`.
#[derive(Default)]
struct DailyTally {
    calls: i64,
    conversions: i64,
}

/// A batch's changes to the tables keyed by call, test variant and day.
#[derive(Default)]
struct Tallies {
    /// By call: those of the batch's calls that have one.
    assignments: HashMap<Uuid, Assignment>,
    /// What converts in the tests of the loaded assignments (settings never change).
    success_of: HashMap<Uuid, SuccessOutcome>,
    /// By (test, variant).
    variants: BTreeMap<(Uuid, Uuid), VariantTally>,
    /// By (test, variant, day).
    daily: BTreeMap<(Uuid, Uuid, NaiveDate), DailyTally>,
}

impl Tallies {
    /// What a test's event changes besides its row.
    fn test_event(&mut self, test_id: Uuid, organization_id: Uuid, event: AbTestEvent) {
        match event {
            AbTestEvent::AbTestStarted { variants, .. } => {
                for (position, variant) in variants.into_iter().enumerate() {
                    // Counts added before the row existed changed nothing.
                    self.variants.insert(
                        (test_id, variant.variant_id),
                        VariantTally {
                            started: Some((position as i32, variant)),
                            ..VariantTally::default()
                        },
                    );
                }
            }
            AbTestEvent::VariantAssigned {
                call_id,
                variant_id,
                at,
                ..
            } => {
                let day = at.date_naive();
                // A call keeps its first assignment.
                self.assignments.entry(call_id).or_insert(Assignment {
                    organization_id,
                    test_id,
                    variant_id,
                    finished: false,
                    outcome: None,
                    day,
                });
                self.variants.entry((test_id, variant_id)).or_default().calls += 1;
                self.daily.entry((test_id, variant_id, day)).or_default().calls += 1;
            }
            _ => {}
        }
    }

    /// Counts only finished calls, so a variant never shows more conversions than calls.
    fn call_event(
        &mut self,
        call_id: Uuid,
        event: &RecordedEvent,
        tests: &HashMap<Uuid, Option<TestRow>>,
    ) -> Result<(), sqlx::Error> {
        let Some(assignment) = self.assignments.get_mut(&call_id) else {
            return Ok(());
        };
        let success = match tests.get(&assignment.test_id) {
            Some(test) => test.as_ref().map(|t| t.settings.success_outcome),
            None => self.success_of.get(&assignment.test_id).copied(),
        };
        let Some(success) = success else { return Ok(()) };
        let (was_finished, old_outcome) = (assignment.finished, assignment.outcome);
        let (finished, outcome) = match rows::decode::<CallEvent>(event)? {
            CallEvent::CallEnded { .. } => (true, old_outcome),
            CallEvent::CallOutcomeRecorded { outcome, .. } => (was_finished, Some(outcome)),
            _ => return Ok(()),
        };
        let before = if was_finished { stages(old_outcome) } else { (0, 0, 0) };
        let after = if finished { stages(outcome) } else { (0, 0, 0) };
        let converted = |o: Option<Outcome>, f: bool| i64::from(f && o.is_some_and(|o| success.is_met_by(o)));
        (assignment.finished, assignment.outcome) = (finished, outcome);
        let variant = self
            .variants
            .entry((assignment.test_id, assignment.variant_id))
            .or_default();
        variant.finished += i64::from(finished) - i64::from(was_finished);
        variant.qualified += after.0 - before.0;
        variant.appointments += after.1 - before.1;
        variant.sales += after.2 - before.2;
        self.daily
            .entry((assignment.test_id, assignment.variant_id, assignment.day))
            .or_default()
            .conversions += converted(outcome, finished) - converted(old_outcome, was_finished);
        Ok(())
    }

    /// Loads the assignments of these calls, with their tests' success outcomes.
    async fn load(&mut self, conn: &mut PgConnection, calls: Vec<Uuid>) -> Result<(), sqlx::Error> {
        if calls.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query(
            "SELECT a.call_id, a.organization_id, a.test_id, a.variant_id, a.finished, a.outcome, a.day, t.settings
             FROM ab_assignments a LEFT JOIN ab_tests t ON t.id = a.test_id WHERE a.call_id = ANY($1)",
        )
        .bind(calls)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let test_id: Uuid = row.try_get("test_id")?;
            if let Some(Json(settings)) = row.try_get::<Option<Json<TestSettings>>, _>("settings")? {
                self.success_of.insert(test_id, settings.success_outcome);
            }
            self.assignments.insert(
                row.try_get("call_id")?,
                Assignment {
                    organization_id: row.try_get("organization_id")?,
                    test_id,
                    variant_id: row.try_get("variant_id")?,
                    finished: row.try_get("finished")?,
                    // Stored from a typed outcome, so it parses.
                    outcome: row
                        .try_get::<Option<String>, _>("outcome")?
                        .and_then(|o| o.parse().ok()),
                    day: row.try_get("day")?,
                },
            );
        }
        Ok(())
    }

    /// Writes the assignments and adds the counts, one statement per table.
    async fn save(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let assignments: Vec<(Uuid, Assignment)> = self.assignments.into_iter().collect();
        if !assignments.is_empty() {
            sqlx::query(
                "INSERT INTO ab_assignments (call_id, organization_id, test_id, variant_id, finished, outcome, day)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::boolean[], $6::text[], $7::date[])
                 ON CONFLICT (call_id) DO UPDATE SET finished = EXCLUDED.finished, outcome = EXCLUDED.outcome",
            )
            .bind(assignments.iter().map(|(call, _)| *call).collect::<Vec<_>>())
            .bind(assignments.iter().map(|(_, a)| a.organization_id).collect::<Vec<_>>())
            .bind(assignments.iter().map(|(_, a)| a.test_id).collect::<Vec<_>>())
            .bind(assignments.iter().map(|(_, a)| a.variant_id).collect::<Vec<_>>())
            .bind(assignments.iter().map(|(_, a)| a.finished).collect::<Vec<_>>())
            .bind(assignments.iter().map(|(_, a)| a.outcome.map(Outcome::as_str)).collect::<Vec<_>>())
            .bind(assignments.iter().map(|(_, a)| a.day).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        if !self.variants.is_empty() {
            let (mut tests, mut variants, mut positions, mut frozen) = (vec![], vec![], vec![], vec![]);
            let (mut calls, mut finished, mut qualified, mut appointments, mut sales) =
                (vec![], vec![], vec![], vec![], vec![]);
            for ((test_id, variant_id), tally) in self.variants {
                let (position, variant) = tally.started.unzip();
                tests.push(test_id);
                variants.push(variant_id);
                positions.push(position);
                frozen.push(variant.map(Json));
                calls.push(tally.calls);
                finished.push(tally.finished);
                qualified.push(tally.qualified);
                appointments.push(tally.appointments);
                sales.push(tally.sales);
            }
            // Counts of a variant the test does not have change nothing.
            sqlx::query(
                "INSERT INTO ab_test_variants AS v
                     (test_id, variant_id, position, variant, calls, finished, qualified, appointments, sales)
                 SELECT n.test_id, n.variant_id, COALESCE(n.position, o.position), COALESCE(n.variant, o.variant),
                        n.calls, n.finished, n.qualified, n.appointments, n.sales
                 FROM UNNEST($1::uuid[], $2::uuid[], $3::int[], $4::jsonb[], $5::bigint[], $6::bigint[], $7::bigint[],
                             $8::bigint[], $9::bigint[])
                      AS n(test_id, variant_id, position, variant, calls, finished, qualified, appointments, sales)
                 LEFT JOIN ab_test_variants o ON o.test_id = n.test_id AND o.variant_id = n.variant_id
                 WHERE n.position IS NOT NULL OR o.test_id IS NOT NULL
                 ON CONFLICT (test_id, variant_id) DO UPDATE SET calls = v.calls + EXCLUDED.calls,
                     finished = v.finished + EXCLUDED.finished, qualified = v.qualified + EXCLUDED.qualified,
                     appointments = v.appointments + EXCLUDED.appointments, sales = v.sales + EXCLUDED.sales",
            )
            .bind(tests)
            .bind(variants)
            .bind(positions)
            .bind(frozen)
            .bind(calls)
            .bind(finished)
            .bind(qualified)
            .bind(appointments)
            .bind(sales)
            .execute(&mut *conn)
            .await?;
        }
        if !self.daily.is_empty() {
            let (mut tests, mut variants, mut days, mut calls, mut conversions) =
                (vec![], vec![], vec![], vec![], vec![]);
            for ((test_id, variant_id, day), tally) in self.daily {
                tests.push(test_id);
                variants.push(variant_id);
                days.push(day);
                calls.push(tally.calls);
                conversions.push(tally.conversions);
            }
            // A conversion's day row exists: the call's assignment added it.
            sqlx::query(
                "INSERT INTO ab_daily AS d (test_id, variant_id, day, calls, conversions)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::date[], $4::bigint[], $5::bigint[])
                 ON CONFLICT (test_id, variant_id, day) DO UPDATE SET calls = d.calls + EXCLUDED.calls,
                     conversions = d.conversions + EXCLUDED.conversions",
            )
            .bind(tests)
            .bind(variants)
            .bind(days)
            .bind(calls)
            .bind(conversions)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// An event folded into `ab_tests` and the tallies, in log order.
enum Input<'a> {
    Test(Uuid, &'a RecordedEvent, AbTestEvent),
    Call(Uuid, &'a RecordedEvent),
}

/// Every variant and test event, and of a call only what ends it.
static CONSUMED_EVENTS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    VariantEvent::SPECS
        .iter()
        .chain(AbTestEvent::SPECS)
        .chain(AssignmentEvent::SPECS)
        .map(|spec| spec.event_type)
        .chain(["CallEnded", "CallOutcomeRecorded"])
        .collect()
});

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
        Some(&["script-variant", "ab-test", "ab-assignment", "call"])
    }

    fn event_types(&self) -> Option<&[&'static str]> {
        Some(&CONSUMED_EVENTS)
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
        let mut variant_events = vec![];
        let mut inputs = vec![];
        for event in events {
            match event.stream_type.as_str() {
                "script-variant" => variant_events.push((stream_uuid(event)?, rows::decode(event)?)),
                "ab-test" => {
                    let decoded = rows::decode::<AbTestEvent>(event)?;
                    inputs.push(Input::Test(stream_uuid(event)?, event, decoded));
                }
                "ab-assignment" => {
                    let AssignmentEvent::CallVariantAssigned {
                        test_id,
                        call_id,
                        variant_id,
                        customer_number,
                        at,
                        ..
                    } = rows::decode::<AssignmentEvent>(event)?;
                    // The fact the test's own stream used to record.
                    let assigned = AbTestEvent::VariantAssigned {
                        call_id,
                        variant_id,
                        customer_number,
                        at,
                    };
                    inputs.push(Input::Test(test_id, event, assigned));
                }
                "call" if matches!(event.event_type.as_str(), "CallEnded" | "CallOutcomeRecorded") => {
                    inputs.push(Input::Call(stream_uuid(event)?, event));
                }
                _ => {}
            }
        }
        rows::evolve_batch(conn, "ab_variants", variant_events, evolve_variant).await?;

        let mut tallies = Tallies::default();
        let (mut test_ids, mut call_ids) = (vec![], vec![]);
        for input in &inputs {
            match input {
                Input::Test(id, _, event) => {
                    test_ids.push(*id);
                    if let AbTestEvent::VariantAssigned { call_id, .. } = event {
                        call_ids.push(*call_id);
                    }
                }
                Input::Call(id, _) => call_ids.push(*id),
            }
        }
        call_ids.sort_unstable();
        call_ids.dedup();
        tallies.load(conn, call_ids).await?;
        rows::fold_batch(conn, "ab_tests", test_ids, |tests| {
            for input in inputs {
                match input {
                    Input::Test(id, event, decoded) => {
                        evolve_test(tests.entry(id).or_default(), id, &decoded);
                        tallies.test_event(id, event.organization_id, decoded);
                    }
                    Input::Call(call_id, event) => tallies.call_event(call_id, event, tests)?,
                }
            }
            Ok(())
        })
        .await?;
        tallies.save(conn).await
    }
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

    fn event_types(&self) -> Option<&[&'static str]> {
        Some(&["CallEnded", "CallOutcomeRecorded"])
    }

    /// The work key is the call's stream id.
    fn reads_payloads(&self) -> bool {
        false
    }

    /// Only a test's calls can move it.
    fn only_in_organizations_with(&self) -> Option<&'static str> {
        Some("ab-test")
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

    /// A page of one agent's rows: `sql` filters on the organization ($1) and
    /// the agent ($2), and takes the page's limit ($3) and offset ($4).
    async fn agent_page(
        &self,
        sql: &str,
        organization_id: Uuid,
        agent_id: Uuid,
        page: Page,
    ) -> Result<Vec<PgRow>, AppError> {
        let query = sqlx::query(sql).bind(organization_id).bind(agent_id);
        rows::fetch_page(&self.pool, query, page).await.map_err(failed)
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
        let rows = self
            .agent_page(
                "SELECT id, agent_id, spec, running_test_id, created_at FROM ab_variants
                 WHERE organization_id = $1 AND agent_id = $2 AND NOT deleted ORDER BY created_at, id LIMIT $3 OFFSET $4",
                organization_id,
                agent_id,
                page,
            )
            .await?;
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
        let sql = format!(
            "SELECT {TEST_COLUMNS} FROM ab_tests WHERE organization_id = $1 AND agent_id = $2
             ORDER BY started_at DESC, id LIMIT $3 OFFSET $4"
        );
        let rows = self.agent_page(&sql, organization_id, agent_id, page).await?;
        let mut records = vec![];
        for row in &rows {
            records.push(self.record(row).await?);
        }
        Ok(records)
    }
}
