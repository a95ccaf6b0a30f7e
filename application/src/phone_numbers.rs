//! Phone numbers and provider credentials: use cases, sync to Vapi, status monitoring.

use crate::agents::AgentDirectory;
use crate::aggregates::{execute_command, load_any, load_in, metadata, session_metadata, stream_of, Loaded};
use crate::auth::{Page, Session};
use crate::clock::Clock;
use crate::error::{AppError, ErrorKind};
use crate::event_store::EventStore;
use crate::providers::{Cause, ProviderError, RetryPolicy};
use crate::secrets::SecretSealer;
use crate::voice::{NumberDefinition, PlatformCredential, SipGateway, VoiceProvider};
use crate::work::{WorkHandler, WorkItem, WorkOutcome};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::phone::PhoneNumber;
use domain::phone_numbers::{
    Credential, CredentialCommand, CredentialProvider, NumberError, NumberProvider, NumberSource, PhoneNumberCommand,
    PhoneNumberState, PhoneNumberStatus,
};
use domain::sync::FailedPush;
use domain::Aggregate;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// Name of the reactor that mirrors numbers (and the credentials they need) to Vapi.
pub const NUMBER_SYNC: &str = "vapi-number-sync";

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    pub id: Uuid,
    pub provider: CredentialProvider,
    pub name: String,
    /// A masked fragment, never the secret.
    pub hint: String,
    pub registered_with_vapi: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhoneNumberView {
    pub id: Uuid,
    pub provider: NumberProvider,
    pub name: Option<String>,
    pub number: Option<String>,
    pub area_code: Option<String>,
    pub agent_id: Option<Uuid>,
    pub credential_id: Option<Uuid>,
    pub status: Option<PhoneNumberStatus>,
    pub sync_status: domain::sync::SyncStatus,
    pub vapi_phone_number_id: Option<String>,
    pub last_sync_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The credentials and phone numbers read models.
#[async_trait]
pub trait NumberDirectory: Send + Sync {
    async fn credentials(&self, organization_id: Uuid, page: Page) -> Result<Vec<CredentialView>, AppError>;
    async fn numbers(&self, organization_id: Uuid, page: Page) -> Result<Vec<PhoneNumberView>, AppError>;
    async fn number(&self, organization_id: Uuid, id: Uuid) -> Result<Option<PhoneNumberView>, AppError>;
    /// Numbers live at Vapi, for status monitoring: (organization, number id, Vapi id).
    async fn synced_numbers(&self) -> Result<Vec<(Uuid, Uuid, String)>, AppError>;
}

impl From<NumberError> for AppError {
    fn from(error: NumberError) -> Self {
        number_error(error)
    }
}

pub fn number_error(error: NumberError) -> AppError {
    match error {
        NumberError::Invalid { field, reason } => AppError::validation(field, format!("{field} is invalid: {reason}")),
        NumberError::NotFound(what) => AppError::not_found(what),
        NumberError::Exists(what) => {
            AppError::new(ErrorKind::Conflict, "already_exists", format!("{what} already exists"))
        }
        e @ NumberError::WrongCredential { .. } => AppError::validation("credentialId", e.to_string()),
        e @ NumberError::ProvisioningInProgress => {
            AppError::new(ErrorKind::Conflict, "number_provisioning_in_progress", e.to_string())
        }
    }
}

fn credential_context(organization_id: Uuid, credential_id: Uuid) -> String {
    format!("credential:{organization_id}:{credential_id}")
}

/// The longest key, token or password a credential may hold.
pub const SECRET_FIELD_LIMIT: usize = 1_000;

/// Checks a provider secret's shape and picks the fragment shown as its hint.
fn secret_hint(provider: &CredentialProvider, secret: &Value) -> Result<String, AppError> {
    let fields: &[&str] = match provider {
        CredentialProvider::Twilio => &["accountSid", "authToken"],
        CredentialProvider::Vonage => &["apiKey", "apiSecret"],
        CredentialProvider::Telnyx => &["apiKey"],
        CredentialProvider::ByoSipTrunk => &["gateways", "username", "password"],
        CredentialProvider::Other(_) => &[],
    };
    for (field, value) in secret.as_object().into_iter().flatten() {
        if !fields.is_empty() && !fields.contains(&field.as_str()) {
            return Err(AppError::validation(
                "secret",
                format!("{field:?} is not a field of a {provider} credential"),
            ));
        }
        if field != "gateways" && value.as_str().is_none_or(|v| v.chars().count() > SECRET_FIELD_LIMIT) {
            return Err(AppError::validation(
                "secret",
                format!("{field} must be text of at most {SECRET_FIELD_LIMIT} characters"),
            ));
        }
    }
    let required = |field: &'static str| -> Result<String, AppError> {
        secret[field]
            .as_str()
            .filter(|v| !v.trim().is_empty())
            .map(str::to_owned)
            .ok_or_else(|| AppError::validation(field, format!("{field} is required for {provider}")))
    };
    let masked = |value: String| {
        let tail: String = value
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("••••{tail}")
    };
    match provider {
        CredentialProvider::Twilio => {
            let sid = required("accountSid")?;
            if !(sid.starts_with("AC") && sid.len() == 34) {
                return Err(AppError::validation(
                    "accountSid",
                    "accountSid must be a Twilio account SID (AC + 32 characters)",
                ));
            }
            Ok(masked(required("authToken")?))
        }
        CredentialProvider::Vonage => {
            required("apiKey")?;
            Ok(masked(required("apiSecret")?))
        }
        CredentialProvider::Telnyx => Ok(masked(required("apiKey")?)),
        CredentialProvider::ByoSipTrunk => {
            let gateways = secret["gateways"]
                .as_array()
                .filter(|g| !g.is_empty())
                .ok_or_else(|| AppError::validation("gateways", "gateways must list at least one {ip, port}"))?;
            for gateway in gateways {
                let port_ok = match gateway.get("port") {
                    None => true,
                    Some(port) => port.as_u64().is_some_and(|p| (1..=65_535).contains(&p)),
                };
                let only_known = gateway
                    .as_object()
                    .is_some_and(|fields| fields.keys().all(|k| k == "ip" || k == "port"));
                if !port_ok || !only_known {
                    return Err(AppError::validation(
                        "gateways",
                        "each gateway is {ip, port} with a port from 1 to 65535",
                    ));
                }
                let ip = gateway["ip"].as_str().unwrap_or_default();
                if ip.parse::<std::net::IpAddr>().is_err() && !ip.contains('.') {
                    return Err(AppError::validation(
                        "gateways",
                        "each gateway needs an ip (address or host name)",
                    ));
                }
            }
            Ok(gateways[0]["ip"].as_str().unwrap_or_default().to_owned())
        }
        CredentialProvider::Other(other) => {
            Err(AppError::validation("provider", format!("unknown provider {other:?}")))
        }
    }
}

