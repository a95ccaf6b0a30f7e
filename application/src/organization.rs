//! The organization's own settings: name, time zone and currency. The time
//! zone is where analytics counts days and hours.

use crate::aggregates::{execute, load_in, session_metadata, stream_of};
use crate::auth::{domain_error, Session};
use crate::clock::Clock;
use crate::error::AppError;
use crate::event_store::EventStore;
use domain::auth::{AuthError, Currency, Organization, OrganizationCommand, OrganizationSettings};
use domain::time_zone::TimeZone;
use domain::Aggregate;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

/// The settings as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationView {
    pub id: Uuid,
    pub name: String,
    /// IANA time zone.
    pub timezone: String,
    /// ISO 4217 code.
    pub currency: String,
}

/// A change: the settings given are set, the others kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsChange {
    pub name: Option<String>,
    pub timezone: Option<TimeZone>,
    pub currency: Option<Currency>,
}

pub struct OrganizationService {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
}

fn view(id: Uuid, settings: Option<&OrganizationSettings>) -> Result<OrganizationView, AppError> {
    let settings = settings.ok_or_else(|| domain_error(AuthError::OrganizationNotFound))?;
    Ok(OrganizationView {
        id,
        name: settings.name.clone(),
        timezone: settings.timezone.name().to_owned(),
        currency: settings.currency.code().to_owned(),
    })
}

impl OrganizationService {
    /// The caller's organization's settings.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn settings(&self, caller: &Session) -> Result<OrganizationSettings, AppError> {
        let loaded = load_in::<Organization>(
            self.store.as_ref(),
            caller.organization_id,
            stream_of::<Organization>(caller.organization_id),
        )
        .await?;
        loaded
            .state
            .settings
            .ok_or_else(|| domain_error(AuthError::OrganizationNotFound))
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn get(&self, caller: &Session) -> Result<OrganizationView, AppError> {
        view(caller.organization_id, Some(&self.settings(caller).await?))
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn change(&self, caller: &Session, change: SettingsChange) -> Result<OrganizationView, AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManageOrganization)?;
        let now = self.clock.now();
        let loaded = execute::<Organization>(
            self.store.as_ref(),
            caller.organization_id,
            stream_of::<Organization>(caller.organization_id),
            &session_metadata(caller),
            |loaded| {
                let command = OrganizationCommand::ChangeSettings {
                    name: change.name.clone(),
                    timezone: change.timezone,
                    currency: change.currency,
                    changed_by: caller.user_id,
                    now,
                };
                Organization::decide(&command, &loaded.state).map_err(domain_error)
            },
        )
        .await?;
        view(caller.organization_id, loaded.state.settings.as_ref())
    }
}
