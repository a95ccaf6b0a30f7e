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
