//! OAuth 2.0 sign-ins with providers (calendars, CRMs): the pending
//! authorization a `state` stands for, the authorization-code client port,
//! the vault that keeps each integration's tokens encrypted, refreshed by
//! one process at a time, and the one sign-in flow the features share.

use crate::aggregates::{execute_command, load_in, metadata, session_metadata, stream_of};
use crate::auth::Session;
use crate::clock::Clock;
use crate::error::{AppError, ErrorKind};
use crate::event_store::EventStore;
use crate::permissions::{authorize, Action};
use crate::providers::Cause;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use domain::connections;
use domain::Aggregate;
use futures::future::BoxFuture;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
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

impl PendingAuthorization {
    /// This sign-in with `provider`, as the integration's stream records it.
    pub fn sign_in<P>(&self, provider: P) -> connections::SignIn<P> {
        connections::SignIn {
            organization_id: self.organization_id,
            connected_by: self.user_id,
            provider,
        }
    }
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

/// A refresh under the vault's lock: `run` runs only if the tokens found are still `stale`.
pub struct Refresh<'a> {
    pub stale: &'a (dyn for<'t> Fn(&'t Tokens) -> bool + Sync),
    pub run: Refresher<'a>,
}

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
    async fn refresh(&self, organization_id: Uuid, owner: &str, refresh: Refresh<'_>) -> Result<Refreshed, AppError>;
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
    caller: &Session,
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
    caller: Option<&Session>,
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

/// A usable grant of `owner`: the stored tokens while fresh, else (or when
/// `force`d, after the provider refused them) refreshed through `client` under
/// the vault's lock, so one process refreshes and the others use its result.
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
    let run: Refresher<'_> = Box::new(move |current: Tokens| {
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
    Ok(
        match vault
            .refresh(organization_id, owner, Refresh { stale: &stale, run })
            .await?
        {
            Refreshed::Tokens(tokens) => Ok(tokens),
            Refreshed::Gone => Err(TokenFailure::Gone),
            Refreshed::Failed(OAuthError::InvalidGrant(reason) | OAuthError::Rejected(reason)) => {
                Err(TokenFailure::NeedsReauth(reason))
            }
            Refreshed::Failed(OAuthError::Unavailable(reason)) => Err(TokenFailure::Unavailable(reason)),
        },
    )
}

/// 400 `provider_not_configured`: `what` (a provider, named for the user) has no configuration here.
pub fn provider_not_configured(what: impl std::fmt::Display) -> AppError {
    AppError::new(
        ErrorKind::Validation,
        "provider_not_configured",
        format!("{what} is not configured on this server"),
    )
    .with_details(serde_json::json!({ "field": "provider" }))
}

// ---------------------------------------------------------------------------
// The sign-in flow of every feature whose integrations are connected by OAuth.

/// An integration connected by an OAuth sign-in (a calendar, a CRM): what
/// the shared [`SignInFlow`] records on the integration's stream.
pub trait OAuthIntegration: Aggregate + 'static {
    /// The feature's provider enum.
    type Provider: Copy + PartialEq + std::fmt::Display + Send + Sync + 'static;
    /// The feature: first word of its sign-ins' purposes (`calendar:google`),
    /// and the source of what the system records for it.
    const FEATURE: &'static str;
    /// The providers connected by signing in.
    const SIGN_IN_PROVIDERS: &'static [Self::Provider];
    /// Whether the integration's stream has started (a sign-in was recorded).
    fn known(&self) -> bool;
    /// The error for an integration that is not there.
    fn not_found() -> Self::Error;
    fn record_failed_sign_in(
        pending: &PendingAuthorization,
        provider: Self::Provider,
        reason: String,
        now: DateTime<Utc>,
    ) -> Self::Command;
    fn mark_needs_reauth(reason: String, now: DateTime<Utc>) -> Self::Command;
    fn disconnect(revoked_at_provider: bool, now: DateTime<Utc>) -> Self::Command;
}

