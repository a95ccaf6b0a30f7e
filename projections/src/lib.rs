//! Read models and the projector runtime that keeps them up to date (DESIGN.md §4).

pub mod ab_testing;
pub mod activity;
pub mod agents;
pub mod calls;
pub mod phone_numbers;
pub mod runtime;
pub mod users;
pub mod work;

pub use runtime::{Projection, ProjectionError, ProjectionRunner, ProjectionStatus, RebuildProgress, RunnerConfig};

use std::sync::Arc;

/// Every projection the service runs.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(users::UsersProjection),
        Arc::new(activity::ActivityProjection),
        Arc::new(agents::AgentsProjection),
        Arc::new(agents::AgentSyncQueue),
        Arc::new(calls::CallsProjection),
        Arc::new(ab_testing::AbTestingProjection),
        Arc::new(calls::CallPlacementQueue),
        Arc::new(phone_numbers::PhoneNumbersProjection),
        Arc::new(phone_numbers::NumberSyncQueue),
    ]
}
