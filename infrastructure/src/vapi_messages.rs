//! Vapi server messages: authenticating them and reading their (several) layouts.

use application::calls::{CallRef, ServerMessage, ServerReply, ToolCall};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use domain::calls::{CallDirection, CallReport, CallStatus, EndedReason, TranscriptMessage};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// How far an `X-Vapi-Timestamp` may be from our clock.
pub const SIGNATURE_TOLERANCE: chrono::Duration = chrono::Duration::minutes(5);

/// The ways a server message may prove it comes from Vapi (`VAPI_WEBHOOK_AUTH`,
/// comma-separated): `secret` — the shared secret in `X-Vapi-Secret` (what
/// assistants we create send); `bearer` — it as `Authorization: Bearer`;
/// `hmac` — an HMAC-SHA256 of the message in `X-Vapi-Signature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookAuthModes {
    pub secret_header: bool,
    pub bearer: bool,
    pub hmac: bool,
}

impl WebhookAuthModes {
    pub const ALL: Self = Self {
        secret_header: true,
        bearer: true,
        hmac: true,
    };

    /// Parses `secret,bearer,hmac` (any non-empty subset, in any order).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut modes = Self {
            secret_header: false,
            bearer: false,
            hmac: false,
        };
        for mode in raw.split(',').map(str::trim) {
            match mode {
                "secret" => modes.secret_header = true,
                "bearer" => modes.bearer = true,
                "hmac" => modes.hmac = true,
                other => return Err(format!("{other:?} is not one of secret, bearer, hmac")),
            }
        }
        Ok(modes)
    }
}

/// Checks a server message against `secret` in the accepted `modes`. An HMAC
/// covers `timestamp.body` when `X-Vapi-Timestamp` is sent — which must then be
/// within [`SIGNATURE_TOLERANCE`] of `now` (seconds or milliseconds since the
/// epoch). An HMAC of the body alone can be replayed forever, so it is accepted
/// only when no timestamp is sent and the `secret` mode is off (a deployment
/// that signs without timestamps). `header` looks a header up case-insensitively.
pub fn is_authentic(
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
    secret: &str,
    modes: WebhookAuthModes,
    now: DateTime<Utc>,
) -> bool {
    if secret.is_empty() {
        return false;
    }
    if modes.secret_header && header("x-vapi-secret").is_some_and(|given| same(given.trim(), secret)) {
        return true;
    }
    if modes.bearer
        && header("authorization")
            .and_then(|v| v.strip_prefix("Bearer ").map(str::trim).map(str::to_owned))
            .is_some_and(|token| same(&token, secret))
    {
        return true;
    }
    let Some(signature) = header("x-vapi-signature").filter(|_| modes.hmac) else {
        return false;
    };
    let signature = signature.trim().trim_start_matches("sha256=");
    let given: Vec<u8> = match hex::decode(signature) {
        Ok(bytes) => bytes,
        Err(_) => match STANDARD.decode(signature) {
            Ok(bytes) => bytes,
            Err(_) => return false,
        },
    };
    let signed = match header("x-vapi-timestamp") {
        None if modes.secret_header => return false,
        None => body.to_vec(),
        Some(timestamp) => {
            let Some(at) = timestamp.trim().parse::<i64>().ok().and_then(|n| {
                let millis = if n > 100_000_000_000 { n } else { n.saturating_mul(1000) };
                Utc.timestamp_millis_opt(millis).single()
            }) else {
                return false;
            };
            if (now - at).abs() > SIGNATURE_TOLERANCE {
                return false;
            }
            [timestamp.trim().as_bytes(), b".", body].concat()
        }
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(&signed);
    mac.verify_slice(&given).is_ok()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("the body is not a Vapi server message: {0}")]
    Malformed(String),
}

fn malformed(reason: &str) -> MessageError {
    MessageError::Malformed(reason.to_owned())
}