/// Implements [`OAuthIntegration`] for an integration aggregate whose
/// commands and error name the sign-in's steps alike (`RecordFailedSignIn`,
/// `MarkNeedsReauth`, `Disconnect`; `NotFound`), as calendars' and CRMs' do:
/// `oauth_integration!(Integration, Command, Error, Provider, "feature", &[providers…])`.
macro_rules! oauth_integration {
    ($integration:ty, $command:ident, $error:ident, $provider:ty, $feature:literal, $providers:expr) => {
        impl $crate::oauth::OAuthIntegration for $integration {
            type Provider = $provider;
            const FEATURE: &'static str = $feature;
            const SIGN_IN_PROVIDERS: &'static [$provider] = $providers;

            fn known(&self) -> bool {
                self.exists()
            }

            fn not_found() -> $error {
                $error::NotFound
            }

            fn record_failed_sign_in(
                pending: &$crate::oauth::PendingAuthorization,
                provider: $provider,
                reason: String,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $command {
                $command::RecordFailedSignIn {
                    sign_in: pending.sign_in(provider),
                    reason,
                    now,
                }
            }

            fn mark_needs_reauth(reason: String, now: chrono::DateTime<chrono::Utc>) -> $command {
                $command::MarkNeedsReauth { reason, now }
            }

            fn disconnect(revoked_at_provider: bool, now: chrono::DateTime<chrono::Utc>) -> $command {
                $command::Disconnect {
                    revoked_at_provider,
                    now,
                }
            }
        }
    };
}
pub(crate) use oauth_integration;

/// A sign-in that came back: whose, with which provider, taken when.
pub struct FinishedSignIn<P> {
    pub pending: PendingAuthorization,
    pub provider: P,
    pub now: DateTime<Utc>,
}

impl<P: Copy> FinishedSignIn<P> {
    /// The sign-in, as the integration's stream records it.
    pub fn sign_in(&self) -> connections::SignIn<P> {
        self.pending.sign_in(self.provider)
    }
}

/// The provider enum of a [`SignInFeature`].
pub type ProviderOf<F> = <<F as SignInFeature>::Integration as OAuthIntegration>::Provider;

/// A feature whose integrations are connected by signing in (calendars,
/// CRMs): what it makes of a sign-in that came back.
#[async_trait]
pub trait SignInFeature: Send + Sync
where
    AppError: From<<Self::Integration as Aggregate>::Error>,
{
    type Integration: OAuthIntegration;
    /// What the user is shown after the provider's redirect.
    type Answer: Send;

    fn sign_ins(&self) -> &SignInFlow<Self::Integration>;
    /// The client of `provider`, when configured.
    fn client(&self, provider: ProviderOf<Self>) -> Option<&dyn OAuthClient>;
    /// Connects the integration with the tokens granted (see [`SignInFlow::connect`]).
    async fn connect(
        &self,
        signed: &FinishedSignIn<ProviderOf<Self>>,
        tokens: Tokens,
    ) -> Result<Self::Answer, AppError>;
    /// The answer to a sign-in refused with the OAuth error `code`.
    fn refused(signed: &FinishedSignIn<ProviderOf<Self>>, code: String) -> Self::Answer;

    /// Completes a sign-in: the provider redirected the browser back with a
    /// code (or an error) and our `state`. A signed-in caller must be the
    /// user who started it; a refusal is recorded and answered.
    #[tracing::instrument(skip_all)]
    async fn complete_connect(&self, caller: Option<&Session>, callback: Callback) -> Result<Self::Answer, AppError> {
        let (signed, granted) = self
            .sign_ins()
            .finish(caller, callback, |provider| self.client(provider))
            .await?;
        match granted {
            Ok(tokens) => self.connect(&signed, tokens).await,
            Err(code) => Ok(Self::refused(&signed, code)),
        }
    }
}

/// One feature's sign-ins and the tokens they leave: starting and finishing
/// a sign-in, recording its failure, tokens kept fresh (a grant refused for
/// good marks the integration as needing a new sign-in), and disconnecting.
pub struct SignInFlow<I> {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub states: Arc<dyn AuthorizationStates>,
    pub vault: Arc<dyn TokenVault>,
    integration: PhantomData<fn() -> I>,
}

impl<I> Clone for SignInFlow<I> {
    fn clone(&self) -> Self {
        self.sharing()
    }
}

impl<I> SignInFlow<I> {
    pub fn new(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        states: Arc<dyn AuthorizationStates>,
        vault: Arc<dyn TokenVault>,
    ) -> Self {
        Self {
            store,
            clock,
            states,
            vault,
            integration: PhantomData,
        }
    }

    /// The flow of another feature, over the same stores.
    pub fn sharing<J>(&self) -> SignInFlow<J> {
        SignInFlow::new(
            self.store.clone(),
            self.clock.clone(),
            self.states.clone(),
            self.vault.clone(),
        )
    }
}

impl<I: OAuthIntegration> SignInFlow<I>
where
    AppError: From<I::Error>,
{
    fn purpose(provider: I::Provider) -> String {
        format!("{}:{provider}", I::FEATURE)
    }

    fn provider_of(purpose: &str) -> Option<I::Provider> {
        I::SIGN_IN_PROVIDERS
            .iter()
            .copied()
            .find(|p| Self::purpose(*p) == purpose)
    }

    /// Starts a sign-in with `provider` for the integration that will be
    /// `integration_id`: the provider's authorization URL.
    pub async fn start(
        &self,
        caller: &Session,
        client: &dyn OAuthClient,
        provider: I::Provider,
        integration_id: Uuid,
        details: serde_json::Value,
    ) -> Result<String, AppError> {
        let purpose = Self::purpose(provider);
        let now = self.clock.now();
        begin_sign_in(
            self.states.as_ref(),
            client,
            caller,
            purpose,
            integration_id,
            details,
            now,
        )
        .await
    }

    /// Finishes a sign-in the provider redirected back (see [`finish_sign_in`])
    /// with the client `client_for` finds for its provider; a refusal is
    /// recorded on the integration's stream. Answers the tokens granted, or
    /// the OAuth error code of the refusal.
    pub async fn finish<'a>(
        &self,
        caller: Option<&Session>,
        callback: Callback,
        client_for: impl Fn(I::Provider) -> Option<&'a dyn OAuthClient>,
    ) -> Result<(FinishedSignIn<I::Provider>, Result<Tokens, String>), AppError> {
        let now = self.clock.now();
        let sign_in = finish_sign_in(self.states.as_ref(), caller, callback, now, |purpose| {
            Self::provider_of(purpose).and_then(&client_for)
        })
        .await?;
        let (pending, granted) = match sign_in {
            SignIn::Granted(pending, tokens) => (pending, Ok(tokens)),
            SignIn::Refused(pending, code) => (pending, Err(code)),
        };
        let provider = Self::provider_of(&pending.purpose).ok_or_else(invalid_state)?;
        if let Err(code) = &granted {
            let command = I::record_failed_sign_in(&pending, provider, code.clone(), now);
            self.record_sign_in(&pending, &command).await?;
        }
        Ok((FinishedSignIn { pending, provider, now }, granted))
    }

    /// Keeps a granted sign-in's tokens as `owner`'s and records `connect`.
    pub async fn connect(
        &self,
        pending: &PendingAuthorization,
        owner: &str,
        tokens: &Tokens,
        connect: &I::Command,
    ) -> Result<(), AppError> {
        self.vault.put(pending.organization_id, owner, tokens).await?;
        self.record_sign_in(pending, connect).await
    }

    /// Records `command` of the sign-in's user on the integration's stream.
    async fn record_sign_in(&self, pending: &PendingAuthorization, command: &I::Command) -> Result<(), AppError> {
        execute_command::<I>(
            self.store.as_ref(),
            pending.organization_id,
            stream_of::<I>(pending.integration_id),
            &metadata(format!("user:{}", pending.user_id), "api"),
            command,
        )
        .await
        .map(|_| ())
    }

    /// The fresh tokens of `owner`, the integration `integration_id`'s (see
    /// [`fresh_tokens`]); a grant the provider refuses for good marks the
    /// integration as needing a new sign-in.
    pub async fn tokens(
        &self,
        client: &dyn OAuthClient,
        organization_id: Uuid,
        integration_id: Uuid,
        owner: &str,
        force: bool,
    ) -> Result<Result<Tokens, TokenFailure>, AppError> {
        let now = self.clock.now();
        let fresh = fresh_tokens(self.vault.as_ref(), client, organization_id, owner, now, force).await?;
        if let Err(TokenFailure::NeedsReauth(reason)) = &fresh {
            self.mark_needs_reauth(organization_id, integration_id, reason).await?;
        }
        Ok(fresh)
    }

    /// Records that the provider no longer accepts the integration's grant.
    pub async fn mark_needs_reauth(
        &self,
        organization_id: Uuid,
        integration_id: Uuid,
        reason: &str,
    ) -> Result<(), AppError> {
        tracing::warn!(feature = I::FEATURE, %integration_id, reason, "integration needs a new sign-in");
        let command = I::mark_needs_reauth(reason.to_owned(), self.clock.now());
        execute_command::<I>(
            self.store.as_ref(),
            organization_id,
            stream_of::<I>(integration_id),
            &metadata(format!("system:{}", I::FEATURE), I::FEATURE),
            &command,
        )
        .await
        .map(|_| ())
    }

    /// Disconnects `integration_id`: `release` lets go of what the feature
    /// holds for it at the provider (revoking the grant, given the tokens of
    /// `owner` when kept) and here, and answers whether the provider revoked
    /// the grant; the tokens are forgotten whatever it answers (forgetting them
    /// is what the user asked), and the disconnection recorded.
    pub async fn disconnect<F, Fut>(
        &self,
        caller: &Session,
        integration_id: Uuid,
        owner: &str,
        release: F,
    ) -> Result<(), AppError>
    where
        F: FnOnce(I, Option<Tokens>) -> Fut,
        Fut: Future<Output = Result<bool, AppError>>,
    {
        authorize(caller, Action::ManageIntegrations)?;
        let organization_id = caller.organization_id;
        let stream = stream_of::<I>(integration_id);
        let loaded = load_in::<I>(self.store.as_ref(), organization_id, stream.clone()).await?;
        if !loaded.state.known() {
            return Err(I::not_found().into());
        }
        let tokens = self.vault.get(organization_id, owner).await?;
        let revoked = release(loaded.state, tokens).await?;
        self.vault.forget(organization_id, owner).await?;
        let command = I::disconnect(revoked, self.clock.now());
        execute_command::<I>(
            self.store.as_ref(),
            organization_id,
            stream,
            &session_metadata(caller),
            &command,
        )
        .await
        .map(|_| ())
    }
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

    fn tokens(access: &str, refresh: Option<&str>, expires_at: Option<DateTime<Utc>>) -> Tokens {
        Tokens {
            access_token: access.into(),
            api_base: None,
            refresh_token: refresh.map(Into::into),
            expires_at,
        }
    }

    #[test]
    fn tokens_go_stale_ahead_of_expiry_and_keep_an_unrotated_refresh_token() {
        let now: DateTime<Utc> = "2026-11-26T12:00:00Z".parse().unwrap();
        let stored = tokens(
            "a1",
            Some("r1"),
            Some(now + Duration::seconds(REFRESH_AHEAD_SECONDS + 1)),
        );
        assert!(!stored.is_stale(now));
        assert!(stored.is_stale(now + Duration::seconds(1)));
        let google = stored.refreshed_by(tokens("a2", None, None));
        assert_eq!(google.refresh_token.as_deref(), Some("r1"));
        let microsoft = stored.refreshed_by(tokens("a2", Some("r2"), None));
        assert_eq!(microsoft.refresh_token.as_deref(), Some("r2"));
        assert!(!format!("{microsoft:?}").contains("a2"));
    }
}