/// Our stored secret (checked by [`secret_hint`] when stored), as the voice
/// platform registers it; `None` for Twilio's, which go with each number.
fn platform_credential(provider: &CredentialProvider, secret: &Value) -> Option<PlatformCredential> {
    let text = |field: &str| secret[field].as_str().unwrap_or_default().to_owned();
    match provider {
        CredentialProvider::Vonage => Some(PlatformCredential::Vonage {
            api_key: text("apiKey"),
            api_secret: text("apiSecret"),
        }),
        CredentialProvider::Telnyx => Some(PlatformCredential::Telnyx {
            api_key: text("apiKey"),
        }),
        CredentialProvider::ByoSipTrunk => Some(PlatformCredential::ByoSipTrunk {
            gateways: secret["gateways"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|gateway| SipGateway {
                    ip: gateway["ip"].as_str().unwrap_or_default().to_owned(),
                    port: gateway["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
                })
                .collect(),
            outbound_auth: match (secret["username"].as_str(), secret["password"].as_str()) {
                (Some(user), Some(password)) => Some((user.to_owned(), password.to_owned())),
                _ => None,
            },
        }),
        CredentialProvider::Twilio | CredentialProvider::Other(_) => None,
    }
}

pub struct PhoneNumberService {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub sealer: Arc<dyn SecretSealer>,
    pub directory: Arc<dyn NumberDirectory>,
    pub usage: Arc<dyn crate::quotas::UsageCounter>,
    pub quotas: crate::quotas::QuotaPolicy,
}

impl PhoneNumberService {
    async fn execute<A: Aggregate<Error = NumberError>>(
        &self,
        caller: &Session,
        id: Uuid,
        command: A::Command,
    ) -> Result<Loaded<A>, AppError> {
        execute_command::<A>(
            self.store.as_ref(),
            caller.organization_id,
            stream_of::<A>(id),
            &session_metadata(caller),
            &command,
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn add_credential(
        &self,
        caller: &Session,
        provider: &CredentialProvider,
        name: &str,
        secret: &Value,
    ) -> Result<CredentialView, AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManageCredentials)?;
        let hint = secret_hint(provider, secret)?;
        let id = Uuid::now_v7();
        let now = self.clock.now();
        let sealed = self
            .sealer
            .seal(&secret.to_string(), &credential_context(caller.organization_id, id));
        self.execute::<Credential>(
            caller,
            id,
            CredentialCommand::Add {
                organization_id: caller.organization_id,
                provider: provider.clone(),
                name: name.to_owned(),
                sealed,
                hint: hint.clone(),
                now,
            },
        )
        .await?;
        Ok(CredentialView {
            id,
            provider: provider.clone(),
            name: name.trim().to_owned(),
            hint,
            registered_with_vapi: false,
            created_at: now,
        })
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn list_credentials(&self, caller: &Session, page: Page) -> Result<Vec<CredentialView>, AppError> {
        self.directory.credentials(caller.organization_id, page).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, credential_id = %id))]
    pub async fn remove_credential(&self, caller: &Session, id: Uuid) -> Result<(), AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManageCredentials)?;
        let now = self.clock.now();
        self.execute::<Credential>(caller, id, CredentialCommand::Remove { now })
            .await
            .map(|_| ())
    }

    async fn check_agent(&self, caller: &Session, agent_id: Option<Uuid>) -> Result<(), AppError> {
        if let Some(agent_id) = agent_id {
            crate::agents::existing_agent(self.store.as_ref(), caller.organization_id, agent_id)
                .await?
                .ok_or_else(|| AppError::validation("agentId", "agentId is not an agent of this organization"))?;
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn add_number(
        &self,
        caller: &Session,
        name: Option<String>,
        source: NumberSource,
        agent_id: Option<Uuid>,
    ) -> Result<PhoneNumberView, AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManagePhoneNumbers)?;
        if let (Some(credential_id), Some(expected)) = (source.credential_id(), source.credential_provider()) {
            let credential = load_in::<Credential>(
                self.store.as_ref(),
                caller.organization_id,
                stream_of::<Credential>(credential_id),
            )
            .await?;
            match &credential.state.provider {
                Some(actual) if credential.state.exists() && *actual == expected => {}
                Some(actual) if credential.state.exists() => {
                    return Err(number_error(NumberError::WrongCredential {
                        expected,
                        actual: actual.clone(),
                    }))
                }
                _ => {
                    return Err(AppError::validation(
                        "credentialId",
                        "credentialId is not a credential of this organization",
                    ))
                }
            }
        }
        self.check_agent(caller, agent_id).await?;
        // Only numbers Vapi provisions are bought; imports are the customer's own.
        if matches!(source, NumberSource::Vapi { .. }) {
            crate::quotas::spend(
                self.usage.as_ref(),
                &self.quotas,
                caller.organization_id,
                crate::quotas::Costly::NumberPurchase,
                self.clock.now(),
            )
            .await?;
        }
        let id = Uuid::now_v7();
        let now = self.clock.now();
        self.execute::<PhoneNumberState>(
            caller,
            id,
            PhoneNumberCommand::Add {
                organization_id: caller.organization_id,
                name: name.clone(),
                source: source.clone(),
                agent_id,
                now,
            },
        )
        .await?;
        let number = source.number();
        Ok(PhoneNumberView {
            id,
            provider: source.provider(),
            name,
            number: number.map(|n| n.as_str().to_owned()),
            area_code: match &source {
                NumberSource::Vapi { area_code } => Some(area_code.clone()),
                _ => number.and_then(|n| n.area_code()).map(str::to_owned),
            },
            agent_id,
            credential_id: source.credential_id(),
            status: None,
            sync_status: domain::sync::SyncStatus::Pending,
            vapi_phone_number_id: None,
            last_sync_error: None,
            created_at: now,
        })
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, phone_number_id = %id))]
    pub async fn assign(&self, caller: &Session, id: Uuid, agent_id: Option<Uuid>) -> Result<(), AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManagePhoneNumbers)?;
        self.check_agent(caller, agent_id).await?;
        let now = self.clock.now();
        self.execute::<PhoneNumberState>(caller, id, PhoneNumberCommand::Assign { agent_id, now })
            .await
            .map(|_| ())
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, phone_number_id = %id))]
    pub async fn remove(&self, caller: &Session, id: Uuid) -> Result<(), AppError> {
        crate::permissions::authorize(caller, crate::permissions::Action::ManagePhoneNumbers)?;
        let now = self.clock.now();
        self.execute::<PhoneNumberState>(caller, id, PhoneNumberCommand::Remove { now })
            .await
            .map(|_| ())
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id))]
    pub async fn list(&self, caller: &Session, page: Page) -> Result<Vec<PhoneNumberView>, AppError> {
        self.directory.numbers(caller.organization_id, page).await
    }

    #[tracing::instrument(skip_all, fields(organization_id = %caller.organization_id, phone_number_id = %id))]
    pub async fn get(&self, caller: &Session, id: Uuid) -> Result<PhoneNumberView, AppError> {
        self.directory
            .number(caller.organization_id, id)
            .await?
            .ok_or_else(|| AppError::not_found("phone number"))
    }
}

