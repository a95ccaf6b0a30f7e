//! How far a provider (Vapi) is behind one of our records, and the protocol
//! that keeps a record's copy at Vapi current: the same for an agent's
//! assistant and a phone number.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SyncStatus {
    /// The provider holds the current revision.
    Synced,
    /// The last push of the current revision failed.
    Failed,
    /// A push of the current revision is due.
    Pending,
}

impl SyncStatus {
    pub fn of(revision: i64, synced_revision: i64, last_push_failed: bool) -> Self {
        if synced_revision >= revision {
            SyncStatus::Synced
        } else if last_push_failed {
            SyncStatus::Failed
        } else {
            SyncStatus::Pending
        }
    }
}

/// Whether Vapi's answer to the push of revision `pushed` is news to a record
/// at revision `current` that holds the Vapi id `known_id`: the current
/// revision's answer always is; an older push's only when it created or found
/// an id the record does not hold (a newer push is due anyway and must update
/// that one, not create another). Other answers to older pushes are stale.
fn push_answer_is_news(pushed: u32, current: u32, found_id: Option<&String>, known_id: Option<&String>) -> bool {
    pushed == current || found_id.is_some_and(|id| known_id != Some(id))
}

/// A record's copy at Vapi, as its aggregate knows it. Every change Vapi must
/// learn about is a revision; the sync reactor pushes the newest one and
/// records which revision it carried, or that the push failed. Creating the
/// copy is not idempotent at Vapi, so the reactor records the attempt before
/// the request: a retry or a second worker finding it looks the copy up
/// instead of creating another.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VapiSync {
    /// Counts changes Vapi must learn about.
    pub revision: u32,
    /// The newest revision a push carried.
    pub synced_revision: u32,
    /// Vapi's id of the copy (None before it is created and once deleted there).
    pub vapi_id: Option<String>,
    /// Whether the last push of the current revision failed.
    pub failed: bool,
    /// The latest creation attempt and when it began: until an id is
    /// recorded, it may have created the copy at Vapi.
    pub creation_attempt: Option<(Uuid, DateTime<Utc>)>,
}

/// What a failed push records (flattened into each aggregate's event and
/// command, so that stored payloads keep their shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedPush {
    /// The revision the push carried.
    pub revision: u32,
    pub reason: String,
    /// Which attempt at the work it was, from 1.
    pub attempt: u32,
    /// When the next attempt is due; None when retries are exhausted or the
    /// error is permanent.
    pub retry_at: Option<DateTime<Utc>>,
}

impl VapiSync {
    pub fn needs_sync(&self) -> bool {
        self.revision > self.synced_revision
    }

    pub fn status(&self) -> SyncStatus {
        SyncStatus::of(self.revision.into(), self.synced_revision.into(), self.failed)
    }

    // Deciding: which outcomes are worth recording.

    /// Whether Vapi's answer to the push of `pushed` is news (see [`push_answer_is_news`]).
    pub fn answer_is_news(&self, pushed: u32, found_id: Option<&String>) -> bool {
        push_answer_is_news(pushed, self.revision, found_id, self.vapi_id.as_ref())
    }

    /// Whether a failure is news: a failed push of an older revision is
    /// stale, as a newer push is due anyway.
    pub fn failure_is_news(&self, failed: &FailedPush) -> bool {
        failed.revision == self.revision
    }

    /// Whether a creation attempt may start: the copy does not exist yet, and
    /// the caller has seen the latest attempt (`previous`), so no other
    /// attempt was recorded meanwhile.
    pub fn may_start_creation(&self, previous: Option<Uuid>) -> bool {
        self.vapi_id.is_none() && self.creation_attempt.map(|(attempt, _)| attempt) == previous
    }

    // Evolving: what each fact of the protocol changes.

    /// A change Vapi must learn about: a new revision, not pushed yet.
    pub fn changed(&mut self) {
        self.revision += 1;
        self.failed = false;
    }

    /// Vapi holds the copy as of `revision`; an older revision's push only
    /// tells the copy's id.
    pub fn synced(&mut self, revision: u32, vapi_id: &Option<String>) {
        self.synced_revision = self.synced_revision.max(revision);
        if revision == self.revision {
            self.failed = false;
        }
        self.vapi_id = vapi_id.clone();
        if vapi_id.is_some() {
            self.creation_attempt = None;
        }
    }

    pub fn push_failed(&mut self, failed: &FailedPush) {
        self.failed = self.failure_is_news(failed);
    }

    pub fn creation_started(&mut self, attempt: Uuid, at: DateTime<Utc>) {
        self.creation_attempt = Some((attempt, at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::AgentEvent;
    use crate::events::DomainEvent;
    use crate::phone_numbers::PhoneNumberEvent;

    #[test]
    fn a_failed_push_is_stored_flat_in_both_events() {
        let at: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
        let later: DateTime<Utc> = "2026-11-24T12:05:00Z".parse().unwrap();
        for (retry_at, stored_retry_at) in [(Some(later), r#""2026-11-24T12:05:00Z""#), (None, "null")] {
            let failed = FailedPush {
                revision: 3,
                reason: "Vapi is unavailable".into(),
                attempt: 2,
                retry_at,
            };
            // The payloads are byte for byte what they were before the fields were grouped.
            let payload = |at_field: &str| {
                format!(
                    r#"{{"revision":3,"reason":"Vapi is unavailable","attempt":2,"retryAt":{stored_retry_at},"{at_field}":"2026-11-24T12:00:00Z"}}"#
                )
            };
            let agent = AgentEvent::AgentSyncFailed {
                failed: failed.clone(),
                failed_at: at,
            };
            let agent_payload = payload("failedAt");
            assert_eq!(
                serde_json::to_string(&agent).unwrap(),
                format!(r#"{{"type":"AgentSyncFailed","data":{agent_payload}}}"#)
            );
            let agent_payload = serde_json::from_str(&agent_payload).unwrap();
            assert_eq!(AgentEvent::decode("AgentSyncFailed", 1, &agent_payload).unwrap(), agent);

            let number = PhoneNumberEvent::PhoneNumberSyncFailed { failed, at };
            let number_payload = payload("at");
            assert_eq!(
                serde_json::to_string(&number).unwrap(),
                format!(r#"{{"type":"PhoneNumberSyncFailed","data":{number_payload}}}"#)
            );
            let number_payload = serde_json::from_str(&number_payload).unwrap();
            assert_eq!(
                PhoneNumberEvent::decode("PhoneNumberSyncFailed", 1, &number_payload).unwrap(),
                number
            );
        }
    }

    #[test]
    fn older_pushes_only_tell_a_new_id() {
        let (a, b) = (String::from("a"), String::from("b"));
        assert!(push_answer_is_news(2, 2, None, Some(&a)));
        assert!(push_answer_is_news(2, 2, Some(&a), Some(&a)));
        assert!(push_answer_is_news(1, 2, Some(&b), Some(&a)));
        assert!(push_answer_is_news(1, 2, Some(&a), None));
        assert!(!push_answer_is_news(1, 2, Some(&a), Some(&a)));
        assert!(!push_answer_is_news(1, 2, None, Some(&a)));
    }
}
