//! The event catalogue: every event type VoxReach stores, its current schema
//! version, the stream it lives in and what it means. This is the one place
//! events are documented. A stored event's meaning never changes: a new schema
//! gets a new version here plus an upcaster from the old one.

use crate::event_log::{EventMetadata, NewEvent};
use serde::{de::DeserializeOwned, Serialize};
use uuid::Uuid;

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct EventSpec {
    pub event_type: &'static str,
    pub version: i32,
    pub stream_type: &'static str,
    pub meaning: &'static str,
}

pub const CATALOGUE: &[EventSpec] = &[
    EventSpec {
        event_type: "OrganizationCreated",
        version: 1,
        stream_type: "organization",
        meaning: "A customer organization (tenant) was created by its first owner at sign-up. Payload: name, ownerUserId, createdAt.",
    },
    EventSpec {
        event_type: "EmailClaimed",
        version: 1,
        stream_type: "user-email",
        meaning: "An e-mail address (normalized, stream keyed by its SHA-256) was claimed by a user; guarantees one account per address across all organizations. Payload: userId.",
    },
    EventSpec {
        event_type: "UserRegistered",
        version: 1,
        stream_type: "user",
        meaning: "A user joined an organization, either by sign-up (owner, with a password) or by invitation (no password until the invitation is accepted). Payload: email, name, role, passwordHash (argon2, optional), invitedBy (optional), registeredAt.",
    },
    EventSpec {
        event_type: "PasswordResetRequested",
        version: 1,
        stream_type: "user",
        meaning: "A single-use token to set the password was issued (purpose reset or invitation); only its SHA-256 is stored. Supersedes earlier unused tokens. Payload: tokenHash, purpose, expiresAt, requestedAt.",
    },
    EventSpec {
        event_type: "PasswordChanged",
        version: 1,
        stream_type: "user",
        meaning: "The user's password was set through a reset or invitation token, which is consumed. Payload: passwordHash, tokenHash, changedAt.",
    },
    EventSpec {
        event_type: "AgentCreated",
        version: 1,
        stream_type: "agent",
        meaning: "An AI voice agent was created, active. Payload: organizationId, spec {name, systemPrompt, firstMessage, voice {provider, voiceId, speed, pitch, stability}, language, transferNumber (E.164), model {provider, model, temperature, maxTokens}}, createdAt.",
    },
    EventSpec {
        event_type: "AgentUpdated",
        version: 1,
        stream_type: "agent",
        meaning: "The agent's configuration changed; carries the complete new spec. Payload: spec, updatedAt.",
    },
    EventSpec {
        event_type: "AgentActivated",
        version: 1,
        stream_type: "agent",
        meaning: "The agent takes calls again. Payload: at.",
    },
    EventSpec {
        event_type: "AgentDeactivated",
        version: 1,
        stream_type: "agent",
        meaning: "The agent stops taking calls; its configuration is kept. Payload: at.",
    },
    EventSpec {
        event_type: "AgentDeleted",
        version: 1,
        stream_type: "agent",
        meaning: "The agent was removed; its Vapi assistant is to be deleted. Payload: at.",
    },
    EventSpec {
        event_type: "AgentSyncedToVapi",
        version: 1,
        stream_type: "agent",
        meaning: "Vapi holds the agent as of `revision` (the count of configuration changes). Also recorded for an older revision when a push finished after a newer change: the assistant id is a fact whatever the revision. Payload: vapiAssistantId (null once deleted at Vapi), revision, syncedAt.",
    },
    EventSpec {
        event_type: "AgentAssistantCreationStarted",
        version: 1,
        stream_type: "agent",
        meaning: "The sync reactor is about to create the agent's Vapi assistant (the intent, recorded before the request): a retry or another worker finding it looks the assistant up at Vapi by our metadata instead of creating a second one. Payload: attempt, at.",
    },
    EventSpec {
        event_type: "AgentSyncFailed",
        version: 1,
        stream_type: "agent",
        meaning: "Pushing `revision` to Vapi failed. Payload: revision, reason, attempt, retryAt (null when retries are exhausted or the error is permanent), failedAt.",
    },
    EventSpec {
        event_type: "CallRequested",
        version: 1,
        stream_type: "call",
        meaning: "A user asked for an outbound call. Payload: organizationId, parties {vapiCallId, direction, agentId, phoneNumberId, customerNumber}, requestedBy, requestedAt.",
    },
    EventSpec {
        event_type: "CallPlacementStarted",
        version: 1,
        stream_type: "call",
        meaning: "The placement reactor is about to ask Vapi for the call (the intent, recorded before dialling): a retry or another worker finding it looks the call up at Vapi instead of dialling again. Payload: attempt (id of this attempt), at.",
    },
    EventSpec {
        event_type: "CallPlacedWithVapi",
        version: 1,
        stream_type: "call",
        meaning: "Vapi accepted the outbound call. Payload: vapiCallId, at.",
    },
    EventSpec {
        event_type: "CallPlacementFailed",
        version: 1,
        stream_type: "call",
        meaning: "Vapi refused or could not be reached to place the call. Payload: reason, at.",
    },
    EventSpec {
        event_type: "CallStatusUpdated",
        version: 1,
        stream_type: "call",
        meaning: "Vapi reported a status (scheduled, queued, ringing, in-progress, forwarding, ended); late reports are kept for the timeline but never move a call backwards. Payload: parties, status, endedReason, at (Vapi's timestamp).",
    },
    EventSpec {
        event_type: "CallEnded",
        version: 1,
        stream_type: "call",
        meaning: "Vapi's end-of-call report. Payload: parties, report {endedReason, startedAt, endedAt, durationSeconds, cost, transcript, messages[{role, message, time, secondsFromStart}], recordingUrl, stereoRecordingUrl, summary, structuredData, successEvaluation}, at.",
    },
    EventSpec {
        event_type: "CallOutcomeRecorded",
        version: 1,
        stream_type: "call",
        meaning: "The call's outcome was set (qualified, appointment, sale, not_interested, callback_requested, voicemail, no_answer, failed). Payload: outcome, notes, source (api, tool, analysis), at.",
    },
    EventSpec {
        event_type: "VapiMessageUnmatched",
        version: 1,
        stream_type: "unmatched-vapi-call",
        meaning: "A Vapi server message for a call no organization could be matched to; kept, not dropped. Stored under the nil organization. Payload: messageType, vapiCallId, assistantId, phoneNumberId, message.",
    },
    EventSpec {
        event_type: "PhoneNumberAdded",
        version: 1,
        stream_type: "phone-number",
        meaning: "A phone number was provisioned (Vapi, by area code) or imported (twilio, vonage, telnyx, byo-sip, with our credential id). Payload: organizationId, name, source {provider, areaCode | number + credentialId}, agentId, at.",
    },
    EventSpec {
        event_type: "PhoneNumberAssigned",
        version: 1,
        stream_type: "phone-number",
        meaning: "The number now rings the given agent (null: unassigned). Payload: agentId, at.",
    },
    EventSpec {
        event_type: "PhoneNumberRemoved",
        version: 1,
        stream_type: "phone-number",
        meaning: "The number was removed; it is to be released at Vapi. Payload: at.",
    },
    EventSpec {
        event_type: "PhoneNumberSyncedToVapi",
        version: 1,
        stream_type: "phone-number",
        meaning: "Vapi holds the number as of `revision`. Payload: vapiPhoneNumberId (null once released), number (E.164, as Vapi assigned it), revision, at.",
    },
    EventSpec {
        event_type: "PhoneNumberSyncFailed",
        version: 1,
        stream_type: "phone-number",
        meaning: "Pushing `revision` to Vapi failed. Payload: revision, reason, attempt, retryAt (null: no more retries), at.",
    },
    EventSpec {
        event_type: "PhoneNumberStatusChanged",
        version: 1,
        stream_type: "phone-number",
        meaning: "Vapi reports a new status for the number (monitoring). Payload: status, at.",
    },
    EventSpec {
        event_type: "PhoneNumberProvisioningStarted",
        version: 1,
        stream_type: "phone-number",
        meaning: "The sync reactor is about to buy or import the number at Vapi (the intent, recorded before the request): a retry or another worker finding it looks the number up at Vapi (by the name `vx-<our id>` or the E.164 number) instead of buying a second one. Payload: attempt, at.",
    },
    EventSpec {
        event_type: "CredentialAdded",
        version: 1,
        stream_type: "credential",
        meaning: "Provider credentials were stored, encrypted (XChaCha20-Poly1305, bound to the credential id). Payload: organizationId, provider (twilio, vonage, telnyx, byo-sip-trunk), name, sealed, hint (masked), at.",
    },
    EventSpec {
        event_type: "CredentialRegisteredWithVapi",
        version: 1,
        stream_type: "credential",
        meaning: "Vapi holds the credential under this id. Payload: vapiCredentialId, at.",
    },
    EventSpec {
        event_type: "CredentialRemoved",
        version: 1,
        stream_type: "credential",
        meaning: "The credential was deleted. Payload: at.",
    },
    EventSpec {
        event_type: "VariantCreated",
        version: 1,
        stream_type: "script-variant",
        meaning: "A script variant of an agent's prompt was written. Payload: organizationId, agentId, spec {name, prompt, isControl, trafficPercent}, at.",
    },
    EventSpec {
        event_type: "VariantUpdated",
        version: 1,
        stream_type: "script-variant",
        meaning: "The variant's spec changed (only its name while it is in a running test). Payload: spec, at.",
    },
    EventSpec {
        event_type: "VariantDeleted",
        version: 1,
        stream_type: "script-variant",
        meaning: "The variant was deleted. Payload: at.",
    },
    EventSpec {
        event_type: "VariantEnrolled",
        version: 1,
        stream_type: "script-variant",
        meaning: "The variant joined a running test, freezing its prompt. Payload: testId, at.",
    },
    EventSpec {
        event_type: "VariantReleased",
        version: 1,
        stream_type: "script-variant",
        meaning: "The variant's test ended; it may change again. Payload: testId, at.",
    },
    EventSpec {
        event_type: "AgentTestStarted",
        version: 1,
        stream_type: "agent-experiments",
        meaning: "The agent's running A/B test (at most one). Payload: testId, at.",
    },
    EventSpec {
        event_type: "AgentTestEnded",
        version: 1,
        stream_type: "agent-experiments",
        meaning: "The agent's running test ended. Payload: testId, at.",
    },
    EventSpec {
        event_type: "AbTestStarted",
        version: 1,
        stream_type: "ab-test",
        meaning: "An A/B test started with a frozen copy of its variants. Payload: organizationId, agentId, settings {name, successOutcome, minSampleSize, autoPromote}, variants [{variantId, name, prompt, isControl, trafficPercent}], at.",
    },
    EventSpec {
        event_type: "AbTestPaused",
        version: 1,
        stream_type: "ab-test",
        meaning: "The test stopped assigning calls. Payload: at.",
    },
    EventSpec {
        event_type: "AbTestResumed",
        version: 1,
        stream_type: "ab-test",
        meaning: "The test assigns calls again. Payload: at.",
    },
    EventSpec {
        event_type: "VariantAssigned",
        version: 1,
        stream_type: "ab-test",
        meaning: "A call was given a variant before it started (sticky per customer number). Payload: callId, variantId, customerNumber, at.",
    },
    EventSpec {
        event_type: "AbTestLookTaken",
        version: 1,
        stream_type: "ab-test",
        meaning: "The winner rule looked at the results once (look k at minSampleSize x 2^k finished calls). Payload: look, finishedCalls, winner (null: no significant difference), at.",
    },
    EventSpec {
        event_type: "AbTestWinnerDeclared",
        version: 1,
        stream_type: "ab-test",
        meaning: "A winner was chosen, by a person (manual) or by the sequential test. Payload: variantId, decidedBy, at.",
    },
    EventSpec {
        event_type: "AbTestCompleted",
        version: 1,
        stream_type: "ab-test",
        meaning: "The test ended. Payload: at.",
    },
    EventSpec {
        event_type: "SlackIntegrationConnected",
        version: 1,
        stream_type: "slack-integration",
        meaning: "A Slack incoming webhook was connected. Payload: organizationId, workspaceName, channel, sealedWebhookUrl (encrypted), webhookHint, preferences {routes {hot_lead|appointment_booked|call_failed: {enabled, mentions}}, timezone, muteHours {start, end}, failuresBypassMute}, at.",
    },
    EventSpec {
        event_type: "SlackPreferencesUpdated",
        version: 1,
        stream_type: "slack-integration",
        meaning: "Routing, mentions, time zone or mute hours changed. Payload: preferences, at.",
    },
    EventSpec {
        event_type: "SlackIntegrationBroken",
        version: 1,
        stream_type: "slack-integration",
        meaning: "Slack answered with a permanent error (revoked or invalid webhook, archived channel); delivery stops until reconnected. Payload: reason, at.",
    },
    EventSpec {
        event_type: "SlackIntegrationDisconnected",
        version: 1,
        stream_type: "slack-integration",
        meaning: "The integration was removed. Payload: at.",
    },
    EventSpec {
        event_type: "SlackNotificationSent",
        version: 1,
        stream_type: "slack-notification",
        meaning: "A notification reached Slack. Stream per (integration, triggering event). Payload: integrationId, kind, source, at.",
    },
    EventSpec {
        event_type: "SlackNotificationFailed",
        version: 1,
        stream_type: "slack-notification",
        meaning: "A delivery attempt failed. Payload: integrationId, kind, source, reason, attempt, retryAt (null: given up), at.",
    },
];

