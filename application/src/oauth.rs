//! OAuth 2.0 sign-ins with providers (calendars now, CRMs next): the pending
//! authorization a `state` stands for, the authorization-code client port,
//! and the vault that keeps each integration's tokens encrypted, refreshed by
//! one process at a time.

use crate::error::{AppError, ErrorKind};
use crate::providers::Cause;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use uuid::Uuid;

/// How long a `state` handed to the browser stays usable.
pub const STATE_LIFETIME_MINUTES: i64 = 10;

/// Access tokens are refreshed this long before they expire.
pub const REFRESH_AHEAD_SECONDS: i64 = 300;

/// A sign-in started by a user and not yet completed: what the callback
/// needs, found by its `state` exactly once.
#[derive(Clone, PartialEq)]
pub struct PendingAuthorization {
    pub organization_id: Uuid,
    pub user_id: Uuid,
    /// Which integration the sign-in is for, e.g. `calendar:google`.
    pub purpose: String,
    /// The id the integration will have once connected.
    pub integration_id: Uuid,
    pub pkce_verifier: String,
    /// Feature-specific choices made when starting (e.g. the calendar id).
    pub details: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("organization_id", &self.organization_id)
            .field("user_id", &self.user_id)
            .field("purpose", &self.purpose)
            .field("integration_id", &self.integration_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Pending authorizations by `state`, each usable once.
#[async_trait]
pub trait AuthorizationStates: Send + Sync {
    async fn save(&self, state: &str, pending: &PendingAuthorization) -> Result<(), AppError>;
    /// Takes the authorization `state` stands for: `None` when it is unknown,
    /// already used or expired at `now`. Taking it uses it up, whatever follows.
    async fn take(&self, state: &str, now: DateTime<Utc>) -> Result<Option<PendingAuthorization>, AppError>;
}

/// The start of a sign-in: where to send the browser, and what to keep for the callback.
#[derive(Clone)]
pub struct AuthorizationStart {
    pub url: String,
    pub state: String,
    pub pkce_verifier: String,
}

/// Tokens as the provider issued them.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The address the provider serves this grant's API at, when it names one
    /// in the token response (Salesforce's `instance_url`, Pipedrive's `api_domain`).
    pub api_base: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_at", &self.expires_at)
            .field("api_base", &self.api_base)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Whether the access token should be refreshed before use at `now`.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.expires_at
            .is_some_and(|expires| expires - Duration::seconds(REFRESH_AHEAD_SECONDS) <= now)
    }

