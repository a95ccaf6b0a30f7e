//! Vapi's REST API (`Authorization: Bearer <private key>`): assistants.

use crate::http::retry_after;
use application::providers::ProviderError;
use application::voice::{
    AssistantDefinition, CallSetup, NumberDefinition, OutboundCall, PlatformCredential, ProviderNumber, VoiceProvider,
};
use async_trait::async_trait;
use domain::phone_numbers::{NumberSource, PhoneNumberStatus};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

pub const DEFAULT_BASE_URL: &str = "https://api.vapi.ai";

/// Server messages every assistant asks Vapi to send us.
const SERVER_MESSAGES: &[&str] = &[
    "status-update",
    "end-of-call-report",
    "tool-calls",
    "hang",
    "transfer-destination-request",
];

#[derive(Clone)]
pub struct VapiConfig {
    pub base_url: String,
    pub api_key: String,
    /// Where Vapi sends server messages: `<public URL>/api/webhooks/vapi`.
    pub webhook_url: String,
    pub webhook_secret: String,
}

impl std::fmt::Debug for VapiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapiConfig")
            .field("base_url", &self.base_url)
            .field("webhook_url", &self.webhook_url)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct VapiClient {
    http: reqwest::Client,
    config: VapiConfig,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AssistantBody {
    /// Vapi limits assistant names to 40 characters.
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_message: Option<String>,
    model: ModelBody,
    voice: Value,
    transcriber: TranscriberBody,
    server: ServerBody,
    server_messages: Vec<&'static str>,
    artifact_plan: ArtifactPlan,
    metadata: Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelBody {
    provider: String,
    model: String,
    messages: Vec<MessageBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
}

#[derive(Debug, Serialize)]
struct MessageBody {
    role: &'static str,
    content: String,
}

#[derive(Debug, Serialize)]
struct TranscriberBody {
    provider: &'static str,
    model: &'static str,
    language: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerBody {
    url: String,
    secret: String,
    timeout_seconds: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactPlan {
    recording_enabled: bool,
}

#[derive(Debug, Deserialize)]
struct Created {
    id: String,
}

#[derive(Debug, Deserialize)]
struct VapiNumber {
    id: String,
    number: Option<String>,
    status: Option<PhoneNumberStatus>,
    #[serde(default)]
    name: Option<String>,
}

/// What Vapi's credential API takes for provider credentials.
fn credential_body(credential: &PlatformCredential) -> Value {
    match credential {
        PlatformCredential::Vonage { api_key, api_secret } => {
            json!({ "provider": "vonage", "apiKey": api_key, "apiSecret": api_secret })
        }
        PlatformCredential::Telnyx { api_key } => json!({ "provider": "telnyx", "apiKey": api_key }),
        PlatformCredential::ByoSipTrunk {
            gateways,
            outbound_auth,
        } => {
            let gateways: Vec<Value> = gateways
                .iter()
                .map(|gateway| match gateway.port {
                    Some(port) => json!({ "ip": gateway.ip, "port": port }),
                    None => json!({ "ip": gateway.ip }),
                })
                .collect();
            let mut body = json!({ "provider": "byo-sip-trunk", "gateways": gateways });
            if let Some((user, password)) = outbound_auth {
                body["outboundAuthenticationPlan"] = json!({ "authUsername": user, "authPassword": password });
            }
            body
        }
    }
}

/// The name a number of ours gets at Vapi (at most 40 characters).
fn vapi_number_name(phone_number_id: Uuid) -> String {
    format!("vx-{}", phone_number_id.simple())
}

impl From<VapiNumber> for ProviderNumber {
    fn from(n: VapiNumber) -> Self {
        ProviderNumber {
            id: n.id,
            number: n.number,
            status: n.status,
        }
    }
}

/// An answer's JSON; an unreadable one is this provider being unavailable.
async fn read<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, ProviderError> {
    crate::http::read_answer(response, "unreadable response").await
}

impl VapiClient {
    pub fn new(config: VapiConfig) -> Self {
        let http = crate::http::client(Duration::from_secs(20));
        Self { http, config }
    }

    fn assistant_body(&self, assistant: &AssistantDefinition) -> AssistantBody {
        let spec = &assistant.spec;
        let mut voice = json!({ "provider": spec.voice.provider, "voiceId": spec.voice.voice_id });
        for (key, value) in [
            ("speed", spec.voice.speed),
            ("pitch", spec.voice.pitch),
            ("stability", spec.voice.stability),
        ] {
            if let Some(v) = value {
                voice[key] = json!(v);
            }
        }
        let tools = assistant_tools(spec.transfer_number.as_ref(), assistant.calendar_tools);
        AssistantBody {
            name: spec.name.chars().take(40).collect(),
            first_message: spec.first_message.clone(),
            model: ModelBody {
                provider: spec.model.provider.as_str().to_owned(),
                model: spec.model.model.clone(),
                messages: vec![MessageBody {
                    role: "system",
                    content: spec.system_prompt.clone(),
                }],
                temperature: spec.model.temperature,
                max_tokens: spec.model.max_tokens,
                tools,
            },
            voice,
            transcriber: TranscriberBody {
                provider: "deepgram",
                model: "nova-2",
                language: spec.language.split('-').next().unwrap_or("en").to_owned(),
            },
            server: ServerBody {
                url: self.config.webhook_url.clone(),
                secret: self.config.webhook_secret.clone(),
                timeout_seconds: 20,
            },
            server_messages: SERVER_MESSAGES.to_vec(),
            artifact_plan: ArtifactPlan {
                recording_enabled: true,
            },
            metadata: json!({
                "voxreachOrganizationId": assistant.organization_id,
                "voxreachAgentId": assistant.agent_id,
            }),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.execute(request).await
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.config.base_url.trim_end_matches('/'));
        self.http.request(method, url).bearer_auth(&self.config.api_key)
    }

    async fn execute(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
        let response = request.send().await.map_err(crate::http::no_answer)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let body = crate::http::read_capped(response, 64 * 1024).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        Err(classify(status, retry_after, &text))
    }

    /// A list endpoint (`GET /assistant`, `GET /call`): Vapi answers a bare array.
    async fn list(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<Listed>, ProviderError> {
        let response = self.execute(self.request(Method::GET, path).query(query)).await?;
        read(response).await
    }
}

/// One record of a Vapi list: only what our look-ups compare.
#[derive(Debug, Deserialize)]
struct Listed {
    id: String,
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    customer: Value,
}

/// A Vapi function tool. Without a `server` of its own, Vapi sends its calls
/// as `tool-calls` messages to the assistant's `server.url`: our webhook.
fn function_tool(name: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": { "type": "object", "properties": properties, "required": required },
        }
    })
}

/// An assistant's tools: the transfer to its number, and the calendar tools when on.
fn assistant_tools(transfer_number: Option<&domain::phone::PhoneNumber>, calendar: bool) -> Vec<Value> {
    let transfer = transfer_number.map(|number| {
        json!({
            "type": "transferCall",
            "destinations": [{ "type": "number", "number": number.as_str() }]
        })
    });
    let calendar = calendar.then(calendar_tools).into_iter().flatten();
    transfer.into_iter().chain(calendar).collect()
}

/// The calendar tools (SPEC §2.2), with the arguments our tool handlers read.
fn calendar_tools() -> [Value; 2] {
    let text = |description: &str| json!({ "type": "string", "description": description });
    let slot = json!({
        "date": text("The day, YYYY-MM-DD"),
        "time": text("The start time, HH:MM (24-hour clock)"),
        "duration": { "type": "integer", "description": "Length in minutes; the calendar's default when left out" },
    });
    let mut booking = slot.clone();
    for (name, property) in [
        ("title", text("What the meeting is, e.g. Demo Call with Prospect")),
        ("attendeeName", text("Full name of the person the meeting is with")),
        ("attendeeEmail", text("Their e-mail address, for the invitation")),
        ("attendeePhone", text("Their phone number in E.164, e.g. +14155550123")),
        (
            "addVideoLink",
            json!({ "type": "boolean", "description": "Whether to add a video meeting link (Google Meet or Microsoft Teams)" }),
        ),
    ] {
        booking[name] = property;
    }
    [
        function_tool(
            "check_availability",
            "Check whether a time is free in the calendar; when it is not, the answer offers the next free times.",
            slot,
            &["date", "time"],
        ),
        function_tool(
            "book_appointment",
            "Book a meeting in the calendar and invite the attendee; check the time is available first.",
            booking,
            &["date", "time", "attendeeName"],
        ),
    ]
}

/// Vapi `assistantOverrides` for a call's own setup: its system prompt, with
/// the agent's model settings (Vapi replaces the whole `model` object).
pub fn assistant_overrides(setup: &CallSetup) -> Value {
    let mut model = json!({
        "provider": setup.model.provider,
        "model": setup.model.model,
        "messages": [{ "role": "system", "content": setup.prompt }],
    });
    if let Some(temperature) = setup.model.temperature {
        model["temperature"] = json!(temperature);
    }
    if let Some(max_tokens) = setup.model.max_tokens {
        model["maxTokens"] = json!(max_tokens);
    }
    // The override replaces the whole model: the assistant's tools go with it.
    let tools = assistant_tools(setup.transfer_number.as_ref(), setup.calendar_tools);
    if !tools.is_empty() {
        model["tools"] = json!(tools);
    }
    json!({ "model": model })
}

/// Records created a little before `since` count too: clocks differ.
fn created_after(since: chrono::DateTime<chrono::Utc>) -> String {
    (since - chrono::Duration::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Maps a failed response to a status-only error: Vapi's own `message` (a
/// string or a list) is logged for operators, never passed on to users.
fn classify(status: StatusCode, retry_after: Option<Duration>, body: &str) -> ProviderError {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| match &v["message"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")),
            _ => None,
        });
    if let Some(message) = message {
        let message = crate::http::logged(&message);
        tracing::warn!(status = status.as_u16(), %message, "Vapi answered with an error");
    }
    match status {
        StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited { retry_after },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ProviderError::Unauthorized,
        StatusCode::NOT_FOUND => ProviderError::NotFound,
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
            ProviderError::Unavailable(s.to_string().into())
        }
        s => ProviderError::Rejected { status: s.as_u16() },
    }
}

#[async_trait]
impl VoiceProvider for VapiClient {
    async fn create_assistant(&self, assistant: &AssistantDefinition) -> Result<String, ProviderError> {
        let response = self
            .send(Method::POST, "/assistant", Some(&self.assistant_body(assistant)))
            .await?;
        Ok(read::<Created>(response).await?.id)
    }

    async fn update_assistant(&self, id: &str, assistant: &AssistantDefinition) -> Result<(), ProviderError> {
        self.send(
            Method::PATCH,
            &format!("/assistant/{id}"),
            Some(&self.assistant_body(assistant)),
        )
        .await
        .map(|_| ())
    }

    async fn delete_assistant(&self, id: &str) -> Result<(), ProviderError> {
        self.send(Method::DELETE, &format!("/assistant/{id}"), None::<&()>)
            .await
            .map(|_| ())
    }

    async fn find_assistant(
        &self,
        organization_id: Uuid,
        agent_id: Uuid,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, ProviderError> {
        let assistants = self
            .list(
                "/assistant",
                &[("createdAtGt", created_after(since)), ("limit", "1000".into())],
            )
            .await?;
        Ok(assistants
            .into_iter()
            .find(|a| {
                a.metadata["voxreachAgentId"] == json!(agent_id)
                    && a.metadata["voxreachOrganizationId"] == json!(organization_id)
            })
            .map(|a| a.id))
    }

    async fn create_credential(&self, credential: &PlatformCredential) -> Result<String, ProviderError> {
        let response = self
            .send(Method::POST, "/credential", Some(&credential_body(credential)))
            .await?;
        Ok(read::<Created>(response).await?.id)
    }

    async fn create_phone_number(&self, number: &NumberDefinition) -> Result<ProviderNumber, ProviderError> {
        let mut body = match &number.source {
            NumberSource::Vapi { area_code } => json!({ "provider": "vapi", "numberDesiredAreaCode": area_code }),
            NumberSource::Twilio { number: e164, .. } => {
                let (sid, token) = number.twilio.clone().unwrap_or_default();
                json!({ "provider": "twilio", "number": e164.as_str(), "twilioAccountSid": sid, "twilioAuthToken": token })
            }
            NumberSource::Vonage { number: e164, .. } => {
                json!({ "provider": "vonage", "number": e164.as_str(), "credentialId": number.vapi_credential_id })
            }
            NumberSource::Telnyx { number: e164, .. } => {
                json!({ "provider": "telnyx", "number": e164.as_str(), "credentialId": number.vapi_credential_id })
            }
            NumberSource::ByoSip { number: e164, .. } => json!({
                "provider": "byo-phone-number",
                "number": e164.as_str(),
                "credentialId": number.vapi_credential_id,
                "numberE164CheckEnabled": true
            }),
        };
        if let Some(assistant) = &number.vapi_assistant_id {
            body["assistantId"] = json!(assistant);
        }
        // Vapi keeps no metadata on numbers: the name carries our id, for look-ups.
        body["name"] = json!(vapi_number_name(number.phone_number_id));
        let response = self.send(Method::POST, "/phone-number", Some(&body)).await?;
        Ok(read::<VapiNumber>(response).await?.into())
    }

    async fn assign_phone_number(&self, id: &str, vapi_assistant_id: Option<&str>) -> Result<(), ProviderError> {
        let body = json!({ "assistantId": vapi_assistant_id });
        self.send(Method::PATCH, &format!("/phone-number/{id}"), Some(&body))
            .await
            .map(|_| ())
    }

    async fn delete_phone_number(&self, id: &str) -> Result<(), ProviderError> {
        self.send(Method::DELETE, &format!("/phone-number/{id}"), None::<&()>)
            .await
            .map(|_| ())
    }

    async fn find_phone_number(
        &self,
        phone_number_id: Uuid,
        number: Option<&domain::phone::PhoneNumber>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<ProviderNumber>, ProviderError> {
        let response = self
            .execute(
                self.request(Method::GET, "/phone-number")
                    .query(&[("createdAtGt", created_after(since)), ("limit", "1000".into())]),
            )
            .await?;
        let numbers: Vec<VapiNumber> = read(response).await?;
        let name = vapi_number_name(phone_number_id);
        let e164 = number.map(|n| n.as_str().to_owned());
        Ok(numbers
            .into_iter()
            .find(|n| n.name.as_deref() == Some(name.as_str()) || (e164.is_some() && n.number == e164))
            .map(ProviderNumber::from))
    }

    async fn get_phone_number(&self, id: &str) -> Result<ProviderNumber, ProviderError> {
        let response = self
            .send(Method::GET, &format!("/phone-number/{id}"), None::<&()>)
            .await?;
        Ok(read::<VapiNumber>(response).await?.into())
    }

    async fn create_call(&self, call: &OutboundCall) -> Result<String, ProviderError> {
        let mut body = json!({
            "assistantId": call.vapi_assistant_id,
            "phoneNumberId": call.vapi_phone_number_id,
            "customer": { "number": call.customer_number },
            "metadata": {
                "voxreachOrganizationId": call.organization_id,
                "voxreachCallId": call.call_id,
                "voxreachAgentId": call.agent_id,
            }
        });
        if let Some(name) = &call.customer_name {
            body["customer"]["name"] = json!(name);
        }
        if let Some(setup) = &call.setup {
            body["assistantOverrides"] = assistant_overrides(setup);
        }
        if !call.variables.is_empty() {
            body["assistantOverrides"]["variableValues"] = json!(call.variables);
        }
        // Vapi documents overrides' metadata as coming back with the call's
        // messages; the top-level one may not.
        body["assistantOverrides"]["metadata"] = body["metadata"].clone();
        let response = self.send(Method::POST, "/call", Some(&body)).await?;
        Ok(read::<Created>(response).await?.id)
    }

    async fn find_call(
        &self,
        call: &OutboundCall,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, ProviderError> {
        let calls = self
            .list(
                "/call",
                &[
                    ("assistantId", call.vapi_assistant_id.clone()),
                    ("phoneNumberId", call.vapi_phone_number_id.clone()),
                    ("createdAtGt", created_after(since)),
                    ("limit", "1000".into()),
                ],
            )
            .await?;
        // Our metadata names the call; without it, the same customer on the same line since the attempt.
        let ours = |c: &Listed| match c.metadata.get("voxreachCallId") {
            Some(id) => *id == json!(call.call_id),
            None => c.customer["number"] == json!(call.customer_number),
        };
        Ok(calls.into_iter().find(ours).map(|c| c.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_written_in_vapis_shape() {
        let sip = PlatformCredential::ByoSipTrunk {
            gateways: vec![
                application::voice::SipGateway {
                    ip: "sip.example.com".into(),
                    port: Some(5060),
                },
                application::voice::SipGateway {
                    ip: "10.0.0.1".into(),
                    port: None,
                },
            ],
            outbound_auth: Some(("trunk".into(), "s3cret".into())),
        };
        assert_eq!(
            credential_body(&sip),
            json!({
                "provider": "byo-sip-trunk",
                "gateways": [{"ip": "sip.example.com", "port": 5060}, {"ip": "10.0.0.1"}],
                "outboundAuthenticationPlan": {"authUsername": "trunk", "authPassword": "s3cret"}
            })
        );
        let vonage = PlatformCredential::Vonage {
            api_key: "vk".into(),
            api_secret: "vs".into(),
        };
        assert_eq!(
            credential_body(&vonage),
            json!({"provider": "vonage", "apiKey": "vk", "apiSecret": "vs"})
        );
        let telnyx = PlatformCredential::Telnyx { api_key: "tk".into() };
        assert_eq!(credential_body(&telnyx), json!({"provider": "telnyx", "apiKey": "tk"}));
    }

    #[test]
    fn a_variants_overrides_keep_the_assistants_tools() {
        let setup = CallSetup {
            prompt: "Be bold.".into(),
            model: domain::agents::ModelSettings {
                provider: "openai".into(),
                model: "gpt-4o".into(),
                temperature: None,
                max_tokens: None,
            },
            transfer_number: Some(domain::phone::PhoneNumber::parse("+14155552671").unwrap()),
            calendar_tools: true,
        };
        let overrides = assistant_overrides(&setup);
        let tools = overrides["model"]["tools"].as_array().unwrap();
        let names: Vec<&str> = tools
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap_or(t["type"].as_str().unwrap()))
            .collect();
        assert_eq!(names, ["transferCall", "check_availability", "book_appointment"]);
        assert_eq!(overrides["model"]["messages"][0]["content"], "Be bold.");
        let bare = assistant_overrides(&CallSetup {
            transfer_number: None,
            calendar_tools: false,
            ..setup
        });
        assert!(bare["model"].get("tools").is_none());
    }
}