/// Mirrors numbers to Vapi, registering the credentials they need on the way,
/// and keeps each number's status current.
pub struct NumberSync {
    pub store: Arc<dyn EventStore>,
    pub clock: Arc<dyn Clock>,
    pub voice: Arc<dyn VoiceProvider>,
    pub sealer: Arc<dyn SecretSealer>,
    pub agents: Arc<dyn AgentDirectory>,
    pub directory: Arc<dyn NumberDirectory>,
    pub retry: RetryPolicy,
}

enum SyncFailure {
    Provider(ProviderError),
    Ours(AppError),
}

impl From<ProviderError> for SyncFailure {
    fn from(e: ProviderError) -> Self {
        SyncFailure::Provider(e)
    }
}

impl From<AppError> for SyncFailure {
    fn from(e: AppError) -> Self {
        SyncFailure::Ours(e)
    }
}

impl NumberSync {
    async fn record<A: Aggregate<Error = NumberError>>(
        &self,
        organization_id: Uuid,
        id: Uuid,
        command: A::Command,
    ) -> Result<Loaded<A>, AppError> {
        let meta = metadata("system:vapi-sync", format!("reactor:{NUMBER_SYNC}"));
        execute_command::<A>(
            self.store.as_ref(),
            organization_id,
            stream_of::<A>(id),
            &meta,
            &command,
        )
        .await
    }