    /// These tokens after a refresh answered `refreshed`: a provider that does
    /// not rotate refresh tokens (Google, Salesforce) keeps the one we had, and
    /// one that does not name its API address again keeps the one it named.
    pub fn refreshed_by(&self, refreshed: Tokens) -> Tokens {
        Tokens {
            refresh_token: refreshed.refresh_token.or_else(|| self.refresh_token.clone()),
            api_base: refreshed.api_base.or_else(|| self.api_base.clone()),
            ..refreshed
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The grant (code or refresh token) is no good: the user must sign in again.
    #[error("the provider refused the grant ({0})")]
    InvalidGrant(String),
    /// The provider refused for another reason (its OAuth error code).
    #[error("the provider refused the token request ({0})")]
    Rejected(String),
    #[error("the provider's token endpoint is unavailable: {0}")]
    Unavailable(#[source] Cause),
}

/// One provider's authorization-code flow with PKCE.
#[async_trait]
pub trait OAuthClient: Send + Sync {
    /// A fresh random `state` and PKCE verifier, and the authorization URL carrying them.
    fn start(&self) -> AuthorizationStart;
    async fn exchange(&self, code: &str, pkce_verifier: &str, now: DateTime<Utc>) -> Result<Tokens, OAuthError>;
    async fn refresh(&self, refresh_token: &str, now: DateTime<Utc>) -> Result<Tokens, OAuthError>;
}

/// What a refresh under the vault's lock does with the tokens it finds.
pub type Refresher<'a> = Box<dyn FnOnce(Tokens) -> BoxFuture<'a, Result<Tokens, OAuthError>> + Send + 'a>;

/// What became of a refresh under the vault's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// Fresh tokens: refreshed now, or found fresh (another process refreshed them).
    Tokens(Tokens),
    /// The provider refused or failed; the stored tokens are unchanged.
    Failed(OAuthError),
    /// No tokens are stored (the integration was disconnected).
    Gone,
}

/// Integrations' tokens, encrypted at rest, outside the event log so that
/// disconnecting forgets them for good.
#[async_trait]
pub trait TokenVault: Send + Sync {
    async fn put(&self, organization_id: Uuid, owner: &str, tokens: &Tokens) -> Result<(), AppError>;
    async fn get(&self, organization_id: Uuid, owner: &str) -> Result<Option<Tokens>, AppError>;
    /// Refreshes the tokens of `owner` under a lock held across processes:
    /// while one refresh runs, others wait and then see its result. `refresh`
    /// runs only if the tokens found are still `stale` (another process may
    /// have refreshed them meanwhile); what it returns is stored atomically,
    /// so a rotated refresh token is never lost. Returns the tokens after.
    async fn refresh(
        &self,
        organization_id: Uuid,
        owner: &str,
        stale: &(dyn for<'t> Fn(&'t Tokens) -> bool + Sync),
        refresh: Refresher<'_>,
    ) -> Result<Refreshed, AppError>;
    async fn forget(&self, organization_id: Uuid, owner: &str) -> Result<(), AppError>;
}

/// What a provider's redirect back to us carried.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// Starts a sign-in for `purpose`: keeps what the callback needs under a
/// fresh `state` for ten minutes; returns the provider's authorization URL.
pub async fn begin_sign_in(
    states: &dyn AuthorizationStates,
    client: &dyn OAuthClient,
    caller: &crate::auth::Session,
    purpose: String,
    integration_id: Uuid,
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<String, AppError> {
    let start = client.start();
    let pending = PendingAuthorization {
        organization_id: caller.organization_id,
        user_id: caller.user_id,
        purpose,
        integration_id,
        pkce_verifier: start.pkce_verifier,
        details,
        expires_at: now + Duration::minutes(STATE_LIFETIME_MINUTES),
    };
    states.save(&start.state, &pending).await?;
    Ok(start.url)
}

/// How a sign-in ended at the provider.
pub enum SignIn {
    Granted(PendingAuthorization, Tokens),
    /// Refused by the user or the provider: an OAuth error code of ours to show and record.
    Refused(PendingAuthorization, String),
}

/// Takes the callback's `state` (once; a signed-in caller must be the user
/// who started it) and, when the provider sent a code, exchanges it with the
/// client `client_for` finds for the sign-in's purpose.
pub async fn finish_sign_in<'a>(
    states: &dyn AuthorizationStates,
    caller: Option<&crate::auth::Session>,
    callback: Callback,
    now: DateTime<Utc>,
    client_for: impl Fn(&str) -> Option<&'a dyn OAuthClient>,
) -> Result<SignIn, AppError> {
    let state = callback
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(invalid_state)?;
    let pending = states.take(state, now).await?.ok_or_else(invalid_state)?;
    let foreign = caller.is_some_and(|c| c.user_id != pending.user_id || c.organization_id != pending.organization_id);
    if foreign {
        return Err(invalid_state());
    }
    let client = client_for(&pending.purpose).ok_or_else(invalid_state)?;
    if let Some(error) = callback.error.filter(|e| !e.is_empty()) {
        let code = oauth_error_code(&error);
        tracing::warn!(purpose = %pending.purpose, error = %code, "sign-in refused at the provider");
        return Ok(SignIn::Refused(pending, code));
    }
    let code = callback
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| AppError::validation("code", "the provider's redirect carried no code"))?;
    match client.exchange(&code, &pending.pkce_verifier, now).await {
        Ok(tokens) => Ok(SignIn::Granted(pending, tokens)),
        Err(error) => {
            tracing::warn!(purpose = %pending.purpose, error = %crate::error::report(&error), "code exchange failed");
            let code = match &error {
                OAuthError::InvalidGrant(code) | OAuthError::Rejected(code) => oauth_error_code(code),
                OAuthError::Unavailable(_) => "provider_unavailable".to_owned(),
            };
            Ok(SignIn::Refused(pending, code))
        }
    }
}

