//! Script A/B tests: variants of an agent's prompt, tests that split calls
//! between them, and the rules that keep the split honest.

use crate::aggregate::Aggregate;
use crate::calls::Outcome;
use crate::domain_events;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AbError {
    #[error("{field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("traffic percents of a test's variants must sum to 100, not {0}")]
    TrafficNot100(u32),
    #[error("a test needs exactly one control variant, not {0}")]
    ControlCount(usize),
    #[error("the agent already runs test {0}")]
    TestAlreadyRunning(Uuid),
    #[error("the variant is part of a running test: record a new variant instead of changing it")]
    VariantInRunningTest,
    #[error("the test is {0}")]
    WrongStatus(String),
    #[error("the winner must be one of the test's variants")]
    UnknownWinner,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> AbError {
    AbError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// What counts as a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SuccessOutcome {
    Qualified,
    Appointment,
    Sale,
}

impl SuccessOutcome {
    /// A call converts when its outcome reached at least this stage of the
    /// funnel (qualified < appointment < sale).
    pub fn is_met_by(self, call_outcome: Outcome) -> bool {
        let stage = |outcome: Outcome| match outcome {
            Outcome::Qualified => 1,
            Outcome::Appointment => 2,
            Outcome::Sale => 3,
            _ => 0,
        };
        let wanted = match self {
            SuccessOutcome::Qualified => 1,
            SuccessOutcome::Appointment => 2,
            SuccessOutcome::Sale => 3,
        };
        stage(call_outcome) >= wanted
    }
}

// ---------------------------------------------------------------- variants

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VariantSpec {
    pub name: String,
    pub prompt: String,
    pub is_control: bool,
    pub traffic_percent: u32,
}

/// Longest variant name.
pub const VARIANT_NAME_CHARS: usize = 100;
/// Longest variant prompt: a whole system prompt.
pub const VARIANT_PROMPT_CHARS: usize = crate::agents::SYSTEM_PROMPT_CHARS;
/// Longest test name.
pub const TEST_NAME_CHARS: usize = 200;
/// A test compares at least this many variants.
pub const MIN_VARIANTS_PER_TEST: usize = 2;
/// Largest minimum sample a test may ask for.
pub const MAX_MIN_SAMPLE_SIZE: u32 = 1_000_000;

impl VariantSpec {
    pub fn validate(&self) -> Result<(), AbError> {
        if self.name.trim().is_empty() || self.name.chars().count() > VARIANT_NAME_CHARS {
            return Err(invalid("name", format!("must be 1 to {VARIANT_NAME_CHARS} characters")));
        }
        if self.prompt.trim().is_empty() || self.prompt.chars().count() > VARIANT_PROMPT_CHARS {
            return Err(invalid(
                "prompt",
                format!("must be 1 to {VARIANT_PROMPT_CHARS} characters"),
            ));
        }
        if self.traffic_percent > 100 {
            return Err(invalid("trafficPercent", "must be between 0 and 100"));
        }
        Ok(())
    }
}

domain_events! {
    pub enum VariantEvent for Variant in "script-variant" {
        /// A script variant of an agent's prompt was written. Payload: organizationId, agentId, spec {name,
        /// prompt, isControl, trafficPercent}, at.
        #[version(1)]
        VariantCreated {
            organization_id: Uuid,
            agent_id: Uuid,
            spec: VariantSpec,
            at: DateTime<Utc>,
        },
        /// The variant's spec changed (only its name while it is in a running test). Payload: spec, at.
        #[version(1)]
        VariantUpdated { spec: VariantSpec, at: DateTime<Utc> },
        /// The variant was deleted. Payload: at.
        #[version(1)]
        VariantDeleted { at: DateTime<Utc> },
        /// The variant joined a running test, freezing its prompt. Payload: testId, at.
        #[version(1)]
        VariantEnrolled { test_id: Uuid, at: DateTime<Utc> },
        /// The variant's test ended; it may change again. Payload: testId, at.
        #[version(1)]
        VariantReleased { test_id: Uuid, at: DateTime<Utc> },
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum VariantCommand {
    Create {
        organization_id: Uuid,
        agent_id: Uuid,
        spec: VariantSpec,
        now: DateTime<Utc>,
    },
    Update {
        spec: VariantSpec,
        now: DateTime<Utc>,
    },
    Delete {
        now: DateTime<Utc>,
    },
    Enroll {
        test_id: Uuid,
        now: DateTime<Utc>,
    },
    Release {
        test_id: Uuid,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Variant {
    pub agent_id: Option<Uuid>,
    pub spec: Option<VariantSpec>,
    pub deleted: bool,
    pub running_test: Option<Uuid>,
}

impl Variant {
    pub fn exists(&self) -> bool {
        self.spec.is_some() && !self.deleted
    }
}

impl Aggregate for Variant {
    type Command = VariantCommand;
    type Error = AbError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        use VariantCommand as C;
        if !matches!(command, C::Create { .. }) && !state.exists() {
            return Err(AbError::NotFound("variant"));
        }
        Ok(match command {
            C::Create {
                organization_id,
                agent_id,
                spec,
                now,
            } => {
                spec.validate()?;
                vec![VariantEvent::VariantCreated {
                    organization_id: *organization_id,
                    agent_id: *agent_id,
                    spec: spec.clone(),
                    at: *now,
                }]
            }
            C::Update { spec, now } => {
                spec.validate()?;
                let current = state.spec.as_ref().expect("exists");
                if current == spec {
                    return Ok(vec![]);
                }
                let only_renamed = VariantSpec {
                    name: spec.name.clone(),
                    ..current.clone()
                } == *spec;
                if state.running_test.is_some() && !only_renamed {
                    return Err(AbError::VariantInRunningTest);
                }
                vec![VariantEvent::VariantUpdated {
                    spec: spec.clone(),
                    at: *now,
                }]
            }
            C::Delete { now } => {
                if state.running_test.is_some() {
                    return Err(AbError::VariantInRunningTest);
                }
                vec![VariantEvent::VariantDeleted { at: *now }]
            }
            C::Enroll { test_id, now } => match state.running_test {
                Some(running) if running != *test_id => return Err(AbError::VariantInRunningTest),
                Some(_) => vec![],
                None => vec![VariantEvent::VariantEnrolled {
                    test_id: *test_id,
                    at: *now,
                }],
            },
            C::Release { test_id, now } if state.running_test == Some(*test_id) => {
                vec![VariantEvent::VariantReleased {
                    test_id: *test_id,
                    at: *now,
                }]
            }
            C::Release { .. } => vec![],
        })
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        match event {
            VariantEvent::VariantCreated { agent_id, spec, .. } => {
                self.agent_id = Some(*agent_id);
                self.spec = Some(spec.clone());
            }
            VariantEvent::VariantUpdated { spec, .. } => self.spec = Some(spec.clone()),
            VariantEvent::VariantDeleted { .. } => self.deleted = true,
            VariantEvent::VariantEnrolled { test_id, .. } => self.running_test = Some(*test_id),
            VariantEvent::VariantReleased { .. } => self.running_test = None,
        }
        self
    }
}

// ---------------------------------------------------------------- the agent's running test

domain_events! {
    pub enum AgentExperimentEvent for AgentExperiments in "agent-experiments" {
        /// The agent's running A/B test (at most one). Payload: testId, at.
        #[version(1)]
        AgentTestStarted { test_id: Uuid, at: DateTime<Utc> },
        /// The agent's running test ended. Payload: testId, at.
        #[version(1)]
        AgentTestEnded { test_id: Uuid, at: DateTime<Utc> },
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgentExperimentCommand {
    Start { test_id: Uuid, now: DateTime<Utc> },
    End { test_id: Uuid, now: DateTime<Utc> },
}

/// One stream per agent guarding "one running test per agent".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentExperiments {
    pub running_test: Option<Uuid>,
}

impl Aggregate for AgentExperiments {
    type Command = AgentExperimentCommand;
    type Error = AbError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        match (command, state.running_test) {
            (AgentExperimentCommand::Start { .. }, Some(running)) => Err(AbError::TestAlreadyRunning(running)),
            (AgentExperimentCommand::Start { test_id, now }, None) => {
                Ok(vec![AgentExperimentEvent::AgentTestStarted {
                    test_id: *test_id,
                    at: *now,
                }])
            }
            (AgentExperimentCommand::End { test_id, now }, Some(running)) if running == *test_id => {
                Ok(vec![AgentExperimentEvent::AgentTestEnded {
                    test_id: *test_id,
                    at: *now,
                }])
            }
            (AgentExperimentCommand::End { .. }, _) => Ok(vec![]),
        }
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        self.running_test = match event {
            AgentExperimentEvent::AgentTestStarted { test_id, .. } => Some(*test_id),
            AgentExperimentEvent::AgentTestEnded { .. } => None,
        };
        self
    }
}

// ---------------------------------------------------------------- tests

/// A variant as a test froze it when it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestVariant {
    pub variant_id: Uuid,
    pub name: String,
    pub prompt: String,
    pub is_control: bool,
    pub traffic_percent: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestSettings {
    pub name: String,
    pub success_outcome: SuccessOutcome,
    pub min_sample_size: u32,
    pub auto_promote: bool,
}

domain_events! {
    pub enum AbTestEvent for AbTest in "ab-test" {
        /// An A/B test started with a frozen copy of its variants. Payload: organizationId, agentId, settings
        /// {name, successOutcome, minSampleSize, autoPromote}, variants [{variantId, name, prompt, isControl,
        /// trafficPercent}], at.
        #[version(1)]
        AbTestStarted {
            organization_id: Uuid,
            agent_id: Uuid,
            settings: TestSettings,
            variants: Vec<TestVariant>,
            at: DateTime<Utc>,
        },
        /// The test stopped assigning calls. Payload: at.
        #[version(1)]
        AbTestPaused { at: DateTime<Utc> },
        /// The test assigns calls again. Payload: at.
        #[version(1)]
        AbTestResumed { at: DateTime<Utc> },
        /// A call was given a variant before it started (sticky per customer number). Payload: callId,
        /// variantId, customerNumber, at. No longer recorded (every assignment loaded the whole test): calls
        /// get `CallVariantAssigned` on their own stream. These still count, seed the test's slot counter and
        /// keep their customers' variants.
        #[version(1)]
        VariantAssigned {
            call_id: Uuid,
            variant_id: Uuid,
            customer_number: Option<String>,
            at: DateTime<Utc>,
        },
        /// The winner rule looked at the results once (look k at minSampleSize x 2^k finished calls). Payload:
        /// look, finishedCalls, winner (null: no significant difference), at.
        #[version(1)]
        AbTestLookTaken {
            look: u32,
            finished_calls: u64,
            winner: Option<Uuid>,
            at: DateTime<Utc>,
        },
        /// A winner was chosen, by a person (manual) or by the sequential test. Payload: variantId, decidedBy,
        /// at.
        #[version(1)]
        AbTestWinnerDeclared {
            variant_id: Uuid,
            decided_by: String,
            at: DateTime<Utc>,
        },
        /// The test ended. Payload: at.
        #[version(1)]
        AbTestCompleted { at: DateTime<Utc> },
    }
}

domain_events! {
    /// One call's variant. Stream `ab-assignment-<call id>`: assigning never appends to the test's stream,
    /// so it costs the same after a hundred thousand calls as after one.
    pub enum AssignmentEvent for VariantAssignment in "ab-assignment" {
        /// A call was given a variant of a running test before it started. Payload: testId, callId, variantId,
        /// customerNumber, slot (its place in the test's split; null when the customer's earlier variant was
        /// reused), at.
        #[version(1)]
        CallVariantAssigned {
            test_id: Uuid,
            call_id: Uuid,
            variant_id: Uuid,
            customer_number: Option<String>,
            slot: Option<u64>,
            at: DateTime<Utc>,
        },
    }
}

domain_events! {
    /// A customer's variant in one test. Stream `ab-customer-<uuid v5 of the customer number in the test's
    /// namespace>`: the customer's later calls get the same variant.
    pub enum CustomerPinEvent for CustomerPin in "ab-customer" {
        /// The customer's first call in the test got `variantId`. Payload: testId, variantId, callId, at.
        #[version(1)]
        CustomerVariantPinned {
            test_id: Uuid,
            variant_id: Uuid,
            call_id: Uuid,
            at: DateTime<Utc>,
        },
    }
}

/// The id of a customer's pin stream in a test.
pub fn customer_pin_id(test_id: Uuid, customer_number: &str) -> Uuid {
    Uuid::new_v5(&test_id, customer_number.as_bytes())
}

/// Calls after which a split by whole percents is back at its start.
const SPLIT_PERIOD: u64 = 100;

/// The variant of the split's `slot`-th call (0-based): [`next_variant`]
/// played from the start of its period of 100 calls, after which every
/// variant has had exactly its percent. So any prefix of slots is split
/// within one call of the percents, and a slot needs no earlier counts.
pub fn variant_at(percents: &[u32], slot: u64) -> usize {
    let mut assigned = vec![0u64; percents.len()];
    let mut chosen = 0;
    for _ in 0..=slot % SPLIT_PERIOD {
        chosen = next_variant(percents, &assigned);
        assigned[chosen] += 1;
    }
    chosen
}

/// How a call's variant is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariantChoice {
    /// The customer's pinned variant.
    Pinned(Uuid),
    /// The next slot of the test's split.
    Slot(u64),
}

/// A call's assignment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VariantAssignment {
    pub test_id: Option<Uuid>,
    pub variant_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AssignmentCommand {
    /// Gives the call a variant of `test` (its state as loaded) unless it has one.
    Assign {
        test_id: Uuid,
        test: Box<AbTest>,
        call_id: Uuid,
        customer_number: Option<String>,
        choice: VariantChoice,
        now: DateTime<Utc>,
    },
}

impl Aggregate for VariantAssignment {
    type Command = AssignmentCommand;
    type Error = AbError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        let AssignmentCommand::Assign {
            test_id,
            test,
            call_id,
            customer_number,
            choice,
            now,
        } = command;
        if state.variant_id.is_some() {
            return Ok(vec![]);
        }
        match test.status {
            Some(TestStatus::Running) => {}
            Some(status) => return Err(AbError::WrongStatus(status.as_str().into())),
            None => return Err(AbError::NotFound("A/B test")),
        }
        // Customers the test's own stream assigned keep their variant.
        let legacy = customer_number
            .as_ref()
            .and_then(|number| test.by_customer.get(number))
            .map(|index| test.variants[*index].variant_id);
        let (variant_id, slot) = match (legacy, choice) {
            (Some(variant_id), _) | (None, &VariantChoice::Pinned(variant_id)) => (variant_id, None),
            (None, VariantChoice::Slot(slot)) => {
                let percents: Vec<u32> = test.variants.iter().map(|v| v.traffic_percent).collect();
                (test.variants[variant_at(&percents, *slot)].variant_id, Some(*slot))
            }
        };
        if !test.variants.iter().any(|v| v.variant_id == variant_id) {
            return Err(AbError::UnknownWinner);
        }
        Ok(vec![AssignmentEvent::CallVariantAssigned {
            test_id: *test_id,
            call_id: *call_id,
            variant_id,
            customer_number: customer_number.clone(),
            slot,
            at: *now,
        }])
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        let AssignmentEvent::CallVariantAssigned {
            test_id, variant_id, ..
        } = event;
        self.test_id = Some(*test_id);
        self.variant_id = Some(*variant_id);
        self
    }
}

/// A customer's variant in a test, once pinned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerPin {
    pub variant_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CustomerPinCommand {
    Pin {
        test_id: Uuid,
        variant_id: Uuid,
        call_id: Uuid,
        now: DateTime<Utc>,
    },
}

impl Aggregate for CustomerPin {
    type Command = CustomerPinCommand;
    type Error = AbError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        let CustomerPinCommand::Pin {
            test_id,
            variant_id,
            call_id,
            now,
        } = command;
        if state.variant_id.is_some() {
            return Ok(vec![]);
        }
        Ok(vec![CustomerPinEvent::CustomerVariantPinned {
            test_id: *test_id,
            variant_id: *variant_id,
            call_id: *call_id,
            at: *now,
        }])
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        let CustomerPinEvent::CustomerVariantPinned { variant_id, .. } = event;
        self.variant_id = Some(*variant_id);
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AbTestCommand {
    Start {
        organization_id: Uuid,
        agent_id: Uuid,
        settings: TestSettings,
        variants: Vec<TestVariant>,
        now: DateTime<Utc>,
    },
    Pause {
        now: DateTime<Utc>,
    },
    Resume {
        now: DateTime<Utc>,
    },
    DeclareWinner {
        variant_id: Uuid,
        decided_by: String,
        now: DateTime<Utc>,
    },
    /// Records look `look` of the winner rule; each look is taken once, in order.
    TakeLook {
        look: u32,
        finished_calls: u64,
        winner: Option<Uuid>,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TestStatus {
    Running,
    Paused,
    Completed,
}

impl TestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TestStatus::Running => "running",
            TestStatus::Paused => "paused",
            TestStatus::Completed => "completed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [TestStatus::Running, TestStatus::Paused, TestStatus::Completed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AbTest {
    pub agent_id: Option<Uuid>,
    pub status: Option<TestStatus>,
    pub settings: Option<TestSettings>,
    pub variants: Vec<TestVariant>,
    /// Calls the test's own stream assigned (`VariantAssigned`, no longer
    /// recorded): the test's slot counter starts after them.
    pub legacy_assignments: u64,
    /// Customers the test's own stream assigned -> index into `variants`: they keep their variant.
    pub by_customer: BTreeMap<String, usize>,
    pub winner: Option<Uuid>,
    pub looks_taken: u32,
}

/// Picks the next call's variant so that after every call n, each variant i
/// has had n·pct_i/100 calls rounded down or up — never a whole call off
/// (the "largest deficit first" rule this replaced could drift past one call
/// with four or more variants). Each variant's k-th call is a job that may
/// not come before it fits under the share's ceiling and must come by the
/// call at which the share's floor reaches k; the eligible job with the
/// earliest deadline goes next (ties to the earlier variant). Earliest
/// deadline first meets every deadline whenever any order does, and one
/// does (a quota apportionment always exists).
pub fn next_variant(percents: &[u32], assigned: &[u64]) -> usize {
    let call = assigned.iter().sum::<u64>() + 1;
    let mut next: Option<(u64, usize)> = None;
    for (i, (pct, done)) in percents.iter().zip(assigned).enumerate() {
        let pct = u64::from(*pct);
        let k = done + 1;
        // In hundredths of a call, to stay in integers: the k-th call fits while k - 1 < call·pct/100.
        if pct == 0 || 100 * (k - 1) >= call * pct {
            continue;
        }
        // The floor of the share reaches k at call ⌈100·k/pct⌉.
        let deadline = (100 * k).div_ceil(pct);
        if next.is_none_or(|(earliest, _)| deadline < earliest) {
            next = Some((deadline, i));
        }
    }
    next.map_or(0, |(_, i)| i)
}

impl AbTest {
    pub fn exists(&self) -> bool {
        self.status.is_some()
    }

    /// The variant a call was or would be given.
    pub fn variant(&self, index: usize) -> &TestVariant {
        &self.variants[index]
    }
}

impl Aggregate for AbTest {
    type Command = AbTestCommand;
    type Error = AbError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        use AbTestCommand as C;
        if !matches!(command, C::Start { .. }) && !state.exists() {
            return Err(AbError::NotFound("A/B test"));
        }
        let status = state.status.unwrap_or(TestStatus::Running);
        Ok(match command {
            C::Start {
                organization_id,
                agent_id,
                settings,
                variants,
                now,
            } => {
                if state.exists() {
                    return Err(invalid("id", "test exists"));
                }
                if settings.name.trim().is_empty() || settings.name.chars().count() > TEST_NAME_CHARS {
                    return Err(invalid("name", format!("must be 1 to {TEST_NAME_CHARS} characters")));
                }
                if !(1..=MAX_MIN_SAMPLE_SIZE).contains(&settings.min_sample_size) {
                    return Err(invalid(
                        "minSampleSize",
                        format!("must be between 1 and {MAX_MIN_SAMPLE_SIZE}"),
                    ));
                }
                if variants.len() < MIN_VARIANTS_PER_TEST {
                    return Err(invalid(
                        "variants",
                        format!("a test needs at least {MIN_VARIANTS_PER_TEST} variants"),
                    ));
                }
                let ids: Vec<Uuid> = variants.iter().map(|v| v.variant_id).collect();
                if crate::has_repeats(&ids) {
                    return Err(invalid("variants", "a variant appears twice"));
                }
                let controls = variants.iter().filter(|v| v.is_control).count();
                if controls != 1 {
                    return Err(AbError::ControlCount(controls));
                }
                let sum: u32 = variants.iter().map(|v| v.traffic_percent).sum();
                if sum != 100 {
                    return Err(AbError::TrafficNot100(sum));
                }
                vec![AbTestEvent::AbTestStarted {
                    organization_id: *organization_id,
                    agent_id: *agent_id,
                    settings: settings.clone(),
                    variants: variants.clone(),
                    at: *now,
                }]
            }
            C::Pause { now } => match status {
                TestStatus::Running => vec![AbTestEvent::AbTestPaused { at: *now }],
                TestStatus::Paused => vec![],
                TestStatus::Completed => return Err(AbError::WrongStatus("completed".into())),
            },
            C::Resume { now } => match status {
                TestStatus::Paused => vec![AbTestEvent::AbTestResumed { at: *now }],
                TestStatus::Running => vec![],
                TestStatus::Completed => return Err(AbError::WrongStatus("completed".into())),
            },
            C::TakeLook {
                look,
                finished_calls,
                winner,
                now,
            } => {
                if status == TestStatus::Completed || *look != state.looks_taken {
                    return Ok(vec![]);
                }
                vec![AbTestEvent::AbTestLookTaken {
                    look: *look,
                    finished_calls: *finished_calls,
                    winner: *winner,
                    at: *now,
                }]
            }
            C::DeclareWinner {
                variant_id,
                decided_by,
                now,
            } => {
                if status == TestStatus::Completed {
                    return Err(AbError::WrongStatus("completed".into()));
                }
                if !state.variants.iter().any(|v| v.variant_id == *variant_id) {
                    return Err(AbError::UnknownWinner);
                }
                vec![
                    AbTestEvent::AbTestWinnerDeclared {
                        variant_id: *variant_id,
                        decided_by: decided_by.clone(),
                        at: *now,
                    },
                    AbTestEvent::AbTestCompleted { at: *now },
                ]
            }
        })
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        match event {
            AbTestEvent::AbTestStarted {
                agent_id,
                settings,
                variants,
                ..
            } => {
                self.agent_id = Some(*agent_id);
                self.status = Some(TestStatus::Running);
                self.settings = Some(settings.clone());
                self.variants = variants.clone();
            }
            AbTestEvent::AbTestPaused { .. } => self.status = Some(TestStatus::Paused),
            AbTestEvent::AbTestResumed { .. } => self.status = Some(TestStatus::Running),
            AbTestEvent::VariantAssigned {
                variant_id,
                customer_number,
                ..
            } => {
                if let Some(index) = self.variants.iter().position(|v| v.variant_id == *variant_id) {
                    self.legacy_assignments += 1;
                    if let Some(number) = customer_number {
                        self.by_customer.entry(number.clone()).or_insert(index);
                    }
                }
            }
            AbTestEvent::AbTestLookTaken { look, .. } => self.looks_taken = look + 1,
            AbTestEvent::AbTestWinnerDeclared { variant_id, .. } => self.winner = Some(*variant_id),
            AbTestEvent::AbTestCompleted { .. } => self.status = Some(TestStatus::Completed),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::given_when_then::{given, given_state, Then};
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    fn variant(pct: u32, control: bool) -> TestVariant {
        TestVariant {
            variant_id: Uuid::new_v4(),
            name: "v".into(),
            prompt: "p".into(),
            is_control: control,
            traffic_percent: pct,
        }
    }

    fn settings() -> TestSettings {
        TestSettings {
            name: "Open".into(),
            success_outcome: SuccessOutcome::Qualified,
            min_sample_size: 100,
            auto_promote: false,
        }
    }

    fn start(variants: Vec<TestVariant>) -> Then<AbTest> {
        given::<AbTest>([]).when(AbTestCommand::Start {
            organization_id: Uuid::new_v4(),
            agent_id: Uuid::new_v4(),
            settings: settings(),
            variants,
            now: now(),
        })
    }

    fn assign(test: &AbTest, customer: Option<&str>, choice: VariantChoice) -> Then<VariantAssignment> {
        given::<VariantAssignment>([]).when(AssignmentCommand::Assign {
            test_id: Uuid::from_u128(42),
            test: Box::new(test.clone()),
            call_id: Uuid::new_v4(),
            customer_number: customer.map(str::to_owned),
            choice,
            now: now(),
        })
    }

    /// The variant of the one assignment decided.
    fn variant_of(assigned: Then<VariantAssignment>) -> Uuid {
        let events = assigned.events();
        let [AssignmentEvent::CallVariantAssigned { variant_id, .. }] = events.as_slice() else {
            panic!("{events:?}")
        };
        *variant_id
    }

    #[test]
    fn a_test_pauses_and_resumes_once_and_a_completed_one_stays_completed() {
        let started = AbTestEvent::AbTestStarted {
            organization_id: Uuid::nil(),
            agent_id: Uuid::nil(),
            settings: settings(),
            variants: vec![variant(50, true), variant(50, false)],
            at: now(),
        };
        let paused = AbTestEvent::AbTestPaused { at: now() };
        given::<AbTest>([started.clone()])
            .when(AbTestCommand::Pause { now: now() })
            .then([paused.clone()]);
        given::<AbTest>([started.clone(), paused.clone()])
            .when(AbTestCommand::Pause { now: now() })
            .then_nothing();
        given::<AbTest>([started, paused])
            .when(AbTestCommand::Resume { now: now() })
            .then([AbTestEvent::AbTestResumed { at: now() }]);
    }

    #[test]
    fn start_rules_are_enforced() {
        start(vec![variant(50, true), variant(40, false)]).then_error(AbError::TrafficNot100(90));
        start(vec![variant(50, true), variant(50, true)]).then_error(AbError::ControlCount(2));
        start(vec![variant(50, false), variant(50, false)]).then_error(AbError::ControlCount(0));
        assert!(matches!(
            start(vec![variant(100, true)]).error(),
            AbError::Invalid { field: "variants", .. }
        ));
        start(vec![variant(50, true), variant(50, false)]).state_after();
    }

    #[test]
    fn a_call_takes_its_slot_or_its_customers_variant_once() {
        let test = start(vec![variant(50, true), variant(50, false)]).state_after();
        let (first, second) = (test.variants[0].variant_id, test.variants[1].variant_id);
        assert_eq!(variant_of(assign(&test, None, VariantChoice::Slot(0))), first);
        assert_eq!(variant_of(assign(&test, None, VariantChoice::Slot(1))), second);
        assert_eq!(
            variant_of(assign(&test, Some("+14155550001"), VariantChoice::Pinned(second))),
            second
        );
        // Customers the test's own stream assigned keep that variant.
        let mut legacy = test.clone();
        legacy.by_customer.insert("+14155550001".into(), 1);
        assert_eq!(
            variant_of(assign(&legacy, Some("+14155550001"), VariantChoice::Slot(0))),
            second
        );
        // A pin must name one of the test's variants.
        assign(&test, None, VariantChoice::Pinned(Uuid::new_v4())).then_error(AbError::UnknownWinner);
        // A call assigned already: nothing new.
        let assigned = VariantAssignment {
            test_id: Some(Uuid::from_u128(42)),
            variant_id: Some(first),
        };
        let again = AssignmentCommand::Assign {
            test_id: Uuid::from_u128(42),
            test: Box::new(test),
            call_id: Uuid::new_v4(),
            customer_number: None,
            choice: VariantChoice::Slot(7),
            now: now(),
        };
        given_state(assigned).when(again).then_nothing();
        // A customer is pinned once.
        let pin = CustomerPinCommand::Pin {
            test_id: Uuid::from_u128(42),
            variant_id: second,
            call_id: Uuid::new_v4(),
            now: now(),
        };
        let pinned = given::<CustomerPin>([]).when(pin.clone()).state_after();
        assert_eq!(pinned.variant_id, Some(second));
        given_state(pinned).when(pin).then_nothing();
    }

    #[test]
    fn a_call_is_assigned_only_while_its_test_runs() {
        given::<VariantAssignment>([])
            .when(AssignmentCommand::Assign {
                test_id: Uuid::from_u128(42),
                test: Box::default(),
                call_id: Uuid::new_v4(),
                customer_number: None,
                choice: VariantChoice::Slot(0),
                now: now(),
            })
            .then_error(AbError::NotFound("A/B test"));
    }

    #[test]
    fn a_customers_first_call_pins_its_variant() {
        let (test_id, variant_id, call_id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        given::<CustomerPin>([])
            .when(CustomerPinCommand::Pin {
                test_id,
                variant_id,
                call_id,
                now: now(),
            })
            .then([CustomerPinEvent::CustomerVariantPinned {
                test_id,
                variant_id,
                call_id,
                at: now(),
            }]);
    }

    #[test]
    fn paused_tests_assign_nothing() {
        let test = start(vec![variant(50, true), variant(50, false)]).state_after();
        let test = given_state(test)
            .when(AbTestCommand::Pause { now: now() })
            .state_after();
        assign(&test, None, VariantChoice::Slot(0)).then_error(AbError::WrongStatus("paused".into()));
    }

    fn soft_spec() -> VariantSpec {
        VariantSpec {
            name: "Soft".into(),
            prompt: "Be soft".into(),
            is_control: true,
            traffic_percent: 50,
        }
    }

    fn variant_created(spec: VariantSpec) -> VariantEvent {
        VariantEvent::VariantCreated {
            organization_id: Uuid::nil(),
            agent_id: Uuid::nil(),
            spec,
            at: now(),
        }
    }

    #[test]
    fn variants_in_a_running_test_keep_their_prompt() {
        let spec = soft_spec();
        let enrolled = [
            variant_created(spec.clone()),
            VariantEvent::VariantEnrolled {
                test_id: Uuid::new_v4(),
                at: now(),
            },
        ];
        let changed = VariantSpec {
            prompt: "Be hard".into(),
            ..spec.clone()
        };
        given::<Variant>(enrolled.clone())
            .when(VariantCommand::Update {
                spec: changed,
                now: now(),
            })
            .then_error(AbError::VariantInRunningTest);
        let renamed = VariantSpec {
            name: "Softer".into(),
            ..spec
        };
        given::<Variant>(enrolled.clone())
            .when(VariantCommand::Update {
                spec: renamed,
                now: now(),
            })
            .state_after();
        given::<Variant>(enrolled)
            .when(VariantCommand::Delete { now: now() })
            .then_error(AbError::VariantInRunningTest);
    }

    #[test]
    fn a_variant_is_created_valid_joins_one_test_at_a_time_and_is_released_by_it() {
        given::<Variant>([])
            .when(VariantCommand::Create {
                organization_id: Uuid::nil(),
                agent_id: Uuid::nil(),
                spec: soft_spec(),
                now: now(),
            })
            .then([variant_created(soft_spec())]);
        assert!(matches!(
            given::<Variant>([])
                .when(VariantCommand::Create {
                    organization_id: Uuid::nil(),
                    agent_id: Uuid::nil(),
                    spec: VariantSpec {
                        traffic_percent: 101,
                        ..soft_spec()
                    },
                    now: now(),
                })
                .error(),
            AbError::Invalid {
                field: "trafficPercent",
                ..
            }
        ));
        given::<Variant>([])
            .when(VariantCommand::Delete { now: now() })
            .then_error(AbError::NotFound("variant"));
        let (test, other) = (Uuid::new_v4(), Uuid::new_v4());
        let enrolled = given::<Variant>([variant_created(soft_spec())])
            .when(VariantCommand::Enroll {
                test_id: test,
                now: now(),
            })
            .then([VariantEvent::VariantEnrolled {
                test_id: test,
                at: now(),
            }]);
        let enrolled = given_state(enrolled)
            .when(VariantCommand::Enroll {
                test_id: test,
                now: now(),
            })
            .then_nothing();
        let enrolled = given_state(enrolled)
            .when(VariantCommand::Enroll {
                test_id: other,
                now: now(),
            })
            .then_error(AbError::VariantInRunningTest);
        let enrolled = given_state(enrolled)
            .when(VariantCommand::Release {
                test_id: other,
                now: now(),
            })
            .then_nothing();
        given_state(enrolled)
            .when(VariantCommand::Release {
                test_id: test,
                now: now(),
            })
            .then([VariantEvent::VariantReleased {
                test_id: test,
                at: now(),
            }]);
    }

    #[test]
    fn an_agent_runs_one_test_at_a_time() {
        let (test, other) = (Uuid::new_v4(), Uuid::new_v4());
        let running = given::<AgentExperiments>([])
            .when(AgentExperimentCommand::Start {
                test_id: test,
                now: now(),
            })
            .then([AgentExperimentEvent::AgentTestStarted {
                test_id: test,
                at: now(),
            }]);
        let running = given_state(running)
            .when(AgentExperimentCommand::Start {
                test_id: other,
                now: now(),
            })
            .then_error(AbError::TestAlreadyRunning(test));
        let running = given_state(running)
            .when(AgentExperimentCommand::End {
                test_id: other,
                now: now(),
            })
            .then_nothing();
        given_state(running)
            .when(AgentExperimentCommand::End {
                test_id: test,
                now: now(),
            })
            .then([AgentExperimentEvent::AgentTestEnded {
                test_id: test,
                at: now(),
            }]);
    }

    #[test]
    fn funnel_stages_count_upwards() {
        assert!(SuccessOutcome::Qualified.is_met_by(Outcome::Sale));
        assert!(SuccessOutcome::Appointment.is_met_by(Outcome::Appointment));
        assert!(!SuccessOutcome::Appointment.is_met_by(Outcome::Qualified));
        assert!(!SuccessOutcome::Qualified.is_met_by(Outcome::NotInterested));
    }

    #[test]
    fn five_uneven_variants_stay_within_one_call_of_their_shares() {
        // The rule this replaced was 1.01 calls short for the last variant after 59 calls here.
        let percents = [1, 56, 1, 3, 39];
        let mut assigned = [0u64; 5];
        for call in 1..=1_000u64 {
            assigned[next_variant(&percents, &assigned)] += 1;
            for (done, pct) in assigned.iter().zip(percents) {
                let share = call as f64 * f64::from(pct) / 100.0;
                assert!((*done as f64 - share).abs() < 1.0, "{assigned:?} after {call} calls");
            }
        }
    }

    proptest! {
        /// Every prefix of the split is within one call of each variant's share, and the n-th call's
        /// variant is its slot's.
        #[test]
        fn the_split_tracks_traffic_percents_at_every_step(cuts in proptest::collection::vec(0u32..=100, 1..5), calls in 1usize..400) {
            let mut percents: Vec<u32> = vec![];
            let mut left = 100u32;
            for cut in cuts {
                let p = cut.min(left);
                percents.push(p);
                left -= p;
            }
            percents.push(left);
            let mut assigned = vec![0u64; percents.len()];
            for n in 1..=calls {
                let i = next_variant(&percents, &assigned);
                prop_assert_eq!(i, variant_at(&percents, n as u64 - 1), "slot {} of {:?}", n - 1, percents);
                assigned[i] += 1;
                for (done, pct) in assigned.iter().zip(&percents) {
                    let target = n as f64 * f64::from(*pct) / 100.0;
                    prop_assert!((*done as f64 - target).abs() < 1.0 + 1e-9, "{:?} after {} calls, {:?}", assigned, n, percents);
                }
            }
        }
    }
}
