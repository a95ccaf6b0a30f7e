//! The sign-in protocol every integration connected by signing in follows
//! (calendars, CRMs): who signed in for which organization with which
//! provider, and where the connection stands as its stream tells —
//! connected, sign-in failed, refused by the provider until a new sign-in,
//! disconnected. Each feature records these steps as its own events and
//! keeps its own rules on when a step is a repeat; the payloads and the
//! state they build are this module's.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who signed in, for which organization, with which provider: what opens an
/// integration's stream. Flattened into the events that record a connection
/// or a failed sign-in, so their stored payloads stay flat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignIn<P> {
    pub organization_id: Uuid,
    /// The user who signed in.
    pub connected_by: Uuid,
    pub provider: P,
}

/// A feature's status enum: the statuses every connection passes through
/// (a feature may have more of its own, e.g. a CRM's throttling).
pub trait ConnectionStatus: Copy + PartialEq {
    /// Working.
    const ACTIVE: Self;
    /// The provider no longer accepts our tokens: the user must sign in again.
    const NEEDS_REAUTH: Self;
    /// The sign-in failed (the status reason says why).
    const SIGN_IN_FAILED: Self;
}

/// Where an integration's connection stands, from its sign-in events.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection<P, S> {
    pub organization_id: Option<Uuid>,
    pub provider: Option<P>,
    pub status: S,
    /// Why the status is not active.
    pub status_reason: Option<String>,
    link: Link,
}

/// Whether a connection is made: a stream with only a failed sign-in never had one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    NeverMade,
    Live,
    Disconnected,
}

impl<P, S: ConnectionStatus> Default for Connection<P, S> {
    fn default() -> Self {
        Self {
            organization_id: None,
            provider: None,
            status: S::ACTIVE,
            status_reason: None,
            link: Link::NeverMade,
        }
    }
}

impl<P: Copy, S: ConnectionStatus> Connection<P, S> {
    /// Whether the stream has started (a connection or a failed sign-in).
    pub fn exists(&self) -> bool {
        self.provider.is_some()
    }

    /// Connected, and not disconnected since.
    pub fn is_live(&self) -> bool {
        self.link == Link::Live
    }

    /// Disconnected since the last connection.
    pub fn is_disconnected(&self) -> bool {
        self.link == Link::Disconnected
    }

    pub fn needs_reauth(&self) -> bool {
        self.status == S::NEEDS_REAUTH
    }

    /// A connection was made (or made again, replacing the previous one).
    pub fn connect(&mut self, sign_in: &SignIn<P>) {
        self.signed_in(sign_in, S::ACTIVE, None);
        self.link = Link::Live;
    }

    /// A sign-in ended without a connection.
    pub fn fail_sign_in(&mut self, sign_in: &SignIn<P>, reason: &str) {
        self.signed_in(sign_in, S::SIGN_IN_FAILED, Some(reason.to_owned()));
    }

    fn signed_in(&mut self, sign_in: &SignIn<P>, status: S, reason: Option<String>) {
        self.organization_id = Some(sign_in.organization_id);
        self.provider = Some(sign_in.provider);
        self.status = status;
        self.status_reason = reason;
    }

    /// The provider refused our tokens for good.
    pub fn require_reauth(&mut self, reason: &str) {
        self.status = S::NEEDS_REAUTH;
        self.status_reason = Some(reason.to_owned());
    }

