//! The OpenAPI document of every endpoint, served at `GET /api/openapi.json`.
//! Built from one table, which a test checks against the routes the server answers.

use actix_web::HttpResponse;
use application::phone_numbers::SECRET_FIELD_LIMIT;
use serde_json::{json, Map, Value};

/// One operation: method, path, tag, summary, whether it needs a bearer token, request body schema.
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub authenticated: bool,
    pub body: Option<&'static str>,
}

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
) -> Operation {
    Operation {
        method,
        path,
        tag,
        summary,
        authenticated: true,
        body,
    }
}

/// An operation anyone may call, without a session.
const fn public(operation: Operation) -> Operation {
    Operation {
        authenticated: false,
        ..operation
    }
}

pub const OPERATIONS: &[Operation] = &[
    public(op("get", "/health", "health", "The process is up", None)),
    public(op(
        "get",
        "/health/ready",
        "health",
        "Database, migrations and projection lag",
        None,
    )),
    public(op("get", "/api/openapi.json", "health", "This document", None)),
    public(op(
        "post",
        "/api/auth/register",
        "auth",
        "Create an organization and its owner; returns a session",
        Some("Registration"),
    )),
    public(op(
        "post",
        "/api/auth/login",
        "auth",
        "Sign in; returns a session",
        Some("Login"),
    )),
    op("get", "/api/auth/me", "auth", "The caller and their organization", None),
    public(op(
        "post",
        "/api/auth/password-reset/request",
        "auth",
        "Mail a single-use reset link (always 202)",
        Some("ResetRequest"),
    )),
    public(op(
        "post",
        "/api/auth/password-reset/confirm",
        "auth",
        "Set a new password with a reset or invitation token",
        Some("ResetConfirm"),
    )),
    op(
        "post",
        "/api/users",
        "users",
        "Invite a user into the caller's organization",
        Some("Invitation"),
    ),
    op(
        "get",
        "/api/users",
        "users",
        "Users of the caller's organization (limit, offset)",
        None,
    ),
    op("post", "/api/agents", "agents", "Create an agent", Some("Agent")),
    op(
        "get",
        "/api/agents",
        "agents",
        "List agents (active, limit, offset)",
        None,
    ),
    op(
        "get",
        "/api/agents/{id}",
        "agents",
        "An agent with its Vapi sync status",
        None,
    ),
    op(
        "patch",
        "/api/agents/{id}",
        "agents",
        "Change an agent (absent fields kept, null clears)",
        Some("AgentChanges"),
    ),
    op("delete", "/api/agents/{id}", "agents", "Delete an agent", None),
    op(
        "post",
        "/api/agents/{id}/activate",
        "agents",
        "Let the agent take calls",
        None,
    ),
    op(
        "post",
        "/api/agents/{id}/deactivate",
        "agents",
        "Stop the agent taking calls",
        None,
    ),
    op("get", "/api/voices", "agents", "The voice catalogue", None),
    op(
        "post",
        "/api/credentials",
        "phone-numbers",
        "Store provider credentials (encrypted)",
        Some("Credential"),
    ),
    op("get", "/api/credentials", "phone-numbers", "Credentials, masked", None),
    op(
        "delete",
        "/api/credentials/{id}",
        "phone-numbers",
        "Delete a credential",
        None,
    ),
    op(
        "post",
        "/api/phone-numbers",
        "phone-numbers",
        "Provision or import a number",
        Some("PhoneNumber"),
    ),
    op(
        "get",
        "/api/phone-numbers",
        "phone-numbers",
        "Numbers with sync and line status",
        None,
    ),
    op("get", "/api/phone-numbers/{id}", "phone-numbers", "One number", None),
    op(
        "patch",
        "/api/phone-numbers/{id}",
        "phone-numbers",
        "Assign (or with null unassign) an agent",
        Some("Assignment"),
    ),
    op(
        "delete",
        "/api/phone-numbers/{id}",
        "phone-numbers",
        "Release a number",
        None,
    ),
    op(
        "post",
        "/api/calls",
        "calls",
        "Start an outbound call (202; placed by a reactor)",
        Some("OutboundCall"),
    ),
    op(
        "get",
        "/api/calls",
        "calls",
        "Calls, newest first (status, agentId, direction, outcome, phone, from, to, limit, cursor)",
        None,
    ),
    op(
        "get",
        "/api/calls/{id}",
        "calls",
        "Transcript, recording, analysis and timeline of a call",
        None,
    ),
    op(
        "post",
        "/api/calls/{id}/outcome",
        "calls",
        "Set a call's outcome",
        Some("Outcome"),
    ),
    op("get", "/api/dashboard/stats", "calls", "Totals and recent calls", None),
    public(op(
        "post",
        "/api/webhooks/vapi",
        "webhooks",
        "Vapi server messages (authenticated by Vapi's secret or signature)",
        None,
    )),
    op(
        "post",
        "/api/agents/{id}/variants",
        "ab-testing",
        "Create a script variant",
        Some("Variant"),
    ),
    op(
        "get",
        "/api/agents/{id}/variants",
        "ab-testing",
        "An agent's variants",
        None,
    ),
    op(
        "patch",
        "/api/variants/{id}",
        "ab-testing",
        "Change a variant (not its prompt while in a running test)",
        Some("VariantChanges"),
    ),
    op("delete", "/api/variants/{id}", "ab-testing", "Delete a variant", None),
    op(
        "post",
        "/api/agents/{id}/ab-tests",
        "ab-testing",
        "Start an A/B test",
        Some("AbTest"),
    ),
    op(
        "get",
        "/api/agents/{id}/ab-tests",
        "ab-testing",
        "An agent's tests, newest first",
        None,
    ),
    op(
        "get",
        "/api/ab-tests/{id}",
        "ab-testing",
        "Results, statistics and decision state",
        None,
    ),
    op(
        "post",
        "/api/ab-tests/{id}/pause",
        "ab-testing",
        "Stop assigning calls",
        None,
    ),
    op(
        "post",
        "/api/ab-tests/{id}/resume",
        "ab-testing",
        "Assign calls again",
        None,
    ),
    op(
        "post",
        "/api/ab-tests/{id}/declare-winner",
        "ab-testing",
        "End the test with a winner",
        Some("Winner"),
    ),
    op(
        "post",
        "/api/integrations/slack",
        "slack",
        "Connect a Slack incoming webhook",
        Some("SlackIntegration"),
    ),
    op(
        "get",
        "/api/integrations/slack",
        "slack",
        "Slack integrations with their status",
        None,
    ),
    op(
        "patch",
        "/api/integrations/slack/{id}",
        "slack",
        "Change routing, mentions, templates, mute hours, summary time",
        Some("SlackPreferences"),
    ),
    op("delete", "/api/integrations/slack/{id}", "slack", "Disconnect", None),
    op(
        "post",
        "/api/integrations/slack/test",
        "slack",
        "Post a test message now",
        Some("SlackTest"),
    ),
];

