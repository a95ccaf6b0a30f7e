//! The decider shape every aggregate follows.

use crate::events::DomainEvent;

/// What a stream of events builds: the events of an aggregate, named once in
/// its [`domain_events!`](crate::domain_events) declaration (`pub enum XEvent for X in "x"`).
pub trait EventSourced {
    type Event: DomainEvent + Send + Sync;
}

pub trait Aggregate: EventSourced + Default + Sized + Send + Sync {
    type Command: Send + Sync;
    type Error;

    /// Stream type in the log, e.g. `user` for streams `user-<uuid>`: the
    /// one its events are declared in.
    const STREAM_TYPE: &'static str = <Self::Event as DomainEvent>::STREAM_TYPE;

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

/// Given/when/then for deciders' tests: given these events, when this
/// command, then these events (or this error).
#[cfg(test)]
pub mod given_when_then {
    use super::Aggregate;
    use std::fmt::Debug;

    /// The state folded from `history`.
    pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
        let history: Vec<A::Event> = history.into_iter().collect();
        Given {
            state: A::fold(&history),
        }
    }

    /// Given a state already built (e.g. the result of a previous `then`).
    pub fn given_state<A: Aggregate>(state: A) -> Given<A> {
        Given { state }
    }

    pub struct Given<A> {
        pub state: A,
    }

    impl<A: Aggregate> Given<A> {
        pub fn when(self, command: A::Command) -> Then<A> {
            let decided = A::decide(&command, &self.state);
            Then {
                state: self.state,
                decided,
            }
        }
    }

    pub struct Then<A: Aggregate> {
        state: A,
        decided: Result<Vec<A::Event>, A::Error>,
    }

    impl<A: Aggregate> Then<A>
    where
        A::Event: PartialEq + Debug,
        A::Error: PartialEq + Debug,
    {
        /// Asserts the decided events; returns the state after them.
        pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A {
            let events = self.decided.expect("the command is accepted");
            assert_eq!(events, expected.into_iter().collect::<Vec<_>>());
            events.iter().fold(self.state, A::evolve)
        }

        /// The state after whatever the command decided (it must be accepted).
        pub fn state_after(self) -> A {
            let events = self.decided.expect("the command is accepted");
            events.iter().fold(self.state, A::evolve)
        }

        /// Asserts the command is refused with `expected`; returns the
        /// state, unchanged.
        pub fn then_error(self, expected: A::Error) -> A {
            assert_eq!(self.decided.err(), Some(expected));
            self.state
        }

        /// Asserts the command is accepted with no events (a repeat);
        /// returns the state, unchanged.
        pub fn then_nothing(self) -> A {
            self.then([])
        }

        /// The decided events (the command must be accepted), for a test
        /// that checks only some fields of what was decided.
        pub fn events(self) -> Vec<A::Event> {
            self.decided.expect("the command is accepted")
        }

        /// Whatever was decided, for a table-driven test that classifies
        /// accepted and refused commands alike.
        pub fn outcome(self) -> Result<Vec<A::Event>, A::Error> {
            self.decided
        }

        /// The refusal (the command must be refused), for a test that
        /// checks only the kind of error.
        pub fn error(self) -> A::Error {
            self.decided.expect_err("the command is refused")
        }
    }
}