/// A provider's OAuth error code, reduced to a safe token (never free text from the provider).
pub fn oauth_error_code(raw: &str) -> String {
    let code: String = raw
        .chars()
        .take(64)
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if code.is_empty() {
        "provider_error".into()
    } else {
        code
    }
}

/// Why no access token could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFailure {
    /// No tokens are kept (disconnected).
    Gone,
    /// The provider refused the refresh: the user must sign in again.
    NeedsReauth(String),
    /// The token endpoint did not answer.
    Unavailable(Cause),
}

/// A usable access token of `owner`: the stored one while fresh, else (or
/// when `force`d, after the provider refused it) refreshed through `client`
/// under the vault's lock, so one process refreshes and the others use its result.
pub async fn access_token(
    vault: &dyn TokenVault,
    client: &dyn OAuthClient,
    organization_id: Uuid,
    owner: &str,
    now: DateTime<Utc>,
    force: bool,
) -> Result<Result<String, TokenFailure>, AppError> {
    let fresh = fresh_tokens(vault, client, organization_id, owner, now, force).await?;
    Ok(fresh.map(|tokens| tokens.access_token))
}

/// Like [`access_token`], with everything else the grant holds (its API address).
pub async fn fresh_tokens(
    vault: &dyn TokenVault,
    client: &dyn OAuthClient,
    organization_id: Uuid,
    owner: &str,
    now: DateTime<Utc>,
    force: bool,
) -> Result<Result<Tokens, TokenFailure>, AppError> {
    let Some(tokens) = vault.get(organization_id, owner).await? else {
        return Ok(Err(TokenFailure::Gone));
    };
    if !force && !tokens.is_stale(now) {
        return Ok(Ok(tokens));
    }
    let seen = tokens.access_token;
    let stale = move |current: &Tokens| current.access_token == seen || current.is_stale(now);
    let refresh: Refresher<'_> = Box::new(move |current: Tokens| {
        Box::pin(async move {
            let refresh_token = current
                .refresh_token
                .clone()
                .ok_or_else(|| OAuthError::InvalidGrant("no refresh token".into()))?;
            client
                .refresh(&refresh_token, now)
                .await
                .map(|fresh| current.refreshed_by(fresh))
        })
    });
    Ok(match vault.refresh(organization_id, owner, &stale, refresh).await? {
        Refreshed::Tokens(tokens) => Ok(tokens),
        Refreshed::Gone => Err(TokenFailure::Gone),
        Refreshed::Failed(OAuthError::InvalidGrant(reason) | OAuthError::Rejected(reason)) => {
            Err(TokenFailure::NeedsReauth(reason))
        }
        Refreshed::Failed(OAuthError::Unavailable(reason)) => Err(TokenFailure::Unavailable(reason)),
    })
}

/// 400 `invalid_state`: a state that is unknown, used, expired or someone else's.
pub fn invalid_state() -> AppError {
    AppError::new(
        ErrorKind::Validation,
        "invalid_state",
        "this sign-in link is unknown, expired or already used; start connecting again",
    )
    .with_details(serde_json::json!({ "field": "state" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_go_stale_ahead_of_expiry_and_keep_an_unrotated_refresh_token() {
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let tokens = Tokens {
            access_token: "a1".into(),
            api_base: None,
            refresh_token: Some("r1".into()),
            expires_at: Some(now + Duration::seconds(REFRESH_AHEAD_SECONDS + 1)),
        };
        assert!(!tokens.is_stale(now));
        assert!(tokens.is_stale(now + Duration::seconds(1)));
        let google = tokens.refreshed_by(Tokens {
            access_token: "a2".into(),
            api_base: None,
            refresh_token: None,
            expires_at: None,
        });
        assert_eq!(google.refresh_token.as_deref(), Some("r1"));
        let microsoft = tokens.refreshed_by(Tokens {
            access_token: "a2".into(),
            api_base: None,
            refresh_token: Some("r2".into()),
            expires_at: None,
        });
        assert_eq!(microsoft.refresh_token.as_deref(), Some("r2"));
        assert!(!format!("{microsoft:?}").contains("a2"));
    }
}