/// Request bodies refuse unknown fields (`deny_unknown_fields`).
fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties, "additionalProperties": false })
}

/// No JSON string may hold NUL (PostgreSQL text cannot).
const NO_NUL: &str = "^[^\\u0000]*$";
/// At least one character that is not white space, and no NUL.
const NOT_BLANK: &str = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$";

/// Free text up to `max` characters.
fn text(max: usize) -> Value {
    json!({ "type": "string", "maxLength": max, "pattern": NO_NUL })
}

/// A required name: not blank, up to `max` characters.
fn name(max: usize) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": max, "pattern": NOT_BLANK })
}

/// A credential of one provider: its own secret fields besides `provider` and `name`.
fn credential(provider: &str, required: &[&str], mut properties: Value) -> Value {
    properties["provider"] = json!({ "const": provider });
    properties["name"] = name(100);
    let required: Vec<&str> = ["provider", "name"].iter().chain(required).copied().collect();
    object(&required, properties)
}

fn phone() -> Value {
    json!({ "type": "string", "pattern": "^\\+[1-9][0-9]{7,14}$",
            "description": "E.164; the number must also be valid in its numbering plan" })
}

fn schemas() -> Value {
    let s = |t: &str| match t {
        "string" => text(crate::body::TEXT_LIMIT_CHARS),
        _ => json!({ "type": t }),
    };
    let email = json!({ "type": "string", "format": "email", "maxLength": 254 });
    let password = json!({ "type": "string", "minLength": 10, "maxLength": 128, "pattern": NO_NUL });
    let uuid = json!({ "type": "string", "format": "uuid" });
    let range = |low: f64, high: f64| json!({"type": "number", "minimum": low, "maximum": high});
    let mut voice_providers: Vec<&str> = domain::voices::VOICES.iter().map(|v| v.provider).collect();
    voice_providers.sort_unstable();
    voice_providers.dedup();
    let voice = object(
        &["provider", "voiceId"],
        json!({"provider": {"enum": voice_providers}, "voiceId": name(100),
            "speed": range(0.5, 2.0), "pitch": range(0.5, 2.0), "stability": range(0.0, 1.0)}),
    );
    let model = object(
        &["provider", "model"],
        json!({"provider": {"enum": domain::agents::MODEL_PROVIDERS}, "model": name(100), "temperature": range(0.0, 2.0),
            "maxTokens": {"type": "integer", "minimum": 1, "maximum": 8192}}),
    );
    let agent = json!({"systemPrompt": name(20_000), "name": name(200), "firstMessage": text(1_000), "voice": voice, "language": {"type": "string", "pattern": "^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"},
        "transferNumber": phone(), "model": model, "outcomeRule": object(&[], json!({"structuredDataField": s("string"), "onSuccess": s("string"), "onFailure": s("string"), "successThreshold": s("number")}))});
    let route = object(
        &["enabled"],
        json!({"enabled": s("boolean"), "mentions": {"type": "array", "items": {"type": "string", "pattern": "^[UWS][A-Z0-9]{1,19}$"}}, "template": text(2_000)}),
    );
    let local_time = json!({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"});
    let preferences = object(
        &["routes", "timezone", "failuresBypassMute"],
        json!({"routes": {"type": "object", "additionalProperties": route,
            "propertyNames": {"enum": domain::slack::NotificationKind::ALL}}, "timezone": {"enum": domain::slack::TimeZone::names().collect::<Vec<_>>()},
        "muteHours": {"anyOf": [object(&["start", "end"], json!({"start": local_time, "end": local_time})), {"type": "null"}],
            "description": "start and end must differ"}, "failuresBypassMute": s("boolean"), "summaryTime": local_time}),
    );
    let variant = json!({"name": name(100), "prompt": name(20_000), "isControl": s("boolean"),
        "trafficPercent": {"type": "integer", "minimum": 0, "maximum": 100}});
    json!({
        "Error": object(&["error"], json!({"error": object(&["code", "message"], json!({"code": {"type": "string"}, "message": {"type": "string"}, "details": s("object")}))})),
        "Registration": object(&["email", "password", "name", "organizationName"], json!({"email": email, "password": password, "name": name(200), "organizationName": name(200)})),
        "Login": object(&["email", "password"], json!({"email": text(254), "password": text(1_024)})),
        "ResetRequest": object(&["email"], json!({"email": email})),
        "ResetConfirm": object(&["token", "newPassword"], json!({"token": text(200), "newPassword": password})),
        "Invitation": object(&["email", "name", "role"], json!({"email": email, "name": name(200), "role": {"enum": ["owner", "admin", "member"]}})),
        "Agent": object(&["name", "systemPrompt", "voice"], agent.clone()),
        "AgentChanges": object(&[], agent),
        "Credential": {"oneOf": [
            credential("twilio", &["accountSid", "authToken"], json!({"accountSid": {"type": "string", "pattern": "^AC[0-9a-zA-Z]{32}$"}, "authToken": name(SECRET_FIELD_LIMIT)})),
            credential("vonage", &["apiKey", "apiSecret"], json!({"apiKey": name(SECRET_FIELD_LIMIT), "apiSecret": name(SECRET_FIELD_LIMIT)})),
            credential("telnyx", &["apiKey"], json!({"apiKey": name(SECRET_FIELD_LIMIT)})),
            credential("byo-sip-trunk", &["gateways"], json!({"gateways": {"type": "array", "minItems": 1, "items": object(&["ip"], json!({
                "ip": {"anyOf": [{"type": "string", "format": "ipv6"}, {"type": "string", "maxLength": 253, "pattern": "^[^\\u0000]*\\.[^\\u0000]*$"}]},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535}}))},
                "username": text(SECRET_FIELD_LIMIT), "password": text(SECRET_FIELD_LIMIT)})),
        ]},
        "PhoneNumber": object(&["provider"], json!({"provider": {"enum": ["vapi", "twilio", "vonage", "telnyx", "byo-sip"]}, "name": s("string"), "areaCode": s("string"),
            "number": phone(), "credentialId": uuid, "accountSid": s("string"), "authToken": s("string"), "agentId": uuid})),
        "Assignment": object(&["agentId"], json!({"agentId": {"type": ["string", "null"], "format": "uuid"}})),
        "OutboundCall": object(&["agentId", "phoneNumberId", "customerNumber"], json!({"agentId": uuid, "phoneNumberId": uuid, "customerNumber": phone()})),
        "Outcome": object(&["outcome"], json!({"outcome": {"enum": domain::calls::Outcome::ALL.map(domain::calls::Outcome::as_str)}, "notes": text(2_000)})),
        "Variant": object(&["name", "prompt", "trafficPercent"], variant.clone()),
        "VariantChanges": object(&[], variant),
        "AbTest": object(&["name", "variantIds"], json!({"name": name(200), "variantIds": {"type": "array", "items": uuid}, "successOutcome": {"enum": ["qualified", "appointment", "sale"]},
            "minSampleSize": {"type": "integer", "minimum": 1, "maximum": 1_000_000}, "autoPromote": s("boolean")})),
        "Winner": object(&["variantId"], json!({"variantId": uuid})),
        "SlackIntegration": object(&["workspaceName", "webhookUrl", "channel"], json!({"workspaceName": name(100), "webhookUrl": {"type": "string", "format": "uri", "pattern": "^https://hooks\\.slack\\.com/services/[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+$"}, "channel": {"type": "string", "pattern": "^#[^\\u0000]{1,80}$"}, "preferences": {"anyOf": [preferences.clone(), {"type": "null"}]}})),
        "SlackPreferences": preferences,
        "SlackTest": object(&["integrationId"], json!({"integrationId": uuid})),
    })
}

/// The documented methods of a concrete request path (`{…}` matches one
/// segment; like the router, the most literal template wins, so
/// `/slack/test` is not `/slack/{id}`).
pub fn methods_of(path: &str) -> Vec<&'static str> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let matches = |template: &str| {
        let pattern: Vec<&str> = template.split('/').collect();
        pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()))
    };
    let placeholders = |template: &str| template.matches('{').count();
    let matching: Vec<&Operation> = OPERATIONS.iter().filter(|operation| matches(operation.path)).collect();
    let most_literal = matching.iter().map(|o| placeholders(o.path)).min();
    matching
        .into_iter()
        .filter(|operation| Some(placeholders(operation.path)) == most_literal)
        .map(|operation| operation.method)
        .collect()
}