/// Current schema version of an event type, if it is in the catalogue.
pub fn current_version(event_type: &str) -> Option<i32> {
    CATALOGUE
        .iter()
        .find(|spec| spec.event_type == event_type)
        .map(|spec| spec.version)
}

/// Translates one stored event from `from_version` to `from_version + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: i32,
    pub upcast: fn(serde_json::Value) -> serde_json::Value,
}

/// The upcasters of stored event versions that are no longer current.
/// Empty while every event type is at its first version.
pub const UPCASTERS: &[Upcaster] = &[];

/// Brings a stored payload up to the current version of its type.
pub fn upcast(event_type: &str, version: i32, payload: serde_json::Value) -> (i32, serde_json::Value) {
    upcast_with(UPCASTERS, event_type, version, payload)
}

/// `upcast` over an explicit chain, so the mechanism is testable before any
/// event has a second version.
pub fn upcast_with(
    upcasters: &[Upcaster],
    event_type: &str,
    mut version: i32,
    mut payload: serde_json::Value,
) -> (i32, serde_json::Value) {
    while let Some(step) = upcasters
        .iter()
        .find(|u| u.event_type == event_type && u.from_version == version)
    {
        payload = (step.upcast)(payload);
        version += 1;
    }
    (version, payload)
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event type {event_type} version {version} is not the current version {current:?}")]
    UnknownVersion {
        event_type: String,
        version: i32,
        current: Option<i32>,
    },
    #[error("event {event_type} payload does not match its schema: {source}")]
    Payload {
        event_type: String,
        source: serde_json::Error,
    },
}

