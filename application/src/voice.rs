//! The voice platform port (Vapi): assistants mirror our agents.

use crate::providers::ProviderError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::agents::AgentSpec;
use uuid::Uuid;

/// What the platform needs to run one of our agents.
#[derive(Debug, Clone, PartialEq)]
pub struct AssistantDefinition {
    pub organization_id: Uuid,
    pub agent_id: Uuid,
    pub spec: AgentSpec,
    /// Whether the assistant gets the `check_availability` and `book_appointment`
    /// tools: a usable calendar is there for the agent to book into.
    pub calendar_tools: bool,
}

/// A number to create at the platform, with its credentials opened.
#[derive(Clone, PartialEq)]
pub struct NumberDefinition {
    pub organization_id: Uuid,
    pub phone_number_id: Uuid,
    pub source: domain::phone_numbers::NumberSource,
    /// The platform's credential id (vonage, telnyx, byo-sip).
    pub vapi_credential_id: Option<String>,
    /// Twilio's account SID and auth token, imported inline.
    pub twilio: Option<(String, String)>,
    pub vapi_assistant_id: Option<String>,
}

/// The Twilio credentials are never printed.
impl std::fmt::Debug for NumberDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumberDefinition")
            .field("organization_id", &self.organization_id)
            .field("phone_number_id", &self.phone_number_id)
            .field("source", &self.source)
            .field("vapi_credential_id", &self.vapi_credential_id)
            .field("vapi_assistant_id", &self.vapi_assistant_id)
            .finish_non_exhaustive()
    }
}

/// What the platform answered for a number.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderNumber {
    pub id: String,
    pub number: Option<String>,
    pub status: Option<domain::phone_numbers::PhoneNumberStatus>,
}

/// Provider credentials to register at the platform, opened (Twilio's are
/// imported with each number instead). The client writes the platform's format.
#[derive(Clone, PartialEq)]
pub enum PlatformCredential {
    Vonage {
        api_key: String,
        api_secret: String,
    },
    Telnyx {
        api_key: String,
    },
    ByoSipTrunk {
        gateways: Vec<SipGateway>,
        /// Username and password the trunk expects on outbound calls.
        outbound_auth: Option<(String, String)>,
    },
}

/// One gateway of a SIP trunk: an address or host name, and a port.
#[derive(Debug, Clone, PartialEq)]
pub struct SipGateway {
    pub ip: String,
    pub port: Option<u16>,
}

/// The secrets are never printed.
impl std::fmt::Debug for PlatformCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlatformCredential::Vonage { .. } => f.write_str("PlatformCredential::Vonage { .. }"),
            PlatformCredential::Telnyx { .. } => f.write_str("PlatformCredential::Telnyx { .. }"),
            PlatformCredential::ByoSipTrunk { gateways, .. } => f
                .debug_struct("PlatformCredential::ByoSipTrunk")
                .field("gateways", gateways)
                .finish_non_exhaustive(),
        }
    }
}

/// A call's own version of the agent: an A/B variant's prompt, with the
/// agent's model settings. The voice client turns it into its provider's overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSetup {
    pub prompt: String,
    pub model: domain::agents::ModelSettings,
    /// The agent's transfer number: its transfer tool must survive the override.
    pub transfer_number: Option<domain::phone::PhoneNumber>,
    /// Whether the agent's calendar tools are on (overrides replace the whole model, tools included).
    pub calendar_tools: bool,
}

/// An outbound call to place.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundCall {
    pub organization_id: Uuid,
    pub call_id: Uuid,
    pub agent_id: Uuid,
    pub vapi_assistant_id: String,
    pub vapi_phone_number_id: String,
    pub customer_number: String,
    pub customer_name: Option<String>,
    /// How this call's assistant differs from the agent's, if it does.
    pub setup: Option<CallSetup>,
    /// What the agent is told about the customer (CRM data), as the
    /// assistant's variable values (`{{customerName}}`…).
    pub variables: std::collections::BTreeMap<String, String>,
}

#[async_trait]
pub trait VoiceProvider: Send + Sync {
    /// Creates an assistant; returns the provider's id.
    async fn create_assistant(&self, assistant: &AssistantDefinition) -> Result<String, ProviderError>;
    async fn update_assistant(&self, id: &str, assistant: &AssistantDefinition) -> Result<(), ProviderError>;
    async fn delete_assistant(&self, id: &str) -> Result<(), ProviderError>;
    /// The assistant an earlier, unconfirmed creation for this agent made, if
    /// any: looked up by our metadata among assistants created since `since`.
    async fn find_assistant(
        &self,
        organization_id: Uuid,
        agent_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Option<String>, ProviderError>;
    /// Registers provider credentials; returns the platform's id.
    async fn create_credential(&self, credential: &PlatformCredential) -> Result<String, ProviderError>;
    async fn create_phone_number(&self, number: &NumberDefinition) -> Result<ProviderNumber, ProviderError>;
    async fn assign_phone_number(&self, id: &str, vapi_assistant_id: Option<&str>) -> Result<(), ProviderError>;
    async fn delete_phone_number(&self, id: &str) -> Result<(), ProviderError>;
    async fn get_phone_number(&self, id: &str) -> Result<ProviderNumber, ProviderError>;
    /// The number an earlier, unconfirmed provisioning of our number
    /// `phone_number_id` (with its E.164 `number`, when known) made, if any,
    /// among numbers created since `since`.
    async fn find_phone_number(
        &self,
        phone_number_id: Uuid,
        number: Option<&domain::phone::PhoneNumber>,
        since: DateTime<Utc>,
    ) -> Result<Option<ProviderNumber>, ProviderError>;
    /// Places an outbound call; returns the platform's call id.
    async fn create_call(&self, call: &OutboundCall) -> Result<String, ProviderError>;
    /// The call an earlier, unconfirmed placement of `call` made, if any,
    /// among calls of its assistant and number created since `since`.
    async fn find_call(&self, call: &OutboundCall, since: DateTime<Utc>) -> Result<Option<String>, ProviderError>;
}
