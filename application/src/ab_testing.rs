//! Script A/B tests: variants, tests, per-call assignment, results and winners.

use crate::aggregates::{
    execute, execute_command, execute_decision, load_in, metadata, session_metadata, stream_of, Decided, Loaded,
    DECISION_ATTEMPTS,
};
use crate::auth::{Page, Session};
use crate::clock::Clock;
use crate::error::{AppError, ErrorKind};
use crate::event_store::{EventStore, StreamAppend};
use crate::work::{ReadModelProgress, WorkHandler, WorkItem, WorkOutcome};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ab_statistics::{
    evaluate_look, look_alpha, look_size, probability_b_beats_a, two_proportion_p_value, wilson_interval, Arm, Decision,
};
use domain::ab_testing::{
    customer_pin_id, AbError, AbTest, AbTestCommand, AgentExperimentCommand, AgentExperiments, AssignmentCommand,
    CustomerPin, CustomerPinCommand, TestSettings, TestStatus, TestVariant, Variant, VariantAssignment, VariantChoice,
    VariantCommand, VariantSpec,
};
use domain::agents::{Agent, AgentCommand};
use domain::{Aggregate, EventMetadata, StreamId};
use futures::future::BoxFuture;
use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

/// Name of the reactor that looks at results when a look is due.
pub const AB_DECISIONS: &str = "ab-test-decisions";

impl From<AbError> for AppError {
    fn from(error: AbError) -> Self {
        ab_error(error)
    }
}

