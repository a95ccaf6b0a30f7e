//! The decider shape every aggregate follows.

use crate::events::DomainEvent;

pub trait Aggregate: Default + Sized + Send + Sync {
    type Command: Send + Sync;
    type Event: DomainEvent + Send + Sync;
    type Error;

    /// Stream type in the log, e.g. `user` for streams `user-<uuid>`.
    const STREAM_TYPE: &'static str;

    /// Business rules: what a command means given the current state.
    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error>;

    /// State after one event. Never fails: an event is a fact.
    fn evolve(self, event: &Self::Event) -> Self;

    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::default(), Self::evolve)
    }
}
