//! Two-way CRM sync: the CRM's notifications of contact changes and
//! deletions (verified where they come in) are kept as each contact's record,
//! our copy of it, so an outbound call's preload sees edits made in the CRM
//! and nothing more is written to a contact deleted there.

use super::CrmService;
use crate::aggregates::{execute, load_in, metadata, stream_of};
use crate::error::AppError;
use crate::event_store::EventStore;
use chrono::{DateTime, Utc};
use domain::crm::{CrmContactEvent, CrmContactRecord, CrmProvider};
use domain::Aggregate;
use std::collections::BTreeMap;
use uuid::Uuid;

/// What a CRM's notification says happened to one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactChangeKind {
    /// One property has a new value (empty when cleared).
    Property { name: String, value: String },
    /// Deleted, erased for privacy, or merged into another contact.
    Deleted,
}

/// One verified notification about a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactChange {
    /// The CRM account it happened in (HubSpot's portal id).
    pub portal_id: String,
    pub contact_id: String,
    pub change: ContactChangeKind,
    pub occurred_at: DateTime<Utc>,
    /// The CRM's id of the notification.
    pub event_id: i64,
}

impl ContactChange {
    /// The change as the contact's record is told it.
    fn reported(self, provider: CrmProvider) -> CrmContactEvent {
        match self.change {
            ContactChangeKind::Property { name, value } => CrmContactEvent::CrmContactChanged {
                provider,
                contact_id: self.contact_id,
                properties: BTreeMap::from([(name, value)]),
                occurred_at: self.occurred_at,
                event_id: self.event_id,
            },
            ContactChangeKind::Deleted => CrmContactEvent::CrmContactDeleted {
                provider,
                contact_id: self.contact_id,
                occurred_at: self.occurred_at,
            },
        }
    }
}

/// Our copy of a contact, as the contact cache holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedContact {
    pub provider: CrmProvider,
    pub contact_id: String,
    /// Every property the CRM told us of (`firstname`, `lastname`, `company`,
    /// `email`, `phone`, `mobilephone`, `hubspot_owner_id`…), by name.
    pub properties: BTreeMap<String, String>,
    pub deleted: bool,
    pub updated_at: DateTime<Utc>,
}

impl CrmService {
    /// Records verified contact changes in every organization connected to
    /// their portal; a portal nobody is connected to is ignored. Redelivered
    /// and stale changes record nothing (the contact's record drops them).
    #[tracing::instrument(skip_all, fields(%provider, changes = changes.len()))]
    pub async fn record_contact_changes(
        &self,
        provider: CrmProvider,
        changes: Vec<ContactChange>,
    ) -> Result<(), AppError> {
        // One decision per contact, its changes in delivery order.
        let mut by_contact: BTreeMap<(String, String), Vec<CrmContactEvent>> = BTreeMap::new();
        for change in changes {
            let key = (change.portal_id.clone(), change.contact_id.clone());
            by_contact.entry(key).or_default().push(change.reported(provider));
        }
        let mut organizations: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
        let meta = metadata(format!("webhook:{provider}"), provider.as_str());
        for ((portal, contact_id), reported) in by_contact {
            if !organizations.contains_key(&portal) {
                let connected = self.directory.organizations_of(provider, &portal).await?;
                if connected.is_empty() {
                    tracing::info!(
                        portal,
                        "ignoring a CRM notification from a portal nobody is connected to"
                    );
                }
                organizations.insert(portal.clone(), connected);
            }
            for organization_id in &organizations[&portal] {
                execute::<CrmContactRecord>(
                    self.store.as_ref(),
                    *organization_id,
                    stream_of::<CrmContactRecord>(provider.contact_record_id(*organization_id, &contact_id)),
                    &meta,
                    |loaded| decide_all(&reported, loaded.state.clone()),
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// What reports about one contact record, each decided on the state the earlier ones left.
fn decide_all(reported: &[CrmContactEvent], mut state: CrmContactRecord) -> Result<Vec<CrmContactEvent>, AppError> {
    let mut recorded = Vec::new();
    for report in reported {
        let events = CrmContactRecord::decide(report, &state)?;
        state = events.iter().fold(state, CrmContactRecord::evolve);
        recorded.extend(events);
    }
    Ok(recorded)
}

/// Whether the CRM told us it deleted this contact of the organization.
pub(super) async fn contact_deleted(
    store: &dyn EventStore,
    organization_id: Uuid,
    provider: CrmProvider,
    contact_id: &str,
) -> Result<bool, AppError> {
    let stream = stream_of::<CrmContactRecord>(provider.contact_record_id(organization_id, contact_id));
    Ok(load_in::<CrmContactRecord>(store, organization_id, stream)
        .await?
        .state
        .is_deleted())
}
