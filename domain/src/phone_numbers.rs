//! Phone numbers agents answer and call from, and the provider credentials
//! they are imported with.

use crate::aggregate::Aggregate;
use crate::domain_events;
use crate::phone::PhoneNumber;
use crate::sync::{FailedPush, VapiSync};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NumberError {
    #[error("{field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    Exists(&'static str),
    #[error("the credential is for {actual}, not {expected}")]
    WrongCredential {
        expected: CredentialProvider,
        actual: CredentialProvider,
    },
    /// Another provisioning attempt was recorded first: its worker owns it.
    #[error("another attempt is provisioning this number at Vapi")]
    ProvisioningInProgress,
}

/// Where a number comes from, with what Vapi needs to import it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "kebab-case")]
pub enum NumberSource {
    /// A free US number Vapi provisions, near this area code.
    #[serde(rename_all = "camelCase")]
    Vapi { area_code: String },
    #[serde(rename_all = "camelCase")]
    Twilio { number: PhoneNumber, credential_id: Uuid },
    #[serde(rename_all = "camelCase")]
    Vonage { number: PhoneNumber, credential_id: Uuid },
    #[serde(rename_all = "camelCase")]
    Telnyx { number: PhoneNumber, credential_id: Uuid },
    #[serde(rename_all = "camelCase")]
    ByoSip { number: PhoneNumber, credential_id: Uuid },
}

impl NumberSource {
    pub fn provider(&self) -> NumberProvider {
        match self {
            NumberSource::Vapi { .. } => NumberProvider::Vapi,
            NumberSource::Twilio { .. } => NumberProvider::Twilio,
            NumberSource::Vonage { .. } => NumberProvider::Vonage,
            NumberSource::Telnyx { .. } => NumberProvider::Telnyx,
            NumberSource::ByoSip { .. } => NumberProvider::ByoSip,
        }
    }

    pub fn credential_id(&self) -> Option<Uuid> {
        match self {
            NumberSource::Vapi { .. } => None,
            NumberSource::Twilio { credential_id, .. }
            | NumberSource::Vonage { credential_id, .. }
            | NumberSource::Telnyx { credential_id, .. }
            | NumberSource::ByoSip { credential_id, .. } => Some(*credential_id),
        }
    }

    pub fn number(&self) -> Option<&PhoneNumber> {
        match self {
            NumberSource::Vapi { .. } => None,
            NumberSource::Twilio { number, .. }
            | NumberSource::Vonage { number, .. }
            | NumberSource::Telnyx { number, .. }
            | NumberSource::ByoSip { number, .. } => Some(number),
        }
    }

    /// The credential provider a source needs.
    pub fn credential_provider(&self) -> Option<CredentialProvider> {
        match self {
            NumberSource::Vapi { .. } => None,
            NumberSource::Twilio { .. } => Some(CredentialProvider::Twilio),
            NumberSource::Vonage { .. } => Some(CredentialProvider::Vonage),
            NumberSource::Telnyx { .. } => Some(CredentialProvider::Telnyx),
            NumberSource::ByoSip { .. } => Some(CredentialProvider::ByoSipTrunk),
        }
    }

    pub fn validate(&self) -> Result<(), NumberError> {
        if let NumberSource::Vapi { area_code } = self {
            if area_code.len() != 3
                || !area_code.chars().all(|c| c.is_ascii_digit())
                || area_code.starts_with(['0', '1'])
            {
                return Err(NumberError::Invalid {
                    field: "areaCode",
                    reason: "must be a 3-digit US area code".into(),
                });
            }
        }
        Ok(())
    }
}

crate::open_enum! {
    /// A number's line status: Vapi's, or ours when Vapi tells none.
    pub enum PhoneNumberStatus {
        Active = "active",
        Activating = "activating",
        Blocked = "blocked",
        /// Ours: Vapi answered without a status.
        Unknown = "unknown",
        /// Ours: Vapi no longer has the number.
        Missing = "missing",
    }
}

crate::open_enum! {
    /// Where a number comes from ([`NumberSource`]'s tag).
    pub enum NumberProvider {
        Vapi = "vapi",
        Twilio = "twilio",
        Vonage = "vonage",
        Telnyx = "telnyx",
        ByoSip = "byo-sip",
    }
}