    /// The Vapi credential id of one of our credentials, registering it first if needed.
    async fn vapi_credential(
        &self,
        organization_id: Uuid,
        credential_id: Uuid,
    ) -> Result<(Option<String>, Option<Value>), SyncFailure> {
        let loaded = load_in::<Credential>(
            self.store.as_ref(),
            organization_id,
            stream_of::<Credential>(credential_id),
        )
        .await?;
        let (Some(provider), Some(sealed)) = (loaded.state.provider.clone(), loaded.state.sealed.clone()) else {
            return Err(AppError::validation("credentialId", "the number's credential no longer exists").into());
        };
        let secret: Value = serde_json::from_str(
            &self
                .sealer
                .open(&sealed, &credential_context(organization_id, credential_id))?,
        )
        .map_err(|e| AppError::internal("reading a credential", e))?;
        if provider == CredentialProvider::Twilio {
            return Ok((None, Some(secret)));
        }
        if let Some(id) = &loaded.state.vapi_credential_id {
            return Ok((Some(id.clone()), None));
        }
        let Some(credential) = platform_credential(&provider, &secret) else {
            return Err(
                AppError::validation("credentialId", format!("{provider} credentials cannot be registered")).into(),
            );
        };
        let id = self.voice.create_credential(&credential).await?;
        let now = self.clock.now();
        self.record::<Credential>(
            organization_id,
            credential_id,
            CredentialCommand::RecordRegistered {
                vapi_credential_id: id.clone(),
                now,
            },
        )
        .await?;
        Ok((Some(id), None))
    }

