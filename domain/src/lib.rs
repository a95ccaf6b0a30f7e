//! Pure domain model of VoxReach: event-log value types, the event catalogue,
//! and one decider per aggregate. No IO, no async, no clock: time is passed in.

pub mod ab_statistics;
pub mod ab_testing;
pub mod agents;
pub mod aggregate;
pub mod analytics;
pub mod auth;
pub mod calendar;
pub mod calls;
pub mod campaigns;
pub mod connections;
pub mod crm;
pub mod event_log;
pub mod events;
pub mod open_enum;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod phone;
pub mod phone_numbers;
pub mod slack;
pub mod sync;
pub mod time_zone;
pub mod voices;

pub use aggregate::Aggregate;
pub use event_log::{Checkpoint, EventMetadata, ExpectedVersion, NewEvent, RecordedEvent, StreamId};
pub use events::DomainEvent;

/// Whether some value appears more than once (lists that name each thing once: days, ids).
pub fn has_repeats<T: Ord>(items: &[T]) -> bool {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_unstable();
    sorted.windows(2).any(|pair| pair[0] == pair[1])
}
