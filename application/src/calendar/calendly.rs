//! Calendly: connected with a personal access token; what invitees book on
//! Calendly's own pages arrives as signed webhook deliveries.

use super::{provider_failure, signing_key_owner, vault_owner, CalendarService};
use crate::aggregates::{execute_command, load_any, metadata, session_metadata, stream_of};
use crate::auth::Session;
use crate::error::{AppError, ErrorKind};
use crate::oauth::Tokens;
use crate::permissions::{authorize, Action};
use crate::providers::ProviderError;
use async_trait::async_trait;
use domain::calendar::{
    BookingCommand, CalendarBookings, CalendarCommand, CalendarIntegration, CalendarProvider, CalendarSettings,
    CalendlyDelivery,
};
use domain::connections::SignIn;
use uuid::Uuid;

/// The Calendly user a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendlyAccount {
    pub user_uri: String,
    pub organization_uri: String,
    pub email: String,
}

/// A webhook subscription to make: `callback_url` receives `invitee.created`
/// and `invitee.canceled` of `account`'s user, signed with `signing_key`.
#[derive(Debug, Clone, Copy)]
pub struct NewSubscription<'a> {
    pub account: &'a CalendlyAccount,
    pub callback_url: &'a str,
    pub signing_key: &'a str,
}

/// Calendly's API (v2), called with a personal access token.
#[async_trait]
pub trait CalendlyApi: Send + Sync {
    async fn current_user(&self, token: &str) -> Result<CalendlyAccount, ProviderError>;
    /// Makes the subscription; returns its URI.
    async fn subscribe(&self, token: &str, subscription: &NewSubscription<'_>) -> Result<String, ProviderError>;
    async fn unsubscribe(&self, token: &str, subscription_uri: &str) -> Result<(), ProviderError>;
}

/// Longest personal access token accepted.
const TOKEN_CHARS: usize = 4096;

impl CalendarService {
    /// Connects Calendly with a personal access token: checks it, subscribes
    /// our webhook (signed with a key of ours) and records the integration.
    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn connect_calendly(&self, caller: &Session, token: &str) -> Result<Uuid, AppError> {
        authorize(caller, Action::ManageIntegrations)?;
        let calendly = self.providers.calendly.as_ref().ok_or_else(|| {
            AppError::new(
                ErrorKind::Validation,
                "provider_not_configured",
                "Calendly is not configured on this server",
            )
        })?;
        let token = token.trim();
        if token.is_empty() || token.chars().count() > TOKEN_CHARS || token.chars().any(char::is_whitespace) {
            return Err(AppError::validation(
                "personalAccessToken",
                "personalAccessToken is invalid: a Calendly personal access token is required",
            ));
        }
        let refused = |error: ProviderError| match error {
            ProviderError::Unauthorized | ProviderError::NotFound | ProviderError::Rejected { .. } => {
                AppError::validation(
                    "personalAccessToken",
                    "personalAccessToken is invalid: Calendly refused it",
                )
            }
            other => provider_failure(other),
        };
        let account = calendly.current_user(token).await.map_err(refused)?;
        let organization_id = caller.organization_id;
        let id = Uuid::now_v7();
        let signing_key = self.secrets.generate();
        let secret = |value: &str| Tokens {
            access_token: value.to_owned(),
            api_base: None,
            refresh_token: None,
            expires_at: None,
        };
        // The key is kept first: deliveries may start as soon as the subscription exists.
        self.oauth
            .vault
            .put(organization_id, &vault_owner(id), &secret(token))
            .await?;
        self.oauth
            .vault
            .put(organization_id, &signing_key_owner(id), &secret(&signing_key))
            .await?;
        let callback = format!("{}/api/webhooks/calendly?integration={id}", self.public_url);
        let subscription = NewSubscription {
            account: &account,
            callback_url: &callback,
            signing_key: &signing_key,
        };
        let subscription = match calendly.subscribe(token, &subscription).await {
            Ok(subscription) => subscription,
            Err(error) => {
                self.oauth.vault.forget(organization_id, &vault_owner(id)).await?;
                self.oauth.vault.forget(organization_id, &signing_key_owner(id)).await?;
                return Err(match error {
                    ProviderError::Rejected { .. } | ProviderError::Unauthorized => AppError::new(
                        ErrorKind::Unprocessable,
                        "calendly_subscription_refused",
                        "Calendly refused the webhook subscription (webhooks need a paid Calendly plan and the webhooks:write scope)",
                    ),
                    other => provider_failure(other),
                });
            }
        };
        let command = CalendarCommand::Connect {
            sign_in: SignIn {
                organization_id,
                connected_by: caller.user_id,
                provider: CalendarProvider::Calendly,
            },
            account: account.email,
            webhook_subscription: Some(subscription),
            settings: CalendarSettings::default(),
            now: self.clock.now(),
        };
        execute_command::<CalendarIntegration>(
            self.store.as_ref(),
            organization_id,
            stream_of::<CalendarIntegration>(id),
            &session_metadata(caller),
            &command,
        )
        .await?;
        Ok(id)
    }

    /// The organization and signing key of a live Calendly integration, to
    /// verify a delivery with; `None` when there is no such integration (any more).
    #[tracing::instrument(skip_all, fields(%integration_id))]
    pub async fn calendly_signing_key(&self, integration_id: Uuid) -> Result<Option<(Uuid, String)>, AppError> {
        let loaded =
            load_any::<CalendarIntegration>(self.store.as_ref(), stream_of::<CalendarIntegration>(integration_id))
                .await?;
        let (Some(organization_id), Some(CalendarProvider::Calendly), true) = (
            loaded.state.connection.organization_id,
            loaded.state.connection.provider,
            loaded.state.is_live(),
        ) else {
            return Ok(None);
        };
        Ok(self
            .oauth
            .vault
            .get(organization_id, &signing_key_owner(integration_id))
            .await?
            .map(|key| (organization_id, key.access_token)))
    }

    /// Records a verified delivery; a redelivery records nothing more.
    #[tracing::instrument(skip_all, fields(%organization_id, %integration_id))]
    pub async fn record_calendly(
        &self,
        organization_id: Uuid,
        integration_id: Uuid,
        delivery: CalendlyDelivery,
    ) -> Result<(), AppError> {
        let command = BookingCommand::RecordCalendly {
            delivery,
            now: self.clock.now(),
        };
        execute_command::<CalendarBookings>(
            self.store.as_ref(),
            organization_id,
            stream_of::<CalendarBookings>(integration_id),
            &metadata("webhook:calendly", "calendly"),
            &command,
        )
        .await
        .map(|_| ())
    }
}
