//! Value types of the event log, shared by the store, the projectors and the use cases.

use crate::events::{DecodeError, DomainEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;
use uuid::Uuid;

/// Identity of one aggregate instance: `<stream_type>-<uuid or key>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamId {
    stream_type: String,
    id: String,
}

impl StreamId {
    pub fn new(stream_type: &str, id: impl fmt::Display) -> Self {
        Self {
            stream_type: stream_type.to_owned(),
            id: id.to_string(),
        }
    }

    pub fn stream_type(&self) -> &str {
        &self.stream_type
    }

    /// Rebuilds a stream id read back from the log.
    pub fn from_parts(stream_type: String, full_id: &str) -> Self {
        let id = full_id
            .strip_prefix(&stream_type)
            .and_then(|rest| rest.strip_prefix('-'))
            .unwrap_or(full_id)
            .to_owned();
        Self { stream_type, id }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.stream_type, self.id)
    }
}

/// Optimistic-concurrency expectation of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version is.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last version must be exactly this.
    Exact(i64),
}

impl ExpectedVersion {
    /// The version a decider saw: 0 means it saw no stream.
    pub fn from_loaded(version: i64) -> Self {
        if version == 0 {
            Self::NoStream
        } else {
            Self::Exact(version)
        }
    }
}

/// Who and what caused an event; stored beside the payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// `user:<uuid>`, `system:<component>`, `webhook:<provider>`…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The entry point that produced the event (`api`, `reactor:vapi`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: i32,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
}

/// An event as stored, with its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub global_position: i64,
    pub transaction_id: i64,
    pub organization_id: Uuid,
    pub stream_id: String,
    pub stream_type: String,
    pub stream_version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: i32,
    pub payload: StoredPayload,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// The event as its typed enum `E` (the store upcast it to its current version).
    pub fn decode<E: DomainEvent>(&self) -> Result<E, DecodeError> {
        E::decode_stored_payload(&self.event_type, self.event_version, &self.payload)
    }

    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            transaction_id: self.transaction_id,
            global_position: self.global_position,
        }
    }
}

/// A stored event's payload as the JSON text it was read as, upcast to its
/// current version: decoded straight into its typed event, without building a
/// `serde_json::Value` tree first (most of what reading the log cost).
#[derive(Debug, Clone)]
pub struct StoredPayload(Box<RawValue>);

impl StoredPayload {
    pub fn new(raw: Box<RawValue>) -> Self {
        Self(raw)
    }

    /// The payload of a read that left payloads out.
    pub fn null() -> Self {
        Self(RawValue::from_string("null".to_owned()).expect("null is JSON"))
    }

    pub fn from_value(value: &serde_json::Value) -> Self {
        Self(serde_json::value::to_raw_value(value).expect("a JSON value serializes"))
    }

    pub fn raw(&self) -> &RawValue {
        &self.0
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).expect("a stored payload is JSON")
    }
}

impl PartialEq for StoredPayload {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

/// How far a reader has read. A position alone is not enough: a lower position
/// can commit after a higher one, so the log is read in (transaction id, position) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    pub transaction_id: i64,
    pub global_position: i64,
}

impl Checkpoint {
    pub const START: Checkpoint = Checkpoint {
        transaction_id: 0,
        global_position: 0,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_id_round_trips_through_its_parts() {
        let id = Uuid::new_v4();
        let stream = StreamId::new("user", id);
        assert_eq!(stream.to_string(), format!("user-{id}"));
        assert_eq!(StreamId::from_parts("user".into(), &stream.to_string()), stream);
    }

    #[test]
    fn checkpoints_order_by_transaction_first() {
        let earlier_tx_higher_pos = Checkpoint {
            transaction_id: 5,
            global_position: 90,
        };
        let later_tx_lower_pos = Checkpoint {
            transaction_id: 6,
            global_position: 10,
        };
        assert!(earlier_tx_higher_pos < later_tx_lower_pos);
    }
}
