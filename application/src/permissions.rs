//! The one role matrix: what members, admins and owners may do. Every use case
//! that changes something asks it first; reads are open to every member of the
//! organization (tenancy is enforced by the loads themselves).

use crate::auth::Session;
use crate::error::{AppError, ErrorKind};
use domain::auth::Role;

/// The things a user may or may not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create, change, activate and deactivate agents.
    EditAgents,
    /// Delete agents.
    DeleteAgents,
    /// Place outbound calls.
    PlaceCalls,
    /// Record a call's outcome.
    RecordOutcomes,
    /// Buy, import, assign and release phone numbers.
    ManagePhoneNumbers,
    /// Add and remove provider credentials.
    ManageCredentials,
    /// Script variants and A/B tests: create, start, pause, resume, declare a winner.
    ManageAbTests,
    /// Connect, change, test and disconnect integrations (Slack, later CRM and calendars).
    ManageIntegrations,
    /// Invite users (the invitee's role is bounded by `Role::may_invite`).
    ManageUsers,
    /// Create, change, upload to, start, pause, resume and cancel campaigns.
    RunCampaigns,
    /// Archive (delete) campaigns.
    ArchiveCampaigns,
    /// Put a number on the organization's do-not-call list.
    AddToDnc,
    /// Take a number off the do-not-call list.
    RemoveFromDnc,
    /// Book appointments into connected calendars.
    BookAppointments,
    /// Change the organization's name, time zone and currency.
    ManageOrganization,
}

impl Action {
    pub const ALL: [Action; 15] = [
        Action::EditAgents,
        Action::DeleteAgents,
        Action::PlaceCalls,
        Action::RecordOutcomes,
        Action::ManagePhoneNumbers,
        Action::ManageCredentials,
        Action::ManageAbTests,
        Action::ManageIntegrations,
        Action::ManageUsers,
        Action::RunCampaigns,
        Action::ArchiveCampaigns,
        Action::AddToDnc,
        Action::RemoveFromDnc,
        Action::BookAppointments,
        Action::ManageOrganization,
    ];
}

/// The matrix: members run the day-to-day (agents, calls, outcomes, campaigns,
/// opt-outs, bookings); owners and admins also manage what costs money or reaches
/// outside, and what is hard to undo (archiving, taking a number off the DNC list).
pub fn allows(role: Role, action: Action) -> bool {
    match role {
        Role::Owner | Role::Admin => true,
        Role::Member => matches!(
            action,
            Action::EditAgents
                | Action::PlaceCalls
                | Action::RecordOutcomes
                | Action::RunCampaigns
                | Action::AddToDnc
                | Action::BookAppointments
        ),
    }
}

/// 403 `role_not_allowed` unless the caller's role allows `action`.
pub fn authorize(caller: &Session, action: Action) -> Result<(), AppError> {
    if allows(caller.role, action) {
        Ok(())
    } else {
        Err(AppError::new(
            ErrorKind::Forbidden,
            "role_not_allowed",
            format!("a {} may not do this; ask an owner or admin", caller.role),
        )
        .with_details(serde_json::json!({ "role": caller.role.as_str(), "action": format!("{action:?}") })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_run_the_day_to_day_and_managers_everything() {
        for action in Action::ALL {
            assert!(allows(Role::Owner, action) && allows(Role::Admin, action), "{action:?}");
        }
        let member: Vec<Action> = Action::ALL.into_iter().filter(|a| allows(Role::Member, *a)).collect();
        assert_eq!(
            member,
            [
                Action::EditAgents,
                Action::PlaceCalls,
                Action::RecordOutcomes,
                Action::RunCampaigns,
                Action::AddToDnc,
                Action::BookAppointments
            ]
        );
    }
}
