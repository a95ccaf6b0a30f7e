//! Read models, the subscriptions that feed reactors, and the runtime that
//! keeps both up to date (DESIGN.md §4).

pub mod ab_testing;
pub mod activity;
pub mod agents;
pub mod analytics;
pub mod calendar;
pub mod calls;
pub mod campaigns;
mod copy;
pub mod crm;
pub mod phone_numbers;
mod rows;
pub mod runtime;
pub mod slack;
pub mod tail;
pub mod users;
pub mod work;

use work::WorkFeeder;

pub use runtime::{
    Consumer, ConsumerKind, ConsumerState, Cursor, ProjectionError, ProjectionRunner, ProjectionStatus, ReadModel,
    RebuildProgress, ReplayLimit, RunnerConfig, Step, Subscription, WorkOrder,
};

use std::sync::Arc;

/// Every read model the API reads.
pub fn read_models() -> Vec<Arc<dyn ReadModel>> {
    vec![
        Arc::new(users::UsersProjection),
        Arc::new(activity::ActivityProjection),
        Arc::new(agents::AgentsProjection),
        Arc::new(calls::CallsProjection),
        Arc::new(ab_testing::AbTestingProjection),
        Arc::new(slack::SlackIntegrationsProjection),
        Arc::new(phone_numbers::PhoneNumbersProjection),
        Arc::new(campaigns::CampaignsProjection),
        Arc::new(campaigns::ContactsProjection),
        Arc::new(campaigns::AttemptsProjection),
        Arc::new(campaigns::DncProjection),
        Arc::new(calendar::CalendarIntegrationsProjection),
        Arc::new(calendar::AppointmentsProjection),
        Arc::new(crm::CrmIntegrationsProjection),
        Arc::new(crm::CrmSyncLogProjection),
        Arc::new(crm::CrmContactsProjection),
        Arc::new(analytics::AnalyticsProjection),
    ]
}

/// Every subscription feeding reactor work.
pub fn subscriptions() -> Vec<Arc<dyn Subscription>> {
    vec![
        Arc::new(WorkFeeder {
            name: "agent_sync_queue",
            stream_type: "agent",
            event_types: &[
                "AgentCreated",
                "AgentUpdated",
                "AgentDeleted",
                "AgentAssistantRefreshRequested",
            ],
            settled_by: &[],
            reactor: application::agents::AGENT_SYNC,
            from_beginning: false,
            only_in_organizations_with: None,
        }),
        // Calendars decide whether assistants have the calendar tools.
        Arc::new(WorkFeeder {
            name: "assistant_refresh_queue",
            stream_type: "calendar-integration",
            event_types: &[
                "CalendarConnected",
                "CalendarSettingsChanged",
                "CalendarNeedsReauth",
                "CalendarDisconnected",
            ],
            settled_by: &[],
            reactor: application::agents::ASSISTANT_REFRESH,
            from_beginning: false,
            only_in_organizations_with: None,
        }),
        Arc::new(WorkFeeder {
            name: "call_placement_queue",
            stream_type: "call",
            event_types: &["CallRequested"],
            settled_by: &[],
            reactor: application::calls::CALL_PLACEMENT,
            from_beginning: false,
            only_in_organizations_with: None,
        }),
        Arc::new(WorkFeeder {
            name: "number_sync_queue",
            stream_type: "phone-number",
            event_types: &["PhoneNumberAdded", "PhoneNumberAssigned", "PhoneNumberRemoved"],
            settled_by: &[],
            reactor: application::phone_numbers::NUMBER_SYNC,
            from_beginning: false,
            only_in_organizations_with: None,
        }),
        Arc::new(WorkFeeder {
            name: "campaign_dial_queue",
            stream_type: "campaign-contact",
            event_types: &["CampaignContactDialed"],
            settled_by: &[],
            reactor: application::campaigns::runner::CAMPAIGN_DIALER,
            from_beginning: false,
            only_in_organizations_with: None,
        }),
        Arc::new(WorkFeeder {
            name: "campaign_result_queue",
            stream_type: "call",
            event_types: &["CallEnded", "CallPlacementFailed", "CallOutcomeRecorded"],
            settled_by: &[],
            reactor: application::campaigns::runner::CAMPAIGN_RESULTS,
            from_beginning: false,
            only_in_organizations_with: Some("campaign"),
        }),
        // Analysis stays in the log and is recorded once per report: calls ended
        // before this subscription existed are analyzed too. A report from Vapi
        // arrives analyzed (the webhook scores it), which settles its work.
        Arc::new(WorkFeeder {
            name: "call_analysis_queue",
            stream_type: "call",
            event_types: &["CallEnded", "CallAnalyzed"],
            settled_by: &["CallAnalyzed"],
            reactor: application::analytics::call_analysis::CALL_ANALYSIS,
            from_beginning: true,
            only_in_organizations_with: None,
        }),
        Arc::new(WorkFeeder {
            name: "crm_sync_queue",
            stream_type: "call",
            event_types: &["CallEnded", "CallOutcomeRecorded"],
            settled_by: &[],
            reactor: application::crm::CRM_SYNC,
            from_beginning: false,
            only_in_organizations_with: Some("crm-integration"),
        }),
        Arc::new(WorkFeeder {
            name: "crm_backfill_queue",
            stream_type: "crm-integration",
            event_types: &["CrmBackfillRequested", "CrmCatchUpRequested"],
            settled_by: &[],
            reactor: application::crm::backfill::CRM_BACKFILL,
            from_beginning: false,
            only_in_organizations_with: None,
        }),
        Arc::new(slack::SlackRouter),
        Arc::new(slack::SlackCalendarRouter),
        Arc::new(ab_testing::AbDecisionTrigger),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    /// Filters name event and stream types as strings (the store filters in
    /// SQL): each must be one the catalogue knows, or the consumer silently
    /// reads nothing of it.
    #[test]
    fn every_consumer_filters_on_catalogued_event_and_stream_types() {
        let events: HashSet<&str> = domain::events::catalogue().map(|s| s.event_type).collect();
        let streams: HashSet<&str> = domain::events::catalogue().map(|s| s.stream_type).collect();
        let mut filters: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![];
        for model in super::read_models() {
            filters.push((
                model.name(),
                model.stream_types().unwrap_or_default().to_vec(),
                model.event_types().unwrap_or_default().to_vec(),
            ));
        }
        for subscription in super::subscriptions() {
            filters.push((
                subscription.name(),
                subscription.stream_types().to_vec(),
                subscription.event_types().unwrap_or_default().to_vec(),
            ));
        }
        for (consumer, stream_types, event_types) in filters {
            for stream_type in stream_types {
                assert!(
                    streams.contains(stream_type),
                    "{consumer} reads unknown stream type {stream_type}"
                );
            }
            for event_type in event_types {
                assert!(
                    events.contains(event_type),
                    "{consumer} reads unknown event type {event_type}"
                );
            }
        }
    }
}
