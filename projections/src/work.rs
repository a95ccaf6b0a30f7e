//! Subscriptions that make reactor work due.

use crate::runtime::{Subscription, WorkOrder};
use domain::events::DecodeError;
use domain::RecordedEvent;

/// A subscription that makes a reactor's work due whenever one of
/// `event_types` lands on a stream of `stream_type`, keyed by the stream's id.
pub struct WorkFeeder {
    pub name: &'static str,
    pub stream_type: &'static str,
    /// Triggers, then the `settled_by` types.
    pub event_types: &'static [&'static str],
    /// Events recording the reactor's effect: see [`Subscription::settles`].
    pub settled_by: &'static [&'static str],
    pub reactor: &'static str,
    /// See [`Subscription::starts_at_beginning`].
    pub from_beginning: bool,
    /// See [`Subscription::only_in_organizations_with`].
    pub only_in_organizations_with: Option<&'static str>,
}

impl Subscription for WorkFeeder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn version(&self) -> i32 {
        1
    }

    fn stream_types(&self) -> &[&'static str] {
        std::slice::from_ref(&self.stream_type)
    }

    fn event_types(&self) -> Option<&[&'static str]> {
        // The store filters by this list: a settling event left out would never be read.
        debug_assert!(
            self.settled_by.iter().all(|t| self.event_types.contains(t)),
            "{}: event_types must list its settled_by types",
            self.name
        );
        Some(self.event_types)
    }

    /// The work key is the stream's id.
    fn reads_payloads(&self) -> bool {
        false
    }

    fn starts_at_beginning(&self) -> bool {
        self.from_beginning
    }

    fn only_in_organizations_with(&self) -> Option<&'static str> {
        self.only_in_organizations_with
    }

    fn settles(&self, event: &RecordedEvent) -> Option<(&'static str, String)> {
        (event.stream_type == self.stream_type && self.settled_by.contains(&event.event_type.as_str()))
            .then(|| (self.reactor, stream_key(event).to_owned()))
    }

    fn route(&self, event: &RecordedEvent) -> Result<Option<WorkOrder>, DecodeError> {
        let event_type = event.event_type.as_str();
        if event.stream_type != self.stream_type
            || !self.event_types.contains(&event_type)
            || self.settled_by.contains(&event_type)
        {
            return Ok(None);
        }
        Ok(Some(WorkOrder {
            reactor: self.reactor,
            key: stream_key(event).to_owned(),
            organization_id: event.organization_id,
        }))
    }
}

/// The id part of an event's stream (`call-<id>` → `<id>`).
pub fn stream_key(event: &RecordedEvent) -> &str {
    event
        .stream_id
        .strip_prefix(event.stream_type.as_str())
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(&event.stream_id)
}