    async fn assistant_of(&self, organization_id: Uuid, agent_id: Option<Uuid>) -> Result<Option<String>, AppError> {
        match agent_id {
            Some(agent_id) => Ok(self
                .agents
                .get(organization_id, agent_id)
                .await?
                .and_then(|a| a.vapi_assistant_id)),
            None => Ok(None),
        }
    }

    async fn push(
        &self,
        organization_id: Uuid,
        id: Uuid,
        state: &PhoneNumberState,
    ) -> Result<(Option<String>, Option<PhoneNumber>), SyncFailure> {
        let Some(source) = &state.source else {
            return Ok((None, None));
        };
        let known = match (&state.sync.vapi_id, state.sync.creation_attempt) {
            (Some(vapi_id), _) => Some(vapi_id.clone()),
            // An earlier attempt may have bought or imported it before we learnt the id.
            (None, Some((_, since))) => self
                .voice
                .find_phone_number(id, source.number(), since)
                .await?
                .map(|found| found.id),
            (None, None) => None,
        };
        if state.removed {
            if let Some(vapi_id) = &known {
                match self.voice.delete_phone_number(vapi_id).await {
                    Ok(()) | Err(ProviderError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok((None, None));
        }
        let assistant = self.assistant_of(organization_id, state.agent_id).await?;
        if state.agent_id.is_some() && assistant.is_none() {
            // The agent is not at Vapi yet: try again once its own sync is through.
            return Err(ProviderError::Unavailable(Cause::new("the assigned agent is not synced to Vapi yet")).into());
        }
        if let Some(vapi_id) = known {
            self.voice.assign_phone_number(&vapi_id, assistant.as_deref()).await?;
            return Ok((Some(vapi_id), None));
        }
        let (vapi_credential_id, twilio_secret) = match source.credential_id() {
            Some(credential_id) => self.vapi_credential(organization_id, credential_id).await?,
            None => (None, None),
        };
        let twilio = twilio_secret.map(|s| {
            (
                s["accountSid"].as_str().unwrap_or_default().to_owned(),
                s["authToken"].as_str().unwrap_or_default().to_owned(),
            )
        });
        let now = self.clock.now();
        self.record::<PhoneNumberState>(
            organization_id,
            id,
            PhoneNumberCommand::StartProvisioning {
                attempt: Uuid::now_v7(),
                previous: state.sync.creation_attempt.map(|(a, _)| a),
                now,
            },
        )
        .await?;
        let created = self
            .voice
            .create_phone_number(&NumberDefinition {
                organization_id,
                phone_number_id: id,
                source: source.clone(),
                vapi_credential_id,
                twilio,
                vapi_assistant_id: assistant,
            })
            .await?;
        let number = created.number.as_deref().and_then(|n| PhoneNumber::parse(n).ok());
        Ok((Some(created.id), number))
    }

    /// Polls Vapi for every live number's status and records changes.
    #[tracing::instrument(skip_all)]
    pub async fn check_statuses(&self) -> Result<usize, AppError> {
        let mut changed = 0;
        for (organization_id, id, vapi_id) in self.directory.synced_numbers().await? {
            let status = match self.voice.get_phone_number(&vapi_id).await {
                Ok(number) => number.status.unwrap_or(PhoneNumberStatus::Unknown),
                Err(ProviderError::NotFound) => PhoneNumberStatus::Missing,
                Err(error) => {
                    tracing::warn!(%id, error = %crate::error::report(&error), "could not read a number's status at Vapi");
                    continue;
                }
            };
            let loaded =
                load_in::<PhoneNumberState>(self.store.as_ref(), organization_id, stream_of::<PhoneNumberState>(id))
                    .await?;
            if !loaded.state.exists() {
                continue;
            }
            let before = loaded.version;
            let now = self.clock.now();
            let after = self
                .record::<PhoneNumberState>(organization_id, id, PhoneNumberCommand::RecordStatus { status, now })
                .await?;
            changed += (after.version - before) as usize;
        }
        Ok(changed)
    }
}

/// Every live number's line status is read from Vapi every five minutes.
#[async_trait]
impl crate::work::ScheduledJob for NumberSync {
    fn name(&self) -> &'static str {
        "vapi-number-status"
    }

    fn period(&self) -> std::time::Duration {
        std::time::Duration::from_secs(300)
    }

    async fn run(&self) -> Result<usize, AppError> {
        self.check_statuses().await
    }
}

#[async_trait]
impl WorkHandler for NumberSync {
    fn reactor(&self) -> &'static str {
        NUMBER_SYNC
    }

    fn provider(&self) -> &'static str {
        "vapi"
    }