pub fn ab_error(error: AbError) -> AppError {
    let code = match &error {
        AbError::Invalid { .. } => "validation_failed",
        AbError::NotFound(_) => "not_found",
        AbError::TrafficNot100(_) => "traffic_not_100",
        AbError::ControlCount(_) => "control_count",
        AbError::TestAlreadyRunning(_) => "test_already_running",
        AbError::VariantInRunningTest => "variant_in_running_test",
        AbError::WrongStatus(_) => "test_not_running",
        AbError::UnknownWinner => "unknown_winner",
    };
    let kind = match &error {
        AbError::NotFound(_) => ErrorKind::NotFound,
        AbError::TestAlreadyRunning(_) | AbError::VariantInRunningTest | AbError::WrongStatus(_) => ErrorKind::Conflict,
        _ => ErrorKind::Validation,
    };
    let app = AppError::new(kind, code, error.to_string());
    match error {
        AbError::Invalid { field, .. } => app.with_details(serde_json::json!({ "field": field })),
        AbError::TestAlreadyRunning(running) => app.with_details(serde_json::json!({ "runningTestId": running })),
        _ => app,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantView {
    pub id: Uuid,
    pub agent_id: Uuid,
    #[serde(flatten)]
    pub spec: VariantSpec,
    pub running_test_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// Per-variant counts as the results read model keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantCounts {
    pub variant: TestVariant,
    pub calls: u64,
    pub finished: u64,
    pub qualified: u64,
    pub appointments: u64,
    pub sales: u64,
    pub daily: Vec<DailyPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyPoint {
    pub day: chrono::NaiveDate,
    pub calls: u64,
    pub conversions: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub status: TestStatus,
    pub settings: TestSettings,
    pub winner_id: Option<Uuid>,
    pub decided_by: Option<String>,
    pub looks_taken: u32,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub variants: Vec<VariantCounts>,
}

/// The A/B read models.
#[async_trait]
pub trait AbDirectory: Send + Sync {
    async fn variants(&self, organization_id: Uuid, agent_id: Uuid, page: Page) -> Result<Vec<VariantView>, AppError>;
    async fn test(&self, organization_id: Uuid, test_id: Uuid) -> Result<Option<TestRecord>, AppError>;
    /// The test a call was assigned in, if any.
    async fn test_of_call(&self, organization_id: Uuid, call_id: Uuid) -> Result<Option<Uuid>, AppError>;
    async fn tests_of_agent(
        &self,
        organization_id: Uuid,
        agent_id: Uuid,
        page: Page,
    ) -> Result<Vec<TestRecord>, AppError>;
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantResult {
    pub variant_id: Uuid,
    pub name: String,
    pub prompt: String,
    pub is_control: bool,
    pub traffic_percent: u32,
    pub calls: u64,
    pub finished_calls: u64,
    pub qualified: u64,
    pub appointments: u64,
    pub sales: u64,
    pub conversions: u64,
    pub conversion_rate: Option<f64>,
    pub conversion_rate_interval: Option<(f64, f64)>,
    pub lift_over_control: Option<f64>,
    pub p_value: Option<f64>,
    pub probability_to_beat_control: Option<f64>,
    pub daily: Vec<DailyPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestResults {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub name: String,
    pub status: TestStatus,
    pub success_outcome: domain::ab_testing::SuccessOutcome,
    pub min_sample_size: u32,
    pub auto_promote: bool,
    pub winner_id: Option<Uuid>,
    pub decided_by: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub decision: Decision,
    pub variants: Vec<VariantResult>,
}

fn conversions(counts: &VariantCounts, settings: &TestSettings) -> u64 {
    match settings.success_outcome {
        domain::ab_testing::SuccessOutcome::Qualified => counts.qualified,
        domain::ab_testing::SuccessOutcome::Appointment => counts.appointments,
        domain::ab_testing::SuccessOutcome::Sale => counts.sales,
    }
}

fn arms(record: &TestRecord) -> Vec<Arm> {
    record
        .variants
        .iter()
        .map(|v| Arm {
            trials: v.finished,
            successes: conversions(v, &record.settings),
        })
        .collect()
}

/// The winner's p-value against the control; for a winning control, the
/// weakest of its comparisons.
fn winner_p_value(arms: &[Arm], control: usize, winner: usize) -> f64 {
    let against_control = |i: usize| {
        two_proportion_p_value(
            arms[control].successes,
            arms[control].trials,
            arms[i].successes,
            arms[i].trials,
        )
        .unwrap_or(1.0)
    };
    if winner != control {
        return against_control(winner);
    }
    (0..arms.len())
        .filter(|i| *i != control)
        .map(against_control)
        .fold(0.0, f64::max)
}

/// Results with their statistics, computed from the read model's counts.
pub fn results_of(record: TestRecord) -> TestResults {
    let arms = arms(&record);
    let control = record.variants.iter().position(|v| v.variant.is_control).unwrap_or(0);
    let finished: u64 = arms.iter().map(|a| a.trials).sum();
    let min = u64::from(record.settings.min_sample_size);
    let winner = record
        .variants
        .iter()
        .position(|v| Some(v.variant.variant_id) == record.winner_id);
    let decision = match winner {
        Some(index) => Decision::Winner {
            index,
            look: record.looks_taken,
            p_value: winner_p_value(&arms, control, index),
        },
        None if finished < min => Decision::Collecting {
            finished_calls: finished,
            next_look_at: min,
        },
        None => Decision::NoDifferenceYet {
            looks_taken: record.looks_taken,
            next_look_at: look_size(min, record.looks_taken),
            alpha_at_next_look: look_alpha(record.looks_taken),
        },
    };
    let c = arms[control];
    let variants = record
        .variants
        .into_iter()
        .zip(&arms)
        .enumerate()
        .map(|(i, (counts, arm))| {
            let treatment = i != control;
            let rate = arm.rate();
            VariantResult {
                variant_id: counts.variant.variant_id,
                name: counts.variant.name.clone(),
                prompt: counts.variant.prompt.clone(),
                is_control: counts.variant.is_control,
                traffic_percent: counts.variant.traffic_percent,
                calls: counts.calls,
                finished_calls: counts.finished,
                qualified: counts.qualified,
                appointments: counts.appointments,
                sales: counts.sales,
                conversions: arm.successes,
                conversion_rate: rate,
                conversion_rate_interval: wilson_interval(arm.successes, arm.trials),
                lift_over_control: match (treatment, rate, c.rate()) {
                    (true, Some(r), Some(cr)) if cr > 0.0 => Some((r - cr) / cr),
                    _ => None,
                },
                p_value: treatment
                    .then(|| two_proportion_p_value(c.successes, c.trials, arm.successes, arm.trials))
                    .flatten(),
                probability_to_beat_control: (treatment && arm.trials > 0 && c.trials > 0)
                    .then(|| probability_b_beats_a(c.successes, c.trials, arm.successes, arm.trials)),
                daily: counts.daily,
            }
        })
        .collect();
    TestResults {
        id: record.id,
        agent_id: record.agent_id,
        name: record.settings.name.clone(),
        status: record.status,
        success_outcome: record.settings.success_outcome,
        min_sample_size: record.settings.min_sample_size,
        auto_promote: record.settings.auto_promote,
        winner_id: record.winner_id,
        decided_by: record.decided_by,
        started_at: record.started_at,
        completed_at: record.completed_at,
        decision,
        variants,
    }
}

pub struct AbTestingService {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub directory: Arc<dyn AbDirectory>,
}

/// A decision on several streams, appended atomically.
struct Batch {
    streams: Vec<StreamAppend>,
}

impl Batch {
    fn new() -> Self {
        Self { streams: vec![] }
    }

    fn into_decision<T>(self, result: T) -> Decided<T> {
        Decided::new(self.streams, result)
    }

    fn decide<A: Aggregate<Error = AbError>>(
        &mut self,
        loaded: &Loaded<A>,
        command: &A::Command,
        meta: &EventMetadata,
    ) -> Result<Vec<A::Event>, AppError> {
        let events = A::decide(command, &loaded.state).map_err(ab_error)?;
        if !events.is_empty() {
            self.streams.push(loaded.append_of(&events, meta));
        }
        Ok(events)
    }
}

impl AbTestingService {
    async fn agent(&self, caller: &Session, agent_id: Uuid) -> Result<Loaded<Agent>, AppError> {
        crate::agents::existing_agent(self.store.as_ref(), caller.organization_id, agent_id)
            .await?
            .ok_or_else(|| AppError::not_found("agent"))
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %agent_id))]
    pub async fn create_variant(
        &self,
        caller: &Session,
        agent_id: Uuid,
        spec: VariantSpec,
    ) -> Result<VariantView, AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManageAbTests)?;
        self.agent(caller, agent_id).await?;
        let id = Uuid::now_v7();
        let now = self.clock.now();
        let command = VariantCommand::Create {
            organization_id: caller.organization_id,
            agent_id,
            spec: spec.clone(),
            now,
        };
        self.execute::<Variant>(caller, stream_of::<Variant>(id), &command)
            .await?;
        Ok(VariantView {
            id,
            agent_id,
            spec,
            running_test_id: None,
            created_at: now,
        })
    }

    /// A command on one stream of the caller's organization, through the one command path.
    async fn execute<A: Aggregate<Error = AbError>>(
        &self,
        caller: &Session,
        stream: StreamId,
        command: &A::Command,
    ) -> Result<Loaded<A>, AppError> {
        execute_command::<A>(
            self.store.as_ref(),
            caller.organization_id,
            stream,
            &session_metadata(caller),
            command,
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %agent_id))]
    pub async fn variants(&self, caller: &Session, agent_id: Uuid, page: Page) -> Result<Vec<VariantView>, AppError> {
        self.agent(caller, agent_id).await?;
        self.directory.variants(caller.organization_id, agent_id, page).await
    }

    async fn variant(&self, caller: &Session, id: Uuid) -> Result<Loaded<Variant>, AppError> {
        let loaded = load_in::<Variant>(self.store.as_ref(), caller.organization_id, stream_of::<Variant>(id)).await?;
        if !loaded.state.exists() {
            return Err(AppError::not_found("variant"));
        }
        Ok(loaded)
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, variant_id = %id))]
    pub async fn update_variant(
        &self,
        caller: &Session,
        id: Uuid,
        change: impl FnOnce(VariantSpec) -> VariantSpec,
    ) -> Result<VariantView, AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManageAbTests)?;
        let loaded = self.variant(caller, id).await?;
        let spec = change(loaded.state.spec.clone().expect("exists"));
        let now = self.clock.now();
        let command = VariantCommand::Update {
            spec: spec.clone(),
            now,
        };
        let updated = self.execute::<Variant>(caller, loaded.stream, &command).await?;
        Ok(VariantView {
            id,
            agent_id: updated.state.agent_id.unwrap_or_default(),
            spec,
            running_test_id: updated.state.running_test,
            created_at: now,
        })
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, variant_id = %id))]
    pub async fn delete_variant(&self, caller: &Session, id: Uuid) -> Result<(), AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManageAbTests)?;
        let loaded = self.variant(caller, id).await?;
        let now = self.clock.now();
        self.execute::<Variant>(caller, loaded.stream, &VariantCommand::Delete { now })
            .await
            .map(|_| ())
    }

    /// Starts a test over the given variants of the agent, freezing them.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %agent_id))]
    pub async fn start_test(
        &self,
        caller: &Session,
        agent_id: Uuid,
        settings: TestSettings,
        variant_ids: &[Uuid],
    ) -> Result<Uuid, AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManageAbTests)?;
        let agent = self.agent(caller, agent_id).await?;
        if !agent.state.active {
            return Err(AppError::new(
                ErrorKind::Conflict,
                "agent_inactive",
                "the agent is deactivated",
            ));
        }
        let test_id = Uuid::now_v7();
        let now = self.clock.now();
        let meta = session_metadata(caller);
        let decide = || -> BoxFuture<'_, Result<Decided<Uuid>, AppError>> {
            Box::pin(async {
                let mut variants = vec![];
                for id in variant_ids {
                    let variant = self.variant(caller, *id).await?;
                    if variant.state.agent_id != Some(agent_id) {
                        return Err(AppError::validation(
                            "variantIds",
                            "every variant must belong to the agent",
                        ));
                    }
                    variants.push((*id, variant));
                }
                // Loaded after the variants: a test that enrolled one of them
                // (atomically with its start) shows here, so it is named below.
                let experiments = load_in::<AgentExperiments>(
                    self.store.as_ref(),
                    caller.organization_id,
                    stream_of::<AgentExperiments>(agent_id),
                )
                .await?;
                let mut batch = Batch::new();
                // One running test per agent: checked here, guarded by the append.
                batch.decide(&experiments, &AgentExperimentCommand::Start { test_id, now }, &meta)?;
                let mut frozen = vec![];
                for (variant_id, variant) in &variants {
                    let spec = variant.state.spec.clone().expect("exists");
                    frozen.push(TestVariant {
                        variant_id: *variant_id,
                        name: spec.name,
                        prompt: spec.prompt,
                        is_control: spec.is_control,
                        traffic_percent: spec.traffic_percent,
                    });
                    batch.decide(variant, &VariantCommand::Enroll { test_id, now }, &meta)?;
                }
                let test = Loaded::<AbTest>::fresh(stream_of::<AbTest>(test_id));
                let start = AbTestCommand::Start {
                    organization_id: caller.organization_id,
                    agent_id,
                    settings: settings.clone(),
                    variants: frozen,
                    now,
                };
                batch.decide(&test, &start, &meta)?;
                Ok(batch.into_decision(test_id))
            })
        };
        execute_decision(self.store.as_ref(), caller.organization_id, DECISION_ATTEMPTS, decide).await
    }

    async fn test(&self, organization_id: Uuid, test_id: Uuid) -> Result<Loaded<AbTest>, AppError> {
        let test = load_in::<AbTest>(self.store.as_ref(), organization_id, stream_of::<AbTest>(test_id)).await?;
        if !test.state.exists() {
            return Err(AppError::not_found("A/B test"));
        }
        Ok(test)
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %test_id))]
    pub async fn set_paused(&self, caller: &Session, test_id: Uuid, paused: bool) -> Result<(), AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManageAbTests)?;
        let test = self.test(caller.organization_id, test_id).await?;
        let now = self.clock.now();
        let command = if paused {
            AbTestCommand::Pause { now }
        } else {
            AbTestCommand::Resume { now }
        };
        self.execute::<AbTest>(caller, test.stream, &command).await.map(|_| ())
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %test_id, %variant_id))]
    pub async fn declare_winner(&self, caller: &Session, test_id: Uuid, variant_id: Uuid) -> Result<(), AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManageAbTests)?;
        conclude(
            self.store.as_ref(),
            self.clock.as_ref(),
            caller.organization_id,
            test_id,
            variant_id,
            "manual",
            format!("user:{}", caller.user_id),
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %test_id))]
    pub async fn results(&self, caller: &Session, test_id: Uuid) -> Result<TestResults, AppError> {
        let record = self
            .directory
            .test(caller.organization_id, test_id)
            .await?
            .ok_or_else(|| AppError::not_found("A/B test"))?;
        Ok(results_of(record))
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, %agent_id))]
    pub async fn tests_of_agent(
        &self,
        caller: &Session,
        agent_id: Uuid,
        page: Page,
    ) -> Result<Vec<TestResults>, AppError> {
        self.agent(caller, agent_id).await?;
        Ok(self
            .directory
            .tests_of_agent(caller.organization_id, agent_id, page)
            .await?
            .into_iter()
            .map(results_of)
            .collect())
    }
}