/// Operations that create a resource (answering its `id`), and the path under
/// which that resource's own operations live (`<path>/{id}…`).
const CREATES: &[(&str, &str)] = &[
    ("/api/agents", "/api/agents"),
    ("/api/credentials", "/api/credentials"),
    ("/api/phone-numbers", "/api/phone-numbers"),
    ("/api/calls", "/api/calls"),
    ("/api/agents/{id}/variants", "/api/variants"),
    ("/api/agents/{id}/ab-tests", "/api/ab-tests"),
    ("/api/integrations/slack", "/api/integrations/slack"),
];

/// What successful operations answer, where documented (`$ref` of a response schema).
const RESPONSES: &[(&str, &str, &str)] = &[
    ("post", "/api/agents", "AgentView"),
    ("get", "/api/agents", "AgentList"),
    ("get", "/api/agents/{id}", "AgentView"),
    ("patch", "/api/agents/{id}", "AgentView"),
    ("post", "/api/credentials", "CredentialView"),
    ("get", "/api/credentials", "CredentialList"),
    ("post", "/api/phone-numbers", "PhoneNumberView"),
    ("get", "/api/phone-numbers", "PhoneNumberList"),
    ("get", "/api/phone-numbers/{id}", "PhoneNumberView"),
    ("get", "/api/calls", "CallList"),
    ("get", "/api/calls/{id}", "CallDetail"),
];

