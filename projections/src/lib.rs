//! Read models and the projector runtime that keeps them up to date (DESIGN.md §4).

pub mod ab_testing;
pub mod activity;
pub mod agents;
pub mod calls;
pub mod phone_numbers;
pub mod runtime;
pub mod slack;
pub mod users;
pub mod work;

use work::WorkFeeder;

pub use runtime::{Projection, ProjectionError, ProjectionRunner, ProjectionStatus, RebuildProgress, RunnerConfig};

use std::sync::Arc;

/// Every projection the service runs.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(users::UsersProjection),
        Arc::new(activity::ActivityProjection),
        Arc::new(agents::AgentsProjection),
        Arc::new(WorkFeeder {
            name: "agent_sync_queue",
            stream_type: "agent",
            event_types: &["AgentCreated", "AgentUpdated", "AgentDeleted"],
            reactor: application::agents::AGENT_SYNC,
        }),
        Arc::new(calls::CallsProjection),
        Arc::new(ab_testing::AbTestingProjection),
        Arc::new(WorkFeeder {
            name: "call_placement_queue",
            stream_type: "call",
            event_types: &["CallRequested"],
            reactor: application::calls::CALL_PLACEMENT,
        }),
        Arc::new(slack::SlackIntegrationsProjection),
        Arc::new(slack::SlackRouter),
        Arc::new(phone_numbers::PhoneNumbersProjection),
        Arc::new(WorkFeeder {
            name: "number_sync_queue",
            stream_type: "phone-number",
            event_types: &["PhoneNumberAdded", "PhoneNumberAssigned", "PhoneNumberRemoved"],
            reactor: application::phone_numbers::NUMBER_SYNC,
        }),
    ]
}