/// Ends a test with a winner: releases its variants and, with auto-promote,
/// moves all traffic to the winner by making its prompt the agent's (which
/// then syncs to Vapi). One atomic append.
async fn conclude(
    store: &dyn EventStore,
    clock: &dyn Clock,
    organization_id: Uuid,
    test_id: Uuid,
    variant_id: Uuid,
    decided_by: &str,
    actor: String,
) -> Result<(), AppError> {
    let now = clock.now();
    let meta = metadata(actor, decided_by);
    let decide = || -> BoxFuture<'_, Result<Decided<()>, AppError>> {
        Box::pin(async {
            let test = load_in::<AbTest>(store, organization_id, stream_of::<AbTest>(test_id)).await?;
            if !test.state.exists() {
                return Err(AppError::not_found("A/B test"));
            }
            let agent_id = test.state.agent_id.expect("a started test has an agent");
            let mut batch = Batch::new();
            let declare = AbTestCommand::DeclareWinner {
                variant_id,
                decided_by: decided_by.into(),
                now,
            };
            batch.decide(&test, &declare, &meta)?;
            let experiments =
                load_in::<AgentExperiments>(store, organization_id, stream_of::<AgentExperiments>(agent_id)).await?;
            batch.decide(&experiments, &AgentExperimentCommand::End { test_id, now }, &meta)?;
            for variant in &test.state.variants {
                let loaded =
                    load_in::<Variant>(store, organization_id, stream_of::<Variant>(variant.variant_id)).await?;
                if loaded.state.exists() {
                    batch.decide(&loaded, &VariantCommand::Release { test_id, now }, &meta)?;
                }
            }
            let auto_promote = test.state.settings.as_ref().is_some_and(|s| s.auto_promote);
            let winner = test.state.variants.iter().find(|v| v.variant_id == variant_id);
            if let (true, Some(winner)) = (auto_promote, winner) {
                let agent = load_in::<Agent>(store, organization_id, stream_of::<Agent>(agent_id)).await?;
                if let Some(spec) = agent.state.spec.clone().filter(|_| agent.state.exists()) {
                    let promoted = domain::agents::AgentSpec {
                        system_prompt: winner.prompt.clone(),
                        ..spec
                    };
                    let events = Agent::decide(&AgentCommand::Update { spec: promoted, now }, &agent.state)
                        .map_err(crate::agents::agent_error)?;
                    if !events.is_empty() {
                        batch.streams.push(agent.append_of(&events, &meta));
                    }
                }
            }
            Ok(batch.into_decision(()))
        })
    };
    execute_decision(store, organization_id, DECISION_ATTEMPTS, decide).await
}

