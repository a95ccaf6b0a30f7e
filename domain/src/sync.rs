//! How far a provider (Vapi) is behind one of our records.

use serde::{Deserialize, Serialize};

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
pub fn push_answer_is_news(pushed: u32, current: u32, found_id: Option<&String>, known_id: Option<&String>) -> bool {
    pushed == current || found_id.is_some_and(|id| known_id != Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

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