    async fn handle(&self, item: &WorkItem) -> Result<WorkOutcome, AppError> {
        let id = Uuid::parse_str(&item.key).map_err(|e| AppError::internal("reading a work key", e))?;
        let loaded = load_any::<PhoneNumberState>(self.store.as_ref(), stream_of::<PhoneNumberState>(id)).await?;
        let organization_id = loaded.organization_id.unwrap_or(item.organization_id);
        if !loaded.state.needs_sync() {
            return Ok(WorkOutcome::Done);
        }
        let revision = loaded.state.sync.revision;
        let now = self.clock.now();
        let (command, outcome) = match self.push(organization_id, id, &loaded.state).await {
            Ok((vapi_phone_number_id, number)) => (
                PhoneNumberCommand::RecordSynced {
                    vapi_phone_number_id,
                    number,
                    revision,
                    now,
                },
                WorkOutcome::Done,
            ),
            Err(SyncFailure::Ours(error)) if error.kind == ErrorKind::Internal => return Err(error),
            // Another worker is provisioning the number: look again once it has had time to record it.
            Err(SyncFailure::Ours(error)) if error.code == "number_provisioning_in_progress" => {
                return Ok(WorkOutcome::RetryAt {
                    due: now + chrono::Duration::seconds(60),
                    reason: error.message,
                })
            }
            Err(failure) => {
                let attempt = item.attempts + 1;
                let (reason, retry_at) = match failure {
                    SyncFailure::Provider(e) => (e.to_string(), self.retry.next_attempt(attempt, &e, now)),
                    SyncFailure::Ours(e) => (e.message, None),
                };
                tracing::warn!(%id, attempt, %reason, "phone number sync to Vapi failed");
                let outcome = match retry_at {
                    Some(due) => WorkOutcome::RetryAt {
                        due,
                        reason: reason.clone(),
                    },
                    None => WorkOutcome::GiveUp { reason: reason.clone() },
                };
                (
                    PhoneNumberCommand::RecordSyncFailed {
                        failed: FailedPush {
                            revision,
                            reason,
                            attempt,
                            retry_at,
                        },
                        now,
                    },
                    outcome,
                )
            }
        };
        self.record::<PhoneNumberState>(organization_id, id, command).await?;
        Ok(outcome)
    }
}