/// Hands out each test's split slots in order, once each, across processes.
#[async_trait]
pub trait AssignmentSlots: Send + Sync {
    /// The test's next slot; a test's first slot is `first` (the calls its own stream assigned).
    async fn take(&self, test_id: Uuid, first: u64) -> Result<u64, AppError>;
}

/// Conflicts on a call's or a customer's assignment stream are rare (the same
/// call or customer at once): a few decisions again are plenty.
const ASSIGNMENT_ATTEMPTS: usize = 5;

/// The variant (and its prompt) a call of this agent gets, if a test runs.
/// The call's assignment has a stream of its own, and so has a customer's
/// variant in a test; the split's next slot comes from a counter. So the
/// cost is the same after a hundred thousand calls as after one, and calls
/// at once never race on the test. Asking again for a call answers its variant.
#[tracing::instrument(skip_all, fields(%organization_id, %agent_id, %call_id))]
pub async fn assign_variant(
    store: &dyn EventStore,
    clock: &dyn Clock,
    slots: &dyn AssignmentSlots,
    organization_id: Uuid,
    agent_id: Uuid,
    call_id: Uuid,
    customer_number: Option<String>,
) -> Result<Option<TestVariant>, AppError> {
    let experiments =
        load_in::<AgentExperiments>(store, organization_id, stream_of::<AgentExperiments>(agent_id)).await?;
    let Some(test_id) = experiments.state.running_test else {
        return Ok(None);
    };
    let test = load_in::<AbTest>(store, organization_id, stream_of::<AbTest>(test_id)).await?;
    if test.state.status != Some(TestStatus::Running) {
        return Ok(None);
    }
    let test = &test.state;
    let meta = metadata("system:ab-testing", "ab-assignment");
    let decide = || -> BoxFuture<'_, Result<Decided<Option<Uuid>>, AppError>> {
        Box::pin(async {
            // The call's and the customer's streams, read at once.
            let pin = async {
                match &customer_number {
                    Some(number) => load_in::<CustomerPin>(
                        store,
                        organization_id,
                        stream_of::<CustomerPin>(customer_pin_id(test_id, number)),
                    )
                    .await
                    .map(Some),
                    None => Ok(None),
                }
            };
            let call = load_in::<VariantAssignment>(store, organization_id, stream_of::<VariantAssignment>(call_id));
            let (call, pin) = futures::future::try_join(call, pin).await?;
            if let Some(variant_id) = call.state.variant_id {
                return Ok(Decided::nothing(Some(variant_id)));
            }
            let choice = match pin.as_ref().and_then(|p| p.state.variant_id) {
                Some(variant_id) => VariantChoice::Pinned(variant_id),
                None => VariantChoice::Slot(slots.take(test_id, test.legacy_assignments).await?),
            };
            let now = clock.now();
            let command = AssignmentCommand::Assign {
                test_id,
                test: Box::new(test.clone()),
                call_id,
                customer_number: customer_number.clone(),
                choice,
                now,
            };
            let events = VariantAssignment::decide(&command, &call.state).map_err(ab_error)?;
            let state = events.iter().fold(call.state.clone(), VariantAssignment::evolve);
            let mut appends = vec![call.append_of(&events, &meta)];
            if let (Some(pin), Some(variant_id)) = (pin, state.variant_id) {
                let pinning = CustomerPinCommand::Pin {
                    test_id,
                    variant_id,
                    call_id,
                    now,
                };
                let pinned = CustomerPin::decide(&pinning, &pin.state).map_err(ab_error)?;
                if !pinned.is_empty() {
                    appends.push(pin.append_of(&pinned, &meta));
                }
            }
            Ok(Decided::new(appends, state.variant_id))
        })
    };
    let variant_id = execute_decision(store, organization_id, ASSIGNMENT_ATTEMPTS, decide).await?;
    Ok(variant_id.and_then(|id| test.variants.iter().find(|v| v.variant_id == id).cloned()))
}