    pub fn disconnect(&mut self) {
        self.link = Link::Disconnected;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{CalendarEvent, CalendarProvider, CalendarSettings};
    use crate::crm::{CrmEvent, CrmProvider, CrmSettings};
    use crate::event_log::StoredPayload;
    use crate::events::DomainEvent;
    use chrono::{DateTime, Utc};

    fn at() -> DateTime<Utc> {
        "2026-03-02T13:00:00Z".parse().unwrap()
    }

    fn sign_in<P>(provider: P) -> SignIn<P> {
        SignIn {
            organization_id: Uuid::from_u128(1),
            connected_by: Uuid::from_u128(2),
            provider,
        }
    }

    /// `event` is stored byte for byte as `stored` (what it was before its
    /// sign-in fields were grouped), and `stored` reads back as `event`.
    fn assert_stored_as<E: DomainEvent + PartialEq + std::fmt::Debug>(event: E, stored: &str) {
        assert_eq!(serde_json::to_string(&event).unwrap(), stored);
        let tagged: serde_json::Value = serde_json::from_str(stored).unwrap();
        let payload = &tagged["data"];
        assert_eq!(E::decode(event.event_type(), 1, payload).unwrap(), event);
        let read = StoredPayload::from_value(payload);
        assert_eq!(E::decode_stored_payload(event.event_type(), 1, &read).unwrap(), event);
    }

    #[test]
    fn sign_in_events_are_stored_flat_as_before() {
        assert_stored_as(
            CalendarEvent::CalendarConnected {
                sign_in: sign_in(CalendarProvider::Calendly),
                account: "ann@example.com".into(),
                webhook_subscription: Some("https://api.calendly.com/webhook_subscriptions/W1".into()),
                settings: CalendarSettings::default(),
                at: at(),
            },
            r#"{"type":"CalendarConnected","data":{"organizationId":"00000000-0000-0000-0000-000000000001","connectedBy":"00000000-0000-0000-0000-000000000002","provider":"calendly","account":"ann@example.com","webhookSubscription":"https://api.calendly.com/webhook_subscriptions/W1","settings":{"calendarId":null,"bufferMinutes":15,"workingHoursStart":"09:00","workingHoursEnd":"17:00","workingDays":["mon","tue","wed","thu","fri"],"timezone":"America/New_York","minimumNoticeMinutes":120,"bookingHorizonDays":30,"defaultDurationMinutes":30,"agentIds":[],"isDefault":false},"at":"2026-03-02T13:00:00Z"}}"#,
        );
        assert_stored_as(
            CalendarEvent::CalendarSignInFailed {
                sign_in: sign_in(CalendarProvider::Outlook),
                reason: "access_denied".into(),
                at: at(),
            },
            r#"{"type":"CalendarSignInFailed","data":{"organizationId":"00000000-0000-0000-0000-000000000001","connectedBy":"00000000-0000-0000-0000-000000000002","provider":"outlook","reason":"access_denied","at":"2026-03-02T13:00:00Z"}}"#,
        );
        assert_stored_as(
            CrmEvent::CrmConnected {
                sign_in: sign_in(CrmProvider::Hubspot),
                account_id: "4711".into(),
                scopes: vec!["crm.objects.contacts.write".into()],
                settings: CrmSettings::defaults_for(CrmProvider::Hubspot),
                at: at(),
            },
            r#"{"type":"CrmConnected","data":{"organizationId":"00000000-0000-0000-0000-000000000001","connectedBy":"00000000-0000-0000-0000-000000000002","provider":"hubspot","accountId":"4711","scopes":["crm.objects.contacts.write"],"settings":{"syncEnabled":true,"autoCreateContacts":true,"defaultDealStage":"appointmentscheduled","stageMapping":{"qualified":"qualifiedtobuy","appointment":"appointmentscheduled","sale":"closedwon"},"leadStatusProperty":"hs_lead_status","notInterestedValue":"UNQUALIFIED","fieldMappings":{},"logTranscript":true,"logRecording":true,"newContactKind":"lead"},"at":"2026-03-02T13:00:00Z"}}"#,
        );
        assert_stored_as(
            CrmEvent::CrmSignInFailed {
                sign_in: sign_in(CrmProvider::Salesforce),
                reason: "invalid_grant".into(),
                at: at(),
            },
            r#"{"type":"CrmSignInFailed","data":{"organizationId":"00000000-0000-0000-0000-000000000001","connectedBy":"00000000-0000-0000-0000-000000000002","provider":"salesforce","reason":"invalid_grant","at":"2026-03-02T13:00:00Z"}}"#,
        );
    }
}