crate::open_enum! {
    /// Whose credentials a credential holds.
    pub enum CredentialProvider {
        Twilio = "twilio",
        Vonage = "vonage",
        Telnyx = "telnyx",
        ByoSipTrunk = "byo-sip-trunk",
    }
}

domain_events! {
    pub enum PhoneNumberEvent for PhoneNumberState in "phone-number" {
        /// A phone number was provisioned (Vapi, by area code) or imported (twilio, vonage, telnyx, byo-sip,
        /// with our credential id). Payload: organizationId, name, source {provider, areaCode | number +
        /// credentialId}, agentId, at.
        #[version(1)]
        PhoneNumberAdded {
            organization_id: Uuid,
            name: Option<String>,
            source: NumberSource,
            agent_id: Option<Uuid>,
            at: DateTime<Utc>,
        },
        /// The number now rings the given agent (null: unassigned). Payload: agentId, at.
        #[version(1)]
        PhoneNumberAssigned { agent_id: Option<Uuid>, at: DateTime<Utc> },
        /// The number was removed; it is to be released at Vapi. Payload: at.
        #[version(1)]
        PhoneNumberRemoved { at: DateTime<Utc> },
        /// Vapi holds the number as of `revision`. Payload: vapiPhoneNumberId (null once released), number
        /// (E.164, as Vapi assigned it), revision, at.
        #[version(1)]
        PhoneNumberSyncedToVapi {
            vapi_phone_number_id: Option<String>,
            number: Option<PhoneNumber>,
            revision: u32,
            at: DateTime<Utc>,
        },
        /// Pushing `revision` to Vapi failed. Payload: revision, reason, attempt, retryAt (null: no more
        /// retries), at.
        #[version(1)]
        PhoneNumberSyncFailed {
            #[serde(flatten)]
            failed: FailedPush,
            at: DateTime<Utc>,
        },
        /// Vapi reports a new status for the number (monitoring). Payload: status, at.
        #[version(1)]
        PhoneNumberStatusChanged { status: PhoneNumberStatus, at: DateTime<Utc> },
        /// The sync reactor is about to buy or import the number at Vapi (the intent, recorded before the
        /// request): a retry or another worker finding it looks the number up at Vapi (by the name `vx-<our
        /// id>` or the E.164 number) instead of buying a second one. Payload: attempt, at.
        #[version(1)]
        PhoneNumberProvisioningStarted { attempt: Uuid, at: DateTime<Utc> },
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PhoneNumberCommand {
    Add {
        organization_id: Uuid,
        name: Option<String>,
        source: NumberSource,
        agent_id: Option<Uuid>,
        now: DateTime<Utc>,
    },
    Assign {
        agent_id: Option<Uuid>,
        now: DateTime<Utc>,
    },
    Remove {
        now: DateTime<Utc>,
    },
    /// Claims the number's provisioning (buying or importing it at Vapi) before
    /// asking; `previous` is the attempt the caller found and checked created nothing.
    StartProvisioning {
        attempt: Uuid,
        previous: Option<Uuid>,
        now: DateTime<Utc>,
    },
    RecordSynced {
        vapi_phone_number_id: Option<String>,
        number: Option<PhoneNumber>,
        revision: u32,
        now: DateTime<Utc>,
    },
    RecordSyncFailed {
        failed: FailedPush,
        now: DateTime<Utc>,
    },
    RecordStatus {
        status: PhoneNumberStatus,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhoneNumberState {
    pub source: Option<NumberSource>,
    pub removed: bool,
    pub agent_id: Option<Uuid>,
    /// The number at Vapi (its id there is `sync.vapi_id`; creating it is
    /// provisioning: buying or importing it).
    pub sync: VapiSync,
    pub number: Option<PhoneNumber>,
    pub status: Option<PhoneNumberStatus>,
}

impl PhoneNumberState {
    pub fn exists(&self) -> bool {
        self.source.is_some() && !self.removed
    }

    pub fn needs_sync(&self) -> bool {
        self.sync.needs_sync()
    }
}

impl Aggregate for PhoneNumberState {
    type Command = PhoneNumberCommand;
    type Error = NumberError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        use PhoneNumberCommand as C;
        if !matches!(
            command,
            C::Add { .. } | C::RecordSynced { .. } | C::RecordSyncFailed { .. }
        ) && !state.exists()
        {
            return Err(NumberError::NotFound("phone number"));
        }
        Ok(match command {
            C::Add {
                organization_id,
                name,
                source,
                agent_id,
                now,
            } => {
                if state.source.is_some() {
                    return Err(NumberError::Exists("phone number"));
                }
                source.validate()?;
                vec![PhoneNumberEvent::PhoneNumberAdded {
                    organization_id: *organization_id,
                    name: name.clone(),
                    source: source.clone(),
                    agent_id: *agent_id,
                    at: *now,
                }]
            }
            C::Assign { agent_id, .. } if *agent_id == state.agent_id => vec![],
            C::Assign { agent_id, now } => vec![PhoneNumberEvent::PhoneNumberAssigned {
                agent_id: *agent_id,
                at: *now,
            }],
            C::Remove { now } => vec![PhoneNumberEvent::PhoneNumberRemoved { at: *now }],
            C::RecordSynced {
                vapi_phone_number_id,
                revision,
                ..
            } if !state.sync.answer_is_news(*revision, vapi_phone_number_id.as_ref()) => vec![],
            C::RecordSyncFailed { failed, .. } if !state.sync.failure_is_news(failed) => vec![],
            C::RecordSynced {
                vapi_phone_number_id,
                number,
                revision,
                now,
            } => vec![PhoneNumberEvent::PhoneNumberSyncedToVapi {
                vapi_phone_number_id: vapi_phone_number_id.clone(),
                number: number.clone(),
                revision: *revision,
                at: *now,
            }],
            C::RecordSyncFailed { failed, now } => vec![PhoneNumberEvent::PhoneNumberSyncFailed {
                failed: failed.clone(),
                at: *now,
            }],
            C::StartProvisioning { attempt, previous, now } => {
                if !state.sync.may_start_creation(*previous) {
                    return Err(NumberError::ProvisioningInProgress);
                }
                vec![PhoneNumberEvent::PhoneNumberProvisioningStarted {
                    attempt: *attempt,
                    at: *now,
                }]
            }
            C::RecordStatus { status, .. } if state.status.as_ref() == Some(status) => vec![],
            C::RecordStatus { status, now } => vec![PhoneNumberEvent::PhoneNumberStatusChanged {
                status: status.clone(),
                at: *now,
            }],
        })
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        match event {
            PhoneNumberEvent::PhoneNumberAdded { source, agent_id, .. } => {
                self.number = source.number().cloned();
                self.source = Some(source.clone());
                self.agent_id = *agent_id;
                self.sync.changed();
            }
            PhoneNumberEvent::PhoneNumberAssigned { agent_id, .. } => {
                self.agent_id = *agent_id;
                self.sync.changed();
            }
            PhoneNumberEvent::PhoneNumberRemoved { .. } => {
                self.removed = true;
                self.sync.changed();
            }
            PhoneNumberEvent::PhoneNumberSyncedToVapi {
                vapi_phone_number_id,
                number,
                revision,
                ..
            } => {
                self.sync.synced(*revision, vapi_phone_number_id);
                if number.is_some() {
                    self.number = number.clone();
                }
            }
            PhoneNumberEvent::PhoneNumberSyncFailed { failed, .. } => self.sync.push_failed(failed),
            PhoneNumberEvent::PhoneNumberStatusChanged { status, .. } => self.status = Some(status.clone()),
            PhoneNumberEvent::PhoneNumberProvisioningStarted { attempt, at } => {
                self.sync.creation_started(*attempt, *at)
            }
        }
        self
    }
}

// ---------------------------------------------------------------- credentials

/// Longest credential name.
pub const CREDENTIAL_NAME_CHARS: usize = 100;

domain_events! {
    pub enum CredentialEvent for Credential in "credential" {
        /// Provider credentials were stored, encrypted (XChaCha20-Poly1305, bound to the credential id).
        /// Payload: organizationId, provider (twilio, vonage, telnyx, byo-sip-trunk), name, sealed, hint
        /// (masked), at.
        #[version(1)]
        CredentialAdded {
            organization_id: Uuid,
            provider: CredentialProvider,
            name: String,
            sealed: String,
            hint: String,
            at: DateTime<Utc>,
        },
        /// Vapi holds the credential under this id. Payload: vapiCredentialId, at.
        #[version(1)]
        CredentialRegisteredWithVapi {
            vapi_credential_id: String,
            at: DateTime<Utc>,
        },
        /// The credential was deleted. Payload: at.
        #[version(1)]
        CredentialRemoved { at: DateTime<Utc> },
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CredentialCommand {
    Add {
        organization_id: Uuid,
        provider: CredentialProvider,
        name: String,
        sealed: String,
        hint: String,
        now: DateTime<Utc>,
    },
    RecordRegistered {
        vapi_credential_id: String,
        now: DateTime<Utc>,
    },
    Remove {
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credential {
    pub provider: Option<CredentialProvider>,
    pub sealed: Option<String>,
    pub removed: bool,
    pub vapi_credential_id: Option<String>,
}

impl Credential {
    pub fn exists(&self) -> bool {
        self.provider.is_some() && !self.removed
    }
}

impl Aggregate for Credential {
    type Command = CredentialCommand;
    type Error = NumberError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        match command {
            CredentialCommand::Add {
                organization_id,
                provider,
                name,
                sealed,
                hint,
                now,
            } => {
                if state.provider.is_some() {
                    return Err(NumberError::Exists("credential"));
                }
                if let CredentialProvider::Other(_) = provider {
                    return Err(NumberError::Invalid {
                        field: "provider",
                        reason: format!("must be one of {}", CredentialProvider::listed()),
                    });
                }
                if name.trim().is_empty() || name.chars().count() > CREDENTIAL_NAME_CHARS {
                    return Err(NumberError::Invalid {
                        field: "name",
                        reason: format!("must be 1 to {CREDENTIAL_NAME_CHARS} characters"),
                    });
                }
                Ok(vec![CredentialEvent::CredentialAdded {
                    organization_id: *organization_id,
                    provider: provider.clone(),
                    name: name.trim().to_owned(),
                    sealed: sealed.clone(),
                    hint: hint.clone(),
                    at: *now,
                }])
            }
            _ if !state.exists() => Err(NumberError::NotFound("credential")),
            CredentialCommand::RecordRegistered {
                vapi_credential_id,
                now,
            } => Ok(vec![CredentialEvent::CredentialRegisteredWithVapi {
                vapi_credential_id: vapi_credential_id.clone(),
                at: *now,
            }]),
            CredentialCommand::Remove { now } => Ok(vec![CredentialEvent::CredentialRemoved { at: *now }]),
        }
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        match event {
            CredentialEvent::CredentialAdded { provider, sealed, .. } => {
                self.provider = Some(provider.clone());
                self.sealed = Some(sealed.clone());
            }
            CredentialEvent::CredentialRegisteredWithVapi { vapi_credential_id, .. } => {
                self.vapi_credential_id = Some(vapi_credential_id.clone())
            }
            CredentialEvent::CredentialRemoved { .. } => self.removed = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::given_when_then::{given, given_state};

    fn now() -> DateTime<Utc> {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn area_codes_are_checked() {
        for bad in ["12", "1234", "abc", "012", "115"] {
            assert!(
                NumberSource::Vapi { area_code: bad.into() }.validate().is_err(),
                "{bad}"
            );
        }
        assert!(NumberSource::Vapi {
            area_code: "415".into()
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn provisioning_is_claimed_once_and_never_after_the_number_exists() {
        let added = PhoneNumberEvent::PhoneNumberAdded {
            organization_id: Uuid::nil(),
            name: None,
            source: NumberSource::Vapi {
                area_code: "415".into(),
            },
            agent_id: None,
            at: now(),
        };
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        let start = |previous| PhoneNumberCommand::StartProvisioning {
            attempt: second,
            previous,
            now: now(),
        };
        let claimed = PhoneNumberEvent::PhoneNumberProvisioningStarted {
            attempt: first,
            at: now(),
        };
        given::<PhoneNumberState>([added.clone(), claimed.clone()])
            .when(start(None))
            .then_error(NumberError::ProvisioningInProgress);
        given::<PhoneNumberState>([added.clone(), claimed.clone()])
            .when(start(Some(first)))
            .then([PhoneNumberEvent::PhoneNumberProvisioningStarted {
                attempt: second,
                at: now(),
            }]);
        let bought = PhoneNumberEvent::PhoneNumberSyncedToVapi {
            vapi_phone_number_id: Some("pn_1".into()),
            number: None,
            revision: 1,
            at: now(),
        };
        given::<PhoneNumberState>([added, claimed, bought])
            .when(start(Some(first)))
            .then_error(NumberError::ProvisioningInProgress);
    }

    #[test]
    fn assignment_changes_are_synced_and_repeats_ignored() {
        let agent = Uuid::new_v4();
        let add = PhoneNumberCommand::Add {
            organization_id: Uuid::new_v4(),
            name: None,
            source: NumberSource::Vapi {
                area_code: "415".into(),
            },
            agent_id: None,
            now: now(),
        };
        let state = given::<PhoneNumberState>([]).when(add).state_after();
        let assign = || PhoneNumberCommand::Assign {
            agent_id: Some(agent),
            now: now(),
        };
        let state = given_state(state).when(assign()).state_after();
        assert_eq!(state.sync.revision, 2);
        let state = given_state(state).when(assign()).then_nothing();
        let status = PhoneNumberCommand::RecordStatus {
            status: PhoneNumberStatus::Active,
            now: now(),
        };
        let state = given_state(state).when(status.clone()).state_after();
        given_state(state).when(status).then_nothing();
    }

    #[test]
    fn credentials_validate_their_provider() {
        let add = |provider: &str| CredentialCommand::Add {
            organization_id: Uuid::nil(),
            provider: CredentialProvider::parse(provider),
            name: "Main".into(),
            sealed: "x".into(),
            hint: "…1234".into(),
            now: now(),
        };
        given::<Credential>([]).when(add("twilio")).state_after();
        assert!(matches!(
            given::<Credential>([]).when(add("carrier-pigeon")).error(),
            NumberError::Invalid { .. }
        ));
    }

    #[test]
    fn a_credential_is_added_once_named_and_registered_or_removed_only_while_it_exists() {
        let add = |name: &str| CredentialCommand::Add {
            organization_id: Uuid::nil(),
            provider: CredentialProvider::parse("twilio"),
            name: name.into(),
            sealed: "x".into(),
            hint: "…1234".into(),
            now: now(),
        };
        let added = CredentialEvent::CredentialAdded {
            organization_id: Uuid::nil(),
            provider: CredentialProvider::parse("twilio"),
            name: "Main".into(),
            sealed: "x".into(),
            hint: "…1234".into(),
            at: now(),
        };
        given::<Credential>([]).when(add(" Main ")).then([added.clone()]);
        given::<Credential>([added.clone()])
            .when(add("Main"))
            .then_error(NumberError::Exists("credential"));
        assert!(matches!(
            given::<Credential>([]).when(add(" ")).error(),
            NumberError::Invalid { field: "name", .. }
        ));
        let register = || CredentialCommand::RecordRegistered {
            vapi_credential_id: "cred_1".into(),
            now: now(),
        };
        given::<Credential>([])
            .when(register())
            .then_error(NumberError::NotFound("credential"));
        given::<Credential>([added.clone()])
            .when(register())
            .then([CredentialEvent::CredentialRegisteredWithVapi {
                vapi_credential_id: "cred_1".into(),
                at: now(),
            }]);
        let removed = CredentialEvent::CredentialRemoved { at: now() };
        given::<Credential>([added.clone()])
            .when(CredentialCommand::Remove { now: now() })
            .then([removed.clone()]);
        given::<Credential>([added, removed])
            .when(CredentialCommand::Remove { now: now() })
            .then_error(NumberError::NotFound("credential"));
    }
}