/// A typed event enum of one aggregate. Enums are serialized adjacently tagged
/// (`#[serde(tag = "type", content = "data")]`): the tag is the stored event
/// type, the content the payload.
pub trait DomainEvent: Sized + Serialize + DeserializeOwned {
    fn event_type(&self) -> &'static str;

    fn to_new_event(&self, metadata: &EventMetadata) -> NewEvent {
        let event_type = self.event_type();
        let mut tagged = serde_json::to_value(self).expect("domain events serialize to JSON");
        let payload = tagged
            .get_mut("data")
            .map(serde_json::Value::take)
            .unwrap_or(serde_json::Value::Null);
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event_type.to_owned(),
            event_version: current_version(event_type)
                .unwrap_or_else(|| panic!("event type {event_type} is missing from the catalogue")),
            payload,
            metadata: metadata.clone(),
        }
    }

    /// Decodes an event that the store already upcast to its current version.
    fn decode(event_type: &str, version: i32, payload: &serde_json::Value) -> Result<Self, DecodeError> {
        let current = current_version(event_type);
        if current != Some(version) {
            return Err(DecodeError::UnknownVersion {
                event_type: event_type.to_owned(),
                version,
                current,
            });
        }
        let tagged = serde_json::json!({ "type": event_type, "data": payload });
        serde_json::from_value(tagged).map_err(|source| DecodeError::Payload {
            event_type: event_type.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn catalogue_has_no_duplicate_types() {
        let mut names: Vec<_> = CATALOGUE.iter().map(|s| s.event_type).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn upcasting_walks_the_chain_to_the_newest_version() {
        fn rename_phone(mut v: serde_json::Value) -> serde_json::Value {
            let phone = v["phone"].take();
            v["customerNumber"] = phone;
            v.as_object_mut().unwrap().remove("phone");
            v
        }
        fn add_direction(mut v: serde_json::Value) -> serde_json::Value {
            v["direction"] = json!("outbound");
            v
        }
        let chain = [
            Upcaster {
                event_type: "CallRequested",
                from_version: 1,
                upcast: rename_phone,
            },
            Upcaster {
                event_type: "CallRequested",
                from_version: 2,
                upcast: add_direction,
            },
        ];
        let (version, payload) = upcast_with(&chain, "CallRequested", 1, json!({"phone": "+15551234567"}));
        assert_eq!(version, 3);
        assert_eq!(
            payload,
            json!({"customerNumber": "+15551234567", "direction": "outbound"})
        );

        let untouched = upcast_with(&chain, "OtherEvent", 1, json!({"a": 1}));
        assert_eq!(untouched, (1, json!({"a": 1})));
    }
}