/// Response schemas: the fields every answer carries (more may follow).
fn response_schemas() -> Value {
    let date_time = json!({"type": "string", "format": "date-time"});
    let uuid = json!({"type": "string", "format": "uuid"});
    let sync_status = json!({"enum": ["pending", "synced", "failed"]});
    let agent = json!({"type": "object",
        "required": ["id", "name", "systemPrompt", "voice", "language", "model", "active", "syncStatus", "createdAt", "updatedAt"],
        "properties": {"id": uuid, "name": {"type": "string"}, "systemPrompt": {"type": "string"}, "voice": {"type": "object"},
            "language": {"type": "string"}, "model": {"type": "object"}, "active": {"type": "boolean"},
            "syncStatus": sync_status,
            "vapiAssistantId": {"type": ["string", "null"]}, "lastSyncError": {"type": ["string", "null"]},
            "nextSyncAttemptAt": {"type": ["string", "null"], "format": "date-time"},
            "createdAt": date_time, "updatedAt": date_time}});
    let credential = json!({"type": "object",
        "required": ["id", "provider", "name", "hint", "registeredWithVapi", "createdAt"],
        "properties": {"id": uuid, "provider": {"enum": ["twilio", "vonage", "telnyx", "byo-sip-trunk"]}, "name": {"type": "string"},
            "hint": {"type": "string"}, "registeredWithVapi": {"type": "boolean"}, "createdAt": date_time}});
    let optional_text = json!({"type": ["string", "null"]});
    let optional_uuid = json!({"type": ["string", "null"], "format": "uuid"});
    let number = json!({"type": "object", "required": ["id", "provider", "syncStatus", "createdAt"],
        "properties": {"id": uuid, "provider": {"enum": ["vapi", "twilio", "vonage", "telnyx", "byo-sip"]},
            "name": optional_text, "number": optional_text, "areaCode": optional_text, "agentId": optional_uuid,
            "credentialId": optional_uuid, "status": optional_text, "syncStatus": sync_status,
            "vapiPhoneNumberId": optional_text, "lastSyncError": optional_text, "createdAt": date_time}});
    // Statuses Vapi adds later are passed on as they come: any text.
    let call = json!({"type": "object", "required": ["id", "status", "createdAt"],
        "properties": {"id": uuid, "vapiCallId": optional_text, "agentId": optional_uuid, "agentName": optional_text,
            "customerNumber": optional_text, "status": {"type": "string"}, "endedReason": optional_text,
            "outcome": {"enum": domain::calls::Outcome::ALL.map(domain::calls::Outcome::as_str).into_iter().map(Value::from)
                .chain([Value::Null]).collect::<Vec<_>>()},
            "durationSeconds": {"type": ["number", "null"]}, "cost": {"type": ["number", "null"]},
            "startedAt": {"type": ["string", "null"], "format": "date-time"},
            "endedAt": {"type": ["string", "null"], "format": "date-time"}, "createdAt": date_time}});
    let mut call_detail = call.clone();
    call_detail["required"] = json!(["id", "status", "createdAt", "timeline"]);
    call_detail["properties"]["transcript"] = optional_text.clone();
    call_detail["properties"]["recordingUrl"] = optional_text.clone();
    call_detail["properties"]["timeline"] = json!({"type": "array", "items": {"type": "object"}});
    let list = |key: &str, item: &str| {
        json!({"type": "object", "required": [key],
        "properties": {key: {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}}}})
    };
    json!({
        "AgentView": agent,
        "AgentList": list("agents", "AgentView"),
        "CredentialView": credential,
        "CredentialList": list("credentials", "CredentialView"),
        "PhoneNumberView": number,
        "PhoneNumberList": list("phoneNumbers", "PhoneNumberView"),
        "CallSummary": call,
        "CallList": list("calls", "CallSummary"),
        "CallDetail": call_detail,
    })
}