fn text(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

fn uuid(value: &Value) -> Option<Uuid> {
    value.as_str().and_then(|s| Uuid::parse_str(s).ok())
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => n.as_i64().and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        Value::String(s) => DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
}

fn first<T>(candidates: impl IntoIterator<Item = Option<T>>) -> Option<T> {
    candidates.into_iter().flatten().next()
}

fn call_ref(message: &Value) -> Result<CallRef, MessageError> {
    let call = &message["call"];
    let vapi_call_id = text(&call["id"]).ok_or_else(|| malformed("message.call.id is missing"))?;
    // Our ids: in the call's metadata, or in the assistant overrides we placed it with.
    let call_meta = first(
        [Some(&call["metadata"]), Some(&call["assistantOverrides"]["metadata"])]
            .into_iter()
            .map(|m| m.filter(|v| v["voxreachCallId"].is_string())),
    )
    .unwrap_or(&call["metadata"]);
    let assistant_meta = first(
        [
            Some(&message["assistant"]["metadata"]),
            Some(&call["assistant"]["metadata"]),
        ]
        .into_iter()
        .map(|m| m.filter(|v| v.is_object())),
    )
    .unwrap_or(&Value::Null);
    let direction = match call["type"].as_str() {
        Some("inboundPhoneCall") => Some(CallDirection::Inbound),
        Some("outboundPhoneCall") => Some(CallDirection::Outbound),
        Some("webCall") => Some(CallDirection::Web),
        _ => None,
    };
    Ok(CallRef {
        vapi_call_id,
        call_id: uuid(&call_meta["voxreachCallId"]),
        organization_id: first([
            uuid(&call_meta["voxreachOrganizationId"]),
            uuid(&assistant_meta["voxreachOrganizationId"]),
        ]),
        agent_id: first([
            uuid(&call_meta["voxreachAgentId"]),
            uuid(&assistant_meta["voxreachAgentId"]),
        ]),
        vapi_assistant_id: first([text(&call["assistantId"]), text(&message["assistant"]["id"])]),
        vapi_phone_number_id: first([text(&call["phoneNumberId"]), text(&message["phoneNumber"]["id"])]),
        direction,
        customer_number: first([text(&message["customer"]["number"]), text(&call["customer"]["number"])]),
    })
}

fn transcript_messages(value: &Value) -> Vec<TranscriptMessage> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|m| {
                    Some(TranscriptMessage {
                        role: text(&m["role"])?,
                        message: text(&m["message"]).or_else(|| text(&m["content"]))?,
                        time: m["time"].as_f64(),
                        end_time: m["endTime"].as_f64(),
                        duration: m["duration"].as_f64(),
                        seconds_from_start: m["secondsFromStart"].as_f64(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Both layouts: `artifact` / `analysis` objects, and the older top-level fields.
fn report(message: &Value) -> CallReport {
    let artifact = &message["artifact"];
    let analysis = &message["analysis"];
    let started_at = time(&message["startedAt"]).or_else(|| time(&message["call"]["startedAt"]));
    let ended_at = time(&message["endedAt"]).or_else(|| time(&message["call"]["endedAt"]));
    let duration_seconds = first([
        message["durationSeconds"].as_f64(),
        message["durationMs"].as_f64().map(|ms| ms / 1000.0),
        started_at
            .zip(ended_at)
            .map(|(s, e)| (e - s).num_milliseconds() as f64 / 1000.0),
    ]);
    let messages = transcript_messages(if artifact["messages"].is_array() {
        &artifact["messages"]
    } else {
        &message["messages"]
    });
    let success_evaluation = match &analysis["successEvaluation"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    CallReport {
        ended_reason: text(&message["endedReason"])
            .or_else(|| text(&message["call"]["endedReason"]))
            .map(|raw| EndedReason::parse(&raw)),
        started_at,
        ended_at,
        duration_seconds,
        cost: message["cost"].as_f64().or_else(|| message["call"]["cost"].as_f64()),
        transcript: first([text(&artifact["transcript"]), text(&message["transcript"])]),
        messages,
        recording_url: first([
            text(&artifact["recordingUrl"]),
            text(&artifact["recording"]["mono"]["combinedUrl"]),
            text(&message["recordingUrl"]),
        ]),
        stereo_recording_url: first([
            text(&artifact["stereoRecordingUrl"]),
            text(&artifact["recording"]["stereoUrl"]),
            text(&message["stereoRecordingUrl"]),
        ]),
        summary: first([text(&analysis["summary"]), text(&message["summary"])]),
        structured_data: Some(analysis["structuredData"].clone()).filter(|v| !v.is_null()),
        success_evaluation,
    }
}

/// Tool-call items come as `{id, name, parameters}`, `{id, name, arguments}` or
/// `{id, function: {name, arguments}}`; arguments as an object or a JSON string.
fn tool_calls(message: &Value) -> Vec<ToolCall> {
    let parse_arguments = |value: &Value| match value {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        Value::Null => Value::Object(Default::default()),
        other => other.clone(),
    };
    let from_item = |item: &Value| -> Option<ToolCall> {
        let function = &item["function"];
        let name = first([text(&item["name"]), text(&function["name"])])?;
        let arguments = [
            &item["parameters"],
            &item["arguments"],
            &function["arguments"],
            &function["parameters"],
        ]
        .into_iter()
        .find(|v| !v.is_null())
        .map(parse_arguments)
        .unwrap_or_else(|| Value::Object(Default::default()));
        Some(ToolCall {
            id: text(&item["id"])?,
            name,
            arguments,
        })
    };
    let mut calls: Vec<ToolCall> = message["toolCallList"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(from_item)
        .collect();
    if calls.is_empty() {
        calls = message["toolWithToolCallList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| from_item(&entry["toolCall"]))
            .collect();
    }
    calls
}

/// Reads a request body `{"message": {...}}`.
pub fn parse(body: &[u8], now: DateTime<Utc>) -> Result<ServerMessage, MessageError> {
    let envelope: Value = serde_json::from_slice(body).map_err(|e| MessageError::Malformed(e.to_string()))?;
    let message = &envelope["message"];
    let kind = message["type"]
        .as_str()
        .ok_or_else(|| malformed("message.type is missing"))?;
    let at = time(&message["timestamp"]).unwrap_or(now);
    Ok(match kind {
        "status-update" => ServerMessage::StatusUpdate {
            call: call_ref(message)?,
            status: text(&message["status"])
                .map(|raw| CallStatus::parse(&raw))
                .ok_or_else(|| malformed("message.status is missing"))?,
            ended_reason: text(&message["endedReason"]).map(|raw| EndedReason::parse(&raw)),
            at,
        },
        "end-of-call-report" => ServerMessage::EndOfCallReport {
            call: call_ref(message)?,
            report: Box::new(report(message)),
            at,
        },
        "tool-calls" => ServerMessage::ToolCalls {
            call: call_ref(message)?,
            calls: tool_calls(message),
        },
        "assistant-request" => ServerMessage::AssistantRequest {
            call: call_ref(message)?,
        },
        other => ServerMessage::Other { kind: other.to_owned() },
    })
}

/// Our reply in the shape Vapi expects for the message it answers: `{}`,
/// tool results, the assistant for an inbound call, or a refusal it speaks.
pub fn reply_body(reply: &ServerReply) -> Value {
    match reply {
        ServerReply::Ack => json!({}),
        ServerReply::ToolResults(results) => {
            let results: Vec<Value> = results
                .iter()
                .map(|r| {
                    let mut result = json!({ "toolCallId": r.tool_call_id, "name": r.name });
                    match &r.outcome {
                        Ok(text) => result["result"] = json!(text),
                        Err(message) => result["error"] = json!(message),
                    }
                    result
                })
                .collect();
            json!({ "results": results })
        }
        ServerReply::Assistant { assistant_id, setup } => {
            let mut body = json!({ "assistantId": assistant_id });
            if let Some(setup) = setup {
                body["assistantOverrides"] = crate::vapi::assistant_overrides(setup);
            }
            body
        }
        ServerReply::Refusal(message) => json!({ "error": message }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers<'a>(pairs: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn authenticates_by_secret_bearer_or_signature() {
        const ALL: WebhookAuthModes = WebhookAuthModes::ALL;
        let body = br#"{"message":{"type":"status-update"}}"#;
        let secret = "s3cret";
        let now: DateTime<Utc> = "2026-11-25T12:00:00Z".parse().unwrap();
        assert!(is_authentic(
            headers(&[("X-Vapi-Secret", secret.into())]),
            body,
            secret,
            ALL,
            now
        ));
        assert!(is_authentic(
            headers(&[("Authorization", format!("Bearer {secret}"))]),
            body,
            secret,
            ALL,
            now
        ));
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        let signature = mac.finalize().into_bytes();
        // A body-only signature never expires: refused while the secret header is accepted…
        assert!(!is_authentic(
            headers(&[("x-vapi-signature", hex::encode(signature))]),
            body,
            secret,
            ALL,
            now
        ));
        // …and accepted (hex or base64) where only signatures are configured.
        let hmac_only = WebhookAuthModes::parse("hmac").unwrap();
        assert!(is_authentic(
            headers(&[("x-vapi-signature", hex::encode(signature))]),
            body,
            secret,
            hmac_only,
            now
        ));
        assert!(is_authentic(
            headers(&[("x-vapi-signature", STANDARD.encode(signature))]),
            body,
            secret,
            hmac_only,
            now
        ));
        assert!(!is_authentic(
            headers(&[("x-vapi-signature", hex::encode(signature))]),
            b"tampered",
            secret,
            hmac_only,
            now
        ));
        // A mode that is not configured is not accepted.
        assert!(!is_authentic(
            headers(&[("X-Vapi-Secret", secret.into())]),
            body,
            secret,
            hmac_only,
            now
        ));
        assert!(!is_authentic(
            headers(&[("Authorization", format!("Bearer {secret}"))]),
            body,
            secret,
            WebhookAuthModes::parse("secret, hmac").unwrap(),
            now
        ));
        assert!(WebhookAuthModes::parse("secret,basic").is_err());
        assert!(!is_authentic(
            headers(&[("X-Vapi-Secret", "wrong".into())]),
            body,
            secret,
            ALL,
            now
        ));
        assert!(!is_authentic(headers(&[]), body, secret, ALL, now));
        assert!(!is_authentic(
            headers(&[("X-Vapi-Secret", String::new())]),
            body,
            "",
            ALL,
            now
        ));
        // With a timestamp, the signature covers `timestamp.body` and the time must be recent.
        let sign = |text: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(text);
            hex::encode(mac.finalize().into_bytes())
        };
        let fresh = now.timestamp_millis().to_string();
        let signed_fresh = sign(&[fresh.as_bytes(), b".", body].concat());
        let with = |timestamp: &str, signature: &str| {
            vec![
                ("x-vapi-timestamp", timestamp.to_owned()),
                ("x-vapi-signature", signature.to_owned()),
            ]
        };
        assert!(is_authentic(
            headers(&with(&fresh, &signed_fresh)),
            body,
            secret,
            ALL,
            now
        ));
        assert!(is_authentic(
            headers(&with(&fresh, &signed_fresh)),
            body,
            secret,
            ALL,
            now + chrono::Duration::minutes(4)
        ));
        assert!(
            !is_authentic(
                headers(&with(&fresh, &signed_fresh)),
                body,
                secret,
                ALL,
                now + chrono::Duration::minutes(6)
            ),
            "replayed late"
        );
        assert!(
            !is_authentic(headers(&with(&fresh, &hex::encode(signature))), body, secret, ALL, now),
            "a body-only signature with a timestamp"
        );
        assert!(!is_authentic(
            headers(&with("yesterday", &signed_fresh)),
            body,
            secret,
            ALL,
            now
        ));
        let seconds = now.timestamp().to_string();
        let signed_seconds = sign(&[seconds.as_bytes(), b".", body].concat());
        assert!(is_authentic(
            headers(&with(&seconds, &signed_seconds)),
            body,
            secret,
            ALL,
            now
        ));
    }

    #[test]
    fn reads_both_end_of_call_report_layouts() {
        let modern = json!({"message": {
            "type": "end-of-call-report", "timestamp": 1764000000000i64, "endedReason": "customer-ended-call",
            "call": {"id": "call_1", "type": "inboundPhoneCall", "assistantId": "asst_1"},
            "customer": {"number": "+14155552671"},
            "cost": 0.42, "startedAt": "2026-11-24T12:00:00.000Z", "endedAt": "2026-11-24T12:04:32.000Z",
            "artifact": {"transcript": "AI: Hi\nUser: Hello", "recordingUrl": "https://r/1.wav", "stereoRecordingUrl": "https://r/1s.wav",
                         "messages": [{"role": "bot", "message": "Hi", "time": 1.0, "secondsFromStart": 0.5}, {"role": "user", "message": "Hello", "time": 2.0, "secondsFromStart": 1.5}]},
            "analysis": {"summary": "Qualified lead", "structuredData": {"budget": 5000}, "successEvaluation": true}
        }});
        let legacy = json!({"message": {
            "type": "end-of-call-report", "endedReason": "customer-ended-call",
            "call": {"id": "call_1"}, "transcript": "AI: Hi\nUser: Hello", "summary": "Qualified lead",
            "recordingUrl": "https://r/1.wav", "durationSeconds": 272.0,
            "messages": [{"role": "bot", "message": "Hi", "time": 1.0, "secondsFromStart": 0.5}]
        }});
        let now = Utc::now();
        let ServerMessage::EndOfCallReport { call, report, .. } = parse(modern.to_string().as_bytes(), now).unwrap()
        else {
            panic!()
        };
        assert_eq!(call.direction, Some(CallDirection::Inbound));
        assert_eq!(call.customer_number.as_deref(), Some("+14155552671"));
        assert_eq!(report.duration_seconds, Some(272.0));
        assert_eq!(report.messages.len(), 2);
        assert_eq!(report.success_evaluation.as_deref(), Some("true"));
        assert_eq!(report.structured_data, Some(json!({"budget": 5000})));
        let ServerMessage::EndOfCallReport { report: old, .. } = parse(legacy.to_string().as_bytes(), now).unwrap()
        else {
            panic!()
        };
        assert_eq!(old.transcript, report.transcript);
        assert_eq!(old.summary, report.summary);
        assert_eq!(old.recording_url, report.recording_url);
        assert_eq!(old.duration_seconds, Some(272.0));
        assert_eq!(old.messages.len(), 1);
    }

    #[test]
    fn reads_every_tool_call_shape() {
        let body = json!({"message": {"type": "tool-calls", "call": {"id": "c"}, "toolCallList": [
            {"id": "t1", "name": "a", "parameters": {"x": 1}},
            {"id": "t2", "name": "b", "arguments": "{\"y\": 2}"},
            {"id": "t3", "type": "function", "function": {"name": "c", "arguments": {"z": 3}}}
        ]}});
        let ServerMessage::ToolCalls { calls, .. } = parse(body.to_string().as_bytes(), Utc::now()).unwrap() else {
            panic!()
        };
        let names: Vec<_> = calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("t1", "a", json!({"x": 1})),
                ("t2", "b", json!({"y": 2})),
                ("t3", "c", json!({"z": 3}))
            ]
        );
        let nested = json!({"message": {"type": "tool-calls", "call": {"id": "c"}, "toolWithToolCallList": [
            {"type": "function", "name": "d", "toolCall": {"id": "t4", "function": {"name": "d", "arguments": "{}"}}}
        ]}});
        let ServerMessage::ToolCalls { calls, .. } = parse(nested.to_string().as_bytes(), Utc::now()).unwrap() else {
            panic!()
        };
        assert_eq!(calls[0].id, "t4");
    }

    #[test]
    fn rejects_bodies_that_are_not_server_messages() {
        for body in [
            "",
            "[]",
            "{\"message\": {}}",
            "{\"message\": {\"type\": \"status-update\", \"call\": {}}}",
        ] {
            assert!(parse(body.as_bytes(), Utc::now()).is_err(), "{body}");
        }
    }
}