/// The read model the decisions read their counts from.
pub const AB_READ_MODEL: &str = "ab_testing";

/// Takes the winner rule's looks when a test's finished calls reach them.
/// Work is keyed by the call that finished; the counts come from the
/// `ab_testing` read model, once it has applied that call's event.
pub struct AbDecisions {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub directory: Arc<dyn AbDirectory>,
    pub progress: Arc<dyn ReadModelProgress>,
}

#[async_trait]
impl WorkHandler for AbDecisions {
    fn reactor(&self) -> &'static str {
        AB_DECISIONS
    }

    fn provider(&self) -> &'static str {
        "internal"
    }

    async fn handle(&self, item: &WorkItem) -> Result<WorkOutcome, AppError> {
        if let Some(trigger) = item.trigger {
            if !self.progress.has_applied(AB_READ_MODEL, trigger).await? {
                return Ok(WorkOutcome::RetryAt {
                    due: self.clock.now() + chrono::Duration::seconds(1),
                    reason: "waiting for the A/B read model to apply the call".into(),
                });
            }
        }
        let call_id = Uuid::parse_str(&item.key).map_err(|e| AppError::internal("reading a work key", e))?;
        let Some(test_id) = self.directory.test_of_call(item.organization_id, call_id).await? else {
            return Ok(WorkOutcome::Done);
        };
        let Some(record) = self.directory.test(item.organization_id, test_id).await? else {
            return Ok(WorkOutcome::Done);
        };
        let arms = arms(&record);
        let finished: u64 = arms.iter().map(|a| a.trials).sum();
        let min = u64::from(record.settings.min_sample_size);
        let control = record.variants.iter().position(|v| v.variant.is_control).unwrap_or(0);
        let organization_id = item.organization_id;
        loop {
            let test = load_in::<AbTest>(self.store.as_ref(), organization_id, stream_of::<AbTest>(test_id)).await?;
            let k = test.state.looks_taken;
            if test.state.status != Some(TestStatus::Running) || finished < look_size(min, k) {
                return Ok(WorkOutcome::Done);
            }
            let winner = evaluate_look(&arms, control, k).map(|(i, _)| record.variants[i].variant.variant_id);
            let command = AbTestCommand::TakeLook {
                look: k,
                finished_calls: finished,
                winner,
                now: self.clock.now(),
            };
            let meta = metadata("system:ab-testing", format!("reactor:{AB_DECISIONS}"));
            execute::<AbTest>(self.store.as_ref(), organization_id, test.stream, &meta, |loaded| {
                // Another worker took this look meanwhile: the loop goes on to the next.
                if loaded.state.looks_taken != k {
                    return Ok(vec![]);
                }
                AbTest::decide(&command, &loaded.state).map_err(ab_error)
            })
            .await?;
            if let Some(winner) = winner {
                conclude(
                    self.store.as_ref(),
                    self.clock.as_ref(),
                    organization_id,
                    test_id,
                    winner,
                    "sequential-test",
                    "system:ab-testing".into(),
                )
                .await?;
                return Ok(WorkOutcome::Done);
            }
        }
    }
}

/// The setup of a call that hears `variant`: its prompt, the agent's model settings.
pub fn variant_setup(
    spec: &domain::agents::AgentSpec,
    variant: &TestVariant,
    calendar_tools: bool,
) -> crate::voice::CallSetup {
    crate::voice::CallSetup {
        prompt: variant.prompt.clone(),
        model: spec.model.clone(),
        transfer_number: spec.transfer_number.clone(),
        calendar_tools,
    }
}