fn all_schemas() -> Value {
    let mut all = schemas();
    if let (Some(all), Value::Object(responses)) = (all.as_object_mut(), response_schemas()) {
        all.extend(responses);
    }
    all
}

fn operation_id(operation: &Operation) -> String {
    let words: Vec<&str> = operation
        .path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    format!("{}_{}", operation.method, words.join("_"))
}

/// OpenAPI links from a create to every operation on what it created, so a
/// client (or a stateful fuzzer) can follow the new `id`.
fn links_of(operation: &Operation) -> Option<Value> {
    if operation.method != "post" {
        return None;
    }
    let (_, base) = CREATES.iter().find(|(path, _)| *path == operation.path)?;
    let prefix = format!("{base}/{{id}}");
    let links: Map<String, Value> = OPERATIONS
        .iter()
        .filter(|target| target.path == prefix || target.path.starts_with(&format!("{prefix}/")))
        .map(|target| {
            (
                operation_id(target),
                json!({"operationId": operation_id(target), "parameters": {"id": "$response.body#/id"}}),
            )
        })
        .collect();
    Some(Value::Object(links))
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for operation in OPERATIONS {
        let mut success = json!({"description": "Success"});
        if let Some(links) = links_of(operation) {
            success["links"] = links;
        }
        if let Some((_, _, schema)) = RESPONSES
            .iter()
            .find(|(method, path, _)| *method == operation.method && *path == operation.path)
        {
            success["content"] =
                json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}});
        }
        let mut entry = json!({
            "operationId": operation_id(operation),
            "tags": [operation.tag],
            "summary": operation.summary,
            "responses": {
                "2XX": success,
                "4XX": {"description": "Client error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if operation.authenticated {
            entry["security"] = json!([{ "bearer": [] }]);
        }
        if let Some(body) = operation.body {
            entry["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
        }
        if operation.path.contains("{id}") {
            entry["parameters"] =
                json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}]);
        }
        let item = paths.entry(operation.path).or_insert_with(|| json!({}));
        item[operation.method] = entry;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "VoxReach API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": all_schemas()
        }
    })
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
